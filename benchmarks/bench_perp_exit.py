"""Engine time from a BBO event to the flatten intent, with 100 open perp positions across 20 markets.

The engine runs five ``perp_oracle_lag`` strategies, each holding a long position in each of 20
markets (100 positions). A seeded tape of N top-of-book updates (default 1,000,000) is replayed
through ``Engine.handle``; each update moves one market's book, and about one in ``--exit-every``
puts that market's best bid back at the oracle, where every strategy holding it decides its
reduce-only flatten in the handling of that very update (five intents). Only ``Engine.handle`` of
the BBO updates is timed (``perf_counter_ns`` around the call: state fold, the five strategies'
exit checks, the risk gate, the verdicts); what keeps 100 positions open between them (numbering
the decisions, the flattens' fills, the re-entries and their fills) is fed untimed.

A third run of the same tape measures the time from the BBO event to the *first* flatten intent
(the risk gate's first verdict in that handling, taken by a probe in the gate: the engine asks the
strategies in order and gates each one's intents before asking the next, so the first flatten is
decided after one strategy's check, not five).

Prints p50/p99/max of the updates that decided flattens (BBO event to flatten intents, and that
divided by the number of flattens), of all updates (the exit check on every update) and of the
updates that decided nothing, in microseconds, measured twice: wall time (``perf_counter_ns``) and
the thread's CPU time (``thread_time_ns``, which a shared machine's descheduling does not inflate),
with a calibration line (CPU ms for a million Python additions). About one update in
``--exit-every`` decides flattens, so the p99 of all updates sits where the flatten updates begin:
it is their figure, not the quiet check's.

``--tail`` asks whether the slow percent of the flatten updates is a slow *path* or the machine: it
runs the tape twice more (CPU clock) and prints how many of the slowest 2% of the flatten updates of
the first run are among the slowest 2% of the second (a path would make them the same updates),
and in how many updates, and how many of them flatten updates, a strategy recomputed its exit
prices (``_lines``) or its price-rule step (``_price_step``). Usage:
    python benchmarks/bench_perp_exit.py [--updates N] [--markets 20] [--strategies 5] [--exit-every 100] [--tail]
"""
from __future__ import annotations

import argparse
import bisect
import gc
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tapedeck.domain import events as ev  # noqa: E402
from tapedeck.domain.engine import Engine  # noqa: E402
from tapedeck.domain.risk import RiskGate, VenueLimits  # noqa: E402
from tapedeck.domain.strategies.perp_oracle_lag import PerpOracleLag  # noqa: E402

VENUE = "hyperliquid"
T0 = 1_700_000_000 * 10**9
ORACLE = 30_000_000  # 3000.0000 at 4 dp
SIZE = 100_000  # 10 lots at 4 dp


class FirstVerdict(RiskGate):
    """The gate with a probe: the clocks at its first verdict in a handling (``armed`` until then),
    i.e. when the first flatten intent of the update is decided (its ``OrderIntended`` struct is
    built right after). Used only in the run that measures that; it costs a call per intent."""

    armed = False
    wall = cpu = 0

    def check(self, intent, pending=0, now=None):  # type: ignore[no-untyped-def]
        verdict = RiskGate.check(self, intent, pending, now)
        if self.armed:
            self.armed = False
            self.wall = time.perf_counter_ns()
            self.cpu = time.thread_time_ns()
        return verdict


