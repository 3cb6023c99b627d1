"""Uniswap V3 math, exact: an integer port of v3-core's libraries, and the pool state folded from logs.

Ported from Uniswap/v3-core @ d8b1c635 (``contracts/libraries/FullMath.sol``, ``TickMath.sol``,
``SqrtPriceMath.sol``, ``SwapMath.sol``; ``UniswapV3Pool.sol`` for ``swap`` and ``_modifyPosition``).
Every function returns what the contract returns, and raises :class:`V3MathError` where the contract
reverts (a failed ``require``, a checked overflow, a failed ``SafeCast``). Python ints do not wrap,
so each place where Solidity would overflow 256 or 160 bits is checked explicitly.

Amounts, prices (Q64.96 square roots) and liquidity are ints; nothing here does I/O.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

from tapedeck.domain import events as ev

MAX_UINT256 = (1 << 256) - 1
MAX_UINT160 = (1 << 160) - 1
MAX_UINT128 = (1 << 128) - 1
Q96 = 1 << 96
RESOLUTION = 96

MIN_TICK = -887272
MAX_TICK = 887272
MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342


class V3MathError(ArithmeticError):
    """Where the contract would revert (require failed, checked overflow, bad cast)."""


# ----------------------------------------------------------------------------- FullMath


def mul_div(a: int, b: int, denominator: int) -> int:
    """``FullMath.mulDiv``: floor(a*b/denominator) at full precision; reverts if 0 or > 2^256-1."""
    if denominator <= 0:
        raise V3MathError("mulDiv: denominator is 0")
    result = a * b // denominator
    if result > MAX_UINT256:
        raise V3MathError("mulDiv: result overflows uint256")
    return result


def mul_div_rounding_up(a: int, b: int, denominator: int) -> int:
    """``FullMath.mulDivRoundingUp``: ceil(a*b/denominator); reverts like the contract."""
    if denominator <= 0:
        raise V3MathError("mulDivRoundingUp: denominator is 0")
    q, r = divmod(a * b, denominator)
    if q > MAX_UINT256:
        raise V3MathError("mulDivRoundingUp: result overflows uint256")
    if r:
        if q >= MAX_UINT256:
            raise V3MathError("mulDivRoundingUp: result overflows uint256")
        q += 1
    return q


def _div_rounding_up(x: int, y: int) -> int:
    """``UnsafeMath.divRoundingUp`` (EVM ``div`` by 0 is 0)."""
    if y == 0:
        return 0
    q, r = divmod(x, y)
    return q + (1 if r else 0)


# ----------------------------------------------------------------------------- TickMath

_TICK_FACTORS = (
    (0x2, 0xFFF97272373D413259A46990580E213A),
    (0x4, 0xFFF2E50F5F656932EF12357CF3C7FDCC),
    (0x8, 0xFFE5CACA7E10E4E61C3624EAA0941CD0),
    (0x10, 0xFFCB9843D60F6159C9DB58835C926644),
    (0x20, 0xFF973B41FA98C081472E6896DFB254C0),
    (0x40, 0xFF2EA16466C96A3843EC78B326B52861),
    (0x80, 0xFE5DEE046A99A2A811C461F1969C3053),
    (0x100, 0xFCBE86C7900A88AEDCFFC83B479AA3A4),
    (0x200, 0xF987A7253AC413176F2B074CF7815E54),
    (0x400, 0xF3392B0822B70005940C7A398E4B70F3),
    (0x800, 0xE7159475A2C29B7443B29C7FA6E889D9),
    (0x1000, 0xD097F3BDFD2022B8845AD8F792AA5825),
    (0x2000, 0xA9F746462D870FDF8A65DC1F90E061E5),
    (0x4000, 0x70D869A156D2A1B890BB3DF62BAF32F7),
    (0x8000, 0x31BE135F97D08FD981231505542FCFA6),
    (0x10000, 0x9AA508B5B7A84E1C677DE54F3E99BC9),
    (0x20000, 0x5D6AF8DEDB81196699C329225EE604),
    (0x40000, 0x2216E584F5FA1EA926041BEDFE98),
    (0x80000, 0x48A170391F7DC42444E8FA2),
)


@lru_cache(maxsize=8192)
def get_sqrt_ratio_at_tick(tick: int) -> int:
    """``TickMath.getSqrtRatioAtTick``: sqrt(1.0001^tick) * 2^96, rounded up as the contract does."""
    abs_tick = -tick if tick < 0 else tick
    if abs_tick > MAX_TICK:
        raise V3MathError("T")
    ratio = 0xFFFCB933BD6FAD37AA2D162D1A594001 if abs_tick & 0x1 else 0x100000000000000000000000000000000
    for bit, factor in _TICK_FACTORS:
        if abs_tick & bit:
            ratio = (ratio * factor) >> 128
    if tick > 0:
        ratio = MAX_UINT256 // ratio
    return (ratio >> 32) + (0 if ratio % (1 << 32) == 0 else 1)


def get_tick_at_sqrt_ratio(sqrt_price_x96: int) -> int:
    """``TickMath.getTickAtSqrtRatio``: the greatest tick whose sqrt ratio is <= the input."""
    if not (MIN_SQRT_RATIO <= sqrt_price_x96 < MAX_SQRT_RATIO):
        raise V3MathError("R")
    ratio = sqrt_price_x96 << 32

    # most significant bit, by the contract's binary search
    r = ratio
    msb = 0
    for shift, bound in ((7, (1 << 128) - 1), (6, (1 << 64) - 1), (5, (1 << 32) - 1), (4, 0xFFFF),
                         (3, 0xFF), (2, 0xF), (1, 0x3)):
        f = (1 << shift) if r > bound else 0
        msb |= f
        r >>= f
    msb |= 1 if r > 0x1 else 0

    r = ratio >> (msb - 127) if msb >= 128 else ratio << (127 - msb)
    log_2 = (msb - 128) << 64  # int256, two's complement semantics hold for Python ints

    for bit in range(63, 49, -1):  # 14 squarings: bits 63..50 of the fractional part
        r = (r * r) >> 127
        f = r >> 128
        log_2 |= f << bit
        r >>= f

    log_sqrt10001 = log_2 * 255738958999603826347141  # Q128.128
    tick_low = (log_sqrt10001 - 3402992956809132418596140100660247210) >> 128
    tick_hi = (log_sqrt10001 + 291339464771989622907027621153398088495) >> 128
    if tick_low == tick_hi:
        return tick_low
    return tick_hi if get_sqrt_ratio_at_tick(tick_hi) <= sqrt_price_x96 else tick_low


# ----------------------------------------------------------------------------- SqrtPriceMath


def _to_uint160(x: int) -> int:
    if x > MAX_UINT160:
        raise V3MathError("SafeCast: value does not fit uint160")
    return x


def get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96: int, liquidity: int, amount: int, add: bool) -> int:
    """``SqrtPriceMath.getNextSqrtPriceFromAmount0RoundingUp`` including the overflow fallback."""
    if amount == 0:
        return sqrt_px96
    numerator1 = liquidity << RESOLUTION
    product = amount * sqrt_px96
    if add:
        if product <= MAX_UINT256:  # `(product = amount * sqrtPX96) / amount == sqrtPX96`
            denominator = numerator1 + product
            if denominator <= MAX_UINT256:  # `denominator >= numerator1`: the sum did not wrap
                return mul_div_rounding_up(numerator1, sqrt_px96, denominator)
        # liquidity / (liquidity / sqrtP + amount), rounded up; `.add` is checked
        if sqrt_px96 == 0:
            raise V3MathError("division by zero")
        d = numerator1 // sqrt_px96 + amount
        if d > MAX_UINT256:
            raise V3MathError("LowGasSafeMath: add overflow")
        return _div_rounding_up(numerator1, d)
    if product > MAX_UINT256 or numerator1 <= product:
        raise V3MathError("getNextSqrtPriceFromAmount0RoundingUp: output exceeds virtual reserves")
    return _to_uint160(mul_div_rounding_up(numerator1, sqrt_px96, numerator1 - product))


def get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96: int, liquidity: int, amount: int, add: bool) -> int:
    """``SqrtPriceMath.getNextSqrtPriceFromAmount1RoundingDown``."""
    if add:
        if liquidity == 0:
            raise V3MathError("division by zero")
        quotient = (amount << RESOLUTION) // liquidity if amount <= MAX_UINT160 else mul_div(amount, Q96, liquidity)
        s = sqrt_px96 + quotient
        if s > MAX_UINT256:
            raise V3MathError("LowGasSafeMath: add overflow")
        return _to_uint160(s)
    quotient = (_div_rounding_up(amount << RESOLUTION, liquidity) if amount <= MAX_UINT160
                else mul_div_rounding_up(amount, Q96, liquidity))
    if sqrt_px96 <= quotient:
        raise V3MathError("getNextSqrtPriceFromAmount1RoundingDown: output exceeds virtual reserves")
    return sqrt_px96 - quotient


def get_next_sqrt_price_from_input(sqrt_px96: int, liquidity: int, amount_in: int, zero_for_one: bool) -> int:
    """``SqrtPriceMath.getNextSqrtPriceFromInput``: rounds so that the target price is never passed."""
    if sqrt_px96 <= 0 or liquidity <= 0:
        raise V3MathError("getNextSqrtPriceFromInput: price and liquidity must be > 0")
    if zero_for_one:
        return get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96, liquidity, amount_in, True)
    return get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96, liquidity, amount_in, True)


def get_next_sqrt_price_from_output(sqrt_px96: int, liquidity: int, amount_out: int, zero_for_one: bool) -> int:
    """``SqrtPriceMath.getNextSqrtPriceFromOutput``: rounds so that the target price is passed."""
    if sqrt_px96 <= 0 or liquidity <= 0:
        raise V3MathError("getNextSqrtPriceFromOutput: price and liquidity must be > 0")
    if zero_for_one:
        return get_next_sqrt_price_from_amount1_rounding_down(sqrt_px96, liquidity, amount_out, False)
    return get_next_sqrt_price_from_amount0_rounding_up(sqrt_px96, liquidity, amount_out, False)


def get_amount0_delta(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity: int, round_up: bool) -> int:
    """``SqrtPriceMath.getAmount0Delta`` (unsigned): L * (sqrtB - sqrtA) / (sqrtA * sqrtB)."""
    if sqrt_ratio_a_x96 > sqrt_ratio_b_x96:
        sqrt_ratio_a_x96, sqrt_ratio_b_x96 = sqrt_ratio_b_x96, sqrt_ratio_a_x96
    if sqrt_ratio_a_x96 <= 0:
        raise V3MathError("getAmount0Delta: sqrt ratio is 0")
    numerator1 = liquidity << RESOLUTION
    numerator2 = sqrt_ratio_b_x96 - sqrt_ratio_a_x96
    if round_up:
        return _div_rounding_up(mul_div_rounding_up(numerator1, numerator2, sqrt_ratio_b_x96), sqrt_ratio_a_x96)
    return mul_div(numerator1, numerator2, sqrt_ratio_b_x96) // sqrt_ratio_a_x96


def get_amount1_delta(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity: int, round_up: bool) -> int:
    """``SqrtPriceMath.getAmount1Delta`` (unsigned): L * (sqrtB - sqrtA) / 2^96."""
    if sqrt_ratio_a_x96 > sqrt_ratio_b_x96:
        sqrt_ratio_a_x96, sqrt_ratio_b_x96 = sqrt_ratio_b_x96, sqrt_ratio_a_x96
    if round_up:
        return mul_div_rounding_up(liquidity, sqrt_ratio_b_x96 - sqrt_ratio_a_x96, Q96)
    return mul_div(liquidity, sqrt_ratio_b_x96 - sqrt_ratio_a_x96, Q96)


def get_amount0_delta_signed(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity_delta: int) -> int:
    """Signed helper used by mint/burn: rounds up when adding liquidity, down (then negated) when removing."""
    if liquidity_delta < 0:
        return -get_amount0_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, -liquidity_delta, False)
    return get_amount0_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity_delta, True)


def get_amount1_delta_signed(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity_delta: int) -> int:
    if liquidity_delta < 0:
        return -get_amount1_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, -liquidity_delta, False)
    return get_amount1_delta(sqrt_ratio_a_x96, sqrt_ratio_b_x96, liquidity_delta, True)


def position_amounts(sqrt_price_x96: int, tick: int, tick_lower: int, tick_upper: int,
                     liquidity_delta: int) -> tuple[int, int]:
    """Token amounts of a mint (delta > 0, rounded up) or burn (delta < 0, rounded down, negative),
    as ``UniswapV3Pool._modifyPosition`` computes them from the pool's current price and tick."""
    if liquidity_delta == 0:
        return 0, 0
    sa = get_sqrt_ratio_at_tick(tick_lower)
    sb = get_sqrt_ratio_at_tick(tick_upper)
    if tick < tick_lower:
        return get_amount0_delta_signed(sa, sb, liquidity_delta), 0
    if tick < tick_upper:
        return (get_amount0_delta_signed(sqrt_price_x96, sb, liquidity_delta),
                get_amount1_delta_signed(sa, sqrt_price_x96, liquidity_delta))
    return 0, get_amount1_delta_signed(sa, sb, liquidity_delta)


