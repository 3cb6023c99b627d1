"""Every shipped strategy records the same run whatever the process's hash seed or the caller's
Decimal context: each run is recorded in a fresh interpreter (``PYTHONHASHSEED`` 1 / 4242, and once
with ``decimal.getcontext().prec = 6`` and ``ROUND_UP`` set before anything runs) and the sealed
digests must be equal."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tapedeck.domain.strategies import BUILTIN
from tests.conftest import ROOT
from tests.test_aave_book_tape import SAMPLE_CONFIG

SAMPLES = ROOT / "fixtures" / "samples"
CONFIGS = {
    "spread": {"risk": {"default_max_notional": 10**15, "default_max_outstanding": 10**16},
               "strategies": [{"kind": "spread", "name": "spread", "min_edge": "0.05", "max_age_s": "30"}]},
    "cross_pool_arb": None,  # the shipped default config over the sample day
    "aave_liquidator": SAMPLE_CONFIG,  # over a seeded borrower tape (tests/test_aave_book_tape.py)
    "sliced_order": {"risk": {"default_max_notional": 10**15, "default_max_outstanding": 10**16},  # TWAP, quote tape
                     "strategies": [{"kind": "sliced_order", "name": "sliced", "venue": "a", "instrument": "ETH-USD",
                                     "side": "buy", "quantity": 5 * 10**8, "base_decimals": 8, "quote_decimals": 6,
                                     "lot": 10**6, "duration_s": 200, "interval_s": 10, "max_price_age_s": 30}]},
    "cex_dex_arb": {"risk": {"default_max_notional": 10**15, "default_max_outstanding": 10**16},  # over a seeded
                    "strategies": [{"kind": "cex_dex_arb", "name": "cex-dex", "act": False,  # book/pool tape
                                    "base_token": "0x" + "b" * 40, "quote_token": "0x" + "a" * 40,
                                    "pools": [{"pool": "v2", "kind": "v2", "token0": "0x" + "a" * 40,
                                               "token1": "0x" + "b" * 40, "fee": 30}]}]},
    "perp_oracle_lag": {"risk": {"default_max_notional": 10**15, "default_max_outstanding": 10**16},
                        "strategies": [{"kind": "perp_oracle_lag", "name": "perp", "venues": ["a"],
                                        "entry_edge_bps": 50, "exit_edge_bps": 10, "max_hold_s": 30}]},
}

SCRIPT = """
import decimal, json, random, sys
if {ambient}:
    decimal.getcontext().prec = 6
    decimal.getcontext().rounding = decimal.ROUND_UP
sys.path.insert(0, {root!r})
from decimal import Decimal
from tapedeck.adapters.config_files import DEFAULT_CONFIG, load_config
from tapedeck.adapters.eventlog import EventLog
from tapedeck.domain import events as ev
from tapedeck.runtime.importers import import_files
from tapedeck.runtime.loop import replay_log
from tapedeck.runtime.strategy_loader import build_engine

config = json.loads({config!r}) or load_config(DEFAULT_CONFIG)
day = {workdir!r} + "/day.db"
if {kind!r} == "cross_pool_arb":
    import_files("uniswap-v3-logs", [{v3!r}], day)
    import_files("uniswap-v2-reserves", [{v2!r}], day, pool="0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc")
elif {kind!r} == "aave_liquidator":
    import msgspec
    from tests.test_aave_book_tape import sample_tape
    with EventLog.create(day, __import__("tapedeck.adapters.eventlog", fromlist=["Manifest"]).Manifest(
            run_id="", mode="import")) as log:
        for e in sample_tape():
            log.append(msgspec.structs.replace(e, seq=0))
        log.manifest.ended = "clean"
