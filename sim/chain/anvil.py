"""The second chain backend: a real anvil node (npm ``@foundry-rs/anvil``) on 127.0.0.1.

Started as a child process on a free loopback port, reached over JSON-RPC with web3.py; the
deploy helpers of ``sim.chain`` take the ``Web3`` and work unchanged. The live runner will be
tested against the same node.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import coincurve
from hexbytes import HexBytes
from web3 import Web3
from web3.datastructures import AttributeDict

from tapedeck.sim.chain.artifacts import ArtifactMissing, node_modules
from tapedeck.sim.chain.pyevm import ChainTx, to_checksum_address
from tapedeck.sim.chain.revm import signed_eip1559


def anvil_binary() -> Path:
    """The anvil executable the npm package installed (or ``$TAPEDECK_ANVIL``)."""
    explicit = os.environ.get("TAPEDECK_ANVIL")
    if explicit:
        return Path(explicit)
    for candidate in sorted((node_modules() / "@foundry-rs").glob("anvil-*/bin/anvil")):
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise ArtifactMissing(f"no anvil binary under {node_modules() / '@foundry-rs'}: run `make bootstrap` (npm install)")


def _hex_params(t: ChainTx) -> dict[str, Any]:
    p: dict[str, Any] = {"from": t.sender, "nonce": hex(t.nonce), "gas": hex(t.gas), "value": hex(t.value),
                         "maxFeePerGas": hex(t.max_fee), "maxPriorityFeePerGas": hex(t.max_priority_fee),
                         "data": "0x" + t.data.hex()}
    if t.to is not None:
        p["to"] = t.to
    return p


_INTS = ("blobGasPrice", "blockNumber", "cumulativeGasUsed", "effectiveGasPrice", "gasUsed", "status", "transactionIndex", "type",
         "logIndex")


def _int(v: Any) -> Any:
    return int(v, 16) if isinstance(v, str) else v


def _receipt(raw: dict[str, Any]) -> AttributeDict:
    """A JSON-RPC receipt as web3's formatters make it."""
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if k == "logs":
            out[k] = [_log(x) for x in v]
        elif k in _INTS:
            out[k] = _int(v)
        elif k in ("from", "to", "contractAddress"):
            out[k] = to_checksum_address(v) if v else None
        elif isinstance(v, str) and v.startswith("0x"):
            out[k] = HexBytes(v)
        else:
            out[k] = v
    return AttributeDict(out)


