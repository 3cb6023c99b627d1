"""The loop split into three processes over one PostgreSQL database: ``tapedeck serve-role``.

One ``--store postgresql://host/DB?run=NAME`` names three runs (schemas) of one database:

* ``NAME_in``: the **scanner** records the inputs (here: a recorded log's inputs, ``--tape``, as a
  replay takes them) into its own run, committed every ``--flush-every`` inputs. Restarted, it
  resumes its run and appends from the first input it does not hold.
* ``NAME``: the **evaluator** follows ``NAME_in`` through the library's notification log and runs
  the engine in the ordinary ``runtime.loop.Loop``, recording inputs and decisions into the run
  ``NAME`` (the decided run: the one ``replay --verify`` checks). Its gateway is the executor on
  the other side of the database (``RemoteGateway``): ``submit`` returns once the executor has
  recorded what came of the intent, so the run holds the same events in the same order as one
  process with a paper gateway.
* ``NAME_ex``: the **executor** follows ``NAME`` through the notification log, keeps a replica of
  the engine's state (inputs and executions handled, recorded decisions applied, as ``verify``
  does), hands each recorded ``OrderIntended`` to the paper gateway, and records what it reports
  into ``NAME_ex`` together with a tracking record (the notification id of the segment of
  ``NAME`` it has processed), in one transaction: the library's tracking table. Restarted, it
  re-reads ``NAME`` from the start to rebuild its replica and gateway, submitting again only the
  intents after its tracking position, whose reports were never committed: nothing is lost or
  executed twice.

Followers read each run's segments in notification order, checking each against the chain, and
stop once the followed run is closed and read to its end (a clean one against its seal too).
A restarted **evaluator** resumes its run by driving the loop again from the first input, each
event checked against the one the run holds at that seq, appending only after them (``Resumed``):
its engine, pending timers and gateway position are rebuilt by doing it all again (deterministic),
and an intent the executor already filled is not submitted twice (its reports are read back).
Not built: snapshots (a restarted evaluator re-reads its whole run); a live gateway behind the
executor (its reports arrive later than ``submit``, so the order
is the order they arrive, as in one process); following by LISTEN/NOTIFY (followers poll
``select_notifications`` every ``POLL_S``).
"""
from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable, Iterator

from tapedeck.adapters.eventlog import Chain, EventLogError, LogLocked, Manifest
from tapedeck.adapters.pg_eventlog import PgEventLog, PgURL
from tapedeck.domain import codec, events as ev

ROLES = ("scanner", "evaluator", "executor")
EXECUTOR = "executor"  # the executor's application name in the tracking table
POLL_S = 0.01
STILL_WRITTEN = ("open", "crashed-recovered")  # a resumed run is written again until it closes
_PAGE = 16


def runs(store: str) -> tuple[str, str, str]:
    """(inputs, decided, executions): the three runs one ``--store`` names (password kept, to connect)."""
    url = PgURL.parse(store)
    if len(url.run) > 37:
        raise EventLogError(f"{url.display}: a role's run name has at most 37 characters (it gets _in and _ex)")
    head, _, run = store.rpartition("run=")
    return f"{head}run={run}_in", store, f"{head}run={run}_ex"


def open_to_write(where: str, manifest: Manifest, timeout_s: float = 30.0) -> PgEventLog:
    """The run at ``where`` resumed by this process, or created when it is not there. A writer
    that was just killed may hold its lock until the server notices: wait for that."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return PgEventLog.open(where, resume=True, max_delay_ms=0)
        except LogLocked:
            if time.monotonic() > deadline:
                raise
            time.sleep(POLL_S * 10)
        except EventLogError as e:
            if "no such run" not in str(e):
                raise
            return PgEventLog.create(where, manifest, max_delay_ms=0)


def wait_for(where: str, stop: Callable[[], bool] = lambda: False, timeout_s: float = 120.0) -> PgEventLog:
    """The run at ``where`` once another role has created it."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return PgEventLog.open(where)
        except EventLogError as e:
            if "no such run" not in str(e) or stop() or time.monotonic() > deadline:
                raise
        time.sleep(POLL_S * 5)


