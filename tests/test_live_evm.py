"""The live EVM adapter against a real anvil on 127.0.0.1 (issue 13): it sees the sim's Uniswap and
Aave contracts through its WebSocket subscriptions and emits the typed events; a WebSocket killed
mid-run (a TCP proxy in front of anvil drops it, then refuses it so the HTTP fallback polls) loses
no log and applies none twice, checked against ``eth_getLogs`` over the whole range decoded
independently by web3 from the npm artifacts' ABIs; a reorg (``evm_snapshot``/``evm_revert`` and
a different branch, ``anvil_reorg``) retracts the abandoned logs and the engine's state, Aave book
included, equals a fresh run over the canonical chain.

Waits are bounded polls on what the adapter has emitted, never timings."""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any, Callable

import msgspec
import pytest
from web3._utils.events import get_event_data

from tapedeck.domain import events as ev
from tapedeck.domain.engine import Engine
from tapedeck.domain.risk import RiskGate, VenueLimits
from tapedeck.domain.strategies.aave_liquidator import AaveLiquidator
from tapedeck.live.base import Backoff
from tapedeck.live.evm_source import EvmSource
from tests.test_reorg import book_state

pytestmark = [pytest.mark.slow, pytest.mark.contract]

CHAIN = "anvil"


# ----------------------------------------------------------------------------- harness


class Live:
    """An ``EvmSource`` on its own event loop thread; every event numbered, kept, and folded into
    ``engine`` if given (as the runner's ``emit`` does, on the loop's thread)."""

    def __init__(self, source: EvmSource, engine: Engine | None = None) -> None:
        self.source, self.engine = source, engine
        self.events: list[ev.Event] = []
        self.decisions: list[ev.Event] = []  # what the engine decided on them
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.error: BaseException | None = None

    def emit(self, e: ev.Event) -> None:
        e = msgspec.structs.replace(e, seq=len(self.events) + 1)
        self.events.append(e)
        if self.engine is not None:
            self.decisions.extend(self.engine.handle(e))

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.stop_event = asyncio.Event()
        try:
            self.loop.run_until_complete(self.source.run(self.emit, self.stop_event))
        except BaseException as e:  # noqa: BLE001 - reported by stop()
            self.error = e

    def start(self) -> "Live":
        self.thread.start()
        return self

    def wait(self, what: str, pred: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            assert self.thread.is_alive(), f"the source stopped: {self.error!r}"
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting for {what}; health {self.source.health()}")
            time.sleep(0.02)

    def wait_block(self, number: int, timeout: float = 60.0) -> None:
        self.wait(f"block {number}", lambda: (self.source.checkpoint() or (-1, ""))[0] >= number, timeout)

    def stop(self) -> None:
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)
        assert not self.thread.is_alive(), "the source did not stop"
        assert self.error is None, repr(self.error)

    def of(self, *types: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, types)]


