"""live/playback.py: the local servers answer as the venues do (subscriptions, pings, the REST depth
snapshot, the fills snapshot), pace and drop on command, and send the recorded bytes unchanged."""
from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tapedeck.live.playback import (BINANCE_RECORDING, HYPERLIQUID_RECORDING, BinancePlayback, Frame,
                                    HyperliquidPlayback, read_frames)
from tests.conftest import require_data


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_binance_playback_answers_subscribe_serves_the_rest_snapshot_and_sends_only_what_was_asked() -> None:
    path = require_data(BINANCE_RECORDING)
    frames = read_frames(path)[:200]

    async def go() -> tuple[list[str], BinancePlayback, bytes]:
        async with BinancePlayback(frames) as pb:
            assert pb.url.startswith("ws://127.0.0.1:")
            snapshot = await asyncio.to_thread(lambda: urllib.request.urlopen(
                pb.depth_url.format(symbol="ETHUSDT")).read())
            got: list[str] = []
            async with connect(pb.url) as ws:
                await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@trade"], "id": 5}))
                got.append(await ws.recv())
                while not pb.done.is_set() or len(got) < pb.sent + 1:
                    got.append(await ws.recv())
            return got, pb, snapshot

    got, pb, snapshot = _run(go())
    assert json.loads(got[0]) == {"result": None, "id": 5}
    trades = [f.body for f in frames if f.body.startswith('{"stream":"ethusdt@trade"')]
    assert got[1:] == trades and pb.sent == len(trades)  # byte for byte, only the stream asked for
    assert pb.skipped["ethusdt@bookTicker"] > 0 and pb.skipped["(not on the socket)"] == 1
    assert json.loads(snapshot)["lastUpdateId"] == 35346513512  # the recording's REST snapshot line


def test_binance_playback_refuses_an_unknown_symbol_snapshot() -> None:
    async def go() -> int:
        async with BinancePlayback([Frame(1, '{"stream":"ethusdt@trade","data":{"s":"ETHUSDT"}}')]) as pb:
            def get() -> int:
                try:
                    urllib.request.urlopen(pb.depth_url.format(symbol="NOPE"))
                except urllib.error.HTTPError as e:
                    return e.code
                return 200
            return await asyncio.to_thread(get)

    assert _run(go()) == 400


def test_hyperliquid_playback_answers_subscriptions_pings_and_snapshots_and_drops_on_command() -> None:
    require_data(HYPERLIQUID_RECORDING)
    fill = {"coin": "BTC", "px": "1", "sz": "1", "side": "B", "time": 1, "startPosition": "0", "dir": "Open Long",
            "closedPnl": "0", "hash": "0x", "oid": 1, "crossed": True, "fee": "0", "tid": 1, "feeToken": "USDC"}

    async def go() -> tuple[list[Any], HyperliquidPlayback, bool]:
        async with HyperliquidPlayback(user_fills=[fill], start_on_subscribe=2) as pb:
            got: list[Any] = []
            closed = False
            async with connect(pb.url) as ws:
                await ws.send('{"method":"ping"}')
                got.append(json.loads(await ws.recv()))
                await ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "userFills",
                                                                                  "user": "0xAB"}}))
                got.append(json.loads(await ws.recv()))
                got.append(json.loads(await ws.recv()))
                await ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "trades", "coin": "BTC"}}))
                got.append(json.loads(await ws.recv()))
                first_trade = json.loads(await ws.recv())
                got.append(first_trade["channel"])
                pb.drop()
                try:
                    while True:
                        await ws.recv()
                except ConnectionClosed as e:
                    closed = e.rcvd is None  # no close frame: a network failure, not a goodbye
            return got, pb, closed

    got, pb, closed = _run(go())
    assert got[0] == {"channel": "pong"} and pb.pings == 1
    assert got[1] == {"channel": "subscriptionResponse", "data": {"method": "subscribe", "subscription": {
        "type": "userFills", "user": "0xAB"}}}
    assert got[2]["channel"] == "userFills" and got[2]["data"]["isSnapshot"] is True
    assert got[2]["data"]["fills"] == [fill]
    assert got[3]["channel"] == "subscriptionResponse" and got[4] == "trades"
    assert closed and pb.dropped == 1


def test_hyperliquid_playback_closes_an_idle_connection() -> None:
    async def go() -> int | None:
        async with HyperliquidPlayback([], idle_timeout=0.05) as pb:
            async with connect(pb.url) as ws:
                try:
                    await ws.recv()
                except ConnectionClosed as e:
                    return e.rcvd.code if e.rcvd else None
        return -1

    assert _run(go()) == 1000


@pytest.mark.parametrize("rate", [2000.0])
def test_paced_playback_sends_every_frame(rate: float) -> None:
    frames = [Frame(i, json.dumps({"channel": "trades", "data": [{"coin": "BTC", "n": i}]})) for i in range(50)]

    async def go() -> list[str]:
        async with HyperliquidPlayback(frames, rate=rate) as pb:
            async with connect(pb.url) as ws:
                await ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "trades", "coin": "BTC"}}))
                await ws.recv()
                return [await ws.recv() for _ in frames]

    assert _run(go()) == [f.body for f in frames]
