"""Binance WebSocket recordings -> events (adapters/binance_ws.py, ``tapedeck import binance-ws``):
the shared spot recording decoded completely, futures frames in their documented form, depth
sequencing (gaps recorded as SourceStale, the folded book stale until the next snapshot) and
malformed frames recorded as rejections."""
from __future__ import annotations

import gzip
import json
import re
from collections import Counter

import pytest
from click.testing import CliRunner

from tapedeck.adapters.binance_ws import SPOT, USDM, read_binance_ws
from tapedeck.adapters.eventlog import EventLog
from tapedeck.cli import main
from tapedeck.domain import events as ev
from tapedeck.domain.book_depth import depth_id
from tapedeck.domain.state import MarketState
from tests.conftest import require_data

SPOT_FILE = "binance-ethusdt-ws-2024-08-08/spot_ethusdt_20240808.gz"
T0 = 1723161254024619568  # the spot file's first receive time (ns)


def kinds(events: list[ev.Event]) -> Counter[str]:
    c: Counter[str] = Counter()
    for e in events:
        name = type(e).__name__
        if type(e) is ev.BookDepthUpdated:
            name += " snapshot" if e.snapshot else " diff"
        c[name] += 1
    return c


def test_the_shared_spot_recording_decodes_every_frame() -> None:
    path = require_data(SPOT_FILE)
    events = list(read_binance_ws(path))
    assert kinds(events) == {"QuoteUpdated": 24_077, "TradePrinted": 6_106, "BookDepthUpdated diff": 3_434,
                             "BookDepthUpdated snapshot": 1}  # PROVENANCE.md's counts by stream, nothing rejected
    assert all(e.venue == SPOT and e.instrument == "ETHUSDT" for e in events)  # type: ignore[attr-defined]

    # an independent pass over the raw text: every price and size has exactly 8 places (so 8-decimal
    # fixed point loses and pads nothing), and the diffs follow each other from the snapshot on
    lines = gzip.open(path, "rt").read().splitlines()
    numbers = re.findall(r'"(\d+\.\d*)"', "\n".join(lines))
    assert numbers and all(len(n.split(".")[1]) == 8 for n in numbers)
    snapshot_id = next(json.loads(line.split(" ", 1)[1])["lastUpdateId"] for line in lines if '"stream"' not in line)
    prev, gaps = snapshot_id, 0
    for line in lines:
        if "@depth" in line:
            d = json.loads(line.split(" ", 1)[1])["data"]
            if d["u"] <= snapshot_id:
                continue
            gaps += not (d["U"] <= prev + 1 <= d["u"])
            prev = d["u"]
    assert gaps == sum(type(e) is ev.SourceStale for e in events) == 0

    # values: the first frame of each kind, exactly as its text says
    first = json.loads(lines[0].split(" ", 1)[1])["data"]
    q = events[0]
    assert type(q) is ev.QuoteUpdated and q.ts == T0 and q.venue_ts == 0
    assert (q.bid, q.bid_size, q.ask, q.ask_size) == tuple(int(first[k].replace(".", "")) for k in "bBaA")
    assert str(q.price(q.bid)) == "2683.80000000" and q.price_decimals == q.size_decimals == 8
    trade_line = next(line for line in lines if "@trade" in line)
    t_data = json.loads(trade_line.split(" ", 1)[1])["data"]
    t = next(e for e in events if type(e) is ev.TradePrinted)
    assert t.trade_id == str(t_data["t"]) and t.venue_ts == t_data["T"] * 10**6
    assert t.side == ("sell" if t_data["m"] else "buy") and t.price == int(t_data["p"].replace(".", ""))

    # folded, the book is in sync at the end, its best levels not crossed
    state = MarketState()
    for e in events:
        if type(e) is ev.BookDepthUpdated:
            state.on_depth(e)
    book = state.depth[depth_id(SPOT, "ETHUSDT")]
    assert book.synced and book.bids()[0][0] < book.asks()[0][0]