def _log(raw: dict[str, Any]) -> AttributeDict:
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if k in _INTS:
            out[k] = _int(v)
        elif k == "address":
            out[k] = to_checksum_address(v)
        elif k == "topics":
            out[k] = [HexBytes(t) for t in v]
        elif k == "blockTimestamp":  # web3 leaves it hex
            out[k] = v
        elif isinstance(v, str) and v.startswith("0x"):
            out[k] = HexBytes(v)
        else:
            out[k] = v
    return AttributeDict(out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AnvilChain:
    """An anvil node for the lifetime of this object (``close()`` or use as a context manager).

    Like ``PyEvmChain``, chain time never comes from the wall clock: with ``start_time`` the genesis
    is stamped with it and every automined block one second after its parent; ``mine_block`` stamps
    the blocks it is asked for. The mempool is FIFO (``--order fifo``) so a block keeps the order
    the sim's block builder chose.
    """

    def __init__(self, *, block_time: int | None = None, chain_id: int = 31337, timeout: float = 20.0,
                 start_time: int | None = None):
        self.port = _free_port()
        args = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(self.port), "--chain-id", str(chain_id),
                "--silent", "--order", "fifo"]
        if start_time is not None:
            args += ["--timestamp", str(start_time)]
        if block_time is not None:
            args += ["--block-time", str(block_time)]
        import requests

        # one session for web3's requests and the batches (call_many, mine_block); a loopback node
        # needs nothing of the environment (requests read every proxy variable per request: ~0.5 ms)
        self._http: Any = requests.Session()
        self._http.trust_env = False
        self.keys: dict[str, Any] = {}  # sender -> eth_account account whose transactions we sign (add_key)
        self._signers: dict[str, Any] = {}  # sender -> its coincurve key (signed_eip1559)
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        # web3 asks for the chain id on every send and call (~40% of a sim's requests): cache that
        # one answer only (blocks and calls must not be cached: snapshots revert them).
        self.w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 30}, cache_allowed_requests=True,
                                         cacheable_requests={"eth_chainId"}, session=self._http))
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"anvil exited with {self.process.returncode}: {err.strip()}")
            try:
                if self.w3.is_connected():
                    break
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            if time.monotonic() > deadline:
                self.close()
                raise TimeoutError(f"anvil did not answer on {self.url} within {timeout}s")
            time.sleep(0.05)
        self.accounts = list(self.w3.eth.accounts)
        self.w3.eth.default_account = self.accounts[0]
        self.chain_id = self.w3.eth.chain_id
        if start_time is not None:
            self.rpc("anvil_setBlockTimestampInterval", [1])

    def rpc(self, method: str, params: list[Any]) -> Any:
        response = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in response:
            raise RuntimeError(f"anvil {method} failed: {response['error']}")
        return response.get("result")

    def mine_block(self, txs: list[ChainTx], timestamp: int) -> list[Any]:
        """Execute ``txs`` in this order in one new block stamped ``timestamp`` (seconds); their receipts.

        Three JSON-RPC batches per block (automine off + every send; mine; automine on + the block's
        receipts) instead of web3's ~5 requests per transaction (eth-crash made 4,693 on anvil, and
        web3's request/response formatting cost more than the node). Receipts are formatted as web3
        formats them (ints, ``HexBytes``, checksummed addresses), so web3's log decoders read them."""
        sends = [self._send_request(t) for t in txs]
        answers = self.batch([{"method": "evm_setAutomine", "params": [False]},
                              {"method": "eth_getBlockByNumber", "params": ["latest", False]}] + sends)
        mined = False
        try:
            bad = [a["error"] for a in answers if "error" in a]
            if bad:
                raise RuntimeError(f"anvil refused a transaction: {bad[0]}")
            latest = int(answers[1]["result"]["timestamp"], 16)
            hashes = [a["result"] for a in answers[2:]]
            self.batch([{"method": "evm_mine", "params": [max(timestamp, latest + 1)]}])
            mined = True
        finally:
            on = [{"method": "evm_setAutomine", "params": [True]}]
            if not mined or not hashes:
                self.batch(on)
        if not hashes:
            return []
        _, got = self.batch(on + [{"method": "eth_getBlockReceipts", "params": ["latest"]}])
        by_hash = {r["transactionHash"]: r for r in got["result"]}
        return [_receipt(by_hash[h]) for h in hashes]

    def add_key(self, account: Any) -> None:
        """Sign ``account``'s transactions here (``eth_sendRawTransaction``) instead of impersonating
        it: with the same chain id as py-evm (``SIM_CHAIN_ID``) its transactions then have the same
        hashes on both backends, so a run's events (which name transactions) are the same too."""
        self.keys[account.address.lower()] = account

    def _send_request(self, t: ChainTx) -> dict[str, Any]:
        account = self.keys.get(t.sender.lower())
        if account is None:
            return {"method": "eth_sendTransaction", "params": [_hex_params(t)]}
        key = self._signers.get(t.sender.lower())
        if key is None:
            key = self._signers[t.sender.lower()] = coincurve.PrivateKey(bytes(account.key))
        return {"method": "eth_sendRawTransaction", "params": ["0x" + signed_eip1559(key, self.chain_id, t).hex()]}

    def batch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One HTTP request carrying ``requests`` (JSON-RPC batch); the answers in request order."""
        payload = [{"jsonrpc": "2.0", "id": i, **r} for i, r in enumerate(requests)]
        answers = {a["id"]: a for a in self._session().post(self.url, json=payload, timeout=30).json()}
        return [answers[i] for i in range(len(requests))]

    def call_many(self, calls: list[tuple[str, bytes]]) -> list[bytes | None]:
        """Read-only calls ``(to, calldata)`` on the latest block as ONE JSON-RPC batch (one HTTP
        request; web3 would make one each, plus its ABI mapping); return data, None for a revert."""
        if not calls:
            return []
        sender = self.accounts[0]
        answers = self.batch([{"method": "eth_call", "params": [{"from": sender, "to": to, "data": "0x" + data.hex()},
                                                                 "latest"]} for to, data in calls])
        return [bytes.fromhex(a["result"][2:]) if "result" in a else None for a in answers]

    def _session(self) -> Any:
        return self._http

    def snapshot(self) -> Any:
        return self.w3.provider.make_request("evm_snapshot", [])["result"]

    def revert(self, snapshot_id: Any) -> None:
        """Back to ``snapshot_id``. Anvil uses the snapshot up: take a new one to revert again."""
        ok = self.w3.provider.make_request("evm_revert", [snapshot_id]).get("result")
        if ok is not True:
            raise RuntimeError(f"anvil refused evm_revert to snapshot {snapshot_id} (already used or unknown)")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "AnvilChain":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
