"""Issue 14: a sweep's retry cannot be broken by what a failed attempt left in the worker process.

Once, a retry failed in ``EventLog.create`` with SQLite's "cannot commit transaction - SQL
statements in progress" right after a faulted task in the same worker; it never reproduced (this
file's first test runs the faulted-then-retried cell in one process and it passes the same). The
retry is made robust instead: every attempt after the first runs in a fresh process
(``runtime.sweep._attempt_isolated``). The proof poisons the worker itself: with ``EventLog.create``
failing in this process exactly that way, the first attempt fails (noted) and the retry still
records the run, with the row a clean run gives."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from tapedeck.adapters import eventlog
from tapedeck.runtime import sweep as sw
from tapedeck.sim.scenario import SCENARIO_DIR

pytestmark = pytest.mark.slow
SQL_IN_PROGRESS = "cannot create the run: cannot commit transaction - SQL statements in progress"


def cell(tmp_path: Path) -> sw.Cell:
    text = (SCENARIO_DIR / "quiet.toml").read_text()
    path = tmp_path / "quiet.toml"
    path.write_text(re.sub(r"(?m)^duration = .*$", "duration = 60", text, count=1))
    plan = sw.plan_sweep([str(path)], seeds=[3], sets=["risk.kill_switch=false"])
    return plan.cells[0]


def test_a_retry_runs_in_a_fresh_process_the_poisoned_worker_cannot_reach(tmp_path: Path, monkeypatch: Any) -> None:
    c = cell(tmp_path)
    clean = sw._attempt(c, tmp_path / "clean.run", "")  # the row this cell gives, in this process, unpoisoned

    def poisoned(path: Any, *a: Any, **k: Any) -> Any:
        raise eventlog.EventLogError(f"{path}: {SQL_IN_PROGRESS}")

    monkeypatch.setattr(eventlog.EventLog, "create", classmethod(lambda cls, path, *a, **k: poisoned(path)))
    out = tmp_path / "sweep"
    with pytest.raises(sw.SweepTaskFailed, match="SQL statements in progress"):
        sw.run_cell(c, str(out))  # the first attempt, in this (poisoned) process
    row = sw.run_cell(c, str(out))  # Dask's retry of the task: same worker, poisoned still
    assert row == clean and row["status"] == "ok" and row["events"] > 0
    assert (out / c.run).is_file()
    notes = (out / ".attempts" / (c.id.replace("/", "__") + ".txt")).read_text().splitlines()
    assert notes == ["start 1", f"attempt 1 failed: EventLogError: {out / c.run}: {SQL_IN_PROGRESS}", "start 2",
                     "isolated: attempt 2 runs in a fresh process"]
    assert sw.attempt_notes(out, c) == [f"attempt 1 failed: EventLogError: {out / c.run}: {SQL_IN_PROGRESS}"]
    assert not list((out / ".attempts").glob("*.pickle"))  # the hand-over files are gone


def test_a_retry_that_fails_in_its_process_says_why_in_one_line(tmp_path: Path) -> None:
    c = dataclasses.replace(cell(tmp_path), kind="replay", log=str(tmp_path / "gone.db"))
    out = tmp_path / "sweep"
    with pytest.raises(sw.SweepTaskFailed):
        sw.run_cell(c, str(out))
    with pytest.raises(sw.SweepTaskFailed) as e:
        sw.run_cell(c, str(out))
    message = str(e.value)
    assert "\n" not in message and "gone.db" in message and "no such run file" in message
    assert message.startswith(f"{c.id}: SweepTaskFailed: ")
