"""Order slicing: a large parent order worked as child intents by a deterministic scheduler.

Why: a strategy that decides to buy 50 ETH (a liquidator selling seized collateral on a CEX, an
arbitrage unwinding inventory, a perp position being built) moves the book against itself if it
sends one order. A slicer sends children over time instead, on the core's own timers
(``TimerRequested`` / ``TimerFired``: no clock), adapting to what comes back through ``on_order``.

Three algorithms, each a small frozen policy object (the ``Slicer`` protocol), all worked by one
``ParentOrders`` helper a strategy embeds:

* ``Twap(interval_ns)``: ``n = ceil(duration / interval)`` slices at ``start + k * interval``; by
  slice ``k`` (1-based) the schedule calls for ``lots * k // n`` lots (equal slices within one lot;
  the last slice takes what is left). Each slice sends what the schedule calls for less what is
  filled, so a partial fill, a venue failure or a risk rejection is caught up by later slices
  ("catch-up"); a slice due while a child is still in flight waits for it and goes when it ends.
* ``Vwap(participation_bps, min_child, max_child, interval_ns)``: every interval, the schedule
  is ``participation_bps`` of the volume the venue's tape printed (``TradePrinted`` of the parent's
  venue and instrument, from its start) and the child is what that calls for less what is filled:
  the rate times the volume since the last child, plus what earlier children missed. Capped at
  ``max_child`` (the rest is carried to later children, at most ``max_child`` each) and at what is
  left; below ``min_child`` nothing is sent (the volume keeps counting) unless it finishes the parent.
  The tape includes our own prints when the venue publishes them (rate of total volume).
* ``Iceberg(visible, retry_ns)``: one child of ``min(visible, remaining)`` rests at a time
  (normally ``tif = "gtc"`` with a limit price); when it ends filled, the next is sent at once in
  the same reaction; when it fails or is rejected, the next is sent after ``retry_ns``.

The deadline (``ParentOrder.deadline_ts``; TWAP and VWAP need one, an iceberg may have none) is a
timer too. At it, with nothing in flight: ``on_deadline = "catch_up"`` sends one final child for all
that is left ("deadline", uncapped), ``"leave"`` sends nothing; either way the parent then finishes
``expired`` with what is left reported in ``ParentOrderFinished.remaining``. With a child in flight
at the deadline, no further child is sent: the parent finishes when it ends; a resting child
(``tif`` "gtc" or "alo") is cancelled then, so it does end. So is a resting final ``catch_up``
child: it is cancelled as soon as it is approved (at the deadline), so it takes what it finds on
arrival and the rest ends with the cancel. No child intent is ever made after the deadline.

**Cancels** (a cancel intent: ``side = "cancel"``, ``target`` the child's client id, its own client
id ``<child id>-cancel``; see ``domain/risk.py``). A child is cancelled when its parent finishes with
it still resting (the deadline, above), when the strategy stops the parent (``stop``: the parent
finishes ``stopped`` once the child has ended, at once when none is out), and when it is stale:
in flight longer than ``ParentOrder.child_timeout_ns`` (0: never) since its approval (a
``slice-stale:<child id>`` timer). The venue's ``OrderCanceled`` ends the child ("canceled", or
"partial" with what it filled; an unfilled one counts as a failure towards ``max_failures``) and
the parent goes on as after any failed child: a stale TWAP/VWAP child's remainder is caught up by
the next slice, an iceberg's next child follows after ``retry_ns``. A cancel that finds nothing
resting (the child filled first: its fill ends it) is only noted; one cancel per child at most. ``max_failures`` children in a row ending with nothing filled finish it
``failed`` (0: never).

Guarantees (tests/test_slicing_properties.py): at every child, filled + what is in flight + the
child <= quantity; at most one child in flight per parent; every child intent at or before the
deadline; an iceberg's unfilled in-flight size never above ``visible``; the same events give the
same decisions. Integer arithmetic only: sizes in base units in multiples of ``lot``; the risk
notional of a child is its amount at the limit price or, for a market child, at the venue's last
quote on the far side (ask for a buy), rounded up, in ``quote_decimals`` base units. With no quote
(or one older than ``max_price_age_ns``) the slice is skipped (``SliceSkipped``) and caught up later.

Decision events (``domain/events.py``, order slicing): ``ParentOrderStarted``, ``SliceScheduled``,
``SliceSkipped``, ``ParentOrderProgress`` (each child's end), ``ParentOrderFinished``.

Using it from any strategy. The liquidator that liquidated without a route holds the seized
collateral after its ``OrderFilled`` and can hand its sale on the CEX to a TWAP; an arbitrage that
was left holding inventory by a failed second leg (``InventoryChanged``) can unwind it by VWAP; the
perp strategy can build a position by iceberg. Each does the same::

    class MyStrategy:
        handles = (ev.QuoteUpdated,) + ParentOrders.handles        # TradePrinted, for VWAP

        def __init__(self, name="mine"):
            self.name = name
            self.slicer = ParentOrders(name)

        def on_event(self, e, state):
            if self.slicer.wants(e):                             # its timers and the tape
                return self.slicer.on_event(e, state)
            if <decided to sell 50 ETH>:
                parent = ParentOrder("unwind-1", "binance", "ETH-USDC", "sell", 50 * 10**8,
                                     start_ts=e.ts, deadline_ts=e.ts + 600 * NS,
                                     base_decimals=8, quote_decimals=6, lot=10**4)
                return self.slicer.start(parent, Twap(interval_ns=30 * NS), e, state)
            return ()

        def on_order(self, e, order, state):
            if self.slicer.owns(order.client_id):                # its children's verdicts and fills
                return self.slicer.on_order(e, order, state)
            return ()                                            # the strategy's own orders

``progress(parent_id)`` / ``done(parent_id)`` tell the strategy where a parent stands. Children's
client ids are ``<parent_id>-<n>``; timer keys ``slice:<parent_id>``; both must not collide with
the strategy's own.

Hand-written on purpose: no library schedules child orders against an event-sourced core's own
timers (execution-algo libraries assume a wall clock and an exchange session).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tapedeck.domain import events as ev
from tapedeck.domain.risk import Intent
from tapedeck.domain.state import MarketState, Order

TWAP, VWAP, ICEBERG = "twap", "vwap", "iceberg"
CATCH_UP, LEAVE = "catch_up", "leave"
FILLED_STATUS, EXPIRED, FAILED_STATUS, STOPPED = "filled", "expired", "failed", "stopped"
TIMER_PREFIX = "slice:"
STALE_PREFIX = "slice-stale:"  # + a child's client id: its staleness timer
CANCEL_SUFFIX = "-cancel"  # a child's cancel intent is named <child id>-cancel
RESTING_TIFS = ("gtc", "alo")
_TIFS = ("", "ioc", "gtc", "alo")


@dataclass(frozen=True)
class ParentOrder:
    """What to work: ``quantity`` base units (``base_decimals``) of ``instrument`` to ``side`` on
    ``venue``, from ``start_ts`` to ``deadline_ts`` (event time, ns; 0: no deadline, iceberg only).
    Children are multiples of ``lot`` (``quantity`` must be one); ``limit_price`` (0: market)
    counts ``10**-price_decimals`` quote units; ``tif`` and ``reduce_only`` pass to every child."""

    parent_id: str
    venue: str
    instrument: str
    side: str
    quantity: int
    start_ts: int
    deadline_ts: int
    base_decimals: int
    quote_decimals: int
    lot: int = 1
    limit_price: int = 0
    price_decimals: int = 0
    tif: str = ""
    reduce_only: bool = False
    max_price_age_ns: int = 0  # market children: the quote that prices their notional (0: any age)
    child_timeout_ns: int = 0  # a child in flight longer than this is cancelled as stale (0: never)

    def __post_init__(self) -> None:
        def bad(what: str) -> None:
            raise ValueError(f"parent order {self.parent_id!r}: {what}")

        if not self.parent_id or not isinstance(self.parent_id, str):
            bad("needs a parent_id (text)")
        if self.side not in ("buy", "sell"):
            bad(f"side must be buy or sell, got {self.side!r}")
        for f in ("quantity", "lot", "start_ts", "deadline_ts", "base_decimals", "quote_decimals", "limit_price",
                  "price_decimals", "max_price_age_ns", "child_timeout_ns"):
            v = getattr(self, f)
            if type(v) is not int or v < 0:
                bad(f"{f} must be an integer >= 0, got {v!r}")
        if self.lot <= 0 or self.quantity <= 0 or self.quantity % self.lot:
            bad(f"quantity {self.quantity} must be a positive multiple of the lot {self.lot}")
        if self.deadline_ts and self.deadline_ts <= self.start_ts:
            bad(f"deadline_ts {self.deadline_ts} is not after start_ts {self.start_ts}")
        if self.tif not in _TIFS:
            bad(f"tif must be one of {', '.join(repr(t) for t in _TIFS)}, got {self.tif!r}")


class Slicer(Protocol):
    """An algorithm: what the schedule calls for, when to wake, how big the next child is."""

    algo: str
    on_deadline: str
    max_failures: int

    def check(self, p: ParentOrder) -> None:
        """Raise ValueError if this algorithm cannot work ``p``."""

    def params(self) -> str: ...

    def scheduled(self, w: "Work", ts: int) -> int:
        """Base units the schedule calls for by ``ts`` (cumulative, <= quantity)."""

    def next_wake(self, w: "Work", ts: int) -> int:
        """The next time after ``ts`` it needs a timer for (0: none before the deadline)."""

    def child(self, w: "Work", ts: int) -> tuple[int, str]:
        """(amount, reason) of the child to send now with nothing in flight; amount 0: none
        (reason then says why, or is "" when nothing is due)."""

    def on_trade(self, w: "Work", e: ev.TradePrinted) -> None: ...


def _check_on_deadline(v: str) -> None:
    if v not in (CATCH_UP, LEAVE):
        raise ValueError(f"on_deadline must be {CATCH_UP!r} or {LEAVE!r}, got {v!r}")


def _positive(name: str, v: Any) -> None:
    if type(v) is not int or v <= 0:
        raise ValueError(f"{name} must be an integer > 0, got {v!r}")


@dataclass(frozen=True)
class Twap:
    interval_ns: int
    on_deadline: str = CATCH_UP
    max_failures: int = 10
    algo: str = TWAP

    def __post_init__(self) -> None:
        _positive("interval_ns", self.interval_ns)
        _check_on_deadline(self.on_deadline)

    def check(self, p: ParentOrder) -> None:
        if not p.deadline_ts:
            raise ValueError(f"parent order {p.parent_id!r}: a TWAP needs a deadline")

    def params(self) -> str:
        return f"interval {self.interval_ns} ns, on_deadline {self.on_deadline}"

    def slices(self, w: "Work") -> int:
        if not w.slices:  # once per parent
            p = w.parent
            w.slices = -(-(p.deadline_ts - p.start_ts) // self.interval_ns)
        return w.slices

    def _due(self, w: "Work", ts: int) -> int:
        """Slices due by ``ts`` (0 before the start)."""
        p = w.parent
        if ts < p.start_ts:
            return 0
        return min(self.slices(w), (ts - p.start_ts) // self.interval_ns + 1)

    def _lots(self, w: "Work", k: int) -> int:
        """Base units the schedule calls for once ``k`` slices are due."""
        p = w.parent
        return (p.quantity // p.lot) * k // self.slices(w) * p.lot

    def scheduled(self, w: "Work", ts: int) -> int:
        return self._lots(w, self._due(w, ts))

    def next_wake(self, w: "Work", ts: int) -> int:
        k = self._due(w, ts)
        return w.parent.start_ts + k * self.interval_ns if k < self.slices(w) else 0

    def child(self, w: "Work", ts: int) -> tuple[int, str]:
        p = w.parent
        k = self._due(w, ts)
        amount = (self._lots(w, k) - w.filled) // p.lot * p.lot
        if amount <= 0:
            return 0, ""
        return amount, ("catch-up" if w.filled < self._lots(w, k - 1) else "schedule")

    def on_trade(self, w: "Work", e: ev.TradePrinted) -> None:
        return None


@dataclass(frozen=True)
class Vwap:
    participation_bps: int
    min_child: int
    max_child: int
    interval_ns: int
    on_deadline: str = CATCH_UP
    max_failures: int = 10
    algo: str = VWAP

    def __post_init__(self) -> None:
        if type(self.participation_bps) is not int or not 0 < self.participation_bps <= 10_000:
            raise ValueError(f"participation_bps must be an integer in 1..10000, got {self.participation_bps!r}")
        _positive("interval_ns", self.interval_ns)
        _positive("max_child", self.max_child)
        if type(self.min_child) is not int or not 0 <= self.min_child <= self.max_child:
            raise ValueError(f"min_child must be an integer in 0..max_child ({self.max_child}), got {self.min_child!r}")
        _check_on_deadline(self.on_deadline)

    def check(self, p: ParentOrder) -> None:
        if not p.deadline_ts:
            raise ValueError(f"parent order {p.parent_id!r}: a VWAP needs a deadline")
        if self.max_child < p.lot:
            raise ValueError(f"parent order {p.parent_id!r}: max_child {self.max_child} is below the lot {p.lot}")

    def params(self) -> str:
        return (f"participation {self.participation_bps} bps, child {self.min_child}..{self.max_child}, "
                f"interval {self.interval_ns} ns, on_deadline {self.on_deadline}")

    def scheduled(self, w: "Work", ts: int) -> int:
        p = w.parent
        return min(p.quantity, w.volume * self.participation_bps // 10_000 // p.lot * p.lot)

    def next_wake(self, w: "Work", ts: int) -> int:
        p = w.parent
        if ts < p.start_ts:
            return p.start_ts
        nxt = p.start_ts + ((ts - p.start_ts) // self.interval_ns + 1) * self.interval_ns
        return nxt if nxt < p.deadline_ts else 0

    def child(self, w: "Work", ts: int) -> tuple[int, str]:
        p = w.parent
        left = p.quantity - w.filled
        want = min(self.scheduled(w, ts) - w.filled, self.max_child, left) // p.lot * p.lot
        if want <= 0:
            return 0, ""
        if want < self.min_child and want < left:
            return 0, "below min child"
        return want, "participation"

    def on_trade(self, w: "Work", e: ev.TradePrinted) -> None:
        if e.ts < w.parent.start_ts or e.size <= 0:
            return
        shift = w.parent.base_decimals - e.size_decimals
        w.volume += e.size * 10**shift if shift >= 0 else e.size // 10**-shift


@dataclass(frozen=True)
class Iceberg:
    visible: int
    retry_ns: int
    on_deadline: str = LEAVE
    max_failures: int = 10
    algo: str = ICEBERG

    def __post_init__(self) -> None:
        _positive("visible", self.visible)
        _positive("retry_ns", self.retry_ns)
        if self.on_deadline != LEAVE:
            raise ValueError("an iceberg's on_deadline is 'leave' (a resting child cannot be topped up past it)")

    def check(self, p: ParentOrder) -> None:
        if self.visible < p.lot or self.visible % p.lot:
            raise ValueError(f"parent order {p.parent_id!r}: visible {self.visible} must be a positive multiple "
                             f"of the lot {p.lot}")

    def params(self) -> str:
        return f"visible {self.visible}, retry {self.retry_ns} ns"

    def scheduled(self, w: "Work", ts: int) -> int:
        return w.parent.quantity if ts >= w.parent.start_ts else 0

    def next_wake(self, w: "Work", ts: int) -> int:
        return w.retry_at if w.retry_at > ts else 0

    def child(self, w: "Work", ts: int) -> tuple[int, str]:
        if ts < w.parent.start_ts or ts < w.retry_at:
            return 0, ""
        return min(self.visible, w.parent.quantity - w.filled), ("replenish" if w.children else "schedule")

    def on_trade(self, w: "Work", e: ev.TradePrinted) -> None:
        return None


@dataclass
class Child:
    client_id: str
    amount: int
    filled: int = 0
    approved: bool = False
    cancel: str = ""  # why a cancel was sent for it ("deadline", "stopped", "stale"; "": none)


@dataclass(frozen=True)
class Progress:
    """Where a parent stands (base units): ``status`` "working" until it finishes."""

    parent_id: str
    status: str
    filled: int
    remaining: int
    scheduled: int
    in_flight: int  # unfilled size of the child in flight (0: none)
    children: int


class Work:
    """One parent being worked (mutable; owned by ``ParentOrders``)."""

    __slots__ = ("parent", "slicer", "filled", "notional", "fees", "fee_asset", "volume", "child", "children",
                 "failed", "streak", "wanted", "timer_at", "retry_at", "status", "arrival", "price_decimals",
                 "skipped", "began", "slices", "stopping")

    def __init__(self, parent: ParentOrder, slicer: Slicer):
        self.parent, self.slicer = parent, slicer
        self.filled = self.notional = self.fees = self.volume = 0
        self.fee_asset = ""
        self.child: Child | None = None
        self.children = self.failed = self.streak = 0
        self.wanted = False  # a slice came due while a child was in flight
        self.timer_at = 0  # the one timer asked for and not yet fired (0: none)
        self.retry_at = 0
        self.status = "working"
        self.arrival = -1
        self.price_decimals = parent.price_decimals
        self.skipped = ""  # the last SliceSkipped reason (recorded once until a child goes)
        self.began = False
        self.slices = 0  # a TWAP's slice count (cached)
        self.stopping = False  # stop() asked; the parent finishes "stopped" when its child ends

    @property
    def remaining(self) -> int:
        return self.parent.quantity - self.filled

    @property
    def in_flight(self) -> int:
        c = self.child
        return 0 if c is None else max(0, c.amount - c.filled)


Proposal = ev.Event | Intent


class ParentOrders:
    """Works a strategy's parent orders; see the module docstring for the contract."""

    handles: tuple[type[ev.Event], ...] = (ev.TradePrinted,)

    def __init__(self, strategy: str):
        self.strategy = strategy
        self.works: dict[str, Work] = {}  # parent id -> work, in start order (finished ones kept)
        self._by_child: dict[str, Work] = {}  # client id of a child in flight -> its parent
        self._cancels: dict[str, Work] = {}  # client id of a cancel in flight -> the parent of its child
        self._tape: dict[tuple[str, str], list[Work]] = {}  # (venue, instrument) -> VWAPs watching

    # ------------------------------------------------------------------ asking

    def owns(self, client_id: str) -> bool:
        return client_id in self._by_child or client_id in self._cancels

    def wants(self, e: ev.Event) -> bool:
        """Whether ``e`` is one of this helper's (its timers, a tape it watches)."""
        t = type(e)
        if t is ev.TimerFired:
            return e.key.startswith(TIMER_PREFIX) or e.key.startswith(STALE_PREFIX)  # type: ignore[attr-defined]
        return t is ev.TradePrinted and (e.venue, e.instrument) in self._tape  # type: ignore[attr-defined]

    def done(self, parent_id: str) -> bool:
        return self.works[parent_id].status != "working"

    def progress(self, parent_id: str, ts: int | None = None) -> Progress:
        w = self.works[parent_id]
        at = w.parent.start_ts if ts is None else ts
        return Progress(parent_id, w.status, w.filled, w.remaining, w.slicer.scheduled(w, at), w.in_flight,
                        w.children)

    # ------------------------------------------------------------------ driving

    def start(self, parent: ParentOrder, slicer: Slicer, cause: ev.Event, state: MarketState) -> list[Proposal]:
        """Begin working ``parent`` (``cause``: the event being handled; the parent may start later)."""
        if parent.parent_id in self.works:
            raise ValueError(f"parent order {parent.parent_id!r} was already started")
        slicer.check(parent)
        w = self.works[parent.parent_id] = Work(parent, slicer)
        if slicer.algo == VWAP:
            self._tape.setdefault((parent.venue, parent.instrument), []).append(w)
        p = parent
        out: list[Proposal] = [ev.ParentOrderStarted(
            ts=cause.ts, source="engine", cause=cause.seq, strategy=self.strategy, parent_id=p.parent_id,
            algo=slicer.algo, venue=p.venue, instrument=p.instrument, side=p.side, quantity=p.quantity,
            start_ts=p.start_ts, deadline_ts=p.deadline_ts, limit_price=p.limit_price,
            price_decimals=p.price_decimals, tif=p.tif, reduce_only=p.reduce_only, params=slicer.params())]
        if cause.ts >= p.start_ts:
            self._wake(w, cause, state, out)
        else:
            self._timer(w, cause, p.start_ts, out)
        return out

    def stop(self, parent_id: str, cause: ev.Event, state: MarketState) -> list[Proposal]:
        """Stop working a parent: no more children; one resting is cancelled and the parent finishes
        ``stopped`` when it has ended (at once when none is out). Stopping a finished parent does nothing."""
        w = self.works[parent_id]
        out: list[Proposal] = []
        if w.status != "working" or w.stopping:
            return out
        w.stopping = True
        if w.child is None:
            self._finish(w, cause, out, STOPPED)
        else:
            self._cancel(w, cause, "stopped", out)
        return out

    def on_event(self, e: ev.Event, state: MarketState) -> list[Proposal]:
        t = type(e)
        if t is ev.TradePrinted:
            for w in self._tape.get((e.venue, e.instrument), ()):  # type: ignore[attr-defined]
                if w.status == "working":
                    w.slicer.on_trade(w, e)  # type: ignore[arg-type]
            return []
        if t is ev.TimerFired and e.key.startswith(STALE_PREFIX):  # type: ignore[attr-defined]
            child_id = e.key[len(STALE_PREFIX):]  # type: ignore[attr-defined]
            w = self._by_child.get(child_id)
            out: list[Proposal] = []
            if w is not None and w.child is not None and w.child.client_id == child_id:
                self._cancel(w, e, "stale", out)
            return out
        if t is not ev.TimerFired or not e.key.startswith(TIMER_PREFIX):  # type: ignore[attr-defined]
            return []
        w = self.works.get(e.key[len(TIMER_PREFIX):])  # type: ignore[attr-defined]
        if w is None or w.status != "working" or w.stopping or not w.timer_at or e.ts < w.timer_at:
            return []  # not ours, finished or stopping, or a timer superseded
        w.timer_at = 0
        out: list[Proposal] = []
        self._wake(w, e, state, out)
        return out

    def on_order(self, e: ev.Event, order: Order, state: MarketState) -> list[Proposal]:
        t = type(e)
        if order.client_id in self._cancels:  # a cancel's own news: only its end matters
            if t is not ev.OrderIntended:
                del self._cancels[order.client_id]  # rejected, or nothing rested (the child's own end comes)
            return []
        w = self._by_child.get(order.client_id)
        if w is None or w.child is None or w.child.client_id != order.client_id:
            return []
        c = w.child
        out: list[Proposal] = []
        if t is ev.OrderIntended:
            c.approved = True
            if w.stopping:  # stopped before its approval came back: cancel it now
                self._cancel(w, e, "stopped", out)
            elif w.parent.deadline_ts and e.ts >= w.parent.deadline_ts and w.parent.tif in RESTING_TIFS:
                self._cancel(w, e, "deadline", out)  # the final catch-up child: what did not trade on arrival ends
            elif w.parent.child_timeout_ns:
                out.append(ev.TimerRequested(ts=e.ts, source="engine", cause=e.seq, strategy=self.strategy,
                                             key=STALE_PREFIX + c.client_id, at_ts=e.ts + w.parent.child_timeout_ns))
        elif t is ev.OrderCanceled:
            self._cancels.pop(c.client_id + CANCEL_SUFFIX, None)
            self._ended(w, e, "partial" if c.filled else "canceled", c.cancel or "canceled", state, out)
        elif t is ev.IntentRejected:
            self._ended(w, e, "rejected", e.reason, state, out, verdict=True)  # type: ignore[attr-defined]
        elif t is ev.OrderFilled:
            f: ev.OrderFilled = e  # type: ignore[assignment]
            take = max(0, min(f.amount, c.amount - c.filled))  # never count past the child (a venue's excess)
            c.filled += take
            w.filled += take
            w.notional += f.notional
            w.fees += f.fee
            w.fee_asset = w.fee_asset or f.fee_asset
            if f.final:
                outcome = "filled" if c.filled >= c.amount else ("partial" if c.filled else "unfilled")
                self._ended(w, e, outcome, "", state, out)
        elif t is ev.OrderFailed:
            self._ended(w, e, "partial" if c.filled else "failed", e.reason, state, out)  # type: ignore[attr-defined]
        return out

    # ------------------------------------------------------------------ internals

    def _wake(self, w: Work, e: ev.Event, state: MarketState, out: list[Proposal]) -> None:
        p, ts = w.parent, e.ts
        if not w.began:
            w.began = True
            w.arrival, pd = _mid(state, p)
            if pd >= 0 and not p.limit_price:
                w.price_decimals = pd
        if p.deadline_ts and ts >= p.deadline_ts:
            if w.child is not None:  # the child in flight is the last; it finishes the parent when it ends
                if p.tif in RESTING_TIFS:
                    self._cancel(w, e, "deadline", out)  # a resting child would not end by itself
                return
            if w.slicer.on_deadline == CATCH_UP and w.remaining >= p.lot:
                self._send(w, e, state, w.remaining // p.lot * p.lot, "deadline", out)
                if w.child is not None:
                    return
            self._finish(w, e, out)
            return
        if w.child is not None:
            w.wanted = True
        else:
            amount, reason = w.slicer.child(w, ts)
            if amount:
                self._send(w, e, state, amount, reason, out)
            elif reason:
                self._skip(w, e, reason, out)
        if w.slicer.algo == ICEBERG and w.child is None and ts >= w.retry_at:
            self._retry(w, e, out)  # nothing could be sent (no price): try again later
        self._timer(w, e, self._next(w, ts), out)

    def _next(self, w: Work, ts: int) -> int:
        """The earliest of the algorithm's next wake and the deadline still ahead (0: none)."""
        nxt = w.slicer.next_wake(w, ts)
        d = w.parent.deadline_ts if w.parent.deadline_ts > ts else 0
        return min(nxt, d) if nxt and d else (nxt or d)

    def _cancel(self, w: Work, e: ev.Event, why: str, out: list[Proposal]) -> None:
        """Ask the venue to cancel the child in flight (once per child; not before it is approved)."""
        c, p = w.child, w.parent
        if c is None or c.cancel or not c.approved:
            return
        c.cancel = why
        cancel_id = c.client_id + CANCEL_SUFFIX
        self._cancels[cancel_id] = w
        out.append(Intent(self.strategy, p.venue, p.instrument, "cancel", 0, 0, target=c.client_id,
                          client_id=cancel_id))

    def _retry(self, w: Work, e: ev.Event, out: list[Proposal]) -> None:
        w.retry_at = e.ts + w.slicer.retry_ns  # type: ignore[attr-defined]
        self._timer(w, e, self._next(w, e.ts), out)

    def _timer(self, w: Work, e: ev.Event, at: int, out: list[Proposal]) -> None:
        if not at or at == w.timer_at:
            return
        if w.timer_at and w.timer_at <= at:
            return  # an earlier one is pending; it asks for the next when it fires
        w.timer_at = at
        out.append(ev.TimerRequested(ts=e.ts, source="engine", cause=e.seq, strategy=self.strategy,
                                     key=TIMER_PREFIX + w.parent.parent_id, at_ts=at))

    def _send(self, w: Work, e: ev.Event, state: MarketState, amount: int, reason: str, out: list[Proposal]) -> None:
        p = w.parent
        amount = min(amount, p.quantity - w.filled - w.in_flight) // p.lot * p.lot
        if amount <= 0 or w.child is not None:
            return
        price, pd, why = _price(state, p, e.ts)
        if not price:
            self._skip(w, e, why, out)
            return
        if w.arrival < 0 and not p.limit_price:
            w.price_decimals = pd  # no quote at the start: average prices at the first child's precision
        notional = -(-(amount * price * 10**p.quote_decimals) // 10 ** (p.base_decimals + pd))
        w.children += 1
        client_id = f"{p.parent_id}-{w.children}"
        w.child = Child(client_id, amount)
        w.wanted = False
        w.skipped = ""
        self._by_child[client_id] = w
        out.append(ev.SliceScheduled(ts=e.ts, source="engine", cause=e.seq, strategy=self.strategy,
                                     parent_id=p.parent_id, client_id=client_id, child=w.children, amount=amount,
                                     reason=reason, scheduled=w.slicer.scheduled(w, e.ts), filled=w.filled,
                                     remaining=w.remaining))
        out.append(Intent(self.strategy, p.venue, p.instrument, p.side, amount, notional, client_id=client_id,
                          limit_price=p.limit_price, price_decimals=p.price_decimals if p.limit_price else 0,
                          tif=p.tif, reduce_only=p.reduce_only))

    def _skip(self, w: Work, e: ev.Event, reason: str, out: list[Proposal]) -> None:
        if reason == w.skipped:
            return
        w.skipped = reason
        out.append(ev.SliceSkipped(ts=e.ts, source="engine", cause=e.seq, strategy=self.strategy,
                                   parent_id=w.parent.parent_id, reason=reason,
                                   scheduled=w.slicer.scheduled(w, e.ts), filled=w.filled))

    def _ended(self, w: Work, e: ev.Event, outcome: str, reason: str, state: MarketState, out: list[Proposal],
               verdict: bool = False) -> None:
        c = w.child
        assert c is not None
        w.child = None
        del self._by_child[c.client_id]
        p, ts = w.parent, e.ts
        if c.filled:
            w.streak = 0
        else:
            w.failed += 1
            w.streak += 1
        scheduled = w.slicer.scheduled(w, ts)
        out.append(ev.ParentOrderProgress(ts=ts, source="engine", cause=e.seq, strategy=self.strategy,
                                          parent_id=p.parent_id, client_id=c.client_id, outcome=outcome,
                                          reason=reason, child_amount=c.amount, child_filled=c.filled,
                                          filled=w.filled, remaining=w.remaining, scheduled=scheduled,
                                          behind=max(0, scheduled - w.filled)))
        if w.remaining < p.lot:
            self._finish(w, e, out)
            return
        if w.stopping:
            self._finish(w, e, out, STOPPED)
            return
        mf = w.slicer.max_failures
        if mf and w.streak >= mf:
            self._finish(w, e, out, FAILED_STATUS)
            return
        if p.deadline_ts and ts >= p.deadline_ts:
            if w.timer_at and w.timer_at <= ts:
                return  # the deadline timer is still to fire (same time): it decides
            self._finish(w, e, out)
            return
        if w.slicer.algo == ICEBERG:
            if c.filled >= c.amount and not verdict:
                self._send(w, e, state, *w.slicer.child(w, ts), out)
            if w.child is None:  # failed, rejected, came back short, or no price: later, not in this reaction
                self._retry(w, e, out)
            return
        if w.wanted and not verdict:  # a slice came due while this child was out: catch up now
            w.wanted = False
            amount, why = w.slicer.child(w, ts)
            if amount:
                self._send(w, e, state, amount, "catch-up" if why == "schedule" else why, out)

    def _finish(self, w: Work, e: ev.Event, out: list[Proposal], status: str = "") -> None:
        p, ts = w.parent, e.ts
        status = status or (FILLED_STATUS if w.remaining < p.lot else EXPIRED)
        w.status = status
        pd = w.price_decimals
        avg = -1
        slippage = 0
        if w.filled:
            scale = p.base_decimals + pd - p.quote_decimals
            num = w.notional * 10**scale if scale >= 0 else w.notional
            den = w.filled if scale >= 0 else w.filled * 10**-scale
            avg = num // den
            if w.arrival > 0:
                diff = num - w.arrival * den  # paid above arrival, times den
                signed = diff if p.side == "buy" else -diff
                slippage = signed * 10_000 // (w.arrival * den)
        watching = self._tape.get((p.venue, p.instrument))
        if watching and w in watching:
            watching.remove(w)
        out.append(ev.ParentOrderFinished(
            ts=ts, source="engine", cause=e.seq, strategy=self.strategy, parent_id=p.parent_id,
            algo=w.slicer.algo, status=status, quantity=p.quantity, filled=w.filled, remaining=w.remaining,
            scheduled=w.slicer.scheduled(w, ts), filled_notional=w.notional, fees=w.fees, fee_asset=w.fee_asset,
            average_price=avg, price_decimals=pd, arrival_price=w.arrival, slippage_bps=slippage,
            children=w.children, failed_children=w.failed, late_ns=ts - p.deadline_ts if p.deadline_ts else 0))


def _mid(state: MarketState, p: ParentOrder) -> tuple[int, int]:
    """(mid, its price decimals) of the venue's last quote for the instrument, (-1, -1) if none."""
    q = state.quotes.get(p.instrument, {}).get(p.venue)
    if q is None or q.bid <= 0 or q.ask <= 0:
        return -1, -1
    return (q.bid + q.ask) // 2, q.price_decimals


def _price(state: MarketState, p: ParentOrder, ts: int) -> tuple[int, int, str]:
    """(price, decimals, "") a child's notional is sized at, or (0, 0, why not)."""
    if p.limit_price:
        return p.limit_price, p.price_decimals, ""
    q = state.quotes.get(p.instrument, {}).get(p.venue)
    if q is None:
        return 0, 0, "no price"
    if p.max_price_age_ns and not state.quote_fresh(q, ts, p.max_price_age_ns):
        return 0, 0, "stale price"
    price = q.ask if p.side == "buy" else q.bid
    if price <= 0:
        return 0, 0, "no price"
    return price, q.price_decimals, ""


def slicer_from_config(algo: str, **params: Any) -> Slicer:
    """A slicer by name with its parameters (seconds already in ns): twap / vwap / iceberg."""
    table: dict[str, Any] = {TWAP: Twap, VWAP: Vwap, ICEBERG: Iceberg}
    if algo not in table:
        raise ValueError(f"algo must be one of {', '.join(table)}, got {algo!r}")
    return table[algo](**params)  # type: ignore[no-any-return]
