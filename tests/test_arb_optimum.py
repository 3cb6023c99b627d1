"""The closed-form sizing of cross_pool_arb against exhaustive search and the old ternary search.

Small generated pools (V2 reserves of a few thousand units, V3 states at prices near 1 with any
liquidity, fee tiers 500/3000) are searched exhaustively over every size 1..r0 with the exact
contract math; realistic ones (the USDC/WETH scale) against the ternary search the strategy used
before. Each property counts the cases it exercised (both directions, the interval edge clamping
the size) and asserts it saw them.
"""
from __future__ import annotations

from collections import Counter
from fractions import Fraction
from typing import Callable

from hypothesis import event, given, settings
from hypothesis import strategies as st

from tapedeck.domain.cp_optimum import RoundTrip
from tapedeck.domain.strategies.cross_pool_arb import feasible_max, round_trip_profit, size_round_trip
from tapedeck.domain.uniswap_v3 import get_sqrt_ratio_at_tick, tick_spacing_interval

Q96 = 1 << 96


def _v3_state(draw, tick_range: tuple[int, int], spacing: int) -> tuple[int, int]:
    """A tick and a sqrt price inside that tick (so inside its tick-spacing interval)."""
    tick = draw(st.integers(*tick_range))
    lo, hi = get_sqrt_ratio_at_tick(tick), get_sqrt_ratio_at_tick(tick + 1) - 1
    return tick, draw(st.integers(lo, hi))


