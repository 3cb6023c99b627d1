"""The live gateway for book venues (Binance spot / USD-M, Hyperliquid): paper by default, or orders.

``BookGateway(state, ...)`` is a ``domain.ports.Gateway``. ``state`` is the engine's ``MarketState``
(read only), which the live feeds keep current.

* **Paper** (the default, ``execute=False``): every intent goes to ``adapters.paper_gateway.PaperGateway``
  on the live state, the same honest fill math as replay: an IOC at the live top of book, the quoted
  size as the depth (a smaller final fill when there is less), notional rounded in the venue's
  favour, the taker fee of ``taker_fee_bps``; a venue without a usable quote is an ``OrderFailed``
  saying why. Reports are stamped ``source="paper"`` (outcomes tell paper from executed) and are
  given to ``report`` inside ``submit`` (the loop queues them after the intent's decisions).
* **Execute** (``execute=True``): an intent for a configured venue is sent from a task on the
  running loop (``submit`` returns at once); ``report`` is called on the loop's thread with
  ``OrderAcknowledged``, then ``OrderFilled`` for what the venue says it filled (never the intent's
  numbers), or ``OrderFailed`` with the venue's reason. An intent for a venue with no executor fails;
  in execute mode nothing falls back to paper.

  - **Binance** (``BinanceExecutor``): ccxt's ``async_support`` client; a market order, or a limit
    order (IOC / GTC / post-only) when the intent has a ``limit_price``; ``newClientOrderId`` is the
    intent's client id. The fill is read from Binance's own response strings (``info``:
    ``executedQty``, ``cummulativeQuoteQty``, ``fills[].commission``), not ccxt's floats.
  - **Hyperliquid** (``HyperliquidExecutor``): an ``order`` action built and signed by
    ``adapters.hyperliquid_signing`` (msgpack + EIP-712 phantom agent, eth-account) and POSTed to
    ``exchange_url`` (``https://api.hyperliquid.xyz/exchange``); the price is the intent's limit
    (sent as it is: a limit that breaks the venue's price rule, ``domain.hl_price``, is an
    ``OrderFailed`` "not sent" naming the rule, never moved and never sent), or an aggressive IOC at
    the live quote +/- ``slippage_bps`` rounded by that rule toward crossing (5 significant figures,
    ``6 - szDecimals`` decimals, integers always allowed); nonces are
    milliseconds of the runner's clock, strictly increasing. ``statuses[0]`` ``filled`` -> ack + fill
    (``totalSz`` x ``avgPx``; the fee is not in the response: ``fee`` 0, ``fee_asset`` "", the user
    stream's ``AccountFillReported`` carries it), ``resting`` -> ack, ``error`` -> ``OrderFailed``.

**Cancels** (``side = "cancel"``, ``target`` = the client id of one of the strategy's orders this
gateway placed): paper orders never rest, so paper answers ``OrderFailed`` "cancel: no resting
order <id>". In execute mode the target must be an order this gateway placed and has not seen end
(else the same ``OrderFailed`` at once); the cancel goes from a task like an order:

  - **Hyperliquid**: a signed ``cancelByCloid`` action (the cloid the order was placed with).
    ``statuses[0] == "success"`` -> ``OrderCanceled``, ``remaining`` = the amount less what this
    gateway reported filled (later fills of a resting order arrive on the account stream, not here);
    an ``error`` status (never placed, already canceled or filled) -> the cancel's ``OrderFailed``
    "cancel: no resting order <id>: <venue's words>".
  - **Binance**: ccxt ``cancel_order`` by ``origClientOrderId`` (and the venue's order id once
    acknowledged). The answer's ``executedQty``/``cummulativeQuoteQty`` are the order's totals: what
    is beyond the fills already reported becomes an ``OrderFilled(final=False)`` first, then
    ``OrderCanceled`` with ``remaining = origQty - executedQty``; ccxt's ``OrderNotFound`` -> the
    cancel's ``OrderFailed``. That fill's fee is the venue's commission when the answer reports one
    (``fills[].commission``, less what the order's earlier fills reported in that asset); Binance's
    cancel answer has no fills, so it is the configured ``maker_fee_bps`` (the order filled while it
    rested on the book) of the fill's notional, rounded up, in the quote asset.

**Secrets** come only from the environment (variable names in the config: ``api_key_env``,
``secret_env``, ``key_env``); they live inside the ccxt client and ``HyperliquidSigner``, never in an
event, a log line or an error: every failure reason is passed through ``redact``, which removes any
configured secret's text.
"""
from __future__ import annotations

