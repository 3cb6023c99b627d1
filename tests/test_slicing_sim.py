"""The shipped ``sliced_order`` strategy in the sim: a 20 ETH TWAP buy on the mock perp of
``oracle-jump`` (fixtures/config/sim-sliced-order.toml) sends its children on schedule as IOC
market orders, is filled by its deadline, prints filled against scheduled, and the run verifies
with ``tapedeck replay --verify``; with a venue that rejects a third of the orders it catches up.
The shipped ``perp-taker-flow`` scenario (a tape with the venue's own taker flow) runs by name with
the shipped VWAP (fixtures/config/sim-vwap-order.toml): each child is its participation of the
printed volume, recomputed here from the tape."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tapedeck.adapters.eventlog import EventLog
from tapedeck.cli import load_config, main
from tapedeck.domain import events as ev
from tapedeck.runtime.slicing_report import slicing_lines
from tapedeck.runtime.strategy_loader import build_engine
from tapedeck.runtime.verify import verify
from tapedeck.sim.recording import run_scenario
from tapedeck.sim.scenario import load_scenario
from tests.conftest import ROOT

CONFIG = ROOT / "fixtures" / "config" / "sim-sliced-order.toml"
VWAP_CONFIG = ROOT / "fixtures" / "config" / "sim-vwap-order.toml"
NS = 10**9


def run(*args: Any) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def decisions(path: Path) -> list[ev.Event]:
    with EventLog.open(path) as log:
        return list(log.events())


def test_the_twap_demo_fills_on_schedule_prints_its_summary_and_verifies(tmp_path: Path) -> None:
    out = tmp_path / "twap.db"
    r = run("sim", "oracle-jump", "--config", CONFIG, "--out", out)
    assert r.exit_code == 0, r.output
    assert "sliced order twap-buy-eth (twap, over 600 s): buy 20.0000 ETH-PERP on hyperliquid-eth" in r.output
    assert "finished filled: filled 20.0000 of 20.0000 (scheduled 20.0000 by the finish), 0.0000 left" in r.output
    assert "filled/scheduled at 25%: 5.0000/5.0000, 50%: 10.0000/10.0000, 75%: 15.0000/15.0000" in r.output
    v = run("replay", out, "--verify")
    assert v.exit_code == 0 and "verified" in v.output, v.output
    events = decisions(out)
    (started,) = [e for e in events if type(e) is ev.ParentOrderStarted]
    intents = [e for e in events if type(e) is ev.OrderIntended]
    assert [i.ts - started.start_ts for i in intents] == [k * 30 * NS for k in range(20)]
    assert all(i.amount == 10**4 and i.venue == "hyperliquid-eth" and i.side == "buy" for i in intents)
    fills = [e for e in events if type(e) is ev.OrderFilled]
    (done,) = [e for e in events if type(e) is ev.ParentOrderFinished]
    assert done.filled == sum(f.amount for f in fills) == 200_000 and done.status == "filled" and done.late_ns < 0
    assert done.average_price * done.filled // 10**3 // 10 <= done.filled_notional  # 1 price dp, 4 size dp, 6 money dp
    assert done.ts <= started.deadline_ts


def test_the_shipped_taker_flow_scenario_runs_by_name_with_the_shipped_vwap_and_verifies(tmp_path: Path) -> None:
    scenario = load_scenario("perp-taker-flow")
    (venue,) = scenario.venues
    assert venue.taker_flow_per_minute > 0 and venue.taker_flow_size > 0
    out = tmp_path / "vwap.db"
    r = run("sim", "perp-taker-flow", "--config", VWAP_CONFIG, "--out", out)
    assert r.exit_code == 0, r.output
    assert "sliced order vwap-buy-eth (vwap, over 600 s): buy 20.0000 ETH-PERP on hyperliquid-eth" in r.output
    assert "finished filled: filled 20.0000 of 20.0000" in r.output
    events = decisions(out)
    tape = [e for e in events if type(e) is ev.TradePrinted]
    fills = [e for e in events if type(e) is ev.OrderFilled]
    (started,) = [e for e in events if type(e) is ev.ParentOrderStarted]
    (done,) = [e for e in events if type(e) is ev.ParentOrderFinished]
    assert len(tape) > 4 * len(fills) > 0 and {t.side for t in tape} == {"buy", "sell"}  # the venue's own takers
    intents = {i.client_id: i for i in events if type(i) is ev.OrderIntended}
    filled = 0
    for s in [e for e in events if type(e) is ev.SliceScheduled]:  # 5% of the tape printed since the start
        volume = sum(t.size for t in tape if t.seq < s.seq and t.ts >= started.start_ts)
        assert s.scheduled == min(200_000, volume * 500 // 10_000) and s.filled == filled
        if s.reason == "participation":
            assert s.amount == min(s.scheduled - filled, 20_000)
        filled += sum(f.amount for f in fills if f.intent == intents[s.client_id].seq)
    assert done.status == "filled" and done.filled == 200_000 == filled and done.ts <= started.deadline_ts
    v = run("replay", out, "--verify")
    assert v.exit_code == 0 and "verified" in v.output, v.output


def test_against_a_venue_rejecting_a_third_of_its_orders_it_catches_up_by_the_deadline(tmp_path: Path) -> None:
    text = (ROOT / "fixtures" / "scenarios" / "oracle-jump.toml").read_text()
    assert "reject_probability = 0.002" in text
    scenario = tmp_path / "rejecting.toml"
    scenario.write_text(text.replace("reject_probability = 0.002", "reject_probability = 0.33"))
    config = load_config(CONFIG)
    out = tmp_path / "rejecting.db"
    run_scenario(load_scenario(scenario), config, out)
    events = decisions(out)
    failed = [e for e in events if type(e) is ev.ParentOrderProgress and e.outcome == "failed"]
    catch_ups = [e for e in events if type(e) is ev.SliceScheduled and e.reason in ("catch-up", "deadline")]
    assert failed and len(catch_ups) >= len(failed) - 1  # each failure is asked again later
    (done,) = [e for e in events if type(e) is ev.ParentOrderFinished]
    assert done.status == "filled" and catch_ups[-1].reason == "deadline"  # this seed: the last slice failed too
    started = next(e for e in events if type(e) is ev.ParentOrderStarted)
    assert all(e.ts <= started.deadline_ts for e in events if type(e) is ev.OrderIntended)
    in_flight = 0
    for e in events:  # never two children out at once
        if type(e) is ev.OrderIntended:
            in_flight += 1
            assert in_flight == 1
        elif type(e) is ev.ParentOrderProgress:
            in_flight -= 1
    assert done.filled == sum(e.amount for e in events if type(e) is ev.OrderFilled) and done.failed_children == len(failed)
    with EventLog.open(out) as log:
        assert verify(log, build_engine(log.manifest.config)).ok
        lines = slicing_lines(log.events(), log.manifest.config)
    assert any("failed" in line and line.strip().startswith("children:") for line in lines), lines
