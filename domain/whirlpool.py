"""Orca Whirlpool swap math, exact: an integer port of the whirlpool program's math and swap loop.

Read from orca-so/whirlpools @ 630c0e01 (``programs/whirlpool/src/math/tick_math.rs``,
``token_math.rs``, ``bit_math.rs``, ``swap_math.rs``, ``liquidity_math.rs``;
``manager/swap_manager.rs`` for the loop; ``util/swap_tick_sequence.rs`` and
``state/tick_array.rs`` / ``fixed_tick_array.rs`` for the next-initialized-tick search). Every
function returns what the program returns, and raises :class:`WhirlpoolMathError` (its ``code``
is the program's ``ErrorCode`` name, e.g. ``"TokenMaxExceeded"``) where the program fails.
Python ints do not wrap, so each place where Rust checks a u64/u128/U256 bound is checked here.

Prices are sqrt(price of A in B) as Q64.64 ints, liquidity is a u128 int, amounts are u64 ints.
Proof: ``tests/test_whirlpool_swap_cases.py`` replays the program's own published swap test cases
(``programs/whirlpool/src/tests/swap_test_cases.json``) to the unit, fee growth and protocol fee
included; ``tests/test_whirlpool_orca_compiled.py`` compiles the program's math files and holds
``compute_swap`` and the tick math equal to them on generated steps.

Exact out at a step's end (the program's behaviour, kept as is). ``compute_swap`` first takes the
fixed amount of the whole rest of the step (to the next initialized tick, the last array's end or
the price limit); exact out, that is the *output* rounded down. If it is <= the amount still wanted
the step is a max swap: the price goes to the step's end and the input is the whole step's, rounded
up (swap_math.rs l.53 ``initial_amount_fixed_delta.lte(amount_calc)``; the rust-sdk's
``compute_swap_step`` is the same). So where the rest of a step holds ``r + x`` units of output
(``0 <= x < 1``) and ``r`` are wanted, the taker pays for ``r + x`` and gets ``r``, and an exact-out
for what an exact-in gave can cost more than that exact-in: at fee 0, L = 41,002 over ticks
[120032, 120497), sqrt price 7517488476539511414103, 167,743 B exact in gives 1 A, and 1 A exact out
costs 243,190 B (the range holds 1.44 A). What the rounding allows (static fee ``f``; proof in
``tests/test_whirlpool_math.py``): the exact-out of ``q`` costs ``Y <= X`` (the exact-in's amount),
or its last step was a max swap ending on a tick's exact price and
``Y - X < (p + 1) / (1 - f) + 1``, ``p`` the input price of one output unit at that price; and an
exact-in of ``Y`` buys exactly ``q``. Orca's own ``test_compute_swap_inversion`` asserts inversion
only for steps that do not reach their target, for this reason.

Not modelled: adaptive-fee pools (``fee_tier_index != tick_spacing``; the program then runs a
volatility-driven ``FeeRateManager`` fed by an Oracle account) -- :class:`WhirlpoolPool` refuses to
quote them rather than quote them wrong -- and dynamic (variable-size) tick arrays' layout (their
ticks fold into the same :class:`TickArray` once decoded). Nothing here does I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from decimal import Decimal
from typing import Mapping, Sequence

from tapedeck.domain import events as ev
from tapedeck.domain.decimals import CTX

U64_MAX = (1 << 64) - 1
U128_MAX = (1 << 128) - 1
U256_MAX = (1 << 256) - 1
Q64_RESOLUTION = 64
Q64_MASK = (1 << 64) - 1

MAX_SQRT_PRICE_X64 = 79226673515401279992447579055
MIN_SQRT_PRICE_X64 = 4295048016
MAX_TICK_INDEX = 443636
MIN_TICK_INDEX = -443636
TICK_ARRAY_SIZE = 88
FULL_RANGE_ONLY_TICK_SPACING_THRESHOLD = 32768  # splash pools: tick spacing >= 2^15

FEE_RATE_MUL_VALUE = 1_000_000  # fee_rate is in hundredths of a basis point
PROTOCOL_FEE_RATE_MUL_VALUE = 10_000  # protocol_fee_rate is in basis points of the fee
NO_EXPLICIT_SQRT_PRICE_LIMIT = 0


class WhirlpoolMathError(ArithmeticError):
    """Where the program fails; ``code`` is its ``ErrorCode`` variant name. Two codes are this
    module's own, for what the program cannot be asked: ``AmountNotU64`` and ``AdaptiveFeeNotModelled``."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


# ----------------------------------------------------------------------------- tick_math.rs

