"""Hyperliquid WebSocket frames -> shared events, exactly; bad frames -> recorded rejections; the real recording.

Frame shapes are the docs' (``websocket/subscriptions.md``: WsBbo, WsBook, WsTrade, WsOrder,
WsUserFills, WsUserFundings, WsActiveAssetCtx) with values written here; the real recording is
the shared ``hyperliquid-btc-ws-2025-01-26`` (hftbacktest's collector, 46 l2Book and 9 trades frames).
"""
from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import event, given, settings, strategies as st

from tapedeck.adapters.hyperliquid_ws import (NOT_JSON, RecordingReader, parse_frame)
from tapedeck.domain import events as ev
from tests.conftest import require_data

RECORDING = "hyperliquid-btc-ws-2025-01-26/btcusd_20250126.gz"
TS = 1_737_918_843_893_903_000
T_MS = 1_737_918_843_542
USER = "0x" + "ab" * 20


def frame(channel: str, data: object) -> str:
    return json.dumps({"channel": channel, "data": data})


def parse(raw: str | bytes, **kw: object):  # type: ignore[no-untyped-def]
    return parse_frame(raw, TS, "test:frame 1", **kw)  # type: ignore[arg-type]


def one(raw: str) -> ev.Event:
    p = parse(raw)
    assert len(p.events) == 1 and not p.rejected, p
    return p.events[0]


def lvl(px: str, sz: str, n: int = 1) -> dict:
    return {"px": px, "sz": sz, "n": n}


# ----------------------------------------------------------------------------- channels


def test_bbo_is_a_quote_at_the_messages_precision() -> None:
    q = one(frame("bbo", {"coin": "xyz:NVDA", "time": T_MS, "bbo": [lvl("145.2", "10"), lvl("145.25", "3.5")]}))
    assert q == ev.QuoteUpdated(ts=TS, source="hyperliquid-ws", venue="hyperliquid", instrument="xyz:NVDA",
                                bid=14520, bid_size=100, ask=14525, ask_size=35, price_decimals=2, size_decimals=1,
                                venue_ts=T_MS * 1_000_000)


def test_bbo_side_missing_is_an_unusable_price() -> None:
    q = one(frame("bbo", {"coin": "BTC", "time": T_MS, "bbo": [None, lvl("105056.0", "1")]}))
    assert (q.bid, q.bid_size, q.ask, q.ask_size, q.price_decimals) == (-1, 0, 1050560, 1, 1)


def test_l2book_is_a_depth_snapshot_and_its_top() -> None:
    data = {"coin": "BTC", "time": T_MS, "levels": [[lvl("105055.0", "3.03622", 5), lvl("105054", "0.1428")],
                                                     [lvl("105056.5", "6.3"), lvl("105057.0", "0.0001")]]}
    depth, top = parse(frame("l2Book", data)).events
    assert isinstance(depth, ev.BookDepthUpdated) and depth.snapshot
    assert depth.price_decimals == 1 and depth.size_decimals == 5
    assert depth.bids == ((1050550, 303622), (1050540, 14280)) and depth.asks == ((1050565, 630000), (1050570, 10))
    assert isinstance(top, ev.QuoteUpdated)
    assert (top.bid, top.bid_size, top.ask, top.ask_size) == (depth.bids[0] + depth.asks[0])
    assert (top.price_decimals, top.size_decimals, top.venue_ts) == (1, 5, depth.venue_ts)


