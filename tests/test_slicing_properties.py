"""Properties of the slicers over random fills, partial fills, venue failures, risk rejections
(the kill switch), trade tapes, stale and fresh quotes, and timer interleavings (news arriving at a
slice's exact time, before its timer fires), for random parents and parameters of all three
algorithms, through the real engine:

* the parent is never oversubscribed: at every event, what is filled plus the unfilled size of the
  children in flight is at most the parent's quantity (counted from the intents and fills alone);
* at most one child in flight per parent (the engine's own ``in_flight``, cancels apart);
* a resting child is cancelled at the deadline and a stale one after ``child_timeout_ns``; the
  venue's answer (canceled, or found it filled first) ends it like any other end;
* every child intent at or before the deadline; an iceberg's children never above ``visible``;
* it finishes: once the venue stops answering late, exactly one ``ParentOrderFinished``, whose
  filled, remaining and notional are the fills' own sums; a TWAP's schedule reaches the whole
  quantity by its deadline.

Each example names the cases it went through (``hypothesis.event``; ``--hypothesis-show-statistics``)
and the test asserts, after the run, that every case was reached at least once."""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tapedeck.domain import events as ev
from tapedeck.domain.slicing import Iceberg, Twap, Vwap
from tests.test_slicing import ETH, NS, T0, Embedder, World, parent, quote, trade

CASES = ("partial fill", "resting partial fill", "venue failure", "risk rejection", "catch-up child",
         "slice due while a child was out", "deadline catch-up child", "news at a slice's own time",
         "vwap below min child", "no fresh price", "finished filled", "finished expired", "finished failed",
         "iceberg replenished", "iceberg retried", "canceled at the deadline", "stale child canceled",
         "cancel found nothing resting")

OPS = st.lists(st.one_of(
    st.tuples(st.just("advance"), st.sampled_from([1, 3, 5, 10, 15, 30, 60])),
    st.tuples(st.just("to_due"), st.just(0)),  # the clock at the next timer's time, the timer not yet fired
    st.tuples(st.just("trade"), st.integers(1, 8 * ETH)),
    st.tuples(st.just("fill"), st.integers(1, 3 * ETH)),  # final, up to what the child has left
    st.tuples(st.just("partial"), st.integers(1, ETH)),  # not final
    st.tuples(st.just("fail"), st.just(0)),
    st.tuples(st.just("kill"), st.booleans()),
    st.tuples(st.just("quote"), st.just(0)),
    st.tuples(st.just("answer_cancel"), st.booleans()),  # the venue answers a cancel: canceled, or filled first
), max_size=50)


