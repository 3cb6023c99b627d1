"""Cross-pool arbitrage: exact amounts, the best size, the minimum profit, gas, risk-gated intents."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tapedeck.domain import events as ev
from tapedeck.domain.strategies import build_engine
from tapedeck.domain.uniswap_v2 import get_amount_out
from tapedeck.domain.uniswap_v3 import get_sqrt_ratio_at_tick, swap_within_range

V2, V3 = "pool-v2", "pool-v3"
L = 12_000_000_000_000_000_000
TICK = 200_005  # inside [200000, 200010): ~2060 USDC/WETH


def config(**kw):
    s = {"kind": "cross_pool_arb", "name": "arb", "v2_pool": V2, "v3_pool": V3, "min_profit": 0,
         "gas_units": 0, "gas_price_wei": 0, "act": True, "venue": "ethereum"}
    s.update(kw)
    return {"risk": {"default_max_notional": 10**15, "default_max_outstanding": 10**16}, "strategies": [s]}


def v3_swap_event(seq: int, tick: int = TICK, liquidity: int = L) -> ev.V3Swapped:
    sp = (get_sqrt_ratio_at_tick(tick) + get_sqrt_ratio_at_tick(tick + 1)) // 2
    return ev.V3Swapped(seq=seq, ts=seq, pool=V3, block=1, tx="0x", log_index=seq, sender="a", recipient="b",
                        amount0=1, amount1=-1, sqrt_price_x96=sp, liquidity=liquidity, tick=tick)


def v2_event(seq: int, r0: int, r1: int) -> ev.V2ReservesSynced:
    return ev.V2ReservesSynced(seq=seq, ts=seq, pool=V2, block=1, reserve0=r0, reserve1=r1)


def reserves_at(price_usdc_per_weth: int, depth_usdc: int = 40_000_000) -> tuple[int, int]:
    r0 = depth_usdc * 10**6
    return r0, r0 * 10**12 // price_usdc_per_weth


def decide(engine, events):
    out = []
    for e in events:
        out.extend(engine.handle(e))
    return out


def profit_a(state_sp, x, r0, r1):
    """Round trip A by hand: USDC -> WETH on V2, WETH -> USDC on V3 (None if it leaves the interval)."""
    y = get_amount_out(x, r0, r1)
    r = swap_within_range(state_sp, L, TICK, 10, 500, y, False)
    return None if r.amount1 != y else -r.amount0 - x


def test_no_opportunity_when_prices_agree_within_fees() -> None:
    engine = build_engine(config())
    price = 10**12 * 2**192 // v3_swap_event(1).sqrt_price_x96 ** 2  # USDC per WETH at the V3 price
    assert decide(engine, [v3_swap_event(1), v2_event(2, *reserves_at(price))]) == []


def test_cheap_weth_on_v2_is_bought_there_and_sold_on_v3_at_the_best_size() -> None:
    engine = build_engine(config())
    sp = v3_swap_event(1).sqrt_price_x96
    r0, r1 = reserves_at(2040)  # V2 ~1% cheaper than V3 (~2060)
    out = decide(engine, [v3_swap_event(1), v2_event(2, r0, r1)])
    opp, intent = out
    assert type(opp) is ev.OpportunityDetected and type(intent) is ev.OrderIntended
    assert (opp.buy_venue, opp.sell_venue, opp.cause) == ("uniswap-v2", "uniswap-v3", 2)
    x = opp.amount_in
    # the reported profit is the exact round trip, and no nearby or coarser size does better
    assert opp.gross_profit == profit_a(sp, x, r0, r1) > 0
    assert opp.amount_out == x + opp.gross_profit
    for other in [x - 1, x + 1, x // 2, x * 2 // 3, 1000 * 10**6]:
        p = profit_a(sp, other, r0, r1)
        assert p is None or p <= opp.gross_profit
    assert intent.notional == x and intent.venue == "ethereum"


def test_cheap_weth_on_v3_goes_the_other_way() -> None:
    engine = build_engine(config())
    out = decide(engine, [v3_swap_event(1), v2_event(2, *reserves_at(2090))])
    assert out[0].buy_venue == "uniswap-v3" and out[0].sell_venue == "uniswap-v2" and out[0].net_profit > 0


def test_gas_and_minimum_profit_filter_opportunities() -> None:
    events = [v3_swap_event(1), v2_event(2, *reserves_at(2040))]
    gross = decide(build_engine(config()), events)[0].gross_profit
    with_gas = decide(build_engine(config(gas_units=200_000, gas_price_wei=30 * 10**9)), events)[0]
    sp = events[0].sqrt_price_x96
    assert with_gas.gas_cost == 200_000 * 30 * 10**9 * 2**192 // sp**2  # ETH wei priced in USDC units
    assert with_gas.net_profit == gross - with_gas.gas_cost
    assert decide(build_engine(config(min_profit=gross + 1)), events) == []


def test_intent_over_the_venue_limit_is_refused() -> None:
    cfg = config()
    cfg["risk"]["venues"] = {"ethereum": {"max_notional": 1_000 * 10**6}}
    out = decide(build_engine(cfg), [v3_swap_event(1), v2_event(2, *reserves_at(2040))])
    assert type(out[1]) is ev.IntentRejected and "max_notional" in out[1].reason


def test_other_pools_and_unknown_v3_state_are_ignored() -> None:
    engine = build_engine(config())
    other = ev.V2ReservesSynced(seq=1, ts=1, pool="0xother", block=1, reserve0=1, reserve1=10**30)
    assert decide(engine, [other, v2_event(2, *reserves_at(2040))]) == []  # no V3 state yet


@settings(max_examples=40, deadline=None)
@given(st.integers(1900, 2200), st.integers(200_000, 200_009), st.integers(1, 200))
def test_reported_opportunities_are_always_exact_and_profitable(price, tick, depth_m) -> None:
    engine = build_engine(config())
    r0, r1 = reserves_at(price, depth_m * 1_000_000)
    swap = v3_swap_event(1, tick=tick)
    for d in decide(engine, [swap, v2_event(2, r0, r1)]):
        if type(d) is ev.OpportunityDetected:
            assert d.net_profit > 0
            sp = swap.sqrt_price_x96
            if d.buy_venue == "uniswap-v2":
                y = get_amount_out(d.amount_in, r0, r1)
                r = swap_within_range(sp, L, tick, 10, 500, y, False)
                assert r.amount1 == y and -r.amount0 == d.amount_out
            else:
                r = swap_within_range(sp, L, tick, 10, 500, d.amount_in, True)
                assert r.amount0 == d.amount_in
                assert get_amount_out(-r.amount1, r1, r0) == d.amount_out
