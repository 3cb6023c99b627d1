"""A mock perp venue: a ``MockCex`` book whose market makers follow the venue's oracle late, a
mark price, and the account's position.

Orders, latency, rate limit, validation, seeded rejects, partial fills, GTC orders, cancels,
fees and ``OrderReport``/``BookQuote`` are exactly ``MockCex``'s (this class only changes where
the book is centred, watches the fills and refuses the prices Hyperliquid's rule refuses). What is perp-specific:

**Oracle (the index).** The venue's oracle is the scenario's oracle named by the venue's
``oracle`` field (its ``OracleRound`` messages on the bus, e.g. ``hl-eth-oracle``, off-chain);
``oracle_price`` is the latest round's ``answer``. A venue with no oracle uses its own mark
(the ``PriceTick`` of its name) as its index.

**Makers that lag the oracle.** The book's makers quote the venue's mark (``M``, the reference
and the moves that target the venue, seen at once) plus the oracle's premium over it, which they
see ``maker_lag`` seconds late and follow at the speed ``maker_follow``:

* each round ``r`` has a premium ``b_r = answer_r / M(ts_r) - 1`` (``M`` as of the round);
* at a tick of the venue's mark at time ``t``, the makers' *seen* premium ``b*`` is that of the
  latest round with ``ts_r <= t - maker_lag`` (0 before any);
* their premium ``B`` closes the share ``a = 1 - (1 - maker_follow) ** dt`` of the gap:
  ``B += a * (b* - B)``, ``dt`` = seconds since the previous tick (``maker_follow = 1``: at once;
  ``0.5``: half the gap per second); the first tick takes ``B = b*``;
* the book (``MockCex``'s levels) is centred on ``M * (1 + B)``, rounded to the quote currency's
  unit (exactly ``M`` while ``B = 0``), and rebuilt when that centre moves or after ``replenish``.

Makers requote on the ticks of the venue's mark only (every ``reference.tick`` s), so a round is
seen at the first tick at or after ``ts_r + maker_lag`` that comes after the round itself. Nothing
here is random: the venue's generator is drawn by ``MockCex`` for its seeded rejects only.

**Mark price** (Hyperliquid's rule, with the oracle standing in for the other venues' perp mids):
``mark = median(oracle + E, median(best bid, best ask, last trade), oracle)``, rounded (half even)
to ``tick_size``, where ``E`` is an exponential average of ``book mid - oracle`` (``book mid`` =
``(best bid + best ask) / 2`` with the depth left) with time constant ``mark_ema`` seconds: at each
tick of the venue's mark ``E += (1 - exp(-dt / mark_ema)) * (mid - oracle - E)`` (``mark_ema = 0``:
``E = mid - oracle``; the first value is ``mid - oracle``). ``last trade`` is the venue's last fill
price (the book mid before any). The mark is recomputed on each tick of the venue's mark, each
oracle round and each fill; whenever ``(mark, oracle)`` changes it is published as a ``PerpMark``
after the venue's inbound delay (like ``BookQuote``; Hyperliquid's ``activeAssetCtx``).

**Position** (the one account trading on the venue: the bot's). Every fill (taker, or a resting
order's maker fill), at the venue's time, moves the signed ``size``; fills that add to the
position average ``entry_price`` (size-weighted), fills that reduce it realize
``closed * (price - entry_price)`` (times -1 for a short) into ``realized_pnl``, and a fill
through zero opens the rest at its price. ``fees`` add up what the reports charge; ``funding``
what funding paid it (+ received).

**Reduce-only orders** (Hyperliquid's order option): one on the side that would grow the position,
or with no position, is rejected with Hyperliquid's own error text ("Reduce only order would
increase position."); one larger than the position is **trimmed** to it (it closes the position
and never flips it). The check is made on arrival, against the position then (a resting GTC
reduce-only order is not re-trimmed by later fills).

**Price rule** (Hyperliquid's, ``domain.hl_price``): a limit order's price must have at most 5
significant figures and at most ``6 - szDecimals`` decimals (``szDecimals`` = the places of the
venue's ``lot_size``), integers always passing. One that breaks it is rejected on arrival, after the
rate limit and the tick/lot checks, with Hyperliquid's own error text (``HL_BAD_PRICE``, "Price must
be divisible by tick size.") followed by the rule it breaks; nothing of it trades or rests.

**Funding** (Hyperliquid's rule, docs ``trading/funding.md`` and ``trading/contract-specifications.md``
of hyperliquid-docs, mirrored in dzmbs/hyperliquid-docs @14ba3d4; PROTOCOLS.md has no funding
section): every ``FUNDING_SAMPLE_S`` (5 s, on epoch multiples, while the venue's mark or oracle
is moving: a world that stops ticking comes to rest) the venue samples the premium
``premium = (max(impact_bid - oracle, 0) - max(oracle - impact_ask, 0)) / oracle``, where
``impact_bid``/``impact_ask`` are the average prices of selling/buying ``IMPACT_NOTIONAL`` (20,000
USDC, ETH's) into the book as it stands (the depth shown, if less); at the first sample at or
after each multiple of ``funding_interval`` seconds of epoch time (default 3600: on the hour) it
pays, before that sample, with ``P`` = the mean of the interval's samples:
``F8 = P + clamp(INTEREST_8H - P, -0.0005, 0.0005)`` (``INTEREST_8H`` = 0.01% per 8 h), the hourly
rate ``F8 / 8`` capped at +/-4%, times ``funding_interval / 3600``, rounded half-even to
``RATE_DECIMALS`` places; the position pays ``size x oracle x rate`` (longs pay a positive rate),
rounded down to the quote unit (the venue's favour), published as a ``FundingPayment`` after the
inbound delay when a position is held. The running rate of the current interval rides on each
``PerpMark`` (``funding``; Hyperliquid's ``activeAssetCtx`` funding is the same predicted rate).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any

import simpy

from tapedeck.domain.decimals import decimals_of
from tapedeck.domain.hl_price import decimal_price_problem
from tapedeck.sim.kernel import CTX, NS, Bus, LatencyModel, SimClock, dsum, to_ns
from tapedeck.sim.processes import OracleRound, PriceTick
from tapedeck.sim.scenario import Venue
from tapedeck.sim.venues.cex import BPS, BUY, LIMIT, SELL, Fill, MockCex, Order, _to_tick

ZERO = Decimal(0)
ONE = Decimal(1)
FUNDING_SAMPLE_S = 5
IMPACT_NOTIONAL = Decimal(20_000)
INTEREST_8H = Decimal("0.0001")
PREMIUM_CLAMP = Decimal("0.0005")
HOURLY_CAP = Decimal("0.04")
RATE_DECIMALS = 10
REDUCE_ONLY_INCREASES = "Reduce only order would increase position."
HL_BAD_PRICE = "Price must be divisible by tick size."  # Hyperliquid's error for a price its rule refuses


@dataclass(frozen=True)
class PerpMark:
    """The perp's mark and index as the bot sees them (``ts``: received; ``venue_ts``: at the venue).

    Prices are ``Decimal``, quote currency per unit of the base asset: ``mark`` rounded to the
    venue's ``tick_size``, ``oracle`` the index as its round gave it."""

    ts: int  # epoch ns
    venue_ts: int  # epoch ns
    venue: str
    instrument: str
    mark: Decimal
    oracle: Decimal
    price_decimals: int  # both prices are exact at this many places (the tick's and the oracle's)
    funding: Decimal = ZERO  # the current interval's hourly rate so far, exact at RATE_DECIMALS places


