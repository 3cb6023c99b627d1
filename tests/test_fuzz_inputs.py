"""The fuzz campaign at a small budget (``benchmarks/bench_fuzz.py`` runs >= 1,000,000 inputs): mutated
real rows and stored bodies through the V3 reader, the V2 reader and the codec. Nothing escapes,
every reader output keeps its invariants, and the campaign shows it exercised what it claims."""
from __future__ import annotations

import os

import pytest

from benchmarks.bench_fuzz import run_campaign

pytestmark = pytest.mark.slow

BUDGET = int(os.environ.get("TAPEDECK_FUZZ_BUDGET", "20000"))


def test_fuzz_campaign_nothing_escapes() -> None:
    c = run_campaign(BUDGET, seed=8)
    print("\n".join(c.lines()))
    assert c.escaped == 0 and c.invariant_failures == 0, c.examples
    assert c.inputs >= BUDGET
    # every target was fed, and each produced both outcomes
    assert all(c.by_target[t] >= BUDGET // 5 for t in ("v3", "v2", "codec")), c.by_target
    assert c.events > 0 and c.rejections > 0 and c.codec_decoded > 0 and c.codec_rejected > 0
    # the hostile classes the issue names were met and recorded
    seen = " | ".join(c.reasons)
    for kind in ("not UTF-N text", "NUL byte", "topics is not a list", "expected N fields, row has",
                 "bad block_timestamp", "is outside N..N", "negative", "digits) is larger", "time runs backwards",
                 "has two times", "is not after the", "bad transaction_hash", "unknown topicN", "truncated data",
                 "data is not Nx-prefixed", "header lacks column"):
        assert kind in seen, (kind, c.reasons.most_common())


AAVE_BUDGET = int(os.environ.get("TAPEDECK_FUZZ_AAVE_BUDGET", "5000"))


def test_fuzz_aave_reader_nothing_escapes() -> None:
    """Mutated rows of the Aave v3 Pool-log day (synthetic rows of every event when it is absent)."""
    from benchmarks.bench_fuzz import run_aave_campaign

    c = run_aave_campaign(AAVE_BUDGET, seed=9)
    print("\n".join(c.lines()))
    assert c.escaped == 0 and c.invariant_failures == 0, c.examples
    assert c.inputs >= AAVE_BUDGET and c.events > 0 and c.rejections > 0
    seen = " | ".join(c.reasons)
    for kind in ("not UTF-N text", "topics is not a list", "bad block_timestamp", "data is not Nx-prefixed",
                 "log (block N, log_index N) is", "truncated data"):
        assert kind in seen, (kind, c.reasons.most_common())


# ----------------------------------------------------------------------------- Hyperliquid WebSocket frames

HL_BUDGET = int(os.environ.get("TAPEDECK_FUZZ_HL_BUDGET", "20000"))
HL_RECORDING = "hyperliquid-btc-ws-2025-01-26/btcusd_20250126.gz"
_HL_MS = 1_737_918_843_542
_HL_USER = "0x" + "ab" * 20
_HL_FILL = {"coin": "BTC", "px": "105056.0", "sz": "0.01", "side": "B", "time": _HL_MS, "startPosition": "-0.02",
            "dir": "Close Short", "closedPnl": "1.234", "hash": "0x" + "1" * 64, "oid": 5, "crossed": True,
            "fee": "-0.0105", "tid": 44, "feeToken": "USDC", "cloid": "0x" + "0" * 31 + "7"}
# One frame of every modelled channel (and the skipped ones), for when the shared recording is absent
# and because it holds only l2Book and trades.
HL_SYNTHETIC = [
    {"channel": "bbo", "data": {"coin": "xyz:NVDA", "time": _HL_MS, "bbo": [{"px": "145.2", "sz": "10", "n": 2},
                                                                             {"px": "145.25", "sz": "3.5", "n": 1}]}},
    {"channel": "l2Book", "data": {"coin": "@107", "time": _HL_MS, "levels": [
        [{"px": "24.5", "sz": "1", "n": 1}, {"px": "24.4", "sz": "2.25", "n": 3}], [{"px": "24.51", "sz": "4", "n": 1}]]}},
    {"channel": "activeAssetCtx", "data": {"coin": "ETH", "ctx": {
        "dayNtlVlm": "1169046.29406", "funding": "0.0000125", "markPx": "14.3161", "midPx": "14.314",
        "openInterest": "688.11", "oraclePx": "14.32", "premium": "0.00031774", "prevDayPx": "15.322"}}},
    {"channel": "activeSpotAssetCtx", "data": {"coin": "PURR/USDC", "ctx": {"markPx": "0.2", "midPx": None,
                                                                          "dayNtlVlm": "1", "prevDayPx": "0.19"}}},
    {"channel": "trades", "data": [{"coin": "BTC", "side": "A", "px": "105055.0", "sz": "0.00219", "hash": "0x00",
                                    "time": _HL_MS, "tid": 85392298469503, "users": [_HL_USER, _HL_USER]}]},
    {"channel": "orderUpdates", "data": [{"order": {"coin": "BTC", "side": "A", "limitPx": "105100.0", "sz": "0.01",
                                                    "oid": 91, "timestamp": _HL_MS, "origSz": "0.015"},
                                          "status": "open", "statusTimestamp": _HL_MS}]},
    {"channel": "userFills", "data": {"isSnapshot": True, "user": _HL_USER, "fills": [_HL_FILL]}},
    {"channel": "userFills", "data": {"user": _HL_USER, "fills": [_HL_FILL, {**_HL_FILL, "tid": 45}]}},
    {"channel": "userFundings", "data": {"isSnapshot": False, "user": _HL_USER, "fundings": [
        {"time": _HL_MS, "coin": "ETH", "usdc": "-0.512", "szi": "1.5", "fundingRate": "0.0000125"}]}},
    {"channel": "subscriptionResponse", "data": {"method": "subscribe", "subscription": {"type": "bbo", "coin": "BTC"}}},
    {"channel": "pong"},
]
_HL_HOSTILE = [None, True, 0, -1, 1.5, 2**70, "", " ", "abc", "1e5", "NaN", "-0", "0", "1" * 40, "0." + "1" * 31,
               "１２", [], {}, [[]], {"px": "1"}, "\x00", "x" * 500, "B", "A", "BTC", "xyz:", "@01", [None, None]]
_HL_CHANNELS = ["bbo", "l2Book", "trades", "nope", "allMids", "error", "pong", "userFills", "userFundings", ""]


def _hl_mutate_value(rng, seed: bytes):  # type: ignore[no-untyped-def]
    """A frame decoded afresh from ``seed`` with one value somewhere replaced, deleted, duplicated or re-typed."""
    import copy

    import msgspec

    obj = msgspec.json.decode(seed)
    path, node = [], obj
    while isinstance(node, (dict, list)) and node and rng.random() < 0.8:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append((node, key))
        node = node[key]
    if not path:
        return rng.choice(_HL_HOSTILE) if rng.random() < 0.5 else obj
    parent, key = path[-1]
    op = rng.random()
    if op < 0.55:
        parent[key] = rng.choice(_HL_HOSTILE)
    elif op < 0.7 and isinstance(parent, dict):
        del parent[key]
    elif op < 0.8 and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))  # a repeated level: the book is no longer best first
    elif op < 0.9 and isinstance(node, str) and node[:1].isdigit():
        parent[key] = node + rng.choice(["0", "5", ".5", "1"])  # more places or a different value
    else:
        obj["channel"] = rng.choice(_HL_CHANNELS) if isinstance(obj, dict) else obj
    return obj


