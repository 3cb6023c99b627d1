"""The public trade tape of the sim's mock venues (``sim/venues/cex.py``): every fill on the venue
prints a ``TradePrinted`` input (our own fills in the same delivery as their report, the venue's
seeded taker flow after its inbound delay), so a VWAP ``sliced_order`` runs in the sim: it sizes each
child as its participation of the printed volume (recomputed here from the recorded tape), finishes
filled by its deadline, and the run verifies with ``tapedeck replay --verify``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.cli import load_config
from tapedeck.domain import events as ev
from tapedeck.runtime.strategy_loader import build_engine
from tapedeck.runtime.verify import verify
from tapedeck.sim.recording import run_scenario
from tapedeck.sim.scenario import ScenarioError, load_scenario
from tests.conftest import ROOT

SCENARIO = ROOT / "fixtures" / "scenarios" / "oracle-jump.toml"
VENUE_LINE = 'rate_limit = 20\n'
FLOW = 'rate_limit = 20\ntaker_flow_per_minute = 30\ntaker_flow_size = "2"\n'
NS = 10**9


def flow_scenario(tmp_path: Path, flow: str = FLOW) -> Path:
    text = SCENARIO.read_text()
    assert text.count(VENUE_LINE) == 1
    out = tmp_path / "oracle-jump-flow.toml"
    out.write_text(text.replace(VENUE_LINE, flow))
    return out


def vwap_config(**kw: Any) -> dict[str, Any]:
    strategy = dict(kind="sliced_order", name="vwap-buy-eth", venue="hyperliquid-eth", instrument="ETH-PERP",
                    side="buy", quantity=200_000, base_decimals=4, quote_decimals=6, lot=1, algo="vwap",
                    participation_bps=500, min_child=1_000, max_child=20_000, interval_s=10, start_after_s=30,
                    duration_s=600, max_price_age_s=5)
    strategy.update(kw)
    return {"risk": {"kill_switch": False, "default_max_notional": 250_000_000_000,
                     "default_max_outstanding": 1_000_000_000_000},
            "strategies": [strategy]}


def events_of(path: Path) -> list[ev.Event]:
    with EventLog.open(path) as log:
        return list(log.events())


def test_a_vwap_child_order_participates_in_the_printed_volume_and_finishes(tmp_path: Path) -> None:
    out = tmp_path / "vwap.db"
    summary = run_scenario(load_scenario(flow_scenario(tmp_path)), vwap_config(), out)
    events = events_of(out)
    tape = [e for e in events if type(e) is ev.TradePrinted]
    (started,) = [e for e in events if type(e) is ev.ParentOrderStarted]
    (done,) = [e for e in events if type(e) is ev.ParentOrderFinished]
    fills = [e for e in events if type(e) is ev.OrderFilled]
    slices = [e for e in events if type(e) is ev.SliceScheduled]
    assert summary.trades == len(tape) > 4 * len(fills) > 0  # the flow prints far more than our fills
    assert len({t.trade_id for t in tape}) == len(tape) and {t.side for t in tape} == {"buy", "sell"}
    assert all(t.venue == "hyperliquid-eth" and t.size > 0 and t.size_decimals == 4 and t.price_decimals == 1
               for t in tape)
    # each child is the participation of the volume printed since the start, less what is filled
    # (an independent recomputation from the recorded tape), capped at max_child
    filled = 0
    for s in slices:
        volume = sum(t.size for t in tape if t.seq < s.seq and t.ts >= started.start_ts)
        scheduled = min(200_000, volume * 500 // 10_000)
        assert s.scheduled == scheduled and s.filled == filled
        if s.reason == "participation":
            assert s.amount == min(scheduled - filled, 20_000, 200_000 - filled)
        filled += sum(f.amount for f in fills if f.cause == next(i.seq for i in events if type(i) is ev.OrderIntended
                                                                  and i.client_id == s.client_id))
    assert len(slices) >= 10 and {s.reason for s in slices} == {"participation"}
    # our own fills are on the tape too: printed in the same delivery as their report
    for f in fills:
        assert any(t.ts == f.ts and t.side == "buy" for t in tape), f
    assert done.status == "filled" and done.filled == 200_000 == sum(f.amount for f in fills)
    assert done.ts <= started.deadline_ts and done.late_ns < 0
    with EventLog.open(out) as log:
        assert verify(log, build_engine(log.manifest.config)).ok


def test_without_taker_flow_only_our_own_fills_print_and_vwap_waits_for_volume(tmp_path: Path) -> None:
    out = tmp_path / "still.db"
    run_scenario(load_scenario(SCENARIO), vwap_config(), out)
    events = events_of(out)
    started = next(e for e in events if type(e) is ev.ParentOrderStarted)
    (first,) = [e for e in events if type(e) is ev.OrderIntended]
    assert first.ts == started.deadline_ts  # nobody else trades: only the deadline's catch-up child goes
    (done,) = [e for e in events if type(e) is ev.ParentOrderFinished]
    assert done.status == "filled" and done.filled == 200_000
    tape = [e for e in events if type(e) is ev.TradePrinted]
    assert tape and all(t.ts > first.ts for t in tape)  # what prints is that child's own fill
    assert sum(t.size for t in tape) == 200_000


def test_the_twap_demo_prints_each_of_its_fills_on_the_tape(tmp_path: Path) -> None:
    out = tmp_path / "twap.db"
    run_scenario(load_scenario(SCENARIO), load_config(ROOT / "fixtures" / "config" / "sim-sliced-order.toml"), out)
    events = events_of(out)
    fills = [e for e in events if type(e) is ev.OrderFilled]
    tape = [e for e in events if type(e) is ev.TradePrinted]
    assert len(fills) == 20 and sum(t.size for t in tape) == sum(f.amount for f in fills) == 200_000
    assert [t.trade_id for t in tape][:2] == ["hyperliquid-eth-t1", "hyperliquid-eth-t2"]
    assert {t.side for t in tape} == {"buy"}  # our buys took the makers' asks


@pytest.mark.parametrize("flow,field", [
    ('rate_limit = 20\ntaker_flow_per_minute = 30\n', "taker_flow_size"),
    ('rate_limit = 20\ntaker_flow_size = "2"\n', "taker_flow_per_minute"),
])
def test_taker_flow_needs_both_its_rate_and_its_size(tmp_path: Path, flow: str, field: str) -> None:
    with pytest.raises(ScenarioError, match=field):
        load_scenario(flow_scenario(tmp_path, flow))
