"""Binance WebSocket recordings -> input events (``tapedeck import binance-ws FILE.gz``).

The file is what hftbacktest's collector writes (the shared ``binance-ethusdt-ws-2024-08-08``): one
message per line, ``<local receive time, ns> <raw JSON>``, gzip or plain text. Combined-stream frames
(``{"stream": ..., "data": {...}}``) and raw frames are both read; the one line without a stream is
the REST depth snapshot (``{"lastUpdateId", "bids", "asks"}``). Every frame becomes one event:

* ``<symbol>@bookTicker`` -> ``QuoteUpdated`` (spot ``{u,s,b,B,a,A}`` has no time of its own:
  ``venue_ts`` 0; futures add ``e``, ``E`` and ``T``: ``venue_ts`` is ``T``, the transaction time);
* ``<symbol>@trade`` (and futures ``aggTrade``) -> ``TradePrinted`` (``side`` is the taker's:
  ``m`` true means the buyer was the maker, so the taker sold; ``trade_id`` ``t``, or ``a`` for an
  aggregate; ``venue_ts`` ``T``);
* ``<symbol>@depth...`` diffs -> ``BookDepthUpdated(snapshot=False, first_update=U, last_update=u)``
  (``venue_ts`` ``T`` if given, else ``E``); futures diffs carry ``pu``, the previous message's
  final id, and their ``U`` need not follow it: ``first_update`` is then ``pu + 1`` (the id the
  message continues from), so the one contiguity rule of ``domain/book_depth.py`` is the venue's;
* the REST snapshot -> ``BookDepthUpdated(snapshot=True, last_update=lastUpdateId)``, for the
  instrument of the file (the snapshot names none: the symbol of the stream frames, or the file name).

Venue and instrument: spot is venue ``binance``, USD-M futures ``binance-usdm``; the instrument is
the symbol as Binance writes it (``ETHUSDT``). Which market a file is comes from its name
(``spot_...``, ``usdm_...``) or, failing that, from its frames (a bookTicker with ``e``, a depth
diff with ``pu``: futures). A file is one instrument's recording: when its name (or the caller)
says the instrument, a frame of another symbol is a rejection naming both, and ``tapedeck import``
refuses a file whose first frames are all of another symbol than its name says
(``check_instrument``: its snapshot, which names none, would be recorded as the wrong book).

Precision: Binance writes every price and quantity as a decimal string with 8 places
(``"2683.80000000"``; futures strings may have fewer, never more), so prices and sizes are fixed
point at 8 decimals (``PRICE_DECIMALS``/``SIZE_DECIMALS``), parsed exactly from the strings
(``_parse``): one precision for every frame, nothing rounded. Only the plain form is a number:
ASCII digits with one optional ``.``; a string with more places, an exponent, a sign, an
underscore, a space or another script's digits, or a number that is not a string, is a
rejection. The receive time is ASCII digits only.

Depth sequencing (Binance's "manage a local order book" procedure): diffs up to the snapshot's
``lastUpdateId`` are old and recorded as they are; the first one after it must straddle it
(``U <= L + 1 <= u``; futures ``U <= L <= u``), and each later one must follow the one before
(spot ``U == previous u + 1``; futures ``pu == previous u``). A gap is recorded as a
``SourceStale`` naming the book (``binance:ETHUSDT:depth``) just before the diff that shows it, and
the diff itself is kept: the engine's fold marks the book out of sync and stale until the next
snapshot (``MarketState.on_depth``). Nothing is dropped.

A malformed line (no time, bad JSON, an unknown stream, a missing or mistyped field, a price
finer than 8 places, a negative size) is an ``InputRejected`` naming the line and what was wrong;
so is what is not market data: a price of 0 anywhere, a bookTicker with nothing at a best level or
its bid at or above its ask (Binance's book is never crossed or locked), a trade of quantity 0, a
snapshot level of size 0 (a diff's size 0 removes its level and is kept).
"""
from __future__ import annotations

import gzip
import itertools
import re
import zlib
from pathlib import Path
from typing import Any, Generic, Iterator, TypeVar

import msgspec