import asyncio
import os
from decimal import ROUND_DOWN, ROUND_UP, Decimal, localcontext
from typing import Any, Awaitable, Callable, Mapping, Protocol

from tapedeck.adapters import hyperliquid_signing as hs
from tapedeck.adapters.paper_gateway import PaperGateway, Report
from tapedeck.domain import events as ev
from tapedeck.domain import hl_price
from tapedeck.live.base import Clock

HYPERLIQUID_EXCHANGE_URL = "https://api.hyperliquid.xyz/exchange"
_NO_REPORT = "BookGateway.submit before bind(report)"


class GatewayConfigError(ValueError):
    """A ``[book_gateway]`` table (or environment) that cannot build the gateway; names the key."""


class Executor(Protocol):
    venue: str

    async def place(self, intent: ev.OrderIntended, ts: Callable[[], int]) -> list[ev.Event]: ...

    async def cancel(self, cancel: ev.OrderIntended, placed: "Placed", ts: Callable[[], int]) -> list[ev.Event]: ...

    async def close(self) -> None: ...


class Placed:
    """An order this gateway placed and has not seen end: what a cancel of it needs."""

    __slots__ = ("intent", "order_id", "filled", "notional", "fee")

    def __init__(self, intent: ev.OrderIntended) -> None:
        self.intent = intent
        self.order_id = ""  # the venue's, from its acknowledgement
        self.filled = 0  # base units reported filled so far
        self.notional = 0  # quote units reported so far
        self.fee: dict[str, int] = {}  # fee asset -> fee reported so far (its own units)


def _no_resting(cancel: ev.OrderIntended, source: str, ts: int, why: str = "") -> ev.OrderFailed:
    return ev.OrderFailed(ts=ts, source=source, cause=cancel.seq, intent=cancel.seq, venue=cancel.venue,
                          reason=f"cancel: no resting order {cancel.target}" + (f": {why}" if why else ""))


def _canceled(cancel: ev.OrderIntended, placed: Placed, source: str, ts: int, remaining: int) -> ev.OrderCanceled:
    order = placed.intent
    return ev.OrderCanceled(ts=ts, source=source, cause=cancel.seq, intent=order.seq, venue=order.venue,
                            strategy=order.strategy, instrument=order.instrument, client_id=order.client_id,
                            cancel_id=cancel.client_id, remaining=max(0, remaining), cancel_intent=cancel.seq)


def _dec(text: Any, what: str) -> Decimal:
    try:
        d = Decimal(str(text))
    except Exception:  # noqa: BLE001 - decimal.InvalidOperation and friends
        raise ValueError(f"{what} {str(text)[:40]!r} is not a decimal number") from None
    if not d.is_finite():
        raise ValueError(f"{what} {text!r} is not finite")
    return d


def _units(d: Decimal, places: int, up: bool) -> int:
    """``d * 10**places`` as an int, rounded up or down (exact when it is a whole number)."""
    with localcontext() as c:
        c.prec = 80
        return int(d.scaleb(places).to_integral_value(rounding=ROUND_UP if up else ROUND_DOWN))


class _Secrets:
    def __init__(self) -> None:
        self._texts: list[str] = []

    def add(self, text: str) -> None:
        if text:
            self._texts.append(text)
            if text.startswith("0x"):
                self._texts.append(text[2:])

    def redact(self, text: str) -> str:
        for s in self._texts:
            if s in text:
                text = text.replace(s, "***")
        return text


def _env(env: Mapping[str, str], name: str, where: str) -> str:
    value = env.get(name, "")
    if not value:
        raise GatewayConfigError(f"{where}: environment variable {name} is not set (secrets come from the environment)")
    return value


# ----------------------------------------------------------------------------- Hyperliquid


def hyperliquid_price(d: Decimal, sz_decimals: int, *, up: bool, spot: bool = False) -> Decimal:
    """``d`` rounded (up or down) to what the venue accepts: 5 significant figures and at most
    ``6 - szDecimals`` decimals (8 for spot); whole numbers always allowed (``domain.hl_price``)."""
    if d <= 0:
        raise ValueError(f"price {d} must be > 0")
    return hl_price.round_decimal_price(d, sz_decimals, up=up, spot=spot)


