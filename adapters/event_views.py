"""One SQL view per event type, with named columns, generated from the event classes.

Why: the ``events`` view gives ``seq, topic, body`` with the body a positional JSON array, so
``sqlite-utils query run.db "select * from V3Swapped where amount0 > 0"`` or Datasette could not
name a field. Each view here is written from the class itself (``__struct_fields__`` for the
current version, ``PAST[v].fields`` for an older one), so it cannot drift from what the codec
stores; ``events`` stays the union of every type.

* **Names.** The view of a type's current version is the type's name (``V3Swapped``); an older
  stored version ``k`` is ``<Name>_v<k>`` with the fields that version had ("their own columns":
  SQL cannot run the Python upgrade steps, so nothing is upcast here; ``tapedeck export --format
  parquet`` reads through the codec and gives the upcast, current columns).
* **Which.** A new log (``EventLog.create``) gets the current version's view of every type. A log
  written before views existed gets them with ``add_views(path)`` (``tapedeck views RUN.db``),
  which also adds the ``_v<k>`` view of every older version the log actually holds. A view is
  never rewritten: a log keeps the views of the build that made them, which describe the versions
  that build wrote (a later build's new version would be ``<Name>`` in a new log only).
* **Columns.** ``seq`` is the event's position (the ``events`` view's), then ``ts, source, cause``
  and the type's fields in stored order. Bodies lead with the type name (untagged bodies of the
  oldest logs are read one position to the left). Ints come out as INTEGER; an int beyond 64 bits
  (``sqrt_price_x96``, some ``liquidity``) would be a lossy REAL in SQLite's JSON functions, so it
  comes out as its exact decimal digits as TEXT instead; Decimal prices are TEXT as stored, bools
  0/1, tuples and nested structs their JSON text.
* **Checked.** A chained log's reader checks the views it holds against these definitions
  (``check_views``): a view named like one of ours must be one that some version of this code
  writes, so an edited view cannot show other values than the log holds. Changing how a view is
  written therefore means keeping the old text acceptable here, as ``adapters/eventlog.py`` does
  for its tables.
"""
from __future__ import annotations

import functools
import re
import sqlite3
from pathlib import Path
from typing import Any, Iterable

from tapedeck.domain import events as ev

_INT_TYPES = (int,)


def _column(name: str, index: int, tagged: bool, maybe_int: bool) -> str:
    """The SQL expression of field ``index`` (0-based over the struct's fields) of body ``b``."""
    path = f"'$[{index + 1 if tagged else index}]'"
    if not maybe_int:
        return f'b ->> {path} AS "{name}"'
    # an int past 64 bits comes back REAL from ->>; take its exact JSON text instead
    return (f"iif(typeof(b ->> {path}) = 'real' AND json_type(b, {path}) = 'integer', b -> {path}, b ->> {path})"
            f' AS "{name}"')


@functools.cache
def _int_fields(cls: type[ev.Event]) -> frozenset[str]:
    import msgspec

    return frozenset(f.name for f in msgspec.structs.fields(cls) if f.type in _INT_TYPES)


def view_name(cls: type[ev.Event], version: int | None = None) -> str:
    return cls.__name__ if version is None or version == cls.SCHEMA else f"{cls.__name__}_v{version}"


def view_ddl(cls: type[ev.Event], version: int, *, name: str | None = None, tagged: bool = True) -> str:
    """``CREATE VIEW`` of one stored version of ``cls`` (its own fields, in stored order)."""
    fields = cls.__struct_fields__ if version == cls.SCHEMA else cls.PAST[version].fields
    ints = _int_fields(cls)
    topic = f"{cls.__name__}.v{version}"
    cols = ["seq"] + [_column(f, i, tagged, f in ints or f not in cls.__struct_fields__)
                      for i, f in enumerate(fields) if f != "seq"]
    where = f"topic = '{topic}'"
    if not tagged:  # the oldest logs' bodies, without the type name
        where += " AND json_type(body, '$[0]') != 'text'"
    return (f'CREATE VIEW "{name or view_name(cls, version)}" AS SELECT'
            f" {', '.join(cols)} "
            f"FROM (SELECT seq, body AS b FROM events WHERE {where})")


@functools.cache
def current_views() -> tuple[str, ...]:
    """The view of every type's current version (what a new log gets)."""
    return tuple(view_ddl(t, t.SCHEMA) for t in ev.EVENT_TYPES)


def create_views(cursor: Any) -> None:
    """Create the current views with ``cursor`` (inside the log's creating transaction)."""
    for ddl in current_views():
        cursor.execute(ddl)


@functools.cache
def _accepted() -> dict[str, frozenset[str]]:
    """View name -> every definition this code writes under that name (any version of the type
    can be the current one of the build that made a log; older ones tagged or not)."""
    out: dict[str, set[str]] = {}
    for t in ev.EVENT_TYPES:
        for v in [*sorted(t.PAST), t.SCHEMA]:
            out.setdefault(t.__name__, set()).add(view_ddl(t, v, name=t.__name__))
            if v != t.SCHEMA:
                for tagged in (True, False):
                    out.setdefault(view_name(t, v), set()).add(view_ddl(t, v, tagged=tagged))
    return {k: frozenset(v) for k, v in out.items()}