@dataclass(frozen=True)
class FundingPayment:
    """Funding paid on the bot's position (``ts``: received; ``venue_ts``: at the venue): ``amount``
    quote currency (+ received), ``size`` the signed position charged, ``rate`` the interval's rate
    (``RATE_DECIMALS`` places), ``oracle`` the price it was charged at."""

    ts: int
    venue_ts: int
    venue: str
    instrument: str
    amount: Decimal
    size: Decimal
    rate: Decimal
    oracle: Decimal


@dataclass(frozen=True)
class Position:
    """The account's perp position: ``size`` in base units of the asset (+ long, - short)."""

    size: Decimal = ZERO
    entry_price: Decimal = ZERO  # average entry of the open size; 0 when flat
    realized_pnl: Decimal = ZERO  # quote currency, from reducing fills, before fees
    fees: Decimal = ZERO  # quote currency, as the reports charged them
    funding: Decimal = ZERO  # quote currency, what funding paid the position (+ received)

    def unrealized_pnl(self, price: Decimal) -> Decimal:
        return CTX.multiply(self.size, CTX.subtract(price, self.entry_price))

    def fill(self, side: str, qty: Decimal, price: Decimal) -> "Position":
        """The position after a fill of ``qty`` at ``price`` (fees apart)."""
        signed = qty if side == BUY else CTX.minus(qty)
        size, entry, realized = self.size, self.entry_price, self.realized_pnl
        if not size or (size > 0) == (signed > 0):  # opening or adding
            held = CTX.abs(size)
            cost = CTX.add(CTX.multiply(held, entry), CTX.multiply(qty, price))
            return replace(self, size=CTX.add(size, signed), entry_price=CTX.divide(cost, CTX.add(held, qty)))
        closed = min(qty, CTX.abs(size))
        gain = CTX.multiply(closed, CTX.subtract(price, entry))
        realized = CTX.add(realized, gain if size > 0 else CTX.minus(gain))
        new_size = CTX.add(size, signed)
        if not new_size:
            entry = ZERO
        elif (new_size > 0) != (size > 0):  # through zero: the rest opens at this price
            entry = price
        return replace(self, size=new_size, entry_price=entry, realized_pnl=realized)


