"""Uniswap V2 swap math (domain/uniswap_v2.py): Uniswap's own test vectors and properties.

Vectors: ``swapTestCases`` of Uniswap/v2-core ``test/UniswapV2Pair.spec.ts`` (the largest output the
pair accepts: ``swap(out + 1)`` reverts with ``UniswapV2: K``) and the ``getAmountOut`` /
``getAmountIn`` cases of Uniswap/v2-periphery ``test/UniswapV2Router0{1,2}.spec.ts``.
The same function is checked against the real pair bytecode in tests/test_uniswap_v2_parity.py.
"""
from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tapedeck.domain.uniswap_v2 import get_amount_in, get_amount_out, swap_exact_in

E18 = 10**18
MAX_U112 = 2**112 - 1

reserves = st.integers(min_value=1, max_value=MAX_U112)
amounts = st.integers(min_value=1, max_value=MAX_U112)
fees = st.sampled_from([0, 1, 5, 25, 30, 100, 9_999])


def pair_accepts(reserve_in: int, reserve_out: int, amount_in: int, amount_out: int) -> bool:
    """``UniswapV2Pair.swap``'s own checks (v2-core 1.0.1): output below the reserve, then
    ``balanceInAdjusted * balanceOutAdjusted >= reserveIn * reserveOut * 1000**2`` with a
    0.3 % fee on the input. Written from the Solidity, independently of ``get_amount_out``."""
    if amount_out >= reserve_out:
        return False
    balance_in, balance_out = reserve_in + amount_in, reserve_out - amount_out
    adjusted_in = balance_in * 1000 - amount_in * 3
    adjusted_out = balance_out * 1000
    return adjusted_in * adjusted_out >= reserve_in * reserve_out * 1000**2


def largest_accepted_out(reserve_in: int, reserve_out: int, amount_in: int) -> int:
    lo, hi = 0, reserve_out - 1  # pair_accepts(lo) holds: zero output never lowers K
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if pair_accepts(reserve_in, reserve_out, amount_in, mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


# ----------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("swap_amount, reserve_in, reserve_out, expected", [
    (1 * E18, 5 * E18, 10 * E18, 1662497915624478906),
    (1 * E18, 10 * E18, 5 * E18, 453305446940074565),
    (2 * E18, 5 * E18, 10 * E18, 2851015155847869602),
    (2 * E18, 10 * E18, 5 * E18, 831248957812239453),
    (1 * E18, 10 * E18, 10 * E18, 906610893880149131),
    (1 * E18, 100 * E18, 100 * E18, 987158034397061298),
    (1 * E18, 1000 * E18, 1000 * E18, 996006981039903216),
])
def test_v2_core_swap_test_cases(swap_amount: int, reserve_in: int, reserve_out: int, expected: int) -> None:
    assert get_amount_out(swap_amount, reserve_in, reserve_out) == expected
    assert pair_accepts(reserve_in, reserve_out, swap_amount, expected)
    assert not pair_accepts(reserve_in, reserve_out, swap_amount, expected + 1)


def test_v2_periphery_router_cases() -> None:
    assert get_amount_out(2, 100, 100) == 1
    assert get_amount_in(1, 100, 100) == 2
    with pytest.raises(ValueError, match="INSUFFICIENT_INPUT_AMOUNT"):
        get_amount_out(0, 100, 100)
    with pytest.raises(ValueError, match="INSUFFICIENT_LIQUIDITY"):
        get_amount_out(2, 0, 100)
    with pytest.raises(ValueError, match="INSUFFICIENT_LIQUIDITY"):
        get_amount_out(2, 100, 0)
    with pytest.raises(ValueError, match="INSUFFICIENT_OUTPUT_AMOUNT"):
        get_amount_in(0, 100, 100)
    with pytest.raises(ValueError, match="INSUFFICIENT_LIQUIDITY"):
        get_amount_in(1, 0, 100)
    with pytest.raises(ValueError, match="INSUFFICIENT_LIQUIDITY"):
        get_amount_in(1, 100, 0)


def test_worked_examples() -> None:
    # 1 WETH into 100 WETH / 200,000 USDC: 997e18*200000e6 // (100e18*1000 + 997e18) = 1974.316068 USDC
    assert get_amount_out(E18, 100 * E18, 200_000 * 10**6) == 1_974_316_068
    # 1000 USDC out costs floor(1000e6*100e18*1000 / ((200000e6-1000e6)*997)) + 1 wei of WETH
    assert get_amount_in(1_000 * 10**6, 100 * E18, 200_000 * 10**6) == 504_024_636_724_243_082
    assert get_amount_out(1000, 10**6, 10**6) == 996
    assert get_amount_in(996, 10**6, 10**6) == 1000  # floor(999.993) + 1: the least input that buys 996
    assert get_amount_out(999, 10**6, 10**6) == 995
    # exact division (997*1*10000 / (10*9970) = 100): the library's floor + 1 asks one unit more than needed
    assert get_amount_in(1, 997, 11) == 101
    assert get_amount_out(100, 997, 11) == 1
    # no fee: the plain constant-product floor
    assert get_amount_out(E18, 10 * E18, 10 * E18, fee_bps=0) == 10 * E18 * E18 // (11 * E18)
    # a 0.25 % fork
    assert get_amount_out(10_000, 10**9, 10**9, fee_bps=25) == 10_000 * 9_975 * 10**9 // (10**9 * 10_000 + 10_000 * 9_975)


