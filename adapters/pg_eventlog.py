"""The run's event log on PostgreSQL: the same segments, chain, seal and manifest as the SQLite
log (``adapters.eventlog``), stored by the ``eventsourcing`` library's PostgreSQL recorder.

**Where a run lives.** ``postgresql://[user[:password]@]host[:port]/DBNAME?run=NAME``: the run is
the PostgreSQL *schema* ``NAME`` of database ``DBNAME`` (a schema per run, so each run has its own
``stored_events`` table, and so its own notification log for followers, beside its ``manifest``
table and ``events`` view; ``SELECT * FROM NAME.events`` in psql reads it). ``NAME`` is a plain
identifier (``[a-z_][a-z0-9_]{0,39}``, not ``public``, ``information_schema`` or ``pg_*``).
Host, port, user and password default as libpq's do (``PGHOST``, ``PGPASSWORD``, ``~/.pgpass``...);
the password never reaches the manifest or an error message (``PgURL.display``).

**What is stored.** The library's ``PostgresProcessRecorder`` (``SegmentRecorder``: its
``stored_events`` table, originator_id, originator_version, topic, state bytea, notification_id
bigserial, and its ``notification_tracking`` table): one stored record per segment (group commit),
``originator_id`` the run id, ``originator_version`` the segment's first seq, ``state`` the very
bytes the SQLite log stores (``segment.v2``: prev, hash, events). The recorder inserts under an
EXCLUSIVE table lock and NOTIFYs, so the notification ids are in commit order: a follower
(``runtime/roles.py``) reads the log through ``select_notifications`` and keeps its position in
a tracking table, written in the same transaction as what it records (``commit_tracking``). ``manifest`` (id = 1, body text) holds the
same JSON manifest; ``events`` unrolls segments into (seq, topic, body json) rows, the JSON text
kept as stored (``json``, not ``jsonb``). The digest, chain and seal are computed by the same code
(``eventlog.Chain``), so a run has the same digest on either store and ``tapedeck copy`` moves it
byte for byte.

**One writer at a time**: a writer holds a session-level advisory lock keyed on the run's schema,
on a connection of its own, until ``close``; PostgreSQL drops it when the writer's session ends (a
killed process included). A second writer gets ``LogLocked`` naming the holder's pid (kept in the
lock connection's ``application_name``). Readers take no lock.

**Durability**: a group commit returns once PostgreSQL has committed its transaction (the server's
``synchronous_commit``/``fsync``, on by default), so a killed recorder loses at most the uncommitted
window, as on SQLite.

The schema check (``eventlog.Chain.start``) compares the columns of ``stored_events`` and
``manifest`` and of the ``events`` view with the ones written here; the view's SQL text itself is
not compared (PostgreSQL stores it re-printed).
"""
from __future__ import annotations

import json
import os
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, PersistenceError
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder
from psycopg import sql

from tapedeck.domain import codec, events as ev

from tapedeck.adapters.eventlog import (
    DEFAULT_BATCH, DEFAULT_MAX_DELAY_MS, LOG_FORMAT, Chain, EventLog, EventLogError, LogDamaged, LogLocked, Manifest,
    _schema as _sqlite_schema, config_hash,
)

SCHEMES = ("postgresql", "postgres")
_RUN_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}")
_CREATING = "__creating"
_CONNECT_ERRORS = (InterfaceError, OperationalError, psycopg.OperationalError, psycopg.InterfaceError)

# The columns tapedeck writes, as information_schema names their types (what the schema check compares).
_COLUMNS = {
    ("table", "stored_events"): (("originator_id", "text"), ("originator_version", "bigint"), ("topic", "text"),
                                 ("state", "bytea"), ("notification_id", "bigint")),
    ("table", "manifest"): (("id", "integer"), ("body", "text")),
    ("view", "events"): (("seq", "bigint"), ("topic", "text"), ("body", "json")),
}


class BadStoreURL(EventLogError, ValueError):
    """A ``postgresql://`` URL that does not name a run (the message says what to change)."""


