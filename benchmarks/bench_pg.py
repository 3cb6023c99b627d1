"""The PostgreSQL store beside SQLite on bench_core's synthetic tape: record, verify, copy.

Record: append every event of the tape into a new run and close it (durable group commits of
16,384 events, the default), events/s. Verify: ``replay --verify``'s ``verify`` (every segment's
chain checked, a fresh engine re-deciding each input) on the recorded run with its decisions,
events/s. Copy: ``tapedeck copy`` SQLite -> PostgreSQL, events/s. Needs a PostgreSQL server:
``$TAPEDECK_PG_URL`` (a maintenance database URL) or the local test cluster (``make pg``); a
database ``tapedeck_bench`` is created there and dropped after. Prints the median of --repeat runs.
Usage: python benchmarks/bench_pg.py [--events N] [--repeat R]
"""
from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
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
    finally:
        with psycopg.connect(base, autocommit=True) as c:
            c.execute("DROP DATABASE IF EXISTS tapedeck_bench WITH (FORCE)")


if __name__ == "__main__":
    main()
