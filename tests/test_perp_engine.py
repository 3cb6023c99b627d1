"""The engine's hot path, made faster for the perp exit (bench_perp_exit), decides as before:

* ``_take``'s fast path for the common proposals gives exactly the decisions (and failures, with
  their messages) of its general checks, over generated mixes of good and bad proposals;
* ``order_events``: a strategy that declares which verdicts and executions its ``on_order`` acts on
  is not called with the others; one that declares nothing hears everything, as before.
(The shipped scenarios' recorded decisions verify with this engine: see the report.)"""
from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import event, given, settings

from tapedeck.domain import events as ev
from tapedeck.domain.engine import Engine
from tapedeck.domain.risk import Intent, RiskGate, VenueLimits

T0 = 1_700_000_000 * 10**9


class Proposer:
    """Proposes whatever the test hands it, and records what its on_order hears."""

    handles = (ev.QuoteUpdated,)

    def __init__(self, name: str = "s", order_events: Any = None) -> None:
        self.name = name
        self.next: list[Any] = []
        self.heard: list[str] = []
        if order_events is not None:
            self.order_events = order_events

    def on_event(self, e: ev.Event, state: Any) -> Any:
        out, self.next = self.next, []
        return out

    def on_order(self, e: ev.Event, order: Any, state: Any) -> Any:
        self.heard.append(type(e).__name__)
        return ()


class GeneralOnly(Engine):
    """The engine with the general checks only (the oracle for the fast path)."""

    def _take(self, batch: Any, strategy: Any, proposals: Any) -> None:
        try:
            proposals = tuple(proposals)
        except Exception as exc:
            batch.out.append(self._failed(batch.cause, strategy, exc))
            return
        self._take_checked(batch, strategy, proposals)


def _quote(ts: int) -> ev.QuoteUpdated:
    return ev.QuoteUpdated(ts=ts, source="t", venue="v", instrument="i", bid=1, bid_size=1, ask=2, ask_size=1,
                           price_decimals=0, size_decimals=0)


def _intent(**kw: Any) -> Intent:
    base: dict[str, Any] = dict(strategy="s", venue="v", instrument="i", side="buy", amount=1, notional=10,
                                client_id="c1")
    base.update(kw)
    return Intent(**base)


PROPOSALS = st.one_of(
    st.builds(lambda a, n, c: ("good intent", _intent(amount=a, notional=n, client_id=c)),
              st.integers(0, 5), st.integers(0, 10**6), st.sampled_from(["c1", "c2", "c3", ""])),
    st.just(("foreign intent", _intent(strategy="other"))),
    st.sampled_from([("negative amount", _intent(amount=-1)), ("float notional", _intent(notional=1.5)),
                     ("bool fee", _intent(max_priority_fee=True)), ("int client id", _intent(client_id=7))]),
    st.builds(lambda k: ("own timer", ev.TimerRequested(ts=T0, strategy="s", key=k, at_ts=T0 + 1)),
              st.sampled_from(["a", "b"])),
    st.just(("foreign timer", ev.TimerRequested(ts=T0, strategy="other", key="a", at_ts=T0))),
    st.just(("engine-only", ev.IntentRejected(ts=T0, strategy="s", venue="v", notional=1, reason="x"))),
    st.just(("an input", _quote(T0))),
    st.sampled_from([("garbage", "text"), ("garbage", 5), ("garbage", None)]),
)


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(st.lists(PROPOSALS, max_size=4), min_size=1, max_size=8), limit=st.integers(0, 30))
def test_the_fast_path_decides_exactly_as_the_general_checks(batches: list[list[Any]], limit: int) -> None:
    engines = []
    for cls in (Engine, GeneralOnly):
        s = Proposer()
        engines.append((cls([s], RiskGate(VenueLimits(limit, limit * 2)), suspend_after_failures=0), s))
    outs: list[list[ev.Event]] = [[], []]
    seq = 0
    for n, batch in enumerate(batches):
        for label, _ in batch:
            event(label)
        seq += 1
        for k, (engine, s) in enumerate(engines):
            s.next = [p for _, p in batch]
            decided = list(engine.handle(ev.with_seq(_quote(T0 + n), seq)))
            for i, d in enumerate(decided):
                engine.decided(ev.with_seq(d, 10_000 * seq + i))
            outs[k].extend(decided)
    assert outs[0] == outs[1]
    (fast, _), (general, _) = engines
    assert fast.failures == general.failures and fast.state.orders == general.state.orders
    assert fast.risk.outstanding == general.risk.outstanding
    kinds = {type(d).__name__ for d in outs[0]}
    for kind in ("OrderIntended", "IntentRejected", "StrategyFailed"):
        if kind in kinds:
            event(f"decided: {kind}")


@pytest.mark.parametrize("declared", [None, (ev.OrderFilled, ev.IntentRejected, ev.OrderFailed)])
def test_a_strategy_hears_only_the_order_events_it_declares(declared: Any) -> None:
    s = Proposer(order_events=declared)
    engine = Engine([s], RiskGate(VenueLimits(100, 100)))
    s.next = [_intent(client_id="a"), _intent(client_id="b", notional=1000)]  # approved; refused (max_notional)
    decided = [ev.with_seq(d, 10 + i) for i, d in enumerate(engine.handle(ev.with_seq(_quote(T0), 1)))]
    for d in decided:
        engine.decided(d)
    approved = next(d for d in decided if type(d) is ev.OrderIntended)
    engine.handle(ev.OrderAcknowledged(ts=T0, seq=20, intent=approved.seq, venue="v", order_id="1"))
    engine.handle(ev.OrderFilled(ts=T0, seq=21, intent=approved.seq, venue="v", amount=1, notional=10, fee=0,
                                 fee_asset="USDC"))
    if declared is None:
        assert s.heard == ["OrderIntended", "IntentRejected", "OrderAcknowledged", "OrderFilled"]
    else:
        assert s.heard == ["IntentRejected", "OrderFilled"]
    assert engine.state.in_flight("s") == {}  # the fill finished it either way


def test_a_bad_order_events_declaration_is_refused() -> None:
    with pytest.raises(ValueError, match="order_events must be a tuple of event types"):
        Engine([Proposer(order_events="OrderFilled")], RiskGate(VenueLimits(1, 1)))
