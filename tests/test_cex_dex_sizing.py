"""cex_dex_arb's detection and sizing: the book leg as the mock CEX rounds it, the pool leg by the
pool's exact math, both directions, and the chosen size beating its neighbours (and, where the
range is small enough to enumerate, every other size)."""
from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tapedeck.domain import events as ev
from tapedeck.domain.dex_quotes import PoolSpec, quote
from tapedeck.domain.state import MarketState
from tapedeck.domain.strategies.cex_dex_arb import (
    CEX_DEX, DEX_CEX, Book, CexDexArb, best_lots, min_input, size_at,
)
from tapedeck.domain.uniswap_v3 import get_tick_at_sqrt_ratio

USDC, WETH = "0x" + "a" * 40, "0x" + "b" * 40  # token0 sorts below token1
T0 = 1_709_251_200 * 10**9
S = 10**9
V2 = {"pool": "v2", "kind": "v2", "token0": USDC, "token1": WETH, "fee": 30}
V3 = {"pool": "v3", "kind": "v3", "token0": USDC, "token1": WETH, "fee": 500, "tick_spacing": 10}


def venue_report(levels: list[tuple[int, int]], q: int, buy: bool, fee_bps: Decimal, pd: int = 2, bd: int = 18,
                 qd: int = 6) -> tuple[int, int]:
    """The mock CEX's own arithmetic (``sim/venues/cex.py`` ``_report``), in Decimal: the notional
    rounded in the venue's favour, the fee on the exact notional rounded up to the quote unit."""
    left, notional = q, Decimal(0)
    for p, size in levels:
        take = min(left, size)
        notional += Decimal(p).scaleb(-pd) * Decimal(take).scaleb(-bd)
        left -= take
    fee = (notional * fee_bps / 10_000).quantize(Decimal(1).scaleb(-qd), rounding=ROUND_CEILING)
    scaled = notional.scaleb(qd)
    return int(scaled.to_integral_value(ROUND_CEILING if buy else ROUND_FLOOR)), int(fee.scaleb(qd))


def book(levels: tuple[tuple[int, int], ...], fee_bps: str = "10") -> Book:
    num, den = (Decimal(fee_bps) / 10_000).as_integer_ratio()
    return Book(levels, 2, 18, 6, num, den)


levels_st = st.lists(st.tuples(st.integers(100_000, 400_000), st.integers(1, 30 * 10**18)), min_size=1, max_size=5)


@given(levels_st, st.data(), st.sampled_from(["10", "2.5", "0", "7.25"]))
def test_the_book_leg_is_what_the_mock_cex_reports(levels, data, fee_bps) -> None:
    asks = tuple(sorted(levels))
    total = sum(s for _, s in asks)
    q = data.draw(st.integers(1, total))
    b = book(asks, fee_bps)
    notional, fee, worst = b.buy_cost(q)
    assert (notional, fee) == venue_report(list(asks), q, True, Decimal(fee_bps))
    bids = tuple(sorted(levels, reverse=True))
    notional, fee, _ = book(bids, fee_bps).sell_proceeds(q)
    assert (notional, fee) == venue_report(list(bids), q, False, Decimal(fee_bps))
    assert b.buy_cost(total + 1) is None  # past the depth it can see: not priced
    event(f"levels walked: {sum(1 for i in range(len(asks)) if sum(s for _, s in asks[:i]) < q)}")


def v2_state(r0: int, r1: int) -> MarketState:
    state = MarketState()
    state.on_v2(ev.V2ReservesSynced(ts=T0, pool="v2", block=1, reserve0=r0, reserve1=r1))
    return state


def v3_state(price_usdc: Decimal, liquidity: int) -> MarketState:
    ratio = Decimal(10**12) / price_usdc  # WETH wei per USDC unit
    sp = int(ratio.sqrt() * (1 << 96))
    state = MarketState()
    state.on_v3(ev.V3Swapped(ts=T0, pool="v3", block=1, tx="", log_index=0, sender="", recipient="", amount0=0,
                             amount1=0, sqrt_price_x96=sp, liquidity=liquidity, tick=get_tick_at_sqrt_ratio(sp)))
    return state


