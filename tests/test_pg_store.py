"""The PostgreSQL store (``adapters/pg_eventlog.py``): the same digest, chain and seal as SQLite for the
same run, ``replay --verify`` and ``inspect`` on a PostgreSQL run, ``tapedeck copy`` SQLite ->
PostgreSQL -> SQLite byte for byte, recorders killed at random points, edits caught, one writer,
URLs that name no run, and no password in what a run keeps or says."""
from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from tapedeck.adapters.eventlog import EventLog, EventLogError, LogLocked, Manifest
from tapedeck.adapters.paper_gateway import PaperGateway
from tapedeck.adapters.pg_eventlog import BadStoreURL, PgEventLog, PgURL
from tapedeck.domain import events as ev
from tapedeck.domain.strategies import build_engine
from tapedeck.runtime.loop import drive
from tests.conftest import ROOT, SPREAD_CONFIG, quote
from tests.pg_fixture import pg_db, pg_server  # noqa: F401  (fixtures)
from tests.test_integrity import KILL_SCRIPT, V3_SAMPLE, cli, one_line_error, spread_tape

pytestmark = pytest.mark.postgres


def record(log: EventLog, n: int = 300, batch: int = 7) -> EventLog:
    """A clean, sealed spread run (inputs, decisions, executions) in many small segments."""
    log._batch = batch
    drive(spread_tape(n), (eng := build_engine(SPREAD_CONFIG)), log, PaperGateway(eng.state))
    log.close(ended="clean")
    return log


def stored(url: str) -> list[tuple[int, str, bytes]]:
    u = PgURL.parse(url)
    with psycopg.connect(url.split("?")[0]) as c:
        return [(r[0], r[1], bytes(r[2])) for r in c.execute(
            f"SELECT originator_version, topic, state FROM {u.run}.stored_events ORDER BY originator_version")]


def digest_line(r) -> str:  # type: ignore[no-untyped-def]
    return re.search(r"digest ([0-9a-f]{64})", r.output).group(1)  # type: ignore[union-attr]


def test_the_same_run_has_the_same_digest_chain_and_seal_on_both_stores(pg_db, tmp_path) -> None:
    a = record(EventLog.create(tmp_path / "a.db", Manifest(run_id="x", mode="replay", config=SPREAD_CONFIG)))
    b = record(PgEventLog.create(f"{pg_db}?run=a", Manifest(run_id="x", mode="replay", config=SPREAD_CONFIG)))
    assert a.manifest.seal == b.manifest.seal and a.manifest.seal["segments"] > 40
    sqlite_states = [s for _f, _i, s in EventLog.open(tmp_path / "a.db").segments()]
    assert sqlite_states == [s for _f, _t, s in stored(f"{pg_db}?run=a")]  # the very bytes
    again = PgEventLog.open(f"{pg_db}?run=a")
    kinds = again.counts_by_topic()
    assert kinds == EventLog.open(tmp_path / "a.db").counts_by_topic() and kinds["QuoteUpdated.v4"] == 300, kinds
    assert again.integrity.sealed and again.integrity.digest == a.manifest.seal["digest"]


def test_replay_verify_and_inspect_read_a_postgresql_run(pg_db, tmp_path) -> None:
    url = f"{pg_db}?run=day"
    record(PgEventLog.create(url, Manifest(run_id="", mode="replay", config=SPREAD_CONFIG)))
    r = cli("replay", url, "--verify")
    assert r.exit_code == 0, r.output
    assert "integrity: sealed:" in r.output and r.output.strip().splitlines()[-1].startswith("verified 300 inputs")
    shown = cli("inspect", url)
    assert shown.exit_code == 0 and "integrity: sealed" in shown.output and "300  QuoteUpdated.v4" in shown.output
    # a replay from PostgreSQL into PostgreSQL names its parent without a password
    out = f"{pg_db}?run=again"
    r = cli("replay", url, "--out", out, "--config", ROOT / "fixtures" / "config" / "default.toml")
    assert r.exit_code == 0, r.output
    assert PgEventLog.open(out).manifest.parent == PgURL.parse(url).display
    assert cli("replay", out, "--verify").exit_code == 0
    onto = cli("replay", url, "--out", url, "--force", "--config", ROOT / "fixtures" / "config" / "default.toml")
    assert onto.exit_code == 2 and "is the log being replayed" in onto.output
    assert cli("replay", url, "--verify").exit_code == 0  # still there