def test_active_asset_ctx_is_a_mark_update_from_strings() -> None:
    """The docs' metaAndAssetCtxs example values: one precision (4, the finest) for mark, oracle and mid."""
    ctx = {"dayNtlVlm": "1169046.29406", "funding": "0.0000125", "impactPxs": ["14.3047", "14.3444"],
           "markPx": "14.3161", "midPx": "14.314", "openInterest": "688.11", "oraclePx": "14.32",
           "premium": "0.00031774", "prevDayPx": "15.322"}
    m = one(frame("activeAssetCtx", {"coin": "ETH", "ctx": ctx}))
    assert m == ev.MarkPriceUpdated(ts=TS, source="hyperliquid-ws", venue="hyperliquid", instrument="ETH", mark=143161,
                                    oracle=143200, mid=143140, price_decimals=4, funding=125, funding_decimals=7)
    m2 = one(frame("activeAssetCtx", {"coin": "ETH", "ctx": {**ctx, "midPx": None, "funding": "-0.00000296"}}))
    assert (m2.mid, m2.funding, m2.funding_decimals) == (-1, -296, 8)
    spot = one(frame("activeSpotAssetCtx", {"coin": "@107", "ctx": {"markPx": "24.5", "midPx": "24.505",
                                                                   "dayNtlVlm": "1", "prevDayPx": "20",
                                                                   "circulatingSupply": "1", "coin": "@107"}}))
    assert (spot.mark, spot.mid, spot.oracle, spot.price_decimals, spot.funding) == (24500, 24505, -1, 3, 0)


def test_trades_are_prints_with_the_takers_side() -> None:
    data = [{"coin": "BTC", "side": "B", "px": "105056.0", "sz": "0.00219", "hash": "0x" + "0" * 64, "time": T_MS,
             "tid": 121451470284048, "users": [USER, USER]},
            {"coin": "BTC", "side": "A", "px": "105055.5", "sz": "0.1", "hash": "0x" + "0" * 64, "time": T_MS + 1,
             "tid": 7, "users": [USER, USER]}]
    a, b = parse(frame("trades", data)).events
    assert (a.price, a.size, a.side, a.trade_id, a.price_decimals, a.size_decimals) == (
        1050560, 219, "buy", "121451470284048", 1, 5)
    assert (b.price, b.size, b.side, b.venue_ts) == (1050555, 10000, "sell", (T_MS + 1) * 1_000_000)


def test_order_updates() -> None:
    data = [{"order": {"coin": "BTC", "side": "A", "limitPx": "105100.0", "sz": "0.0", "oid": 91, "timestamp": T_MS,
                       "origSz": "0.015", "cloid": "0x000000000000000000000000000000AB"},
             "status": "filled", "statusTimestamp": T_MS + 5}]
    o = one(frame("orderUpdates", data))
    assert o == ev.AccountOrderUpdated(ts=TS, source="hyperliquid-ws", venue="hyperliquid", instrument="BTC",
                                       order_id="91", client_id="0x000000000000000000000000000000ab", status="filled",
                                       side="sell", limit_price=1051000, size=0, orig_size=15, price_decimals=1,
                                       size_decimals=3, venue_ts=(T_MS + 5) * 1_000_000)


def _fill(**kw: object) -> dict:
    f = {"coin": "BTC", "px": "105056.0", "sz": "0.01", "side": "B", "time": T_MS, "startPosition": "-0.02",
         "dir": "Close Short", "closedPnl": "1.234", "hash": "0x" + "1" * 64, "oid": 5, "crossed": True,
         "fee": "-0.0105", "tid": 44, "feeToken": "USDC"}
    f.update(kw)
    return f


def test_user_fills_snapshot_flag_and_fixed_point() -> None:
    snap = parse(frame("userFills", {"isSnapshot": True, "user": USER, "fills": [_fill(), _fill(tid=45)]})).events
    assert [f.snapshot for f in snap] == [True, True]
    f = one(frame("userFills", {"user": USER, "fills": [_fill(cloid="0x" + "0" * 31 + "1")]}))
    assert f == ev.AccountFillReported(ts=TS, source="hyperliquid-ws", venue="hyperliquid", instrument="BTC", side="buy",
                                       price=1050560, size=1, price_decimals=1, size_decimals=2, fee=-105,
                                       fee_decimals=4, fee_asset="USDC", closed_pnl=12340, start_position=-2,
                                       order_id="5", client_id="0x" + "0" * 31 + "1", trade_id="44", snapshot=False,
                                       venue_ts=T_MS * 1_000_000)