# ----------------------------------------------------------------------------- SwapMath


def compute_swap_step(sqrt_ratio_current_x96: int, sqrt_ratio_target_x96: int, liquidity: int,
                      amount_remaining: int, fee_pips: int) -> tuple[int, int, int, int]:
    """``SwapMath.computeSwapStep`` -> ``(sqrt_next, amount_in, amount_out, fee_amount)``.

    The direction comes from the prices (``current >= target`` is zero-for-one); exact-in when
    ``amount_remaining >= 0``, exact-out otherwise, as in the contract.
    """
    zero_for_one = sqrt_ratio_current_x96 >= sqrt_ratio_target_x96
    exact_in = amount_remaining >= 0
    amount_in = amount_out = 0

    if exact_in:
        amount_remaining_less_fee = mul_div(amount_remaining, 1_000_000 - fee_pips, 1_000_000)
        amount_in = (get_amount0_delta(sqrt_ratio_target_x96, sqrt_ratio_current_x96, liquidity, True) if zero_for_one
                     else get_amount1_delta(sqrt_ratio_current_x96, sqrt_ratio_target_x96, liquidity, True))
        if amount_remaining_less_fee >= amount_in:
            sqrt_next = sqrt_ratio_target_x96
        else:
            sqrt_next = get_next_sqrt_price_from_input(sqrt_ratio_current_x96, liquidity, amount_remaining_less_fee,
                                                       zero_for_one)
    else:
        amount_out = (get_amount1_delta(sqrt_ratio_target_x96, sqrt_ratio_current_x96, liquidity, False) if zero_for_one
                      else get_amount0_delta(sqrt_ratio_current_x96, sqrt_ratio_target_x96, liquidity, False))
        if -amount_remaining >= amount_out:
            sqrt_next = sqrt_ratio_target_x96
        else:
            sqrt_next = get_next_sqrt_price_from_output(sqrt_ratio_current_x96, liquidity, -amount_remaining,
                                                        zero_for_one)

    reached = sqrt_ratio_target_x96 == sqrt_next
    if zero_for_one:
        if not (reached and exact_in):
            amount_in = get_amount0_delta(sqrt_next, sqrt_ratio_current_x96, liquidity, True)
        if not (reached and not exact_in):
            amount_out = get_amount1_delta(sqrt_next, sqrt_ratio_current_x96, liquidity, False)
    else:
        if not (reached and exact_in):
            amount_in = get_amount1_delta(sqrt_ratio_current_x96, sqrt_next, liquidity, True)
        if not (reached and not exact_in):
            amount_out = get_amount0_delta(sqrt_ratio_current_x96, sqrt_next, liquidity, False)

    if not exact_in and amount_out > -amount_remaining:
        amount_out = -amount_remaining

    if exact_in and sqrt_next != sqrt_ratio_target_x96:
        fee_amount = amount_remaining - amount_in  # target not reached: the rest of the input is fee
    else:
        fee_amount = mul_div_rounding_up(amount_in, fee_pips, 1_000_000 - fee_pips)
    return sqrt_next, amount_in, amount_out, fee_amount


