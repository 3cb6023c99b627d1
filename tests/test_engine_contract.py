"""The engine–strategy contract: correlation by client id, timers, freshness, one risk batch per
event, failure isolation, the domain's own Decimal context, opportunity identity."""
from __future__ import annotations

import decimal
from collections import Counter
from decimal import Decimal
from fractions import Fraction
from types import SimpleNamespace

import msgspec
import pytest
from hypothesis import event as hyp_event
from hypothesis import given, settings
from hypothesis import strategies as st

from tapedeck.domain import codec, events as ev
from tapedeck.domain.engine import Engine, StrategyBase
from tapedeck.domain.risk import Intent, RiskGate, VenueLimits
from tapedeck.domain.state import ACKNOWLEDGED, FILLED, PARTIALLY_FILLED, REJECTED, MarketState
from tapedeck.domain.strategies import ConfigError, build_engine
from tests.conftest import SPREAD_CONFIG, quote
from tests.test_cross_pool_arb import V2, V3, config as arb_config, reserves_at, v2_event, v3_swap_event

S = 10**9  # ns per second


class Recorder:
    """A minimal recorder/runner: numbers inputs and decisions in order, calls ``decided``, and
    (as a fake timer runner) fires each requested timer before the first input after its time."""

    def __init__(self, engine: Engine):
        self.engine, self.seq, self.log = engine, 0, []
        self.timers: list[ev.TimerRequested] = []

    def feed(self, *events: ev.Event) -> list[ev.Event]:
        out: list[ev.Event] = []
        for e in events:
            for t in [t for t in self.timers if t.at_ts < e.ts]:
                self.timers.remove(t)
                out += self._one(ev.TimerFired(ts=t.at_ts, source="timer", cause=t.seq, strategy=t.strategy,
                                               key=t.key, requested=t.seq))
            out += self._one(e)
        return out

    def _one(self, e: ev.Event) -> list[ev.Event]:
        self.seq += 1
        e = ev.with_seq(e, self.seq)
        out = [e]
        for d in self.engine.handle(e):
            self.seq += 1
            d = ev.with_seq(d, self.seq)
            self.engine.decided(d)
            out.append(d)
            if type(d) is ev.TimerRequested:
                self.timers.append(d)
        self.log += out
        return out


def gate(max_notional: int = 100, max_outstanding: int = 250) -> RiskGate:
    return RiskGate(default=VenueLimits(max_notional, max_outstanding))


def decisions(events):
    return [e for e in events if e.KIND == ev.DECISION]


class Orders(StrategyBase):
    """Proposes the intents it is told to on a quote and keeps what the engine tells it."""

    handles = (ev.QuoteUpdated,)

    def __init__(self, name: str, plan: list[tuple[str, int]]):
        self.name, self.plan, self.heard = name, list(plan), []

    def on_event(self, e, state):
        plan, self.plan = self.plan, []
        return [Intent(self.name, "cex", "ETH-USD", "buy", 1, n, client_id=cid) for cid, n in plan]

    def on_order(self, e, order, state):
        self.heard.append((type(e).__name__, order.client_id, order.status, dict(state.in_flight(self.name))))
        return ()


# ----------------------------------------------------------------------------- correlation


