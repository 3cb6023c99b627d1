"""Per-event-type SQL views (adapters/event_views.py) read with sqlite-utils itself, and the Parquet
export read with DuckDB: every type's view names the fields the class has and returns the values
the run holds; DuckDB's counts of the export equal ``tapedeck inspect``'s."""
from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
import sqlite_utils
from click.testing import CliRunner

from tapedeck.adapters import event_views
from tapedeck.adapters.eventlog import EventLog, Manifest
from tapedeck.cli import main
from tapedeck.domain import events as ev

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "fixtures" / "golden"
BIG = 2**100 + 7  # past 64 bits: sqrtPriceX96-sized


def sample_value(name: str, typ: Any, i: int, k: int) -> Any:
    """A value of the field's type, distinct per (type i, field k)."""
    if typ is bool:
        return (i + k) % 2 == 0
    if typ is int:
        return (i + 1) * 1000 + k - (500 if k % 3 == 0 else 0)
    if typ is str:
        return f"{name}-{i}-{k}"
    if typ == tuple[str, ...]:
        return (f"a{i}", f"b{k}")
    if typ == tuple[tuple[int, int], ...]:
        return ((i, k), (-1, 2**70))
    if typ == tuple[tuple[int, int, int], ...]:
        return ((i, k, 3),)
    raise AssertionError(f"no sample for {name}: {typ}")


def one_of_each() -> list[ev.Event]:
    out = []
    for i, cls in enumerate(ev.EVENT_TYPES):
        values = {f.name: sample_value(f.name, f.type, i, k) for k, f in enumerate(msgspec.structs.fields(cls))
                  if f.name != "seq"}
        values["ts"] = 1_700_000_000_000_000_000 + i
        own_ints = [f.name for f in msgspec.structs.fields(cls)[4:] if f.type is int]
        if own_ints and i % 2 == 0:  # every other type: its first own int past 64 bits
            values[own_ints[0]] = BIG + i
        out.append(cls(**values))
    return out