# ----------------------------------------------------------------------------- a swap inside one interval


@dataclass(frozen=True, slots=True)
class V3SwapResult:
    """Outcome of :func:`swap_within_range`.

    ``amount0``/``amount1`` are pool balance deltas with the contract's signs (positive: the pool
    receives). ``fee`` is the whole fee in the input token (protocol share included).
    ``reached_edge``: the price stopped at the interval's edge (or at the given price limit), so
    part of the specified amount may be left; a caller must not assume the whole amount was swapped.
    ``tick`` is the pool's tick after the swap, as the contract would set it.
    """

    amount0: int
    amount1: int
    sqrt_price_x96: int
    fee: int
    reached_edge: bool
    tick: int


def tick_spacing_interval(tick: int, tick_spacing: int) -> tuple[int, int]:
    """``[lower, upper]`` of the tick-spacing interval holding ``tick`` (clamped to MIN/MAX_TICK).
    No initialized tick lies strictly inside it, so in-range liquidity is constant across it."""
    if tick_spacing <= 0:
        raise ValueError("tick_spacing must be > 0")
    lower = (tick // tick_spacing) * tick_spacing  # floor, also for negative ticks
    return max(lower, MIN_TICK), min(lower + tick_spacing, MAX_TICK)


def swap_within_range(sqrt_price_x96: int, liquidity: int, tick: int, tick_spacing: int, fee_pips: int,
                      amount_specified: int, zero_for_one: bool, *,
                      sqrt_price_limit_x96: int | None = None) -> V3SwapResult:
    """A swap that stays inside the current tick-spacing interval, where liquidity is constant.

    Exact-in when ``amount_specified > 0``, exact-out when ``< 0`` (as ``UniswapV3Pool.swap``).
    The price target is the interval's lower edge (zero-for-one) or upper edge, or the optional
    price limit if that is nearer. The result equals the pool's for any swap that does not need to
    go past that target; ``reached_edge`` says the target was reached.
    """
    if amount_specified == 0:
        raise V3MathError("AS")  # the pool reverts on a zero amount
    lower, upper = tick_spacing_interval(tick, tick_spacing)
    sqrt_lower = get_sqrt_ratio_at_tick(lower)
    sqrt_upper = get_sqrt_ratio_at_tick(upper)
    if not (sqrt_lower <= sqrt_price_x96 <= sqrt_upper):
        raise ValueError(f"sqrt price {sqrt_price_x96} is outside the interval [{lower}, {upper}] of tick {tick}")
    if zero_for_one:
        target, edge_tick = sqrt_lower, lower - 1
        if sqrt_price_limit_x96 is not None and sqrt_price_limit_x96 > target:
            if sqrt_price_limit_x96 >= sqrt_price_x96:
                raise V3MathError("SPL")
            target, edge_tick = sqrt_price_limit_x96, None
    else:
        target, edge_tick = sqrt_upper, upper
        if sqrt_price_limit_x96 is not None and sqrt_price_limit_x96 < target:
            if sqrt_price_limit_x96 <= sqrt_price_x96:
                raise V3MathError("SPL")
            target, edge_tick = sqrt_price_limit_x96, None

    if sqrt_price_x96 == target:  # already at the edge in the direction of travel: nothing moves
        return V3SwapResult(0, 0, sqrt_price_x96, 0, True, tick if edge_tick is None else edge_tick)

    sqrt_next, amount_in, amount_out, fee = compute_swap_step(sqrt_price_x96, target, liquidity, amount_specified,
                                                              fee_pips)
    reached = sqrt_next == target
    if reached and edge_tick is not None:
        new_tick = edge_tick
    elif sqrt_next != sqrt_price_x96:
        new_tick = get_tick_at_sqrt_ratio(sqrt_next)
    else:
        new_tick = tick
    paid = amount_in + fee
    if zero_for_one:
        a0, a1 = paid, -amount_out
    else:
        a0, a1 = -amount_out, paid
    return V3SwapResult(a0, a1, sqrt_next, fee, reached, new_tick)


# ----------------------------------------------------------------------------- ticks and a swap across them


def add_delta(x: int, y: int) -> int:
    """``LiquidityMath.addDelta``: ``x + y`` for uint128 ``x``, int128 ``y``; reverts ``LS``/``LA``."""
    z = x + y
    if y < 0 and z < 0:
        raise V3MathError("LS")
    if y >= 0 and z > MAX_UINT128:
        raise V3MathError("LA")
    return z


class TickTable:
    """The initialized ticks of one pool: ``liquidityGross`` and ``liquidityNet`` per tick and the
    ``TickBitmap`` over ``tick // tick_spacing`` (word ``compressed >> 8``, bit ``compressed % 256``),
    kept as ``UniswapV3Pool._updatePosition`` keeps them: a tick is initialized while its gross
    liquidity is not 0 (its net may be 0), and its bit flips when that changes.

    Why the bitmap and not a sorted list: a swap step ends at the next initialized tick *within one
    bitmap word* (``nextInitializedTickWithinOneWord``), so word boundaries are step boundaries and
    change the rounding; walking the same words as the pool is what makes the amounts exact.
    """

    __slots__ = ("spacing", "gross", "net", "bitmap")

    def __init__(self, tick_spacing: int) -> None:
        if tick_spacing <= 0:
            raise ValueError(f"tick_spacing must be > 0, got {tick_spacing}")
        self.spacing = tick_spacing
        self.gross: dict[int, int] = {}
        self.net: dict[int, int] = {}
        self.bitmap: dict[int, int] = {}  # word position -> 256 bits

    @classmethod
    def from_ticks(cls, tick_spacing: int, ticks: Iterable[tuple[int, int, int]]) -> "TickTable":
        """From ``(tick, liquidity_gross, liquidity_net)`` triples (a pool snapshot); gross 0 is skipped."""
        t = cls(tick_spacing)
        for tick, gross, net in ticks:
            t._check_tick(tick)
            if gross < 0 or gross > MAX_UINT128 or abs(net) > gross:
                raise ValueError(f"tick {tick}: liquidity gross {gross} / net {net} are not a pool's")
            if gross:
                t.gross[tick], t.net[tick] = gross, net
                t._flip(tick)
        return t

    def copy(self) -> "TickTable":
        c = TickTable(self.spacing)
        c.gross, c.net, c.bitmap = dict(self.gross), dict(self.net), dict(self.bitmap)
        return c

    def _check_tick(self, tick: int) -> None:
        if not (MIN_TICK <= tick <= MAX_TICK) or tick % self.spacing:
            raise ValueError(f"tick {tick} is not a usable tick for spacing {self.spacing}")

    def _flip(self, tick: int) -> None:
        compressed = tick // self.spacing
        word, bit = compressed >> 8, compressed & 0xFF
        v = self.bitmap.get(word, 0) ^ (1 << bit)
        if v:
            self.bitmap[word] = v
        else:
            del self.bitmap[word]

    def update(self, tick_lower: int, tick_upper: int, liquidity_delta: int) -> None:
        """A position's change (``+amount`` for a Mint, ``-amount`` for a Burn): gross at both
        ends, net ``+delta`` at the lower and ``-delta`` at the upper, as ``Tick.update``. Raises
        ``V3MathError`` where the pool would revert (``LS``/``LA``, ``TLU``/``TLM``/``TUM``)."""
        if tick_lower >= tick_upper:
            raise V3MathError("TLU")
        if tick_lower < MIN_TICK:
            raise V3MathError("TLM")
        if tick_upper > MAX_TICK:
            raise V3MathError("TUM")
        if liquidity_delta == 0:
            return
        for tick, net_delta in ((tick_lower, liquidity_delta), (tick_upper, -liquidity_delta)):
            before = self.gross.get(tick, 0)
            after = add_delta(before, liquidity_delta)
            if after == 0:
                self.gross.pop(tick, None)
                self.net.pop(tick, None)
            else:
                self.gross[tick] = after
                self.net[tick] = self.net.get(tick, 0) + net_delta
            if (before == 0) != (after == 0):
                self._flip(tick)

    def next_initialized_tick_within_one_word(self, tick: int, lte: bool) -> tuple[int, bool]:
        """``TickBitmap.nextInitializedTickWithinOneWord``: the next initialized tick at or left of
        ``tick`` (``lte``) or right of it, within the word holding it, else that word's last tick."""
        spacing = self.spacing
        compressed = tick // spacing  # floor: the contract rounds negative ticks towards -infinity
        if lte:
            word, bit = compressed >> 8, compressed & 0xFF
            masked = self.bitmap.get(word, 0) & ((2 << bit) - 1)
            if masked:
                return (compressed - (bit - (masked.bit_length() - 1))) * spacing, True
            return (compressed - bit) * spacing, False
        compressed += 1
        word, bit = compressed >> 8, compressed & 0xFF
        masked = self.bitmap.get(word, 0) >> bit << bit
        if masked:
            return (compressed + ((masked & -masked).bit_length() - 1 - bit)) * spacing, True
        return (compressed + 255 - bit) * spacing, False

    def items(self) -> list[tuple[int, int, int]]:
        """``(tick, gross, net)`` in tick order (what a snapshot records)."""
        return [(t, self.gross[t], self.net[t]) for t in sorted(self.gross)]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TickTable):
            return NotImplemented
        return (self.spacing, self.gross, self.net) == (other.spacing, other.gross, other.net)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __len__(self) -> int:
        return len(self.gross)


