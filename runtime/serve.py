"""``tapedeck serve LOG.db``: the pool price cache over HTTP, from the engine's own state.

Why: other bots ask one process for every pool's price and the current arbitrage gaps instead of
each reading the chain. The state is the engine's fold (``Engine.handle`` over the log's inputs,
no strategies), so what is served is what a replay of the same log would decide on; the
opportunities are ``domain/arb_finder.py``'s, over every registry pool the log holds and the CEX
books it holds (``CEX_INSTRUMENTS`` says which tokens a CEX symbol trades, by address).

Responses are precomputed bytes, rebuilt when the state changes (``PoolCache.feed(event)``: fold
one event, rebuild the entry of what it touched and rescan), never per request: a GET is a dict
lookup; ``POST /scan-arbitrage`` joins the pre-serialized opportunities at or above the requested
threshold; ``/health`` splices the one figure that depends on the wall clock (the last event's age)
into its precomputed bytes. A live feed (a later issue) calls ``feed`` from the server's event loop
or any thread (each response is replaced whole by one assignment).

Ages: a pool's ``age_ms`` is event time, from its last update to the last event the cache folded
(as the domain's freshness rule counts it); ``/health``'s ``last_event_age_ms`` is wall clock
minus that event's time.

Routes: ``GET /health``, ``GET /prices``, ``GET /prices/{pair}`` (``USDC-WETH`` or ``WETH-USDC`` by
registry symbol, or ``0x...-0x...`` by address; case-insensitive), ``POST /scan-arbitrage``
``{"threshold_pct": x, "pair": optional}``. Errors are JSON ``{"error": ...}``: 400 bad JSON, 422
bad fields, 404 unknown pair or path (``/prices/`` too: no redirect to ``/prices``), 405 wrong
method (with ``Allow``), a refused CORS preflight 400, 413 a body over ``SCAN_BODY_LIMIT`` bytes
(refused by its Content-Length before it is read, or as a chunked one streams past the limit; the
connection is then closed). Scan answers are kept per parsed question (threshold, pair), so what a
client sends never grows the server's memory past ``SCAN_ANSWERS`` answers per state. (What
uvicorn's HTTP parser refuses before the app sees it, e.g. a 100,000-character path, is its own
plain-text ``400 Invalid HTTP request received.``)
"""
from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from tapedeck.adapters.eventlog import EventLog
from tapedeck.adapters.registry import Registry, load_registry
from tapedeck.domain import events as ev
from tapedeck.domain.arb_finder import ArbFinder, BookVenue, Opportunity, PoolVenue, pair_key, pool_venues
from tapedeck.domain.decimals import CTX
from tapedeck.domain.engine import Engine
from tapedeck.domain.risk import RiskGate

USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"
WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
# CEX symbol -> (base token, quote token, base decimals, quote decimals) by registry address: a
# Binance ETH is taken as WETH (the same asset for an arbitrageur who wraps), USDT/USDC as themselves.
CEX_INSTRUMENTS: dict[str, tuple[str, str, int, int]] = {
    "ETHUSDT": (WETH, USDT, 18, 6),
    "ETHUSDC": (WETH, USDC, 18, 6),
}
CEX_TAKER_FEE_PIPS = {"binance": 1000, "binance-usdm": 500}  # 0.10% spot, 0.05% USD-M (regular tiers)
DEFAULT_GAS_PRICE_WEI = 15 * 10**9  # when the log has no block base fee (the real 2024-01-05 day has none)
JSON = "application/json"
PATHS = "GET /health, GET /prices, GET /prices/{pair}, POST /scan-arbitrage"
SCAN_ANSWERS = 256  # POST /scan-arbitrage answers kept per state, by (threshold, pair) as parsed
SCAN_BODY_LIMIT = 8192  # bytes of a POST /scan-arbitrage body ({"threshold_pct": x, "pair": ...}); more: 413


