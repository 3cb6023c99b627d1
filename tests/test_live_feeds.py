"""The live feeds (live/binance_source.py, hyperliquid_source.py, solana_source.py) against local
playback servers (live/playback.py) of the real recordings in ``$TAPEDECK_DATA`` / ``../shared/data``.

No internet: every server binds 127.0.0.1 on an ephemeral port. No timing: the tests wait for
counts (frames sent, frames read), never for durations."""
from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any, Callable

import msgspec
import pytest

from tapedeck.adapters import binance_ws, hyperliquid_ws
from tapedeck.adapters.eventlog import EventLog, Manifest
from tapedeck.domain import events as ev
from tapedeck.live.base import Backoff, LiveSource
from tapedeck.live.binance_source import BinanceSource, FeedConfigError
from tapedeck.live.hyperliquid_source import HyperliquidSource
from tapedeck.live.playback import (BINANCE_RECORDING, HYPERLIQUID_RECORDING, AccountUpdate, BinancePlayback, Frame,
                                    HyperliquidPlayback, SolanaPlayback, read_frames)
from tapedeck.live.solana_source import SolanaSource
from tests.conftest import require_data
from tests.test_solana_accounts import VAULT_A_RPR, VAULT_B_RPR, WHIRLPOOL_RPR, _bytes

FAST = dict(backoff=Backoff(0.001, 0.01, seed=7))
USER = "0x" + "ab" * 20


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


async def _until(cond: Callable[[], bool]) -> None:
    while not cond():
        await asyncio.sleep(0.005)


async def _session(pb: Any, make: Callable[[Any], Any], until: Callable[[Any, Any], bool],
                   emit: Callable[[ev.Event], None] | None = None) -> tuple[Any, Any, list[ev.Event]]:
    """Serve ``pb``, run the source ``make(pb)`` into a list (or ``emit``) until ``until(pb, src)``
    holds once every frame was sent; stop it. -> (pb, src, events)."""
    out: list[ev.Event] = []
    async with pb:
        src = make(pb)
        stop = asyncio.Event()
        task = asyncio.create_task(src.run(emit or out.append, stop))
        await pb.done.wait()
        await _until(lambda: until(pb, src))
        stop.set()
        await task
    return pb, src, out


def _payload(e: ev.Event) -> bytes:
    """An event without its receive time: what a recorded and a live frame must agree on."""
    return msgspec.json.encode(msgspec.structs.replace(e, ts=0, seq=0))


def _types(events: list[ev.Event]) -> Counter:
    return Counter(type(e).__name__ for e in events)


# ----------------------------------------------------------------------------- Binance


@pytest.mark.slow  # streams the whole 33,618-line recording
def test_every_frame_of_the_binance_recording_is_an_event_in_the_log(tmp_path: Any) -> None:
    path = require_data(BINANCE_RECORDING)
    offline = list(binance_ws.read_binance_ws(path))

    async def go() -> tuple[BinancePlayback, BinanceSource]:
        log = EventLog.create(tmp_path / "live.db", Manifest(run_id="", mode="live"))
        async with BinancePlayback() as pb:
            src = BinanceSource("bn", pb.url, depth_snapshot_url=pb.depth_url, **FAST)
            assert isinstance(src, LiveSource)
            stop = asyncio.Event()
            task = asyncio.create_task(src.run(log.append, stop))
            await pb.done.wait()
            await _until(lambda: src.stats.frames == pb.sent + pb.snapshot_requests + 1)  # + the SUBSCRIBE ack
            stop.set()
            await task
        log.close()
        return pb, src

    pb, src = _run(go())
    frames = read_frames(path)
    assert pb.sent == len(frames) - 1 and pb.snapshot_requests == 1  # the REST snapshot line went over HTTP
    assert src.stats.control == 1 and src.stats.rejected == 0
    with EventLog.open(tmp_path / "live.db") as log:
        live = list(log.events())
    got = _types(live)
    # each line of the file: one event, whether it came over the socket or over REST
    assert got["QuoteUpdated"] == 24_077 and got["TradePrinted"] == 6_106
    assert got["BookDepthUpdated"] == 3_434 + 1
    assert got["QuoteUpdated"] + got["TradePrinted"] + got["BookDepthUpdated"] == len(frames)
    # and the same events the recording's importer makes, field for field, in the same order
    for kind in (ev.QuoteUpdated, ev.TradePrinted):
        assert [_payload(e) for e in live if type(e) is kind] == [_payload(e) for e in offline if type(e) is kind]
    states = [e.state for e in live if type(e) is ev.SourceConnectionChanged]
    assert states == ["connected", "disconnected"]
    assert all(a.ts < b.ts for a, b in zip(live, live[1:]))  # the runner's clock: one order