from tapedeck.adapters.csv_header import MAX_TS, MIN_TS
from tapedeck.domain import events as ev
from tapedeck.domain.book_depth import depth_id

SOURCE = "binance-ws"
SPOT, USDM = "binance", "binance-usdm"
PRICE_DECIMALS = SIZE_DECIMALS = 8
MS = 1_000_000
RAW_LIMIT = 400  # characters of a rejected line kept in its InputRejected
MAX_DEPTH = 128  # JSON nesting a frame may have (Binance's go 4 deep: frame, data, side, level)
NESTED = f"not JSON: nested more than {MAX_DEPTH} deep"
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes and all: its brackets are text
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_NOT_BRACKETS_QUOTES = bytes(b for b in range(256) if b not in b'[]{}"')
MAX_DIGITS = 20  # integer digits of a price or size (Binance's largest are 10 or so): more is not market data
_DIGITS = f"[0-9]{{1,{MAX_DIGITS}}}"  # ASCII digits only: str.isdigit() and Decimal take other scripts' too
_EIGHT_PLACES = re.compile(_DIGITS + r"\.[0-9]{8}")
_DECIMAL = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")
_STAMP = re.compile(rb"[0-9]{1,19}")  # a receive time in ns: int() would also take "+", "_" and spaces
_NAME = re.compile(r"(?:^|[_-])(spot|usdm|futures|um)[_-]([a-z0-9]+)[_-]", re.IGNORECASE)
_decode = msgspec.json.Decoder()


class FrameError(ValueError):
    """What is wrong with one frame (becomes its InputRejected reason)."""


class RecordingUnreadable(OSError):
    """The file itself cannot be read to its end: its gzip stream is cut short or corrupt.

    ``read_binance_ws`` raises it (after the events of the lines before) rather than record a partial
    file as if it were whole, and ``tapedeck import`` turns it into "FILE: cannot read: ..." (exit 2)
    before writing anything: the log it would add to keeps what it holds, and no log is half written.
    That is the choice for a truncated copy too, though its lines before the cut are exactly what was
    recorded (deflate decodes in order): taking part of a day is left to the user, explicitly, and
    the message says how (``gzip -dc`` writes the readable lines, which then import as plain text, a
    line cut in half being one rejection). A corrupt stream (a bad deflate block, a CRC that does not
    match, found only at the end) may already have given wrong lines: nothing of it is imported."""


def _lines(f: Any, name: str) -> Iterator[bytes]:
    """The lines of an open recording, a truncated or corrupt gzip stream being ``RecordingUnreadable``."""
    n, it = 0, iter(f)
    while True:
        try:
            line = next(it)
        except StopIteration:
            return
        except EOFError as e:  # "Compressed file ended before the end-of-stream marker was reached"
            text = (Path(name).stem if name.endswith(".gz") else name) + ".txt"
            raise RecordingUnreadable(f"{str(e).lower().rstrip('.')}, after {n} lines: the file is cut short (to "
                                      f"import the lines before the cut: gzip -dc {name} > {text})") from None
        except (zlib.error, gzip.BadGzipFile) as e:
            raise RecordingUnreadable(f"corrupt compressed data, after {n} lines: {e}") from None
        n += 1
        yield line


