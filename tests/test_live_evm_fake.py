"""The live EVM adapter against a small fake node (a local WebSocket JSON-RPC server written here):
what anvil 1.7.1 cannot do. A ``removed: true`` log notification of an applied block, with no new
head at all, is enough to find the reorg (the retractions say "removed"); a head web3 cannot
read, a log that does not decode, and garbage frames become recorded rejections and the adapter
goes on (reconnecting and backfilling where web3 gave up on the connection)."""
from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import eth_abi
import pytest

from tapedeck.adapters.evm_abis import UNISWAP_V2_PAIR
from tapedeck.adapters.evm_logs import EventDecoder
from tapedeck.domain import events as ev
from tapedeck.domain.engine import Engine
from tapedeck.domain.risk import RiskGate, VenueLimits
from tapedeck.live.evm_source import EvmSource
from tests.test_live_evm import Live, fast_backoff

pytestmark = pytest.mark.slow

PAIR = "0x" + "ab" * 20
SYNC = "0x" + EventDecoder(UNISWAP_V2_PAIR, only=["Sync"]).topic0("Sync").hex()


def h(tag: str, n: int) -> str:
    return "0x" + f"{tag}-{n}".encode().hex().ljust(64, "0")


class FakeNode:
    """A chain of headers and logs by fork; ``canonical`` is what the RPC answers. Serves
    ``eth_subscribe`` (newHeads, logs), ``eth_blockNumber``, ``eth_getBlockByNumber``,
    ``eth_getLogs`` (by hash or range) and lets the test push any notification frame."""

    def __init__(self) -> None:
        self.headers: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, list[dict[str, Any]]] = {}
        self.canonical: list[str] = []
        self.clients: list[Any] = []
        self.subs: dict[Any, dict[str, str]] = {}
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.requests: list[str] = []
        threading.Thread(target=self._main, daemon=True).start()
        self.ready.wait(10)

    # ------------------------------------------------------------------ the chain

    def add(self, tag: str, n: int, parent: str, syncs: list[tuple[int, int]] = (), bad: bool = False) -> str:
        block_hash = h(tag, n)
        self.headers[block_hash] = {"number": hex(n), "hash": block_hash, "parentHash": parent,
                                    "timestamp": hex(1_700_000_000 + n), "baseFeePerGas": hex(10**9),
                                    "gasUsed": hex(21000), "gasLimit": hex(30_000_000), "miner": "0x" + "00" * 20,
                                    "extraData": "0x", "logsBloom": "0x" + "00" * 256}
        logs = []
        for i, (r0, r1) in enumerate(syncs):
            data = eth_abi.encode(["uint112", "uint112"], [r0, r1])
            logs.append(self.log(block_hash, n, i, "0x" + (data[:40] if bad else data).hex()))
        self.logs[block_hash] = logs
        return block_hash

    @staticmethod
    def log(block_hash: str, n: int, i: int, data: str, removed: bool = False) -> dict[str, Any]:
        return {"address": PAIR, "topics": [SYNC], "data": data, "blockNumber": hex(n), "blockHash": block_hash,
                "transactionHash": "0x" + f"tx-{block_hash[-8:]}-{i}".encode().hex().ljust(64, "0"),
                "transactionIndex": hex(i), "logIndex": hex(i), "removed": removed}

    def answer(self, method: str, params: list[Any]) -> Any:
        self.requests.append(method)
        if method == "eth_blockNumber":
            return hex(len(self.canonical) - 1)
        if method == "eth_chainId":
            return "0x7a69"
        if method == "eth_getBlockByNumber":
            n = int(params[0], 16)
            return self.headers[self.canonical[n]] if n < len(self.canonical) else None
        if method == "eth_getLogs":
            f = params[0]
            if "blockHash" in f:
                return list(self.logs.get(f["blockHash"], []))
            lo, hi = int(f["fromBlock"], 16), int(f["toBlock"], 16)
            return [x for n in range(lo, min(hi, len(self.canonical) - 1) + 1) for x in self.logs[self.canonical[n]]]
        raise KeyError(method)

    # ------------------------------------------------------------------ the server

    def _main(self) -> None:
        from websockets.asyncio.server import serve

        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            async with serve(self._client, "127.0.0.1", 0) as server:
                self.port = server.sockets[0].getsockname()[1]
                self.ready.set()
                await asyncio.Future()

        self.loop.run_until_complete(main())

    async def _client(self, ws: Any) -> None:
        self.clients.append(ws)
        self.subs[ws] = {}
        try:
            async for raw in ws:
                msg = json.loads(raw)
                method, params = msg["method"], msg.get("params", [])
                if method == "eth_subscribe":
                    self.requests.append(method)
                    sub = hex(0x1000 + len(self.subs[ws]) + 16 * len(self.clients))
                    self.subs[ws][params[0]] = sub
                    result: Any = sub
                elif method == "eth_unsubscribe":
                    result = True
                else:
                    try:
                        result = self.answer(method, params)
                    except KeyError:
                        await ws.send(json.dumps({"jsonrpc": "2.0", "id": msg["id"],
                                                  "error": {"code": -32601, "message": "no such method"}}))
                        continue
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}))
        except Exception:  # noqa: BLE001 - a client that went away
            pass
        finally:
            self.clients.remove(ws)

    def push(self, kind: str, result: Any, raw: str | None = None) -> None:
        """A notification of subscription ``kind`` ("newHeads" / "logs") to every client (or a raw frame)."""
        async def send() -> None:
            for ws in list(self.clients):
                sub = self.subs.get(ws, {}).get(kind)
                if sub is None:
                    continue
                frame = raw if raw is not None else json.dumps(
                    {"jsonrpc": "2.0", "method": "eth_subscription", "params": {"subscription": sub, "result": result}})
                await ws.send(frame)

        asyncio.run_coroutine_threadsafe(send(), self.loop).result(10)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@pytest.fixture
