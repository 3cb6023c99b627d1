"""Test-only strategies that sim tests name by import path (``kind = "tests.strategies_for_tests:X"``),
so their runs record a config that rebuilds them and verify from the manifest alone."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from tapedeck.domain import events as ev
from tapedeck.domain.risk import Intent

WAD = 10**18
ONE_ETH = 10**4  # the mock perp's base decimals are 4


class BurstBuyer:
    """On the first quote after ``at_ns``, buy ``n`` times ``amount`` base units at once."""

    name = "burst"
    handles = (ev.QuoteUpdated,)

    def __init__(self, at_ns: int, n: int, amount: int, side: str = "buy"):
        self.at_ns, self.n, self.amount, self.side = at_ns, n, amount, side
        self.done = False

    def on_event(self, e: Any, state: Any) -> list[Intent]:
        if self.done or e.ts < self.at_ns:
            return []
        self.done = True
        return [Intent(self.name, e.venue, e.instrument, self.side, self.amount, 1) for _ in range(self.n)]


class LiquidateBelowOne:
    """Liquidate half the debt of any account observed below HF 1, at a fixed tip."""

    name = "test-liquidator"
    handles = (ev.AaveAccountObserved, ev.AaveLiquidationObserved)

    def __init__(self, tip: int):
        self.tip = tip
        self.pending: set[str] = set()  # borrowers we have an intent out for (folded from events only)

    def on_event(self, e: Any, state: Any) -> list[Intent]:
        if type(e) is ev.AaveLiquidationObserved or e.health_factor >= WAD:
            self.pending.discard(e.user)
            return []
        if e.user in self.pending:
            return []
        self.pending.add(e.user)
        cover = e.total_debt_base // 2 // 100  # USD 8 dp -> USDC 6 dp at $1; Aave caps at its close factor
        return [Intent(self.name, f"aave-v3:{e.chain}", "WETH/USDC", "liquidate", cover, cover, target=e.user,
                       max_priority_fee=self.tip)]


class FollowTheOracle:
    """Long when the oracle is > 3% above the book's mid, short when > 3% below; flat again once
    they are within 0.5%."""

    name = "follow-oracle"
    handles = (ev.MarkPriceUpdated,)

    def __init__(self) -> None:
        self.position = 0  # +1 long, -1 short (set when the intent is made)

    def on_event(self, e: Any, state: Any) -> list[Intent]:
        q = state.quotes.get(e.instrument, {}).get(e.venue)
        if q is None:
            return []
        gap = e.price(e.oracle) / ((q.price(q.bid) + q.price(q.ask)) / 2) - 1
        notional = int(e.price(e.mark) * 10**6)  # one ETH at the mark, in USDC base units
        if self.position == 0 and abs(gap) > Decimal("0.03"):
            self.position = 1 if gap > 0 else -1
            return [Intent(self.name, e.venue, e.instrument, "buy" if gap > 0 else "sell", ONE_ETH, notional)]
        if self.position and abs(gap) < Decimal("0.005"):
            side = "sell" if self.position > 0 else "buy"
            self.position = 0
            return [Intent(self.name, e.venue, e.instrument, side, ONE_ETH, notional)]
        return []
