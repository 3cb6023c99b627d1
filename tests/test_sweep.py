"""Sweeps without a cluster: the grid, the --set paths checked against the config schema before any
task, the tables (exact PnL, nearest-rank percentiles, byte-identical files) and the report.

The cluster runs (Dask, retries, a killed worker) are in ``test_sweep_cluster.py``."""
from __future__ import annotations

import io
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tapedeck.runtime import sweep as sw
from tapedeck.runtime.sweep_report import DIV_PNL, DIV_TABLE, DIV_WIN, render

ARB = "strategies[4].min_profit"  # the shipped sim config's cex_dex_arb entry (cex-dex)


def plan(sources: tuple[str, ...] = ("cex-dex-dislocation", "eth-crash"), **kw: Any) -> sw.SweepPlan:
    args: dict[str, Any] = {"seeds": [1, 2], "sets": [f"{ARB}=5_000_000,500_000_000"], **kw}
    return sw.plan_sweep(list(sources), **args)


# ----------------------------------------------------------------------------- the grid


@pytest.mark.parametrize("text, seeds", [("7", [7]), ("1-4", [1, 2, 3, 4]), ("5,1-3, 2", [1, 2, 3, 5]),
                                         ("0-0", [0])])
def test_seeds(text: str, seeds: list[int]) -> None:
    assert sw.parse_seeds(text) == seeds


@pytest.mark.parametrize("text, fragment", [("5-1", "ends before it starts"), ("a", "'a' is not a seed"),
                                            ("1,,2", "'' is not a seed"), (f"{2**64}", "largest seed"),
                                            ("0-2000000", "more than a million")])
def test_bad_seeds_are_named(text: str, fragment: str) -> None:
    with pytest.raises(sw.SweepError, match=fragment):
        sw.parse_seeds(text)


def test_paths_and_values_parse_as_toml() -> None:
    o = sw.parse_set('risk.venues."aave-v3:ethereum".max_notional=1_000, 2_000')
    assert o.keys == ("risk", "venues", "aave-v3:ethereum", "max_notional") and o.values == (1000, 2000)
    o = sw.parse_set('strategies[0].min_edge="0.50","1,5"')
    assert o.keys == ("strategies", 0, "min_edge") and o.values == ("0.50", "1,5")  # a comma inside quotes
    assert sw.parse_set("strategies[1].act=true,false").values == (True, False)
    assert sw.parse_set("strategies[1].leg_order=together,pool_first").values == ("together", "pool_first")


def test_the_grid_is_sources_by_sets_by_seeds_in_order() -> None:
    p = plan(sets=[f"{ARB}=5_000_000,500_000_000", "strategies[4].max_in_flight=1,2"])
    assert len(p.cells) == 2 * 4 * 2 and len(p.sets) == 4
    assert [c.id for c in p.cells[:5]] == ["cex-dex-dislocation/s0-seed1", "cex-dex-dislocation/s0-seed2",
                                           "cex-dex-dislocation/s1-seed1", "cex-dex-dislocation/s1-seed2",
                                           "cex-dex-dislocation/s2-seed1"]
    c = p.cells[3]  # set 1: min_profit 5_000_000 with max_in_flight 2
    assert c.params == ((ARB, 5_000_000), ("strategies[4].max_in_flight", 2))
    entry = c.config["strategies"][4]
    assert (entry["min_profit"], entry["max_in_flight"]) == (5_000_000, 2)
    assert c.scenario.seed == 2 and c.seed == 2 and c.run == "runs/cex-dex-dislocation/s1-seed2.db"
    assert {x.strategy for x in p.cells} == {"cex-dex"}  # the strategy both --set options vary
    assert p.sources[0].config["strategies"][4]["min_profit"] == 5_000_000  # the shipped value, left alone


def test_strategy_reported_is_all_when_the_sets_vary_more_than_one() -> None:
    p = plan(sets=[f"{ARB}=5_000_000", "strategies[1].min_profit=1_000_000"])
    assert {c.strategy for c in p.cells} == {sw.ALL}
    assert {c.strategy for c in plan(strategy="v2-v3-usdc-weth").cells} == {"v2-v3-usdc-weth"}


def test_no_seeds_means_each_scenarios_own_and_duration_overrides() -> None:
    p = plan(seeds=None, duration=120)
    assert [(c.label, c.seed) for c in p.cells if c.set_index == 0] == [("cex-dex-dislocation", 2), ("eth-crash", 1)]
    assert {c.scenario.duration for c in p.cells} == {120.0}


