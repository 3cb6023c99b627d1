"""The perp oracle-lag strategy over the real Hyperliquid recording decides the same in every process.

The shared BTC recording (hftbacktest, 2025-01-26) holds ``l2Book`` and ``trades`` frames only: no
``activeAssetCtx``, so no oracle. The test splices one synthetic ``activeAssetCtx`` frame after each
real ``l2Book`` frame (1 ns later, its oracle at the book's mid, except for ten frames where the
oracle is 0.3% above it: a jump the real book never followed), imports the result with
``tapedeck import hyperliquid-ws`` and replays the strategy over it (paper fills against the real
book) in fresh interpreters under different hash seeds: the runs enter and exit, and their digests
are equal. What is synthetic is only the oracle; books, trades and their times are the venue's.
"""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.domain import events as ev
from tests.conftest import require_data

RECORDING = "hyperliquid-btc-ws-2025-01-26/btcusd_20250126.gz"
CONFIG = """
[risk]
default_max_notional = 100_000_000_000
default_max_outstanding = 1_000_000_000_000

[[strategies]]
kind = "perp_oracle_lag"
name = "perp"
venues = ["hyperliquid"]
entry_edge_bps = 20
exit_edge_bps = 5
stop_bps = 100
max_hold_s = 20
min_size = "0.01"
order_size = "0.05"
max_position = "0.05"
max_age_ms = 5000
"""


def _with_oracle(src: Path, out: Path) -> int:
    """The recording with a context frame after each l2Book frame; returns how many were jumped."""
    lines, jumped, books = [], 0, 0
    with gzip.open(src, "rt") as f:
        for line in f:
            line = line.rstrip("\n")
            lines.append(line)
            ts, _, raw = line.partition(" ")
            frame = json.loads(raw)
            if frame.get("channel") != "l2Book":
                continue
            books += 1
            bids, asks = frame["data"]["levels"]
            mid = (Decimal(bids[0]["px"]) + Decimal(asks[0]["px"])) / 2
            jump = 10 <= books < 20
            jumped += jump
            oracle = (mid * Decimal("1.003") if jump else mid).quantize(Decimal("0.1"))
            ctx = {"funding": "0.0000125", "openInterest": "1000.0", "prevDayPx": str(mid), "dayNtlVlm": "0.0",
                   "premium": "0.0", "oraclePx": str(oracle), "markPx": str(mid), "midPx": str(mid),
                   "impactPxs": [bids[0]["px"], asks[0]["px"]]}
            lines.append(f"{int(ts) + 1} " + json.dumps({"channel": "activeAssetCtx",
                                                         "data": {"coin": "BTC", "ctx": ctx}}, separators=(",", ":")))
    with gzip.open(out, "wt") as g:
        g.write("\n".join(lines) + "\n")
    return jumped


def _tapedeck(*args: object, seed: str) -> str:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    out = subprocess.run([sys.executable, "-m", "tapedeck.cli", *map(str, args)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.slow
def test_perp_strategy_over_the_real_recording_decides_the_same_in_every_process(tmp_path: Path) -> None:
    src = require_data(RECORDING)
    assert _with_oracle(src, tmp_path / "hl.gz") == 10
    imported = _tapedeck("import", "hyperliquid-ws", tmp_path / "hl.gz", "--out", tmp_path / "hl.db", seed="1")
    assert "frames by channel: activeAssetCtx 46, l2Book 46, trades 9" in imported, imported
    (tmp_path / "perp.toml").write_text(CONFIG)
    digests = []
    for seed in ("1", "4242"):
        run = tmp_path / f"run-{seed}.db"
        _tapedeck("replay", tmp_path / "hl.db", "--out", run, "--config", tmp_path / "perp.toml", seed=seed)
        verified = _tapedeck("replay", run, "--verify", seed=seed).strip().splitlines()[-1]
        assert verified.startswith("verified "), verified
        digests.append(verified.rsplit(" ", 1)[-1])
    assert digests[0] == digests[1]
    with EventLog.open(tmp_path / "run-1.db") as log:
        events = list(log.events())
    entries = [e for e in events if type(e) is ev.PerpEntryDecided]
    exits = [e for e in events if type(e) is ev.PerpExitDecided]
    fills = [e for e in events if type(e) is ev.OrderFilled]
    assert entries and exits, "the run decided nothing: the comparison would prove little"
    assert len(fills) >= 2  # the entry and the flatten were filled against the real book (paper)
    assert exits[0].path == "update" and exits[0].reason == "regressed"  # the oracle came back to the book
