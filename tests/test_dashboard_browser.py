"""The dashboard in a real headless Chromium while the run grows: the page draws the first half,
then follows the log to its end; no console error, no request beyond the dashboard's own
127.0.0.1 origin; the charts hold the run's numbers; a screenshot is kept."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.runtime.dashboard import Dashboard
from tests.browser import READ_CHARTS, visit
from tests.test_dashboard import GrowingRun, serving
from tests.test_report import expected_numbers, record

pytestmark = pytest.mark.browser


def test_the_dashboard_follows_a_growing_run_in_the_browser(tmp_path: Path) -> None:
    run = GrowingRun(tmp_path / "live.db")
    try:
        board = Dashboard(EventLog.open(run.log.path), poll_ms=200)
        with serving(board) as base:
            result = visit(base + "/", ready=f"window.tapedeck && window.tapedeck.drawn === {run.half}",
                           action=run.grow, settled=f"window.tapedeck.drawn === {len(run.events)}",
                           read=READ_CHARTS, screenshot="dashboard-rich.png")
    finally:
        run.close()
    assert result.console_errors == []
    assert result.requests and all(u.startswith(base + "/") for u in result.requests), result.requests
    assert base + "/static/plotly.js" in result.requests
    assert sum(u.startswith(base + "/api/update?since=") for u in result.requests) >= 2
    charts = json.loads(result.value)
    want = expected_numbers(record(tmp_path / "final.db", run.events))
    assert {t["name"]: t["y"][-1] for t in charts["pnl"]} == pytest.approx(want["pnl"])
    assert {t["name"]: t["y"] for t in charts["perp-pnl"]}["net"] == [want["perp_net"]["perp"]]
    assert {t["name"]: t["y"] for t in charts["exit-latency"]} == {"perp (timer)": [250.0, 500.0],
                                                                   "perp (update)": [0.0]}
    assert result.screenshot is not None and result.screenshot.read_bytes()[:4] == b"\x89PNG"