def _too_deep(body: bytes) -> bool:
    """Whether a body nests arrays and objects more than ``MAX_DEPTH`` deep (roughly: an alternation
    of both may pass at up to twice that), checked before any decoder sees it. msgspec's own guard is
    the interpreter's recursion limit, which py_ecc (imported with the EVM and signing code) raises to
    100,000, and '[' a hundred thousand deep then overflows the C stack: a segmentation fault, not a
    RecursionError. Counting brackets settles nearly every frame; the others lose their strings,
    then their innermost pairs, a level a round (in C); what does not pair up (not JSON) is counted.
    Where the body has no backslash (no escaped quote: every quote opens or closes a string, as the
    decoder reads it), strings go without a pattern: all but brackets and quotes deleted, then every
    adjacent ``""`` (nothing lies between its two quotes, whichever strings they end or begin), then
    what the quotes left enclose; else by the pattern (on a depth frame of a few hundred levels the
    first way is several times cheaper)."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return False
    if b"\\" in body:
        rest = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    else:
        rest = body.translate(None, _NOT_BRACKETS_QUOTES).replace(b'""', b"")
        if b'"' in rest:  # (strings that hold brackets)
            rest = b"".join(rest.split(b'"')[::2])
    for rounds in range(MAX_DEPTH + 1):
        inner = rest.replace(b"[]", b"").replace(b"{}", b"")
        if inner == rest:
            break
        rest = inner
    else:
        return True
    depth = rounds  # at most this many levels were around what is left: as deep as a decoder would go
    for c in rest:
        depth += 1 if c in b"[{" else -1
        if depth > MAX_DEPTH:
            return True
    return False


def _object(body: bytes) -> dict:
    """A frame's body as a JSON object, or the ``FrameError`` saying why it is not one."""
    if _too_deep(body):
        raise FrameError(NESTED)
    try:
        msg = _decode.decode(body)
    except msgspec.DecodeError as e:
        raise FrameError(f"not JSON: {e}") from None
    except RecursionError:  # within MAX_DEPTH, but called from a deep stack under a low recursion limit
        raise FrameError(NESTED) from None
    if not isinstance(msg, dict):
        raise FrameError(f"a JSON {type(msg).__name__}, not an object")
    return msg


def market_from_filename(path: str | Path) -> tuple[str | None, str | None]:
    """(venue, instrument) from a name like ``spot_ethusdt_20240808.gz`` (None where it says nothing)."""
    m = _NAME.search(Path(path).name)
    if not m:
        return None, None
    return (SPOT if m.group(1).lower() == "spot" else USDM), m.group(2).upper()


def _open(path: str | Path) -> Any:
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _first_frames(path: str | Path, limit: int = 2_000) -> Iterator[dict[str, Any]]:
    """The frame objects (a stream frame's ``data``) of a file's first ``limit`` lines that decode."""
    with _open(path) as f:
        try:
            head = list(itertools.islice(_lines(f, Path(path).name), limit))
        except RecordingUnreadable:  # (what the reader raises, whole, when it gets there)
            return
        for line in head:
            _, _, body = line.partition(b" ")
            if _too_deep(body):
                continue
            try:
                msg = _decode.decode(body)
            except msgspec.DecodeError:
                continue
            data = msg.get("data", msg) if isinstance(msg, dict) else None
            if isinstance(data, dict):
                yield data


def _sniff(path: str | Path, limit: int = 2_000) -> str:
    """The market a file's frames show: futures if a bookTicker has ``e`` or a diff has ``pu``."""
    for data in _first_frames(path, limit):
        if "pu" in data or ("e" in data and data.get("e") == "bookTicker"):
            return USDM
        if "A" in data and "e" not in data:
            return SPOT
    return SPOT


def check_instrument(path: str | Path, instrument: str, limit: int = 2_000) -> None:
    """``ValueError`` when the frames of a file's first ``limit`` lines contradict the instrument it is
    imported as (the one its name says): none of them is of it and some are of another symbol.

    The REST snapshot names no symbol and is recorded as the file's instrument, so importing
    ``spot_btcusdt_...`` holding ETHUSDT frames would record an ETHUSDT book as BTCUSDT's: the import
    refuses instead (``tapedeck import binance-ws``). A stray frame of another symbol among the
    instrument's own is one rejection (``read_binance_ws``)."""
    seen = {data["s"] for data in _first_frames(path, limit) if isinstance(data.get("s"), str) and data["s"]}
    if seen and instrument not in seen:
        raise ValueError(f"{Path(path).name}: its name says {instrument} but its frames are of "
                         f"{', '.join(sorted(seen)[:5])}: not imported (name the file after the symbol it holds)")


def _int(d: dict[str, Any], key: str) -> int:
    v = d.get(key)
    if type(v) is not int:
        raise FrameError(f"missing field {key!r}" if v is None else f"field {key!r} is {v!r:.40}, not an integer")
    if v < 0:
        raise FrameError(f"field {key!r} is negative ({v})")
    return v


