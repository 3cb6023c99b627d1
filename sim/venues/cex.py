"""A mock book venue (CEX spot, or a perp's book) quoting around its mark.

The book has ``depth_levels`` levels a side. Level ``i`` (from 0) sits at
``mark * (1 -/+ (spread_bps / 2 + i * level_spacing_bps) / 10_000)``, bids rounded down and asks
rounded up to ``tick_size`` (and kept at least a tick apart), each with ``level_size`` of the base
asset. Taker orders consume the levels; consumed depth comes back when the mark moves or after
``replenish`` seconds (both checked on each ``PriceTick`` of the venue's mark).

Orders travel with the venue's latency (``LatencyModel``, endpoint = venue name): sent now, they
reach the venue after an outbound delay, where in this order:

1. **rate limit**: more than ``rate_limit`` orders processed in the last second (a sliding window
   over venue time; rate-limited orders do not count) -> rejected, ``reason`` says so;
2. **validation**: size a positive multiple of ``lot_size``, a limit price a positive multiple of
   ``tick_size`` -> otherwise rejected;
3. **reduce-only** (perp venues, ``MockPerp``): trimmed to the position or rejected;
   a spot book rejects it;
4. **seeded reject**: with probability ``reject_probability`` (the venue's own generator) -> rejected;
5. **matching**: a market order walks the book; a limit order walks the levels at or better than
   its price. What is left of an IOC order expires (a partial fill when the size exceeds the depth);
   what is left of a GTC limit order rests, and fills whole at its limit price (maker fee) once the
   book trades through it.

**Cancels** (``cancel(client_id, cancel_id)``): after the outbound delay, a resting GTC order is
taken off the book (report ``cancelled``, ``released`` = its unfilled size, ``cancel_id`` naming the
cancel); an order that is not resting (filled, expired, unknown) makes a ``rejected`` report under the
cancel's id ("cancel: unknown or finished order"). Cancels do not count towards the rate limit.

**Public tape.** Every fill on the venue prints a ``TapeTrade`` (price, size, the taker's side, a
venue trade id ``<venue>-t<n>``): our taker orders against the makers' levels, our resting orders
when the book trades through them (the taker is the other side), and the venue's own **taker flow**
(``taker_flow_per_minute``, ``taker_flow_size``: market orders at Poisson times, half buys, of an
exponential size of that mean rounded down to the lot, at least one lot, walking the makers' levels
like ours; their times, sides and sizes come from their own seeded generator
``derive_rng(seed, "takers:<venue>")``, so the venue's reject draws are unchanged; their prints and the
quote updates they cause travel the venue's inbound channel like any other message). Our fills print
in the same delivery as their ``OrderReport`` (no latency draw of their own: a world without taker
flow is the same world with a tape). Taker flow is off by default (0).

The report comes back after an inbound delay, as an ``OrderReport`` on the bus. Top of book
changes are published as ``BookQuote`` (also after an inbound delay). Prices and sizes are
``Decimal``; each report also gives exact ints in base units: the filled amount, the notional
(rounded in the venue's favour: up for buys, down for sells) and the fee (rounded up).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import simpy

from tapedeck.sim.kernel import CTX, NS, Bus, LatencyModel, SimClock, dsum, exponential, to_ns
from tapedeck.domain.decimals import decimals_of
from tapedeck.sim.processes import PriceTick
from tapedeck.sim.scenario import Venue, derive_rng

BUY, SELL = "buy", "sell"
MARKET, LIMIT = "market", "limit"
IOC, GTC = "ioc", "gtc"

FILLED = "filled"
PARTIALLY_FILLED = "partially_filled"
EXPIRED = "expired"  # IOC with nothing filled
ACCEPTED = "accepted"  # GTC resting, nothing filled yet
CANCELLED = "cancelled"
REJECTED = "rejected"

RATE_LIMITED = "rate limit: more than {n} orders per second"
SIMULATED_REJECT = "rejected by venue (simulated)"
NO_MARKET = "no market: the venue has no price yet"

BPS = Decimal(10_000)


@dataclass(frozen=True)
class Order:
    client_id: str
    side: str  # "buy" | "sell"
    qty: Decimal  # base asset
    kind: str = MARKET  # "market" | "limit"
    limit_price: Decimal | None = None
    tif: str = IOC  # "ioc" | "gtc" (limit orders only)
    reduce_only: bool = False  # perp venues only: may only shrink the position (``MockPerp``)


@dataclass(frozen=True)
class Fill:
    price: Decimal
    qty: Decimal
    liquidity: str  # "taker" | "maker"


@dataclass(frozen=True)
class OrderReport:
    """What the venue says about an order; ``ts`` is when the bot receives it, ``venue_ts`` when
    the venue decided. Quantities describe this report's fills only."""

    ts: int
    venue_ts: int
    venue: str
    instrument: str
    order_id: str
    client_id: str
    side: str
    status: str
    qty: Decimal  # size asked
    fills: tuple[Fill, ...]
    filled_qty: Decimal
    notional: Decimal  # quote currency, exact
    fee: Decimal  # quote currency, rounded up to its decimals
    remaining: Decimal  # still resting after this report (GTC); 0 when the order is done
    reason: str
    filled_amount: int  # base units
    notional_amount: int  # quote units, rounded in the venue's favour
    fee_amount: int  # quote units
    released: Decimal = Decimal(0)  # a cancelled report: the unfilled size taken off the book
    released_amount: int = 0  # the same in base units
    cancel_id: str = ""  # a cancelled report: the cancel's client id ("" when cancelled without one)

    @property
    def avg_price(self) -> Decimal | None:
        return CTX.divide(self.notional, self.filled_qty) if self.filled_qty else None