def as_sqlite(value: Any) -> Any:
    """What the view gives for a field value: ints exact (TEXT past 64 bits), bools 0/1, tuples as JSON."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, (tuple, list)):
        return msgspec.json.encode(value).decode()
    return value


@pytest.fixture(scope="module")
def every_type(tmp_path_factory: Any) -> tuple[Path, list[ev.Event]]:
    path = tmp_path_factory.mktemp("views") / "every-type.db"
    log = EventLog.create(path, Manifest(run_id="", mode="test"))
    recorded = [log.append(e) for e in one_of_each()]
    log.close(ended="clean")
    return path, recorded


def test_every_event_type_has_a_view_whose_columns_are_its_fields_and_whose_rows_are_its_events(every_type) -> None:
    path, recorded = every_type
    db = sqlite_utils.Database(path)
    assert set(db.view_names()) == {"events", *(t.__name__ for t in ev.EVENT_TYPES)}
    big_seen = 0
    for e in recorded:
        cls = type(e)
        view = db[cls.__name__]
        assert [c.name for c in view.columns] == list(cls.__struct_fields__)
        (row,) = list(db.query(f'select * from "{cls.__name__}"'))
        expected = {f: as_sqlite(getattr(e, f)) for f in cls.__struct_fields__}
        assert row == expected, cls.__name__
        big_seen += any(v == str(BIG + i) for i in range(len(recorded)) for v in row.values())
    with_ints = sum(1 for i, t in enumerate(ev.EVENT_TYPES) if i % 2 == 0 and any(
        f.type is int for f in msgspec.structs.fields(t)[4:]))
    assert big_seen == with_ints > 20  # the >64-bit case was exercised on every other type


def test_a_query_by_field_name_returns_the_runs_values(every_type) -> None:
    path, recorded = every_type
    db = sqlite_utils.Database(path)
    for e in recorded:
        cls = type(e)
        field = cls.__struct_fields__[4]  # the type's first own field
        value = as_sqlite(getattr(e, field))
        rows = list(db.query(f'select seq, ts from "{cls.__name__}" where "{field}" = :v', {"v": value}))
        assert rows == [{"seq": e.seq, "ts": e.ts}], (cls.__name__, field)
        assert list(db.query(f'select count(*) n from "{cls.__name__}" where "{field}" != :v', {"v": value})) == [{"n": 0}]


def test_the_sqlite_utils_command_names_fields_in_a_where_clause(tmp_path: Path) -> None:
    path = tmp_path / "swaps.db"
    log = EventLog.create(path, Manifest(run_id="", mode="test"))
    for i, amount0 in enumerate([-5, 7, 0, 12]):
        log.append(ev.V3Swapped(ts=i, pool="0xpool", block=10 + i, tx=f"0x{i}", log_index=i, sender="s",
                                recipient="r", amount0=amount0, amount1=-amount0 * 3, sqrt_price_x96=BIG,
                                liquidity=10**18, tick=-200 + i))
    log.close(ended="clean")
    exe = Path(sys.executable).with_name("sqlite-utils")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sqlite_utils"]
    r = subprocess.run([*cmd, "query", str(path), "select seq, amount0, amount1, sqrt_price_x96 from V3Swapped "
                        "where amount0 > 0 order by seq"], capture_output=True, text=True, check=True)
    assert json.loads(r.stdout) == [{"seq": 2, "amount0": 7, "amount1": -21, "sqrt_price_x96": str(BIG)},
                                    {"seq": 4, "amount0": 12, "amount1": -36, "sqrt_price_x96": str(BIG)}]


def test_events_stays_the_union_of_every_view(every_type) -> None:
    path, recorded = every_type
    db = sqlite_utils.Database(path)
    total = sum(db.execute(f'select count(*) from "{t.__name__}"').fetchone()[0] for t in ev.EVENT_TYPES)
    assert total == db.execute("select count(*) from events").fetchone()[0] == len(recorded)


def test_an_edited_view_is_tampering_and_verify_says_so(every_type, tmp_path: Path) -> None:
    path, _ = every_type
    copy = tmp_path / "edited.db"
    shutil.copy(path, copy)
    with sqlite3.connect(copy) as c:
        c.execute('DROP VIEW "V3Swapped"')
        c.execute('CREATE VIEW "V3Swapped" AS SELECT seq, 0 AS amount0 FROM events')
    r = CliRunner().invoke(main, ["inspect", str(copy)])
    assert r.exit_code == 2 and "tampered: the view 'V3Swapped' is not the event view tapedeck writes" in r.output
    ok = CliRunner().invoke(main, ["inspect", str(path)])
    assert ok.exit_code == 0, ok.output


def test_a_log_from_before_views_gets_them_with_its_older_versions_in_their_own_columns(tmp_path: Path) -> None:
    src = GOLDEN / "schema3" / "replay.db"
    run = tmp_path / "old.db"
    shutil.copy(src, run)
    before = sqlite_utils.Database(run).view_names()
    assert before == ["events"]
    r = CliRunner().invoke(main, ["views", str(run)])
    assert r.exit_code == 0, r.output
    db = sqlite_utils.Database(run)
    topics = {row["topic"] for row in db.query("select distinct topic from events")}
    older = sorted(t for t in topics if int(t.split(".v")[1]) < ev.BY_NAME[t.split(".v")[0]].SCHEMA)
    assert older, topics  # the golden log holds older versions: the case is exercised
    log = EventLog.open(run)
    decoded = {e.seq: e for e in log.events()}
    for topic in older:
        name, v = topic.split(".v")
        cls = ev.BY_NAME[name]
        view = f"{name}_v{v}"
        assert [c.name for c in db[view].columns] == list(cls.PAST[int(v)].fields)
        rows = list(db.query(f'select * from "{view}"'))
        assert len(rows) == db.execute("select count(*) from events where topic = ?", [topic]).fetchone()[0] > 0
        for row in rows[:50]:  # the fields both versions have carry the same values as the upcast event
            e = decoded[row["seq"]]
            for f in set(cls.PAST[int(v)].fields) & set(cls.__struct_fields__) - {"seq"}:
                assert row[f] == as_sqlite(getattr(e, f)), (view, f)
    r = CliRunner().invoke(main, ["inspect", str(run)])
    assert r.exit_code == 0 and "sealed" in r.output and "chained and intact" in r.output, r.output
    # views added to a sealed log leave its bytes checking out


def test_untagged_bodies_of_the_oldest_logs_read_one_position_left(tmp_path: Path) -> None:
    run = tmp_path / "untagged.db"
    shutil.copy(GOLDEN / "schema1-untagged" / "replay.db", run)
    assert CliRunner().invoke(main, ["views", str(run)]).exit_code == 0
    db = sqlite_utils.Database(run)
    log = EventLog.open(run)
    decoded = {e.seq: e for e in log.events()}
    checked = 0
    for name in db.view_names():
        if "_v" not in name:
            continue
        for row in db.query(f'select * from "{name}" limit 5'):
            e = decoded[row["seq"]]
            assert row["ts"] == e.ts and row["source"] == e.source, name
            checked += 1
    assert checked > 0


def test_new_logs_views_are_the_generated_ones() -> None:
    ddl = event_views.view_ddl(ev.OrderFilled, ev.OrderFilled.SCHEMA)
    assert ddl.startswith('CREATE VIEW "OrderFilled" AS SELECT seq, ')
    assert "topic = 'OrderFilled.v2'" in ddl
    assert event_views.check_views({("view", "OrderFilled"): ddl}) is None
    assert event_views.check_views({("view", "OrderFilled"): ddl.replace("'$[6]'", "'$[7]'")}) is not None
    assert event_views.check_views({("view", "my_own_view"): "CREATE VIEW my_own_view AS SELECT 1"}) is None


# ----------------------------------------------------------------------------- Parquet + DuckDB


def test_duckdb_reads_the_parquet_export_and_its_counts_equal_inspects(every_type, tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    path, recorded = every_type
    out = tmp_path / "pq"
    r = CliRunner().invoke(main, ["export", str(path), "--format", "parquet", "--out", str(out)])
    assert r.exit_code == 0, r.output
    inspected = json.loads(CliRunner().invoke(main, ["inspect", str(path), "--json"]).output)
    by_type: dict[str, int] = {}
    for topic, n in inspected["counts"].items():
        by_type[topic.split(".v")[0]] = by_type.get(topic.split(".v")[0], 0) + n
    con = duckdb.connect()
    counted = {f.stem: con.execute(f"select count(*) from read_parquet('{f}')").fetchone()[0]
               for f in sorted(out.glob("*.parquet"))}
    assert counted == by_type and sum(counted.values()) == inspected["total"]
    # and the values: a field by name, ints exact (past 64 bits as their digits)
    for e in recorded[:20]:
        cls = type(e)
        field = cls.__struct_fields__[4]
        got = con.execute(f'select "{field}", seq from read_parquet(\'{out / (cls.__name__ + ".parquet")}\')').fetchone()
        want = getattr(e, field)
        if isinstance(want, int) and not isinstance(want, bool) and not -(2**63) <= want < 2**63:
            want = str(want)
        elif isinstance(want, tuple):
            want = msgspec.json.encode(want).decode()
        assert got == (want, e.seq), cls.__name__


def test_parquet_of_a_run_with_older_versions_has_the_upcast_current_columns(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    run = GOLDEN / "schema2" / "replay.db"
    out = tmp_path / "pq"
    r = CliRunner().invoke(main, ["export", str(run), "--format", "parquet", "--out", str(out), "--type", "OrderIntended"])
    assert r.exit_code == 0, r.output
    cols = [d[0] for d in duckdb.connect().execute(f"describe select * from read_parquet('{out / 'OrderIntended.parquet'}')").fetchall()]
    assert cols == list(ev.OrderIntended.__struct_fields__)  # v2 bodies, v5 columns (client_id, route...)
    assert [p.name for p in out.iterdir()] == ["OrderIntended.parquet"]


def test_parquet_export_refuses_stdout_and_a_file(every_type, tmp_path: Path) -> None:
    path, _ = every_type
    r = CliRunner().invoke(main, ["export", str(path), "--format", "parquet"])
    assert r.exit_code == 2 and "needs --out FOLDER" in r.output
    f = tmp_path / "file"
    f.write_text("x")
    r = CliRunner().invoke(main, ["export", str(path), "--format", "parquet", "--out", str(f)])
    assert r.exit_code == 2 and "is a file" in r.output


def test_views_refuses_a_log_another_writer_holds_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    log = EventLog.create(path, Manifest(run_id="", mode="test"))
    log.append(ev.KillSwitchSet(ts=1, engaged=True, reason="test"))
    log.flush()
    try:
        r = CliRunner().invoke(main, ["views", str(path)])
        assert r.exit_code == 2 and "another writer" in r.output and len(r.output.strip().splitlines()) == 1
    finally:
        log.close(ended="clean")
    r = CliRunner().invoke(main, ["views", str(path)])
    assert r.exit_code == 0 and r.output.strip() == f"{path}: 0 views added"  # a new log has them all already


def test_a_flipped_bit_in_the_views_definitions_never_reads_as_the_intact_run(every_type, tmp_path: Path) -> None:
    """One bit flipped anywhere in the bytes that hold the views' definitions: either SQLite's
    schema is unchanged (a byte nothing reads) or the run does not read as intact."""
    import random

    from tapedeck.adapters.eventlog import EventLogError

    path, _ = every_type
    data = path.read_bytes()

    def schema(p: Path):  # type: ignore[no-untyped-def]
        try:
            with sqlite3.connect(f"file:{p}?mode=ro", uri=True) as c:
                return c.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name").fetchall()
        except sqlite3.DatabaseError:
            return None

    original = schema(path)
    starts = [i for i in range(len(data)) if data.startswith(b'CREATE VIEW "', i)]
    lo, hi = min(starts) - 64, max(starts) + 2048
    rng = random.Random(3)
    changed = caught = 0
    for case in range(120):
        flipped = bytearray(data)
        flipped[rng.randrange(lo, hi)] ^= 1 << rng.randrange(8)
        p = tmp_path / f"flip{case}.db"
        p.write_bytes(bytes(flipped))
        if schema(p) == original:
            continue
        changed += 1
        try:
            with EventLog.open(p) as log:
                log.counts_by_topic()
        except EventLogError:
            caught += 1
        p.unlink()
    assert changed >= 60 and caught == changed  # most flips changed a definition; each one was caught
