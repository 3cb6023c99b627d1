"""The run log: numbering, group commits, manifest, durability on a killed process, the library path."""
from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from decimal import Decimal

from tapedeck.adapters.eventlog import EventLog, EventLogError, Manifest, config_hash
from tests.conftest import ROOT, quote


def test_append_numbers_events_and_reads_them_back(tmp_path) -> None:
    log = EventLog.create(tmp_path / "r.db", Manifest(run_id="", mode="sim", seed=3, config={"a": 1}))
    got = [log.append(quote(i, "a", "1.0", "1.1")) for i in range(10)]
    assert [e.seq for e in got] == list(range(1, 11))
    log.close(ended="clean")
    again = EventLog.open(tmp_path / "r.db")
    assert list(again.events()) == got
    assert list(again.events(after=7)) == got[7:]
    assert again.manifest.seed == 3 and again.manifest.ended == "clean"
    assert again.manifest.config_hash == config_hash({"a": 1})
    assert again.counts_by_topic() == {"QuoteUpdated.v4": 10}
    assert again.next_seq == 11


def test_reading_pages_across_many_segments(tmp_path) -> None:
    log = EventLog.create(tmp_path / "r.db", Manifest(run_id="", mode="sim"))
    log._batch = 7  # many small segments
    for i in range(1000):
        log.append(quote(i, "a", "1", "2"))
    log.close()
    again = EventLog.open(tmp_path / "r.db")
    assert [e.seq for e in again.events()] == list(range(1, 1001))
    assert [e.seq for e in again.events(after=500)] == list(range(501, 1001))
    assert again.last_seq() == 1000
    # the library's own read path sees the same segments
    assert len(again._recorder.select_events(again.manifest.run_id)) == -(-1000 // 7)


def test_events_view_unrolls_one_row_per_event(tmp_path) -> None:
    log = EventLog.create(tmp_path / "r.db", Manifest(run_id="", mode="sim"))
    for i in range(5):
        log.append(quote(i, "a", "1", "2"))
    log.close()
    with sqlite3.connect(tmp_path / "r.db") as c:
        rows = c.execute("SELECT seq, topic FROM events ORDER BY seq").fetchall()
    assert rows == [(i, "QuoteUpdated.v4") for i in range(1, 6)]


def test_refuses_to_overwrite_and_names_the_file(tmp_path) -> None:
    EventLog.create(tmp_path / "r.db", Manifest(run_id="", mode="sim")).close()
    with pytest.raises(EventLogError, match="r.db"):
        EventLog.create(tmp_path / "r.db", Manifest(run_id="", mode="sim"))
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(EventLogError, match="junk.db"):
        EventLog.open(tmp_path / "junk.db")
    with pytest.raises(EventLogError, match="no such run file"):
        EventLog.open(tmp_path / "absent.db")


def test_acknowledged_events_survive_a_killed_process_and_the_run_resumes(tmp_path) -> None:
    path = tmp_path / "k.db"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from tapedeck.adapters.eventlog import EventLog, Manifest
        from tests.conftest import quote
        log = EventLog.create({str(path)!r}, Manifest(run_id="", mode="live"))
        for i in range(2500):
            log.append(quote(i, "a", "1", "2"))
        log.flush()                      # acknowledged
        for i in range(2500, 2600):
            log.append(quote(i, "a", "1", "2"))  # pending, never flushed
        print("acked", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL and "acked" in proc.stdout
    log = EventLog.open(path, resume=True)
    assert log.last_seq() == 2500
    assert log.manifest.ended == "crashed-recovered"
    assert log.append(quote(9, "a", "1", "2")).seq == 2501  # the same run goes on
    log.close(ended="clean")
    assert [e.seq for e in EventLog.open(path).events()][-2:] == [2500, 2501]


def test_a_log_holding_an_old_schema_version_still_replays(tmp_path) -> None:
    """A segment with a v1 quote cannot take the one-call decode path; it is upcast event by event."""
    import msgspec

    from tapedeck.adapters.eventlog import SEGMENT_TOPIC
    from eventsourcing.persistence import StoredEvent

    log = EventLog.create(tmp_path / "old.db", Manifest(run_id="", mode="import"))
    log.manifest.log_format = ""  # as code before chaining wrote it: unchained segments
    log.write_manifest()
    v1 = msgspec.json.encode([1, 5, "binance", 0, "binance", "ETHUSDT", "10.5", "1", "10.6", "2"])
    v2 = msgspec.json.encode(["QuoteUpdated", 2, 6, "test", 0, "okx", "ETH-USD", "10", "1", "11", "1"])  # as v2 code wrote it
    body = b'[["QuoteUpdated.v1",' + v1 + b'],["QuoteUpdated.v2",' + v2 + b"]]"
    log._recorder.insert_events([StoredEvent(originator_id=log.manifest.run_id, originator_version=1,
                                             topic=SEGMENT_TOPIC, state=body)])
    log.close()
    again = EventLog.open(tmp_path / "old.db")
    (first, typed, _state), = list(again.typed_segments())
    assert first == 1 and [type(e).__name__ for _t, e in typed] == ["QuoteUpdated", "QuoteUpdated"]
    q = typed[0][1]
    assert q.price(q.bid) == Decimal("10.5") and q.size(q.ask_size) == Decimal("2") and (q.bid, q.price_decimals) == (105, 1)
    assert [e.seq for e in again.events()] == [1, 2]


def ev_encode(e, seq):
    from tapedeck.domain import codec, events as ev
    return codec.encode(ev.with_seq(e, seq))
