"""Cross-venue spread check on top-of-book quotes.

When one venue's bid exceeds another's ask for the same instrument by at least ``min_edge``
(a Decimal price difference, >= 0; the books must be crossed), it reports an opportunity: buy at
the ask, sell at the bid, for the smaller of the two sizes. Amounts are turned into base units with
the configured decimals (``base_decimals`` for size, ``quote_decimals`` for money), rounding down,
in the domain's own Decimal context (``domain.decimals.CTX``), never the caller's.

Freshness: both quotes must be at most ``max_age_s`` seconds old (default 5) at the event's time,
by event time and by the venue's own timestamp where it gives one, and neither venue marked stale
(``SourceStale``, or an unusable quote, which the state does not keep). A crossed book priced on an
older quote is recorded as ``OpportunitySuppressed`` instead of ``OpportunityDetected``.

The opportunity's ``key`` is the gap's identity: the instrument and both sides' venue, price and
size, so the same unmoved quotes give the same key however often they are re-sent.
"""
from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Any, Sequence

from tapedeck.domain import events as ev
from tapedeck.domain.decimals import CTX, seconds_to_ns
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
        self.base_unit = CTX.power(Decimal(10), int(base_decimals))
        self.quote_unit = CTX.power(Decimal(10), int(quote_decimals))
        self.max_age_ns = seconds_to_ns(max_age_s)

    def on_event(self, e: ev.QuoteUpdated, state: MarketState) -> Sequence[ev.Event]:  # type: ignore[override]
        book = state.quotes[e.instrument]  # the fold made it
        if len(book) < 2 or book.get(e.venue) is not e:
            return ()  # alone, or the state refused this quote (not a finite price): nothing to compare
        out: list[ev.Event] = []
        edge = self.min_edge
        bid, ask, here = e.bid, e.ask, e.venue
        for venue, q in book.items():
            # A crossed book is rare: two comparisons settle the common case before any arithmetic.
            if bid > q.ask:
                if venue != here and CTX.subtract(bid, q.ask) >= edge:
                    out.append(self._opportunity(e, q, e, state))
            elif q.bid > ask and venue != here and CTX.subtract(q.bid, ask) >= edge:
                out.append(self._opportunity(e, e, q, state))
        return out

    def _opportunity(self, cause: ev.QuoteUpdated, buy: ev.QuoteUpdated, sell: ev.QuoteUpdated,
                     state: MarketState) -> ev.Event:
        size = min(buy.ask_size, sell.bid_size)
        amount = int(CTX.multiply(size, self.base_unit).to_integral_value(ROUND_FLOOR, context=CTX))
        cost = int(CTX.multiply(CTX.multiply(size, buy.ask), self.quote_unit).to_integral_value(ROUND_FLOOR, context=CTX))
        proceeds = int(CTX.multiply(CTX.multiply(size, sell.bid), self.quote_unit).to_integral_value(ROUND_FLOOR, context=CTX))
        gross = proceeds - cost
        key = (f"{cause.instrument}:{buy.venue}@{buy.ask}x{buy.ask_size}"
               f">{sell.venue}@{sell.bid}x{sell.bid_size}")
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