def _parse(text: Any, what: str) -> int:
    """A decimal string as an integer count of 1e-8, exactly (``FrameError`` otherwise).

    Only Binance's plain form is a number here: ASCII digits with one optional ``.`` and at most 8
    places (``"2683.80000000"``, ``"0.0024"``, ``"10"``). What ``Decimal`` or ``int`` would also take
    (``"2.6838e3"``, ``"+2683.8"``, ``" 2683.8"``, ``"2_683.8"``, other scripts' digits such as
    ``"２６８３.8"``) is a rejection, and so is a number of more than ``MAX_DIGITS`` integer digits."""
    if type(text) is not str:
        raise FrameError(f"{what} is {type(text).__name__} {text!r:.40}, not a decimal string")
    if _EIGHT_PLACES.fullmatch(text):  # Binance's own form, "2683.80000000"
        return int(text[:-9] + text[-8:])
    m = _DECIMAL.fullmatch(text)
    if m is None:
        raise FrameError(f"{what} {text!r:.40} is not a plain decimal string (ASCII digits and one optional '.')")
    sign, whole, places = m.group(1), m.group(2), m.group(3) or ""
    if sign:
        raise FrameError(f"{what} is negative ({text:.40})")
    if len(places) > PRICE_DECIMALS:
        raise FrameError(f"{what} {text:.40} has more than {PRICE_DECIMALS} decimal places")
    if len(whole) > MAX_DIGITS:
        raise FrameError(f"{what} {text:.40} has more than {MAX_DIGITS} digits before the point")
    return int(whole + places.ljust(PRICE_DECIMALS, "0"))


def _fixed(d: dict[str, Any], key: str, places: int) -> int:
    if key not in d:
        raise FrameError(f"missing field {key!r}")
    return _parse(d[key], f"field {key!r}")


def _levels(d: dict[str, Any], key: str, snapshot: bool = False) -> tuple[tuple[int, int], ...]:
    """A depth side: a list of ``[price, size]`` pairs of decimal strings, each level exactly that (a
    string's characters or a dict's keys are not a price and a size). No level is at price 0; a
    diff's size 0 removes its level, but a snapshot lists standing levels only (size > 0)."""
    raw = d.get(key)
    if not isinstance(raw, list):
        raise FrameError(f"missing field {key!r}" if raw is None else f"field {key!r} is not a list of levels")
    out = []
    for i, level in enumerate(raw):
        if type(level) is not list or len(level) != 2 or type(level[0]) is not str or type(level[1]) is not str:
            raise FrameError(f"{key}: level {i} is not a [price, size] pair of strings")
        price, size = _parse(level[0], f"{key}: level {i} price"), _parse(level[1], f"{key}: level {i} size")
        if price == 0:
            raise FrameError(f"{key}: level {i} price is 0")
        if snapshot and size == 0:
            raise FrameError(f"{key}: level {i} size is 0 in a snapshot (it lists standing levels only)")
        out.append((price, size))
    return tuple(out)


def _quote_problem(bid: int, bid_size: int, ask: int, ask_size: int) -> str | None:
    """Why a best bid/offer is not market data (None: it is): a zero price is an empty side, not a
    price; a best level has something at it; and Binance's own book is never crossed or locked (a bid
    at or above the ask would have traded)."""
    for key, what, v in (("b", "best bid", bid), ("a", "best ask", ask)):
        if v == 0:
            return f"field {key!r} ({what}) is 0: no price"
    for key, what, v in (("B", "best bid size", bid_size), ("A", "best ask size", ask_size)):
        if v == 0:
            return f"field {key!r} ({what}) is 0: nothing at the best level"
    if bid >= ask:
        return f"crossed book: best bid {_text(bid)} is not below best ask {_text(ask)}"
    return None


def _text(n: int) -> str:
    return f"{n // 10**PRICE_DECIMALS}.{n % 10**PRICE_DECIMALS:0{PRICE_DECIMALS}d}"


def _trade_problem(price: int, size: int) -> str | None:
    """Why a trade is not market data (None: it is): a print at price 0 or of quantity 0 is none."""
    if price == 0:
        return "field 'p' (price) is 0: not a trade"
    if size == 0:
        return "field 'q' (quantity) is 0: not a trade"
    return None


