"""The finder's fast paths (domain/arb_finder.py) give what the slow ones give.

* ``PoolVenue.quote`` for a V3 pool priced inside its tick-spacing interval skips the new tick and
  reuses the curve's amount to the edge: it must equal ``dex_quotes.quote`` (``swap_within_range``)
  at every size, including the sizes that land exactly on the edge, one unit past it, and 1;
* ``margins_if_fresh`` equals ``fresh`` + ``margin`` + ``margin`` (and their floats), after the state moved too;
* the margin-times-capacity refutation (``FinderStats.below_cap``) never refutes a round trip that
  the full sizing finds: the finder's ``on_update`` finds exactly what ``round_trip`` finds with
  the refutation switched off (``refute_by_capacity = False``).
"""
from __future__ import annotations

from collections import Counter
from math import gcd

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tapedeck.domain import arb_finder as arb_finder_module
from tapedeck.domain import dex_quotes
from tapedeck.domain import events as ev
from tapedeck.domain.arb_finder import ArbFinder, PoolVenue
from tapedeck.domain.dex_quotes import PoolSpec
from tapedeck.domain.state import MarketState
from tapedeck.domain.uniswap_v3 import get_sqrt_ratio_at_tick

T0, T1 = "0x" + "0" * 39 + "a", "0x" + "0" * 39 + "b"
POOL = "0x" + "0" * 39 + "1"


def v3_state(sp: int, liq: int, tick: int, ts: int = 1) -> MarketState:
    state = MarketState()
    state.on_v3(ev.V3Swapped(ts=ts, pool=POOL, block=1, tx="", log_index=0, sender="", recipient="", amount0=0,
                             amount1=0, sqrt_price_x96=sp, liquidity=liq, tick=tick))
    return state


SEEN: Counter[str] = Counter()


@given(st.data())
@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
def test_fast_v3_quote_equals_dex_quotes(data) -> None:
    spacing, fee = data.draw(st.sampled_from([(1, 100), (10, 500), (60, 3000), (200, 10000)]))
    tick = data.draw(st.integers(-887_000, 887_000))
    lo, hi = get_sqrt_ratio_at_tick(tick), get_sqrt_ratio_at_tick(tick + 1) - 1
    sp = data.draw(st.one_of(st.just(lo), st.integers(lo, hi)))
    liq = data.draw(st.integers(1, 10**4)) * 10 ** data.draw(st.integers(0, 20))
    state = v3_state(sp, liq, tick)
    spec = PoolSpec(POOL, "v3", T0, T1, fee, spacing)
    venue = PoolVenue(spec)
    token = data.draw(st.sampled_from([T0, T1]))
    cap = venue.max_in(state, token)
    amount = data.draw(st.one_of(st.integers(1, 100), st.sampled_from([cap - 1, cap, cap + 1, 2 * cap + 1]),
                                 st.integers(1, max(1, 3 * cap)), st.integers(1, 2**200)))
    if amount <= 0:
        amount = 1
    fast, slow = venue.quote(state, token, amount), dex_quotes.quote(spec, state, token, amount)
    assert fast == slow, (sp, liq, tick, fee, token, amount, cap)
    kind = "none" if slow is None else ("at the edge" if amount in (cap, cap - 1) else "inside")
    SEEN[kind] += 1
    event(kind)


def test_fast_v3_quote_cases_were_exercised() -> None:
    test_fast_v3_quote_equals_dex_quotes()
    assert SEEN["none"] >= 20 and SEEN["inside"] >= 100 and SEEN["at the edge"] >= 10, SEEN


