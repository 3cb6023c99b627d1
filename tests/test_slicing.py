"""Order slicing (domain/slicing.py) through the real engine: TWAP, VWAP by participation and
iceberg emit their children on core timers, adapt to fills, failures and risk rejections routed
back by client id, never exceed the parent, keep one child in flight and finish on schedule.

``World`` is a small in-memory runner (numbers events as the recorder would, fires timers at their
``at_ts`` as the sim does, and plays the venue by hand: fills and failures of the open children)."""
from __future__ import annotations

import heapq
from typing import Any

import pytest

from tapedeck.domain import events as ev
from tapedeck.domain.engine import Engine
from tapedeck.domain.risk import RiskGate
from tapedeck.domain.slicing import ParentOrder, ParentOrders, Iceberg, Twap, Vwap
from tapedeck.domain.strategies import ConfigError, build_engine
from tapedeck.runtime.loop import timer_fired

NS = 10**9
T0 = 1_700_000_000 * NS
VENUE, INSTRUMENT = "cex", "ETH-USDC"
ETH = 10**4  # base units: 4 decimals, as the mock perp
RISK = {"default_max_notional": 10**15, "default_max_outstanding": 10**16}
BID, ASK = 30_000, 30_010  # 3000.0 / 3001.0 at 1 price decimal


def quote(ts: int, bid: int = BID, ask: int = ASK) -> ev.QuoteUpdated:
    return ev.QuoteUpdated(ts=ts, source="test", venue=VENUE, instrument=INSTRUMENT, bid=bid, bid_size=10**6,
                           ask=ask, ask_size=10**6, price_decimals=1, size_decimals=4)


def trade(ts: int, size: int, venue: str = VENUE, size_decimals: int = 4) -> ev.TradePrinted:
    return ev.TradePrinted(ts=ts, source="test", venue=venue, instrument=INSTRUMENT, price=ASK, size=size,
                           price_decimals=1, size_decimals=size_decimals, side="buy")


def parent(quantity: int = 10 * ETH, duration: int = 100 * NS, **kw: Any) -> ParentOrder:
    args: dict[str, Any] = dict(parent_id="p", venue=VENUE, instrument=INSTRUMENT, side="buy", quantity=quantity,
                                start_ts=T0, deadline_ts=T0 + duration if duration else 0, base_decimals=4,
                                quote_decimals=6)
    return ParentOrder(**{**args, **kw})


class Embedder:
    """Any strategy embedding ParentOrders, as the module docstring shows: it starts ``parent``
    on its first quote and hands the slicer its timers, tape and children's news."""

    name = "embed"
    handles = (ev.QuoteUpdated,) + ParentOrders.handles

    def __init__(self, parent: ParentOrder, slicer: Any):
        self.parent, self.slicer = parent, slicer
        self.orders = ParentOrders(self.name)
        self.started = False

    def on_event(self, e: Any, state: Any) -> Any:
        if self.orders.wants(e):
            return self.orders.on_event(e, state)
        if not self.started and type(e) is ev.QuoteUpdated:
            self.started = True
            return self.orders.start(self.parent, self.slicer, e, state)
        return ()

    def on_order(self, e: Any, order: Any, state: Any) -> Any:
        return self.orders.on_order(e, order, state) if self.orders.owns(order.client_id) else ()


