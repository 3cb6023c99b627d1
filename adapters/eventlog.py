"""The run's event log: one SQLite file per run, on the ``eventsourcing`` library's recorders.

Events are stored by the library's ``SQLiteAggregateRecorder`` in its ``stored_events`` table, one
stream per run (``originator_id`` = the run id), in **segments**: each group commit is one stored
event whose ``originator_version`` is the sequence number of its first event. Why segments: one
SQLite row per event costs ~3.5 us here before any encoding (about 200k events/s end to end,
measured), below market-data rates; one row per commit records at over 1M events/s and reads back
as fast. A second table, ``manifest``, holds the run's manifest (version, config and its hash,
seed, mode, sources, start, end, how it ended, and the seal). The ``events`` view unrolls segments
into one row per event (seq, topic, body) for sqlite-utils / Datasette.

**Chained segments** (topic ``segment.v2``): the state is ``{"prev": P, "hash": H, "events": [...]}``
with ``[topic, event]`` pairs in ``events`` and P, H fixed-width hex at fixed offsets (so neither is
parsed on the hot path). The run's *digest* is blake2b-256 over the segments' event arrays joined
into one (``[a,b],[c]`` hashes as ``a,b,c``), so it does not depend on how events were batched and
never includes the random run id: the same scenario and seed give the same digest in any run and on
any backend. Each segment's ``hash`` is blake2b-256 of (the previous segment's hash, its first seq,
the digest so far), so it commits to everything before it and its own position; ``prev`` repeats the
hash before it. One hashing pass over the bytes serves both digest and chain. When a run closes
clean its **seal** goes into the manifest: last seq, segment count, digest, chain head and a hash of
the rest of the manifest. Every full read (``segments``, ``typed_segments``, ``events``,
``counts_by_topic``) first checks the manifest against its seal and the schema against ours, then,
before yielding a segment, that it starts where the one before ended, that its bytes match its hash
and that it links to its predecessor, and at the end compares what it read with the seal
(``LogTampered`` names the first bad segment by seq range). The chain has no key:
it finds damage and edits, but a forger who recomputes every hash and the seal is caught only by
``replay --verify`` re-deciding the run (and by a digest published elsewhere). Logs written before
chaining (topic ``segment.v1``: the state is the bare array, no seal) still load, read as
*unchained*, and are continued in that format.

Recording is batched: ``append`` gives an event its sequence number at once (so the engine sees it
numbered) and a group commit writes the pending batch in one transaction, when it reaches
``batch`` events, on ``flush``, or ``max_delay_ms`` after it was appended (a background thread
reading a monotonic clock; the domain never does), so a killed recorder loses at most that window.
``flush`` returns only after the batch is committed; runners flush before anything leaves the
process. ``commit_async`` is the pipelined form for a caller that must not wait (a live feed's
turn): a committer thread commits what is pending, at most every ``group_ms``, and the returned
future resolves once the caller's events are durable. The library opens file databases in WAL mode with SQLite's default ``synchronous=FULL``,
so a committed batch survives a killed process (and a power cut).

**One writer at a time**: a writer (``create``, ``open(resume=True)``, or the first write to an
opened log) holds an exclusive ``flock`` on ``<log>.lock`` until ``close``; a second one gets
``LogLocked`` naming the holder's pid. Readers take no lock. A damaged file (not SQLite, malformed,
missing table, bad JSON, bad manifest) raises ``LogDamaged`` naming the file and, where known,
the segment; every error here is an ``EventLogError`` with a one-line message.
"""
from __future__ import annotations

import concurrent.futures
import fcntl
import functools
import hashlib
import json
import os
import sqlite3
import threading
import time
import uuid
import weakref
from contextlib import closing, contextmanager
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import msgspec
from eventsourcing.persistence import PersistenceError, StoredEvent
from eventsourcing.sqlite import SQLiteAggregateRecorder, SQLiteDatastore

from tapedeck import __version__ as TAPEDECK_VERSION  # the installed package's, not a constant
from tapedeck.adapters import event_views
from tapedeck.domain import codec, events as ev

DEFAULT_BATCH = 16384  # events per group commit; each commit costs ~2.5 ms of fsync here
DEFAULT_MAX_DELAY_MS = 200  # longest an appended event waits for its commit

SEGMENT_TOPIC = "segment.v1"  # unchained segments (logs written before chaining)
SEGMENT_V1 = SEGMENT_TOPIC
SEGMENT_V2 = "segment.v2"  # chained segments, the format written now
LOG_FORMAT = SEGMENT_V2

_HEAD, _MID, _TAIL = b'{"prev":"', b'","hash":"', b'","events":'
_PREV = slice(9, 73)
_HASH = slice(83, 147)
_EVENTS_AT = 158  # the events array starts here and ends one byte before the state's end
ZERO_HASH = "0" * 64

_MANIFEST_DDL = "CREATE TABLE IF NOT EXISTS manifest (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL)"
_EVENTS_VIEW_DDL = (
    "CREATE VIEW IF NOT EXISTS events AS "
    "SELECT s.originator_version + j.key AS seq, j.value ->> 0 AS topic, j.value -> 1 AS body "
    "FROM stored_events s, json_each(CAST(s.state AS TEXT), "
    "CASE s.topic WHEN 'segment.v1' THEN '$' ELSE '$.events' END) j "
    "WHERE s.topic IN ('segment.v1', 'segment.v2')"
)
_segment_encoder = msgspec.json.Encoder()
_segment_decoder = msgspec.json.Decoder(list[tuple[str, msgspec.Raw]])
_DB_ERRORS = (sqlite3.Error, PersistenceError)


