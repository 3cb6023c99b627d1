"""The finder's fast sizing (domain/arb_finder.py) gives exactly the sizes of the whole scan.

Where a gap is sized, the first level interval used to be priced size by size (up to 255 sizes, two
exact quotes each). It is now searched top down (``_top_down``: levels from the bound down, with the
V3 fee floor in the bound, ``RoundTrip.floored_level_intervals``), skipping the sizes whose round
trip cannot return more than a size already priced (``PoolVenue.least_input``, the legs' exact
inverses). What must hold, and is checked here:

* ``least_input`` is the exact inverse of ``quote``: below it every size quotes less (or nothing),
  at it the quote (where there is one) reaches the output;
* ``floored_level_intervals`` and ``relaxed`` only ever widen: every size whose bound reaches the
  level is inside (brute force over small integer round trips);
* the finder with the fast sizing finds the same opportunities, the same sizes to the wei, the same
  ``proven`` flags, as with ``scan_whole`` (the old search), on generated pools with gaps and on the
  benchmark's stream of 50 pools, and the fast path is really taken there.
"""
from __future__ import annotations

import random
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tapedeck.domain import arb_finder
from tapedeck.domain import events as ev
from tapedeck.domain.arb_finder import NEVER, ArbFinder, PoolVenue
from tapedeck.domain.cp_optimum import RoundTrip
from tapedeck.domain.dex_quotes import PoolSpec
from tapedeck.domain.state import MarketState
from tapedeck.domain.uniswap_v3 import get_sqrt_ratio_at_tick, get_tick_at_sqrt_ratio

T0, T1 = "0x" + "0" * 39 + "a", "0x" + "0" * 39 + "b"
Q96 = 1 << 96
SPACING = {100: 1, 500: 10, 3000: 60, 10000: 200}


def pool_id(n: int) -> str:
    return "0x" + f"{n:040x}"


def v2_event(pool: str, r0: int, r1: int, ts: int = 1) -> ev.Event:
    return ev.V2ReservesSynced(ts=ts, pool=pool, block=1, reserve0=r0, reserve1=r1)


def v3_event(pool: str, sp: int, liq: int, ts: int = 1) -> ev.Event:
    return ev.V3Swapped(ts=ts, pool=pool, block=1, tx="", log_index=0, sender="", recipient="", amount0=0,
                        amount1=0, sqrt_price_x96=sp, liquidity=liq, tick=get_tick_at_sqrt_ratio(sp))


INVERSE: Counter[str] = Counter()