_POSITIVE_FACTORS = (  # (bit, Q96 factor) as in get_sqrt_price_positive_tick
    (2, 79236085330515764027303304731), (4, 79244008939048815603706035061),
    (8, 79259858533276714757314932305), (16, 79291567232598584799939703904),
    (32, 79355022692464371645785046466), (64, 79482085999252804386437311141),
    (128, 79736823300114093921829183326), (256, 80248749790819932309965073892),
    (512, 81282483887344747381513967011), (1024, 83390072131320151908154831281),
    (2048, 87770609709833776024991924138), (4096, 97234110755111693312479820773),
    (8192, 119332217159966728226237229890), (16384, 179736315981702064433883588727),
    (32768, 407748233172238350107850275304), (65536, 2098478828474011932436660412517),
    (131072, 55581415166113811149459800483533), (262144, 38992368544603139932233054999993551),
)
_NEGATIVE_FACTORS = (  # (bit, Q64 factor) as in get_sqrt_price_negative_tick
    (2, 18444899583751176498), (4, 18443055278223354162), (8, 18439367220385604838),
    (16, 18431993317065449817), (32, 18417254355718160513), (64, 18387811781193591352),
    (128, 18329067761203520168), (256, 18212142134806087854), (512, 17980523815641551639),
    (1024, 17526086738831147013), (2048, 16651378430235024244), (4096, 15030750278693429944),
    (8192, 12247334978882834399), (16384, 8131365268884726200), (32768, 3584323654723342297),
    (65536, 696457651847595233), (131072, 26294789957452057), (262144, 37481735321082),
)
_LOG_B_2_X32 = 59543866431248
_BIT_PRECISION = 14
_LOG_B_P_ERR_MARGIN_LOWER_X64 = 184467440737095516
_LOG_B_P_ERR_MARGIN_UPPER_X64 = 15793534762490258745


@lru_cache(maxsize=8192)
def sqrt_price_from_tick_index(tick: int) -> int:
    """``sqrt_price_from_tick_index``: sqrt(1.0001^tick) as Q64.64 (precise within MIN..MAX tick)."""
    if tick >= 0:
        ratio = 79232123823359799118286999567 if tick & 1 else 79228162514264337593543950336
        for bit, factor in _POSITIVE_FACTORS:
            if tick & bit:
                ratio = (ratio * factor) >> 96
                if ratio > U128_MAX:
                    raise WhirlpoolMathError("NumberDownCastError", f"tick {tick} is out of range")
        return ratio >> 32
    abs_tick = -tick
    ratio = 18445821805675392311 if abs_tick & 1 else 18446744073709551616
    for bit, factor in _NEGATIVE_FACTORS:
        if abs_tick & bit:
            ratio = (ratio * factor) >> 64
    return ratio


def tick_index_from_sqrt_price(sqrt_price_x64: int) -> int:
    """``tick_index_from_sqrt_price``: the greatest tick whose sqrt price is <= the input."""
    if sqrt_price_x64 <= 0:
        raise WhirlpoolMathError("SqrtPriceOutOfBounds", "sqrt price must be > 0")
    msb = sqrt_price_x64.bit_length() - 1
    log2p_integer_x32 = (msb - 64) << 32
    bit = 0x8000_0000_0000_0000
    precision = 0
    log2p_fraction_x64 = 0
    r = sqrt_price_x64 >> (msb - 63) if msb >= 64 else sqrt_price_x64 << (63 - msb)
    while bit > 0 and precision < _BIT_PRECISION:
        r *= r
        is_r_more_than_two = r >> 127
        r >>= 63 + is_r_more_than_two
        log2p_fraction_x64 += bit * is_r_more_than_two
        bit >>= 1
        precision += 1
    log2p_x32 = log2p_integer_x32 + (log2p_fraction_x64 >> 32)
    logbp_x64 = log2p_x32 * _LOG_B_2_X32
    tick_low = (logbp_x64 - _LOG_B_P_ERR_MARGIN_LOWER_X64) >> 64
    tick_high = (logbp_x64 + _LOG_B_P_ERR_MARGIN_UPPER_X64) >> 64
    if tick_low == tick_high:
        return tick_low
    return tick_high if sqrt_price_from_tick_index(tick_high) <= sqrt_price_x64 else tick_low


# ----------------------------------------------------------------------------- token_math.rs


def _div_ceil(n: int, d: int) -> int:
    q, r = divmod(n, d)
    return q + (1 if r else 0)