def test_copy_sqlite_to_postgresql_and_back_keeps_every_byte_and_the_digest(pg_db, tmp_path) -> None:
    day = tmp_path / "day.db"
    assert cli("import", "uniswap-v3-logs", V3_SAMPLE, "--out", day).exit_code == 0
    src = tmp_path / "run.db"
    r = cli("replay", day, "--out", src, "--config", ROOT / "fixtures" / "config" / "default.toml")
    assert r.exit_code == 0, r.output
    first = digest_line(cli("replay", src, "--verify"))
    url = f"{pg_db}?run=copied"
    there = cli("copy", src, url)
    assert there.exit_code == 0 and f"digest {first} (sealed)" in there.output, there.output
    back = tmp_path / "back.db"
    assert cli("copy", url, back).exit_code == 0
    for where in (url, back):
        v = cli("replay", where, "--verify")
        assert v.exit_code == 0 and digest_line(v) == first, v.output
    original, returned = EventLog.open(src), EventLog.open(back)
    assert list(original.segments()) == list(returned.segments())  # segment for segment, byte for byte
    assert original.stored_manifest() == returned.stored_manifest()  # run id, config, code, seal
    assert cli("copy", src, url).exit_code == 2  # exists
    assert cli("copy", src, url, "--force").exit_code == 0
    assert "is the run being copied" in cli("copy", url, url).output


def test_copy_of_an_unfinished_run_keeps_how_it_ended_and_a_tampered_one_is_refused(pg_db, tmp_path) -> None:
    log = PgEventLog.create(f"{pg_db}?run=open_run", Manifest(run_id="", mode="live"))
    for i in range(50):
        log.append(quote(i, "a", "1", "2"))
    log.close(ended="failed: RuntimeError")
    r = cli("copy", f"{pg_db}?run=open_run", tmp_path / "o.db")
    assert r.exit_code == 0 and "ended 'failed: RuntimeError', no seal" in r.output, r.output
    assert EventLog.open(tmp_path / "o.db").manifest.ended == "failed: RuntimeError"
    with psycopg.connect(pg_db) as c:
        c.execute("UPDATE open_run.stored_events SET state = overlay(state placing '9'::bytea from 200) "
                  "WHERE originator_version = 1")
    bad = cli("copy", f"{pg_db}?run=open_run", tmp_path / "t.db")
    assert bad.exit_code == 2 and "tampered at segment seq 1..50" in bad.output, bad.output


def test_edits_deletions_foreign_rows_and_a_changed_schema_are_caught(pg_db) -> None:
    url = f"{pg_db}?run=base"
    record(PgEventLog.create(url, Manifest(run_id="", mode="replay", config=SPREAD_CONFIG)))
    segs = stored(url)
    cases = [
        ("UPDATE {run}.stored_events SET state = overlay(state placing '7'::bytea from 170) "
         f"WHERE originator_version = {segs[3][0]}", "contents do not match its hash"),
        (f"DELETE FROM {{run}}.stored_events WHERE originator_version = {segs[5][0]}", "gap, seq"),
        ("INSERT INTO {run}.stored_events (originator_id, originator_version, topic, state) "
         "VALUES ('other', 1, 'segment.v2', '\\x00')", "belong to no segment"),
        ("UPDATE {run}.manifest SET body = replace(body, '\"seed\": 0', '\"seed\": 1')", "manifest changed after"),
        ("ALTER TABLE {run}.manifest ALTER COLUMN body TYPE varchar", "is not the one tapedeck writes"),
        ("DROP VIEW {run}.events", "the view 'events' is missing"),
    ]
    for n, (statement, said) in enumerate(cases):
        case = f"{pg_db}?run=case{n}"
        assert cli("copy", url, case).exit_code == 0
        with psycopg.connect(pg_db) as c:
            c.execute(statement.format(run=f"case{n}"))
        r = cli("replay", case, "--verify")
        assert r.exit_code == 2 and said in one_line_error(r), (statement, r.output)
        assert "Traceback" not in r.output


HOLD = """
import sys, time
sys.path.insert(0, {root!r})
from tapedeck.adapters.pg_eventlog import PgEventLog
from tapedeck.adapters.eventlog import Manifest
log = PgEventLog.create({url!r}, Manifest(run_id="", mode="import"))
print("holding", flush=True)
time.sleep(60)
"""


