"""The venue-agnostic opportunity finder (domain/arb_finder.py): exact sizes against exhaustive
search, the neighbours of the optimum, freshness, gas at the base fee, CEX books and token identity.

Small generated worlds (V2 reserves of a few thousand units, V3 states near price 1, books of a few
hundred lots) are searched exhaustively with each venue's exact math; each property counts the
cases it exercised (venue kinds, directions, proven sizes) and asserts it saw them."""
from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import Phase, event, given, settings
from hypothesis import strategies as st

from tapedeck.domain import events as ev
from tapedeck.domain.arb_finder import WETH, ArbFinder, BookVenue, PoolVenue
from tapedeck.domain.book_depth import depth_id
from tapedeck.domain.dex_quotes import PoolSpec
from tapedeck.domain.state import MarketState
from tapedeck.domain.uniswap_v3 import get_sqrt_ratio_at_tick

Q96 = 1 << 96
T0, T1 = "0x" + "0" * 39 + "a", "0x" + "0" * 39 + "b"  # token0 < token1 by address
USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
EXHAUSTIVE = 20_000  # sizes searched one by one at most (beyond: the optimum's neighbours are checked)
NO_SHRINK = (Phase.explicit, Phase.generate)  # a failing world is printed whole; shrinking these takes minutes


def pool_id(i: int) -> str:
    return "0x" + f"{i:040x}"


def v2(state: MarketState, pid: str, r0: int, r1: int, ts: int = 1) -> None:
    state.on_v2(ev.V2ReservesSynced(ts=ts, pool=pid, block=1, reserve0=r0, reserve1=r1))


def v3(state: MarketState, pid: str, sp: int, liq: int, tick: int, ts: int = 1) -> None:
    state.on_v3(ev.V3Swapped(ts=ts, pool=pid, block=1, tx="", log_index=0, sender="", recipient="", amount0=0,
                             amount1=0, sqrt_price_x96=sp, liquidity=liq, tick=tick))


def exact_profit(finder: ArbFinder, state: MarketState, a, b, s: str, o: str, x: int) -> int | None:
    """The round trip by the venues' own quotes (the finder's search is not used)."""
    y = a.quote(state, s, x)
    if y is None:
        return None
    z = b.quote(state, o, y)
    return None if z is None else z - x