def test_margins_if_fresh_follow_the_state() -> None:
    spec = PoolSpec(POOL, "v3", T0, T1, 500, 10)
    venue = PoolVenue(spec)
    state = v3_state(get_sqrt_ratio_at_tick(100) + 5, 10**18, 100, ts=10)

    def margins_and_floats() -> tuple:
        m0, m1 = venue.margin(state, T0), venue.margin(state, T1)
        return m0, m1, float(m0[0]) / float(m0[1]), float(m1[0]) / float(m1[1])  # (each part rounded, one division)

    want = margins_and_floats()
    assert venue.margins_if_fresh(state, T0, T1, 10, 5) == want
    assert venue.margins_if_fresh(state, T0, T1, 16, 5) is None  # too old
    state.on_v3(ev.V3Swapped(ts=12, pool=POOL, block=2, tx="", log_index=0, sender="", recipient="", amount0=0,
                             amount1=0, sqrt_price_x96=get_sqrt_ratio_at_tick(300) + 7, liquidity=10**18, tick=300))
    moved = venue.margins_if_fresh(state, T0, T1, 12, 5)
    assert moved != want and moved == margins_and_floats()
    state.stale[POOL] = "gap"
    assert venue.margins_if_fresh(state, T0, T1, 12, 5) is None


@given(st.integers(2**80, 2**120), st.integers(1, 2**100), st.sampled_from([100, 500, 3000, 10000]),
       st.booleans(), st.booleans())
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
def test_margins_if_fresh_are_each_tokens_margin(sp: int, liq: int, fee: int, token0_first: bool, kept: bool) -> None:
    """A V3 pool's two margins from ``margins_if_fresh`` (made from one square of its price) are what
    ``margin`` makes for each token on a venue that never saw the price (each ``mid`` after the fee), in
    either order of the pair's tokens, and what ``margin`` then returns from the venue's own cache
    (``kept``: margin asked first)."""
    from tapedeck.domain.uniswap_v3 import get_tick_at_sqrt_ratio
    spec = PoolSpec(POOL, "v3", T0, T1, fee, 10 if fee == 500 else 60)
    state = v3_state(sp, liq, get_tick_at_sqrt_ratio(sp))
    s, o = (T0, T1) if token0_first else (T1, T0)
    fresh_venue, venue = PoolVenue(spec), PoolVenue(spec)
    ms, mo = fresh_venue.margin(state, s), fresh_venue.margin(state, o)
    keep = 1_000_000 - fee  # (and margin is the mid after the fee, as the quiet path's definition says)
    assert [ms, mo] == [(keep * m[0], 1_000_000 * m[1]) for m in (fresh_venue.mid(state, s), fresh_venue.mid(state, o))]
    if kept:
        assert venue.margin(state, o) == mo
    got = venue.margins_if_fresh(state, s, o, 1, 5)
    assert got == (ms, mo, float(ms[0]) / float(ms[1]), float(mo[0]) / float(mo[1]))
    assert (venue.margin(state, s), venue.margin(state, o)) == (ms, mo)


