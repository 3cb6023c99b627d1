"""The mock venue's tape and cancels at the venue itself (``sim/venues/cex.py``, on its own clock):
each fill prints one trade with the taker's side and the venue's trade id, in the same delivery as
the order's report; the seeded taker flow walks the makers' levels and prints; a cancel releases what
is left of a partly filled resting order and names the cancel; a cancel of nothing is rejected under
the cancel's own id."""
from __future__ import annotations

from decimal import Decimal as D

from tapedeck.sim.venues.cex import BUY, CANCELLED, GTC, LIMIT, PARTIALLY_FILLED, REJECTED, SELL, Order, \
    OrderReport, TapeTrade
from tests.test_sim_cex import Rig


def test_each_fill_prints_with_the_takers_side_in_the_reports_delivery() -> None:
    rig = Rig()
    rig.price("3000.00")
    rig.cex.submit(Order("ioc", BUY, D(3)))  # takes 2 at 3000.30 and 1 at 3000.60
    rig.cex.submit(Order("rest", BUY, D(1), LIMIT, D("2990.00"), GTC))
    rig.at(1, rig.price, "2985.00")  # the book trades through the resting buy: a seller took it
    reports = rig.run()
    tape = rig.bus.of(TapeTrade)
    assert [(t.price, t.qty, t.side, t.trade_id) for t in tape] == [
        (D("3000.30"), D(2), BUY, "cex-t1"), (D("3000.60"), D(1), BUY, "cex-t2"), (D("2990.00"), D(1), SELL, "cex-t3")]
    ioc, _, rest_fill = reports
    assert [t.ts for t in tape] == [ioc.ts, ioc.ts, rest_fill.ts]  # the same delivery as the report
    assert [t.venue_ts for t in tape] == [ioc.venue_ts, ioc.venue_ts, rest_fill.venue_ts]
    assert all((t.price_decimals, t.size_decimals, t.instrument) == (2, 4, "ETH-USDC") for t in tape)


def test_the_taker_flow_walks_the_makers_levels_and_prints() -> None:
    rig = Rig(taker_flow_per_minute=D(120), taker_flow_size=D("1.5"))
    for t in range(30):
        rig.at(t, rig.price, "3000.00")  # the mark: depth comes back each second (replenish 1 s)
    rig.env.run(until=30)
    tape = rig.bus.of(TapeTrade)
    assert rig.cex.flow_trades >= 30 and len(tape) >= rig.cex.flow_trades  # a big one prints per level walked
    assert {t.side for t in tape} == {BUY, SELL} and not rig.bus.of(OrderReport)  # nobody's orders but theirs
    assert all(t.qty > 0 and t.qty % D("0.0001") == 0 for t in tape)
    asks = {D("3000.30"), D("3000.60"), D("3000.90")}
    assert all((t.price in asks) == (t.side == BUY) for t in tape)  # buyers lift the asks, sellers hit the bids
    again = Rig(taker_flow_per_minute=D(120), taker_flow_size=D("1.5"))
    for t in range(30):
        again.at(t, again.price, "3000.00")
    again.env.run(until=30)
    assert again.bus.of(TapeTrade) == tape  # seeded


def test_a_cancel_releases_what_is_left_and_a_cancel_of_nothing_is_rejected_under_its_own_id() -> None:
    rig = Rig()
    rig.price("3000.00")
    rig.cex.submit(Order("part", BUY, D(5), LIMIT, D("3000.30"), GTC))  # 2 fill at once, 3 rest
    rig.at(1, rig.cex.cancel, "part", "k1")
    rig.at(2, rig.cex.cancel, "part", "k2")  # gone already
    placed, cancelled, nothing = rig.run()
    assert (placed.status, placed.filled_qty, placed.remaining) == (PARTIALLY_FILLED, D(2), D(3))
    assert (cancelled.status, cancelled.client_id, cancelled.cancel_id) == (CANCELLED, "part", "k1")
    assert (cancelled.released, cancelled.released_amount, cancelled.remaining) == (D(3), 3 * 10**18, 0)
    assert (nothing.status, nothing.client_id, nothing.reason) == (REJECTED, "k2", "cancel: unknown or finished order")
