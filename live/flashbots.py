"""A small asyncio client for a Flashbots-style relay: ``eth_callBundle`` and ``eth_sendBundle``.

No maintained Python client supports web3 8 (``flashbots`` 2.0 needs web3 < 7), so this is the
whole of it, on aiohttp:

* the body is serialized **once** (compact JSON) and those exact bytes are both signed and sent
  (``data=``, never ``json=``, which would re-serialize);
* ``X-Flashbots-Signature: <address>:0x<signature>``, the signature being EIP-191 ``personal_sign``
  of the *text* ``"0x" + keccak256(body).hex()`` by the relay-auth key (a key with no funds is
  fine: it only builds the searcher's reputation). hexbytes >= 1 prints ``HexBytes.hex()``
  without the ``0x``; signing that text gives a signature the relay refuses ("invalid flashbots
  signature"). :func:`signature_text` always puts the prefix in front of plain bytes' hex.

Body shapes (docs.flashbots.net, "JSON-RPC endpoints"):

* ``eth_sendBundle``: ``[{"txs": ["0x<raw>", ...], "blockNumber": "0x<target>",
  "minTimestamp"?: n, "maxTimestamp"?: n, "revertingTxHashes"?: ["0x<hash>"]}]`` -> ``{"bundleHash": ...}``
* ``eth_callBundle``: ``[{"txs": [...], "blockNumber": "0x<target>", "stateBlockNumber": "latest",
  "timestamp"?: n}]`` -> ``{"results": [{"txHash", "gasUsed", "value" | "error", "revert"?, ...}],
  "totalGasUsed", "coinbaseDiff", "bundleHash", "stateBlockNumber", ...}``
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from eth_utils import keccak

from tapedeck.live.keys import SigningKey

HEADER = "X-Flashbots-Signature"


class RelayError(RuntimeError):
    """The relay refused the request (HTTP status or a JSON-RPC error); no secret in the message."""


def encode_body(method: str, params: list[Any], request_id: int = 1) -> bytes:
    """The request body, serialized once (compact, key order as given)."""
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params},
                      separators=(",", ":")).encode()


def signature_text(body: bytes) -> str:
    """The text a relay expects signed: ``"0x"`` + hex of keccak256 of the exact body bytes."""
    return "0x" + bytes(keccak(body)).hex()


def signature_header(body: bytes, key: SigningKey) -> str:
    """``<address>:0x<65-byte signature hex>`` for ``body``."""
    return f"{key.address}:0x{key.sign_text(signature_text(body)).hex()}"


def _hex_raw(raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw if raw.startswith("0x") else "0x" + raw
    return "0x" + bytes(raw).hex()


def send_bundle_params(txs: Sequence[bytes | str], block: int, *, min_timestamp: int = 0, max_timestamp: int = 0,
                       reverting: Sequence[str] = ()) -> list[Any]:
    p: dict[str, Any] = {"txs": [_hex_raw(t) for t in txs], "blockNumber": hex(block)}
    if min_timestamp:
        p["minTimestamp"] = min_timestamp
    if max_timestamp:
        p["maxTimestamp"] = max_timestamp
    if reverting:
        p["revertingTxHashes"] = list(reverting)
    return [p]


def call_bundle_params(txs: Sequence[bytes | str], block: int, *, state_block: str | int = "latest",
                       timestamp: int = 0) -> list[Any]:
    p: dict[str, Any] = {"txs": [_hex_raw(t) for t in txs], "blockNumber": hex(block),
                         "stateBlockNumber": state_block if isinstance(state_block, str) else hex(state_block)}
    if timestamp:
        p["timestamp"] = timestamp
    return [p]


@dataclass(frozen=True)
class BundleCall:
    """One transaction's result in an ``eth_callBundle`` answer."""

    tx: str
    gas_used: int
    value: str  # return data ("0x..."), "" if it reverted
    error: str  # "" if it succeeded
    revert: str  # the revert data or reason the relay gave, if any


class FlashbotsRelay:
    """``FlashbotsRelay(url, auth_key, name=...)``; ``await call_bundle(...)``, ``await send_bundle(...)``.

    ``name`` is what events say (``via="bundle:<name>"``), never the URL (it may carry a token)."""

    def __init__(self, url: str, auth_key: SigningKey, *, name: str = "flashbots", timeout: float = 10.0,
                 session: Any = None) -> None:
        self.url, self.auth_key, self.name, self.timeout = url, auth_key, name, timeout
        self._session = session
        self._id = 0

    def __repr__(self) -> str:
        return f"FlashbotsRelay(name={self.name!r}, signer={self.auth_key.address})"

    async def _post(self, method: str, params: list[Any]) -> Any:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._id += 1
        body = encode_body(method, params, self._id)
        headers = {"Content-Type": "application/json", HEADER: signature_header(body, self.auth_key)}
        try:
            async with self._session.post(self.url, data=body, headers=headers) as r:
                text = await r.text()
                status = r.status
        except aiohttp.ClientError as e:
            raise RelayError(f"relay {self.name}: {method}: {type(e).__name__}: {e}") from None
        try:
            answer = json.loads(text)
        except ValueError:
            raise RelayError(f"relay {self.name}: {method}: HTTP {status}, not JSON: {text[:200]!r}") from None
        if status != 200 or (isinstance(answer, dict) and "error" in answer):
            err = answer.get("error") if isinstance(answer, dict) else answer
            msg = err.get("message") if isinstance(err, dict) else err
            raise RelayError(f"relay {self.name}: {method}: HTTP {status}: {msg}")
        return answer.get("result")

    async def send_bundle(self, txs: Sequence[bytes | str], block: int, **kw: Any) -> str:
        """Offer the bundle for ``block``; the relay's bundle hash ("" if it gave none)."""
        result = await self._post("eth_sendBundle", send_bundle_params(txs, block, **kw))
        return str((result or {}).get("bundleHash", "")) if isinstance(result, dict) else str(result or "")

    async def call_bundle(self, txs: Sequence[bytes | str], block: int, **kw: Any) -> tuple[list[BundleCall], dict[str, Any]]:
        """Simulate the bundle on ``stateBlockNumber`` as if in ``block``: per-transaction results and the whole answer."""
        result = await self._post("eth_callBundle", call_bundle_params(txs, block, **kw))
        calls = [BundleCall(str(r.get("txHash", "")), int(r.get("gasUsed", 0)), str(r.get("value", "") or ""),
                            str(r.get("error", "") or ""), str(r.get("revert", "") or ""))
                 for r in (result or {}).get("results", [])]
        return calls, result or {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
