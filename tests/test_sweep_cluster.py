"""Sweeps on a real local Dask cluster (worker processes): 2 scenarios x 8 seeds x 3 parameter sets
complete, the same sweep gives byte-identical tables, and a task that raises or whose worker process
is killed half-way is retried and the table is still complete. Also a replay sweep and the command.

The scenarios are the shipped cex-dex-dislocation (150 s: the CEX move at 2 min and the pools'
catch-up) and eth-crash (340 s: the first 40 s of the crash), on revm; the parameter is the CEX-DEX
strategy's ``min_profit``, which both exercise."""
from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.runtime import sweep as sw
from tapedeck.runtime.outcomes import StrategyOutcome, eth_price_source, outcomes
from tapedeck.runtime.sweep_report import write_report
from tapedeck.sim.scenario import SCENARIO_DIR

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PARAM = "strategies[4].min_profit"  # cex-dex in the shipped sim config
VALUES = (5_000_000, 100_000_000, 500_000_000)
RAISED, KILLED = "cex-dex-dislocation/s1-seed3", "eth-crash/s2-seed5"


def short(tmp: Path, name: str, duration: int) -> str:
    text = (SCENARIO_DIR / f"{name}.toml").read_text()
    path = tmp / f"{name}.toml"
    path.write_text(re.sub(r"(?m)^duration = .*$", f"duration = {duration}", text, count=1))
    return str(path)


@pytest.fixture(scope="module")
def client() -> Any:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=logging.CRITICAL)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: Any, client: Any) -> tuple[sw.SweepResult, sw.SweepResult, Path, Path]:
    tmp = tmp_path_factory.mktemp("sweep")
    scenarios = [short(tmp, "cex-dex-dislocation", 150), short(tmp, "eth-crash", 340)]
    plan = sw.plan_sweep(scenarios, seeds=sw.parse_seeds("1-8"), sets=[f"{PARAM}={','.join(map(str, VALUES))}"])
    assert len(plan.cells) == 48
    a, b = tmp / "a", tmp / "b"
    faulty = sw.run_sweep(plan, a, client=client, retries=2, faults={RAISED: "raise", KILLED: "kill"})
    clean = sw.run_sweep(plan, b, client=client, retries=2)
    for result, where in ((faulty, a), (clean, b)):
        sw.write_tables(result, where)
        write_report(result, where / "sweep.html")
    return faulty, clean, a, b


def test_the_grid_completes_with_every_row(sweeps: Any) -> None:
    faulty, clean, _, _ = sweeps
    for result in (faulty, clean):
        assert not result.failed
        assert [r["status"] for r in result.rows] == ["ok"] * 48
        assert [(r["scenario"], r["set"], r["seed"]) for r in result.rows] == [
            (s, k, seed) for s in ("cex-dex-dislocation", "eth-crash") for k in range(3) for seed in range(1, 9)]
    summary = sw.summary_rows(clean)
    assert [(r["scenario"], r[PARAM], r["tasks"], r["failed"]) for r in summary] == [
        (s, v, 8 if s != "*" else 16, 0) for s in ("cex-dex-dislocation", "eth-crash", "*") for v in VALUES]
    # the strategy was exercised (at the lowest floor it trades everywhere) and the parameter reached it
    assert all(r["opportunities"] > 0 and r["won"] > 0 for r in summary if r[PARAM] == VALUES[0])
    for scenario in ("cex-dex-dislocation", "eth-crash"):
        assert len({r["pnl_mean"] for r in summary if r["scenario"] == scenario}) == 3, summary


def test_a_task_that_raised_and_one_whose_worker_was_killed_were_retried(sweeps: Any) -> None:
    faulty, clean, a, _ = sweeps
    assert RAISED in faulty.retried and KILLED in faulty.retried
    assert faulty.retried[RAISED][0].startswith("attempt 1 failed: RuntimeError: injected fault")
    assert faulty.retried[KILLED][0] == "attempt 1 did not finish (its worker process died)"
    assert RAISED not in clean.retried and KILLED not in clean.retried
    by_id = {c.id: c for c in faulty.plan.cells}
    for cell_id in (RAISED, KILLED):  # the retry's run replaced the cut one: sealed, and it verifies
        from tapedeck.runtime.strategy_loader import build_engine
        from tapedeck.runtime.verify import VERIFIED, verify

        with EventLog.open(a / by_id[cell_id].run) as log:
            assert log.manifest.ended == "clean"
            assert verify(log, build_engine(log.manifest.config)).status == VERIFIED


