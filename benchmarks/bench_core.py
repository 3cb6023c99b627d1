"""Core throughput on a synthetic tape: record into the SQLite log, replay --verify, engine alone.

The tape: N top-of-book updates alternating between two venues quoting one instrument around a
seeded random walk, with a spread-check strategy (crossed books are rare, as in real markets).
Prints the median events/s of several repetitions for each figure, plus the real-day replay if
the shared recordings are present. Usage: python benchmarks/bench_core.py [--events N] [--repeat R]
"""
from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tapedeck.adapters.eventlog import EventLog, Manifest  # noqa: E402
from tapedeck.runtime.loop import drive  # noqa: E402
from tapedeck.runtime.verify import verify  # noqa: E402
from tapedeck.domain import events as ev  # noqa: E402
from tapedeck.domain.strategies import build_engine  # noqa: E402

CONFIG = {
    "risk": {"default_max_notional": 10**12, "default_max_outstanding": 10**13},
    "strategies": [{"kind": "spread", "name": "spread", "min_edge": "0.05"}],
}


def synthetic_tape(n: int, seed: int = 1) -> list[ev.Event]:
    rng = random.Random(seed)
    mid = 230_000  # cents
    out: list[ev.Event] = []
    for i in range(n):
        mid += rng.choice((-1, 0, 0, 1))
        venue = "binance" if i % 2 else "okx"
        skew = 9 if rng.random() < 0.002 else 0  # a rare dislocation crosses the books
        out.append(ev.QuoteUpdated(ts=1_700_000_000_000_000_000 + i * 1_000_000, source="bench", venue=venue,
                                   instrument="ETH-USDT", bid=mid - 1 + skew, bid_size=rng.randint(1, 50),
                                   ask=mid + 1 + skew, ask_size=rng.randint(1, 50), price_decimals=2, size_decimals=1))
    return out


def median_rate(fn, n: int, repeat: int) -> tuple[float, list[float]]:
    rates = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates), rates


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n, repeat = args.events, args.repeat
    tape = synthetic_tape(n)
    gc.collect()
    gc.freeze()  # the tape is the source, not the work measured: keep the collector from rescanning it
    tmp = Path(tempfile.mkdtemp(prefix="tapedeck-bench-"))
    print(f"synthetic tape: {n:,} QuoteUpdated events, 2 venues, spread strategy; median of {repeat}")

    def record() -> None:
        log = EventLog.create(tmp / "rec.db", Manifest(run_id="", mode="bench"), overwrite=True)
        for e in tape:
            log.append(e)
        log.close(ended="clean")

    rate, rates = median_rate(record, n, repeat)
    print(f"record (durable group commits into SQLite): {rate:,.0f} events/s  runs {[f'{r:,.0f}' for r in rates]}")

    def engine_only() -> None:
        engine = build_engine(CONFIG)
        handle = engine.handle
        seq = 0
        for e in tape:
            seq += 1
            handle(e)

    class Bare:
        def on(self, e: ev.Event) -> None:
            pass

    def loop_floor() -> None:  # the floor of any engine: a Python loop with one method call per event
        on = Bare().on
        for e in tape:
            on(e)

    numbered = [ev.with_seq(e, i + 1) for i, e in enumerate(tape)]
    tape_backup, tape[:] = list(tape), numbered
    rate, rates = median_rate(engine_only, n, repeat)
    floor, _ = median_rate(loop_floor, n, repeat)
    tape[:] = tape_backup
    print(f"engine alone, in memory:                     {rate:,.0f} events/s  runs {[f'{r:,.0f}' for r in rates]}"
          f"  ({rate / floor:.2f}x the floor: a bare loop with one method call, {floor:,.0f}/s)")

    run_path = tmp / "run.db"
    log = EventLog.create(run_path, Manifest(run_id="", mode="bench", config=CONFIG), overwrite=True)
    stats = drive(tape, build_engine(CONFIG), log)
    log.close(ended="clean")
    total = stats.inputs + stats.decisions
    print(f"  (the recorded run holds {stats.inputs:,} inputs and {stats.decisions:,} decisions)")

    def verify_run() -> None:
        log = EventLog.open(run_path)
        result = verify(log, build_engine(CONFIG))
        log.close()
        assert result.ok, result.divergence

    def scan_floor() -> None:  # the floor of any verify: read every stored segment, decode it in one call
        import sqlite3

        from tapedeck.adapters.eventlog import _events_part
        from tapedeck.domain import codec

        db = sqlite3.connect(run_path)
        for version, topic, state in db.execute(
                "SELECT originator_version, topic, state FROM stored_events ORDER BY originator_id, originator_version"):
            if topic.startswith("segment.v"):
                codec.decode_segment(_events_part(run_path, version, topic, state))
        db.close()

    rate, rates = median_rate(verify_run, total, repeat)
    floor, _ = median_rate(scan_floor, total, repeat)
    print(f"replay --verify from the log:                {rate:,.0f} events/s  runs {[f'{r:,.0f}' for r in rates]}"
          f"  ({rate / floor:.2f}x the floor: a raw SQLite scan + one msgspec decode per segment, {floor:,.0f}/s)")

    real_day(tmp)
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()


def real_day(tmp: Path) -> None:
    from tapedeck.runtime.demo import V2_FILE, V3_DIR, V3_FILE, data_dir
    from tapedeck.runtime.importers import import_files
    from tapedeck.adapters.config_files import DEFAULT_CONFIG, load_config
    from tapedeck.runtime.loop import replay_log

    data = data_dir()
    if not (data / V3_DIR / V3_FILE).is_file():
        print(f"real day: skipped, no recordings at {data}")
        return
    t = time.perf_counter()
    import_files("uniswap-v3-logs", [str(data / V3_DIR / V3_FILE)], tmp / "day.db")
    import_files("uniswap-v2-reserves", [str(data / V2_FILE)], tmp / "day.db", from_block=18937382, to_block=18944480,
                 pool="0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc")
    t_import = time.perf_counter() - t
    config = load_config(DEFAULT_CONFIG)
    src = EventLog.open(tmp / "day.db")
    t = time.perf_counter()
    stats = replay_log(src, config, build_engine(config), str(tmp / "dayrun.db"), overwrite=True)
    t_replay = time.perf_counter() - t
    src.close()
    run = EventLog.open(tmp / "dayrun.db")
    t = time.perf_counter()
    result = verify(run, build_engine(config))
    t_verify = time.perf_counter() - t
    run.close()
    print(f"real day 2024-01-05 (USDC/WETH V3 logs + V2 reserves): import {t_import:.2f}s; replay through "
          f"cross_pool_arb {t_replay:.2f}s for {stats.inputs:,} inputs, {stats.decisions:,} decisions; "
          f"replay --verify {t_verify:.2f}s ({'ok' if result.ok else 'DIVERGED'})")


if __name__ == "__main__":
    main()