@dataclass(frozen=True)
class PgURL:
    """A parsed ``postgresql://...?run=NAME``: connection parameters and the run's schema."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)  # never shown: ``display`` is what messages use
    dbname: str = ""
    run: str = ""

    @classmethod
    def parse(cls, where: "str | PgURL") -> "PgURL":
        if isinstance(where, PgURL):
            return where
        parts = urlsplit(where)
        shown = _redact(where)
        if parts.scheme not in SCHEMES:
            raise BadStoreURL(f"{shown}: not a postgresql:// URL")
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
        unknown = sorted(set(query) - {"run"})
        if unknown:
            raise BadStoreURL(f"{shown}: unknown parameter(s) {', '.join(unknown)} (the only one is run=NAME)")
        runs = query.get("run", [])
        if len(runs) != 1 or not runs[0]:
            raise BadStoreURL(f"{shown}: name the run: {shown.split('?')[0]}?run=NAME (NAME becomes its schema)")
        run = runs[0]
        if not _RUN_NAME.fullmatch(run) or run in ("public", "information_schema") or run.startswith("pg_") \
                or run.endswith(_CREATING):
            raise BadStoreURL(f"{shown}: run name {run!r} must be a plain lower-case identifier "
                              "([a-z_][a-z0-9_]{0,39}; not public, information_schema, pg_*)")
        dbname = unquote(parts.path.lstrip("/"))
        if not dbname or "/" in dbname:
            raise BadStoreURL(f"{shown}: name the database: postgresql://host/DBNAME?run={run}")
        try:
            port = parts.port or 5432
        except ValueError:
            raise BadStoreURL(f"{shown}: the port is not a number") from None
        return cls(host=unquote(parts.hostname or ""), port=port, user=unquote(parts.username or ""),
                   password=unquote(parts.password or ""), dbname=dbname, run=run)

    @property
    def display(self) -> str:
        """The URL without its password: what messages and manifests show."""
        user = f"{self.user}@" if self.user else ""
        return f"postgresql://{user}{self.host}:{self.port}/{self.dbname}?run={self.run}"

    @property
    def key(self) -> tuple[str, int, str, str]:
        """What names one run: server, database, schema (not who connects)."""
        return (self.host, self.port, self.dbname, self.run)

    def conninfo(self, application_name: str = "tapedeck") -> str:
        params = {"host": self.host, "port": str(self.port), "user": self.user, "password": self.password,
                  "dbname": self.dbname, "application_name": application_name, "connect_timeout": "5"}
        return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v})

    def datastore(self, schema: str | None = None) -> PostgresDatastore:
        return PostgresDatastore(self.dbname, self.host, self.port, self.user, self.password,
                                 schema=schema or self.run, originator_id_type="text",
                                 pool_size=2, max_overflow=2, connect_timeout=5)


def _redact(where: str) -> str:
    """``where`` with any password replaced (for messages about a URL that did not parse)."""
    return re.sub(r"(://[^:/@?#]*):[^@/?#]*@", r"\1:***@", where)


class RunName(str):
    """A PostgreSQL run's ``path``: its URL without the password, read where the SQLite log has a
    file path (messages, a replay's ``parent``); ``name`` is the run's schema."""

    name: str


class PgWriterLock:
    """One writer per run: a session-level advisory lock keyed on the run's schema, held on a
    connection of its own from ``acquire`` to ``release`` (PostgreSQL drops it with the session)."""

    def __init__(self, url: PgURL):
        self.url = url
        self._conn: psycopg.Connection | None = None

    def acquire(self) -> "PgWriterLock":
        if self._conn is not None:
            return self
        try:
            conn = psycopg.connect(self.url.conninfo(f"tapedeck writer pid {os.getpid()}"), autocommit=True)
        except psycopg.Error as e:
            raise EventLogError(f"{self.url.display}: cannot reach PostgreSQL: {_one_line(e)}") from None
        key = f"tapedeck:{self.url.run}"
        try:
            got = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()[0]
            row = None if got else conn.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) AND "
                "((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(%s, 0)", (key,)).fetchone()
        except psycopg.Error as e:
            conn.close()
            raise EventLogError(f"{self.url.display}: cannot take the writer's lock: {_one_line(e)}") from None
        if not got:
            conn.close()
            holder = (row[0] if row else "").rpartition("pid ")[2] or "unknown"
            raise LogLocked(f"{self.url.display}: another writer (pid {holder}) has this log open; "
                            "wait for it to finish or choose another --out") from None
        self._conn = conn
        return self

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()  # ends the session: the lock goes with it

    @property
    def held(self) -> bool:
        return self._conn is not None


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _ddl(schema: str) -> list[sql.Composed]:
    s = sql.Identifier(schema)
    return [
        sql.SQL("CREATE TABLE {}.manifest (id integer PRIMARY KEY CHECK (id = 1), body text NOT NULL)").format(s),
        sql.SQL(
            "CREATE VIEW {s}.events AS "
            "SELECT s.originator_version + j.ord - 1 AS seq, j.value ->> 0 AS topic, j.value -> 1 AS body "
            "FROM {s}.stored_events s, json_array_elements(CASE s.topic WHEN 'segment.v1' "
            "THEN convert_from(s.state, 'UTF8')::json ELSE convert_from(s.state, 'UTF8')::json -> 'events' END) "
            "WITH ORDINALITY AS j(value, ord) "
            "WHERE s.topic IN ('segment.v1', 'segment.v2')").format(s=s),
    ]


class SegmentRecorder(PostgresProcessRecorder):
    """The library's ``PostgresProcessRecorder``: its application recorder (table, EXCLUSIVE lock,
    NOTIFY, transaction, returned notification ids) and its tracking table (``notification_tracking``,
    so a process following another run records its position atomically with what it writes: set
    ``next_tracking`` and the next insert carries it), inserting a single stored event with its
    state as a *binary* parameter. The library passes every insert as a text-format array of a composite type, which
    hex-escapes a 2 MiB segment, runs a regex over it and has the server parse it back: most of a
    commit's time (21k events/s recorded, measured); a binary bytea is sent as it is. Several
    events at once go the library's own way."""

    def __init__(self, datastore: PostgresDatastore):
        super().__init__(datastore)
        self._insert_one = sql.SQL(
            "INSERT INTO {}.{} (originator_id, originator_version, topic, state) VALUES (%s, %s, %s, %b) "
            "RETURNING notification_id").format(sql.Identifier(datastore.schema), sql.Identifier(self.events_table_name))

    next_tracking: Tracking | None = None

    def insert_events(self, stored_events: Any, **kwargs: Any) -> Any:
        if self.next_tracking is not None and kwargs.get("tracking") is None:
            kwargs["tracking"], self.next_tracking = self.next_tracking, None
        return super().insert_events(stored_events, **kwargs)

    def _insert_stored_events(self, curs: Any, stored_events: Any, **kwargs: Any) -> None:
        if len(stored_events) != 1:
            super()._insert_stored_events(curs, stored_events, **kwargs)
            return
        self._lock_table(curs)
        self._notify_channel(curs)
        e = stored_events[0]
        curs.execute(self._insert_one, (e.originator_id, e.originator_version, e.topic, e.state))