pools_st = st.one_of(
    st.builds(lambda usd, price: ("v2", v2_state(usd * 10**6, usd * 10**18 // price)),
              st.integers(10**5, 10**8), st.integers(1_000, 5_000)),
    st.builds(lambda price, liq: ("v3", v3_state(Decimal(price), liq)),
              st.integers(1_000, 5_000), st.integers(10**15, 10**20)),
)


@given(pools_st, st.integers(1, 10**20), st.booleans())
def test_min_input_is_the_least_amount_that_buys_the_size(pool, want, buy_base) -> None:
    kind, state = pool
    spec = PoolSpec.from_config(V2 if kind == "v2" else V3)
    token_in = USDC if buy_base else WETH
    x = min_input(spec, state, token_in, want)
    if x is None:
        event(f"{kind}: not priceable")
        return
    event(f"{kind}: priced")
    assert quote(spec, state, token_in, x) >= want
    assert x == 1 or (quote(spec, state, token_in, x - 1) or 0) < want


def market(pool: str, state: MarketState, bid: int, ask: int, size: int = 200_000, ts: int = T0) -> MarketState:
    state.on_quote(ev.QuoteUpdated(ts=ts, venue="binance", instrument="ETH-USDC", bid=bid, bid_size=size, ask=ask,
                                   ask_size=size, price_decimals=2, size_decimals=4, venue_ts=ts))
    state.on_block(ev.BlockProduced(ts=ts, chain="ethereum", number=2, base_fee=10**10, gas_used=0,
                                    gas_limit=30_000_000, next_base_fee=10**10))
    return state


def strategy(pool: dict, **kw) -> CexDexArb:
    return CexDexArb("cd", pools=[pool], base_token=WETH, quote_token=USDC, min_profit=0, **kw)


@given(pools_st, st.integers(-400, 400), st.integers(1, 40), st.sampled_from(["10", "1"]),
       st.sampled_from(["0.0001", "0.25"]))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_the_chosen_size_beats_its_neighbours_and_is_exact(pool, gap_bps, top_eth, fee_bps, lot) -> None:
    """Both directions, on V2 and V3 pools, with the optimum inside the range or at its bound (the
    book's depth, or the V3 interval's edge): the opportunity's amounts are the exact legs at its
    size, one lot more or less would not earn more, and with coarse lots (few sizes) no size would."""
    kind, state = pool
    spec_cfg = V2 if kind == "v2" else V3
    spec = PoolSpec.from_config(spec_cfg)
    probe = quote(spec, state, WETH, 10**15)  # the pool's price, USDC units per 0.001 ETH
    if probe is None:
        return
    mid = probe * 1000 // 10**4  # cents per ETH
    cex_mid = mid * (10_000 + gap_bps) // 10_000
    bid, ask = cex_mid - 1, cex_mid + 1
    market(spec.pool, state, bid, ask, size=top_eth * 10**4)
    s = strategy(spec_cfg, cex_taker_fee_bps=fee_bps, max_base="1000", max_notional=10**15, cex_lot_size=lot)
    out = s.on_event(state.quotes["ETH-USDC"]["binance"], state)
    if not out:
        event("no opportunity")
        return
    opp = out[0]
    assert isinstance(opp, ev.CexDexOpportunity)
    event(f"{kind} {opp.direction}")
    asks, bids = s.books(state.quotes["ETH-USDC"]["binance"], T0)
    b = asks if opp.direction == CEX_DEX else bids
    gas = s.gas_cost(state.quotes["ETH-USDC"]["binance"], state.blocks["ethereum"])
    n = opp.base_amount // s.lot
    at = lambda k: size_at(opp.direction, k, s.lot, b, spec, state, WETH, USDC, gas)  # noqa: E731
    chosen = at(n)
    assert (chosen.cex_quote, chosen.dex_quote, chosen.cex_fee, chosen.profit) == (
        opp.cex_quote, opp.dex_quote, opp.cex_fee, opp.expected_profit)
    if opp.direction == CEX_DEX:  # sell q on the pool for what its math gives
        assert opp.dex_quote == quote(spec, state, WETH, opp.base_amount)
        assert opp.expected_profit == opp.dex_quote - opp.cex_quote - opp.cex_fee - opp.gas_cost
    else:  # buy q on the pool with the least input that buys it
        assert opp.dex_quote == min_input(spec, state, USDC, opp.base_amount)
        assert opp.expected_profit == opp.cex_quote - opp.cex_fee - opp.dex_quote - opp.gas_cost
    n_max = min(b.depth(), s.max_base) // s.lot
    up, down = (at(n + 1) if n < n_max else None), (at(n - 1) if n > 1 else None)
    if up is None:
        event("optimum at a bound")
    assert up is None or up.profit <= opp.expected_profit
    assert down is None or down.profit < opp.expected_profit  # ties go to the smaller size
    if n_max <= 200:
        every = [r for r in (at(k) for k in range(1, n_max + 1)) if r is not None]
        assert opp.expected_profit == max(r.profit for r in every)
        event("checked against every size")


@given(st.integers(2, 300), st.integers(-5, 5), st.data())
def test_best_lots_finds_the_maximum_of_a_concave_profit_with_a_feasible_prefix(n_max, skew, data) -> None:
    """Against enumeration: any concave profit (with integer plateaus), any feasible prefix."""
    peak = data.draw(st.integers(-10, n_max + 10))
    feasible = data.draw(st.integers(0, n_max))
    flat = data.draw(st.integers(1, 3))

    class R:
        def __init__(self, profit: int):
            self.profit = profit

    f = lambda n: None if n > feasible else R(-((n - peak) ** 2) // flat + skew * n)  # noqa: E731
    found = best_lots(f, n_max)
    if feasible < 1:
        assert found is None
        return
    brute = max(range(1, feasible + 1), key=lambda n: (f(n).profit, -n))
    assert found[0] == brute
    event("peak inside" if 1 < brute < feasible else "peak at a bound")


def test_both_directions_are_detected_and_a_fair_book_is_quiet() -> None:
    spec = PoolSpec.from_config(V2)
    for gap, direction in ((+150, DEX_CEX), (-150, CEX_DEX), (0, None)):
        state = v2_state(40_000_000 * 10**6, 40_000_000 * 10**18 // 3000)
        mid = 300_000 * (10_000 + gap) // 10_000
        market("v2", state, mid - 1, mid + 1)
        out = strategy(V2).on_event(state.quotes["ETH-USDC"]["binance"], state)
        if direction is None:
            assert out == ()
            continue
        opp, cex, dex = out
        assert opp.direction == direction and opp.expected_profit > 0
        assert (cex.side, dex.side) == (("sell", "buy") if direction == DEX_CEX else ("buy", "sell"))
        assert cex.client_id == "cd1-cex" and dex.client_id == "cd1-dex" and cex.tif == "ioc"
        assert dex.min_profit == opp.dex_min_out and dex.instrument == spec.pool


def test_a_stale_quote_is_suppressed_not_traded() -> None:
    state = v2_state(40_000_000 * 10**6, 40_000_000 * 10**18 // 3000)
    market("v2", state, 304_000, 304_002, ts=T0)
    later = ev.V2ReservesSynced(ts=T0 + 10 * S, pool="v2", block=2, reserve0=40_000_000 * 10**6,
                                reserve1=40_000_000 * 10**18 // 3000)
    state.on_v2(later)
    out = strategy(V2, max_age_s=2).on_event(later, state)
    assert len(out) == 1 and isinstance(out[0], ev.OpportunitySuppressed)
    assert out[0].ids == ("binance",) and out[0].net_profit > 0


def test_without_a_block_gas_cannot_be_priced_so_nothing_is_reported() -> None:
    state = v2_state(40_000_000 * 10**6, 40_000_000 * 10**18 // 3000)
    state.on_quote(ev.QuoteUpdated(ts=T0, venue="binance", instrument="ETH-USDC", bid=304_000, bid_size=10**5,
                                   ask=304_002, ask_size=10**5, price_decimals=2, size_decimals=4))
    assert strategy(V2).on_event(state.quotes["ETH-USDC"]["binance"], state) == ()


def test_bad_parameters_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="leg_order"):
        strategy(V2, leg_order="dex_first")
    with pytest.raises(ValueError, match="not base_token"):
        CexDexArb("cd", pools=[V2], base_token=WETH, quote_token="0x" + "c" * 40)
    with pytest.raises(ValueError, match="unknown parameter"):
        strategy(V2, colour="red")
    assert CexDexArb("cd").handles == ()  # no pools: inert
