"""Shared fixtures: where the real recordings are, and small generated tapes."""
from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

from tapedeck.domain import events as ev

ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    return Path(os.environ.get("TAPEDECK_DATA") or ROOT.parent / "shared" / "data")


def require_data(relative: str) -> Path:
    """Path of a shared recording, or skip the test saying what is missing."""
    p = data_dir() / relative
    if not p.exists():
        pytest.skip(f"real recording {p} not present (set TAPEDECK_DATA to the shared data folder)")
    return p


SPREAD_CONFIG = {
    "risk": {"default_max_notional": 10**12, "default_max_outstanding": 10**13},
    "strategies": [{"kind": "spread", "name": "spread", "min_edge": "0.5"}],
}


def quote(ts: int, venue: str, bid: str, ask: str, size: str = "1.5", instrument: str = "ETH-USD") -> ev.QuoteUpdated:
    return ev.QuoteUpdated(ts=ts, source="test", venue=venue, instrument=instrument, bid=Decimal(bid),
                           bid_size=Decimal(size), ask=Decimal(ask), ask_size=Decimal(size))
