"""Orders on the mock perp as the strategy sends them: limit price, time in force and reduce-only
through ``BookOrders`` into the venue (an IOC limit fills only at or better than its limit;
reduce-only is trimmed to the position or rejected with Hyperliquid's text, never flipping it), and
the venue's funding (Hyperliquid's rule) paid on the position."""
from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal as D
from typing import Any

from tapedeck.domain import events as ev
from tapedeck.sim.gateway import BookOrders
from tapedeck.sim.kernel import CTX, NS
from tapedeck.sim.venues.cex import BUY, EXPIRED, FILLED, REJECTED, SELL, MockCex, Order
from tapedeck.sim.venues.perp import HOURLY_CAP, REDUCE_ONLY_INCREASES, FundingPayment, MockPerp, _impact
from tests.test_perp_venue import Rig

# The rig's book around 3000.00: asks 3000.30, 3000.60, 3000.90 x 2; bids 2999.70, 2999.40, 2999.10 x 2.


def _intent(seq: int, side: str, amount: int, **kw: Any) -> ev.OrderIntended:
    return ev.OrderIntended(seq=seq, ts=0, strategy="s", venue="perp", instrument="ETH-PERP", side=side,
                            amount=amount, notional=1, **kw)


def _gateway(rig: Rig) -> tuple[BookOrders, list[ev.Event]]:
    got: list[ev.Event] = []
    g = BookOrders(rig.venue)
    g.bind(got.append)
    return g, got


def test_an_ioc_limit_fills_only_at_or_better_than_its_limit() -> None:
    rig = Rig()
    rig.tick("3000.00")
    g, got = _gateway(rig)
    g.submit(_intent(1, BUY, 50_000, limit_price=300_060, price_decimals=2, tif="ioc"))  # 5 ETH, up to 3000.60
    g.submit(_intent(2, SELL, 10_000, limit_price=300_000, price_decimals=2))  # "" = IOC: no bid at 3000.00
    rig.run()
    fills = [e for e in got if type(e) is ev.OrderFilled]
    assert [(f.intent, f.amount, f.notional, f.final) for f in fills] == [(1, 40_000, 12_001_800_000, True)]
    (failed,) = [e for e in got if type(e) is ev.OrderFailed]
    assert failed.intent == 2 and failed.reason == f"{EXPIRED}: limit price not reached"
    g.submit(_intent(3, BUY, 10_000, limit_price=300_000, price_decimals=2, tif="alo"))
    assert got[-1].reason.startswith("perp takes time in force ioc or gtc")  # type: ignore[attr-defined]


def test_reduce_only_is_trimmed_to_the_position_and_never_flips_it() -> None:
    rig = Rig()
    rig.tick("3000.00")
    rig.venue.submit(Order("long", BUY, D(1)))
    rig.at(1, rig.venue.submit, Order("close", SELL, D(3), reduce_only=True))
    rig.at(2, rig.venue.submit, Order("again", SELL, D(1), reduce_only=True))  # flat now: would open a short
    reports = {r.client_id: r for r in rig.run()}
    assert (reports["close"].status, reports["close"].qty, reports["close"].filled_qty) == (FILLED, D(1), D(1))
    assert rig.venue.position.size == 0
    assert (reports["again"].status, reports["again"].reason) == (REJECTED, REDUCE_ONLY_INCREASES)


def test_reduce_only_on_the_side_that_grows_the_position_is_rejected_and_through_the_gateway() -> None:
    rig = Rig()
    rig.tick("3000.00")
    g, got = _gateway(rig)
    g.submit(_intent(1, SELL, 20_000))  # short 2
    rig.run()
    g.submit(_intent(2, SELL, 10_000, reduce_only=True))  # would grow the short
    g.submit(_intent(3, BUY, 30_000, reduce_only=True, limit_price=300_090, price_decimals=2))  # trimmed to 2
    rig.run()
    assert [e.reason for e in got if type(e) is ev.OrderFailed] == [f"{REJECTED}: {REDUCE_ONLY_INCREASES}"]
    assert [(f.intent, f.amount) for f in got if type(f) is ev.OrderFilled] == [(1, 20_000), (3, 20_000)]
    assert rig.venue.position.size == 0


def test_a_spot_book_refuses_reduce_only() -> None:
    rig = Rig(venue_type=MockCex, oracle=None)
    rig.tick("3000.00")
    rig.venue.submit(Order("r", BUY, D(1), reduce_only=True))
    (r,) = rig.run()
    assert r.status == REJECTED and "not a perp venue" in r.reason


# ----------------------------------------------------------------------------- funding


def _funded(interval: float, book: str, oracle: str, seconds: int) -> Rig:
    """A long 1 ETH on a book centred at ``book`` (no maker lag: the makers follow the oracle at once,
    so the oracle is set equal and then moved after the makers have priced)."""
    rig = Rig(maker_lag=1000.0, funding_interval=interval)
    rig.at(0, rig.tick, book)
    rig.at(0, rig.round, oracle)
    rig.at(0.1, rig.venue.submit, Order("long", BUY, D(1)))
    for s in range(1, seconds):
        rig.at(s, rig.tick, book)
    return rig


def test_funding_is_hyperliquids_premium_rule_paid_on_the_position() -> None:
    rig = _funded(20.0, "3000.00", "2990.00", 26)  # the book 10 USD above the oracle: longs pay
    rig.run()
    (pay,) = rig.bus.of(FundingPayment)
    venue: MockPerp = rig.venue
    impact_bid, impact_ask = venue.impact_prices()  # 20,000 USDC is more than the rig's 3 levels of 2 ETH
    assert (impact_bid, impact_ask) == (CTX.divide(D("17996.40"), D(6)), CTX.divide(D("18003.60"), D(6)))
    premium = CTX.divide(impact_bid - D("2990.00"), D("2990.00"))
    f8 = premium + max(min(D("0.0001") - premium, D("0.0005")), D("-0.0005"))  # clamped: premium - 0.0005
    rate = CTX.multiply(CTX.divide(f8, D(8)), CTX.divide(D(20), D(3600))).quantize(D("1e-10"), ROUND_HALF_EVEN)
    assert (pay.rate, pay.size, pay.oracle, pay.venue_ts) == (rate, D(1), D("2990.00"), 20 * NS)  # 3 samples, alike
    assert pay.amount == CTX.minus(CTX.multiply(D("2990.00"), rate)).quantize(D("0.000001"), ROUND_FLOOR) < 0
    assert venue.position.funding == pay.amount
    assert venue.funding_rate == rate  # the next interval's running rate (samples at 20 and 25 s)


def test_the_impact_price_walks_into_a_level_for_the_rest_of_the_notional() -> None:
    bids = ((D(100), D(150)), (D(99), D(100)))  # 15,000 then 9,900 USDC
    assert _impact(bids) == CTX.divide(D(20_000), CTX.add(D(150), CTX.divide(D(5_000), D(99))))


def test_no_funding_when_flat_and_the_rate_is_capped() -> None:
    rig = Rig(maker_lag=1000.0, funding_interval=10.0)
    rig.at(0, rig.tick, "3000.00")
    rig.at(0, rig.round, "1000.00")  # an absurd premium
    for s in range(1, 16):
        rig.at(s, rig.tick, "3000.00")
    rig.run()
    assert rig.bus.of(FundingPayment) == []  # nobody holds a position
    assert rig.venue.rate([D(5)]) == CTX.multiply(HOURLY_CAP, CTX.divide(D(10), D(3600))).quantize(D("1e-10"))
    assert rig.venue.rate([]) == 0