elif {kind!r} == "cex_dex_arb":
    rng = random.Random(7)  # a seeded tape: a V2 pool moved every block, a book quoting around it
    with EventLog.create(day, __import__("tapedeck.adapters.eventlog", fromlist=["Manifest"]).Manifest(
            run_id="", mode="import")) as log:
        r0 = 40_000_000 * 10**6
        for i in range(600):
            t = (i + 1) * 10**9
            if i % 12 == 0:
                log.append(ev.BlockProduced(ts=t, source="t", chain="ethereum", number=i // 12 + 1, base_fee=10**10,
                                            gas_used=0, gas_limit=30_000_000, next_base_fee=10**10))
                log.append(ev.V2ReservesSynced(ts=t, source="t", pool="v2", block=i // 12 + 1, reserve0=r0,
                                               reserve1=r0 * 10**12 // (3000 + rng.randint(-60, 60))))
            mid = 300_000 + rng.randint(-9_000, 9_000)
            log.append(ev.QuoteUpdated(ts=t, source="t", venue="binance", instrument="ETH-USDC", bid=mid - 1,
                                       bid_size=200_000, ask=mid + 1, ask_size=200_000, price_decimals=2,
                                       size_decimals=4, venue_ts=t))
        log.manifest.ended = "clean"
else:
    rng = random.Random(5)  # a seeded tape of quotes on three venues that cross now and then
    with decimal.localcontext(decimal.Context(prec=28)), EventLog.create(day, __import__("tapedeck.adapters.eventlog", fromlist=["Manifest"]).Manifest(
            run_id="", mode="import")) as log:
        mid = Decimal("2300")
        for i in range(3000):
            mid += Decimal(rng.randint(-50, 50)) / 100
            venue = "abc"[i % 3]
            skew = Decimal(rng.randint(-30, 30)) / 100
            log.append(ev.QuoteUpdated(ts=(i + 1) * 10**8, source="t", venue=venue, instrument="ETH-USD",
                                       bid=int((mid + skew - Decimal("0.10")) * 100), bid_size=rng.randint(1, 9) * 10**8 // 3,
                                       ask=int((mid + skew + Decimal("0.10")) * 100), ask_size=rng.randint(1, 9) * 10**8 // 7,
                                       price_decimals=2, size_decimals=8))
            if {kind!r} == "perp_oracle_lag" and i % 10 == 0:  # venue a's oracle: 1% above the book half the time
                oracle = mid * (Decimal("1.01") if (i // 200) % 2 else 1)
                log.append(ev.MarkPriceUpdated(ts=(i + 1) * 10**8 + 1, source="t", venue="a", instrument="ETH-USD",
                                               mark=int(mid * 100), oracle=int(oracle * 100), price_decimals=2))
        log.manifest.ended = "clean"
src = EventLog.open(day)
stats = replay_log(src, config, build_engine(config), {workdir!r} + "/run.db", overwrite=True)
src.close()
run = EventLog.open({workdir!r} + "/run.db")
print(run.manifest.seal["digest"], stats.decisions)
"""


def _record(tmp_path, kind: str, hashseed: str, ambient: bool) -> tuple[str, int]:
    import json

    work = tmp_path / f"{kind}-{hashseed}-{int(ambient)}"
    work.mkdir()
    code = SCRIPT.format(root=str(ROOT), kind=kind, config=json.dumps(CONFIGS[kind]), workdir=str(work),
                         v3=str(SAMPLES / "ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-sample.raw.csv"),
                         v2=str(SAMPLES / "uniswap-v2-sample.reserves.csv"), ambient=ambient)
    env = dict(os.environ, PYTHONHASHSEED=hashseed)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    digest, decisions = out.stdout.split()
    return digest, int(decisions)


def test_every_shipped_strategy_is_covered() -> None:
    assert sorted(CONFIGS) == sorted(BUILTIN)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_same_digest_under_other_hash_seeds_and_a_callers_decimal_context(tmp_path, kind: str) -> None:
    first, decisions = _record(tmp_path, kind, "1", False)
    assert decisions > 0, "the run decided nothing: the comparison would prove little"
    assert _record(tmp_path, kind, "4242", False) == (first, decisions)
    assert _record(tmp_path, kind, "77", True) == (first, decisions)