def check_views(schema: dict[tuple[str, str], str]) -> str | None:
    """What is wrong with the event views in a log's schema (``(type, name) -> sql``), or None.
    An object named like one of our views, or whose definition declares such a name, must be a
    view this code writes under that name (so one flipped bit in a stored name is caught too)."""
    accepted = _accepted()
    for (kind, name), sql in sorted(schema.items()):
        m = _DECLARED.match(sql or "")
        declared = m.group(1) if m else None
        if name not in accepted and declared not in accepted:
            continue
        if kind != "view" or declared != name or sql not in accepted.get(name, ()):
            return f"the {kind} {name!r} is not the event view tapedeck writes"
    return None


_DECLARED = re.compile(r'\s*CREATE\s+(?:TEMP\s+|TEMPORARY\s+)?\w+\s+(?:IF\s+NOT\s+EXISTS\s+)?"?([^"\s(]+)', re.I)


def add_views(path: str | Path, topics: Iterable[str]) -> list[str]:
    """Add the missing views to an existing log: the current version of every type, and the
    ``_v<k>`` view of each older stored topic in ``topics`` (``Name.vK``, as the log holds them).
    Returns the names created. The caller holds the log's writer lock."""
    con = sqlite3.connect(str(path))
    try:
        have = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        untagged = _untagged_topics(con)
        wanted = [(t, t.SCHEMA, True) for t in ev.EVENT_TYPES]
        for topic in sorted(set(topics)):
            name, _, ver = topic.partition(".v")
            cls = ev.BY_NAME.get(name)
            if cls is not None and ver.isdigit() and int(ver) in cls.PAST:
                wanted.append((cls, int(ver), topic not in untagged))
        made = []
        with con:
            for cls, version, tagged in wanted:
                name = view_name(cls, version)
                if name not in have:
                    con.execute(view_ddl(cls, version, tagged=tagged))
                    have.add(name)
                    made.append(name)
        return made
    finally:
        con.close()


def _untagged_topics(con: sqlite3.Connection) -> set[str]:
    """Stored topics whose bodies do not lead with their type name (the oldest logs)."""
    return {r[0] for r in con.execute("SELECT DISTINCT topic FROM events WHERE json_type(body, '$[0]') != 'text'")}


# ----------------------------------------------------------------------------- Parquet export
# ``tapedeck export --format parquet --out DIR``: one file per event type, ``DIR/<Name>.parquet``
# (the columns differ per type; one file with a type column would be mostly nulls). Events are read
# through the codec, so older stored versions arrive upcast, with the current columns; the column
# types come from the class: int -> int64 (a column holding an int beyond 64 bits is written as
# exact decimal strings instead, said in the file's metadata), bool -> bool, str and Decimal ->
# string, tuples and nested structs -> their JSON text.


def _arrow_type(t: Any) -> str:
    if t is bool:
        return "bool"
    if t is int:
        return "int"
    if t is str:
        return "str"
    return "json"


def write_parquet(store: Any, out_dir: str | Path, types: Iterable[str] = ()) -> dict[str, int]:
    """Write the store's events (``typed_segments``: a checked full read, older versions upcast) as
    one Parquet file per type under ``out_dir``; returns rows per type. ``types`` (names) limits which."""
    import msgspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    only = set(types)
    astuple = msgspec.structs.astuple
    rows: dict[type[ev.Event], list[tuple[Any, ...]]] = {}
    for _first, items, _state in store.typed_segments():  # a checked full read, one decode call a segment
        for _topic, e in items:
            got = rows.get(type(e))
            if got is None:
                if only and type(e).__name__ not in only:
                    continue
                got = rows[type(e)] = []
            got.append(astuple(e))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for cls, table_rows in rows.items():
        arrays, names, text_ints = [], [], []
        for f, values in zip(msgspec.structs.fields(cls), zip(*table_rows)):
            kind = _arrow_type(f.type)
            if kind == "int":
                try:
                    arrays.append(pa.array(values, pa.int64()))
                except (OverflowError, pa.ArrowInvalid):  # an int past 64 bits: the column as exact digits
                    arrays.append(pa.array([str(v) for v in values], pa.string()))
                    text_ints.append(f.name)
            elif kind == "bool":
                arrays.append(pa.array(values, pa.bool_()))
            elif kind == "str":
                arrays.append(pa.array(values, pa.string()))
            else:  # a Decimal as its text; tuples and nested structs as JSON
                arrays.append(pa.array([msgspec.json.encode(v).decode() if isinstance(v, (tuple, list, dict))
                                        else str(v) for v in values], pa.string()))
            names.append(f.name)
        meta = {"tapedeck.type": cls.__name__, "tapedeck.schema": str(cls.SCHEMA),
                "tapedeck.ints_as_text": ",".join(text_ints)}
        table = pa.Table.from_arrays(arrays, names=names).replace_schema_metadata(meta)
        pq.write_table(table, out / f"{cls.__name__}.parquet")
        counts[cls.__name__] = table.num_rows
    return dict(sorted(counts.items()))