@pytest.mark.parametrize("sets, fragment", [
    ([f"{ARB[:-1]}=1"], "--set strategies[4].min_profi=1: strategies[4] (cex-dex): cex_dex_arb rejected its "
                        "parameters: ValueError: unknown parameter(s): min_profi"),
    (["strategies[9].min_profit=1"], "--set strategies[9].min_profit: strategies has 5 entries, no [9]"),
    (["risk.kill_swich=true"], "--set risk.kill_swich: unknown key 'kill_swich' in risk (known: "
                               "daily_loss_limit, default_max_notional, default_max_outstanding, kill_switch, "
                               "venues)"),
    (["colour=1"], "--set colour: unknown key 'colour' (known: engine, outcomes, paper, pools, risk, store, "
                   "strategies)"),
    (["risk.kill_switch=no"], "risk.kill_switch: Input should be a valid boolean (got 'no')"),
    (["risk.kill_switch.x=1"], "risk.kill_switch is a value, not a table"),
    (["strategies.min_profit=1"], "strategies is a list: index it"),
    (['risk.venues."aave-v3:ethereum".max_notionl=1'], "unknown key 'max_notionl' in risk.venues.aave-v3:ethereum"),
    (['risk.venues."aave-v3:ethereum".max_notional=-1'], "risk.venues.aave-v3:ethereum.max_notional: Input should "
                                                         "be greater than or equal to 0"),
    ([f"{ARB}=abc"], "invalid literal for int()"),
    ([f"{ARB}=1", f"{ARB}=2"], "given twice"),
    (["=1"], "expected PATH=VALUE"),
    (["strategies[4]min_profit=1"], "expected '.' or '['"),
    ([f"{ARB}="], "give one or more values"),
])
def test_a_wrong_set_is_one_line_naming_it_before_any_task(sets: list[str], fragment: str) -> None:
    with pytest.raises(sw.SweepError) as err:
        plan(sets=sets)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_every_parameter_set_is_built_not_just_the_first() -> None:
    # the second value is one the strategy refuses: found before a task starts, naming that set
    with pytest.raises(sw.SweepError, match=r'--set strategies\[4\].leg_order="sideways": .*leg_order must be one of'):
        plan(sets=['strategies[4].leg_order="together","sideways"'])


def test_sources_named_twice_and_unknown_strategy_are_refused() -> None:
    with pytest.raises(sw.SweepError, match="named 'quiet' like quiet"):
        plan(sources=("quiet", "quiet"))
    with pytest.raises(sw.SweepError, match="--strategy nope: .* has no strategy of that name"):
        plan(strategy="nope")
    with pytest.raises(sw.SweepError, match="scenario file not found"):
        plan(sources=("no-such-scenario",))


# ----------------------------------------------------------------------------- the tables


def fake_result(p: sw.SweepPlan, pnls: dict[int, int], failed: tuple[int, ...] = ()) -> sw.SweepResult:
    rows = []
    for c in p.cells:
        keys = sw._keys(p, c)
        if c.index in failed:
            rows.append({**keys, "status": "failed: RuntimeError: boom"})
            continue
        rows.append({**keys, "status": "ok", "pnl": pnls[c.index], "opportunities": c.index, "intents": 2,
                     "won": c.index % 3, "lost": 1, "priced_fills": 4, "losing_fills": c.index % 3, "pending": 0, "gas_wei": 10**15 + c.index, "decisions": 10,
                     "events": 100, "digest": f"{c.index:064x}"})
    return sw.SweepResult(p, rows, {}, {p.cells[i].id: "RuntimeError: boom" for i in failed}, 2)


def test_summary_is_exact_nearest_rank_and_counts_failures() -> None:
    p = plan(seeds=list(range(1, 11)), sources=("cex-dex-dislocation",), sets=[f"{ARB}=5_000_000,500_000_000"])
    # set 0: PnL 1..10 USDC (seed order reversed, to show the order is the values'); set 1: one failed
    pnls = {c.index: (11 - c.seed) * 1_000_000 + (c.set_index * 7) for c in p.cells}
    result = fake_result(p, pnls, failed=(10,))
    s0, s1 = sw.summary_rows(result)
    assert (s0["tasks"], s0["failed"], s1["tasks"], s1["failed"]) == (10, 0, 10, 1)
    assert s0["pnl_mean"] == Decimal("5.500000")
    assert (s0["pnl_p5"], s0["pnl_p50"], s0["pnl_p95"]) == (Decimal(1), Decimal(5), Decimal(10))  # ranks 1, 5, 10
    assert s1["pnl_p5"] == Decimal("1.000007") and s1["pnl_max"] == Decimal("9.000007")  # seed 1 (10 USDC) failed
    assert s1["pnl_mean"] == Decimal("5.000007")
    losing = sum(c.index % 3 for c in p.cells if c.set_index == 0)  # the win rate is the fills' PnL sign
    assert s0["win_rate"] == round((40 - losing) / 40, 6) and s0["lost"] == 10
    assert s0[ARB] == 5_000_000 and s1[ARB] == 500_000_000
    tasks = sw.task_rows(result)
    assert tasks[10]["status"].startswith("failed") and tasks[10]["pnl_usdc"] is None
    assert tasks[0]["pnl_usdc"] == Decimal("10.000000") and tasks[0]["gas_eth"] == Decimal("0.001")