class MockPerp(MockCex):
    """A perp venue; see the module's docstring for its rules. ``oracle`` overrides ``spec.oracle``."""

    def __init__(self, env: simpy.Environment, clock: SimClock, bus: Bus, spec: Venue, rng: Any,
                 latency: LatencyModel, *, mark: str | None = None, oracle: str | None = None):
        super().__init__(env, clock, bus, spec, rng, latency, mark=mark)
        self.oracle = oracle if oracle is not None else spec.oracle
        self.reference: Decimal | None = None  # the venue's mark M, as of its last tick
        self.oracle_price: Decimal | None = None
        self.oracle_decimals = 0  # places of the oracle's answers (its feed's decimals)
        self.maker_premium = ZERO  # B
        self.seen_premium = ZERO  # b*
        self.mark_basis: Decimal | None = None  # E
        self.mark_price: Decimal | None = None
        self.last_trade: Decimal | None = None
        self.position = Position()
        self._lag_ns = to_ns(spec.maker_lag)
        self._rounds: deque[tuple[int, Decimal]] = deque()  # (ts, premium) not yet seen by the makers
        self._last_tick_ns: int | None = None
        self._published: tuple[Decimal, Decimal] | None = None
        self._premiums: list[Decimal] = []  # this funding interval's premium samples
        self.funding_rate = ZERO  # the current interval's rate so far (hourly)
        self._interval_ns = to_ns(spec.funding_interval)
        if self.oracle is not None:
            bus.subscribe(self.on_oracle, OracleRound, where=lambda m: m.oracle == self.oracle)
        self._next_payment = _next_multiple(clock.now_ns, self._interval_ns)
        self._sampling = False  # a sample is scheduled

    # ------------------------------------------------------------------ oracle and makers

    def on_oracle(self, r: OracleRound) -> None:
        self._wake()
        self.oracle_price = r.answer
        self.oracle_decimals = r.decimals
        if self.reference is not None:
            self._rounds.append((r.ts, CTX.subtract(CTX.divide(r.answer, self.reference), ONE)))
        self._publish_mark(r.ts)

    def on_price(self, tick: PriceTick) -> None:
        self._wake()
        ts = tick.ts
        dt = None if self._last_tick_ns is None else CTX.divide(Decimal(ts - self._last_tick_ns), Decimal(NS))
        self._last_tick_ns = ts
        self.reference = tick.price
        if self.oracle is None:
            self.oracle_price = tick.price
        while self._rounds and self._rounds[0][0] <= ts - self._lag_ns:
            self.seen_premium = self._rounds.popleft()[1]
        share = ONE if dt is None else _follow_share(self.spec.maker_follow, dt)
        premium = CTX.add(self.maker_premium, CTX.multiply(share, CTX.subtract(self.seen_premium, self.maker_premium)))
        self.maker_premium = premium if premium else ZERO  # no ever-growing exponent on a zero
        super().on_price(replace(tick, price=self.centre()))
        self._average_basis(dt)
        self._publish_mark(ts)

    def centre(self) -> Decimal:
        """Where the makers centre the book: ``M * (1 + B)`` (``M`` itself while ``B = 0``)."""
        assert self.reference is not None
        if not self.maker_premium:
            return self.reference
        unit = CTX.scaleb(ONE, -self.spec.quote_decimals)
        return CTX.multiply(self.reference, CTX.add(ONE, self.maker_premium)).quantize(
            unit, rounding=ROUND_HALF_EVEN, context=CTX)

    # ------------------------------------------------------------------ mark

    def book_mid(self) -> Decimal | None:
        top = self.top()
        if top is None:
            return None
        return CTX.divide(CTX.add(top[0], top[2]), Decimal(2))

    def _average_basis(self, dt: Decimal | None) -> None:
        mid = self.book_mid()
        if self.oracle_price is None or mid is None:
            return
        x = CTX.subtract(mid, self.oracle_price)
        if self.mark_basis is None or dt is None or not self.spec.mark_ema:
            self.mark_basis = x
            return
        tau = Decimal(repr(self.spec.mark_ema))
        share = CTX.subtract(ONE, CTX.exp(CTX.minus(CTX.divide(dt, tau))))
        self.mark_basis = CTX.add(self.mark_basis, CTX.multiply(share, CTX.subtract(x, self.mark_basis)))

    def compute_mark(self) -> Decimal | None:
        """The mark by the rule above, or None before there is a book and an oracle price."""
        top, oracle = self.top(), self.oracle_price
        if top is None or oracle is None:
            return None
        bid, _, ask, _ = top
        mid = CTX.divide(CTX.add(bid, ask), Decimal(2))
        basis = self.mark_basis if self.mark_basis is not None else CTX.subtract(mid, oracle)
        book = _median(bid, ask, self.last_trade if self.last_trade is not None else mid)
        return _to_tick(_median(CTX.add(oracle, basis), book, oracle), self.spec.tick_size, ROUND_HALF_EVEN)

    def _publish_mark(self, venue_ts: int) -> None:
        mark = self.compute_mark()
        if mark is None:
            return
        self.mark_price = mark
        oracle = self.oracle_price
        assert oracle is not None
        if (mark, oracle) == self._published:
            return
        self._published = (mark, oracle)
        funding = self.funding_rate
        self.latency.send(self.name, "inbound", lambda ts: self.bus.publish(
            PerpMark(ts, venue_ts, self.name, self.spec.instrument, mark, oracle,
                     max(decimals_of(self.spec.tick_size), self.oracle_decimals, decimals_of(oracle)), funding)))

    # ------------------------------------------------------------------ funding

    def impact_prices(self) -> tuple[Decimal, Decimal] | None:
        """Average prices of selling and of buying ``IMPACT_NOTIONAL`` into the book (None: a side is empty)."""
        bids, asks = self.book()
        if not bids or not asks:
            return None
        return _impact(bids), _impact(asks)

    def premium(self) -> Decimal | None:
        """This moment's premium sample, or None without a book or an oracle price."""
        impact, oracle = self.impact_prices(), self.oracle_price
        if impact is None or not oracle:
            return None
        bid, ask = impact
        diff = CTX.subtract(max(CTX.subtract(bid, oracle), ZERO), max(CTX.subtract(oracle, ask), ZERO))
        return CTX.divide(diff, oracle)

    def rate(self, premiums: list[Decimal]) -> Decimal:
        """The funding rate of one interval from its premium samples (see the module docstring)."""
        if not premiums:
            return ZERO
        p = CTX.divide(dsum(premiums), Decimal(len(premiums)))
        f8 = CTX.add(p, min(max(CTX.subtract(INTEREST_8H, p), -PREMIUM_CLAMP), PREMIUM_CLAMP))
        hourly = min(max(CTX.divide(f8, Decimal(8)), -HOURLY_CAP), HOURLY_CAP)
        share = CTX.divide(Decimal(self._interval_ns), Decimal(3600 * NS))
        return CTX.multiply(hourly, share).quantize(CTX.scaleb(ONE, -RATE_DECIMALS), rounding=ROUND_HALF_EVEN,
                                                    context=CTX)

    def _wake(self) -> None:
        """Schedule the next premium sample (on the 5 s grid of epoch time) unless one is: samples
        follow the venue's activity, so a world that has stopped ticking comes to rest."""
        if not self._sampling:
            self._sampling = True
            self.clock.call_at(_next_multiple(self.clock.now_ns, FUNDING_SAMPLE_S * NS), self._sample)

    def _sample(self) -> None:
        self._sampling = False
        now = self.clock.now_ns
        if now >= self._next_payment:  # the interval is over: pay on its samples, start the next
            self._pay_funding(now)
            self._next_payment = _next_multiple(now, self._interval_ns)
        premium = self.premium()
        if premium is not None:
            self._premiums.append(premium)
            self.funding_rate = self.rate(self._premiums)

    def _pay_funding(self, now: int) -> None:
        rate, self._premiums, self.funding_rate = self.rate(self._premiums), [], ZERO
        size, oracle = self.position.size, self.oracle_price
        if not size or not rate or not oracle:
            return
        unit = CTX.scaleb(ONE, -self.spec.quote_decimals)
        amount = CTX.minus(CTX.multiply(CTX.multiply(size, oracle), rate)).quantize(unit, rounding=ROUND_FLOOR,
                                                                                   context=CTX)
        self.position = replace(self.position, funding=CTX.add(self.position.funding, amount))
        payment = FundingPayment(0, now, self.name, self.spec.instrument, amount, size, rate, oracle)
        self.latency.send(self.name, "inbound", lambda ts: self.bus.publish(replace(payment, ts=ts)))

    # ------------------------------------------------------------------ price rule

    def _invalid(self, order: Order) -> str:
        problem = super()._invalid(order)
        if problem or order.kind != LIMIT:
            return problem
        rule = decimal_price_problem(order.limit_price, decimals_of(self.spec.lot_size))  # type: ignore[arg-type]
        return f"{HL_BAD_PRICE} ({rule})" if rule else ""

    # ------------------------------------------------------------------ reduce-only

    def _reduce_only(self, order: Order) -> tuple[Order, str]:
        size = self.position.size
        if not size or (size > 0) == (order.side == BUY):
            return order, REDUCE_ONLY_INCREASES
        held = CTX.abs(size)
        return (replace(order, qty=held) if order.qty > held else order), ""

    # ------------------------------------------------------------------ position

    def unrealized_pnl(self) -> Decimal:
        """The position's PnL at the current mark (0 before there is one)."""
        return self.position.unrealized_pnl(self.mark_price) if self.mark_price is not None else ZERO

    def _traded(self, fills: tuple[Fill, ...], now: int) -> None:
        self.last_trade = fills[-1].price
        self._publish_mark(now)

    def _report(self, venue_ts: int, order_id: str, order: Order, status: str, fills: tuple[Fill, ...], *,
                reason: str = "", remaining: Decimal = ZERO, **kw: Any) -> None:
        if fills and order.side in (BUY, SELL):
            position = self.position
            for f in fills:
                position = position.fill(order.side, f.qty, f.price)
            self.position = replace(position, fees=CTX.add(position.fees, self._fee(fills)))
            self.last_trade = fills[-1].price
        super()._report(venue_ts, order_id, order, status, fills, reason=reason, remaining=remaining, **kw)
        if fills:
            self._publish_mark(venue_ts)

    def _fee(self, fills: tuple[Fill, ...]) -> Decimal:
        """The fee of one report's fills, rounded up to the quote unit (as ``OrderReport.fee``)."""
        s = self.spec
        fee = dsum(CTX.divide(CTX.multiply(CTX.multiply(f.price, f.qty),
                                           s.taker_fee_bps if f.liquidity == "taker" else s.maker_fee_bps), BPS)
                   for f in fills)
        return fee.quantize(CTX.scaleb(ONE, -s.quote_decimals), rounding=ROUND_CEILING, context=CTX)