def test_user_fundings_and_the_recorded_snapshot() -> None:
    pay = {"time": T_MS, "coin": "ETH", "usdc": "-0.512", "szi": "1.5", "fundingRate": "0.0000125", "nSamples": None}
    later = {**pay, "time": T_MS + 3_600_000, "usdc": "0.25"}
    snap = parse(frame("userFundings", {"isSnapshot": True, "user": USER, "fundings": [pay, later]})).events
    assert [(type(e), e.snapshot, e.venue_ts) for e in snap] == [
        (ev.FundingPaid, True, T_MS * 1_000_000), (ev.FundingPaid, True, (T_MS + 3_600_000) * 1_000_000)]
    f = one(frame("userFundings", {"isSnapshot": False, "user": USER, "fundings": [pay]}))
    assert (f.amount, f.amount_decimals, f.asset, f.size, f.size_decimals, f.rate, f.rate_decimals, f.snapshot) == (
        -512, 3, "USDC", 15, 1, 125, 7, False)
    assert f == ev.FundingPaid(ts=TS, source="hyperliquid-ws", venue="hyperliquid", instrument="ETH", amount=-512,
                               amount_decimals=3, asset="USDC", size=15, size_decimals=1, rate=125, rate_decimals=7,
                               venue_ts=T_MS * 1_000_000, snapshot=False)
    absent = parse(frame("userFundings", {"user": USER, "fundings": [pay]})).events  # no isSnapshot: a new payment
    assert [e.snapshot for e in absent] == [False]


@pytest.mark.parametrize("raw,skipped", [
    ('{"channel":"pong"}', "pong"),
    (frame("subscriptionResponse", {"method": "subscribe", "subscription": {"type": "l2Book", "coin": "BTC"}}),
     "subscriptionResponse"),
    (frame("trades", []), "empty trades message"),
    (frame("userFills", {"isSnapshot": True, "user": USER, "fills": []}), "empty userFills message"),
])
def test_acks_pongs_and_empty_messages_are_skipped(raw: str, skipped: str) -> None:
    p = parse(raw)
    assert p.events == () and p.skipped == skipped and not p.rejected


# ----------------------------------------------------------------------------- rejections

BOOK = {"coin": "BTC", "time": T_MS, "levels": [[lvl("2", "1")], [lvl("3", "1")]]}


