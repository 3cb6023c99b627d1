"""Perp oracle lag: take the liquidity a lagging book leaves stranded after the oracle moves, and
exit on the very update that closes the gap.

Why this shape: after a venue's oracle moves, its market makers requote late; for a moment the
best ask sits below the oracle (or the best bid above it). The edge lives for less than 100 ms, so
a 200 ms exit timer misses most of it. Here every book (``QuoteUpdated``, ``BookDepthUpdated``) and
context (``MarkPriceUpdated``) update of a market where a position is held runs the exit check in
its own handling; a backup timer runs the same check in case no update comes.

Market state is ``domain.perp_book`` (BBO, mark/oracle/mid/funding, trades, ages), positions
``domain.perp_positions`` (from our fills: ``OrderFilled`` through ``on_order``, or the venue's
account stream ``AccountFillReported``; ``FundingPaid``).

**Entry** (only when flat, nothing in flight on that market, ``reentry_s`` after the last exit,
book and context both fresh within ``max_age_ms`` by the core's rule): the best ask below the oracle
by more than ``entry_edge_bps`` (a buy) or the best bid above it by more (a sell), with at least
``min_size`` shown at that price: a ``PerpEntryDecided`` and an IOC intent at that stranded price
(``limit_price``, the book's ``price_decimals``) for ``min(order_size, max_position, size shown)``.
The risk gate decides as for every intent.

**Exit** (a position is held): with the exit price ``p`` = the best bid for a long, the best ask
for a short (the BBO fresh, ``p > 0``), the first of

* ``regressed``: ``p`` is within ``exit_edge_bps`` of the oracle on the entry's side (the book caught
  up; needs a fresh context);
* ``stop``: ``p`` moved ``stop_bps`` against the average entry;
* ``time``: held ``max_hold_s`` or longer;

decides a ``PerpExitDecided`` and a reduce-only IOC flatten of the whole position, limited at ``p``
worsened by ``exit_slippage_bps`` (rounded outward to the price unit) so it crosses the book.
**Never two flattens for one position**: the market is *flattening* from that decision until its
final fill or its rejection (the risk gate's ``IntentRejected`` or the venue's ``OrderFailed``,
correlated by client id in ``on_order``); a position left after that (a partial IOC fill, a
reject) is decided again on the next update or timer check.

**Backup timer**: while anything is held or in flight, a ``TimerRequested`` (key ``backup``) every
``backup_check_ms`` (default 200) of event time runs the exit check on every held position
(``path`` "timer"). It shares the flattening state, so it never duplicates an exit the updates made.
``latency_ns`` of an exit is event time from the update at which it first qualified (for ``time``:
the deadline, if no update qualified earlier) to the decision: 0 when the update itself decided.

Config (``[[strategies]] kind = "perp_oracle_lag"``): ``venues`` (names traded; empty: every perp
market seen), ``entry_edge_bps``, ``exit_edge_bps``, ``stop_bps``, ``max_hold_s``, ``min_size``,
``order_size``, ``max_position`` (base-asset decimal strings), ``base_decimals`` (the gateway's base
units of the size; default: the book's size precision), ``quote_decimals`` (the risk currency's, 6),
``exit_slippage_bps``, ``backup_check_ms``, ``max_age_ms``, ``reentry_s``, ``entries`` (false: exits only).
"""
from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Any, Sequence

from tapedeck.domain import events as ev
from tapedeck.domain.decimals import CTX, seconds_to_ns
from tapedeck.domain.perp_book import PPM, PerpBook, PerpMarket
from tapedeck.domain.perp_positions import BUY, SELL, PerpPosition, PerpPositions, rescale
from tapedeck.domain.risk import Intent
from tapedeck.domain.state import MarketState, Order

UPDATE, TIMER = "update", "timer"
REGRESSED, STOP, TIME = "regressed", "stop", "time"
BACKUP = "backup"
_BOOK = (ev.QuoteUpdated, ev.BookDepthUpdated, ev.MarkPriceUpdated)


def _number(value: Any, what: str, unit: str) -> Decimal:
    """A config number >= 0, parsed exactly from its text, or ValueError naming it."""
    try:
        d = CTX.create_decimal(str(value))
    except ArithmeticError:
        d = Decimal("NaN")
    if isinstance(value, bool) or not d.is_finite() or d < 0:
        raise ValueError(f"{what} must be {unit} >= 0, got {value!r}")
    return d


