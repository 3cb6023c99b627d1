"""``tapedeck import hyperliquid-ws``: the shared recording imported, replayed and verified like any import."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tapedeck.adapters.eventlog import EventLog
from tapedeck.cli import main
from tapedeck.domain import events as ev
from tests.conftest import require_data

RECORDING = "hyperliquid-btc-ws-2025-01-26/btcusd_20250126.gz"


def test_import_replay_and_verify_the_shared_recording(tmp_path: Path) -> None:
    path = require_data(RECORDING)
    run = lambda *a: CliRunner().invoke(main, [str(x) for x in a], catch_exceptions=False)  # noqa: E731
    r = run("import", "hyperliquid-ws", path, "--out", tmp_path / "hl.db")
    assert r.exit_code == 0, r.output
    assert "imported 156 events" in r.output and "rejected 0 frame(s)" in r.output
    assert "frames by channel: l2Book 46, trades 9" in r.output
    assert "events by type: BookDepthUpdated 46, QuoteUpdated 46, TradePrinted 64" in r.output
    log = EventLog.open(tmp_path / "hl.db")
    events = list(log.events())
    assert log.manifest.notes["imports"][-1]["frames"] == {"l2Book": 46, "trades": 9}
    log.close()
    # the subscription's first trades frame (30 past trades, one receive time) keeps venue-time order,
    # which is not their price order (how equal-time events would sort by their encoded bodies alone)
    trades = [e for e in events if type(e) is ev.TradePrinted]
    first = [e for e in trades if e.ts == trades[0].ts]
    assert len(first) == 30 and [e.venue_ts for e in first] == sorted(e.venue_ts for e in first)
    assert [e.price for e in first] != sorted(e.price for e in first)
    assert run("replay", tmp_path / "hl.db", "--out", tmp_path / "run.db").exit_code == 0
    v = run("replay", tmp_path / "run.db", "--verify")
    assert v.exit_code == 0 and "verified 156 inputs" in v.output, v.output
    # importing the same file again into a fresh log gives the same events (the order is total)
    assert run("import", "hyperliquid-ws", path, "--out", tmp_path / "again.db").exit_code == 0
    again = list(EventLog.open(tmp_path / "again.db").events())
    assert again == events