def _ms(d: dict[str, Any], key: str) -> int:
    v = _int(d, key) * MS
    if not MIN_TS <= v < MAX_TS:
        raise FrameError(f"field {key!r} ({d[key]} ms) is outside 2015..2100")
    return v


class _Books:
    """Depth sequencing per book (see the module docstring)."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}  # book id -> last applied final id (after a snapshot)
        self.synced: dict[str, bool] = {}

    def snapshot(self, key: str, last: int) -> None:
        self.last[key], self.synced[key] = last, False  # the first diff after it is checked apart

    def gap(self, key: str, first: int, last: int, prev: int | None, futures: bool) -> str | None:
        """Why this diff shows missed updates (None: it follows), updating the book's position."""
        if key not in self.last:
            return None  # no snapshot yet: nothing to follow
        known = self.last[key]
        if last <= known:
            return None  # old: already in the book
        why = None
        if not self.synced[key]:
            ok = (first <= known <= last) if futures else (first <= known + 1 <= last)
            if not ok:
                why = f"first diff after the snapshot (lastUpdateId {known}) covers {first}..{last}"
        elif futures:
            if prev != known:
                why = f"pu {prev} is not the previous final id {known}"
        elif first != known + 1:
            why = f"U {first} does not follow the previous final id {known}"
        self.last[key], self.synced[key] = last, True
        return why


def read_binance_ws(path: str | Path, *, venue: str | None = None, instrument: str | None = None) -> Iterator[ev.Event]:
    """Every line of a recording as events (see the module docstring); never raises on content, only
    ``RecordingUnreadable`` (an ``OSError``) when the file is cut short or its compression corrupt."""
    name = Path(path).name
    named_venue, named_instrument = market_from_filename(path)
    venue = venue or named_venue or _sniff(path)
    futures = venue == USDM
    symbol = given = instrument or named_instrument  # ``given``: every frame must be of it
    books = _Books()
    last_ts = 0  # a rejected line without a time of its own is stamped with the last good one
    with _open(path) as f:
        for n, line in enumerate(_lines(f, name), 1):
            origin = f"{SOURCE}:{name}:line {n}"
            stamp, _, body = line.rstrip(b"\r\n").partition(b" ")
            ts = last_ts
            try:
                if _STAMP.fullmatch(stamp) is None:
                    raise FrameError(f"no receive time: {stamp[:30]!r} is not an integer in ASCII digits")
                t = int(stamp)
                if not MIN_TS <= t < MAX_TS:
                    raise FrameError(f"receive time {t} ns is outside 2015..2100")
                ts = last_ts = t
                events = _frame_fast(body, ts, venue, futures, books)
                if events is None:
                    events = _frame(_object(body), ts, venue, futures, symbol, books)
                if given:
                    _check_symbol(events, given, name if named_instrument == given else None)
            except FrameError as e:
                raw = line.decode("utf-8", "replace").rstrip("\r\n")[:RAW_LIMIT]
                yield ev.InputRejected(ts=ts, source=SOURCE, origin=origin, reason=str(e), raw=raw)
                continue
            for e in events:
                if symbol is None and isinstance(e, (ev.QuoteUpdated, ev.TradePrinted, ev.BookDepthUpdated)):
                    symbol = e.instrument
                yield e


def _check_symbol(events: list[ev.Event], instrument: str, named_by: str | None) -> None:
    """A frame of a symbol other than the recording's instrument is a rejection naming both."""
    for e in events:
        other = getattr(e, "instrument", instrument)
        if other != instrument:
            whose = f"the instrument of {named_by} (its name)" if named_by else "the instrument being imported"
            raise FrameError(f"symbol {other!r} is not {instrument!r}, {whose}")


