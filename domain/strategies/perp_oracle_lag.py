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
* ``stop``: ``p`` moved ``stop_bps`` or more against the average entry;
* ``time``: held ``max_hold_s`` or longer;

decides a ``PerpExitDecided`` and a reduce-only IOC flatten of the whole position, limited at ``p``
worsened by ``exit_slippage_bps`` (rounded outward to the price unit) so it crosses the book.
**Never two flattens for one position**: the market is *flattening* from that decision until its
final fill or its rejection (the risk gate's ``IntentRejected`` or the venue's ``OrderFailed``,
correlated by client id in ``on_order``); a position left after that (a partial IOC fill, a
reject) is decided again on the next update or timer check. Where the venue's account stream is
the source of positions (``domain.perp_positions``), a flatten's final fill that the stream has not
shown yet keeps the market flattening until the stream's position moves (or ``max_age_ms`` passes
without it), so a lagging stream never causes a second flatten.

**Backup timer**: while anything is held or in flight, a ``TimerRequested`` (key ``backup``) every
``backup_check_ms`` (default 200) of event time runs the exit check on every held position
(``path`` "timer"). It shares the flattening state, so it never duplicates an exit the updates made.
``latency_ns`` of an exit is event time from the update at which it first qualified (for ``time``:
the deadline, if no update qualified earlier) to the decision: 0 when the update itself decided.

Config (``[[strategies]] kind = "perp_oracle_lag"``): ``venues`` (names traded; empty: every perp
market seen), ``entry_edge_bps``, ``exit_edge_bps``, ``stop_bps``, ``max_hold_s``, ``min_size``,
``order_size``, ``max_position`` (base-asset decimal strings), ``base_decimals`` (the gateway's base
units of the size; default: the book's size precision), ``quote_decimals`` (the risk currency's, 6),
``exit_slippage_bps``, ``backup_check_ms``, ``max_age_ms``, ``reentry_s``, ``entries`` (false: exits only),
``price_rule`` ("hyperliquid", the default, or "none") and ``sz_decimals`` (the coin's szDecimals the
rule needs: an integer, or a table instrument -> integer; default: the book's size precision, which
is the coin's szDecimals in the sim but only at most that on a live Hyperliquid feed, where a message
writes its sizes with the places they need: set it for live runs, or the gateway may refuse a limit
with more decimals than the venue allows, as a recorded "not sent" failure).

