"""Hyperliquid WebSocket frames -> the shared input events; recordings in hftbacktest's format.

One frame (``{"channel": C, "data": ...}``, ``../shared/reference/PROTOCOLS.md`` section 6 and the
docs' ``websocket/subscriptions.md``) becomes:

==========================  =================================================================
``bbo``                     one ``QuoteUpdated`` (a side the venue sends as ``null``: price -1,
                            size 0, which the state refuses as unusable)
``l2Book``                  one ``BookDepthUpdated`` (``snapshot=True``, every level, best first)
                            and one ``QuoteUpdated`` of its first level each side
``activeAssetCtx``          one ``MarkPriceUpdated`` (mark, oracle, mid or -1, funding)
``activeSpotAssetCtx``      one ``MarkPriceUpdated`` (mark, mid; spot has no oracle nor funding:
                            ``oracle`` -1, ``funding`` 0)
``trades``                  one ``TradePrinted`` per trade (``side`` the taker's)
``orderUpdates``            one ``AccountOrderUpdated`` per order
``userFills``               one ``AccountFillReported`` per fill, ``snapshot`` = ``isSnapshot``
``userFundings``            one ``FundingPaid`` per payment, ``snapshot`` = ``isSnapshot`` (the
                            subscription's first message: the account's past payments, recorded;
                            positions do not add them, ``domain/perp_positions.py``)
``subscriptionResponse``,   recognised and skipped (counted); so are messages that carry
``pong``                    nothing (an empty trades list, a fills snapshot with no fills)
==========================  =================================================================

Venue ``hyperliquid``; instrument = the coin name as the venue sends it (``BTC``, HIP-3
``xyz:NVDA``, spot ``@107`` / ``PURR/USDC``), checked by :func:`adapters.hyperliquid_ids.parse_coin`.

**Fixed point.** Every number arrives as a decimal string and is parsed exactly, once, here. Each
message gets one precision per quantity: its prices are counted in ``10**-price_decimals`` where
``price_decimals`` is the most decimal places any price string of that message is written with
(as written: ``"105055.0"`` counts 1), so every price of the message is represented exactly; the
same for sizes (``sz``, and ``startPosition``/``origSz``), for fees (``fee``, ``closedPnl``,
``builderFee``) and for funding rates. ``MarkPriceUpdated`` shares one precision between mark,
oracle and mid. Venue times (ms) become ``venue_ts`` ns; the event's ``ts`` is the caller's (the
recording's local receive time).

**Bad frames** (not JSON, not an object, no channel, an unknown or unmodelled channel, the venue's
``error`` channel, a missing field, a wrong type, a number that is not a plain decimal string, an
unsorted book, a time outside 2015..2100) become one ``InputRejected`` naming the field
(``l2Book data.levels[0][3].px ...``) with the raw frame; a frame is all or nothing. Nothing here
raises on input.

**Recordings** (:class:`RecordingReader`): hftbacktest's collector writes ``<local_recv_ns> <raw
JSON>`` per line, gzipped; every line is one frame (a bad timestamp is a rejection too; a file that
breaks off mid-stream ends with one rejection saying so). Counts by channel are kept.
"""
from __future__ import annotations

import gzip
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import msgspec

from tapedeck.adapters.csv_header import MAX_TS, MIN_TS
from tapedeck.adapters.hyperliquid_ids import CoinError, parse_coin
from tapedeck.domain import events as ev

SOURCE = "hyperliquid-ws"
VENUE = "hyperliquid"
MS = 1_000_000
SKIPPED_CHANNELS = ("subscriptionResponse", "pong")
# Channels the venue has that are not modelled as inputs: rejected by name, never silently dropped.
UNMODELLED = ("allMids", "candle", "notification", "webData2", "webData3", "user", "userNonFundingLedgerUpdates",
              "activeAssetData", "userTwapSliceFills", "userTwapHistory", "post", "spotState", "clearinghouseState",
              "openOrders", "twapStates", "allDexsClearinghouseState", "allDexsAssetCtxs", "outcomeMetaUpdates",
              "fastAssetCtxs", "userEvents")
