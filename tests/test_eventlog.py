"""The run log: numbering, group commits, manifest, durability on a killed process, the library path.
Every test runs on both stores (``store``: SQLite files and PostgreSQL runs, ``tests/pg_fixture.py``)."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest
from decimal import Decimal

from tapedeck.adapters.eventlog import EventLog, EventLogError, Manifest, config_hash
from tests.conftest import ROOT, quote
from tests.pg_fixture import Store, pg_db, pg_server, store  # noqa: F401  (fixtures)


def test_append_numbers_events_and_reads_them_back(store: Store) -> None:
    log = store.cls.create(store.where("r"), Manifest(run_id="", mode="sim", seed=3, config={"a": 1}))
    got = [log.append(quote(i, "a", "1.0", "1.1")) for i in range(10)]
    assert [e.seq for e in got] == list(range(1, 11))
    log.close(ended="clean")
    again = store.cls.open(store.where("r"))
    assert list(again.events()) == got
    assert list(again.events(after=7)) == got[7:]
    assert again.manifest.seed == 3 and again.manifest.ended == "clean"
    assert again.manifest.config_hash == config_hash({"a": 1})
    assert again.counts_by_topic() == {"QuoteUpdated.v4": 10}
    assert again.next_seq == 11


def test_reading_pages_across_many_segments(store: Store) -> None:
    log = store.cls.create(store.where("r"), Manifest(run_id="", mode="sim"))
    log._batch = 7  # many small segments
    for i in range(1000):
        log.append(quote(i, "a", "1", "2"))
    log.close()
    again = store.cls.open(store.where("r"))
    assert [e.seq for e in again.events()] == list(range(1, 1001))
    assert [e.seq for e in again.events(after=500)] == list(range(501, 1001))
    assert again.last_seq() == 1000
    # the library's own read path sees the same segments
    assert len(again._recorder.select_events(again.manifest.run_id)) == -(-1000 // 7)


def test_events_view_unrolls_one_row_per_event(store: Store) -> None:
    log = store.cls.create(store.where("r"), Manifest(run_id="", mode="sim"))
    for i in range(5):
        log.append(quote(i, "a", "1", "2"))
    log.close()
    rows = store.query("r", "SELECT seq, topic FROM events ORDER BY seq")
    assert rows == [(i, "QuoteUpdated.v4") for i in range(1, 6)]


def test_refuses_to_overwrite_and_names_the_file(store: Store) -> None:
    store.cls.create(store.where("r"), Manifest(run_id="", mode="sim")).close()
    name = "r.db" if store.kind == "sqlite" else "run=r"
    with pytest.raises(EventLogError, match=name):
        store.cls.create(store.where("r"), Manifest(run_id="", mode="sim"))
    if store.kind == "sqlite":
        (store.tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    else:  # a schema that is no tapedeck run
        import psycopg

        with psycopg.connect(store.db_url, autocommit=True) as c:
            c.execute("CREATE SCHEMA junk")
            c.execute("CREATE TABLE junk.stored_events (x int)")
    with pytest.raises(EventLogError, match="junk"):
        store.cls.open(store.where("junk"))
    with pytest.raises(EventLogError, match="no such run"):
        store.cls.open(store.where("absent"))


def test_acknowledged_events_survive_a_killed_process_and_the_run_resumes(store: Store) -> None:
    where = store.where("k")
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from {store.cls.__module__} import {store.cls.__name__} as Log
        from tapedeck.adapters.eventlog import Manifest
        from tests.conftest import quote
        log = Log.create({where!r}, Manifest(run_id="", mode="live"))
        for i in range(2500):
            log.append(quote(i, "a", "1", "2"))
        log.flush()                      # acknowledged
        for i in range(2500, 2600):
            log.append(quote(i, "a", "1", "2"))  # pending, never flushed
        print("acked", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL and "acked" in proc.stdout, proc.stderr
    log = store.cls.open(where, resume=True)  # the killed writer's lock went with it
    assert log.last_seq() == 2500
    assert log.manifest.ended == "crashed-recovered"
    assert log.append(quote(9, "a", "1", "2")).seq == 2501  # the same run goes on
    log.close(ended="clean")
    assert [e.seq for e in store.cls.open(where).events()][-2:] == [2500, 2501]


def test_a_log_holding_an_old_schema_version_still_replays(store: Store) -> None:
    """A segment with a v1 quote cannot take the one-call decode path; it is upcast event by event."""
    import msgspec

    from tapedeck.adapters.eventlog import SEGMENT_TOPIC
    from eventsourcing.persistence import StoredEvent

    log = store.cls.create(store.where("old"), Manifest(run_id="", mode="import"))
    log.manifest.log_format = ""  # as code before chaining wrote it: unchained segments
    log.write_manifest()
    v1 = msgspec.json.encode([1, 5, "binance", 0, "binance", "ETHUSDT", "10.5", "1", "10.6", "2"])
    v2 = msgspec.json.encode(["QuoteUpdated", 2, 6, "test", 0, "okx", "ETH-USD", "10", "1", "11", "1"])  # as v2 code wrote it
    body = b'[["QuoteUpdated.v1",' + v1 + b'],["QuoteUpdated.v2",' + v2 + b"]]"
    log._recorder.insert_events([StoredEvent(originator_id=log.manifest.run_id, originator_version=1,
                                             topic=SEGMENT_TOPIC, state=body)])
    log.close()
    again = store.cls.open(store.where("old"))
    (first, typed, _state), = list(again.typed_segments())
    assert first == 1 and [type(e).__name__ for _t, e in typed] == ["QuoteUpdated", "QuoteUpdated"]
    q = typed[0][1]
    assert q.price(q.bid) == Decimal("10.5") and q.size(q.ask_size) == Decimal("2") and (q.bid, q.price_decimals) == (105, 1)
    assert [e.seq for e in again.events()] == [1, 2]


def ev_encode(e, seq):
    from tapedeck.domain import codec, events as ev
    return codec.encode(ev.with_seq(e, seq))
