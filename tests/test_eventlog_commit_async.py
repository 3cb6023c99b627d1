"""``EventLog.commit_async``: the pipelined group commit a live feed acknowledges on (issue 13). The
future resolves only once its events are durable (another connection reads them), appends go on
while a commit is under way and join the next one, a failed commit fails its futures and every later
one, close settles what waits, and a ``kill -9`` right after a future resolved loses none of it."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from tapedeck.adapters.eventlog import EventLogError, Manifest
from tests.conftest import ROOT, quote
from tests.pg_fixture import Store, pg_db, pg_server, store  # noqa: F401  (fixtures)


def committed(store: Store, name: str) -> int:
    """The last seq another connection reads (what is durable, not what this process holds)."""
    reader = store.cls.open(store.where(name))
    try:
        return reader.last_seq()
    finally:
        reader.close()


def test_the_future_resolves_once_its_events_are_durable_and_appends_go_on_meanwhile(store: Store) -> None:
    log = store.cls.create(store.where("a"), Manifest(run_id="", mode="live"), max_delay_ms=None)
    for i in range(10):
        log.append(quote(i, "a", "1", "2"))
    log._flush_lock.acquire()  # a commit in its fsync: the committer waits here
    try:
        fut = log.commit_async()
        for i in range(10, 15):  # the caller is not held up
            log.append(quote(i, "a", "1", "2"))
        second = log.commit_async()
        assert not fut.done() and not second.done()
        assert committed(store, "a") == 0
    finally:
        log._flush_lock.release()
    assert fut.result(timeout=10) >= 10
    assert second.result(timeout=10) == 15  # the appends made during the wait joined the group
    assert committed(store, "a") == 15
    again = log.commit_async()  # nothing pending: already durable
    assert again.done() and again.result() == 15
    log.close(ended="clean")
    assert [e.seq for e in store.cls.open(store.where("a")).events()] == list(range(1, 16))


def test_a_failed_commit_fails_its_future_and_every_later_one(store: Store) -> None:
    log = store.cls.create(store.where("f"), Manifest(run_id="", mode="live"), max_delay_ms=None)
    log.append(quote(1, "a", "1", "2"))
    assert log.commit_async().result(timeout=10) == 1
    real = log._recorder.insert_events

    def broken(*a: object, **k: object) -> None:
        raise EventLogError("disk full (a test's)")

    log._recorder.insert_events = broken  # type: ignore[method-assign]
    log.append(quote(2, "a", "1", "2"))
    with pytest.raises(EventLogError, match="disk full"):
        log.commit_async().result(timeout=10)
    log._recorder.insert_events = real  # type: ignore[method-assign]
    log.append(quote(3, "a", "1", "2"))
    late = log.commit_async()
    assert late.done() and isinstance(late.exception(), EventLogError)  # nothing more is acknowledged
    assert committed(store, "f") == 1
    log.close()


def test_close_settles_every_waiting_future(store: Store) -> None:
    log = store.cls.create(store.where("c"), Manifest(run_id="", mode="live"), max_delay_ms=None)
    log.append(quote(1, "a", "1", "2"))
    log._flush_lock.acquire()
    fut = log.commit_async()
    closer = threading.Thread(target=log.close, kwargs={"ended": "clean"})
    closer.start()
    log._flush_lock.release()
    closer.join(10)
    assert fut.result(timeout=10) == 1
    after = log.commit_async()
    assert isinstance(after.exception(timeout=1), EventLogError)  # closed: nothing to promise


def test_what_a_resolved_future_promised_survives_kill_9(store: Store) -> None:
    where = store.where("k")
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from {store.cls.__module__} import {store.cls.__name__} as Log
        from tapedeck.adapters.eventlog import Manifest
        from tests.conftest import quote
        log = Log.create({where!r}, Manifest(run_id="", mode="live"), max_delay_ms=60_000)
        acked = 0
        for batch in range(40):
            for i in range(64):
                log.append(quote(batch * 64 + i, "a", "1", "2"))
            fut = log.commit_async()
            if batch % 3 == 0:
                acked = fut.result()
        for i in range(100):
            log.append(quote(10_000 + i, "a", "1", "2"))
        log.commit_async()  # in flight when the process dies
        print("acked", acked, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=str(ROOT))
    assert proc.returncode == -signal.SIGKILL and "acked" in proc.stdout, proc.stderr
    acked = int(proc.stdout.split()[-1])
    assert acked >= 39 * 64
    log = store.cls.open(where, resume=True)
    assert log.last_seq() >= acked
    assert [e.seq for e in log.events()] == list(range(1, log.last_seq() + 1))
    log.close(ended="clean")


def test_with_a_group_window_the_requests_in_between_gather_into_one_commit(store: Store) -> None:
    log = store.cls.create(store.where("g"), Manifest(run_id="", mode="live"), max_delay_ms=None)
    log.group_ms = 300.0
    log.append(quote(1, "a", "1", "2"))
    assert log.commit_async().result(timeout=10) == 1
    before = log._flushes
    futures = []
    for i in range(2, 7):  # five batches asked for well inside the window
        log.append(quote(i, "a", "1", "2"))
        futures.append(log.commit_async())
    assert [f.result(timeout=10) for f in futures] == [6] * 5
    assert log._flushes == before + 1  # one commit for the five
    log.close(ended="clean")
