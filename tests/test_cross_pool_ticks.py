"""Cross-pool arbitrage sized across V3 ticks (domain/strategies/cross_pool_arb.size_across_ticks).

Generated liquidity layouts (a few positions around the price, some far, some adjacent) on a V3
pool whose ticks are known (a ``V3PoolSnapshot``), a V2 pair priced 0.5%..8% away: the size the
strategy reports is priced by the pool's own multi-tick swap (``uniswap_v3.swap``), beats its
neighbours at every power of two, is at least the best of an independent grid scan over all
feasible sizes, and at least what the in-interval sizing found (an unproven size: within two units
of rounding of it); the cases where the optimum lies
past the first range (so the size crosses initialized ticks) are counted and must occur.
"""
from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from tapedeck.domain import events as ev
from tapedeck.domain.strategies import build_engine
from tapedeck.domain.strategies.cross_pool_arb import (across_ticks_profit, liquidity_ranges, next_initialized_tick,
                                                       size_across_ticks, size_round_trip)
from tapedeck.domain.uniswap_v3 import (MAX_TICK, MIN_TICK, TickTable, V3PoolState, get_sqrt_ratio_at_tick, swap)

V2, V3 = "pool-v2", "pool-v3"
SPACING, FEE = 10, 500
SEEN: Counter[str] = Counter()