def try_get_amount_delta_a(sqrt_price_0: int, sqrt_price_1: int, liquidity: int,
                           round_up: bool) -> int | WhirlpoolMathError:
    """``try_get_amount_delta_a``: L * (sqrt_upper - sqrt_lower) / (sqrt_upper * sqrt_lower).

    Returns the u64 amount, or (not raises) the error that says it exceeds u64 (the program's
    ``AmountDeltaU64::ExceedsMax``); raises where the program returns ``Err``."""
    lower, upper = sorted((sqrt_price_0, sqrt_price_1))
    numerator = liquidity * (upper - lower)
    if numerator >> 192:  # checked_shift_word_left: the top word must be empty
        raise WhirlpoolMathError("MultiplicationOverflow", "amount delta a numerator exceeds 256 bits")
    numerator <<= Q64_RESOLUTION
    denominator = upper * lower
    q = _div_ceil(numerator, denominator) if round_up else numerator // denominator
    if q > U128_MAX:
        return WhirlpoolMathError("NumberDownCastError", "amount delta a exceeds u128")
    if q > U64_MAX:
        return WhirlpoolMathError("TokenMaxExceeded", "amount delta a exceeds u64")
    return q


def try_get_amount_delta_b(sqrt_price_0: int, sqrt_price_1: int, liquidity: int,
                           round_up: bool) -> int | WhirlpoolMathError:
    """``try_get_amount_delta_b``: L * (sqrt_upper - sqrt_lower) / 2^64, the product checked at u128."""
    lower, upper = sorted((sqrt_price_0, sqrt_price_1))
    n1 = upper - lower
    if liquidity == 0 or n1 == 0:
        return 0
    p = liquidity * n1
    if p > U128_MAX:
        return WhirlpoolMathError("MultiplicationShiftRightOverflow", "amount delta b product exceeds u128")
    result = p >> Q64_RESOLUTION
    should_round = round_up and (p & Q64_MASK) > 0
    if should_round and result == U64_MAX:
        return WhirlpoolMathError("MultiplicationOverflow", "amount delta b exceeds u64")
    return result + 1 if should_round else result


def _valid(value: int | WhirlpoolMathError) -> int:
    if isinstance(value, WhirlpoolMathError):
        raise value
    return value


def get_amount_delta_a(sqrt_price_0: int, sqrt_price_1: int, liquidity: int, round_up: bool) -> int:
    return _valid(try_get_amount_delta_a(sqrt_price_0, sqrt_price_1, liquidity, round_up))


def get_amount_delta_b(sqrt_price_0: int, sqrt_price_1: int, liquidity: int, round_up: bool) -> int:
    return _valid(try_get_amount_delta_b(sqrt_price_0, sqrt_price_1, liquidity, round_up))


def get_next_sqrt_price_from_a_round_up(sqrt_price: int, liquidity: int, amount: int,
                                        amount_specified_is_input: bool) -> int:
    """``get_next_sqrt_price_from_a_round_up``: L*sqrt / (L ± amount*sqrt), rounded up, in U256."""
    if amount == 0:
        return sqrt_price
    product = sqrt_price * amount
    numerator = liquidity * sqrt_price
    if numerator >> 192:
        raise WhirlpoolMathError("MultiplicationOverflow", "next sqrt price numerator exceeds 256 bits")
    numerator <<= Q64_RESOLUTION
    liquidity_shift_left = liquidity << Q64_RESOLUTION
    if not amount_specified_is_input and liquidity_shift_left <= product:
        raise WhirlpoolMathError("DivideByZero", "output amount exceeds the liquidity's reserve of A")
    denominator = liquidity_shift_left + product if amount_specified_is_input else liquidity_shift_left - product
    price = _div_ceil(numerator, denominator)
    if price > U128_MAX:
        raise WhirlpoolMathError("NumberDownCastError", "next sqrt price exceeds u128")
    if price < MIN_SQRT_PRICE_X64:
        raise WhirlpoolMathError("TokenMinSubceeded", "next sqrt price below the minimum")
    if price > MAX_SQRT_PRICE_X64:
        raise WhirlpoolMathError("TokenMaxExceeded", "next sqrt price above the maximum")
    return price


def get_next_sqrt_price_from_b_round_down(sqrt_price: int, liquidity: int, amount: int,
                                          amount_specified_is_input: bool) -> int:
    """``get_next_sqrt_price_from_b_round_down``: sqrt ± amount*2^64/L (floor when adding, ceil when removing)."""
    if liquidity == 0:
        raise WhirlpoolMathError("DivideByZero", "liquidity is 0")
    amount_x64 = amount << Q64_RESOLUTION
    delta = amount_x64 // liquidity if amount_specified_is_input else _div_ceil(amount_x64, liquidity)
    if amount_specified_is_input:
        out = sqrt_price + delta
        if out > U128_MAX:
            raise WhirlpoolMathError("SqrtPriceOutOfBounds", "next sqrt price overflows u128")
        return out
    if delta > sqrt_price:
        raise WhirlpoolMathError("SqrtPriceOutOfBounds", "next sqrt price underflows 0")
    return sqrt_price - delta