def test_swap_exact_in_moves_the_reserves_both_ways() -> None:
    out, r0, r1 = swap_exact_in(5 * E18, 10 * E18, E18, True)
    assert (out, r0, r1) == (1662497915624478906, 6 * E18, 10 * E18 - 1662497915624478906)
    out, r0, r1 = swap_exact_in(5 * E18, 10 * E18, E18, False)
    assert (out, r0, r1) == (453305446940074565, 5 * E18 - 453305446940074565, 11 * E18)
    assert swap_exact_in(10**6, 10**6, 1, True) == (0, 10**6 + 1, 10**6)  # dust buys nothing


@pytest.mark.parametrize("call", [
    lambda: get_amount_out(-1, 100, 100),
    lambda: get_amount_out(1, -100, 100),
    lambda: get_amount_in(-1, 100, 100),
    lambda: get_amount_in(100, 100, 100),  # the whole reserve
    lambda: get_amount_in(101, 100, 100),
    lambda: get_amount_out(1, 100, 100, fee_bps=-1),
    lambda: get_amount_out(1, 100, 100, fee_bps=10_000),
    lambda: get_amount_in(1, 100, 100, fee_bps=10_000),
    lambda: swap_exact_in(0, 100, 1, True),
    lambda: swap_exact_in(100, 100, 0, False),
])
def test_bad_inputs_raise_value_error(call) -> None:
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize("call", [
    lambda: get_amount_out(1.0, 100, 100),
    lambda: get_amount_out(1, 100.0, 100),
    lambda: get_amount_in(1, 100, 100.5),
])
def test_non_integers_raise_type_error(call) -> None:
    with pytest.raises(TypeError, match="base units"):
        call()


# ----------------------------------------------------------------------------- properties


@given(amounts, reserves, reserves)
def test_out_is_the_largest_output_the_pairs_k_check_accepts(amount_in: int, r_in: int, r_out: int) -> None:
    assume(r_in + amount_in <= MAX_U112)
    assert get_amount_out(amount_in, r_in, r_out) == largest_accepted_out(r_in, r_out, amount_in)


@given(amounts, reserves, reserves, fees)
def test_out_is_below_the_reserve(amount_in: int, r_in: int, r_out: int, fee: int) -> None:
    assert 0 <= get_amount_out(amount_in, r_in, r_out, fee) < r_out


@given(amounts, st.integers(min_value=0, max_value=MAX_U112), reserves, reserves, fees)
def test_out_is_monotone(amount_in: int, more: int, r_in: int, r_out: int, fee: int) -> None:
    out = get_amount_out(amount_in, r_in, r_out, fee)
    assert get_amount_out(amount_in + more, r_in, r_out, fee) >= out  # more in, not less out
    assert get_amount_out(amount_in, r_in + more, r_out, fee) <= out  # deeper input side, not more out
    assert get_amount_out(amount_in, r_in, r_out + more, fee) >= out  # deeper output side, not less out


@given(amounts, reserves, reserves, fees)
def test_get_amount_in_of_out_is_at_most_the_input_plus_one(amount_in: int, r_in: int, r_out: int, fee: int) -> None:
    """``get_amount_in(get_amount_out(x)) <= x`` does NOT hold in general: the library's
    ``floor(n/d) + 1`` overshoots by one when ``d`` divides ``n`` (e.g. ``get_amount_out(100, 997, 11)
    == 1`` but ``get_amount_in(1, 997, 11) == 101``). What holds: at most ``x + 1``, and ``x + 1``
    only on exact division."""
    out = get_amount_out(amount_in, r_in, r_out, fee)
    assume(out > 0)
    back = get_amount_in(out, r_in, r_out, fee)
    exact = (r_in * out * 10_000) % ((r_out - out) * (10_000 - fee)) == 0
    assert back <= amount_in + exact


@given(reserves, reserves, st.integers(min_value=1, max_value=MAX_U112), fees)
def test_get_amount_in_is_the_least_input_or_one_more(r_in: int, r_out: int, amount_out: int, fee: int) -> None:
    assume(amount_out < r_out)
    x = get_amount_in(amount_out, r_in, r_out, fee)
    assert get_amount_out(x, r_in, r_out, fee) >= amount_out  # it buys what was asked
    numerator, denominator = r_in * amount_out * 10_000, (r_out - amount_out) * (10_000 - fee)
    least = -(-numerator // denominator)  # the exact minimum: ceil
    assert x == least + (numerator % denominator == 0)  # the library's floor + 1 is one more on exact division
    if least > 1:
        assert get_amount_out(least - 1, r_in, r_out, fee) < amount_out


@given(reserves, reserves, amounts, st.booleans(), fees)
def test_swap_exact_in_keeps_k_and_mirrors(r0: int, r1: int, amount_in: int, zero_for_one: bool, fee: int) -> None:
    out, n0, n1 = swap_exact_in(r0, r1, amount_in, zero_for_one, fee)
    assert n0 > 0 and n1 > 0
    assert n0 * n1 >= r0 * r1  # the product never falls
    if zero_for_one:
        assert (n0, n1) == (r0 + amount_in, r1 - out)
    else:
        assert (n0, n1) == (r0 - out, r1 + amount_in)
    mirrored = swap_exact_in(r1, r0, amount_in, not zero_for_one, fee)
    assert mirrored == (out, n1, n0)