class World:
    def __init__(self, strategy: Any, risk: dict[str, Any] = RISK):
        self.strategy = strategy
        self.engine = Engine([strategy], RiskGate.from_config(risk))
        self.seq = 0
        self.now = 0
        self.events: list[ev.Event] = []
        self.timers: list[tuple[int, int, ev.TimerRequested]] = []
        self.open: dict[str, ev.OrderIntended] = {}  # client id -> approved intent, not finished

    def feed(self, e: ev.Event) -> list[ev.Event]:
        self.seq += 1
        e = ev.with_seq(e, self.seq)
        self.now = max(self.now, e.ts)
        self.events.append(e)
        out = []
        for d in self.engine.handle(e):
            self.seq += 1
            d = ev.with_seq(d, self.seq)
            self.engine.decided(d)
            self.events.append(d)
            out.append(d)
            if type(d) is ev.TimerRequested:
                heapq.heappush(self.timers, (d.at_ts, d.seq, d))
            elif type(d) is ev.OrderIntended:
                self.open[d.client_id] = d
        if type(e) in (ev.OrderFilled, ev.OrderFailed) and (type(e) is ev.OrderFailed or e.final):
            self.open = {k: v for k, v in self.open.items() if v.seq != e.intent}  # type: ignore[attr-defined]
        elif type(e) is ev.OrderCanceled:
            ended = (e.intent, e.cancel_intent)  # type: ignore[attr-defined]
            self.open = {k: v for k, v in self.open.items() if v.seq not in ended}
        return out

    def advance(self, ts: int) -> None:
        """Fire every timer due by ``ts`` at its own time (as the sim's clock does), then be at ``ts``."""
        while self.timers and self.timers[0][0] <= ts:
            at, _, req = heapq.heappop(self.timers)
            self.feed(timer_fired(req, max(at, self.now)))
        self.now = max(self.now, ts)

    def fill(self, client_id: str, amount: int, *, final: bool = True, price: int = ASK) -> None:
        i = self.open[client_id]
        notional = amount * price * 10**6 // 10**5
        self.feed(ev.OrderFilled(ts=self.now, source="venue", cause=i.seq, intent=i.seq, venue=i.venue,
                                 amount=amount, notional=notional, fee=notional // 1000, fee_asset="USDC",
                                 final=final))

    def fail(self, client_id: str, reason: str = "rejected by venue") -> None:
        i = self.open[client_id]
        self.feed(ev.OrderFailed(ts=self.now, source="venue", cause=i.seq, intent=i.seq, venue=i.venue, reason=reason))

    def of(self, t: type) -> list[Any]:
        return [e for e in self.events if type(e) is t]

    def fill_all(self) -> None:
        for cid in list(self.open):
            if self.open[cid].side != "cancel":
                self.fill(cid, self.open[cid].amount)

    def cancels(self) -> list[ev.OrderIntended]:
        return [i for i in self.open.values() if i.side == "cancel"]

    def cancel(self, cancel_id: str, filled: int = 0) -> None:
        """The venue takes the cancel's target off the book (``filled`` of it had traded)."""
        c = self.open[cancel_id]
        i = self.open[c.target]
        self.feed(ev.OrderCanceled(ts=self.now, source="venue", cause=c.seq, intent=i.seq, venue=i.venue,
                                   strategy=i.strategy, instrument=i.instrument, client_id=i.client_id,
                                   cancel_id=c.client_id, remaining=i.amount - filled, cancel_intent=c.seq))


def twap_world(p: ParentOrder | None = None, **kw: Any) -> World:
    w = World(Embedder(p or parent(), Twap(interval_ns=10 * NS, **kw)))
    w.feed(quote(T0))
    return w


# --------------------------------------------------------------------------- TWAP


def test_twap_sends_equal_slices_on_its_interval_and_finishes_filled_before_the_deadline() -> None:
    w = twap_world()
    for k in range(10):
        w.advance(T0 + k * 10 * NS)
        w.fill_all()  # each child fills at once
    intents = w.of(ev.OrderIntended)
    assert [i.ts - T0 for i in intents] == [k * 10 * NS for k in range(10)]
    assert [i.amount for i in intents] == [ETH] * 10 and all(i.side == "buy" and i.tif == "" for i in intents)
    assert [i.client_id for i in intents] == [f"p-{k}" for k in range(1, 11)]
    # notional: 1 ETH at the ask 3001.0, in USDC base units, rounded up
    assert intents[0].notional == 3_001_000_000
    (done,) = w.of(ev.ParentOrderFinished)
    assert (done.status, done.filled, done.remaining, done.children, done.failed_children) == ("filled", 10 * ETH, 0, 10, 0)
    assert done.average_price == ASK and done.price_decimals == 1 and done.arrival_price == (BID + ASK) // 2
    assert done.slippage_bps == (ASK - 30_005) * 10_000 // 30_005 and done.late_ns == -10 * NS
    assert done.fees == sum(f.fee for f in w.of(ev.OrderFilled)) and done.fee_asset == "USDC"
    assert [s.reason for s in w.of(ev.SliceScheduled)] == ["schedule"] * 10


