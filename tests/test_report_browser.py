"""The run report in a real headless Chromium: the page loads with no console error and no network
request but its own file, the charts hold the run's numbers (read back from plotly's data in the
page), and a screenshot is kept (``runs/artifacts/report-rich.png``, or $TAPEDECK_ARTIFACTS)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.runtime.report_html import SECTIONS, write_report
from tests.browser import READ_CHARTS, visit
from tests.test_report import expected_numbers, record, rich_events

pytestmark = pytest.mark.browser

CHARTS_DRAWN = (f"document.querySelectorAll('.js-plotly-plot').length === {len(SECTIONS)} && "
                "[...document.querySelectorAll('.js-plotly-plot')].every(d => d._fullLayout)")


def test_the_report_loads_offline_without_errors_and_its_charts_hold_the_runs_numbers(tmp_path: Path) -> None:
    run = record(tmp_path / "rich.db", rich_events())
    page = write_report(EventLog.open(run), tmp_path / "rich.html")
    url = page.resolve().as_uri()
    result = visit(url, ready=CHARTS_DRAWN, read=READ_CHARTS, screenshot="report-rich.png")
    assert result.console_errors == []
    assert result.requests == [url]  # the page itself, nothing else: plotly is inside it
    charts = json.loads(result.value)
    assert list(charts) == [sid for sid, _ in SECTIONS]
    want = expected_numbers(run)
    assert {t["name"]: t["y"][-1] for t in charts["pnl"]} == pytest.approx(want["pnl"])
    assert dict(zip(charts["gas"][0]["x"], charts["gas"][0]["y"])) == pytest.approx(want["gas"])
    fate = {t["name"]: dict(zip(t["y"], t["x"])) for t in charts["fate"]}
    assert fate["liq"]["won"] == 1 and fate["liq"]["lost: outbid by 0xabc"] == 1
    assert fate["liq"]["skipped: below min profit"] == 2
    assert [t["x"] for t in charts["detection-latency"]] == [[3.0], [40.0]]
    assert charts["inclusion-latency"][0]["x"] == [12000.0]
    assert {t["name"]: t["y"] for t in charts["exit-latency"]} == {"perp (timer)": [250.0, 500.0],
                                                                   "perp (update)": [0.0]}
    net = {t["name"]: t["y"] for t in charts["perp-pnl"]}["net"]
    assert net == [want["perp_net"]["perp"]]
    over_time = {t["name"]: t["y"] for t in charts["perp-pnl-time"]}
    assert over_time["perp net"][-1] == want["perp_net"]["perp"]  # the line ends at the breakdown's net
    assert len(charts["health-factor"][0]["y"]) == 40
    assert result.screenshot is not None and result.screenshot.stat().st_size > 20_000
    assert result.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_simulated_liquidation_runs_report_in_the_browser(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tapedeck.cli import main

    out = tmp_path / "crash.db"
    r = CliRunner().invoke(main, ["sim", "eth-crash", "--out", str(out), "--report"])
    assert r.exit_code == 0, r.output
    page = Path(r.output.strip().splitlines()[-1].removeprefix("report "))
    want = expected_numbers(out)
    url = page.resolve().as_uri()
    result = visit(url, ready="document.querySelectorAll('.js-plotly-plot').length > 0 && "
                   "[...document.querySelectorAll('.js-plotly-plot')].every(d => d._fullLayout)",
                   read=READ_CHARTS, screenshot="report-eth-crash.png")
    assert result.console_errors == [] and result.requests == [url]
    charts = json.loads(result.value)
    assert {"pnl", "fate", "detection-latency", "inclusion-latency", "health-factor", "gas"} <= set(charts)
    assert {t["name"]: t["y"][-1] for t in charts["pnl"]} == pytest.approx(want["pnl"])