def test_verdicts_and_executions_go_to_the_proposer_only_with_its_client_id() -> None:
    a, b = Orders("a", [("a1", 100), ("a2", 100)]), Orders("b", [("b1", 100)])
    rec = Recorder(Engine([a, b], gate()))
    out = rec.feed(quote(1, "x", "1", "2"))
    verdicts = decisions(out)
    assert [(type(v).__name__, v.strategy, v.client_id) for v in verdicts] == [
        ("OrderIntended", "a", "a1"), ("OrderIntended", "a", "a2"), ("IntentRejected", "b", "b1")]
    # each strategy heard its own verdicts, and only those; approvals are in flight, the refusal is not
    assert [h[:3] for h in a.heard] == [("OrderIntended", "a1", "intended"), ("OrderIntended", "a2", "intended")]
    assert [h[:3] for h in b.heard] == [("IntentRejected", "b1", REJECTED)]
    state = rec.engine.state
    assert list(state.in_flight("a")) == ["a1", "a2"] and dict(state.in_flight("b")) == {}
    a1, a2 = verdicts[0], verdicts[1]
    assert state.in_flight("a")["a1"].intent == a1.seq  # numbered by decided()

    a.heard.clear()
    rec.feed(ev.OrderAcknowledged(ts=2, intent=a1.seq, venue="cex", order_id="v-7"),
             ev.OrderFilled(ts=3, intent=a1.seq, venue="cex", amount=1, notional=40, fee=0, final=False),
             ev.OrderFilled(ts=4, intent=a1.seq, venue="cex", amount=1, notional=60, fee=0),
             ev.OrderFailed(ts=5, intent=a2.seq, venue="cex", reason="rejected by venue"))
    assert [(h[0], h[1], h[2], list(h[3])) for h in a.heard] == [
        ("OrderAcknowledged", "a1", ACKNOWLEDGED, ["a1", "a2"]),
        ("OrderFilled", "a1", PARTIALLY_FILLED, ["a1", "a2"]),
        ("OrderFilled", "a1", FILLED, ["a2"]),  # removed on the final fill, before the strategy hears it
        ("OrderFailed", "a2", "failed", []),
    ]
    assert b.heard == [("IntentRejected", "b1", REJECTED, {})]  # b heard nothing of a's orders
    assert rec.engine.risk.outstanding["cex"] == 0


def test_a_client_id_in_flight_cannot_be_reused_and_unnamed_intents_are_numbered() -> None:
    s = Orders("s", [("dup", 1), ("dup", 1), ("", 1), ("", 1)])
    out = decisions(Recorder(Engine([s], gate())).feed(quote(1, "x", "1", "2")))
    assert [(type(d).__name__, d.client_id) for d in out] == [
        ("OrderIntended", "dup"), ("IntentRejected", "dup"), ("OrderIntended", "auto-1"), ("OrderIntended", "auto-2")]
    assert out[1].reason == "client_id 'dup' is already in flight"


def test_a_strategy_may_react_to_its_verdict_in_the_same_batch() -> None:
    class Halves(StrategyBase):
        """Asks for 200; when refused, asks again for half (a downsizing strategy)."""
        name, handles = "halves", (ev.QuoteUpdated,)

        def on_event(self, e, state):
            return [Intent(self.name, "cex", "ETH-USD", "buy", 1, 200, client_id="n200")]

        def on_order(self, e, order, state):
            if type(e) is ev.IntentRejected and order.notional > 1:
                n = order.notional // 2
                return [Intent(self.name, "cex", "ETH-USD", "buy", 1, n, client_id=f"n{n}")]
            return ()

    out = decisions(Recorder(Engine([Halves()], gate())).feed(quote(1, "x", "1", "2")))
    assert [(type(d).__name__, d.notional) for d in out] == [("IntentRejected", 200), ("OrderIntended", 100)]
    assert all(d.cause == 1 for d in out)


def test_a_strategy_that_reproposes_forever_fails_instead_of_hanging() -> None:
    class Stubborn(StrategyBase):
        name, handles = "stubborn", (ev.QuoteUpdated,)
        n = 0

        def on_event(self, e, state):
            return [Intent(self.name, "cex", "ETH-USD", "buy", 1, 1000)]

        def on_order(self, e, order, state):
            return [Intent(self.name, "cex", "ETH-USD", "buy", 1, 1000)]

    out = decisions(Recorder(Engine([Stubborn()], gate())).feed(quote(1, "x", "1", "2")))
    assert type(out[-1]) is ev.StrategyFailed and out[-1].error == "ProposalError" and out[-1].suspended
    assert sum(type(d) is ev.IntentRejected for d in out) == 9  # the first and 8 rounds of reactions


# ----------------------------------------------------------------------------- timers


class Sleeper(StrategyBase):
    """Asks for a timer 10 s after the first quote; records when it is woken."""

    handles = (ev.QuoteUpdated,)

    def __init__(self, name: str):
        self.name, self.woken, self.asked = name, [], False

    def on_event(self, e, state):
        if type(e) is ev.TimerFired:
            self.woken.append((e.key, e.ts, e.requested))
            return ()
        if not self.woken and e.ts == 1 * S and not self.asked:
            self.asked = True
            return [ev.TimerRequested(ts=e.ts, source="engine", cause=e.seq, strategy=self.name,
                                      key=f"{self.name}-wake", at_ts=e.ts + 10 * S)]
        return ()


