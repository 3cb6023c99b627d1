"""Replay of the real day through ``cross_pool_arb``: engine + strategy in process, events/s.

The day is the shared 2024-01-05 USDC/WETH V3 logs plus the V2 pair's reserves (imported as
``make demo`` does, into a temporary log), read once into memory. Timed: a fresh engine from the
default config handling every input, its decisions numbered and folded back (``decided``) as the
recorder does, without the store; and, as the floor, a bare loop making one method call per event.
Prints the median of ``--repeat`` runs of each and their ratio.
``--clock cpu`` times by this thread's CPU time (``time.thread_time``) instead of the wall clock: on a
shared machine the wall clock counts the time the process waits for a core.
Usage: python benchmarks/bench_arb.py [--repeat 5] [--data DIR] [--clock wall|cpu]
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tapedeck.adapters.config_files import DEFAULT_CONFIG, load_config  # noqa: E402
from tapedeck.adapters.eventlog import EventLog  # noqa: E402
from tapedeck.domain import events as ev  # noqa: E402
from tapedeck.domain.strategies import build_engine  # noqa: E402
from tapedeck.runtime.demo import V2_FILE, V2_PAIR, V3_DIR, V3_FILE, data_dir  # noqa: E402
from tapedeck.runtime.importers import import_files  # noqa: E402


def load_day(data: Path, tmp: Path) -> list[ev.Event]:
    day = tmp / "day.db"
    import_files("uniswap-v3-logs", [str(data / V3_DIR / V3_FILE)], day)
    with EventLog.open(day) as log:
        blocks = [e.block for e in log.events() if hasattr(e, "block")]  # type: ignore[attr-defined]
    import_files("uniswap-v2-reserves", [str(data / V2_FILE)], day, from_block=min(blocks), to_block=max(blocks),
                 pool=V2_PAIR)
    with EventLog.open(day) as log:
        return list(log.events())


class _Sink:
    def take(self, e: ev.Event) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--data", default=None)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = ap.parse_args()
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    data = data_dir(args.data)
    if not (data / V3_DIR / V3_FILE).is_file():
        print(f"real day: skipped, no recordings at {data}")
        return
    with tempfile.TemporaryDirectory(prefix="tapedeck-bench-arb-") as tmp:
        events = load_day(data, Path(tmp))
    config = load_config(DEFAULT_CONFIG)
    n = len(events)
    gc.collect()
    gc.freeze()  # the day is the source, not the work measured
    first_seq = events[-1].seq + 1

    def engine_run() -> tuple[int, int]:
        engine = build_engine(config)
        handle, decided, with_seq = engine.handle, engine.decided, ev.with_seq
        seq = first_seq
        decisions = 0
        for e in events:
            for d in handle(e):
                seq += 1
                decided(with_seq(d, seq))
                decisions += 1
        return decisions, getattr(engine.strategies[0], "unproven", -1)  # type: ignore[attr-defined]

    def bare() -> None:
        take = _Sink().take
        for e in events:
            take(e)

    def rate(fn) -> tuple[float, list[float]]:
        rates = []
        for _ in range(args.repeat):
            t = clock()
            fn()
            rates.append(n / (clock() - t))
        return statistics.median(rates), rates

    decisions, unproven = engine_run()
    arb, arb_runs = rate(engine_run)
    floor, floor_runs = rate(bare)
    print(f"real day 2024-01-05: {n:,} inputs, {decisions} decisions "
          f"({unproven} sizings not proven optimal); median of {args.repeat}, {args.clock} time")
    print(f"replay through cross_pool_arb (engine + strategy, in memory): {arb:,.0f} events/s  "
          f"runs {[f'{r:,.0f}' for r in arb_runs]}")
    print(f"bare loop, one method call per event:                         {floor:,.0f} events/s  "
          f"runs {[f'{r:,.0f}' for r in floor_runs]}")
    print(f"ratio to the bare loop: {arb / floor:.3f}")


if __name__ == "__main__":
    main()
