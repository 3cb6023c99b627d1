"""The Flashbots client against a local HTTP relay (aiohttp, 127.0.0.1) that checks the header as
the relay does: the signature recovers to the address in ``X-Flashbots-Signature`` only when it
signs the text ``"0x" + keccak(body).hex()`` of the exact bytes received. The body shapes are the
documented ones. The hexbytes >= 1 trap (``HexBytes.hex()`` has no ``0x``) gives a header the
relay refuses.

``LocalRelay`` is reused by the EVM gateway tests: with a node URL it simulates ``eth_callBundle``
on the node (snapshot, send, mine, read the receipts, revert) and includes an ``eth_sendBundle``'s
transactions in the next block (mined on the node as it arrives).
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak
from hexbytes import HexBytes

from tapedeck.live import flashbots as fb
from tapedeck.live.keys import key_from_hex
from tapedeck.live.playback import serve_loopback

AUTH_SECRET = "0x" + "4c" * 32  # a throwaway relay-auth key for these tests


def recover_header(body: bytes, header: str) -> tuple[str, bool]:
    """What the relay does: (claimed address, whether the signature recovers to it)."""
    address, _, sig = header.partition(":")
    if not sig.startswith("0x"):
        return address, False
    text = "0x" + bytes(keccak(body)).hex()
    try:
        got = Account.recover_message(encode_defunct(text=text), signature=bytes.fromhex(sig[2:]))
    except Exception:  # noqa: BLE001 - a malformed signature does not recover
        return address, False
    return address, got.lower() == address.lower()


class LocalRelay:
    """A relay on 127.0.0.1 (see the module docstring). ``requests`` keeps (body, header, json)."""

    def __init__(self, node_url: str | None = None) -> None:
        self.node_url = node_url
        self.requests: list[tuple[bytes, str, dict[str, Any]]] = []
        self.refused = 0
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.include = True  # eth_sendBundle: mine the bundle at once (False: leave it out)

    async def start(self) -> "LocalRelay":
        app = web.Application()
        app.router.add_post("/", self.handle)
        self.runner, port = await serve_loopback(app)
        self.url = f"http://127.0.0.1:{port}/"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def node(self, method: str, params: list[Any]) -> Any:
        import aiohttp

        async with aiohttp.ClientSession() as s:
            async with s.post(self.node_url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                                   "params": params}) as r:
                answer = await r.json()
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        header = request.headers.get(fb.HEADER, "")
        _, ok = recover_header(body, header)
        payload = json.loads(body)
        self.requests.append((body, header, payload))
        if not ok:
            self.refused += 1
            return web.json_response({"jsonrpc": "2.0", "id": payload.get("id"),
                                      "error": {"code": -32000, "message": "invalid flashbots signature"}},
                                     status=403)
        method, (params,) = payload["method"], payload["params"]
        if method == "eth_sendBundle":
            result: Any = {"bundleHash": "0x" + bytes(keccak(body)).hex()}
            if self.node_url and self.include:
                await self._mine(params["txs"])
        elif method == "eth_callBundle":
            result = await self._simulate(params["txs"]) if self.node_url else {"results": []}
        else:
            return web.json_response({"jsonrpc": "2.0", "id": payload.get("id"),
                                      "error": {"code": -32601, "message": f"no method {method}"}})
        return web.json_response({"jsonrpc": "2.0", "id": payload["id"], "result": result})

    async def _mine(self, txs: list[str]) -> list[dict[str, Any]]:
        await self.node("evm_setAutomine", [False])
        try:
            hashes = [await self.node("eth_sendRawTransaction", [t]) for t in txs]
            await self.node("evm_mine", [])
        finally:
            await self.node("evm_setAutomine", [True])
        return [await self.node("eth_getTransactionReceipt", [h]) for h in hashes]

    async def _simulate(self, txs: list[str]) -> dict[str, Any]:
        snap = await self.node("evm_snapshot", [])
        try:
            receipts = await self._mine(txs)
        finally:
            await self.node("evm_revert", [snap])
        results = []
        for r in receipts:
            row = {"txHash": r["transactionHash"], "gasUsed": int(r["gasUsed"], 16)}
            if int(r["status"], 16) == 1:
                row["value"] = "0x"
            else:
                row["error"], row["revert"] = "execution reverted", ""
            results.append(row)
        return {"results": results, "totalGasUsed": sum(x["gasUsed"] for x in results),
                "stateBlockNumber": int(await self.node("eth_blockNumber", []), 16)}


@pytest.fixture
def key():
    return key_from_hex(AUTH_SECRET, "test")


def test_the_header_recovers_to_the_signer_against_a_local_relay(key) -> None:
    async def go() -> None:
        relay = await LocalRelay().start()
        client = fb.FlashbotsRelay(relay.url, key, name="local")
        try:
            raw = bytes.fromhex("02f8" + "ab" * 40)
            bundle_hash = await client.send_bundle([raw], 17, min_timestamp=5, reverting=["0x" + "11" * 32])
            calls, answer = await client.call_bundle([raw], 18, state_block="latest", timestamp=99)
        finally:
            await client.close()
            await relay.stop()
        assert relay.refused == 0 and len(relay.requests) == 2
        (body1, header1, send), (body2, header2, call) = relay.requests
        for body, header in ((body1, header1), (body2, header2)):
            address, ok = recover_header(body, header)
            assert ok and address == key.address
            assert header.split(":")[1].startswith("0x") and len(header.split(":")[1]) == 2 + 130
        assert bundle_hash == "0x" + bytes(keccak(body1)).hex()  # the relay hashed the very bytes that were signed
        # documented shapes
        assert send["method"] == "eth_sendBundle" and send["jsonrpc"] == "2.0"
        assert send["params"] == [{"txs": ["0x" + raw.hex()], "blockNumber": "0x11", "minTimestamp": 5,
                                   "revertingTxHashes": ["0x" + "11" * 32]}]
        assert call["method"] == "eth_callBundle"
        assert call["params"] == [{"txs": ["0x" + raw.hex()], "blockNumber": "0x12", "stateBlockNumber": "latest",
                                   "timestamp": 99}]
        assert calls == [] and answer == {"results": []}

    asyncio.run(go())


def test_hexbytes_without_0x_gives_a_signature_the_relay_refuses(key) -> None:
    body = fb.encode_body("eth_sendBundle", fb.send_bundle_params([b"\x02\x01"], 1))
    digest = HexBytes(keccak(body))
    assert not digest.hex().startswith("0x")  # hexbytes >= 1: the trap is real in this environment
    wrong = f"{key.address}:0x{key.sign_text(digest.hex()).hex()}"  # what a naive client signs
    assert recover_header(body, wrong) == (key.address, False)
    assert recover_header(body, fb.signature_header(body, key)) == (key.address, True)
    assert fb.signature_text(body) == "0x" + digest.hex()

    async def go() -> tuple[int, str]:
        relay = await LocalRelay().start()
        try:
            import aiohttp

            async with aiohttp.ClientSession() as s:
                async with s.post(relay.url, data=body, headers={fb.HEADER: wrong}) as r:
                    return r.status, (await r.json())["error"]["message"]
        finally:
            await relay.stop()

    assert asyncio.run(go()) == (403, "invalid flashbots signature")


def test_a_body_changed_after_signing_does_not_verify(key) -> None:
    body = fb.encode_body("eth_callBundle", fb.call_bundle_params(["0x02"], 3))
    header = fb.signature_header(body, key)
    again = json.dumps(json.loads(body)).encode()  # re-serialized (spaces): other bytes, same JSON
    assert again != body
    assert recover_header(body, header)[1] and not recover_header(again, header)[1]


def test_a_refusal_raises_relay_error_naming_the_relay_not_the_url(key) -> None:
    async def go() -> str:
        relay = await LocalRelay().start()
        other = key_from_hex("0x" + "5d" * 32, "test")

        class Lying(fb.FlashbotsRelay):  # claims key's address, signs with another key
            async def _post(self, method: str, params: list[Any]) -> Any:
                orig = fb.signature_header
                fb.signature_header = lambda body, k: f"{key.address}:0x{other.sign_text(fb.signature_text(body)).hex()}"
                try:
                    return await super()._post(method, params)
                finally:
                    fb.signature_header = orig

        client = Lying(relay.url + "?token=SECRET", key, name="local")
        try:
            await client.send_bundle([b"\x02"], 1)
        except fb.RelayError as e:
            return str(e)
        finally:
            await client.close()
            await relay.stop()
        return ""

    msg = asyncio.run(go())
    assert "invalid flashbots signature" in msg and "local" in msg and "SECRET" not in msg
