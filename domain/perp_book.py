"""Per-market perp state folded from events: best bid/offer, mark, oracle, mid, funding, last trades,
and the age of each input.

One ``PerpMarket`` per (venue, instrument), created on its first event. What feeds it:

* **BBO**: ``QuoteUpdated`` (Hyperliquid ``bbo``, the sim's book quotes) or the top of a
  ``BookDepthUpdated``: a snapshot (``l2Book``) sets the whole book, a diff replaces each level's size
  (size 0 removes the level) and the best price is recomputed from the levels kept. A side with no
  level is price 0, size 0 (nothing to trade against). A quote whose price or size is negative is
  not kept and marks the market's BBO unusable (as ``MarketState.on_quote`` does).
* **Context**: ``MarkPriceUpdated`` v2 (``activeAssetCtx``): ``mark``, ``oracle``, ``mid`` (-1 none)
  at ``ctx_decimals``, ``funding`` per interval at ``funding_decimals``.
* **Trades**: ``TradePrinted``, the last ``TRADES_KEPT`` of them ``(ts, price, size, side)``.

Prices stay at the precision each event gave: the BBO at ``price_decimals``, the context at
``ctx_decimals``. ``deviation_ppm`` compares them exactly (cross-multiplied integers), in parts per
million of the oracle, rounded toward zero.

Freshness follows the core's rule (``MarketState.quote_fresh``): an input is fresh when it is at
most ``max_age_ns`` old by event time and, where the venue stamps it (``venue_ts``), by the venue's
own time too, and the venue is not marked stale (``MarketState.stale``, set by ``SourceStale`` until
the venue's next update). ``ages(now)`` gives each input's age by event time (None: never seen).

Folding allocates nothing on the BBO path beyond the first event of a market; reading is plain
attribute access, so an exit check costs a few integer operations.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Mapping

from tapedeck.domain import events as ev

TRADES_KEPT = 32
PPM = 1_000_000


class PerpMarket:
    __slots__ = ("venue", "instrument", "bid", "bid_size", "ask", "ask_size", "price_decimals", "size_decimals",
                 "bbo_ts", "bbo_venue_ts", "bbo_seq", "usable", "mark", "oracle", "mid", "ctx_decimals", "funding",
                 "funding_decimals", "ctx_ts", "ctx_venue_ts", "ctx_seq", "ctx_version", "trades", "trade_ts", "bids", "asks",
                 "_scale_book", "_scale_ctx")

    def __init__(self, venue: str, instrument: str) -> None:
        self.venue, self.instrument = venue, instrument
        self.bid = self.bid_size = self.ask = self.ask_size = 0
        self.price_decimals = self.size_decimals = 0
        self.bbo_ts = self.bbo_venue_ts = self.bbo_seq = -1  # -1: never seen
        self.usable = False  # the last BBO could be priced
        self.mark = self.oracle = 0
        self.mid = -1
        self.ctx_decimals = self.funding = self.funding_decimals = 0
        self.ctx_ts = self.ctx_venue_ts = self.ctx_seq = -1
        self.ctx_version = 0  # counts context updates and precision changes (what readers derive from the oracle)
        self.trades: deque[tuple[int, int, int, str]] = deque(maxlen=TRADES_KEPT)
        self.trade_ts = -1
        self.bids: dict[int, int] = {}  # depth levels (only for markets fed by BookDepthUpdated)
        self.asks: dict[int, int] = {}
        self._scale_book = self._scale_ctx = 1  # multipliers that bring both prices to one precision

    # ------------------------------------------------------------------ reading

    @property
    def has_bbo(self) -> bool:
        return self.usable and self.bbo_ts >= 0

    @property
    def has_oracle(self) -> bool:
        return self.ctx_ts >= 0 and self.oracle > 0

    def deviation_ppm(self, price: int) -> int:
        """``(price - oracle) / oracle`` in ppm (``price`` at the BBO's precision), toward zero; 0
        without an oracle."""
        if self.oracle <= 0:
            return 0
        o = self.oracle * self._scale_ctx
        d = (price * self._scale_book - o) * PPM
        return d // o if d >= 0 else -((-d) // o)

    def bbo_fresh(self, now: int, max_age_ns: int, stale: Mapping[str, str]) -> bool:
        return _fresh(self.bbo_ts, self.bbo_venue_ts, now, max_age_ns) and self.usable and self.venue not in stale

    def ctx_fresh(self, now: int, max_age_ns: int, stale: Mapping[str, str]) -> bool:
        return _fresh(self.ctx_ts, self.ctx_venue_ts, now, max_age_ns) and self.venue not in stale

    def ages(self, now: int) -> dict[str, int | None]:
        """Event-time age (ns) of each input: ``bbo``, ``ctx``, ``trade`` (None: never seen)."""
        return {"bbo": None if self.bbo_ts < 0 else now - self.bbo_ts,
                "ctx": None if self.ctx_ts < 0 else now - self.ctx_ts,
                "trade": None if self.trade_ts < 0 else now - self.trade_ts}

    # ------------------------------------------------------------------ folding

    def _rescale(self) -> None:
        self.ctx_version += 1  # what a reader derived from the oracle depends on the scales too
        pb, pc = self.price_decimals, self.ctx_decimals
        self._scale_book, self._scale_ctx = (10 ** (pc - pb), 1) if pc >= pb else (1, 10 ** (pb - pc))

    def _set_bbo(self, e: ev.Event, bid: int, bid_size: int, ask: int, ask_size: int, pd: int, sd: int,
                 venue_ts: int) -> None:
        if pd != self.price_decimals:
            self.price_decimals = pd
            self._rescale()
        self.size_decimals = sd
        self.usable = bid >= 0 and ask >= 0 and bid_size >= 0 and ask_size >= 0
        if self.usable:
            self.bid, self.bid_size, self.ask, self.ask_size = bid, bid_size, ask, ask_size
        self.bbo_ts, self.bbo_venue_ts, self.bbo_seq = e.ts, venue_ts, e.seq

    def on_quote(self, e: ev.QuoteUpdated) -> None:  # the hot path: _set_bbo inlined
        if e.price_decimals != self.price_decimals:
            self.price_decimals = e.price_decimals
            self._rescale()
        self.size_decimals = e.size_decimals
        bid, ask, bid_size, ask_size = e.bid, e.ask, e.bid_size, e.ask_size
        if bid >= 0 and ask >= 0 and bid_size >= 0 and ask_size >= 0:
            self.usable = True
            self.bid, self.bid_size, self.ask, self.ask_size = bid, bid_size, ask, ask_size
        else:
            self.usable = False
        self.bbo_ts, self.bbo_venue_ts, self.bbo_seq = e.ts, e.venue_ts, e.seq

    def on_depth(self, e: ev.BookDepthUpdated) -> None:
        bids, asks = self.bids, self.asks
        if e.snapshot:
            bids.clear()
            asks.clear()
        for levels, side in ((e.bids, bids), (e.asks, asks)):
            for price, size in levels:
                if size:
                    side[price] = size
                else:
                    side.pop(price, None)
        bid = max(bids) if bids else 0
        ask = min(asks) if asks else 0
        self._set_bbo(e, bid, bids.get(bid, 0), ask, asks.get(ask, 0), e.price_decimals, e.size_decimals, e.venue_ts)

    def on_context(self, e: ev.MarkPriceUpdated) -> None:
        if e.price_decimals != self.ctx_decimals:
            self.ctx_decimals = e.price_decimals
            self._rescale()
        self.mark, self.oracle, self.mid = e.mark, e.oracle, e.mid
        self.funding, self.funding_decimals = e.funding, e.funding_decimals
        self.ctx_ts, self.ctx_venue_ts, self.ctx_seq = e.ts, e.venue_ts, e.seq
        self.ctx_version += 1

    def on_trade(self, e: ev.TradePrinted) -> None:
        self.trades.append((e.ts, e.price, e.size, e.side))
        self.trade_ts = e.ts


def _fresh(ts: int, venue_ts: int, now: int, max_age_ns: int) -> bool:
    if ts < 0 or now - ts > max_age_ns:
        return False
    return not venue_ts or now - venue_ts <= max_age_ns


class PerpBook:
    """Every perp market seen, by (venue, instrument), in order of first appearance."""

    __slots__ = ("markets",)

    def __init__(self) -> None:
        self.markets: dict[tuple[str, str], PerpMarket] = {}

    def market(self, venue: str, instrument: str) -> PerpMarket:
        key = (venue, instrument)
        m = self.markets.get(key)
        if m is None:
            m = self.markets[key] = PerpMarket(venue, instrument)
        return m

    def get(self, venue: str, instrument: str) -> PerpMarket | None:
        return self.markets.get((venue, instrument))

    def apply(self, e: ev.Event) -> PerpMarket | None:
        """Fold one market event; the market it updated (None for other types)."""
        fold = _FOLDS.get(type(e))
        if fold is None:
            return None
        m = self.market(e.venue, e.instrument)  # type: ignore[attr-defined]
        fold(m, e)
        return m


_FOLDS: dict[type[ev.Event], Callable[[PerpMarket, Any], None]] = {
    ev.QuoteUpdated: PerpMarket.on_quote,
    ev.MarkPriceUpdated: PerpMarket.on_context,
    ev.BookDepthUpdated: PerpMarket.on_depth,
    ev.TradePrinted: PerpMarket.on_trade,
}