@given(st.data())
@settings(max_examples=150, deadline=None, derandomize=True, database=None)
def test_capacity_refutation_never_drops_an_opportunity(data) -> None:
    state = MarketState()
    specs = []
    base_tick = data.draw(st.integers(-50_000, 50_000))
    for i in range(4):
        pid = "0x" + f"{i + 2:040x}"
        if i < 2:
            r0 = data.draw(st.integers(10**9, 10**13))
            sp = get_sqrt_ratio_at_tick(base_tick + data.draw(st.integers(-150, 150)))
            r1 = max(1, r0 * sp * sp >> 192)
            state.on_v2(ev.V2ReservesSynced(ts=1, pool=pid, block=1, reserve0=r0, reserve1=r1))
            specs.append(PoolSpec(pid, "v2", T0, T1, 30))
        else:
            tick = base_tick + data.draw(st.integers(-150, 150))
            sp = data.draw(st.integers(get_sqrt_ratio_at_tick(tick), get_sqrt_ratio_at_tick(tick + 1) - 1))
            liq = data.draw(st.integers(10**12, 10**20))
            state.on_v3(ev.V3Swapped(ts=1, pool=pid, block=1, tx="", log_index=0, sender="", recipient="",
                                     amount0=0, amount1=0, sqrt_price_x96=sp, liquidity=liq, tick=tick))
            specs.append(PoolSpec(pid, "v3", T0, T1, 500, 10))
    gas = data.draw(st.integers(0, 9)) * 10 ** data.draw(st.integers(0, 6))  # gas of ~0..2e12 units of T0: near the profits
    fast = ArbFinder([PoolVenue(s) for s in specs], numeraires=[T0], native={"ethereum": T0}, gas_price_wei=gas,
                     max_age_ns=10)
    slow = ArbFinder([PoolVenue(s) for s in specs], numeraires=[T0], native={"ethereum": T0}, gas_price_wei=gas,
                     max_age_ns=10)
    slow.refute_by_capacity = False
    for s in specs:
        got = fast.on_update(state, s.pool, 1)
        want = []
        for b in slow._partners[s.pool]:
            a = slow.by_id[s.pool]
            both = [x for x in (slow.round_trip(state, a, b, T0, T1, 1), slow.round_trip(state, b, a, T0, T1, 1))
                    if x is not None]
            want.extend(sorted(both, key=lambda x: -x.net_profit))
        assert [(o.key, o.amount_in, o.net_profit) for o in got] == [(o.key, o.amount_in, o.net_profit) for o in want]
    event(f"refuted by capacity: {min(fast.stats.below_cap, 1)}")
    event(f"found: {min(fast.stats.found, 1)}")
    SEEN["refuted"] += fast.stats.below_cap
    SEEN["found"] += fast.stats.found


def test_capacity_refutation_cases_were_exercised() -> None:
    SEEN["refuted"] = SEEN["found"] = 0
    test_capacity_refutation_never_drops_an_opportunity()
    assert SEEN["refuted"] >= 20 and SEEN["found"] >= 20, SEEN


V2_SEEN: Counter[str] = Counter()


@given(st.data())
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
def test_fast_v2_quote_and_version_equal_the_slow_ones(data) -> None:
    """``PoolVenue.quote`` inlines V2's ``getAmountOut``: equal to ``dex_quotes.quote`` at every size
    (tiny, huge, empty reserves); ``version`` is the pool's state as ints, also after the pool
    moved (the opportunity keys are its text)."""
    fee = data.draw(st.sampled_from([0, 5, 30, 100]))
    spec = PoolSpec(POOL, "v2", T0, T1, fee)
    venue = PoolVenue(spec)
    state = MarketState()
    for block in (1, 2):
        r0, r1 = (data.draw(st.one_of(st.just(0), st.integers(1, 10**6), st.integers(1, 2**112))) for _ in range(2))
        state.on_v2(ev.V2ReservesSynced(ts=block, pool=POOL, block=block, reserve0=r0, reserve1=r1))
        for _ in range(3):
            token = data.draw(st.sampled_from([T0, T1]))
            amount = data.draw(st.one_of(st.integers(-2, 100), st.integers(1, 2**200)))
            fast, slow = venue.quote(state, token, amount), dex_quotes.quote(spec, state, token, amount)
            assert fast == slow, (r0, r1, fee, token, amount)
            V2_SEEN["none" if slow is None else "priced"] += 1
        assert venue.version(state) == (r0, r1)
        V2_SEEN["version"] += 1
    spec3 = PoolSpec(POOL, "v3", T0, T1, 500, 10)
    v3 = PoolVenue(spec3)
    s3 = v3_state(get_sqrt_ratio_at_tick(100) + 5, 10**18, 100)
    assert v3.version(s3) == (get_sqrt_ratio_at_tick(100) + 5, 10**18)
    s3.on_v3(ev.V3Swapped(ts=2, pool=POOL, block=2, tx="", log_index=0, sender="", recipient="", amount0=0,
                          amount1=0, sqrt_price_x96=get_sqrt_ratio_at_tick(300) + 7, liquidity=10**17, tick=300))
    assert v3.version(s3) == (get_sqrt_ratio_at_tick(300) + 7, 10**17)