def test_timer_fired_goes_only_to_the_strategy_it_names() -> None:
    a, b = Sleeper("a"), Sleeper("b")
    b.handles = (ev.QuoteUpdated, ev.TimerFired)  # even asking for every TimerFired gets it none of a's
    b.on_event = lambda e, state: (b.woken.append("woken by someone else's timer") if type(e) is ev.TimerFired else ())
    rec = Recorder(Engine([a, b], gate()))
    out = rec.feed(quote(1 * S, "x", "1", "2"), quote(5 * S, "x", "1", "2"), quote(20 * S, "x", "1", "2"))
    requested = [d for d in out if type(d) is ev.TimerRequested]
    assert len(requested) == 1 and requested[0].strategy == "a"
    assert a.woken == [("a-wake", 11 * S, requested[0].seq)] and b.woken == []
    # a timer for nobody is ignored
    assert rec.engine.handle(ev.TimerFired(ts=30 * S, seq=99, strategy="nobody", key="k")) == ()


def test_a_strategy_cannot_request_a_timer_for_another() -> None:
    class Impostor(StrategyBase):
        name, handles = "impostor", (ev.QuoteUpdated,)

        def on_event(self, e, state):
            return [ev.TimerRequested(ts=e.ts, strategy="victim", key="k", at_ts=e.ts + 1)]

    out = decisions(Recorder(Engine([Impostor()], gate())).feed(quote(1, "x", "1", "2")))
    assert [type(d).__name__ for d in out] == ["StrategyFailed"]
    assert "TimerRequested for strategy 'victim'" in out[0].message


# ----------------------------------------------------------------------------- freshness


