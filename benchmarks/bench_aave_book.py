"""The Aave borrower book and liquidator at 10,000 borrowers over 4 reserves.

A synthetic market (tests/test_aave_book_tape.py's ``Tape``: the logs a real pool emits): 10,000
borrowers, collateral WETH or WBTC, debt USDC or DAI, health factors spread over 1.06..3.0, plus
100 WETH-collateral borrowers at HF 1.001..1.03, so a 4% WETH drop makes exactly those 100
liquidatable. Built by feeding every event through an engine running ``aave_liquidator``
(events/s reported). Each timing is the median CPU time of ``--repeat`` runs on a fresh deep copy (for the
100-intent case also the least, the run other processes disturbed least, and the median wall time, which on a
shared machine includes other processes' turns):

* the 4% WETH drop through ``Engine.handle``: the 100 intents (target < 5 ms);
* a 0.5% WETH rise (nobody crosses): the re-evaluation the candidate filter does, and for
  comparison an exact evaluation of every WETH holder (what indexing by asset alone would cost);
* one user's Supply through the engine;
* the full scan (every indebted user evaluated exactly, re-keyed);
* a replayed day: the real Polygon WETH-reserve logs of 2024-01-06 (``../shared/data`` or
  ``$TAPEDECK_DATA``, decoded by ``adapters/aave_v3_logs.py`` beforehand, not timed) through the
  engine running ``aave_liquidator``, after a snapshot of that reserve (LTV/LT/bonus/fee set here:
  the day's logs carry none, its indexes from the first ReserveDataUpdated) and a $2,200 price;
  events/s of CPU time, median of ``--repeat`` fresh engines.

Usage: python benchmarks/bench_aave_book.py [--repeat 5] [--users 10000]
"""
from __future__ import annotations

import argparse
import copy
import gc
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402

from tapedeck.domain import events as ev  # noqa: E402
from tapedeck.domain.engine import Engine  # noqa: E402
from tapedeck.domain.risk import RiskGate, VenueLimits  # noqa: E402
from tapedeck.domain.strategies.aave_liquidator import AaveLiquidator  # noqa: E402
from tests.test_aave_book_tape import CHAIN, NS, V2_POOL, Tape, addr, fresh_reserves  # noqa: E402


