"""Local WebSocket servers that play back real venue recordings, for the live feeds' tests and benchmark.

Each server binds 127.0.0.1 on an ephemeral port, answers the venue's subscription protocol, and
sends the recorded frames (``../shared/data``, or ``$TAPEDECK_DATA``; hftbacktest's
``<local_recv_ns> <raw JSON>`` lines) byte for byte, in file order, only to a client subscribed to
the frame's stream, at a chosen pace: ``rate`` frames per second, ``speed`` times the recorded
gaps, or (both 0) as fast as the socket takes them. One cursor is shared by all connections, as a
venue's stream goes on while a client is away: after a drop, a reconnecting client gets the frames
from where the cursor is. ``drop()`` (or ``drop_at=`` frame indices) ends the connection the way a
network does: no close frame, the TCP stream just ends (after what was already written
has left, so a test can count every frame); ``done`` is set once every frame was sent.

* :class:`BinancePlayback`: ``{"method": "SUBSCRIBE", "params": ["ethusdt@bookTicker", ...], "id": n}``
  -> ``{"result": null, "id": n}``; combined-stream frames ``{"stream", "data"}``; the recording's one
  REST depth snapshot line is served where Binance serves it, ``GET /api/v3/depth?symbol=...``
  on the same port (so ``depth_snapshot_url`` can point here), not on the socket. Pings: the
  ``websockets`` server pings as Binance does.
* :class:`HyperliquidPlayback`: ``{"method": "subscribe", "subscription": {"type", "coin"|"user"}}``
  -> ``{"channel": "subscriptionResponse", "data": {...}}``; ``{"method": "ping"}`` ->
  ``{"channel": "pong"}`` (counted in ``pings``); a ``userFills`` subscription is answered first
  with the ``isSnapshot: true`` message of ``user_fills`` (the fills the account had), as the venue
  does, and an ``l2Book`` subscription made after play began is answered with the latest recorded
  book (counted in ``snapshots_sent``, like the fills snapshot); ``idle_timeout`` closes a connection that sent nothing for that long (the venue: 60 s).
  Frames are sent to a client subscribed to their ``(channel, coin)`` (user channels: ``user``).
* :class:`SolanaPlayback`: ``accountSubscribe`` -> ``{"result": <sub id>, "id": n}``, then
  ``accountNotification`` frames (agave's shape, built by ``adapters.solana_accounts``) of the
  configured account updates in order; a JSON-RPC HTTP server beside it (``http_url``) answers
  ``getMultipleAccounts`` with each account's latest state (``after_refresh``: a connection's
  notifications start only once it asked, so a test knows which state the refresh saw; the answer
  and the first notifications still race, as they do with a real node). No Solana recording is in the shared
  data: the updates are given by the caller (real account bytes where a test has them).

Recordings are read, never copied: :func:`recording` resolves a name under the data folder and
says what is missing.
"""
from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame as Frame_, Opcode
from websockets.protocol import State
from websockets.http11 import Request, Response

ROOT = Path(__file__).resolve().parent.parent
BINANCE_RECORDING = "binance-ethusdt-ws-2024-08-08/spot_ethusdt_20240808.gz"
HYPERLIQUID_RECORDING = "hyperliquid-btc-ws-2025-01-26/btcusd_20250126.gz"


def data_dir() -> Path:
    return Path(os.environ.get("TAPEDECK_DATA") or ROOT.parent / "shared" / "data")


def recording(relative: str) -> Path:
    """The path of a shared recording; ``FileNotFoundError`` saying where it was looked for."""
    p = data_dir() / relative
    if not p.is_file():
        raise FileNotFoundError(f"recording {p} not present (set TAPEDECK_DATA to the shared data folder)")
    return p


@dataclass(frozen=True)
class Frame:
    recv_ns: int  # the recording's local receive time (-1: the line had none)
    body: str  # the raw frame, exactly as recorded


def read_frames(path: str | Path) -> list[Frame]:
    """Every non-empty line of an hftbacktest recording (gzip or plain) as a :class:`Frame`."""
    path = Path(path)
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    out: list[Frame] = []
    with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
        for line in f:
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if not text.strip():
                continue
            head, _, body = text.partition(" ")
            out.append(Frame(int(head) if head.isdigit() else -1, body if _ else text))
    return out