@given(st.data())
@settings(max_examples=500, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
def test_least_input_is_the_exact_inverse_of_quote(data) -> None:
    state = MarketState()
    kind = data.draw(st.sampled_from(["v2", "v3"]))
    pool = pool_id(1)
    if kind == "v2":
        fee = data.draw(st.sampled_from([0, 1, 30, 100]))
        r0 = data.draw(st.integers(1, 10**4)) * 10 ** data.draw(st.integers(0, 24))
        r1 = data.draw(st.integers(1, 10**4)) * 10 ** data.draw(st.integers(0, 24))
        state.on_v2(v2_event(pool, r0, r1))
        venue = PoolVenue(PoolSpec(pool, "v2", T0, T1, fee))
    else:
        fee = data.draw(st.sampled_from([100, 500, 3000, 10000]))
        tick = data.draw(st.integers(-600_000, 600_000))
        lo, hi = get_sqrt_ratio_at_tick(tick), get_sqrt_ratio_at_tick(tick + 1) - 1
        sp = data.draw(st.integers(lo, hi))
        liq = data.draw(st.integers(1, 10**4)) * 10 ** data.draw(st.integers(0, 22))
        state.on_v3(v3_event(pool, sp, liq))
        venue = PoolVenue(PoolSpec(pool, "v3", T0, T1, fee, SPACING[fee]))
    token = data.draw(st.sampled_from([T0, T1]))
    cap = venue.max_in(state, token)
    if cap <= 0:
        return
    x0 = data.draw(st.one_of(st.integers(1, min(cap, 1000)), st.integers(1, cap)))
    q0 = venue.quote(state, token, x0)
    y = data.draw(st.one_of(st.just(q0 or 1), st.just((q0 or 0) + 1), st.integers(1, 2**128)))
    x = venue.least_input(state, token, y)
    if x is None:
        INVERSE["no closed form"] += 1
        return
    if x == NEVER:
        top = venue.quote(state, token, cap)
        assert top is None or top < y, (kind, y, cap, top)
        INVERSE["never"] += 1
        return
    assert x >= 1
    below = venue.quote(state, token, x - 1) if x > 1 else None
    assert below is None or below < y, (kind, fee, token, y, x, below)
    at = venue.quote(state, token, x)
    edge = kind == "v3" and x * (1_000_000 - fee) // 1_000_000 >= venue._edges[token][2]
    # (a swap that stops at the interval's edge gives the edge's output, less than the formula's: the
    # inverse is only relied on below its answer)
    assert at is None or at >= y or edge, (kind, fee, token, y, x, at)
    case = "past the edge" if at is None or edge else "priced"
    INVERSE[f"{kind} {case}"] += 1
    event(f"{kind} {case}")


def test_least_input_cases_were_all_seen() -> None:
    if not INVERSE:
        test_least_input_is_the_exact_inverse_of_quote()
    for case in ("v2 priced", "v3 priced", "never"):
        assert INVERSE[case] > 10, INVERSE


def _bound_reaches(trip: RoundTrip, x: int, level: int, keep: int, den: int) -> bool:
    m = x * keep // den
    x_eff = Fraction(m * den, keep)
    out = Fraction(trip.n) * x_eff / (trip.p + trip.r * x_eff)
    return out - x >= level


@given(st.integers(2, 10**6), st.integers(1, 10**6), st.integers(1, 10**3), st.sampled_from([1, 30, 500, 3000, 10000]),
       st.integers(0, 40), st.integers(1, 60))
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
def test_floored_level_intervals_hold_every_size_whose_bound_reaches_the_level(n_mul, p, r, fee, level, width) -> None:
    trip = RoundTrip(p * n_mul, p * 1000, r)
    keep, den = 1_000_000 - fee, 1_000_000
    lo = max(1, trip.optimum() - width * 20)
    hi = lo + width * 40
    spans = trip.floored_level_intervals(level, lo, hi, keep, den)
    assert all(a <= b for a, b in spans) and all(spans[i][1] < spans[i + 1][0] for i in range(len(spans) - 1))
    inside = {x for a, b in spans for x in range(a, b + 1)}
    plain = trip.level_interval(level, lo, hi) if level >= 1 else (lo, hi)
    for x in range(lo, hi + 1):
        if _bound_reaches(trip, x, level, keep, den):
            assert x in inside, (x, level, spans)
            assert plain is not None and plain[0] <= x <= plain[1]  # (the floored bound is the tighter)


FLOORED: Counter[str] = Counter()


@given(st.integers(2, 10**6), st.integers(1, 10**6), st.integers(1, 10**3), st.sampled_from([1, 30, 500, 3000, 10000]),
       st.integers(1, 40), st.integers(1, 60), st.integers(0, 400))
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
def test_floored_level_intervals_hold_only_sizes_whose_bound_reaches_the_level(n_mul, p, r, fee, level, width,
                                                                               shift) -> None:
    """The other half: the spans are exact (the square root's rounding is trimmed by the quadratic),
    so the search prices no size whose bound falls short; also on ~400-bit round trips."""
    trip = RoundTrip((p * n_mul) << shift, (p * 1000) << shift, r << shift)
    keep, den = 1_000_000 - fee, 1_000_000
    lo = max(1, trip.optimum() - width * 20)
    hi = lo + width * 40
    spans = trip.floored_level_intervals(level, lo, hi, keep, den)
    for a, b in spans:
        assert lo <= a <= b <= hi
        for x in range(a, b + 1):
            assert _bound_reaches(trip, x, level, keep, den), (x, level, spans)
    for x in range(lo, hi + 1):
        if _bound_reaches(trip, x, level, keep, den):
            assert any(a <= x <= b for a, b in spans), (x, level, spans)
    FLOORED["nonempty" if spans else "empty"] += 1


def test_floored_exact_cases_were_exercised() -> None:
    test_floored_level_intervals_hold_only_sizes_whose_bound_reaches_the_level()
    assert FLOORED["nonempty"] >= 50 and FLOORED["empty"] >= 20, FLOORED


@given(st.integers(1, 2**300), st.integers(1, 2**300), st.integers(1, 2**300), st.integers(1, 2**40),
       st.integers(1, 2**20))
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
def test_relaxed_round_trip_is_never_below(n, p, r, x, level) -> None:
    n = n + p  # (pays at the margin)
    trip = RoundTrip(n, p, r)
    loose = trip.relaxed(64)
    assert loose.n * x * (trip.p + trip.r * x) >= trip.n * x * (loose.p + loose.r * x)
    tight = trip.level_interval(level, 1, 2**60)
    wide = loose.level_interval(level, 1, 2**60)
    if tight is not None:
        assert wide is not None and wide[0] <= tight[0] and tight[1] <= wide[1]


def _finders(venues_of, **kw):  # type: ignore[no-untyped-def]
    """(the Python top-down sizing, the whole scan, the default: the C sizing where it is built)."""
    fast = ArbFinder(venues_of(), **kw)
    fast.compiled_sizing = False  # (the Python top-down is what is counted below; the C one is held equal too)
    whole = ArbFinder(venues_of(), **kw)
    whole.scan_whole = True
    return fast, whole, ArbFinder(venues_of(), **kw)


def _same(a: list, b: list) -> None:  # type: ignore[type-arg]
    assert [(o.key, o.amount_in, o.amount_out, o.legs, o.net_profit, o.method, o.proven) for o in a] == \
           [(o.key, o.amount_in, o.amount_out, o.legs, o.net_profit, o.method, o.proven) for o in b]


class _Count:
    def __init__(self) -> None:
        self.calls = Counter()  # type: Counter[str]
        self._orig = arb_finder._top_down

    def __enter__(self) -> "_Count":
        def counted(*a, **k):  # type: ignore[no-untyped-def]
            self.calls["top_down"] += 1
            return self._orig(*a, **k)
        arb_finder._top_down = counted
        return self

    def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
        arb_finder._top_down = self._orig


WORLDS: Counter[str] = Counter()


@given(st.data())
@settings(max_examples=120, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
def test_fast_sizing_finds_what_the_whole_scan_finds(data) -> None:
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    price = rng.uniform(500, 4000) * 10**6 / 10**18  # token1 per token0, USDC/WETH-like scale
    kinds = data.draw(st.lists(st.sampled_from(["v2", "v3-100", "v3-500", "v3-3000", "v3-10000"]), min_size=2,
                               max_size=4))
    specs, events = [], []
    for i, k in enumerate(kinds):
        pid = pool_id(0x100 + i)
        move = 1 + rng.choice([-1, 1]) * rng.uniform(0, 0.03) if i == 0 else rng.uniform(0.9995, 1.0005)
        if k == "v2":
            r0 = rng.randint(10**3, 10**8) * 10**6
            specs.append(PoolSpec(pid, "v2", T0, T1, 30))
            events.append(v2_event(pid, r0, int(r0 / (price * move))))
        else:
            fee = int(k.split("-")[1])
            sp = int((1 / (price * move)) ** 0.5 * Q96)
            specs.append(PoolSpec(pid, "v3", T0, T1, fee, SPACING[fee]))
            events.append(v3_event(pid, sp, rng.randint(10**14, 10**20)))
    kw = dict(gas_price_wei=rng.choice([0, 10**9, 30 * 10**9]), numeraires=[T0], max_age_ns=10**18,
              native={"ethereum": T0})
    fast, whole, default = _finders(lambda: [PoolVenue(s) for s in specs], **kw)
    state = MarketState()
    for e in events:
        if isinstance(e, ev.V2ReservesSynced):
            state.on_v2(e)
        else:
            state.on_v3(e)
        state.updated[e.pool] = e.ts  # type: ignore[attr-defined]
    with _Count() as count:
        got = fast.on_update(state, specs[0].pool, 1)
    want = whole.on_update(state, specs[0].pool, 1)
    _same(got, want)
    _same(default.on_update(state, specs[0].pool, 1), want)
    _same(fast.scan(state, 1), whole.scan(state, 1))
    _same(default.scan(state, 1), whole.scan(state, 1))
    WORLDS["opportunity" if want else "none"] += 1
    WORLDS["top down"] += bool(count.calls["top_down"])


def test_generated_worlds_had_opportunities_sized_top_down() -> None:
    if not WORLDS:
        test_fast_sizing_finds_what_the_whole_scan_finds()
    assert WORLDS["opportunity"] >= 20 and WORLDS["top down"] >= 10, WORLDS


def test_fast_sizing_equals_the_whole_scan_on_the_benchmark_stream() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import bench_arb_finder as bench  # the 50-pool world and its updates

    from tapedeck.domain.engine import Engine
    from tapedeck.domain.risk import RiskGate

    rng = random.Random(3)
    venues, first, numeraire = bench.world(rng)
    kw = dict(gas_price_wei=15 * 10**9, numeraires=[numeraire], max_age_ns=10**18,
              native={"ethereum": bench.addr(0xC0)})
    fast, whole, default = _finders(lambda: bench.world(random.Random(3))[0], **kw)
    engine = Engine([], RiskGate.from_config({"default_max_notional": 0, "default_max_outstanding": 0}))
    for e in first:
        engine.handle(e)
    last = {e.pool: e for e in first}  # type: ignore[attr-defined]
    ids = sorted(last)
    ts, found = first[0].ts, 0
    with _Count() as count:
        for i in range(1500):
            ts += 10**9
            pid = rng.choice(ids)
            jump = i % 10 == 9
            f = rng.choice([-1, 1]) * (rng.uniform(0.005, 0.02) if jump else rng.uniform(0, 0.0005))
            e = bench.moved(last[pid], ts, 1 + f)
            engine.handle(e)
            got = fast.on_update(engine.state, pid, ts)
            want = whole.on_update(engine.state, pid, ts)
            _same(got, want)
            _same(default.on_update(engine.state, pid, ts), want)
            found += len(got)
    assert found >= 50, found
    assert count.calls["top_down"] >= 20, count.calls


EXACT: Counter[str] = Counter()


@given(st.integers(2, 10**6), st.integers(1, 10**6), st.integers(1, 10**3), st.integers(1, 40), st.integers(1, 60),
       st.integers(0, 400))
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
def test_level_interval_exact_is_exactly_where_the_bound_reaches(n_mul, p, r, level, width, shift) -> None:
    trip = RoundTrip((p * n_mul) << shift, (p * 1000) << shift, r << shift)
    lo = max(1, trip.optimum() - width * 20)
    hi = lo + width * 40
    span = trip.level_interval_exact(level, lo, hi)
    want = [x for x in range(lo, hi + 1)
            if Fraction(trip.n * x, trip.p + trip.r * x) - x >= level]
    assert (span is None) == (not want) and (span is None or span == (want[0], want[-1])), (span, want[:3], want[-3:])
    wide = trip.level_interval(level, lo, hi)
    assert span is None or (wide is not None and wide[0] <= span[0] and span[1] <= wide[1])
    EXACT["nonempty" if span else "empty"] += 1


def test_level_interval_exact_cases_were_exercised() -> None:
    test_level_interval_exact_is_exactly_where_the_bound_reaches()
    assert EXACT["nonempty"] >= 50 and EXACT["empty"] >= 20, EXACT