def get_next_sqrt_price(sqrt_price: int, liquidity: int, amount: int, amount_specified_is_input: bool,
                        a_to_b: bool) -> int:
    if amount_specified_is_input == a_to_b:
        return get_next_sqrt_price_from_a_round_up(sqrt_price, liquidity, amount, amount_specified_is_input)
    return get_next_sqrt_price_from_b_round_down(sqrt_price, liquidity, amount, amount_specified_is_input)


# ----------------------------------------------------------------------------- swap_math.rs


@dataclass(frozen=True, slots=True)
class SwapStep:
    """``SwapStepComputation``."""

    amount_in: int
    amount_out: int
    next_price: int
    fee_amount: int


def _mul_div_u64(n0: int, n1: int, d: int, round_up: bool) -> int:
    if d == 0:
        raise WhirlpoolMathError("DivideByZero", "fee denominator is 0")
    p = n0 * n1
    if p > U128_MAX:
        raise WhirlpoolMathError("MulDivOverflow", "fee product exceeds u128")
    q = _div_ceil(p, d) if round_up else p // d
    if q > U64_MAX:
        raise WhirlpoolMathError("NumberDownCastError", "fee amount exceeds u64")
    return q


def compute_swap(amount_remaining: int, fee_rate: int, liquidity: int, sqrt_price_current: int,
                 sqrt_price_target: int, amount_specified_is_input: bool, a_to_b: bool) -> SwapStep:
    """``compute_swap``: one step from the current price toward the target with constant liquidity."""
    fixed_is_a = a_to_b == amount_specified_is_input
    delta = try_get_amount_delta_a if fixed_is_a else try_get_amount_delta_b
    initial_fixed = delta(sqrt_price_current, sqrt_price_target, liquidity, amount_specified_is_input)
    exceeds = isinstance(initial_fixed, WhirlpoolMathError)

    amount_calc = amount_remaining
    if amount_specified_is_input:
        amount_calc = _mul_div_u64(amount_remaining, FEE_RATE_MUL_VALUE - fee_rate, FEE_RATE_MUL_VALUE, False)

    if not exceeds and initial_fixed <= amount_calc:  # type: ignore[operator]
        next_sqrt_price = sqrt_price_target
    else:
        next_sqrt_price = get_next_sqrt_price(sqrt_price_current, liquidity, amount_calc,
                                              amount_specified_is_input, a_to_b)
    is_max_swap = next_sqrt_price == sqrt_price_target

    unfixed = get_amount_delta_b if fixed_is_a else get_amount_delta_a
    amount_unfixed = unfixed(sqrt_price_current, next_sqrt_price, liquidity, not amount_specified_is_input)
    if not is_max_swap or exceeds:
        fixed = get_amount_delta_a if fixed_is_a else get_amount_delta_b
        amount_fixed = fixed(sqrt_price_current, next_sqrt_price, liquidity, amount_specified_is_input)
    else:
        amount_fixed = initial_fixed  # type: ignore[assignment]

    if amount_specified_is_input:
        amount_in, amount_out = amount_fixed, amount_unfixed
    else:
        amount_in, amount_out = amount_unfixed, amount_fixed
        if amount_out > amount_remaining:
            amount_out = amount_remaining

    if amount_specified_is_input and not is_max_swap:
        fee_amount = amount_remaining - amount_in
    else:
        fee_amount = _mul_div_u64(amount_in, fee_rate, FEE_RATE_MUL_VALUE - fee_rate, True)
    return SwapStep(amount_in, amount_out, next_sqrt_price, fee_amount)


# ----------------------------------------------------------------------------- tick arrays


@dataclass(frozen=True, slots=True)
class Tick:
    """The swap-relevant part of a ``Tick`` (113 bytes on chain; fee/reward growths are not needed
    to price a swap)."""

    initialized: bool
    liquidity_net: int
    liquidity_gross: int = 0


