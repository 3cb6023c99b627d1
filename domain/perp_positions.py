"""Perp positions folded from fills: signed size, average entry, realised and unrealised PnL, fees
and funding, all integers.

Units of a ``PerpPosition``: ``size`` counts ``10**-size_decimals`` of the base asset (+ long,
- short); ``cost`` (the open size's entry notional, signed like the size), ``realized``, ``fees``
(paid: positive) and ``funding`` (received: positive) count ``10**-quote_decimals`` of the quote
currency (USDC, 6 dp by default).

**Fills.** A fill that opens or adds to the position adds its notional to ``cost``; one that reduces
it takes the closed share of ``cost`` out (``cost * closed // |size|``; what floor division leaves
stays in ``cost`` and leaves with the last close, so a round trip realises exactly what it paid and
received) and realises ``notional - removed cost`` for a long, ``removed cost - notional`` for a short.
A fill through zero closes the old side and opens the rest at the fill's own price. The average
entry is ``|cost| / |size|`` at a price precision; unrealised PnL at a mark is
``size x mark - cost``; ``net(mark)`` = realised + unrealised - fees + funding.

**Where fills come from, and never twice.**

* ``OrderFilled`` of our own intents (the sim's and the paper gateway's reports; side from the intent,
  ``amount`` base units, ``notional`` and ``fee`` quote units).
* ``AccountFillReported``: the venue's account stream (Hyperliquid ``userFills``), ``price x size``
  the notional. Once a venue has reported an account fill it is the **only** source for that venue's
  positions: its ``OrderFilled`` reports are then ignored here (a live gateway's fill and the
  account stream's report of the same trade would otherwise count twice), and a ``trade_id`` already
  applied is never applied again (a reconnect's snapshot repeats recent fills).
* The stream's first message (``snapshot=True``) is history: each snapshot fill sets the position to
  its ``start_position`` then applies its own size, so the position is the **last snapshot fill's
  ``start_position`` +/- its size**; a ``start_position`` that differs from what is held replaces it,
  valued at that fill's price (the entry of the older part is not in the stream). Snapshot fills book
  no realised PnL or fees into this run: they happened before it.
* ``FundingPaid`` adds its ``amount`` (signed: + received) to ``funding``, once per payment: a
  payment is known by (venue, instrument, ``venue_ts``). The stream's first message
  (``snapshot=True``, Hyperliquid ``userFundings``) is history: its payments are remembered, never
  added (they were paid before this run), and the newest of them is the venue's history horizon. A
  later snapshot (a reconnect's) adds only the payments after that horizon not already applied (the
  ones paid while the stream was down); a payment applied once is never applied again. A payment
  without a venue time (``venue_ts`` 0) cannot be matched: a snapshot one is not added, a live one is.

Amounts at other precisions (a fill's ``fee_decimals``, a payment's ``amount_decimals``, a
notional ``price x size`` finer than ``quote_decimals``) are brought to ``quote_decimals`` by floor
division (Hyperliquid's perp prices have at most ``6 - szDecimals`` places, so ``price x size`` is
exact at USDC's 6 dp).
"""
from __future__ import annotations

from tapedeck.domain import events as ev

BUY, SELL = "buy", "sell"


def rescale(value: int, frm: int, to: int) -> int:
    """``value`` counted in ``10**-frm`` as a count of ``10**-to`` (floor when coarser)."""
    if to >= frm:
        return value * 10 ** (to - frm)
    return value // 10 ** (frm - to)


class PerpPosition:
    __slots__ = ("venue", "instrument", "size_decimals", "quote_decimals", "size", "cost", "realized", "fees",
                 "funding", "fills", "opened_ts", "last_fill_ts")

    def __init__(self, venue: str, instrument: str, size_decimals: int, quote_decimals: int = 6) -> None:
        self.venue, self.instrument = venue, instrument
        self.size_decimals, self.quote_decimals = size_decimals, quote_decimals
        self.size = 0
        self.cost = 0
        self.realized = 0
        self.fees = 0
        self.funding = 0
        self.fills = 0
        self.opened_ts = -1  # event time the position last left flat (-1: flat)
        self.last_fill_ts = -1

    def fill(self, side: str, qty: int, notional: int, fee: int, ts: int, *, book: bool = True) -> None:
        """Apply a fill of ``qty`` base units for ``notional`` quote units (both >= 0), paying ``fee``."""
        if side not in (BUY, SELL):
            raise ValueError(f"a fill's side must be buy or sell, got {side!r}")
        if qty < 0 or notional < 0:
            raise ValueError(f"a fill's size and notional must be >= 0, got {qty} and {notional}")
        self.fills += 1
        self.last_fill_ts = ts
        if book:
            self.fees += fee
        if not qty:
            return
        size = self.size
        signed = qty if side == BUY else -qty
        if not size or (size > 0) == (signed > 0):  # opening or adding
            if not size:
                self.opened_ts = ts
            self.size = size + signed
            self.cost += notional if signed > 0 else -notional
            return
        held = abs(size)
        closed = min(qty, held)
        closed_notional = notional if closed == qty else notional * closed // qty
        removed = self.cost if closed == held else self.cost * closed // held  # signed like size
        if book:
            self.realized += (closed_notional - removed) if size > 0 else (-removed - closed_notional)
        self.cost -= removed
        self.size = size + signed
        if not self.size:
            self.cost, self.opened_ts = 0, -1
        elif (self.size > 0) != (size > 0):  # through zero: the rest opens at this fill's price
            rest = notional - closed_notional
            self.cost = rest if self.size > 0 else -rest
            self.opened_ts = ts

    def entry_price(self, price_decimals: int) -> int:
        """Average entry of the open size, ``10**-price_decimals`` (0 when flat), toward zero."""
        if not self.size:
            return 0
        scaled = rescale(abs(self.cost), self.quote_decimals, price_decimals + self.size_decimals)
        return scaled // abs(self.size)

    def value(self, price: int, price_decimals: int) -> int:
        """``size x price`` in quote units (signed like the size)."""
        return rescale(self.size * price, price_decimals + self.size_decimals, self.quote_decimals)

    def unrealized(self, mark: int, price_decimals: int) -> int:
        return self.value(mark, price_decimals) - self.cost if self.size else 0

    def net(self, mark: int, price_decimals: int) -> int:
        return self.realized + self.unrealized(mark, price_decimals) - self.fees + self.funding