class Bench:
    def __init__(self, markets: int, strategies: int, probe: bool = False) -> None:
        self.strategies = [PerpOracleLag(name=f"lag-{i}", entry_edge_bps=50, exit_edge_bps=10, stop_bps=10_000,
                                         max_hold_s=10**6, order_size="1", max_position="1", min_size="0.1",
                                         reentry_s=0, max_age_ms=10**9, backup_check_ms=10**9)
                           for i in range(strategies)]
        self.gate = (FirstVerdict if probe else RiskGate)(VenueLimits(10**15, 10**18))
        self.engine = Engine(self.strategies, self.gate)
        self.markets = [f"M{i}" for i in range(markets)]
        self.seq = 0
        self.ts = T0

    def feed(self, e: ev.Event) -> list[ev.Event]:
        """Untimed: number the event, handle it, number and fold its decisions."""
        self.seq += 1
        return self.decide(self.engine.handle(ev.with_seq(e, self.seq)))

    def decide(self, decisions: object) -> list[ev.Event]:
        out = []
        for d in decisions:  # type: ignore[attr-defined]
            self.seq += 1
            d = ev.with_seq(d, self.seq)
            self.engine.decided(d)
            out.append(d)
        return out

    def quote(self, market: str, bid: int, ask: int) -> ev.QuoteUpdated:
        self.ts += 1_000
        return ev.QuoteUpdated(ts=self.ts, source="bench", venue=VENUE, instrument=market, bid=bid, bid_size=SIZE,
                               ask=ask, ask_size=SIZE, price_decimals=4, size_decimals=4, venue_ts=self.ts)

    def fill_all(self, decisions: list[ev.Event]) -> None:
        for d in decisions:
            if type(d) is ev.OrderIntended:
                self.ts += 1_000
                self.feed(ev.OrderFilled(ts=self.ts, source="bench", intent=d.seq, venue=VENUE, amount=d.amount,
                                         notional=d.notional, fee=0, fee_asset="USDC"))

    def open_all(self, market: str) -> None:
        """Every strategy enters ``market`` on a stranded ask and is filled."""
        self.fill_all(self.feed(self.quote(market, ORACLE * 97 // 100, ORACLE * 98 // 100)))

    def setup(self) -> None:
        for m in self.markets:
            self.ts += 1_000
            self.feed(ev.MarkPriceUpdated(ts=self.ts, source="bench", venue=VENUE, instrument=m, mark=ORACLE,
                                          oracle=ORACLE, price_decimals=4, venue_ts=self.ts))
            self.open_all(m)
        held = sum(1 for s in self.strategies for p in s.positions.positions.values() if p.size)
        assert held == len(self.strategies) * len(self.markets), held


def run(n: int, markets: int, strategies: int, exit_every: int, seed: int,
        clock: object = time.perf_counter_ns, seen: list[int] | None = None
        ) -> tuple[list[int], list[int], int]:
    """The timed tape: every update's ns, the flatten updates' ns, the flattens. With ``seen`` (the
    ``--tail`` runs: a counter a probe bumps), also which updates the probe saw, as
    ``Bench.probed`` (update index -> (decided flattens, probe calls))."""
    b = Bench(markets, strategies)
    b.setup()
    rng = random.Random(seed)
    handle = b.engine.handle
    all_ns: list[int] = []
    exit_ns: list[int] = []
    flattens = 0
    probed: dict[int, tuple[bool, int]] = {}
    run.probed = probed  # type: ignore[attr-defined]
    gc.collect()
    gc.disable()
    try:
        for k in range(n):
            m = b.markets[rng.randrange(markets)]
            if rng.randrange(exit_every) == 0:  # the book caught up: bid back at the oracle
                e = b.quote(m, ORACLE, ORACLE + 300)
            else:  # still stranded, a little noise: no exit, the check runs anyway
                bid = ORACLE * 97 // 100 + rng.randrange(-3000, 3000)
                e = b.quote(m, bid, bid + 300)
            b.seq += 1
            e = ev.with_seq(e, b.seq)
            before = seen[0] if seen is not None else 0
            t0 = clock()  # type: ignore[operator]
            out = handle(e)
            dt = clock() - t0  # type: ignore[operator]
            all_ns.append(dt)
            decided = b.decide(out)
            intents = [d for d in decided if type(d) is ev.OrderIntended]
            if seen is not None and (intents or seen[0] != before):
                probed[k] = (bool(intents), seen[0] - before)
            if intents:
                assert all(i.reduce_only for i in intents) and len(intents) == strategies
                exit_ns.append(dt)
                flattens += len(intents)
                b.fill_all(decided)  # flat
                b.open_all(m)  # and back in: 100 positions open again before the next timed update
    finally:
        gc.enable()
    return all_ns, exit_ns, flattens


def run_first(n: int, markets: int, strategies: int, exit_every: int, seed: int) -> tuple[list[int], list[int]]:
    """The same tape; for each update that decides flattens, wall and CPU ns from the BBO event
    to the first flatten's verdict (the probe's clocks)."""
    b = Bench(markets, strategies, probe=True)
    b.setup()
    rng = random.Random(seed)
    handle, gate = b.engine.handle, b.gate
    wall: list[int] = []
    cpu: list[int] = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(n):
            m = b.markets[rng.randrange(markets)]
            if rng.randrange(exit_every) == 0:
                e = b.quote(m, ORACLE, ORACLE + 300)
            else:
                bid = ORACLE * 97 // 100 + rng.randrange(-3000, 3000)
                e = b.quote(m, bid, bid + 300)
            b.seq += 1
            e = ev.with_seq(e, b.seq)
            gate.armed = True  # type: ignore[attr-defined]
            c0 = time.thread_time_ns()
            w0 = time.perf_counter_ns()
            out = handle(e)
            gate.armed = False  # type: ignore[attr-defined]
            decided = b.decide(out)
            if any(type(d) is ev.OrderIntended for d in decided):
                wall.append(gate.wall - w0)  # type: ignore[attr-defined]
                cpu.append(gate.cpu - c0)  # type: ignore[attr-defined]
                b.fill_all(decided)
                b.open_all(m)
    finally:
        gc.enable()
    return wall, cpu


def pct(values: list[int], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] / 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--updates", type=int, default=1_000_000)
    ap.add_argument("--markets", type=int, default=20)
    ap.add_argument("--strategies", type=int, default=5, help="strategies, each holding every market")
    ap.add_argument("--exit-every", type=int, default=100, help="about one update in this many closes a gap")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tail", action="store_true", help="also check whether the slow percent is a code path")
    a = ap.parse_args()
    print(f"bench_perp_exit: {a.updates:,} BBO updates, {a.markets * a.strategies} open positions across "
          f"{a.markets} markets ({a.strategies} strategies), Python {sys.version.split()[0]}; machine: "
          f"{calibrate():.0f} ms of CPU for 1M Python additions (an idle modern core: ~40)")
    for label, clock in (("wall (perf_counter_ns)", time.perf_counter_ns), ("CPU (thread_time_ns)", time.thread_time_ns)):
        t0 = time.perf_counter()
        all_ns, exit_ns, flattens = run(a.updates, a.markets, a.strategies, a.exit_every, a.seed, clock)
        wall = time.perf_counter() - t0
        per = [dt // a.strategies for dt in exit_ns]
        print(f"  {label}, {wall:.1f} s:")
        print(f"    BBO event -> its {a.strategies} flatten intents ({len(exit_ns):,} updates, {flattens:,} flattens): "
              f"p50 {pct(exit_ns, 0.5):.1f} us, p99 {pct(exit_ns, 0.99):.1f} us, max {max(exit_ns) / 1000:.1f} us "
              f"(per flatten: p50 {pct(per, 0.5):.1f} us, p99 {pct(per, 0.99):.1f} us)")
        print(f"    every BBO update (the exit check of {a.strategies} strategies; most do not exit): "
              f"p50 {pct(all_ns, 0.5):.1f} us, p99 {pct(all_ns, 0.99):.1f} us, mean {statistics.fmean(all_ns) / 1000:.2f} us")
        quiet = sorted(all_ns)
        for dt in exit_ns:  # the updates that decided nothing: all but the flatten updates
            quiet.pop(bisect.bisect_left(quiet, dt))
        print(f"    the BBO updates that decided nothing ({len(quiet):,}): p50 {pct(quiet, 0.5):.1f} us, "
              f"p99 {pct(quiet, 0.99):.1f} us")
    t0 = time.perf_counter()
    wall_first, cpu_first = run_first(a.updates, a.markets, a.strategies, a.exit_every, a.seed)
    print(f"  BBO event -> the first flatten intent's verdict (the gate's probe; a run of its own), "
          f"{time.perf_counter() - t0:.1f} s: wall p50 {pct(wall_first, 0.5):.1f} us, p99 {pct(wall_first, 0.99):.1f} us; "
          f"CPU p50 {pct(cpu_first, 0.5):.1f} us, p99 {pct(cpu_first, 0.99):.1f} us")
    if a.tail:
        tail(a)


def tail(a: argparse.Namespace) -> None:
    """``--tail``: is the slow percent of the flatten updates a code path (the same updates every
    run) or the machine? And where did a strategy recompute its exit prices or price step?"""
    seen = [0]
    lines, step = PerpOracleLag._lines, PerpOracleLag._price_step

    def probe(fn):  # type: ignore[no-untyped-def]
        def counted(*args):  # type: ignore[no-untyped-def]
            seen[0] += 1
            return fn(*args)
        return counted

    PerpOracleLag._lines, PerpOracleLag._price_step = probe(lines), probe(step)  # type: ignore[method-assign]
    try:
        runs = []
        for _ in range(2):
            _all, exit_ns, _n = run(a.updates, a.markets, a.strategies, a.exit_every, a.seed, time.thread_time_ns, seen)
            runs.append((exit_ns, dict(run.probed)))  # type: ignore[attr-defined]
    finally:
        PerpOracleLag._lines, PerpOracleLag._price_step = lines, step  # type: ignore[method-assign]
    slow: list[set[int]] = []
    for exit_ns, probed in runs:  # the slowest 2% of each run's flatten updates, by index in the tape
        idx = [i for i, (flat, _) in sorted(probed.items()) if flat]
        by = sorted(zip(exit_ns, idx), reverse=True)
        slow.append({i for _, i in by[: max(1, len(by) // 50)]})
    probed = runs[0][1]
    recomputed = {i: c for i, (_, c) in probed.items() if c}
    on_flatten = sum(1 for i in recomputed if probed[i][0])
    print(f"  --tail: of the slowest {len(slow[0])} flatten updates of one run, {len(slow[0] & slow[1])} are among the "
          f"slowest {len(slow[1])} of a second run of the same tape; exit prices or price step recomputed in "
          f"{len(recomputed):,} updates ({sum(recomputed.values()):,} calls), {on_flatten} of them flatten updates")


def calibrate() -> float:
    """CPU ms for a million Python additions: how fast this machine is right now (shared machines vary)."""
    c = time.thread_time_ns()
    x = 0
    for i in range(1_000_000):
        x += i
    return (time.thread_time_ns() - c) / 1e6


if __name__ == "__main__":
    main()
