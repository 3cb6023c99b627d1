"""Simulated seconds per wall second of `tapedeck sim` scenarios (the world as wired today: price
path, blocks, oracles, mock books through the engine into the log; no chain execution yet), and
the cost of a scenario start on each chain backend: deploying the Aave v3 market vs restoring a
snapshot. Usage: python benchmarks/bench_sim.py"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tapedeck.adapters.config_files import load_config  # noqa: E402
from tapedeck.sim.recording import run_scenario  # noqa: E402
from tapedeck.sim.scenario import load_scenario  # noqa: E402


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tapedeck-bench-sim-"))
    config = load_config(ROOT / "fixtures" / "config" / "sim-default.toml")
    for name in ("eth-crash", "cex-dex-dislocation", "oracle-jump", "quiet"):
        rates, summary = [], None
        for i in range(3):
            sc = load_scenario(name, seed=7)
            t = time.perf_counter()
            summary = run_scenario(sc, config, tmp / f"{name}-{i}.db", overwrite=True)
            rates.append(sc.duration / (time.perf_counter() - t))
        print(f"sim {name}: {statistics.median(rates):,.0f} simulated s per wall s "
              f"({summary.blocks} blocks, {summary.stats.inputs} inputs; runs {[f'{r:,.0f}' for r in rates]})")
    chain_start()


def chain_start() -> None:
    from tapedeck.sim.chain.aave_v3 import deploy_aave_v3
    from tapedeck.sim.chain.artifacts import ArtifactMissing
    from tapedeck.sim.chain.pyevm import PyEvmChain

    try:
        t = time.perf_counter()
        chain = PyEvmChain()
        deploy_aave_v3(chain.w3)
        deploy = time.perf_counter() - t
    except ArtifactMissing as e:
        print(f"chain start: skipped ({e})")
        return
    snap = chain.snapshot()
    restores = []
    for _ in range(5):
        t = time.perf_counter()
        chain.revert(snap)
        restores.append(time.perf_counter() - t)
    print(f"py-evm scenario start: Aave v3 market deploy {deploy:.2f} s; snapshot restore "
          f"{statistics.median(restores) * 1000:.0f} ms (median of 5)")


if __name__ == "__main__":
    main()
