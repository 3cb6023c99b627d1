"""The finder's compiled build (setup.py: ``domain/cp_optimum.py`` and ``domain/arb_finder.py``
compiled by Cython, and the closed-form sizing in C on GMP, ``domain/_closed_form_gmp.c``) gives
exactly what the pure-Python modules give.

The imported modules are the compiled ones where the build is installed (``make bootstrap``);
``tests/pure_python.pure_modules()`` loads private pure copies of the same sources beside them. Every
opportunity (legs, sizes, outputs, profits, gas, method, ``proven``, the key's versions, as msgspec encodes it) and
every counter of ``FinderStats`` must be equal, on the benchmark's 50-pool stream and on generated
pools, and so must every ``RoundTrip`` answer on generated integers. With ``TAPEDECK_PURE_PYTHON=1``
the whole suite runs on the ``.py`` files (tests/conftest.py) and these comparisons are pure against
pure."""
from __future__ import annotations

import dataclasses
import math
import os
import random
import sys
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapedeck.domain import arb_finder, cp_optimum
from tapedeck.domain import events as ev
from tapedeck.domain.dex_quotes import PoolSpec
from tapedeck.domain.engine import Engine
from tapedeck.domain.risk import RiskGate
from tapedeck.domain.state import MarketState
from tests.pure_python import is_compiled, pure_modules

try:
    from tapedeck.domain import _closed_form_gmp as gmp
except ImportError:  # (not built, or TAPEDECK_PURE_PYTHON=1)
    gmp = None  # type: ignore[assignment]

PURE = pure_modules()
PURE_FINDER = PURE["tapedeck.domain.arb_finder"]
PURE_TRIP = PURE["tapedeck.domain.cp_optimum"].RoundTrip
PURE_RUN = os.environ.get("TAPEDECK_PURE_PYTHON") == "1"
Q96 = 1 << 96
SPACING = {100: 1, 500: 10, 3000: 60, 10000: 200}
T0, T1 = "0x" + "a0" * 20, "0x" + "c0" * 20


def test_the_compiled_build_is_what_runs() -> None:
    """``make bootstrap`` built it (a machine with gcc and the Python headers), from the sources as they
    are now (an older build is not run: tests/conftest.py); the pure copies are pure."""
    from tests.conftest import STALE_BUILDS
    assert not STALE_BUILDS, f"built before their source's last change (run `make bootstrap`): {STALE_BUILDS}"
    assert not is_compiled(PURE_FINDER) and not is_compiled(PURE["tapedeck.domain.cp_optimum"])
    assert PURE_FINDER._gmp_closed_form is None  # (the pure copy sizes in Python only)
    if PURE_RUN:
        assert not is_compiled(arb_finder) and not is_compiled(cp_optimum)
        assert arb_finder._gmp_closed_form is None and gmp is None
    else:
        assert is_compiled(arb_finder) and is_compiled(cp_optimum) and gmp is not None, (
            "the finder's compiled build is not installed: run `make bootstrap` (pip install -e .), "
            "or set TAPEDECK_PURE_PYTHON=1 to test the pure modules")
        assert arb_finder._gmp_closed_form is gmp.closed_form


def _gmp_counts() -> tuple[int, int, int]:
    """(sizes the C sizing answered, of them unproven, times it declined) so far in this process."""
    if gmp is None:
        return 0, 0, 0
    answered, unproven, sites = gmp.counts()
    return answered, unproven, sum(sites)


def _encoded(opps: list) -> list[bytes]:  # type: ignore[type-arg]
    return [msgspec.json.encode(o) for o in opps]


def _stats(finder) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return dataclasses.asdict(finder.stats)


def _bench():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import bench_arb_finder as bench  # the 50-pool world and its updates
    return bench


def _pair_of_finders(module_venues, **kw):  # type: ignore[no-untyped-def]
    """The imported (compiled) finder and a pure one over the same venue specs."""
    specs = [v.spec for v in module_venues]
    return (arb_finder.ArbFinder([arb_finder.PoolVenue(s) for s in specs], **kw),
            PURE_FINDER.ArbFinder([PURE_FINDER.PoolVenue(s) for s in specs], **kw))


@pytest.mark.parametrize("scan_whole", [False, True])
def test_compiled_and_pure_give_the_same_opportunities_on_the_benchmark_stream(scan_whole: bool) -> None:
    bench = _bench()
    rng = random.Random(5)
    venues, first, numeraire = bench.world(rng)
    kw = dict(gas_price_wei=15 * 10**9, numeraires=[numeraire], max_age_ns=10**18, native={"ethereum": bench.addr(0xC0)})
    compiled, pure = _pair_of_finders(venues, **kw)
    compiled.scan_whole = pure.scan_whole = scan_whole
    engine = Engine([], RiskGate.from_config({"default_max_notional": 0, "default_max_outstanding": 0}))
    for e in first:
        engine.handle(e)
    last = {e.pool: e for e in first}  # type: ignore[attr-defined]
    ids = sorted(last)
    ts, found, unproven = first[0].ts, 0, 0
    before = _gmp_counts()
    for i in range(3000 if not scan_whole else 600):
        ts += 10**9
        pid = rng.choice(ids)
        f = rng.choice([-1, 1]) * (rng.uniform(0.005, 0.02) if i % 5 == 4 else rng.uniform(0, 0.0005))
        e = bench.moved(last[pid], ts, 1 + f)
        last[pid] = e
        engine.handle(e)
        got = compiled.on_update(engine.state, pid, ts)
        assert _encoded(got) == _encoded(pure.on_update(engine.state, pid, ts)), i
        found += len(got)
        unproven += sum(not o.proven for o in got)
    assert _encoded(compiled.scan(engine.state, ts)) == _encoded(pure.scan(engine.state, ts))
    assert _stats(compiled) == _stats(pure)
    assert found >= (200 if not scan_whole else 40), found  # (the comparison saw opportunities...)
    if not scan_whole:
        assert unproven >= 1, unproven  # (... and the pattern search's unproven ones too)
    answered, unproven_c, declined = (now - then for now, then in zip(_gmp_counts(), before))
    if gmp is not None and not scan_whole:  # the C sizing answered (the pattern search's too)
        assert answered >= 150 and unproven_c >= 1, (answered, unproven_c, declined)
    elif gmp is not None:
        assert (answered, declined) == (0, 0)  # (the whole scan is the Python's alone)