class HyperliquidExecutor:
    """Signed ``order`` actions POSTed to the exchange endpoint (module docstring)."""

    venue = "hyperliquid"

    def __init__(self, signer: hs.HyperliquidSigner, state: Any, *, assets: Mapping[str, tuple[int, int]],
                 exchange_url: str = HYPERLIQUID_EXCHANGE_URL, mainnet: bool = True, vault_address: str | None = None,
                 slippage_bps: int = 50, base_decimals: int = 8, quote_decimals: int = 6,
                 post: Callable[[str, bytes], Awaitable[tuple[int, Any]]] | None = None) -> None:
        self.signer, self.state = signer, state
        self.assets = dict(assets)  # coin -> (asset id, szDecimals)
        self.exchange_url, self.mainnet, self.vault_address = exchange_url, mainnet, vault_address
        self.slippage_bps, self.base_decimals, self.quote_decimals = slippage_bps, base_decimals, quote_decimals
        self._post = post
        self._session: Any = None
        self._last_nonce = 0

    def _nonce(self, now_ns: int) -> int:
        n = max(now_ns // 1_000_000, self._last_nonce + 1)
        self._last_nonce = n
        return n

    def _price(self, intent: ev.OrderIntended, sz_decimals: int) -> Decimal:
        buying = intent.side == "buy"
        if intent.limit_price:  # the strategy's own limit: sent as it is, or refused (never moved)
            problem = hl_price.price_problem(intent.limit_price, intent.price_decimals, sz_decimals)
            if problem:
                raise ValueError(f"limit {problem} (szDecimals {sz_decimals} of {intent.instrument}); "
                                 f"round it with domain.hl_price.round_price")
            return Decimal(intent.limit_price).scaleb(-intent.price_decimals).normalize()
        q = self.state.quotes.get(intent.instrument, {}).get(self.venue)
        if q is None:
            raise ValueError(f"no live quote for {intent.instrument} on {self.venue} to price a market order")
        px = q.ask if buying else q.bid
        if px <= 0:
            raise ValueError(f"unusable live quote for {intent.instrument} ({q.price(px)})")
        slip = Decimal(10_000 + (self.slippage_bps if buying else -self.slippage_bps)) / 10_000
        return hyperliquid_price(Decimal(px).scaleb(-q.price_decimals) * slip, sz_decimals, up=buying)

    def order(self, intent: ev.OrderIntended, now_ns: int) -> tuple[dict[str, Any], int]:
        """The signed body of one order for ``intent`` and its nonce (``ValueError`` saying why not)."""
        if intent.side not in ("buy", "sell"):
            raise ValueError(f"side {intent.side!r} is not buy or sell")
        spec = self.assets.get(intent.instrument)
        if spec is None:
            raise ValueError(f"coin {intent.instrument!r} has no asset id in [book_gateway.hyperliquid.assets]")
        asset, szd = spec
        size = Decimal(intent.amount).scaleb(-self.base_decimals).normalize()
        price = self._price(intent, szd)
        hs.check_tick(price, size, szd, what=f"{intent.instrument} order")
        tif = {"": "Ioc", "ioc": "Ioc", "gtc": "Gtc", "alo": "Alo"}.get(intent.tif, intent.tif)
        wire = hs.order_wire(asset, intent.side == "buy", price, size, tif=tif, reduce_only=intent.reduce_only,
                             client_order_id=hs.cloid_for(intent.client_id) if intent.client_id else None)
        action = hs.order_action([wire])
        nonce = self._nonce(now_ns)
        sig = self.signer.sign_l1_action(action, nonce, mainnet=self.mainnet, vault_address=self.vault_address)
        return hs.exchange_payload(action, nonce, sig, vault_address=self.vault_address), nonce

    async def _send(self, body: dict[str, Any]) -> tuple[int, Any]:
        import json

        data = json.dumps(body).encode()
        if self._post is not None:
            return await self._post(self.exchange_url, data)
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        async with self._session.post(self.exchange_url, data=data, headers={"Content-Type": "application/json"}) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, text

    async def place(self, intent: ev.OrderIntended, ts: Callable[[], int]) -> list[ev.Event]:
        common = dict(source="hyperliquid-exchange", cause=intent.seq, intent=intent.seq, venue=intent.venue)
        try:
            body, _ = self.order(intent, ts())
        except (ValueError, hs.ActionError) as e:
            return [ev.OrderFailed(ts=ts(), reason=f"not sent: {e}", **common)]
        status, answer = await self._send(body)
        if status != 200 or not isinstance(answer, dict):
            return [ev.OrderFailed(ts=ts(), reason=f"exchange answered HTTP {status}: {str(answer)[:300]}", **common)]
        if answer.get("status") != "ok":
            return [ev.OrderFailed(ts=ts(), reason=f"exchange refused: {str(answer.get('response'))[:300]}", **common)]
        try:
            st = answer["response"]["data"]["statuses"][0]
        except (KeyError, IndexError, TypeError):
            return [ev.OrderFailed(ts=ts(), reason=f"unexpected exchange answer: {str(answer)[:300]}", **common)]
        if "error" in st:
            return [ev.OrderFailed(ts=ts(), reason=f"venue: {str(st['error'])[:300]}", **common)]
        key = "filled" if "filled" in st else "resting" if "resting" in st else None
        if key is None:
            return [ev.OrderFailed(ts=ts(), reason=f"unknown order status {str(st)[:200]}", **common)]
        oid = str(st[key].get("oid", ""))
        out: list[ev.Event] = [ev.OrderAcknowledged(ts=ts(), order_id=oid, **common)]
        if key == "filled":
            try:
                size, avg = _dec(st["filled"]["totalSz"], "totalSz"), _dec(st["filled"]["avgPx"], "avgPx")
            except (KeyError, ValueError) as e:
                return [*out, ev.OrderFailed(ts=ts(), reason=f"filled status unreadable: {e}", **common)]
            buying = intent.side == "buy"
            out.append(ev.OrderFilled(ts=ts(), amount=_units(size, self.base_decimals, up=False),
                                      notional=_units(size * avg, self.quote_decimals, up=buying), fee=0, fee_asset="",
                                      final=True, **common))
        return out

    def cancel_body(self, cancel: ev.OrderIntended, placed: Placed, now_ns: int) -> dict[str, Any]:
        """The signed ``cancelByCloid`` body for the order ``placed`` (``ValueError`` saying why not)."""
        order = placed.intent
        spec = self.assets.get(order.instrument)
        if spec is None:
            raise ValueError(f"coin {order.instrument!r} has no asset id in [book_gateway.hyperliquid.assets]")
        action = hs.cancel_by_cloid_action([(spec[0], hs.cloid_for(order.client_id))])
        nonce = self._nonce(now_ns)
        sig = self.signer.sign_l1_action(action, nonce, mainnet=self.mainnet, vault_address=self.vault_address)
        return hs.exchange_payload(action, nonce, sig, vault_address=self.vault_address)

    async def cancel(self, cancel: ev.OrderIntended, placed: Placed, ts: Callable[[], int]) -> list[ev.Event]:
        source = "hyperliquid-exchange"
        try:
            body = self.cancel_body(cancel, placed, ts())
        except (ValueError, hs.ActionError) as e:
            return [ev.OrderFailed(ts=ts(), source=source, cause=cancel.seq, intent=cancel.seq, venue=cancel.venue,
                                   reason=f"not sent: {e}")]
        status, answer = await self._send(body)
        fail = dict(ts=ts(), source=source, cause=cancel.seq, intent=cancel.seq, venue=cancel.venue)
        if status != 200 or not isinstance(answer, dict):
            return [ev.OrderFailed(reason=f"exchange answered HTTP {status}: {str(answer)[:300]}", **fail)]
        if answer.get("status") != "ok":
            return [ev.OrderFailed(reason=f"exchange refused: {str(answer.get('response'))[:300]}", **fail)]
        try:
            st = answer["response"]["data"]["statuses"][0]
        except (KeyError, IndexError, TypeError):
            return [ev.OrderFailed(reason=f"unexpected exchange answer: {str(answer)[:300]}", **fail)]
        if st == "success":
            return [_canceled(cancel, placed, source, ts(), placed.intent.amount - placed.filled)]
        if isinstance(st, dict) and "error" in st:
            return [_no_resting(cancel, source, ts(), str(st["error"])[:300])]
        return [ev.OrderFailed(reason=f"unknown cancel status {str(st)[:200]}", **fail)]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# ----------------------------------------------------------------------------- Binance


class BinanceExecutor:
    """Orders through a ccxt ``async_support`` exchange (module docstring)."""

    def __init__(self, exchange: Any, *, symbols: Mapping[str, str], venue: str = "binance", base_decimals: int = 8,
                 quote_decimals: int = 6, other_fee_decimals: int = 8, taker_fee_bps: int = 10,
                 maker_fee_bps: int = 10) -> None:
        self.exchange, self.venue = exchange, venue
        self.symbols = dict(symbols)  # venue instrument (ETHUSDT) -> ccxt symbol (ETH/USDT)
        self.base_decimals, self.quote_decimals, self.other_fee_decimals = base_decimals, quote_decimals, other_fee_decimals
        for name, bps in (("taker_fee_bps", taker_fee_bps), ("maker_fee_bps", maker_fee_bps)):
            if not 0 <= int(bps) < 10_000:
                raise GatewayConfigError(f"[book_gateway]: {name} must be in [0, 10000), got {bps}")
        self.taker_fee_bps, self.maker_fee_bps = int(taker_fee_bps), int(maker_fee_bps)

    @classmethod
    def from_env(cls, table: Mapping[str, Any], env: Mapping[str, str], secrets: _Secrets, *, venue: str,
                 base_decimals: int, quote_decimals: int, taker_fee_bps: int = 10,
                 maker_fee_bps: int = 10) -> BinanceExecutor:
        import ccxt.async_support as ccxt_async

        where = f"[book_gateway.{venue}]"
        key = _env(env, str(table.get("api_key_env", "BINANCE_API_KEY")), where)
        secret = _env(env, str(table.get("secret_env", "BINANCE_API_SECRET")), where)
        secrets.add(key)
        secrets.add(secret)
        # markets of the one kind traded (no margin pairs, no currencies: those need other endpoints)
        options: dict[str, Any] = {"defaultType": "future" if venue == "binance-usdm" else "spot",
                                   "fetchMarkets": {"types": ["linear" if venue == "binance-usdm" else "spot"]},
                                   "fetchMargins": False, "fetchCurrencies": False}
        exchange = (ccxt_async.binanceusdm if venue == "binance-usdm" else ccxt_async.binance)(
            {"apiKey": key, "secret": secret, "enableRateLimit": True, "options": options})
        if table.get("sandbox"):
            exchange.set_sandbox_mode(True)
        api_url = str(table.get("api_url", ""))  # another REST root for the order API (a local test venue)
        if api_url:
            for name, url in list(exchange.urls["api"].items()):
                if isinstance(url, str) and url.rstrip("/").endswith(("/api/v3", "/fapi/v1")):
                    exchange.urls["api"][name] = api_url.rstrip("/")
        symbols = table.get("symbols", {})
        if not isinstance(symbols, Mapping) or not symbols:
            raise GatewayConfigError(f"{where}: symbols must map each instrument to its ccxt symbol "
                                     f"(ETHUSDT = \"ETH/USDT\")")
        return cls(exchange, symbols={str(k): str(v) for k, v in symbols.items()}, venue=venue,
                   base_decimals=base_decimals, quote_decimals=quote_decimals, taker_fee_bps=taker_fee_bps,
                   maker_fee_bps=maker_fee_bps)

    async def place(self, intent: ev.OrderIntended, ts: Callable[[], int]) -> list[ev.Event]:
        common = dict(source="binance-ccxt", cause=intent.seq, intent=intent.seq, venue=intent.venue)
        symbol = self.symbols.get(intent.instrument)
        if symbol is None or intent.side not in ("buy", "sell"):
            why = (f"instrument {intent.instrument!r} has no ccxt symbol in [book_gateway.{self.venue}.symbols]"
                   if symbol is None else f"side {intent.side!r} is not buy or sell")
            return [ev.OrderFailed(ts=ts(), reason=f"not sent: {why}", **common)]
        amount = str(Decimal(intent.amount).scaleb(-self.base_decimals).normalize())
        params: dict[str, Any] = {}
        if intent.client_id:
            params["newClientOrderId"] = intent.client_id[:36]
        kind, price = "market", None
        if intent.limit_price:
            kind, price = "limit", str(Decimal(intent.limit_price).scaleb(-intent.price_decimals).normalize())
            if intent.tif == "alo":
                params["postOnly"] = True
            else:
                params["timeInForce"] = "GTC" if intent.tif == "gtc" else "IOC"
        if intent.reduce_only:
            params["reduceOnly"] = True
        order = await self.exchange.create_order(symbol, kind, intent.side, amount, price, params)
        info = order.get("info") or {}
        out: list[ev.Event] = [ev.OrderAcknowledged(ts=ts(), order_id=str(order.get("id") or info.get("orderId", "")),
                                                    **common)]
        try:
            filled = _dec(info.get("executedQty", "0"), "executedQty")
            quote = _dec(info.get("cummulativeQuoteQty", info.get("cumQuote", "0")), "cummulativeQuoteQty")
            fee, fee_asset = self._commission(info, symbol)
        except ValueError as e:
            return [*out, ev.OrderFailed(ts=ts(), reason=f"order {order.get('id')} answer unreadable: {e}", **common)]
        if filled > 0:  # final unless the rest of the order still rests on the book (GTC, partly filled)
            resting = str(info.get("status", "")).upper() in ("NEW", "PARTIALLY_FILLED")
            out.append(ev.OrderFilled(ts=ts(), amount=_units(filled, self.base_decimals, up=False),
                                      notional=_units(quote, self.quote_decimals, up=intent.side == "buy"),
                                      fee=fee, fee_asset=fee_asset, final=not resting, **common))
        elif str(info.get("status", "")).upper() in ("EXPIRED", "CANCELED", "REJECTED", "EXPIRED_IN_MATCH"):
            out.append(ev.OrderFailed(ts=ts(), reason=f"order {order.get('id')} {info.get('status')} unfilled",
                                      **common))
        return out

    def _commission(self, info: Mapping[str, Any], symbol: str) -> tuple[int, str]:
        """The commission the venue reports in an answer's ``fills`` (summed, in its asset's units,
        rounded up), and its asset ("" when it reports none); ``ValueError`` when unreadable."""
        fee, fee_asset = Decimal(0), ""
        for f in info.get("fills") or ():
            fee += _dec(f.get("commission", "0"), "commission")
            fee_asset = str(f.get("commissionAsset", fee_asset))
        quote_asset = symbol.split("/")[-1].split(":")[0]
        places = self.quote_decimals if fee_asset in ("", quote_asset) else self.other_fee_decimals
        return _units(fee, places, up=True), fee_asset

    async def cancel(self, cancel: ev.OrderIntended, placed: Placed, ts: Callable[[], int]) -> list[ev.Event]:
        import ccxt

        source, order = "binance-ccxt", placed.intent
        fail = dict(source=source, cause=cancel.seq, intent=cancel.seq, venue=cancel.venue)
        symbol = self.symbols.get(order.instrument)
        if symbol is None:
            return [ev.OrderFailed(ts=ts(), reason=f"not sent: instrument {order.instrument!r} has no ccxt symbol",
                                   **fail)]
        params = {"origClientOrderId": order.client_id[:36]} if order.client_id else {}
        try:
            answer = await self.exchange.cancel_order(placed.order_id or None, symbol, params)
        except ccxt.OrderNotFound as e:
            return [_no_resting(cancel, source, ts(), str(e)[:200])]
        info = answer.get("info") or {}
        try:
            executed = _units(_dec(info.get("executedQty", "0"), "executedQty"), self.base_decimals, up=False)
            quote = _units(_dec(info.get("cummulativeQuoteQty", info.get("cumQuote", "0")), "cummulativeQuoteQty"),
                           self.quote_decimals, up=order.side == "buy")
            orig = _units(_dec(info.get("origQty", "0"), "origQty"), self.base_decimals, up=False)
            reported, reported_asset = self._commission(info, symbol)
        except ValueError as e:
            return [ev.OrderFailed(ts=ts(), reason=f"cancel answer unreadable: {e}", **fail)]
        out: list[ev.Event] = []
        if executed > placed.filled:  # filled while it rested, beyond what was reported
            notional = max(0, quote - placed.notional)
            if reported_asset:  # the venue's own commission for the order, less what its fills reported
                fee, fee_asset = max(0, reported - placed.fee.get(reported_asset, 0)), reported_asset
            else:  # a cancel's answer has no fills: the maker rate (the order rested on the book), quote asset
                fee = -(-notional * self.maker_fee_bps // 10_000)  # rounded up: the venue's favour
                fee_asset = symbol.split("/")[-1].split(":")[0]
            out.append(ev.OrderFilled(ts=ts(), source=source, cause=order.seq, intent=order.seq, venue=order.venue,
                                      amount=executed - placed.filled, notional=notional, fee=fee,
                                      fee_asset=fee_asset, final=False))
        out.append(_canceled(cancel, placed, source, ts(), (orig or order.amount) - executed))
        return out

    async def close(self) -> None:
        await self.exchange.close()


# ----------------------------------------------------------------------------- the gateway


class BookGateway:
    """Paper fills on the live book, or orders to the venues (module docstring)."""

    def __init__(self, state: Any, *, execute: bool = False, paper: PaperGateway | None = None,
                 executors: Mapping[str, Executor] | None = None, clock: Clock | None = None,
                 secrets: _Secrets | None = None, report: Report | None = None) -> None:
        self.state, self.execute = state, execute
        self.paper = paper or PaperGateway(state)
        self.executors = dict(executors or {})
        self.clock = clock or Clock()
        self._secrets = secrets or _Secrets()
        self.report = report
        self._tasks: set[asyncio.Task[None]] = set()
        self._placed: dict[tuple[str, str], Placed] = {}  # (strategy, client id) -> placed, not seen end
        if report is not None:
            self.bind(report)

    def observe(self, e: ev.Event) -> None:
        """After the engine folded input ``e``: on paper, orders resting on the live book fill when a
        later quote crosses them (``PaperGateway.observe``); with ``execute`` they rest on the venue."""
        if not self.execute:
            self.paper.observe(e)

    @classmethod
    def from_config(cls, state: Any, config: Mapping[str, Any], *, execute: bool = False, clock: Clock | None = None,
                    env: Mapping[str, str] | None = None) -> BookGateway:
        """From a run config's ``[book_gateway]`` table: ``taker_fee_bps`` (10), ``maker_fee_bps``
        (10: what a Binance fill reported by a cancel's answer is charged, see the module docstring),
        ``base_decimals`` (8), ``quote_decimals`` (6); with ``execute``, ``[book_gateway.binance]`` /
        ``[book_gateway.binance-usdm]`` (``api_key_env``, ``secret_env``, ``symbols``, ``sandbox``,
        ``api_url``) and
        ``[book_gateway.hyperliquid]`` (``key_env``, ``exchange_url``, ``mainnet``, ``vault_address``,
        ``slippage_bps``, ``assets.<coin> = {asset, sz_decimals}``). Secrets from ``env`` (default
        ``os.environ``) only; a venue table in paper mode is read but no secret is asked for."""
        env = os.environ if env is None else env
        table = dict(config.get("book_gateway", {}))
        venues = {k: table.pop(k) for k in ("binance", "binance-usdm", "hyperliquid") if k in table}
        known = {"taker_fee_bps", "maker_fee_bps", "base_decimals", "quote_decimals"}
        if set(table) - known:
            raise GatewayConfigError(f"[book_gateway]: unknown key(s) {', '.join(sorted(set(table) - known))} "
                                     f"(known: {', '.join(sorted(known))}, binance, binance-usdm, hyperliquid)")
        try:
            nums = {k: int(v) for k, v in table.items()}
        except (TypeError, ValueError) as e:
            raise GatewayConfigError(f"[book_gateway]: bad value: {e}") from None
        bd, qd = nums.get("base_decimals", 8), nums.get("quote_decimals", 6)
        paper = PaperGateway(state, taker_fee_bps=nums.get("taker_fee_bps", 10), base_decimals=bd, quote_decimals=qd)
        secrets = _Secrets()
        executors: dict[str, Executor] = {}
        if execute:
            for venue, vt in venues.items():
                if venue == "hyperliquid":
                    executors[venue] = _hyperliquid_from(vt, env, secrets, state, bd, qd)
                else:
                    executors[venue] = BinanceExecutor.from_env(
                        vt, env, secrets, venue=venue, base_decimals=bd, quote_decimals=qd,
                        taker_fee_bps=nums.get("taker_fee_bps", 10), maker_fee_bps=nums.get("maker_fee_bps", 10))
        return cls(state, execute=execute, paper=paper, executors=executors, clock=clock, secrets=secrets)

    def bind(self, report: Report) -> None:
        self.report = report
        self.paper.bind(report)

    def submit(self, intent: ev.OrderIntended) -> None:
        if self.report is None:
            raise RuntimeError(_NO_REPORT)
        if not self.execute:
            self.paper.submit(intent)
            return
        executor = self.executors.get(intent.venue)
        if executor is None:
            self.report(ev.OrderFailed(ts=self.clock(), source="book-gateway", cause=intent.seq, intent=intent.seq,
                                       venue=intent.venue, reason=f"no executor for venue {intent.venue!r} "
                                       f"(configured: {', '.join(sorted(self.executors)) or 'none'})"))
            return
        if intent.side == "cancel":
            placed = self._placed.get((intent.strategy, intent.target))
            if placed is None or placed.intent.venue != intent.venue:
                self.report(_no_resting(intent, "book-gateway", self.clock()))
                return
            work = self._place(executor, intent, placed)
        else:
            self._placed[(intent.strategy, intent.client_id)] = Placed(intent)
            work = self._place(executor, intent)
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _track(self, e: ev.Event) -> None:
        """Keep what a cancel needs of the orders placed (ids, fills), and forget the ones that ended."""
        t = type(e)
        for key, p in list(self._placed.items()):
            if t is ev.OrderCanceled and p.intent.seq == e.intent:  # type: ignore[attr-defined]
                del self._placed[key]
            elif p.intent.seq != getattr(e, "intent", -1):
                continue
            elif t is ev.OrderAcknowledged:
                p.order_id = e.order_id  # type: ignore[attr-defined]
            elif t is ev.OrderFilled:
                p.filled += e.amount  # type: ignore[attr-defined]
                p.notional += e.notional  # type: ignore[attr-defined]
                if e.fee_asset:  # type: ignore[attr-defined]
                    p.fee[e.fee_asset] = p.fee.get(e.fee_asset, 0) + e.fee  # type: ignore[attr-defined]
                if e.final:  # type: ignore[attr-defined]
                    del self._placed[key]
            elif t is ev.OrderFailed:
                del self._placed[key]

    async def _place(self, executor: Executor, intent: ev.OrderIntended, placed: Placed | None = None) -> None:
        assert self.report is not None
        try:
            if placed is not None:
                events = await executor.cancel(intent, placed, self.clock)
            else:
                events = await executor.place(intent, self.clock)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a venue/network failure is the intent's outcome, said safely
            reason = self._secrets.redact(f"{type(e).__name__}: {str(e)[:300]}")
            events = [ev.OrderFailed(ts=self.clock(), source="book-gateway", cause=intent.seq, intent=intent.seq,
                                     venue=intent.venue, reason=reason)]
        for e in events:
            if type(e) is ev.OrderFailed:
                e = ev.OrderFailed(ts=e.ts, source=e.source, cause=e.cause, intent=e.intent, venue=e.venue,
                                   reason=self._secrets.redact(e.reason))
            self._track(e)
            self.report(e)

    async def wait(self) -> None:
        """Until every order sent so far has its answer reported."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        await self.wait()
        for x in self.executors.values():
            await x.close()


def _hyperliquid_from(vt: Mapping[str, Any], env: Mapping[str, str], secrets: _Secrets, state: Any, bd: int,
                      qd: int) -> HyperliquidExecutor:
    where = "[book_gateway.hyperliquid]"
    key = _env(env, str(vt.get("key_env", "HYPERLIQUID_PRIVATE_KEY")), where)
    secrets.add(key)
    try:
        signer = hs.HyperliquidSigner(key)
    except ValueError as e:
        raise GatewayConfigError(f"{where}: {e}") from None
    assets: dict[str, tuple[int, int]] = {}
    for coin, spec in dict(vt.get("assets", {})).items():
        try:
            assets[str(coin)] = (int(spec["asset"]), int(spec["sz_decimals"]))
        except (KeyError, TypeError, ValueError):
            raise GatewayConfigError(f"{where}.assets.{coin}: needs asset (int) and sz_decimals (int)") from None
    if not assets:
        raise GatewayConfigError(f"{where}: assets must give each coin's asset id and sz_decimals")
    vault = vt.get("vault_address") or None
    return HyperliquidExecutor(signer, state, assets=assets, exchange_url=str(vt.get("exchange_url",
                               HYPERLIQUID_EXCHANGE_URL)), mainnet=bool(vt.get("mainnet", True)),
                               vault_address=str(vault) if vault else None, slippage_bps=int(vt.get("slippage_bps", 50)),
                               base_decimals=bd, quote_decimals=qd)
