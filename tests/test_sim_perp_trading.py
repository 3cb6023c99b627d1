"""oracle-jump through the loop: the perp venue's marks are recorded, and a strategy that enters
when its oracle leaves the lagging book and exits when the book has caught up trades on the mock
perp behind the gateway (entries and exits filled at the book's prices), and the run verifies."""
from __future__ import annotations

from typing import Any

from tapedeck.adapters.eventlog import EventLog
from tapedeck.runtime.verify import verify
from tapedeck.domain import events as ev
from tapedeck.runtime.strategy_loader import build_engine
from tapedeck.sim.recording import run_scenario
from tapedeck.sim.scenario import load_scenario
from tests.strategies_for_tests import ONE_ETH

RISK = {"default_max_notional": 10**13, "default_max_outstanding": 10**14}


CONFIG = {"risk": RISK, "strategies": [{"kind": "tests.strategies_for_tests:FollowTheOracle"}]}


def test_entries_and_exits_on_the_perp_while_its_book_lags_the_oracle(tmp_path: Any) -> None:
    sc = load_scenario("oracle-jump")
    out = tmp_path / "perp.db"
    run_scenario(sc, CONFIG, out)
    events = list(EventLog.open(out).events())
    marks = [e for e in events if type(e) is ev.MarkPriceUpdated]
    assert len(marks) > 100 and all(m.venue == "hyperliquid-eth" and m.mark > 0 for m in marks)
    intents = {e.seq: e for e in events if type(e) is ev.OrderIntended}
    fills = [e for e in events if type(e) is ev.OrderFilled]
    sides = [intents[f.intent].side for f in fills]
    # up-jump at 300 s: buy, exit once the book caught up; jump back at 360 s: sell, then exit
    assert sides == ["buy", "sell", "sell", "buy"], sides
    t = [(f.ts - sc.start_ns) / 1e9 for f in fills]
    assert 300 < t[0] < 310 and t[0] < t[1] < 360 and 360 < t[2] < 370 and t[2] < t[3]
    assert all(f.final and f.amount == ONE_ETH and f.fee_asset == "USDC" and f.fee > 0 for f in fills)
    long_pnl = fills[1].notional - fills[0].notional - fills[0].fee - fills[1].fee
    short_pnl = fills[2].notional - fills[3].notional - fills[2].fee - fills[3].fee
    assert long_pnl > 150 * 10**6 and short_pnl > 150 * 10**6  # the book followed the oracle by ~8% both ways
    log = EventLog.open(out)
    assert verify(log, build_engine(log.manifest.config)).ok  # rebuilt from the manifest alone
    assert [(s["module"], s["class"]) for s in log.manifest.code["strategies"]] == \
        [("tests.strategies_for_tests", "FollowTheOracle")]
