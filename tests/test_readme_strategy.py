"""The README's "Writing a strategy" example is real code: loaded by import path, it liquidates a
borrower below health factor 1 once while its intent is in flight, and asks for a retry timer when
the intent fails; the run it records verifies."""
from __future__ import annotations

import re
import sys

import pytest

from tapedeck.adapters.eventlog import EventLog, Manifest
from tapedeck.domain import events as ev
from tapedeck.runtime.loop import Loop
from tapedeck.runtime.strategy_loader import build_engine
from tapedeck.runtime.verify import verify
from tests.conftest import ROOT

CONFIG = {"risk": {"default_max_notional": 10**15, "default_max_outstanding": 10**16},
          "strategies": [{"kind": "my_bots.liquidator:MyLiquidator", "name": "my-liquidator", "tip_gwei": 7}]}


@pytest.fixture()
def readme_strategy(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(# my_bots/liquidator.py\n.*?)```", text, re.S).group(1)
    pkg = tmp_path / "project" / "my_bots"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "liquidator.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path / "project"))
    yield
    for name in [m for m in sys.modules if m == "my_bots" or m.startswith("my_bots.")]:
        del sys.modules[name]


def account(ts: int, user: str, hf: int) -> ev.AaveAccountObserved:
    return ev.AaveAccountObserved(ts=ts, source="test", chain="ethereum", block=ts, user=user,
                                  total_collateral_base=2_000 * 10**8, total_debt_base=1_900 * 10**8,
                                  liquidation_threshold=8250, health_factor=hf)


class FailingVenue:
    """A gateway that acknowledges nothing and fails every liquidation (someone else won)."""

    def bind(self, report) -> None:  # type: ignore[no-untyped-def]
        self.report = report

    def submit(self, intent: ev.OrderIntended) -> None:
        self.report(ev.OrderFailed(ts=intent.ts + 1, source="test-venue", cause=intent.seq, intent=intent.seq,
                                   venue=intent.venue, reason="liquidated first by 0xother"))


def test_the_readme_example_runs_and_verifies(readme_strategy, tmp_path) -> None:
    engine = build_engine(CONFIG)
    (strategy,) = engine.strategies
    assert strategy.tip == 7 * 10**9
    log = EventLog.create(tmp_path / "run.db", Manifest(run_id="", mode="paper", config=CONFIG))
    loop = Loop(engine, log, FailingVenue())
    tape = [account(1, "0xaa", 95 * 10**16), account(2, "0xaa", 94 * 10**16), account(3, "0xbb", 2 * 10**18),
            account(20 * 10**9, "0xaa", 93 * 10**16)]
    loop.run(tape)
    log.close(ended="clean")
    run = EventLog.open(tmp_path / "run.db")
    events = list(run.events())
    intents = [e for e in events if type(e) is ev.OrderIntended]
    timers = [e for e in events if type(e) is ev.TimerRequested]
    fired = [e for e in events if type(e) is ev.TimerFired]
    # the first intent fails at once (the venue above), so the second sighting finds nothing in flight
    assert [(i.target, i.client_id, i.notional, i.max_priority_fee) for i in intents] == [
        ("0xaa", "liq-0xaa", 950 * 10**6, 7 * 10**9)] * 3
    assert [t.at_ts for t in timers] == [2 + 12 * 10**9, 3 + 12 * 10**9, 20 * 10**9 + 1 + 12 * 10**9]
    assert [(f.ts, f.key) for f in fired] == [(2 + 12 * 10**9, "liq-0xaa"), (3 + 12 * 10**9, "liq-0xaa")]
    result = verify(run, build_engine(run.manifest.config))
    run.close()
    assert result.ok and result.decisions == len([e for e in events if e.KIND == ev.DECISION])


def test_an_intent_in_flight_is_not_proposed_twice(readme_strategy, tmp_path) -> None:
    engine = build_engine(CONFIG)
    first = engine.handle(ev.with_seq(account(1, "0xaa", 95 * 10**16), 1))
    (intent,) = [d for d in first if type(d) is ev.OrderIntended]
    engine.decided(ev.with_seq(intent, 2))
    assert engine.handle(ev.with_seq(account(2, "0xaa", 94 * 10**16), 3)) == ()  # still in flight: nothing
    assert "liq-0xaa" in engine.state.in_flight("my-liquidator")
