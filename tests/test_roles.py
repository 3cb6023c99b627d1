"""``tapedeck serve-role``: scanner, evaluator and executor as separate processes over one PostgreSQL
database record the same run as one process (same decisions, same digest); killing and restarting
each of them mid-run loses and duplicates nothing; a restarted evaluator refuses a run it would not make."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from tapedeck.adapters.eventlog import EventLog, EventLogError
from tapedeck.adapters.pg_eventlog import PgEventLog
from tapedeck.domain import events as ev
from tests.conftest import ROOT
from tests.pg_fixture import pg_db, pg_server  # noqa: F401  (fixtures)
from tests.test_integrity import V2_PAIR, V2_SAMPLE, V3_SAMPLE, cli

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
CONFIG = ROOT / "fixtures" / "config" / "default.toml"
TAPEDECK = [sys.executable, "-m", "tapedeck.cli"]


@pytest.fixture
def tape(tmp_path):  # type: ignore[no-untyped-def]
    """The V2 + V3 USDC/WETH samples and the single-process replay of them (72 intents, 144 paper reports)."""
    day = tmp_path / "day.db"
    assert cli("import", "uniswap-v3-logs", V3_SAMPLE, "--out", day).exit_code == 0
    assert cli("import", "uniswap-v2-reserves", V2_SAMPLE, "--pool", V2_PAIR, "--out", day).exit_code == 0
    ref = tmp_path / "ref.db"
    assert cli("replay", day, "--out", ref, "--config", CONFIG).exit_code == 0
    return day, ref


def role(name: str, store: str, *extra: object) -> subprocess.Popen:
    return subprocess.Popen(TAPEDECK + ["serve-role", name, str(CONFIG), "--store", store, *map(str, extra)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, what: str) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"{what}: exit {proc.returncode}\n{out}\n{err}"
    return out


def digest(where: object) -> str:
    r = cli("replay", where, "--verify")
    assert r.exit_code == 0, r.output
    return re.search(r"digest ([0-9a-f]{64})", r.output).group(1)  # type: ignore[union-attr]


def wait_until(check, what: str, timeout_s: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def held(where: str) -> int:
    try:
        return PgEventLog.open(where).last_seq()
    except EventLogError:
        return 0  # not created yet


def test_three_role_processes_record_the_single_process_run(pg_db, tape) -> None:
    day, ref = tape
    store = f"{pg_db}?run=r"
    procs = {"executor": role("executor", store), "evaluator": role("evaluator", store),
             "scanner": role("scanner", store, "--tape", day, "--flush-every", 10)}
    outs = {k: finish(p, k) for k, p in procs.items()}
    assert outs["scanner"].strip() == "scanner: recorded 443 inputs"
    assert outs["executor"].strip() == "executor: submitted 72 intents"
    assert "443 inputs, 144 executions, 241 decisions" in outs["evaluator"]
    assert digest(store) == digest(ref)
    assert list(PgEventLog.open(store).events()) == list(EventLog.open(ref).events())  # every event, in order


def test_killing_and_restarting_each_role_mid_run_loses_and_duplicates_nothing(pg_db, tape) -> None:
    day, ref = tape
    store = f"{pg_db}?run=k"
    feed, ex = f"{pg_db}?run=k_in", f"{pg_db}?run=k_ex"
    evaluator = role("evaluator", store)
    executor = role("executor", store)
    scanner = role("scanner", store, "--tape", day, "--flush-every", 1)
    wait_until(lambda: held(feed) >= 40, "the scanner's first inputs")
    scanner.send_signal(signal.SIGKILL)
    scanner.wait()
    first_life = held(feed)
    assert 40 <= first_life < 443  # killed mid-tape
    scanner = role("scanner", store, "--tape", day, "--flush-every", 1)
    wait_until(lambda: held(ex) >= 20, "ten paper fills")  # acknowledged + filled per intent
    executor.send_signal(signal.SIGKILL)
    executor.wait()
    before = PgEventLog.open(ex)
    reported, position = before.last_seq(), before.tracking("executor")
    assert 20 <= reported < 144 and position > 0
    assert evaluator.poll() is None  # waiting for the executor, not failed
    executor = role("executor", store)
    decided_then = held(store)
    wait_until(lambda: held(store) >= decided_then + 60, "the evaluator to record more")
    evaluator.send_signal(signal.SIGKILL)
    evaluator.wait()
    evaluator_life = held(store)
    assert evaluator_life < 828  # killed before the run's end (828 events)
    evaluator = role("evaluator", store)
    again = int(re.search(r"submitted (\d+) intents", finish(executor, "restarted executor")).group(1))  # type: ignore[union-attr]
    assert again == 72 - reported // 2  # exactly the intents whose reports were not committed
    rest = int(re.search(r"recorded (\d+) inputs", finish(scanner, "restarted scanner")).group(1))  # type: ignore[union-attr]
    assert rest == 443 - first_life
    assert "443 inputs, 144 executions, 241 decisions" in finish(evaluator, "restarted evaluator")
    # nothing lost, nothing twice: the inputs once each, every intent filled once, the same run
    inputs = list(PgEventLog.open(feed).events())
    assert [e.seq for e in inputs] == list(range(1, 444))
    reports = list(PgEventLog.open(ex).events())
    assert len(reports) == 144 and sorted(r.intent for r in reports if type(r) is ev.OrderFilled) == \
        sorted(d.seq for d in PgEventLog.open(store).events() if type(d) is ev.OrderIntended)
    assert PgEventLog.open(ex).manifest.notes.get("recovered_at_seq") == reported
    assert PgEventLog.open(store).manifest.notes.get("recovered_at_seq") == evaluator_life
    assert digest(store) == digest(ref)


def test_a_restarted_evaluator_refuses_a_run_its_config_does_not_make(pg_db, tape) -> None:
    """Resuming re-drives the loop against what the run holds; another config diverges and says where."""
    from tapedeck.runtime.roles import serve_evaluator

    day, _ref = tape
    store = f"{pg_db}?run=d"
    procs = [role("executor", store), role("evaluator", store), role("scanner", store, "--tape", day)]
    for p in procs:
        finish(p, "role")
    import tomllib

    config = tomllib.loads(CONFIG.read_text())
    config["strategies"][0]["min_profit"] = 10**12  # would never act
    with pytest.raises(EventLogError, match="the restarted evaluator decides differently at seq"):
        serve_evaluator(config, store)
