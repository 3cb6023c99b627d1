"""DEX quotes for the liquidator: each pool kind quotes what its exact math says, routes chain them,
and a sale a V3 pool's known state cannot price exactly (leaving the tick-spacing interval) is None."""
from __future__ import annotations

from hypothesis import event, given, settings
from hypothesis import strategies as st

from tapedeck.domain import dex_quotes as dq
from tapedeck.domain.state import MarketState, V2Pool
from tapedeck.domain.uniswap_v2 import get_amount_out
from tapedeck.domain.uniswap_v3 import V3PoolState, get_sqrt_ratio_at_tick, swap_within_range

A, B, C = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20


def state_with(v2: dict[str, tuple[int, int]] = {}, v3: dict[str, tuple[int, int, int]] = {}) -> MarketState:
    s = MarketState()
    for p, (r0, r1) in v2.items():
        s.v2[p] = V2Pool(r0, r1, 1)
    for p, (tick, liq, _) in v3.items():
        s.v3[p] = V3PoolState(get_sqrt_ratio_at_tick(tick) + 1, tick, liq)
    return s


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**24), st.integers(10**6, 10**26), st.integers(10**6, 10**26), st.booleans(),
       st.sampled_from([5, 25, 30, 100]))
def test_v2_quote_is_get_amount_out(amount: int, r0: int, r1: int, zero_for_one: bool, fee: int) -> None:
    spec = dq.PoolSpec.from_config({"pool": "p", "kind": "v2", "token0": A, "token1": B, "fee": fee})
    got = dq.quote(spec, state_with({"p": (r0, r1)}), A if zero_for_one else B, amount)
    exp = get_amount_out(amount, r0, r1, fee) if zero_for_one else get_amount_out(amount, r1, r0, fee)
    assert got == (exp or None)
    event("zero output" if not exp else "quoted")


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**22), st.integers(-50_000, 50_000), st.integers(10**15, 10**24), st.booleans())
def test_v3_quote_is_the_in_range_swap_or_none(amount: int, tick: int, liq: int, zero_for_one: bool) -> None:
    spec = dq.PoolSpec.from_config({"pool": "q", "kind": "v3", "token0": A, "token1": B, "fee": 500})
    s = state_with(v3={"q": (tick, liq, 0)})
    got = dq.quote(spec, s, A if zero_for_one else B, amount)
    st3 = s.v3["q"]
    r = swap_within_range(st3.sqrt_price_x96, liq, tick, 10, 500, amount, zero_for_one)
    paid, out = (r.amount0, -r.amount1) if zero_for_one else (r.amount1, -r.amount0)
    if paid == amount and out > 0:
        assert got == out
        event("in range")
    else:
        assert got is None
        event("would cross: None")


def test_routes_and_best() -> None:
    pools = [dq.PoolSpec.from_config(d) for d in (
        {"pool": "ab", "kind": "v2", "token0": A, "token1": B},
        {"pool": "ac", "kind": "v2", "token0": A, "token1": C},
        {"pool": "bc", "kind": "v2", "token0": B, "token1": C})]
    rs = dq.routes(pools, A, B)
    assert [[p.pool for p in r] for r in rs] == [["ab"], ["ac", "bc"]]
    s = state_with({"ab": (10**18, 2000 * 10**6), "ac": (10**21, 10**21), "bc": (10**24, 2000 * 10**12)})
    out, route = dq.best(rs, s, A, 10**17)
    two = get_amount_out(get_amount_out(10**17, 10**21, 10**21), 2000 * 10**12, 10**24)
    assert route == rs[1] and out == two > get_amount_out(10**17, 10**18, 2000 * 10**6)
    assert dq.best(rs, MarketState(), A, 10**17) is None
    ratio = dq.marginal_ratio(rs[0], s, A, 10**17)
    assert ratio is not None and 0.9 < ratio < 0.92  # r/(r + k*a) = 1/(1 + 0.0997)