class PgEventLog(EventLog):
    """``EventLog`` with PostgreSQL underneath: appending, group commits, the flusher, the chain
    and every read are the SQLite log's own code; what differs is the SQL and the writer's lock."""

    def __init__(self, url: PgURL, manifest: Manifest, datastore: PostgresDatastore, next_seq: int,
                 *, max_delay_ms: float | None = DEFAULT_MAX_DELAY_MS):
        # EventLog.__init__ builds a SQLite recorder (which asserts its datastore is SQLite's), so
        # the same attributes are set here with the PostgreSQL one.
        self.url = url
        self.path = RunName(url.display)  # type: ignore[assignment]
        self.path.name = url.run
        self.manifest = manifest
        self._datastore = datastore  # type: ignore[assignment]
        self._recorder = SegmentRecorder(datastore)  # type: ignore[assignment]
        self._stream = manifest.run_id
        self._next_seq = self._pending_first = next_seq
        self._pending = []
        self._batch = DEFAULT_BATCH
        self._topics = {t: codec.topic(t) for t in ev.EVENT_TYPES}
        self.max_delay_ms = max_delay_ms
        self.integrity = None
        self._chain, self._chained = Chain(), True
        self._writer = None
        self._init_committing()
        self._closed = False

    # ------------------------------------------------------------------ opening

    @contextmanager
    def _db(self, what: str, writing: bool = False) -> Iterator[None]:
        """The library's and psycopg's errors as one line naming the run: the server out of reach
        is said as such; otherwise ``LogDamaged`` for a read, ``EventLogError`` for a write."""
        try:
            yield
        except _CONNECT_ERRORS as e:
            raise EventLogError(f"{self.path}: cannot reach PostgreSQL ({what}): {_one_line(e)}") from None
        except (PersistenceError, psycopg.Error) as e:
            if writing:
                raise EventLogError(f"{self.path}: cannot record: {what}: {_one_line(e)}") from None
            raise LogDamaged(f"{self.path}: damaged: {what}: {_one_line(e)}") from None

    @classmethod
    def create(cls, where: "str | PgURL", manifest: Manifest, *, overwrite: bool = False,  # type: ignore[override]
               max_delay_ms: float | None = DEFAULT_MAX_DELAY_MS) -> "PgEventLog":
        """A new run in schema ``run`` of the database, this process its only writer until ``close``."""
        url = PgURL.parse(where)
        lock = PgWriterLock(url).acquire()  # before looking at (or dropping) what is there
        try:
            if not manifest.run_id:
                manifest.run_id = uuid.uuid4().hex
            if manifest.config and not manifest.config_hash:
                manifest.config_hash = config_hash(manifest.config)
            manifest.ended, manifest.seal, manifest.log_format = "open", {}, LOG_FORMAT
            making = url.run + _CREATING
            try:
                with psycopg.connect(url.conninfo(), autocommit=True) as c:
                    exists = c.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (url.run,)).fetchone()
                    if exists and not overwrite:
                        raise EventLogError(f"{url.display} already exists (choose another run name or remove it)")
                    # Built aside and renamed into place, so a run killed while it is created leaves
                    # no half-made schema under its name.
                    c.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(making)))
                    c.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(making)))
                ds = url.datastore(making)
                try:
                    SegmentRecorder(ds).create_table()
                    with ds.transaction(commit=True) as cur:
                        for ddl in _ddl(making):
                            cur.execute(ddl)
                        cur.execute(sql.SQL("INSERT INTO {}.manifest (id, body) VALUES (1, %s)").format(
                            sql.Identifier(making)), (manifest.to_json(),))
                finally:
                    ds.close()
                with psycopg.connect(url.conninfo()) as c:  # one transaction: drop the old, rename the new
                    c.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(url.run)))
                    c.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(making),
                                                                             sql.Identifier(url.run)))
            except (PersistenceError, psycopg.Error) as e:
                raise EventLogError(f"{url.display}: cannot create the run: {_one_line(e)}") from None
            ds = url.datastore()
        except BaseException:
            lock.release()
            raise
        log = cls(url, manifest, ds, 1, max_delay_ms=max_delay_ms)
        log._hold(lock)  # type: ignore[arg-type]
        return log

    @classmethod
    def open(cls, where: "str | PgURL", *, resume: bool = False,  # type: ignore[override]
             max_delay_ms: float | None = DEFAULT_MAX_DELAY_MS) -> "PgEventLog":
        """Open an existing run to read it; ``resume`` makes this process its writer (as ``EventLog.open``)."""
        url = PgURL.parse(where)
        data = _read_manifest(url)
        manifest = Manifest.from_data(data)
        return cls(url, manifest, url.datastore(), 1, max_delay_ms=max_delay_ms)._opened(resume)

    def _writer_lock(self) -> Any:
        return PgWriterLock(self.url)

    # ------------------------------------------------------------------ writing

    def write_manifest(self) -> None:
        if self._writer is None:
            self._become_writer()
        with self._db("writing the manifest", writing=True), self._datastore.transaction(commit=True) as c:
            c.execute(self._q("UPDATE {}.manifest SET body = %s WHERE id = 1"), (self.manifest.to_json(),))

    def commit_tracking(self, application_name: str, notification_id: int) -> None:
        """Commit what is pending together with a tracking record (``application_name`` has
        processed the followed run up to ``notification_id``), in one transaction."""
        tracking = Tracking(application_name, notification_id)
        with self._db("recording the tracking position", writing=True):
            if self._pending:
                self._recorder.next_tracking = tracking  # type: ignore[attr-defined]
                self.flush()
            else:
                self._recorder.insert_tracking(tracking)  # type: ignore[attr-defined]

    def tracking(self, application_name: str) -> int:
        """Where ``application_name`` is in the run it follows (0: nowhere yet)."""
        with self._db("reading the tracking position"):
            return self._recorder.max_tracking_id(application_name) or 0  # type: ignore[attr-defined]

    def _checkpoint(self) -> None:
        """``close`` has nothing to fold back: PostgreSQL keeps no WAL file beside the run."""

    # ------------------------------------------------------------------ reading

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(sql.Identifier(self.url.run))

    def _one(self, what: str, query: str, params: tuple[Any, ...]) -> Any:
        with self._db(what), self._datastore.transaction(commit=False) as c:
            c.execute(self._q(query), params)
            row = c.fetchone()
        return None if row is None else next(iter(row.values()))

    def stored_manifest(self) -> dict[str, Any]:
        return _read_manifest(self.url)

    def last_seq(self) -> int:
        with self._db("reading the last segment"):
            rows = self._recorder.select_events(self._stream, desc=True, limit=1)
        if not rows:
            return 0
        last = rows[0]
        first = last.originator_version
        return first + len(self._raw_items(first, _events_part(self, last))) - 1

    def _schema(self) -> dict[tuple[str, str], str]:
        """The run's objects in the form ``Chain.start`` checks (SQLite's definitions): each object
        whose columns are the ones tapedeck writes maps to tapedeck's definition, one that differs
        to its own column list (which the check then names as changed); a missing one is left out."""
        with self._db("reading the schema"), self._datastore.transaction(commit=False) as c:
            c.execute("SELECT c.table_name, t.table_type, c.column_name, c.data_type FROM information_schema.columns c "
                      "JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
                      "WHERE c.table_schema = %s ORDER BY c.table_name, c.ordinal_position", (self.url.run,))
            rows = c.fetchall()
        found: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for r in rows:
            kind = "view" if r["table_type"] == "VIEW" else "table"
            found.setdefault((kind, r["table_name"]), []).append((r["column_name"], r["data_type"]))
        expected = _sqlite_schema()
        out: dict[tuple[str, str], str] = {}
        for key, columns in found.items():
            if key in _COLUMNS and tuple(columns) == _COLUMNS[key] and key in expected:
                out[key] = next(iter(expected[key]))
            else:
                out[key] = f"{key[0]} {key[1]} ({', '.join(f'{n} {t}' for n, t in columns)})"
        return out

    def _foreign_rows(self) -> int:
        return int(self._one("counting stored rows",
                             "SELECT COUNT(*) FROM {}.stored_events WHERE originator_id <> %s", (self._stream,)))

    def _rows_after(self, seq: int) -> bool:
        return self._one("reading segments", "SELECT 1 FROM {}.stored_events WHERE originator_id = %s "
                         "AND originator_version > %s LIMIT 1", (self._stream, seq)) is not None

    def _segment_before(self, after: int) -> int | None:
        if after <= 0:
            return None
        top = self._one("finding a segment", "SELECT MAX(originator_version) FROM {}.stored_events "
                        "WHERE originator_id = %s AND originator_version <= %s", (self._stream, after))
        return None if top is None else int(top) - 1