@pytest.mark.slow  # streams the whole 33,618-line recording
def test_a_dropped_binance_connection_reconnects_resubscribes_and_loses_no_frame() -> None:
    require_data(BINANCE_RECORDING)

    pb, src, out = _run(_session(BinancePlayback(drop_at=[5_000, 20_000]),
                                 lambda pb: BinanceSource("bn", pb.url, **FAST),
                                 lambda pb, src: src.stats.frames == pb.sent + 3))
    assert pb.connects == 3 and pb.dropped == 2
    assert pb.subscribes == [["ethusdt@bookTicker", "ethusdt@trade", "ethusdt@depth@100ms"]] * 3
    own = [(type(e).__name__, getattr(e, "state", ""), getattr(e, "attempt", 0)) for e in out
           if type(e) in (ev.SourceConnectionChanged, ev.SourceStale) and "gap" not in getattr(e, "reason", "")]
    assert own == [("SourceConnectionChanged", "connected", 0),
                   ("SourceStale", "", 0), ("SourceConnectionChanged", "disconnected", 0),
                   ("SourceConnectionChanged", "connected", 1), ("SourceConnectionChanged", "resubscribed", 1),
                   ("SourceStale", "", 0), ("SourceConnectionChanged", "disconnected", 1),
                   ("SourceConnectionChanged", "connected", 1), ("SourceConnectionChanged", "resubscribed", 1),
                   ("SourceConnectionChanged", "disconnected", 1)]
    stale = [e for e in out if type(e) is ev.SourceStale and "disconnected" in e.reason]
    assert stale[0].venues == ("binance", "binance:ETHUSDT:depth")
    # events before and after each drop are in the log, and every frame sent is one of them
    marks = [i for i, e in enumerate(out) if type(e) is ev.SourceConnectionChanged and e.state == "resubscribed"]
    assert all(any(type(e) is ev.QuoteUpdated for e in out[m:]) for m in marks)
    assert any(type(e) is ev.QuoteUpdated for e in out[:marks[0]])
    market = sum(1 for e in out if type(e) in (ev.QuoteUpdated, ev.TradePrinted, ev.BookDepthUpdated))
    assert market == pb.sent == 33_617
    assert src.health()["connects"] == 3 and src.health()["disconnects"] == 3


@pytest.mark.slow  # streams the whole 33,618-line recording
def test_a_frame_flood_keeps_the_queue_bounded_and_records_what_it_dropped() -> None:
    require_data(BINANCE_RECORDING)
    limit = 500

    async def go() -> tuple[BinancePlayback, BinanceSource, list[ev.Event]]:
        out: list[ev.Event] = []
        async with BinancePlayback() as pb:  # as fast as the socket takes them
            src = BinanceSource("bn", pb.url, queue_limit=limit, **FAST)
            src.hold = asyncio.Event()  # the runner's emit is stuck: nothing leaves the queue
            stop = asyncio.Event()
            task = asyncio.create_task(src.run(out.append, stop))
            await pb.done.wait()
            await _until(lambda: src.stats.frames == pb.sent + 1)
            assert len(src.queue) <= limit + 2  # read everything, held at most a queue's worth
            src.hold.set()
            stop.set()
            await task
        return pb, src, out

    pb, src, out = _run(go())
    q = src.queue
    assert q.high <= limit + 1
    assert q.conflated > 0 and q.dropped > 0  # both overflow paths ran
    overflow = [e for e in out if type(e) is ev.InputRejected and e.origin == "bn:queue"]
    assert overflow
    dropped = Counter()
    for e in overflow:
        for k, v in msgspec.json.decode(e.raw)["dropped"].items():
            dropped[k] += v
    assert sum(dropped.values()) == q.dropped
    assert dropped["TradePrinted"] > 0  # trades are never conflated: dropped, and said so
    emitted = Counter(type(e).__name__ for e in out if type(e) in (ev.QuoteUpdated, ev.TradePrinted,
                                                                   ev.BookDepthUpdated))
    # every parsed event is in the log, replaced by a newer state of its instrument, or counted as dropped
    assert sum(emitted.values()) + q.conflated + q.dropped == src.stats.events == pb.sent
    assert all(a.ts <= b.ts for a, b in zip(out, out[1:]))  # the receive order, with the drops' records in it
    stale = [e for e in out if type(e) is ev.SourceStale and "full queue" in e.reason]
    assert stale and set(stale[0].venues) <= {"binance", "binance:ETHUSDT:depth"}