@given(st.data())
@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
def test_compiled_and_pure_give_the_same_opportunities_on_generated_pools(data) -> None:
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    price = rng.uniform(500, 4000) * 10**6 / 10**18
    kinds = data.draw(st.lists(st.sampled_from(["v2", "v3-100", "v3-500", "v3-3000", "v3-10000"]), min_size=2, max_size=5))
    specs, events = [], []
    for i, k in enumerate(kinds):
        pid = "0x" + f"{0x100 + i:040x}"
        move = 1 + rng.choice([-1, 1]) * rng.uniform(0, 0.05) if i == 0 else rng.uniform(0.999, 1.001)
        if k == "v2":
            r0 = rng.randint(10**2, 10**9) * 10**6
            specs.append(PoolSpec(pid, "v2", T0, T1, 30))
            events.append(ev.V2ReservesSynced(ts=1, pool=pid, block=1, reserve0=r0, reserve1=int(r0 / (price * move))))
        else:
            fee = int(k.split("-")[1])
            sp = int((1 / (price * move)) ** 0.5 * Q96)
            from tapedeck.domain.uniswap_v3 import get_tick_at_sqrt_ratio
            specs.append(PoolSpec(pid, "v3", T0, T1, fee, SPACING[fee]))
            events.append(ev.V3Swapped(ts=1, pool=pid, block=1, tx="", log_index=i, sender="", recipient="", amount0=0,
                                       amount1=0, sqrt_price_x96=sp, liquidity=rng.randint(10**12, 10**21),
                                       tick=get_tick_at_sqrt_ratio(sp)))
    kw = dict(gas_price_wei=rng.choice([0, 10**9, 30 * 10**9]), numeraires=[T0], max_age_ns=10**18,
              native={"ethereum": T0}, min_profit=rng.choice([0, 0, 10**6]))
    compiled = arb_finder.ArbFinder([arb_finder.PoolVenue(s) for s in specs], **kw)
    pure = PURE_FINDER.ArbFinder([PURE_FINDER.PoolVenue(s) for s in specs], **kw)
    state = MarketState()
    answered, _, declined = _gmp_counts()
    for e in events:
        state.on_v2(e) if isinstance(e, ev.V2ReservesSynced) else state.on_v3(e)
        state.updated[e.pool] = e.ts  # type: ignore[attr-defined]
    assert _encoded(compiled.on_update(state, specs[0].pool, 1)) == _encoded(pure.on_update(state, specs[0].pool, 1))
    assert _encoded(compiled.scan(state, 1)) == _encoded(pure.scan(state, 1))
    assert _stats(compiled) == _stats(pure)
    SEEN["found"] += compiled.stats.found
    SEEN["sized"] += compiled.stats.sized
    now_answered, _, now_declined = _gmp_counts()
    SEEN["gmp answered"] += now_answered - answered
    SEEN["gmp declined"] += now_declined - declined