@st.composite
def cases(draw: Any) -> tuple[Any, Any, list[tuple[str, int]]]:
    algo = draw(st.sampled_from(["twap", "vwap", "iceberg"]))
    lot = draw(st.sampled_from([1, 100, ETH // 10]))
    quantity = draw(st.integers(1, 60)) * lot
    duration = draw(st.sampled_from([20, 45, 100, 180])) * NS
    max_failures = draw(st.sampled_from([0, 3, 10]))
    if algo == "twap":
        slicer: Any = Twap(interval_ns=draw(st.sampled_from([5, 10, 30])) * NS,
                           on_deadline=draw(st.sampled_from(["catch_up", "leave"])), max_failures=max_failures)
    elif algo == "vwap":
        max_child = draw(st.integers(1, 30)) * lot
        slicer = Vwap(participation_bps=draw(st.sampled_from([500, 2_000, 10_000])),
                      min_child=draw(st.integers(0, max_child // lot)) * lot, max_child=max_child,
                      interval_ns=draw(st.sampled_from([5, 10])) * NS,
                      on_deadline=draw(st.sampled_from(["catch_up", "leave"])), max_failures=max_failures)
    else:
        slicer = Iceberg(visible=draw(st.integers(1, 20)) * lot, retry_ns=draw(st.sampled_from([1, 4])) * NS,
                         max_failures=max_failures)
        duration = draw(st.sampled_from([0, duration]))
    market = draw(st.booleans())
    p = parent(quantity=quantity, duration=duration, lot=lot, max_price_age_ns=draw(st.sampled_from([0, 20 * NS])),
               **({} if market else dict(limit_price=30_010, price_decimals=1, tif="gtc")))
    ops = draw(OPS)
    return dataclasses.replace(p, child_timeout_ns=draw(st.sampled_from([0, 0, 7 * NS]))), slicer, ops


class Checked(World):
    """The world, checking the invariants after every event it feeds."""

    def __init__(self, p: Any, slicer: Any):
        super().__init__(Embedder(p, slicer))
        self.p, self.slicer = p, slicer
        self.asked: dict[int, int] = {}  # intent seq -> amount
        self.got: dict[int, int] = {}  # intent seq -> filled
        self.done: set[int] = set()
        self.labels: set[str] = set()

    def feed(self, e: ev.Event) -> list[ev.Event]:
        out = super().feed(e)
        p, cut = self.p, 0
        for d in out:
            if type(d) is ev.OrderIntended and d.side != "cancel":  # a cancel may follow the deadline
                self.asked[d.seq] = d.amount
                assert not p.deadline_ts or d.ts <= p.deadline_ts, "a child after the deadline"
                if isinstance(self.slicer, Iceberg):
                    assert d.amount <= self.slicer.visible
        if type(e) is ev.OrderFilled:
            self.got[e.intent] = self.got.get(e.intent, 0) + e.amount
        if type(e) in (ev.OrderFilled, ev.OrderFailed) and (type(e) is ev.OrderFailed or e.final):  # type: ignore[attr-defined]
            self.done.add(e.intent)  # type: ignore[attr-defined]
        elif type(e) is ev.OrderCanceled:
            self.done.update((e.intent, e.cancel_intent))  # type: ignore[attr-defined]
        for seq, amount in self.asked.items():
            if seq not in self.done:
                cut += amount - self.got.get(seq, 0)
        assert sum(self.got.values()) + cut <= p.quantity, "oversubscribed"
        children = [o for o in self.engine.state.in_flight("embed").values() if o.side != "cancel"]
        assert len(children) <= 1, "two children in flight"
        for d in out:
            self.label(d)
        return out

    def label(self, d: ev.Event) -> None:
        t = type(d)
        if t is ev.IntentRejected:
            self.labels.add("risk rejection")
        elif t is ev.SliceScheduled:
            self.labels.update({"catch-up": ["catch-up child"], "deadline": ["deadline catch-up child"],
                                "replenish": ["iceberg replenished"]}.get(d.reason, []))  # type: ignore[attr-defined]
        elif t is ev.SliceSkipped:
            self.labels.add({"below min child": "vwap below min child"}.get(d.reason, "no fresh price"))  # type: ignore[attr-defined]
        elif t is ev.ParentOrderFinished:
            self.labels.add(f"finished {d.status}")  # type: ignore[attr-defined]
        elif t is ev.ParentOrderProgress and d.outcome in ("canceled", "partial") and d.reason in ("deadline", "stale"):  # type: ignore[attr-defined]
            self.labels.add("canceled at the deadline" if d.reason == "deadline" else "stale child canceled")  # type: ignore[attr-defined]
        elif t is ev.TimerRequested and isinstance(self.slicer, Iceberg) and any(
                type(x) is ev.ParentOrderProgress and x.outcome != "filled" for x in self.events[-4:]):  # type: ignore[attr-defined]
            self.labels.add("iceberg retried")

    def child(self) -> tuple[str, int] | None:
        for cid, i in self.open.items():
            if i.side != "cancel":
                return cid, i.amount - self.got.get(i.seq, 0)
        return None

    def answer_cancel(self, rests: bool) -> bool:
        """The venue answers the first open cancel: canceled when its child is open and ``rests``,
        else it found nothing resting (the child is filled in full first if still open)."""
        for cid, i in self.open.items():
            if i.side == "cancel":
                if i.target in self.open and rests:
                    self.cancel(cid, self.got.get(self.open[i.target].seq, 0))
                else:
                    if i.target in self.open:
                        c = self.child()
                        assert c is not None
                        self.fill(c[0], c[1])
                    self.labels.add("cancel found nothing resting")
                    self.fail(cid, f"cancel: no resting order {i.target}")
                return True
        return False


def play(p: Any, slicer: Any, ops: list[tuple[str, int]]) -> Checked:
    w = Checked(p, slicer)
    w.feed(quote(T0))
    killed = False
    for op, n in ops:
        if op == "advance":
            w.advance(w.now + n * NS)
        elif op == "to_due" and w.timers:
            w.now = max(w.now, w.timers[0][0])
            w.labels.add("news at a slice's own time")
        elif op == "trade":
            w.feed(trade(w.now, n))
        elif op == "quote":
            w.feed(quote(w.now))
        elif op == "kill" and n != killed:
            killed = n
            w.feed(ev.KillSwitchSet(ts=w.now, source="operator", engaged=n))
        elif op == "answer_cancel":
            w.answer_cancel(bool(n))
        elif op in ("fill", "partial", "fail") and (c := w.child()) is not None:
            cid, left = c
            if op == "fail":
                w.labels.add("venue failure")
                w.fail(cid)
            elif op == "partial" and n < left:
                w.labels.add("resting partial fill")
                w.fill(cid, n, final=False)
            elif op == "fill":
                if n < left:
                    w.labels.add("partial fill")
                w.fill(cid, min(n, left))
    if killed:
        w.feed(ev.KillSwitchSet(ts=w.now, source="operator", engaged=False))
    return w


def finish(w: Checked) -> None:
    """Let the world run on, the venue filling every child in full (and quoting), until it is done."""
    for _ in range(3_000):
        if w.of(ev.ParentOrderFinished):
            return
        if w.answer_cancel(True):
            continue
        if w.open:
            cid, left = w.child()  # type: ignore[misc]
            w.fill(cid, left)
        else:
            w.feed(quote(w.now))
            w.advance(w.now + NS)
    raise AssertionError("the parent never finished")


def check(p: Any, slicer: Any, ops: list[tuple[str, int]]) -> set[str]:
    w = play(p, slicer, ops)
    finish(w)
    (done,) = w.of(ev.ParentOrderFinished)
    fills = w.of(ev.OrderFilled)
    assert done.filled == sum(f.amount for f in fills) == sum(w.got.values())
    assert done.remaining == p.quantity - done.filled and done.filled_notional == sum(f.notional for f in fills)
    assert done.status in ("filled", "expired", "failed")
    if done.status == "filled":
        assert done.remaining < p.lot
    if done.status == "failed":
        assert slicer.max_failures
    assert all(not p.deadline_ts or i.ts <= p.deadline_ts for i in w.of(ev.OrderIntended) if i.side != "cancel")
    if isinstance(slicer, Twap):
        assert slicer.scheduled(w.strategy.orders.works["p"], p.deadline_ts) == p.quantity  # whole by the deadline
    if p.deadline_ts and done.status == "expired":
        ends = [e.ts for e in w.events if type(e) in (ev.OrderFilled, ev.OrderFailed, ev.IntentRejected,
                                                       ev.OrderCanceled)]
        assert done.ts <= max([p.deadline_ts, *ends])  # at the deadline, or when the last child came back
    assert len([e for e in w.events if type(e) is ev.ParentOrderFinished]) == 1
    labels = set(w.labels)
    for e in w.events:
        if type(e) is ev.ParentOrderProgress and e.outcome == "partial":
            labels.add("partial fill")
    fired_busy = [e for e in w.events if type(e) is ev.TimerFired]
    opened = {d.seq: d for d in w.of(ev.OrderIntended) if d.side != "cancel"}
    finished_at = {e.intent: e.seq for e in w.events if type(e) in (ev.OrderFailed, ev.OrderCanceled) or
                   (type(e) is ev.OrderFilled and e.final)}  # type: ignore[attr-defined]
    if any(any(i < f.seq < finished_at.get(i, 10**12) for i in opened) for f in fired_busy):
        labels.add("slice due while a child was out")
    if isinstance(slicer, Iceberg) and any(type(e) is ev.ParentOrderProgress and e.outcome != "filled"
                                           for e in w.events) and len(opened) > 1:
        labels.add("iceberg retried")
    return labels


SEEN: Counter[str] = Counter()


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cases())
def slicer_properties(case: tuple[Any, Any, list[tuple[str, int]]]) -> None:
    p, slicer, ops = case
    labels = check(p, slicer, ops)
    event(f"algo {slicer.algo}")
    for label in sorted(labels):
        event(label)
    SEEN.update(labels)


def test_slicers_never_oversubscribe_keep_one_child_and_finish_on_schedule() -> None:
    SEEN.clear()
    slicer_properties()
    missing = [c for c in CASES if not SEEN[c]]
    assert not missing, f"the property never exercised: {missing} (seen {dict(SEEN)})"
