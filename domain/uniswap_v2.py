"""Uniswap V2 swap math, exact: ``UniswapV2Library.getAmountOut`` / ``getAmountIn`` (v2-periphery).

The fee is 30 bps (997/1000) on the canonical pairs; ``fee_bps`` generalises it for forks.
Proven equal to the real ``UniswapV2Pair`` bytecode in tests/test_uniswap_v2_parity.py.
"""
from __future__ import annotations


def get_amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> int:
    """Largest output the pair accepts for ``amount_in`` (floor)."""
    if amount_in <= 0:
        raise ValueError(f"INSUFFICIENT_INPUT_AMOUNT: amount_in {amount_in}")
    if reserve_in <= 0 or reserve_out <= 0:
        raise ValueError(f"INSUFFICIENT_LIQUIDITY: reserves {reserve_in}, {reserve_out}")
    with_fee = amount_in * (10_000 - fee_bps)
    return with_fee * reserve_out // (reserve_in * 10_000 + with_fee)


def get_amount_in(amount_out: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> int:
    """Smallest input that buys ``amount_out`` (the library's formula, +1)."""
    if amount_out <= 0:
        raise ValueError(f"INSUFFICIENT_OUTPUT_AMOUNT: amount_out {amount_out}")
    if reserve_in <= 0 or reserve_out <= amount_out:
        raise ValueError(f"INSUFFICIENT_LIQUIDITY: reserves {reserve_in}, {reserve_out} for {amount_out} out")
    return reserve_in * amount_out * 10_000 // ((reserve_out - amount_out) * (10_000 - fee_bps)) + 1


def swap_exact_in(reserve0: int, reserve1: int, amount_in: int, zero_for_one: bool) -> tuple[int, int, int]:
    """(amount_out, new_reserve0, new_reserve1) of an exact-input swap."""
    if zero_for_one:
        out = get_amount_out(amount_in, reserve0, reserve1)
        return out, reserve0 + amount_in, reserve1 - out
    out = get_amount_out(amount_in, reserve1, reserve0)
    return out, reserve0 - out, reserve1 + amount_in