NOT_JSON, NO_CHANNEL, BAD_LINE = "(not JSON)", "(no channel)", "(bad line)"
_NUMBER = re.compile(r"(-?)([0-9]{1,30})(?:\.([0-9]{1,30}))?")
_SIDES = {"B": "buy", "A": "sell"}


class FrameError(ValueError):
    """Why a frame is refused (the message names the field)."""


class Parsed(NamedTuple):
    """What one frame became: its ``channel`` (or ``NOT_JSON`` / ``NO_CHANNEL``), its ``events``
    (one ``InputRejected`` when refused), and ``skipped`` saying why a good frame gave none."""

    channel: str
    events: tuple[ev.Event, ...]
    skipped: str = ""

    @property
    def rejected(self) -> bool:
        return len(self.events) == 1 and type(self.events[0]) is ev.InputRejected


# ----------------------------------------------------------------------------- field readers


def _get(obj: Any, key: str, path: str) -> Any:
    if not isinstance(obj, dict):
        raise FrameError(f"{path} is {_kind(obj)}, expected an object")
    if key not in obj:
        raise FrameError(f"{path}.{key} is missing")
    return obj[key]


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "a bool", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(v), type(v).__name__)


def _typed(v: Any, path: str, kind: type, expected: str) -> Any:
    if not isinstance(v, kind):
        raise FrameError(f"{path} is {_kind(v)}, expected {expected}")
    return v


def _list(v: Any, path: str) -> list[Any]:
    return _typed(v, path, list, "a list")  # type: ignore[no-any-return]


def _str(v: Any, path: str) -> str:
    return _typed(v, path, str, "a string")  # type: ignore[no-any-return]