def test_binance_config_names_the_bad_key() -> None:
    src = BinanceSource.from_config({"kind": "binance", "name": "b", "symbols": ["ethusdt", "BTCUSDT"],
                                     "streams": ["bookTicker"], "queue_limit": 7})
    assert (src.symbols, src.params(), src.queue.limit) == (("ETHUSDT", "BTCUSDT"),
                                                            ["ethusdt@bookTicker", "btcusdt@bookTicker"], 7)
    assert BinanceSource.from_config({"kind": "binance", "market": "usdm"}).url == "wss://fstream.binance.com/stream"
    json.dumps(src.health())  # what /health shows
    with pytest.raises(FeedConfigError, match="unknown key.*symbol\\b"):
        BinanceSource.from_config({"kind": "binance", "symbol": "ETHUSDT"})
    with pytest.raises(FeedConfigError, match="symbols must be a list"):
        BinanceSource.from_config({"kind": "binance", "symbols": "ETHUSDT"})


# ----------------------------------------------------------------------------- Hyperliquid

FILL = {"coin": "BTC", "px": "105000.0", "sz": "0.01", "side": "B", "time": 1737918843000, "startPosition": "0.0",
        "dir": "Open Long", "closedPnl": "0.0", "hash": "0x" + "00" * 32, "oid": 12, "crossed": True, "fee": "0.47",
        "tid": 99, "feeToken": "USDC"}


def test_every_hyperliquid_frame_is_an_event_or_a_rejection_and_a_drop_brings_fresh_snapshots() -> None:
    path = require_data(HYPERLIQUID_RECORDING)
    frames = read_frames(path)
    bad = Frame(-1, '{"channel":"l2Book","data":{"coin":"BTC","levels":"oops","time":1737918843000}}')
    frames = [*frames[:10], bad, *frames[10:]]
    order = ('{"channel":"orderUpdates","data":[{"order":{"coin":"BTC","side":"B","limitPx":"105000.0","sz":"0.0",'
             '"oid":12,"timestamp":1737918843000,"origSz":"0.01"},"status":"filled","statusTimestamp":1737918843001}]}')
    frames.insert(30, Frame(-1, order))

    pb, src, out = _run(_session(
        HyperliquidPlayback(frames, drop_at=[25], user_fills=[FILL]),
        lambda pb: HyperliquidSource("hl", pb.url, coins=["BTC"], channels=["l2Book", "trades"], user=USER,
                                     ping_interval=0.02, **FAST),
        # every frame, plus 2 x (4 acks + the fills snapshot) and the l2Book snapshot of the reconnect
        lambda pb, src: src.stats.frames - src.pongs == pb.sent + pb.snapshots_sent + 8 and src.pongs >= 1))
    assert pb.sent == len(frames) and pb.connects == 2 and pb.snapshots_sent == 3
    assert pb.pings >= 1 and src.pongs >= 1 and src.acks == 8
    kinds = [s["type"] for s in pb.subscribes]
    assert kinds == ["l2Book", "trades", "userFills", "orderUpdates"] * 2
    rejected = [e for e in out if type(e) is ev.InputRejected]
    assert len(rejected) == 1 and "levels" in rejected[0].reason and rejected[0].origin == "hl:frame"
    # each l2Book frame (and the reconnect's snapshot) is one book and one top of book
    books = sum(1 for f in frames if '"l2Book"' in f.body) - 1 + 1
    got = _types(out)
    assert got["BookDepthUpdated"] == got["QuoteUpdated"] == books
    trades = sum(len(msgspec.json.decode(f.body)["data"]) for f in frames if '"trades"' in f.body)
    assert got["TradePrinted"] == trades
    fills = [e for e in out if type(e) is ev.AccountFillReported]
    assert [f.snapshot for f in fills] == [True, True]  # the snapshot of each subscription
    assert got["AccountOrderUpdated"] == 1
    states = [e.state for e in out if type(e) is ev.SourceConnectionChanged]
    assert states == ["connected", "disconnected", "connected", "resubscribed", "disconnected"]
    i = next(i for i, e in enumerate(out) if type(e) is ev.SourceConnectionChanged and e.state == "resubscribed")
    assert type(out[i + 1]) is ev.BookDepthUpdated  # the fresh book first, then the stream goes on
    stale = next(e for e in out if type(e) is ev.SourceStale)
    assert stale.venues == ("hyperliquid", "hyperliquid:BTC:depth")
    # the recorded frames become the same events live as in the importer
    offline = [e for e in hyperliquid_ws.RecordingReader(path) if type(e) is ev.TradePrinted]
    assert [_payload(e) for e in out if type(e) is ev.TradePrinted] == [_payload(e) for e in offline]