def _scaled(value: Any, what: str, unit: str, factor: int) -> int:
    d = CTX.multiply(_number(value, what, unit), Decimal(factor))
    return int(d.to_integral_value(ROUND_FLOOR, context=CTX))


def _ppm_of_bps(value: Any, what: str) -> int:
    return _scaled(value, what, "a number of bps", 100)


def _ms_to_ns(value: Any, what: str) -> int:
    return _scaled(value, what, "a number of milliseconds", 1_000_000)


def _size(value: Any, what: str) -> Decimal:
    return _number(value, what, "a size (a decimal string of the base asset)")


class _Market:
    """What the strategy keeps per market beside the book and the position."""

    __slots__ = ("book", "key", "entry_cid", "exit_cid", "last_exit_ts", "q_ts", "q_seq", "entry_px", "base_dp",
                 "sizes")

    def __init__(self, book: PerpMarket) -> None:
        self.book = book
        self.key = (book.venue, book.instrument)
        self.entry_cid = ""  # entry in flight
        self.exit_cid = ""  # flattening: a flatten in flight
        self.last_exit_ts = -(1 << 62)
        self.q_ts = -1  # when the current exit first qualified (-1: not qualified)
        self.q_seq = 0
        self.entry_px = 0  # the position's average entry at the book's price precision
        self.base_dp = -1  # base units the gateway counts sizes in
        self.sizes: tuple[int, int, int, int] = (-1, 0, 0, 0)  # (size_decimals, min, order, max) at the book's


