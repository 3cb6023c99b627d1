"""live/book_gateway.py: paper fills on the live book equal the replay's paper math; executed
orders go to local venues (a Hyperliquid exchange endpoint that checks the signature recovers to
the signer; Binance's REST order API answered through the real ccxt client); no secret leaks."""
from __future__ import annotations

import asyncio
import contextlib
import json
from decimal import Decimal
from typing import Any, AsyncIterator

import msgspec
import pytest
from aiohttp import web

from tapedeck.adapters import binance_ws
from tapedeck.adapters import hyperliquid_signing as hs
from tapedeck.adapters.paper_gateway import PaperGateway
from tapedeck.domain import events as ev
from tapedeck.domain.state import MarketState
from tapedeck.live.base import Clock
from tapedeck.live.book_gateway import BookGateway, GatewayConfigError, hyperliquid_price
from tapedeck.live.playback import BINANCE_RECORDING, HYPERLIQUID_RECORDING, read_frames, serve_loopback
from tests.conftest import require_data

HL_KEY = "0x" + "5e" * 32  # a key planted to be searched for in everything written
BN_KEY, BN_SECRET = "planted-api-key-" + "k" * 40, "planted-secret-" + "s" * 40


def _intent(seq: int, venue: str, instrument: str, side: str, amount: int, **kw: Any) -> ev.OrderIntended:
    return ev.OrderIntended(ts=10**18 + seq, seq=seq, strategy="s", venue=venue, instrument=instrument, side=side,
                            amount=amount, notional=0, client_id=f"c{seq}", **kw)


def _live_state(recording: str, venue_parser: Any, n: int) -> tuple[MarketState, ev.QuoteUpdated]:
    """The state after the first ``n`` frames of a real recording, parsed as the live feed parses them."""
    state = MarketState()
    quote = None
    for i, f in enumerate(read_frames(require_data(recording))[:n]):
        for e in venue_parser(f.body, f.recv_ns if f.recv_ns > 0 else i + 1):
            if type(e) is ev.QuoteUpdated:
                state.on_quote(e)
                quote = e
    assert quote is not None
    return state, quote


def _secrets_absent(events: list[ev.Event], *texts: str) -> None:
    blob = b"".join(msgspec.json.encode(e) for e in events).decode()
    for t in texts:
        assert t not in blob and t.removeprefix("0x") not in blob


# ----------------------------------------------------------------------------- paper


