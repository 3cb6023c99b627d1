"""``sim.kernel.ln`` (every exponential draw's log) is ``CTX.ln`` digit for digit and exponent for
exponent: on the draws the sim makes (1 - a float), on any Decimal in (0, 1] of up to 34 digits, near
1 and near powers of ten, and it leaves every other input (0, > 1, not finite) to ``CTX.ln``."""
from __future__ import annotations

import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapedeck.sim.kernel import CTX, exponential, ln


def same(u: Decimal) -> None:
    got, want = ln(u), CTX.ln(u)
    assert got.as_tuple() == want.as_tuple(), (u, got, want)


@settings(max_examples=3000, deadline=None)
@given(st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_the_sims_draws_1_minus_a_float(f: float) -> None:
    same(CTX.subtract(Decimal(1), Decimal(f)))


@settings(max_examples=3000, deadline=None)
@given(st.integers(min_value=1, max_value=10**34 - 1), st.integers(min_value=0, max_value=60))
def test_any_decimal_in_0_1_of_up_to_34_digits(coefficient: int, extra: int) -> None:
    digits = len(str(coefficient))
    same(Decimal(coefficient).scaleb(-(digits + extra)))


@pytest.mark.parametrize("u", ["1", "0.1", "0.01", "1E-30", "0.5", "0.9999999999999999999999999999999999",
                               "0.3678794411714423215955237701614609",  # ~1/e: ln ~ -1, a power of ten
                               "0.0000000000000001110223024625156540", "0.984375", "0.015625"])
def test_edges(u: str) -> None:
    same(Decimal(u))


@pytest.mark.parametrize("u", ["0", "1.5", "2", "Infinity", "-0.5"])
def test_other_inputs_are_ctx_s(u: str) -> None:
    try:
        want = CTX.ln(Decimal(u))
    except Exception as e:  # noqa: BLE001 - the same refusal
        with pytest.raises(type(e)):
            ln(Decimal(u))
        return
    assert ln(Decimal(u)).as_tuple() == want.as_tuple()


def test_a_seeded_run_of_exponential_draws_is_unchanged() -> None:
    """The draws a world makes: the same as with ``CTX.ln`` for a seeded generator (50,000 of them)."""
    a, b = random.Random(7), random.Random(7)
    mean = Decimal("12.5")
    for _ in range(50_000):
        got = exponential(a, mean)
        u = CTX.subtract(Decimal(1), Decimal(b.random()))
        assert got.as_tuple() == CTX.multiply(CTX.minus(CTX.ln(u)), mean).as_tuple()


def _floor_sum(base: Decimal, mean: Decimal, r: float) -> int:
    """What ``LatencyModel.sample_ns`` computed before: the Decimal sum's floor."""
    from decimal import ROUND_FLOOR

    return int(CTX.add(base, CTX.multiply(CTX.minus(ln(CTX.subtract(Decimal(1), Decimal(r)))), mean))
               .to_integral_value(ROUND_FLOOR))


@pytest.mark.parametrize("base_ms, jitter_ms", [("25", "5"), ("0.5", "0.25"), ("120", "40"), ("3", "0"), ("0", "1"),
                                                ("12.345678", "0.000001"), ("800", "250.5")])
def test_latency_draws_in_floats_floor_to_the_decimal_arithmetic_s(base_ms: str, jitter_ms: str) -> None:
    """``floor_exponential_ns`` (floats, Decimal when the floor is in doubt) against the Decimal sum's
    floor, draw for draw, 20,000 seeded draws per link (integral bases with no jitter, and the first
    draw of 0.0, are decided by the Decimal path)."""
    from tapedeck.sim import kernel

    base, mean = CTX.multiply(Decimal(base_ms), Decimal(10**6)), CTX.multiply(Decimal(jitter_ms), Decimal(10**6))
    fast, slow = random.Random(f"latency:{base_ms}:{jitter_ms}"), random.Random(f"latency:{base_ms}:{jitter_ms}")
    decided = []
    exact = kernel._exponential_of
    kernel._exponential_of = lambda r, m: decided.append(r) or exact(r, m)  # type: ignore[assignment]
    try:
        for _ in range(20_000):
            got = kernel.floor_exponential_ns(fast, base, mean)
            assert got == _floor_sum(base, mean, slow.random())
        assert kernel.floor_exponential_ns(_Fixed(0.0), base, mean) == _floor_sum(base, mean, 0.0)
    finally:
        kernel._exponential_of = exact  # type: ignore[assignment]
    if mean == 0 and base == base.to_integral_value():
        assert len(decided) == 20_001  # every sum is an integer: each one decided in Decimal
    else:
        assert len(decided) < 100  # the floats decide nearly all (a 800 ms link's margin is ~1e-4 ns)


class _Fixed:
    """A generator that draws ``r`` every time."""

    def __init__(self, r: float) -> None:
        self.r = r

    def random(self) -> float:
        return self.r
