"""The typed fast path of the Binance frame parser (``adapters/binance_ws._frame_fast``) makes exactly
the events of the general path (``_frame`` over the decoded dict), and hands every frame it cannot
take whole to it: real frames, and the same frames mutated field by field (null, missing, negative,
float, wrong type, a price in another form, a duplicated or escaped stream name)."""
from __future__ import annotations

import json
import random

import pytest

from tapedeck.adapters import binance_ws as bw
from tapedeck.domain import events as ev
from tests.conftest import require_data

SPOT_FILE = "binance-ethusdt-ws-2024-08-08/spot_ethusdt_20240808.gz"
TS = 1_723_161_254_024_619_568

TICKER = {"stream": "ethusdt@bookTicker", "data": {"u": 35346513501, "s": "ETHUSDT", "b": "2683.80000000",
                                                    "B": "3.02920000", "a": "2683.81000000", "A": "31.43950000"}}
TRADE = {"stream": "ethusdt@trade", "data": {"e": "trade", "E": 1723161255308, "s": "ETHUSDT", "t": 1545678901,
                                              "p": "2683.80000000", "q": "0.00370000", "T": 1723161255307, "m": True,
                                              "M": True}}
DEPTH = {"stream": "ethusdt@depth@100ms", "data": {"e": "depthUpdate", "E": 1723161255308, "s": "ETHUSDT",
                                                   "U": 35346513499, "u": 35346513505,
                                                   "b": [["2683.80000000", "3.02920000"], ["2679.00000000", "0.00000000"]],
                                                   "a": [["2733.70000000", "0.00000000"]]}}


def dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))  # as Binance writes its frames


def general(body: bytes, books: bw._Books, futures: bool = False, venue: str = bw.SPOT) -> list[ev.Event] | str:
    try:
        return bw._frame(bw._object(body), TS, venue, futures, "ETHUSDT", books)
    except bw.FrameError as e:
        return f"rejected: {e}"


def parsed(body: bytes, books: bw._Books, futures: bool = False, venue: str = bw.SPOT) -> list[ev.Event] | str:
    """What the live parser does: the fast path, else the general one."""
    fast = bw._frame_fast(body, TS, venue, futures, books)
    return fast if fast is not None else general(body, books, futures, venue)


def same_both_ways(bodies: list[bytes], futures: bool = False) -> int:
    """Feed ``bodies`` through both (each with its own depth positions); returns how many the fast path took."""
    a, b = bw._Books(), bw._Books()
    a.snapshot("binance:ETHUSDT:depth", 35346513498)
    b.snapshot("binance:ETHUSDT:depth", 35346513498)
    took = 0
    for body in bodies:
        probe = bw._Books()
        probe.last, probe.synced = dict(b.last), dict(b.synced)
        took += bw._frame_fast(body, TS, bw.SPOT, futures, probe) is not None
        assert parsed(body, b, futures) == general(body, a, futures), body
        assert (a.last, a.synced) == (b.last, b.synced), body
    return took


def mutations(frame: dict, rng: random.Random) -> list[bytes]:
    out = [dumps(frame).encode()]
    data = frame["data"]
    for key in list(data):
        for value in (None, -1, 1.5, "x", True, [], "2683.8", "2683.800000000", "+2683.80000000", "٢683.80000000",
                      "2683.8000000a", 2**70,
                      "2.68380000e3", "２６８３.80000000", "9" * 30 + ".00000000", "0.00000000",
                      "2683.81000000", "2684.00000000"):
            d = dict(data, **{key: value})
            out.append(dumps({**frame, "data": d}).encode())
        out.append(dumps({**frame, "data": {k: v for k, v in data.items() if k != key}}).encode())
    for extra in ("T", "E", "pu"):
        out.append(dumps({**frame, "data": dict(data, **{extra: None})}).encode())
        out.append(dumps({**frame, "data": dict(data, **{extra: 1723161255300})}).encode())
        out.append(dumps({**frame, "data": dict(data, **{extra: 10})}).encode())  # a time before 2015
    text = dumps(frame)
    out.append(text.replace('"stream":"', '"stream":"x@trade","stream":"', 1).encode())  # the last one counts
    out.append(text.replace("@", "\\u0040", 1).encode())
    out.append(text.encode() + b" trailing")
    out.append(text[:-5].encode())
    if "b" in data and isinstance(data["b"], list):
        out.append(dumps({**frame, "data": dict(data, b=[["1.00000000", "2.00000000", "3.00000000"]])}).encode())
        out.append(dumps({**frame, "data": dict(data, b=[["1.00000000"]])}).encode())
        out.append(dumps({**frame, "data": dict(data, b=[["0.00000000", "1.00000000"]])}).encode())
        out.append(dumps({**frame, "data": dict(data, U=data["u"] + 1)}).encode())  # U after u
        out.append(dumps({**frame, "data": dict(data, U=1, u=2)}).encode())  # old
        out.append(dumps({**frame, "data": dict(data, U=35346513600, u=35346513700)}).encode())  # a gap
    rng.shuffle(out)
    return out


@pytest.mark.parametrize("frame", [TICKER, TRADE, DEPTH, {**TRADE, "stream": "ethusdt@aggTrade",
                                                          "data": {**TRADE["data"], "e": "aggTrade", "a": 77}}],
                         ids=["bookTicker", "trade", "depth", "aggTrade"])
def test_every_mutation_gives_the_general_paths_events_or_rejection(frame: dict) -> None:
    bodies = mutations(frame, random.Random(5))
    took = same_both_ways(bodies)
    assert took >= 2  # the well-formed frame and the harmless mutations went the fast way
    assert took < len(bodies) // 2  # and most mutations did not
    assert same_both_ways(bodies, futures=True) >= 1


def test_the_fast_path_takes_every_real_frame_and_makes_the_same_events() -> None:
    from tapedeck.live.playback import read_frames

    frames = [f.body.encode() for f in read_frames(require_data(SPOT_FILE))]
    stream = [b for b in frames if b.startswith(b'{"stream"')]
    assert len(stream) == len(frames) - 1  # all but the REST snapshot
    assert same_both_ways(stream[:5000]) == 5000


def test_the_live_parser_learns_the_symbol_from_a_fast_frame() -> None:
    p = bw.FrameParser(bw.SPOT)
    assert p.parse(dumps(TICKER).encode(), TS, "t")[0].instrument == "ETHUSDT"  # type: ignore[attr-defined]
    assert p.symbol == "ETHUSDT"
