"""Sweep throughput: tasks per minute on the local Dask cluster against the same tasks in a plain loop
in one process (``runtime.sweep.run_loop``: each cell's sim, record and fold, one after another).

The cells are the sweep test's: the CEX-DEX strategy's ``min_profit`` over scenarios shortened to
the part that exercises it (cex-dex-dislocation 180 s, eth-crash 400 s), on revm. The cluster
figure includes starting the cluster and its workers' first imports (what a user waits for); the
loop's includes this process's first imports only once (it is warmed by one cell first, so the
loop is the best a single process does). Both tables must be identical (checked, not timed). The
box is shared: the load average is printed with the figures, and so is the CPU time of the worker
processes and of the loop, which moves less with the load than wall time (the idle-core estimate
is workers x tasks per worker CPU-minute).

Usage: python benchmarks/bench_sweep.py [--seeds 1-8] [--workers N] [--values 5000000,100000000,500000000]
       [--scenarios cex-dex-dislocation:180,eth-crash:400] [--scheduler ADDRESS]
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tapedeck.runtime import sweep as sw  # noqa: E402
from tapedeck.sim.scenario import SCENARIO_DIR  # noqa: E402


def short(tmp: Path, name: str, duration: int) -> str:
    text = (SCENARIO_DIR / f"{name}.toml").read_text()
    path = tmp / f"{name}.toml"
    path.write_text(re.sub(r"(?m)^duration = .*$", f"duration = {duration}", text, count=1))
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="1-8")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--values", default="5000000,100000000,500000000")
    ap.add_argument("--scenarios", default="cex-dex-dislocation:180,eth-crash:400")
    ap.add_argument("--scheduler", default=None)
    ap.add_argument("--no-loop", action="store_true", help="only the cluster")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tapedeck-bench-sweep-"))
    scenarios = [short(tmp, n, int(d)) for n, d in (s.split(":") for s in args.scenarios.split(","))]
    plan = sw.plan_sweep(scenarios, seeds=sw.parse_seeds(args.seeds),
                         sets=[f"strategies[4].min_profit={args.values}"])
    n = len(plan.cells)
    print(f"{n} tasks ({len(plan.sources)} scenarios x {len(plan.sets)} sets x {len(plan.seeds)} seeds); "
          f"{os.cpu_count()} cores; load average before {os.getloadavg()}", flush=True)

    import logging

    from distributed import Client, LocalCluster

    t, cpu = time.perf_counter(), time.process_time()
    cluster = None if args.scheduler else LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
        silence_logs=logging.ERROR)
    client = Client(args.scheduler or cluster)
    started = time.perf_counter() - t
    result = sw.run_sweep(plan, tmp / "cluster", client=client)
    cluster_wall = time.perf_counter() - t
    workers_cpu = sum(client.run(time.process_time).values())  # each worker process's CPU since it started
    client.close()
    if cluster is not None:
        cluster.close()
    where = args.scheduler or f"local cluster, {args.workers} worker processes"
    print(f"cluster ({where}): {n} tasks in {cluster_wall:.1f} s wall = {n / cluster_wall * 60:,.1f} tasks/min "
          f"(of which cluster start {started:.1f} s); CPU: workers {workers_cpu:.1f} s "
          f"({workers_cpu / n:.2f} s per task, their imports included), this process (scheduler, client) "
          f"{time.process_time() - cpu:.1f} s; load {os.getloadavg()[0]:.1f}", flush=True)
    if args.no_loop:
        return
    sw.run_cell(plan.cells[0], str(tmp / "warm"))  # this process's first imports and chain set-up
    t, cpu = time.perf_counter(), time.process_time()
    rows = sw.run_loop(plan, tmp / "loop")
    loop_wall, loop_cpu = time.perf_counter() - t, time.process_time() - cpu
    print(f"loop (one process): {n} tasks in {loop_wall:.1f} s wall = {n / loop_wall * 60:,.1f} tasks/min "
          f"(CPU {loop_cpu:.1f} s, {loop_cpu / n:.2f} s per task); load {os.getloadavg()[0]:.1f}", flush=True)
    same = [{k: v for k, v in r.items()} for r in rows] == result.rows
    print(f"speed-up {loop_wall / cluster_wall:.2f}x wall with {args.workers} workers; CPU per task cluster/loop "
          f"{workers_cpu / loop_cpu:.2f}x; tables identical: {same}")
    if not args.scheduler:  # what the cluster would do on idle cores: workers x tasks per CPU-minute
        print(f"idle-core estimate: cluster {args.workers * 60 * n / workers_cpu:,.1f} tasks/min, "
              f"loop {60 * n / loop_cpu:,.1f} tasks/min")


if __name__ == "__main__":
    main()
