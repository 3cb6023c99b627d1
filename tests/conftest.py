"""Shared fixtures: where the real recordings are, and small generated tapes."""
from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

from tapedeck.domain import events as ev
from tapedeck.domain.decimals import to_fixed

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


def quote(ts: int, venue: str, bid: str, ask: str, size: str = "1.5", instrument: str = "ETH-USD",
          price_decimals: int = 6, size_decimals: int = 8) -> ev.QuoteUpdated:
    """A top-of-book quote from decimal text, at a fixed precision (6 price, 8 size places)."""
    pd, sd = price_decimals, size_decimals
    return ev.QuoteUpdated(ts=ts, source="test", venue=venue, instrument=instrument, bid=to_fixed(bid, pd),
                           bid_size=to_fixed(size, sd), ask=to_fixed(ask, pd), ask_size=to_fixed(size, sd),
                           price_decimals=pd, size_decimals=sd)