class PerpPositions:
    """Every position by (venue, instrument), in order of first fill; see the module docstring."""

    __slots__ = ("positions", "account_venues", "trade_ids", "quote_decimals", "funding_seen", "funding_horizon")

    def __init__(self, quote_decimals: int = 6) -> None:
        self.positions: dict[tuple[str, str], PerpPosition] = {}
        self.account_venues: dict[str, None] = {}  # venues whose account stream is the source of truth
        self.trade_ids: dict[tuple[str, str], None] = {}  # (venue, trade id) applied from the stream
        self.quote_decimals = quote_decimals
        self.funding_seen: dict[tuple[str, str, int], None] = {}  # (venue, instrument, venue_ts) known
        self.funding_horizon: dict[str, tuple[int, int]] = {}  # venue -> (ts, newest venue_ts) of its first snapshot

    def get(self, venue: str, instrument: str) -> PerpPosition | None:
        return self.positions.get((venue, instrument))

    def position(self, venue: str, instrument: str, size_decimals: int) -> PerpPosition:
        key = (venue, instrument)
        p = self.positions.get(key)
        if p is None:
            p = self.positions[key] = PerpPosition(venue, instrument, size_decimals, self.quote_decimals)
        elif p.size_decimals != size_decimals:
            if p.size or p.fills:
                raise ValueError(f"{venue} {instrument}: size precision changed from {p.size_decimals} to "
                                 f"{size_decimals} with a position held")
            p.size_decimals = size_decimals
        return p

    def on_order_fill(self, venue: str, instrument: str, side: str, e: ev.OrderFilled,
                      size_decimals: int) -> PerpPosition | None:
        """A gateway's fill of our intent (``side`` from the intent); None when the venue's account
        stream is the source instead."""
        if venue in self.account_venues:
            return None
        p = self.position(venue, instrument, size_decimals)
        p.fill(side, e.amount, e.notional, e.fee, e.ts)
        return p

    def on_account_fill(self, e: ev.AccountFillReported) -> PerpPosition | None:
        """A fill from the venue's account stream; None if its trade was applied already."""
        self.account_venues[e.venue] = None
        if e.trade_id:
            key = (e.venue, e.trade_id)
            if key in self.trade_ids:
                return None
            self.trade_ids[key] = None
        p = self.position(e.venue, e.instrument, e.size_decimals)
        qd = self.quote_decimals
        notional = rescale(e.price * e.size, e.price_decimals + e.size_decimals, qd)
        fee = rescale(e.fee, e.fee_decimals, qd)
        if e.snapshot:
            if p.size != e.start_position:
                p.size = e.start_position
                p.cost = rescale(e.start_position * e.price, e.price_decimals + e.size_decimals, qd)
                p.opened_ts = e.ts if e.start_position else -1
            p.fill(e.side, e.size, notional, fee, e.ts, book=False)
        else:
            p.fill(e.side, e.size, notional, fee, e.ts)
        return p

    def on_funding(self, e: ev.FundingPaid) -> PerpPosition:
        """Add a funding payment to its position unless it is history or was applied (module docstring)."""
        p = self.position(e.venue, e.instrument, e.size_decimals)
        if self.funding_applies(e):
            p.funding += rescale(e.amount, e.amount_decimals, self.quote_decimals)
        return p

    def funding_applies(self, e: ev.FundingPaid) -> bool:
        """Whether ``e`` is a payment to add now (and remember it); False for history or a repeat.
        The first snapshot is every snapshot payment of the venue recorded at the event time of its
        first one (one stream message is recorded at one ``ts``)."""
        key = (e.venue, e.instrument, e.venue_ts)
        if e.venue_ts and key in self.funding_seen:
            return False
        if e.venue_ts:
            self.funding_seen[key] = None
        if not e.snapshot:
            return True
        first = self.funding_horizon.get(e.venue)
        if first is None or first[0] == e.ts:  # (a payment of) the stream's first message: history
            self.funding_horizon[e.venue] = (e.ts, max(e.venue_ts, first[1] if first else 0))
            return False
        return e.venue_ts > first[1]  # a reconnect's snapshot: only what was paid after the history
