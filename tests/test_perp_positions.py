"""Perp positions from fills: average entry, realised and unrealised PnL, fees and funding in
integers; the account stream's snapshot rule and no fill counted twice."""
from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import event, given

from tapedeck.domain import events as ev
from tapedeck.domain.perp_positions import PerpPosition, PerpPositions

V, I = "hyperliquid", "ETH"


def test_open_add_reduce_and_flip_with_exact_pnl() -> None:
    p = PerpPosition(V, I, size_decimals=4)
    p.fill("buy", 10_000, 3_000_000_000, 1_350_000, ts=1)  # 1 ETH at 3000
    p.fill("buy", 10_000, 3_100_000_000, 1_395_000, ts=2)  # 1 ETH at 3100
    assert (p.size, p.cost, p.entry_price(1), p.opened_ts) == (20_000, 6_100_000_000, 30_500, 1)
    assert p.unrealized(32_000, 1) == 6_400_000_000 - 6_100_000_000
    p.fill("sell", 5_000, 1_600_000_000, 0, ts=3)  # half an ETH at 3200: realises 0.5 x (3200 - 3050)
    assert (p.size, p.realized) == (15_000, 75_000_000) and p.entry_price(1) == 30_500
    p.fill("sell", 25_000, 7_500_000_000, 0, ts=4)  # closes 1.5 at 3000 and opens 1 short at 3000
    assert p.realized == 75_000_000 + 4_500_000_000 - 4_575_000_000
    assert (p.size, p.cost, p.entry_price(1), p.opened_ts) == (-10_000, -3_000_000_000, 30_000, 4)
    assert p.unrealized(29_000, 1) == 100_000_000  # short gains as the price falls
    p.fill("buy", 10_000, 2_900_000_000, 0, ts=5)
    assert (p.size, p.cost, p.opened_ts, p.fees) == (0, 0, -1, 2_745_000)
    assert p.realized == 75_000_000 - 75_000_000 + 100_000_000
    assert p.net(1, 1) == p.realized - p.fees
    with pytest.raises(ValueError, match="side"):
        p.fill("liquidate", 1, 1, 0, ts=6)


@given(st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 50_000), st.integers(1, 500_000)),
                min_size=1, max_size=30), st.integers(1, 500_000))
def test_realised_minus_cost_is_what_was_sold_minus_what_was_bought(fills: list, mark: int) -> None:
    """Exact bookkeeping: at every step ``realized - cost`` equals sales minus purchases, so a
    position closed to flat has realised exactly what it received less what it paid."""
    p = PerpPosition(V, I, size_decimals=4)
    flow = size = 0
    for side, qty, price in fills:
        notional = qty * price // 10  # price at 1 dp, size at 4 dp -> quote at 6 dp (rounded by the venue)
        through = size and (size > 0) != (side == "buy") and qty > abs(size)
        p.fill(side, qty, notional, 0, ts=0)
        size += qty if side == "buy" else -qty
        flow += notional if side == "sell" else -notional
        event("through zero" if through else "no flip")
        assert p.size == size and p.realized - p.cost == flow
        assert p.unrealized(mark, 1) + p.realized == flow + size * mark * 10  # marked at ``mark``
    if size:
        p.fill("sell" if size > 0 else "buy", abs(size), 0, 0, ts=1)  # closed for nothing
    assert p.cost == 0 and p.size == 0 and p.realized == flow


def _afill(tid: str, side: str, size: int, start: int, *, snapshot: bool = False, price: int = 30_000,
           fee: int = 1_350) -> ev.AccountFillReported:
    return ev.AccountFillReported(ts=1, venue=V, instrument=I, side=side, price=price, size=size, price_decimals=1,
                                  size_decimals=4, fee=fee, fee_decimals=3, fee_asset="USDC", start_position=start,
                                  trade_id=tid, snapshot=snapshot, client_id="c")


def test_the_snapshot_sets_the_position_and_books_nothing_then_fills_count_once() -> None:
    ps = PerpPositions()
    ps.on_account_fill(_afill("1", "buy", 10_000, 5_000, snapshot=True))  # history
    p = ps.on_account_fill(_afill("2", "sell", 2_000, 15_000, snapshot=True))
    assert p is not None and p.size == 13_000 and (p.realized, p.fees) == (0, 0)  # last start_position - its size
    assert ps.on_account_fill(_afill("2", "sell", 2_000, 15_000, snapshot=True)) is None  # a reconnect repeats it
    ps.on_account_fill(_afill("3", "sell", 3_000, 13_000, price=31_000))  # live: books PnL and the fee
    assert p.size == 10_000 and p.realized == 930_000_000 - 3_900_000_000 * 3_000 // 13_000  # 0.3 x (3100 - 3000)
    assert p.fees == 1_350_000  # 1.350 USDC at 3 dp -> 6 dp
    filled = ev.OrderFilled(ts=2, intent=7, venue=V, amount=3_000, notional=930_000_000, fee=1, fee_asset="USDC")
    assert ps.on_order_fill(V, I, "sell", filled, 4) is None and p.size == 10_000  # the stream counts it


def test_a_snapshot_that_disagrees_with_what_is_held_replaces_it() -> None:
    ps = PerpPositions()
    filled = ev.OrderFilled(ts=1, intent=1, venue=V, amount=10_000, notional=3_000_000_000, fee=0, fee_asset="USDC")
    p = ps.on_order_fill(V, I, "buy", filled, 4)
    assert p is not None and p.size == 10_000  # before the account stream: the gateway's fills
    ps.on_account_fill(_afill("9", "buy", 1_000, -4_000, snapshot=True, price=32_000))
    assert p.size == -3_000 and p.cost == -3_000 * 32_000 * 10  # valued at that fill's price


def test_funding_is_added_at_the_quote_precision() -> None:
    ps = PerpPositions()
    p = ps.on_funding(ev.FundingPaid(ts=1, venue=V, instrument=I, amount=-1234, amount_decimals=4, asset="USDC",
                                     size=10_000, size_decimals=4, rate=125, rate_decimals=7))
    assert p.funding == -123_400
    assert p.net(0, 1) == -123_400
