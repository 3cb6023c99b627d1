"""Folding reorgs back (``domain/reorg.py``): after any reorg within the window, in any order of its
retractions, the engine's pools and last block and the liquidator's Aave book are what a fresh fold
of the canonical chain gives; the journal stays bounded; without a window nothing is kept."""
from __future__ import annotations

import copy
from typing import Any

import msgspec
from hypothesis import event, given, settings, target
from hypothesis import strategies as st

from tapedeck.domain import events as ev
from tapedeck.domain.engine import Engine
from tapedeck.domain.risk import RiskGate, VenueLimits
from tapedeck.domain.state import MarketState
from tests.test_aave_book_tape import CHAIN, Tape, addr, fresh_reserves
from tests.test_aave_liquidator import V2, WAD, liquidator, pool_event

V3 = "0x" + "33" * 20
DEPTH = 8


def book_state(strategy: Any) -> dict[str, Any]:
    b = strategy.book
    return {
        "reserves": {a: (r.li, r.vbi, r.lr, r.vbr, r.last, r.price, r.feed) for a, r in sorted(b.reserves.items())},
        "users": {a: (dict(sorted(u.coll.items())), dict(sorted(u.debt.items())), sorted(u.on), u.emode)
                  for a, u in sorted(b.users.items())},
        "users_of": {a: sorted(us) for a, us in sorted(b.users_of.items())},
        "feed_price": dict(sorted(b.feed_price.items())), "drift": b.drift, "unknown": b.unknown,
    }


def market_state(st_: MarketState) -> dict[str, Any]:
    return {"v2": {p: (x.reserve0, x.reserve1, x.block) for p, x in sorted(st_.v2.items())},
            "v3": {p: (s.sqrt_price_x96, s.tick, s.liquidity, None if s.ticks is None else dict(s.ticks.gross))
                   for p, s in sorted(st_.v3.items())},
            "blocks": {c: b.number for c, b in st_.blocks.items()}}


