"""Cross-venue spread check on top-of-book quotes.

When one venue's bid exceeds another's ask for the same instrument by at least ``min_edge``
(a Decimal price difference, >= 0; the books must be crossed), it reports an opportunity: buy at
the ask, sell at the bid, for the smaller of the two sizes. Quotes hold fixed-point integers
(``QuoteUpdated``), so the check is integer compares and the amounts integer arithmetic: turned
into base units with the configured decimals (``base_decimals`` for size, ``quote_decimals`` for
money), rounding down. ``min_edge`` is parsed once, in the domain's own Decimal context.

Freshness: both quotes must be at most ``max_age_s`` seconds old (default 5) at the event's time,
by event time and by the venue's own timestamp where it gives one, and neither venue marked stale
(``SourceStale``, or an unusable quote, which the state does not keep). A crossed book priced on an
older quote is recorded as ``OpportunitySuppressed`` instead of ``OpportunityDetected``.

The opportunity's ``key`` is the gap's identity: the instrument and both sides' venue, price and
size, so the same unmoved quotes give the same key however often they are re-sent.
"""
from __future__ import annotations

from decimal import ROUND_CEILING
from typing import Any, Sequence

from tapedeck.domain import events as ev
from tapedeck.domain.decimals import CTX, from_fixed, seconds_to_ns
from tapedeck.domain.state import MarketState


class SpreadCheck:
    handles = (ev.QuoteUpdated,)

    def __init__(self, name: str, min_edge: str = "0", base_decimals: int = 8, quote_decimals: int = 6,
                 max_age_s: Any = "5", **_: Any):
        self.name = name
        try:
            self.min_edge = CTX.create_decimal(str(min_edge))
        except ArithmeticError:
            raise ValueError(f"min_edge must be a decimal number, got {min_edge!r}") from None
        if not self.min_edge.is_finite() or self.min_edge < 0:
            raise ValueError(f"min_edge must be >= 0, got {min_edge}")
        self.base_decimals = int(base_decimals)
        self.quote_decimals = int(quote_decimals)
        self.max_age_ns = seconds_to_ns(max_age_s)
        self._edges: dict[int, int] = {}  # price decimals -> min_edge in those units, rounded up

    def _edge(self, price_decimals: int) -> int:
        """The smallest integer gap at this precision that is >= min_edge (gaps are integers)."""
        edge = self._edges.get(price_decimals)
        if edge is None:
            scaled = self.min_edge.scaleb(price_decimals, context=CTX)
            edge = self._edges[price_decimals] = int(scaled.to_integral_value(ROUND_CEILING, context=CTX))
        return edge

    def on_event(self, e: ev.QuoteUpdated, state: MarketState) -> Sequence[ev.Event]:  # type: ignore[override]
        book = state.quotes[e.instrument]  # the fold made it
        if len(book) < 2 or book.get(e.venue) is not e:
            return ()  # alone, or the state refused this quote (a negative price): nothing to compare
        out: list[ev.Event] | None = None  # allocated only when a book is crossed (rare)
        bid, ask, pd = e.bid, e.ask, e.price_decimals
        for q in book.values():
            if q is e:  # book[e.venue] is e itself
                continue
            if q.price_decimals != pd:  # venues quoting at different precisions: compare exactly, slowly
                out = self._compare_scaled(e, q, state, out)
                continue
            # A crossed book is rare: two integer comparisons settle the common case.
            if bid > q.ask:
                if bid - q.ask >= self._edge(pd):
                    out = (out or []) + [self._opportunity(e, q, e, state)]
            elif q.bid > ask and q.bid - ask >= self._edge(pd):
                out = (out or []) + [self._opportunity(e, e, q, state)]
        return out or ()

    def _compare_scaled(self, e: ev.QuoteUpdated, q: ev.QuoteUpdated, state: MarketState,
                        out: list[ev.Event] | None) -> list[ev.Event] | None:
        edge, bid, ask = self.min_edge, e.price(e.bid), e.price(e.ask)
        if bid > q.price(q.ask) and CTX.subtract(bid, q.price(q.ask)) >= edge:
            return (out or []) + [self._opportunity(e, q, e, state)]
        if q.price(q.bid) > ask and CTX.subtract(q.price(q.bid), ask) >= edge:
            return (out or []) + [self._opportunity(e, e, q, state)]
        return out

    def _opportunity(self, cause: ev.QuoteUpdated, buy: ev.QuoteUpdated, sell: ev.QuoteUpdated,
                     state: MarketState) -> ev.Event:
        # size and money in base units, rounded down, from the fixed-point integers: exact.
        sd = max(buy.size_decimals, sell.size_decimals)
        size = min(buy.ask_size * 10 ** (sd - buy.size_decimals), sell.bid_size * 10 ** (sd - sell.size_decimals))
        amount = _floor_scale(size, self.base_decimals - sd)
        cost = _floor_scale(size * buy.ask, self.quote_decimals - sd - buy.price_decimals)
        proceeds = _floor_scale(size * sell.bid, self.quote_decimals - sd - sell.price_decimals)
        gross = proceeds - cost
        key = (f"{cause.instrument}:{buy.venue}@{_text(buy.ask, buy.price_decimals)}x"
               f"{_text(buy.ask_size, buy.size_decimals)}"
               f">{sell.venue}@{_text(sell.bid, sell.price_decimals)}x{_text(sell.bid_size, sell.size_decimals)}")
        now, max_age = cause.ts, self.max_age_ns
        old = [q for q in (buy, sell) if not state.quote_fresh(q, now, max_age)]
        if old:
            ages = [-1 if q.venue in state.stale else now - (min(q.ts, q.venue_ts) if q.venue_ts else q.ts)
                    for q in old]
            age = -1 if -1 in ages else max(ages)
            why = ", ".join(f"{q.venue} stale ({state.stale[q.venue]})" if q.venue in state.stale
                            else f"{q.venue} quote {a} ns old" for q, a in zip(old, ages))
            return ev.OpportunitySuppressed(
                ts=cause.ts, source="engine", cause=cause.seq, strategy=self.name, kind="spread", key=key,
                reason=f"{why} (max_age {max_age} ns)", ids=tuple(q.venue for q in old), age_ns=age,
                net_profit=gross, profit_token=cause.instrument,
            )
        return ev.OpportunityDetected(
            ts=cause.ts, source="engine", cause=cause.seq, strategy=self.name, kind="spread",
            buy_venue=buy.venue, sell_venue=sell.venue, amount_in=cost, amount_out=amount,
            gross_profit=gross, gas_cost=0, net_profit=gross, profit_token=cause.instrument, key=key,
        )


def _floor_scale(n: int, places: int) -> int:
    """``n * 10**places`` rounded down (``places`` may be negative)."""
    return n * 10**places if places >= 0 else n // 10**-places


def _text(n: int, decimals: int) -> str:
    return str(from_fixed(n, decimals))