**Limit prices follow Hyperliquid's price rule** (``domain.hl_price``: at most 5 significant figures,
at most ``6 - szDecimals`` decimals, integers always): a flatten's limit (the exit price worsened by
``exit_slippage_bps``) is rounded toward the book, a sell's up and a buy's down, so it stays within
the slippage and still crosses the exit price (a book price, valid itself); an entry's limit (the
stranded price) is rounded toward crossing, a buy's up and a sell's down (a valid price is kept as
it is: every price on the venue's book is). The notional the risk gate sees is at the rounded limit.
"""
from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Any, Mapping, Sequence

from tapedeck.domain import events as ev
from tapedeck.domain import hl_price
from tapedeck.domain.decimals import CTX, seconds_to_ns
from tapedeck.domain.perp_book import PPM, PerpBook, PerpMarket
from tapedeck.domain.perp_positions import BUY, SELL, PerpPosition, PerpPositions, rescale
from tapedeck.domain.risk import Intent
from tapedeck.domain.state import MarketState, Order

UPDATE, TIMER = "update", "timer"
REGRESSED, STOP, TIME = "regressed", "stop", "time"
BACKUP = "backup"
_QUOTE = ev.QuoteUpdated
_UNSEEN = object()
_NEVER = 1 << 256  # a price no book reaches
_SETTLING = "settling:"  # an exit_cid prefix: filled, not yet on the account stream
HYPERLIQUID, NO_RULE = "hyperliquid", "none"
PRICE_RULES = (HYPERLIQUID, NO_RULE)


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


def _sz_decimals(value: Any) -> int | dict[str, int] | None:
    """``sz_decimals``: None, an integer >= 0 for every instrument, or a table instrument -> integer."""
    if value is None:
        return None
    table = value if isinstance(value, Mapping) else {"": value}
    for k, v in table.items():
        if type(v) is not int or v < 0:
            where = f"sz_decimals.{k}" if k else "sz_decimals"
            raise ValueError(f"{where} must be an integer >= 0 (the coin's szDecimals), got {v!r}")
    return dict(table) if isinstance(value, Mapping) else value


class _Market:
    """What the strategy keeps per market beside the book and the position."""

    __slots__ = ("book", "key", "pos", "entry_cid", "exit_cid", "last_exit_ts", "q_ts", "q_seq", "entry_px",
                 "base_dp", "sizes", "regressed_px", "stop_px", "lines_for", "exit_size", "settle_ts", "oracle_o",
                 "scale_b", "n_mul", "n_div", "px_lo", "px_hi", "px_step", "px_pd", "px_sd", "lines_key")

    def __init__(self, book: PerpMarket) -> None:
        self.book = book
        self.key = (book.venue, book.instrument)
        self.pos: PerpPosition | None = None  # the ledger's position, once there is one
        self.entry_cid = ""  # entry in flight
        self.exit_cid = ""  # flattening: a flatten in flight
        self.last_exit_ts = -(1 << 62)
        self.q_ts = -1  # when the current exit first qualified (-1: not qualified)
        self.q_seq = 0
        self.entry_px = 0  # the position's average entry at the book's price precision
        self.base_dp = -1  # base units the gateway counts sizes in
        self.sizes: tuple[int, int, int, int] = (-1, 0, 0, 0)  # (size_decimals, min, order, max) at the book's
        self.regressed_px = self.stop_px = 0  # exit prices of the held position (PerpOracleLag._lines)
        self.lines_for = -1  # the book's ctx_version they were computed at (-1: never; _filled computes them)
        self.lines_key: tuple[int, bool, int] = (-1, False, -1)  # and the (entry, long, size decimals) they hold for
        self.oracle_o = self.scale_b = 0  # the oracle and a book price's multiplier at one precision (_lines)
        self.n_mul = self.n_div = 1  # size x price -> quote units (_lines)
        # the price rule's step for prices in [px_lo, px_hi) at price_decimals px_pd (PerpOracleLag._round)
        self.px_lo, self.px_hi, self.px_step, self.px_pd, self.px_sd = 1, 0, 1, -1, -1
        self.exit_size = 0  # the position the flatten in flight was decided for
        self.settle_ts = -1  # when its fill was reported while the account stream had not yet shown it


class PerpOracleLag:
    handles = (ev.QuoteUpdated, ev.BookDepthUpdated, ev.MarkPriceUpdated, ev.TradePrinted, ev.AccountFillReported,
               ev.FundingPaid)
    order_events = (ev.OrderFilled, ev.IntentRejected, ev.OrderFailed)  # on_order ignores the rest (an approval)

    def __init__(self, name: str = "perp_oracle_lag", venues: Sequence[str] = (), entry_edge_bps: Any = 50,
                 exit_edge_bps: Any = 5, stop_bps: Any = 100, max_hold_s: Any = 30, min_size: Any = "0.1",
                 order_size: Any = "1", max_position: Any = "1", base_decimals: int | None = None,
                 quote_decimals: int = 6, exit_slippage_bps: Any = 50, backup_check_ms: Any = 200,
                 max_age_ms: Any = 2000, reentry_s: Any = 1, entries: bool = True, price_rule: str = "hyperliquid",
                 sz_decimals: Any = None, **unknown: Any) -> None:
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
        if price_rule not in PRICE_RULES:
            raise ValueError(f"price_rule must be one of {', '.join(PRICE_RULES)}, got {price_rule!r}")
        self.price_rule = price_rule == HYPERLIQUID
        self.sz_decimals = _sz_decimals(sz_decimals)
        self.book = PerpBook()
        self.positions = PerpPositions(quote_decimals)
        self.markets: dict[tuple[str, str], _Market] = {}  # in order of first sight
        self._by_venue: dict[str, dict[str, _Market | None]] = {}  # venue -> instrument -> record (None: not traded)
        self._cids: dict[str, _Market] = {}  # client id in flight -> its market
        self._n = 0
        self._exit_prefix = f"{name}-x"  # + the decision's number: the flatten's client id
        self._timer_armed = False
        self.counts = {"entries": 0, "exits_update": 0, "exits_timer": 0, "blocked_flattening": 0, "timer_checks": 0}

    # ------------------------------------------------------------------ events

    def on_event(self, e: ev.Event, state: MarketState) -> Sequence[ev.Event | Intent]:
        t = type(e)
        if t is _QUOTE:  # the hot path: one lookup, the fold, the exit check
            by = self._by_venue.get(e.venue)  # type: ignore[attr-defined]
            mk = by.get(e.instrument, _UNSEEN) if by is not None else _UNSEEN  # type: ignore[attr-defined]
            if mk is _UNSEEN:
                mk = self._market(e.venue, e.instrument)  # type: ignore[attr-defined]
            if mk is None:
                return ()
            mk.book.on_quote(e)  # type: ignore[arg-type]
        elif t is ev.MarkPriceUpdated or t is ev.BookDepthUpdated:
            mk = self._market(e.venue, e.instrument)  # type: ignore[attr-defined]
            if mk is None:
                return ()
            mk.book.on_context(e) if t is ev.MarkPriceUpdated else mk.book.on_depth(e)  # type: ignore[arg-type]
        elif t is ev.TradePrinted:
            mk = self._market(e.venue, e.instrument)  # type: ignore[attr-defined]
            if mk is not None:
                mk.book.on_trade(e)  # type: ignore[arg-type]
            return ()
        elif t is ev.TimerFired:
            return self._on_timer(e, state)  # type: ignore[arg-type]
        elif t is ev.AccountFillReported:
            return self._on_account_fill(e, state)  # type: ignore[arg-type]
        elif t is ev.FundingPaid:
            self.positions.on_funding(e)  # type: ignore[arg-type]
            return ()
        else:
            return ()
        p = mk.pos
        if p is not None and p.size:
            return self._exit(mk, p, e, state, UPDATE)
        if self.entries and not mk.entry_cid and not mk.exit_cid:
            return self._entry(mk, e, state)
        return ()

    def _market(self, venue: str, instrument: str) -> _Market | None:
        """The strategy's record of a market (None: a venue it does not trade), made on first sight."""
        by = self._by_venue.get(venue)
        if by is not None:
            mk = by.get(instrument, _UNSEEN)
            if mk is not _UNSEEN:
                return mk  # type: ignore[return-value]
        else:
            by = self._by_venue[venue] = {}
        if self.venues and venue not in self.venues:
            by[instrument] = None
            return None
        mk = by[instrument] = self.markets[(venue, instrument)] = _Market(self.book.market(venue, instrument))
        return mk

    def _on_timer(self, e: ev.TimerFired, state: MarketState) -> list[ev.Event | Intent]:
        if e.key != BACKUP:
            return []
        self._timer_armed = False
        self.counts["timer_checks"] += 1
        out: list[ev.Event | Intent] = []
        for mk in self.markets.values():
            p = mk.pos
            if p is not None and p.size:
                out.extend(self._exit(mk, p, e, state, TIMER))
        self._arm(e, out)
        return out

    def _on_account_fill(self, e: ev.AccountFillReported, state: MarketState) -> list[ev.Event | Intent]:
        p = self.positions.on_account_fill(e)
        out: list[ev.Event | Intent] = []
        if p is not None:
            mk = self._market(e.venue, e.instrument)
            if mk is not None:
                self._filled(mk, p, e.ts)
                if mk.exit_cid.startswith(_SETTLING) and p.size != mk.exit_size:
                    mk.exit_cid = ""  # the stream shows the flatten: settled
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
            cid = order.client_id
            p = self.positions.on_order_fill(order.venue, order.instrument, order.side, e,  # type: ignore[arg-type]
                                             mk.base_dp)
            if e.final and p is None and mk.exit_cid == cid and mk.pos is not None and mk.pos.size == mk.exit_size:  # type: ignore[attr-defined]
                del self._cids[cid]  # the account stream has not shown this flatten yet: still flattening
                mk.exit_cid, mk.settle_ts = _SETTLING + cid, e.ts
            elif e.final:  # type: ignore[attr-defined]
                self._done(mk, cid)
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
        mk.pos = p
        if p.size:
            mk.entry_px = entry = p.entry_price(mk.book.price_decimals)
            if mk.lines_key != (entry, p.size > 0, p.size_decimals):
                # the side or the entry changed: the exit prices now, at the fill, so the next book
                # update's check compares integers only (an oracle or precision change since then
                # moves ctx_version, and _exit recomputes them as before)
                self._lines(mk, mk.book, p, p.size > 0)
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
        """The exit check (the hot path: it runs on every update of a held market, so it compares
        integers the ``_lines`` computed once per oracle, precision and entry, and calls nothing
        until it decides)."""
        m = mk.book
        now, max_age, stale = e.ts, self.max_age_ns, state.stale
        if (not m.usable or now - m.bbo_ts > max_age or (m.bbo_venue_ts and now - m.bbo_venue_ts > max_age)
                or (stale and m.venue in stale)):  # PerpMarket.bbo_fresh, inlined
            return ()
        size = p.size
        long = size > 0
        price = m.bid if long else m.ask
        if price <= 0:
            return ()
        if mk.lines_for != m.ctx_version:
            self._lines(mk, m, p, long)
        reason = ""
        if price >= mk.regressed_px if long else price <= mk.regressed_px:
            if now - m.ctx_ts <= max_age and (not m.ctx_venue_ts or now - m.ctx_venue_ts <= max_age):
                reason = REGRESSED  # PerpMarket.ctx_fresh inlined (the venue's staleness was checked above)
        if not reason and mk.entry_px and (price <= mk.stop_px if long else price >= mk.stop_px):
            reason = STOP
        deadline = p.opened_ts + self.max_hold_ns
        if not reason and now >= deadline:
            reason = TIME
        if not reason:
            mk.q_ts = -1
            return ()
        if mk.q_ts < 0:
            mk.q_ts, mk.q_seq = (deadline if reason is TIME else now), e.seq
        if mk.exit_cid:
            if not mk.exit_cid.startswith(_SETTLING) or now - mk.settle_ts <= max_age:
                self.counts["blocked_flattening"] += 1
                return ()
            mk.exit_cid = ""  # the account stream never showed that fill: decide again
        self._n += 1
        cid = self._exit_prefix + str(self._n)
        mk.exit_cid, mk.exit_size = cid, size
        self._cids[cid] = mk
        o = mk.oracle_o
        if long:
            side, qty = SELL, size
            limit = price * (PPM - self.slip_ppm) // PPM
            d = (o - price * mk.scale_b) * PPM  # the deviation left, toward zero, as at entry (a long: below)
        else:
            side, qty = BUY, -size
            limit = -(-price * (PPM + self.slip_ppm) // PPM)
            d = (price * mk.scale_b - o) * PPM
        remaining = (d // o if d >= 0 else -(-d // o)) if o > 0 else 0
        if self.price_rule:  # toward the book (see domain.hl_price): within the slippage, still crossing
            if not mk.px_lo <= limit < mk.px_hi or mk.px_pd != m.price_decimals or mk.px_sd != m.size_decimals:
                self._price_step(mk, m, limit)  # (PerpOracleLag._round, inlined)
            step = mk.px_step
            if step != 1:
                limit = -(-limit // step) * step if long else limit - limit % step
        if path is UPDATE:
            self.counts["exits_update"] += 1
        else:
            self.counts["exits_timer"] += 1
        notional = qty * price * mk.n_mul // mk.n_div  # rescale(qty x price, pd + sd, quote_decimals)
        pd = m.price_decimals
        name, venue, instrument = self.name, m.venue, m.instrument
        return (
            ev.PerpExitDecided(ts=now, source="engine", cause=e.seq, strategy=name, venue=venue,
                               instrument=instrument, side=side, position=size, size_decimals=p.size_decimals,
                               limit_price=limit, price_decimals=pd, entry_price=mk.entry_px, path=path, reason=reason,
                               deviation_ppm=remaining, latency_ns=now - mk.q_ts, qualified_cause=mk.q_seq,
                               held_ns=now - p.opened_ts, client_id=cid),
            # positionally (faster than keywords on this path): target, max_priority_fee, client_id,
            # route, min_profit, profit_asset, private, limit_price, price_decimals, tif, reduce_only
            Intent(name, venue, instrument, side, qty, notional, "", 0, cid, (), 0, "", False, limit, pd, "ioc", True),
        )

    def _lines(self, mk: _Market, m: PerpMarket, p: PerpPosition, long: bool) -> None:
        """The exit prices of a held position, computed by ``_filled`` when the side or the entry
        changes (at the fill, off the book-update path) and by ``_exit`` when the oracle or the
        book's precision has changed since (``ctx_version`` moves with both), so the check on each
        update compares integers only: a long has
        regressed when ``bid >= regressed_px`` (exactly: ``PerpMarket.deviation_ppm``'s remaining
        deviation, toward zero, <= the exit edge) and is stopped at ``bid <= stop_px`` (exactly
        ``stop_bps`` below the entry); a short at ``ask <= regressed_px`` and ``ask >= stop_px``.
        Also the oracle and book scale the decided deviation uses, and ``size x price``'s factor to
        quote units (``perp_positions.rescale``)."""
        e_ppm, s_ppm, entry = self.exit_ppm, self.stop_ppm, mk.entry_px
        o, unit = m.oracle * m._scale_ctx, m._scale_book * PPM  # the oracle, and a book price's ppm scale
        if o <= 0:
            mk.regressed_px = _NEVER if long else -_NEVER
        elif long:  # trunc((o - bid x sb) PPM / o) <= E  <=>  bid x sb x PPM > o (PPM - E - 1)
            mk.regressed_px = o * (PPM - e_ppm - 1) // unit + 1
        else:  # trunc((ask x sb - o) PPM / o) <= E  <=>  ask x sb x PPM < o (PPM + E + 1)
            mk.regressed_px = -(-o * (PPM + e_ppm + 1) // unit) - 1
        # bid x PPM <= entry (PPM - S), ask x PPM >= entry (PPM + S): exactly stop_bps from the entry
        mk.stop_px = entry * (PPM - s_ppm) // PPM if long else -(-entry * (PPM + s_ppm) // PPM)
        mk.oracle_o, mk.scale_b = (o if m.oracle > 0 else 0), m._scale_book
        k = self.positions.quote_decimals - m.price_decimals - p.size_decimals
        mk.n_mul, mk.n_div = (10**k, 1) if k >= 0 else (1, 10**-k)
        mk.lines_for, mk.lines_key = m.ctx_version, (entry, long, p.size_decimals)

    def _price_step(self, mk: _Market, m: PerpMarket, price: int) -> None:
        """The price rule's step for prices of ``price``'s number of digits at the book's precision
        (``domain.hl_price.price_step``), kept with the range it holds for."""
        pd, sd = m.price_decimals, m.size_decimals
        mk.px_pd, mk.px_sd = pd, sd
        if price <= 0:  # nothing to round (a limit of 0 is refused by the venue as it stands)
            mk.px_lo, mk.px_hi, mk.px_step = -_NEVER, 1, 1
            return
        sz = self.sz_decimals
        szd = sd if sz is None else sz if type(sz) is int else sz.get(m.instrument, sd)
        digits = len(str(price))
        mk.px_lo, mk.px_hi = 10 ** (digits - 1), 10**digits
        mk.px_step = hl_price.price_step(price, pd, szd)

    def _round(self, mk: _Market, m: PerpMarket, price: int, up: bool) -> int:
        """``price`` rounded by the venue's price rule (``domain.hl_price``), up or down."""
        if not self.price_rule:
            return price
        if not mk.px_lo <= price < mk.px_hi or mk.px_pd != m.price_decimals or mk.px_sd != m.size_decimals:
            self._price_step(mk, m, price)
        step = mk.px_step
        if step == 1:
            return price
        return -(-price // step) * step if up else price - price % step

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
        price = self._round(mk, m, price, side == BUY)  # toward crossing (domain.hl_price): a valid price stays
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
