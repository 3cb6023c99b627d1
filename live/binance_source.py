"""The live Binance market-data source, and the WebSocket feed machinery the other feeds share.

**Binance** (``BinanceSource``): one combined-stream connection (``wss://stream.binance.com:9443/stream``)
that, once open, sends ``{"method": "SUBSCRIBE", "params": ["ethusdt@bookTicker", ...], "id": n}``
for every configured symbol and stream (``bookTicker``, ``trade``, ``depth@100ms``), so a reconnect
is an explicit resubscription. Every frame goes through ``adapters.binance_ws.FrameParser`` (the
parser of the recordings, with its depth sequencing), so a live frame and a recorded one become the
same events. With ``depth_snapshot_url`` set (Binance's ``/api/v3/depth?symbol={symbol}&limit=1000``)
the REST snapshot is fetched after every (re)subscription, which puts the depth book back in sync;
without it a depth book stays unsynced (the parser records the gap) and quotes/trades are unaffected.
Binance pings the client; ``websockets`` answers them.

**The shared feed** (``WsFeed``, used by ``live/hyperliquid_source.py`` and ``live/solana_source.py``):

* ``run(emit, stop)`` connects, calls the feed's ``subscribe``, reads frames until the socket
  closes or ``stop`` is set, and reconnects with ``live.base.Backoff`` (full jitter, reset once a
  connection has delivered a frame). It says so in the log: ``SourceConnectionChanged`` "connected"
  (``attempt`` = the reconnect attempt since the feed last delivered a frame, 0 the first connect), "resubscribed" after a reconnect's
  subscriptions are sent, "disconnected" with the error; and on every disconnect a ``SourceStale``
  naming the feed's venues (and depth books), which the core's freshness rule folds (not when the
  runner stopped it: the run ends there).
* ``ts`` of every event is the runner's ``Clock`` at receive time; the venue's time is ``venue_ts``.
* Every frame becomes events, or one recorded ``InputRejected`` (the parsers never raise); acks and
  pongs are counted as ``control`` frames. Nothing in a frame can crash the source: an unexpected
  exception in a parser is itself a rejection naming it.
* **Flood control** (``FeedQueue``): the socket reader parses and puts events into a bounded queue
  (``queue_limit`` events, default 10,000); a separate pump task emits them to the runner, yielding to
  the loop every ``batch`` events. When the emit side falls behind:

  - while the queue has room every event is queued: nothing is conflated or dropped;
  - when it is full, a *state* event (top of book ``QuoteUpdated``, ``MarkPriceUpdated``, a
    Hyperliquid ``l2Book`` snapshot, a Solana account state) is **conflated**: it replaces the newest
    queued one of the same (type, venue, instrument or account), which leaves the queue, and it
    takes its own place at the tail: the log keeps the receive order and never shows a state
    before it arrived, it just skips the states nobody had time to read (counted in ``conflated``);
  - anything else (trades, depth diffs, rejections, a state event with nothing queued to replace)
    arriving while the queue is full is **dropped and
    recorded**: the drops are gathered in one overflow marker, queued where the first of them was
    dropped and taking every drop until the queue has room again; it emits a
    ``SourceStale`` for the books and venues whose events were lost, then an ``InputRejected``
    (``origin`` ``<name>:queue``) counting them by type with the first and last trade ids (``dropped``);
  - ``after_batch`` (optional; the live runner sets it to its group commit, ``live.base``) is called
    after each pump turn (at most ``batch`` events, or when the queue ran dry) and after the last
    drain: an event's commit waits for its turn, not for a timer, and once it returns the turn's
    events are acknowledged (``acked`` in ``health()``: durable in the run's log);
  - ``ack_after`` (the live runner sets it too, ``live.base``) makes that commit pipelined: at the end
    of a turn the pump asks for the commit and goes on (the socket keeps being read while SQLite
    fsyncs on the log's thread); the turn is acknowledged when its future resolves, never before,
    and a failed commit acknowledges nothing more (the pump raises at its next turn). With a
    queue's worth (``queue_limit``) emitted and not yet acknowledged the pump waits for the log, so
    what waits for its commit stays bounded as well;
  - account events (``AccountFillReported``, ``AccountOrderUpdated``) and the feed's own connection
    events are **never dropped**: they bypass the bound (user streams are a few messages a second;
    a fill must not be lost to a market-data flood).

  So the queue holds at most ``queue_limit + 1`` market entries (plus account events), and the log's
  lag behind the socket is at most a queue's worth of emits; what a flood costs is recorded, never
  silent.
"""
from __future__ import annotations