def test_the_same_sweep_gives_byte_identical_tables(sweeps: Any) -> None:
    _, _, a, b = sweeps
    for name in ("sweep.csv", "sweep.parquet", "sweep-summary.csv", "sweep-summary.parquet", "sweep.html"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    rows = [line.split(",") for line in (a / "sweep.csv").read_text().splitlines()[1:]]
    for scenario in ('"cex-dex-dislocation"', '"eth-crash"'):
        for k in "012":  # each seed is its own run (two sets may decide alike where neither floor binds)
            assert len({r[-2] for r in rows if r[0] == scenario and r[3] == k}) == 8


def test_rows_are_the_recorded_runs(sweeps: Any) -> None:
    """Each row's figures are what its run file's events fold to, and the run ran its set's value."""
    _, clean, _, b = sweeps
    by_index = {c.index: c for c in clean.plan.cells}
    for i, row in enumerate(clean.rows):
        cell = by_index[i]
        with EventLog.open(b / row["run"]) as log:
            assert log.manifest.seed == row["seed"]
            assert log.manifest.config["strategies"][4]["min_profit"] == VALUES[row["set"]]
            if i % 7:
                continue
            found = outcomes(log.events(), eth_price_source(log.manifest.config)).get("cex-dex",
                                                                                     StrategyOutcome("cex-dex"))
            assert log.integrity is not None and log.integrity.digest == row["digest"]
        assert (row["pnl"], row["won"], row["lost"], row["opportunities"]) == (
            found.pnl, found.won, found.lost, found.opportunities)
        assert cell.strategy == "cex-dex"


def test_a_replay_sweep_varies_the_config_over_one_log(tmp_path: Path, client: Any) -> None:
    from tapedeck.adapters.config_files import load_config
    from tapedeck.sim.recording import run_scenario
    from tapedeck.sim.scenario import load_scenario

    log = tmp_path / "tape.db"
    run_scenario(load_scenario(short(tmp_path, "cex-dex-dislocation", 180)),
                 load_config(ROOT / "fixtures" / "config" / "sim-default.toml"), log)
    config = tmp_path / "arb.toml"
    config.write_text("""
[risk]
default_max_notional = 250_000_000_000
default_max_outstanding = 1_000_000_000_000

[[strategies]]
kind = "cross_pool_arb"
name = "arb"
v2_pool = "uniswap-v2-usdc-weth"
v3_pool = "uniswap-v3-usdc-weth-005"
v3_fee_pips = 500
v3_tick_spacing = 10
v2_fee_bps = 30
min_profit = 1_000_000
max_amount_in = 100_000_000_000  # as the sim config: sized across ticks, the whole gap is past the risk limit
gas_units = 180_000
gas_price_wei = 30_000_000_000
act = true
venue = "ethereum"

[outcomes]
eth_price = "oracle:eth-usd"
""")
    plan = sw.plan_sweep([str(log)], seeds=[1, 2], sets=["strategies[0].min_profit=1_000_000,1_000_000_000_000"],
                         config_path=str(config))
    assert [c.id for c in plan.cells] == ["tape/s0", "tape/s1"] and plan.notes  # seeds do not apply to a log
    result = sw.run_sweep(plan, tmp_path / "out", client=client)
    low, high = result.rows
    assert low["status"] == high["status"] == "ok" and low["seed"] is None
    assert low["opportunities"] > 0 and low["intents"] > 0 and low["won"] == 0  # paper fills are not races won
    rate = (low["priced_fills"] - low["losing_fills"]) / low["priced_fills"]  # the fills' PnL sign, not fills
    assert low["priced_fills"] > 0 and sw.task_rows(result)[0]["win_rate"] == round(rate, 6)
    assert high["intents"] == 0 and high["pnl"] == 0  # a floor no gap clears: nothing is acted on
    with EventLog.open(tmp_path / "out" / low["run"]) as rec:
        assert rec.manifest.mode == "replay" and rec.manifest.parent == str(log)


def test_the_command_runs_a_local_cluster_prints_and_writes(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "tapedeck"
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "tapedeck.cli"]), "sweep",
           short(tmp_path, "cex-dex-dislocation", 150), "--seeds", "1-2", "--set", f"{PARAM}=5_000_000,500_000_000",
           "--workers", "2", "--out", str(tmp_path / "out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "tasks (PnL in USDC" in out and "per parameter set" in out and "runs/cex-dex-dislocation/s1-seed2.db" in out
    assert "4/4 tasks done" in proc.stderr and "on a local cluster with 2 workers" in proc.stderr
    for name in ("sweep.csv", "sweep.parquet", "sweep-summary.csv", "sweep-summary.parquet", "sweep.html"):
        assert (tmp_path / "out" / name).is_file(), name
    assert len((tmp_path / "out" / "sweep.csv").read_text().splitlines()) == 5
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.startswith("Error: --out") and "--force" in again.stderr


def test_the_command_submits_to_an_existing_scheduler(tmp_path: Path, client: Any) -> None:
    exe = Path(sys.executable).parent / "tapedeck"
    address = client.scheduler.address
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "tapedeck.cli"]), "sweep",
           short(tmp_path, "cex-dex-dislocation", 150), "--seeds", "3", "--set", f"{PARAM}=5_000_000,500_000_000",
           "--scheduler", address, "--out", str(tmp_path / "out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"on {address} with 2 workers" in proc.stderr and "2/2 tasks done" in proc.stderr
    rows = (tmp_path / "out" / "sweep.csv").read_text().splitlines()[1:]
    assert [r.split(",")[:4] for r in rows] == [['"cex-dex-dislocation"', '"sim"', "3", "0"],
                                                 ['"cex-dex-dislocation"', '"sim"', "3", "1"]]