def test_one_writer_at_a_time_and_a_dead_writers_lock_goes_with_it(pg_db) -> None:
    url = f"{pg_db}?run=held"
    log = PgEventLog.create(url, Manifest(run_id="", mode="live"))
    log.append(quote(1, "a", "1", "2"))
    with pytest.raises(LogLocked, match=f"another writer \\(pid {os.getpid()}\\) has this log open"):
        PgEventLog.open(url, resume=True)
    assert PgEventLog.open(url).last_seq() in (0, 1)  # readers need no lock
    log.close(ended="clean")
    other = f"{pg_db}?run=other"
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(root=str(ROOT), url=other)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        r = cli("replay", url, "--out", other, "--force", "--config", ROOT / "fixtures" / "config" / "default.toml")
        assert r.exit_code == 2 and f"another writer (pid {proc.pid}) has this log open" in one_line_error(r)
    finally:
        proc.kill()
        proc.wait()
    for _ in range(50):  # the server notices the dead session
        try:
            PgEventLog.open(other, resume=True).close()
            break
        except LogLocked:
            time.sleep(0.1)
    else:
        raise AssertionError("the killed writer's lock was never released")


@pytest.mark.slow
def test_recorders_killed_at_random_points_leave_a_prefix_that_verifies_as_incomplete(pg_db) -> None:
    """tests/test_integrity.py's killed-recorder test, on PostgreSQL."""
    script = KILL_SCRIPT.replace("from tapedeck.adapters.eventlog import EventLog, Manifest",
                                 "from tapedeck.adapters.eventlog import Manifest\n"
                                 "from tapedeck.adapters.pg_eventlog import PgEventLog as EventLog")
    rng = random.Random(2026)
    tape = spread_tape(12_000)
    cut = 0
    for trial in range(4):
        url = f"{pg_db}?run=k{trial}"
        proc = subprocess.Popen([sys.executable, "-c", script.format(root=str(ROOT), path=url)],
                                stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert proc.stdout.readline().strip() == "recording"
        time.sleep(rng.uniform(0.3, 2.0))
        proc.send_signal(signal.SIGKILL)
        if "done" in proc.communicate()[0]:
            assert cli("replay", url, "--verify").exit_code == 0
            continue
        cut += 1
        log = PgEventLog.open(url)
        events = list(log.events())
        assert log.manifest.ended == "open" and not log.manifest.seal
        assert [e.seq for e in events] == list(range(1, len(events) + 1))  # a prefix, no holes
        inputs = [e for e in events if e.KIND == ev.INPUT]
        assert inputs == [ev.with_seq(t, e.seq) for t, e in zip(tape, inputs)]
        assert cli("replay", url, "--verify").exit_code == 3
        ok = cli("replay", url, "--verify", "--allow-incomplete")
        assert ok.exit_code == 0 and ok.output.strip().splitlines()[-1].startswith(f"verified {len(inputs)} inputs")
    assert cut > 0  # the kills did land inside recordings


def test_urls_that_name_no_run_are_one_line_errors_and_no_password_is_kept_or_said(pg_db, tmp_path) -> None:
    host = pg_db.split("//")[1].split("/")[0]
    for url, said in ((f"postgresql://{host}/x", "name the run"),
                      (f"postgresql://{host}/x?run=Bad-Name", "must be a plain lower-case identifier"),
                      (f"postgresql://{host}/x?run=public", "must be a plain"),
                      (f"postgresql://{host}/x?run=a&sslmode=off", "unknown parameter(s) sslmode"),
                      (f"postgresql://{host}/?run=a", "name the database")):
        with pytest.raises(BadStoreURL, match=re.escape(said)):
            PgURL.parse(url)
        r = cli("replay", url, "--verify")
        assert r.exit_code == 2 and said in one_line_error(r), r.output
    secret = pg_db.replace("postgres@", "postgres:s3cret-pw@")  # the test server trusts 127.0.0.1
    url = f"{secret}?run=pw"
    record(PgEventLog.create(url, Manifest(run_id="", mode="replay", config=SPREAD_CONFIG)))
    outputs = [cli("replay", url, "--verify").output, cli("inspect", url, "--json").output,
               cli("copy", url, tmp_path / "pw.db").output, cli("copy", tmp_path / "pw.db", url).output,
               cli("replay", url, "--out", f"{secret}?run=pw2", "--config", ROOT / "fixtures" / "config" / "default.toml").output,
               cli("replay", f"{secret}?run=missing", "--verify").output]
    with psycopg.connect(pg_db) as c:
        outputs += [r[0] for r in c.execute("SELECT body FROM pw.manifest")]
    assert all("s3cret" not in o for o in outputs) and "recorded postgresql://postgres:***@" in outputs[4], outputs
    assert "no such run" in outputs[-2]
    unreachable = "postgresql://postgres:s3cret@127.0.0.1:9/x?run=a"  # nothing listens on port 9
    with pytest.raises(EventLogError, match="cannot reach PostgreSQL") as e:
        PgEventLog.open(unreachable)
    assert "s3cret" not in str(e.value) and "\n" not in str(e.value)