def node() -> FakeNode:
    n = FakeNode()
    g = n.add("a", 0, "0x" + "00" * 32)
    b1 = n.add("a", 1, g)
    b2 = n.add("a", 2, b1)
    b3 = n.add("a", 3, b2, syncs=[(100, 200)])
    n.canonical = [g, b1, b2, b3]
    return n


def test_removed_true_log_alone_retracts_and_refolds(node: FakeNode) -> None:
    engine = Engine([], RiskGate(VenueLimits(10**30, 10**31)))
    src = EvmSource("evm-fake", chain="fake", ws_url=node.url, v2_pairs=[PAIR], start_block=2,
                    backoff=fast_backoff(), max_reorg_depth=8, snapshot=False)
    live = Live(src, engine).start()
    live.wait_block(3)
    assert engine.state.v2[PAIR].reserve0 == 100
    old = node.logs[node.canonical[3]][0]
    # the node reorgs to a longer fork b and says so only by flagging the applied log removed
    b3 = node.add("b", 3, node.canonical[2], syncs=[(111, 222)])
    b4 = node.add("b", 4, b3, syncs=[(120, 230)])
    node.canonical = node.canonical[:3] + [b3, b4]
    node.push("logs", {**old, "removed": True})
    live.wait("fork b", lambda: src.checkpoint() == (4, b4))
    live.stop()

    retracted = live.of(ev.LogRetracted)
    assert [(r.block, r.block_hash, r.log_index, r.reason) for r in retracted] == [(3, h("a", 3), 0, "removed")]
    assert retracted[0].tx == old["transactionHash"]
    assert "eth_blockNumber" in node.requests and node.requests.count("eth_subscribe") == 2
    after = [e for e in live.events[live.events.index(retracted[0]) + 1:]
             if isinstance(e, (ev.V2ReservesSynced, ev.BlockProduced))]
    assert [(type(e).__name__, getattr(e, "reserve0", getattr(e, "number", None))) for e in after] == [
        ("V2ReservesSynced", 111), ("BlockProduced", 3), ("V2ReservesSynced", 120), ("BlockProduced", 4)]
    v2 = engine.state.v2[PAIR]
    assert (v2.reserve0, v2.reserve1, v2.block) == (120, 230, 4)
    assert engine.state.blocks["fake"].hash == b4


def test_bad_frames_are_rejections_and_the_adapter_goes_on(node: FakeNode) -> None:
    src = EvmSource("evm-fake", chain="fake", ws_url=node.url, v2_pairs=[PAIR], start_block=3,
                    backoff=fast_backoff(), max_reorg_depth=8, snapshot=False)
    live = Live(src).start()
    live.wait_block(3)
    # a log of a followed pair whose data is cut short: a rejection naming the block and log, then
    # the block's BlockProduced all the same
    b4 = node.add("a", 4, node.canonical[3], syncs=[(1, 2)], bad=True)
    node.canonical.append(b4)
    node.push("newHeads", node.headers[b4])
    live.wait_block(4)
    # a header missing its parent hash (web3 passes it on): a rejection, nothing applied
    node.push("newHeads", {k: v for k, v in node.headers[b4].items() if k != "parentHash"})
    # a header web3 itself cannot format: it gives up the subscription; the adapter records it,
    # reconnects and backfills (nothing was missed)
    node.push("newHeads", {**node.headers[b4], "number": "0xnothex"})
    b5 = node.add("a", 5, b4, syncs=[(5, 6)])
    node.canonical.append(b5)
    live.wait("reconnected", lambda: src.stats["connects"] >= 2 and src.connected)
    node.push("newHeads", node.headers[b5])
    live.wait_block(5)
    live.stop()

    rejected = live.of(ev.InputRejected)
    reasons = [(r.origin, r.reason) for r in rejected]
    assert reasons[0][0] == "evm-fake:block 4 log 0x0" and "data" in reasons[0][1]
    assert any(o == "evm-fake:head" and "parentHash" in r for o, r in reasons)
    assert any(o == "evm-fake:subscription" for o, _ in reasons)
    assert all(r.raw or r.origin == "evm-fake:subscription" for r in rejected)
    assert [b.number for b in live.of(ev.BlockProduced)] == [3, 4, 5]
    assert [(e.block, e.reserve0) for e in live.of(ev.V2ReservesSynced)] == [(3, 100), (5, 5)]


