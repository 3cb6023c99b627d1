"""Engine and risk gate: decisions name their cause; the gate refuses by rule and is folded state."""
from __future__ import annotations

import pytest

from tapedeck.domain import events as ev
from tapedeck.domain.engine import Engine
from tapedeck.domain.risk import Intent, RiskGate, VenueLimits
from tapedeck.domain.strategies import ConfigError, build_engine
from tests.conftest import SPREAD_CONFIG, quote


class AlwaysIntends:
    name = "always"
    handles = (ev.QuoteUpdated,)

    def __init__(self, notional: int, per_event: int = 1):
        self.notional, self.per_event = notional, per_event

    def on_event(self, e, state):
        return [Intent("always", "cex", "ETH-USD", "buy", 1, self.notional) for _ in range(self.per_event)]


def numbered(engine: Engine, events):
    """A minimal recorder: number events and decisions in order, as the runner does."""
    seq, out = 0, []
    for e in events:
        seq += 1
        e = ev.with_seq(e, seq)
        out.append(e)
        for d in engine.handle(e):
            seq += 1
            d = ev.with_seq(d, seq)
            engine.decided(d)
            out.append(d)
    return out


def gate(**kw) -> RiskGate:
    return RiskGate(default=VenueLimits(kw.get("max_notional", 100), kw.get("max_outstanding", 250)))


def test_spread_decision_names_its_cause() -> None:
    engine = build_engine(SPREAD_CONFIG)
    out = numbered(engine, [quote(1, "a", "100", "101"), quote(2, "b", "102", "103")])
    opp = [e for e in out if type(e) is ev.OpportunityDetected]
    assert len(opp) == 1
    assert opp[0].cause == 2 and opp[0].buy_venue == "a" and opp[0].sell_venue == "b"
    # size 1.5 at 101 bought, sold at 102: 1.5 USD profit in 6-dp units
    assert opp[0].gross_profit == 1_500_000


def test_edge_below_threshold_is_not_an_opportunity() -> None:
    engine = build_engine(SPREAD_CONFIG)
    out = numbered(engine, [quote(1, "a", "100", "101"), quote(2, "b", "101.4", "103")])
    assert not [e for e in out if type(e) is ev.OpportunityDetected]


def test_per_venue_max_notional_refuses_with_the_rule() -> None:
    engine = Engine([AlwaysIntends(notional=101)], gate())
    out = numbered(engine, [quote(1, "a", "1", "2")])
    assert [type(e).__name__ for e in out] == ["QuoteUpdated", "IntentRejected"]
    assert "max_notional 100" in out[1].reason and out[1].cause == 1


def test_outstanding_limit_counts_intents_of_the_same_event_and_is_released_by_fills() -> None:
    engine = Engine([AlwaysIntends(notional=100, per_event=3)], gate())
    out = numbered(engine, [quote(1, "a", "1", "2")])
    kinds = [type(e).__name__ for e in out[1:]]
    assert kinds == ["OrderIntended", "OrderIntended", "IntentRejected"]
    assert "max_outstanding 250" in out[3].reason
    assert engine.risk.outstanding["cex"] == 200
    partial = ev.OrderFilled(ts=2, intent=out[1].seq, venue="cex", amount=1, notional=40, fee=0, final=False)
    fill = ev.OrderFilled(ts=2, intent=out[1].seq, venue="cex", amount=1, notional=60, fee=0)
    failed = ev.OrderFailed(ts=2, intent=out[2].seq, venue="cex", reason="reverted")
    engine.strategies.clear()
    engine.handle(ev.with_seq(partial, 10))
    assert engine.risk.outstanding["cex"] == 200  # a partial fill releases nothing yet
    for e in [ev.with_seq(fill, 11), ev.with_seq(failed, 12)]:
        engine.handle(e)
    assert engine.risk.outstanding["cex"] == 0


def test_kill_switch_is_state_from_events() -> None:
    engine = Engine([AlwaysIntends(notional=1)], gate())
    out = numbered(engine, [ev.KillSwitchSet(ts=1, engaged=True, reason="operator"), quote(2, "a", "1", "2"),
                            ev.KillSwitchSet(ts=3, engaged=False), quote(4, "a", "1", "2")])
    verdicts = [e for e in out if e.KIND == ev.DECISION]
    assert type(verdicts[0]) is ev.IntentRejected and "kill switch engaged (operator)" == verdicts[0].reason
    assert type(verdicts[1]) is ev.OrderIntended


@pytest.mark.parametrize("config, message", [
    ({}, "no \\[risk\\]"),
    ({"risk": {"default_max_notional": 1}}, "default_max_outstanding"),
    ({"risk": SPREAD_CONFIG["risk"], "strategies": [{"kind": "nope"}]}, "strategies\\[0\\]: unknown kind 'nope'"),
    ({"risk": SPREAD_CONFIG["risk"], "strategies": [{"kind": "cross_pool_arb", "v2_pool": "a", "v3_pool": "b", "typo": 1}]}, "typo"),
])
def test_bad_configs_name_what_is_wrong(config, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build_engine(config)
