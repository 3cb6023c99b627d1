"""``tapedeck live`` as a user runs it (a subprocess of the installed entry point, the fakes plugged
in by import path): SIGTERM mid-run leaves a clean log that ``replay --verify`` verifies; ``kill -9``
then a restart with the same ``--out`` resumes the same run (no seq twice, the source restored) and
SIGUSR1 engages the kill switch; ``--execute`` without a key or caps refuses in one line."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.domain import events as ev
from tests.conftest import ROOT
from tests.test_live_runner import BASE, config, count, events, fake_run

pytestmark = pytest.mark.slow
OPS = BASE.replace("[ops]\nenabled = false", "[ops]\nport = 0")


def tapedeck() -> list[str]:
    exe = Path(sys.executable).parent / "tapedeck"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "tapedeck.cli"]


STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def no_runner_left_behind() -> Any:
    """A test that fails half way must not leave its ``tapedeck live`` running."""
    yield
    while STARTED:
        p = STARTED.pop()
        if p.poll() is None:
            p.kill()
            p.wait(timeout=30)


class Live:
    """A ``tapedeck live`` process: its ops port (read from its stderr), /health, signals, output."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(tapedeck() + ["live", *args], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        STARTED.append(self.proc)
        self.stderr_lines: list[str] = []
        self.port = 0
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line)
            found = re.search(r"ops: http://127\.0\.0\.1:(\d+)/health", line)
            if found:
                self.port = int(found.group(1))
                break
        assert self.port, "".join(self.stderr_lines)

    def get(self, path: str, body: bytes | None = None) -> bytes:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body,
                                     method="POST" if body is not None else "GET")
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    def health(self) -> dict[str, Any]:
        return json.loads(self.get("/health"))

    def wait_for(self, cond: Callable[[dict[str, Any]], bool], polls: int = 3000) -> dict[str, Any]:
        for _ in range(polls):
            h = self.health()
            if cond(h):
                return h
            time.sleep(0.01)
        raise AssertionError(f"never: {self.health()}")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def finish(self) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, out, "".join(self.stderr_lines) + err


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tapedeck() + list(args), cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def intents_done(n: int) -> Callable[[dict[str, Any]], bool]:
    return lambda h: h["recorded"] > 0 and h["sources"]["quotes"]["adapter"]["emitted"] >= n


def test_sigterm_mid_run_leaves_a_clean_log_that_verifies(tmp_path: Path) -> None:
    cfg, out = fake_run(tmp_path, 0, OPS)
    live = Live(str(cfg), "--out", str(out))
    live.wait_for(intents_done(40))
    live.signal(signal.SIGTERM)
    rc, stdout, stderr = live.finish()
    assert rc == 0, stderr
    assert "Traceback" not in stderr
    assert re.fullmatch(r"live run .*run\.db: \d+ events this session \(seq 1\.\.\d+\), ended clean\n", stdout)
    m = EventLog.open(out).manifest
    assert m.ended == "clean" and m.seal
    v = cli("replay", str(out), "--verify")
    assert v.returncode == 0 and "verified" in v.stdout, v.stdout + v.stderr


def test_kill9_then_restart_resumes_the_same_run_and_sigusr1_kills(tmp_path: Path) -> None:
    cfg, out = fake_run(tmp_path, 0, OPS)
    first = Live(str(cfg), "--out", str(out))
    first.wait_for(intents_done(30))
    first.signal(signal.SIGKILL)
    first.finish()
    assert EventLog.open(out).manifest.ended == "open"
    n1 = len(events(out))
    second = Live(str(cfg), "--out", str(out))
    h = second.wait_for(lambda h: h["resumed"])
    start = h["sources"]["quotes"]["adapter"]["restored_from"]
    assert start == count(events(out)[:n1], ev.QuoteUpdated)  # restored from the log: where the first one stopped
    second.wait_for(lambda h: h["sources"]["quotes"]["adapter"]["emitted"] >= start + 12)
    second.signal(signal.SIGUSR1)
    second.wait_for(lambda h: h["kill_switch"]["engaged"])
    second.wait_for(lambda h: h["sources"]["quotes"]["adapter"]["emitted"] >= start + 24)
    second.signal(signal.SIGTERM)
    rc, stdout, stderr = second.finish()
    assert rc == 0 and "resumed" in stderr, stderr
    evs = events(out)
    assert [e.seq for e in evs] == list(range(1, len(evs) + 1))
    bids = [e.bid for e in evs if type(e) is ev.QuoteUpdated]
    assert len(bids) == len(set(bids))
    kill = [e for e in evs if type(e) is ev.KillSwitchSet]
    assert [(k.source, k.reason) for k in kill] == [("operator:signal", "SIGUSR1")]
    assert count([e for e in evs if e.seq > kill[0].seq], ev.OrderIntended) == 0
    m = EventLog.open(out).manifest
    assert m.ended == "clean" and m.notes["recovered_at_seq"] > 0 and len(m.notes["sessions"]) == 2
    v = cli("replay", str(out), "--verify")
    assert v.returncode == 0, v.stdout + v.stderr


def test_execute_without_key_or_caps_refuses_in_one_line(tmp_path: Path) -> None:
    cfg, _ = fake_run(tmp_path, 0, OPS)
    out = tmp_path / "x.db"
    env = {"TAPEDECK_PRIVATE_KEY": ""}
    p = cli("live", str(cfg), "--out", str(out), "--execute", env=env)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert lines[0].startswith("Error: --execute refused: ") and "risk.venues.fakex.max_notional" in lines[0] \
        and "risk.daily_loss_limit" in lines[0]
    capped = config(tmp_path, cfg.read_text().replace(
        "default_max_outstanding = 100_000_000", "default_max_outstanding = 100_000_000\ndaily_loss_limit = 9\n"
        "[risk.venues.fakex]\nmax_notional = 5_000_000"), "capped.toml")
    p = cli("live", str(capped), "--out", str(out), "--execute", env=env)
    assert p.returncode == 2 and p.stderr == ("Error: --execute refused: environment variable TAPEDECK_PRIVATE_KEY "
                                              "is not set (the hex private key of the sending account)\n"), p.stderr
    assert not out.exists() and p.stdout == ""
    bad = config(tmp_path, OPS.replace("port = 0", "port = 0\nhots = 1"), "bad.toml")
    p = cli("live", str(bad), "--out", str(out))
    assert p.returncode == 2 and p.stderr == f"Error: {bad}: ops.hots: unknown key\n"