def test_state_keeps_update_times_and_source_stale_marks_ids_until_their_next_update() -> None:
    st_ = MarketState()
    st_.on_v2(v2_event(1, 10, 20))
    st_.on_quote(ev.QuoteUpdated(ts=5 * S, venue="okx", instrument="ETH-USD", bid=1, bid_size=1, ask=2, ask_size=1,
                                 price_decimals=0, size_decimals=0, venue_ts=4 * S))
    assert st_.age(V2, 11) == 10 and st_.fresh(V2, 11, 10) and not st_.fresh(V2, 12, 10)
    assert st_.age("never-seen", 1) is None and not st_.fresh("never-seen", 1, 10**18)
    q = st_.quotes["ETH-USD"]["okx"]
    assert st_.quote_fresh(q, 7 * S, 3 * S) and not st_.quote_fresh(q, 8 * S, 3 * S + S // 2)  # venue_ts is older
    st_.on_source_stale(ev.SourceStale(ts=6 * S, venues=("okx", V2), reason="disconnect"))
    assert st_.age(V2, 11) is None and not st_.fresh(V2, 11, 10**18) and not st_.quote_fresh(q, 6 * S, 10 * S)
    st_.on_v2(v2_event(20, 10, 21))
    assert st_.fresh(V2, 20, 0) and "okx" in st_.stale  # only the updated id is fresh again


def test_cross_pool_arb_never_acts_on_a_v3_state_older_than_max_age() -> None:
    engine = build_engine(arb_config(max_age_s=12))
    rec = Recorder(engine)
    r0, r1 = reserves_at(2040)
    rec.feed(v3_swap_event(1))  # V3 state at ts = 1 ns
    (sup,) = decisions(rec.feed(ev.V2ReservesSynced(ts=13 * S, pool=V2, block=2, reserve0=r0, reserve1=r1)))
    # 13 s later the V3 state is too old: the gap test_cross_pool_arb acts on is suppressed, no intent
    assert type(sup) is ev.OpportunitySuppressed and sup.ids == (V3,) and sup.age_ns == 13 * S - 1
    assert sup.net_profit > 0 and "max_age 12000000000 ns" in sup.reason
    # fresh V3 again (same price and liquidity): the same reserves are acted on, under the same gap key
    again = msgspec.structs.replace(v3_swap_event(3), ts=14 * S)
    found = decisions(rec.feed(again, ev.V2ReservesSynced(ts=15 * S, pool=V2, block=3, reserve0=r0, reserve1=r1)))
    assert [type(d).__name__ for d in found[-2:]] == ["OpportunityDetected", "OrderIntended"]
    assert found[-2].key == sup.key


def test_source_stale_suppresses_until_the_pool_updates_again() -> None:
    engine = build_engine(arb_config())
    rec = Recorder(engine)
    rec.feed(v3_swap_event(1))
    rec.feed(ev.SourceStale(ts=2, venues=(V3,), reason="websocket closed"))
    (sup,) = decisions(rec.feed(v2_event(3, *reserves_at(2040))))
    assert type(sup) is ev.OpportunitySuppressed and sup.age_ns == -1 and "websocket closed" in sup.reason
    kinds = [type(d).__name__ for d in decisions(rec.feed(v3_swap_event(4), v2_event(5, *reserves_at(2041))))]
    assert "OpportunityDetected" in kinds and "OpportunitySuppressed" not in kinds


def test_spread_ignores_quotes_older_than_max_age_by_event_or_venue_time() -> None:
    config = {**SPREAD_CONFIG, "strategies": [{**SPREAD_CONFIG["strategies"][0], "max_age_s": "2"}]}
    rec = Recorder(build_engine(config))
    out = decisions(rec.feed(quote(1 * S, "a", "100", "101"), quote(4 * S, "b", "102", "103")))
    assert [type(d).__name__ for d in out] == ["OpportunitySuppressed"] and out[0].ids == ("a",)
    assert out[0].net_profit == 1_500_000  # what it would have reported
    fresh_a = quote(5 * S, "a", "100", "101")
    old_by_venue = msgspec.structs.replace(quote(6 * S, "b", "102", "103"), venue_ts=3 * S)
    out = decisions(rec.feed(fresh_a, old_by_venue))
    assert [type(d).__name__ for d in out] == ["OpportunityDetected", "OpportunitySuppressed"]
    assert out[1].ids == ("b",) and out[1].age_ns == 3 * S  # the venue's own stamp is 3 s old


# ----------------------------------------------------------------------------- one risk batch per event


def test_two_strategies_on_one_event_cannot_together_exceed_the_limit() -> None:
    """The issue's case: limit 150, two strategies proposing 100 each on the same event."""
    rec = Recorder(Engine([Orders("a", [("1", 100)]), Orders("b", [("1", 100)])], gate(100, 150)))
    out = decisions(rec.feed(quote(1, "x", "1", "2")))
    assert [type(d).__name__ for d in out] == ["OrderIntended", "IntentRejected"]
    assert "outstanding 200 would exceed cex max_outstanding 150" == out[1].reason
    assert rec.engine.risk.outstanding["cex"] == 100


class Scripted(StrategyBase):
    handles = (ev.QuoteUpdated,)

    def __init__(self, name: str, script: list[list[int]]):
        self.name, self.script, self.n = name, script, 0

    def on_event(self, e, state):
        step = self.script[e.ts] if e.ts < len(self.script) else []
        out = []
        for notional in step:
            self.n += 1
            out.append(Intent(self.name, "cex", "ETH-USD", "buy", 1, notional, client_id=str(self.n)))
        return out


def test_outstanding_never_exceeds_the_limit_whatever_several_strategies_propose() -> None:
    seen: Counter[str] = Counter()
    limit = 300
    proposals = st.lists(st.integers(0, 200), max_size=3)

    @settings(max_examples=300, deadline=None, database=None)
    @given(scripts=st.lists(st.lists(proposals, min_size=1, max_size=6), min_size=2, max_size=4),
           fills=st.lists(st.booleans(), min_size=6, max_size=6))
    def check(scripts, fills):
        engine = Engine([Scripted(f"s{i}", s) for i, s in enumerate(scripts)], gate(200, limit))
        rec = Recorder(engine)
        for t in range(6):
            out = rec.feed(quote(t, "x", "1", "2"))
            assert engine.risk.outstanding.get("cex", 0) <= limit
            verdicts = [d for d in out if type(d) in (ev.OrderIntended, ev.IntentRejected)]
            by = {d.strategy for d in verdicts}
            refused_for_sum = [d for d in verdicts if type(d) is ev.IntentRejected and "outstanding" in d.reason]
            if len(by) >= 2 and refused_for_sum and any(type(d) is ev.OrderIntended and d.strategy != r.strategy
                                                       for r in refused_for_sum for d in verdicts):
                seen["another strategy's approval on the same event made the gate refuse"] += 1
                hyp_event("cross-strategy refusal in one batch")
            if fills[t]:  # the gateway finishes the oldest order in flight
                open_ = sorted(engine.risk.open_intents)
                if open_:
                    rec.feed(ev.OrderFilled(ts=t, intent=open_[0], venue="cex", amount=1, notional=1, fee=0))
        # the invariant, recomputed from the recorded decisions and fills, not from the gate's state
        approved = {d.seq: d.notional for d in rec.log if type(d) is ev.OrderIntended}
        running = 0
        for e in rec.log:
            if type(e) is ev.OrderIntended:
                running += e.notional
            elif type(e) is ev.OrderFilled:
                running -= approved[e.intent]
            assert running <= limit

    check()
    assert seen["another strategy's approval on the same event made the gate refuse"] >= 10


# ----------------------------------------------------------------------------- failure isolation


class Explodes(StrategyBase):
    handles = (ev.QuoteUpdated,)

    def __init__(self, name: str = "boom"):
        self.name, self.calls = name, 0

    def on_event(self, e, state):
        self.calls += 1
        raise ZeroDivisionError("integer division or modulo by zero")


@pytest.mark.parametrize("rule, suspended_on", [(1, 1), (2, 2), (0, None)])
def test_a_raising_strategy_is_recorded_suspended_by_rule_and_the_run_goes_on(rule, suspended_on) -> None:
    config = {**SPREAD_CONFIG, "engine": {"suspend_after_failures": rule}}
    engine = build_engine(config)
    boom = Explodes()
    engine = Engine([boom, *engine.strategies], engine.risk, suspend_after_failures=rule)
    rec = Recorder(engine)
    out = rec.feed(quote(1, "a", "100", "101"), quote(2, "b", "102", "103"), quote(3, "b", "102", "103"))
    failed = [d for d in out if type(d) is ev.StrategyFailed]
    assert [(f.cause, f.error, f.message) for f in failed][0] == (1, "ZeroDivisionError", "integer division or modulo by zero")
    assert [f.suspended for f in failed] == [i + 1 == suspended_on for i in range(len(failed))]
    assert boom.calls == (suspended_on or 3)
    assert sum(type(d) is ev.OpportunityDetected for d in out) == 2  # the spread strategy kept working


def test_the_engine_config_rule_is_checked() -> None:
    with pytest.raises(ConfigError, match="suspend_after_failures must be an integer >= 0"):
        build_engine({**SPREAD_CONFIG, "engine": {"suspend_after_failures": -1}})
    assert build_engine(SPREAD_CONFIG).suspend_after_failures == 1


def test_a_raising_on_order_and_a_malformed_proposal_are_failures_too() -> None:
    class BadOrders(Orders):
        def on_order(self, e, order, state):
            raise KeyError(order.client_id)

    class Garbage(StrategyBase):
        name, handles = "garbage", (ev.QuoteUpdated,)

        def on_event(self, e, state):
            return [Intent(self.name, "cex", "ETH-USD", "buy", 1, -5), "not a proposal"]

    engine = Engine([BadOrders("bad", [("x", 1)]), Garbage()], gate(), suspend_after_failures=0)
    out = decisions(Recorder(engine).feed(quote(1, "x", "1", "2")))
    assert [(type(d).__name__, d.strategy) for d in out] == [
        ("OrderIntended", "bad"), ("StrategyFailed", "garbage"), ("StrategyFailed", "bad")]
    assert "notional is -5" in out[1].message and out[2].error == "KeyError" and out[2].message == "'x'"
    assert engine.risk.outstanding["cex"] == 1  # garbage's proposals were dropped whole: no -5 credited


def test_zero_reserve_sync_and_nan_quote_through_the_real_strategies_end_cleanly() -> None:
    arb = build_engine(arb_config())
    rec = Recorder(arb)
    out = rec.feed(v3_swap_event(1), v2_event(2, 0, 10**18), v2_event(3, 10**12, 0), v2_event(4, *reserves_at(2040)))
    assert [type(d).__name__ for d in decisions(out)] == ["OpportunityDetected", "OrderIntended"]
    assert decisions(out)[0].cause == 4  # nothing on the empty pair; the next real state is priced

    spread = Recorder(build_engine(SPREAD_CONFIG))
    nan = ev.QuoteUpdated(ts=2, venue="b", instrument="ETH-USD", bid=-1, bid_size=1, ask=103_000000, ask_size=1,
                          price_decimals=6, size_decimals=0)  # how a NaN price of an older log loads
    out = spread.feed(quote(1, "a", "100", "101"), nan, quote(3, "a", "100", "101"), quote(4, "b", "102", "103"))
    assert [type(d).__name__ for d in decisions(out)] == ["OpportunityDetected"]  # after b quotes again
    assert decisions(out)[0].cause == 4
    st_ = spread.engine.state
    assert "b" not in st_.stale and st_.quotes["ETH-USD"]["b"].bid == 102_000000


def test_a_bad_quote_marks_its_venue_stale_and_is_not_kept() -> None:
    st_ = MarketState()
    st_.on_quote(quote(1, "b", "100", "101"))
    st_.on_quote(ev.QuoteUpdated(ts=2, venue="b", instrument="ETH-USD", bid=100, bid_size=-1, ask=101, ask_size=1,
                                 price_decimals=0, size_decimals=0))
    assert "b" not in st_.quotes["ETH-USD"] and "unusable quote" in st_.stale["b"]


# ----------------------------------------------------------------------------- determinism


def test_spread_decisions_do_not_depend_on_the_callers_decimal_context() -> None:
    tape = [quote(1, "a", "2345.678901", "2345.679013", size="1.23456789"),
            quote(2, "b", "2346.234567", "2346.5", size="0.98765432")]

    def run() -> list[bytes]:
        return [codec.encode(d) for d in decisions(Recorder(build_engine(SPREAD_CONFIG)).feed(*tape))]

    reference = run()
    with decimal.localcontext() as ctx:
        ctx.prec = 6
        ctx.rounding = decimal.ROUND_UP
        assert run() == reference
    (opp,) = [codec.decode(codec.topic(ev.OpportunityDetected), b) for b in reference]
    # exact (Fractions): 0.98765432 bought on a at 2345.679013, sold on b at 2346.234567, 6-dp units, floored
    size = Fraction("0.98765432")
    cost, proceeds = size * Fraction("2345.679013") * 10**6 // 1, size * Fraction("2346.234567") * 10**6 // 1
    assert (opp.amount_in, opp.amount_out, opp.gross_profit) == (cost, 98_765_432, proceeds - cost)


# ----------------------------------------------------------------------------- opportunity identity


def test_the_same_unmoved_gap_has_the_same_key_and_a_moved_one_does_not() -> None:
    rec = Recorder(build_engine(SPREAD_CONFIG))
    out = decisions(rec.feed(quote(1, "a", "100", "101"), quote(2, "b", "102", "103"), quote(3, "b", "102", "103"),
                             quote(4, "b", "102.5", "103")))
    keys = [d.key for d in out]
    assert len(keys) == 3 and keys[0] == keys[1] != keys[2] and keys[0].startswith("ETH-USD:a@101.000000x1.50000000>b@102.000000x1.50000000")

    arb = Recorder(build_engine(arb_config()))
    r0, r1 = reserves_at(2040)
    found = [d for d in decisions(arb.feed(v3_swap_event(1), v2_event(2, r0, r1), v2_event(3, r0, r1),
                                           v2_event(4, r0, r1 - 10**15)))
             if type(d) is ev.OpportunityDetected]
    assert found[0].key == found[1].key != found[2].key
    assert found[0].key == f"{V2}@{r0}/{r1}|{V3}@{v3_swap_event(1).sqrt_price_x96}/{v3_swap_event(1).liquidity}"


def test_cross_pool_arb_intents_name_the_pools_and_a_client_id() -> None:
    rec = Recorder(build_engine(arb_config()))
    out = decisions(rec.feed(v3_swap_event(1), v2_event(2, *reserves_at(2040)), v2_event(3, *reserves_at(2090))))
    intents = [d for d in out if type(d) is ev.OrderIntended]
    assert [(i.instrument, i.client_id) for i in intents] == [(f"{V2}->{V3}", "arb-1"), (f"{V3}->{V2}", "arb-2")]


def test_the_sim_finds_a_pool_by_its_scenario_name_or_protocol() -> None:
    from tapedeck.sim.dex_agents import DexAgents  # the class the PoolArbitrage gateway asks

    v2 = SimpleNamespace(spec=SimpleNamespace(name="uniswap-v2-usdc-weth", protocol="uniswap-v2"))
    v3 = SimpleNamespace(spec=SimpleNamespace(name="uniswap-v3-usdc-weth-005", protocol="uniswap-v3"))
    dex = SimpleNamespace(pools=[v2, v3])
    assert DexAgents.pool(dex, "uniswap-v3-usdc-weth-005") is v3 and DexAgents.pool(dex, "uniswap-v2") is v2
    assert DexAgents.pool(dex, "uniswap-v2-other") is None


def test_a_run_with_failures_bad_inputs_and_timers_records_them_and_verifies(tmp_path) -> None:
    """Through the recorder and ``replay --verify``'s checker: a raising strategy, a zero-reserve
    Sync, a NaN quote and a timer; the run completes and a fresh engine reproduces every decision."""
    from tapedeck.adapters.eventlog import EventLog, Manifest
    from tapedeck.runtime.loop import drive
    from tapedeck.runtime.verify import verify

    config = {"risk": {"default_max_notional": 10**15, "default_max_outstanding": 10**16},
              "strategies": [arb_config()["strategies"][0], SPREAD_CONFIG["strategies"][0]]}

    def engine() -> Engine:
        built = build_engine(config)
        return Engine([Explodes(), Sleeper("sleeper"), *built.strategies], built.risk)

    nan = ev.QuoteUpdated(ts=1 * S, venue="b", instrument="ETH-USD", bid=-1, bid_size=1, ask=103_000000, ask_size=1,
                          price_decimals=6, size_decimals=0)
    tape = [v3_swap_event(1), v2_event(2, 0, 10**18), quote(1 * S, "a", "100", "101"), nan,
            quote(2 * S, "b", "102", "103"), v2_event(3 * S, *reserves_at(2040)), quote(12 * S, "a", "100", "101")]
    rec = Recorder(engine())  # the fake runner fires the sleeper's timer (at 11 s) before the 12 s quote
    rec.feed(*tape)
    assert [type(e).__name__ for e in rec.log].count("TimerFired") == 1
    # the loop fires its own timers (runtime.loop.TimerQueue): it must put the same TimerFired where the fake runner did
    inputs = [e for e in rec.log if e.KIND != ev.DECISION and type(e) is not ev.TimerFired]
    log = EventLog.create(tmp_path / "run.db", Manifest(run_id="", mode="test", config=config))
    stats = drive(inputs, engine(), log)
    log.close(ended="clean")
    assert stats.by_type["StrategyFailed"] == 1 and stats.by_type["TimerRequested"] == 1
    assert stats.by_type["OpportunityDetected"] == 2 and stats.by_type["OrderIntended"] == 1
    run = EventLog.open(tmp_path / "run.db")
    result = verify(run, engine())
    run.close()
    assert result.ok and result.decisions == stats.decisions
    with EventLog.open(tmp_path / "run.db") as run:
        recorded = [codec.encode(e) for e in run.events()]
    assert recorded == [codec.encode(e) for e in rec.log]  # the same run as the in-memory recorder's


def test_a_failure_message_holds_no_object_address_so_replay_reproduces_it() -> None:
    class Leaky(StrategyBase):
        name, handles = "leaky", (ev.QuoteUpdated,)

        def on_event(self, e, state):
            raise RuntimeError(f"cannot use {object()}\n  at all")

    (failed,) = decisions(Recorder(Engine([Leaky()], gate())).feed(quote(1, "x", "1", "2")))
    assert failed.message == "cannot use <object object> at all" and failed.error == "RuntimeError"