import asyncio
import json
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake, InvalidURI

from tapedeck.adapters import binance_ws
from tapedeck.domain import events as ev
from tapedeck.domain.book_depth import depth_id
from tapedeck.live.base import Backoff, Clock, Emit
from tapedeck.live.redact import redact_in

DEFAULT_QUEUE_LIMIT = 10_000
DEFAULT_BATCH = 64  # events per pump turn, frames per reader turn: the most an event waits on the other side
_NEVER_DROPPED = (ev.AccountFillReported, ev.AccountOrderUpdated, ev.SourceConnectionChanged, ev.SourceStale)


class FeedConfigError(ValueError):
    """A ``[[sources]]`` table that cannot build a feed; the message names the key."""


# ----------------------------------------------------------------------------- the bounded queue


class _Overflow:
    """Events dropped while the queue was full, gathered at one place of the queue."""

    __slots__ = ("by_type", "ids", "stale", "first_ts", "last_ts")

    def __init__(self) -> None:
        self.by_type: Counter[str] = Counter()
        self.ids: dict[str, list[str]] = {}  # "venue instrument" -> [first, last] trade id dropped
        self.stale: dict[str, None] = {}  # ids whose state is unknown now (ordered, no duplicates)
        self.first_ts = self.last_ts = 0

    def add(self, e: ev.Event) -> None:
        self.by_type[type(e).__name__] += 1
        self.first_ts = self.first_ts or e.ts
        self.last_ts = e.ts
        venue, instrument = getattr(e, "venue", ""), getattr(e, "instrument", "")
        if isinstance(e, ev.TradePrinted):
            span = self.ids.setdefault(f"{venue} {instrument}", [e.trade_id, e.trade_id])
            span[1] = e.trade_id
        if isinstance(e, ev.BookDepthUpdated):
            self.stale[depth_id(venue, instrument)] = None
        elif venue:
            self.stale[venue] = None

    def events(self, name: str, source: str) -> list[ev.Event]:
        """The records of the drops, at the receive time of the first (where the marker stands in
        the receive order: everything before it arrived earlier, everything after it later)."""
        ts = self.first_ts
        n = sum(self.by_type.values())
        counts = ", ".join(f"{v} {k}" for k, v in sorted(self.by_type.items()))
        ids = "; ".join(f"{k} trade ids {a}..{b}" for k, (a, b) in sorted(self.ids.items()))
        reason = f"queue full: dropped {n} event(s) received {self.first_ts}..{self.last_ts} ns: {counts}"
        raw = json.dumps({"dropped": dict(sorted(self.by_type.items())), "trade_ids": self.ids,
                          "received": [self.first_ts, self.last_ts]}, sort_keys=True)
        out: list[ev.Event] = []
        if self.stale:
            out.append(ev.SourceStale(ts=ts, source=source, venues=tuple(self.stale),
                                      reason=f"{name}: {n} event(s) dropped by a full queue"))
        out.append(ev.InputRejected(ts=ts, source=source, origin=f"{name}:queue",
                                    reason=reason + (f" ({ids})" if ids else ""), raw=raw))
        return out


def conflation_key(e: ev.Event) -> tuple[Any, ...] | None:
    """What a newer event of the same key supersedes in the queue (None: never conflated)."""
    t = type(e)
    if t is ev.QuoteUpdated or t is ev.MarkPriceUpdated:
        return (t, e.venue, e.instrument)  # type: ignore[attr-defined]
    if t is ev.BookDepthUpdated and e.snapshot and e.source != binance_ws.SOURCE:  # type: ignore[attr-defined]
        return (t, e.venue, e.instrument)  # type: ignore[attr-defined]  # a full book replaces a full book
    if t is ev.RaydiumPoolSynced or t is ev.WhirlpoolSynced:
        return (t, e.pool)  # type: ignore[attr-defined]
    if t is ev.SplTokenAccountSynced or t is ev.WhirlpoolTickArraySynced:
        return (t, e.account)  # type: ignore[attr-defined]
    return None


