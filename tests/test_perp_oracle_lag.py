"""The perp oracle-lag strategy through the engine: entries on stranded liquidity, the exit decided
on the first qualifying update (regressed, stop, time), one flatten per position whatever the
interleaving of updates, fills, partial fills, rejections and backup timer events (a hypothesis
state machine), and the backup timer catching what no update does."""
from __future__ import annotations

from collections import Counter
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from tapedeck.domain import events as ev
from tapedeck.domain.engine import Engine
from tapedeck.domain.risk import RiskGate, VenueLimits
from tapedeck.domain.strategies import ConfigError, build_engine
from tapedeck.domain.perp_book import PerpBook
from tapedeck.domain.perp_positions import PerpPosition
from tapedeck.domain.strategies.perp_oracle_lag import PerpOracleLag, _Market

V, I = "hyperliquid-eth", "ETH-PERP"
T0 = 1_700_000_000 * 10**9
MS = 10**6
ETH = 10**4  # size_decimals 4
NAME = "lag"


class Rig:
    """One strategy in an engine; events numbered as the recorder would, decisions folded back."""

    def __init__(self, **cfg: Any) -> None:
        cfg.setdefault("stop_bps", 100)
        self.strategy = PerpOracleLag(name=NAME, **cfg)
        self.engine = Engine([self.strategy], RiskGate(VenueLimits(10**15, 10**16)))
        self.seq = 0
        self.now = T0
        self.timers: list[ev.TimerRequested] = []

    def feed(self, e: ev.Event) -> list[ev.Event]:
        self.seq += 1
        e = ev.with_seq(e, self.seq)
        self.last = e
        out = []
        for d in self.engine.handle(e):
            self.seq += 1
            d = ev.with_seq(d, self.seq)
            self.engine.decided(d)
            out.append(d)
            if type(d) is ev.TimerRequested:
                self.timers.append(d)  # type: ignore[arg-type]
        return out

    def at(self, dt_ms: float) -> int:
        self.now += int(dt_ms * MS)
        return self.now

    def quote(self, bid: str, ask: str, size: int = 10 * ETH, dt_ms: float = 1) -> list[ev.Event]:
        return self.feed(ev.QuoteUpdated(ts=self.at(dt_ms), source="t", venue=V, instrument=I, bid=_px(bid),
                                         bid_size=size, ask=_px(ask), ask_size=size, price_decimals=1,
                                         size_decimals=4))

    def ctx(self, oracle: str, dt_ms: float = 1) -> list[ev.Event]:
        return self.feed(ev.MarkPriceUpdated(ts=self.at(dt_ms), source="t", venue=V, instrument=I, mark=_px(oracle),
                                             oracle=_px(oracle) * 100, price_decimals=3))

    def fill(self, intent: ev.Event, amount: int, price: str, final: bool = True, dt_ms: float = 1) -> list[ev.Event]:
        notional = amount * _px(price) * 10**6 // 10**5
        return self.feed(ev.OrderFilled(ts=self.at(dt_ms), source="t", intent=intent.seq, venue=V, amount=amount,
                                        notional=notional, fee=notional * 45 // 100_000, fee_asset="USDC", final=final))

    def fail(self, intent: ev.Event, dt_ms: float = 1) -> list[ev.Event]:
        return self.feed(ev.OrderFailed(ts=self.at(dt_ms), source="t", intent=intent.seq, venue=V, reason="rejected"))

    def fire(self) -> list[ev.Event]:
        request = self.timers.pop(0)
        self.now = max(self.now, request.at_ts)
        return self.feed(ev.TimerFired(ts=self.now, source="timer", cause=request.seq, strategy=request.strategy,
                                       key=request.key, requested=request.seq))

    def long(self, entry: str = "3000.0") -> ev.OrderIntended:
        """Oracle 3240, ask stranded at ``entry``: entered and filled for 1 ETH."""
        self.ctx("3240.0")
        intent = _one(self.quote(str(float(entry) - 0.1), entry), ev.OrderIntended)
        self.fill(intent, intent.amount, entry)
        return intent


def _px(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 10 + int((frac or "0")[:1])


def _one(out: list[ev.Event], t: type) -> Any:
    found = [d for d in out if type(d) is t]
    assert len(found) == 1, out
    return found[0]


def _of(out: list[ev.Event], t: type) -> list[Any]:
    return [d for d in out if type(d) is t]


# ----------------------------------------------------------------------------- entries


def test_a_stranded_ask_below_the_oracle_is_bought_at_its_price_ioc() -> None:
    r = Rig(order_size="1", entry_edge_bps=50)
    assert r.ctx("3240.0") == []
    out = r.quote("2999.9", "3000.0", size=3 * ETH)
    entry, intent = _one(out, ev.PerpEntryDecided), _one(out, ev.OrderIntended)
    assert (intent.side, intent.amount, intent.limit_price, intent.price_decimals, intent.tif, intent.reduce_only) == \
        ("buy", ETH, 30000, 1, "ioc", False)
    assert intent.notional == 3000 * 10**6 and intent.client_id == entry.client_id
    assert entry.deviation_ppm == (3240 - 3000) * 10**6 // 3240 and entry.available == 3 * ETH
    assert entry.oracle == 3_240_000 and entry.oracle_decimals == 3
    assert r.quote("2999.9", "3000.0") == []  # in flight: no second entry


def test_a_stranded_bid_above_the_oracle_is_sold() -> None:
    r = Rig(order_size="5", max_position="2")
    r.ctx("3000.0")
    intent = _one(r.quote("3100.0", "3100.1", size=ETH * 3 // 2), ev.OrderIntended)
    assert (intent.side, intent.amount, intent.limit_price) == ("sell", ETH * 3 // 2, 31000)  # the size shown


@pytest.mark.parametrize("case", ["small edge", "too little shown", "stale context", "no oracle"])
def test_no_entry_without_edge_size_or_fresh_state(case: str) -> None:
    r = Rig(entry_edge_bps=50, min_size="1", max_age_ms=500)
    if case != "no oracle":
        r.ctx("3240.0")
    if case == "stale context":
        r.at(501)
    ask = "3230.0" if case == "small edge" else "3000.0"
    size = ETH // 2 if case == "too little shown" else 10 * ETH
    assert r.quote("2990.0", ask, size=size) == []


def test_a_venue_marked_stale_is_not_traded_until_its_next_update() -> None:
    r = Rig(min_size="1")
    r.ctx("3240.0")
    r.quote("2999.9", "3000.0", size=10)  # seen, too small to take
    r.feed(ev.SourceStale(ts=r.at(1), venues=(V,), reason="disconnect"))
    assert r.ctx("3240.0") == []  # the context alone: the book is still marked stale
    assert r.engine.state.stale  # (a quote is the venue's next update for the core's freshness)
    assert _one(r.quote("2999.9", "3000.0"), ev.OrderIntended).side == "buy"


# ----------------------------------------------------------------------------- exits


def test_the_exit_fires_on_the_first_qualifying_update_and_not_a_later_one() -> None:
    r = Rig(exit_edge_bps=10, stop_bps=1000)
    r.long()
    for bid in ("3000.0", "3100.0", "3200.0", "3236.0"):  # within 10 bps of 3240 only from 3236.8
        assert r.quote(bid, "3300.0") == []
    out = r.quote("3237.0", "3300.0")
    first = r.last.seq
    x, intent = _one(out, ev.PerpExitDecided), _one(out, ev.OrderIntended)
    assert x.cause == first and x.qualified_cause == first and x.latency_ns == 0
    assert (x.path, x.reason, x.position, x.entry_price) == ("update", "regressed", ETH, 30000)
    assert x.deviation_ppm == (32400 - 32370) * 10**6 // 32400
    assert (intent.side, intent.amount, intent.reduce_only, intent.tif) == ("sell", ETH, True, "ioc")
    assert intent.limit_price == 32370 * (10**6 - 5000) // 10**6  # 50 bps through the bid
    assert r.quote("3238.0", "3300.0") == [] and r.ctx("3240.0") == []  # flattening: no second flatten
    r.fill(intent, ETH, "3237.0")
    assert r.quote("3238.0", "3300.0") == []  # flat, and the book is no longer stranded


def test_a_context_update_alone_can_decide_the_exit() -> None:
    r = Rig(exit_edge_bps=10, stop_bps=1000)
    r.long()
    assert r.quote("3200.0", "3300.0") == []
    x = _one(r.ctx("3201.0"), ev.PerpExitDecided)  # the oracle came down to the book
    assert (x.path, x.reason, x.cause) == ("update", "regressed", r.last.seq)


def test_a_stop_on_an_adverse_move_from_the_entry() -> None:
    r = Rig(stop_bps=100)
    r.long("3000.0")
    assert r.quote("2971.0", "3300.0") == []  # 97 bps down
    x = _one(r.quote("2970.0", "3300.0"), ev.PerpExitDecided)  # 100 bps
    assert (x.reason, x.path) == ("stop", "update")


def test_the_backup_timer_decides_a_time_exit_no_update_saw() -> None:
    r = Rig(max_hold_s=1, backup_check_ms=200, stop_bps=1000, max_age_ms=5000)
    r.long()
    r.quote("3000.0", "3300.0")
    assert r.timers and r.timers[0].at_ts - r.now < 200 * MS
    opened = r.now - 1 * MS
    exits = []
    while not exits:
        exits = _of(r.fire(), ev.PerpExitDecided)
    x = exits[0]
    assert (x.path, x.reason) == ("timer", "time")
    assert x.held_ns >= 10**9 and x.latency_ns == r.now - (opened + 10**9) and 0 <= x.latency_ns < 200 * MS
    assert _of(r.fire(), ev.PerpExitDecided) == [] and r.quote("3000.0", "3300.0") == []  # flattening


def test_a_rejected_flatten_clears_the_state_and_the_next_update_decides_again() -> None:
    r = Rig(exit_edge_bps=10)
    r.long()
    out = r.quote("3239.0", "3300.0")
    first = _one(out, ev.OrderIntended)
    q = r.last.seq
    r.fail(first)
    x = _one(r.quote("3239.0", "3300.0"), ev.PerpExitDecided)
    assert x.client_id != first.client_id and x.qualified_cause == q and x.latency_ns == 2 * MS


def test_a_risk_refusal_of_the_flatten_is_a_rejection_too() -> None:
    r = Rig(exit_edge_bps=10)
    r.long()
    r.feed(ev.KillSwitchSet(ts=r.at(1), engaged=True, reason="ops"))
    out = r.quote("3239.0", "3300.0")
    assert _one(out, ev.PerpExitDecided) and _one(out, ev.IntentRejected)
    assert r.engine.state.in_flight(NAME) == {}
    r.feed(ev.KillSwitchSet(ts=r.at(1), engaged=False))
    assert _one(r.quote("3239.0", "3300.0"), ev.OrderIntended).reduce_only


def test_a_partial_flatten_leaves_the_rest_to_the_next_update() -> None:
    r = Rig(exit_edge_bps=10, order_size="2", max_position="2")
    r.ctx("3240.0")
    entry = _one(r.quote("2999.9", "3000.0"), ev.OrderIntended)
    r.fill(entry, ETH, "3000.0", final=False)  # partial, more to come
    r.fill(entry, ETH, "3000.0")
    flatten = _one(r.quote("3239.0", "3300.0"), ev.OrderIntended)
    assert flatten.amount == 2 * ETH
    r.fill(flatten, ETH // 2, "3239.0")  # IOC: the rest expired
    rest = _one(r.quote("3239.0", "3300.0"), ev.OrderIntended)
    assert rest.amount == ETH * 3 // 2 and rest.side == "sell" and rest.reduce_only
    p = r.strategy.positions.get(V, I)
    assert p is not None and p.size == ETH * 3 // 2 and p.entry_price(1) == 30000


def test_config_errors_name_the_parameter() -> None:
    base = {"risk": {"default_max_notional": 1, "default_max_outstanding": 1}}
    for params, msg in (({"exit_edge_bps": 60}, "exit_edge_bps"), ({"backup_check_ms": 0}, "backup_check_ms"),
                        ({"min_size": "x"}, "min_size"), ({"venues": "hl"}, "venues"), ({"bogus": 1}, "bogus"),
                        ({"max_hold_s": -1}, "max_hold_s")):
        with pytest.raises(ConfigError, match=msg):
            build_engine({**base, "strategies": [{"kind": "perp_oracle_lag", **params}]})


# ----------------------------------------------------------------------------- the state machine

SEEN: Counter[str] = Counter()
ORACLE = "3000.0"
EXIT_PPM, MAX_AGE, MAX_HOLD = 1000, 2000 * MS, 3 * 10**9


class NoDuplicateFlatten(RuleBasedStateMachine):
    """Updates, fills (whole, partial, partial-final), venue and risk rejections and backup timers in
    any order. Never two flattens in flight for one position; whenever an exit qualifies on a
    step that can decide it (a fresh update or a timer check) and none is in flight, it is decided."""

    @initialize()
    def start(self) -> None:
        self.r = Rig(exit_edge_bps=10, entry_edge_bps=50, stop_bps=10_000, max_hold_s=3, order_size="2",
                     max_position="2", min_size="0.1", reentry_s=0, backup_check_ms=200, max_age_ms=2000)
        self.position = 0  # the test's own sum of fills
        self.opened = 0
        self.bbo: tuple[int, int, int] | None = None  # (ts, bid, ask) as the strategy saw it
        self.ctx_ts = -1
        self.kill = False

    # -- the model's own exit rule (the strategy's docstring), on what this machine fed
    def qualifies(self) -> bool:
        if not self.position or self.bbo is None or self.r.now - self.bbo[0] > MAX_AGE:
            return False
        price = self.bbo[1] if self.position > 0 else self.bbo[2]
        oracle = _px(ORACLE)
        if self.r.now - self.ctx_ts <= MAX_AGE:
            remaining = (oracle - price) if self.position > 0 else (price - oracle)
            if remaining * 10**6 // oracle <= EXIT_PPM // 10:  # exit_edge 10 bps = 1000 ppm
                return True
        return self.r.now - self.opened >= MAX_HOLD

    def exits_in_flight(self) -> list[Any]:
        return [o for o in self.r.engine.state.in_flight(NAME).values() if o.client_id.startswith(f"{NAME}-x")]

    def check(self, out: list[ev.Event], could_decide: bool, before: int) -> None:
        exits = [d for d in out if type(d) is ev.PerpExitDecided]
        assert len(exits) <= 1
        if exits:
            SEEN[f"exit on {exits[0].path}"] += 1
            event(f"exit decided on {exits[0].path} ({exits[0].reason})")
            assert before == 0, "a flatten was decided while another was in flight"
        if could_decide and before == 0 and self.qualifies():
            assert exits, "an exit qualified and was not decided"
        elif could_decide and before and self.qualifies():
            SEEN["qualified while flattening"] += 1
            event("qualified while flattening")
        for d in out:
            if type(d) is ev.IntentRejected:
                SEEN["risk refused"] += 1

    @rule(kind=st.sampled_from(["stranded ask", "stranded bid", "regressed", "between"]),
          dt=st.integers(1, 900))
    def bbo(self, kind: str, dt: int) -> None:
        bid, ask = {"stranded ask": ("2900.0", "2950.0"), "stranded bid": ("3050.0", "3100.0"),
                    "regressed": ("2999.5", "3000.5"), "between": ("2990.0", "3010.0")}[kind]
        before = len(self.exits_in_flight())
        out = self.r.quote(bid, ask, dt_ms=dt)
        self.bbo = (self.r.now, _px(bid), _px(ask))
        self.check(out, True, before)

    @rule(dt=st.integers(1, 900))
    def context(self, dt: int) -> None:
        before = len(self.exits_in_flight())
        out = self.r.ctx(ORACLE, dt_ms=dt)
        self.ctx_ts = self.r.now
        self.check(out, self.bbo is not None, before)

    @rule()
    def backup_timer(self) -> None:
        if not self.r.timers:
            return
        before = len(self.exits_in_flight())
        out = self.r.fire()
        SEEN["timer fired"] += 1
        self.check(out, True, before)

    @rule(data=st.data(), how=st.sampled_from(["whole", "partial", "partial final", "venue reject"]))
    def report(self, data: Any, how: str) -> None:
        orders = list(self.r.engine.state.in_flight(NAME).values())
        if not orders:
            return
        order = data.draw(st.sampled_from(orders))
        intent = ev.OrderIntended(seq=order.intent, ts=0, strategy=NAME, venue=V, instrument=I, side=order.side,
                                  amount=order.amount, notional=0)
        left = order.amount - order.filled_amount
        before = len(self.exits_in_flight())
        if how == "venue reject":
            out = self.r.fail(intent)
            SEEN["venue rejected " + ("exit" if order.client_id.startswith(f"{NAME}-x") else "entry")] += 1
        else:
            amount = left if how == "whole" else max(1, left // 2)
            out = self.r.fill(intent, amount, ORACLE, final=how != "partial")
            was = self.position
            self.position += amount if order.side == "buy" else -amount
            if not was and self.position:
                self.opened = self.r.now
            SEEN[f"fill {how}"] += 1
        self.check(out, False, before)

    @rule()
    def kill_switch(self) -> None:
        self.kill = not self.kill
        self.r.feed(ev.KillSwitchSet(ts=self.r.at(1), engaged=self.kill))

    @invariant()
    def one_flatten_per_position(self) -> None:
        if hasattr(self, "r"):
            assert len(self.exits_in_flight()) <= 1
            p = self.r.strategy.positions.get(V, I)
            assert (p.size if p else 0) == self.position  # the strategy's position is the fills'


def test_never_two_flattens_and_every_qualifying_exit_is_decided() -> None:
    SEEN.clear()
    run_state_machine_as_test(NoDuplicateFlatten, settings=settings(
        max_examples=300, stateful_step_count=40, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow]))
    for case in ("exit on update", "exit on timer", "qualified while flattening", "fill partial",
                 "fill partial final", "venue rejected exit", "risk refused", "timer fired"):
        assert SEEN[case] > 0, (case, SEEN)


@given(oracle=st.integers(1, 10**12), price=st.integers(1, 10**12), entry=st.integers(1, 10**12),
       book_dp=st.integers(0, 6), ctx_dp=st.integers(0, 8), exit_bps=st.integers(0, 49), stop_bps=st.integers(0, 2000),
       long=st.booleans())
def test_the_precomputed_exit_prices_are_the_deviation_rule_exactly(oracle: int, price: int, entry: int, book_dp: int,
                                                                     ctx_dp: int, exit_bps: int, stop_bps: int,
                                                                     long: bool) -> None:
    """The exit check compares integers against prices computed once per oracle/entry; they decide
    exactly as the ppm deviation (toward zero) of ``PerpMarket`` would on every update, and the stop
    exactly at ``stop_bps`` of the entry."""
    s = PerpOracleLag(exit_edge_bps=exit_bps, stop_bps=stop_bps)
    m = PerpBook().market(V, I)
    m.on_quote(ev.QuoteUpdated(ts=0, venue=V, instrument=I, bid=1, bid_size=1, ask=1, ask_size=1,
                               price_decimals=book_dp, size_decimals=0))
    m.on_context(ev.MarkPriceUpdated(ts=0, venue=V, instrument=I, mark=oracle, oracle=oracle, price_decimals=ctx_dp))
    mk = _Market(m)
    mk.entry_px = entry
    s._lines(mk, m, PerpPosition(V, I, 0), long)
    edges = [price] + [x + d for x in (mk.regressed_px, mk.stop_px) for d in (-1, 0, 1) if 0 < x + d < 1 << 60]
    for px in edges:  # the random price and both sides of each line
        remaining = -m.deviation_ppm(px) if long else m.deviation_ppm(px)
        # stopped: the price moved stop_bps or more against the entry, as exact rationals
        stopped = px * 10**6 <= entry * (10**6 - s.stop_ppm) if long else px * 10**6 >= entry * (10**6 + s.stop_ppm)
        assert (px >= mk.regressed_px if long else px <= mk.regressed_px) == (remaining <= s.exit_ppm), px
        assert (px <= mk.stop_px if long else px >= mk.stop_px) == stopped, px
    event("regressed" if remaining <= s.exit_ppm else "not regressed")
    event("stopped" if stopped else "not stopped")


def _account(r: Rig, side: str, size: int, start: int, tid: str, *, snapshot: bool = False) -> list[ev.Event]:
    return r.feed(ev.AccountFillReported(ts=r.at(1), venue=V, instrument=I, side=side, price=30_000, size=size,
                                         price_decimals=1, size_decimals=4, fee=0, fee_decimals=6, fee_asset="USDC",
                                         start_position=start, trade_id=tid, snapshot=snapshot))


@pytest.mark.parametrize("stream_first", [False, True])
def test_with_an_account_stream_a_lagging_fill_report_never_causes_a_second_flatten(stream_first: bool) -> None:
    r = Rig(exit_edge_bps=10, entries=False)
    r.ctx("3240.0")
    r.quote("3000.0", "3300.0")
    _account(r, "buy", ETH, 0, "t1", snapshot=True)  # the position is the stream's: long 1 ETH
    flatten = _one(r.quote("3239.0", "3300.0"), ev.OrderIntended)
    if stream_first:
        _account(r, "sell", ETH, ETH, "t2")
    r.fill(flatten, ETH, "3239.0")  # the gateway's report; the ledger ignores it (the stream counts)
    assert _of(r.quote("3239.0", "3300.0"), ev.OrderIntended) == []  # flat, or still settling: no second flatten
    if not stream_first:
        _account(r, "sell", ETH, ETH, "t2")
    assert r.strategy.positions.get(V, I).size == 0 and r.strategy.markets[(V, I)].exit_cid == ""