def test_a_silent_subscription_is_treated_as_stalled(node: FakeNode) -> None:
    """web3's subscriptions can stall without closing (web3 issues 3221, 3878): with ``head_timeout_s``
    no head for that long is a disconnect; the adapter reconnects, resubscribes and backfills, and a
    block that arrived meanwhile without a notification is applied."""
    src = EvmSource("evm-fake", chain="fake", ws_url=node.url, v2_pairs=[PAIR], start_block=3,
                    backoff=fast_backoff(), head_timeout_s=0.3, snapshot=False)
    live = Live(src).start()
    live.wait_block(3)
    b4 = node.add("a", 4, node.canonical[3], syncs=[(9, 9)])
    node.canonical.append(b4)  # no newHeads notification for it
    live.wait_block(4)
    live.stop()
    changes = [(e.state, e.detail) for e in live.of(ev.SourceConnectionChanged)]
    assert ("disconnected", "RpcError: no new head for 0.3s (a stalled subscription)") in changes
    assert src.stats["connects"] >= 2
    assert [(e.block, e.reserve0) for e in live.of(ev.V2ReservesSynced)] == [(3, 100), (4, 9)]


def test_a_reorg_deeper_than_the_window_is_said_and_the_adapter_goes_on(node: FakeNode) -> None:
    """Window 2, and the node replaces blocks 1..3: the adapter says it cannot fold back block 1
    (a rejection), retracts what it kept (2 and 3) and goes on from block 2 of the new fork; block
    1 is not applied twice."""
    src = EvmSource("evm-fake", chain="fake", ws_url=node.url, v2_pairs=[PAIR], start_block=1,
                    backoff=fast_backoff(), max_reorg_depth=2, snapshot=False)
    live = Live(src).start()
    live.wait_block(3)
    c1 = node.add("c", 1, node.canonical[0], syncs=[(7, 7)])
    c2 = node.add("c", 2, c1)
    c3 = node.add("c", 3, c2, syncs=[(8, 8)])
    c4 = node.add("c", 4, c3)
    node.canonical = node.canonical[:1] + [c1, c2, c3, c4]
    node.push("newHeads", node.headers[c4])
    live.wait("fork c", lambda: src.checkpoint() == (4, c4))
    live.stop()
    assert [r.reason for r in live.of(ev.InputRejected)] == [
        "reorg deeper than max_reorg_depth 2: the state folds back only 2 blocks"]
    assert [(r.block, r.block_hash) for r in live.of(ev.LogRetracted)] == [(3, h("a", 3))]
    assert [(b.number, b.hash[:12]) for b in live.of(ev.BlockProduced)] == [
        (1, h("a", 1)[:12]), (2, h("a", 2)[:12]), (3, h("a", 3)[:12]), (2, c2[:12]), (3, c3[:12]), (4, c4[:12])]


def test_each_block_is_one_batch_committed_before_the_next(node: FakeNode) -> None:
    """``after_batch`` (the runner's commit, ``live.base``) is called once per applied block, after
    its ``BlockProduced`` was emitted: the checkpoint the adapter resumes from is durable when the
    next block is fetched; ``acked_block`` says how far that went."""
    src = EvmSource("evm-fake", chain="fake", ws_url=node.url, v2_pairs=[PAIR], start_block=1,
                    backoff=fast_backoff(), snapshot=False)
    live = Live(src)
    seen: list[tuple[int, str]] = []  # (events emitted so far, the last one's type) at each call

    def after_batch() -> None:
        last = live.events[-1]
        seen.append((len(live.events), type(last).__name__ if not isinstance(last, ev.BlockProduced)
                     else f"BlockProduced {last.number}"))

    src.after_batch = after_batch
    live.start()
    live.wait_block(3)
    live.stop()
    blocks = [e for e in live.events if type(e) is ev.BlockProduced]
    assert [n for n, _ in seen] == [live.events.index(b) + 1 for b in blocks]  # right after each block's events
    assert [what for _, what in seen] == [f"BlockProduced {b.number}" for b in blocks] and [b.number for b in blocks] == [1, 2, 3]
    assert src.acked_block == 3 and src.health()["acked_block"] == 3