def _frame(msg: dict[str, Any], ts: int, venue: str, futures: bool, symbol: str | None,
           books: _Books) -> list[ev.Event]:
    stream = msg.get("stream")
    if "lastUpdateId" in msg and stream is None:
        if not symbol:
            raise FrameError("a REST depth snapshot before any frame or file name says the symbol")
        last = _int(msg, "lastUpdateId")
        bids, asks = _levels(msg, "bids", snapshot=True), _levels(msg, "asks", snapshot=True)
        books.snapshot(depth_id(venue, symbol), last)
        return [ev.BookDepthUpdated(ts=ts, source=SOURCE, venue=venue, instrument=symbol, bids=bids, asks=asks,
                                    price_decimals=PRICE_DECIMALS, size_decimals=SIZE_DECIMALS, snapshot=True,
                                    last_update=last)]
    data = msg.get("data", msg) if stream is not None else msg
    if not isinstance(data, dict):
        raise FrameError("'data' is not an object")
    if stream is not None and not isinstance(stream, str):
        raise FrameError("'stream' is not a string")
    kind = (stream.partition("@")[2] if stream else "") or str(data.get("e", ""))
    s = data.get("s")
    if not isinstance(s, str) or not s:
        raise FrameError("missing field 's' (symbol)")
    if kind.startswith("bookTicker") or (not kind and {"b", "B", "a", "A"} <= data.keys()):
        vts = _ms(data, "T") if "T" in data else (_ms(data, "E") if "E" in data else 0)
        _int(data, "u")
        bid, bid_size = _fixed(data, "b", PRICE_DECIMALS), _fixed(data, "B", SIZE_DECIMALS)
        ask, ask_size = _fixed(data, "a", PRICE_DECIMALS), _fixed(data, "A", SIZE_DECIMALS)
        why = _quote_problem(bid, bid_size, ask, ask_size)
        if why:
            raise FrameError(why)
        return [ev.QuoteUpdated(ts=ts, source=SOURCE, venue=venue, instrument=s, bid=bid, bid_size=bid_size, ask=ask,
                                ask_size=ask_size, price_decimals=PRICE_DECIMALS, size_decimals=SIZE_DECIMALS,
                                venue_ts=vts)]
    if kind in ("trade", "aggTrade"):
        m = data.get("m")
        if type(m) is not bool:
            raise FrameError("missing field 'm'" if m is None else f"field 'm' is {m!r:.40}, not true/false")
        trade_id = _int(data, "t" if kind == "trade" else "a")
        price, size = _fixed(data, "p", PRICE_DECIMALS), _fixed(data, "q", SIZE_DECIMALS)
        why = _trade_problem(price, size)
        if why:
            raise FrameError(why)
        return [ev.TradePrinted(ts=ts, source=SOURCE, venue=venue, instrument=s, price=price, size=size,
                                price_decimals=PRICE_DECIMALS, size_decimals=SIZE_DECIMALS, side="sell" if m else "buy",
                                trade_id=str(trade_id), venue_ts=_ms(data, "T"))]
    if kind.startswith("depth") or data.get("e") == "depthUpdate":
        first, last = _int(data, "U"), _int(data, "u")
        if first > last:
            raise FrameError(f"U {first} is after u {last}")
        prev = _int(data, "pu") if futures or "pu" in data else None
        bids, asks = _levels(data, "b"), _levels(data, "a")
        vts = _ms(data, "T") if "T" in data else _ms(data, "E")
        key = depth_id(venue, s)
        why = books.gap(key, first, last, prev, prev is not None)
        diff = ev.BookDepthUpdated(ts=ts, source=SOURCE, venue=venue, instrument=s, bids=bids, asks=asks,
                                   price_decimals=PRICE_DECIMALS, size_decimals=SIZE_DECIMALS, snapshot=False,
                                   first_update=prev + 1 if prev is not None else first, last_update=last,
                                   venue_ts=vts)
        if why:
            return [ev.SourceStale(ts=ts, source=SOURCE, venues=(key,), reason=f"depth gap: {why}"), diff]
        return [diff]
    raise FrameError(f"unknown stream {stream or kind or '(none)'!r}")


# ----------------------------------------------------------------------------- typed fast path
# A live feed reads 5,000 frames/s and more (issue 13's target); decoding each into a dict and then
# checking it field by field cost ~8 us a frame here, most of it the depth levels. Combined-stream
# frames of the three streams are decoded straight into typed structs (msgspec checks the types and
# the fields' presence in C), their prices parsed once into the 8-place integers the events hold.
# The fast path only ever *accepts*: a frame it cannot take whole (a missing or mistyped field, a
# negative id, a price not in Binance's 8-place form, a time out of range) goes through the general
# path above, so rejections, their reasons and every event are exactly those of ``_frame``.