def test_a_v3_pool_whose_ticks_become_known_at_the_same_price_is_sized_across_them() -> None:
    """A V3 pool's view (its leg for the C sizing) is kept per price, and whether its ticks are known is
    part of that key: a snapshot that tells its ticks at the very same price, liquidity and tick makes
    the next sizing the Python's, across the ticks (the C prices inside one interval only), the same
    as the pure module's, and not the C's."""
    from tapedeck.domain.uniswap_v3 import get_tick_at_sqrt_ratio
    v3, v2 = "0x" + "01" * 20, "0x" + "02" * 20
    specs = [PoolSpec(v3, "v3", T0, T1, 3000, 60), PoolSpec(v2, "v2", T0, T1, 30)]
    sp, lq = Q96 * 3 // 2, 10**15  # token1 per token0: 2.25; the V2 pair at 2.0
    tick = get_tick_at_sqrt_ratio(sp)
    kw = dict(gas_price_wei=0, numeraires=[T0], max_age_ns=10**18, native={"ethereum": T0})
    compiled = arb_finder.ArbFinder([arb_finder.PoolVenue(x) for x in specs], **kw)
    pure = PURE_FINDER.ArbFinder([PURE_FINDER.PoolVenue(x) for x in specs], **kw)
    state = MarketState()
    state.on_v2(ev.V2ReservesSynced(ts=1, pool=v2, block=1, reserve0=10**17, reserve1=2 * 10**17))
    state.updated[v2] = 1
    state.on_v3(ev.V3Swapped(ts=1, pool=v3, block=1, tx="", log_index=0, sender="", recipient="", amount0=0,
                             amount1=0, sqrt_price_x96=sp, liquidity=lq, tick=tick))
    answered = _gmp_counts()[0]
    inside = compiled.on_update(state, v3, 1)
    assert inside and _encoded(inside) == _encoded(pure.on_update(state, v3, 1))
    if gmp is not None:
        assert _gmp_counts()[0] > answered  # (the C sized it, inside the interval)
    lower = (tick // 60) * 60  # its liquidity on a narrow range: the round trip's size crosses its end
    state.on_v3(ev.V3PoolSnapshot(ts=2, pool=v3, block=2, sqrt_price_x96=sp, tick=tick, liquidity=lq, tick_spacing=60,
                                  ticks=((lower - 60, lq, lq), (lower + 120, lq, -lq))))
    answered = _gmp_counts()[0]
    across = compiled.on_update(state, v3, 2)
    assert across and _encoded(across) == _encoded(pure.on_update(state, v3, 2))
    assert _gmp_counts()[0] == answered  # (not the C's: its leg is none where the ticks are known)
    assert across[0].legs[0].amount_in != inside[0].legs[0].amount_in  # (sized across the ticks: another size)
    assert _stats(compiled) == _stats(pure)


SEEN = {"found": 0, "sized": 0, "gmp answered": 0, "gmp declined": 0}


def test_generated_pools_had_opportunities() -> None:
    if not SEEN["sized"]:
        test_compiled_and_pure_give_the_same_opportunities_on_generated_pools()
    assert SEEN["found"] >= 30 and SEEN["sized"] >= 60, SEEN
    if gmp is not None:
        assert SEEN["gmp answered"] >= 20, SEEN


def test_the_c_sizing_switched_off_sizes_the_same() -> None:
    """``ArbFinder.compiled_sizing = False``: the Python sizing only, in the same process."""
    bench = _bench()
    rng = random.Random(11)
    venues, first, numeraire = bench.world(rng)
    kw = dict(gas_price_wei=15 * 10**9, numeraires=[numeraire], max_age_ns=10**18, native={"ethereum": bench.addr(0xC0)})
    on = arb_finder.ArbFinder([arb_finder.PoolVenue(v.spec) for v in venues], **kw)
    off = arb_finder.ArbFinder([arb_finder.PoolVenue(v.spec) for v in venues], **kw)
    off.compiled_sizing = False
    engine = Engine([], RiskGate.from_config({"default_max_notional": 0, "default_max_outstanding": 0}))
    for e in first:
        engine.handle(e)
    last = {e.pool: e for e in first}  # type: ignore[attr-defined]
    ids, ts, found = sorted(last), first[0].ts, 0
    for i in range(1500):
        ts += 10**9
        pid = rng.choice(ids)
        e = bench.moved(last[pid], ts, 1 + rng.choice([-1, 1]) * rng.uniform(0.005, 0.03 if i % 2 else 0.0005))
        last[pid] = e
        engine.handle(e)
        got = on.on_update(engine.state, pid, ts)
        assert _encoded(got) == _encoded(off.on_update(engine.state, pid, ts)), i
        found += len(got)
    assert _stats(on) == _stats(off) and found >= 100, found


@given(st.integers(1, 2**600), st.integers(1, 2**600), st.integers(1, 2**560), st.integers(1, 2**64),
       st.integers(1, 2**40), st.integers(0, 2**12), st.sampled_from([(999_500, 10**6), (997_000, 10**6), (9_970, 10**4)]))
@settings(max_examples=400, deadline=None, derandomize=True, database=None)
def test_compiled_and_pure_round_trips_answer_the_same(n, p, r, x_max, level, width, keep) -> None:
    n = n + p  # (mostly paying)
    got, want = cp_optimum.RoundTrip(n, p, r), PURE_TRIP(n, p, r)

    def answers(t):  # type: ignore[no-untyped-def]
        loose = t.relaxed()
        out = [loose.n, loose.p, loose.r, t.pays(), t.out(x_max), t.below(level, x_max), loose.max_profit_bound(x_max),
               t.optimum(), t.max_profit_bound(x_max)]
        lo = max(1, t.optimum() - width // 2)
        for trip in (t, loose):
            out += [trip.level_interval(level, lo, lo + width), trip.level_interval_exact(level, lo, lo + width),
                    trip.floored_level_intervals(level, lo, lo + width, *keep)]
        return out
    assert answers(got) == answers(want)


SPANS = {"estimated": 0, "rooted": 0, "empty": 0, "several": 0, "ends estimated": 0, "by float": 0, "ends by float": 0}


@given(st.integers(2**150, 2**700), st.integers(2**150, 2**500), st.integers(1, 2**60), st.integers(2**8, 2**54),
       st.integers(0, 2**12), st.integers(0, 60), st.integers(-3, 3),
       st.sampled_from([(999_500, 10**6), (997_000, 10**6), (990_000, 10**6), (999_900, 10**6)]))
@settings(max_examples=600, deadline=None, derandomize=True, database=None)
def test_the_c_floored_spans_are_the_pythons(n, p, r, x_at, width, lower, nudge, keep) -> None:
    """The C top-down search's floored spans (each run's roots estimated in floats and each end checked by
    the quadratic, else the exact square root) are ``RoundTrip.floored_level_intervals``'s, and its
    ``level_interval`` (ends estimated, each checked by two squares, else the square root) the trip's and
    its relaxed trip's, exactly: on generated trips around their optimum, at levels from the best bound
    down (spans empty, one, several, ends on the range's edges), with the estimates on and off."""
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    n = n + p * (1 + r % 7)  # (paying: its optimum near x_at, r chosen so, 2^8 to 2^54: the estimate's range and past it)
    r = max(1, (math.isqrt(n * p) - p) // x_at)
    trip = PURE_TRIP(n, p, r)
    x = max(1, trip.optimum())
    top = trip.max_profit_bound(x + width + 1)
    level = max(1, top - lower)
    lo = max(1, x - width // 2 + nudge)
    hi = lo + width
    want = trip.floored_level_intervals(level, lo, hi, *keep)
    before = gmp.path_counts()
    got = gmp.floored_spans(n, p, r, level, lo, hi, *keep)
    ran = [now - then for now, then in zip(gmp.path_counts(), before)]
    gmp.fast(False)
    try:
        rooted = gmp.floored_spans(n, p, r, level, lo, hi, *keep)
    finally:
        gmp.fast(True)
    gmp.float_filter(False)
    try:
        checked = gmp.floored_spans(n, p, r, level, lo, hi, *keep)
    finally:
        gmp.float_filter(True)
    assert checked == rooted
    for trip_ in (trip, trip.relaxed()):  # level_interval itself, of the trip and of its relaxed one
        span = trip_.level_interval(level, lo, hi)
        before_span = gmp.path_counts()
        assert gmp.floored_spans(trip_.n, trip_.p, trip_.r, level, lo, hi, 0, 0) == span
        SPANS["ends estimated"] += gmp.path_counts()[6] - before_span[6]
        SPANS["ends by float"] += gmp.path_counts()[9] - before_span[9]
        for switch in (gmp.fast, gmp.float_filter):
            switch(False)
            try:
                assert gmp.floored_spans(trip_.n, trip_.p, trip_.r, level, lo, hi, 0, 0) == span
            finally:
                switch(True)
    if got is None:  # (more spans than the C keeps: closed_form declines there)
        assert rooted is None and len(want) > 16
        return
    assert got == want == rooted, (got, want)
    SPANS["estimated"] += ran[4]
    SPANS["by float"] += ran[8]
    SPANS["rooted"] += ran[5]
    SPANS["empty"] += not want
    SPANS["several"] += len(want) > 1


def test_the_c_floored_spans_cases_were_all_seen() -> None:
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    if not SPANS["estimated"]:
        test_the_c_floored_spans_are_the_pythons()
    assert SPANS["estimated"] >= 300 and SPANS["rooted"] >= 50, SPANS
    assert SPANS["empty"] >= 30 and SPANS["several"] >= 30 and SPANS["ends estimated"] >= 300, SPANS
    # (the float filter decided most estimates alone, and left some to the exact tests)
    assert 300 <= SPANS["by float"] < SPANS["estimated"] and 300 <= SPANS["ends by float"] < SPANS["ends estimated"], SPANS


FILTER = {"span ends at a root": 0, "span declined": 0, "level ends at a root": 0, "level declined": 0}


@given(st.integers(2**8, 2**40), st.integers(1, 2**200), st.integers(1, 2**40), st.integers(1, 2**60),
       st.integers(0, 60), st.integers(0, 60), st.sampled_from([(997_000, 10**6), (999_500, 10**6), (9_970, 10**4)]))
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
def test_the_c_float_filter_leaves_integer_roots_to_the_exact_tests(x, r, q, level, below, above, keep) -> None:
    """The float filter reads a floored span's ends off its roots' float estimates only where no integer is
    within their error: a span built to end exactly at a root (``Q(u) = 0`` at an integer size ``x``: ``p``
    a multiple of ``u*keep_den``, ``n = (r + q*keep)*(u + level + c)``, ``c`` the fee units of ``x``) is
    ``RoundTrip.floored_level_intervals``'s, the size at the root included, with the filter on and off."""
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    k, d = keep
    c = -(-x * (d - k) // d)
    u = x - c
    p, n = u * d * q, (r + q * k) * (u + level + c)
    lo, hi = max(1, x - below), x + above
    want = PURE_TRIP(n, p, r).floored_level_intervals(level, lo, hi, k, d)
    before = gmp.path_counts()
    got = gmp.floored_spans(n, p, r, level, lo, hi, k, d)
    ran = [now - then for now, then in zip(gmp.path_counts(), before)]
    gmp.float_filter(False)
    try:
        checked = gmp.floored_spans(n, p, r, level, lo, hi, k, d)
    finally:
        gmp.float_filter(True)
    assert got == want == checked, (got, want)
    fee = d - k
    inside = max(lo, (c - 1) * d // fee + 1) < x < min(hi, c * d // fee)  # (an end there is the root's, no edge's)
    if inside and any(first == x or last == x for first, last in want):
        FILTER["span ends at a root"] += 1
        FILTER["span declined"] += ran[4] > ran[8] or ran[5] > 0  # (the estimate checked, or the exact root)


@given(st.integers(2**66, 2**300), st.integers(1, 2**40), st.integers(3, 2**20), st.integers(-2, 2), st.integers(-2, 2))
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
def test_the_c_float_filter_leaves_level_ends_at_integers_to_the_exact_tests(r, f, width, nudge_b, nudge_p) -> None:
    """``level_interval``'s ends ``floor((b - R)/2r)`` and ``ceil((b + R)/2r)`` (``R = isqrt(disc) + 1``) read off
    float estimates only where no integer is within their error: trips built so that ``b - R`` and ``b + R`` are
    multiples of ``2r`` (give or take a nudge), each end's real root within ``1/2r`` of an integer, give
    ``RoundTrip.level_interval``'s interval with the filter on and off."""
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    g = f + width
    s0 = r * width - 1                     # isqrt(disc), R = r*width: b - R = 2r*f, b + R = 2r*g
    b = r * (f + g) + nudge_b
    level = (b * b - s0 * s0) // (4 * r)  # disc = b^2 - 4r*level in [s0^2, s0^2 + 4r): isqrt(disc) = s0
    p = 1 + max(0, nudge_p)
    level = max(1, level // p)
    n = b + p + r * level
    trip = PURE_TRIP(n, p, r)
    lo, hi = 1, 2 * g + 10
    want = trip.level_interval(level, lo, hi)
    before = gmp.path_counts()
    got = gmp.floored_spans(n, p, r, level, lo, hi, 0, 0)
    ran = [now - then for now, then in zip(gmp.path_counts(), before)]
    gmp.float_filter(False)
    try:
        checked = gmp.floored_spans(n, p, r, level, lo, hi, 0, 0)
    finally:
        gmp.float_filter(True)
    assert got == want == checked, (got, want)
    if want is not None and p == 1 and nudge_b == 0:
        FILTER["level ends at a root"] += 1
        FILTER["level declined"] += ran[6] > ran[9]


def test_the_c_float_filter_cases_were_all_seen() -> None:
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    if not FILTER["span ends at a root"]:
        test_the_c_float_filter_leaves_integer_roots_to_the_exact_tests()
    if not FILTER["level ends at a root"]:
        test_the_c_float_filter_leaves_level_ends_at_integers_to_the_exact_tests()
    assert FILTER["span ends at a root"] >= 30 and FILTER["span declined"] == FILTER["span ends at a root"], FILTER
    assert FILTER["level ends at a root"] >= 30 and FILTER["level declined"] == FILTER["level ends at a root"], FILTER


def test_where_the_c_sizing_declines_the_python_sizes_the_same() -> None:
    """``closed_form`` answers ``False`` off its paths (here: every other call, and a leg it cannot quote),
    and the Python sizes those round trips: the same opportunities as the pure modules."""
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    v3 = (1, 2**96, 10**18, 2**96, 10**12, 999_500, True)  # at its edge already: no quote there
    v2 = (0, 10**12, 10**21, 9_970)
    assert gmp.closed_form(v3, v2, 10**12, 1 << 255, 1) is False
    calls = {"n": 0, "declined": 0}
    real = arb_finder._gmp_closed_form

    def every_other(*args):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] % 2:
            calls["declined"] += 1
            return False
        return real(*args)
    bench = _bench()
    rng = random.Random(7)
    venues, first, numeraire = bench.world(rng)
    kw = dict(gas_price_wei=15 * 10**9, numeraires=[numeraire], max_age_ns=10**18, native={"ethereum": bench.addr(0xC0)})
    compiled, pure = _pair_of_finders(venues, **kw)
    engine = Engine([], RiskGate.from_config({"default_max_notional": 0, "default_max_outstanding": 0}))
    for e in first:
        engine.handle(e)
    last = {e.pool: e for e in first}  # type: ignore[attr-defined]
    ids, ts, found = sorted(last), first[0].ts, 0
    arb_finder._gmp_closed_form = every_other
    try:
        for i in range(1500):
            ts += 10**9
            pid = rng.choice(ids)
            e = bench.moved(last[pid], ts, 1 + rng.choice([-1, 1]) * rng.uniform(0.005, 0.02 if i % 3 == 2 else 0.0005))
            last[pid] = e
            engine.handle(e)
            got = compiled.on_update(engine.state, pid, ts)
            assert _encoded(got) == _encoded(pure.on_update(engine.state, pid, ts)), i
            found += len(got)
    finally:
        arb_finder._gmp_closed_form = real
    assert _stats(compiled) == _stats(pure)
    assert found >= 50 and calls["declined"] >= 50, (found, calls)


LEGS: dict[str, int] = {"quoted": 0, "declined": 0, "edge": 0, "inverse": 0, "never": 0, "none": 0, "bounded": 0,
                        "bounded_wide": 0}


@given(st.data())
@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
def test_the_c_legs_quote_and_invert_as_pool_venue_does(data) -> None:
    """Each leg's exact output and least input in C (``_closed_form_gmp.quote``/``least_input``, what
    ``closed_form`` and its skips price) equal ``PoolVenue.quote``/``least_input`` wherever C prices, at
    sizes from 1 to past the interval's edge."""
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    from tapedeck.domain.uniswap_v3 import get_tick_at_sqrt_ratio
    kind = data.draw(st.sampled_from(["v2", "v3-100", "v3-500", "v3-3000", "v3-10000"]))
    state = MarketState()
    if kind == "v2":
        spec = PoolSpec(T0, "v2", T0, T1, 30)
        state.on_v2(ev.V2ReservesSynced(ts=1, pool=T0, block=1, reserve0=data.draw(st.integers(10**3, 10**24)),
                                        reserve1=data.draw(st.integers(10**3, 10**24))))
    else:
        fee = int(kind.split("-")[1])
        spec = PoolSpec(T0, "v3", T0, T1, fee, SPACING[fee])
        sp = data.draw(st.integers(2**70, 2**120))
        state.on_v3(ev.V3Swapped(ts=1, pool=T0, block=1, tx="", log_index=0, sender="", recipient="", amount0=0, amount1=0,
                                 sqrt_price_x96=sp, liquidity=data.draw(st.integers(10**6, 10**24)),
                                 tick=get_tick_at_sqrt_ratio(sp)))
    v = arb_finder.PoolVenue(spec)
    token = data.draw(st.sampled_from([T0, T1]))
    curve = v.curve(state, token)
    leg = arb_finder._gmp_leg(v, state, token)
    if curve is None or leg is None:
        return
    top = max(2, curve.max_in + 2) if kind != "v2" else 10**30
    for x in {1, 2, top - 2, top - 1, top, data.draw(st.integers(1, top)), data.draw(st.integers(1, max(1, top // 1000)))}:
        got, want = gmp.quote(leg, x), v.quote(state, token, x)
        if got is False:
            LEGS["declined"] += 1
            continue
        assert got == want, (x, got, want)
        LEGS["quoted"] += 1
        LEGS["edge"] += kind != "v2" and x * v._v3_keep // 10**6 >= leg[4]
        bound = gmp.bound(leg, x)  # the pattern search's float screen: an upper bound, and a tight one
        if bound is not None:
            assert want is None or want <= bound <= want * (1 + 2**-30) + 1, (x, want, bound)
            LEGS["bounded"] += 1
            LEGS["bounded_wide"] += x >= 2**52 or (want or 0) >= 2**53
    out_top = v.quote(state, token, max(1, top - 3)) or 10**6
    for y in {1, out_top, out_top + 1, data.draw(st.integers(1, 2 * out_top)), 10**40}:
        got, want = gmp.least_input(leg, y), v.least_input(state, token, y)
        assert got == want, (y, got, want)
        LEGS["inverse"] += 1
        LEGS["never"] += want == arb_finder.NEVER
        LEGS["none"] += want is None


def test_the_c_legs_cases_were_all_seen() -> None:
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    if not LEGS["inverse"]:
        test_the_c_legs_quote_and_invert_as_pool_venue_does()
    assert LEGS["quoted"] >= 500 and LEGS["edge"] >= 20 and LEGS["declined"] >= 20, LEGS
    assert LEGS["inverse"] >= 500 and LEGS["never"] >= 50, LEGS
    assert LEGS["bounded"] >= 300 and LEGS["bounded_wide"] >= 50, LEGS


def _switched_runs(switch, counts, events: int) -> list[tuple]:  # type: ignore[no-untyped-def,type-arg]
    """The benchmark stream's first ``events`` updates with a C switch on, then off: per run the encoded
    opportunities, the finder's stats, how much ``counts()`` moved and the unproven opportunities."""
    bench = _bench()
    stream = bench.updates(1, events, 50)
    runs = []
    for on in (True, False):
        switch(on)
        try:
            finder, engine = bench.finder_and_engine(1)
            before = counts()
            got = []
            for e in stream:
                engine.handle(e)
                got += finder.on_update(engine.state, e.pool, e.ts)
            ran = tuple(now - then for now, then in zip(counts(), before))
        finally:
            switch(True)
        runs.append((_encoded(got), _stats(finder), ran, sum(not o.proven for o in got)))
    return runs


def test_the_pattern_search_float_screen_changes_no_answer() -> None:
    """The C pattern search refutes by a float bound the sizes that cannot beat its best (most of them) and
    prices the rest exactly: the benchmark stream's opportunities are the same with the screen off, and it
    refuted sizes there."""
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    (on_opps, on_stats, (refuted, priced), unproven), (off_opps, off_stats, off_ran, _) = _switched_runs(
        gmp.screen, gmp.screen_counts, 6000)
    assert on_opps == off_opps and on_stats == off_stats
    assert unproven >= 2 and refuted > 4 * priced >= 4, (unproven, refuted, priced)  # (it ran, and refuted most)
    assert off_ran == (0, 0)


def test_the_c_fast_paths_change_no_answer() -> None:
    """The C pattern search on 128-bit sizes (the mpz one above 2^126), its wide interval told by two
    exact points (instead of the exact interval's square root), and the top-down search's floored spans
    told by their roots' float estimates checked exactly (instead of a square root each), or read off the
    estimates alone where the float filter decides them: the benchmark stream's opportunities and stats are
    the same with all of them off, and each way ran."""
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    (on_opps, on_stats, on_ran, unproven), (off_opps, off_stats, off_ran, _) = _switched_runs(
        gmp.fast, gmp.path_counts, 12000)
    assert on_opps == off_opps and on_stats == off_stats
    narrow, mpz_, points, root, estimated, rooted, ends, ends_rooted, by_float, ends_by_float = on_ran
    assert unproven >= 2 and narrow >= 2 and points >= 1 and mpz_ == 0 and estimated >= 50 and ends >= 50, on_ran
    assert by_float >= 50 and ends_by_float >= 50, on_ran  # (the float filter decided estimates alone)
    assert off_ran[0] == off_ran[2] == off_ran[4] == off_ran[6] == off_ran[8] == off_ran[9] == 0, off_ran
    assert off_ran[1] == narrow and off_ran[3] == points + root and off_ran[5] == estimated + rooted, off_ran
    assert off_ran[7] == ends + ends_rooted + points, off_ran  # (+ the exact intervals the two points spared)


def _near_powers_of_two():  # type: ignore[no-untyped-def]
    """Integers at and around the digit and limb boundaries (2^30k, 2^64k) the C conversions cross."""
    return st.builds(lambda e, d: max(1, (1 << e) + d), st.integers(0, 700), st.integers(-3, 3))


def _near_powers_of_two_or_small():  # type: ignore[no-untyped-def]
    return _near_powers_of_two() | st.integers(-5, 5)


def _truncated_2exp(z: int) -> tuple[float, int]:
    """GMP's ``mpz_get_d_2exp``: ``z``'s top 53 bits, truncated, as ``d`` with ``0.5 <= |d| < 1``, and ``e``."""
    if z == 0:
        return 0.0, 0
    e = abs(z).bit_length()
    top = abs(z) >> (e - 53) if e > 53 else abs(z) << (53 - e)
    return math.copysign(top / 2.0**53, z), e


@given(_near_powers_of_two() | st.integers(-2**800, 2**800) | st.builds(lambda e, k: ((1 << 53) - 1 + k) << e,
       st.integers(0, 700), st.integers(-2, 2)), st.booleans())
@settings(max_examples=600, deadline=None, derandomize=True, database=None)
def test_the_c_top_bits_are_gmps_get_d_2exp(z: int, negative: bool) -> None:
    """The estimates' reading of an mpz's top bits (``top_bits``, ``get_d_2exp`` here) is ``mpz_get_d_2exp``'s
    value: the top 53 bits truncated, across limb boundaries, 53-bit runs of ones and zero."""
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    z = -z if negative else z
    assert gmp.get_d_2exp(z) == _truncated_2exp(z)


@given(st.lists(st.tuples(_near_powers_of_two_or_small(), _near_powers_of_two_or_small()), min_size=1, max_size=7),
       st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=40))
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
def test_the_c_surplus_keeps_margins_by_identity_and_no_further(margins, calls) -> None:
    """``surplus`` keeps the last few margin tuples' integers (the moved pool's margin is one tuple for all
    its partners): any order of calls over more tuples than it keeps, a tuple reused after others pushed it
    out, and equal tuples that are other objects, gives each call's own product difference."""
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    ms = [tuple(m) for m in margins]  # (each its own tuple object)
    for i, j in calls:
        m, n = ms[i % len(ms)], ms[j % len(ms)]
        assert gmp.surplus(m, n) == m[0] * n[0] - m[1] * n[1]
        assert gmp.surplus((m[0] + 1, m[1]), n) == (m[0] + 1) * n[0] - m[1] * n[1]  # (a fresh tuple)


@given(st.integers(-2**300, 2**300), _near_powers_of_two_or_small(), _near_powers_of_two_or_small())
@settings(max_examples=400, deadline=None, derandomize=True, database=None)
def test_the_c_gas_value_is_the_ceiling_of_the_quotient(a, b, c) -> None:
    """``ceil_mul_div`` (the gas's value in the profit token where built) is ``_ceil_div_of_product``,
    ``ceil(a*b/c)``, for ints of 1 to ~700 bits; a divisor at or below zero and non-ints by Python's own
    arithmetic (its ZeroDivisionError included)."""
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    from fractions import Fraction
    if c == 0:
        with pytest.raises(ZeroDivisionError):
            gmp.ceil_mul_div(a, b, c)
        return
    want = PURE_FINDER._ceil_div_of_product(a, b, c)
    assert gmp.ceil_mul_div(a, b, c) == want
    if c > 0:
        assert want == math.ceil(Fraction(a * b, c))
    assert gmp.ceil_mul_div(Fraction(a, 1), b, c) == want


@given(st.lists(_near_powers_of_two_or_small(), min_size=4, max_size=4))
@settings(max_examples=600, deadline=None, derandomize=True, database=None)
def test_the_c_margin_surplus_is_the_products_difference(xs: list[int]) -> None:
    """``_closed_form_gmp.surplus`` (on_update's exact margin test where built) is ``_margin_surplus``:
    ``m[0]*n[0] - m[1]*n[1]`` for factors of 1 to ~700 bits, zero and negative, equal products (a zero
    surplus) and non-int or non-tuple margins (by their own arithmetic)."""
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    from fractions import Fraction
    a, b, c, d = xs
    assert gmp.surplus((a, b), (c, d)) == PURE_FINDER._margin_surplus((a, b), (c, d)) == a * c - b * d
    assert gmp.surplus((a, c), (c, a)) == 0  # (equal products: exactly zero)
    assert gmp.surplus((a, b), (a, b)) == a * a - b * b
    assert gmp.surplus([a, b], (c, d)) == a * c - b * d
    assert gmp.surplus((Fraction(a, 3), b), (c, d)) == Fraction(a, 3) * c - b * d
    with pytest.raises(TypeError):
        gmp.surplus((a, b))


@given(_near_powers_of_two(), _near_powers_of_two(), _near_powers_of_two(), st.integers(1, 9_999))
@settings(max_examples=500, deadline=None, derandomize=True, database=None)
def test_the_c_integers_round_trip_at_every_width(ri: int, ro: int, y: int, keep: int) -> None:
    """Python ints to GMP and back (the leg's reserves, the amount, the answer) at widths from 1 to ~700
    bits: the C V2 inverse equals ``max(1, ceil(y*ri*1e4 / (keep*(ro - y))))`` (or NEVER) exactly."""
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    want = arb_finder.NEVER if y >= ro else max(1, -(-(y * ri * 10_000) // (keep * (ro - y))))
    assert gmp.least_input((0, ri, ro, keep), y) == want
    assert gmp.quote((0, ri, ro, keep), y) in (False, y * keep * ro // (ri * 10_000 + y * keep))


QUOTE_WIDTHS = {"128-bit": 0, "wide": 0}


def _around(low: int, high: int):  # type: ignore[no-untyped-def]
    """Integers at and around the powers of two from 2^low to 2^high (the 128-bit path's limits)."""
    return st.builds(lambda e, d: max(1, (1 << e) + d), st.integers(low, high), st.integers(-2, 2))


@given(_around(100, 114), _around(40, 130), _around(50, 66), st.integers(1, 10_000))
@settings(max_examples=600, deadline=None, derandomize=True, database=None)
def test_the_c_v2_quote_is_get_amount_out_across_the_128_bit_limits(ri: int, ro: int, x: int, keep: int) -> None:
    """The C V2 quote (``getAmountOut``) in 128-bit integers where the size is below 2^64, the reserve in
    below 2^112 and ``x*keep*ro`` below 2^128, on GMP's otherwise: equal to the formula either way, at
    sizes and reserves around each of those limits (both ways seen)."""
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    want = x * keep * ro // (ri * 10_000 + x * keep)
    assert gmp.quote((0, ri, ro, keep), x) == (want if want > 0 else False)
    narrow = x < 2**64 and ri < 2**112 and ro < 2**128 and (x * keep).bit_length() + ro.bit_length() <= 128
    QUOTE_WIDTHS["128-bit" if narrow else "wide"] += 1


def test_the_c_v2_quote_took_both_widths() -> None:
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    if not QUOTE_WIDTHS["wide"]:
        test_the_c_v2_quote_is_get_amount_out_across_the_128_bit_limits()
    assert QUOTE_WIDTHS["128-bit"] >= 100 and QUOTE_WIDTHS["wide"] >= 100, QUOTE_WIDTHS


def test_the_c_tick_math_is_tickmath() -> None:
    """``_closed_form_gmp.tick_sqrt`` (the V3 view's edge in C) is ``uniswap_v3.get_sqrt_ratio_at_tick`` at
    every tick of +-20,000 around 0 and of each end, and at 20,000 more spread over the whole range,
    each twice (computed, then from the C's cache of recent ticks, where it was not evicted); None
    outside it."""
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    from tapedeck.domain.uniswap_v3 import MAX_TICK, MIN_TICK, get_sqrt_ratio_at_tick
    rng = random.Random(7)
    ticks = [*range(-20_000, 20_001), *range(MIN_TICK, MIN_TICK + 20_000), *range(MAX_TICK - 20_000, MAX_TICK + 1),
             *(rng.randint(MIN_TICK, MAX_TICK) for _ in range(20_000))]
    wrong = [t for t in ticks for _ in range(2) if gmp.tick_sqrt(t) != get_sqrt_ratio_at_tick.__wrapped__(t)]
    assert not wrong, wrong[:5]
    assert gmp.tick_sqrt(MIN_TICK - 1) is None and gmp.tick_sqrt(MAX_TICK + 1) is None


VIEWS = {"c": 0, "outside": 0, "negative tick": 0, "at the edge": 0}


@given(st.data())
@settings(max_examples=600, deadline=None, derandomize=True, database=None)
def test_the_c_v3_view_is_the_python_one(data) -> None:
    """A V3 pool's view (``PoolVenue._priced``: its capacity, the C sizing's leg, the edge ``quote``
    steps to) is the same whether ``_closed_form_gmp.v3_edge`` computes the edge and amounts or the
    pure module's Python does: on generated prices (both signs of tick, prices on a tick's own sqrt
    price, prices outside their tick's interval, where the C declines), liquidities, fee tiers and both
    directions."""
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    from tapedeck.domain.uniswap_v3 import MAX_SQRT_RATIO, MIN_SQRT_RATIO, get_sqrt_ratio_at_tick, get_tick_at_sqrt_ratio
    fee = data.draw(st.sampled_from(sorted(SPACING)))
    how = data.draw(st.sampled_from(["any", "on a tick", "tick off by one"]))
    sp = data.draw(st.integers(MIN_SQRT_RATIO, MAX_SQRT_RATIO - 1) | st.integers(2**90, 2**102))
    tick = get_tick_at_sqrt_ratio(sp)
    if how == "on a tick":
        sp = get_sqrt_ratio_at_tick(tick)
    elif how == "tick off by one":  # (a state whose tick does not hold its price: the Python's other forms)
        tick = max(-887272, min(887272, tick + data.draw(st.sampled_from([-SPACING[fee], SPACING[fee]]))))
    liquidity = data.draw(st.integers(1, 2**128 - 1))
    state = MarketState()
    state.on_v3(ev.V3Swapped(ts=1, pool=T0, block=1, tx="", log_index=0, sender="", recipient="", amount0=0,
                             amount1=0, sqrt_price_x96=sp, liquidity=liquidity, tick=tick))
    spec = PoolSpec(T0, "v3", T0, T1, fee, SPACING[fee])
    token = data.draw(st.sampled_from([T0, T1]))
    c, py = arb_finder.PoolVenue(spec), PURE_FINDER.PoolVenue(spec)
    got, want = c._priced(state, token), py._priced(state, token)
    assert got == want
    assert c._edges.get(token) == py._edges.get(token)
    zfo = token == T0
    edge = gmp.v3_edge(sp, liquidity, tick, SPACING[fee], fee, zfo)
    if edge is None:
        VIEWS["outside"] += 1
        assert want[2] is None  # (declined: the price lies outside its tick's interval)
    else:
        VIEWS["c"] += 1
        assert (want[1], want[2][3], want[2][4]) == edge
    VIEWS["negative tick"] += tick < 0
    VIEWS["at the edge"] += how == "on a tick"


def test_the_c_v3_view_cases_were_all_seen() -> None:
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    if not VIEWS["c"]:
        test_the_c_v3_view_is_the_python_one()
    assert VIEWS["c"] >= 200 and VIEWS["outside"] >= 50 and VIEWS["negative tick"] >= 100 and VIEWS["at the edge"] >= 100, VIEWS


@given(st.lists(_near_powers_of_two() | st.integers(-5, 5), min_size=5, max_size=5), st.integers(-2, 2))
@settings(max_examples=800, deadline=None, derandomize=True, database=None)
def test_the_c_capacity_test_is_product_below(xs: list[int], nudge: int) -> None:
    """``_closed_form_gmp.product_below`` (the finder's capacity test where built) is ``_product_below``:
    ``u*v < w*x*y`` exactly, for factors of 1 to ~700 bits whose products are equal or a few apart (where
    the bit lengths do not decide), zero, negative, and for non-int factors (by their own arithmetic)."""
    if gmp is None:
        pytest.skip("the C sizing is not built (or TAPEDECK_PURE_PYTHON=1)")
    from fractions import Fraction
    u, v, w, x, y = xs
    assert gmp.product_below(u, v, w, x, y) is PURE_FINDER._product_below(u, v, w, x, y)
    if w > 0 and x > 0 and y > 0:  # u*v next to w*x*y: the products decide
        target = w * x * y + nudge
        assert gmp.product_below(target, 1, w, x, y) is (nudge < 0)
        assert gmp.product_below(1, target, w, x, y) is PURE_FINDER._product_below(1, target, w, x, y)
    assert gmp.product_below(Fraction(u, 3), v, w, x, y) == (Fraction(u, 3) * v < w * x * y)