@dataclass(frozen=True, slots=True)
class V3Swap:
    """Outcome of :func:`swap`: pool balance deltas with the contract's signs (positive: the pool
    receives), the pool's price, tick and in-range liquidity afterwards, and what it walked:
    ``steps`` (``computeSwapStep`` calls), ``crossed`` (initialized ticks crossed), ``words``
    (bitmap-word boundaries stepped onto without an initialized tick)."""

    amount0: int
    amount1: int
    sqrt_price_x96: int
    tick: int
    liquidity: int
    fee: int
    steps: int
    crossed: int
    words: int


def swap(sqrt_price_x96: int, tick: int, liquidity: int, ticks: TickTable, fee_pips: int, amount_specified: int,
         zero_for_one: bool, sqrt_price_limit_x96: int | None = None) -> V3Swap:
    """``UniswapV3Pool.swap``'s amounts and end state, across as many ticks as it crosses.

    Exact-in when ``amount_specified > 0``, exact-out when ``< 0``. Without a limit the swap may
    run to the extreme price (``MIN_SQRT_RATIO + 1`` / ``MAX_SQRT_RATIO - 1``, what routers pass),
    so it stops early only where liquidity runs out: compare the specified amount with what was
    paid. Each step ends at the next initialized tick within one bitmap word, the price limit, or
    where the amount runs out (``compute_swap_step``); crossing an initialized tick adds its
    ``liquidityNet`` (subtracts, going down). Fee growth, oracle observations and the protocol's
    share change no amount and are not modelled. Raises ``V3MathError`` where the pool reverts
    (``AS``, ``SPL``, ``LS``/``LA``, the math's own)."""
    if amount_specified == 0:
        raise V3MathError("AS")
    if sqrt_price_limit_x96 is None:
        sqrt_price_limit_x96 = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
    limit = sqrt_price_limit_x96
    if zero_for_one:
        if not (MIN_SQRT_RATIO < limit < sqrt_price_x96):
            raise V3MathError("SPL")
    elif not (sqrt_price_x96 < limit < MAX_SQRT_RATIO):
        raise V3MathError("SPL")
    exact_in = amount_specified > 0
    remaining, calculated, fees = amount_specified, 0, 0
    sqrt_p, lq = sqrt_price_x96, liquidity
    steps = crossed = words = 0
    next_tick = ticks.next_initialized_tick_within_one_word
    while remaining != 0 and sqrt_p != limit:
        start = sqrt_p
        tick_next, initialized = next_tick(tick, zero_for_one)
        if tick_next < MIN_TICK:
            tick_next = MIN_TICK
        elif tick_next > MAX_TICK:
            tick_next = MAX_TICK
        sqrt_next = get_sqrt_ratio_at_tick(tick_next)
        target = limit if (sqrt_next < limit if zero_for_one else sqrt_next > limit) else sqrt_next
        sqrt_p, a_in, a_out, fee = compute_swap_step(sqrt_p, target, lq, remaining, fee_pips)
        steps += 1
        fees += fee
        if exact_in:
            remaining -= a_in + fee
            calculated -= a_out
        else:
            remaining += a_out
            calculated += a_in + fee
        if sqrt_p == sqrt_next:
            if initialized:
                net = ticks.net[tick_next]
                lq = add_delta(lq, -net if zero_for_one else net)
                crossed += 1
            else:
                words += 1
            tick = tick_next - 1 if zero_for_one else tick_next
        elif sqrt_p != start:
            tick = get_tick_at_sqrt_ratio(sqrt_p)
    if zero_for_one == exact_in:
        a0, a1 = amount_specified - remaining, calculated
    else:
        a0, a1 = calculated, amount_specified - remaining
    return V3Swap(a0, a1, sqrt_p, tick, lq, fees, steps, crossed, words)