def test_twap_slices_are_equal_within_a_lot_and_the_last_takes_what_is_left() -> None:
    w = twap_world(parent(quantity=10 * ETH, duration=30 * NS, lot=ETH))  # 10 lots in 3 slices
    for k in range(3):
        w.advance(T0 + k * 10 * NS)
        w.fill_all()
    assert [i.amount for i in w.of(ev.OrderIntended)] == [3 * ETH, 3 * ETH, 4 * ETH]
    assert w.of(ev.ParentOrderFinished)[0].status == "filled"


def test_twap_catches_up_a_partial_fill_in_the_next_slice() -> None:
    w = twap_world()
    w.fill("p-1", ETH // 2)  # final, half of what was asked
    (progress,) = w.of(ev.ParentOrderProgress)
    assert (progress.outcome, progress.child_filled, progress.behind) == ("partial", ETH // 2, ETH // 2)
    w.advance(T0 + 10 * NS)
    second = w.of(ev.SliceScheduled)[1]
    assert (second.amount, second.reason, second.scheduled, second.filled) == (ETH + ETH // 2, "catch-up", 2 * ETH, ETH // 2)


def test_a_risk_rejection_is_not_retried_in_the_same_reaction_but_caught_up_later() -> None:
    w = World(Embedder(parent(), Twap(interval_ns=10 * NS)))
    w.feed(ev.KillSwitchSet(ts=T0 - 1, source="operator", engaged=True, reason="test"))
    w.feed(quote(T0))
    assert len(w.of(ev.IntentRejected)) == 1 and not w.of(ev.OrderIntended)  # one child, refused, not re-sent
    assert w.of(ev.ParentOrderProgress)[0].outcome == "rejected"
    w.feed(ev.KillSwitchSet(ts=T0 + 1, source="operator", engaged=False))
    w.advance(T0 + 10 * NS)
    (i,) = w.of(ev.OrderIntended)
    assert i.amount == 2 * ETH and w.of(ev.SliceScheduled)[-1].reason == "catch-up"


def test_a_slice_due_while_a_child_is_out_waits_for_it_then_catches_up_at_once() -> None:
    w = twap_world()
    w.advance(T0 + 25 * NS)  # slices 2 and 3 came due; child 1 still out
    assert len(w.of(ev.OrderIntended)) == 1
    w.fill("p-1", ETH)  # the reaction to its fill sends the rest of what is due
    intents = w.of(ev.OrderIntended)
    assert len(intents) == 2 and intents[1].amount == 2 * ETH and intents[1].ts == T0 + 25 * NS
    assert w.of(ev.SliceScheduled)[1].reason == "catch-up"


def test_twap_deadline_catch_up_sends_one_final_child_for_what_is_left() -> None:
    w = twap_world()
    for k in range(10):
        w.advance(T0 + k * 10 * NS)
        for cid in list(w.open):
            w.fail(cid) if k >= 8 else w.fill(cid, ETH)
    w.advance(T0 + 100 * NS)  # the deadline
    last = w.of(ev.SliceScheduled)[-1]
    assert (last.reason, last.amount, last.ts) == ("deadline", 2 * ETH, T0 + 100 * NS)
    w.fill_all()
    (done,) = w.of(ev.ParentOrderFinished)
    assert (done.status, done.filled, done.failed_children, done.late_ns) == ("filled", 10 * ETH, 2, w.now - T0 - 100 * NS)


@pytest.mark.parametrize("algo", ["twap", "vwap"])
@pytest.mark.parametrize("tif", ["gtc", "alo"])
def test_a_resting_final_catch_up_child_is_cancelled_at_the_deadline_and_the_parent_finishes(algo: str, tif: str) -> None:
    p = parent(limit_price=30_010, price_decimals=1, tif=tif)
    slicer = (Twap(interval_ns=10 * NS) if algo == "twap"
              else Vwap(participation_bps=1_000, min_child=ETH // 10, max_child=2 * ETH, interval_ns=10 * NS))
    w = World(Embedder(p, slicer))
    w.feed(quote(T0))
    w.feed(trade(T0 + NS, 10 * ETH))  # VWAP: 1 ETH of participation, then a quiet tape
    for k in range(10):
        w.advance(T0 + k * 10 * NS)
        for cid in [c for c, i in w.open.items() if i.side != "cancel"]:
            w.fail(cid) if k >= 8 else w.fill(cid, ETH)  # TWAP: the last two slices fail
    w.advance(T0 + 100 * NS)  # the deadline, nothing in flight: one final child for all that is left
    last = w.of(ev.SliceScheduled)[-1]
    filled = w.of(ev.ParentOrderProgress)[-1].filled
    assert (last.reason, last.amount) == ("deadline", 10 * ETH - filled) and filled < 10 * ETH
    final = [i for i in w.of(ev.OrderIntended) if i.client_id == last.client_id]
    assert final[0].tif == tif
    (cancel,) = w.cancels()  # cancelled as soon as it is approved: it would never end by itself
    assert (cancel.target, cancel.ts) == (last.client_id, T0 + 100 * NS)
    assert not w.of(ev.ParentOrderFinished)  # it waits for the child to end
    w.fill(last.client_id, ETH, final=False)  # 1 ETH of it traded on arrival, the rest rested
    w.cancel(cancel.client_id, filled=ETH)
    progress = w.of(ev.ParentOrderProgress)[-1]
    assert (progress.outcome, progress.reason, progress.child_filled) == ("partial", "deadline", ETH)
    (done,) = w.of(ev.ParentOrderFinished)
    assert done.status == "expired" and done.remaining == 10 * ETH - done.filled > 0
    assert not w.open and w.engine.risk.outstanding[VENUE] == 0 and not w.engine.state.in_flight("embed")
    w.advance(T0 + 300 * NS)
    assert all(i.ts <= T0 + 100 * NS for i in w.of(ev.OrderIntended))  # nothing after the deadline


def test_an_ioc_final_catch_up_child_is_not_cancelled() -> None:
    w = World(Embedder(parent(limit_price=30_010, price_decimals=1, tif="ioc"), Twap(interval_ns=10 * NS)))
    w.feed(quote(T0))
    for k in range(10):
        w.advance(T0 + k * 10 * NS)
        w.fail(f"p-{k + 1}") if k >= 8 else w.fill(f"p-{k + 1}", ETH)
    w.advance(T0 + 100 * NS)
    assert w.of(ev.SliceScheduled)[-1].reason == "deadline" and not w.cancels()


def test_stopping_after_the_deadline_cancels_the_final_child_once() -> None:
    p = parent(limit_price=30_010, price_decimals=1, tif="gtc")
    strategy = Embedder(p, Twap(interval_ns=10 * NS))
    w = World(strategy)
    w.feed(quote(T0))
    w.advance(T0 + 100 * NS)
    assert len(w.cancels()) == 1  # child 1 still out at the deadline: cancelled there
    assert strategy.orders.stop("p", w.events[-1], w.engine.state) == []  # one cancel per child
    w.cancel("p-1-cancel")
    (done,) = w.of(ev.ParentOrderFinished)
    assert (done.status, done.children) == ("stopped", 1)


def test_twap_leave_reports_the_remainder_at_the_deadline() -> None:
    w = twap_world(on_deadline="leave")
    for k in range(10):
        w.advance(T0 + k * 10 * NS)
        for cid in list(w.open):
            w.fill(cid, ETH // 2)
    w.advance(T0 + 200 * NS)
    (done,) = w.of(ev.ParentOrderFinished)
    assert (done.status, done.filled, done.remaining, done.scheduled) == ("expired", 5 * ETH, 5 * ETH, 10 * ETH)
    assert done.ts == T0 + 100 * NS and all(i.ts <= T0 + 100 * NS for i in w.of(ev.OrderIntended))


def test_a_child_in_flight_at_the_deadline_is_the_last_one() -> None:
    w = twap_world()
    for k in range(10):
        w.advance(T0 + k * 10 * NS)
        if k < 9:
            w.fill_all()
    w.advance(T0 + 150 * NS)  # child 10 still out at the deadline: nothing more is sent
    assert len(w.of(ev.OrderIntended)) == 10 and not w.of(ev.ParentOrderFinished)
    w.fill("p-10", ETH // 4)
    (done,) = w.of(ev.ParentOrderFinished)
    assert (done.status, done.remaining) == ("expired", ETH - ETH // 4)
    assert len(w.of(ev.OrderIntended)) == 10


def test_no_quote_skips_the_slice_once_and_the_next_one_catches_up() -> None:
    w = World(Embedder(parent(venue="other"), Twap(interval_ns=10 * NS)))  # its venue never quotes
    w.feed(quote(T0))
    w.advance(T0 + 10 * NS)
    skips = w.of(ev.SliceSkipped)
    assert [s.reason for s in skips] == ["no price"] and not w.of(ev.OrderIntended)  # recorded once


def test_a_stale_quote_does_not_price_a_market_child() -> None:
    p = parent(max_price_age_ns=5 * NS)
    w = World(Embedder(p, Twap(interval_ns=10 * NS)))
    w.feed(quote(T0))
    w.fill_all()
    w.advance(T0 + 10 * NS)  # the only quote is 10 s old
    assert [s.reason for s in w.of(ev.SliceSkipped)] == ["stale price"] and len(w.of(ev.OrderIntended)) == 1
    w.feed(quote(T0 + 16 * NS))
    w.advance(T0 + 20 * NS)
    assert w.of(ev.OrderIntended)[-1].amount == 2 * ETH  # caught up on the fresh quote


def test_a_limit_child_carries_its_price_tif_and_reduce_only() -> None:
    w = twap_world(parent(limit_price=30_100, price_decimals=1, tif="ioc", reduce_only=True, side="sell"))
    (i,) = w.of(ev.OrderIntended)
    assert (i.limit_price, i.price_decimals, i.tif, i.reduce_only, i.side) == (30_100, 1, "ioc", True, "sell")
    assert i.notional == ETH * 30_100 * 10**6 // 10**5


def test_max_failures_in_a_row_fail_the_parent() -> None:
    w = twap_world(max_failures=3)
    for k in range(3):
        w.advance(T0 + k * 10 * NS)
        w.fail(f"p-{k + 1}")
    (done,) = w.of(ev.ParentOrderFinished)
    assert (done.status, done.failed_children, done.average_price) == ("failed", 3, -1)
    w.advance(T0 + 100 * NS)
    assert len(w.of(ev.OrderIntended)) == 3  # nothing after it failed


# --------------------------------------------------------------------------- VWAP


def vwap_world(**kw: Any) -> World:
    args = dict(participation_bps=1_000, min_child=ETH // 10, max_child=2 * ETH, interval_ns=10 * NS)
    w = World(Embedder(parent(), Vwap(**{**args, **kw})))
    w.feed(quote(T0))
    return w


def test_vwap_child_is_the_participation_of_the_tape_since_the_last_child() -> None:
    w = vwap_world()
    w.feed(trade(T0 - 1, 100 * ETH))  # before the start: not counted
    w.feed(trade(T0 + NS, 3 * ETH))
    w.feed(trade(T0 + 2 * NS, 20 * ETH, venue="elsewhere"))  # another venue's tape
    w.feed(trade(T0 + 3 * NS, 70_000, size_decimals=5))  # 0.7 ETH at 5 size decimals
    w.advance(T0 + 10 * NS)
    (i,) = w.of(ev.OrderIntended)
    assert i.amount == (3 * ETH + 7_000) // 10  # 10% of 3.7 ETH
    w.fill_all()
    w.feed(trade(T0 + 15 * NS, 5 * ETH))
    w.advance(T0 + 20 * NS)
    assert w.of(ev.OrderIntended)[-1].amount == ETH // 2  # only what printed since the last child
    assert w.of(ev.SliceScheduled)[-1].reason == "participation"


def test_vwap_waits_below_min_child_and_caps_at_max_child() -> None:
    w = vwap_world()
    w.feed(trade(T0 + NS, ETH // 2))  # 10% = 0.05 ETH < min 0.1
    w.advance(T0 + 10 * NS)
    assert not w.of(ev.OrderIntended) and [s.reason for s in w.of(ev.SliceSkipped)] == ["below min child"]
    w.feed(trade(T0 + 11 * NS, ETH // 2))  # now 0.1 ETH in all
    w.advance(T0 + 20 * NS)
    assert [i.amount for i in w.of(ev.OrderIntended)] == [ETH // 10]
    w.fill_all()
    w.feed(trade(T0 + 21 * NS, 50 * ETH))  # 5 ETH of participation: capped at 2, the rest carried
    w.advance(T0 + 30 * NS)
    w.fill_all()
    w.advance(T0 + 40 * NS)
    assert [i.amount for i in w.of(ev.OrderIntended)][1:] == [2 * ETH, 2 * ETH]


def test_vwap_catches_up_a_failed_child_and_finishes_at_the_deadline() -> None:
    w = vwap_world(on_deadline="leave")
    w.feed(trade(T0 + NS, 10 * ETH))
    w.advance(T0 + 10 * NS)
    w.fail("p-1")
    w.advance(T0 + 20 * NS)
    assert [i.amount for i in w.of(ev.OrderIntended)] == [ETH, ETH]  # the failed 1 ETH asked again
    w.fill_all()
    w.advance(T0 + 100 * NS)
    (done,) = w.of(ev.ParentOrderFinished)
    assert (done.status, done.filled, done.remaining, done.scheduled) == ("expired", ETH, 9 * ETH, ETH)


# --------------------------------------------------------------------------- iceberg


def iceberg_world(duration: int = 0, **kw: Any) -> World:
    p = parent(duration=duration, limit_price=30_010, price_decimals=1, tif="gtc")
    w = World(Embedder(p, Iceberg(visible=2 * ETH, retry_ns=NS, **kw)))
    w.feed(quote(T0))
    return w


def test_iceberg_rests_its_visible_size_and_replenishes_when_filled() -> None:
    w = iceberg_world()
    w.fill("p-1", ETH, final=False)  # half the visible size trades: still resting, nothing new
    assert len(w.of(ev.OrderIntended)) == 1
    w.fill("p-1", ETH)  # the rest: replenished in the same reaction
    intents = w.of(ev.OrderIntended)
    assert len(intents) == 2 and intents[1].ts == intents[0].ts
    assert all((i.amount, i.tif, i.limit_price) == (2 * ETH, "gtc", 30_010) for i in intents)
    assert w.of(ev.SliceScheduled)[1].reason == "replenish"
    for _ in range(4):
        w.fill_all()
    (done,) = w.of(ev.ParentOrderFinished)
    assert (done.status, done.children, done.late_ns) == ("filled", 5, 0)


def test_iceberg_retries_a_failure_after_its_retry_time_not_at_once() -> None:
    w = iceberg_world()
    w.fail("p-1")
    assert len(w.of(ev.OrderIntended)) == 1
    w.advance(T0 + NS)
    intents = w.of(ev.OrderIntended)
    assert len(intents) == 2 and intents[1].ts == T0 + NS


def test_iceberg_stops_replenishing_at_its_deadline() -> None:
    w = iceberg_world(duration=10 * NS)
    w.fill_all()
    w.advance(T0 + 10 * NS)  # deadline with child 2 resting: no more, and child 2 is cancelled
    (cancel,) = w.cancels()
    assert (cancel.target, cancel.client_id, cancel.amount, cancel.notional) == ("p-2", "p-2-cancel", 0, 0)
    w.fill_all()  # but it traded before the cancel reached the venue: the fill ends it
    w.fail("p-2-cancel", "cancel: no resting order p-2")
    (done,) = w.of(ev.ParentOrderFinished)
    assert (done.status, done.filled, done.remaining) == ("expired", 4 * ETH, 6 * ETH)
    assert [i.side for i in w.of(ev.OrderIntended)] == ["buy", "buy", "cancel"]
    assert not w.open and not w.engine.state.in_flight("embed")


def test_a_resting_iceberg_child_is_cancelled_at_the_deadline_and_the_parent_finishes() -> None:
    w = iceberg_world(duration=10 * NS)
    w.fill("p-1", ETH, final=False)  # half of child 1 trades, then it rests past the deadline
    w.advance(T0 + 10 * NS)
    assert not w.of(ev.ParentOrderFinished)  # it waits for the child to end
    assert w.engine.risk.outstanding[VENUE] > 0
    w.cancel("p-1-cancel", filled=ETH)
    (progress,) = w.of(ev.ParentOrderProgress)
    assert (progress.outcome, progress.reason, progress.child_filled) == ("partial", "deadline", ETH)
    (done,) = w.of(ev.ParentOrderFinished)
    assert (done.status, done.filled, done.remaining, done.children) == ("expired", ETH, 9 * ETH, 1)
    assert len(w.of(ev.OrderIntended)) == 2 and not w.open
    assert w.engine.risk.outstanding[VENUE] == 0 and not w.engine.risk.open_intents  # both ended, notional freed
    assert not w.engine.state.in_flight("embed")


def test_a_stale_child_is_cancelled_and_its_remainder_caught_up() -> None:
    p = parent(limit_price=30_010, price_decimals=1, tif="gtc", child_timeout_ns=4 * NS)
    w = World(Embedder(p, Twap(interval_ns=10 * NS)))
    w.feed(quote(T0))
    w.advance(T0 + 3 * NS)
    assert not w.cancels()
    w.advance(T0 + 4 * NS)  # child 1 has rested 4 s: stale
    (cancel,) = w.cancels()
    assert cancel.target == "p-1"
    w.cancel("p-1-cancel")
    (progress,) = w.of(ev.ParentOrderProgress)
    assert (progress.outcome, progress.reason, progress.behind) == ("canceled", "stale", ETH)
    w.advance(T0 + 10 * NS)  # the next slice catches up child 1's amount
    intents = [i for i in w.of(ev.OrderIntended) if i.side != "cancel"]
    assert [(i.client_id, i.amount) for i in intents] == [("p-1", ETH), ("p-2", 2 * ETH)]
    assert w.of(ev.SliceScheduled)[-1].reason == "catch-up"


def test_stop_cancels_the_resting_child_and_finishes_stopped() -> None:
    p = parent(limit_price=30_010, price_decimals=1, tif="gtc")
    strategy = Embedder(p, Twap(interval_ns=10 * NS))
    w = World(strategy)
    w.feed(quote(T0))
    stop = strategy.orders.stop("p", w.events[-1], w.engine.state)
    (cancel,) = [x for x in stop if not isinstance(x, ev.Event)]
    assert (cancel.side, cancel.target) == ("cancel", "p-1")  # type: ignore[union-attr]
    assert strategy.orders.stop("p", w.events[-1], w.engine.state) == []  # once
    assert not strategy.orders.done("p")  # until the child has ended


def test_a_stop_in_the_same_reaction_as_the_start_cancels_the_child_once_approved() -> None:
    class StartStop(Embedder):
        def on_event(self, e: Any, state: Any) -> Any:
            out = list(super().on_event(e, state))
            if out and type(e) is ev.QuoteUpdated:
                out += self.orders.stop("p", e, state)
            return out

    w = World(StartStop(parent(limit_price=30_010, price_decimals=1, tif="gtc"), Twap(interval_ns=10 * NS)))
    w.feed(quote(T0))
    assert [(i.side, i.target) for i in w.of(ev.OrderIntended)] == [("buy", ""), ("cancel", "p-1")]
    w.cancel("p-1-cancel")
    (done,) = w.of(ev.ParentOrderFinished)
    assert (done.status, done.children) == ("stopped", 1)


def test_stop_through_the_engine_and_nothing_after_it() -> None:
    class Stopper(Embedder):
        def on_event(self, e: Any, state: Any) -> Any:
            if type(e) is ev.QuoteUpdated and self.started and e.bid == 29_000:
                return self.orders.stop("p", e, state)
            return super().on_event(e, state)

    p = parent(limit_price=30_010, price_decimals=1, tif="gtc")
    w = World(Stopper(p, Twap(interval_ns=10 * NS)))
    w.feed(quote(T0))
    w.feed(quote(T0 + NS, bid=29_000))
    w.cancel("p-1-cancel")
    (done,) = w.of(ev.ParentOrderFinished)
    assert (done.status, done.filled, done.children) == ("stopped", 0, 1)
    w.advance(T0 + 200 * NS)
    assert [i.side for i in w.of(ev.OrderIntended)] == ["buy", "cancel"]  # no child after the stop
    w2 = World(Stopper(parent(), Twap(interval_ns=10 * NS)))  # market children: none out when stopped
    w2.feed(quote(T0))
    w2.fill_all()
    w2.feed(quote(T0 + NS, bid=29_000))
    (done2,) = w2.of(ev.ParentOrderFinished)
    assert (done2.status, done2.filled) == ("stopped", ETH) and len(w2.of(ev.OrderIntended)) == 1


# --------------------------------------------------------------------------- interface, config, determinism


def test_progress_and_done_say_where_a_parent_stands() -> None:
    w = twap_world()
    orders = w.strategy.orders
    assert not orders.done("p")
    w.fill("p-1", ETH // 2, final=False)
    pr = orders.progress("p", T0 + 10 * NS)
    assert (pr.status, pr.filled, pr.remaining, pr.scheduled, pr.in_flight, pr.children) == \
        ("working", ETH // 2, 10 * ETH - ETH // 2, 2 * ETH, ETH // 2, 1)


@pytest.mark.parametrize("kw, words", [
    (dict(side="hold"), "side must be buy or sell"),
    (dict(quantity=10 * ETH + 1, lot=ETH), "positive multiple of the lot"),
    (dict(deadline_ts=T0), "is not after start_ts"),
    (dict(tif="fok"), "tif must be one of"),
    (dict(quantity=-1), "quantity must be an integer >= 0"),
])
def test_a_bad_parent_order_is_an_error_naming_the_field(kw: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parent(**kw)


def test_twap_and_vwap_need_a_deadline_and_a_second_start_is_refused() -> None:
    orders = ParentOrders("s")
    with pytest.raises(ValueError, match="a TWAP needs a deadline"):
        orders.start(parent(duration=0), Twap(NS), quote(T0), None)  # type: ignore[arg-type]
    w = twap_world()
    with pytest.raises(ValueError, match="already started"):
        w.strategy.orders.start(parent(), Twap(NS), quote(T0), w.engine.state)


SLICED = {"kind": "sliced_order", "venue": VENUE, "instrument": INSTRUMENT, "side": "buy", "quantity": 10 * ETH,
          "base_decimals": 4, "quote_decimals": 6, "duration_s": 100, "interval_s": 10}


@pytest.mark.parametrize("change, words", [
    ({"algo": "pov"}, "algo must be one of twap, vwap, iceberg"),
    ({"duration_s": 0}, "a twap needs duration_s > 0"),
    ({"algo": "vwap", "participation_bps": 0, "max_child": 1}, "participation_bps must be an integer in 1..10000"),
    ({"algo": "iceberg", "visible": 0}, "visible must be an integer > 0"),
    ({"on_deadline": "never"}, "on_deadline must be"),
    ({"limit_price": "abc", "price_decimals": 1}, "limit_price"),
])
def test_sliced_order_config_errors_name_what_is_wrong(change: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        build_engine({"risk": RISK, "strategies": [{**SLICED, **change}]})


def scripted(seed_ops: list[tuple[str, int]]) -> list[ev.Event]:
    w = World(Embedder(parent(), Vwap(participation_bps=2_000, min_child=ETH // 10, max_child=3 * ETH,
                                      interval_ns=10 * NS)))
    w.feed(quote(T0))
    for op, n in seed_ops:
        if op == "trade":
            w.feed(trade(w.now + NS, n))
        elif op == "advance":
            w.advance(w.now + n * NS)
        elif op == "fill" and w.open:
            cid = next(iter(w.open))
            w.fill(cid, min(n, w.open[cid].amount))
        elif op == "fail" and w.open:
            w.fail(next(iter(w.open)))
    w.advance(T0 + 200 * NS)
    w.fill_all()
    return w.events


def test_the_same_inputs_give_the_same_decisions() -> None:
    ops = [("trade", 5 * ETH), ("advance", 10), ("fill", ETH), ("trade", 8 * ETH), ("advance", 7), ("fail", 0),
           ("advance", 12), ("trade", 30 * ETH), ("advance", 10), ("fill", 10**9), ("advance", 55)]
    first, again = scripted(ops), scripted(ops)
    assert first == again and any(type(e) is ev.ParentOrderFinished for e in first)
    assert sum(type(e) is ev.OrderIntended for e in first) >= 3