def test_fast_v2_quote_cases_were_exercised() -> None:
    test_fast_v2_quote_and_version_equal_the_slow_ones()
    assert V2_SEEN["none"] >= 50 and V2_SEEN["priced"] >= 300 and V2_SEEN["version"] >= 300, V2_SEEN


BELOW_SEEN: Counter[str] = Counter()


@given(st.integers(1, 2**700), st.integers(1, 2**300), st.integers(1, 2**120), st.integers(1, 2**340),
       st.integers(1, 2**340), st.sampled_from([-1, 0, 1, None]))
@settings(max_examples=600, deadline=None, derandomize=True, database=None)
def test_product_below_is_the_exact_comparison(u: int, v: int, w: int, x: int, y: int, near: int | None) -> None:
    """``_product_below`` (the capacity test's comparison, decided by bit lengths where they suffice)
    equals ``u*v < w*x*y`` everywhere, also where the two products are equal or a unit apart."""
    if near is not None:  # make w*x*y within a unit of u*v: u = w*x*y + near over v = 1
        u, v = max(1, w * x * y + near), 1
    got = arb_finder_module._product_below(u, v, w, x, y)
    assert got == (u * v < w * x * y)
    left, right = u.bit_length() + v.bit_length(), w.bit_length() + x.bit_length() + y.bit_length()
    BELOW_SEEN["by bits" if left - 2 >= right or left <= right - 3 else "by products"] += 1
    BELOW_SEEN["near" if near is not None else "far"] += 1


def test_product_below_cases_were_exercised() -> None:
    if not BELOW_SEEN:
        test_product_below_is_the_exact_comparison()
    assert BELOW_SEEN["by bits"] >= 100 and BELOW_SEEN["by products"] >= 100 and BELOW_SEEN["near"] >= 100, BELOW_SEEN


SCREEN = {"paid": 0, "near": 0, "overflow": 0}


@given(st.integers(1, 2**400), st.integers(1, 2**400), st.integers(-3, 3), st.integers(1, 2**400),
       st.integers(0, 1600))
@settings(max_examples=600, deadline=None, derandomize=True, database=None)
def test_the_float_screen_never_rules_out_a_paid_round_trip(a0: int, b0: int, d: int, k: int, big: int) -> None:
    """``on_update`` rules a round trip out by floats only where the margins' product is below
    ``NEAR_ONE``; every round trip whose exact surplus ``a0*b0 - a1*b1`` is positive passes the screen:
    on margins whose products are equal or 1-3 apart (``a1*b1 = a0*b0 - d``, split between ``a1`` and
    ``b1`` by a common factor), at up to ~400 bits, and on parts too large for a float (the exact
    test decides those)."""
    from tapedeck.domain.arb_finder import NEAR_ONE, _ratio
    g = gcd(k, a0 * b0 - d) if a0 * b0 - d > 0 else 1
    a1, b1 = g, (a0 * b0 - d) // g
    if b1 <= 0:
        return
    pairs = [((a0, a1), (b0, b1), d)]
    if big > 1024:  # (a part beyond a float's range: 2^1024 and up)
        pairs.append(((a0 << big, a1 << big), (b0, b1), d << big))
        SCREEN["overflow"] += 1
    for ma, mb, want in pairs:
        surplus = ma[0] * mb[0] - ma[1] * mb[1]
        assert surplus == want
        passes = _ratio(ma) * _ratio(mb) >= NEAR_ONE
        if surplus > 0:
            assert passes, (ma, mb)
            SCREEN["paid"] += 1
        SCREEN["near"] += abs(surplus) <= 3


def test_the_float_screen_cases_were_seen() -> None:
    if not SCREEN["near"]:
        test_the_float_screen_never_rules_out_a_paid_round_trip()
    assert SCREEN["paid"] >= 100 and SCREEN["near"] >= 500 and SCREEN["overflow"] >= 50, SCREEN