@st.composite
def small_world(draw):
    spacing, fee = draw(st.sampled_from([(10, 500), (60, 3000)]))
    tick, sp = _v3_state(draw, (-200, 200), spacing)
    liq = draw(st.integers(1, 99)) * 10 ** draw(st.integers(3, 7))  # thin (the edge clamps) to deep
    r0 = draw(st.integers(200, 1_500))
    gap_bps = draw(st.sampled_from([-1, 1])) * draw(st.integers(40, 5_000))  # V2's price of token0 vs V3's
    r1 = max(1, r0 * sp * sp * (10_000 + gap_bps) // (10_000 * Q96 * Q96))
    return r0, r1, sp, liq, tick, spacing, fee


def _directions(r0: int, r1: int, sp: int, fee: int, v2_fee: int = 30) -> list[bool]:
    """The directions whose marginal test passes (as the strategy decides them)."""
    a = (10_000 - v2_fee) * r1 * (1_000_000 - fee) * Q96 * Q96 > 10_000 * r0 * 1_000_000 * sp * sp
    b = (1_000_000 - fee) * sp * sp * (10_000 - v2_fee) * r0 > 1_000_000 * Q96 * Q96 * 10_000 * r1
    return [True] if a else [False] if b else []


def test_sizing_equals_exhaustive_search_on_small_pools() -> None:
    seen: Counter[str] = Counter()

    @settings(max_examples=1000, deadline=None, database=None, derandomize=True)
    @given(small_world())
    def check(world) -> None:
        r0, r1, sp, liq, tick, spacing, fee = world
        dirs = _directions(r0, r1, sp, fee)
        if not dirs:
            seen["neither pays"] += 1
            return
        a_pays = dirs[0]
        profit = round_trip_profit(a_pays, r0, r1, sp, liq, tick, spacing, fee, 30)
        x_max = min(r0, feasible_max(a_pays, r0, r1, sp, liq, tick, spacing, fee, 30))
        if profit(1) is None:
            assert x_max < 1 and size_round_trip(a_pays, r0, r1, sp, liq, tick, spacing, fee, 30, 1) is None
            seen["nothing feasible"] += 1
            return
        # every size up to the closed form's limit is feasible, the next one is not
        values = [profit(x) for x in range(1, x_max + 1)]
        assert None not in values and (x_max == r0 or profit(x_max + 1) is None)
        best = max(values[:x_max])
        trip = (RoundTrip.v2_then_v3 if a_pays else RoundTrip.v3_then_v2)(r0, r1, 9970, sp, liq, 1_000_000 - fee)
        assert trip.max_profit_bound(x_max) >= best  # the continuous bound holds for the exact profit
        clamped = trip.optimum() > x_max
        sized = size_round_trip(a_pays, r0, r1, sp, liq, tick, spacing, fee, 30, 1)
        label = ("A" if a_pays else "B") + (" clamped" if clamped else "") + (" pays" if best >= 1 else " loses")
        event(label)
        seen[label] += 1
        if best < 1:
            assert sized is None or sized[1] is None or sized[1] < 1
            return
        assert sized is not None
        x, p, proven = sized
        assert 1 <= x <= x_max and p == profit(x) == best  # the true integer optimum, exactly
        seen["proven" if proven else "found, not proven"] += 1

    check()
    print(dict(seen))
    for label in ("A pays", "B pays", "A clamped pays", "B clamped pays"):
        assert seen[label] >= 3, (label, sorted(seen.items()))


@st.composite
def real_world(draw):
    """USDC/WETH-scale states: V3 at ticks ~195,000-205,000 (1,200-3,300 USDC/WETH), liquidity
    ~1e17-1e20, V2 depth 1-60M USDC priced up to 1.5 % off."""
    spacing, fee = 10, 500
    tick, sp = _v3_state(draw, (195_000, 205_000), spacing)
    liq = draw(st.integers(10**17, 10**20))
    r0 = draw(st.integers(10**12, 6 * 10**13))
    gap_bps = draw(st.integers(-150, 150))
    r1 = max(1, r0 * sp * sp * (10_000 + gap_bps) // (10_000 * Q96 * Q96))
    return r0, r1, sp, liq, tick, spacing, fee


def _ternary(profit: Callable[[int], int | None], upper: int) -> tuple[int, int | None]:
    """The search the strategy used before (binary search of the feasible prefix, integer ternary
    search of the profit), kept here as the reference."""
    if upper < 1 or profit(1) is None:
        return 0, None
    lo, hi = 1, upper
    if profit(hi) is None:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if profit(mid) is None:
                hi = mid
            else:
                lo = mid
        hi = lo
    lo = 1
    while hi - lo > 2:
        m1 = lo + (hi - lo) // 3
        m2 = hi - (hi - lo) // 3
        if profit(m1) < profit(m2):  # type: ignore[operator]
            lo = m1 + 1
        else:
            hi = m2
    best_x, best = lo, profit(lo)
    for x in range(lo + 1, hi + 1):
        p = profit(x)
        if p is not None and (best is None or p > best):
            best_x, best = x, p
    return best_x, best


def test_sizing_is_at_least_the_old_ternary_search_on_real_scale_pools() -> None:
    seen: Counter[str] = Counter()

    @settings(max_examples=120, deadline=None, database=None, derandomize=True)
    @given(real_world())
    def check(world) -> None:
        r0, r1, sp, liq, tick, spacing, fee = world
        dirs = _directions(r0, r1, sp, fee)
        if not dirs:
            seen["neither pays"] += 1
            return
        a_pays = dirs[0]
        profit = round_trip_profit(a_pays, r0, r1, sp, liq, tick, spacing, fee, 30)
        old_x, old = _ternary(profit, r0)
        sized = size_round_trip(a_pays, r0, r1, sp, liq, tick, spacing, fee, 30, 1)
        x_max = min(r0, feasible_max(a_pays, r0, r1, sp, liq, tick, spacing, fee, 30))
        trip = (RoundTrip.v2_then_v3 if a_pays else RoundTrip.v3_then_v2)(r0, r1, 9970, sp, liq, 1_000_000 - fee)
        clamped = trip.optimum() > x_max
        label = ("A" if a_pays else "B") + (" clamped" if clamped else "")
        event(label)
        seen[label] += 1
        if old is None or old < 1:
            assert sized is None or sized[1] is None or sized[1] < 1 or sized[1] == profit(sized[0])
            return
        assert sized is not None
        x, p, proven = sized
        assert p == profit(x) >= old  # exact at its size, never worse than the old search
        assert p <= trip.max_profit_bound(x_max)
        seen["better" if p > old else "equal"] += 1
        seen["proven" if proven else "unproven"] += 1

    check()
    print(dict(seen))
    for label in ("A", "B", "A clamped", "B clamped"):
        assert seen[label] >= 3, (label, sorted(seen.items()))
    assert seen["equal"] + seen["better"] >= 30


@given(st.integers(1, 10**14), st.integers(1, 10**14), st.integers(4_295_128_739, 2**150), st.integers(1, 10**20),
       st.sampled_from([9970, 9975, 10_000]), st.sampled_from([999_500, 997_000, 999_900]))
@settings(max_examples=600, deadline=None, database=None, derandomize=True)
def test_integer_round_trips_are_the_two_constant_product_composition(r0, r1, sp, liq, ka, kb) -> None:
    """``RoundTrip.v2_then_v3``/``v3_then_v2`` are the docstring's composition on virtual reserves
    (``x_v = L*2^96/sqrtP``, ``y_v = L*sqrtP/2^96``), checked in exact rationals."""
    xv, yv = Fraction(liq * Q96, sp), Fraction(liq * sp, Q96)
    fa2, fa3 = Fraction(ka, 10_000), Fraction(kb, 1_000_000)

    def composed(ai, ao, fa, bi, bo, fb):  # out(x) = n x / (p + r x), up to one common factor
        return fa * fb * ao * bo, ai * bi, fa * (bi + fb * ao)

    for trip, (n, p, r) in ((RoundTrip.v2_then_v3(r0, r1, ka, sp, liq, kb), composed(r0, r1, fa2, yv, xv, fa3)),
                            (RoundTrip.v3_then_v2(r0, r1, ka, sp, liq, kb), composed(xv, yv, fa3, r1, r0, fa2))):
        assert Fraction(trip.n, trip.p) == n / p and Fraction(trip.r, trip.p) == r / p


def test_the_interval_edge_bounds_the_size_exactly() -> None:
    """At the largest feasible size the V3 leg still fits; one more would cross the edge."""
    tick = 200_005
    lower, _ = tick_spacing_interval(tick, 10)
    sp = (get_sqrt_ratio_at_tick(tick) + get_sqrt_ratio_at_tick(tick + 1)) // 2
    liq = 10**15  # thin: the edge is near
    for a_pays, r0, r1 in ((True, 10**13, 10**13 * 10**12 // 2000), (False, 10**13, 10**13 * 10**12 // 2120)):
        profit = round_trip_profit(a_pays, r0, r1, sp, liq, tick, 10, 500, 30)
        x_max = feasible_max(a_pays, r0, r1, sp, liq, tick, 10, 500, 30)
        assert 1 < x_max < r0
        assert profit(x_max) is not None and profit(x_max + 1) is None
        sized = size_round_trip(a_pays, r0, r1, sp, liq, tick, 10, 500, 30, 1)
        assert sized is not None and sized[0] <= x_max and sized[1] == profit(sized[0]) > 0
    assert lower == 200_000


OPT_SEEN: Counter[str] = Counter()


@given(st.one_of(st.integers(1, 2**100), st.integers(2**193, 2**600)), st.one_of(st.integers(1, 2**100), st.integers(2**193, 2**400)),
       st.one_of(st.integers(-3, 3), st.integers(1, 2**40), st.integers(1, 2**700)))
@settings(max_examples=400, deadline=None, derandomize=True, database=None)
def test_optimum_from_the_relaxed_trip_is_the_square_roots(p, r, gain) -> None:
    """``RoundTrip.optimum`` is ``floor((isqrt(n*p) - p) / r)`` (0 when nothing pays) whether it is
    taken from the square root of ``n*p`` or, once the relaxed trip's is known, from its
    inequalities around the relaxed optimum (also for ``n`` just above ``p``, where it is 0 or 1;
    ``n = p + gain``)."""
    from math import isqrt
    n = max(1, p + gain)
    want = (isqrt(n * p) - p) // r if n > p else 0
    plain = RoundTrip(n, p, r)
    assert plain.optimum() == want
    trip = RoundTrip(n, p, r)
    loose = trip.relaxed()
    loose.max_profit_bound(1)  # its square root known: optimum goes by the inequalities
    assert trip.optimum() == want
    OPT_SEEN["relaxed" if loose is not trip and loose._np else "plain"] += 1
    OPT_SEEN["pays" if want else "zero"] += 1


def test_optimum_cases_were_exercised() -> None:
    test_optimum_from_the_relaxed_trip_is_the_square_roots()
    assert OPT_SEEN["relaxed"] >= 100 and OPT_SEEN["pays"] >= 50 and OPT_SEEN["zero"] >= 50, OPT_SEEN
