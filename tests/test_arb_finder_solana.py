"""Solana pools in the arbitrage finder: a Raydium AMM v4 pool and an Orca Whirlpool of the same two
mints, folded from their account events, are partners; the finder's round trip is priced by each
program's exact math and its size beats its neighbours."""
from __future__ import annotations

from tapedeck.domain import events as ev
from tapedeck.domain import raydium_amm as ray
from tapedeck.domain import whirlpool as w
from tapedeck.domain.arb_finder import ArbFinder
from tapedeck.domain.solana_venues import RaydiumVenue, WhirlpoolVenue
from tapedeck.domain.state import MarketState

SOL = "So11111111111111111111111111111111111111112"
USDC = "EPjFWdd5AufqSSqeM2qJ1NTQaokfAbrhu9nYbkeU1ADE"
AMM, WP = "RaydiumPool1111111111111111111111111111111", "Whirlpool11111111111111111111111111111111111"
S = 10**9
SPACING, L = 64, 10**13
TICK = -18_944  # about 150 USDC per SOL in base units (0.15 USDC units per lamport), a spacing multiple


def _state(pc_reserve: int) -> MarketState:
    st = MarketState()
    st.on_solana(ev.RaydiumPoolSynced(
        ts=1 * S, pool=AMM, slot=10, status=6, coin_decimals=9, pc_decimals=6, trade_fee_numerator=25,
        trade_fee_denominator=10_000, swap_fee_numerator=25, swap_fee_denominator=10_000, need_take_pnl_coin=0,
        need_take_pnl_pc=0, pool_open_time=0, coin_vault="CV", pc_vault="PV", coin_mint=SOL, pc_mint=USDC,
        lp_mint="LP", open_orders="OO", market="MK", lp_amount=1))
    st.on_solana(ev.SplTokenAccountSynced(ts=1 * S, account="CV", slot=10, mint=SOL, owner="A", amount=10_000 * 10**9))
    st.on_solana(ev.SplTokenAccountSynced(ts=1 * S, account="PV", slot=10, mint=USDC, owner="A", amount=pc_reserve))
    st.on_solana(ev.WhirlpoolSynced(
        ts=1 * S, pool=WP, slot=10, whirlpools_config="CFG", tick_spacing=SPACING, fee_tier_index=SPACING,
        fee_rate=3000, protocol_fee_rate=1300, liquidity=L, sqrt_price=w.sqrt_price_from_tick_index(TICK),
        tick_current_index=TICK, mint_a=SOL, vault_a="VA", mint_b=USDC, vault_b="VB"))
    per_array = 88 * SPACING
    first = (TICK // per_array - 1) * per_array
    for i in range(3):  # the current array and one on each side; the position spans all three
        ticks = ((0, L),) if i == 0 else ((87, -L),) if i == 2 else ()
        st.on_solana(ev.WhirlpoolTickArraySynced(ts=1 * S, account=f"TA{i}", slot=10, pool=WP,
                                                 start_tick_index=first + i * per_array, ticks=ticks))
    return st


def test_raydium_and_whirlpool_of_the_same_mints_are_partners_and_the_round_trip_is_exact() -> None:
    venues = [RaydiumVenue(AMM, SOL, USDC), WhirlpoolVenue(WP, SOL, USDC)]
    finder = ArbFinder(venues, numeraires=[USDC])
    assert [v.id for v in finder.pairs[tuple(sorted((SOL, USDC)))]] == [AMM, WP]
    # the same price on both (about 150 USDC): fees keep the round trip from paying
    wp_price = w.price_of_a_in_b(w.sqrt_price_from_tick_index(TICK), 9, 6)
    level = int(wp_price * 10_000 * 10**6)  # the Raydium pc reserve at the Whirlpool's price
    assert finder.scan(_state(level), 2 * S) == []
    # Raydium 3% dearer: buy SOL on the Whirlpool, sell it on Raydium
    st = _state(level * 103 // 100)
    ops = finder.scan(st, 2 * S)
    assert len(ops) == 1
    op = ops[0]
    buy, sell = op.legs
    assert (buy.venue_id, sell.venue_id) == (WP, AMM) and buy.token_in == USDC and sell.token_in == SOL
    wp, amm = st.whirlpools.pool(WP), st.raydium.pool(AMM)
    sol = w.quote(wp, op.amount_in, False)
    usdc = ray.quote(amm, sol, True)
    assert (buy.amount_out, sell.amount_out) == (sol, usdc) and op.gross_profit == usdc - op.amount_in > 0
    assert op.gas_cost == 0  # Solana legs carry no EVM gas

    def profit(x: int) -> int:
        y = w.quote(wp, x, False)
        return -x if y is None else ray.quote(amm, y, True) - x

    best = op.gross_profit
    for dx in (1, 2, 1000, op.amount_in // 100):  # the finder's size beats its neighbours
        assert profit(op.amount_in - dx) <= best and profit(op.amount_in + dx) <= best
    # freshness: the same state 2 minutes on is stale for the default one-minute rule
    assert finder.scan(st, 121 * S) == []
