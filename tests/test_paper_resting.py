"""Paper book fills honour the intent's ``limit_price`` and ``tif``: an IOC limit fills only up to its
limit against the book (the rest is canceled), a GTC/ALO that does not cross rests and fills when a
later book crosses it or is canceled by a cancel intent; every fill is computed from the book (its
crossing price or the order's own resting limit, the quote's depth), never echoed from the intent.
Through the loop, a run whose paper orders rested and filled later replays with ``--verify``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tapedeck.adapters.eventlog import EventLog, Manifest
from tapedeck.adapters.paper_gateway import PaperConfigError, PaperGateway
from tapedeck.domain import codec, events as ev
from tapedeck.domain.engine import Engine
from tapedeck.domain.risk import Intent, RiskGate
from tapedeck.domain.state import MarketState
from tapedeck.runtime.loop import Loop
from tapedeck.runtime.verify import verify
from tests.conftest import quote

E8 = 10**8  # 1 ETH at the gateway's base_decimals (8)
RISK = {"default_max_notional": 10**15, "default_max_outstanding": 10**16}


class Book:
    """A market state, a paper gateway on it, and what the gateway reported."""

    def __init__(self, **gw: Any) -> None:
        self.state = MarketState()
        self.got: list[ev.Event] = []
        self.gw = PaperGateway(self.state, taker_fee_bps=10, base_decimals=8, quote_decimals=6, report=self.got.append,
                               **gw)
        self.seq = 100

    def quote(self, bid: str, ask: str, size: str = "0.75") -> ev.QuoteUpdated:
        self.seq += 1
        q = ev.with_seq(quote(self.seq, "cex", bid, ask, size=size), self.seq)
        self.state.on_quote(q)
        self.gw.observe(q)
        return q

    def order(self, side: str, amount: int, limit: str = "", tif: str = "", cid: str = "") -> ev.OrderIntended:
        self.seq += 1
        i = ev.OrderIntended(seq=self.seq, ts=self.seq, strategy="s", venue="cex", instrument="ETH-USD", side=side,
                             amount=amount, notional=0, client_id=cid or f"c{self.seq}",
                             limit_price=int(float(limit) * 100) if limit else 0, price_decimals=2 if limit else 0,
                             tif=tif)
        self.gw.submit(i)
        return i

    def cancel(self, target: str) -> ev.OrderIntended:
        self.seq += 1
        c = ev.OrderIntended(seq=self.seq, ts=self.seq, strategy="s", venue="cex", instrument="ETH-USD",
                             side="cancel", amount=0, notional=0, target=target, client_id=f"{target}-cancel")
        self.gw.submit(c)
        return c

    def take(self) -> list[ev.Event]:
        out, self.got[:] = list(self.got), []
        return out


def usd(price: str, qty: int, up: bool) -> int:
    """``qty`` (8 dp) at ``price``, in USD 6 dp, rounded as the venue would."""
    n = int(float(price) * 100) * qty  # 2 + 8 dp
    return -(-n // 10**4) if up else n // 10**4


def test_an_ioc_limit_fills_only_what_crosses_at_the_books_price_and_cancels_the_rest() -> None:
    b = Book()
    b.quote("1999.50", "2000.25")
    b.order("buy", E8, "2000.00", "ioc")  # the ask is above the limit: nothing
    (failed,) = b.take()
    assert type(failed) is ev.OrderFailed
    assert "limit price not reached (best ask 2000.250000, limit 2000.00)" in failed.reason
    b.order("buy", E8, "2100.00", "ioc")  # crosses: the book's price, its depth; 0.25 of 1.0 is canceled
    ack, fill = b.take()
    assert type(ack) is ev.OrderAcknowledged and type(fill) is ev.OrderFilled
    assert (fill.amount, fill.notional, fill.final) == (75_000_000, usd("2000.25", 75_000_000, True), True)
    assert fill.fee == -(-fill.notional * 10 // 10_000)
    b.order("sell", E8, "1999.60")  # "" is IOC: the bid is below a sell's limit
    assert "limit price not reached (best bid 1999.500000" in b.take()[0].reason  # type: ignore[attr-defined]


def test_a_gtc_that_does_not_cross_rests_and_fills_at_its_limit_when_a_later_book_crosses() -> None:
    b = Book(maker_fee_bps=2)
    b.quote("1999.50", "2000.25")
    rest = b.order("buy", E8, "1999.00", "gtc")
    assert [type(e) for e in b.take()] == [ev.OrderAcknowledged]  # resting, nothing filled
    b.quote("1999.00", "1999.75")  # still above its limit
    assert b.take() == []
    q = b.quote("1998.00", "1998.50", size="0.30")  # crosses: 0.30 at the order's own limit, the maker fee
    (part,) = b.take()
    assert (part.intent, part.cause, part.ts, part.amount, part.final) == (rest.seq, q.seq, q.ts, 30_000_000, False)
    assert part.notional == usd("1999.00", 30_000_000, True) and part.fee == -(-part.notional * 2 // 10_000)
    b.gw.observe(q)  # the same quote again: its depth is used up
    assert b.take() == []
    b.quote("1998.00", "1998.90", size="5")  # the rest, 0.70
    (last,) = b.take()
    assert (last.amount, last.final, last.notional) == (70_000_000, True, usd("1999.00", 70_000_000, True))
    b.quote("1990.00", "1991.00", size="5")
    assert b.take() == []  # filled: nothing rests any more
    b.cancel(rest.client_id)
    assert "cancel: no resting order" in b.take()[0].reason  # type: ignore[attr-defined]


def test_a_gtc_that_crosses_on_arrival_takes_the_depth_and_rests_the_rest() -> None:
    b = Book()
    b.quote("2000.00", "2000.25", size="0.40")
    sell = b.order("sell", E8, "1999.00", "gtc")  # crosses the 2000.00 bid: 0.40 taken there
    ack, fill = b.take()
    assert (fill.amount, fill.final, fill.notional) == (40_000_000, False, usd("2000.00", 40_000_000, False))
    b.quote("2001.00", "2001.50", size="0.40")  # a new bid above its limit: 0.40 more, at 1999.00
    (more,) = b.take()
    assert (more.intent, more.amount, more.final, more.notional) == (sell.seq, 40_000_000, False,
                                                                      usd("1999.00", 40_000_000, False))
    canceled = b.cancel(sell.client_id)
    (c,) = b.take()
    assert type(c) is ev.OrderCanceled
    assert (c.intent, c.cancel_intent, c.remaining, c.client_id, c.cancel_id) == (
        sell.seq, canceled.seq, 20_000_000, sell.client_id, canceled.client_id)
    b.quote("2005.00", "2006.00", size="9")  # canceled: never fills again
    assert b.take() == []


def test_alo_refuses_to_cross_and_otherwise_rests() -> None:
    b = Book()
    b.quote("1999.50", "2000.25")
    b.order("buy", E8, "2000.25", "alo")
    (refused,) = b.take()
    assert type(refused) is ev.OrderFailed and "Post only order would have immediately matched" in refused.reason
    b.order("buy", E8, "2000.00", "alo")
    assert [type(e) for e in b.take()] == [ev.OrderAcknowledged]
    b.quote("1998.00", "1999.00", size="2")
    (fill,) = b.take()
    assert (fill.amount, fill.final, fill.notional) == (E8, True, usd("2000.00", E8, True))


def test_orders_resting_on_one_book_fill_in_time_order_sharing_its_depth() -> None:
    b = Book()
    b.quote("1999.50", "2000.25")
    first = b.order("buy", E8, "1999.00", "gtc")
    second = b.order("buy", E8, "1999.20", "gtc")  # a better price, but later
    b.take()
    b.quote("1998.00", "1998.50", size="1.5")
    a, c = b.take()
    assert [(f.intent, f.amount, f.final) for f in (a, c)] == [(first.seq, E8, True), (second.seq, E8 // 2, False)]


def test_a_market_or_unknown_tif_resting_order_is_refused() -> None:
    b = Book()
    b.quote("1999.50", "2000.25")
    b.order("buy", E8, tif="gtc")
    assert "needs a limit price" in b.take()[0].reason  # type: ignore[attr-defined]
    b.order("buy", E8, "1999.00", tif="fok")
    assert "time in force 'fok' unknown" in b.take()[0].reason  # type: ignore[attr-defined]


class RestThenCancel:
    """Bids 1 ETH GTC under the ask on its first quote; cancels what is left on a quote whose bid is 1."""

    name = "rester"
    handles = (ev.QuoteUpdated,)

    def __init__(self) -> None:
        self.sent = False

    def on_event(self, e: Any, state: Any) -> Any:
        if not self.sent:
            self.sent = True
            return [Intent(self.name, "cex", "ETH-USD", "buy", E8, 2_000 * 10**6, client_id="bid",
                           limit_price=199_900, price_decimals=2, tif="gtc")]
        if e.bid == 10**6:
            return [Intent(self.name, "cex", "ETH-USD", "cancel", 0, 0, target="bid", client_id="bid-cancel")]
        return []

    def on_order(self, e: Any, order: Any, state: Any) -> Any:
        return []


def test_through_the_loop_a_resting_paper_order_fills_later_and_the_run_verifies(tmp_path: Path) -> None:
    tape = [quote(10**18 + k, "cex", bid, ask, size=size) for k, (bid, ask, size) in enumerate([
        ("1999.50", "2000.25", "1"), ("1998.00", "1998.80", "0.25"), ("1998.00", "1998.90", "0.25"),
        ("1.00", "2000.00", "1"), ("1990.00", "1991.00", "5")])]
    path = tmp_path / "rest.db"
    engine = Engine([RestThenCancel()], RiskGate.from_config(RISK))
    log = EventLog.create(path, Manifest(run_id="", mode="paper", seed=0, sources=["test"], config={}))
    Loop(engine, log, PaperGateway(engine.state, taker_fee_bps=10, base_decimals=8, quote_decimals=6)).run(tape)
    log.close(ended="clean")
    with EventLog.open(path) as again:
        events = list(again.events())
        result = verify(again, Engine([RestThenCancel()], RiskGate.from_config(RISK)))
    assert result.ok, result.divergence and result.divergence.describe()
    kinds = [(type(e).__name__, getattr(e, "amount", None)) for e in events if e.KIND == ev.EXECUTION]
    # acknowledged resting; 0.25 at 1999.00 on each of the next two quotes; canceled with 0.50 left
    assert kinds == [("OrderAcknowledged", None), ("OrderFilled", 25_000_000), ("OrderFilled", 25_000_000),
                     ("OrderCanceled", None)]
    fills = [e for e in events if type(e) is ev.OrderFilled]
    assert [f.cause for f in fills] == [e.seq for e in events if type(e) is ev.QuoteUpdated][1:3]
    (c,) = [e for e in events if type(e) is ev.OrderCanceled]
    assert c.remaining == E8 // 2
    assert not engine.risk.open_intents and not engine.state.in_flight("rester")  # both ended, notional freed


def test_maker_fee_bps_is_a_known_paper_key_defaulting_to_the_taker_fee() -> None:
    gw = PaperGateway.from_config(MarketState(), {"paper": {"taker_fee_bps": 4, "maker_fee_bps": 1}})
    assert (gw.taker_fee_bps, gw.maker_fee_bps) == (4, 1)
    assert PaperGateway.from_config(MarketState(), {"paper": {"taker_fee_bps": 4}}).maker_fee_bps == 4
    with pytest.raises(PaperConfigError, match="known: base_decimals, maker_fee_bps, quote_decimals, taker_fee_bps"):
        PaperGateway.from_config(MarketState(), {"paper": {"maker_fee": 1}})
    with pytest.raises(PaperConfigError, match="maker_fee_bps must be in"):
        PaperGateway.from_config(MarketState(), {"paper": {"maker_fee_bps": 10_000}})


@pytest.mark.parametrize("gateways", ["one book gateway", "two gateways"])
def test_live_paper_routes_every_input_to_the_resting_orders(tmp_path: Path, gateways: str) -> None:
    """``tapedeck live`` on paper: the loop's gateway is a ``VenueRouter`` over ``BookGateway``s; a
    GTC resting on the paper book fills on later quotes as it does through a bare ``PaperGateway``."""
    from tapedeck.live.base import Clock
    from tapedeck.live.book_gateway import BookGateway
    from tapedeck.live.runner import VenueRouter

    tape = [quote(10**18 + k, "cex", bid, ask, size=size) for k, (bid, ask, size) in enumerate([
        ("1999.50", "2000.25", "1"), ("1998.00", "1998.80", "0.25"), ("1998.00", "1998.90", "0.25"),
        ("1.00", "2000.00", "1"), ("1990.00", "1991.00", "5")])]

    def run(path: Path, live: bool) -> list[ev.Event]:
        engine = Engine([RestThenCancel()], RiskGate.from_config(RISK))
        paper = PaperGateway(engine.state, taker_fee_bps=10, base_decimals=8, quote_decimals=6)
        gateway: Any = paper
        if live:
            book = BookGateway(engine.state, paper=paper)
            other = BookGateway(engine.state) if gateways == "two gateways" else None
            by_venue = {"cex": book, **({"hyperliquid": other} if other else {})}
            gateway = VenueRouter(by_venue, {}, None, Clock(lambda: 1))
            assert callable(getattr(gateway, "observe", None))
        log = EventLog.create(path, Manifest(run_id="", mode="paper", seed=0, sources=["test"], config={}))
        Loop(engine, log, gateway).run(tape)
        log.close(ended="clean")
        with EventLog.open(path) as again:
            result = verify(again, Engine([RestThenCancel()], RiskGate.from_config(RISK)))
            assert result.ok, result.divergence and result.divergence.describe()
            return list(again.events())

    want = run(tmp_path / "bare.db", live=False)
    got = run(tmp_path / "live.db", live=True)
    assert [type(e).__name__ for e in got if type(e) is ev.OrderFilled] == ["OrderFilled", "OrderFilled"]
    assert [codec.encode(e) for e in got] == [codec.encode(e) for e in want]  # the same run, byte for byte


def test_a_router_over_execute_gateways_observes_nothing_on_paper() -> None:
    from tapedeck.live.base import Clock
    from tapedeck.live.book_gateway import BookGateway
    from tapedeck.live.runner import VenueRouter

    state = MarketState()
    gw = BookGateway(state, execute=True)
    seen: list[ev.Event] = []
    gw.paper.observe = seen.append  # type: ignore[method-assign]
    router = VenueRouter({"cex": gw}, {}, None, Clock(lambda: 1))
    router.observe(ev.with_seq(quote(1, "cex", "1", "2"), 1))
    assert seen == []  # with --execute the order rests on the venue, not on the paper book
    assert not hasattr(VenueRouter({}, {}, None, Clock(lambda: 1)), "observe")  # no gateway: the loop skips it
