"""Per-market perp state from events: BBO from quotes or the top of a depth book (snapshots and
diffs), the context (mark, oracle, mid, funding), trades, ages and the core's freshness rule, and
the exact deviation of a book price from the oracle across precisions."""
from __future__ import annotations

from tapedeck.domain import events as ev
from tapedeck.domain.perp_book import TRADES_KEPT, PerpBook

V, I = "hyperliquid", "BTC"
S = 10**9


def quote(ts: int, bid: int, ask: int, *, size: int = 5, venue_ts: int = 0) -> ev.QuoteUpdated:
    return ev.QuoteUpdated(ts=ts, venue=V, instrument=I, bid=bid, bid_size=size, ask=ask, ask_size=size,
                           price_decimals=1, size_decimals=3, venue_ts=venue_ts)


def depth(ts: int, bids: list[tuple[int, int]], asks: list[tuple[int, int]], snapshot: bool) -> ev.BookDepthUpdated:
    return ev.BookDepthUpdated(ts=ts, venue=V, instrument=I, bids=tuple(bids), asks=tuple(asks), price_decimals=1,
                               size_decimals=3, snapshot=snapshot)


def ctx(ts: int, oracle: int, decimals: int = 1, venue_ts: int = 0) -> ev.MarkPriceUpdated:
    return ev.MarkPriceUpdated(ts=ts, venue=V, instrument=I, mark=oracle + 1, oracle=oracle, price_decimals=decimals,
                               mid=oracle - 1, funding=125, funding_decimals=7, venue_ts=venue_ts)


def test_a_quote_is_the_bbo_and_a_context_the_mark_oracle_mid_and_funding() -> None:
    b = PerpBook()
    m = b.apply(quote(1 * S, 999_990, 1_000_010))
    assert m is not None and (m.bid, m.ask, m.bid_size, m.price_decimals, m.size_decimals) == (999_990, 1_000_010, 5, 1, 3)
    b.apply(ctx(2 * S, 1_000_500))
    assert (m.mark, m.oracle, m.mid, m.funding, m.funding_decimals) == (1_000_501, 1_000_500, 1_000_499, 125, 7)
    assert b.apply(ev.KillSwitchSet(ts=3, engaged=True)) is None
    assert m.ages(5 * S) == {"bbo": 4 * S, "ctx": 3 * S, "trade": None}


def test_depth_snapshot_then_diffs_keep_the_best_levels() -> None:
    b = PerpBook()
    m = b.apply(depth(1, [(100, 2), (99, 3)], [(101, 1), (102, 4)], True))
    assert (m.bid, m.bid_size, m.ask, m.ask_size) == (100, 2, 101, 1)
    b.apply(depth(2, [(100, 0)], [(100_5, 0), (101, 0)], False))  # best bid and ask removed (one unknown level)
    assert (m.bid, m.bid_size, m.ask, m.ask_size) == (99, 3, 102, 4)
    b.apply(depth(3, [(99, 7), (100_0, 0)], [(101_5, 0)], False))
    assert (m.bid, m.bid_size) == (99, 7)
    b.apply(depth(4, [(98, 1)], [], True))  # a snapshot replaces the book: no asks left
    assert (m.bid, m.ask, m.ask_size) == (98, 0, 0) and m.asks == {}


def test_freshness_follows_the_cores_rule() -> None:
    b = PerpBook()
    m = b.apply(quote(10 * S, 100, 101, venue_ts=9 * S))
    assert m.bbo_fresh(11 * S, 2 * S, {}) and not m.bbo_fresh(11 * S, S // 2, {})  # event time
    assert not m.bbo_fresh(10 * S + S // 2, S // 2, {})  # the venue's own time is older
    assert not m.bbo_fresh(10 * S, 2 * S, {V: "disconnect"})  # marked stale
    assert not m.ctx_fresh(10 * S, 2 * S, {})  # never seen
    b.apply(quote(12 * S, -1, 101))  # an unusable quote: not traded on
    assert not m.has_bbo and (m.bid, m.ask) == (100, 101)


def test_deviation_is_exact_across_precisions_and_rounds_toward_zero() -> None:
    b = PerpBook()
    m = b.apply(quote(1, 29_928, 29_929))  # 2992.8 at 1 dp
    b.apply(ctx(1, 323_206_000_000, 8))  # 3232.06 at 8 dp
    num = (29_928 * 10**7 - 323_206_000_000) * 10**6  # both at 8 dp, exactly
    assert m.deviation_ppm(29_928) == -((-num) // 323_206_000_000) == -74_027  # toward zero
    assert m.deviation_ppm(32_320) == -18  # 3232.0 vs 3232.06
    b.apply(ctx(2, 31_000, 1))  # the context's precision changes: 3100.0
    assert m.deviation_ppm(31_310) == 10_000  # +1%


def test_the_last_trades_are_kept() -> None:
    b = PerpBook()
    for i in range(TRADES_KEPT + 3):
        m = b.apply(ev.TradePrinted(ts=i, venue=V, instrument=I, price=100 + i, size=1, price_decimals=1,
                                    size_decimals=3, side="buy", trade_id=str(i)))
    assert len(m.trades) == TRADES_KEPT and m.trades[-1] == (TRADES_KEPT + 2, 100 + TRADES_KEPT + 2, 1, "buy")
    assert m.ages(TRADES_KEPT + 10)["trade"] == 8