@dataclass(frozen=True)
class TapeTrade:
    """A trade on the venue's public tape as the bot sees it (``ts``: received; ``venue_ts``: when
    it traded): ``price`` and ``qty`` exact, ``side`` the taker's ("buy"/"sell")."""

    ts: int
    venue_ts: int
    venue: str
    instrument: str
    price: Decimal
    qty: Decimal
    side: str
    trade_id: str
    price_decimals: int  # the instrument's tick precision
    size_decimals: int  # its lot precision


@dataclass(frozen=True)
class BookQuote:
    """Top of book as the bot sees it (``ts``: received; ``venue_ts``: at the venue)."""

    ts: int
    venue_ts: int
    venue: str
    instrument: str
    bid: Decimal
    bid_size: Decimal
    ask: Decimal
    ask_size: Decimal
    price_decimals: int  # the instrument's tick precision (prices are tick multiples)
    size_decimals: int  # its lot precision


@dataclass
class _Resting:
    order_id: str
    order: Order
    remaining: Decimal


class MockCex:
    def __init__(self, env: simpy.Environment, clock: SimClock, bus: Bus, spec: Venue, rng: Any,
                 latency: LatencyModel, *, mark: str | None = None):
        self.env, self.clock, self.bus, self.spec, self.rng, self.latency = env, clock, bus, spec, rng, latency
        self.name = spec.name
        self.mark = mark or spec.name
        self.mid: Decimal | None = None
        self._bids: list[list[Decimal]] = []  # [price, remaining], best first (``bids``)
        self._asks: list[list[Decimal]] = []
        self._unbuilt: Decimal | None = None  # the mid of a rebuild not made yet (``_build``)
        self._built_ns = 0
        self._levels_of: Venue | None = None  # the spec ``_level_factors`` were worked out for
        self._level_factors: list[tuple[Decimal, Decimal]] = []
        self._replenish_ns = to_ns(spec.replenish)
        self._window: deque[int] = deque()  # venue times of orders processed in the last second
        self._orders = 0
        self._resting: dict[str, _Resting] = {}  # client id -> resting order, in arrival order
        self._last_top: tuple[Decimal, Decimal, Decimal, Decimal] | None = None
        self._trades = 0  # trades printed on the tape
        self.flow_trades = 0  # of which the taker flow's
        bus.subscribe(self.on_price, PriceTick, where=lambda m: m.mark == self.mark)
        rate, size = getattr(spec, "taker_flow_per_minute", 0), getattr(spec, "taker_flow_size", 0)
        if rate > 0 and size > 0:
            self._flow_rng = derive_rng(latency.seed, f"takers:{self.name}")
            env.process(self._taker_flow(CTX.divide(Decimal(60), Decimal(rate)), Decimal(size)))

    # ------------------------------------------------------------------ book

    def on_price(self, tick: PriceTick) -> None:
        if tick.price != self.mid or tick.ts >= self._built_ns + self._replenish_ns:
            self.mid = tick.price
            self._build(tick.ts)
        self._match_resting(tick.ts)
        self._quote(tick.ts)

    def _levels(self) -> list[tuple[Decimal, Decimal]]:
        """Per level, the factors of the mark its ask and bid sit at, ``(1 + offset, 1 - offset)``: the
        spec's alone, so worked out once per spec (they were half of each rebuild's Decimal work)."""
        s = self.spec
        if self._levels_of is not s:
            levels = []
            for i in range(s.depth_levels):
                offset = CTX.divide(CTX.add(CTX.divide(s.spread_bps, Decimal(2)),
                                            CTX.multiply(Decimal(i), s.level_spacing_bps)), BPS)
                levels.append((CTX.add(Decimal(1), offset), CTX.subtract(Decimal(1), offset)))
            self._levels_of, self._level_factors = s, levels
        return self._level_factors

    @property
    def bids(self) -> list[list[Decimal]]:
        """The bid levels, ``[price, remaining]``, best first."""
        if self._unbuilt is not None:
            self._make_levels()
        return self._bids

    @property
    def asks(self) -> list[list[Decimal]]:
        """The ask levels, ``[price, remaining]``, best first."""
        if self._unbuilt is not None:
            self._make_levels()
        return self._asks

    def _build(self, ts: int) -> None:
        """The makers' levels around the mid, made when they are first read: after most mark moves
        nobody trades against the book and only its top level is read (``top``); making the ~20
        levels a side in Decimal at every move was ~2% of a revm eth-crash run."""
        assert self.mid is not None
        self._unbuilt = self.mid
        self._built_ns = ts

    def _top_unbuilt(self) -> tuple[Decimal, Decimal, Decimal, Decimal] | None:
        """``top`` of the levels ``_build`` asked for, from their first level alone (None when that is
        not all it takes: a level size that is not positive, a first bid that is not)."""
        s, mid = self.spec, self._unbuilt
        size = s.level_size
        if not size > 0:
            return None
        up, down = self._levels()[0]
        tick, mul, div = s.tick_size, CTX.multiply, CTX.divide
        bid = mul(div(mul(mid, down), tick).to_integral_value(ROUND_FLOOR), tick)
        if not bid > 0:
            return None
        return (bid, size, mul(div(mul(mid, up), tick).to_integral_value(ROUND_CEILING), tick), size)

    def _make_levels(self) -> None:
        s, mid = self.spec, self._unbuilt
        assert mid is not None
        self._unbuilt = None
        tick = s.tick_size
        self._bids, self._asks = bids, asks = [], []
        mul, div = CTX.multiply, CTX.divide  # _to_tick inlined: ~20 levels a side on every mark move
        for up, down in self._levels():
            ask = mul(div(mul(mid, up), tick).to_integral_value(ROUND_CEILING), tick)
            bid = mul(div(mul(mid, down), tick).to_integral_value(ROUND_FLOOR), tick)
            if asks and ask <= asks[-1][0]:
                ask = CTX.add(asks[-1][0], tick)
            if bids and bid >= bids[-1][0]:
                bid = CTX.subtract(bids[-1][0], tick)
            asks.append([ask, s.level_size])
            if bid > 0:
                bids.append([bid, s.level_size])

    def book(self) -> tuple[tuple[tuple[Decimal, Decimal], ...], tuple[tuple[Decimal, Decimal], ...]]:
        """(bids, asks) as (price, size) pairs with depth left, best first."""
        return (tuple((p, q) for p, q in self.bids if q > 0), tuple((p, q) for p, q in self.asks if q > 0))

    def top(self) -> tuple[Decimal, Decimal, Decimal, Decimal] | None:
        """(bid, bid size, ask, ask size) of the best levels with depth left (``book``'s first), or None."""
        if self._unbuilt is not None:
            top = self._top_unbuilt()
            if top is not None:
                return top
        bid = next((lvl for lvl in self.bids if lvl[1] > 0), None)
        ask = next((lvl for lvl in self.asks if lvl[1] > 0), None)
        if bid is None or ask is None:
            return None
        return (bid[0], bid[1], ask[0], ask[1])

    def _quote(self, venue_ts: int) -> None:
        top = self.top()
        if top is None or top == self._last_top:
            return
        self._last_top = top
        bid, bid_size, ask, ask_size = top
        self.latency.send(self.name, "inbound", lambda ts: self.bus.publish(
            BookQuote(ts, venue_ts, self.name, self.spec.instrument, bid, bid_size, ask, ask_size,
                      decimals_of(self.spec.tick_size), decimals_of(self.spec.lot_size))))

    # ------------------------------------------------------------------ orders

    def submit(self, order: Order) -> int:
        """Send an order now; it reaches the venue after the outbound delay. Returns that arrival time."""
        return self.latency.send(self.name, "outbound", self._arrive, order)

    def cancel(self, client_id: str, cancel_id: str = "") -> int:
        """Send a cancel of ``client_id`` now, itself named ``cancel_id`` (cancels do not count towards
        the rate limit). Returns its arrival time at the venue."""
        return self.latency.send(self.name, "outbound", self._arrive_cancel, client_id, cancel_id)

    # ------------------------------------------------------------------ the tape and the taker flow

    def _prints(self, fills: tuple[Fill, ...], side: str, venue_ts: int) -> tuple[TapeTrade, ...]:
        """The tape's trades of one order's fills (``side``: that order's); ``ts`` set on delivery."""
        if not fills:
            return ()
        s, out = self.spec, []
        pd, sd = decimals_of(s.tick_size), decimals_of(s.lot_size)
        other = SELL if side == BUY else BUY
        for f in fills:
            self._trades += 1
            out.append(TapeTrade(0, venue_ts, self.name, s.instrument, f.price, f.qty,
                                 side if f.liquidity == "taker" else other, f"{self.name}-t{self._trades}", pd, sd))
        return tuple(out)

    def _publish_prints(self, ts: int, prints: tuple[TapeTrade, ...]) -> None:
        for t in prints:
            self.bus.publish(replace(t, ts=ts))

    def _taker_flow(self, mean_gap_s: Decimal, mean_size: Decimal):  # type: ignore[no-untyped-def]
        rng, lot = self._flow_rng, self.spec.lot_size
        while True:  # gaps in whole ns of epoch time (no float seconds accumulated)
            gap_ns = int(CTX.multiply(exponential(rng, mean_gap_s), Decimal(NS)).to_integral_value(ROUND_FLOOR))
            yield self.clock.timeout_until(self.clock.now_ns + gap_ns)
            side = BUY if rng.random() < 0.5 else SELL
            qty = max(lot, CTX.multiply(CTX.divide(exponential(rng, mean_size), lot).to_integral_value(ROUND_FLOOR),
                                        lot))
            self._flow_trade(self.clock.now_ns, side, qty)

    def _flow_trade(self, now: int, side: str, qty: Decimal) -> None:
        """One market order of the venue's taker flow: it walks the makers' levels like ours."""
        if self.mid is None:
            return
        fills = self._take(Order("", side, qty))
        if not fills:
            return
        self.flow_trades += 1
        prints = self._prints(fills, side, now)
        self.latency.send(self.name, "inbound", self._publish_prints, prints)
        self._traded(fills, now)
        self._match_resting(now)
        self._quote(now)

    def _traded(self, fills: tuple[Fill, ...], now: int) -> None:
        """The taker flow traded ``fills`` (a perp's last trade price follows them)."""

    def _arrive(self, now: int, order: Order) -> None:
        self._orders += 1
        order_id = f"{self.name}-{self._orders}"
        while self._window and self._window[0] <= now - 1_000_000_000:
            self._window.popleft()
        if len(self._window) >= self.spec.rate_limit:
            self._report(now, order_id, order, REJECTED, (), reason=RATE_LIMITED.format(n=self.spec.rate_limit))
            return
        self._window.append(now)
        problem = self._invalid(order)
        if problem:
            self._report(now, order_id, order, REJECTED, (), reason=f"invalid order: {problem}")
            return
        if order.reduce_only:
            order, problem = self._reduce_only(order)
            if problem:
                self._report(now, order_id, order, REJECTED, (), reason=problem)
                return
        if Decimal(self.rng.random()) < self.spec.reject_probability:
            self._report(now, order_id, order, REJECTED, (), reason=SIMULATED_REJECT)
            return
        if self.mid is None:
            self._report(now, order_id, order, REJECTED, (), reason=NO_MARKET)
            return
        fills = self._take(order)
        left = CTX.subtract(order.qty, dsum(f.qty for f in fills))
        if left and order.kind == LIMIT and order.tif == GTC:
            self._resting[order.client_id] = _Resting(order_id, order, left)
            status = PARTIALLY_FILLED if fills else ACCEPTED
            self._report(now, order_id, order, status, fills, remaining=left)
        elif left:
            reason = "" if fills else ("limit price not reached" if order.kind == LIMIT else "no liquidity")
            self._report(now, order_id, order, PARTIALLY_FILLED if fills else EXPIRED, fills, reason=reason)
        else:
            self._report(now, order_id, order, FILLED, fills)
        if fills:
            self._quote(now)

    def _invalid(self, order: Order) -> str:
        s = self.spec
        if order.side not in (BUY, SELL):
            return f"side must be buy or sell, got {order.side!r}"
        if order.kind not in (MARKET, LIMIT):
            return f"kind must be market or limit, got {order.kind!r}"
        if order.tif not in (IOC, GTC) or (order.kind == MARKET and order.tif != IOC):
            return f"time in force {order.tif!r} not allowed for a {order.kind} order"
        if order.client_id in self._resting:
            return f"duplicate client id {order.client_id!r}"
        if not order.qty > 0 or CTX.remainder(order.qty, s.lot_size):
            return f"size {order.qty} is not a positive multiple of the lot size {s.lot_size}"
        if order.kind == LIMIT:
            p = order.limit_price
            if p is None or not p > 0 or CTX.remainder(p, s.tick_size):
                return f"limit price {p} is not a positive multiple of the tick size {s.tick_size}"
        elif order.limit_price is not None:
            return "a market order has no limit price"
        return ""

    def _reduce_only(self, order: Order) -> tuple[Order, str]:
        """A reduce-only order as the venue takes it, or why it is rejected (a spot book has no position)."""
        return order, "reduce-only orders need a position: not a perp venue"

    def _take(self, order: Order) -> tuple[Fill, ...]:
        levels = self.asks if order.side == BUY else self.bids
        left = order.qty
        fills = []
        for level in levels:
            if not left:
                break
            price, size = level
            if not size:
                continue
            if order.kind == LIMIT:
                assert order.limit_price is not None
                if (order.side == BUY and price > order.limit_price) or (order.side == SELL and price < order.limit_price):
                    break
            take = min(left, size)
            level[1] = CTX.subtract(size, take)
            left = CTX.subtract(left, take)
            fills.append(Fill(price, take, "taker"))
        return tuple(fills)

    def _match_resting(self, now: int) -> None:
        if not self._resting:
            return
        top = self.top()
        if top is None:
            return
        bid, _, ask, _ = top
        for client_id in list(self._resting):
            r = self._resting[client_id]
            limit = r.order.limit_price
            assert limit is not None
            if (r.order.side == BUY and ask <= limit) or (r.order.side == SELL and bid >= limit):
                del self._resting[client_id]
                self._report(now, r.order_id, r.order, FILLED, (Fill(limit, r.remaining, "maker"),))

    def _arrive_cancel(self, now: int, client_id: str, cancel_id: str = "") -> None:
        r = self._resting.pop(client_id, None)
        if r is None:
            unknown = Order(cancel_id or client_id, BUY, Decimal(0))
            self._report(now, "", unknown, REJECTED, (), reason="cancel: unknown or finished order")
            return
        self._report(now, r.order_id, r.order, CANCELLED, (), released=r.remaining, cancel_id=cancel_id)

    # ------------------------------------------------------------------ reports

    def _report(self, venue_ts: int, order_id: str, order: Order, status: str, fills: tuple[Fill, ...], *,
                reason: str = "", remaining: Decimal = Decimal(0), released: Decimal = Decimal(0),
                cancel_id: str = "") -> None:
        s = self.spec
        qty = dsum(f.qty for f in fills)
        notional = dsum(CTX.multiply(f.price, f.qty) for f in fills)
        fee = Decimal(0)
        for f in fills:
            bps = s.taker_fee_bps if f.liquidity == "taker" else s.maker_fee_bps
            fee = CTX.add(fee, CTX.divide(CTX.multiply(CTX.multiply(f.price, f.qty), bps), BPS))
        quote_unit = CTX.scaleb(Decimal(1), -s.quote_decimals)
        fee = fee.quantize(quote_unit, rounding=ROUND_CEILING, context=CTX)
        filled_amount = int(CTX.scaleb(qty, s.base_decimals))
        scaled = CTX.scaleb(notional, s.quote_decimals)
        notional_amount = int(scaled.to_integral_value(ROUND_CEILING if order.side == BUY else ROUND_FLOOR))
        fee_amount = int(CTX.scaleb(fee, s.quote_decimals))
        report = OrderReport(
            ts=0, venue_ts=venue_ts, venue=self.name, instrument=s.instrument, order_id=order_id,
            client_id=order.client_id, side=order.side, status=status, qty=order.qty, fills=fills, filled_qty=qty,
            notional=notional, fee=fee, remaining=remaining, reason=reason, filled_amount=filled_amount,
            notional_amount=notional_amount, fee_amount=fee_amount, released=released,
            released_amount=int(CTX.scaleb(released, s.base_decimals)), cancel_id=cancel_id)
        prints = self._prints(fills, order.side, venue_ts)

        def deliver(ts: int) -> None:
            self.bus.publish(replace(report, ts=ts))
            self._publish_prints(ts, prints)  # the public tape's prints of these fills, in the same delivery

        self.latency.send(self.name, "inbound", deliver)


def _to_tick(price: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return CTX.multiply(CTX.divide(price, tick).to_integral_value(rounding), tick)
