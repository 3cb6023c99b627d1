"""``tapedeck import uniswap-v3-logs --snapshot FILE``: the pool's tick table for sizing across ticks.

The shared recording (one day of the USDC/WETH 0.05% pool's logs) does not hold the pool's tick table
at its first block: that is the sum of every Mint and Burn since the pool was created, and a Swap
log carries only the in-range liquidity. So the importer records no state it cannot prove: without
a snapshot it records none and says what is missing (``LACKS_TICKS``); with one (the pool read at
the block before the first log) it checks the file on its own and then against every Swap of the
day (the in-range liquidity each reports must be the table's at its tick, kept by the day's Mints
and Burns) and records it as a ``V3PoolSnapshot`` before the first log, or records an
``InputRejected`` naming the first disagreement and no state.

No real snapshot of that block ships with the data (it takes an archive node: ``slot0``,
``liquidity()`` and ``ticks(i)``). The real-data tests here build the one table the day itself
pins down: ticks only where the day's swaps show the in-range liquidity change (and the ranges of
positions burned that day), which agrees with every Swap of the day by construction. It is a test
fixture, not the pool's state (which has many more ticks the day never reached); what it proves is
that a table consistent with the day is accepted and folded through ``cross_pool_arb``, and that
one unit of liquidity wrong anywhere a swap looks is refused.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.adapters.uniswap_v3_logs import LACKS_TICKS, check_snapshot, read_v3_logs, read_v3_snapshot
from tapedeck.domain import events as ev
from tapedeck.domain.uniswap_v3 import get_sqrt_ratio_at_tick
from tapedeck.runtime.importers import ImportError_, import_files
from tests.conftest import require_data

POOL = "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"
FILE = f"ethereum-{POOL}-2024-01-05.raw.csv"
SPACING = 10


def _data() -> Path:
    return require_data(f"uniswap-v3-usdc-weth-2024-01-05/{FILE}")


def table_from_the_day(events: list[ev.Event]) -> dict[str, Any]:
    """The tick table the day's logs pin down (module docstring): as a snapshot file's JSON."""
    day: dict[int, int] = {}  # the day's own Mint/Burn nets so far
    minted: dict[tuple[str, int, int], int] = {}
    before: dict[tuple[int, int], int] = {}  # positions burned that day beyond what it minted: older ones
    need: dict[int, int] = {}  # compressed tick -> the older positions' in-range liquidity a swap there shows
    first = None
    for e in events:
        if type(e) is ev.V3Minted:
            minted[(e.owner, e.tick_lower, e.tick_upper)] = minted.get((e.owner, e.tick_lower, e.tick_upper), 0) + e.amount
            day[e.tick_lower] = day.get(e.tick_lower, 0) + e.amount
            day[e.tick_upper] = day.get(e.tick_upper, 0) - e.amount
        elif type(e) is ev.V3Burned:
            key = (e.owner, e.tick_lower, e.tick_upper)
            own = min(minted.get(key, 0), e.amount)
            minted[key] = minted.get(key, 0) - own
            if e.amount > own:
                r = (e.tick_lower, e.tick_upper)
                before[r] = before.get(r, 0) + e.amount - own
            day[e.tick_lower] = day.get(e.tick_lower, 0) - e.amount
            day[e.tick_upper] = day.get(e.tick_upper, 0) + e.amount
        elif type(e) is ev.V3Swapped:
            first = first or e
            shown = e.liquidity - sum(n for t, n in day.items() if t <= e.tick)
            c = e.tick // SPACING
            assert need.setdefault(c, shown) == shown  # (the pool is consistent: one value per interval)
    # the older positions burned that day, whole, then the rest in steps at the intervals swaps saw
    net: dict[int, int] = {}
    gross: dict[int, int] = {}
    for (lo, up), amount in before.items():
        for t, n in ((lo, amount), (up, -amount)):
            net[t] = net.get(t, 0) + n
            gross[t] = gross.get(t, 0) + amount
    older = dict(net)  # (their ticks are on the spacing: at every tick of interval c they count alike)
    prev = 0
    cs = sorted(need)
    for c in cs:
        shown = need[c] - sum(n for t, n in older.items() if t <= c * SPACING)
        step = shown - prev
        if step:
            t = c * SPACING
            net[t] = net.get(t, 0) + step
            gross[t] = gross.get(t, 0) + abs(step)
        prev = shown
    top = (cs[-1] + 1) * SPACING
    net[top] = net.get(top, 0) - prev
    gross[top] = gross.get(top, 0) + abs(prev)
    assert first is not None
    ticks = [[t, gross[t], net[t]] for t in sorted(net) if gross[t]]
    # the state before the first swap is unknown; the snapshot is read at the block before the day's
    # first log, with the first swap's price (the day starts with it) and the table's in-range value
    sp = get_sqrt_ratio_at_tick(first.tick)
    liq = sum(n for t, _, n in ticks if t <= first.tick)
    return {"pool": POOL, "block": first.block - 1, "sqrt_price_x96": str(sp), "tick": first.tick,
            "liquidity": str(liq), "tick_spacing": SPACING, "ticks": ticks}


@pytest.fixture(scope="module")
def day() -> tuple[Path, list[ev.Event]]:
    path = _data()
    return path, list(read_v3_logs(path))


def test_without_a_snapshot_the_importer_records_no_tick_table_and_says_why(day, tmp_path: Path) -> None:
    path, _ = day
    rep = import_files("uniswap-v3-logs", [str(path)], tmp_path / "day.db")
    assert LACKS_TICKS in rep.notes and "tick table" in LACKS_TICKS
    with EventLog.open(tmp_path / "day.db") as log:
        assert not [e for e in log.events() if type(e) is ev.V3PoolSnapshot]


def test_a_snapshot_consistent_with_every_swap_is_recorded_first_and_folds_through_cross_pool_arb(
        day, tmp_path: Path) -> None:
    path, events = day
    snap_file = tmp_path / "snapshot.json"
    snap_file.write_text(json.dumps(table_from_the_day(events)), encoding="utf-8")
    snap = read_v3_snapshot(snap_file, POOL, SPACING)
    assert isinstance(snap, ev.V3PoolSnapshot), snap
    assert check_snapshot(snap, events) is None
    rep = import_files("uniswap-v3-logs", [str(path)], tmp_path / "day.db", snapshot=str(snap_file))
    assert rep.rejected == 0 and LACKS_TICKS not in rep.notes
    with EventLog.open(tmp_path / "day.db") as log:
        got = list(log.events())
    assert type(got[0]) is ev.V3PoolSnapshot and got[0].block == events[0].block - 1  # type: ignore[attr-defined]
    assert got[0].ts == events[0].ts and len(got) == len(events) + 1
    from tapedeck.domain.state import MarketState

    state = MarketState()
    for e in got:
        if type(e) in (ev.V3PoolSnapshot, ev.V3Swapped, ev.V3Minted, ev.V3Burned):
            state.on_v3(e)
        if type(e) is ev.V3Swapped:  # the folded table agrees with the pool at every swap
            assert state.v3[POOL].ticks is not None and state.v3[POOL].liquidity == e.liquidity


@pytest.mark.parametrize("where", ["net", "liquidity-at-a-far-tick"])
def test_a_snapshot_one_unit_wrong_is_refused_naming_the_swap(day, tmp_path: Path, where: str) -> None:
    path, events = day
    table = table_from_the_day(events)
    ticks = table["ticks"]
    if where == "net":  # a step one unit off (and the top one, so the nets still sum to 0)
        ticks[len(ticks) // 2][2] += 1
        ticks[len(ticks) // 2][1] += 1
    else:
        ticks[1][2] += 1
        ticks[1][1] += 1
    ticks[-1][2] -= 1
    ticks[-1][1] += 1
    table["liquidity"] = str(sum(n for t, _, n in ticks if t <= table["tick"]))
    snap_file = tmp_path / "snapshot.json"
    snap_file.write_text(json.dumps(table), encoding="utf-8")
    rep = import_files("uniswap-v3-logs", [str(path)], tmp_path / "day.db", snapshot=str(snap_file))
    assert rep.rejected == 1 and "disagree" in rep.rejections[0] and "Swap at block" in rep.rejections[0]
    with EventLog.open(tmp_path / "day.db") as log:
        assert not [e for e in log.events() if type(e) is ev.V3PoolSnapshot]


GOOD = {"pool": POOL, "block": 10, "sqrt_price_x96": str(get_sqrt_ratio_at_tick(5)), "tick": 5, "liquidity": 7,
        "tick_spacing": SPACING, "ticks": [[0, 7, 7], [20, 7, -7]]}


@pytest.mark.parametrize("change, reason", [
    ({"pool": "0x" + "1" * 40}, "not " + POOL),
    ({"tick_spacing": 60}, "tick_spacing 60"),
    ({"tick": 6}, "not a price of tick 6"),
    ({"liquidity": 8}, "liquidity 8"),
    ({"ticks": [[0, 7, 7], [20, 7, -6]]}, "sum to 0"),
    ({"ticks": [[20, 7, -7], [0, 7, 7]]}, "rising order"),
    ({"ticks": [[5, 7, 7], [20, 7, -7]]}, "spacing"),
    ({"ticks": [[0, 6, 7], [20, 7, -7]]}, "not a pool's"),
    ({"block": "ten"}, "block must be an integer"),
])
def test_a_bad_snapshot_file_is_a_rejection_naming_what(tmp_path: Path, change: dict, reason: str) -> None:
    f = tmp_path / "s.json"
    f.write_text(json.dumps(GOOD), encoding="utf-8")
    assert isinstance(read_v3_snapshot(f, POOL, SPACING), ev.V3PoolSnapshot)
    f.write_text(json.dumps(dict(GOOD, **change)), encoding="utf-8")
    got = read_v3_snapshot(f, POOL, SPACING)
    assert isinstance(got, ev.InputRejected) and reason in got.reason, got
    f.write_text("{not json", encoding="utf-8")
    assert isinstance(read_v3_snapshot(f, POOL, SPACING), ev.InputRejected)


def test_a_snapshot_needs_one_v3_file(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    f.write_text(json.dumps(GOOD), encoding="utf-8")
    with pytest.raises(ImportError_, match="--snapshot"):
        import_files("uniswap-v2-reserves", [str(f)], tmp_path / "x.db", snapshot=str(f))


def test_the_imported_day_with_its_table_replays_through_cross_pool_arb_sized_across_ticks(
        day, tmp_path: Path) -> None:
    from tapedeck.adapters.config_files import DEFAULT_CONFIG, load_config
    from tapedeck.domain.strategies import build_engine
    from tapedeck.runtime.demo import V2_FILE, V2_PAIR

    path, events = day
    v2 = require_data(V2_FILE)
    snap_file = tmp_path / "snapshot.json"
    snap_file.write_text(json.dumps(table_from_the_day(events)), encoding="utf-8")
    out = tmp_path / "day.db"
    runs = {}
    for label, snapshot in (("no table", None), ("table", str(snap_file))):
        out.unlink(missing_ok=True)
        import_files("uniswap-v3-logs", [str(path)], out, snapshot=snapshot)
        import_files("uniswap-v2-reserves", [str(v2)], out, from_block=events[0].block, to_block=events[-1].block,  # type: ignore[attr-defined]
                     pool=V2_PAIR)
        with EventLog.open(out) as log:
            day_events = list(log.events())
        engine = build_engine(load_config(DEFAULT_CONFIG))
        seq, decisions = day_events[-1].seq, []
        for e in day_events:
            for d in engine.handle(e):
                seq += 1
                d = ev.with_seq(d, seq)
                engine.decided(d)
                decisions.append(d)
        assert not [d for d in decisions if type(d) is ev.StrategyFailed], label
        runs[label] = (decisions, engine.state.v3[POOL].ticks)
    assert runs["no table"][1] is None and runs["table"][1] is not None  # the state knows the ticks only with it
    found = {k: [(d.key, d.amount_in) for d in v[0] if type(d) is ev.OpportunityDetected] for k, v in runs.items()}
    assert found["table"] and found["no table"]
    # the same gaps, sized otherwise where the table lets a trade run past the current tick range
    sized = {k: dict(v) for k, v in found.items()}
    assert sized["table"].keys() == sized["no table"].keys()
    assert [k for k in sized["table"] if sized["table"][k] != sized["no table"][k]]


def test_the_command_takes_the_snapshot_and_says_what_is_missing_without_one(day, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tapedeck.cli import main

    path, events = day
    r = CliRunner().invoke(main, ["import", "uniswap-v3-logs", str(path), "--out", str(tmp_path / "a.db")],
                           catch_exceptions=False)
    assert r.exit_code == 0 and "not its tick table" in r.output and "--snapshot FILE" in r.output
    snap_file = tmp_path / "snapshot.json"
    snap_file.write_text(json.dumps(table_from_the_day(events)), encoding="utf-8")
    r = CliRunner().invoke(main, ["import", "uniswap-v3-logs", str(path), "--out", str(tmp_path / "b.db"),
                                  "--snapshot", str(snap_file)], catch_exceptions=False)
    assert r.exit_code == 0 and f"imported {len(events) + 1} events" in r.output and "tick table" not in r.output
    r = CliRunner().invoke(main, ["import", "uniswap-v3-logs", str(path), "--out", str(tmp_path / "c.db"),
                                  "--snapshot", str(tmp_path / "none.json")])
    assert r.exit_code == 2 and "no such file" in r.output
