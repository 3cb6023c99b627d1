"""Report generation time on the 1M-event tape of bench_core.py (and what else reads a whole run).

The tape: ``bench_core.synthetic_tape`` (N top-of-book updates on two venues, a spread strategy
deciding on the rare crossed books), recorded once by ``drive`` into a run. Figures: the HTML
report (``tapedeck report``: a full checked read, the quotes skipped undecoded, the figures folded
and the page written), the dashboard's first poll over the same run, ``export --format parquet``
(every event decoded, one file per type), and one query on a per-type SQL view. Median of
``--repeat`` runs each. Usage: python benchmarks/bench_report.py [--events N] [--repeat R]
"""
from __future__ import annotations

import argparse
import gc
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_core import CONFIG, synthetic_tape  # noqa: E402

from tapedeck.adapters.event_views import write_parquet  # noqa: E402
from tapedeck.adapters.eventlog import EventLog, Manifest  # noqa: E402
from tapedeck.domain.strategies import build_engine  # noqa: E402
from tapedeck.runtime.dashboard import Dashboard  # noqa: E402
from tapedeck.runtime.loop import drive  # noqa: E402
from tapedeck.runtime.report_html import write_report  # noqa: E402


def timed(fn, repeat: int) -> tuple[float, list[float]]:
    runs = []
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs), runs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tapedeck-bench-report-"))
    run = tmp / "run.db"
    t = time.perf_counter()
    tape = synthetic_tape(args.events)
    log = EventLog.create(run, Manifest(run_id="", mode="bench", config=CONFIG))
    stats = drive(tape, build_engine(CONFIG), log)
    log.close(ended="clean")
    del tape
    total = stats.inputs + stats.decisions + stats.executions
    print(f"tape: {stats.inputs:,} inputs, {stats.decisions:,} decisions, {stats.executions:,} executions "
          f"({total:,} events, {run.stat().st_size / 2**20:,.0f} MiB) recorded in {time.perf_counter() - t:.1f} s; "
          f"median of {args.repeat}")

    def report() -> None:
        with EventLog.open(run) as log:
            write_report(log, tmp / "report.html")

    s, runs = timed(report, args.repeat)
    size = (tmp / "report.html").stat().st_size
    print(f"tapedeck report (checked full read, figures, page of {size / 2**20:.1f} MiB): {s:.2f} s "
          f"({total / s:,.0f} events/s)  runs {[f'{r:.2f}' for r in runs]}")

    def dashboard() -> None:
        with EventLog.open(run) as log:
            Dashboard(log).update(-1)

    s, runs = timed(dashboard, args.repeat)
    print(f"dashboard first poll (read all, fold, figures JSON): {s:.2f} s  runs {[f'{r:.2f}' for r in runs]}")

    def parquet() -> None:
        with EventLog.open(run) as log:
            write_parquet(log, tmp / "pq")

    s, runs = timed(parquet, args.repeat)
    print(f"export --format parquet (every event decoded): {s:.2f} s ({total / s:,.0f} events/s)  "
          f"runs {[f'{r:.2f}' for r in runs]}")

    def view_query() -> None:
        with sqlite3.connect(run) as c:
            c.execute("SELECT count(*), max(bid) FROM QuoteUpdated WHERE venue = 'okx' AND bid_size > 25").fetchone()

    s, runs = timed(view_query, args.repeat)
    print(f"view query (QuoteUpdated where venue = 'okx' and bid_size > 25, all {stats.inputs:,} rows scanned): "
          f"{s:.2f} s  runs {[f'{r:.2f}' for r in runs]}")
    for p in sorted(tmp.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    tmp.rmdir()


if __name__ == "__main__":
    main()
