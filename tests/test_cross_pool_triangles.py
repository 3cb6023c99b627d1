"""Triangles in cross_pool_arb (``triangles``): three pools forming a cycle of three tokens, sized
by the composition of their constant-product views (``size_triangle``: one ``RoundTrip``, the
closed form, then ``best_size`` on the exact quotes) and sent as one atomic route to the executor.

Small generated V2 cycles (reserves of a few thousand units, priced apart by 1%..30%) are searched
exhaustively with the exact quotes: the size is the exact optimum when ``proven``, and at least
every neighbour otherwise; the cases where the cycle pays one way, the other way, and neither are
counted. Through the engine: the opportunity's amounts are the pools' exact quotes hop by hop,
the intent names the three pools in order on the executor venue with gas in its ``min_profit``.
"""
from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import Phase, event, given, settings
from hypothesis import strategies as st

from tapedeck.domain import events as ev
from tapedeck.domain.dex_quotes import PoolSpec, quote
from tapedeck.domain.state import MarketState
from tapedeck.domain.strategies import build_engine
from tapedeck.domain.strategies.cross_pool_arb import Triangle, size_triangle

A, B, C = ("0x" + c * 40 for c in "abc")
SEEN: Counter[str] = Counter()


def pools() -> list[dict]:
    return [{"pool": "ab", "kind": "v2", "token0": A, "token1": B, "fee": 30},
            {"pool": "bc", "kind": "v2", "token0": B, "token1": C, "fee": 30},
            {"pool": "ca", "kind": "v2", "token0": A, "token1": C, "fee": 30}]


def cycle_profit(state: MarketState, route, start: str, x: int) -> int | None:
    amount, t = x, start
    for sp in route:
        amount = quote(sp, state, t, amount)
        if amount is None:
            return None
        t = sp.other(t)
    return amount - x


@given(st.lists(st.integers(2_000, 9_000), min_size=6, max_size=6), st.integers(100, 3_000), st.booleans())
@settings(max_examples=120, deadline=None, derandomize=True, database=None, phases=(Phase.explicit, Phase.generate))
def _triangles_are_sized_exactly(reserves, gap_bps, forward) -> None:
    state = MarketState()
    (a0, b0, b1, c1, a2, c2) = reserves
    c2 = c2 * (10_000 + gap_bps) // 10_000  # C cheap in the third pool: one way round pays
    for pid, r0, r1 in (("ab", a0, b0), ("bc", b1, c1), ("ca", a2, c2)):
        state.on_v2(ev.V2ReservesSynced(ts=1, pool=pid, block=1, reserve0=r0, reserve1=r1))
    t = Triangle.from_config(0, {"start": A, "pools": pools()})
    route = t.pools if forward else t.pools[::-1]
    got = size_triangle(state, route, A)
    values = {x: cycle_profit(state, route, A, x) for x in range(1, max(reserves) + 1)}
    best = max((p for p in values.values() if p is not None), default=None)
    if got is None:
        assert best is None or best < 1
        SEEN["nothing pays"] += 1
        event("nothing pays")
        return
    x, outs, proven = got
    assert outs[-1] - x == values[x]  # the exact quotes, hop by hop
    if proven:
        assert values[x] == best
    for n in (x - 1, x + 1):
        if n in values and values[n] is not None:
            assert values[n] <= values[x]
    SEEN["proven" if proven else "not proven"] += 1
    SEEN["forward" if forward else "backward"] += 1
    event("pays " + ("forward" if forward else "backward"))


def test_triangles_are_sized_exactly_against_an_exhaustive_search() -> None:
    SEEN.clear()
    _triangles_are_sized_exactly()
    assert SEEN["proven"] >= 20 and SEEN["nothing pays"] >= 10 and SEEN["forward"] + SEEN["backward"] >= 20, SEEN


def test_a_triangle_through_the_engine_is_one_atomic_route() -> None:
    cfg = {"risk": {"default_max_notional": 10**30, "default_max_outstanding": 10**30},
           "strategies": [{"kind": "cross_pool_arb", "name": "arb", "v2_pool": "none-v2", "v3_pool": "none-v3",
                           "min_profit": 0, "gas_units": 0, "gas_price_wei": 1, "act": True, "venue": "ethereum",
                           "triangles": [{"start": A, "pools": pools()}], "native_token": A,
                           "triangle_gas_units": 300_000}]}
    engine = build_engine(cfg)
    out = []
    for i, (pid, r0, r1) in enumerate((("ab", 10**12, 10**12), ("bc", 10**12, 10**12), ("ca", 10**12, 103 * 10**10))):
        out += engine.handle(ev.V2ReservesSynced(seq=i + 1, ts=i + 1, pool=pid, block=1, reserve0=r0, reserve1=r1))
    opps = [d for d in out if isinstance(d, ev.OpportunityDetected)]
    intents = [d for d in out if type(d).__name__ == "Intent" or isinstance(d, ev.OrderIntended)]
    assert len(opps) == 1 and opps[0].kind == "triangle-arb" and len(intents) == 1
    (opp,), (intent,) = opps, intents
    assert intent.venue == "ethereum:arb-executor" and intent.side == "arb" and len(intent.route) == 3
    assert intent.min_profit == 300_000 and opp.gas_cost == 300_000  # gas at 1 wei/gas, the start token native
    state = engine.state
    t = Triangle.from_config(0, {"start": A, "pools": pools()})
    route = {tuple(p.pool for p in r): r for r in (t.pools, t.pools[::-1])}[tuple(intent.route)]
    assert cycle_profit(state, route, A, opp.amount_in) == opp.gross_profit == opp.amount_out - opp.amount_in
    assert opp.net_profit == opp.gross_profit - opp.gas_cost > 0


@pytest.mark.parametrize("bad,match", [
    ({"start": A, "pools": pools()[:2]}, "three pools"),
    ({"start": A, "pools": [pools()[0], pools()[2], pools()[1]]}, "does not trade"),
    ({"pools": pools()}, "start"),
])
def test_a_bad_triangle_is_a_clear_error(bad, match) -> None:
    with pytest.raises(ValueError, match=match):
        Triangle.from_config(0, bad)


def test_a_triangles_gas_is_valued_at_the_mid_of_a_leg_pricing_the_native_token() -> None:
    cfg = {"risk": {"default_max_notional": 10**30, "default_max_outstanding": 10**30},
           "strategies": [{"kind": "cross_pool_arb", "name": "arb", "v2_pool": "none-v2", "v3_pool": "none-v3",
                           "gas_units": 0, "gas_price_wei": 1, "act": False, "venue": "ethereum",
                           "triangles": [{"start": A, "pools": pools()}], "native_token": B,
                           "triangle_gas_units": 300_000}]}
    engine = build_engine(cfg)
    out = []
    # A -> B at 2 B per A, B -> C at 1, C -> A at 1.03/2: the cycle pays ~3% before fees
    for i, (pid, r0, r1) in enumerate((("ab", 10**12, 2 * 10**12), ("bc", 10**12, 10**12),
                                       ("ca", 10**12, 2 * 10**12 * 100 // 103))):
        out += engine.handle(ev.V2ReservesSynced(seq=i + 1, ts=i + 1, pool=pid, block=1, reserve0=r0, reserve1=r1))
    (opp,) = [d for d in out if isinstance(d, ev.OpportunityDetected)]
    assert opp.gas_cost == 150_000  # 300k wei of B at the ab pool's mid, 0.5 A per B (rounded up)
    with pytest.raises(ValueError, match="native_token"):
        build_engine({**cfg, "strategies": [{**cfg["strategies"][0], "native_token": ""}]})
