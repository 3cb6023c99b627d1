"""Adversarial input to the Binance WebSocket reader (adapters/binance_ws.py): every malformed line
or frame is one recorded ``InputRejected`` naming what was wrong, the lines around it are imported,
nothing crashes and nothing is invented from a value of the wrong shape."""
from __future__ import annotations

import json

import pytest

from tapedeck.adapters import binance_ws as bw
from tapedeck.domain import events as ev

T0 = 1723161254024619568
TICKER = {"u": 35346513501, "s": "ETHUSDT", "b": "2683.80000000", "B": "3.02920000", "a": "2683.81000000",
          "A": "31.43950000"}


def frame(stream: str, data: dict) -> str:
    return json.dumps({"stream": f"ethusdt@{stream}", "data": data}, separators=(",", ":"))


def ticker(**fields: object) -> str:
    return frame("bookTicker", {**TICKER, **fields})


def write(tmp_path, name: str, lines: list[str]) -> str:
    p = tmp_path / name
    p.write_text("".join(f"{T0 + i * 1_000_000} {line}\n" for i, line in enumerate(lines)))
    return str(p)


def rejected(events: list[ev.Event]) -> list[str]:
    return [e.reason for e in events if type(e) is ev.InputRejected]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["spot_ethusdt_deep.txt", "deep.txt"])  # (no market in the name: sniffed first)
def test_a_deeply_nested_line_is_one_rejection_and_the_others_are_imported(tmp_path, name: str) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    deep_in_a_frame = ticker(x=[]).replace("[]", deep)  # under a stream the typed fast path tries first
    path = write(tmp_path, name, [deep, deep_in_a_frame, ticker()])
    events = list(bw.read_binance_ws(path))
    assert [type(e).__name__ for e in events] == ["InputRejected", "InputRejected", "QuoteUpdated"]
    assert rejected(events) == [bw.NESTED, bw.NESTED]
    assert events[0].origin == f"binance-ws:{name}:line 1" and events[0].raw.startswith(f"{T0} [[[")  # type: ignore[attr-defined]
    assert events[2].venue == bw.SPOT and events[2].instrument == "ETHUSDT"  # type: ignore[attr-defined]


def test_a_deeply_nested_live_frame_is_one_rejection() -> None:
    p = bw.FrameParser()
    for raw in ("[" * 100_000 + "]" * 100_000, ticker(x=[]).replace("[]", "[" * 100_000 + "]" * 100_000)):
        out = p.parse(raw, T0, "live")
        assert [(type(e), e.reason) for e in out] == [(ev.InputRejected, bw.NESTED)]  # type: ignore[attr-defined]
    assert type(p.parse(ticker(), T0, "live")[0]) is ev.QuoteUpdated  # the parser goes on