class EventLogError(RuntimeError):
    """The log file is missing, not a tapedeck log, or unreadable; the message names the file."""


class LogDamaged(EventLogError):
    """The file cannot be read as a run: not SQLite, malformed, a table missing, bad JSON, bad manifest."""


class LogTampered(EventLogError):
    """What is stored does not match its chain or seal (an edit, deletion, gap or renumbering).
    ``segment`` is the (first, last) seq range of the first bad segment, when one is to blame."""

    def __init__(self, message: str, segment: tuple[int, int] | None = None):
        super().__init__(message)
        self.segment = segment


class LogLocked(EventLogError):
    """Another writer holds the log."""


def config_hash(config: dict[str, Any]) -> str:
    """Stable hash of a config: sha256 of its canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def manifest_hash(data: dict[str, Any]) -> str:
    """Hash of a stored manifest's fields other than the seal (what the seal vouches for)."""
    rest = {k: v for k, v in data.items() if k != "seal"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class Manifest:
    run_id: str
    mode: str  # sim | replay | paper | live | import
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    seed: int = 0
    sources: list[str] = field(default_factory=list)
    started_ts: int = 0  # event time of the first event (ns), set by the runner
    ended_ts: int = 0
    ended: str = "open"  # open | clean | crashed-recovered | failed: <why>
    log_format: str = ""  # segment.v2 (chained); "" in logs written before chaining
    seal: dict[str, Any] = field(default_factory=dict)  # written when the run closes clean
    version: str = TAPEDECK_VERSION
    parent: str = ""  # the log this run was replayed from, if any
    notes: dict[str, Any] = field(default_factory=dict)
    # The code that decided the run (runtime.strategy_loader.code_identity): tapedeck's version and
    # domain/ hash, each strategy's module, class, distribution and source hash; {} before it was kept.
    code: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Manifest":
        """Parse a stored manifest; a field of the wrong type is a ``ValueError`` naming it."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return cls.from_data(data)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "Manifest":
        known = {}
        for name, f in cls.__dataclass_fields__.items():
            if name not in data:
                if f.default is MISSING and f.default_factory is MISSING:
                    raise ValueError(f"field {name!r} is missing")
                continue
            value = data[name]
            if f.default is not MISSING:
                want: type | None = type(f.default)
            elif f.default_factory is not MISSING:
                want = type(f.default_factory())
            else:
                want = str
            if want in (str, int, float, list, dict) and (not isinstance(value, want) or type(value) is bool):
                raise ValueError(f"field {name!r} is {type(value).__name__}, not {want.__name__}")
            known[name] = value
        return cls(**known)


class LogUnwritable(EventLogError):
    """The log's folder cannot be written (missing, read only, not a folder)."""


class WriterLock:
    """One writer per log: an exclusive ``flock`` on ``<log>.lock``, held from ``acquire`` to
    ``release`` (the kernel drops it if the process dies). The file holds the writer's pid, for
    the message a second writer gets; it is removed on release."""

    def __init__(self, log_path: str | Path):
        self.log_path = Path(log_path)
        self.path = Path(str(log_path) + ".lock")
        self._fd: int | None = None

    def acquire(self) -> "WriterLock":
        if self._fd is not None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._acquire()
        except OSError as e:
            raise LogUnwritable(f"{self.log_path}: cannot write the log here: {e.strerror or e}") from None

    def _acquire(self) -> "WriterLock":
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                finally:
                    os.close(fd)
                raise LogLocked(f"{self.log_path}: another writer (pid {holder}) has this log open; "
                                f"wait for it to finish or choose another --out") from None
            try:  # a writer releasing just now may have removed the file we locked: lock the new one
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it, so nobody locks a removed file
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class Integrity:
    """What a full read found: the verdict on the stored bytes (not on the decisions)."""

    chained: bool  # segments carry the chain (False: a log written before chaining)
    sealed: bool  # the manifest holds a seal, and everything read matches it
    complete: bool  # the run ended clean
    ended: str
    last_seq: int
    segments: int
    digest: str

    def describe(self) -> str:
        span = f"seq 1..{self.last_seq}" if self.last_seq else "no events"
        if not self.complete:
            return (f"incomplete: the run ended {self.ended!r} without a seal; {self.segments} segments "
                    f"({span}) {'chained and intact' if self.chained else 'unchained'}")
        if not self.chained:
            if self.sealed:
                return (f"unchained (old format), sealed: {self.segments} segments ({span}) contiguous, "
                        "digest matches the seal")
            return f"unchained (old format): no chain or seal to check; {self.segments} segments ({span}) contiguous"
        return f"sealed: {self.segments} segments ({span}) chained and intact, digest matches the seal"

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Chain:
    """The running digest and chain over a log's segments, in order. The writer extends it as it
    commits; a reader re-derives it from the stored bytes and stops at the first segment that does
    not fit (``check`` before decoding a segment, ``advance`` after, ``finish`` against the seal)."""

    def __init__(self) -> None:
        self.digest = hashlib.blake2b(digest_size=32)
        self.head = ZERO_HASH
        self.next_seq = 1
        self.segments = 0
        self.chained: bool | None = None  # unknown until the first segment
        self.manifest: dict[str, Any] | None = None  # as stored, once ``start`` has read it

    def start(self, log: "EventLog") -> None:
        """Before the first segment: the manifest must agree with its seal (so an edited config is
        reported as tampering, not as the divergence it would cause) and the schema must be ours."""
        path = log.path
        data = self.manifest = log.stored_manifest()
        seal, ended, fmt = data.get("seal") or {}, data.get("ended"), data.get("log_format", "")
        if seal:
            if not isinstance(seal, dict):
                raise LogTampered(f"{path}: tampered: the seal is not an object")
            if ended != "clean":
                raise LogTampered(f"{path}: tampered: the manifest holds a seal but says the run ended {ended!r}")
            if seal.get("manifest") != manifest_hash(data):
                raise LogTampered(f"{path}: tampered: the manifest changed after the run was sealed")
        elif ended == "clean" and fmt == SEGMENT_V2:
            raise LogTampered(f"{path}: tampered: the run says it ended clean but has no seal")
        config, chash = data.get("config"), data.get("config_hash")
        if config and chash and config_hash(config) != chash:
            raise LogTampered(f"{path}: tampered: the manifest's config does not match its config_hash")
        if fmt == SEGMENT_V2:
            schema = log._schema()
            for (kind, name), known in _schema().items():
                if (kind, name) not in schema:
                    raise LogDamaged(f"{path}: damaged: the {kind} {name!r} is missing")
                if schema[(kind, name)] not in known:
                    raise LogTampered(f"{path}: tampered: the {kind} {name!r} is not the one tapedeck writes")
            if (wrong := event_views.check_views(schema)) is not None:
                raise LogTampered(f"{path}: tampered: {wrong}")

    def _link(self, first: int, body: memoryview | bytes) -> tuple[Any, str]:
        h = self.digest.copy()
        if self.segments:
            h.update(b",")
        h.update(body)
        link = hashlib.blake2b(bytes.fromhex(self.head) + first.to_bytes(8, "big") + h.digest(), digest_size=32)
        return h, link.hexdigest()

    # writer side
    def seal_segment(self, first: int, events: bytes, chained: bool) -> tuple[bytes, Any, str]:
        """The stored state of a new segment holding ``events`` (an encoded array), and the chain after it."""
        h, link = self._link(first, memoryview(events)[1:-1])
        if not chained:
            return events, h, self.head
        return b"".join((_HEAD, self.head.encode(), _MID, link.encode(), _TAIL, events, b"}")), h, link

    # reader side
    def check(self, path: Path, first: Any, topic: Any, state: Any) -> tuple[memoryview, Any, str]:
        """The events array of the stored segment, once it is known to fit after what came before."""
        if type(first) is not int:
            raise LogTampered(f"{path}: tampered: a segment after seq {self.next_seq - 1} has seq {first!r}, "
                              "not an integer", (self.next_seq, self.next_seq))
        if first != self.next_seq:
            if self.segments == 0:
                raise LogTampered(f"{path}: tampered at segment seq {_span(first, topic, state)}: the first "
                                  f"segment starts at seq {first}, not 1 (seq 1..{_minus1(first)} missing or "
                                  "renumbered)", (first, first))
            if isinstance(first, int) and first > self.next_seq:
                raise LogTampered(f"{path}: tampered at segment seq {_span(first, topic, state)}: gap, seq "
                                  f"{self.next_seq}..{first - 1} missing (deleted or renumbered)", (first, first))
            raise LogTampered(f"{path}: tampered at segment seq {_span(first, topic, state)}: it overlaps the "
                              f"segment before it, which ends at seq {self.next_seq - 1} (renumbered)", (first, first))
        if isinstance(state, str):
            if topic == SEGMENT_V2:  # the recorder writes a BLOB: TEXT is a changed row (one flipped type bit)
                raise LogTampered(f"{path}: tampered at segment seq {first}: its state is stored as text, "
                                  "not bytes", (first, first))
            state = state.encode()
        if not isinstance(state, bytes):
            raise LogTampered(f"{path}: tampered at segment seq {first}: its state is {type(state).__name__}, "
                              "not bytes", (first, first))
        view = memoryview(state)
        if topic == SEGMENT_V2:
            if self.chained is False:
                raise LogTampered(f"{path}: tampered at segment seq {_span(first, topic, state)}: a chained segment "
                                  "after unchained ones", (first, first))
            if not (state.startswith(_HEAD) and state[73:83] == _MID and state[147:_EVENTS_AT] == _TAIL
                    and state[_EVENTS_AT:_EVENTS_AT + 1] == b"[" and state.endswith(b"]}")):
                raise LogTampered(f"{path}: tampered at segment seq {first}: not a chained segment "
                                  "(its layout is broken)", (first, first))
            events = view[_EVENTS_AT:-1]
            if state[_PREV] != self.head.encode():
                raise LogTampered(f"{path}: tampered at segment seq {_span(first, topic, state)}: it does not link "
                                  "to the segment before it (chain broken)", (first, first))
            h, link = self._link(first, events[1:-1])
            if state[_HASH] != link.encode():
                raise LogTampered(f"{path}: tampered at segment seq {_span(first, topic, state)}: its contents do "
                                  "not match its hash (edited or damaged)", (first, first))
            return events, h, link
        if topic == SEGMENT_V1:
            if self.chained:
                raise LogTampered(f"{path}: tampered at segment seq {_span(first, topic, state)}: an unchained "
                                  "segment inside a chained log", (first, first))
            if not (state.startswith(b"[") and state.endswith(b"]")):
                raise LogDamaged(f"{path}: damaged: segment at seq {first}: not a JSON array")
            h, link = self._link(first, view[1:-1])
            return view, h, self.head
        raise LogTampered(f"{path}: tampered at seq {first}: a stored row with topic {topic!r} is not a segment",
                          (first, first))

    def advance(self, path: Path, first: int, topic: str, h: Any, link: str, count: int) -> None:
        if count == 0:
            raise LogTampered(f"{path}: tampered at segment seq {first}: an empty segment", (first, first))
        self.digest, self.head = h, link
        self.next_seq = first + count
        self.segments += 1
        self.chained = topic == SEGMENT_V2

    def finish(self, log: "EventLog") -> Integrity:
        """Compare what was read with the manifest's seal; ``LogTampered`` when they disagree."""
        path = log.path
        data = self.manifest if self.manifest is not None else log.stored_manifest()
        last = self.next_seq - 1
        ended = data.get("ended", "")
        seal = data.get("seal") or {}
        fmt = data.get("log_format", "")
        chained = self.chained if self.chained is not None else fmt == SEGMENT_V2
        digest = self.digest.hexdigest()
        if self.chained is False and fmt == SEGMENT_V2:
            raise LogTampered(f"{path}: tampered: the manifest says chained segments, the log holds unchained ones")
        if self.chained and fmt != SEGMENT_V2:
            raise LogTampered(f"{path}: tampered: the log holds chained segments but its manifest names "
                              f"format {fmt!r}")
        foreign = log._foreign_rows()
        if foreign:
            raise LogTampered(f"{path}: tampered: {foreign} stored row(s) belong to no segment of run {log._stream}")
        if seal:
            sealed_last = seal.get("last_seq")
            if sealed_last != last:
                if isinstance(sealed_last, int) and sealed_last > last and log._rows_after(last):
                    raise EventLogError(f"{path}: the log grew while it was read (is it still being written?)")
                what = "missing" if isinstance(sealed_last, int) and sealed_last > last else "added"
                raise LogTampered(f"{path}: tampered: the sealed run ends at seq {sealed_last}, the log at seq "
                                  f"{last} (segments {what} at the end)", (last, last))
            if seal.get("segments") != self.segments:
                raise LogTampered(f"{path}: tampered: sealed with {seal.get('segments')} segments, holds {self.segments}")
            if seal.get("digest") != digest:
                raise LogTampered(f"{path}: tampered: digest {digest} differs from the sealed {seal.get('digest')}")
            if chained and seal.get("chain") != self.head:
                raise LogTampered(f"{path}: tampered: the chain ends at {self.head}, the seal says {seal.get('chain')}")
        return Integrity(chained=bool(chained), sealed=bool(seal), complete=ended == "clean", ended=str(ended),
                         last_seq=last, segments=self.segments, digest=digest)


# Definitions a chained log may hold, as SQLite stores them. When one changes, keep the old text
# here too, so logs written before still check out.
_STORED_EVENTS_DDL = ("CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, topic TEXT, "
                      "state BLOB, PRIMARY KEY (originator_id, originator_version)) WITHOUT ROWID")


@functools.cache
def _schema() -> dict[tuple[str, str], frozenset[str]]:
    tables = SQLiteAggregateRecorder(SQLiteDatastore(":memory:", originator_id_type="text")).create_table_statements
    out: dict[tuple[str, str], set[str]] = {("table", "stored_events"): {_STORED_EVENTS_DDL}}
    for ddl in [*tables, _MANIFEST_DDL, _EVENTS_VIEW_DDL]:
        ddl = ddl.replace(" IF NOT EXISTS", "")
        kind, name = ddl.split()[1].lower(), ddl.split()[2]
        out.setdefault((kind, name), set()).add(ddl)
    return {k: frozenset(v) for k, v in out.items()}


def _minus1(first: Any) -> Any:
    return first - 1 if isinstance(first, int) else "?"


def _span(first: Any, topic: Any, state: Any) -> str:
    """``first..last`` of a stored segment, if its events still parse (for naming a bad one)."""
    try:
        events = state[_EVENTS_AT:-1] if topic == SEGMENT_V2 else state
        return f"{first}..{first + len(_segment_decoder.decode(events)) - 1}"
    except Exception:  # naming only: the segment is already known bad
        return f"{first}.."


def _events_part(path: Path, first: int, topic: str, state: Any) -> memoryview:
    """The events array of a stored segment, without checking the chain (reads from the middle)."""
    if isinstance(state, str):
        state = state.encode()
    if topic == SEGMENT_V2 and isinstance(state, bytes) and len(state) > _EVENTS_AT:
        return memoryview(state)[_EVENTS_AT:-1]
    if topic == SEGMENT_V1 and isinstance(state, bytes):
        return memoryview(state)
    raise LogDamaged(f"{path}: damaged: the stored row at seq {first} is not a segment (topic {topic!r})")


_PAGE = 4  # segments per read query (see EventLog._rows)


class EventLog:
    """Append-only, numbered event log of one run."""

    def __init__(self, path: str | Path, manifest: Manifest, datastore: SQLiteDatastore, next_seq: int,
                 *, max_delay_ms: float | None = DEFAULT_MAX_DELAY_MS):
        self.path = Path(path)
        self.manifest = manifest
        self._datastore = datastore
        self._recorder = SQLiteAggregateRecorder(datastore)
        self._stream = manifest.run_id
        self._next_seq = next_seq
        self._pending: list[tuple[str, ev.Event]] = []
        self._pending_first = next_seq
        self._batch = DEFAULT_BATCH
        self._topics = {t: codec.topic(t) for t in ev.EVENT_TYPES}
        self.max_delay_ms = max_delay_ms  # None or 0: commit on size and flush only
        self.integrity: Integrity | None = None  # set by the last full read
        self._chain = Chain()  # the writer's, restored from the stored segments when it opens a log
        self._chained = True
        self._writer: WriterLock | None = None
        self._init_committing()
        self._closed = False

    def _init_committing(self) -> None:
        """The writer's commit machinery (every store): the flush lock, the timer thread, the committer."""
        self._flush_lock = threading.Lock()
        self._flushes = 0
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._commit_cv = threading.Condition()  # guards _waiters and _commit_error
        self._waiters: list[tuple[int, concurrent.futures.Future[int]]] = []  # (seq, its future) in request order
        self._commit_error: BaseException | None = None
        self._committer: threading.Thread | None = None
        self.group_ms: float = 0.0  # commit_async: the least time between two commits' starts (0: back to back)

    # ------------------------------------------------------------------ opening

    @staticmethod
    def _datastore(path: Path) -> SQLiteDatastore:
        return SQLiteDatastore(str(path), originator_id_type="text", pool_size=1, max_overflow=2)

    @contextmanager
    def _db(self, what: str, writing: bool = False) -> Iterator[None]:
        """SQLite's and the library's errors as one line naming the file and what was being done:
        ``LogDamaged`` for a read, ``EventLogError`` for a write (a full disk is no damage)."""
        try:
            yield
        except _DB_ERRORS as e:
            if writing:
                raise EventLogError(f"{self.path}: cannot record: {what}: {e}") from None
            raise LogDamaged(f"{self.path}: damaged: {what}: {e}") from None

    @classmethod
    def create(cls, path: str | Path, manifest: Manifest, *, overwrite: bool = False,
               max_delay_ms: float | None = DEFAULT_MAX_DELAY_MS) -> "EventLog":
        """A new run at ``path``, this process its only writer until ``close``."""
        path = Path(path)
        lock = WriterLock(path).acquire()  # before looking at (or removing) what is there
        try:
            if path.is_dir():
                raise EventLogError(f"{path}: is a directory, not a run file")
            if path.exists() or path.is_symlink():
                if not overwrite:
                    raise EventLogError(f"{path} already exists (choose another --out, remove it, or give --force where the command has it)")
                remove_run_files(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            if not manifest.run_id:
                manifest.run_id = uuid.uuid4().hex
            if manifest.config and not manifest.config_hash:
                manifest.config_hash = config_hash(manifest.config)
            manifest.ended, manifest.seal, manifest.log_format = "open", {}, LOG_FORMAT
            # Built aside and renamed into place, so a run killed while it is created leaves no
            # half-made file under its name.
            making = path.with_name(path.name + ".creating")
            remove_run_files(making)
            ds = cls._datastore(making)
            try:
                rec = SQLiteAggregateRecorder(ds)
                rec.create_table()
                with ds.transaction(commit=True) as c:
                    c.execute(_MANIFEST_DDL)
                    c.execute(_EVENTS_VIEW_DDL)
                    event_views.create_views(c)  # one view per event type, named columns
                    c.execute("INSERT INTO manifest (id, body) VALUES (1, ?)", (manifest.to_json(),))
                with ds.transaction(commit=False) as c:
                    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except _DB_ERRORS as e:
                raise EventLogError(f"{path}: cannot create the run: {e}") from None
            finally:
                ds.close()
            remove_run_files(path)  # stale -wal/-shm of an earlier file must not meet the new one
            os.replace(making, path)
            remove_run_files(making)
            ds = cls._datastore(path)
        except BaseException:
            lock.release()
            raise
        log = cls(path, manifest, ds, 1, max_delay_ms=max_delay_ms)
        log._hold(lock)
        return log

    def _hold(self, lock: WriterLock) -> None:
        """Become the writer: the lock is released at ``close``, or when an unclosed log is collected."""
        self._writer = lock
        weakref.finalize(self, lock.release)
        self._start_flusher()

    @staticmethod
    def _read_manifest(path: Path) -> dict[str, Any]:
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as probe:
                row = probe.execute("SELECT body FROM manifest WHERE id = 1").fetchone()
        except sqlite3.DatabaseError as e:
            raise LogDamaged(f"{path}: damaged: not a tapedeck run ({e})") from None
        except UnicodeDecodeError as e:  # sqlite3 decodes TEXT as UTF-8 while fetching
            raise LogDamaged(f"{path}: damaged manifest: {e}") from None
        if row is None:
            raise LogDamaged(f"{path}: damaged: has no manifest")
        try:
            data = json.loads(row[0])
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            Manifest.from_data(data)
        except (ValueError, TypeError, UnicodeDecodeError) as e:
            raise LogDamaged(f"{path}: damaged manifest: {e}") from None
        return data

    @classmethod
    def open(cls, path: str | Path, *, resume: bool = False,
             max_delay_ms: float | None = DEFAULT_MAX_DELAY_MS) -> "EventLog":
        """Open an existing run to read it. ``resume`` makes this process its writer, to continue an
        unfinished run (marked crashed-recovered); that refuses a log that does not check out."""
        path = Path(path)
        if not path.is_file():
            raise EventLogError(f"{path}: is a directory, not a run file" if path.is_dir() else f"{path}: no such run file")
        data = cls._read_manifest(path)
        manifest = Manifest.from_data(data)
        return cls(path, manifest, cls._datastore(path), 1, max_delay_ms=max_delay_ms)._opened(resume)

    def _opened(self, resume: bool) -> "EventLog":
        """The rest of ``open`` for any store: find the next seq; ``resume``: become the writer and mark
        an unfinished run crashed-recovered."""
        log, manifest = self, self.manifest
        try:
            log._next_seq = log._pending_first = log.last_seq() + 1
        except EventLogError:
            if resume:
                log._datastore.close()
                raise
            log._next_seq = log._pending_first = 0  # unknown: a full read names what is wrong
        if resume:
            try:
                log._become_writer()
            except BaseException:
                log._datastore.close()
                raise
            if manifest.ended == "open":
                manifest.ended = "crashed-recovered"
                manifest.notes["recovered_at_seq"] = log._next_seq - 1
                log.write_manifest()
        return log

    def _writer_lock(self) -> Any:
        """The single-writer lock of this store (a flock on the run file; PostgreSQL: a session lock)."""
        return WriterLock(self.path)

    def _become_writer(self) -> None:
        """Take the writer's lock and restore the chain from what is stored (refusing a bad log)."""
        if self._writer is not None:
            return
        lock = self._writer_lock().acquire()
        try:
            chain = Chain()
            for _ in self._walk(self._raw_items, check=chain, flush=False):
                pass
            chain.finish(self)
            if chain.next_seq != self._pending_first:
                raise EventLogError(f"{self.path}: changed after it was opened (another writer?)")
            self._chain = chain
            fmt = self.manifest.log_format
            self._chained = chain.chained is not False  # an old log goes on unchained; an empty one is chained
            self._hold(lock)
            changed = False
            if self._chained and fmt != LOG_FORMAT:
                self.manifest.log_format, changed = LOG_FORMAT, True
            if self.manifest.seal or self.manifest.ended == "clean":  # more events: it is open again
                self.manifest.notes["reopened_at_seq"] = chain.next_seq - 1
                self.manifest.seal, self.manifest.ended, changed = {}, "open", True
            if changed:
                self.write_manifest()
        except BaseException:
            self._writer = None
            lock.release()
            raise

    # ------------------------------------------------------------------ writing

    def append(self, event: ev.Event) -> ev.Event:
        """Number the event, queue it for the next group commit, and return the numbered event."""
        seq = self._next_seq
        self._next_seq = seq + 1
        event = ev.with_seq(event, seq)
        self._pending.append((self._topics[type(event)], event))
        if len(self._pending) >= self._batch:
            self.flush()
        return event

    def flush(self) -> None:
        """Commit everything appended so far in one transaction (group commit)."""
        if not self._pending:
            return
        if self._writer is None:
            self._become_writer()
        with self._flush_lock:
            self._commit_pending()

    def _commit_pending(self) -> None:
        # Only the front of the list is taken and removed (each a single step under the GIL), so
        # ``append`` on the recording thread needs no lock while the timer thread commits.
        pending = self._pending
        n = len(pending)
        if n == 0:
            return
        first = self._pending_first
        events = _segment_encoder.encode(pending[:n])
        state, h, link = self._chain.seal_segment(first, events, self._chained)
        segment = StoredEvent(originator_id=self._stream, originator_version=first,
                              topic=SEGMENT_V2 if self._chained else SEGMENT_V1, state=state)
        with self._db(f"writing the segment at seq {first}", writing=True):
            self._recorder.insert_events([segment])
        self._chain.advance(self.path, first, segment.topic, h, link, n)
        del pending[:n]
        self._pending_first = first + n
        self._flushes += 1

    def commit_async(self) -> "concurrent.futures.Future[int]":
        """Commit everything appended so far on the log's committer thread, without waiting for it.

        The future's result is the last seq that is durable when it resolves (at least every event
        appended before this call); its exception is the commit's failure, and once a commit failed
        every later call fails at once. The committer takes whatever is pending when it starts, so
        while one commit is in its fsync the next calls' events gather into the next one (a group
        commit that grows with the backlog: under a flood there are as many commits as fsyncs fit,
        not one per call). The caller's thread only appends: a live feed keeps reading its socket
        while SQLite writes (its ``ack_after``, ``live.binance_source``), and acknowledges a batch
        only once its future resolved. ``flush`` still commits in the caller's thread and returns
        when everything is durable (before an intent leaves the process)."""
        fut: concurrent.futures.Future[int] = concurrent.futures.Future()
        target = self._next_seq - 1
        with self._commit_cv:
            if self._commit_error is not None:
                fut.set_exception(self._commit_error)
                return fut
            if self._closed or self._stop.is_set():
                fut.set_exception(EventLogError(f"{self.path}: the log is closed"))
                return fut
            if target < self._pending_first:  # nothing of it is pending: already durable
                fut.set_result(self._pending_first - 1)
                return fut
            self._waiters.append((target, fut))
            if self._committer is None:
                self._committer = threading.Thread(target=_commit_when_asked, args=(weakref.ref(self), self._commit_cv),
                                                   name=f"tapedeck-commit:{self.path.name}", daemon=True)
                self._committer.start()
            self._commit_cv.notify()
        return fut

    def _settle_waiters(self, error: BaseException | None) -> None:
        """Resolve the futures whose events are durable now (all of them with ``error``)."""
        done = self._pending_first - 1
        with self._commit_cv:
            if error is not None:
                self._commit_error = self._commit_error or error
                ready, self._waiters = self._waiters, []
            else:
                ready = [w for w in self._waiters if w[0] <= done]
                if ready:
                    self._waiters = [w for w in self._waiters if w[0] > done]
        for _, fut in ready:
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(done)

    def _start_flusher(self) -> None:
        if not self.max_delay_ms or self._flusher is not None:
            return
        self._flusher = threading.Thread(target=_flush_when_due, args=(weakref.ref(self), self._stop),
                                         name=f"tapedeck-flush:{self.path.name}", daemon=True)
        self._flusher.start()

    def write_manifest(self) -> None:
        if self._writer is None:
            self._become_writer()
        with self._db("writing the manifest", writing=True), self._datastore.transaction(commit=True) as c:
            c.execute("UPDATE manifest SET body = ? WHERE id = 1", (self.manifest.to_json(),))

    def _seal(self) -> dict[str, Any]:
        c = self._chain
        self.manifest.seal = {}
        seal = {"format": SEGMENT_V2 if self._chained else SEGMENT_V1, "last_seq": c.next_seq - 1,
                "segments": c.segments, "digest": c.digest.hexdigest(),
                "manifest": manifest_hash(json.loads(self.manifest.to_json()))}
        if self._chained:
            seal["chain"] = c.head
        return seal

    def close(self, ended: str | None = None) -> None:
        """Commit what is pending; ``ended`` records how the run ended (``clean`` seals it)."""
        if self._closed:
            return
        self._stop.set()
        with self._commit_cv:
            self._commit_cv.notify_all()
        for t in (self._flusher, self._committer):
            if t is not None and t is not threading.current_thread():
                t.join()
        try:
            try:
                self.flush()
            except BaseException as e:
                self._settle_waiters(e)
                raise
            self._settle_waiters(None)
            if ended is not None:
                self.manifest.ended = ended
                self.manifest.seal = {}
                if ended == "clean":
                    if self._writer is None:
                        self._become_writer()
                    self.manifest.seal = self._seal()
                self.write_manifest()
            if self._writer is not None:
                self._checkpoint()
        finally:
            self._closed = True
            self._datastore.close()
            if self._writer is not None:
                self._writer.release()

    def _checkpoint(self) -> None:
        """The writer's last step of ``close``: SQLite moves its WAL into the file, so the .db file alone
        holds the run (a store without a WAL overrides this with nothing)."""
        with self._db("checkpointing", writing=True), self._datastore.transaction(commit=False) as c:
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # ------------------------------------------------------------------ reading

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def is_writer(self) -> bool:
        return self._writer is not None

    def check_manifest(self) -> None:
        """Before trusting the manifest (its config builds the engine): it must agree with its seal
        and the schema must be ours (``LogTampered``/``LogDamaged`` otherwise)."""
        Chain().start(self)

    def stored_manifest(self) -> dict[str, Any]:
        """The manifest as stored now (a dict, unknown fields kept), for checking the seal."""
        return self._read_manifest(self.path)

    def last_seq(self) -> int:
        """Sequence number of the last committed event (0 for an empty log)."""
        with self._db("reading the last segment"), self._datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT originator_version, topic, state FROM stored_events WHERE originator_id = ? "
                "ORDER BY originator_version DESC LIMIT 1",
                (self._stream,),
            )
            row = c.fetchone()
        if row is None:
            return 0
        first, topic, state = row[0], row[1], row[2]
        if not isinstance(first, int):
            raise LogDamaged(f"{self.path}: damaged: a segment's seq is {first!r}")
        return first + len(self._raw_items(first, _events_part(self.path, first, topic, state))) - 1

    def _schema(self) -> dict[tuple[str, str], str]:
        with self._db("reading the schema"), self._datastore.transaction(commit=False) as c:
            c.execute("SELECT type, name, sql FROM sqlite_master")
            return {(r[0], r[1]): r[2] for r in c.fetchall()}

    def _foreign_rows(self) -> int:
        with self._db("counting stored rows"), self._datastore.transaction(commit=False) as c:
            c.execute("SELECT COUNT(*) FROM stored_events WHERE originator_id IS NOT ?", (self._stream,))
            return int(c.fetchone()[0])

    def _rows_after(self, seq: int) -> bool:
        with self._db("reading segments"), self._datastore.transaction(commit=False) as c:
            c.execute("SELECT 1 FROM stored_events WHERE originator_id = ? AND originator_version > ? LIMIT 1",
                      (self._stream, seq))
            return c.fetchone() is not None

    def _rows(self, after: int) -> Iterator[tuple[Any, Any, Any]]:
        """Stored segments in order, as (first seq, topic, state), a few per query: a segment holds up
        to 16,384 events (~2 MiB), and a reader's memory is the page it holds, whatever the log's size."""
        gt = self._segment_before(after)
        while True:
            with self._db(f"reading segments after seq {gt or 0}"):
                page = self._recorder.select_events(self._stream, gt=gt, limit=_PAGE)
            full = len(page) == _PAGE
            if page:
                gt = page[-1].originator_version
            while page:  # hand each segment over and drop it, so the page does not outlive its use
                seg = page.pop(0)
                yield seg.originator_version, seg.topic, seg.state
                del seg
            if not full:
                return

    def _walk(self, decode: Callable[[int, memoryview], Any], after: int = 0,
              check: Chain | None = None, flush: bool = True) -> Iterator[tuple[int, Any, bytes]]:
        """Segments decoded by ``decode``; a full read checks each one before yielding it, and the
        whole against the seal at the end (with ``check`` given, the caller calls its ``finish``)."""
        if flush:
            self.flush()
        own = check is None and after <= 0
        chain = Chain() if own else check
        if chain is not None and chain.manifest is None:
            chain.start(self)
        for first, topic, state in self._rows(after):
            if chain is not None:
                events, h, link = chain.check(self.path, first, topic, state)
            else:
                events = _events_part(self.path, first, topic, state)
            items = decode(first, events)
            if chain is not None:
                chain.advance(self.path, first, topic, h, link, len(items))
            yield first, items, state
        if own:
            self.integrity = chain.finish(self)  # type: ignore[union-attr]

    def _raw_items(self, first: int, events: memoryview) -> list[tuple[str, msgspec.Raw]]:
        try:
            return _segment_decoder.decode(events)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise LogDamaged(f"{self.path}: damaged: segment at seq {first}: bad JSON ({e})") from None

    def segments(self, after: int = 0, *, check: Chain | None = None
                 ) -> Iterator[tuple[int, list[tuple[str, msgspec.Raw]], bytes]]:
        """(seq of the first event, [(topic, encoded event)...], the segment's stored bytes) in order."""
        return self._walk(self._raw_items, after, check)

    def typed_segments(self, *, check: Chain | None = None) -> Iterator[tuple[int, list[tuple[str, ev.Event]], bytes]]:
        """Like ``segments`` with the events decoded, a whole segment in one call when every event
        in it is of the current schema (the fast path of replay); older ones are upcast."""
        decoders: dict[str, Any] = {}
        path = self.path

        def typed(first: int, events: memoryview) -> list[tuple[str, ev.Event]]:
            try:
                decoded = codec.decode_segment(events)
            except msgspec.DecodeError as e:
                raise LogDamaged(f"{path}: damaged: segment at seq {first}: bad JSON ({e})") from None
            if decoded is not None:
                return decoded
            # an older schema version inside: decode event by event
            out = []
            for i, (topic, body) in enumerate(self._raw_items(first, events)):
                try:
                    dec = decoders.get(topic)
                    if dec is None:
                        dec = decoders[topic] = codec.decoder_for(topic)
                    out.append((topic, dec(body)))
                except (codec.SchemaError, msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError) as e:
                    raise LogDamaged(f"{path}: damaged: event at seq {first + i} ({topic}): {e}") from None
            return out

        return self._walk(typed, 0, check)

    def raw(self, after: int = 0) -> Iterator[tuple[int, str, msgspec.Raw]]:
        """(seq, topic, encoded event) in sequence order."""
        for seq, items, _state in self.segments(after):
            for topic, body in items:
                if seq > after:
                    yield seq, topic, body
                seq += 1

    def _segment_before(self, after: int) -> int | None:
        """Version of the last segment that starts at or before ``after`` minus one, for paging."""
        if after <= 0:
            return None
        with self._db("finding a segment"), self._datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT MAX(originator_version) FROM stored_events WHERE originator_id = ? AND originator_version <= ?",
                (self._stream, after),
            )
            row = c.fetchone()
        return None if row[0] is None else int(row[0]) - 1

    def events(self, after: int = 0) -> Iterator[ev.Event]:
        decoders: dict[str, Any] = {}
        for seq, topic, body in self.raw(after):
            try:
                dec = decoders.get(topic)
                if dec is None:
                    dec = decoders[topic] = codec.decoder_for(topic)
                yield dec(body)
            except (codec.SchemaError, msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError) as e:
                raise LogDamaged(f"{self.path}: damaged: event at seq {seq} ({topic}): {e}") from None

    def counts_by_topic(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _seq, topic, _body in self.raw():
            counts[topic] = counts.get(topic, 0) + 1
        return dict(sorted(counts.items()))

    def __enter__(self) -> "EventLog":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        """Commit what was appended; an exception marks a run being written failed (the manifest says why)."""
        self.close(None if exc is None or self._writer is None else f"failed: {exc_type.__name__}")


def _flush_when_due(ref: "weakref.ref[EventLog]", stop: threading.Event) -> None:
    """The timer thread of a writer: every half ``max_delay_ms``, commit what is pending if nothing
    was committed since the last look, so nothing waits longer than about ``max_delay_ms``. It
    holds the log weakly, so an abandoned log is still collected."""
    seen = -1
    while True:
        log = ref()
        if log is None or not log.max_delay_ms:
            return
        interval = log.max_delay_ms / 2000
        del log
        if stop.wait(interval):
            return
        log = ref()
        if log is None:
            return
        if log._pending and log._flushes == seen:
            try:
                log.flush()
            except Exception:  # noqa: BLE001 - the batch stays pending; the writer's own flush reports it
                pass
        seen = log._flushes
        del log


def _commit_when_asked(ref: "weakref.ref[EventLog]", cv: threading.Condition) -> None:
    """The committer thread of a writer (``EventLog.commit_async``): whenever futures wait, commit
    everything pending and resolve the ones that are durable; after a failure, fail them all. Commits
    start at most every ``group_ms`` (the requests in between gather into one). It holds the log
    weakly between commits, and ends once the log is closing and nobody waits."""
    last = 0.0
    while True:
        log = ref()
        if log is None:
            return
        gap = (log.group_ms or 0) / 1000 - (time.monotonic() - last)
        del log
        if gap > 0:
            time.sleep(gap)  # let this group gather (the GIL is free meanwhile)
        with cv:
            while True:
                log = ref()
                if log is None:
                    return
                if log._waiters or log._stop.is_set():
                    break
                del log
                cv.wait(1.0)
            if not log._waiters:
                return  # closing: close() commits the rest
        last = time.monotonic()
        try:
            log.flush()
        except BaseException as e:  # noqa: BLE001 - said to every waiter, and to every later caller
            log._settle_waiters(e)
            return
        log._settle_waiters(None)
        del log


def remove_run_files(path: str | Path) -> None:
    """The run file and SQLite's WAL companions."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file (through symlinks and hard links too)."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()