def _follow_share(follow: Decimal, dt: Decimal) -> Decimal:
    """``1 - (1 - follow) ** dt``: the share of the gap closed in ``dt`` seconds."""
    if follow >= ONE:
        return ONE
    if not dt:
        return ZERO
    return CTX.subtract(ONE, CTX.exp(CTX.multiply(dt, CTX.ln(CTX.subtract(ONE, follow)))))


def _next_multiple(now_ns: int, step_ns: int) -> int:
    """The first multiple of ``step_ns`` (epoch time) after ``now_ns``."""
    return (now_ns // step_ns + 1) * step_ns


def _impact(levels: tuple[tuple[Decimal, Decimal], ...]) -> Decimal:
    """The average price of trading ``IMPACT_NOTIONAL`` through ``levels`` (all of them if less)."""
    qty = cost = ZERO
    for price, size in levels:
        value = CTX.multiply(price, size)
        if CTX.add(cost, value) >= IMPACT_NOTIONAL:
            part = CTX.divide(CTX.subtract(IMPACT_NOTIONAL, cost), price)
            return CTX.divide(IMPACT_NOTIONAL, CTX.add(qty, part))
        qty, cost = CTX.add(qty, size), CTX.add(cost, value)
    return CTX.divide(cost, qty)


def _median(a: Decimal, b: Decimal, c: Decimal) -> Decimal:
    return sorted((a, b, c))[1]