def blocks_of(t: Tape, data: st.DataObject, n: int, users: list[str]) -> None:
    """``n`` blocks of random market moves: time, a price, pool reserves, a V3 swap, users acting."""
    weth, usdc = t.reserves[:2]
    for _ in range(n):
        t.advance(data.draw(st.integers(1, 12)))
        t.price(weth, max(10**8, weth.price * data.draw(st.integers(900, 1100)) // 1000))
        if data.draw(st.booleans()):
            pool_event(t, data.draw(st.integers(1_000, 9_000)) * WAD)
        if data.draw(st.booleans()):
            tick = data.draw(st.integers(-500, 500))
            t.log += 1
            t._emit(ev.V3Swapped, pool=V3, block=t.block, tx=f"0x{t.block:064x}", log_index=t.log, sender=addr(5),
                    recipient=addr(5), amount0=1, amount1=-1, sqrt_price_x96=2**96 + tick, liquidity=10**18 + tick,
                    tick=tick)
        for u in data.draw(st.lists(st.sampled_from(users), max_size=3, unique=True)):
            action = data.draw(st.sampled_from(["supply", "borrow", "repay"]))
            if action == "supply":
                t.supply(u, weth, data.draw(st.integers(1, 20)) * WAD // 10)
            elif action == "borrow":
                t.borrow(u, usdc, data.draw(st.integers(1, 500)) * 10**6)
            elif t.debt.get((u, usdc.asset)):
                t.repay(u, usdc, 10**6)
        t.block_produced()


def retractions(events: list[ev.Event]) -> list[ev.LogRetracted]:
    """One retraction per event of each abandoned block (OracleUpdated names no block: it takes the
    block its BlockProduced closes), as the adapter emits them."""
    out, open_ = [], []
    for e in events:
        if type(e) is ev.BlockProduced:
            for x in open_:
                out.append(ev.LogRetracted(ts=e.ts, source="evm", chain=CHAIN, block=e.number, block_hash="",
                                           tx=getattr(x, "tx", ""), log_index=getattr(x, "log_index", -1),
                                           reason="reorg"))
            open_ = []
        else:
            open_.append(e)
    return out


def fold(events: list[ev.Event]) -> tuple[Engine, Any]:
    strategy = liquidator()
    engine = Engine([strategy], RiskGate(VenueLimits(10**30, 10**31)))
    for i, e in enumerate(events, start=1):
        engine.handle(msgspec.structs.replace(e, seq=i))
    return engine, strategy


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_reorg_within_the_window_folds_back_to_the_canonical_chain(data: st.DataObject) -> None:
    t = Tape(fresh_reserves())
    users = [addr(7, i) for i in range(4)]
    window = ev.ReorgWindowSet(ts=0, source="evm", chain=CHAIN, depth=DEPTH, pools=(V2, V3))
    blocks_of(t, data, data.draw(st.integers(1, 12)), users)
    prefix = list(t.events)
    a, b = copy.deepcopy(t), copy.deepcopy(t)
    abandoned = data.draw(st.integers(1, DEPTH - 1))
    blocks_of(a, data, abandoned, users)
    blocks_of(b, data, data.draw(st.integers(abandoned, DEPTH - 1)), users)  # the canonical fork is as long or longer
    a_events, b_events = a.events[len(prefix):], b.events[len(prefix):]
    gone = retractions(a_events)
    order = data.draw(st.permutations(range(len(gone))))
    event(f"abandoned blocks: {abandoned}")
    event("first retraction at the fork" if gone and gone[order[0]].block == min(r.block for r in gone)
          else "first retraction above the fork")
    target(float(len(gone)), label="retractions")

    live_engine, live_strategy = fold([window] + prefix + a_events + [gone[i] for i in order] + b_events)
    fresh_engine, fresh_strategy = fold(prefix + b_events)
    assert market_state(live_engine.state) == market_state(fresh_engine.state)
    assert book_state(live_strategy) == book_state(fresh_strategy)
    assert live_engine.state.reorg is not None and len(live_engine.state.reorg.chains[CHAIN].blocks) <= DEPTH


def test_a_v3_tick_table_comes_back_whole() -> None:
    """A pool known from a snapshot (its tick table), a mint in an abandoned block: the retraction
    brings back the table and liquidity as they were (the journal copied the state, not a reference)."""
    s = MarketState()
    s.on_reorg_window(ev.ReorgWindowSet(ts=0, chain="c", depth=4, pools=(V3,)))
    s.on_v3(ev.V3PoolSnapshot(ts=1, pool=V3, block=10, sqrt_price_x96=2**96, tick=0, liquidity=10**18,
                              tick_spacing=60, ticks=((-600, 10**18, 10**18), (600, 10**18, -10**18))))
    before = market_state(s)
    s.on_v3(ev.V3Minted(ts=2, pool=V3, block=11, tx="0x1", log_index=0, sender=addr(1), owner=addr(1),
                        tick_lower=-120, tick_upper=120, amount=5 * 10**17, amount0=1, amount1=1))
    s.on_block(ev.BlockProduced(ts=3, chain="c", number=11, base_fee=1, gas_used=0, gas_limit=2, next_base_fee=1))
    assert market_state(s) != before
    s.on_log_retracted(ev.LogRetracted(ts=4, chain="c", block=11, block_hash="0xab", tx="0x1", log_index=0,
                                       reason="reorg"))
    assert market_state(s)["v3"] == before["v3"] and "c" not in s.blocks
    assert s.updated[V3] == 1


def test_the_journal_is_bounded_and_off_without_a_window() -> None:
    s = MarketState()
    for n in range(1, 30):
        s.on_v2(ev.V2ReservesSynced(ts=n, pool=V2, block=n, reserve0=n, reserve1=n))
    assert s.reorg is None  # sim and replays of sim logs: nothing journaled
    s.on_log_retracted(ev.LogRetracted(ts=30, chain="c", block=5, block_hash="", tx="", log_index=0, reason="reorg"))
    assert s.v2[V2].reserve0 == 29  # no window: a retraction cannot fold anything back
    s.on_reorg_window(ev.ReorgWindowSet(ts=31, chain="c", depth=3, pools=(V2,)))
    for n in range(30, 40):
        s.on_v2(ev.V2ReservesSynced(ts=n, pool=V2, block=n, reserve0=n, reserve1=n))
        s.on_block(ev.BlockProduced(ts=n, chain="c", number=n, base_fee=1, gas_used=0, gas_limit=2, next_base_fee=1))
        assert len(s.reorg.chains["c"].blocks) <= 3
    s.on_log_retracted(ev.LogRetracted(ts=41, chain="c", block=37, block_hash="", tx="", log_index=0,
                                       reason="reorg"))
    assert s.v2[V2].reserve0 == 36 and s.blocks["c"].number == 36
    s.on_log_retracted(ev.LogRetracted(ts=42, chain="other", block=30, block_hash="", tx="", log_index=0,
                                       reason="reorg"))
    assert s.v2[V2].reserve0 == 36  # another chain's reorg does not touch this chain's pools