def _int(v: Any, path: str, lo: int = 0, hi: int = 2**63 - 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise FrameError(f"{path} is {_kind(v)}, expected an integer")
    if not lo <= v <= hi:
        raise FrameError(f"{path} {v} is outside {lo}..{hi}")
    return v


def _bool(v: Any, path: str) -> bool:
    return _typed(v, path, bool, "true/false")  # type: ignore[no-any-return]


def _time(v: Any, path: str) -> int:
    """A venue time in ms -> ns, within 2015..2100."""
    ms = _int(v, path)
    ns = ms * MS
    if not MIN_TS <= ns < MAX_TS:
        raise FrameError(f"{path} {ms} ms is outside 2015..2100")
    return ns


def _coin(v: Any, path: str) -> str:
    text = _str(v, path)
    try:
        parse_coin(text)
    except CoinError as e:
        raise FrameError(f"{path}: {e}") from None
    return text


def _side(v: Any, path: str) -> str:
    side = _SIDES.get(v) if isinstance(v, str) else None
    if side is None:
        raise FrameError(f"{path} {str(v)[:40]!r} is not 'B' (buy) or 'A' (sell)")
    return side


class _Numbers:
    """Decimal strings of one quantity in one message, parsed exactly (plain ``-?digits[.digits]``
    text read as an integer and its places, no float or rounding anywhere); ``fixed()`` gives each
    as an int at the finest precision any of them was written with."""

    __slots__ = ("units", "own", "text", "places")

    def __init__(self) -> None:
        self.units: list[int] = []  # the digits as an integer
        self.own: list[int] = []  # the places it was written with
        self.text: list[str] = []
        self.places = 0

    def add(self, v: Any, path: str, *, positive: bool = False) -> int:
        """Record one; -> its index (to read its fixed value back)."""
        if type(v) is not str:
            raise FrameError(f"{path} is {_kind(v)}, expected a decimal string")
        m = _NUMBER.fullmatch(v)
        if m is None:
            raise FrameError(f"{path} {v[:40]!r} is not a plain decimal number")
        whole, frac = m.group(2), m.group(3) or ""
        n = int(whole + frac)
        if m.group(1):
            n = -n
        if positive and n <= 0:
            raise FrameError(f"{path} {v} is not > 0")
        self.units.append(n)
        self.own.append(len(frac))
        self.text.append(v)
        if len(frac) > self.places:
            self.places = len(frac)
        return len(self.units) - 1

    def fixed(self) -> list[int]:
        places = self.places
        return [u if o == places else u * 10 ** (places - o) for u, o in zip(self.units, self.own)]


# ----------------------------------------------------------------------------- channels


def _levels(side: Any, path: str, prices: _Numbers, sizes: _Numbers) -> list[tuple[int, int]]:
    """One book side -> [(price index, size index)]."""
    return [_level(lvl, f"{path}[{i}]", prices, sizes) for i, lvl in enumerate(_list(side, path))]


def _level(lvl: Any, at: str, prices: _Numbers, sizes: _Numbers) -> tuple[int, int]:
    """A ``WsLevel {px, sz, n}`` -> (price index, size index)."""
    p = prices.add(_get(lvl, "px", at), f"{at}.px", positive=True)
    s = sizes.add(_get(lvl, "sz", at), f"{at}.sz", positive=True)
    _int(_get(lvl, "n", at), f"{at}.n")
    return p, s


def _two_sided(data: Any, key: str, what: str) -> tuple[str, int, list[Any]]:
    """``{coin, time, <key>: [bid side, ask side]}`` -> (coin, venue ns, the pair)."""
    coin = _coin(_get(data, "coin", "data"), "data.coin")
    venue_ts = _time(_get(data, "time", "data"), "data.time")
    pair = _list(_get(data, key, "data"), f"data.{key}")
    if len(pair) != 2:
        raise FrameError(f"data.{key} has {len(pair)} {what}, expected [bid, ask]")
    return coin, venue_ts, pair


def _quote(ctx: _Ctx, coin: str, bid: tuple[int, int] | None, ask: tuple[int, int] | None, px: list[int],
           sz: list[int], prices: _Numbers, sizes: _Numbers, venue_ts: int) -> ev.QuoteUpdated:
    return ev.QuoteUpdated(ts=ctx.ts, source=ctx.source, venue=VENUE, instrument=coin,
                           bid=px[bid[0]] if bid else -1, bid_size=sz[bid[1]] if bid else 0,
                           ask=px[ask[0]] if ask else -1, ask_size=sz[ask[1]] if ask else 0,
                           price_decimals=prices.places, size_decimals=sizes.places, venue_ts=venue_ts)


@dataclass(frozen=True, slots=True)
class _Ctx:
    ts: int
    source: str


def _bbo(data: Any, ctx: _Ctx) -> tuple[ev.Event, ...]:
    coin, venue_ts, pair = _two_sided(data, "bbo", "entries")
    prices, sizes = _Numbers(), _Numbers()
    bid, ask = (None if lvl is None else _level(lvl, f"data.bbo[{i}]", prices, sizes) for i, lvl in enumerate(pair))
    return (_quote(ctx, coin, bid, ask, prices.fixed(), sizes.fixed(), prices, sizes, venue_ts),)


def _l2book(data: Any, ctx: _Ctx) -> tuple[ev.Event, ...]:
    coin, venue_ts, levels = _two_sided(data, "levels", "sides")
    prices, sizes = _Numbers(), _Numbers()
    bids = _levels(levels[0], "data.levels[0]", prices, sizes)
    asks = _levels(levels[1], "data.levels[1]", prices, sizes)
    px, sz = prices.fixed(), sizes.fixed()
    for name, side, descending in (("levels[0] (bids)", bids, True), ("levels[1] (asks)", asks, False)):
        for i in range(1, len(side)):
            a, b = px[side[i - 1][0]], px[side[i][0]]
            if (b >= a) if descending else (b <= a):
                raise FrameError(f"data.{name}[{i}].px {prices.text[side[i][0]]} is not "
                                 f"{'below' if descending else 'above'} the level before it "
                                 f"({prices.text[side[i - 1][0]]}): the side is not best first")
    depth = ev.BookDepthUpdated(ts=ctx.ts, source=ctx.source, venue=VENUE, instrument=coin,
                                bids=tuple((px[p], sz[s]) for p, s in bids), asks=tuple((px[p], sz[s]) for p, s in asks),
                                price_decimals=prices.places, size_decimals=sizes.places, snapshot=True,
                                venue_ts=venue_ts)
    top = _quote(ctx, coin, bids[0] if bids else None, asks[0] if asks else None, px, sz, prices, sizes, venue_ts)
    return depth, top


def _asset_ctx(data: Any, ctx: _Ctx, spot: bool) -> tuple[ev.Event, ...]:
    coin = _coin(_get(data, "coin", "data"), "data.coin")
    c = _get(data, "ctx", "data")
    if not isinstance(c, dict):
        raise FrameError(f"data.ctx is {_kind(c)}, expected an object")
    prices = _Numbers()
    mark = prices.add(_get(c, "markPx", "data.ctx"), "data.ctx.markPx", positive=True)
    oracle = None if spot else prices.add(_get(c, "oraclePx", "data.ctx"), "data.ctx.oraclePx", positive=True)
    mid_text = c.get("midPx")
    mid = None if mid_text is None else prices.add(mid_text, "data.ctx.midPx", positive=True)
    funding = _Numbers()
    rate = None if spot else funding.add(_get(c, "funding", "data.ctx"), "data.ctx.funding")
    px = prices.fixed()
    return (ev.MarkPriceUpdated(ts=ctx.ts, source=ctx.source, venue=VENUE, instrument=coin, mark=px[mark],
                                oracle=-1 if oracle is None else px[oracle], price_decimals=prices.places,
                                mid=-1 if mid is None else px[mid],
                                funding=0 if rate is None else funding.fixed()[rate], funding_decimals=funding.places),)


def _trades(data: Any, ctx: _Ctx) -> tuple[ev.Event, ...]:
    rows = _list(data, "data")
    prices, sizes = _Numbers(), _Numbers()
    parsed = []
    for i, t in enumerate(rows):
        at = f"data[{i}]"
        parsed.append((_coin(_get(t, "coin", at), f"{at}.coin"), _side(_get(t, "side", at), f"{at}.side"),
                       prices.add(_get(t, "px", at), f"{at}.px", positive=True),
                       sizes.add(_get(t, "sz", at), f"{at}.sz", positive=True),
                       _int(_get(t, "tid", at), f"{at}.tid"), _time(_get(t, "time", at), f"{at}.time")))
    px, sz = prices.fixed(), sizes.fixed()
    return tuple(ev.TradePrinted(ts=ctx.ts, source=ctx.source, venue=VENUE, instrument=coin, price=px[p], size=sz[s],
                                 price_decimals=prices.places, size_decimals=sizes.places, side=side,
                                 trade_id=str(tid), venue_ts=t)
                 for coin, side, p, s, tid, t in parsed)


def _cloid(o: dict[str, Any], path: str) -> str:
    c = o.get("cloid")
    if c is None:
        return ""
    text = _str(c, f"{path}.cloid")
    if not re.fullmatch(r"0x[0-9a-fA-F]{32}", text):
        raise FrameError(f"{path}.cloid {text[:40]!r} is not 0x + 32 hex digits")
    return text.lower()


def _order_updates(data: Any, ctx: _Ctx) -> tuple[ev.Event, ...]:
    rows = _list(data, "data")
    prices, sizes = _Numbers(), _Numbers()
    parsed = []
    for i, u in enumerate(rows):
        at = f"data[{i}]"
        o = _get(u, "order", at)
        oat = f"{at}.order"
        if not isinstance(o, dict):
            raise FrameError(f"{oat} is {_kind(o)}, expected an object")
        reduce_only = o.get("reduceOnly", False)
        parsed.append(dict(
            instrument=_coin(_get(o, "coin", oat), f"{oat}.coin"), side=_side(_get(o, "side", oat), f"{oat}.side"),
            limit_price=prices.add(_get(o, "limitPx", oat), f"{oat}.limitPx", positive=True),
            size=sizes.add(_get(o, "sz", oat), f"{oat}.sz"), orig_size=sizes.add(_get(o, "origSz", oat), f"{oat}.origSz"),
            order_id=str(_int(_get(o, "oid", oat), f"{oat}.oid")), client_id=_cloid(o, oat),
            reduce_only=_bool(reduce_only, f"{oat}.reduceOnly"),
            status=_status(_get(u, "status", at), f"{at}.status"),
            venue_ts=_time(_get(u, "statusTimestamp", at), f"{at}.statusTimestamp")))
        _time(_get(o, "timestamp", oat), f"{oat}.timestamp")
    px, sz = prices.fixed(), sizes.fixed()
    return tuple(ev.AccountOrderUpdated(ts=ctx.ts, source=ctx.source, venue=VENUE, price_decimals=prices.places,
                                        size_decimals=sizes.places, **{**p, "limit_price": px[p["limit_price"]],
                                                                      "size": sz[p["size"]],
                                                                      "orig_size": sz[p["orig_size"]]})
                 for p in parsed)


def _status(v: Any, path: str) -> str:
    text = _str(v, path)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", text):
        raise FrameError(f"{path} {text[:40]!r} is not a status word")
    return text


def _user_stream(data: Any, key: str) -> tuple[bool, list[Any]]:
    """A user stream's message ``{isSnapshot?, user, <key>: [...]}`` -> (isSnapshot, the list)."""
    snapshot = _bool(data.get("isSnapshot", False), "data.isSnapshot") if isinstance(data, dict) else False
    _str(_get(data, "user", "data"), "data.user")
    return snapshot, _list(_get(data, key, "data"), f"data.{key}")


def _user_fills(data: Any, ctx: _Ctx) -> tuple[ev.Event, ...]:
    snapshot, rows = _user_stream(data, "fills")
    prices, sizes, fees = _Numbers(), _Numbers(), _Numbers()
    parsed = []
    for i, f in enumerate(rows):
        at = f"data.fills[{i}]"
        if not isinstance(f, dict):
            raise FrameError(f"{at} is {_kind(f)}, expected an object")
        if f.get("builderFee") is not None:
            fees.add(f["builderFee"], f"{at}.builderFee")
        parsed.append(dict(
            instrument=_coin(_get(f, "coin", at), f"{at}.coin"), side=_side(_get(f, "side", at), f"{at}.side"),
            price=prices.add(_get(f, "px", at), f"{at}.px", positive=True),
            size=sizes.add(_get(f, "sz", at), f"{at}.sz", positive=True),
            start_position=sizes.add(_get(f, "startPosition", at), f"{at}.startPosition"),
            fee=fees.add(_get(f, "fee", at), f"{at}.fee"), closed_pnl=fees.add(_get(f, "closedPnl", at), f"{at}.closedPnl"),
            fee_asset=_str(_get(f, "feeToken", at), f"{at}.feeToken"),
            order_id=str(_int(_get(f, "oid", at), f"{at}.oid")), client_id=_cloid(f, at),
            trade_id=str(_int(_get(f, "tid", at), f"{at}.tid")), venue_ts=_time(_get(f, "time", at), f"{at}.time")))
    px, sz, fee = prices.fixed(), sizes.fixed(), fees.fixed()
    return tuple(ev.AccountFillReported(
        ts=ctx.ts, source=ctx.source, venue=VENUE, price_decimals=prices.places, size_decimals=sizes.places,
        fee_decimals=fees.places, snapshot=snapshot,
        **{**p, "price": px[p["price"]], "size": sz[p["size"]], "start_position": sz[p["start_position"]],
           "fee": fee[p["fee"]], "closed_pnl": fee[p["closed_pnl"]]}) for p in parsed)


def _user_fundings(data: Any, ctx: _Ctx) -> tuple[ev.Event, ...]:
    snapshot, rows = _user_stream(data, "fundings")
    amounts, sizes, rates = _Numbers(), _Numbers(), _Numbers()
    parsed = []
    for i, f in enumerate(rows):
        at = f"data.fundings[{i}]"
        parsed.append((_coin(_get(f, "coin", at), f"{at}.coin"), amounts.add(_get(f, "usdc", at), f"{at}.usdc"),
                       sizes.add(_get(f, "szi", at), f"{at}.szi"), rates.add(_get(f, "fundingRate", at), f"{at}.fundingRate"),
                       _time(_get(f, "time", at), f"{at}.time")))
    amt, sz, rate = amounts.fixed(), sizes.fixed(), rates.fixed()
    return tuple(ev.FundingPaid(ts=ctx.ts, source=ctx.source, venue=VENUE, instrument=coin, amount=amt[a],
                                amount_decimals=amounts.places, asset="USDC", size=sz[s], size_decimals=sizes.places,
                                rate=rate[r], rate_decimals=rates.places, venue_ts=t,
                                snapshot=snapshot)
                 for coin, a, s, r, t in parsed)


_CHANNELS: dict[str, Callable[[Any, _Ctx], tuple[ev.Event, ...]]] = {
    "bbo": _bbo,
    "l2Book": _l2book,
    "activeAssetCtx": lambda d, c: _asset_ctx(d, c, spot=False),
    "activeSpotAssetCtx": lambda d, c: _asset_ctx(d, c, spot=True),
    "trades": _trades,
    "orderUpdates": _order_updates,
    "userFills": _user_fills,
    "userFundings": _user_fundings,
}
MODELLED = tuple(_CHANNELS)


# ----------------------------------------------------------------------------- frames


def _text(raw: str | bytes) -> str:
    return raw if isinstance(raw, str) else raw.decode("utf-8", "backslashreplace")


def parse_frame(raw: str | bytes, ts: int, origin: str, *, source: str = SOURCE) -> Parsed:
    """One WebSocket frame received at ``ts`` (ns) -> :class:`Parsed`. Never raises on bad input:
    a bad frame is one ``InputRejected`` (``origin`` names where it came from)."""
    def reject(channel: str, reason: str) -> Parsed:
        text = _text(raw).encode("utf-8", "backslashreplace").decode("utf-8")  # no lone surrogates stored
        return Parsed(channel, (ev.InputRejected(ts=ts, source=source, origin=origin, reason=reason, raw=text),))

    try:
        msg = msgspec.json.decode(raw)
    except RecursionError:
        return reject(NOT_JSON, "frame is not JSON: nested too deeply")
    except Exception as e:  # noqa: BLE001 - any decoder complaint is a bad frame
        return reject(NOT_JSON, f"frame is not JSON: {str(e)[:120]}")
    if not isinstance(msg, dict):
        return reject(NO_CHANNEL, f"frame is {_kind(msg)}, expected an object with a channel")
    channel = msg.get("channel")
    if not isinstance(channel, str):
        return reject(NO_CHANNEL, "frame has no channel" if channel is None else
                      f"frame channel is {_kind(channel)}, expected a string")
    if channel in SKIPPED_CHANNELS:
        return Parsed(channel, (), channel)
    if channel == "error":
        return reject(channel, f"venue error: {str(msg.get('data'))[:200]}")
    handler = _CHANNELS.get(channel)
    if handler is None:
        if channel in UNMODELLED:
            return reject(channel, f"channel {channel!r} is not modelled as an input")
        return reject(channel if len(channel) <= 40 else channel[:40] + "...",
                      f"unknown channel {channel[:60]!r}")
    if "data" not in msg:
        return reject(channel, f"{channel} frame has no data")
    try:
        events = handler(msg["data"], _Ctx(ts, source))
    except FrameError as e:
        return reject(channel, f"{channel} {e}")
    except RecursionError:
        return reject(channel, f"{channel} frame is nested too deeply")
    if not events:
        return Parsed(channel, (), f"empty {channel} message")
    return Parsed(channel, events)


# ----------------------------------------------------------------------------- recordings


@dataclass
class RecordingCounts:
    frames: Counter = field(default_factory=Counter)  # channel -> frames (all, good or not)
    skipped: Counter = field(default_factory=Counter)  # why -> frames that gave nothing (acks, pongs...)
    rejected: Counter = field(default_factory=Counter)  # channel -> frames refused
    events: Counter = field(default_factory=Counter)  # event type -> events out
    lines: int = 0

    def lines_out(self) -> list[str]:
        def fmt(c: Counter) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"

        return [f"frames by channel: {fmt(self.frames)}", f"events: {fmt(self.events)}",
                f"skipped: {fmt(self.skipped)}", f"rejected by channel: {fmt(self.rejected)}"]


_TS = re.compile(rb"[0-9]{1,19}")


class RecordingReader:
    """The frames of one hftbacktest-format recording (gzip or plain text), as events in file order;
    ``counts`` fills in as it is read. Lines are numbered from 1 (``"<name>:line <n>"``)."""

    def __init__(self, path: str | Path, *, source: str = SOURCE) -> None:
        self.path = Path(path)
        self.source = source
        self.counts = RecordingCounts()

    def __iter__(self) -> Iterator[ev.Event]:
        with open(self.path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        opener: Callable[[], Any] = (lambda: gzip.open(self.path, "rb")) if gz else (lambda: open(self.path, "rb"))
        with opener() as f:
            yield from self.read_stream(f, self.path.name)

    def read_stream(self, f: Any, name: str) -> Iterator[ev.Event]:
        last_ts, n = 0, 0
        it = iter(f)
        while True:
            try:
                line = next(it)
            except StopIteration:
                return
            except (EOFError, OSError, zlib.error) as e:  # a truncated or corrupt gzip stream
                self.counts.frames[BAD_LINE] += 1
                self.counts.rejected[BAD_LINE] += 1
                yield ev.InputRejected(ts=last_ts, source=self.source, origin=f"{name}:line {n + 1}",
                                       reason=f"the recording breaks off after line {n}: {str(e)[:120]}", raw="")
                return
            n += 1
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            self.counts.lines += 1
            origin = f"{name}:line {n}"
            head, sep, body = line.partition(b" ")
            ts = int(head) if _TS.fullmatch(head) else -1
            if not sep or ts < 0 or not MIN_TS <= ts < MAX_TS:
                self.counts.frames[BAD_LINE] += 1
                self.counts.rejected[BAD_LINE] += 1
                why = ("no '<local_recv_ns> <frame>' separator" if not sep else
                       f"receive time {_text(head)[:30]!r} is not ns within 2015..2100")
                yield ev.InputRejected(ts=last_ts, source=self.source, origin=origin, reason=why, raw=_text(line))
                continue
            last_ts = ts
            parsed = parse_frame(body, ts, origin, source=self.source)
            self.counts.frames[parsed.channel] += 1
            if parsed.rejected:
                self.counts.rejected[parsed.channel] += 1
            elif not parsed.events:
                self.counts.skipped[parsed.skipped] += 1
            for e in parsed.events:
                if type(e) is not ev.InputRejected:
                    self.counts.events[type(e).__name__] += 1
                yield e


def read_recording(path: str | Path, **kw: Any) -> RecordingReader:
    """:class:`RecordingReader` over ``path`` (iterate it; read ``.counts`` after)."""
    return RecordingReader(path, **kw)