@pytest.mark.parametrize("raw,reason", [
    ("{not json", "frame is not JSON"),
    (b"\xff\xfe", "frame is not JSON"),
    ("[1,2]", "frame is a list, expected an object"),
    ('{"data": 1}', "frame has no channel"),
    ('{"channel": 5}', "frame channel is a number"),
    (frame("nope", {}), "unknown channel 'nope'"),
    (frame("allMids", {"mids": {}}), "channel 'allMids' is not modelled"),
    (frame("error", "Invalid subscription"), "venue error: Invalid subscription"),
    ('{"channel": "l2Book"}', "l2Book frame has no data"),
    (frame("l2Book", {**BOOK, "coin": None}), "l2Book data.coin is null, expected a string"),
    (frame("l2Book", {k: v for k, v in BOOK.items() if k != "time"}), "l2Book data.time is missing"),
    (frame("l2Book", {**BOOK, "time": "1737918843542"}), "data.time is a string, expected an integer"),
    (frame("l2Book", {**BOOK, "time": 5}), "data.time 5 ms is outside 2015..2100"),
    (frame("l2Book", {**BOOK, "levels": [[lvl("2", "1")]]}), "data.levels has 1 sides"),
    (frame("l2Book", {**BOOK, "levels": [[lvl("abc", "1")], []]}), "data.levels[0][0].px 'abc' is not a plain decimal"),
    (frame("l2Book", {**BOOK, "levels": [[{"px": 2.5, "sz": "1", "n": 1}], []]}),
     "data.levels[0][0].px is a number, expected a decimal string"),
    (frame("l2Book", {**BOOK, "levels": [[lvl("1e5", "1")], []]}), "not a plain decimal"),
    (frame("l2Book", {**BOOK, "levels": [[lvl("NaN", "1")], []]}), "not a plain decimal"),
    (frame("l2Book", {**BOOK, "levels": [[lvl("2", "0")], []]}), "data.levels[0][0].sz 0 is not > 0"),
    (frame("l2Book", {**BOOK, "levels": [[{"px": "2", "sz": "1"}], []]}), "data.levels[0][0].n is missing"),
    (frame("l2Book", {**BOOK, "levels": [[lvl("2", "1"), lvl("3", "1")], []]}), "levels[0] (bids)[1].px 3 is not below"),
    (frame("l2Book", {**BOOK, "levels": [[], [lvl("3", "1"), lvl("3", "1")]]}), "levels[1] (asks)[1].px 3 is not above"),
    (frame("l2Book", {**BOOK, "coin": "BT C"}), "data.coin: coin 'BT C' is not a coin symbol"),
    (frame("bbo", {"coin": "BTC", "time": T_MS, "bbo": [None]}), "data.bbo has 1 entries"),
    (frame("trades", {"coin": "BTC"}), "trades data is an object, expected a list"),
    (frame("trades", [{"coin": "BTC", "side": "X", "px": "1", "sz": "1", "tid": 1, "time": T_MS}]),
     "data[0].side 'X' is not 'B' (buy) or 'A' (sell)"),
    (frame("trades", [{"coin": "BTC", "side": "B", "px": "1", "sz": "1", "tid": True, "time": T_MS}]),
     "data[0].tid is a bool, expected an integer"),
    (frame("activeAssetCtx", {"coin": "BTC", "ctx": {"markPx": "1", "funding": "0"}}), "data.ctx.oraclePx is missing"),
    (frame("activeAssetCtx", {"coin": "BTC", "ctx": []}), "data.ctx is a list"),
    (frame("userFills", {"isSnapshot": "yes", "user": USER, "fills": []}), "data.isSnapshot is a string"),
    (frame("userFills", {"user": USER, "fills": [_fill(fee=None)]}), "data.fills[0].fee is null"),
    (frame("userFills", {"user": USER, "fills": [_fill(cloid="0x12")]}), "data.fills[0].cloid '0x12' is not 0x + 32"),
    (frame("orderUpdates", [{"order": 3, "status": "open", "statusTimestamp": T_MS}]), "data[0].order is a number"),
    (frame("userFundings", {"user": USER, "fundings": [{"time": T_MS, "coin": "ETH", "usdc": "x", "szi": "1",
                                                        "fundingRate": "0"}]}), "data.fundings[0].usdc 'x'"),
])
def test_malformed_frames_are_rejections_naming_the_field(raw: str | bytes, reason: str) -> None:
    p = parse(raw)
    assert p.rejected, p
    r = p.events[0]
    assert reason in r.reason, r.reason
    assert r.origin == "test:frame 1" and r.ts == TS and r.source == "hyperliquid-ws"
    assert r.raw == (raw if isinstance(raw, str) else raw.decode("utf-8", "backslashreplace"))


def test_a_frame_is_all_or_nothing() -> None:
    good = {"coin": "BTC", "side": "B", "px": "1", "sz": "1", "tid": 1, "time": T_MS}
    p = parse(frame("trades", [good, good, {**good, "px": "-1"}]))
    assert p.rejected and "data[2].px -1 is not > 0" in p.events[0].reason


# ----------------------------------------------------------------------------- properties

_PRICE = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("999999"), places=6, allow_nan=False,
                     allow_infinity=False)


@settings(deadline=None)  # no timing in tests: a loaded box must not fail it
@given(st.lists(_PRICE, min_size=0, max_size=8, unique=True), st.lists(_PRICE, min_size=0, max_size=8, unique=True),
       st.lists(st.decimals(min_value=Decimal("0.001"), max_value=Decimal("1000"), places=3), min_size=16, max_size=16))
def test_l2book_levels_are_exact_and_its_quote_is_the_first_level(bids: list, asks: list, sizes: list) -> None:
    bids, asks = sorted(bids, reverse=True), sorted(asks)
    side = lambda prices, off: [lvl(str(p), str(sizes[off + i])) for i, p in enumerate(prices)]  # noqa: E731
    depth, top = parse(frame("l2Book", {"coin": "BTC", "time": T_MS,
                                        "levels": [side(bids, 0), side(asks, 8)]})).events
    event(f"places {depth.price_decimals}")
    assert [depth.price(p) for p, _ in depth.bids] == bids and [depth.price(p) for p, _ in depth.asks] == asks
    assert [depth.size(s) for _, s in depth.bids] == sizes[:len(bids)]
    assert depth.price_decimals == max([0] + [-p.as_tuple().exponent for p in bids + asks])
    assert (top.bid, top.bid_size) == (depth.bids[0] if bids else (-1, 0))
    assert (top.ask, top.ask_size) == (depth.asks[0] if asks else (-1, 0))