def test_fuzz_hyperliquid_frames_nothing_escapes() -> None:
    """Mutated real and synthetic Hyperliquid frames (values replaced/deleted/re-typed, bytes flipped,
    truncated, re-encoded) through ``parse_frame`` and whole mutated recordings through the reader:
    nothing raises; every frame is events, one rejection naming its reason, or a named skip; every
    event survives the codec; and every modelled channel produced events."""
    import gzip
    import io
    import json
    import random
    from collections import Counter

    import re

    from benchmarks.bench_fuzz import mutate_bytes, reencode
    from tapedeck.adapters.hyperliquid_ws import MODELLED, RecordingReader, parse_frame
    from tapedeck.domain import codec, events as ev
    from tests.conftest import data_dir

    rng = random.Random(11)
    seeds = [json.dumps(f, separators=(",", ":")).encode() for f in HL_SYNTHETIC]
    real = data_dir() / HL_RECORDING
    if real.is_file():
        with gzip.open(real, "rb") as f:
            seeds += [line.rstrip(b"\n").split(b" ", 1)[1] for line in f]
    counts, reasons, channels_out = Counter(), Counter(), Counter()
    escaped: list[str] = []
    for i in range(HL_BUDGET):
        k = rng.randrange(len(seeds))
        r = rng.random()
        if r < 0.1:
            raw = seeds[k]
        elif r < 0.65:
            raw = json.dumps(_hl_mutate_value(rng, seeds[k])).encode()
        elif r < 0.93:
            raw = mutate_bytes(rng, seeds[k])
        else:
            raw = reencode(rng, seeds[k])
        ts = 1_700_000_000_000_000_000 + i
        try:
            p = parse_frame(raw if rng.random() < 0.8 else raw.decode("utf-8", "replace"), ts, f"fuzz:{i}")
        except Exception as e:  # noqa: BLE001 - the point: nothing may escape
            escaped.append(f"{type(e).__name__}: {e} on {raw[:200]!r}")
            continue
        counts["inputs"] += 1
        if p.rejected:
            rej = p.events[0]
            assert rej.reason and rej.origin == f"fuzz:{i}" and rej.ts == ts, rej
            codec.decode(codec.topic(ev.InputRejected), codec.encode(rej))
            counts["rejected"] += 1
            reasons[re.sub(r"[0-9]+", "N", re.sub(r"'[^']*'|\"[^\"]*\"", "Q", rej.reason))] += 1
        elif p.events:
            counts["events"] += len(p.events)
            channels_out[p.channel] += 1
            for e in p.events:
                assert type(e) is not ev.InputRejected and e.ts == ts and e.venue == "hyperliquid"
                assert codec.decode(codec.topic(type(e)), codec.encode(e)) == e
        else:
            assert p.skipped, p
            counts["skipped"] += 1
    # whole mutated recordings (timestamps and lines too) through the reader
    for j in range(max(1, HL_BUDGET // 200)):
        lines = [b"%d %s" % (1_737_918_843_893_903_000 + n, rng.choice(seeds)) for n in range(rng.randint(1, 8))]
        lines = [mutate_bytes(rng, line) if rng.random() < 0.4 else line for line in lines]
        blob = b"\n".join(lines)
        if rng.random() < 0.5:
            blob = gzip.compress(blob)
            blob = blob[:rng.randrange(len(blob) + 1)] if rng.random() < 0.3 else blob
        try:
            reader = RecordingReader("fuzz.gz")
            out = list(reader.read_stream(gzip.GzipFile(fileobj=io.BytesIO(blob)) if blob[:2] == b"\x1f\x8b"
                                          else io.BytesIO(blob), "fuzz.gz"))
        except Exception as e:  # noqa: BLE001
            escaped.append(f"reader {type(e).__name__}: {e} on {blob[:200]!r}")
            continue
        counts["recordings"] += 1
        rejections = [e for e in out if type(e) is ev.InputRejected]
        broke_off = bool(rejections) and "breaks off" in rejections[-1].reason
        counts["broke off"] += broke_off
        # every line is one frame (plus one for a stream that breaks off), each rejection is counted
        assert sum(reader.counts.frames.values()) == reader.counts.lines + broke_off
        assert sum(reader.counts.rejected.values()) == len(rejections)
        assert len(out) - len(rejections) == sum(reader.counts.events.values())
    print(f"\nhyperliquid frames: {dict(counts)}; channels with events {dict(channels_out)}; "
          f"reason kinds {len(reasons)}: {reasons.most_common(12)}")
    assert not escaped, escaped[:5]
    assert counts["broke off"] > 0 and counts["recordings"] == max(1, HL_BUDGET // 200)
    assert counts["inputs"] == HL_BUDGET and counts["events"] > 0 and counts["rejected"] > 0 and counts["skipped"] > 0
    assert set(channels_out) >= set(MODELLED), channels_out  # every channel's parser was fed and produced events
    seen = " | ".join(reasons)
    for kind in ("frame is not JSON", "is missing", "expected a decimal string", "is not a plain decimal",
                 "unknown channel", "is not modelled", "venue error", "is not > N", "expected an integer",
                 "the side is not best first", "is outside N..N", "expected an object"):
        assert kind in seen, (kind, reasons.most_common())
BINANCE_BUDGET = int(os.environ.get("TAPEDECK_FUZZ_BINANCE_BUDGET", "5000"))


def test_fuzz_binance_ws_reader_nothing_escapes(tmp_path) -> None:
    """Mutated lines of the shared Binance recording (synthetic frames of each stream when it is
    absent) through ``read_binance_ws``: every line is one event (a diff that shows a gap: two,
    its SourceStale first), nothing raises, every event keeps its invariants."""
    import gzip
    import random
    from collections import Counter

    from tapedeck.adapters.binance_ws import read_binance_ws
    from tapedeck.domain import events as ev
    from tests.conftest import data_dir

    real = data_dir() / "binance-ethusdt-ws-2024-08-08" / "spot_ethusdt_20240808.gz"
    if real.exists():
        with gzip.open(real, "rt") as f:
            seeds = [line.rstrip("\n") for _, line in zip(range(3_000), f)]
    else:
        seeds = ['1723161254024619568 {"stream":"ethusdt@bookTicker","data":{"u":35346513501,"s":"ETHUSDT",'
                 '"b":"2683.80000000","B":"3.02920000","a":"2683.81000000","A":"31.43950000"}}',
                 '1723161254036052868 {"stream":"ethusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255308,'
                 '"s":"ETHUSDT","U":35346513499,"u":35346513505,"b":[["2683.80000000","3.02920000"]],"a":[]}}',
                 '1723161254152322667 {"lastUpdateId":35346513512,"bids":[["2683.80000000","3.02920000"]],"asks":[]}',
                 '1723161254200000000 {"stream":"ethusdt@trade","data":{"e":"trade","E":1723161255400,"s":"ETHUSDT",'
                 '"t":1,"p":"2683.80000000","q":"0.10000000","T":1723161255400,"m":true,"M":true}}']
    rng = random.Random(10)
    junk = ['"', "{", "}", "[", "]", ",", ":", "-", ".", "e", "x", "\x00", "null", "1e999", "\u00e9", " "]

    def mutate(line: str) -> str:
        for _ in range(rng.randint(1, 3)):
            op = rng.randrange(6)
            i = rng.randrange(len(line) + 1)
            if op == 0:
                line = line[:i]
            elif op == 1 and line:
                line = line[:i] + line[i + 1:]
            elif op == 2:
                line = line[:i] + rng.choice(junk) + line[i:]
            elif op == 3:
                line = line.replace(rng.choice(["0", "5", "8"]), rng.choice(["a", "-", ".", "99999999999"]), 1)
            elif op == 4:
                line = line.replace('"', "", 1)
            else:
                line = line.replace(rng.choice(['"b"', '"u"', '"s"', '"m"', '"p"', '"U"']), '"z"', 1)
        return line

    lines = [mutate(rng.choice(seeds)) if rng.random() < 0.8 else rng.choice(seeds) for _ in range(BINANCE_BUDGET)]
    lines = [line.replace("\n", " ").replace("\r", " ") for line in lines]
    path = tmp_path / "spot_ethusdt_fuzz.gz"
    with gzip.open(path, "wt", encoding="utf-8", errors="surrogateescape") as f:
        f.write("\n".join(lines) + "\n")
    out = list(read_binance_ws(path))  # nothing escapes
    kinds = Counter(type(e).__name__ for e in out)
    assert len(out) - kinds["SourceStale"] == len(lines)  # one event per line, plus a gap's SourceStale
    reasons: Counter[str] = Counter()
    for e in out:
        if type(e) is ev.InputRejected:
            assert e.reason and e.origin.startswith("binance-ws:spot_ethusdt_fuzz.gz:line ")
            reasons[e.reason.split(":")[0].split(" ")[0]] += 1
        elif type(e) is ev.QuoteUpdated:
            assert min(e.bid, e.ask, e.bid_size, e.ask_size) >= 0 and e.price_decimals == 8
        elif type(e) is ev.BookDepthUpdated:
            assert all(p >= 0 and s >= 0 for p, s in e.bids + e.asks) and (e.snapshot or e.first_update <= e.last_update)
        elif type(e) is ev.TradePrinted:
            assert e.side in ("buy", "sell") and e.price >= 0 and e.size >= 0
        else:
            assert type(e) is ev.SourceStale and e.reason.startswith("depth gap")
    print(dict(kinds), reasons.most_common(12))
    assert kinds["InputRejected"] > len(lines) // 4 and kinds["QuoteUpdated"] > 0
    seen = " ".join(reasons)
    for kind in ("not", "missing", "field"):  # not JSON / not an object, missing fields, mistyped fields
        assert kind in seen, reasons.most_common()