def test_paper_fill_on_the_live_book_equals_the_paper_gateway_math() -> None:
    parser = binance_ws.FrameParser()
    state, q = _live_state(BINANCE_RECORDING, lambda b, t: parser.parse(b, t, "test"), 50)
    got: list[ev.Event] = []
    gw = BookGateway(state, paper=PaperGateway(state, taker_fee_bps=10, base_decimals=8, quote_decimals=6))
    gw.bind(got.append)
    want: list[ev.Event] = []
    ref = PaperGateway(state, taker_fee_bps=10, base_decimals=8, quote_decimals=6, report=want.append)
    half = 50_000_000  # 0.5 ETH
    more = q.bid_size + 10**8  # more than the bid's depth
    for i, (side, amount) in enumerate([("buy", half), ("sell", more), ("buy", 10**9 * 10**8)]):
        gw.submit(_intent(i + 1, "binance", "ETHUSDT", side, amount))
        ref.submit(_intent(i + 1, "binance", "ETHUSDT", side, amount))
    assert got == want
    fills = [e for e in got if type(e) is ev.OrderFilled]
    assert all(e.source.startswith("paper") for e in got)
    # by hand: 0.5 ETH at the live ask, notional rounded up (6 dp USDT), fee 10 bps rounded up
    ask = Decimal(q.ask).scaleb(-q.price_decimals)
    notional = -(-(half * q.ask) // 10**(8 + q.price_decimals - 6))
    assert fills[0].amount == half and fills[0].notional == notional == int((ask * Decimal("0.5")).scaleb(6))
    assert fills[0].fee == -(-notional * 10 // 10_000)
    assert fills[1].amount == q.bid_size  # only the depth there was
    assert len(fills) == 3 and fills[2].amount < 10**9 * 10**8


def test_paper_fill_on_a_hyperliquid_book_from_the_recording() -> None:
    from tapedeck.adapters import hyperliquid_ws

    state, q = _live_state(HYPERLIQUID_RECORDING, lambda b, t: hyperliquid_ws.parse_frame(b, t, "test").events, 5)
    got: list[ev.Event] = []
    gw = BookGateway(state, report=got.append)
    want: list[ev.Event] = []
    PaperGateway(state, report=want.append).submit(_intent(1, "hyperliquid", "BTC", "buy", 10**6))
    gw.submit(_intent(1, "hyperliquid", "BTC", "buy", 10**6))
    assert got == want and type(got[-1]) is ev.OrderFilled and got[-1].amount == 10**6


# ----------------------------------------------------------------------------- Hyperliquid


class _Exchange:
    """A local /exchange: recovers the signer of each posted order, answers as the venue does."""

    def __init__(self, answer: Any) -> None:
        self.answer, self.bodies, self.signers = answer, [], []
        self.runner: Any = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.bodies.append(body)
        sig = body["signature"]
        signer = hs.recover_l1_signer(body["action"], body["nonce"],
                                      hs.Signature(int(sig["r"], 16), int(sig["s"], 16), sig["v"]),
                                      mainnet=False, vault_address=body["vaultAddress"])
        self.signers.append(signer)
        return web.json_response(self.answer(body))

    async def __aenter__(self) -> _Exchange:
        app = web.Application()
        app.router.add_post("/exchange", self.handle)
        self.runner, port = await serve_loopback(app)
        self.url = f"http://127.0.0.1:{port}/exchange"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


def _ok(statuses: list[Any]) -> dict[str, Any]:
    return {"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}


def test_hyperliquid_orders_are_signed_by_the_key_and_fills_come_from_the_answer() -> None:
    from tapedeck.adapters import hyperliquid_ws

    state, q = _live_state(HYPERLIQUID_RECORDING, lambda b, t: hyperliquid_ws.parse_frame(b, t, "test").events, 5)
    answers = iter([_ok([{"filled": {"totalSz": "0.004", "avgPx": "105060.5", "oid": 77}}]),
                    _ok([{"resting": {"oid": 78}}]),
                    _ok([{"error": "Order could not immediately match against any resting orders."}])])

    async def go() -> tuple[_Exchange, list[ev.Event]]:
        got: list[ev.Event] = []
        async with _Exchange(lambda body: next(answers)) as x:
            config = {"book_gateway": {"hyperliquid": {"exchange_url": x.url, "mainnet": False,
                                                       "assets": {"BTC": {"asset": 0, "sz_decimals": 5}}}}}
            gw = BookGateway.from_config(state, config, execute=True, clock=Clock(lambda: 1_737_918_844_000_000_000),
                                         env={"HYPERLIQUID_PRIVATE_KEY": HL_KEY})
            gw.bind(got.append)
            gw.submit(_intent(1, "hyperliquid", "BTC", "buy", 500_000))  # 0.005 BTC at market
            gw.submit(_intent(2, "hyperliquid", "BTC", "sell", 100_000, limit_price=1_100_000, price_decimals=1,
                              tif="gtc"))
            gw.submit(_intent(3, "hyperliquid", "BTC", "sell", 100_000, tif="alo", limit_price=1_000_000,
                              price_decimals=1))
            gw.submit(_intent(4, "binance", "ETHUSDT", "buy", 1))  # no executor there: failed, not paper
            assert not got[:-1] and type(got[-1]) is ev.OrderFailed  # submit returned before any answer
            await gw.close()
        return x, got

    x, got = asyncio.run(go())
    address = hs.HyperliquidSigner(HL_KEY).address
    assert x.signers == [address] * 3
    nonces = [b["nonce"] for b in x.bodies]
    assert nonces == [1_737_918_844_000, 1_737_918_844_001, 1_737_918_844_002]  # ms, strictly increasing
    first = x.bodies[0]["action"]["orders"][0]
    ask = Decimal(q.ask).scaleb(-q.price_decimals)
    assert first["b"] is True and first["s"] == "0.005" and first["t"] == {"limit": {"tif": "Ioc"}}
    assert Decimal(first["p"]) == hyperliquid_price(ask * Decimal("1.005"), 5, up=True) > ask
    assert first["c"] == hs.cloid_for("c1")
    assert x.bodies[1]["action"]["orders"][0]["p"] == "110000" and x.bodies[1]["action"]["orders"][0]["t"] == {
        "limit": {"tif": "Gtc"}}
    by = {(type(e).__name__, e.intent) for e in got}
    assert by == {("OrderFailed", 4), ("OrderAcknowledged", 1), ("OrderFilled", 1), ("OrderAcknowledged", 2),
                  ("OrderFailed", 3)}
    fill = next(e for e in got if type(e) is ev.OrderFilled)
    # what the venue filled (0.004 of the 0.005 asked), at its average price, never the intent's numbers
    assert (fill.amount, fill.notional, fill.final) == (400_000, 420_242_000, True)
    assert next(e for e in got if type(e) is ev.OrderAcknowledged and e.intent == 1).order_id == "77"
    assert "immediately match" in next(e for e in got if type(e) is ev.OrderFailed and e.intent == 3).reason
    _secrets_absent(got, HL_KEY)


def test_hyperliquid_prices_follow_the_tick_rule() -> None:
    assert hyperliquid_price(Decimal("105587.6543"), 5, up=True) == Decimal("105588")  # integers always allowed
    assert hyperliquid_price(Decimal("1234.567"), 2, up=False) == Decimal("1234.5")  # 5 significant figures
    assert hyperliquid_price(Decimal("0.0123456"), 0, up=True) == Decimal("0.012346")  # 6 - szDecimals places
    hs.check_tick(hyperliquid_price(Decimal("3.14159265"), 1, up=False), Decimal("1"), 1)


def test_execute_refuses_to_start_without_the_key_and_never_echoes_one() -> None:
    config = {"book_gateway": {"hyperliquid": {"assets": {"BTC": {"asset": 0, "sz_decimals": 5}}}}}
    with pytest.raises(GatewayConfigError, match="HYPERLIQUID_PRIVATE_KEY is not set"):
        BookGateway.from_config(MarketState(), config, execute=True, env={})
    with pytest.raises(GatewayConfigError) as e:
        BookGateway.from_config(MarketState(), config, execute=True, env={"HYPERLIQUID_PRIVATE_KEY": "0xnot-a-key"})
    assert "not-a-key" not in str(e.value) and "not-a-key" not in repr(e.value.__context__)
    assert e.value.__cause__ is None and e.value.__suppress_context__
    gw = BookGateway.from_config(MarketState(), config, env={})  # paper: no secret asked for
    assert not gw.execute and not gw.executors


# ----------------------------------------------------------------------------- Binance through ccxt

_EXCHANGE_INFO = {"timezone": "UTC", "serverTime": 1, "rateLimits": [], "symbols": [{
    "symbol": "ETHUSDT", "status": "TRADING", "baseAsset": "ETH", "baseAssetPrecision": 8, "quoteAsset": "USDT",
    "quotePrecision": 8, "quoteAssetPrecision": 8, "orderTypes": ["LIMIT", "MARKET", "LIMIT_MAKER"],
    "isSpotTradingAllowed": True, "isMarginTradingAllowed": False, "permissions": ["SPOT"],
    "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
                {"filterType": "LOT_SIZE", "minQty": "0.0001", "maxQty": "9000", "stepSize": "0.0001"}]}]}


@contextlib.asynccontextmanager
async def _binance(handler: Any, got: list[ev.Event], **table: Any) -> AsyncIterator[BookGateway]:
    """A local Binance REST venue answering by ``handler`` and an executing gateway bound to ``got``,
    its orders through the real ccxt client (``table``: more ``[book_gateway]`` keys)."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner, port = await serve_loopback(app)
    config = {"book_gateway": {**table, "binance": {"symbols": {"ETHUSDT": "ETH/USDT"},
                                                    "api_url": f"http://127.0.0.1:{port}/api/v3"}}}
    gw = BookGateway.from_config(MarketState(), config, execute=True,
                                 env={"BINANCE_API_KEY": BN_KEY, "BINANCE_API_SECRET": BN_SECRET})
    gw.bind(got.append)
    try:
        yield gw
    finally:
        await runner.cleanup()


def test_binance_orders_go_through_ccxt_and_fills_come_from_the_venue_answer() -> None:
    seen: list[tuple[str, str, dict[str, str], dict[str, str]]] = []

    async def handler(request: web.Request) -> web.Response:
        form = dict((await request.post()) if request.method == "POST" else {})
        form.update(request.query)
        seen.append((request.method, request.path, dict(form), dict(request.headers)))
        if request.path.endswith("/exchangeInfo"):
            return web.json_response(_EXCHANGE_INFO)
        if request.path.endswith("/order") and form.get("type") == "MARKET":
            # Binance's FULL answer (binance-spot-api-docs, rest-api.md "New order"): a partial fill
            return web.json_response({
                "symbol": "ETHUSDT", "orderId": 28, "clientOrderId": form.get("newClientOrderId"),
                "transactTime": 1723161254024, "price": "0.00000000", "origQty": "0.50000000",
                "executedQty": "0.30000000", "cummulativeQuoteQty": "805.14300000", "status": "EXPIRED",
                "timeInForce": "GTC", "type": "MARKET", "side": "BUY", "fills": [
                    {"price": "2683.81000000", "qty": "0.30000000", "commission": "0.80514300",
                     "commissionAsset": "USDT", "tradeId": 56}]})
        return web.json_response({"code": -2010, "msg": "Account has insufficient balance for requested action."},
                                 status=400)

    async def go() -> list[ev.Event]:
        got: list[ev.Event] = []
        async with _binance(handler, got) as gw:
            gw.submit(_intent(1, "binance", "ETHUSDT", "buy", 50_000_000))
            await gw.wait()
            gw.submit(_intent(2, "binance", "ETHUSDT", "sell", 10**8, limit_price=300_000, price_decimals=2))
            await gw.close()
        return got

    got = asyncio.run(go())
    orders = [s for s in seen if s[1].endswith("/order")]
    assert len(orders) == 2 and all(s[3].get("X-MBX-APIKEY") == BN_KEY for s in orders)  # the key goes to the venue
    assert orders[0][2]["quantity"] == "0.5" and orders[0][2]["side"] == "BUY" and orders[0][2]["newClientOrderId"] == "c1"
    assert orders[1][2]["type"] == "LIMIT" and orders[1][2]["price"] == "3000" and orders[1][2]["timeInForce"] == "IOC"
    assert [(type(e).__name__, e.intent) for e in got] == [("OrderAcknowledged", 1), ("OrderFilled", 1),
                                                           ("OrderFailed", 2)]
    fill = got[1]
    assert (fill.amount, fill.notional, fill.fee, fill.fee_asset) == (30_000_000, 805_143_000, 805_143, "USDT")
    assert "insufficient balance" in got[2].reason
    _secrets_absent(got, BN_KEY, BN_SECRET)


# ----------------------------------------------------------------------------- feed -> engine -> paper


def test_a_live_feed_through_the_engine_makes_paper_fills_on_the_book_it_saw_and_verifies(tmp_path: Any) -> None:
    from tapedeck.adapters.eventlog import EventLog, Manifest
    from tapedeck.runtime.strategy_loader import build_engine
    from tapedeck.live.base import Backoff
    from tapedeck.live.binance_source import BinanceSource
    from tapedeck.live.playback import BinancePlayback
    from tapedeck.runtime.loop import Loop
    from tapedeck.runtime.verify import verify

    frames = read_frames(require_data(BINANCE_RECORDING))[:400]
    config = {"risk": {"default_max_notional": 10**15, "default_max_outstanding": 10**16},
              "strategies": [{"kind": "tests.strategies_for_tests:BurstBuyer", "at_ns": 0, "n": 3,
                              "amount": 200_000_000}]}  # 3 x 2 ETH on the first quote: more than its depth

    async def go() -> None:
        log = EventLog.create(tmp_path / "live.db", Manifest(run_id="", mode="paper", config=config))
        engine = build_engine(config)
        gw = BookGateway.from_config(engine.state, config)
        loop = Loop(engine, log, gw)
        async with BinancePlayback(frames) as pb:
            src = BinanceSource("bn", pb.url, backoff=Backoff(0.01, 0.1, seed=1), after_batch=log.flush)
            stop = asyncio.Event()
            task = asyncio.create_task(src.run(loop.feed, stop))
            await pb.done.wait()
            while src.stats.frames < pb.sent + 1:
                await asyncio.sleep(0.005)
            stop.set()
            await task
        log.close(ended="clean")

    asyncio.run(asyncio.wait_for(go(), 60))
    with EventLog.open(tmp_path / "live.db") as log:
        got = list(log.events())
        check = verify(log, build_engine(config))
    assert check.divergence is None and check.problem is None and check.decisions >= 3
    intents = [e for e in got if type(e) is ev.OrderIntended]
    fills = [e for e in got if type(e) is ev.OrderFilled]
    assert len(intents) == 3 and all(f.source == "paper" for f in fills)
    trigger = next(e for e in got if type(e) is ev.QuoteUpdated)  # the book the fills were made on
    assert all(i.cause == trigger.seq for i in intents)
    # the same math on that book: depth is the quoted ask size, used once across the burst
    want: list[ev.Event] = []
    state = MarketState()
    state.on_quote(trigger)
    ref = PaperGateway(state, report=want.append)
    for i in intents:
        ref.submit(i)
    assert [e for e in got if e.KIND == ev.EXECUTION] == [msgspec.structs.replace(w, seq=g.seq) for w, g in
                                                           zip(want, [e for e in got if e.KIND == ev.EXECUTION])]
    assert sum(f.amount for f in fills) == min(3 * 200_000_000, trigger.ask_size)