def test_import_binance_ws_through_the_cli(tmp_path) -> None:
    path = require_data(SPOT_FILE)
    out = tmp_path / "book.db"
    r = CliRunner().invoke(main, ["import", "binance-ws", str(path), "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "imported 33618 events" in r.output and "rejected 0 row(s)" in r.output
    with EventLog.open(out) as log:
        counts = log.counts_by_topic()
    assert counts == {"BookDepthUpdated.v1": 3_435, "QuoteUpdated.v4": 24_077, "TradePrinted.v1": 6_106}
    r = CliRunner().invoke(main, ["import", "binance-ws", str(path), "--out", str(tmp_path / "x.db"), "--fee", "30"])
    assert r.exit_code == 2 and "a Binance recording has none of them" in r.output


# ----------------------------------------------------------------------------- synthetic frames


def write(tmp_path, name: str, frames: list[str | dict]) -> str:
    p = tmp_path / name
    lines = []
    for i, f in enumerate(frames):
        lines.append(f if isinstance(f, str) else f"{T0 + i * 1_000_000} {json.dumps(f)}")
    with gzip.open(p, "wt") as g:
        g.write("\n".join(lines) + "\n")
    return str(p)


# USD-M futures frames in the documented form (binance derivatives docs, "Individual Symbol Book
# Ticker Streams", "Diff. Book Depth Streams", "Aggregate Trade Streams"; example values as given there,
# except the depth and aggTrade times: their placeholders (123456789 ms) are 1973, so the ticker's are used)
FUT_TICKER = {"e": "bookTicker", "u": 400900217, "E": 1568014460893, "T": 1568014460891, "s": "BNBUSDT",
              "b": "25.35190000", "B": "31.21000000", "a": "25.36520000", "A": "40.66000000"}
FUT_DEPTH = {"e": "depthUpdate", "E": 1568014460893, "T": 1568014460891, "s": "BNBUSDT", "U": 157, "u": 160, "pu": 149,
             "b": [["0.0024", "10"]], "a": [["0.0026", "100"]]}
FUT_AGG = {"e": "aggTrade", "E": 1568014460893, "s": "BNBUSDT", "a": 5933014, "p": "0.001", "q": "100", "f": 100,
           "l": 105, "T": 1568014460891, "m": True}


def test_futures_frames_with_their_event_and_transaction_times(tmp_path) -> None:
    snapshot = {"lastUpdateId": 158, "bids": [["0.0023", "5"]], "asks": [["0.0027", "5"]]}
    follow = {**FUT_DEPTH, "U": 161, "u": 170, "pu": 160}
    gap = {**FUT_DEPTH, "U": 175, "u": 180, "pu": 172}  # pu is not the previous u (170)
    path = write(tmp_path, "usdm_bnbusdt_20240808.gz", [
        {"stream": "bnbusdt@bookTicker", "data": FUT_TICKER},
        {"stream": "bnbusdt@depth@0ms", "data": FUT_DEPTH},  # before the snapshot; again after it, covering 158
        snapshot, {"stream": "bnbusdt@depth@0ms", "data": FUT_DEPTH}, {"stream": "bnbusdt@depth@0ms", "data": follow},
        {"stream": "bnbusdt@aggTrade", "data": FUT_AGG}, {"stream": "bnbusdt@depth@0ms", "data": gap},
    ])
    events = list(read_binance_ws(path))
    assert all(getattr(e, "venue", USDM) == USDM for e in events)
    q = events[0]
    assert type(q) is ev.QuoteUpdated and q.instrument == "BNBUSDT"
    assert q.venue_ts == 1568014460891 * 10**6  # T, the transaction time
    assert (q.bid, q.ask, q.bid_size) == (25_35190000, 25_36520000, 31_21000000)
    d = events[1]
    assert type(d) is ev.BookDepthUpdated and not d.snapshot
    assert (d.first_update, d.last_update) == (150, 160)  # pu + 1, u
    assert d.bids == ((240_000, 10 * 10**8),) and d.venue_ts == 1568014460891 * 10**6
    assert type(events[2]) is ev.BookDepthUpdated and events[2].snapshot and events[2].instrument == "BNBUSDT"
    agg = next(e for e in events if type(e) is ev.TradePrinted)
    assert agg.trade_id == "5933014" and agg.side == "sell" and agg.size == 100 * 10**8
    stale = [e for e in events if type(e) is ev.SourceStale]
    assert len(stale) == 1 and stale[0].venues == (depth_id(USDM, "BNBUSDT"),) and "pu 172" in stale[0].reason
    assert events.index(stale[0]) == len(events) - 2  # recorded just before the diff that shows it
    # folded: the book follows pu, and is stale from the gap on
    state = MarketState()
    for e in events:
        if type(e) is ev.BookDepthUpdated:
            state.on_depth(e)
        elif type(e) is ev.SourceStale:
            state.on_source_stale(e)
    key = depth_id(USDM, "BNBUSDT")
    assert state.depth[key].last_update == 170 and not state.depth[key].synced and key in state.stale


def test_a_spot_depth_gap_is_recorded_and_the_book_stays_stale_until_a_snapshot(tmp_path) -> None:
    def diff(first: int, last: int) -> dict:
        return {"stream": "ethusdt@depth@100ms", "data": {"e": "depthUpdate", "E": 1723161255308, "s": "ETHUSDT",
                                                           "U": first, "u": last, "b": [["2683.80000000", "1.00000000"]],
                                                           "a": []}}
    snap = {"lastUpdateId": 10, "bids": [["2683.70000000", "2.00000000"]], "asks": [["2683.90000000", "1.00000000"]]}
    path = write(tmp_path, "spot_ethusdt_x.gz", [diff(5, 8), snap, diff(9, 12), diff(13, 15), diff(17, 20),
                                                  diff(21, 22), {**snap, "lastUpdateId": 30}, diff(31, 33)])
    events = list(read_binance_ws(path))
    stale = [e for e in events if type(e) is ev.SourceStale]
    assert len(stale) == 1 and "U 17 does not follow the previous final id 15" in stale[0].reason
    state = MarketState()
    key = depth_id(SPOT, "ETHUSDT")
    synced = []
    for e in events:
        if type(e) is ev.BookDepthUpdated:
            state.on_depth(e)
            synced.append((e.snapshot, e.last_update, state.depth[key].synced, key in state.stale))
        elif type(e) is ev.SourceStale:
            state.on_source_stale(e)
    assert synced == [(False, 8, False, True), (True, 10, True, False), (False, 12, True, False),
                      (False, 15, True, False), (False, 20, False, True), (False, 22, False, True),
                      (True, 30, True, False), (False, 33, True, False)]


def test_malformed_frames_become_recorded_rejections(tmp_path) -> None:
    good = {"stream": "ethusdt@bookTicker", "data": {"u": 1, "s": "ETHUSDT", "b": "1.00000000", "B": "1.00000000",
                                                      "a": "2.00000000", "A": "1.00000000"}}
    bad = [
        ("notatime {}", "no receive time"),
        (f"{T0} {{not json", "not JSON"),
        (f"{T0} [1, 2]", "not an object"),
        (f"{T0} " + json.dumps({"stream": "ethusdt@kline_1m", "data": {"s": "ETHUSDT"}}), "unknown stream"),
        (f"{T0} " + json.dumps({**good, "data": {**good["data"], "b": 1.5}}), "not a decimal string"),
        (f"{T0} " + json.dumps({**good, "data": {**good["data"], "b": "1.000000001"}}), "more than 8 decimal places"),
        (f"{T0} " + json.dumps({**good, "data": {**good["data"], "A": "-1.00000000"}}), "negative"),
        (f"{T0} " + json.dumps({**good, "data": {k: v for k, v in good["data"].items() if k != "a"}}), "missing field 'a'"),
        (f"{T0} " + json.dumps({"stream": "ethusdt@trade", "data": {"e": "trade", "s": "ETHUSDT", "t": 1, "p": "1.0",
                                                                    "q": "1.0", "T": 1723161255308, "m": "yes"}}),
         "not true/false"),
        (f"{T0} " + json.dumps({"stream": "ethusdt@depth", "data": {"s": "ETHUSDT", "U": 9, "u": 3, "b": [], "a": [],
                                                                    "E": 1723161255308}}), "U 9 is after u 3"),
        (f"{T0} " + json.dumps({"stream": "ethusdt@depth", "data": {"s": "ETHUSDT", "U": 1, "u": 3, "b": [["1"]],
                                                                    "a": [], "E": 1723161255308}}), "not a [price, size] pair"),
        ("1 " + json.dumps(good), "outside 2015..2100"),
    ]
    path = write(tmp_path, "spot_ethusdt_bad.gz", [good, *[line for line, _ in bad], good])
    events = list(read_binance_ws(path))
    assert [type(e).__name__ for e in events] == ["QuoteUpdated"] + ["InputRejected"] * len(bad) + ["QuoteUpdated"]
    for e, (line, why) in zip(events[1:], bad):
        assert why in e.reason, (why, e.reason)  # type: ignore[attr-defined]
        assert e.raw == line[:400] and e.origin.startswith("binance-ws:spot_ethusdt_bad.gz:line ")  # type: ignore[attr-defined]
        assert e.ts >= T0
