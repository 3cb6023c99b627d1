"""The PostgreSQL store beside SQLite on bench_core's synthetic tape: record, verify, copy.

Record: append every event of the tape into a new run and close it (durable group commits of
16,384 events, the default), events/s. Verify: ``replay --verify``'s ``verify`` (every segment's
chain checked, a fresh engine re-deciding each input) on the recorded run with its decisions,
events/s. Copy: ``tapedeck copy`` SQLite -> PostgreSQL, events/s. Needs a PostgreSQL server:
``$TAPEDECK_PG_URL`` (a maintenance database URL) or the local test cluster (``make pg``); a
database ``tapedeck_bench`` is created there and dropped after. Prints the median of --repeat runs.
Follower lag: a writer appends wall-clock-stamped quotes at --rate events/s (default 50,000) for
--seconds, committing by its max_delay_ms (the default 200, and 20); a follower in another process
(``runtime.roles.Follower``: the notification log, chain-checked, polled every 10 ms) reads each
segment; lag = read time - append time of each event, p50/p99/max.
Usage: python benchmarks/bench_pg.py [--events N] [--repeat R] [--rate R] [--seconds S]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
import psycopg  # noqa: E402

from benchmarks.bench_core import CONFIG, median_rate, synthetic_tape  # noqa: E402
from tapedeck.adapters.eventlog import EventLog, Manifest  # noqa: E402
from tapedeck.adapters.pg_eventlog import PgEventLog  # noqa: E402
from tapedeck.domain.strategies import build_engine  # noqa: E402
from tapedeck.runtime.loop import drive  # noqa: E402
from tapedeck.runtime.store_copy import copy_run  # noqa: E402
from tapedeck.runtime.verify import verify  # noqa: E402


def server() -> str:
    url = os.environ.get("TAPEDECK_PG_URL")
    if url:
        return url
    out = subprocess.run(["bash", str(ROOT / ".ci" / "pg-cluster")], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def follow(url: str) -> None:
    """The follower process of the lag figure: every event's lag from its append (its ``ts`` is the
    writer's wall clock then) to the moment its segment was read here; prints p50/p99/max in ms."""
    from tapedeck.runtime.roles import Follower, wait_for

    lags = []
    follower = Follower(wait_for(url))
    print("ready", flush=True)  # the writer starts now: the lag is not this process's start-up
    for _nid, _first, items in follower.follow():
        now = time.time_ns()
        lags.extend(now - e.ts for _t, e in items)
    lags.sort()
    pick = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))] / 1e6  # noqa: E731
    print(json.dumps({"events": len(lags), "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": lags[-1] / 1e6}))


def lag(db: str, rate: int, seconds: float, max_delay_ms: int) -> None:
    """A writer appending at ``rate`` events/s (wall-clock stamped), a role's follower in another process."""
    url = f"{db}?run=lag{max_delay_ms}"
    writer = PgEventLog.create(url, Manifest(run_id="", mode="bench"), overwrite=True, max_delay_ms=max_delay_ms)
    proc = subprocess.Popen([sys.executable, __file__, "--follow", url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    template = synthetic_tape(1)[0]
    n, start, step = int(rate * seconds), time.perf_counter(), 500
    for i in range(0, n, step):
        for _ in range(step):
            writer.append(msgspec.structs.replace(template, ts=time.time_ns()))
        ahead = start + (i + step) / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
    achieved = n / (time.perf_counter() - start)
    writer.close(ended="clean")
    got = json.loads(proc.communicate(timeout=600)[0].strip().splitlines()[-1])
    print(f"follower lag  max_delay_ms={max_delay_ms:<4} at {achieved:,.0f} events/s (asked {rate:,}): "
          f"p50 {got['p50_ms']:.0f} ms, p99 {got['p99_ms']:.0f} ms, max {got['max_ms']:.0f} ms "
          f"over {got['events']:,} events")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rate", type=int, default=50_000, help="follower lag: the writer's events/s")
    ap.add_argument("--seconds", type=float, default=6.0, help="follower lag: how long the writer writes")
    ap.add_argument("--follow", default=None, help=argparse.SUPPRESS)  # the follower process
    args = ap.parse_args()
    if args.follow:
        follow(args.follow)
        return
    n, repeat = args.events, args.repeat
    base = server()
    with psycopg.connect(base, autocommit=True) as c:
        c.execute("DROP DATABASE IF EXISTS tapedeck_bench WITH (FORCE)")
        c.execute("CREATE DATABASE tapedeck_bench")
    db = base.rsplit("/", 1)[0] + "/tapedeck_bench"
    tmp = Path(tempfile.mkdtemp(prefix="tapedeck-bench-pg-"))
    tape = synthetic_tape(n)
    gc.collect()
    gc.freeze()
    print(f"synthetic tape (bench_core): {n:,} QuoteUpdated events, spread strategy; median of {repeat}; "
          f"PostgreSQL at {db.split('@')[-1]}")
    stores = {"sqlite": (EventLog, lambda name: tmp / f"{name}.db"),
              "postgresql": (PgEventLog, lambda name: f"{db}?run={name}")}
    try:
        for kind, (cls, where) in stores.items():
            def record() -> None:
                log = cls.create(where("rec"), Manifest(run_id="", mode="bench"), overwrite=True)
                for e in tape:
                    log.append(e)
                log.close(ended="clean")

            rate, rates = median_rate(record, n, repeat)
            print(f"record  {kind:<10}  {rate:>12,.0f} events/s  runs {[f'{r:,.0f}' for r in rates]}")
            log = cls.create(where("run"), Manifest(run_id="", mode="bench", config=CONFIG), overwrite=True)
            stats = drive(tape, build_engine(CONFIG), log)
            log.close(ended="clean")
            total = stats.inputs + stats.decisions

            def verify_run() -> None:
                log = cls.open(where("run"))
                result = verify(log, build_engine(CONFIG))
                log.close()
                assert result.ok, result.divergence

            rate, rates = median_rate(verify_run, total, repeat)
            print(f"verify  {kind:<10}  {rate:>12,.0f} events/s  runs {[f'{r:,.0f}' for r in rates]}"
                  f"  ({stats.inputs:,} inputs + {stats.decisions:,} decisions)")

        def copy() -> None:
            copy_run(str(tmp / "run.db"), f"{db}?run=copied", overwrite=True)

        rate, rates = median_rate(copy, total, repeat)
        print(f"copy    sqlite -> postgresql  {rate:>12,.0f} events/s  runs {[f'{r:,.0f}' for r in rates]}"
              "  (read checked, written, read back checked)")
        for max_delay_ms in (200, 20):
            lag(db, args.rate, args.seconds, max_delay_ms)
    finally:
        with psycopg.connect(base, autocommit=True) as c:
            c.execute("DROP DATABASE IF EXISTS tapedeck_bench WITH (FORCE)")


if __name__ == "__main__":
    main()
