"""Cross-venue spread check on top-of-book quotes.

When one venue's bid exceeds another's ask for the same instrument by at least ``min_edge``
(a Decimal price difference, >= 0; the books must be crossed), it reports an opportunity: buy at the ask, sell at the bid, for the
smaller of the two sizes. Amounts are turned into base units with the configured decimals
(``base_decimals`` for size, ``quote_decimals`` for money), rounding down.
"""
from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Any, Sequence

from tapedeck.domain import events as ev
from tapedeck.domain.state import MarketState


class SpreadCheck:
    handles = (ev.QuoteUpdated,)

    def __init__(self, name: str, min_edge: str = "0", base_decimals: int = 8, quote_decimals: int = 6, **_: Any):
        self.name = name
        self.min_edge = Decimal(str(min_edge))
        if self.min_edge < 0:
            raise ValueError(f"min_edge must be >= 0, got {min_edge}")
        self.base_unit = Decimal(10) ** int(base_decimals)
        self.quote_unit = Decimal(10) ** int(quote_decimals)

    def on_event(self, e: ev.QuoteUpdated, state: MarketState) -> Sequence[ev.Event]:  # type: ignore[override]
        book = state.quotes[e.instrument]
        if len(book) < 2:
            return ()
        out: list[ev.Event] = []
        edge = self.min_edge
        bid, ask, here = e.bid, e.ask, e.venue
        for venue, q in book.items():
            # A crossed book is rare: two comparisons settle the common case before any arithmetic.
            if bid > q.ask:
                if venue != here and bid - q.ask >= edge:
                    out.append(self._opportunity(e, buy=q, sell=e))
            elif q.bid > ask and venue != here and q.bid - ask >= edge:
                out.append(self._opportunity(e, buy=e, sell=q))
        return out

    def _opportunity(self, cause: ev.QuoteUpdated, buy: ev.QuoteUpdated, sell: ev.QuoteUpdated) -> ev.Event:
        size = min(buy.ask_size, sell.bid_size)
        amount = int((size * self.base_unit).to_integral_value(ROUND_FLOOR))
        cost = int((size * buy.ask * self.quote_unit).to_integral_value(ROUND_FLOOR))
        proceeds = int((size * sell.bid * self.quote_unit).to_integral_value(ROUND_FLOOR))
        gross = proceeds - cost
        return ev.OpportunityDetected(
            ts=cause.ts, source="engine", cause=cause.seq, strategy=self.name, kind="spread",
            buy_venue=buy.venue, sell_venue=sell.venue, amount_in=cost, amount_out=amount,
            gross_profit=gross, gas_cost=0, net_profit=gross, profit_token=cause.instrument,
        )