def test_hyperliquid_config() -> None:
    src = HyperliquidSource.from_config({"kind": "hyperliquid", "coins": ["BTC", "ETH"], "user": USER.upper()[0:1]
                                         + "x" + USER[2:], "ping_interval": 15})
    assert len(src.subscriptions()) == 2 * 4 + 2 and src.ping_interval == 15
    with pytest.raises(FeedConfigError, match="allMids.*not modelled"):
        HyperliquidSource.from_config({"kind": "hyperliquid", "channels": ["allMids"]})
    with pytest.raises(FeedConfigError, match="ping_interval"):
        HyperliquidSource.from_config({"kind": "hyperliquid", "ping_interval": 90})
    with pytest.raises(FeedConfigError, match="user"):
        HyperliquidSource.from_config({"kind": "hyperliquid", "user": "me"})


# ----------------------------------------------------------------------------- Solana

# Orca's published accounts (orca-so/whirlpools @ 630c0e01, via tests/test_solana_accounts.py).
POOL, VA, VB = WHIRLPOOL_RPR, VAULT_A_RPR, VAULT_B_RPR


def _upd(dump: tuple, slot: int, data: bytes | None = None) -> AccountUpdate:
    return AccountUpdate(dump[0], dump[1], slot, _bytes(dump) if data is None else data)


def test_solana_subscribes_per_account_refreshes_and_resubscribes_after_a_drop() -> None:
    initial = [_upd(POOL, 100), _upd(VA, 100), _upd(VB, 100)]
    bad_vault = _upd(VB, 104, b"\x00" * 10)  # not a token account: a recorded rejection
    updates = [_upd(VA, 101), _upd(VB, 102), _upd(POOL, 103), bad_vault, _upd(VA, 105)]

    pb, src, out = _run(_session(
        SolanaPlayback(updates, initial=initial, drop_at=[2], after_refresh=True),
        lambda pb: SolanaSource("sol", pb.url, accounts=[POOL[0], VA[0], VB[0]], http_url=pb.http_url, **FAST),
        lambda pb, src: src.stats.frames == pb.sent + 2 * 3 + len(pb.http_requests)))
    assert pb.connects == 2 and pb.sent == len(updates)
    assert pb.subscribes == [POOL[0], VA[0], VB[0]] * 2
    assert [r["method"] for r in pb.http_requests] == ["getMultipleAccounts"] * 2
    assert pb.http_requests[0]["params"][0] == [POOL[0], VA[0], VB[0]]
    seen = [(type(e).__name__, getattr(e, "state", ""), getattr(e, "slot", 0)) for e in out
            if type(e) is not ev.SourceStale]
    cuts = [i for i, x in enumerate(seen) if x[1] in ("connected", "disconnected")]
    assert [seen[i][1] for i in cuts] == ["connected", "disconnected", "connected", "disconnected"]
    # within a connection the refresh's answer and the first notifications race (as with a node):
    # the state folds by slot, so what matters is what each connection delivered
    first, second = sorted(seen[cuts[0] + 1:cuts[1]]), sorted(seen[cuts[2] + 1:cuts[3]])
    assert first == sorted([("SourceConnectionChanged", "backfilled", 0),
                            ("WhirlpoolSynced", "", 100), ("SplTokenAccountSynced", "", 100),
                            ("SplTokenAccountSynced", "", 100),  # the refresh: the accounts at slot 100
                            ("SplTokenAccountSynced", "", 101), ("SplTokenAccountSynced", "", 102)])
    assert second == sorted([("SourceConnectionChanged", "resubscribed", 0),
                             ("SourceConnectionChanged", "backfilled", 0),
                             # the refresh after the reconnect: the accounts as the node has them now
                             ("WhirlpoolSynced", "", 102), ("SplTokenAccountSynced", "", 102),
                             ("SplTokenAccountSynced", "", 102),
                             ("WhirlpoolSynced", "", 103), ("InputRejected", "", 0), ("SplTokenAccountSynced", "", 105)])
    assert seen[cuts[2] + 1][1] == "resubscribed"
    rejected = next(e for e in out if type(e) is ev.InputRejected)
    assert VB[0] in rejected.reason and "slot 104" in rejected.reason
    stale = next(e for e in out if type(e) is ev.SourceStale)
    assert stale.venues == (POOL[0], VA[0], VB[0])
    assert src.health()["subscribed"] == 0 and src.refreshes == 2
    backfills = [e for e in out if type(e) is ev.SourceConnectionChanged and e.state == "backfilled"]
    assert [e.attempt for e in backfills] == [0, 1] and "3 of 3" in backfills[0].detail