class BadRequest(ValueError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class _LongInt:
    """A JSON integer of more digits than any valid field takes (``json.loads``'s ``parse_int``):
    kept as text, so that it is refused as out of range (422) and never converted (Python refuses
    integers over 4300 digits, and a long one cannot be a float)."""

    def __init__(self, digits: str) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"{self.digits[:12]}... ({len(self.digits)} digits)"


def _json_int(text: str) -> int | _LongInt:
    return int(text) if len(text) <= 20 else _LongInt(text)


def _too_large(size: str) -> BadRequest:
    return BadRequest(413, f"body of {size} bytes is over the limit of {SCAN_BODY_LIMIT} "
                           f"(a request is like {{\"threshold_pct\": 0.1}})")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode()


def _plain(d: Decimal) -> str:
    """A Decimal as plain positional text (``0E-8`` -> ``"0.00000000"``, never an exponent), for JSON readers."""
    return format(d, "f")


def _ratio_text(num: int, den: int, digits: int = 10) -> str:
    """``num/den`` as decimal text to ``digits`` significant digits (display only)."""
    if den == 0:
        return "0"
    q = CTX.divide(Decimal(num), Decimal(den))
    return format(q.quantize(Decimal(1).scaleb(q.adjusted() - digits + 1), context=CTX), "f") if q else "0"


@dataclass(frozen=True)
class Token:
    address: str
    symbol: str
    decimals: int


class PoolCache:
    """The engine's state, the venues over it, and every response as bytes."""

    def __init__(self, venues: Sequence[Any], tokens: dict[str, Token], *, max_age_ns: int = 60 * 10**9,
                 gas_price_wei: int = DEFAULT_GAS_PRICE_WEI, min_profit: int = 0) -> None:
        self.engine = Engine([], RiskGate.from_config({"default_max_notional": 0, "default_max_outstanding": 0}))
        self.state = self.engine.state
        self.tokens = tokens
        self.venues = list(venues)
        self.finder = ArbFinder(self.venues, max_age_ns=max_age_ns, gas_price_wei=gas_price_wei, min_profit=min_profit)
        self.by_touch: dict[str, list[Any]] = {}  # event's pool / "venue:instrument" -> venues it moves
        for v in self.venues:
            keys = [v.id] if isinstance(v, PoolVenue) else [f"{v.venue}:{v.instrument}"]
            for k in keys:
                self.by_touch.setdefault(k, []).append(v)
        self.aliases: dict[str, tuple[str, str]] = {}  # pair text (lowercase) -> pair key
        for pair in self.finder.pairs:
            a, b = (self.tokens[t] for t in pair)
            for text in (f"{a.symbol}-{b.symbol}", f"{b.symbol}-{a.symbol}", f"{a.address}-{b.address}",
                         f"{b.address}-{a.address}"):
                self.aliases.setdefault(text.lower(), pair)
        self.events = 0
        self.last_ts = 0
        self._entries: dict[str, dict[str, Any]] = {}  # venue id -> its /prices entry (without age)
        self._lock = threading.Lock()  # one feeder at a time
        self.prices_body = b"[]"
        self.pair_bodies: dict[tuple[str, str], bytes] = {}
        self.opportunities: list[tuple[int, tuple[str, str], bytes]] = []  # (profit in 1e-8 %, pair, json)
        self._health_head = self._health_tail = b""
        self._scans: tuple[list[tuple[int, tuple[str, str], bytes]], dict[tuple[bytes, Any], bytes]] = ([], {})
        self.refresh()

    # ------------------------------------------------------------------ folding

    def feed(self, event: ev.Event, *, refresh: bool = True) -> None:
        """Fold one event (inputs only: this cache decides nothing) and rebuild the responses."""
        if event.KIND != ev.INPUT:
            return
        with self._lock:
            self.engine.handle(event)
            self.events += 1
            if event.ts > self.last_ts:
                self.last_ts = event.ts
            touched = getattr(event, "pool", None)
            if touched is None and hasattr(event, "instrument"):
                touched = f"{event.venue}:{event.instrument}"  # type: ignore[attr-defined]
            for v in self.by_touch.get(touched, ()):  # type: ignore[arg-type]
                self._entries.pop(v.id, None)
            if type(event) is ev.SourceStale:
                self._entries.clear()
            if refresh:
                self._refresh()

    def refresh(self) -> None:
        with self._lock:
            self._entries.clear()
            self._refresh()

    def _refresh(self) -> None:
        now = self.last_ts
        entries = []
        for v in self.venues:
            e = self._entries.get(v.id)
            if e is None:
                e = self._entries[v.id] = self._entry(v)
            t = self.state.updated.get(v.depth_key if isinstance(v, BookVenue) else v.id)
            if isinstance(v, BookVenue):
                q = self.state.quotes.get(v.instrument, {}).get(v.venue)
                t = max(t or 0, q.ts if q else 0) or None
            age = None if t is None else (now - t) // 1_000_000
            stale = self.state.stale.get(v.id) or (self.state.stale.get(v.depth_key) if isinstance(v, BookVenue) else None)
            entries.append({**e, "age_ms": age, "stale": stale or None,
                            "fresh": v.fresh(self.state, now, self.finder.max_age_ns)})
        by_pair: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for v, e in zip(self.venues, entries):
            by_pair.setdefault(pair_key(v.token0, v.token1), []).append(e)
        self.prices_body = _dumps({"count": len(entries), "as_of_ts": now, "pools": entries})
        self.pair_bodies = {p: _dumps({"pair": self._pair_name(p), "count": len(es), "as_of_ts": now, "pools": es})
                            for p, es in by_pair.items()}
        opps = self.finder.scan(self.state, now) if now else []
        self.opportunities = sorted(((self._pct_e8(o), o.pair, _dumps(self._opp_json(o))) for o in opps),
                                    key=lambda t: -t[0])
        self._scans = (self.opportunities, {})  # (the list the answers come from, question -> answer): replaced whole
        pools = sum(1 for v in self.venues if isinstance(v, PoolVenue))
        head = _dumps({"status": "ok" if self.events else "empty", "pools_cached": pools,
                       "venues_cached": len(self.venues), "pairs": len(self.finder.pairs), "events": self.events,
                       "last_event_ts": now, "opportunities": len(opps), "last_event_age_ms": 0})
        self._health_head, self._health_tail = head[:-2], b"}"  # ...,"last_event_age_ms":  <n>  }

    # ------------------------------------------------------------------ views

    def _pair_name(self, pair: tuple[str, str]) -> str:
        return f"{self.tokens[pair[0]].symbol}-{self.tokens[pair[1]].symbol}"

    def _entry(self, v: Any) -> dict[str, Any]:
        st = self.state
        base, quote = self._base_quote(v)
        e: dict[str, Any] = {"id": v.id, "venue": v.venue, "pair": self._pair_name(pair_key(v.token0, v.token1)),
                             "price_of": f"{self.tokens[base].symbol} in {self.tokens[quote].symbol}"}
        m = v.mid(st, base)
        if m is not None:
            tb, tq = self.tokens[base], self.tokens[quote]
            e["price"] = _ratio_text(m[0] * 10**tb.decimals, m[1] * 10**tq.decimals)
        else:
            e["price"] = None
        if isinstance(v, PoolVenue):
            if v.spec.kind == "v2":
                p = st.v2.get(v.id)
                e["reserves"] = None if p is None else [str(p.reserve0), str(p.reserve1)]
            else:
                s = st.v3.get(v.id)
                e["liquidity"] = None if s is None or s.liquidity is None else str(s.liquidity)
                e["sqrt_price_x96"] = None if s is None or s.sqrt_price_x96 is None else str(s.sqrt_price_x96)
                e["tick"] = None if s is None else s.tick
            e["fee"] = v.spec.fee
        else:
            q = st.quotes.get(v.instrument, {}).get(v.venue)
            if q is not None:
                e["bid"], e["ask"] = _plain(q.price(q.bid)), _plain(q.price(q.ask))
                e["bid_size"], e["ask_size"] = _plain(q.size(q.bid_size)), _plain(q.size(q.ask_size))
            book = st.depth.get(v.depth_key)
            e["depth_levels"] = None if book is None else [len(book.bids()), len(book.asks())]
            e["depth_in_sync"] = None if book is None else book.synced
        return e

    def _base_quote(self, v: Any) -> tuple[str, str]:
        """(base, quote) for display: the quote is the pair's profit numeraire (USDC before WETH)."""
        pair = pair_key(v.token0, v.token1)
        quote = self.finder.profit_token(pair)
        return (pair[1] if quote == pair[0] else pair[0]), quote

    def _amount(self, token: str, n: int) -> str:
        t = self.tokens[token]
        return _plain(Decimal(n).scaleb(-t.decimals, context=CTX))

    def _pct_e8(self, o: Opportunity) -> int:
        return o.net_profit * 10**10 // o.amount_in if o.amount_in else 0  # percent, 8 places

    def _opp_json(self, o: Opportunity) -> dict[str, Any]:
        sym = self.tokens[o.profit_token].symbol
        return {
            "pair": self._pair_name(o.pair), "profit_token": sym,
            "legs": [{"venue": leg.venue, "id": leg.venue_id, "sell": self.tokens[leg.token_in].symbol,
                      "buy": self.tokens[leg.token_out].symbol, "amount_in": self._amount(leg.token_in, leg.amount_in),
                      "amount_out": self._amount(leg.token_out, leg.amount_out)} for leg in o.legs],
            "amount_in": self._amount(o.profit_token, o.amount_in),
            "amount_out": self._amount(o.profit_token, o.amount_out),
            "gross_profit": self._amount(o.profit_token, o.gross_profit),
            "gas_cost": self._amount(o.profit_token, o.gas_cost), "gas_wei": str(o.gas_wei),
            "net_profit": self._amount(o.profit_token, o.net_profit),
            "profit_pct": _ratio_text(o.net_profit * 100, o.amount_in, 6),
            "method": o.method, "proven_optimal": o.proven,
        }

    # ------------------------------------------------------------------ answers (bytes)

    def health(self, wall_ns: int | None = None) -> bytes:
        now = time.time_ns() if wall_ns is None else wall_ns
        age = (now - self.last_ts) // 1_000_000 if self.last_ts else -1
        return self._health_head + str(age).encode() + self._health_tail

    def pair(self, text: str) -> bytes | None:
        key = self.aliases.get(text.lower())
        return None if key is None else self.pair_bodies.get(key)

    def scan(self, body: bytes) -> bytes:
        """The opportunities at or above ``threshold_pct`` (``BadRequest`` for a bad body). An answer
        is kept for its question, the threshold and pair as parsed (not the body's bytes: ``0.10``
        and `` 1e-1 `` ask the same), until the state changes (up to ``SCAN_ANSWERS`` questions): a
        bot asking again gets the same bytes without the list being filtered and joined again."""
        opportunities, answers = self._scans
        x, pair = self._question(body)
        echo = _dumps(x)  # the threshold as it is answered: at most ~24 bytes (range-checked)
        hit = answers.get((echo, pair))
        if hit is not None:
            return hit
        limit = int(Decimal(repr(x)).scaleb(8, context=CTX))  # percent, 8 places: the same scale as the list
        chosen = [b for pct, p, b in opportunities if pct >= limit and (pair is None or p == pair)]
        out = (b'{"count":' + str(len(chosen)).encode() + b',"threshold_pct":' + echo
               + b',"opportunities":[' + b",".join(chosen) + b"]}")
        if len(answers) < SCAN_ANSWERS:
            answers[(echo, pair)] = out
        return out

    def _question(self, body: bytes) -> tuple[int | float, tuple[str, str] | None]:
        """``(threshold_pct, pair key or None)`` of a request body, or ``BadRequest``."""
        if len(body) > SCAN_BODY_LIMIT:
            raise _too_large(str(len(body)))
        try:
            req = json.loads(body, parse_int=_json_int)
        except RecursionError:
            raise BadRequest(400, "body is not JSON this server reads: nested too deeply") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise BadRequest(400, f"body is not JSON: {e}") from None
        if not isinstance(req, dict):
            raise BadRequest(422, "body must be a JSON object like {\"threshold_pct\": 0.1}")
        unknown = sorted(set(req) - {"threshold_pct", "pair"})
        if unknown:
            raise BadRequest(422, f"unknown field(s): {', '.join(unknown)} (known: threshold_pct, pair)")
        if "threshold_pct" not in req:
            raise BadRequest(422, "threshold_pct is required (a number of percent, e.g. 0.1)")
        x = req["threshold_pct"]
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 <= x <= 10**6:  # nan: not in range
            raise BadRequest(422, f"threshold_pct must be a number of percent in 0..1000000, got {x!r:.40}")
        pair = None
        if "pair" in req:
            if not isinstance(req["pair"], str):
                raise BadRequest(422, f"pair must be text like \"USDC-WETH\", got {req['pair']!r:.40}")
            pair = self.aliases.get(req["pair"].lower())
            if pair is None:
                raise BadRequest(404, f"unknown pair {req['pair']!r:.60} (known: {', '.join(self.known_pairs())})")
        return x, pair

    def known_pairs(self) -> list[str]:
        return [self._pair_name(p) for p in self.finder.pairs]


# ----------------------------------------------------------------------------- building


def venues_for(log_pools: Iterable[str], quotes: Iterable[tuple[str, str]], registry: Registry
               ) -> tuple[list[Any], dict[str, Token]]:
    """The venues a log can price: its registry pools, then the CEX instruments ``CEX_INSTRUMENTS``
    knows (venue, instrument) in the order first seen; and every token they trade."""
    tokens: dict[str, Token] = {}
    specs = []
    for address in log_pools:
        spec = registry.find(address)
        if spec is None:
            continue
        specs.append(spec)
        for a in (spec.token0, spec.token1):
            tokens.setdefault(a.address.value, Token(a.address.value, a.symbol, a.decimals))
    venues: list[Any] = list(pool_venues(specs))
    known = {t.address: t for t in tokens.values()}
    symbols = {USDC: ("USDC", 6), USDT: ("USDT", 6), WETH: ("WETH", 18)}
    for venue, instrument in quotes:
        ids = CEX_INSTRUMENTS.get(instrument)
        if ids is None:
            continue
        base, quote, bd, qd = ids
        for t, d in ((base, bd), (quote, qd)):
            if t not in known:
                known[t] = tokens[t] = Token(t, symbols.get(t, (t[:8], d))[0], d)
        venues.append(BookVenue(venue, instrument, base, quote, bd, qd, CEX_TAKER_FEE_PIPS.get(venue, 1000)))
    return venues, tokens


def log_inputs(path: str | Path, registry: Registry | None = None) -> tuple[list[ev.Event], list[Any], dict[str, Token]]:
    """A log's inputs, and the venues (``venues_for``) and tokens they price, in the order first seen."""
    with EventLog.open(path) as log:
        events = [e for e in log.events() if e.KIND == ev.INPUT]
    pools: dict[str, None] = {}
    books: dict[tuple[str, str], None] = {}
    for e in events:
        p = getattr(e, "pool", None)
        if p is not None:
            pools.setdefault(p, None)
        elif type(e) in (ev.QuoteUpdated, ev.BookDepthUpdated):
            books.setdefault((e.venue, e.instrument), None)  # type: ignore[attr-defined]
    venues, tokens = venues_for(pools, books, registry or load_registry())
    return events, venues, tokens


def load_cache(path: str | Path, *, registry: Registry | None = None, **options: Any) -> PoolCache:
    """A ``PoolCache`` with every input of the log folded (the responses built once, at the end)."""
    events, venues, tokens = log_inputs(path, registry)
    cache = PoolCache(venues, tokens, **options)
    for e in events:
        cache.feed(e, refresh=False)
    cache.refresh()
    return cache


# ----------------------------------------------------------------------------- the ASGI app


def build_app(cache: PoolCache, cors: Sequence[str] = ()) -> Any:
    """Starlette routes over the cache (bytes in, bytes out); CORS only for the origins given."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import Response
    from starlette.routing import Route

    def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
        return Response(_dumps({"error": message, "status": status}), status_code=status, headers=headers,
                        media_type=JSON)

    async def health(request: Request) -> Response:
        return Response(cache.health(), media_type=JSON)

    async def prices(request: Request) -> Response:
        return Response(cache.prices_body, media_type=JSON)

    async def prices_pair(request: Request) -> Response:
        body = cache.pair(request.path_params["pair"])
        if body is None:
            return error(404, f"unknown pair {request.path_params['pair']!r:.60} "
                              f"(known: {', '.join(cache.known_pairs())})")
        return Response(body, media_type=JSON)

    async def body(request: Request) -> bytes:
        """The body, refused (413) past ``SCAN_BODY_LIMIT`` without reading it all: by its
        Content-Length before any of it is read, and as it streams in (chunked)."""
        length = request.headers.get("content-length", "0")
        if not (length.isascii() and length.isdigit()):
            raise BadRequest(400, f"Content-Length is not a number of bytes: {length!r:.40}")
        if len(length) > 12 or int(length) > SCAN_BODY_LIMIT:
            raise _too_large(f"{length:.12}" + ("..." if len(length) > 12 else ""))
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > SCAN_BODY_LIMIT:
                raise _too_large(f"more than {SCAN_BODY_LIMIT}")
            chunks.append(chunk)
        return b"".join(chunks)

    async def scan(request: Request) -> Response:
        try:
            return Response(cache.scan(await body(request)), media_type=JSON)
        except BadRequest as e:
            # a refused body is not read to its end: close the connection rather than read the rest
            return error(e.status, str(e), {"connection": "close"} if e.status == 413 else None)
        except ClientDisconnect:
            return error(400, "the client went away before the body ended")

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        headers = getattr(exc, "headers", None)
        if status == 404:
            message = f"no such path {request.url.path!r:.60} (paths: {PATHS})"
        elif status == 405:  # the route's Allow (RFC 9110 15.5.6), in a fixed order (Starlette joins a set)
            headers = {**(headers or {}), "Allow": ", ".join(sorted((headers or {}).get("Allow", "").split(", ")))}
            message = f"method not allowed: {request.method:.20} (allowed: {headers['Allow']})"
        else:
            message = str(getattr(exc, "detail", exc))
        return error(status, message, headers)

    class JSONCORSMiddleware(CORSMiddleware):
        """Starlette's CORS, with a refused preflight said in JSON like every other 4xx."""

        def preflight_response(self, request_headers: Any) -> Response:
            response = super().preflight_response(request_headers)
            if response.status_code < 400:
                return response
            headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
            return error(response.status_code, f"{bytes(response.body).decode()} (allowed: origins {', '.join(cors)}; "
                                               f"methods GET, POST; headers content-type)", headers)

    middleware = [Middleware(JSONCORSMiddleware, allow_origins=list(cors), allow_methods=["GET", "POST"],
                             allow_headers=["content-type"])] if cors else []
    app = Starlette(routes=[Route("/health", health), Route("/prices", prices),
                            Route("/prices/{pair}", prices_pair), Route("/scan-arbitrage", scan, methods=["POST"])],
                    middleware=middleware, exception_handlers={HTTPException: http_error})
    app.router.redirect_slashes = False  # /prices/ is no path (a JSON 404), not a 307 with an empty body
    return app


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound and listening on ``host:port`` (its first address; port 0: a free one), to
    hand uvicorn (``Server.run(sockets=[...])``): bound before anything says it serves, and its real
    port known. ``OSError`` (``socket.gaierror`` for a host that does not resolve) or ``ValueError``
    (a host name IDNA refuses) when it cannot be had."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    return socket.create_server(address, family=family)


def uvicorn_config(app: Any, host: str = "127.0.0.1", port: int = 8080, **extra: Any) -> Any:
    """uvicorn with httptools and uvloop (measured well here, ../shared/reference/STACK.md), no access log."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, http="httptools", loop="uvloop", access_log=False,
                          log_level="warning", lifespan="off", **extra)
