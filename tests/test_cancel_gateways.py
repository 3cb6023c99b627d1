"""Cancels through the gateways other than the sim's: the paper gateway (a cancel of nothing resting
fails saying so; resting paper orders are canceled in tests/test_paper_resting.py) and ``live/book_gateway.py`` in execute mode against local venues: Hyperliquid
``cancelByCloid`` signed by the key (the signature recovers to it) with the cloid the order was placed
with, Binance ``DELETE /api/v3/order`` through the real ccxt client by ``origClientOrderId``, where
the venue's totals become the fill not yet reported and the remaining released."""
from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from aiohttp import web

from tapedeck.adapters import hyperliquid_signing as hs
from tapedeck.adapters.paper_gateway import PaperGateway
from tapedeck.domain import events as ev
from tapedeck.domain.state import MarketState
from tapedeck.live.base import Clock
from tapedeck.live.book_gateway import BookGateway
from tests.test_live_feeds_gateway import _EXCHANGE_INFO, BN_KEY, BN_SECRET, HL_KEY, _binance, _Exchange, \
    _intent, _secrets_absent

NOW = 1_737_918_844_000_000_000


def _cancel(seq: int, venue: str, target: str, strategy: str = "s") -> ev.OrderIntended:
    return ev.OrderIntended(ts=10**18 + seq, seq=seq, strategy=strategy, venue=venue, instrument="", side="cancel",
                            amount=0, notional=0, target=target, client_id=f"x{seq}")


def test_a_cancel_of_nothing_resting_on_paper_fails_saying_so() -> None:
    got: list[ev.Event] = []
    PaperGateway(MarketState(), report=got.append).submit(_cancel(5, "binance", "c1"))
    assert got == [ev.OrderFailed(ts=10**18 + 5, source="paper", cause=5, intent=5, venue="binance",
                                  reason="cancel: no resting order c1")]
    got.clear()
    BookGateway(MarketState(), report=got.append).submit(_cancel(6, "hyperliquid", "c2"))  # paper by default
    assert [(type(e), e.reason) for e in got] == [(ev.OrderFailed, "cancel: no resting order c2")]  # type: ignore[attr-defined]


def _hl_answer(body: dict[str, Any]) -> dict[str, Any]:
    action = body["action"]
    if action["type"] == "order":
        return {"status": "ok", "response": {"type": "order", "data": {"statuses": [{"resting": {"oid": 78}}]}}}
    if action["cancels"][0]["cloid"] == hs.cloid_for("c1"):
        return {"status": "ok", "response": {"type": "cancel", "data": {"statuses": ["success"]}}}
    return {"status": "ok", "response": {"type": "cancel", "data": {"statuses": [
        {"error": "Order was never placed, already canceled, or filled."}]}}}


def test_hyperliquid_cancels_by_cloid_signed_and_the_answer_decides() -> None:
    async def go() -> tuple[_Exchange, list[ev.Event]]:
        got: list[ev.Event] = []
        async with _Exchange(_hl_answer) as x:
            config = {"book_gateway": {"hyperliquid": {"exchange_url": x.url, "mainnet": False,
                                                       "assets": {"BTC": {"asset": 0, "sz_decimals": 5}}}}}
            gw = BookGateway.from_config(MarketState(), config, execute=True, clock=Clock(lambda: NOW),
                                         env={"HYPERLIQUID_PRIVATE_KEY": HL_KEY})
            gw.bind(got.append)
            for seq in (1, 2):  # two resting GTC sells
                gw.submit(_intent(seq, "hyperliquid", "BTC", "sell", 100_000, limit_price=1_100_000,
                                  price_decimals=1, tif="gtc"))
            await gw.wait()
            gw.submit(_cancel(7, "hyperliquid", "c1", strategy="other"))  # not its order: at once, nothing sent
            gw.submit(_cancel(3, "hyperliquid", "c1"))  # the venue takes it off the book
            gw.submit(_cancel(4, "hyperliquid", "c2"))  # the venue says it is no longer there
            gw.submit(_cancel(5, "hyperliquid", "c9"))  # never placed by this gateway: at once
            await gw.wait()
            gw.submit(_cancel(6, "hyperliquid", "c1"))  # canceled already: at once
            await gw.close()
        return x, got

    x, got = asyncio.run(go())
    cancels = [b for b in x.bodies if b["action"]["type"] == "cancelByCloid"]
    assert [b["action"]["cancels"] for b in cancels] == [[{"asset": 0, "cloid": hs.cloid_for("c1")}],
                                                        [{"asset": 0, "cloid": hs.cloid_for("c2")}]]
    assert x.signers == [hs.HyperliquidSigner(HL_KEY).address] * 4
    (done,) = [e for e in got if type(e) is ev.OrderCanceled]
    assert done.ts >= NOW and msgspec.structs.replace(done, ts=NOW) == ev.OrderCanceled(ts=NOW, source="hyperliquid-exchange", cause=3, intent=1, venue="hyperliquid",
                                    strategy="s", instrument="BTC", client_id="c1", cancel_id="x3",
                                    remaining=100_000, cancel_intent=3)
    failed = {e.intent: e.reason for e in got if type(e) is ev.OrderFailed}
    assert failed == {4: "cancel: no resting order c2: Order was never placed, already canceled, or filled.",
                      5: "cancel: no resting order c9", 6: "cancel: no resting order c1",
                      7: "cancel: no resting order c1"}
    _secrets_absent(got, HL_KEY)


