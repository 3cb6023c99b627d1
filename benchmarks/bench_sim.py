"""Simulated seconds per wall second of `tapedeck sim` scenarios, per chain backend, and the cost of a
scenario start (Aave v3 market deploy vs snapshot restore).

Sweeps run the sim thousands of times, so its speed is a product figure (issue 9: eth-crash seed 7
was 31 sim s/wall s on py-evm and 87 on anvil; target >= 100 and >= 300). Each run also prints this
process's CPU seconds: the box is shared, and CPU time moves less with the load than wall time;
anvil's own CPU, in its node process, is printed beside it (the node is a child, reaped at the
run's end). ``--profile FILE`` writes a cProfile of the first run per backend (``FILE.<backend>``).

Usage: python benchmarks/bench_sim.py [--backends pyevm,anvil,revm] [--scenario eth-crash] [--seed 7]
       [--runs 1] [--others] [--no-start] [--profile FILE] [--tree DIR]
It only uses ``run_scenario`` and ``load_scenario``, so an older tree runs under it too (before/after):
``--tree DIR`` imports the ``tapedeck`` package from ``DIR/tapedeck`` (it must hold build/contracts; e.g. ``git archive --prefix=tapedeck/
REV | tar -x -C DIR``, with ``node_modules`` and ``build/contracts`` linked or copied into it) instead of
the one installed, with that tree's fixtures; each process's runs after its first meet warm caches
(the world cache, artifacts, imports), so compare medians of as many runs."""
from __future__ import annotations

import argparse
import cProfile
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

if "--tree" in sys.argv[:-1]:  # before anything imports tapedeck
    sys.path.insert(0, str(Path(sys.argv[sys.argv.index("--tree") + 1]).resolve()))
import tapedeck  # noqa: E402

ROOT = Path(tapedeck.__file__).resolve().parent
if not any((ROOT / "build" / "contracts").glob("*.json")):  # e.g. a `git archive` tree: not compiled
    sys.exit(f"{ROOT} has no build/contracts/*.json: without the compiled executor the shipped liquidator's "
             f"intents fail and the world differs (other txs, other inputs); run `make contracts` there or "
             f"copy build/contracts beside it")

from tapedeck.adapters.config_files import load_config  # noqa: E402
from tapedeck.sim.recording import run_scenario  # noqa: E402
from tapedeck.sim.scenario import load_scenario  # noqa: E402


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def one(name: str, seed: int, chain: str, out: Path, profile: str | None) -> tuple[float, float, object, float]:
    """(wall s, this process's CPU s, the summary, the CPU s of its children: anvil's node)."""
    config = load_config(ROOT / "fixtures" / "config" / "sim-default.toml")
    sc = load_scenario(name, seed=seed)
    prof = cProfile.Profile() if profile else None
    wall, cpu, node = time.perf_counter(), time.process_time(), _children_cpu()
    if prof is not None:
        prof.enable()
    summary = run_scenario(sc, config, out, overwrite=True, chain=chain)
    if prof is not None:
        prof.disable()
        prof.dump_stats(profile)
    return time.perf_counter() - wall, time.process_time() - cpu, summary, _children_cpu() - node


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", default="pyevm,anvil,revm")
    ap.add_argument("--scenario", default="eth-crash")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--runs", type=int, default=1, help="repetitions, interleaved across the backends")
    ap.add_argument("--others", action="store_true", help="also the scenarios without a chain (py-evm only)")
    ap.add_argument("--no-start", action="store_true", help="skip the deploy/restore figures")
    ap.add_argument("--profile", default=None)
    ap.add_argument("--tree", default=None, help="a directory holding an older tapedeck/ to measure instead")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tapedeck-bench-sim-"))
    chains = args.backends.split(",")
    print(f"tapedeck from {ROOT}; load average (1/5/15 min) before: {os.getloadavg()}", flush=True)
    found: dict[str, tuple[list[float], list[float], object]] = {c: ([], [], None) for c in chains}
    for i in range(args.runs):  # repetitions interleaved: each backend sees the same spread of load
        for chain in chains:
            profile = f"{args.profile}.{chain}" if args.profile and i == 0 else None
            wall, cpu, summary, node = one(args.scenario, args.seed, chain, tmp / f"{chain}-{i}.db", profile)
            duration = summary.simulated_seconds  # type: ignore[attr-defined]
            found[chain][0].append(duration / wall)
            found[chain][1].append(cpu)
            found[chain] = (found[chain][0], found[chain][1], summary)
            print(f"  {chain} run {i + 1}: wall {wall:.2f} s, this process's CPU {cpu:.2f} s"
                  f"{f', the node CPU {node:.2f} s' if node else ''}"
                  f"{' (profiled)' if profile else ''}; load {os.getloadavg()[0]:.1f}", flush=True)
    for chain in chains:
        rates, cpus, s = found[chain]
        print(f"sim {args.scenario} seed {args.seed} on {chain}: {statistics.median(rates):,.1f} simulated s per wall s "
              f"(median of {len(rates)}: {[f'{r:,.1f}' for r in rates]}); {s.simulated_seconds / statistics.median(cpus):,.1f} "  # type: ignore[attr-defined]
              f"simulated s per CPU s of this process; {s.blocks} blocks, {s.chain_txs} agent txs, "  # type: ignore[attr-defined]
              f"{s.liquidations} liquidations, {s.stats.inputs} inputs", flush=True)  # type: ignore[attr-defined]
    if args.others:
        for name in ("cex-dex-dislocation", "oracle-jump", "quiet"):
            for chain in chains:
                wall, cpu, s, _node = one(name, args.seed, chain, tmp / f"{name}-{chain}.db", None)
                print(f"sim {name} on {chain}: {s.simulated_seconds / wall:,.0f} simulated s per wall s, "  # type: ignore[attr-defined]
                      f"{s.simulated_seconds / cpu:,.0f} per CPU s")  # type: ignore[attr-defined]
    if not args.no_start:
        chain_start()


def chain_start(chains: tuple[str, ...] = ("pyevm", "revm")) -> None:
    """Aave v3 market deploy vs restoring a snapshot taken after it (undoing a block of 10 transfers
    each time), on the in-process backends (anvil's figures: bench_chain.py)."""
    from tapedeck.sim.chain.aave_v3 import deploy_aave_v3
    from tapedeck.sim.chain.artifacts import ArtifactMissing
    from tapedeck.sim.chain.pyevm import ChainTx
    from tapedeck.sim.recording import chain_backend

    for kind in chains:
        try:
            t, cpu = time.perf_counter(), time.process_time()
            chain = chain_backend(kind, 1_700_000_000)
            deploy_aave_v3(chain.w3)
            deploy, deploy_cpu = time.perf_counter() - t, time.process_time() - cpu
        except ArtifactMissing as e:
            print(f"chain start: skipped ({e})")
            return
        snap = chain.snapshot()
        me, other = chain.accounts[:2]
        restores = []
        for i in range(5):
            n = chain.w3.eth.get_transaction_count(me)
            chain.mine_block([ChainTx(me, n + j, 21_000, 10**11, 10**9, other, b"", 1) for j in range(10)],
                             1_700_001_000 + i)
            t = time.perf_counter()
            chain.revert(snap)
            restores.append(time.perf_counter() - t)
        print(f"{kind} scenario start: Aave v3 market deploy {deploy:.2f} s ({deploy_cpu:.2f} CPU s); snapshot "
              f"restore {statistics.median(restores) * 1000:.1f} ms (median of 5)")


if __name__ == "__main__":
    main()
