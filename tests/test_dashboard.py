"""``tapedeck dashboard``: the page and its poll over a log that grows while it is served. Each poll
reads the events after the last seq it folded through the store port and answers the same figures
the report draws from the same events; an unchanged log answers no figures."""
from __future__ import annotations

import json
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from tapedeck.adapters.eventlog import EventLog, Manifest
from tapedeck.runtime.dashboard import Dashboard, build_app
from tapedeck.runtime.report_html import figure_json
from tests.test_report import CONFIG, figures_of, record, rich_events


@contextmanager
def serving(board: Dashboard) -> Iterator[str]:
    """The dashboard on uvicorn (as ``tapedeck dashboard`` runs it) in a thread, on a free loopback port."""
    import uvicorn

    from tapedeck.runtime.serve import uvicorn_config

    server = uvicorn.Server(uvicorn_config(build_app(board), host="127.0.0.1", port=0))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(600):  # bounded wait for it to listen
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "the dashboard server did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


def get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("content-type", "")


class GrowingRun:
    """A run being written by this process while the dashboard reads it: the first half of the
    rich run at once, the rest on ``grow``."""

    def __init__(self, path: Path):
        self.events = rich_events()
        self.half = len(rich_events(parts=1))
        self.log = EventLog.create(path, Manifest(run_id="", mode="sim", seed=5, sources=["test:rich"], config=CONFIG))
        for e in self.events[: self.half]:
            self.log.append(e)
        self.log.flush()

    def grow(self) -> None:
        for e in self.events[self.half:]:
            self.log.append(e)
        self.log.flush()

    def close(self) -> None:
        self.log.close(ended="clean")


@pytest.fixture()
def growing(tmp_path: Path) -> Iterator[GrowingRun]:
    run = GrowingRun(tmp_path / "live.db")
    yield run
    run.close()


def test_the_poll_follows_the_log_as_it_grows_and_ends_with_the_reports_figures(growing: GrowingRun,
                                                                               tmp_path: Path) -> None:
    board = Dashboard(EventLog.open(growing.log.path))
    with serving(board) as base:
        status, body, ctype = get(base + "/api/update?since=-1")
        first = json.loads(body)
        assert status == 200 and ctype.startswith("application/json")
        assert first["last_seq"] == growing.half and set(first["figures"]) == {
            "pnl", "fate", "detection-latency", "inclusion-latency", "health-factor", "gas"}
        assert {t["name"]: t["y"][-1] for t in first["figures"]["pnl"]["data"]} == {"arb": 9.0, "liq": 488.0}
        same = json.loads(get(base + f"/api/update?since={growing.half}")[1])
        assert same == {"last_seq": growing.half, "events": first["events"]}  # nothing new: no figures
        growing.grow()
        grown = json.loads(get(base + f"/api/update?since={growing.half}")[1])
        assert grown["last_seq"] == len(growing.events) > growing.half
        assert {"perp-pnl", "exit-latency"} <= set(grown["figures"])
    # what the dashboard drew from the growing log is what the report draws from the finished run
    final = record(tmp_path / "final.db", growing.events)
    report = {sid: json.loads(figure_json(fig)) for sid, fig in figures_of(final).items()}
    assert grown["figures"] == report


def test_the_page_loads_plotly_from_its_own_server_and_a_bad_poll_is_a_422(growing: GrowingRun) -> None:
    board = Dashboard(EventLog.open(growing.log.path), poll_ms=250)
    with serving(board) as base:
        status, page, ctype = get(base + "/")
        text = page.decode()
        assert status == 200 and ctype.startswith("text/html")
        assert '<script src="/static/plotly.js">' in text and "setTimeout(poll, 250)" in text
        assert "http://" not in text and "https://" not in text
        status, js, ctype = get(base + "/static/plotly.js")
        assert status == 200 and ctype.startswith("text/javascript") and b"plotly.js v" in js[:2000]
        status, body, _ = get(base + "/api/update?since=soon")
        assert status == 422 and b"since must be an integer" in body


def test_dashboard_command_refuses_a_missing_run_in_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tapedeck.cli import main

    r = CliRunner().invoke(main, ["dashboard", str(tmp_path / "none.db")])
    assert r.exit_code == 2 and r.output.strip() == f"Error: {tmp_path / 'none.db'}: no such run file"
    r = CliRunner().invoke(main, ["dashboard", "postgresql://u@localhost/db"])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output  # no store or no server there


def test_dashboard_command_says_why_it_cannot_listen_before_any_url(growing: GrowingRun) -> None:
    """A busy port is one ``Error:`` line, exit 2, and no URL printed for a page nobody serves."""
    import socket

    from click.testing import CliRunner

    from tapedeck.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = CliRunner().invoke(main, ["dashboard", str(growing.log.path), "--port", str(port)])
    assert r.exit_code == 2 and "http://" not in r.output, r.output
    assert r.output.strip() == r.output.strip().splitlines()[0]
    assert r.output.startswith(f"Error: cannot listen on 127.0.0.1:{port}: Address already in use")