_Opt = int | msgspec.UnsetType  # absent and null differ: a null field is the general path's rejection


class _Ticker(msgspec.Struct):
    u: int
    s: str
    b: str
    B: str
    a: str
    A: str
    T: _Opt = msgspec.UNSET
    E: _Opt = msgspec.UNSET


class _Trade(msgspec.Struct):
    s: str
    p: str
    q: str
    T: int
    m: bool
    t: _Opt = msgspec.UNSET
    a: _Opt = msgspec.UNSET


class _Depth(msgspec.Struct):
    s: str
    U: int
    u: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    E: _Opt = msgspec.UNSET
    T: _Opt = msgspec.UNSET
    pu: _Opt = msgspec.UNSET


_D = TypeVar("_D")


class _StreamFrame(msgspec.Struct, Generic[_D]):
    stream: str
    data: _D


_TYPED = {b"bookTicker": msgspec.json.Decoder(_StreamFrame[_Ticker]),
          b"trade": msgspec.json.Decoder(_StreamFrame[_Trade]), b"aggTrade": msgspec.json.Decoder(_StreamFrame[_Trade])}
_TYPED_DEPTH = msgspec.json.Decoder(_StreamFrame[_Depth])
_STREAM_HEAD = b'{"stream":"'


class _NotFast(Exception):
    """The typed path cannot take this frame whole: the general path decides it."""


def _px(text: str) -> int:
    """Binance's own 8-place form ("2683.80000000") as an integer count of 1e-8 (``_parse``'s first branch):
    what ``_EIGHT_PLACES`` takes (1 to ``MAX_DIGITS`` ASCII digits, a point, 8 digits), by string tests (the
    typed path reads a few per frame; a regex match costs more than these)."""
    if 9 < len(text) <= MAX_DIGITS + 9 and text[-9] == "." and text.isascii():
        digits = text[:-9] + text[-8:]
        if digits.isdigit():
            return int(digits)
    raise _NotFast


def _fast_ms(v: _Opt) -> int:
    if v is msgspec.UNSET or v < 0:  # type: ignore[operator]
        raise _NotFast
    ns = v * MS
    if not MIN_TS <= ns < MAX_TS:
        raise _NotFast
    return ns


_LEVELS = re.compile(f"{_EIGHT_PLACES.pattern}(?:\\|{_EIGHT_PLACES.pattern})*")  # as ``_px``


def _fast_levels(raw: list[tuple[str, str]]) -> tuple[tuple[int, int], ...]:
    """``_px`` of every price and size of a depth side, the strings checked by one regex in one go."""
    if not raw:
        return ()
    joined = "|".join([x for level in raw for x in level])
    if _LEVELS.fullmatch(joined) is None:
        raise _NotFast
    n = list(map(int, joined.replace(".", "").split("|")))
    if 0 in n[0::2]:  # a level at price 0: ``_levels`` rejects it
        raise _NotFast
    return tuple(zip(n[0::2], n[1::2]))