class Follower:
    """A run's segments in notification order, each checked against the chain before it is
    decoded: ``poll()`` what is there now, ``follow()`` until the run is closed and read."""

    def __init__(self, log: PgEventLog):
        self.log = log
        self.position = 0  # notification id of the last segment read
        self.chain = Chain()
        self.chain.start(log)

    def poll(self) -> list[tuple[int, int, list[tuple[str, ev.Event]]]]:
        log, out = self.log, []
        while True:
            with log._db("following the notification log"):
                page = log._recorder.select_notifications(start=self.position + 1, limit=_PAGE)
            for n in page:
                events, h, link = self.chain.check(log.path, n.originator_version, n.topic, n.state)
                items = codec.decode_segment(events)
                if items is None:  # an older schema inside: event by event
                    items = [(t, codec.decoder_for(t)(b)) for t, b in log._raw_items(n.originator_version, events)]
                self.chain.advance(log.path, n.originator_version, n.topic, h, link, len(items))
                self.position = n.id
                out.append((n.id, n.originator_version, items))
            if len(page) < _PAGE:
                return out

    def follow(self) -> Iterator[tuple[int, int, list[tuple[str, ev.Event]]]]:
        while True:
            batch = self.poll()
            if batch:
                yield from batch
                continue
            data = self.log.stored_manifest()
            if data.get("ended", "open") not in STILL_WRITTEN:
                batch = self.poll()  # committed before the manifest said it ended
                if batch:
                    yield from batch
                    continue
                self.chain.manifest = data
                self.chain.finish(self.log)  # a sealed run: what was read is what it sealed
                return
            time.sleep(POLL_S)


# --------------------------------------------------------------------------- scanner


def serve_scanner(store: str, tape: str, *, flush_every: int = 0) -> int:
    """Record ``tape``'s inputs (as a replay of it takes them) into the inputs run; returns how many
    it appended (a restarted scanner appends only those its run does not hold yet)."""
    from tapedeck.runtime.bootstrap import open_store

    where, _decided, _ex = runs(store)
    source = open_store(tape)
    try:
        feed = open_to_write(where, Manifest(run_id="", mode="record", sources=list(source.manifest.sources),
                                             parent=str(getattr(source, "path", ""))))
        held, added = feed.next_seq - 1, 0
        inputs = (e for e in source.events() if e.KIND == ev.INPUT and type(e) is not ev.TimerFired)
        for i, e in enumerate(inputs):
            if i < held:
                continue
            feed.append(e)
            added += 1
            if flush_every and added % flush_every == 0:
                feed.flush()
        feed.close(ended="clean")
    finally:
        source.close()
    return added


# --------------------------------------------------------------------------- evaluator


class RemoteGateway:
    """The evaluator's gateway: the executor process, through the database. ``submit`` (called by
    the loop once the intent is committed) waits until the executor's tracking position has passed
    the intent's segment, then reports what the executor recorded for that intent (the reports of
    the executions run are in intent order: each intent's are taken in turn)."""

    def __init__(self, decided: PgEventLog, executions: PgEventLog):
        self.decided, self.executions = decided, executions
        self.follower = Follower(executions)
        self.report: Callable[[ev.Event], None] | None = None
        self._read: deque[ev.Event] = deque()

    def bind(self, report: Callable[[ev.Event], None]) -> None:
        self.report = report

    def submit(self, intent: ev.OrderIntended) -> None:
        target = self.decided._one("reading the notification log", "SELECT notification_id FROM {}.stored_events "
                                   "WHERE originator_id = %s AND originator_version <= %s "
                                   "ORDER BY originator_version DESC LIMIT 1", (self.decided._stream, intent.seq))
        while self.executions.tracking(EXECUTOR) < target:
            time.sleep(POLL_S)
        for _nid, _first, items in self.follower.poll():  # committed with that tracking record
            self._read.extend(e for _t, e in items)
        assert self.report is not None
        while self._read and getattr(self._read[0], "intent", None) == intent.seq:
            self.report(self._read.popleft())