@dataclass(frozen=True)
class TickArray:
    """A fixed tick array: ``TICK_ARRAY_SIZE`` (88) ticks from ``start_tick_index``, one per
    ``tick_spacing``. ``ticks`` maps an offset 0..87 to its tick; absent offsets are uninitialized."""

    start_tick_index: int
    ticks: Mapping[int, Tick] = field(default_factory=dict)

    def is_min_tick_array(self) -> bool:
        return self.start_tick_index <= MIN_TICK_INDEX

    def is_max_tick_array(self, tick_spacing: int) -> bool:
        return self.start_tick_index + TICK_ARRAY_SIZE * tick_spacing > MAX_TICK_INDEX

    def _in_search_range(self, tick_index: int, tick_spacing: int, shifted: bool) -> bool:
        lower = self.start_tick_index
        upper = self.start_tick_index + TICK_ARRAY_SIZE * tick_spacing
        if shifted:
            lower -= tick_spacing
            upper -= tick_spacing
        return lower <= tick_index < upper

    def tick_offset(self, tick_index: int, tick_spacing: int) -> int:
        if tick_spacing == 0:
            raise WhirlpoolMathError("InvalidTickSpacing", "tick spacing is 0")
        return (tick_index - self.start_tick_index) // tick_spacing  # floor, as get_offset

    def next_init_tick_index(self, tick_index: int, tick_spacing: int, a_to_b: bool) -> int | None:
        """``get_next_init_tick_index``: inclusive leftward search (a to b), exclusive rightward."""
        if not self._in_search_range(tick_index, tick_spacing, not a_to_b):
            raise WhirlpoolMathError("InvalidTickArraySequence",
                                     f"tick {tick_index} is outside the tick array starting at {self.start_tick_index}")
        offset = self.tick_offset(tick_index, tick_spacing)
        if not a_to_b:
            offset += 1
        while 0 <= offset < TICK_ARRAY_SIZE:
            t = self.ticks.get(offset)
            if t is not None and t.initialized:
                return offset * tick_spacing + self.start_tick_index
            offset = offset - 1 if a_to_b else offset + 1
        return None

    def get_tick(self, tick_index: int, tick_spacing: int) -> Tick | None:
        """The tick at a usable index of this array, or None where the program says TickNotFound."""
        if not self._in_search_range(tick_index, tick_spacing, False) or not _usable(tick_index, tick_spacing):
            return None
        offset = self.tick_offset(tick_index, tick_spacing)
        if offset < 0:
            return None
        return self.ticks.get(offset, _EMPTY_TICK)


_EMPTY_TICK = Tick(False, 0, 0)


def _usable(tick_index: int, tick_spacing: int) -> bool:
    if not MIN_TICK_INDEX <= tick_index <= MAX_TICK_INDEX:
        return False
    return abs(tick_index) % tick_spacing == 0  # Rust's % truncates; zero-ness is sign-independent