def test_binance_cancels_through_ccxt_and_reports_what_filled_while_it_rested() -> None:
    seen: list[tuple[str, dict[str, str]]] = []

    async def handler(request: web.Request) -> web.Response:
        form = dict((await request.post()) if request.method == "POST" else {})
        form.update(request.query)
        seen.append((request.method, dict(form)))
        if request.path.endswith("/exchangeInfo"):
            return web.json_response(_EXCHANGE_INFO)
        if request.path.endswith("/order") and request.method == "POST":
            return web.json_response({
                "symbol": "ETHUSDT", "orderId": 40 + len(seen), "clientOrderId": form.get("newClientOrderId"),
                "transactTime": 1723161254024, "price": "3000.00", "origQty": "1.00000000", "executedQty": "0",
                "cummulativeQuoteQty": "0", "status": "NEW", "timeInForce": "GTC", "type": "LIMIT", "side": "SELL",
                "fills": []})
        if request.path.endswith("/order") and request.method == "DELETE":
            if form.get("origClientOrderId") != "c1":
                return web.json_response({"code": -2011, "msg": "Unknown order sent."}, status=400)
            return web.json_response({
                "symbol": "ETHUSDT", "origClientOrderId": "c1", "orderId": 42, "clientOrderId": "x", "price": "3000.00",
                "origQty": "1.00000000", "executedQty": "0.20000000", "cummulativeQuoteQty": "600.00000000",
                "status": "CANCELED", "timeInForce": "GTC", "type": "LIMIT", "side": "SELL"})
        return web.json_response({"code": -1, "msg": "unexpected"}, status=400)

    async def go() -> list[ev.Event]:
        got: list[ev.Event] = []
        async with _binance(handler, got) as gw:
            for seq in (1, 2):
                gw.submit(_intent(seq, "binance", "ETHUSDT", "sell", 10**8, limit_price=300_000, price_decimals=2,
                                  tif="gtc"))
            await gw.wait()
            gw.submit(_cancel(3, "binance", "c1"))
            gw.submit(_cancel(4, "binance", "c2"))
            await gw.close()
        return got

    got = asyncio.run(go())
    deletes = [f for m, f in seen if m == "DELETE"]
    assert sorted(f["origClientOrderId"] for f in deletes) == ["c1", "c2"]
    assert {f.get("orderId") for f in deletes} <= {"42", "43", "44", None}  # the venue's id once acknowledged
    by_intent = [(type(e).__name__, e.intent) for e in got]
    assert by_intent.count(("OrderAcknowledged", 1)) == 1 and by_intent.count(("OrderAcknowledged", 2)) == 1
    fill = next(e for e in got if type(e) is ev.OrderFilled)
    assert (fill.intent, fill.amount, fill.notional, fill.final) == (1, 20_000_000, 600_000_000, False)
    (done,) = [e for e in got if type(e) is ev.OrderCanceled]
    assert (done.intent, done.cancel_intent, done.client_id, done.cancel_id, done.remaining) == (1, 3, "c1", "x3",
                                                                                               80_000_000)
    assert got.index(fill) < got.index(done)
    (failed,) = [e for e in got if type(e) is ev.OrderFailed]
    assert failed.intent == 4 and failed.reason.startswith("cancel: no resting order c2")
    _secrets_absent(got, BN_KEY, BN_SECRET)


