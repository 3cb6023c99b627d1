"""Hyperliquid ``userFundings`` end to end: the subscription's first message (``isSnapshot``, the
account's past payments) is recorded as ``FundingPaid(snapshot=True)`` and the positions do not add
it; live payments are added once; a reconnect's snapshot adds only what was paid while the stream was
down (after the first snapshot's newest payment), never a payment already applied."""
from __future__ import annotations

import json

from tapedeck.adapters.hyperliquid_ws import parse_frame
from tapedeck.domain import events as ev
from tapedeck.domain.perp_positions import PerpPositions

USER = "0x" + "ab" * 20
HOUR_MS = 3_600_000
T0 = 1_709_251_200_000  # 2024-03-01T00:00:00Z in ms


def pay(hour: int, usdc: str) -> dict[str, object]:
    return {"time": T0 + hour * HOUR_MS, "coin": "ETH", "usdc": usdc, "szi": "1.5", "fundingRate": "0.0000125",
            "nSamples": None}


def frame(ts: int, snapshot: bool | None, *pays: dict[str, object]) -> list[ev.Event]:
    data: dict[str, object] = {"user": USER, "fundings": list(pays)}
    if snapshot is not None:
        data["isSnapshot"] = snapshot
    parsed = parse_frame(json.dumps({"channel": "userFundings", "data": data}), ts, "test")
    assert not parsed.rejected, parsed
    return list(parsed.events)


def funding(positions: PerpPositions) -> int:
    p = positions.get("hyperliquid", "ETH")
    return 0 if p is None else p.funding


def test_the_first_snapshot_is_recorded_as_history_and_not_added() -> None:
    events = frame(10**18, True, pay(0, "-1.0"), pay(1, "-2.0"), pay(2, "-3.0"))
    assert [e.snapshot for e in events] == [True, True, True]  # recorded, not skipped
    positions = PerpPositions()
    for e in events:
        positions.on_funding(e)  # type: ignore[arg-type]
    assert funding(positions) == 0


def test_live_payments_are_added_once_and_a_reconnect_snapshot_adds_only_the_gap() -> None:
    positions = PerpPositions()
    ts = 10**18
    stream = [
        *frame(ts, True, pay(0, "-1.0"), pay(1, "-2.0")),  # history
        *frame(ts + 1, False, pay(2, "-0.5")),  # live: added
        *frame(ts + 2, None, pay(2, "-0.5")),  # the same payment again (no isSnapshot): not added twice
        # a reconnect: its snapshot repeats the history and the live one, and has hours 3 and 4 paid
        # while the stream was down (added), hour 4 at a finer precision
        *frame(ts + 3, True, pay(0, "-1.0"), pay(1, "-2.0"), pay(2, "-0.5"), pay(3, "0.25"), pay(4, "0.125")),
        *frame(ts + 4, True, pay(4, "0.125")),  # and once more: nothing new
    ]
    added = []
    for e in stream:
        before = funding(positions)
        positions.on_funding(e)  # type: ignore[arg-type]
        added.append(funding(positions) - before)
    # USDC base units (6 dp): -0.5, then the gap's 0.25 and 0.125
    assert added == [0, 0, -500_000, 0, 0, 0, 0, 250_000, 125_000, 0]
    assert funding(positions) == -125_000


def test_a_payment_without_venue_time_counts_live_and_never_from_a_snapshot() -> None:
    positions = PerpPositions()
    base = dict(ts=1, venue="hyperliquid", instrument="ETH", amount=-7, amount_decimals=0, asset="USDC", size=1,
                size_decimals=0, rate=1, rate_decimals=0)
    positions.on_funding(ev.FundingPaid(**base, snapshot=True))  # type: ignore[arg-type]
    positions.on_funding(ev.FundingPaid(**{**base, "ts": 2}, snapshot=True))  # type: ignore[arg-type]
    assert funding(positions) == 0
    positions.on_funding(ev.FundingPaid(**base))  # type: ignore[arg-type]
    assert funding(positions) == -7_000_000