def test_over_all_sources_rows_follow_each_sources() -> None:
    p = plan()
    result = fake_result(p, {c.index: c.index for c in p.cells})
    keys = [(r["scenario"], r["set"], r["tasks"]) for r in sw.summary_rows(result)]
    assert keys == [("cex-dex-dislocation", 0, 2), ("cex-dex-dislocation", 1, 2), ("eth-crash", 0, 2),
                    ("eth-crash", 1, 2), ("*", 0, 4), ("*", 1, 4)]


def test_tables_are_byte_identical_and_parquet_keeps_types(tmp_path: Path) -> None:
    p = plan()
    result = fake_result(p, {c.index: 10**12 * (c.index - 3) + 1 for c in p.cells}, failed=(1,))
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    wa, wb = sw.write_tables(result, a), sw.write_tables(result, b)
    assert sorted(wa) == ["sweep-summary.csv", "sweep-summary.parquet", "sweep.csv", "sweep.parquet"]
    for name in wa:
        assert wa[name].read_bytes() == wb[name].read_bytes(), name
    t = pq.read_table(a / "sweep.parquet")
    assert str(t.schema.field("pnl_usdc").type) == "decimal128(38, 6)" and str(t.schema.field(ARB).type) == "int64"
    rows = t.to_pylist()
    assert rows[0]["pnl_usdc"] == Decimal("-2999999.999999") and rows[1]["pnl_usdc"] is None
    assert rows[1]["status"] == "failed: RuntimeError: boom" and rows[0]["seed"] == 1
    header = (a / "sweep.csv").read_text().splitlines()[0]
    assert header.startswith('"scenario","kind","seed","set","strategies[4].min_profit","strategy","status","pnl_usdc"')
    printed = "\n".join(sw.printed(result))
    assert "-2,999,999.00" not in printed and "-3,000,000.00" in printed  # 2 dp on screen; exact in the files


def test_report_is_self_contained_and_the_same_bytes(tmp_path: Path) -> None:
    p = plan()
    result = fake_result(p, {c.index: c.index * 1_000_000 for c in p.cells})
    html = render(result)
    assert html == render(result)
    for div in (DIV_PNL, DIV_WIN, DIV_TABLE):
        assert html.count(f'id="{div}"') == 1
    assert html.count("<script") == 3  # plotly's JavaScript once, then one per chart
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    assert html.count(js) == 1
    rest = html.replace(js, "")
    assert "<script src" not in rest and "http" not in rest
    assert "strategies[4].min_profit" in html and "min_profit=500000000" in html


# ----------------------------------------------------------------------------- the command line


def _tapedeck() -> list[str]:
    exe = Path(sys.executable).parent / "tapedeck"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "tapedeck.cli"]


@pytest.mark.parametrize("args, fragment", [
    (["eth-crash", "--set", "strategies[4].min_proft=1,2"], "unknown parameter(s): min_proft"),
    (["eth-crash", "--set", "risk.kill_swich=true"], "unknown key 'kill_swich' in risk"),
    (["eth-crash", "--seeds", "9-3"], "--seeds 9-3: range 9-3 ends before it starts"),
    (["eth-crash", "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], "--workers sizes the local cluster"),
    (["eth-crash", "--scheduler", "nonsense:::"], "--scheduler nonsense:::: cannot connect: invalid address"),
])
def test_cli_refuses_in_one_line_before_any_task(tmp_path: Path, args: list[str], fragment: str) -> None:
    proc = subprocess.run(_tapedeck() + ["sweep", *args, "--out", str(tmp_path / "s")], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "s").exists()  # nothing ran


def test_progress_counter_lines_off_a_terminal() -> None:
    stream = io.StringIO()
    show = sw.main_progress(stream)
    cell = plan().cells[0]
    for done in range(1, 21):
        show(done, 20, cell, "ok")
    assert stream.getvalue().splitlines() == [f"  {n}/20 tasks done" for n in range(2, 21, 2)]