class FeedQueue:
    """The bounded queue between a socket and the runner's ``emit`` (see the module docstring).

    Entries keep the order they were received in (an ``OrderedDict`` by arrival number): a
    conflated state leaves its old place and takes the newest one, so the log's order is still
    the receive order and no state is seen before it arrived."""

    def __init__(self, limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"queue_limit must be >= 1, got {limit}")
        self.limit = limit
        self._slots: OrderedDict[int, tuple[Any, bool]] = OrderedDict()  # n -> (event or _Overflow, counted)
        self._keyed: dict[tuple[Any, ...], int] = {}  # conflation key -> n of its queued entry
        self._n = 0
        self._market = 0  # entries that count against the limit
        self._open: _Overflow | None = None  # the marker drops go to until the queue has room again
        self.high = 0  # the most market entries ever held
        self.conflated = 0
        self.dropped = 0
        self.ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._slots)

    def counted(self) -> int:
        """Entries that count against the limit now (market events and overflow markers)."""
        return self._market

    def put(self, e: ev.Event) -> None:
        self._n += 1
        n = self._n
        if isinstance(e, _NEVER_DROPPED):
            self._slots[n] = (e, False)
            self.ready.set()
            return
        key = conflation_key(e)
        if self._market < self.limit:
            self._open = None  # room again: a later drop starts a marker of its own
            self._slots[n] = (e, True)
            self._market += 1
            if key is not None:
                self._keyed[key] = n  # the newest queued entry of its key
        elif key is not None and key in self._keyed:
            del self._slots[self._keyed[key]]  # full: the newest state replaces the queued one, at the tail
            self._slots[n] = (e, True)
            self._keyed[key] = n
            self.conflated += 1
        else:
            self.dropped += 1
            if self._open is None:  # the first drop since the queue last had room: a marker here
                self._open = _Overflow()
                self._slots[n] = (self._open, True)
                self._market += 1
            self._open.add(e)
        if self._market > self.high:
            self.high = self._market
        self.ready.set()

    def pop(self) -> ev.Event | _Overflow | None:
        if not self._slots:
            self.ready.clear()
            return None
        n, (item, counted) = self._slots.popitem(last=False)
        if counted:
            self._market -= 1
        if item is self._open:
            self._open = None
        elif not isinstance(item, _Overflow):
            key = conflation_key(item)
            if key is not None and self._keyed.get(key) == n:
                del self._keyed[key]
        return item  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- the feed


@dataclass
class FeedStats:
    frames: int = 0  # frames read off the socket (and REST snapshots fetched)
    control: int = 0  # good frames that carry no input (acks, pongs)
    events: int = 0  # events the parsers made from frames (rejections included)
    rejected: int = 0  # frames (or accounts) refused: each one InputRejected
    emitted: int = 0  # events handed to emit (the feed's own and overflow records included)
    acked: int = 0  # of those, the ones ``after_batch`` returned for (durable in the runner's log)
    connects: int = 0
    disconnects: int = 0
    last_error: str = ""
    by_type: Counter = field(default_factory=Counter)  # emitted, by event type