class _Pace:
    """When each frame of one connection's play is due, in loop time: ``rate`` frames a second, else
    ``speed`` times the recorded gaps, else now."""

    def __init__(self, rate: float, speed: float, start: float) -> None:
        self.rate, self.speed, self.start = rate, speed, start
        self.first: int | None = None

    def due(self, f: Frame, n_here: int) -> float:
        if self.rate > 0:
            return self.start + n_here / self.rate
        if self.speed > 0 and f.recv_ns > 0:
            if self.first is None:
                self.first = f.recv_ns
            return self.start + (f.recv_ns - self.first) / 1e9 / self.speed
        return 0.0


class Playback:
    """The shared part: one server, one cursor over ``frames``, pacing, drops."""

    def __init__(self, frames: Sequence[Frame], *, rate: float = 0.0, speed: float = 0.0,
                 drop_at: Iterable[int] = (), start_on_subscribe: int = 1, repeat: int = 1) -> None:
        self.frames = list(frames) * max(1, repeat)  # repeat: the recording again and again (benchmarks)
        self.rate, self.speed = float(rate), float(speed)
        self.drop_at = set(drop_at)
        self.start_on_subscribe = start_on_subscribe  # subscriptions a client makes before play starts
        self.cursor = 0
        self.sent = 0  # frames written to a client
        self.skipped: Counter[str] = Counter()  # frames no client was subscribed to, by stream
        self.connections: set[ServerConnection] = set()
        self.connects = 0
        self.subscribes: list[Any] = []  # every subscription request, in order
        self.done = asyncio.Event()
        self.dropped = 0
        self._server: Server | None = None
        self.port = 0
        self._wire_frames: list[bytes] | None = None  # see ``_wire``
        self._keys: list[Any] = []

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> Playback:
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._http, ping_interval=20,
                                   max_size=2**24, compression=self.compression)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.path}"

    path = "/ws"
    compression: str | None = None  # no permessage-deflate unless a subclass says the venue offers it

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Playback:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def drop(self) -> None:
        """End every open connection now, as a network failure does (no close frame)."""
        for ws in list(self.connections):
            asyncio.get_running_loop().create_task(self._abort(ws))

    # ------------------------------------------------------------------ per venue

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        return None

    async def on_message(self, ws: ServerConnection, msg: Any, subs: set[Any]) -> None:
        raise NotImplementedError

    def key(self, frame: Frame) -> Any:
        """The subscription a frame needs (None: never sent on the socket)."""
        raise NotImplementedError

    def render(self, frame: Frame, ws: ServerConnection) -> str:
        return frame.body

    def before_connect(self) -> Any:
        return None

    async def before_play(self, mark: Any) -> None:
        """After a client's subscriptions, before the frames flow (default: nothing)."""

    # ------------------------------------------------------------------ serving

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections.add(ws)
        self.connects += 1
        subs: set[Any] = set()
        ready = asyncio.Event()
        reader = asyncio.create_task(self._listen(ws, subs, ready))
        mark = self.before_connect()
        waits = [asyncio.create_task(ready.wait()), asyncio.create_task(ws.wait_closed())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if not ready.is_set():
                return  # closed before it subscribed
            await self.before_play(mark)
            await self._play(ws, subs)
        except ConnectionClosed:
            pass
        finally:
            for t in (reader, *waits):
                t.cancel()
            await asyncio.gather(reader, *waits, return_exceptions=True)
            self.connections.discard(ws)

    async def _listen(self, ws: ServerConnection, subs: set[Any], ready: asyncio.Event) -> None:
        asked = 0  # subscription requests on this connection
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    await ws.send(json.dumps({"error": "not JSON"}))
                    continue
                before = len(self.subscribes)
                await self.on_message(ws, msg, subs)
                asked += len(self.subscribes) - before
                if asked >= self.start_on_subscribe:
                    ready.set()
        except ConnectionClosed:
            pass

    async def _abort(self, ws: ServerConnection) -> None:
        transport = ws.transport
        while transport.get_write_buffer_size():  # what was written leaves first: a test can count it
            await asyncio.sleep(0.001)
        self.dropped += 1
        # No close frame: the TCP stream just ends (FIN after what was written). Not an abort, which
        # resets the connection when the client's pings are unread here and makes the client's
        # kernel throw away frames it already received: then no test could count them.
        if transport.can_write_eof():
            transport.write_eof()
            try:
                await asyncio.wait_for(ws.wait_closed(), 10)
            except TimeoutError:
                pass
        transport.abort()

    def _subscribed(self, key: Any, subs: set[Any]) -> bool:
        """Whether a frame of subscription ``key`` goes to this client (else it is counted skipped)."""
        if key is None:
            self.skipped["(not on the socket)"] += 1
            return False
        if key not in subs:
            self.skipped[str(key)] += 1
            return False
        return True

    def _wire(self) -> list[bytes] | None:
        """Every frame as the bytes a server writes for it (a text frame, unmasked, built once by
        ``websockets.frames.Frame.serialize``), when ``render`` sends the body as recorded; None when a
        subclass renders per connection (Solana's subscription ids)."""
        if type(self).render is not Playback.render:
            return None
        if self._wire_frames is None:
            self._wire_frames = [Frame_(Opcode.TEXT, f.body.encode()).serialize(mask=False) for f in self.frames]
            self._keys = [self.key(f) for f in self.frames]
        return self._wire_frames

    async def _play(self, ws: ServerConnection, subs: set[Any]) -> None:
        """Send the frames from the cursor. With pre-built frames (``_wire``) every frame that is due
        goes out in one write to the socket (the playback's own CPU must stay small beside the client it
        feeds on a shared machine); a frame is counted ``sent`` once written."""
        wire = self._wire()
        if wire is not None and not self.drop_at:
            await self._play_wire(ws, subs, wire)
            return
        loop = asyncio.get_running_loop()
        pace = _Pace(self.rate, self.speed, loop.time())
        n_here = 0
        while self.cursor < len(self.frames):
            i = self.cursor
            if i in self.drop_at:
                self.drop_at.discard(i)
                await self._abort(ws)
                return
            f = self.frames[i]
            wait = pace.due(f, n_here) - loop.time()
            if wait > 0.0005:
                await asyncio.sleep(wait)
            self.cursor = i + 1
            if not self._subscribed(self.key(f), subs):
                continue
            try:
                await ws.send(self.render(f, ws))
            except ConnectionClosed:
                self.cursor = i  # not sent: the next connection gets it
                raise
            self.sent += 1
            n_here += 1
            if n_here % 64 == 0:
                await asyncio.sleep(0)
        self.done.set()
        await ws.wait_closed()

    async def _play_wire(self, ws: ServerConnection, subs: set[Any], wire: list[bytes]) -> None:
        loop = asyncio.get_running_loop()
        transport = ws.transport
        pace = _Pace(self.rate, self.speed, loop.time())
        n_here = 0
        keys, frames, total = self._keys, self.frames, len(self.frames)
        while self.cursor < total:
            now = loop.time()
            chunk: list[bytes] = []
            wait, begin = 0.0, self.cursor
            while self.cursor < total and len(chunk) < 256:  # what is due now, in one write
                i = self.cursor
                wait = pace.due(frames[i], n_here) - now
                if wait > 0.0005:
                    break
                self.cursor = i + 1
                if not self._subscribed(keys[i], subs):
                    continue
                chunk.append(wire[i])
                n_here += 1
            if chunk:
                if ws.protocol.state is not State.OPEN:
                    self.cursor = begin  # not written: the next connection gets them
                    await ws.send("")  # raises ConnectionClosed, as the per-frame path does
                transport.write(b"".join(chunk))
                self.sent += len(chunk)
                while transport.get_write_buffer_size() > 1 << 20 and ws.protocol.state is State.OPEN:
                    await asyncio.sleep(0.001)  # the client reads slower than we play: TCP backpressure
            if wait > 0.0005:
                await asyncio.sleep(wait)
            else:
                await asyncio.sleep(0)
        self.done.set()
        await ws.wait_closed()


# ----------------------------------------------------------------------------- Binance


class BinancePlayback(Playback):
    """Binance's combined-stream endpoint over a recording (module docstring)."""

    path = "/stream"

    def __init__(self, frames: Sequence[Frame] | None = None, **kw: Any) -> None:
        frames = read_frames(recording(BINANCE_RECORDING)) if frames is None else frames
        super().__init__(frames, **kw)
        self.snapshots: dict[str, str] = {}  # SYMBOL -> REST depth snapshot body
        self.snapshot_requests = 0
        symbol = next((json.loads(f.body)["data"]["s"] for f in self.frames if '"stream"' in f.body[:12]), "")
        for f in self.frames:
            if f.body.startswith('{"lastUpdateId"') and symbol:
                self.snapshots[symbol.upper()] = f.body

    @property
    def depth_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v3/depth?symbol={{symbol}}&limit=1000"

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path != "/api/v3/depth":
            return None
        self.snapshot_requests += 1
        symbol = parse_qs(parts.query).get("symbol", [""])[0].upper()
        body = self.snapshots.get(symbol)
        if body is None:
            return Response(HTTPStatus.BAD_REQUEST, "Bad Request", Headers({"Content-Type": "application/json"}),
                            b'{"code":-1121,"msg":"Invalid symbol."}')
        return Response(HTTPStatus.OK, "OK", Headers({"Content-Type": "application/json"}), body.encode())

    def key(self, frame: Frame) -> Any:
        if frame.body.startswith('{"stream":"'):
            return frame.body[11:frame.body.index('"', 11)]
        return None  # the REST snapshot: served over HTTP

    async def on_message(self, ws: ServerConnection, msg: Any, subs: set[Any]) -> None:
        method = msg.get("method") if isinstance(msg, dict) else None
        rid = msg.get("id") if isinstance(msg, dict) else None
        if method == "SUBSCRIBE" and isinstance(msg.get("params"), list):
            self.subscribes.append(list(msg["params"]))
            subs.update(str(p) for p in msg["params"])
            await ws.send(json.dumps({"result": None, "id": rid}))
        elif method == "UNSUBSCRIBE" and isinstance(msg.get("params"), list):
            subs.difference_update(str(p) for p in msg["params"])
            await ws.send(json.dumps({"result": None, "id": rid}))
        elif method == "LIST_SUBSCRIPTIONS":
            await ws.send(json.dumps({"result": sorted(subs), "id": rid}))
        else:
            await ws.send(json.dumps({"error": {"code": 2, "msg": "Invalid request: unknown method"}, "id": rid}))


# ----------------------------------------------------------------------------- Hyperliquid


class HyperliquidPlayback(Playback):
    """Hyperliquid's ``/ws`` over a recording (module docstring)."""

    path = "/ws"

    def __init__(self, frames: Sequence[Frame] | None = None, *, user_fills: Sequence[dict[str, Any]] = (),
                 idle_timeout: float = 60.0, **kw: Any) -> None:
        frames = read_frames(recording(HYPERLIQUID_RECORDING)) if frames is None else frames
        super().__init__(frames, **kw)
        self.user_fills = list(user_fills)
        self.idle_timeout = idle_timeout
        self.pings = 0
        self.snapshots_sent = 0

    def key(self, frame: Frame) -> Any:
        try:
            msg = json.loads(frame.body)
            channel, data = msg["channel"], msg["data"]
        except (ValueError, KeyError, TypeError):
            return None
        if channel in ("userFills", "orderUpdates", "userFundings"):
            user = data.get("user") if isinstance(data, dict) else None
            return (channel, str(user).lower()) if user else (channel, "*")
        row = data[0] if isinstance(data, list) and data else data
        coin = row.get("coin") if isinstance(row, dict) else None
        if channel == "activeSpotAssetCtx":  # the venue's answer to an activeAssetCtx subscription of a spot coin
            channel = "activeAssetCtx"
        return (channel, coin)

    async def on_message(self, ws: ServerConnection, msg: Any, subs: set[Any]) -> None:
        ws.last_heard = asyncio.get_running_loop().time()  # type: ignore[attr-defined]
        if not isinstance(msg, dict):
            await ws.send(json.dumps({"channel": "error", "data": "Invalid request"}))
            return
        method = msg.get("method")
        if method == "ping":
            self.pings += 1
            await ws.send('{"channel":"pong"}')
            return
        sub = msg.get("subscription")
        if method not in ("subscribe", "unsubscribe") or not isinstance(sub, dict) or "type" not in sub:
            await ws.send(json.dumps({"channel": "error", "data": f"Invalid subscription {json.dumps(msg)[:200]}"}))
            return
        kind = sub["type"]
        who = str(sub.get("user", "")).lower() if kind in ("userFills", "orderUpdates", "userFundings") else None
        key = (kind, who) if who is not None else (kind, sub.get("coin"))
        if method == "unsubscribe":
            subs.discard(key)
        else:
            self.subscribes.append(sub)
            subs.add(key)
            if who is not None:
                subs.add((kind, "*"))
        await ws.send(json.dumps({"channel": "subscriptionResponse", "data": {"method": method, "subscription": sub}}))
        if method == "subscribe" and kind == "l2Book":  # the venue's first l2Book message: the book now
            last = next((f for f in reversed(self.frames[:self.cursor]) if self.key(f) == key), None)
            if last is not None:
                self.snapshots_sent += 1
                await ws.send(last.body)
        if method == "subscribe" and kind == "userFills":
            self.snapshots_sent += 1
            await ws.send(json.dumps({"channel": "userFills", "data": {"isSnapshot": True, "user": sub.get("user"),
                                                                       "fills": self.user_fills}}))

    def render(self, frame: Frame, ws: ServerConnection) -> str:
        return frame.body

    async def _handle(self, ws: ServerConnection) -> None:
        ws.last_heard = asyncio.get_running_loop().time()  # type: ignore[attr-defined]
        idle = asyncio.create_task(self._idle(ws))
        try:
            await super()._handle(ws)
        finally:
            idle.cancel()

    async def _idle(self, ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            left = ws.last_heard + self.idle_timeout - loop.time()  # type: ignore[attr-defined]
            if left <= 0:
                await ws.close(1000, "idle")
                return
            await asyncio.sleep(left)


# ----------------------------------------------------------------------------- Solana


@dataclass(frozen=True)
class AccountUpdate:
    pubkey: str
    owner: str
    slot: int
    data: bytes
    lamports: int = 2_039_280


class SolanaPlayback(Playback):
    """A Solana RPC pubsub endpoint (and its HTTP JSON-RPC beside it) over given account updates."""

    path = "/"

    def __init__(self, updates: Sequence[AccountUpdate], *, initial: Sequence[AccountUpdate] = (),
                 after_refresh: bool = False, **kw: Any) -> None:
        frames = [Frame(u.slot, str(i)) for i, u in enumerate(updates)]
        kw.setdefault("start_on_subscribe", len({u.pubkey for u in (*updates, *initial)}))
        super().__init__(frames, **kw)
        self.updates = list(updates)
        self.latest: dict[str, AccountUpdate] = {u.pubkey: u for u in initial}
        self.slot = max((u.slot for u in initial), default=0)
        self._next_sub = 100
        self.http_requests: list[Any] = []
        self.after_refresh = after_refresh  # tests: notifications flow only once the client refreshed
        self._refreshed = asyncio.Condition()
        self._http_runner: Any = None
        self.http_port = 0

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"

    async def start(self) -> SolanaPlayback:
        from aiohttp import web

        await super().start()
        app = web.Application()
        app.router.add_post("/", self._rpc)
        self._http_runner, self.http_port = await serve_loopback(app)
        return self

    async def stop(self) -> None:
        await super().stop()
        if self._http_runner is not None:
            await self._http_runner.cleanup()
            self._http_runner = None

    @staticmethod
    def _account(u: AccountUpdate | None) -> dict[str, Any] | None:
        if u is None:
            return None
        return {"data": [base64.b64encode(u.data).decode(), "base64"], "executable": False, "lamports": u.lamports,
                "owner": u.owner, "rentEpoch": 18446744073709551615, "space": len(u.data)}

    async def _rpc(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.json()
        self.http_requests.append(body)
        async with self._refreshed:
            self._refreshed.notify_all()
        if body.get("method") != "getMultipleAccounts":
            return web.json_response({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"},
                                      "id": body.get("id")})
        keys = body["params"][0]
        return web.json_response({"jsonrpc": "2.0", "id": body.get("id"), "result": {
            "context": {"slot": self.slot}, "value": [self._account(self.latest.get(k)) for k in keys]}})

    def key(self, frame: Frame) -> Any:
        return self.updates[int(frame.body)].pubkey

    def before_connect(self) -> Any:
        return len(self.http_requests)

    async def before_play(self, mark: Any) -> None:
        if self.after_refresh:
            async with self._refreshed:
                await self._refreshed.wait_for(lambda: len(self.http_requests) > mark)

    async def on_message(self, ws: ServerConnection, msg: Any, subs: set[Any]) -> None:
        if not isinstance(msg, dict) or msg.get("method") != "accountSubscribe":
            rid = msg.get("id") if isinstance(msg, dict) else None
            await ws.send(json.dumps({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"},
                                      "id": rid}))
            return
        key = msg["params"][0]
        self.subscribes.append(key)
        self._next_sub += 1
        sub_ids = ws.__dict__.setdefault("sub_ids", {})
        sub_ids[key] = self._next_sub
        subs.add(key)
        await ws.send(json.dumps({"jsonrpc": "2.0", "result": self._next_sub, "id": msg.get("id")}))

    def render(self, frame: Frame, ws: ServerConnection) -> str:
        from tapedeck.adapters.solana_accounts import account_notification

        u = self.updates[int(frame.body)]
        self.latest[u.pubkey] = u
        self.slot = max(self.slot, u.slot)
        return account_notification(ws.__dict__["sub_ids"][u.pubkey], u.slot, u.owner, u.data, lamports=u.lamports)


async def serve_loopback(app: Any) -> tuple[Any, int]:
    """Serve an aiohttp ``app`` on 127.0.0.1 at a free port: (its runner, to ``cleanup()``; the port).
    The local venues, relays and RPC proxies of the tests start this way."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
