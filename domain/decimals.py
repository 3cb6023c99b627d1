"""The domain's own Decimal context, so no decision depends on a caller's ``decimal.getcontext()``.

Every Decimal operation in domain/ that can round (arithmetic, powers, quantising) goes through
``CTX`` explicitly (``CTX.multiply(a, b)``, ``x.to_integral_value(ROUND_FLOOR, context=CTX)``);
comparisons and construction from strings are exact and need none. 100 digits hold a product of
any price and size a venue sends; NaN arithmetic and division by zero raise.
"""
from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from typing import Any

CTX = Context(prec=100, rounding=ROUND_HALF_EVEN, Emin=-999_999, Emax=999_999,
              traps=[InvalidOperation, DivisionByZero, Overflow])


NS = 10**9


def seconds_to_ns(value: Any, what: str = "max_age_s") -> int:
    """Config seconds (int, float or string) to integer ns, parsed exactly from its text."""
    try:
        d = CTX.create_decimal(str(value))
    except ArithmeticError:
        d = Decimal("NaN")
    if not d.is_finite() or d < 0:
        raise ValueError(f"{what} must be a number of seconds >= 0, got {value!r}")
    return int(CTX.multiply(d, Decimal(NS)).to_integral_value(ROUND_FLOOR, context=CTX))


def decimals_of(step: Decimal) -> int:
    """How many decimal places a price tick or lot size has (``0.01`` -> 2, ``5`` -> 0)."""
    return max(0, -int(step.as_tuple().exponent))


def to_fixed(value: Decimal | str | int, decimals: int, what: str = "value") -> int:
    """``value`` as an integer count of ``10**-decimals`` — exactly, or ``ValueError`` naming it
    (not finite, or finer than the precision: a price is never silently rounded)."""
    try:
        d = value if isinstance(value, Decimal) else CTX.create_decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"{what} {value!r} is not a decimal number") from None
    if not d.is_finite():
        raise ValueError(f"{what} {value!r} is not a finite number")
    scaled = d.scaleb(decimals, context=CTX)
    n = int(scaled.to_integral_value(ROUND_FLOOR, context=CTX))
    if scaled != n:
        raise ValueError(f"{what} {value} has more than {decimals} decimal places")
    return n


def from_fixed(n: int, decimals: int) -> Decimal:
    """The Decimal an integer of ``10**-decimals`` stands for (display, keys; exact)."""
    return Decimal(n).scaleb(-decimals, context=CTX)
