"""V3 swaps across ticks in the domain (``uniswap_v3.TickTable``, ``uniswap_v3.swap``, the ticks of
``V3PoolState``) — against independent oracles, then against the real pool bytecode.

Fast part: the tick bitmap's ``nextInitializedTickWithinOneWord`` equals a search over the set of
initialized ticks (the oracle in ``tests/test_uniswap_v3_contracts.py``, written from the Solidity);
an exact-input swap equals that file's ``pool_swap`` (which chains ``compute_swap_step`` with the
set search, not the bitmap); exact-output asks no more than exact-input gives; the tick table folded
from Mint/Burn events equals one built from a snapshot; ``dex_quotes.quote`` crosses ticks where
they are known and keeps the within-range quote where they are not.

Contract part (``contract``: py-evm, npm ``@uniswap/v3-core`` 1.0.1 through the periphery's router
and position manager): hypothesis draws liquidity layouts (3-12 positions, widths up to 600 x the
tick spacing so ranges straddle bitmap words, centres at negative ticks and beside MIN/MAX_TICK,
every fee tier including 0.01 % / spacing 1) and swaps in both directions, exact-in and exact-out,
sized to reach a far tick; the pool's Swap log (amounts, sqrtPrice, tick, liquidity) equals the
domain's to the wei after every swap, and the state folded from the logs equals ``slot0()`` /
``liquidity()``. The test asserts how many swaps crossed many ticks and bitmap words.
"""
from __future__ import annotations

import random
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from tapedeck.domain import events as ev
from tapedeck.domain import uniswap_v3 as v3
from tapedeck.domain.dex_quotes import PoolSpec, quote
from tapedeck.domain.state import MarketState

sys.path.insert(0, str(Path(__file__).parent))
from test_uniswap_v3_contracts import (  # noqa: E402 - the oracles written from the Solidity
    next_initialized_tick_within_one_word as oracle_next_tick,
    pool_swap as oracle_pool_swap,
)

SPACINGS = {100: 1, 500: 10, 3000: 60, 10000: 200}


