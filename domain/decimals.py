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