class WsFeed:
    """One WebSocket connection, its subscriptions and its reconnect loop (module docstring).

    A feed defines ``url``, ``subscribe(ws)``, ``parse(raw, ts)`` and ``stale_ids()``; it may
    define ``keepalive(ws)`` (a task for the life of a connection) and ``after_subscribe(ws)``."""

    name: str
    source: str = "live"

    def __init__(self, name: str, url: str, *, clock: Clock | None = None, queue_limit: int = DEFAULT_QUEUE_LIMIT,
                 batch: int = DEFAULT_BATCH, backoff: Backoff | None = None, open_timeout: float = 10.0,
                 max_size: int = 2**24, after_batch: Callable[[], None] | None = None) -> None:
        self.name, self.url = name, url
        self.after_batch = after_batch  # called after each pump turn (the runner: a group commit)
        # Pipelined acknowledgement (the runner sets it beside ``after_batch``): called at the end of a
        # pump turn, returns a concurrent future that resolves once the turn's events are durable;
        # the pump goes on emitting meanwhile and counts them acknowledged only then (``_turn_done``).
        self.ack_after: Callable[[], Any] | None = None
        self._ack_error: BaseException | None = None
        self._ack_wait: asyncio.Future[Any] | None = None  # the newest commit not yet acknowledged
        self.clock = clock or Clock()
        self.queue = FeedQueue(queue_limit)
        self.batch = max(1, int(batch))
        self.backoff = backoff or Backoff()
        self.open_timeout, self.max_size = open_timeout, max_size
        self.stats = FeedStats()
        self.state = "idle"
        self.attempt = 0  # the reconnect attempt of the current connection (0: the first connect)
        self._delivered = False  # the current connection has read a frame
        self._up = False  # a connection is open (its disconnect marks the venues stale)
        self.hold: asyncio.Event | None = None  # tests: while set and cleared, the pump waits (a slow emit)

    # ------------------------------------------------------------------ what a feed defines

    async def subscribe(self, ws: ClientConnection) -> None:
        raise NotImplementedError

    async def after_subscribe(self, ws: ClientConnection) -> None:
        """After the subscriptions of a connection are sent (a REST snapshot, an account refresh)."""

    async def keepalive(self, ws: ClientConnection) -> None:
        """Runs for the life of one connection (Hyperliquid's ping); default: nothing."""
        await asyncio.Event().wait()

    def parse(self, raw: str | bytes, ts: int) -> list[ev.Event]:
        raise NotImplementedError

    def stale_ids(self) -> tuple[str, ...]:
        raise NotImplementedError

    def on_disconnect(self) -> None:
        """Forget per-connection state (subscription ids, depth positions)."""

    # ------------------------------------------------------------------ the port

    def restore(self, events: Iterable[ev.Event]) -> None:
        """Market feeds keep no checkpoint: a resumed run resubscribes and the venue's snapshots
        (l2Book, userFills ``isSnapshot``, Solana's refresh) bring the state back."""

    def health(self) -> dict[str, Any]:
        s = self.stats
        return {"name": self.name, "state": self.state, "connects": s.connects, "disconnects": s.disconnects,
                "frames": s.frames, "events": s.events, "rejected": s.rejected, "emitted": s.emitted,
                "acked": s.acked,
                "queue": len(self.queue), "queue_limit": self.queue.limit, "queue_high": self.queue.high,
                "conflated": self.queue.conflated, "dropped": self.queue.dropped, "last_error": s.last_error}

    # ------------------------------------------------------------------ internals

    def _put_own(self, e: ev.Event) -> None:
        self.queue.put(e)

    def frame(self, raw: str | bytes) -> None:
        """One frame off the socket: parsed at receive time into the queue. Never raises."""
        ts = self.clock()
        self.stats.frames += 1
        try:
            events = self.parse(raw, ts)
        except Exception as e:  # noqa: BLE001 - a parser bug must not stop the feed: the frame is recorded
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            events = [ev.InputRejected(ts=ts, source=self.source, origin=f"{self.name}:frame",
                                       reason=f"parser failed: {type(e).__name__}: {str(e)[:200]}", raw=text[:400])]
        if not events:
            self.stats.control += 1
            return
        put = self.queue.put
        for e in events:
            if type(e) is ev.InputRejected:
                self.stats.rejected += 1
            put(e)
        self.stats.events += len(events)

    def _turn_done(self) -> None:
        """A pump turn ended: commit it. With ``ack_after`` (pipelined) the commit runs off the loop's
        thread and the turn is acknowledged when it is durable; else ``after_batch`` commits in place."""
        stats = self.stats
        if self.ack_after is not None:
            if self._ack_error is not None:
                raise self._ack_error  # the log failed: nothing more is acknowledged
            upto = stats.emitted
            fut = asyncio.wrap_future(self.ack_after())
            fut.add_done_callback(lambda f: self._acked(f, upto))
            self._ack_wait = fut
        elif self.after_batch is not None:
            self.after_batch()
            stats.acked = stats.emitted

    def _acked(self, fut: asyncio.Future[Any], upto: int) -> None:
        if fut.cancelled():
            return
        if fut.exception() is not None:
            self._ack_error = self._ack_error or fut.exception()
        elif self._ack_error is None and upto > self.stats.acked:
            self.stats.acked = upto

    async def _pump(self, emit: Emit) -> None:
        q, stats = self.queue, self.stats
        while True:
            await q.ready.wait()
            n = 0
            while True:
                if self.hold is not None and not self.hold.is_set():
                    await self.hold.wait()
                item = q.pop()
                if item is None:
                    if n:
                        self._turn_done()
                    break
                out = item.events(self.name, self.source) if isinstance(item, _Overflow) else (item,)
                for e in out:
                    emit(e)
                    stats.emitted += 1
                    stats.by_type[type(e).__name__] += 1
                n += 1
                if n >= self.batch:
                    n = 0
                    self._turn_done()
                    wait = self._ack_wait
                    if wait is not None and not wait.done() and stats.emitted - stats.acked >= self.queue.limit:
                        await asyncio.wait([wait])  # a queue's worth unacknowledged: let the log catch up
                    else:
                        await asyncio.sleep(0)

    def _drain(self, emit: Emit) -> None:
        while (item := self.queue.pop()) is not None:
            for e in (item.events(self.name, self.source) if isinstance(item, _Overflow) else (item,)):
                emit(e)
                self.stats.emitted += 1
                self.stats.by_type[type(e).__name__] += 1
        if self.after_batch is not None and self.stats.acked < self.stats.emitted:
            try:
                self.after_batch()  # the last batch is durable before run returns
                self.stats.acked = self.stats.emitted
            except Exception:  # noqa: BLE001 - the run is failing: its log says how far it got
                pass

    def _connection(self, state: str, detail: str, attempt: int) -> None:
        self.state = state
        self._put_own(ev.SourceConnectionChanged(ts=self.clock(), source=self.source, name=self.name, state=state,
                                                 detail=detail, attempt=attempt))

    async def _read(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        frame, recv = self.frame, ws.recv
        n = 0
        while True:
            try:
                raw = await recv(decode=False)  # the frame's bytes: the parsers read UTF-8 JSON bytes
            except ConnectionClosedOK:
                return
            frame(raw)
            if not self._delivered:
                self._delivered = True
                self.backoff.reset()  # this connection delivers: the next outage starts from base again
            n += 1
            if n >= self.batch:
                n = 0
                await asyncio.sleep(0)  # let the pump run while frames keep coming
            if stop.is_set():
                return

    async def _session(self, stop: asyncio.Event, attempt: int) -> str:
        """One connection from open to close; returns why it ended."""
        self.attempt = attempt
        async with connect(self.url, open_timeout=self.open_timeout, max_size=self.max_size,
                           ping_interval=20, ping_timeout=20, close_timeout=2) as ws:
            self.stats.connects += 1
            self._up = True
            self._connection("connected", "", attempt)
            await self.subscribe(ws)
            if attempt:
                self._connection("resubscribed", self.subscription_text(), attempt)
            await self.after_subscribe(ws)
            tasks = [asyncio.create_task(self._read(ws, stop)), asyncio.create_task(stop.wait()),
                     asyncio.create_task(self.keepalive(ws))]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            if stop.is_set():
                return "stopped"
            rcvd = ws.close_rcvd
            return f"closed by the venue ({rcvd.code} {rcvd.reason})" if rcvd else "connection closed"

    def subscription_text(self) -> str:
        return ""

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        pump = asyncio.create_task(self._pump(emit))
        attempt = 0
        try:
            while not stop.is_set():
                try:
                    why = await self._session(stop, attempt)
                except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, InvalidURI) as e:
                    why = f"{type(e).__name__}: {str(e)[:200]}"
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - whatever broke the session, reconnect (and say why)
                    why = f"{type(e).__name__}: {str(e)[:200]}"
                if self._up:
                    self.stats.disconnects += 1
                if self._up and not stop.is_set():
                    self._put_own(ev.SourceStale(ts=self.clock(), source=self.source, venues=self.stale_ids(),
                                                 reason=f"{self.name} disconnected: {why}"))
                self._up = False
                self.on_disconnect()
                self.stats.last_error = why
                self._connection("disconnected", why, attempt)
                if stop.is_set():
                    break
                attempt = 1 if self._delivered else attempt + 1  # attempts since the feed last delivered
                self._delivered = False
                try:
                    await asyncio.wait_for(stop.wait(), self.backoff.next())
                except TimeoutError:
                    pass
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            if self.hold is not None:
                self.hold.set()
            self._drain(emit)  # what was read is recorded before run returns