# ----------------------------------------------------------------------------- pool state from logs


class V3PoolState:
    """Price, tick and in-range liquidity of one V3 pool, folded from its logs, and its initialized
    ticks where they are known.

    * ``V3Swapped`` sets all three from the log (the log carries the post-swap values);
    * ``V3Minted``/``V3Burned`` add/remove ``amount`` to in-range liquidity when
      ``tick_lower <= tick < tick_upper`` (``UniswapV3Pool._modifyPosition``, with the pool's tick);
    * ``V3Collected`` changes nothing;
    * ``V3PoolSnapshot`` (a read of the whole pool: slot0, liquidity, every initialized tick) sets
      everything, ticks included.

    ``ticks`` (a :class:`TickTable`) is ``None`` until a snapshot (or a constructor given ``ticks``,
    e.g. a pool just initialized: an empty table) says what every initialized tick holds; from then
    on each Mint/Burn also updates it, so :meth:`swap` can run across ticks exactly. A state known
    only from swap logs keeps ``ticks`` ``None``: its liquidity is known only inside the current
    tick-spacing interval (``swap_within_range``).

    Until the first swap the values are unknown (``None``; ``known`` is False) and mints/burns
    cannot be applied. A burn that would take liquidity below 0 (or a mint above uint128) means
    the logs and the state disagree: the state becomes unknown again, until the next swap, and
    ``inconsistencies`` counts it (a tick table that disagrees is dropped the same way).
    """

    __slots__ = ("sqrt_price_x96", "tick", "liquidity", "inconsistencies", "ticks")

    def __init__(self, sqrt_price_x96: int | None = None, tick: int | None = None,
                 liquidity: int | None = None, ticks: TickTable | None = None) -> None:
        if (sqrt_price_x96 is None) != (tick is None) or (tick is None) != (liquidity is None):
            raise ValueError("sqrt_price_x96, tick and liquidity are known together or not at all")
        if ticks is not None and liquidity is None:
            raise ValueError("a tick table needs the pool's price, tick and liquidity")
        self.sqrt_price_x96 = sqrt_price_x96
        self.tick = tick
        self.liquidity = liquidity
        self.inconsistencies = 0
        self.ticks = ticks

    @property
    def known(self) -> bool:
        return self.liquidity is not None

    def apply(self, e: ev.Event) -> None:
        if isinstance(e, ev.V3Swapped):
            self.sqrt_price_x96, self.tick, self.liquidity = e.sqrt_price_x96, e.tick, e.liquidity
        elif isinstance(e, (ev.V3Minted, ev.V3Burned)):
            if self.liquidity is None or e.amount == 0:
                return
            delta = e.amount if isinstance(e, ev.V3Minted) else -e.amount
            if self.ticks is not None:
                try:
                    self.ticks.update(e.tick_lower, e.tick_upper, delta)
                except (V3MathError, ValueError):
                    self.ticks = None
                    self.inconsistencies += 1
            if e.tick_lower <= self.tick < e.tick_upper:  # type: ignore[operator]
                new = self.liquidity + delta
                if 0 <= new <= MAX_UINT128:
                    self.liquidity = new
                else:
                    self.sqrt_price_x96 = self.tick = self.liquidity = None
                    self.ticks = None
                    self.inconsistencies += 1
        elif isinstance(e, ev.V3PoolSnapshot):
            self.sqrt_price_x96, self.tick, self.liquidity = e.sqrt_price_x96, e.tick, e.liquidity
            try:
                self.ticks = TickTable.from_ticks(e.tick_spacing, e.ticks)
            except ValueError:
                self.ticks = None
                self.inconsistencies += 1
        # V3Collected and anything else: no change

    def swap(self, fee_pips: int, amount_specified: int, zero_for_one: bool,
             sqrt_price_limit_x96: int | None = None) -> V3Swap:
        """:func:`swap` on this state (its ticks must be known: ``ticks`` not ``None``)."""
        if self.ticks is None or self.liquidity is None:
            raise ValueError("this pool's ticks are not known (no snapshot): only swap_within_range can price it")
        return swap(self.sqrt_price_x96, self.tick, self.liquidity, self.ticks, fee_pips,  # type: ignore[arg-type]
                    amount_specified, zero_for_one, sqrt_price_limit_x96)

    def copy(self) -> V3PoolState:
        c = V3PoolState(self.sqrt_price_x96, self.tick, self.liquidity,
                        None if self.ticks is None else self.ticks.copy())
        c.inconsistencies = self.inconsistencies
        return c

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, V3PoolState):
            return NotImplemented
        return ((self.sqrt_price_x96, self.tick, self.liquidity, self.ticks)
                == (other.sqrt_price_x96, other.tick, other.liquidity, other.ticks))

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        ticks = "" if self.ticks is None else f", ticks={len(self.ticks)} initialized"
        return (f"V3PoolState(sqrt_price_x96={self.sqrt_price_x96}, tick={self.tick}, "
                f"liquidity={self.liquidity}{ticks})")
