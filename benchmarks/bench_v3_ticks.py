"""A Uniswap V3 swap across ticks in the domain (``uniswap_v3.swap``): its cost per tick crossed.

Layouts: ``--positions`` positions of random liquidity, each ``[k*w, (k+1)*w + w)`` for spacing
10 and width ``w`` spacings, laid end to end and overlapping from tick 0 upwards, so every
``w`` spacings there is an initialized tick. A one-for-zero exact-input swap from the bottom is
sized (by the domain itself) to stop just past the ``n``-th initialized tick,
for ``n`` in ``--crossings``. Two layouts: ticks 4 spacings apart (all within a few bitmap words:
the cost of crossing), and 300 spacings apart (every step is also a word boundary: the cost of
walking empty words). Each figure is the median CPU time of ``--repeat`` runs of ``--loops`` swaps;
per tick = (time(n) - time(0)) / n, the marginal cost of one more crossing (a step, a tick's
``liquidityNet`` added, ``getSqrtRatioAtTick`` from its cache).

Also the cost of folding a Mint into the tick table (``TickTable.update``) and of the within-range
``swap_within_range`` for comparison.

Usage: python benchmarks/bench_v3_ticks.py [--repeat 7] [--loops 200]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tapedeck.domain import uniswap_v3 as v3  # noqa: E402

SPACING = 10
FEE = 500


def layout(positions: int, width: int, rng: random.Random) -> tuple[v3.TickTable, int, int, int]:
    """A table of end-to-end overlapping positions from tick 0; the pool at the bottom of the first."""
    t = v3.TickTable(SPACING)
    for k in range(positions):
        t.update(k * width * SPACING, (k + 2) * width * SPACING, rng.randint(10**18, 10**20))
    tick = 0
    liq = sum(t.net[x] for x in sorted(t.net) if x <= tick)
    return t, v3.get_sqrt_ratio_at_tick(tick), tick, liq


def cpu(fn: Callable[[], object], loops: int, repeat: int) -> float:
    """Median CPU seconds of one call."""
    out = []
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(loops):
            fn()
        out.append((time.process_time() - start) / loops)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--loops", type=int, default=200)
    ap.add_argument("--positions", type=int, default=120)
    ap.add_argument("--crossings", type=int, nargs="+", default=[0, 1, 5, 20, 50, 100])
    args = ap.parse_args()
    rng = random.Random(1)
    print(f"uniswap_v3.swap, spacing {SPACING}, fee {FEE} pips; median CPU of {args.repeat} x {args.loops} swaps")
    for width, label in ((4, "ticks 4 spacings apart"), (300, "ticks 300 spacings apart (a word boundary each)")):
        table, sp, tick, liq = layout(args.positions, width, rng)
        ticks = sorted(table.gross)
        base = None
        print(f"\n{label}: {len(ticks)} initialized ticks")
        print(f"{'crossed':>8} {'steps':>6} {'us/swap':>9} {'us/tick (marginal)':>19}")
        for n in args.crossings:
            if n >= len(ticks) - 1:
                continue
            stop = v3.get_sqrt_ratio_at_tick(ticks[n + 1] - SPACING // 2) if n else \
                v3.get_sqrt_ratio_at_tick(ticks[1] - SPACING // 2)
            need = v3.swap(sp, tick, liq, table, FEE, 2**200, False, stop).amount1  # input that stops there
            r = v3.swap(sp, tick, liq, table, FEE, need, False)
            if n == 0:
                need = max(1, need // 1000)  # within the first range
                r = v3.swap(sp, tick, liq, table, FEE, need, False)
            t = cpu(lambda: v3.swap(sp, tick, liq, table, FEE, need, False), args.loops, args.repeat)
            if base is None:
                base = (r.crossed, t)
            per = "" if r.crossed == base[0] else f"{(t - base[1]) / (r.crossed - base[0]) * 1e6:.2f}"
            print(f"{r.crossed:>8} {r.steps:>6} {t * 1e6:>9.1f} {per:>19}")
    table, sp, tick, liq = layout(args.positions, 4, rng)
    t_within = cpu(lambda: v3.swap_within_range(sp, liq, tick, SPACING, FEE, 10**12, False), args.loops, args.repeat)
    t_multi = cpu(lambda: v3.swap(sp, tick, liq, table, FEE, 10**12, False), args.loops, args.repeat)
    print(f"\nthe same small swap inside one range: swap_within_range {t_within * 1e6:.1f} us, "
          f"swap {t_multi * 1e6:.1f} us")

    def fold() -> None:
        t2 = table.copy()
        for k in range(100):
            t2.update(k * 40, k * 40 + 400, 10**18)
    t_fold = cpu(fold, max(1, args.loops // 10), args.repeat)
    t_copy = cpu(table.copy, args.loops, args.repeat)
    print(f"TickTable.update (a Mint folded): {(t_fold - t_copy) / 100 * 1e6:.2f} us")


if __name__ == "__main__":
    main()