def _frame_fast(body: bytes, ts: int, venue: str, futures: bool, books: _Books) -> list[ev.Event] | None:
    """The events of a well-formed combined-stream frame (exactly what ``_frame`` makes of it), or None
    when this path does not take it (see above)."""
    if not body.startswith(_STREAM_HEAD):
        return None
    end = body.find(b'"', 11)
    at = body.find(b"@", 11, end)
    if at < 0:
        return None
    kind = body[at + 1:end]
    if _too_deep(body):
        return None
    try:
        if kind.startswith(b"depth"):
            f = _TYPED_DEPTH.decode(body)
            d = f.data
            if f.stream.partition("@")[2] != kind.decode() or not d.s or d.U < 0 or d.u < 0 or d.U > d.u:
                return None
            prev = d.pu if futures or d.pu is not msgspec.UNSET else None
            if prev is not None and (prev is msgspec.UNSET or prev < 0):  # type: ignore[operator]
                return None
            vts = _fast_ms(d.T) if d.T is not msgspec.UNSET else _fast_ms(d.E)
            bids, asks = _fast_levels(d.b), _fast_levels(d.a)
            key = depth_id(venue, d.s)
            why = books.gap(key, d.U, d.u, prev, prev is not None)
            diff = ev.BookDepthUpdated(ts=ts, source=SOURCE, venue=venue, instrument=d.s, bids=bids, asks=asks,
                                       price_decimals=PRICE_DECIMALS, size_decimals=SIZE_DECIMALS, snapshot=False,
                                       first_update=prev + 1 if prev is not None else d.U, last_update=d.u,
                                       venue_ts=vts)
            if why:
                return [ev.SourceStale(ts=ts, source=SOURCE, venues=(key,), reason=f"depth gap: {why}"), diff]
            return [diff]
        dec = _TYPED.get(kind)
        if dec is None:
            return None
        f = dec.decode(body)
        d = f.data
        if f.stream.partition("@")[2] != kind.decode() or not d.s:
            return None
        if kind == b"bookTicker":
            if d.u < 0:
                return None
            vts = _fast_ms(d.T) if d.T is not msgspec.UNSET else (_fast_ms(d.E) if d.E is not msgspec.UNSET else 0)
            bid, bid_size, ask, ask_size = _px(d.b), _px(d.B), _px(d.a), _px(d.A)
            if _quote_problem(bid, bid_size, ask, ask_size):
                return None
            return [ev.QuoteUpdated(ts=ts, source=SOURCE, venue=venue, instrument=d.s, bid=bid, bid_size=bid_size,
                                    ask=ask, ask_size=ask_size, price_decimals=PRICE_DECIMALS,
                                    size_decimals=SIZE_DECIMALS, venue_ts=vts)]
        trade_id = d.t if kind == b"trade" else d.a
        if trade_id is msgspec.UNSET or trade_id < 0:  # type: ignore[operator]
            return None
        price, size = _px(d.p), _px(d.q)
        if _trade_problem(price, size):
            return None
        return [ev.TradePrinted(ts=ts, source=SOURCE, venue=venue, instrument=d.s, price=price, size=size,
                                price_decimals=PRICE_DECIMALS, size_decimals=SIZE_DECIMALS,
                                side="sell" if d.m else "buy", trade_id=str(trade_id), venue_ts=_fast_ms(d.T))]
    except (msgspec.DecodeError, msgspec.ValidationError, _NotFast, RecursionError):
        return None


# ----------------------------------------------------------------------------- live frames
# Issue 13 (live-feeds): the live Binance source (``live/binance_source.py``) reads one frame at a
# time off the socket; the same frame rules and depth sequencing as a recording, per frame.


class FrameParser:
    """One live frame at a time -> events, with the depth sequencing of :func:`read_binance_ws`
    kept across frames. Never raises on content: a bad frame is one ``InputRejected``."""

    def __init__(self, venue: str = SPOT, instrument: str | None = None, *, source: str = SOURCE) -> None:
        self.venue, self.futures, self.symbol, self.source = venue, venue == USDM, instrument, source
        self.books = _Books()

    def resync(self) -> None:
        """Forget the depth positions (after a reconnect: only a new snapshot puts a book back in sync)."""
        self.books = _Books()

    def parse(self, raw: str | bytes, ts: int, origin: str) -> list[ev.Event]:
        body = raw.encode() if isinstance(raw, str) else raw
        fast = _frame_fast(body, ts, self.venue, self.futures, self.books)
        if fast is not None:
            if self.symbol is None:
                self.symbol = fast[-1].instrument  # type: ignore[attr-defined]
            return fast
        try:
            msg = _object(body)
            if "result" in msg and "id" in msg and "stream" not in msg:
                return []  # the answer to a SUBSCRIBE / LIST_SUBSCRIPTIONS request
            events = _frame(msg, ts, self.venue, self.futures, self.symbol, self.books)
        except FrameError as e:
            raw_text = body.decode("utf-8", "replace")[:RAW_LIMIT]
            return [ev.InputRejected(ts=ts, source=self.source, origin=origin, reason=str(e), raw=raw_text)]
        if self.symbol is None:
            for e in events:
                if isinstance(e, (ev.QuoteUpdated, ev.TradePrinted, ev.BookDepthUpdated)):
                    self.symbol = e.instrument
                    break
        return events
