"""Peak memory of ``tapedeck replay RUN --verify`` against the size of the run.

Records the synthetic tape of ``bench_core`` (spread strategy) at several lengths, then verifies
each in a fresh process and prints its peak resident set (``ru_maxrss`` of the child). Verify
streams the log segment by segment, so the peak should not grow with the number of events.
Usage: python benchmarks/bench_verify_memory.py [--events 200000,1000000]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_core import CONFIG, synthetic_tape  # noqa: E402

from tapedeck.adapters.eventlog import EventLog, Manifest  # noqa: E402
from tapedeck.domain.strategies import build_engine  # noqa: E402
from tapedeck.runtime.loop import drive  # noqa: E402


def record(n: int, path: str) -> None:
    log = EventLog.create(path, Manifest(run_id="", mode="bench", config=CONFIG), overwrite=True)
    drive(synthetic_tape(n), build_engine(CONFIG), log)
    log.close(ended="clean")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", default="200000,1000000")
    ap.add_argument("--record", nargs=2, metavar=("N", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.record:
        return record(int(args.record[0]), args.record[1])
    tmp = Path(tempfile.mkdtemp(prefix="tapedeck-mem-"))
    for n in (int(x) for x in args.events.split(",")):
        path = tmp / f"run-{n}.db"
        # recorded in a child of its own: a process's peak RSS counts what its parent held when it
        # forked (Linux keeps the high-water mark across exec), so the parent never holds a tape
        subprocess.run([sys.executable, __file__, "--record", str(n), str(path)], check=True)
        child = ("import resource, sys; from tapedeck.cli import main; sys.argv = ['tapedeck', 'replay', sys.argv[1], "
                 "'--verify']\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
                 "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        out = subprocess.run([sys.executable, "-c", child, str(path)], capture_output=True, text=True)
        lines = out.stdout.strip().splitlines()
        peak = int(lines[-1].split()[1]) if lines and lines[-1].startswith("peak") else -1
        status = next((ln for ln in lines if ln.startswith(("verified", "diverged"))), out.stderr.strip()[-80:])
        print(f"{n:>9,} events ({path.stat().st_size / 2**20:,.0f} MiB log): verify peak RSS "
              f"{peak / 1024:,.0f} MiB  [{status[:70]}]")
        path.unlink()
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()


if __name__ == "__main__":
    main()
