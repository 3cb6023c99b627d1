"""Hyperliquid's price rule, as one function the strategy, the signer and the gateway share.

The rule (``../shared/reference/PROTOCOLS.md`` section 6; the docs' ``tick-and-lot-size.md``; the
SDK's ``round(float(f"{px:.5g}"), 6 - szDecimals)``): a price has **at most 5 significant figures**
and **at most** ``6 - szDecimals`` **decimals** for a perp (``8 - szDecimals`` for spot), and an
**integer price is always valid** whatever its number of figures.

Equivalently, a price ``p > 0`` whose leading digit is at ``10**a`` (``a`` = its adjusted exponent:
3 for 1234.5, -2 for 0.0123) is valid exactly when it is a multiple of ``10**e`` with
``e = min(max(a - 4, -max_decimals), 0)``: 5 figures from the leading one, no finer than the
decimals allowed, and never coarser than 1 (integers pass). Rounding a price to a multiple of that
step keeps it valid even when the rounding carries into the next power of ten (the carry lands on
that power itself, a multiple of every step below it).

Prices here are the domain's fixed-point integers: ``price`` counts ``10**-price_decimals`` of the
quote currency. ``price_step`` is the step in those units (1 when ``price_decimals`` is already as
coarse as the rule: every such value is valid); ``round_price`` rounds up or down to it;
``price_problem`` says why a price is refused ('' when it is valid); ``check_price`` raises
``PriceRuleError`` naming the rule. ``decimal_price_problem`` / ``round_decimal_price`` do the same
for a ``Decimal`` (the adapters' wire values). Integer arithmetic only; nothing here reads a clock,
an environment or a float.

Which direction to round is the caller's. ``perp_oracle_lag`` rounds a **flatten's** limit toward
the book it sells into or buys from (a sell's limit up toward the bid, a buy's down toward the
ask): the limit stays between the exit price and the slippage bound, and since the exit price is a
book price, itself valid on the venue, the rounded limit still crosses it. It rounds an **entry's**
limit (the stranded price itself) toward crossing (a buy up, a sell down): a valid price, as every
price on Hyperliquid's book is, is unchanged; a finer one (a simulated book) moves less than one
step past it, so the IOC still reaches the level it targets.
"""
from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_UP, Decimal

from tapedeck.domain.decimals import CTX

PERP_DECIMALS = 6  # a perp price has at most 6 - szDecimals decimals
SPOT_DECIMALS = 8  # a spot price at most 8 - szDecimals
SIGNIFICANT = 5


class PriceRuleError(ValueError):
    """A price Hyperliquid would refuse (the message names the price and the rule it breaks)."""


def max_decimals(sz_decimals: int, spot: bool = False) -> int:
    """Decimals a price may have: ``6 - szDecimals`` (perp) or ``8 - szDecimals`` (spot)."""
    if type(sz_decimals) is not int or sz_decimals < 0:
        raise PriceRuleError(f"szDecimals must be an integer >= 0, got {sz_decimals!r}")
    return (SPOT_DECIMALS if spot else PERP_DECIMALS) - sz_decimals


def _exponent(adjusted: int, sz_decimals: int, spot: bool) -> int:
    """The exponent of the step of a price whose leading digit is at ``10**adjusted``."""
    return min(max(adjusted - (SIGNIFICANT - 1), -max_decimals(sz_decimals, spot)), 0)


def price_step(price: int, price_decimals: int, sz_decimals: int, spot: bool = False) -> int:
    """The step (in ``10**-price_decimals`` units) valid prices of ``price``'s magnitude are
    multiples of; ``price`` > 0."""
    if type(price) is not int or price <= 0:
        raise PriceRuleError(f"price {price!r} must be an integer > 0 (10**-{price_decimals} units)")
    if type(price_decimals) is not int or price_decimals < 0:
        raise PriceRuleError(f"price_decimals must be an integer >= 0, got {price_decimals!r}")
    e = _exponent(len(str(price)) - 1 - price_decimals, sz_decimals, spot) + price_decimals
    return 10**e if e > 0 else 1


def round_price(price: int, price_decimals: int, sz_decimals: int, *, up: bool, spot: bool = False) -> int:
    """``price`` rounded up or down to the nearest valid price (the same value when it is valid)."""
    step = price_step(price, price_decimals, sz_decimals, spot)
    if step == 1:
        return price
    return -(-price // step) * step if up else price - price % step


def price_problem(price: int, price_decimals: int, sz_decimals: int, spot: bool = False) -> str:
    """Why Hyperliquid refuses ``price`` ('' when it is valid)."""
    try:
        step = price_step(price, price_decimals, sz_decimals, spot)
    except PriceRuleError as e:
        return str(e)
    if price % step == 0:
        return ""
    return _why(Decimal(price).scaleb(-price_decimals, context=CTX), sz_decimals, spot)


def check_price(price: int, price_decimals: int, sz_decimals: int, spot: bool = False) -> None:
    """``PriceRuleError`` if Hyperliquid refuses ``price``."""
    problem = price_problem(price, price_decimals, sz_decimals, spot)
    if problem:
        raise PriceRuleError(problem)


def decimal_price_problem(price: Decimal, sz_decimals: int, spot: bool = False) -> str:
    """``price_problem`` for a ``Decimal`` (an adapter's wire value): '' when valid."""
    if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
        return f"price {price} must be a finite number > 0"
    unit = _exponent(price.adjusted(), sz_decimals, spot)
    if price == price.scaleb(-unit, context=CTX).to_integral_value(context=CTX).scaleb(unit, context=CTX):
        return ""
    return _why(price, sz_decimals, spot)


def round_decimal_price(price: Decimal, sz_decimals: int, *, up: bool, spot: bool = False) -> Decimal:
    """``price`` (a finite ``Decimal`` > 0) rounded up or down to a valid price, normalised."""
    if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
        raise PriceRuleError(f"price {price} must be a finite number > 0")
    unit = _exponent(price.adjusted(), sz_decimals, spot)
    step = Decimal(1).scaleb(unit, context=CTX)
    return price.quantize(step, rounding=ROUND_UP if up else ROUND_DOWN, context=CTX).normalize(context=CTX)


def _why(price: Decimal, sz_decimals: int, spot: bool) -> str:
    limit = max_decimals(sz_decimals, spot)
    base = SPOT_DECIMALS if spot else PERP_DECIMALS
    text = format(price.normalize(context=CTX), "f")
    figures = len(text.replace(".", "").lstrip("0"))
    places = len(text.partition(".")[2])
    if figures > SIGNIFICANT:
        return (f"price {text} has {figures} significant figures, more than the {SIGNIFICANT} significant "
                f"figures Hyperliquid allows (integer prices always pass)")
    return (f"price {text} has {places} decimals, more than the {limit} decimals Hyperliquid allows here "
            f"({base} - szDecimals {sz_decimals}{', spot' if spot else ''})")