def _resting_then_canceled(cancel_answer: dict[str, Any], placed_fills: list[dict[str, str]], **table: Any
                           ) -> list[ev.Event]:
    """A GTC sell of 1 ETH placed (its answer's ``fills``), then canceled with ``cancel_answer``."""
    async def handler(request: web.Request) -> web.Response:
        if request.path.endswith("/exchangeInfo"):
            return web.json_response(_EXCHANGE_INFO)
        if request.path.endswith("/order") and request.method == "POST":
            form = dict(await request.post())
            executed = sum(float(f["qty"]) for f in placed_fills)
            return web.json_response({
                "symbol": "ETHUSDT", "orderId": 42, "clientOrderId": form.get("newClientOrderId"),
                "transactTime": 1723161254024, "price": "3000.00", "origQty": "1.00000000",
                "executedQty": f"{executed:.8f}", "cummulativeQuoteQty": f"{executed * 3000:.8f}",
                "status": "PARTIALLY_FILLED" if executed else "NEW", "timeInForce": "GTC", "type": "LIMIT",
                "side": "SELL", "fills": placed_fills})
        if request.path.endswith("/order") and request.method == "DELETE":
            return web.json_response({"symbol": "ETHUSDT", "origClientOrderId": "c1", "orderId": 42, "clientOrderId": "x",
                                      "price": "3000.00", "origQty": "1.00000000", "status": "CANCELED",
                                      "timeInForce": "GTC", "type": "LIMIT", "side": "SELL", **cancel_answer})
        return web.json_response({"code": -1, "msg": "unexpected"}, status=400)

    async def go() -> list[ev.Event]:
        got: list[ev.Event] = []
        async with _binance(handler, got, **table) as gw:
            gw.submit(_intent(1, "binance", "ETHUSDT", "sell", 10**8, limit_price=300_000, price_decimals=2, tif="gtc"))
            await gw.wait()
            gw.submit(_cancel(3, "binance", "c1"))
            await gw.close()
        return got

    return asyncio.run(go())


def test_a_fill_reported_by_binances_cancel_answer_pays_the_maker_fee() -> None:
    """Binance's cancel answer has totals and no fills: what filled while the order rested is charged
    the configured maker rate on its notional, rounded up, in the quote asset (never 0)."""
    got = _resting_then_canceled({"executedQty": "0.20000000", "cummulativeQuoteQty": "600.00000700"}, [],
                                 maker_fee_bps=2, taker_fee_bps=7)
    (fill,) = [e for e in got if type(e) is ev.OrderFilled]
    assert (fill.amount, fill.notional, fill.final) == (20_000_000, 600_000_007, False)
    assert (fill.fee, fill.fee_asset) == (120_001, "USDT")  # 600.000007 x 0.02 % = 0.12000014, rounded up
    got = _resting_then_canceled({"executedQty": "0.20000000", "cummulativeQuoteQty": "600.00000000"}, [])
    (fill,) = [e for e in got if type(e) is ev.OrderFilled]
    assert (fill.fee, fill.fee_asset) == (600_000, "USDT")  # the default maker rate, 10 bps


def test_a_cancel_answer_that_reports_commission_is_believed_less_what_was_already_reported() -> None:
    placed = [{"price": "3000.00", "qty": "0.10000000", "commission": "0.00030000", "commissionAsset": "BNB"}]
    answer = {"executedQty": "0.30000000", "cummulativeQuoteQty": "900.00000000",
              "fills": [*placed, {"price": "3000.00", "qty": "0.20000000", "commission": "0.00015000",
                                  "commissionAsset": "BNB"}]}
    got = _resting_then_canceled(answer, placed, maker_fee_bps=2)
    first, later = [e for e in got if type(e) is ev.OrderFilled]
    assert (first.amount, first.fee, first.fee_asset, first.final) == (10_000_000, 30_000, "BNB", False)  # placed
    assert (later.amount, later.notional) == (20_000_000, 600_000_000)
    assert (later.fee, later.fee_asset) == (15_000, "BNB")  # the venue's words (8 places), not the rate
    placed = [{"price": "3000.00", "qty": "0.10000000", "commission": "0.30000000", "commissionAsset": "USDT"}]
    answer = {"executedQty": "0.30000000", "cummulativeQuoteQty": "900.00000000",
              "fills": [*placed, {"price": "3000.00", "qty": "0.20000000", "commission": "0.12000000",
                                  "commissionAsset": "USDT"}]}
    got = _resting_then_canceled(answer, placed, maker_fee_bps=2)
    later = [e for e in got if type(e) is ev.OrderFilled][-1]
    assert (later.fee, later.fee_asset) == (120_000, "USDT")  # 0.42 in all, 0.30 of it already reported