# ----------------------------------------------------------------------------- recordings


def _recording(tmp_path: Path, lines: list[bytes], gz: bool = True) -> Path:
    p = tmp_path / ("rec.gz" if gz else "rec.txt")
    blob = b"\n".join(lines) + b"\n"
    p.write_bytes(gzip.compress(blob) if gz else blob)
    return p


def test_recording_lines_bad_times_blank_lines_and_truncation(tmp_path: Path) -> None:
    good = f"{TS} ".encode() + frame("bbo", {"coin": "BTC", "time": T_MS, "bbo": [lvl("1", "1"), lvl("2", "1")]}).encode()
    lines = [good + b"\r", b"", b"12 " + good.split(b" ", 1)[1], b"no-separator", f"{TS} {{".encode(),
             f"{TS + 1} ".encode() + b'{"channel":"pong"}']
    r = RecordingReader(_recording(tmp_path, lines))
    out = list(r)
    assert [type(e).__name__ for e in out] == ["QuoteUpdated", "InputRejected", "InputRejected", "InputRejected"]
    assert [e.origin for e in out[1:]] == ["rec.gz:line 3", "rec.gz:line 4", "rec.gz:line 5"]
    assert "receive time '12' is not ns" in out[1].reason and out[1].ts == TS  # stamped with the last good time
    assert r.counts.frames == {"bbo": 1, "(bad line)": 2, NOT_JSON: 1, "pong": 1}
    assert r.counts.skipped == {"pong": 1} and r.counts.lines == 5
    # plain text reads the same; a gzip stream cut short ends with one rejection saying so
    assert [type(e) for e in RecordingReader(_recording(tmp_path, lines, gz=False))] == [type(e) for e in out]
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(b"\n".join([good] * 400))[:300])
    tail = list(RecordingReader(cut))
    assert type(tail[-1]) is ev.InputRejected and "breaks off" in tail[-1].reason


def test_the_shared_recording_parses_every_frame() -> None:
    path = require_data(RECORDING)
    r = RecordingReader(path)
    out = list(r)
    assert r.counts.frames == {"l2Book": 46, "trades": 9}
    assert r.counts.events == {"BookDepthUpdated": 46, "QuoteUpdated": 46, "TradePrinted": 64}
    assert not r.counts.rejected and not r.counts.skipped and r.counts.lines == 55
    assert all(e.venue == "hyperliquid" and e.instrument == "BTC" for e in out)
    # an independent read of the file: every book's BBO is its first level each side, exactly
    books = []
    with gzip.open(path, "rt") as f:
        for line in f:
            ts, raw = line.split(" ", 1)
            msg = json.loads(raw)
            if msg["channel"] == "l2Book":
                bids, asks = msg["data"]["levels"]
                books.append((int(ts), bids[0], asks[0], len(bids), len(asks)))
    quotes = [e for e in out if type(e) is ev.QuoteUpdated]
    depths = [e for e in out if type(e) is ev.BookDepthUpdated]
    assert len(quotes) == len(books) == 46
    for q, d, (ts, bid, ask, nb, na) in zip(quotes, depths, books):
        assert q.ts == d.ts == ts and (len(d.bids), len(d.asks)) == (nb, na) == (20, 20)
        assert (q.price(q.bid), q.size(q.bid_size)) == (Decimal(bid["px"]), Decimal(bid["sz"]))
        assert (q.price(q.ask), q.size(q.ask_size)) == (Decimal(ask["px"]), Decimal(ask["sz"]))
        assert (q.bid, q.bid_size, q.ask, q.ask_size) == d.bids[0] + d.asks[0]
        assert q.bid < q.ask
