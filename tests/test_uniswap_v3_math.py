"""domain.uniswap_v3: the integer port of v3-core's math, against v3-core's own test vectors
(Uniswap/v3-core @ d8b1c635, test/SwapMath.spec.ts, SqrtPriceMath.spec.ts, TickMath.spec.ts and
its snapshot) and hypothesis properties (the invariants of v3-core's Echidna tests and more)."""
from __future__ import annotations

from fractions import Fraction
from math import isqrt

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from tapedeck.domain import events as ev
from tapedeck.domain import uniswap_v3 as v3
from tapedeck.domain.uniswap_v3 import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MAX_UINT128,
    MAX_UINT256,
    MIN_SQRT_RATIO,
    MIN_TICK,
    V3MathError,
    compute_swap_step,
    get_amount0_delta,
    get_amount1_delta,
    get_next_sqrt_price_from_input,
    get_next_sqrt_price_from_output,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
    mul_div,
    mul_div_rounding_up,
    swap_within_range,
)

E18 = 10**18
Q96 = 1 << 96


def encode_price_sqrt(reserve1: int, reserve0: int) -> int:
    """floor(sqrt(reserve1/reserve0) * 2^96), as v3-core's test helper (exact, via isqrt)."""
    return isqrt((reserve1 << 192) // reserve0)


# ----------------------------------------------------------------------------- FullMath


Q128 = 1 << 128


def test_mul_div_vectors():
    """FullMath.spec.ts."""
    for a, b, d in ((Q128, 5, 0), (Q128, Q128, 0), (Q128, Q128, 1), (MAX_UINT256, MAX_UINT256, MAX_UINT256 - 1)):
        with pytest.raises(V3MathError):
            mul_div(a, b, d)
        with pytest.raises(V3MathError):
            mul_div_rounding_up(a, b, d)
    assert mul_div(MAX_UINT256, MAX_UINT256, MAX_UINT256) == MAX_UINT256
    assert mul_div_rounding_up(MAX_UINT256, MAX_UINT256, MAX_UINT256) == MAX_UINT256
    half, one_and_half = 50 * Q128 // 100, 150 * Q128 // 100
    assert mul_div(Q128, half, one_and_half) == Q128 // 3
    assert mul_div_rounding_up(Q128, half, one_and_half) == Q128 // 3 + 1
    assert mul_div(Q128, 35 * Q128, 8 * Q128) == 4375 * Q128 // 1000
    assert mul_div_rounding_up(Q128, 35 * Q128, 8 * Q128) == 4375 * Q128 // 1000
    assert mul_div(Q128, 1000 * Q128, 3000 * Q128) == Q128 // 3
    assert mul_div_rounding_up(Q128, 1000 * Q128, 3000 * Q128) == Q128 // 3 + 1
    # the floor fits in 256 bits, rounding up would not
    with pytest.raises(V3MathError):
        mul_div_rounding_up(535006138814359, 432862656469423142931042426214547535783388063929571229938474969, 2)
    with pytest.raises(V3MathError):
        mul_div_rounding_up(115792089237316195423570985008687907853269984659341747863450311749907997002549,
                            115792089237316195423570985008687907853269984659341747863450311749907997002550,
                            115792089237316195423570985008687907853269984653042931687443039491902864365164)


@given(st.integers(0, MAX_UINT256), st.integers(0, MAX_UINT256), st.integers(1, MAX_UINT256))
def test_mul_div_is_exact_floor_and_ceil(a, b, d):
    exact = Fraction(a * b, d)
    if exact > MAX_UINT256:
        with pytest.raises(V3MathError):
            mul_div(a, b, d)
        return
    assert mul_div(a, b, d) == a * b // d
    if -(-a * b // d) > MAX_UINT256:
        with pytest.raises(V3MathError):
            mul_div_rounding_up(a, b, d)
    else:
        assert mul_div_rounding_up(a, b, d) == -(-a * b // d)


# ----------------------------------------------------------------------------- TickMath

# TickMath.spec.ts.snap: getSqrtRatioAtTick results
SQRT_RATIO_SNAPSHOT = {
    -50: 79030349367926598376800521322, -100: 78833030112140176575862854579,
    -250: 78244023372248365697264290337, -500: 77272108795590369356373805297,
    -1000: 75364347830767020784054125655, -2500: 69919044979842180277688105136,
    -3000: 68192822843687888778582228483, -4000: 64867181785621769311890333195,
    -5000: 61703726247759831737814779831, -50000: 6504256538020985011912221507,
    -150000: 43836292794701720435367485, -250000: 295440463448801648376846,
    -500000: 1101692437043807371, -738203: 7409801140451,
    50: 79426470787362580746886972461, 100: 79625275426524748796330556128,
    250: 80224679980005306637834519095, 500: 81233731461783161732293370115,
    1000: 83290069058676223003182343270, 2500: 89776708723587163891445672585,
    3000: 92049301871182272007977902845, 4000: 96768528593268422080558758223,
    5000: 101729702841318637793976746270, 50000: 965075977353221155028623082916,
    150000: 143194173941309278083010301478497, 250000: 21246587762933397357449903968194344,
    500000: 5697689776495288729098254600827762987878, 738203: 847134979253254120489401328389043031315994541,
}
# TickMath.spec.ts.snap: getTickAtSqrtRatio results
TICK_SNAPSHOT = {
    4295128739: -887272, 79228162514264337593543: -276325, 79228162514264337593543950: -138163,
    9903520314283042199192993792: -41591, 28011385487393069959365969113: -20796,
    56022770974786139918731938227: -6932, 79228162514264337593543950336: 0,
    112045541949572279837463876454: 6931, 224091083899144559674927752909: 20795,
    633825300114114700748351602688: 41590, 79228162514264337593543950336000: 138162,
    79228162514264337593543950336000000: 276324, 1461446703485210103287273052203988822378723970341: 887271,
}


def test_sqrt_ratio_at_tick_bounds():
    assert get_sqrt_ratio_at_tick(MIN_TICK) == MIN_SQRT_RATIO == 4295128739
    assert get_sqrt_ratio_at_tick(MIN_TICK + 1) == 4295343490
    assert get_sqrt_ratio_at_tick(MAX_TICK - 1) == 1461373636630004318706518188784493106690254656249
    assert get_sqrt_ratio_at_tick(MAX_TICK) == MAX_SQRT_RATIO
    assert get_sqrt_ratio_at_tick(0) == Q96
    for bad in (MIN_TICK - 1, MAX_TICK + 1):
        with pytest.raises(V3MathError, match="T"):
            get_sqrt_ratio_at_tick(bad)


@pytest.mark.parametrize("tick,expected", sorted(SQRT_RATIO_SNAPSHOT.items()))
def test_sqrt_ratio_at_tick_snapshot(tick, expected):
    assert get_sqrt_ratio_at_tick(tick) == expected


@pytest.mark.parametrize("ratio,expected", sorted(TICK_SNAPSHOT.items()))
def test_tick_at_sqrt_ratio_snapshot(ratio, expected):
    assert get_tick_at_sqrt_ratio(ratio) == expected


def test_snapshot_ratios_are_the_spec_inputs():
    # the spec builds these with encodePriceSqrt; our helper reproduces its inputs
    for r1, r0 in ((10**12, 1), (10**6, 1), (1, 64), (1, 8), (1, 2), (1, 1), (2, 1), (8, 1), (64, 1), (1, 10**6),
                   (1, 10**12)):
        assert encode_price_sqrt(r1, r0) in TICK_SNAPSHOT


def test_tick_at_sqrt_ratio_bounds_and_round_trips():
    assert get_tick_at_sqrt_ratio(MIN_SQRT_RATIO) == MIN_TICK
    assert get_tick_at_sqrt_ratio(4295343490) == MIN_TICK + 1
    assert get_tick_at_sqrt_ratio(1461373636630004318706518188784493106690254656249) == MAX_TICK - 1
    assert get_tick_at_sqrt_ratio(MAX_SQRT_RATIO - 1) == MAX_TICK - 1
    for bad in (MIN_SQRT_RATIO - 1, MAX_SQRT_RATIO, 0):
        with pytest.raises(V3MathError, match="R"):
            get_tick_at_sqrt_ratio(bad)
    for t in (MIN_TICK, MIN_TICK + 1, -199050, -1, 0, 1, 199050, MAX_TICK - 2, MAX_TICK - 1):
        p = get_sqrt_ratio_at_tick(t)
        assert get_tick_at_sqrt_ratio(p) == t
        assert get_tick_at_sqrt_ratio(get_sqrt_ratio_at_tick(t + 1) - 1) == t
        if t > MIN_TICK:
            assert get_tick_at_sqrt_ratio(p - 1) == t - 1


@given(st.integers(MIN_TICK + 1, MAX_TICK - 1))
@example(MIN_TICK + 1)
@example(MAX_TICK - 1)
def test_sqrt_ratio_strictly_increasing_and_round_trips(tick):
    ratio = get_sqrt_ratio_at_tick(tick)
    assert get_sqrt_ratio_at_tick(tick - 1) < ratio < get_sqrt_ratio_at_tick(tick + 1)
    assert MIN_SQRT_RATIO <= ratio <= MAX_SQRT_RATIO
    assert get_tick_at_sqrt_ratio(ratio) == tick


@given(st.integers(MIN_SQRT_RATIO, MAX_SQRT_RATIO - 1))
@example(MIN_SQRT_RATIO)
@example(MAX_SQRT_RATIO - 1)
def test_tick_at_sqrt_ratio_brackets_the_ratio(ratio):
    tick = get_tick_at_sqrt_ratio(ratio)
    assert MIN_TICK <= tick < MAX_TICK
    assert get_sqrt_ratio_at_tick(tick) <= ratio < get_sqrt_ratio_at_tick(tick + 1)


# ----------------------------------------------------------------------------- SqrtPriceMath


def test_next_sqrt_price_from_input_vectors():
    p1 = encode_price_sqrt(1, 1)
    assert p1 == Q96
    with pytest.raises(V3MathError):
        get_next_sqrt_price_from_input(0, 0, E18 // 10, False)
    with pytest.raises(V3MathError):
        get_next_sqrt_price_from_input(1, 0, E18 // 10, True)
    with pytest.raises(V3MathError):  # input overflows the price
        get_next_sqrt_price_from_input((1 << 160) - 1, 1024, 1024, False)
    assert get_next_sqrt_price_from_input(1, 1, 1 << 255, True) == 1  # cannot underflow the price
    assert get_next_sqrt_price_from_input(p1, E18 // 10, 0, True) == p1
    assert get_next_sqrt_price_from_input(p1, E18 // 10, 0, False) == p1
    sqrt_p, liq = (1 << 160) - 1, MAX_UINT128
    assert get_next_sqrt_price_from_input(sqrt_p, liq, MAX_UINT256 - (liq << 96) // sqrt_p, True) == 1  # fallback path
    assert get_next_sqrt_price_from_input(p1, E18, E18 // 10, False) == 87150978765690771352898345369
    assert get_next_sqrt_price_from_input(p1, E18, E18 // 10, True) == 72025602285694852357767227579
    assert get_next_sqrt_price_from_input(p1, 10 * E18, 1 << 100, True) == 624999999995069620
    assert get_next_sqrt_price_from_input(p1, 1, MAX_UINT256 // 2, True) == 1


def test_next_sqrt_price_from_output_vectors():
    p1 = encode_price_sqrt(1, 1)
    price = 20282409603651670423947251286016
    with pytest.raises(V3MathError):
        get_next_sqrt_price_from_output(0, 0, E18 // 10, False)
    with pytest.raises(V3MathError):
        get_next_sqrt_price_from_output(1, 0, E18 // 10, True)
    for amount_out, zfo in ((4, False), (5, False), (262145, True), (262144, True)):  # >= virtual reserves
        with pytest.raises(V3MathError):
            get_next_sqrt_price_from_output(price, 1024, amount_out, zfo)
    assert get_next_sqrt_price_from_output(price, 1024, 262143, True) == 77371252455336267181195264
    assert get_next_sqrt_price_from_output(p1, E18 // 10, 0, True) == p1
    assert get_next_sqrt_price_from_output(p1, E18 // 10, 0, False) == p1
    assert get_next_sqrt_price_from_output(p1, E18, E18 // 10, False) == 88031291682515930659493278152
    assert get_next_sqrt_price_from_output(p1, E18, E18 // 10, True) == 71305346262837903834189555302
    for zfo in (True, False):
        with pytest.raises(V3MathError):
            get_next_sqrt_price_from_output(p1, 1, MAX_UINT256, zfo)


def test_amount_deltas_vectors():
    p1, p121 = encode_price_sqrt(1, 1), encode_price_sqrt(121, 100)
    assert get_amount0_delta(p1, encode_price_sqrt(2, 1), 0, True) == 0
    assert get_amount0_delta(p1, p1, 0, True) == 0
    assert get_amount0_delta(p1, p121, E18, True) == 90909090909090910
    assert get_amount0_delta(p1, p121, E18, False) == 90909090909090909
    up = get_amount0_delta(encode_price_sqrt(2**90, 1), encode_price_sqrt(2**96, 1), E18, True)
    down = get_amount0_delta(encode_price_sqrt(2**90, 1), encode_price_sqrt(2**96, 1), E18, False)
    assert up == down + 1
    assert get_amount1_delta(p1, encode_price_sqrt(2, 1), 0, True) == 0
    assert get_amount1_delta(p1, p121, E18, True) == 100000000000000000
    assert get_amount1_delta(p1, p121, E18, False) == 99999999999999999
    # argument order does not matter
    assert get_amount1_delta(p121, p1, E18, True) == get_amount1_delta(p1, p121, E18, True)


def test_sqrt_p_times_sqrt_q_overflows():
    sqrt_p = 1025574284609383690408304870162715216695788925244
    liq = 50015962439936049619261659728067971248
    sqrt_q = get_next_sqrt_price_from_input(sqrt_p, liq, 406, True)
    assert sqrt_q == 1025574284609383582644711336373707553698163132913
    assert get_amount0_delta(sqrt_q, sqrt_p, liq, True) == 406


# ----------------------------------------------------------------------------- SwapMath (SwapMath.spec.ts)


def test_exact_in_capped_at_target_one_for_zero():
    price, target = encode_price_sqrt(1, 1), encode_price_sqrt(101, 100)
    sqrt_q, a_in, a_out, fee = compute_swap_step(price, target, 2 * E18, E18, 600)
    assert (a_in, fee, a_out) == (9975124224178055, 5988667735148, 9925619580021728)
    assert a_in + fee < E18
    assert sqrt_q == target
    assert sqrt_q < get_next_sqrt_price_from_input(price, 2 * E18, E18, False)


def test_exact_out_capped_at_target_one_for_zero():
    price, target = encode_price_sqrt(1, 1), encode_price_sqrt(101, 100)
    sqrt_q, a_in, a_out, fee = compute_swap_step(price, target, 2 * E18, -E18, 600)
    assert (a_in, fee, a_out) == (9975124224178055, 5988667735148, 9925619580021728)
    assert a_out < E18
    assert sqrt_q == target
    assert sqrt_q < get_next_sqrt_price_from_output(price, 2 * E18, E18, False)


def test_exact_in_fully_spent_one_for_zero():
    price, target = encode_price_sqrt(1, 1), encode_price_sqrt(1000, 100)
    sqrt_q, a_in, a_out, fee = compute_swap_step(price, target, 2 * E18, E18, 600)
    assert (a_in, fee, a_out) == (999400000000000000, 600000000000000, 666399946655997866)
    assert a_in + fee == E18
    assert sqrt_q < target
    assert sqrt_q == get_next_sqrt_price_from_input(price, 2 * E18, E18 - fee, False)


def test_exact_out_fully_received_one_for_zero():
    price, target = encode_price_sqrt(1, 1), encode_price_sqrt(10000, 100)
    sqrt_q, a_in, a_out, fee = compute_swap_step(price, target, 2 * E18, -E18, 600)
    assert (a_in, fee, a_out) == (2 * E18, 1200720432259356, E18)
    assert sqrt_q < target
    assert sqrt_q == get_next_sqrt_price_from_output(price, 2 * E18, E18, False)


def test_amount_out_capped_at_desired():
    r = compute_swap_step(417332158212080721273783715441582, 1452870262520218020823638996,
                          159344665391607089467575320103, -1, 1)
    assert r == (417332158212080721273783715441581, 1, 1, 1)  # out would be 2 if not capped


def test_target_price_of_one_uses_partial_input():
    amount = 3915081100057732413702495386755767
    sqrt_q, a_in, a_out, fee = compute_swap_step(2, 1, 1, amount, 1)
    assert (sqrt_q, a_in, a_out, fee) == (1, 39614081257132168796771975168, 0, 39614120871253040049813)
    assert a_in + fee <= amount


def test_entire_input_taken_as_fee():
    assert compute_swap_step(2413, 79887613182836312, 1985041575832132834610021537970, 10, 1872) == (2413, 0, 0, 10)


def test_intermediate_insufficient_liquidity_exact_output():
    sqrt_p = 20282409603651670423947251286016
    target = sqrt_p * 11 // 10
    assert compute_swap_step(sqrt_p, target, 1024, -4, 3000) == (target, 26215, 0, 79)
    target = sqrt_p * 9 // 10
    assert compute_swap_step(sqrt_p, target, 1024, -263000, 3000) == (target, 1, 26214, 1)


# ----------------------------------------------------------------------------- SwapMath properties

prices = st.integers(1, (1 << 160) - 1)
fees = st.integers(1, 999_999)


@settings(max_examples=400)
@given(prices, prices, st.integers(0, MAX_UINT128), st.integers(-(1 << 255), (1 << 255) - 1), fees)
@example(Q96, Q96, E18, E18, 500)
def test_compute_swap_step_invariants(price, target, liquidity, amount_remaining, fee_pips):
    """v3-core's SwapMathEchidnaTest invariants: whenever the step does not revert."""
    try:
        sqrt_q, a_in, a_out, fee = compute_swap_step(price, target, liquidity, amount_remaining, fee_pips)
    except V3MathError:
        assume(False)
        return
    assert a_in + fee <= MAX_UINT256
    if amount_remaining < 0:
        assert a_out <= -amount_remaining
    else:
        assert a_in + fee <= amount_remaining
    if price == target:
        assert (sqrt_q, a_in, a_out, fee) == (target, 0, 0, 0)
    if sqrt_q != target:  # target not reached: the whole amount is used
        if amount_remaining < 0:
            assert a_out == -amount_remaining
        else:
            assert a_in + fee == amount_remaining
    if target <= price:  # moves the right way, never past the target
        assert target <= sqrt_q <= price
    else:
        assert price <= sqrt_q <= target


# Realistic pool states: around the USDC/WETH tick, liquidity 1e12..1e24.
pool_ticks = st.integers(-300_000, 300_000)
liquidities = st.integers(10**12, 10**24)
amounts = st.integers(1, 10**24)


def _ideal_out(price: int, liquidity: int, amount_in_less_fee: int, zero_for_one: bool) -> Fraction:
    """Output of exact real-number math for an input (after fee), no target."""
    p, l, x = Fraction(price, Q96), Fraction(liquidity), Fraction(amount_in_less_fee)
    if zero_for_one:
        q = l * p / (l + x * p)
        return l * (p - q)
    q = p + x / l
    return l * (1 / p - 1 / q)


@settings(max_examples=300)
@given(pool_ticks, liquidities, amounts, st.booleans(), st.sampled_from([100, 500, 3000, 10000]))
def test_exact_in_never_beats_exact_math_and_reverse_exact_out_costs_no_more(tick, liquidity, amount, zfo, fee_pips):
    price = get_sqrt_ratio_at_tick(tick) + 12345
    far = MIN_SQRT_RATIO + 1 if zfo else MAX_SQRT_RATIO - 1
    try:
        sqrt_q, a_in, a_out, fee = compute_swap_step(price, far, liquidity, amount, fee_pips)
    except V3MathError:
        assume(False)
        return
    # rounding always favours the pool: never more out than exact math for the input after fee
    assert a_out <= _ideal_out(price, liquidity, a_in, zfo)
    assume(a_out > 0)
    # asking exact-out for what exact-in gave costs no more than the exact-in paid
    sqrt_q2, b_in, b_out, b_fee = compute_swap_step(price, far, liquidity, -a_out, fee_pips)
    assert b_out == a_out
    assert b_in + b_fee <= a_in + fee
    # and moves the price no further
    assert (sqrt_q2 >= sqrt_q) if zfo else (sqrt_q2 <= sqrt_q)


@settings(max_examples=300)
@given(pool_ticks, liquidities, amounts, amounts, st.booleans())
def test_amounts_monotone_in_input(tick, liquidity, a, b, zfo):
    small, big = min(a, b), max(a, b)
    price = get_sqrt_ratio_at_tick(tick)
    far = MIN_SQRT_RATIO + 1 if zfo else MAX_SQRT_RATIO - 1
    try:
        q1, in1, out1, _ = compute_swap_step(price, far, liquidity, small, 500)
        q2, in2, out2, _ = compute_swap_step(price, far, liquidity, big, 500)
        r1 = compute_swap_step(price, far, liquidity, -small, 500)
        r2 = compute_swap_step(price, far, liquidity, -big, 500)
    except V3MathError:
        assume(False)
        return
    assert out1 <= out2 and in1 <= in2
    assert (q2 <= q1 <= price) if zfo else (price <= q1 <= q2)
    assert r1[1] + r1[3] <= r2[1] + r2[3]  # more out costs at least as much in


@settings(max_examples=300)
@given(pool_ticks, liquidities, amounts, st.booleans())
def test_round_trip_never_profits(tick, liquidity, amount, zfo):
    """Swap x in, swap everything received back: never get more than x."""
    price = get_sqrt_ratio_at_tick(tick) + 1
    far = (MIN_SQRT_RATIO + 1, MAX_SQRT_RATIO - 1)
    try:
        q, a_in, a_out, fee = compute_swap_step(price, far[0] if zfo else far[1], liquidity, amount, 500)
        assume(a_out > 0)
        _, _, back, _ = compute_swap_step(q, far[1] if zfo else far[0], liquidity, a_out, 500)
    except V3MathError:
        assume(False)
        return
    assert back <= a_in + fee


# ----------------------------------------------------------------------------- swap_within_range


def test_tick_spacing_interval_floors_negative_ticks():
    assert v3.tick_spacing_interval(199055, 10) == (199050, 199060)
    assert v3.tick_spacing_interval(199050, 10) == (199050, 199060)
    assert v3.tick_spacing_interval(-1, 10) == (-10, 0)
    assert v3.tick_spacing_interval(-10, 10) == (-10, 0)
    assert v3.tick_spacing_interval(MIN_TICK, 10) == (MIN_TICK, -887270)
    assert v3.tick_spacing_interval(MAX_TICK - 1, 10) == (887270, MAX_TICK)


def test_swap_within_range_small_swap_matches_compute_swap_step():
    tick = 199055
    price = get_sqrt_ratio_at_tick(tick) + 10**20
    liq = 12 * E18
    r = swap_within_range(price, liq, tick, 10, 500, 10**6, True)  # 1 USDC in
    sqrt_q, a_in, a_out, fee = compute_swap_step(price, get_sqrt_ratio_at_tick(199050), liq, 10**6, 500)
    assert (r.amount0, r.amount1, r.sqrt_price_x96, r.fee) == (a_in + fee, -a_out, sqrt_q, fee)
    assert r.amount0 == 10**6 and r.amount1 < 0 and not r.reached_edge
    assert r.tick == get_tick_at_sqrt_ratio(sqrt_q)
    out = swap_within_range(price, liq, tick, 10, 500, -10**6, False)  # exactly 1 USDC out
    assert out.amount0 == -10**6 and out.amount1 > 0 and out.sqrt_price_x96 > price


def test_swap_within_range_stops_at_the_edges():
    tick, liq = 199055, 12 * E18
    price = get_sqrt_ratio_at_tick(tick)
    down = swap_within_range(price, liq, tick, 10, 500, 10**30, True)
    assert down.reached_edge and down.sqrt_price_x96 == get_sqrt_ratio_at_tick(199050) and down.tick == 199049
    assert 0 < down.amount0 < 10**30 and down.amount1 < 0
    up = swap_within_range(price, liq, tick, 10, 500, 10**30, False)
    assert up.reached_edge and up.sqrt_price_x96 == get_sqrt_ratio_at_tick(199060) and up.tick == 199060
    # exact-out larger than the interval holds: capped at the edge
    up_out = swap_within_range(price, liq, tick, 10, 500, -10**30, False)
    assert up_out.reached_edge and up_out.sqrt_price_x96 == get_sqrt_ratio_at_tick(199060)
    assert up_out.amount0 == up.amount0  # the same token0 leaves the pool either way


def test_swap_within_range_at_the_edge_moves_nothing():
    # after a zero-for-one swap ended on tick 199050's price the pool's tick is 199049
    price = get_sqrt_ratio_at_tick(199050)
    r = swap_within_range(price, E18, 199049, 10, 500, 10**6, False)  # interval [199040, 199050]: at its top
    assert r.reached_edge and (r.amount0, r.amount1, r.fee) == (0, 0, 0) and r.tick == 199050
    r = swap_within_range(price, E18, 199050, 10, 500, 10**6, True)  # interval [199050, 199060]: at its bottom
    assert r.reached_edge and (r.amount0, r.amount1) == (0, 0) and r.tick == 199049


def test_swap_within_range_price_limit_and_bad_input():
    tick, liq = 199055, 12 * E18
    price = get_sqrt_ratio_at_tick(tick)
    limit = price - 10**24
    r = swap_within_range(price, liq, tick, 10, 500, 10**30, True, sqrt_price_limit_x96=limit)
    assert r.reached_edge and r.sqrt_price_x96 == limit
    with pytest.raises(V3MathError):
        swap_within_range(price, liq, tick, 10, 500, 10**6, True, sqrt_price_limit_x96=price + 1)
    with pytest.raises(V3MathError):
        swap_within_range(price, liq, tick, 10, 500, 0, True)
    with pytest.raises(ValueError):  # price outside the tick's interval
        swap_within_range(get_sqrt_ratio_at_tick(199070), liq, tick, 10, 500, 10**6, True)


@settings(max_examples=300)
@given(pool_ticks, st.integers(0, 10**6), liquidities, st.integers(-10**24, 10**24).filter(bool), st.booleans(),
       st.sampled_from([1, 10, 60, 200]))
def test_swap_within_range_properties(tick, frac, liquidity, amount, zfo, spacing):
    lo, hi = v3.tick_spacing_interval(tick, spacing)
    p_lo, p_hi = get_sqrt_ratio_at_tick(lo), get_sqrt_ratio_at_tick(hi)
    t_lo, t_hi = get_sqrt_ratio_at_tick(tick), get_sqrt_ratio_at_tick(tick + 1)
    price = t_lo + (t_hi - t_lo) * frac // 10**6
    assume(price < t_hi)
    try:
        r = swap_within_range(price, liquidity, tick, spacing, 500, amount, zfo)
    except V3MathError:
        assume(False)
        return
    assert p_lo <= r.sqrt_price_x96 <= p_hi  # never leaves the interval
    if zfo:
        assert r.sqrt_price_x96 <= price and r.amount0 >= 0 and r.amount1 <= 0
        assert r.reached_edge == (r.sqrt_price_x96 == p_lo)
    else:
        assert r.sqrt_price_x96 >= price and r.amount1 >= 0 and r.amount0 <= 0
        assert r.reached_edge == (r.sqrt_price_x96 == p_hi)
    specified = (r.amount0 if zfo else r.amount1) if amount > 0 else (r.amount1 if zfo else r.amount0)
    if amount > 0:
        assert 0 <= specified <= amount and (r.reached_edge or specified == amount)
    else:
        assert amount <= specified <= 0 and (r.reached_edge or specified == amount)
    # the tick the pool would set
    if r.reached_edge:
        assert r.tick == (lo - 1 if zfo else hi)
    else:
        assert get_sqrt_ratio_at_tick(r.tick) <= r.sqrt_price_x96 < get_sqrt_ratio_at_tick(r.tick + 1)


# ----------------------------------------------------------------------------- V3PoolState

POOL = "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"
TX = "0x" + "ab" * 32
ADDR = "0x" + "11" * 20


def swap(tick: int, liquidity: int, sqrt_price: int | None = None) -> ev.V3Swapped:
    return ev.V3Swapped(ts=1, pool=POOL, block=1, tx=TX, log_index=0, sender=ADDR, recipient=ADDR, amount0=1,
                        amount1=-1, sqrt_price_x96=sqrt_price or get_sqrt_ratio_at_tick(tick) + 1,
                        liquidity=liquidity, tick=tick)


def mint(lower: int, upper: int, amount: int) -> ev.V3Minted:
    return ev.V3Minted(ts=1, pool=POOL, block=1, tx=TX, log_index=1, owner=ADDR, sender=ADDR, tick_lower=lower,
                       tick_upper=upper, amount=amount, amount0=0, amount1=0)


def burn(lower: int, upper: int, amount: int) -> ev.V3Burned:
    return ev.V3Burned(ts=1, pool=POOL, block=1, tx=TX, log_index=2, owner=ADDR, tick_lower=lower, tick_upper=upper,
                       amount=amount, amount0=0, amount1=0)


def test_pool_state_unknown_until_the_first_swap():
    s = v3.V3PoolState()
    assert not s.known and s.liquidity is None
    s.apply(mint(-10, 10, 5))
    s.apply(burn(-10, 10, 5))
    assert not s.known and s.sqrt_price_x96 is None and s.tick is None
    s.apply(swap(3, 100))
    assert s.known and (s.tick, s.liquidity) == (3, 100)
    assert s.sqrt_price_x96 == get_sqrt_ratio_at_tick(3) + 1


def test_pool_state_mint_burn_in_range_as_modify_position():
    s = v3.V3PoolState()
    s.apply(swap(199050, 1000))
    s.apply(mint(199050, 199060, 7))  # tick == lower: in range (tickLower <= tick)
    assert s.liquidity == 1007
    s.apply(mint(199040, 199050, 5))  # tick == upper: not in range (tick < tickUpper fails)
    s.apply(mint(199060, 199070, 5))  # above
    s.apply(mint(199000, 199040, 5))  # below
    assert s.liquidity == 1007
    s.apply(burn(199050, 199060, 7))
    assert s.liquidity == 1000
    s.apply(burn(199000, 199100, 0))  # a poke: no change
    s.apply(ev.V3Collected(ts=1, pool=POOL, block=1, tx=TX, log_index=3, owner=ADDR, recipient=ADDR,
                           tick_lower=199000, tick_upper=199100, amount0=5, amount1=6))
    assert (s.tick, s.liquidity) == (199050, 1000)
    s.apply(swap(199070, 400))  # a swap overrides with its post-swap values
    assert (s.tick, s.liquidity) == (199070, 400)


def test_pool_state_inconsistent_burn_makes_state_unknown():
    s = v3.V3PoolState()
    s.apply(swap(0, 10))
    s.apply(burn(-10, 10, 11))
    assert not s.known and s.inconsistencies == 1
    s.apply(swap(0, 10))
    assert s.known and s.liquidity == 10


def test_position_amounts_follow_modify_position():
    sp = get_sqrt_ratio_at_tick(5) + 99
    a0, a1 = v3.position_amounts(sp, 5, 0, 10, E18)
    assert a0 == get_amount0_delta(sp, get_sqrt_ratio_at_tick(10), E18, True)
    assert a1 == get_amount1_delta(get_sqrt_ratio_at_tick(0), sp, E18, True)
    b0, b1 = v3.position_amounts(sp, 5, 0, 10, -E18)
    assert (b0, b1) == (-get_amount0_delta(sp, get_sqrt_ratio_at_tick(10), E18, False),
                        -get_amount1_delta(get_sqrt_ratio_at_tick(0), sp, E18, False))
    assert v3.position_amounts(sp, 5, 10, 20, E18)[1] == 0  # below the range: token0 only
    assert v3.position_amounts(sp, 5, -10, 5, E18)[0] == 0  # tick == upper: above, token1 only