def build(n_users: int, n_near: int = 100) -> tuple[Tape, list[str]]:
    rng = random.Random(11)
    t = Tape(fresh_reserves())
    weth, usdc, wbtc, dai = t.reserves
    t._emit(ev.V2ReservesSynced, pool=V2_POOL, block=t.block, reserve0=50_000 * 10**18,
            reserve1=50_000 * 2000 * 10**6)
    t.block_produced()
    near = []
    for i in range(n_users):
        u = addr(0x50 + i // 65536 % 16, i)
        is_near = i < n_near
        c = weth if is_near or i % 2 else wbtc
        d = usdc if is_near or i % 3 else dai
        usd = rng.randint(2, 200) * 1000
        hf_permille = rng.randint(1001, 1030) if is_near else rng.randint(1060, 3000)
        t.supply(u, c, usd * 10**c.decimals // (c.price // 10**8))
        t.borrow(u, d, usd * c.lt // 10_000 * 1000 // hf_permille * 10**d.decimals)
        if is_near:
            near.append(u)
        if i % 500 == 499:
            t.advance(12)
            t.block_produced()
    return t, near


def feed(eng: Engine, e: ev.Event, seq: list[int]) -> list[ev.Event]:
    seq[0] += 1
    out = []
    for d in eng.handle(msgspec.structs.replace(e, seq=seq[0])):
        seq[0] += 1
        d = msgspec.structs.replace(d, seq=seq[0])
        eng.decided(d)
        out.append(d)
    return out


WALL: list[float] = []
LEAST: list[float] = []  # the least CPU time of each timed case: the run other processes disturbed least


def timed(fn: Callable[[Any], Any], repeat: int, setup: Callable[[], Any]) -> tuple[float, Any]:
    """Median CPU time of the process over ``repeat`` runs (the machine is shared: CPU time leaves out
    the time other processes held the core; the median wall time is kept in ``WALL[-1]``)."""
    cpu, wall, result = [], [], None
    for _ in range(repeat):
        arg = setup()
        gc.collect()
        gc.disable()
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn(arg)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        gc.enable()
    WALL.append(statistics.median(wall))
    LEAST.append(min(cpu))
    return statistics.median(cpu), result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--users", type=int, default=10_000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    x = 0
    for i in range(10**6):
        x += i * i
    print(f"calibration: a 1M-iteration Python loop takes {(time.perf_counter() - t0) * 1e3:.0f} ms here now "
          f"(load: {Path('/proc/loadavg').read_text().split()[0] if Path('/proc/loadavg').exists() else '?'})")
    t, near = build(args.users)
    weth = t.reserves[0]
    strat = AaveLiquidator(name="liq", chain=CHAIN, native_asset=weth.asset, dedupe_s=2, breaker_failures=10**6,
                           pools=[{"pool": V2_POOL, "kind": "v2", "token0": weth.asset, "token1": t.reserves[1].asset,
                                   "fee": 30}])
    eng = Engine([strat], RiskGate(VenueLimits(10**30, 10**31)))
    seq = [0]
    t0 = time.perf_counter()
    for e in t.events:
        feed(eng, e, seq)
    build_s = time.perf_counter() - t0
    print(f"built: {len(t.events):,} events, {len(strat.book.users):,} users, {len(strat.book._sorted):,} indebted, "
          f"through the engine at {len(t.events) / build_s:,.0f} events/s")
    state = (eng, seq[0])
    now = t.now + 1

    def fresh() -> tuple[Engine, list[int]]:
        e, s = copy.deepcopy(state)
        return e, [s]

    def price(factor_permille: int) -> ev.OracleUpdated:
        return ev.OracleUpdated(ts=now * NS, source="bench", feed=weth.feed, chain=CHAIN, round_id=10**6,
                                answer=weth.price * factor_permille // 1000, decimals=8)

    drop = price(960)
    med, out = timed(lambda a: feed(a[0], drop, a[1]), args.repeat, fresh)
    intents = [d for d in out if type(d) is ev.OrderIntended]
    assert sorted(d.target for d in intents) == sorted(near), (len(intents), "intents are not the 100 near users")
    print(f"4% WETH drop -> {len(intents)} liquidation intents (+{len(out) - len(intents)} other decisions): "
          f"{med * 1e3:.2f} ms CPU, least {LEAST[-1] * 1e3:.2f} ({WALL[-1] * 1e3:.2f} ms wall; target < 5 ms)")

    wiggle = price(1005)

    def wiggle_run(a: tuple[Engine, list[int]]) -> tuple[int, int]:
        s: AaveLiquidator = a[0].strategies[0]  # type: ignore[assignment]
        before = s.counts["evaluated"]
        feed(a[0], wiggle, a[1])
        return s.counts["evaluated"] - before, len(s.book.users_of[weth.asset])

    med, (evaluated, holders) = timed(wiggle_run, args.repeat, fresh)
    print(f"0.5% WETH rise (nobody crosses): {med * 1e3:.3f} ms, {evaluated} users re-evaluated of "
          f"{holders:,} WETH holders")

    def naive(a: tuple[Engine, list[int]]) -> int:
        s: AaveLiquidator = a[0].strategies[0]  # type: ignore[assignment]
        book = s.book
        book.apply(msgspec.structs.replace(wiggle, seq=a[1][0] + 1))
        return sum(1 for u in list(book.users_of[weth.asset]) if book.account(u, now) is not None)

    med, n = timed(naive, args.repeat, fresh)
    print(f"  for comparison, every WETH holder evaluated exactly (index by asset only): {med * 1e3:.2f} ms ({n:,} users)")

    user = near[-1] if near else addr(0x50, 0)
    sup = ev.AaveSupplied(ts=now * NS, source="bench", chain=CHAIN, block=10**6, tx="0x", log_index=1,
                          reserve=weth.asset, user=user, on_behalf_of=user, amount=10**15, referral=0)
    med, _ = timed(lambda a: feed(a[0], sup, a[1]), args.repeat, fresh)
    print(f"one user event (Supply): {med * 1e6:.0f} us")

    def scan(a: tuple[Engine, list[int]]) -> int:
        s: AaveLiquidator = a[0].strategies[0]  # type: ignore[assignment]
        return len(s.book.rescan(now))

    med, n = timed(scan, args.repeat, fresh)
    print(f"full scan ({len(strat.book._sorted):,} indebted users, exact): {med * 1e3:.1f} ms, {n} liquidatable")
    timer = ev.TimerFired(ts=now * NS, source="timer", strategy="liq", key="scan")
    dropped = state

    def after_drop() -> tuple[Engine, list[int]]:
        e, s = copy.deepcopy(dropped)
        sq = [s]
        feed(e, msgspec.structs.replace(drop, ts=now * NS - 1), sq)
        return e, sq

    med, out = timed(lambda a: feed(a[0], timer, a[1]), args.repeat, after_drop)
    print(f"scan timer after the drop (fast path already acted: deduped/in flight): {med * 1e3:.1f} ms, "
          f"{sum(1 for d in out if type(d) is ev.OrderIntended)} new intents")
    replayed_day(args.repeat)


def replayed_day(repeat: int) -> None:
    import os
    from tapedeck.adapters.aave_v3_logs import read_aave_logs
    name = "polygon-aave_v3-0x7ceb23fd6bc0add59e62ac25578270cff1b9f619-2024-01-06.raw.csv"
    path = Path(os.environ.get("TAPEDECK_DATA", ROOT.parent / "shared" / "data")) / "aave-v3-polygon-2024-01-06" / name
    if not path.exists():
        print(f"replayed day: skipped ({path} not found)")
        return
    day = list(read_aave_logs(path, "polygon"))
    first = next(e for e in day if type(e) is ev.AaveReserveDataUpdated)
    price_feed = "0x" + "fe" * 20
    head: list[ev.Event] = [
        ev.AaveReserveConfigured(ts=first.ts - 1, source="bench", chain="polygon", pool="0x" + "a0" * 20,
                                 block=first.block - 1, reserve=first.reserve, reserve_id=0, decimals=18, ltv=8000,
                                 liquidation_threshold=8250, liquidation_bonus=10500, reserve_factor=1000,
                                 liquidation_protocol_fee=1000, emode_category=0, active=True, frozen_reserve=False,
                                 borrowing_enabled=True, a_token="0x" + "a1" * 20, variable_debt_token="0x" + "d1" * 20,
                                 price_feed=price_feed, liquidity_index=first.liquidity_index,
                                 variable_borrow_index=first.variable_borrow_index,
                                 liquidity_rate=first.liquidity_rate, variable_borrow_rate=first.variable_borrow_rate,
                                 last_update_timestamp=first.block_ts - 1),
        ev.OracleUpdated(ts=first.ts - 1, source="bench", feed=price_feed, chain="polygon", round_id=1,
                         answer=2200 * 10**8, decimals=8)]
    events = head + day

    def run(_: None) -> tuple[int, int]:
        strat = AaveLiquidator(name="liq", chain="polygon", dedupe_s=2)
        eng = Engine([strat], RiskGate(VenueLimits(10**30, 10**31)))
        seq, decisions = [0], 0
        for e in events:
            decisions += len(feed(eng, e, seq))
        return decisions, len(strat.book.users)

    med, (decisions, users) = timed(run, repeat, lambda: None)
    print(f"replayed day (Polygon WETH reserve, 2024-01-06): {len(events):,} events, {users} users, {decisions} "
          f"decisions: {len(events) / med:,.0f} events/s CPU ({med * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