def _events_part(log: PgEventLog, stored: Any) -> memoryview:
    from tapedeck.adapters.eventlog import _events_part as part

    return part(log.path, stored.originator_version, stored.topic, stored.state)  # type: ignore[arg-type]


def _read_manifest(url: PgURL) -> dict[str, Any]:
    """The stored manifest of the run at ``url`` (a dict, unknown fields kept)."""
    try:
        with psycopg.connect(url.conninfo(), autocommit=True) as c:
            if c.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (url.run,)).fetchone() is None:
                raise EventLogError(f"{url.display}: no such run (no schema {url.run!r} in database {url.dbname!r})")
            try:
                row = c.execute(sql.SQL("SELECT body FROM {}.manifest WHERE id = 1").format(
                    sql.Identifier(url.run))).fetchone()
            except psycopg.errors.UndefinedTable:
                raise LogDamaged(f"{url.display}: damaged: has no manifest") from None
    except psycopg.OperationalError as e:
        raise EventLogError(f"{url.display}: cannot reach PostgreSQL: {_one_line(e)}") from None
    except psycopg.Error as e:
        raise LogDamaged(f"{url.display}: damaged: not a tapedeck run ({_one_line(e)})") from None
    if row is None:
        raise LogDamaged(f"{url.display}: damaged: has no manifest")
    try:
        data = json.loads(row[0])
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        Manifest.from_data(data)
    except (ValueError, TypeError) as e:
        raise LogDamaged(f"{url.display}: damaged manifest: {e}") from None
    return data
