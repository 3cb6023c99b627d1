"""What folding reorgs back costs (domain/reorg.py): the hot path with the journal off (sim, replay)
and on (live), and one fold-back of a reorg of the window's depth on a book of many borrowers.

Run: ``python benchmarks/bench_reorg.py``; prints the figures (no assertion on them)."""
from __future__ import annotations

import copy
import time

from tapedeck.domain import events as ev
from tapedeck.domain.state import MarketState
from tests.test_aave_book_tape import CHAIN, Tape, addr, fresh_reserves
from tests.test_aave_liquidator import WAD, pool_event
from tests.test_reorg import fold, retractions

POOL = "0x" + "b2" * 20


def fold_v2(n: int, windowed: bool) -> float:
    s = MarketState()
    if windowed:
        s.on_reorg_window(ev.ReorgWindowSet(ts=0, chain="c", depth=64, pools=(POOL,)))
    evs = [ev.V2ReservesSynced(ts=i, pool=POOL, block=i // 4, reserve0=i, reserve1=i) for i in range(n)]
    blocks = {i: ev.BlockProduced(ts=i, chain="c", number=i // 4, base_fee=1, gas_used=0, gas_limit=2,
                                  next_base_fee=1) for i in range(3, n, 4)}
    t = time.perf_counter()
    for i, e in enumerate(evs):
        s.on_v2(e)
        b = blocks.get(i)
        if b is not None:
            s.on_block(b)
    return (time.perf_counter() - t) / n * 1e9


def book_tape(users: int, blocks: int) -> tuple[list[ev.Event], Tape]:
    t = Tape(fresh_reserves())
    weth, usdc = t.reserves[:2]
    for i in range(users):
        u = addr(7, i)
        t.supply(u, weth, WAD)
        t.borrow(u, usdc, 1000 * 10**6)
    t.block_produced()
    for _ in range(blocks):
        t.advance(12)
        t.price(weth, weth.price * 999 // 1000)
        pool_event(t)
        t.block_produced()
    return list(t.events), t


def main() -> None:
    n = 200_000
    off, on = fold_v2(n, False), fold_v2(n, True)
    print(f"V2 fold + block every 4 events: {off:.0f} ns/event journal off, {on:.0f} ns/event on (depth 64)")
    for users in (1_000, 10_000):
        events, t = book_tape(users, 40)
        window = ev.ReorgWindowSet(ts=0, source="evm", chain=CHAIN, depth=8, pools=())
        t0 = time.perf_counter()
        fold(events)
        plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        fold([window] + events)
        windowed = time.perf_counter() - t0
        a = copy.deepcopy(t)
        before = len(a.events)
        for _ in range(7):
            a.advance(12)
            a.price(a.reserves[0], a.reserves[0].price * 990 // 1000)
            pool_event(a)
            a.block_produced()
        gone = retractions(a.events[before:])
        engine, strategy = fold([window] + a.events)
        t0 = time.perf_counter()
        for i, r in enumerate(gone):
            engine.handle(r.__class__(**{**{f: getattr(r, f) for f in r.__struct_fields__}, "seq": 10**9 + i}))
        back = time.perf_counter() - t0
        print(f"Aave book, {users} borrowers, {len(events)} events: fold {plain * 1e3:.0f} ms plain, "
              f"{windowed * 1e3:.0f} ms with the replica (depth 8); a 7-block reorg folded back in "
              f"{back * 1e3:.1f} ms ({len(gone)} retractions, {strategy.book.window.rewinds} rewind)")


if __name__ == "__main__":
    main()
