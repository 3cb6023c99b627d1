"""A text venue's order book folded from ``BookDepthUpdated``: the levels, in sync or not.

Why: a CEX leg of an arbitrage is priced by walking the book (slippage), not by its top alone, and
a book that missed a diff is wrong at every level until the next snapshot. The sequencing rule is
Binance's local-book procedure (binance-spot-api-docs ``web-socket-streams.md``, "How to manage a
local order book correctly"), written on the event's venue ids:

* a snapshot (``snapshot=True``) replaces every level and sets ``last_update`` (REST ``lastUpdateId``);
* a diff whose ``last_update`` is not after the book's is old (already in the snapshot): ignored;
* a diff that starts after ``last + 1`` (``first_update > last + 1``) means updates were missed: the
  book is **out of sync** (``synced`` False, ``gap`` says which ids), nothing more is applied until
  the next snapshot, and ``MarketState`` keeps the book's id stale until then;
* otherwise each level replaces that price's size, size 0 removes it.

A venue with no ids (``first_update == last_update == 0``, e.g. Hyperliquid ``l2Book`` snapshots)
is always in sync. Levels are kept in dicts (price -> size, insertion order) and sorted best first
on demand, once per change (``bids()``/``asks()``), so a quote walking the book sorts nothing.
"""
from __future__ import annotations

from tapedeck.domain import events as ev

Levels = tuple[tuple[int, int], ...]


class DepthBook:
    __slots__ = ("venue", "instrument", "price_decimals", "size_decimals", "last_update", "synced", "gap",
                 "venue_ts", "_bids", "_asks", "_sorted_bids", "_sorted_asks", "version")

    def __init__(self, venue: str, instrument: str, price_decimals: int, size_decimals: int) -> None:
        self.venue, self.instrument = venue, instrument
        self.price_decimals, self.size_decimals = price_decimals, size_decimals
        self.last_update = 0
        self.synced = False  # no snapshot yet
        self.gap = "no snapshot yet"
        self.venue_ts = 0
        self._bids: dict[int, int] = {}
        self._asks: dict[int, int] = {}
        self._sorted_bids: Levels | None = ()
        self._sorted_asks: Levels | None = ()
        self.version = 0  # counts applied changes (a cache key for what is priced on the book)

    def apply(self, e: ev.BookDepthUpdated) -> bool:
        """Fold one message; True if the book changed. A message at another precision than the
        book's resets it (the venue changed its tick: only a snapshot can say the new levels)."""
        if (e.price_decimals, e.size_decimals) != (self.price_decimals, self.size_decimals):
            if not e.snapshot:
                self.synced, self.gap = False, (f"diff at precision {e.price_decimals}/{e.size_decimals}, book at "
                                                f"{self.price_decimals}/{self.size_decimals}")
                return False
            self.price_decimals, self.size_decimals = e.price_decimals, e.size_decimals
        if e.snapshot:
            self._bids = {p: s for p, s in e.bids if s > 0}
            self._asks = {p: s for p, s in e.asks if s > 0}
            self.last_update = e.last_update
            self.synced, self.gap = True, ""
            return self._changed(e)
        if not self.synced:
            return False
        if e.first_update or e.last_update:
            if e.last_update <= self.last_update:
                return False  # already in the book
            if e.first_update > self.last_update + 1:
                self.synced = False
                self.gap = f"missed updates {self.last_update + 1}..{e.first_update - 1}"
                return False
            self.last_update = e.last_update
        for side, levels in ((self._bids, e.bids), (self._asks, e.asks)):
            for p, s in levels:
                if s > 0:
                    side[p] = s
                else:
                    side.pop(p, None)
        return self._changed(e)

    def _changed(self, e: ev.BookDepthUpdated) -> bool:
        self._sorted_bids = self._sorted_asks = None
        self.venue_ts = e.venue_ts
        self.version += 1
        return True

    def bids(self) -> Levels:
        """``(price, size)`` best (highest) first."""
        if self._sorted_bids is None:
            self._sorted_bids = tuple(sorted(self._bids.items(), reverse=True))
        return self._sorted_bids

    def asks(self) -> Levels:
        """``(price, size)`` best (lowest) first."""
        if self._sorted_asks is None:
            self._sorted_asks = tuple(sorted(self._asks.items()))
        return self._sorted_asks


def depth_id(venue: str, instrument: str) -> str:
    """The freshness id of a venue's book of one instrument (``binance:ETHUSDT:depth``): what
    ``MarketState.updated``/``stale`` and a ``SourceStale`` for a depth gap name."""
    return f"{venue}:{instrument}:depth"