# ----------------------------------------------------------------------------- Binance


BINANCE_URL = "wss://stream.binance.com:9443/stream"
BINANCE_USDM_URL = "wss://fstream.binance.com/stream"
BINANCE_STREAMS = ("bookTicker", "trade", "depth@100ms")


def _keys(table: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise FeedConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")


def _str_list(table: Mapping[str, Any], key: str, where: str, default: Sequence[str] = ()) -> tuple[str, ...]:
    v = table.get(key, list(default))
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) and x for x in v):
        raise FeedConfigError(f"{where}: {key} must be a list of non-empty strings, got {v!r:.80}")
    return tuple(v)


def feed_options(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The options every feed takes from its table: queue_limit, batch, backoff_base, backoff_cap, seed."""
    out: dict[str, Any] = {}
    try:
        if "queue_limit" in table:
            out["queue_limit"] = int(table["queue_limit"])
        if "batch" in table:
            out["batch"] = int(table["batch"])
        if any(k in table for k in ("backoff_base", "backoff_cap", "seed")):
            out["backoff"] = Backoff(float(table.get("backoff_base", 0.2)), float(table.get("backoff_cap", 30.0)),
                                     None if table.get("seed") is None else int(table["seed"]))
    except (TypeError, ValueError) as e:
        raise FeedConfigError(f"{where}: bad value: {e}") from None
    return out


FEED_KEYS = ("kind", "name", "url", "queue_limit", "batch", "backoff_base", "backoff_cap", "seed")


class BinanceSource(WsFeed):
    """Binance spot (or USD-M futures) market data: see the module docstring."""

    source = binance_ws.SOURCE

    def __init__(self, name: str = "binance", url: str = "", *, symbols: Sequence[str] = ("ETHUSDT",),
                 streams: Sequence[str] = BINANCE_STREAMS, market: str = "spot", depth_snapshot_url: str = "",
                 **kw: Any) -> None:
        super().__init__(name, url or (BINANCE_USDM_URL if market == "usdm" else BINANCE_URL), **kw)
        if market not in ("spot", "usdm"):
            raise FeedConfigError(f"market must be 'spot' or 'usdm', got {market!r}")
        if not symbols:
            raise FeedConfigError("symbols must name at least one symbol")
        self.venue = binance_ws.SPOT if market == "spot" else binance_ws.USDM
        self.symbols = tuple(s.upper() for s in symbols)
        self.streams = tuple(streams)
        self.depth_snapshot_url = depth_snapshot_url
        self.parser = binance_ws.FrameParser(self.venue, self.symbols[0] if len(self.symbols) == 1 else None)
        self._request_id = 0

    @classmethod
    def from_config(cls, table: Mapping[str, Any], *, clock: Clock | None = None) -> BinanceSource:
        where = f"[[sources]] {table.get('name', 'binance')!r}"
        _keys(table, (*FEED_KEYS, "symbols", "streams", "market", "depth_snapshot_url"), where)
        return cls(str(table.get("name", "binance")), str(table.get("url", "")),
                   symbols=_str_list(table, "symbols", where, ("ETHUSDT",)),
                   streams=_str_list(table, "streams", where, BINANCE_STREAMS),
                   market=str(table.get("market", "spot")), depth_snapshot_url=str(table.get("depth_snapshot_url", "")),
                   clock=clock, **feed_options(table, where))

    def params(self) -> list[str]:
        return [f"{s.lower()}@{st}" for s in self.symbols for st in self.streams]

    def subscription_text(self) -> str:
        return "/".join(self.params())

    async def subscribe(self, ws: ClientConnection) -> None:
        self._request_id += 1
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": self.params(), "id": self._request_id}))

    async def after_subscribe(self, ws: ClientConnection) -> None:
        if not self.depth_snapshot_url or not any(s.startswith("depth") for s in self.streams):
            return
        import aiohttp

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            for symbol in self.symbols:
                url = self.depth_snapshot_url.format(symbol=symbol)
                try:
                    async with http.get(url) as r:
                        body = await r.read()
                        status = r.status
                except (aiohttp.ClientError, OSError, TimeoutError) as e:
                    self._rest_rejected(symbol, f"depth snapshot request failed: {type(e).__name__}: "
                                                f"{redact_in(str(e), url)}", "")
                    continue
                if status != 200:
                    self._rest_rejected(symbol, f"depth snapshot answered HTTP {status}",
                                        body.decode("utf-8", "replace")[:400])
                    continue
                self.parser.symbol = symbol  # the snapshot names no symbol: it is the one asked for
                self.frame(body)

    def _rest_rejected(self, symbol: str, reason: str, raw: str) -> None:
        ts = self.clock()
        self.stats.frames += 1
        self.stats.rejected += 1
        self.stats.events += 1
        self.queue.put(ev.InputRejected(ts=ts, source=self.source, origin=f"{self.name}:depth-snapshot:{symbol}",
                                        reason=reason, raw=raw))

    def parse(self, raw: str | bytes, ts: int) -> list[ev.Event]:
        return self.parser.parse(raw, ts, f"{self.name}:frame")

    def stale_ids(self) -> tuple[str, ...]:
        return (self.venue, *(depth_id(self.venue, s) for s in self.symbols))

    def on_disconnect(self) -> None:
        self.parser.resync()