@st.composite
def layout(draw):
    """(V3 state with its tick table, V2 reserves, direction A?) near tick ~200000 (~2000 USDC/WETH)."""
    tick = draw(st.integers(199_000, 201_000))
    sp = draw(st.integers(get_sqrt_ratio_at_tick(tick), get_sqrt_ratio_at_tick(tick + 1) - 1))
    table = TickTable(SPACING)
    lq = 0
    for _ in range(draw(st.integers(1, 6))):
        lo = (tick // SPACING - draw(st.integers(0, 40))) * SPACING  # within ~4%: a gap crosses them
        hi = (tick // SPACING + draw(st.integers(1, 40))) * SPACING
        amount = draw(st.integers(1, 30)) * 10 ** draw(st.integers(14, 17))
        table.update(lo, hi, amount)
        lq += amount  # every position spans the price
    for _ in range(draw(st.integers(0, 3))):  # positions away from the price (a gap, or liquidity ahead)
        lo = (tick // SPACING + draw(st.sampled_from([-1, 1])) * draw(st.integers(5, 80))) * SPACING
        hi = lo + draw(st.integers(1, 40)) * SPACING
        if lo <= tick < hi:
            continue
        table.update(lo, hi, draw(st.integers(1, 30)) * 10 ** draw(st.integers(14, 17)))
    v3 = V3PoolState(sp, tick, lq, table)
    gap_bps = draw(st.integers(50, 800))
    a_pays = draw(st.booleans())  # A: WETH cheap on V2 (V2 price below V3's)
    depth = draw(st.integers(1, 500)) * 10**6 * 10**6  # USDC base units: up to 500M, deep against the V3 ranges
    price_v3 = sp * sp  # token1 per token0, Q192
    factor = (10_000 + gap_bps) if a_pays else (10_000 - gap_bps)
    r0 = depth
    r1 = r0 * price_v3 * factor // (10_000 << 192)  # more WETH per USDC on V2: WETH cheap there
    return v3, r0, max(r1, 1), a_pays


def _grid_best(profit, hi: int, n: int = 150) -> int:
    best = None
    for i in range(1, n + 1):
        p = profit(max(1, hi * i // n))
        if p is not None and (best is None or p > best):
            best = p
    return best if best is not None else -1


def _crossed(v3: V3PoolState, a_pays: bool, r0: int, r1: int, x: int) -> int:
    from tapedeck.domain.uniswap_v2 import get_amount_out

    amount = get_amount_out(x, r0, r1, 30) if a_pays else x
    return swap(v3.sqrt_price_x96, v3.tick, v3.liquidity, v3.ticks, FEE, amount, not a_pays).crossed


@given(layout(), st.integers(0, 5))
@settings(max_examples=40, deadline=None, derandomize=True, database=None, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])  # (a failing world printed whole)
def _size_across_ticks_is_exact_and_beats_neighbours_and_a_grid(world, k) -> None:
    v3, r0, r1, a_pays = world
    profit = across_ticks_profit(a_pays, r0, r1, v3, FEE, 30)
    got = size_across_ticks(a_pays, r0, r1, v3, FEE, 30, 1)
    if got is None:
        SEEN["nothing"] += 1
        event("nothing pays")
        assert _grid_best(profit, r0) < 1
        return
    x, p, proven = got
    assert p == profit(x)  # the exact multi-tick math at the size reported
    hi = r0
    for d in (1, 2, 1 << (k + 3), 1 << 12):
        for n in (x - d, x + d):
            if 1 <= n <= hi:
                q = profit(n)
                assert q is None or q <= p, (x, p, n, q)
    grid = _grid_best(profit, hi)
    assert p >= grid, (x, p, grid)
    old = size_round_trip(a_pays, r0, r1, v3.sqrt_price_x96, v3.liquidity, v3.tick, SPACING, FEE, 30, 1)
    if old is not None and old[1] is not None:  # a proven size is the optimum; an unproven one (a
        # local optimum of the exact math on a rounding plateau) is short of it by a unit or two at most
        assert p >= old[1] - (0 if proven else 2), (p, old, proven)
    crossed = _crossed(v3, a_pays, r0, r1, x)
    label = "crossed 3+" if crossed >= 3 else f"crossed {crossed}"
    SEEN[label] += 1
    SEEN["proven" if proven else "not proven"] += 1
    SEEN["beats the interval"] += old is None or old[1] is None or p > old[1]
    event(label)


@pytest.mark.slow  # ~18 s of CPU: multi-tick swaps over a grid for each world
def test_size_across_ticks_is_exact_and_beats_neighbours_and_a_grid() -> None:
    SEEN.clear()
    _size_across_ticks_is_exact_and_beats_neighbours_and_a_grid()
    print(dict(SEEN))
    assert SEEN["crossed 0"] >= 3 and SEEN["crossed 1"] + SEEN["crossed 2"] >= 3 and SEEN["crossed 3+"] >= 2, SEEN
    assert SEEN["beats the interval"] >= 10 and SEEN["proven"] >= 2, SEEN


def test_ranges_follow_the_tick_table() -> None:
    table = TickTable(SPACING)
    table.update(-100, 100, 10**18)
    table.update(50, 300, 5 * 10**17)
    v3 = V3PoolState(get_sqrt_ratio_at_tick(7), 7, 10**18, table)
    up = liquidity_ranges(v3, False)
    assert [(r[3], r[2]) for r in up] == [(50, 10**18), (100, 15 * 10**17), (300, 5 * 10**17), (MAX_TICK, 0)]
    down = liquidity_ranges(v3, True)
    assert [(r[3], r[2]) for r in down] == [(-100, 10**18), (MIN_TICK, 0)]
    assert next_initialized_tick(table, 50, False) == 100 and next_initialized_tick(table, 50, True) == 50


def test_the_strategy_sizes_across_ticks_once_it_has_a_snapshot() -> None:
    """Through the engine: a ``V3PoolSnapshot`` with several positions, a V2 pair 3% away; the
    opportunity's size crosses initialized ticks, its amounts are the multi-tick swap's, and it
    pays more than the same world known only from a swap log (in-interval sizing)."""
    from tapedeck.domain.uniswap_v2 import get_amount_out

    tick = 200_005
    sp = (get_sqrt_ratio_at_tick(tick) + get_sqrt_ratio_at_tick(tick + 1)) // 2
    positions = [(199_000, 201_000, 10**18), (200_010, 200_100, 2 * 10**18), (200_100, 200_500, 3 * 10**18)]
    table = TickTable(SPACING)
    for lo, hi, a in positions:
        table.update(lo, hi, a)
    lq = sum(a for lo, hi, a in positions if lo <= tick < hi)
    snap = ev.V3PoolSnapshot(seq=1, ts=1, pool=V3, block=1, sqrt_price_x96=sp, tick=tick, liquidity=lq,
                             tick_spacing=SPACING, ticks=tuple(table.items()))
    swap_log = ev.V3Swapped(seq=1, ts=1, pool=V3, block=1, tx="0x", log_index=0, sender="a", recipient="b",
                            amount0=0, amount1=0, sqrt_price_x96=sp, liquidity=lq, tick=tick)
    r0 = 40_000_000 * 10**6
    r1 = r0 * sp * sp * 10_300 // (10_000 << 192)  # WETH 3% cheaper on V2: round trip A
    pair = ev.V2ReservesSynced(seq=2, ts=2, pool=V2, block=1, reserve0=r0, reserve1=r1)
    cfg = {"risk": {"default_max_notional": 10**15, "default_max_outstanding": 10**16},
           "strategies": [{"kind": "cross_pool_arb", "name": "arb", "v2_pool": V2, "v3_pool": V3, "min_profit": 0,
                           "gas_units": 0, "gas_price_wei": 0, "venue": "ethereum"}]}

    def opportunity(first):
        engine = build_engine(cfg)
        out = [d for e in (first, pair) for d in engine.handle(e)]
        (opp,) = [d for d in out if isinstance(d, ev.OpportunityDetected)]
        return opp

    across, inside = opportunity(snap), opportunity(swap_log)
    assert across.buy_venue == "uniswap-v2"
    y = get_amount_out(across.amount_in, r0, r1, 30)
    m = swap(sp, tick, lq, table, FEE, y, False)
    assert m.crossed >= 1 and m.amount1 == y and -m.amount0 == across.amount_out
    assert across.gross_profit == across.amount_out - across.amount_in > 2 * inside.gross_profit