class PerpOracleLag:
    handles = (ev.QuoteUpdated, ev.BookDepthUpdated, ev.MarkPriceUpdated, ev.TradePrinted, ev.AccountFillReported,
               ev.FundingPaid)

    def __init__(self, name: str = "perp_oracle_lag", venues: Sequence[str] = (), entry_edge_bps: Any = 50,
                 exit_edge_bps: Any = 5, stop_bps: Any = 100, max_hold_s: Any = 30, min_size: Any = "0.1",
                 order_size: Any = "1", max_position: Any = "1", base_decimals: int | None = None,
                 quote_decimals: int = 6, exit_slippage_bps: Any = 50, backup_check_ms: Any = 200,
                 max_age_ms: Any = 2000, reentry_s: Any = 1, entries: bool = True, **unknown: Any) -> None:
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        self.name = name
        if isinstance(venues, str) or not all(isinstance(v, str) for v in venues):
            raise ValueError(f"venues must be a list of venue names, got {venues!r}")
        self.venues = tuple(venues)
        self.entry_ppm = _ppm_of_bps(entry_edge_bps, "entry_edge_bps")
        self.exit_ppm = _ppm_of_bps(exit_edge_bps, "exit_edge_bps")
        self.stop_ppm = _ppm_of_bps(stop_bps, "stop_bps")
        self.slip_ppm = _ppm_of_bps(exit_slippage_bps, "exit_slippage_bps")
        if self.exit_ppm >= self.entry_ppm:
            raise ValueError(f"exit_edge_bps ({exit_edge_bps}) must be below entry_edge_bps ({entry_edge_bps})")
        if self.slip_ppm >= PPM:
            raise ValueError(f"exit_slippage_bps must be below 10000, got {exit_slippage_bps}")
        self.max_hold_ns = seconds_to_ns(max_hold_s, "max_hold_s")
        self.reentry_ns = seconds_to_ns(reentry_s, "reentry_s")
        self.backup_ns = _ms_to_ns(backup_check_ms, "backup_check_ms")
        self.max_age_ns = _ms_to_ns(max_age_ms, "max_age_ms")
        if self.backup_ns <= 0:
            raise ValueError("backup_check_ms must be > 0")
        self.min_size = _size(min_size, "min_size")
        self.order_size = _size(order_size, "order_size")
        self.max_position = _size(max_position, "max_position")
        if not self.order_size or not self.max_position:
            raise ValueError("order_size and max_position must be > 0")
        if base_decimals is not None and (type(base_decimals) is not int or base_decimals < 0):
            raise ValueError(f"base_decimals must be an integer >= 0, got {base_decimals!r}")
        self.base_decimals = base_decimals
        if type(quote_decimals) is not int or quote_decimals < 0:
            raise ValueError(f"quote_decimals must be an integer >= 0, got {quote_decimals!r}")
        self.entries = bool(entries)
        self.book = PerpBook()
        self.positions = PerpPositions(quote_decimals)
        self.markets: dict[tuple[str, str], _Market] = {}
        self._cids: dict[str, _Market] = {}  # client id in flight -> its market
        self._n = 0
        self._timer_armed = False
        self.counts = {"entries": 0, "exits_update": 0, "exits_timer": 0, "blocked_flattening": 0, "timer_checks": 0}

    # ------------------------------------------------------------------ events

    def on_event(self, e: ev.Event, state: MarketState) -> Sequence[ev.Event | Intent]:
        t = type(e)
        if t is ev.TimerFired:
            return self._on_timer(e, state)  # type: ignore[arg-type]
        if t is ev.AccountFillReported:
            return self._on_account_fill(e, state)  # type: ignore[arg-type]
        if t is ev.FundingPaid:
            self.positions.on_funding(e)  # type: ignore[arg-type]
            return ()
        m = self.book.apply(e)
        if m is None or t is ev.TradePrinted:
            return ()
        if self.venues and m.venue not in self.venues:
            return ()
        mk = self.markets.get((m.venue, m.instrument))
        if mk is None:
            mk = self.markets[(m.venue, m.instrument)] = _Market(m)
        p = self.positions.positions.get(mk.key)
        if p is not None and p.size:
            return self._exit(mk, p, e, state, UPDATE)
        if self.entries and not mk.entry_cid and not mk.exit_cid:
            return self._entry(mk, e, state)
        return ()

    def _on_timer(self, e: ev.TimerFired, state: MarketState) -> list[ev.Event | Intent]:
        if e.key != BACKUP:
            return []
        self._timer_armed = False
        self.counts["timer_checks"] += 1
        out: list[ev.Event | Intent] = []
        positions = self.positions.positions
        for key, mk in self.markets.items():
            p = positions.get(key)
            if p is not None and p.size:
                out.extend(self._exit(mk, p, e, state, TIMER))
        self._arm(e, out)
        return out

    def _on_account_fill(self, e: ev.AccountFillReported, state: MarketState) -> list[ev.Event | Intent]:
        p = self.positions.on_account_fill(e)
        out: list[ev.Event | Intent] = []
        if p is not None:
            mk = self.markets.get((e.venue, e.instrument))
            if mk is not None:
                self._filled(mk, p, e.ts)
            self._arm(e, out)
        return out

    # ------------------------------------------------------------------ verdicts and fills

    def on_order(self, e: ev.Event, order: Order, state: MarketState) -> Sequence[ev.Event | Intent]:
        mk = self._cids.get(order.client_id)
        if mk is None:
            return ()
        t = type(e)
        out: list[ev.Event | Intent] = []
        if t is ev.OrderFilled:
            p = self.positions.on_order_fill(order.venue, order.instrument, order.side, e,  # type: ignore[arg-type]
                                             mk.base_dp)
            if e.final:  # type: ignore[attr-defined]
                self._done(mk, order.client_id)
            if p is not None:
                self._filled(mk, p, e.ts)
            self._arm(e, out)
        elif t is ev.IntentRejected or t is ev.OrderFailed:
            self._done(mk, order.client_id)
            self._arm(e, out)
        return out

    def _done(self, mk: _Market, cid: str) -> None:
        del self._cids[cid]
        if mk.entry_cid == cid:
            mk.entry_cid = ""
        elif mk.exit_cid == cid:
            mk.exit_cid = ""

    def _filled(self, mk: _Market, p: PerpPosition, ts: int) -> None:
        if p.size:
            mk.entry_px = p.entry_price(mk.book.price_decimals)
        else:
            mk.entry_px, mk.q_ts, mk.last_exit_ts = 0, -1, ts

    def _arm(self, e: ev.Event, out: list[ev.Event | Intent]) -> None:
        """Ask for the next backup check while anything is held or in flight (one timer at a time)."""
        if self._timer_armed:
            return
        if not self._cids and not any(p.size for p in self.positions.positions.values()):
            return
        self._timer_armed = True
        out.append(ev.TimerRequested(ts=e.ts, source="engine", cause=e.seq, strategy=self.name, key=BACKUP,
                                     at_ts=e.ts + self.backup_ns))

    # ------------------------------------------------------------------ deciding

    def _exit(self, mk: _Market, p: PerpPosition, e: ev.Event, state: MarketState, path: str
              ) -> Sequence[ev.Event | Intent]:
        m = mk.book
        now = e.ts
        if not m.bbo_fresh(now, self.max_age_ns, state.stale):
            return ()
        long = p.size > 0
        price = m.bid if long else m.ask
        if price <= 0:
            return ()
        remaining = 0
        reason = ""
        if m.oracle > 0 and m.ctx_fresh(now, self.max_age_ns, state.stale):
            dev = m.deviation_ppm(price)
            remaining = -dev if long else dev
            if remaining <= self.exit_ppm:
                reason = REGRESSED
        if not reason and mk.entry_px:
            move = m.move_ppm(price, mk.entry_px)
            if (-move if long else move) >= self.stop_ppm:
                reason = STOP
        deadline = p.opened_ts + self.max_hold_ns
        if not reason and now >= deadline:
            reason = TIME
        if not reason:
            mk.q_ts = -1
            return ()
        if mk.q_ts < 0:
            mk.q_ts, mk.q_seq = (deadline if reason == TIME else now), e.seq
        if mk.exit_cid:
            self.counts["blocked_flattening"] += 1
            return ()
        self._n += 1
        cid = f"{self.name}-x{self._n}"
        mk.exit_cid = cid
        self._cids[cid] = mk
        self.counts["exits_update" if path == UPDATE else "exits_timer"] += 1
        qty = -p.size if p.size < 0 else p.size
        side = SELL if long else BUY
        pd = m.price_decimals
        if long:
            limit = price * (PPM - self.slip_ppm) // PPM
        else:
            limit = -(-price * (PPM + self.slip_ppm) // PPM)
        notional = rescale(qty * price, pd + p.size_decimals, self.positions.quote_decimals)
        return (
            ev.PerpExitDecided(ts=now, source="engine", cause=e.seq, strategy=self.name, venue=m.venue,
                               instrument=m.instrument, side=side, position=p.size, size_decimals=p.size_decimals,
                               limit_price=limit, price_decimals=pd, entry_price=mk.entry_px, path=path, reason=reason,
                               deviation_ppm=remaining, latency_ns=now - mk.q_ts, qualified_cause=mk.q_seq,
                               held_ns=now - p.opened_ts, client_id=cid),
            Intent(self.name, m.venue, m.instrument, side, qty, notional, client_id=cid, limit_price=limit,
                   price_decimals=pd, tif="ioc", reduce_only=True),
        )

    def _entry(self, mk: _Market, e: ev.Event, state: MarketState) -> Sequence[ev.Event | Intent]:
        m = mk.book
        now = e.ts
        if now - mk.last_exit_ts < self.reentry_ns or m.oracle <= 0:
            return ()
        stale = state.stale
        if not m.bbo_fresh(now, self.max_age_ns, stale) or not m.ctx_fresh(now, self.max_age_ns, stale):
            return ()
        sd = m.size_decimals
        if mk.sizes[0] != sd:
            mk.sizes = (sd, *(int(x.scaleb(sd, context=CTX).to_integral_value(ROUND_FLOOR, context=CTX))
                              for x in (self.min_size, self.order_size, self.max_position)))
        _, min_size, order_size, max_position = mk.sizes
        side = ""
        if m.ask > 0 and m.ask_size >= min_size and m.ask_size > 0:
            dev = -m.deviation_ppm(m.ask)
            if dev > self.entry_ppm:
                side, price, shown = BUY, m.ask, m.ask_size
        if not side and m.bid > 0 and m.bid_size >= min_size and m.bid_size > 0:
            dev = m.deviation_ppm(m.bid)
            if dev > self.entry_ppm:
                side, price, shown = SELL, m.bid, m.bid_size
        if not side:
            return ()
        size = min(order_size, max_position, shown)
        base_dp = self.base_decimals if self.base_decimals is not None else sd
        amount = rescale(size, sd, base_dp)  # the gateway's base units
        if amount <= 0:
            return ()
        mk.base_dp = base_dp
        pd = m.price_decimals
        self._n += 1
        cid = f"{self.name}-e{self._n}"
        mk.entry_cid = cid
        self._cids[cid] = mk
        self.counts["entries"] += 1
        notional = rescale(size * price, pd + sd, self.positions.quote_decimals)
        return (
            ev.PerpEntryDecided(ts=now, source="engine", cause=e.seq, strategy=self.name, venue=m.venue,
                                instrument=m.instrument, side=side, size=amount, size_decimals=base_dp,
                                limit_price=price, price_decimals=pd, oracle=m.oracle, oracle_decimals=m.ctx_decimals,
                                deviation_ppm=dev,
                                available=rescale(shown, sd, base_dp), client_id=cid),
            Intent(self.name, m.venue, m.instrument, side, amount, notional, client_id=cid, limit_price=price,
                   price_decimals=pd, tif="ioc"),
        )