@st.composite
def cp_world(draw):
    """Two constant-product venues of the pair (T0, T1): V2 pairs of 2000..20000 units, V3 pools near
    price 1 (thin, so the interval edge often clamps, to deep), priced apart by 0.4%..50%."""
    kinds = draw(st.sampled_from([("v2", "v2"), ("v2", "v3"), ("v3", "v2"), ("v3", "v3"), ("v2", "v3"), ("v3", "v2")]))
    state = MarketState()
    venues = []
    base_price = None  # T1 per T0 of the first venue, as sqrt price X96
    for i, kind in enumerate(kinds):
        pid = pool_id(i + 1)
        if kind == "v2":
            r0 = draw(st.integers(2_000, 20_000))
            if base_price is None:
                r1 = draw(st.integers(2_000, 20_000))
            else:
                gap = draw(st.sampled_from([-1, 1])) * draw(st.integers(100, 5_000))
                r1 = max(1, r0 * base_price**2 * (10_000 + gap) // (10_000 * Q96 * Q96))
            v2(state, pid, r0, r1)
            venues.append(PoolVenue(PoolSpec(pid, "v2", T0, T1, draw(st.sampled_from([30, 5])))))
            base_price = base_price or _isqrt(r1 * Q96 * Q96 // r0)
        else:
            spacing, fee = draw(st.sampled_from([(10, 500), (60, 3000)]))
            tick = draw(st.integers(-200, 200))
            if base_price is not None:  # near the first venue's price, off by up to ~1000 ticks
                tick = draw(st.integers(-1_000, 1_000)) + _tick_of(base_price)
            lo, hi = get_sqrt_ratio_at_tick(tick), get_sqrt_ratio_at_tick(tick + 1) - 1
            sp = draw(st.integers(lo, hi))
            liq = draw(st.integers(1, 99)) * 10 ** draw(st.integers(4, 8))
            v3(state, pid, sp, liq, tick)
            venues.append(PoolVenue(PoolSpec(pid, "v3", T0, T1, fee, spacing)))
            base_price = base_price or sp
    return state, venues, kinds


def _isqrt(n: int) -> int:
    from math import isqrt
    return isqrt(n)


def _tick_of(sp: int) -> int:
    from tapedeck.domain.uniswap_v3 import get_tick_at_sqrt_ratio
    return get_tick_at_sqrt_ratio(max(4295128739, min(sp, 1461446703485210103287273052203988822378723970341)))


@pytest.mark.slow  # exhaustive searches: ~35 s
def test_optimal_size_of_two_pools_is_the_exhaustive_optimum_and_beats_its_neighbours() -> None:
    seen: Counter[str] = Counter()

    @settings(max_examples=int(os.environ.get("TAPEDECK_ARB_EXAMPLES", 200)), deadline=None, database=None,
              derandomize=True, phases=NO_SHRINK)
    @given(cp_world(), st.integers(2, 50))
    def check(world, k) -> None:
        state, (a, b), kinds = world
        finder = ArbFinder([a, b], gas_price_wei=0)
        for first, second in ((a, b), (b, a)):
            margins = finder.stats.paid_at_margin
            opp = finder.round_trip(state, first, second, T0, T1, now=1)
            cap = first.max_in(state, T0)
            label = f"{kinds[0] if first is a else kinds[1]}->{kinds[1] if first is a else kinds[0]}"
            if finder.stats.paid_at_margin == margins:  # the first unit does not pay: no size does (concave)
                assert opp is None
                for x in (1, 2, 10, 100, 1000, cap // 2, cap):
                    p = exact_profit(finder, state, first, second, T0, T1, x) if 1 <= x <= cap else None
                    assert p is None or p < 1
                seen["nothing pays at the margin"] += 1
                continue
            # every size when few enough (V2 first: the optimum of a gap <= 50% is below a quarter
            # of the reserve going in, and the profit concave)
            span = min(cap, first.curve(state, T0).ri_num) if first.spec.kind == "v2" else cap
            exhaustive = span <= EXHAUSTIVE
            if not exhaustive:
                if opp is None:
                    seen["deep, nothing found"] += 1
                    continue
                feasible = {}
                best = opp.gross_profit
                seen["deep: neighbours only"] += 1
            else:
                values = {x: exact_profit(finder, state, first, second, T0, T1, x)
                          for x in range(1, span + 1)}
                feasible = {x: p for x, p in values.items() if p is not None}
                best = max(feasible.values(), default=None)
                if best is None or best < 1:
                    assert opp is None, (opp, best)
                    seen["nothing pays"] += 1
                    continue
                assert opp is not None, (label, best)
                seen["exhaustive"] += 1
            x = opp.amount_in
            assert opp.gross_profit == exact_profit(finder, state, first, second, T0, T1, x)
            assert opp.method == "closed-form"
            if opp.proven:  # proven: the true integer optimum
                assert opp.gross_profit == best
                seen["proven"] += 1
            else:  # a plateau wider than the finder scans: a pattern search's local optimum, short by little
                assert best - opp.gross_profit <= max(2, best // 100), (best, opp.gross_profit)
                seen["not proven"] += 1
                seen["not proven, short of the optimum"] += opp.gross_profit < best
            # and so it beats its neighbours (an unproven size: at the powers of two up to 2^8), where feasible
            for d in (1, k if opp.proven else 1 << (k % 9)):
                for n in (x - d, x + d):
                    p = feasible[n] if n in feasible else (exact_profit(finder, state, first, second, T0, T1, n)
                                                           if 1 <= n <= cap else None)
                    if p is not None:
                        assert p <= opp.gross_profit, (label, x, n, p, opp.gross_profit)
                        seen[f"checked +-{'1' if d == 1 else 'k'}"] += 1
            clamped = x == first.max_in(state, T0) or opp.legs[0].amount_out >= second.max_in(state, T1) - 1
            event(label + (" clamped" if clamped else ""))
            seen[label] += 1
            seen["clamped"] += clamped

    check()
    print(dict(seen))
    for label in ("v2->v2", "v2->v3", "v3->v2", "v3->v3", "checked +-1", "checked +-k", "nothing pays at the margin",
                  "exhaustive", "deep: neighbours only", "proven"):
        assert seen[label] >= 2, (label, dict(seen))
    assert seen["clamped"] >= 1, sorted(seen.items())
    assert seen["not proven"] <= seen["proven"] // 4, dict(seen)  # most sizes are proven optimal


@st.composite
def book_world(draw):
    """A CEX book of 1..3 levels each side (tokens of 2 decimals on chain; book prices with 2 places,
    whole-token sizes: a lot is 100 base units) and a V2 pair priced up to 10% apart from it."""
    state = MarketState()
    mid = draw(st.integers(2, 10))  # quote units per base unit
    spread = draw(st.integers(1, 5))
    bids, asks = [], []
    p = mid * 100 - spread
    for _ in range(draw(st.integers(1, 3))):
        bids.append((p, draw(st.integers(1, 10))))
        p -= draw(st.integers(1, mid * 10))
    p = mid * 100 + spread
    for _ in range(draw(st.integers(1, 3))):
        asks.append((p, draw(st.integers(1, 10))))
        p += draw(st.integers(1, mid * 10))
    state.on_depth(ev.BookDepthUpdated(ts=1, venue="cex", instrument="T1T0", bids=tuple(bids), asks=tuple(asks),
                                       price_decimals=2, size_decimals=0, snapshot=True, last_update=10))
    book = BookVenue("cex", "T1T0", T1, T0, 2, 2, taker_fee_pips=draw(st.sampled_from([0, 1000, 10_000])))
    # a V2 pair T0/T1 (both 2 decimals on chain) priced up to 10% off the book's mid
    r1 = draw(st.integers(2_000, 20_000))  # base units (20..200 lots)
    gap = draw(st.integers(-1_000, 1_000))
    r0 = max(1, r1 * mid * (10_000 + gap) // 10_000)
    v2(state, pool_id(9), r0, r1)
    pool = PoolVenue(PoolSpec(pool_id(9), "v2", T0, T1, 30))
    return state, book, pool


@pytest.mark.slow  # exhaustive searches: ~35 s
def test_book_and_pool_search_beats_its_neighbours_and_the_exhaustive_lots() -> None:
    """The bounded search (a book leg has no closed form): the size it picks is a local optimum
    (+-1 of the sizes its first leg takes), and its profit equals the best over every size checked
    exhaustively (every lot count when the book is the first leg, every input up to the depth when
    the pool is)."""
    seen: Counter[str] = Counter()

    @settings(max_examples=int(os.environ.get("TAPEDECK_ARB_EXAMPLES", 150)), deadline=None, database=None, derandomize=True,
              phases=NO_SHRINK)
    @given(book_world(), st.integers(2, 40))
    def check(world, k) -> None:
        state, book, pool = world
        finder = ArbFinder([book, pool], gas_price_wei=0, numeraires=[T0])
        for first, second in ((book, pool), (pool, book)):
            margins = finder.stats.paid_at_margin
            opp = finder.round_trip(state, first, second, T0, T1, now=1)
            label = "book->pool" if first is book else "pool->book"
            if finder.stats.paid_at_margin == margins:  # the first unit does not pay: no size does
                assert opp is None
                for x in (1, 10, 100, 1_000, 10_000):
                    p = exact_profit(finder, state, first, second, T0, T1, x)
                    assert p is None or p < 1
                seen[label + " nothing pays at the margin"] += 1
                continue
            lots = first.sizes(state, T0)
            if lots is not None:  # the book buys whole lots: the sizes are its cost of n lots
                size_of, n_max = lots
                sizes = [size_of(n) for n in range(1, n_max + 1)]
            else:
                sizes = list(range(1, min(first.max_in(state, T0), 40_000) + 1))
            values = {x: exact_profit(finder, state, first, second, T0, T1, x) for x in sizes}
            feasible = {x: p for x, p in values.items() if p is not None}
            best = max(feasible.values(), default=None)
            if best is None or best < 1:
                assert opp is None
                seen[label + " nothing pays"] += 1
                continue
            assert opp is not None, (label, best)
            x = opp.amount_in
            assert opp.method == "search" and opp.gross_profit == feasible[x]
            assert opp.gross_profit == best, (label, x, opp.gross_profit, best)
            i = sizes.index(x)
            for d in (1, k):  # neighbours on the grid of sizes that can differ (every integer for a pool first)
                for j in (i - d, i + d):
                    if 0 <= j < len(sizes) and sizes[j] in feasible:
                        assert feasible[sizes[j]] <= opp.gross_profit
                        seen[f"checked +-{'1' if d == 1 else 'k'}"] += 1
            event(label)
            seen[label] += 1

    check()
    print(dict(seen))
    for label in ("book->pool", "pool->book", "checked +-1", "checked +-k", "pool->book nothing pays at the margin"):
        assert seen[label] >= 3, (label, dict(seen))


# ----------------------------------------------------------------------------- rules


def _two_v2(gap_bps: int = 100) -> tuple[MarketState, PoolVenue, PoolVenue]:
    state = MarketState()
    a = PoolVenue(PoolSpec(pool_id(1), "v2", USDC, WETH, 30))
    b = PoolVenue(PoolSpec(pool_id(2), "v2", USDC, WETH, 30))
    v2(state, a.id, 40_000_000 * 10**6, 20_000 * 10**18)
    v2(state, b.id, 10_000_000 * 10**6 * (10_000 + gap_bps) // 10_000, 5_000 * 10**18)
    return state, a, b


def test_gas_is_priced_at_the_current_base_fee_in_the_profit_token() -> None:
    state, a, b = _two_v2()
    finder = ArbFinder([a, b])
    assert finder.scan(state, 1) == []  # no block, no gas price: gas cannot be valued, nothing reported
    assert finder.stats.unpriced_gas == 1
    state.on_block(ev.BlockProduced(ts=1, chain="ethereum", number=1, base_fee=1, gas_used=0, gas_limit=0,
                                    next_base_fee=20 * 10**9))
    (opp,) = finder.scan(state, 1)
    assert opp.gas_wei == (105_000 + 105_000) * 20 * 10**9
    # valued at the mid of the pools quoting WETH/USDC (the first fresh one), rounded up
    mid_num, mid_den = a.mid(state, WETH)
    assert opp.gas_cost == -(-opp.gas_wei * mid_num // mid_den)
    assert opp.net_profit == opp.gross_profit - opp.gas_cost and opp.profit_token == USDC
    assert opp.legs[0].venue_id == a.id and opp.legs[1].venue_id == b.id  # buy WETH where it is cheap
    assert opp.legs[0].amount_out == opp.legs[1].amount_in
    assert opp.legs[1].amount_out == b.quote(state, WETH, a.quote(state, USDC, opp.amount_in))
    # a higher base fee costs more and can end it
    state.on_block(ev.BlockProduced(ts=2, chain="ethereum", number=2, base_fee=1, gas_used=0, gas_limit=0,
                                    next_base_fee=10**15))
    assert finder.scan(state, 2) == []


def test_gas_with_an_updates_memo_is_gas_without_it() -> None:
    """``on_update`` passes its memo to ``gas``, which keeps the native token's mid there: every leg pair
    valued from it is what ``gas`` answers alone, priceable or not."""
    state, a, b = _two_v2()
    v3 = PoolVenue(PoolSpec(pool_id(3), "v3", USDC, WETH, 500, 10))
    finder = ArbFinder([a, b, v3])
    memo: dict = {}
    assert finder.gas(state, (a, b), USDC, 1, memo) is None and finder.gas(state, (a, v3), USDC, 1, memo) is None
    assert finder._gas_on(state, "ethereum", a.gas_units + b.gas_units, USDC, 1, {}) is None  # (no gas price)
    state.on_block(ev.BlockProduced(ts=1, chain="ethereum", number=1, base_fee=1, gas_used=0, gas_limit=0,
                                    next_base_fee=20 * 10**9))
    memo = {}
    for legs in ((a, b), (a, v3), (v3, b), (v3, v3), (a, b)):
        for token in (USDC, WETH):
            assert finder.gas(state, legs, token, 1, memo) == finder.gas(state, legs, token, 1)
            # (on_update's two pools on one chain: the same gas from their units' sum, without the legs)
            units = legs[0].gas_units + legs[1].gas_units
            assert finder._gas_on(state, "ethereum", units, token, 1, {}) == finder.gas(state, legs, token, 1)
    tipped = ArbFinder([a, b, v3], priority_fee_wei=3 * 10**9)
    assert tipped._gas_on(state, "ethereum", a.gas_units + v3.gas_units, USDC, 1, {}) == tipped.gas(state, (a, v3), USDC, 1)
    assert tipped._gas_on(state, "ethereum", 0, USDC, 1, {}) == (0, 0) == tipped._gas_on(state, "", 10, USDC, 1, {})
    assert finder.gas(state, (a, v3), USDC, 1, memo)[1] > finder.gas(state, (a, b), USDC, 1, memo)[1] > 0
    state.on_source_stale(ev.SourceStale(ts=2, venues=(a.id, b.id), reason="gap"))  # no fresh venue to value it
    memo = {}
    assert finder.gas(state, (a, b), USDC, 2, memo) is None and finder.gas(state, (v3, b), USDC, 2, memo) is None
    assert finder._gas_on(state, "ethereum", a.gas_units + b.gas_units, USDC, 2, {}) is None


def test_stale_venues_take_no_part() -> None:
    state, a, b = _two_v2()
    finder = ArbFinder([a, b], gas_price_wei=10**9, max_age_ns=60 * 10**9)
    assert len(finder.scan(state, 1)) == 1
    assert finder.scan(state, 1 + 60 * 10**9 + 1) == []  # older than max_age
    state.on_source_stale(ev.SourceStale(ts=2, venues=(b.id,), reason="gap"))
    assert finder.scan(state, 2) == [] and finder.stats.skipped_stale == 2
    v2(state, b.id, 10_100_000 * 10**6, 5_000 * 10**18, ts=3)  # its next update makes it fresh again
    assert len(finder.scan(state, 3)) == 1


def test_an_opportunitys_key_is_the_text_of_the_state_that_priced_it() -> None:
    """The gap's identity (``Opportunity.key``, what reports count gaps by) is rendered from the legs'
    state versions when asked: a pool's ints as they were when it was found, even after the pools
    moved on; a book's version as its text at that moment."""
    state, a, b = _two_v2()
    finder = ArbFinder([a, b], gas_price_wei=10**9)
    (opp,) = finder.scan(state, 1)
    ra, rb = (state.v2[a.id].reserve0, state.v2[a.id].reserve1), (state.v2[b.id].reserve0, state.v2[b.id].reserve1)
    want = f"{a.id}@{ra}|{b.id}@{rb}|{USDC}"
    assert opp.key == want and opp.versions == (a.id, ra, b.id, rb, USDC)
    v2(state, b.id, rb[0] + 10**6, rb[1], ts=2)  # the pool moves on: the opportunity's key does not
    assert opp.key == want and finder.scan(state, 2)[0].key != want
    book = BookVenue("binance", "ETHUSDC", WETH, USDC, 18, 6, taker_fee_pips=1000)
    state.on_quote(ev.QuoteUpdated(ts=3, venue="binance", instrument="ETHUSDC", bid=3000_00, bid_size=100_0000,
                                   ask=3000_01, ask_size=100_0000, price_decimals=2, size_decimals=4))
    (cex,) = ArbFinder([a, book], gas_price_wei=10**9).scan(state, 3)
    assert cex.versions[3] == f"{book.version(state)}" and cex.key == f"{a.id}@{ra}|{book.id}@{book.version(state)}|{USDC}"


def test_pairs_are_matched_by_token_address_not_symbol() -> None:
    state, a, _ = _two_v2()
    other_weth = "0x" + "e" * 40  # an "ETH" that is not WETH by address
    book = BookVenue("binance", "ETHUSDC", other_weth, USDC, 18, 6, taker_fee_pips=1000)
    state.on_quote(ev.QuoteUpdated(ts=1, venue="binance", instrument="ETHUSDC", bid=3000_00, bid_size=100_0000,
                                   ask=3000_01, ask_size=100_0000, price_decimals=2, size_decimals=4))
    finder = ArbFinder([a, book], gas_price_wei=10**9)
    assert finder.scan(state, 1) == [] and finder.stats.evaluated == 0
    same = BookVenue("binance", "ETHUSDC", WETH, USDC, 18, 6, taker_fee_pips=1000)
    found = ArbFinder([a, same], gas_price_wei=10**9).scan(state, 1)  # 3000 on the CEX vs 2000 on the pair
    assert len(found) == 1 and found[0].legs[1].venue == "binance" and found[0].gas_wei == 105_000 * 10**9


def test_a_depth_gap_makes_the_book_stale_until_the_next_snapshot() -> None:
    state = MarketState()
    key = depth_id("binance", "ETHUSDC")

    def depth(ts: int, first: int, last: int, snapshot: bool = False, bid: int = 3000_00) -> None:
        state.on_depth(ev.BookDepthUpdated(ts=ts, venue="binance", instrument="ETHUSDC", bids=((bid, 10_0000),),
                                           asks=((bid + 1, 10_0000),), price_decimals=2, size_decimals=4,
                                           snapshot=snapshot, first_update=first, last_update=last))

    depth(1, 0, 5, snapshot=True)
    assert state.depth[key].synced and state.fresh(key, 1, 10)
    depth(2, 3, 5)  # old: ignored
    depth(3, 6, 8, bid=2999_00)  # contiguous: applied
    assert state.depth[key].bids()[0] == (3000_00, 10_0000) and (2999_00, 10_0000) in state.depth[key].bids()
    depth(4, 10, 12)  # 9 was missed
    assert not state.depth[key].synced and key in state.stale and "missed updates 9..9" in state.stale[key]
    depth(5, 13, 14)
    assert key in state.stale  # still stale: diffs cannot repair a book
    book = BookVenue("binance", "ETHUSDC", WETH, USDC, 18, 6)
    assert not book.fresh(state, 5, 10**9)  # no top of book either: not priced
    depth(6, 0, 20, snapshot=True)
    assert state.depth[key].synced and key not in state.stale and book.fresh(state, 6, 10**9)


def test_book_quote_walks_levels_with_the_taker_fee() -> None:
    state = MarketState()
    state.on_depth(ev.BookDepthUpdated(ts=1, venue="x", instrument="ETHUSDC",
                                       bids=((3000_00, 1_0000), (2990_00, 2_0000)),
                                       asks=((3001_00, 1_0000), (3010_00, 2_0000)),
                                       price_decimals=2, size_decimals=4, snapshot=True, last_update=1))
    book = BookVenue("x", "ETHUSDC", WETH, USDC, 18, 6, taker_fee_pips=1000)
    # sell 2 ETH: 1 at 3000 and 1 at 2990 = 5990 USDC, less 0.1%
    assert book.quote(state, WETH, 2 * 10**18) == 5990 * 10**6 * 999 // 1000
    # buy with 6011 USDC: 1 ETH at 3001, 1 at 3010 -> 2 ETH less 0.1%
    assert book.quote(state, USDC, 6011 * 10**6) == 2 * 10**18 * 999 // 1000
    assert book.quote(state, WETH, 4 * 10**18) is None  # deeper than the book
    assert book.quote(state, WETH, 10**13) is None  # less than one lot (0.0001 ETH)


def test_on_update_with_a_book_finds_what_round_trip_finds() -> None:
    """``on_update`` with a CEX book as the venue that moved or as its partner (the book has no
    ``margins_if_fresh``: its margins and their floats come from ``_quiet_of``) reports exactly the
    round trips ``round_trip`` sizes in either direction, the better first."""
    seen: Counter[str] = Counter()

    @settings(max_examples=60, deadline=None, database=None, derandomize=True)
    @given(book_world())
    def check(world) -> None:
        state, book, pool = world
        finder = ArbFinder([book, pool], gas_price_wei=0, numeraires=[T0])
        want = [o for o in (finder.round_trip(state, pool, book, T0, T1, now=1),
                            finder.round_trip(state, book, pool, T0, T1, now=1)) if o is not None]
        want.sort(key=lambda o: -o.net_profit)
        for moved in (book.id, pool.id):
            got = finder.on_update(state, moved, 1)
            assert sorted(got, key=lambda o: -o.net_profit) == got  # (the better first)
            assert sorted(got, key=lambda o: o.legs[0].venue_id) == sorted(want, key=lambda o: o.legs[0].venue_id)
        seen["an opportunity" if want else "none"] += 1

    check()
    assert seen["an opportunity"] >= 5 and seen["none"] >= 5, seen
