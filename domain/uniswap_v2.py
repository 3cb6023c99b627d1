"""Uniswap V2 swap math, exact: ``UniswapV2Library.getAmountOut`` / ``getAmountIn`` (v2-periphery).

Integers in base units, floor division exactly as the Solidity. The fee is 30 bps (997/1000) on
the canonical pairs; ``fee_bps`` generalises it for forks (25 for a 0.25 % fork, ...).
``get_amount_out`` is proven equal to the largest output the real ``UniswapV2Pair`` bytecode
accepts in tests/test_uniswap_v2_parity.py.
"""
from __future__ import annotations

_BPS = 10_000


def _check_fee(fee_bps: int) -> None:
    if not 0 <= fee_bps < _BPS:
        raise ValueError(f"fee_bps must be in [0, {_BPS}), got {fee_bps}")


def _check_int(**values: int) -> None:
    for name, v in values.items():
        if type(v) is not int:
            raise TypeError(f"{name} must be an int in base units, got {type(v).__name__} {v!r}")


def get_amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> int:
    """Largest output the pair gives for ``amount_in`` (floor), as ``UniswapV2Library.getAmountOut``.

    Always ``< reserve_out``; may be 0 for dust inputs (the pair then refuses the swap).
    """
    _check_int(amount_in=amount_in, reserve_in=reserve_in, reserve_out=reserve_out, fee_bps=fee_bps)
    if amount_in <= 0:
        raise ValueError(f"INSUFFICIENT_INPUT_AMOUNT: amount_in {amount_in} must be > 0")
    if reserve_in <= 0 or reserve_out <= 0:
        raise ValueError(f"INSUFFICIENT_LIQUIDITY: reserves {reserve_in}, {reserve_out} must be > 0")
    _check_fee(fee_bps)
    with_fee = amount_in * (_BPS - fee_bps)
    return with_fee * reserve_out // (reserve_in * _BPS + with_fee)


def get_amount_in(amount_out: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> int:
    """Smallest input that buys ``amount_out``, as ``UniswapV2Library.getAmountIn`` (floor + 1).

    ``amount_out`` must be below ``reserve_out``.
    """
    _check_int(amount_out=amount_out, reserve_in=reserve_in, reserve_out=reserve_out, fee_bps=fee_bps)
    if amount_out <= 0:
        raise ValueError(f"INSUFFICIENT_OUTPUT_AMOUNT: amount_out {amount_out} must be > 0")
    if reserve_in <= 0 or reserve_out <= 0:
        raise ValueError(f"INSUFFICIENT_LIQUIDITY: reserves {reserve_in}, {reserve_out} must be > 0")
    if amount_out >= reserve_out:
        raise ValueError(f"INSUFFICIENT_LIQUIDITY: amount_out {amount_out} >= reserve_out {reserve_out}")
    _check_fee(fee_bps)
    return reserve_in * amount_out * _BPS // ((reserve_out - amount_out) * (_BPS - fee_bps)) + 1


def swap_exact_in(reserve0: int, reserve1: int, amount_in: int, zero_for_one: bool,
                  fee_bps: int = 30) -> tuple[int, int, int]:
    """``(amount_out, new_reserve0, new_reserve1)`` of an exact-input swap on a pair with these
    reserves: token0 in and token1 out if ``zero_for_one``, else the reverse.

    With ``amount_out == 0`` the real pair refuses the swap; the returned reserves are then those
    a ``sync`` would give.
    """
    if zero_for_one:
        out = get_amount_out(amount_in, reserve0, reserve1, fee_bps)
        return out, reserve0 + amount_in, reserve1 - out
    out = get_amount_out(amount_in, reserve1, reserve0, fee_bps)
    return out, reserve0 - out, reserve1 + amount_in
