"""Timers: a strategy's ``TimerRequested`` comes back as a ``TimerFired`` input at the requested
event time, in replay (merged into the recorded order) and in the sim (SimPy), and the run verifies.

The rules (CONTRACT.md): a timer fires before the first input with ``ts > at_ts`` (inputs at
exactly ``at_ts`` come first), stamped ``at_ts``; one asked for at or before the current event's
time fires right after that event, stamped with its time; ties go by request seq; a timer not due
when the source ends never fires."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tapedeck.adapters.eventlog import EventLog, Manifest
from tapedeck.domain import events as ev
from tapedeck.domain.engine import Engine
from tapedeck.domain.risk import RiskGate
from tapedeck.runtime.bootstrap import build_run
from tapedeck.runtime.verify import verify
from tests.conftest import quote

RISK = {"default_max_notional": 10**12, "default_max_outstanding": 10**13}


class TimerProbe:
    """Test-only: asks for timers. ``on_input[i]`` = [(key, offset)] asked on the i-th input seen
    (``at_ts`` = its ts + offset); ``on_fire[key]`` = [(key, offset)] asked when ``key`` fires
    (offset from the fired timer's ts). Remembers every firing it got as (key, ts)."""

    name = "probe"

    def __init__(self, on_input: dict[int, list[tuple[str, int]]], on_fire: dict[str, list[tuple[str, int]]] | None = None,
                 handles: tuple[type[ev.Event], ...] = (ev.QuoteUpdated,)):
        self.on_input, self.on_fire = on_input, on_fire or {}
        self.handles = handles + (ev.TimerFired,)
        self.seen = 0
        self.fired: list[tuple[str, int]] = []

    def on_event(self, e: Any, state: Any) -> list[ev.Event]:
        if type(e) is ev.TimerFired:
            if e.strategy != self.name:  # until the engine routes TimerFired to the strategy it names
                return []
            self.fired.append((e.key, e.ts))
            asks = self.on_fire.get(e.key, [])
        else:
            asks = self.on_input.get(self.seen, [])
            self.seen += 1
        return [ev.TimerRequested(ts=e.ts, source=f"strategy:{self.name}", cause=e.seq, strategy=self.name, key=k,
                                  at_ts=e.ts + off) for k, off in asks]


def engine(*args: Any, **kw: Any) -> Engine:
    return Engine([TimerProbe(*args, **kw)], RiskGate.from_config(RISK))


def historical(path: Path, times: list[int]) -> EventLog:
    """A log of quotes at ``times`` (an import, as replay reads it)."""
    log = EventLog.create(path, Manifest(run_id="", mode="import", sources=["test"]), overwrite=True)
    for i, t in enumerate(times):
        log.append(quote(t, "a", str(100 + i), str(101 + i)))
    log.close(ended="clean")
    return EventLog.open(path)


def replay(tmp: Path, times: list[int], *args: Any, **kw: Any) -> list[ev.Event]:
    src = historical(tmp / "src.db", times)
    build_run("replay", {"risk": RISK}, out=tmp / "run.db", source=src, engine=engine(*args, **kw),
              overwrite=True).run()
    src.close()
    run = EventLog.open(tmp / "run.db")
    result = verify(run, engine(*args, **kw))
    assert result.ok, result.divergence.describe()  # type: ignore[union-attr]
    events = list(run.events())
    run.close()
    return events


def timeline(events: list[ev.Event]) -> list[tuple[str, int]]:
    """Inputs as (type, ts): quotes as ("Q", ts), timers as (key, ts)."""
    return [("Q", e.ts) if type(e) is ev.QuoteUpdated else (e.key, e.ts)  # type: ignore[attr-defined]
            for e in events if type(e) in (ev.QuoteUpdated, ev.TimerFired)]


def test_replay_merges_timers_into_the_recorded_order(tmp_path: Path) -> None:
    asks = {0: [("late", 2500), ("past", -500), ("beyond", 8000), ("now", 0), ("tie", 2000), ("end", 4000)]}
    chained = {"late": [("again", 0), ("after", 1000)]}  # asked by a timer: at its own time, and later
    events = replay(tmp_path, [1000, 2000, 3000, 4000, 5000], asks, chained)
    assert timeline(events) == [
        ("Q", 1000), ("past", 1000), ("now", 1000),  # at or before the asking event: right after it, its ts
        ("Q", 2000),
        ("Q", 3000), ("tie", 3000),  # an input at exactly at_ts comes first
        ("late", 3500), ("again", 3500),  # before the first input after at_ts; a timer's own-time request next
        ("Q", 4000),
        ("after", 4500),
        ("Q", 5000), ("end", 5000),  # due at the last input: fires; "beyond" (9000) never does
    ]
    requests = {e.seq: e for e in events if type(e) is ev.TimerRequested}
    for f in (e for e in events if type(e) is ev.TimerFired):
        req = requests[f.requested]
        assert f.cause == f.requested < f.seq and f.source == "timer"
        assert (f.strategy, f.key) == (req.strategy, req.key) and f.ts >= req.at_ts


def test_a_replay_of_a_replay_fires_its_own_timers_not_the_recorded_ones(tmp_path: Path) -> None:
    asks = {0: [("t", 1500)], 2: [("u", 10)]}
    first = replay(tmp_path, [1000, 2000, 3000], asks)
    assert timeline(first) == [("Q", 1000), ("Q", 2000), ("t", 2500), ("Q", 3000)]
    again = tmp_path / "again"
    again.mkdir()
    src = EventLog.open(tmp_path / "run.db")
    build_run("replay", {"risk": RISK}, out=again / "run.db", source=src, engine=engine(asks)).run()
    src.close()
    run = EventLog.open(again / "run.db")
    assert verify(run, engine(asks)).ok
    assert timeline(list(run.events())) == timeline(first)  # not doubled: the source's TimerFired are dropped


# Property: against an independent model of the rules, for any tape (ties included) and requests.
tapes = st.lists(st.integers(0, 3), min_size=1, max_size=25).map(
    lambda steps: [1000 + 10 * sum(steps[:i + 1]) for i in range(len(steps))])
offsets = st.lists(st.sampled_from([-20, -10, 0, 5, 10, 15, 20, 30, 100, 10_000]), max_size=3)


def model(times: list[int], asks: dict[int, list[tuple[str, int]]]) -> list[tuple[str, int]]:
    """Where each timer fires, from the rules alone: right after the asking input i when at_ts is at
    or before its time, else after input j-1 and before input j, the first input with ts > at_ts;
    stamped max(at_ts, ts of input j-1)."""
    gaps: dict[int, list[tuple[int, int, str]]] = {}
    order = 0
    for i, t in enumerate(times):
        for key, off in asks.get(i, []):
            at = t + off
            order += 1
            j = i + 1 if at <= t else next((k for k in range(i + 1, len(times)) if times[k] > at), len(times))
            if j == len(times) and at > times[-1]:
                continue  # not due when the source ends
            gaps.setdefault(j, []).append((at, order, key))
    out: list[tuple[str, int]] = []
    for j in range(len(times) + 1):
        for at, _order, key in sorted(gaps.get(j, [])):
            out.append((key, max(at, times[j - 1])))
        if j < len(times):
            out.append(("Q", times[j]))
    return out


@settings(max_examples=60, deadline=None)
@given(tapes, st.data())
def test_replay_timers_follow_the_rules_for_any_tape(times: list[int], data: Any) -> None:
    asks = {i: [(f"k{i}-{n}", off) for n, off in enumerate(data.draw(offsets))] for i in range(len(times))}
    with tempfile.TemporaryDirectory() as tmp:
        events = replay(Path(tmp), times, asks)
    expected = model(times, asks)
    assert timeline(events) == expected
    # name the cases this example exercised (pytest --hypothesis-show-statistics lists them)
    ats = [(t + off, off) for i, t in enumerate(times) for _k, off in asks[i]]
    for label, hit in (("inputs tied in time", len(set(times)) < len(times)),
                       ("timer at or before its asking event", any(off <= 0 for _at, off in ats)),
                       ("timer at exactly a later input's time", any(off > 0 and at in times for at, off in ats)),
                       ("timer never due (after the last input)", any(at > times[-1] for at, _off in ats)),
                       ("several timers between two inputs", any(a[0] != "Q" and b[0] != "Q"
                                                                 for a, b in zip(expected, expected[1:])))):
        if hit:
            event(label)


# --------------------------------------------------------------------------- sim

BLOCKS_ONLY = """
name = "timers"
seed = 5
duration = 120
start = "2024-03-01T00:00:00Z"
[reference]
instrument = "ETH-USD"
start_price = "3000.00"
volatility = 0.2
tick = 1.0
[chains.ethereum]
block_interval = 12
gas_limit = 30_000_000
initial_base_fee = 10_000_000_000
background_utilization = 0.5
[venues.binance]
kind = "cex"
instrument = "ETH-USDC"
depth_levels = 5
level_size = "10"
spread_bps = 2
taker_fee_bps = 10
rate_limit = 10
latency.outbound = { base_ms = 25, jitter_ms = 5 }
latency.inbound = { base_ms = 25, jitter_ms = 5 }
"""


def sim_run(tmp: Path, *args: Any, flush_blocks: int | None = None, **kw: Any) -> tuple[Any, list[ev.Event], Path]:
    from tapedeck.sim.scenario import load_scenario

    path = tmp / "timers.toml"
    path.write_text(BLOCKS_ONLY)
    sc = load_scenario(path)
    out = tmp / "sim.db"
    build_run("sim", {"risk": RISK}, out=out, scenario=sc, engine=engine(*args, **kw), flush_blocks=flush_blocks).run()
    log = EventLog.open(out)
    result = verify(log, engine(*args, **kw))
    assert result.ok, result.divergence.describe()  # type: ignore[union-attr]
    events = list(log.events())
    log.close()
    return sc, events, out


def test_sim_fires_timers_through_simpy_at_their_time(tmp_path: Path) -> None:
    s = 10**9
    asks = {0: [("late", 30 * s), ("past", -5 * s), ("now", 0), ("beyond", 10**6 * s)], 3: [("next", 7 * s + 1)]}
    sc, events, _ = sim_run(tmp_path, asks, {"late": [("chained", 0)]}, handles=(ev.BlockProduced,))
    blocks = [e for e in events if type(e) is ev.BlockProduced]
    fired = {e.key: e for e in events if type(e) is ev.TimerFired}  # type: ignore[attr-defined]
    assert set(fired) == {"late", "past", "now", "next", "chained"}  # "beyond" is after the end
    first, fourth = blocks[0], blocks[3]
    assert fired["past"].ts == fired["now"].ts == first.ts  # at once, at the asking block's time
    assert fired["late"].ts == first.ts + 30 * s and fired["next"].ts == fourth.ts + 7 * s + 1
    assert fired["chained"].ts == fired["late"].ts and fired["chained"].seq > fired["late"].seq
    for f in fired.values():
        before = [e for e in events if e.seq < f.seq and e.KIND == ev.INPUT and type(e) is not ev.TimerFired]
        after = [e for e in events if e.seq > f.seq and e.KIND == ev.INPUT and type(e) is not ev.TimerFired]
        assert all(e.ts <= f.ts for e in before) and all(e.ts >= f.ts for e in after)  # in event-time order
    assert all(e.ts <= sc.start_ns + sc.duration * s for e in events)


def test_sim_commits_at_every_block_and_keeps_the_venues_quote_time(tmp_path: Path) -> None:
    _sc, events, out = sim_run(tmp_path, {}, flush_blocks=1)  # the default groups 64 (test_sim_group_commits.py)
    log = EventLog.open(out)
    segments = [[event for _topic, event in items] for _first, items, _state in log.typed_segments()]
    log.close()
    blocks = [e for e in events if type(e) is ev.BlockProduced]
    assert len(blocks) == 10 and len(segments) in (len(blocks), len(blocks) + 1)
    for seg in segments[:len(blocks)]:  # each commit ends with a block: a kill loses at most one block
        assert type(seg[-1]) is ev.BlockProduced
    quotes = [e for e in events if type(e) is ev.QuoteUpdated]
    assert quotes and all(0 < q.venue_ts < q.ts for q in quotes)  # stamped at the venue, received later


@pytest.mark.slow  # a subprocess, killed
def test_a_killed_sim_has_committed_every_block_before_the_kill(tmp_path: Path) -> None:
    """The sim commits every few blocks and by the store's timer (200 ms), so a SIGKILL loses at most
    that window (before, the group commit waited for 16,384 events and a sim killed 6 s in held none)."""
    (tmp_path / "long.toml").write_text(BLOCKS_ONLY.replace("duration = 120", "duration = 10_000_000")
                                        .replace("block_interval = 12", "block_interval = 2"))
    (tmp_path / "risk.toml").write_text("[risk]\ndefault_max_notional = 1000\ndefault_max_outstanding = 1000\n")
    out = tmp_path / "killed.db"
    proc = subprocess.Popen([sys.executable, "-m", "tapedeck.cli", "sim", str(tmp_path / "long.toml"), "--out", str(out),
                             "--config", str(tmp_path / "risk.toml")], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while committed_blocks(out) < 3:
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "no block committed in 120 s"
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    log = EventLog.open(out)
    events = list(log.events())
    assert log.manifest.ended == "open" and type(events[-1]) is ev.BlockProduced  # nothing after the last commit
    assert sum(type(e) is ev.BlockProduced for e in events) >= 3
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def committed_blocks(path: Path) -> int:
    """Blocks committed so far, read by a second connection as another process would."""
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT count(*) FROM events WHERE topic LIKE 'BlockProduced.%'").fetchone()
    except sqlite3.OperationalError:  # the tables are being created
        return 0
    return int(rows[0])