class Proxy:
    """A TCP proxy to ``port`` on 127.0.0.1 that can drop every connection (``drop``) and refuse new
    ones (``refusing``): what a dead WebSocket looks like from the adapter's side."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.refusing = False
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.accepted = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self.pairs.append((client, upstream))
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop(self) -> int:
        with self._lock:
            pairs, self.pairs = self.pairs, []
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        return len(pairs)

    def close(self) -> None:
        self.server.close()
        self.drop()


def fast_backoff() -> Backoff:
    return Backoff(base=0.02, cap=0.1, seed=7)


# ----------------------------------------------------------------------------- the market


@pytest.fixture(scope="module")
def world() -> Any:
    """anvil with a Uniswap V2 pair, a V3 pool on the same tokens and an Aave v3 market (the sim's)."""
    from tapedeck.sim.chain import uniswap_v2 as u2
    from tapedeck.sim.chain import uniswap_v3 as u3
    from tapedeck.sim.chain.aave_v3 import deploy_aave_v3
    from tapedeck.sim.chain.anvil import AnvilChain

    chain = AnvilChain()
    try:
        w3 = chain.w3
        v2 = u2.deploy_v2_pair(w3)
        u2.add_liquidity(v2, 10**21, 2 * 10**21)
        dep = u3.deploy_v3(w3)
        v3 = u3.create_pool(dep, v2.token0, v2.token1, 3000, 2**96)
        owner = w3.eth.default_account
        u3.mint_position(v3, owner, -6000, 6000, 10**20, 10**20)
        u3.approve_router(v3, owner)
        aave = deploy_aave_v3(w3)
        yield type("World", (), {"chain": chain, "w3": w3, "v2": v2, "v3": v3, "aave": aave, "owner": owner})()
    finally:
        chain.close()


def addresses(world: Any) -> dict[str, Any]:
    return {"v2_pairs": [world.v2.pair.address], "v3_pools": [world.v3.address], "aave_pools": [world.aave.pool.address],
            "aave_oracle": world.aave.oracle.address}


def swap_v2(world: Any, amount: int = 10**18) -> None:
    from tapedeck.domain.uniswap_v2 import get_amount_out
    from tapedeck.sim.chain import uniswap_v2 as u2

    r0, r1 = world.v2.reserves()
    u2.swap_exact_in(world.v2, amount, True, get_amount_out(amount, r0, r1))


def swap_v3(world: Any, amount: int = 10**17, zero: bool = True) -> None:
    from tapedeck.sim.chain import uniswap_v3 as u3

    u3.swap_exact_input(world.v3, world.owner, world.v3.token0 if zero else world.v3.token1, amount)


def aave_position(world: Any, user: str, weth: int = 10**18, usdc: int = 500 * 10**6) -> None:
    m = world.aave
    m.supply(user, "WETH", weth, mint=True)
    m.borrow(user, "USDC", usdc)


def usdc_liquidity(world: Any) -> None:
    world.aave.supply(world.w3.eth.accounts[9], "USDC", 10**12, mint=True)


# ----------------------------------------------------------------------------- independent decoding


def chain_logs(world: Any, first: int, last: int) -> list[tuple[Any, ...]]:
    """The followed contracts' logs over ``first..last`` from ``eth_getLogs``, decoded by web3 with
    the artifacts' ABIs (not by the adapter's decoder), as comparable tuples in chain order."""
    w3 = world.w3
    out = []
    pair_sync = world.v2.pair.events.Sync().abi
    v3_events = {e.abi["name"]: e.abi for e in (world.v3.pool.events.Swap(), world.v3.pool.events.Mint(),
                                                  world.v3.pool.events.Burn(), world.v3.pool.events.Collect())}
    pool_abis = {e["name"]: e for e in world.aave.pool.abi if e.get("type") == "event"}
    for log in w3.eth.get_logs({"fromBlock": first, "toBlock": last,
                                "address": [world.v2.pair.address, world.v3.address, world.aave.pool.address]}):
        address = log["address"].lower()
        if address == world.v2.pair.address.lower():
            if log["topics"][0] != w3.keccak(text="Sync(uint112,uint112)"):
                continue
            a = get_event_data(w3.codec, pair_sync, log)["args"]
            out.append(("V2ReservesSynced", address, log["blockNumber"], a["reserve0"], a["reserve1"]))
        elif address == world.v3.address.lower():
            for name, abi in v3_events.items():
                try:
                    d = get_event_data(w3.codec, abi, log)
                except Exception:  # noqa: BLE001 - not this event
                    continue
                out.append((name, address, log["blockNumber"], "0x" + log["transactionHash"].hex().removeprefix("0x"),
                            log["logIndex"], d["args"].get("amount0"), d["args"].get("amount1")))
                break
        else:
            for name, abi in pool_abis.items():
                try:
                    d = get_event_data(w3.codec, abi, log)
                except Exception:  # noqa: BLE001
                    continue
                if name in ("Supply", "Borrow", "Withdraw", "Repay", "ReserveDataUpdated", "LiquidationCall",
                            "ReserveUsedAsCollateralEnabled", "ReserveUsedAsCollateralDisabled", "FlashLoan",
                            "UserEModeSet"):
                    out.append((name, d["args"]["reserve"].lower() if "reserve" in d["args"] else "",
                                log["blockNumber"], "0x" + log["transactionHash"].hex().removeprefix("0x"),
                                log["logIndex"]))
                break
    return out


_V3_NAMES = {ev.V3Swapped: "Swap", ev.V3Minted: "Mint", ev.V3Burned: "Burn", ev.V3Collected: "Collect"}
_AAVE_NAMES = {ev.AaveSupplied: "Supply", ev.AaveBorrowed: "Borrow", ev.AaveWithdrawn: "Withdraw",
               ev.AaveRepaid: "Repay", ev.AaveReserveDataUpdated: "ReserveDataUpdated",
               ev.AaveLiquidationObserved: "LiquidationCall", ev.AaveFlashLoaned: "FlashLoan",
               ev.AaveEModeSet: "UserEModeSet"}


def as_logs(events: list[ev.Event]) -> list[tuple[Any, ...]]:
    """The adapter's log events as the same tuples as :func:`chain_logs`."""
    out = []
    for e in events:
        t = type(e)
        if t is ev.V2ReservesSynced:
            out.append(("V2ReservesSynced", e.pool, e.block, e.reserve0, e.reserve1))
        elif t in _V3_NAMES:
            out.append((_V3_NAMES[t], e.pool, e.block, e.tx, e.log_index, getattr(e, "amount0", None),
                        getattr(e, "amount1", None)))
        elif t in _AAVE_NAMES or t is ev.AaveCollateralToggled:
            name = _AAVE_NAMES.get(t) or ("ReserveUsedAsCollateralEnabled" if e.enabled else
                                          "ReserveUsedAsCollateralDisabled")
            out.append((name, getattr(e, "reserve", ""), e.block, e.tx, e.log_index))
    return out


# ----------------------------------------------------------------------------- tests


def test_ws_subscription_sees_swaps_and_aave_actions(world: Any) -> None:
    """V2 and V3 swaps and Aave supply/borrow made after the start arrive as their typed events
    through the WebSocket (heads and logs notifications both counted), block by block, each
    block's logs before its BlockProduced, which carries the chain's hash, parent and time."""
    from tapedeck.sim.chain.arb_executor import read_state

    w3 = world.w3
    start = w3.eth.block_number + 1
    reader = reader_snapshot(world, start - 1)  # the market now, through web3's contract calls
    pool_now = read_state(w3, [world.v3.address])[0].v3[world.v3.address.lower()]  # the sim's own read
    src = EvmSource("evm-anvil", chain=CHAIN, ws_url=world.chain.ws_url, http_url=world.chain.url,
                    start_block=start, backoff=fast_backoff(), **addresses(world))
    live = Live(src).start()
    live.wait("connected", lambda: any(e.state == "backfilled" for e in live.of(ev.SourceConnectionChanged)))
    user = w3.eth.accounts[3]
    usdc_liquidity(world)
    swap_v2(world)
    swap_v3(world)
    aave_position(world, user)
    head = w3.eth.block_number
    live.wait_block(head)
    live.stop()

    kinds = [type(e) for e in live.events]
    assert kinds[0] is ev.ReorgWindowSet and live.events[0].pools == (world.v2.pair.address.lower(),
                                                                        world.v3.address.lower())
    # the snapshot: the block before the first applied one, read by eth_call, as the sim reads it
    first = live.of(ev.BlockProduced)[0].number
    snap = [e for e in live.events if isinstance(e, (ev.AaveReserveConfigured, ev.AaveEModeConfigured))
            or (isinstance(e, ev.OracleUpdated) and e.round_id == 0)]
    strip = lambda e: msgspec.structs.replace(e, ts=0, seq=0, source="")  # noqa: E731
    assert first == start - 1 and snap and [strip(e) for e in snap] == [strip(e) for e in reader]
    (pool,) = live.of(ev.V3PoolSnapshot)
    assert pool.block == first and len(pool.ticks) == 2
    assert (pool.sqrt_price_x96, pool.tick, pool.liquidity) == (pool_now.sqrt_price_x96, pool_now.tick,
                                                                pool_now.liquidity)
    assert {t: (g, pool_now.ticks.net[t]) for t, g in pool_now.ticks.gross.items()} == {t: (g, n) for t, g, n in
                                                                                        pool.ticks}
    synced = live.of(ev.V2ReservesSynced)[0]
    assert (synced.block, synced.reserve0, synced.reserve1) == (first, *world.v2.pair.functions.getReserves().call(
        block_identifier=first)[:2])
    assert ev.V2ReservesSynced in kinds and ev.V3Swapped in kinds
    supplied = [e for e in live.of(ev.AaveSupplied) if e.on_behalf_of.lower() == user.lower()]
    borrowed = [e for e in live.of(ev.AaveBorrowed) if e.on_behalf_of.lower() == user.lower()]
    assert [e.amount for e in supplied] == [10**18] and [e.amount for e in borrowed] == [500 * 10**6]
    assert supplied[0].chain == CHAIN and supplied[0].reserve == world.aave.asset("WETH").lower()
    assert src.stats["subscription_heads"] >= head - start - 1 and src.stats["subscription_logs"] > 0
    assert not live.of(ev.InputRejected) and not live.of(ev.LogRetracted)
    # per block: its logs, then its BlockProduced; blocks contiguous, each once
    blocks = live.of(ev.BlockProduced)
    assert [b.number for b in blocks] == list(range(first, head + 1))
    for b in blocks:
        raw = w3.eth.get_block(b.number)
        assert (b.hash, b.parent_hash, b.block_ts) == ("0x" + raw["hash"].hex().removeprefix("0x"),
                                                       "0x" + raw["parentHash"].hex().removeprefix("0x"),
                                                       raw["timestamp"])
    last_block_seen: dict[int, int] = {}
    for i, e in enumerate(live.events):
        if isinstance(e, ev.BlockProduced):
            last_block_seen[e.number] = i
        elif hasattr(e, "block") and not isinstance(e, ev.LogRetracted):
            assert e.block not in last_block_seen, "a log after its block's BlockProduced"
    assert as_logs(live.events)[1:] == chain_logs(world, first + 1, head)  # after the snapshot's reserves


def test_killed_websocket_loses_nothing_and_repeats_nothing(world: Any) -> None:
    """The proxy drops the WebSocket three times mid-run and once refuses it while swaps go on (the
    adapter polls over HTTP meanwhile): the run's log events equal eth_getLogs over the whole range,
    none twice, every block once; the log says each disconnect, resubscription and backfill."""
    w3 = world.w3
    proxy = Proxy(world.chain.port)
    start = w3.eth.block_number + 1
    src = EvmSource("evm-proxy", chain=CHAIN, ws_url=proxy.url, http_url=world.chain.url, start_block=start,
                    backoff=fast_backoff(), ws_retry_s=0.5, poll_interval_s=0.05, snapshot=False, **addresses(world))
    live = Live(src).start()
    try:
        live.wait("connected", lambda: src.connected and src.transport == "ws")
        for round_ in range(4):
            for _ in range(3):
                swap_v2(world, 10**17)
                swap_v3(world, 10**16, zero=bool(round_ % 2))
            if round_ == 2:
                proxy.refusing = True
                proxy.drop()
                live.wait("http fallback", lambda: src.transport == "http" and src.connected)
                swap_v2(world, 10**17)  # seen by polling
                live.wait_block(w3.eth.block_number)
                proxy.refusing = False
            else:
                assert proxy.drop() >= 1
            live.wait("reconnected", lambda: src.connected and src.transport == "ws")
        head = w3.eth.block_number
        live.wait_block(head)
    finally:
        live.stop()
        proxy.close()

    blocks = [b.number for b in live.of(ev.BlockProduced)]
    assert blocks == list(range(start, head + 1)), "a block missed or applied twice"
    assert as_logs(live.events) == chain_logs(world, start, head)
    states = [e.state for e in live.of(ev.SourceConnectionChanged)]
    assert states.count("disconnected") >= 4 and states.count("resubscribed") >= 4
    assert states.count("backfilled") >= 5
    assert any(e.detail == "http polling" for e in live.of(ev.SourceConnectionChanged) if e.state == "connected")
    stale = live.of(ev.SourceStale)
    assert stale and all(e.venues == (world.v2.pair.address.lower(), world.v3.address.lower(),
                                      f"aave-v3:{CHAIN}") for e in stale)
    assert src.stats["http_polls"] > 0 and not live.of(ev.InputRejected)


def market_state(engine: Engine) -> dict[str, Any]:
    st = engine.state
    return {"v2": {p: (x.reserve0, x.reserve1, x.block) for p, x in sorted(st.v2.items())},
            "v3": {p: (s.sqrt_price_x96, s.tick, s.liquidity) for p, s in sorted(st.v3.items())},
            "blocks": {c: (b.number, b.hash) for c, b in st.blocks.items()}}


def engine_with_book(world: Any) -> tuple[Engine, AaveLiquidator]:
    strategy = AaveLiquidator(chain=CHAIN)
    engine = Engine([strategy], RiskGate(VenueLimits(10**30, 10**31)))
    return engine, strategy


def reader_snapshot(world: Any, block: int) -> list[ev.Event]:
    """The sim's own snapshot of the market (web3 contract calls), to compare the adapter's with."""
    from tapedeck.sim.chain.aave_events import AaveLogReader

    return AaveLogReader(world.aave, CHAIN, "reader").snapshot(block, 0)


def canonical_of(events: list[ev.Event]) -> list[ev.Event]:
    """The log as if no reorg had happened: each retraction removes what was applied from its block
    up (the abandoned blocks' logs and BlockProduced); the retractions and the window go too."""
    kept: list[ev.Event] = []
    for e in events:
        if isinstance(e, ev.LogRetracted):
            kept = [k for k in kept if getattr(k, "block", getattr(k, "number", -1)) < e.block
                    or not isinstance(k, (ev.BlockProduced, ev.V2ReservesSynced, ev.V3Swapped, ev.V3Minted,
                                          ev.V3Burned, ev.V3Collected, ev.AaveLog))]
        elif not isinstance(e, ev.ReorgWindowSet):
            kept.append(e)
    return kept


def fresh_replay(world: Any, start: int, head: int, snapshot: bool) -> tuple[Engine, AaveLiquidator, Live]:
    """A new adapter (HTTP only) over the canonical chain ``start..head`` into a new engine."""
    engine, strategy = engine_with_book(world)
    src = EvmSource("evm-fresh", chain=CHAIN, http_url=world.chain.url, start_block=start, poll_interval_s=0.05,
                    backoff=fast_backoff(), snapshot=snapshot, **addresses(world))
    live = Live(src, engine).start()
    live.wait_block(head)
    live.stop()
    return engine, strategy, live


def test_reorg_by_snapshot_revert_folds_back_to_the_canonical_chain(world: Any) -> None:
    """Branch A (a new borrower, swaps) is mined and applied, then the chain reverts to before it and
    mines a longer branch B (another borrower, other swaps). anvil 1.7.1 flags no log removed, so
    the new head's parent hash is what tells: every log of A is retracted (reason "reorg"), then B
    is applied; the engine's pools, last block and the liquidator's Aave book equal a fresh run
    over the canonical chain, and none of A's borrower remains."""
    w3 = world.w3
    usdc_liquidity(world)
    engine, strategy = engine_with_book(world)
    start = w3.eth.block_number + 1
    src = EvmSource("evm-reorg", chain=CHAIN, ws_url=world.chain.ws_url, http_url=world.chain.url,
                    start_block=start, backoff=fast_backoff(), max_reorg_depth=16, **addresses(world))
    live = Live(src, engine).start()
    a_user, b_user = w3.eth.accounts[4], w3.eth.accounts[5]
    aave_position(world, w3.eth.accounts[6])  # before the fork: stays
    swap_v2(world)
    fork = w3.eth.block_number
    snap = world.chain.snapshot()
    aave_position(world, a_user, 2 * 10**18, 1000 * 10**6)
    swap_v2(world, 3 * 10**18)
    swap_v3(world, 10**18)
    a_head = w3.eth.block_number
    live.wait_block(a_head)
    assert a_user.lower() in strategy.book.users
    a_blocks = {b.number: b.hash for b in live.of(ev.BlockProduced) if b.number > fork}
    a_logs = [e for e in live.events if getattr(e, "block", 0) > fork and not isinstance(e, ev.BlockProduced)]

    world.chain.revert(snap)
    assert w3.eth.block_number == fork
    aave_position(world, b_user, 3 * 10**18, 700 * 10**6)
    swap_v3(world, 2 * 10**17, zero=False)
    swap_v2(world, 10**17)
    swap_v2(world, 10**17)
    head = w3.eth.block_number
    assert head > a_head
    live.wait_block(head)
    live.stop()

    retracted = live.of(ev.LogRetracted)
    assert {(r.block, r.block_hash) for r in retracted} <= set(a_blocks.items())
    assert len(retracted) == len(a_logs) and all(r.reason == "reorg" and r.chain == CHAIN for r in retracted)
    # one retraction per applied log, per block; those with a log index in their event name it
    assert sorted(r.block for r in retracted) == sorted(e.block for e in a_logs)
    assert {(e.block, e.log_index) for e in a_logs if hasattr(e, "log_index")} <= \
        {(r.block, r.log_index) for r in retracted}
    assert all(r.log_index >= 0 and r.tx.startswith("0x") for r in retracted)
    assert src.stats["reorgs"] == 1
    canonical = [b for b in live.of(ev.BlockProduced) if b.number > fork and b.hash != a_blocks.get(b.number)]
    assert [b.number for b in canonical] == list(range(fork + 1, head + 1))

    # a fresh adapter over the canonical chain gives the same pools and last block
    fresh_engine, _, fresh = fresh_replay(world, start, head, True)
    assert market_state(engine) == market_state(fresh_engine)
    assert as_logs(fresh.events) == as_logs(canonical_of(live.events))
    # and replaying the log without what the reorg abandoned gives the same book, to the wei and
    # second (the book's reserve times come from event time, so this replay keeps the run's ts)
    replay_engine, replay_strategy = engine_with_book(world)
    for e in canonical_of(live.events):
        replay_engine.handle(e)
    assert market_state(engine) == market_state(replay_engine)
    assert book_state(strategy) == book_state(replay_strategy)
    assert a_user.lower() not in strategy.book.users and b_user.lower() in strategy.book.users
    assert strategy.book.window is not None and strategy.book.window.rewinds == 1
    # what the live run applied after the retractions is exactly the canonical chain's logs
    assert as_logs(live.events[live.events.index(retracted[-1]):]) == chain_logs(world, fork + 1, head)


def test_anvil_reorg_replaces_the_last_blocks(world: Any) -> None:
    """``anvil_reorg`` replaces the last 3 blocks (two swaps among them) by empty ones at the same
    height: the swaps' logs are retracted from the parent-hash mismatch and the pools are as before
    them, as a fresh run over the canonical chain has them."""
    w3 = world.w3
    engine, _ = engine_with_book(world)
    start = w3.eth.block_number + 1
    swap_v2(world)
    src = EvmSource("evm-anvil-reorg", chain=CHAIN, ws_url=world.chain.ws_url, http_url=world.chain.url,
                    start_block=start, backoff=fast_backoff(), max_reorg_depth=8, snapshot=False,
                    **addresses(world))
    live = Live(src, engine).start()
    base = w3.eth.block_number
    swap_v2(world, 2 * 10**18)  # two transactions: pay, then swap
    swap_v3(world, 10**17)
    assert w3.eth.block_number == base + 3
    live.wait_block(base + 3)
    world.chain.rpc("anvil_reorg", [3, []])
    assert w3.eth.block_number == base + 3
    swap_v2(world, 10**16)  # a new head on the new branch (anvil may not announce the reorged ones)
    head = w3.eth.block_number
    live.wait_block(head)
    live.wait("the new branch", lambda: src.window[-1].hash == "0x" + w3.eth.get_block(head)["hash"].hex()
              .removeprefix("0x"))
    live.stop()
    retracted = live.of(ev.LogRetracted)
    assert {r.block for r in retracted} == {base + 2, base + 3}  # the pair's Sync, the pool's Swap
    assert all(r.reason == "reorg" for r in retracted)
    fresh_engine, _, _ = fresh_replay(world, start, head, False)
    assert market_state(engine) == market_state(fresh_engine)


def test_a_borrower_becomes_liquidatable_through_the_subscription(world: Any) -> None:
    """From the adapter's snapshot and logs alone the liquidator's book sees a borrower cross HF 1 on
    the block where the oracle's feed for WETH is replaced by a lower one (``AssetSourceUpdated``:
    the reserve re-emitted with its new feed, the new price read at that block, the feed followed),
    and decides on it; its health factor is the chain's ``getUserAccountData`` one."""
    w3, m = world.w3, world.aave
    usdc_liquidity(world)
    engine, strategy = engine_with_book(world)
    start = w3.eth.block_number + 1
    src = EvmSource("evm-liq", chain=CHAIN, ws_url=world.chain.ws_url, http_url=world.chain.url, start_block=start,
                    backoff=fast_backoff(), **addresses(world))
    live = Live(src, engine).start()
    user = w3.eth.accounts[7]
    try:
        m.supply(user, "WETH", 10**18, mint=True)
        m.borrow(user, "USDC", 1590 * 10**6)  # HF 2000 * 0.825 / 1590 = 1.04
        live.wait_block(w3.eth.block_number)
        about = lambda: [d for d in live.decisions if getattr(d, "user", "") == user.lower()]  # noqa: E731
        assert not about()
        m.set_price("WETH", 1900 * 10**8)  # HF 0.986
        head = w3.eth.block_number
        live.wait_block(head)
        feed = m.aggregators[m.asset("WETH")].address.lower()
        reconfigured = [e for e in live.of(ev.AaveReserveConfigured) if e.price_feed == feed]
        assert len(reconfigured) == 1 and reconfigured[0].block == head
        assert [e.answer for e in live.of(ev.OracleUpdated) if e.feed == feed] == [1900 * 10**8]
        assert src.mapper.kinds[feed] == "aggregator"
        live.wait("resubscribed", lambda: any("a new price feed" in e.detail for e in live.of(ev.SourceConnectionChanged)))
        heads = src.stats["subscription_heads"]
        swap_v2(world)  # the subscriptions still deliver after the logs one was renewed
        live.wait("a head after the renewal", lambda: src.stats["subscription_heads"] >= heads + 2)
        live.wait_block(w3.eth.block_number)
        decided = about()
        assert decided and all(type(d) in (ev.LiquidationOpportunity, ev.LiquidationSkipped) for d in decided)
        chain_hf = m.user_account_data(user)[5]
        assert chain_hf < 10**18 and abs(decided[0].health_factor - chain_hf) * 10**6 < chain_hf
        assert decided[0].cause == live.events.index(live.of(ev.OracleUpdated)[-1]) + 1  # the price did it
        # a restart's adapter rebuilds from the log what it kept of the market and the chain
        again = EvmSource("evm-liq", chain=CHAIN, ws_url=world.chain.ws_url, **addresses(world))
        again.restore(live.events)
        kept = lambda x: {a: msgspec.structs.replace(r, ts=0, seq=0) for a, r in x.aave.reserves.items()}  # noqa: E731
        assert kept(again) == kept(src) and again.mapper.kinds == src.mapper.kinds
        # (events without a log identity of their own, a Sync or a feed change, restore as ("", -1))
        assert [(b.number, b.hash, len(b.logs)) for b in again.window] == \
            [(b.number, b.hash, len(b.logs)) for b in src.window]
    finally:
        live.stop()
        m.set_price("WETH", 2000 * 10**8)