def test_solana_config_refuses_what_is_not_a_key() -> None:
    with pytest.raises(FeedConfigError, match="not base58"):
        SolanaSource.from_config({"kind": "solana", "accounts": ["nope"]})
    with pytest.raises(FeedConfigError, match="commitment"):
        SolanaSource.from_config({"kind": "solana", "accounts": [POOL[0]], "commitment": "max"})
    src = SolanaSource.from_config({"kind": "solana", "url": "wss://rpc.example/ws", "accounts": [POOL[0]]})
    assert src.http_url == "https://rpc.example/ws"


# ----------------------------------------------------------------------------- the queue, as a property

from hypothesis import event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tapedeck.live.binance_source import FeedQueue, _Overflow  # noqa: E402


def _quote(ts: int, instrument: str) -> ev.QuoteUpdated:
    return ev.QuoteUpdated(ts=ts, venue="binance", instrument=instrument, bid=ts, bid_size=1, ask=ts + 1, ask_size=1,
                           price_decimals=2, size_decimals=2)


def _trade(ts: int, instrument: str) -> ev.TradePrinted:
    return ev.TradePrinted(ts=ts, venue="binance", instrument=instrument, price=1, size=1, price_decimals=0,
                           size_decimals=0, side="buy", trade_id=str(ts))


def _fill(ts: int, instrument: str) -> ev.AccountFillReported:
    return ev.AccountFillReported(ts=ts, venue="binance", instrument=instrument, side="buy", price=1, size=1,
                                  price_decimals=0, size_decimals=0, fee=0, fee_decimals=0, fee_asset="USDT",
                                  trade_id=f"f{ts}")


@settings(max_examples=300, deadline=None)
@given(limit=st.integers(1, 8),
       ops=st.lists(st.tuples(st.sampled_from(["quote", "trade", "fill", "pop"]), st.sampled_from(["A", "B", "C"])),
                    max_size=200))
def test_the_feed_queue_stays_bounded_and_accounts_for_every_event(limit: int, ops: list[tuple[str, str]]) -> None:
    q = FeedQueue(limit)
    put: list[ev.Event] = []
    out: list[ev.Event] = []
    overflow = 0

    def take(item: Any) -> None:
        nonlocal overflow
        if isinstance(item, _Overflow):
            overflow += sum(item.by_type.values())
            recs = item.events("f", "s")
            assert type(recs[-1]) is ev.InputRejected and recs[-1].origin == "f:queue"
        else:
            out.append(item)

    for ts, (op, instrument) in enumerate(ops, 1):
        if op == "pop":
            item = q.pop()
            if item is not None:
                take(item)
        else:
            e = {"quote": _quote, "trade": _trade, "fill": _fill}[op](ts, instrument)
            put.append(e)
            q.put(e)
        market = q.counted()
        assert market == sum(1 for _, counted in q._slots.values() if counted)
        assert market <= limit + 1  # the bound: a queue's worth, plus one overflow marker at the tail
    while (item := q.pop()) is not None:
        take(item)
    event(f"conflated: {q.conflated > 0}, dropped: {q.dropped > 0}")
    assert len(out) + q.conflated + overflow == len(put)
    assert overflow == q.dropped
    fills = [e for e in put if type(e) is ev.AccountFillReported]
    assert [e for e in out if type(e) is ev.AccountFillReported] == fills  # never dropped, never reordered
    assert [e.ts for e in out] == sorted(e.ts for e in out)  # the receive order, conflated or not
    # a conflated quote is replaced by a newer one of its instrument, so the newest of each survives
    for instrument in "ABC":
        quotes = [e for e in put if type(e) is ev.QuoteUpdated and e.instrument == instrument]
        kept = [e for e in out if type(e) is ev.QuoteUpdated and e.instrument == instrument]
        if quotes and q.dropped == 0:
            assert kept[-1] is quotes[-1]