def tick_array_start_index(tick_index: int, tick_spacing: int) -> int:
    """Start index of the fixed tick array holding ``tick_index`` (floor to a multiple of 88*spacing)."""
    span = TICK_ARRAY_SIZE * tick_spacing
    return (tick_index // span) * span


def next_initialized_tick_index(arrays: Sequence[TickArray], tick_index: int, tick_spacing: int, a_to_b: bool,
                                start_array_index: int) -> tuple[int, int]:
    """``SwapTickSequence::get_next_initialized_tick_index`` -> (array index, tick index)."""
    ticks_in_array = TICK_ARRAY_SIZE * tick_spacing
    search_index = tick_index
    array_index = start_array_index
    while True:
        if array_index >= len(arrays):
            raise WhirlpoolMathError("TickArraySequenceInvalidIndex", "the swap ran past the last tick array given")
        array = arrays[array_index]
        found = array.next_init_tick_index(search_index, tick_spacing, a_to_b)
        if found is not None:
            return array_index, found
        if a_to_b and array.is_min_tick_array():
            return array_index, MIN_TICK_INDEX
        if not a_to_b and array.is_max_tick_array(tick_spacing):
            return array_index, MAX_TICK_INDEX
        if array_index + 1 == len(arrays):
            if a_to_b:
                return array_index, array.start_tick_index
            return array_index, array.start_tick_index + ticks_in_array - 1
        search_index = array.start_tick_index - 1 if a_to_b else array.start_tick_index + ticks_in_array - 1
        array_index += 1


def add_liquidity_delta(liquidity: int, delta: int) -> int:
    """``add_liquidity_delta``: checked at u128."""
    out = liquidity + delta
    if out > U128_MAX:
        raise WhirlpoolMathError("LiquidityOverflow", "liquidity exceeds u128")
    if out < 0:
        raise WhirlpoolMathError("LiquidityUnderflow", "liquidity below 0")
    return out


# ----------------------------------------------------------------------------- swap_manager.rs


@dataclass(frozen=True, slots=True)
class SwapResult:
    """``PostSwapUpdate``: ``amount_a``/``amount_b`` are what moves (the input side includes the
    fee); ``next_fee_growth_global`` is the input token's global fee growth after the swap."""

    amount_a: int
    amount_b: int
    lp_fee: int
    next_liquidity: int
    next_tick_index: int
    next_sqrt_price: int
    next_fee_growth_global: int
    next_protocol_fee: int


def swap(*, sqrt_price: int, tick_current_index: int, liquidity: int, tick_spacing: int, fee_rate: int,
         protocol_fee_rate: int, arrays: Sequence[TickArray], amount: int, sqrt_price_limit: int,
         amount_specified_is_input: bool, a_to_b: bool, fee_growth_global_input: int = 0) -> SwapResult:
    """``swap_manager::swap`` with a static fee rate, over the given tick arrays in swap order
    (the current price's array first, as the instruction's ``tick_array_0..2``)."""
    limit = sqrt_price_limit
    if limit == NO_EXPLICIT_SQRT_PRICE_LIMIT:
        limit = MIN_SQRT_PRICE_X64 if a_to_b else MAX_SQRT_PRICE_X64
    if not MIN_SQRT_PRICE_X64 <= limit <= MAX_SQRT_PRICE_X64:
        raise WhirlpoolMathError("SqrtPriceOutOfBounds", f"sqrt price limit {limit} out of bounds")
    if (a_to_b and limit >= sqrt_price) or (not a_to_b and limit <= sqrt_price):
        raise WhirlpoolMathError("InvalidSqrtPriceLimitDirection", "sqrt price limit is on the wrong side")
    if amount == 0:
        raise WhirlpoolMathError("ZeroTradableAmount", "amount is 0")
    if not 0 < amount <= U64_MAX:
        raise WhirlpoolMathError("AmountNotU64", f"amount {amount} is not a u64 (the instruction takes a u64)")

    amount_remaining = amount
    amount_calculated = 0
    curr_sqrt_price = sqrt_price
    curr_tick_index = tick_current_index
    curr_liquidity = liquidity
    curr_protocol_fee = 0
    curr_array_index = 0
    curr_fee_growth = fee_growth_global_input
    fee_sum = 0

    while amount_remaining > 0 and limit != curr_sqrt_price:
        next_array_index, next_tick_index = next_initialized_tick_index(
            arrays, curr_tick_index, tick_spacing, a_to_b, curr_array_index)
        next_tick_sqrt_price = sqrt_price_from_tick_index(next_tick_index)
        target = max(limit, next_tick_sqrt_price) if a_to_b else min(limit, next_tick_sqrt_price)
        while True:
            step = compute_swap(amount_remaining, fee_rate, curr_liquidity, curr_sqrt_price, target,
                                amount_specified_is_input, a_to_b)
            if amount_specified_is_input:
                amount_remaining -= step.amount_in
                if amount_remaining < 0:
                    raise WhirlpoolMathError("AmountRemainingOverflow")
                amount_remaining -= step.fee_amount
                if amount_remaining < 0:
                    raise WhirlpoolMathError("AmountRemainingOverflow")
                amount_calculated += step.amount_out
            else:
                amount_remaining -= step.amount_out
                if amount_remaining < 0:
                    raise WhirlpoolMathError("AmountRemainingOverflow")
                amount_calculated += step.amount_in
                if amount_calculated > U64_MAX:
                    raise WhirlpoolMathError("AmountCalcOverflow")
                amount_calculated += step.fee_amount
            if amount_calculated > U64_MAX:
                raise WhirlpoolMathError("AmountCalcOverflow")
            fee_sum += step.fee_amount
            if fee_sum > U64_MAX:
                raise WhirlpoolMathError("AmountCalcOverflow")

            global_fee = step.fee_amount
            if protocol_fee_rate > 0:
                delta = global_fee * protocol_fee_rate // PROTOCOL_FEE_RATE_MUL_VALUE
                global_fee -= delta
                curr_protocol_fee = (curr_protocol_fee + delta) & U64_MAX  # wrapping_add
            if curr_liquidity > 0:
                curr_fee_growth = (curr_fee_growth + ((global_fee << Q64_RESOLUTION) // curr_liquidity)) & U128_MAX

            if step.next_price == next_tick_sqrt_price:
                tick = arrays[next_array_index].get_tick(next_tick_index, tick_spacing)
                if tick is not None and tick.initialized:
                    net = -tick.liquidity_net if a_to_b else tick.liquidity_net
                    curr_liquidity = add_liquidity_delta(curr_liquidity, net)
                offset = arrays[next_array_index].tick_offset(next_tick_index, tick_spacing)
                if (a_to_b and offset == 0) or (not a_to_b and offset == TICK_ARRAY_SIZE - 1):
                    curr_array_index = next_array_index + 1
                else:
                    curr_array_index = next_array_index
                curr_tick_index = next_tick_index - 1 if a_to_b else next_tick_index
            elif step.next_price != curr_sqrt_price:
                curr_tick_index = tick_index_from_sqrt_price(step.next_price)
            curr_sqrt_price = step.next_price
            if amount_remaining == 0 or curr_sqrt_price == target:
                break

    if amount_remaining > 0 and not amount_specified_is_input and sqrt_price_limit == NO_EXPLICIT_SQRT_PRICE_LIMIT:
        raise WhirlpoolMathError("PartialFillError", "exact-out swap could not be filled")
    if a_to_b == amount_specified_is_input:
        amount_a, amount_b = amount - amount_remaining, amount_calculated
    else:
        amount_a, amount_b = amount_calculated, amount - amount_remaining
    return SwapResult(amount_a, amount_b, fee_sum - curr_protocol_fee, curr_liquidity, curr_tick_index,
                      curr_sqrt_price, curr_fee_growth, curr_protocol_fee)


# ----------------------------------------------------------------------------- a pool to quote


class WhirlpoolPool:
    """One Whirlpool's price state and the tick arrays known for it, folded from its accounts.

    ``arrays`` maps a tick array's start index to it. ``quote`` gives the exact output of an
    exact-in swap as the program computes it, over the known arrays in swap order (as many as are
    contiguous from the current price's array; the program takes 3 per swap instruction, but a
    quote over more is what a route through several swaps would see). A swap that would need an
    array that is not known, or that the program would reject, quotes None: never a guess.
    """

    __slots__ = ("sqrt_price", "tick_current_index", "liquidity", "tick_spacing", "fee_rate",
                 "protocol_fee_rate", "adaptive_fee", "arrays", "slot")

    def __init__(self, *, sqrt_price: int, tick_current_index: int, liquidity: int, tick_spacing: int,
                 fee_rate: int, protocol_fee_rate: int, adaptive_fee: bool = False,
                 arrays: Mapping[int, TickArray] | None = None, slot: int = 0) -> None:
        self.sqrt_price = sqrt_price
        self.tick_current_index = tick_current_index
        self.liquidity = liquidity
        self.tick_spacing = tick_spacing
        self.fee_rate = fee_rate
        self.protocol_fee_rate = protocol_fee_rate
        self.adaptive_fee = adaptive_fee
        self.arrays: dict[int, TickArray] = dict(arrays or {})
        self.slot = slot

    def arrays_in_order(self, a_to_b: bool, max_arrays: int | None = None) -> list[TickArray]:
        """The known arrays from the current one in the direction of travel, while contiguous.

        Moving right (b to a) the program starts from the array holding ``tick + spacing`` when the
        current tick is the last of its array (``swap_utils`` shifts the start by one spacing)."""
        span = TICK_ARRAY_SIZE * self.tick_spacing
        first = self.tick_current_index if a_to_b else self.tick_current_index + self.tick_spacing
        start = tick_array_start_index(first, self.tick_spacing)
        out: list[TickArray] = []
        while start in self.arrays and (max_arrays is None or len(out) < max_arrays):
            out.append(self.arrays[start])
            start += -span if a_to_b else span
        return out

    def swap(self, amount: int, a_to_b: bool, *, amount_specified_is_input: bool = True,
             sqrt_price_limit: int = NO_EXPLICIT_SQRT_PRICE_LIMIT, max_arrays: int | None = None) -> SwapResult:
        if self.adaptive_fee:
            raise WhirlpoolMathError("AdaptiveFeeNotModelled", "this pool charges an adaptive fee")
        arrays = self.arrays_in_order(a_to_b, max_arrays)
        if not arrays:
            raise WhirlpoolMathError("TickArraySequenceInvalidIndex", "no tick array known for the current price")
        return swap(sqrt_price=self.sqrt_price, tick_current_index=self.tick_current_index,
                    liquidity=self.liquidity, tick_spacing=self.tick_spacing, fee_rate=self.fee_rate,
                    protocol_fee_rate=self.protocol_fee_rate, arrays=arrays, amount=amount,
                    sqrt_price_limit=sqrt_price_limit, amount_specified_is_input=amount_specified_is_input,
                    a_to_b=a_to_b)

    def quote(self, amount_in: int, a_to_b: bool) -> int | None:
        """Exact output of selling ``amount_in`` of A (``a_to_b``) or of B; None if it cannot say
        (a swap past the known tick arrays, a partial fill at the price bound, a program error)."""
        if amount_in <= 0 or amount_in > U64_MAX:
            return None
        try:
            r = self.swap(amount_in, a_to_b)
        except WhirlpoolMathError:
            return None
        paid, got = (r.amount_a, r.amount_b) if a_to_b else (r.amount_b, r.amount_a)
        if paid != amount_in or got <= 0:
            return None  # stopped at the last known array or the price bound: not the whole amount
        return got


def quote(pool: WhirlpoolPool, amount_in: int, a_to_b: bool) -> int | None:
    """Module-level form of :meth:`WhirlpoolPool.quote` (the shape the arbitrage finder plugs in)."""
    return pool.quote(amount_in, a_to_b)


# ----------------------------------------------------------------------------- state from accounts


def valid_start_tick(start: int, tick_spacing: int) -> bool:
    """``Tick::check_is_valid_start_tick``: a multiple of 88 * spacing, or the one left-edge array
    that starts below MIN_TICK_INDEX."""
    span = TICK_ARRAY_SIZE * tick_spacing
    if not MIN_TICK_INDEX <= start <= MAX_TICK_INDEX:
        if start > MIN_TICK_INDEX:
            return False
        rem = -(-MIN_TICK_INDEX % span)  # Rust's % keeps the dividend's sign
        return start == MIN_TICK_INDEX - (rem + span)
    return start % span == 0


class WhirlpoolBook:
    """Whirlpools and their tick arrays as their accounts last showed them.

    A pool's account (``WhirlpoolSynced``) gives price, liquidity, tick, fee; each tick array
    account (``WhirlpoolTickArraySynced``) gives the initialized ticks of 88 spacings. Each account
    is kept as last seen (a record older by slot than the one held is ignored, ``ignored_stale``
    counts them), so one array changing replaces only that array. ``pool`` builds the quotable
    :class:`WhirlpoolPool` from the pool's record and the arrays that name it (arrays whose start
    index is not valid for the pool's spacing are left out: the program would never load them).
    """

    __slots__ = ("pools", "arrays", "ignored_stale", "_built")

    def __init__(self) -> None:
        self.pools: dict[str, ev.WhirlpoolSynced] = {}
        self.arrays: dict[str, ev.WhirlpoolTickArraySynced] = {}  # tick array account -> its record
        self.ignored_stale = 0
        self._built: dict[str, WhirlpoolPool] = {}  # pool -> its quotable form, until one of its accounts changes

    def apply(self, e: ev.Event) -> str | None:
        """Fold a ``WhirlpoolSynced`` or ``WhirlpoolTickArraySynced``; returns the pool it may change."""
        if isinstance(e, ev.WhirlpoolSynced):
            old: ev.WhirlpoolSynced | ev.WhirlpoolTickArraySynced | None = self.pools.get(e.pool)
            if old is not None and e.slot < old.slot:
                self.ignored_stale += 1
                return None
            self.pools[e.pool] = e
            self._built.pop(e.pool, None)
            return e.pool
        if isinstance(e, ev.WhirlpoolTickArraySynced):
            old = self.arrays.get(e.account)
            if old is not None and e.slot < old.slot:
                self.ignored_stale += 1
                return None
            self.arrays[e.account] = e
            self._built.pop(e.pool, None)
            if old is not None and old.pool != e.pool:
                self._built.pop(old.pool, None)
            return e.pool
        return None

    def pool(self, pool: str) -> WhirlpoolPool | None:
        """The pool's quotable state (built once per change of its accounts; do not mutate it)."""
        built = self._built.get(pool)
        if built is not None:
            return built
        p = self.pools.get(pool)
        if p is None:
            return None
        arrays: dict[int, TickArray] = {}
        for a in self.arrays.values():
            if a.pool == pool and valid_start_tick(a.start_tick_index, p.tick_spacing):
                arrays[a.start_tick_index] = TickArray(a.start_tick_index,
                                                       {off: Tick(True, net) for off, net in a.ticks})
        built = self._built[pool] = WhirlpoolPool(
            sqrt_price=p.sqrt_price, tick_current_index=p.tick_current_index, liquidity=p.liquidity,
            tick_spacing=p.tick_spacing, fee_rate=p.fee_rate, protocol_fee_rate=p.protocol_fee_rate,
            adaptive_fee=p.fee_tier_index != p.tick_spacing, arrays=arrays, slot=p.slot)
        return built


def price_of_a_in_b(sqrt_price: int, decimals_a: int, decimals_b: int) -> Decimal:
    """Human price of A in B from a Q64.64 sqrt price: ``(sqrt/2^64)^2 * 10^(dec_a - dec_b)``
    (rust-sdk ``sqrt_price_to_price``), in the domain's Decimal context; for display and reports."""
    return CTX.divide(Decimal(sqrt_price * sqrt_price), Decimal(1 << 128)).scaleb(decimals_a - decimals_b, CTX)