class Resumed:
    """The decided run of a restarted evaluator, as its loop's store: the loop is driven again from
    the first input (engine, timers and gateway rebuilt by doing everything again, which is
    deterministic) and each event it produces while the run already holds one at that seq is
    checked against it, byte for byte, instead of appended; the rest is appended. A difference
    stops the evaluator (``EventLogError`` naming the seq): the run was not made by this config."""

    def __init__(self, log: PgEventLog):
        self.log = log
        self._held, self._next = log.next_seq - 1, 1
        self._recorded = log.raw()
        self._decoders: dict[str, Any] = {}

    def append(self, event: ev.Event) -> ev.Event:
        if self._next > self._held:
            return self.log.append(event)
        seq, self._next = self._next, self._next + 1
        event = ev.with_seq(event, seq)
        _seq, topic, body = next(self._recorded)
        dec = self._decoders.get(topic) or self._decoders.setdefault(topic, codec.decoder_for(topic))
        if codec.encode(dec(body)) != codec.encode(event):
            raise EventLogError(f"{self.log.path}: the restarted evaluator decides differently at seq {seq}: "
                                f"recorded {topic}, now {type(event).__name__}")
        return event

    def flush(self) -> None:
        if self._next > self._held:
            self.log.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.log, name)


def serve_evaluator(config: dict[str, Any], store: str) -> Any:
    """Follow the inputs run and record the decided run, the executor as gateway; returns the loop's
    stats. Restarted, it resumes its run (``Resumed``)."""
    from tapedeck.runtime.loop import Loop
    from tapedeck.runtime.strategy_loader import build_engine, code_identity

    feed_at, decided_at, ex_at = runs(store)
    feed = wait_for(feed_at)
    engine = build_engine(config)
    manifest = Manifest(run_id="", mode="replay", config=config, sources=list(feed.manifest.sources),
                        parent=str(feed.manifest.parent or feed.path), code=code_identity(engine),
                        notes={"roles": {"inputs": str(feed.path), "executions": PgURL.parse(ex_at).display}})
    decided = open_to_write(decided_at, manifest)
    try:
        executions = wait_for(ex_at)
        store_: Any = Resumed(decided) if decided.next_seq > 1 else decided
        loop = Loop(engine, store_, RemoteGateway(decided, executions))
        inputs = (e for _nid, _first, items in Follower(feed).follow() for _t, e in items)
        stats = loop.run(inputs)
        if isinstance(store_, Resumed) and store_._next <= store_._held:
            raise EventLogError(f"{decided.path}: holds events after seq {store_._next - 1} that its inputs do not make")
    except BaseException as e:
        decided.close(ended=f"failed: {type(e).__name__}")
        raise
    decided.manifest.started_ts, decided.manifest.ended_ts = stats.first_ts, stats.last_ts
    decided.close(ended="clean")
    return stats


# --------------------------------------------------------------------------- executor


def serve_executor(config: dict[str, Any], store: str) -> int:
    """Follow the decided run, paper-fill its intents, record the reports with the tracking record;
    returns how many intents it submitted and recorded in this process's life."""
    from tapedeck.adapters.paper_gateway import PaperGateway
    from tapedeck.runtime.strategy_loader import build_engine
    from tapedeck.runtime.strategy_loader import with_pool_identity

    _feed, decided_at, ex_at = runs(store)
    out = open_to_write(ex_at, Manifest(run_id="", mode="executions", config=config))
    try:
        done = out.tracking(EXECUTOR)
        decided = wait_for(decided_at)
        engine = build_engine(config)
        paper = PaperGateway.from_config(engine.state, with_pool_identity(config))
        reports: list[ev.Event] = []
        paper.bind(reports.append)
        handle, decided_fn, DECISION, Intended = engine.handle, engine.decided, ev.DECISION, ev.OrderIntended
        submitted = 0
        for nid, _first, items in Follower(decided).follow():
            for _topic, e in items:
                if e.KIND == DECISION:
                    decided_fn(e)
                    if type(e) is Intended:
                        paper.submit(e)  # type: ignore[arg-type]
                else:
                    handle(e)
                    paper.observe(e)  # a resting paper order fills on a later book, as in one process
            if nid <= done:  # recorded before a restart: rebuilt, not recorded again
                reports.clear()
                continue
            submitted += sum(1 for _t, e in items if type(e) is Intended)
            for r in reports:
                out.append(r)
            reports.clear()
            out.commit_tracking(EXECUTOR, nid)
    except BaseException as e:
        out.close(ended=f"failed: {type(e).__name__}")
        raise
    out.close(ended="clean")
    return submitted