def test_hyperliquid_bbo_and_asset_context_channels_reach_the_log() -> None:
    # shapes from the venue's docs (websocket/subscriptions.md: WsBbo, activeAssetCtx with string numbers)
    bbo = ('{"channel":"bbo","data":{"coin":"ETH","time":1737918843893,"bbo":[{"px":"3301.5","sz":"2.1","n":3},'
           '{"px":"3301.6","sz":"0.4","n":1}]}}')
    ctx = ('{"channel":"activeAssetCtx","data":{"coin":"ETH","ctx":{"dayNtlVlm":"1.0","prevDayPx":"3290.0",'
           '"markPx":"3301.55","midPx":"3301.55","funding":"0.0000125","openInterest":"10.0","oraclePx":"3300.9"}}}')
    frames = [Frame(1, bbo), Frame(2, ctx), Frame(3, bbo)]

    pb, _, out = _run(_session(HyperliquidPlayback(frames, start_on_subscribe=4),
                               lambda pb: HyperliquidSource("hl", pb.url, coins=["ETH"], **FAST),
                               lambda pb, src: src.stats.frames == pb.sent + 4))
    assert [s["type"] for s in pb.subscribes] == ["bbo", "l2Book", "activeAssetCtx", "trades"]
    assert isinstance(HyperliquidSource("x"), LiveSource) and isinstance(SolanaSource("y", accounts=[POOL[0]]),
                                                                        LiveSource)
    quotes = [e for e in out if type(e) is ev.QuoteUpdated]
    marks = [e for e in out if type(e) is ev.MarkPriceUpdated]
    assert len(quotes) == 2 and (quotes[0].bid, quotes[0].ask, quotes[0].price_decimals) == (33015, 33016, 1)
    assert quotes[0].venue_ts == 1737918843893 * 10**6
    assert len(marks) == 1 and (marks[0].mark, marks[0].oracle, marks[0].price_decimals) == (330155, 330090, 2)


def test_a_parser_that_fails_makes_a_recorded_rejection_not_a_crash() -> None:
    class Broken(HyperliquidSource):
        def parse(self, raw: str | bytes, ts: int) -> list[ev.Event]:
            if b"\"channel\":\"trades\"" in (raw if isinstance(raw, bytes) else raw.encode()):
                raise KeyError("boom")
            return super().parse(raw, ts)

    frames = [Frame(1, '{"channel":"trades","data":[{"coin":"BTC"}]}'), Frame(2, '{"channel":"pong"}')]

    _, src, out = _run(_session(HyperliquidPlayback(frames), lambda pb: Broken("hl", pb.url, channels=["trades"], **FAST),
                                lambda pb, src: src.stats.frames == pb.sent + 1))
    rejected = [e for e in out if type(e) is ev.InputRejected]
    assert len(rejected) == 1 and "parser failed: KeyError" in rejected[0].reason
    assert rejected[0].raw == frames[0].body and src.stats.connects == 1  # the feed went on


def test_a_refused_depth_snapshot_and_an_unknown_account_are_recorded_rejections() -> None:
    require_data(BINANCE_RECORDING)
    frames = read_frames(require_data(BINANCE_RECORDING))[:20]
    pb, src, out = _run(_session(BinancePlayback(frames),
                                 lambda pb: BinanceSource("bn", pb.url, symbols=["BTCUSDT"],
                                                          depth_snapshot_url=pb.depth_url, **FAST),
                                 lambda pb, src: src.stats.frames == 2))  # the ack, the refused snapshot
    rejected = [e for e in out if type(e) is ev.InputRejected]
    assert len(rejected) == 1 and rejected[0].origin == "bn:depth-snapshot:BTCUSDT"
    assert "HTTP 400" in rejected[0].reason and "Invalid symbol" in rejected[0].raw
    assert pb.sent == 0 and pb.snapshot_requests == 1  # nothing of ETHUSDT was sent to a BTCUSDT client

    missing = "11111111111111111111111111111112"  # a valid key the node has no account for
    _, src, out = _run(_session(SolanaPlayback([_upd(VA, 101)], initial=[_upd(VA, 100)], after_refresh=True),
                                lambda pb: SolanaSource("sol", pb.url, accounts=[VA[0], missing],
                                                        http_url=pb.http_url, **FAST),
                                lambda pb, src: src.stats.frames == pb.sent + 2 + 1))
    rejected = [e for e in out if type(e) is ev.InputRejected]
    assert len(rejected) == 1 and f"account {missing} not found" in rejected[0].reason
    assert sorted(e.slot for e in out if type(e) is ev.SplTokenAccountSynced) == [100, 101]  # they race
