"""Market state folded from input events: top of book per venue, AMM pool states.

Plain dicts keyed by strings, filled in arrival order; nothing iterates a set or depends on hash
order. Folding is cheap on purpose: it runs on every market event.
"""
from __future__ import annotations

from dataclasses import dataclass

from tapedeck.domain import events as ev
from tapedeck.domain.uniswap_v3 import V3PoolState


@dataclass(slots=True)
class V2Pool:
    reserve0: int
    reserve1: int
    block: int


class MarketState:
    __slots__ = ("quotes", "v2", "v3", "blocks")

    def __init__(self) -> None:
        self.quotes: dict[str, dict[str, ev.QuoteUpdated]] = {}  # instrument -> venue -> last quote
        self.v2: dict[str, V2Pool] = {}
        self.v3: dict[str, V3PoolState] = {}
        self.blocks: dict[str, ev.BlockProduced] = {}  # chain -> last block (its fees price paper gas)

    def on_quote(self, e: ev.QuoteUpdated) -> None:
        book = self.quotes.get(e.instrument)
        if book is None:
            book = self.quotes[e.instrument] = {}
        book[e.venue] = e

    def on_v2(self, e: ev.V2ReservesSynced) -> None:
        self.v2[e.pool] = V2Pool(e.reserve0, e.reserve1, e.block)

    def on_block(self, e: ev.BlockProduced) -> None:
        self.blocks[e.chain] = e

    def on_v3(self, e: ev.Event) -> None:
        pool = e.pool  # type: ignore[attr-defined]
        st = self.v3.get(pool)
        if st is None:
            st = self.v3[pool] = V3PoolState()
        st.apply(e)
