"""The borrower population of a scenario, drawn so that the market can open every position.

Why a module of its own: eth-crash once died at start-up with ``borrow reverted: 36``
(``COLLATERAL_CANNOT_COVER_NEW_BORROW``) for seeds 1, 9 and 10, because the debt was drawn with a
hard-coded threshold and Decimal arithmetic, not from what the Pool checks. Here the draw is a pure
function of the seed's generator, the scenario's ``[agents.borrowers]`` and the market's own terms
(:class:`MarketTerms`, read from the deployed contracts: LTV, threshold, decimals, oracle prices),
in integers, the way ``ValidationLogic.validateBorrow`` and ``GenericLogic`` compute:

* collateral in base currency = ``amount * price // 10**decimals`` (the oracle's 8 dp);
* a new borrow needs ``percentDiv(debt_base, ltv) <= collateral_base``, so the largest debt is about
  ``collateral_base * ltv / 10000``; we stay :data:`MARGIN_BPS` under it (interest index rounding
  of the supplied aToken balance costs a wei, ``percentDiv`` rounds half up);
* the drawn health factor ``hf`` sets the debt at ``collateral_base * LT / hf``; a draw that would
  exceed the borrowable line opens at that line instead (a health factor a hair above
  ``LT / LTV``; the loader already rejects ``health_factor_min`` below ``LT / LTV``).

A position too small to borrow one unit of the debt asset is a scenario error naming the field,
raised before any transaction is sent. Tests draw thousands of seeds through it in milliseconds and
check a sample against ``getUserAccountData``'s ``availableBorrowsBase`` on the real market.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from tapedeck.sim.scenario import Borrowers, ScenarioError

MARGIN_BPS = 10  # stay 0.1% below the largest borrow the Pool allows
PERCENT = 10_000


@dataclass(frozen=True)
class MarketTerms:
    """What a draw needs from the deployed market (read once from its getters)."""

    collateral_decimals: int
    collateral_price: int  # oracle base currency, 8 dp
    ltv: int  # collateral's LTV, bps
    liquidation_threshold: int  # collateral's LT, bps
    debt_decimals: int
    debt_price: int  # oracle base currency, 8 dp


@dataclass(frozen=True)
class Position:
    collateral: int  # collateral asset base units supplied
    debt: int  # debt asset base units borrowed (variable)
    drawn_health_factor: Decimal

    def debt_base(self, m: MarketTerms) -> int:
        return self.debt * m.debt_price // 10**m.debt_decimals


def max_borrow_base(collateral: int, m: MarketTerms, margin_bps: int = MARGIN_BPS) -> int:
    """The largest debt (base currency) we open against ``collateral``: the LTV line less the margin."""
    collateral_base = collateral * m.collateral_price // 10**m.collateral_decimals
    return collateral_base * m.ltv * (PERCENT - margin_bps) // (PERCENT * PERCENT)


def draw_position(rng: random.Random, b: Borrowers, start_price: Decimal, m: MarketTerms) -> Position:
    """One borrower: its collateral value uniform in [collateral_min, collateral_max] (quote currency
    at ``start_price``), its health factor uniform in [health_factor_min, health_factor_max]."""
    value = b.collateral_min + (b.collateral_max - b.collateral_min) * Decimal(str(rng.random()))
    hf = b.health_factor_min + (b.health_factor_max - b.health_factor_min) * Decimal(str(rng.random()))
    collateral = int(value * 10**m.collateral_decimals / start_price)
    collateral_base = collateral * m.collateral_price // 10**m.collateral_decimals
    wanted_base = int(Decimal(collateral_base * m.liquidation_threshold) / (hf * PERCENT))
    debt_base = min(wanted_base, max_borrow_base(collateral, m))
    debt = debt_base * 10**m.debt_decimals // m.debt_price
    return Position(collateral, debt, hf)


def draw_positions(rng: random.Random, b: Borrowers, start_price: Decimal, m: MarketTerms) -> list[Position]:
    """``b.count`` positions, every one openable on the market ``m`` (else ``ScenarioError``)."""
    out = [draw_position(rng, b, start_price, m) for _ in range(b.count)]
    for i, p in enumerate(out):
        if p.debt <= 0 or p.collateral <= 0:
            raise ScenarioError(f"agents.borrowers.collateral_min: {b.collateral_min} is too small a position: "
                                f"borrower {i + 1} would supply {p.collateral} and borrow {p.debt} base units")
    return out