def usable(spacing: int) -> tuple[int, int]:
    return -(-v3.MIN_TICK // spacing) * spacing, v3.MAX_TICK // spacing * spacing


@st.composite
def layouts(draw: Any, max_positions: int = 12) -> tuple[int, int, int, list[tuple[int, int, int]], int, int]:
    """``(fee, spacing, centre tick, positions (lower, upper, liquidity), start tick, sqrt price)``:
    positions around a centre that is negative, near 0, positive, or beside MIN/MAX_TICK; widths
    from one spacing to 600 (a bitmap word is 256 spacings)."""
    fee = draw(st.sampled_from(sorted(SPACINGS)))
    spacing = SPACINGS[fee]
    lo_ok, hi_ok = usable(spacing)
    where = draw(st.sampled_from(("min", "negative", "zero", "positive", "max")))
    span = 700 * spacing
    centre = {"min": lo_ok + span, "max": hi_ok - span, "zero": 0,
              "negative": draw(st.integers(-600_000, -10_000)), "positive": draw(st.integers(10_000, 600_000))}[where]
    centre = centre // spacing * spacing
    positions = []
    for _ in range(draw(st.integers(3, max_positions))):
        lower = centre + draw(st.integers(-600, 400)) * spacing
        width = draw(st.sampled_from((1, 2, 5, 40, 255, 256, 257, 300, 600)))
        upper = lower + width * spacing
        lower, upper = max(lower, lo_ok), min(upper, hi_ok)
        if lower < upper:
            positions.append((lower, upper, draw(st.integers(10**8, 10**22))))
    start = centre + draw(st.integers(-400 * spacing, 400 * spacing))
    start = max(min(start, v3.MAX_TICK - 1), v3.MIN_TICK)
    lo_p, hi_p = v3.get_sqrt_ratio_at_tick(start), v3.get_sqrt_ratio_at_tick(start + 1)
    sqrt_price = draw(st.integers(lo_p, hi_p - 1))
    event(f"layout near {where}")
    return fee, spacing, centre, positions, start, sqrt_price


def table_of(spacing: int, positions: list[tuple[int, int, int]]) -> tuple[v3.TickTable, dict[int, int]]:
    t, net = v3.TickTable(spacing), {}
    for lower, upper, liq in positions:
        t.update(lower, upper, liq)
        net[lower] = net.get(lower, 0) + liq
        net[upper] = net.get(upper, 0) - liq
    return t, net


def in_range(positions: list[tuple[int, int, int]], tick: int) -> int:
    return sum(liq for lower, upper, liq in positions if lower <= tick < upper)


# ----------------------------------------------------------------------------- fast: domain against oracles


@settings(max_examples=300, deadline=None)
@given(layouts(), st.integers(-800, 800), st.booleans())
def test_bitmap_walk_equals_the_set_search(layout: Any, offset: int, lte: bool) -> None:
    _, spacing, centre, positions, *_ = layout
    table, net = table_of(spacing, positions)
    tick = max(min(centre + offset * spacing + offset % spacing, v3.MAX_TICK), v3.MIN_TICK)
    got = table.next_initialized_tick_within_one_word(tick, lte)
    assert got == oracle_next_tick(set(net), tick, spacing, lte)
    event("found an initialized tick" if got[1] else "stopped at a word boundary")


@settings(max_examples=300, deadline=None)
@given(layouts(), st.booleans(), st.floats(-3, 1.5), st.data())
def test_exact_input_across_ticks_equals_the_oracle_loop(layout: Any, zero_for_one: bool, scale: float,
                                                           data: Any) -> None:
    fee, spacing, _, positions, start, sp = layout
    table, net = table_of(spacing, positions)
    liq = in_range(positions, start)
    virtual = max(liq, 10**12) * (v3.Q96 // sp if zero_for_one and sp < v3.Q96 else 1)
    amount = max(1, int(virtual * 10**scale)) if data.draw(st.booleans()) else data.draw(st.integers(1, 10**30))
    limit = v3.MIN_SQRT_RATIO + 1 if zero_for_one else v3.MAX_SQRT_RATIO - 1
    want = oracle_pool_swap(sp, start, liq, net, spacing, fee, amount, zero_for_one, limit)
    got = v3.swap(sp, start, liq, table, fee, amount, zero_for_one)
    assert (got.amount0, got.amount1, got.sqrt_price_x96, got.liquidity, got.tick) == want
    event(f"crossed {min(got.crossed, 5)}{'+' if got.crossed >= 5 else ''} initialized ticks")


@settings(max_examples=200, deadline=None)
@given(layouts(), st.booleans(), st.integers(1, 10**24))
def test_exact_output_needs_no_more_than_exact_input_gives(layout: Any, zero_for_one: bool, amount: int) -> None:
    """Exact-out of what an exact-in gave: it pays out exactly that, and asks at most the input
    (the pool rounds against the trader both ways)."""
    fee, spacing, _, positions, start, sp = layout
    table, _ = table_of(spacing, positions)
    liq = in_range(positions, start)
    fwd = v3.swap(sp, start, liq, table, fee, amount, zero_for_one)
    out = -(fwd.amount1 if zero_for_one else fwd.amount0)
    if out <= 0:
        return
    back = v3.swap(sp, start, liq, table, fee, -out, zero_for_one)
    paid_in, paid_out = (back.amount0, -back.amount1) if zero_for_one else (back.amount1, -back.amount0)
    assert paid_out == out
    assert paid_in <= (fwd.amount0 if zero_for_one else fwd.amount1)
    event("crossed ticks" if back.crossed else "within one range")


def test_price_limit_and_zero_amount_revert_as_the_pool() -> None:
    table, _ = table_of(10, [(-100, 100, 10**18)])
    sp = v3.get_sqrt_ratio_at_tick(0)
    with pytest.raises(v3.V3MathError, match="AS"):
        v3.swap(sp, 0, 10**18, table, 500, 0, True)
    with pytest.raises(v3.V3MathError, match="SPL"):
        v3.swap(sp, 0, 10**18, table, 500, 10, True, sp + 1)
    with pytest.raises(v3.V3MathError, match="SPL"):
        v3.swap(sp, 0, 10**18, table, 500, 10, False, v3.MAX_SQRT_RATIO)
    # past the last position the price runs through empty ticks to the limit, input left over
    r = v3.swap(sp, 0, 10**18, table, 500, 10**30, True)
    assert r.sqrt_price_x96 == v3.MIN_SQRT_RATIO + 1 and r.amount0 < 10**30 and r.liquidity == 0
    assert r.crossed == 1 and r.words > 100  # -100, then every empty word down to MIN_TICK


def test_ticks_folded_from_mints_and_burns_equal_a_snapshot_and_old_folds_are_unchanged() -> None:
    common = dict(ts=1, pool="p", block=1, tx="0x", log_index=0)
    snap = ev.V3PoolSnapshot(ts=1, pool="p", block=1, sqrt_price_x96=v3.get_sqrt_ratio_at_tick(5), tick=5, liquidity=0,
                             tick_spacing=10)
    state = MarketState()
    state.on_v3(snap)
    assert state.v3["p"].ticks is not None and len(state.v3["p"].ticks) == 0
    for lo, hi, amount in ((-100, 100, 7), (0, 2560, 5), (-100, 0, 3)):
        state.on_v3(ev.V3Minted(**common, owner="o", sender="s", tick_lower=lo, tick_upper=hi, amount=amount,
                                amount0=0, amount1=0))
    state.on_v3(ev.V3Burned(**common, owner="o", tick_lower=-100, tick_upper=0, amount=3, amount0=0, amount1=0))
    st_ = state.v3["p"]
    assert st_.liquidity == 12
    assert st_.ticks.items() == [(-100, 7, 7), (0, 5, 5), (100, 7, -7), (2560, 5, -5)]  # type: ignore[union-attr]
    assert st_.ticks == v3.TickTable.from_ticks(10, st_.ticks.items())  # type: ignore[union-attr]
    assert st_.ticks.bitmap == {-1: 1 << 246, 0: 1 | 1 << 10, 1: 1}  # type: ignore[union-attr]
    copy = st_.copy()
    assert copy == st_ and copy.ticks is not st_.ticks
    # a burn of more than a tick holds: the table disagrees with the logs, and is dropped
    state.on_v3(ev.V3Burned(**common, owner="o", tick_lower=0, tick_upper=2560, amount=6, amount0=0, amount1=0))
    assert st_.ticks is None and st_.inconsistencies >= 1
    # a state from swap logs alone never has ticks
    only_swaps = v3.V3PoolState()
    only_swaps.apply(ev.V3Swapped(**common, sender="", recipient="", amount0=0, amount1=0,
                                  sqrt_price_x96=snap.sqrt_price_x96, liquidity=9, tick=5))
    assert only_swaps.ticks is None and only_swaps.known


def test_quote_crosses_ticks_where_known_and_stays_within_range_where_not() -> None:
    sp = v3.get_sqrt_ratio_at_tick(3)
    positions = [(-600, 600, 10**15), (-20, 20, 10**16)]
    table, _ = table_of(10, positions)
    spec = PoolSpec("p", "v3", "a", "b", 500, 10)
    known, unknown = MarketState(), MarketState()
    liq = in_range(positions, 3)
    known.v3["p"] = v3.V3PoolState(sp, 3, liq, table)
    unknown.v3["p"] = v3.V3PoolState(sp, 3, liq)
    small = 10**6
    assert quote(spec, known, "a", small) == quote(spec, unknown, "a", small)  # inside the interval: the same
    big = 2 * 10**13  # crosses -20, stops before -600
    r = v3.swap(sp, 3, liq, table, 500, big, True)
    assert r.crossed == 1 and r.amount0 == big
    assert quote(spec, known, "a", big) == -r.amount1
    assert quote(spec, unknown, "a", big) is None  # would leave the interval: not priceable without ticks
    assert quote(spec, known, "a", 10**40) is None  # runs out of liquidity: not a full fill


# ----------------------------------------------------------------------------- contract: the real pool


def _world() -> Any:
    from test_uniswap_v3_contracts import _require_builds, setup_tokens

    from tapedeck.sim.chain.pyevm import PyEvmChain, transact
    from tapedeck.sim.chain.uniswap_v3 import deploy_v3

    _require_builds()
    chain = PyEvmChain()
    me = chain.accounts[0]
    dep = deploy_v3(chain.w3, sender=me)
    transact(chain.w3, dep.factory.functions.enableFeeAmount(100, 1), me, gas=100_000)  # the 0.01 % tier
    a, b = setup_tokens(chain.w3, me)
    for t in (a, b):
        for spender in (dep.router.address, dep.manager.address):
            transact(chain.w3, t.functions.approve(spender, 2**256 - 1), me, gas=100_000)
    return SimpleNamespace(chain=chain, w3=chain.w3, dep=dep, a=a, b=b, me=me)


@pytest.fixture(scope="module")
def world() -> Any:
    return _world()


def _event(lg: dict[str, Any], pool: str) -> ev.Event:
    common = dict(ts=0, pool=pool, block=lg["blockNumber"], tx=lg["transactionHash"].hex(), log_index=lg["logIndex"])
    if lg["event"] == "Swap":
        return ev.V3Swapped(**common, sender=lg["sender"], recipient=lg["recipient"], amount0=lg["amount0"],
                            amount1=lg["amount1"], sqrt_price_x96=lg["sqrtPriceX96"], liquidity=lg["liquidity"],
                            tick=lg["tick"])
    return ev.V3Minted(**common, owner=lg["owner"], sender=lg["sender"], tick_lower=lg["tickLower"],
                       tick_upper=lg["tickUpper"], amount=lg["amount"], amount0=lg["amount0"], amount1=lg["amount1"])


def _needed(state: v3.V3PoolState, fee: int, zero_for_one: bool, to_tick: int) -> int:
    """The exact input that takes the pool's price to ``to_tick``'s price (the domain's own swap)."""
    limit = v3.get_sqrt_ratio_at_tick(to_tick)  # at MIN/MAX_TICK the pool takes the limit one inside (else SPL)
    limit = max(limit, v3.MIN_SQRT_RATIO + 1) if zero_for_one else min(limit, v3.MAX_SQRT_RATIO - 1)
    if (limit >= state.sqrt_price_x96) if zero_for_one else (limit <= state.sqrt_price_x96):
        return 0  # the price is already there (a swap that ended on a tick's price sits one tick below it)
    r = state.swap(fee, 2**200, zero_for_one, limit)
    return r.amount0 if zero_for_one else r.amount1


@pytest.mark.contract
@pytest.mark.slow
def test_generated_layouts_and_swaps_equal_the_real_pool(world: Any) -> None:
    from tapedeck.sim.chain.pyevm import TransactionReverted, transact
    from tapedeck.sim.chain.uniswap_v3 import create_pool, mint_position, swap_exact_input

    w = world
    base = w.chain.snapshot()
    seen: Counter[str] = Counter()
    started = time.perf_counter()

    @settings(max_examples=45, deadline=None, derandomize=True, database=None,
              phases=(Phase.generate,),  # no shrinking on a chain: each example deploys and mints
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(layouts(max_positions=10), st.data())
    def run(layout: Any, data: Any) -> None:
        w.chain.revert(base)
        fee, spacing, centre, positions, start, sqrt_price = layout
        pool = create_pool(w.dep, w.a, w.b, fee, sqrt_price)
        assert pool.slot0() == (sqrt_price, start) and pool.tick_spacing == spacing
        state = v3.V3PoolState()
        state.apply(ev.V3PoolSnapshot(ts=0, pool=pool.address, block=0, sqrt_price_x96=sqrt_price, tick=start,
                                      liquidity=0, tick_spacing=spacing))
        net: dict[int, int] = {}
        for lower, upper, liq in positions:
            sp, tick = pool.slot0()
            want0, want1 = v3.position_amounts(sp, tick, lower, upper, liq)
            try:
                receipt = mint_position(pool, w.me, lower, upper, want0, want1)
            except TransactionReverted:  # the manager's own rounding gave 0 liquidity (its LiquidityAmounts
                seen["mint refused by the manager"] += 1  # floors sqrtA*sqrtB/2^96 to 0 below tick ~-665k)
                continue
            (m,) = pool.decode_logs(receipt)
            state.apply(_event(m, pool.address))
            net[lower] = net.get(lower, 0) + m["amount"]
            net[upper] = net.get(upper, 0) - m["amount"]
        assert state.liquidity == pool.liquidity() and state.ticks is not None
        for t, _gross, n in state.ticks.items():  # the folded table is the pool's own
            assert int(pool.pool.functions.ticks(t).call()[1]) == n == net[t]
        for word, bits in state.ticks.bitmap.items():
            assert int(pool.pool.functions.tickBitmap(word).call()) == bits
        for i in range(4):
            zero_for_one = data.draw(st.booleans(), label=f"zero_for_one {i}")
            exact_in = data.draw(st.booleans(), label=f"exact_in {i}")
            if state.sqrt_price_x96 == (v3.MIN_SQRT_RATIO + 1 if zero_for_one else v3.MAX_SQRT_RATIO - 1):
                zero_for_one = not zero_for_one  # a swap ran it to the extreme: only back is open (else SPL)
            ahead = sorted(t for t in net if (t <= state.tick if zero_for_one else t > state.tick))
            if ahead and data.draw(st.booleans(), label="aim at a tick"):
                far = ahead[0] if zero_for_one else ahead[-1]
                to = data.draw(st.sampled_from(ahead[-6:] if zero_for_one else ahead[:6]) | st.just(far))
                needed = _needed(state, fee, zero_for_one, to)
                amount = max(1, needed + data.draw(st.sampled_from((-1, 0, 1, needed // 3, needed))))
            else:
                amount = data.draw(st.integers(1, 10**27), label="amount")
            if not exact_in:  # ask for what that input would give (or a bit more: can it?)
                fwd = state.swap(fee, amount, zero_for_one)
                out = -(fwd.amount1 if zero_for_one else fwd.amount0)
                if out <= 0:
                    continue
                amount = -(out + data.draw(st.sampled_from((0, 0, 1)), label="more"))
            want = state.swap(fee, amount, zero_for_one)
            token_in = pool.token0 if zero_for_one else pool.token1
            got_out = -(want.amount1 if zero_for_one else want.amount0)
            where = (f"fee {fee} spacing {spacing} tick {state.tick} L {state.liquidity} ticks {state.ticks.items()} "
                     f"amount {amount} zero_for_one {zero_for_one} -> domain {want}")
            if want.steps > 1_500:  # a walk over more bitmap words than a block's gas pays for on py-evm
                seen["longer than a block's gas: not sent"] += 1
                continue
            if want.amount0 == want.amount1 == 0:  # only empty ranges ahead: the pool would move for nothing,
                # and the periphery's callback refuses it (`require(amount0Delta > 0 || amount1Delta > 0)`)
                with pytest.raises(TransactionReverted):
                    swap_exact_input(pool, w.me, token_in, max(amount, 1), gas=15_000_000)
                seen["a swap through empty ranges refused as the domain said"] += 1
                continue
            if exact_in:
                receipt = swap_exact_input(pool, w.me, token_in, amount, gas=15_000_000)
            else:
                token_out = pool.token1 if zero_for_one else pool.token0
                params = (token_in.address, token_out.address, fee, w.me, 2**63, -amount, 2**255, 0)
                fn = pool.router.functions.exactOutputSingle(params)
                if got_out != -amount:  # the pool cannot pay it all: the router refuses a partial fill
                    with pytest.raises(TransactionReverted):
                        transact(w.w3, fn, w.me, gas=15_000_000)
                    seen["exact-out refused as the domain said"] += 1
                    continue
                receipt = transact(w.w3, fn, w.me, gas=15_000_000)
            (log,) = [lg for lg in pool.decode_logs(receipt) if lg["event"] == "Swap"]
            got = (log["amount0"], log["amount1"], log["sqrtPriceX96"], log["tick"], log["liquidity"])
            assert got == (want.amount0, want.amount1, want.sqrt_price_x96, want.tick, want.liquidity), where
            before = state.tick
            crossed_net = sum(1 for t in net if (want.tick < t <= before if zero_for_one else before < t <= want.tick))
            assert want.crossed == crossed_net, where  # every initialized tick passed, crossed once
            words = abs((want.tick // spacing >> 8) - (before // spacing >> 8))
            state.apply(_event(log, pool.address))
            assert (state.sqrt_price_x96, state.tick, state.liquidity) == (*pool.slot0(), pool.liquidity())
            seen["swaps"] += 1
            seen["exact-out" if not exact_in else "exact-in"] += 1
            seen["zero-for-one" if zero_for_one else "one-for-zero"] += 1
            seen["negative tick"] += before < 0
            if want.crossed >= 3:
                seen["crossed >= 3 ticks"] += 1
            if words:
                seen["crossed a bitmap word"] += 1
            if words >= 2:
                seen["crossed >= 2 bitmap words"] += 1
            seen["near MIN/MAX tick"] += abs(before) > 800_000
            event(f"crossed {min(want.crossed, 5)}{'+' if want.crossed >= 5 else ''} ticks, {min(words, 2)}"
                  f"{'+' if words >= 2 else ''} words")

    run()
    print(f"\nmulti-tick swaps on the real pool: {dict(seen)} in {time.perf_counter() - started:.1f}s")
    assert seen["swaps"] >= 50
    assert seen["crossed >= 3 ticks"] >= 10 and seen["crossed >= 2 bitmap words"] >= 10
    assert seen["exact-out"] >= 10 and seen["zero-for-one"] >= 10 and seen["one-for-zero"] >= 10
    assert seen["negative tick"] >= 5 and seen["near MIN/MAX tick"] >= 3


def test_random_layouts_are_not_a_fixed_case() -> None:
    """The oracle loop agrees on seeded layouts far from the hypothesis ones (both sides of 0, all tiers)."""
    rng = random.Random(7)
    crossed = 0
    for _ in range(200):
        fee = rng.choice(sorted(SPACINGS))
        spacing = SPACINGS[fee]
        centre = rng.randint(-800_000, 800_000) // spacing * spacing
        lo_ok, hi_ok = usable(spacing)
        pos = []
        for _ in range(rng.randint(1, 15)):
            lower = max(centre + rng.randint(-1000, 1000) * spacing, lo_ok)
            upper = min(lower + rng.randint(1, 800) * spacing, hi_ok)
            if lower < upper:
                pos.append((lower, upper, rng.randint(1, 10**24)))
        table, net = table_of(spacing, pos)
        start = max(min(centre + rng.randint(-500, 500) * spacing, v3.MAX_TICK - 1), v3.MIN_TICK)
        sp = v3.get_sqrt_ratio_at_tick(start)
        zfo = rng.random() < 0.5
        amount = rng.randint(1, 10**rng.randint(1, 40))
        limit = v3.MIN_SQRT_RATIO + 1 if zfo else v3.MAX_SQRT_RATIO - 1
        liq = in_range(pos, start)
        got = v3.swap(sp, start, liq, table, fee, amount, zfo)
        assert (got.amount0, got.amount1, got.sqrt_price_x96, got.liquidity, got.tick) == oracle_pool_swap(
            sp, start, liq, net, spacing, fee, amount, zfo, limit)
        crossed += got.crossed >= 2
    assert crossed >= 40
