"""`tapedeck sim oracle-jump` with the shipped sim config runs the perp oracle-lag strategy: it
enters on the liquidity the lagging book strands, exits on the first update at which the book has
caught up (checked independently from the recorded inputs), shows time exits on the backup timer
when the hold limit is shorter, books funding when the venue pays it, and every run verifies and
is the same run again (same digest, in this process and in another)."""
from __future__ import annotations

import copy
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.domain import events as ev
from tapedeck.domain.perp_book import PPM, PerpBook
from tapedeck.runtime.perp_report import perp_reports
from tapedeck.runtime.strategy_loader import build_engine
from tapedeck.runtime.verify import verify
from tapedeck.sim.recording import run_scenario
from tapedeck.sim.scenario import SCENARIO_DIR, load_scenario

ROOT = Path(__file__).resolve().parent.parent
SIM_DEFAULT = ROOT / "fixtures" / "config" / "sim-default.toml"
NAME = "perp-oracle-lag"


def _config(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(tomllib.loads(SIM_DEFAULT.read_text(encoding="utf-8")))
    (entry,) = [s for s in config["strategies"] if s["kind"] == "perp_oracle_lag"]
    entry.update(changes)
    return config


def _run(out: Path, scenario: Any = "oracle-jump", **changes: Any) -> tuple[list[ev.Event], dict[str, Any]]:
    sc = load_scenario(scenario) if isinstance(scenario, (str, Path)) else scenario
    config = _config(**changes)
    run_scenario(sc, config, out)
    return list(EventLog.open(out).events()), config


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: Any) -> tuple[list[ev.Event], dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("perp") / "oracle-jump.db"
    events, config = _run(out)
    return events, config, out


def _of(events: list[ev.Event], t: type) -> list[Any]:
    return [e for e in events if type(e) is t]


def test_oracle_jump_enters_on_the_stranded_book_and_exits_on_the_update_that_closes_the_gap(shipped: Any) -> None:
    events, config, out = shipped
    (entry_cfg,) = [s for s in config["strategies"] if s["kind"] == "perp_oracle_lag"]
    start = events[0].ts
    entries, exits = _of(events, ev.PerpEntryDecided), _of(events, ev.PerpExitDecided)
    assert [e.side for e in entries] == ["buy", "sell"]  # the jump up at 300 s, back down at 360 s
    assert 300 < (entries[0].ts - start) / 1e9 < 304 and 360 < (entries[1].ts - start) / 1e9 < 364
    assert [(x.path, x.reason, x.latency_ns) for x in exits] == [("update", "regressed", 0)] * 2
    by_seq = {e.seq: e for e in events}
    intents = {e.client_id: e for e in _of(events, ev.OrderIntended)}
    fills = {e.intent: e for e in _of(events, ev.OrderFilled)}
    exit_ppm = int(entry_cfg["exit_edge_bps"]) * 100
    for entry, x in zip(entries, exits):
        flatten, opened = intents[x.client_id], intents[entry.client_id]
        assert (flatten.reduce_only, flatten.tif, flatten.amount) == (True, "ioc", opened.amount)
        assert type(by_seq[x.cause]) in (ev.QuoteUpdated, ev.MarkPriceUpdated)
        # independently: fold the recorded inputs; the first update after the entry's fill at which the
        # book is back within exit_edge_bps of the oracle is the one that decided the exit
        book, first = PerpBook(), None
        long = entry.side == "buy"
        for e in events:
            m = book.apply(e)
            if m is None or e.seq <= fills[opened.seq].seq or type(e) is ev.TradePrinted:
                continue
            price = m.bid if long else m.ask
            remaining = -m.deviation_ppm(price) if long else m.deviation_ppm(price)
            if m.oracle and price and remaining <= exit_ppm:
                first = e
                break
        assert first is not None and first.seq == x.cause, (first, x)
        assert x.deviation_ppm == remaining and 0 <= remaining <= exit_ppm < PPM
    for intent in intents.values():
        assert fills[intent.seq].final and fills[intent.seq].amount == intent.amount
    (report,) = perp_reports(events)
    money = report.pnl()
    assert report.positions.get("hyperliquid-eth", "ETH-PERP").size == 0 and money["unrealised"] == 0
    assert money["fees"] == sum(f.fee for f in fills.values()) and money["realised"] > 800 * 10**6
    assert money["net"] == money["realised"] - money["fees"] + money["funding"]
    lines = report.lines()
    assert "2 entries (buy 1, sell 1; 2 filled), 2 exits (update/regressed 2; 2 filled)" in lines[0]
    assert lines[1].startswith("    exit latency (update): p50 0.000 ms, max 0.000 ms (n=2)")
    log = EventLog.open(out)
    assert verify(log, build_engine(log.manifest.config)).ok


def test_a_shorter_hold_exits_by_time_on_the_backup_timer_then_reenters(tmp_path: Path) -> None:
    events, _ = _run(tmp_path / "hold.db", max_hold_s=20)
    exits = _of(events, ev.PerpExitDecided)
    paths = [(x.path, x.reason) for x in exits]
    assert paths.count(("timer", "time")) == 2 and paths.count(("update", "regressed")) == 2, paths
    by_seq = {e.seq: e for e in events}
    for x in exits:
        if x.path == "timer":
            assert type(by_seq[x.cause]) is ev.TimerFired and x.held_ns >= 20 * 10**9
            assert 0 <= x.latency_ns < 200 * 10**6  # within one backup period of the deadline
    assert len(_of(events, ev.PerpEntryDecided)) == 4  # the gap was still open after the time exits
    log = EventLog.open(tmp_path / "hold.db")
    assert verify(log, build_engine(log.manifest.config)).ok


def test_funding_the_venue_pays_is_recorded_and_booked(tmp_path: Path) -> None:
    text = (SCENARIO_DIR / "oracle-jump.toml").read_text(encoding="utf-8")
    text = text.replace("mark_ema = 150", "mark_ema = 150\nfunding_interval = 5")  # every sample pays
    (tmp_path / "funded.toml").write_text(text, encoding="utf-8")
    events, _ = _run(tmp_path / "funded.db", load_scenario(tmp_path / "funded.toml"))
    paid = _of(events, ev.FundingPaid)
    assert paid and all(p.size != 0 and p.asset == "USDC" and p.amount_decimals == 6 for p in paid)
    assert any(m.funding for m in _of(events, ev.MarkPriceUpdated))  # the running rate on the context
    longs = [p for p in paid if p.size > 0]
    assert longs and all(p.amount < 0 for p in longs if p.rate > 0)  # longs pay a positive rate
    (report,) = perp_reports(events)
    assert report.pnl()["funding"] == sum(p.amount for p in paid) != 0
    assert "funding" in report.lines()[-1]


def test_the_same_run_is_the_same_digest_in_this_process_and_another(shipped: Any, tmp_path: Path) -> None:
    _, config, out = shipped
    again = tmp_path / "again.db"
    run_scenario(load_scenario("oracle-jump"), config, again)
    logs = [EventLog.open(p) for p in (out, again)]
    digests = [verify(log, build_engine(log.manifest.config)).digest for log in logs]
    cli = tmp_path / "cli.db"
    env_bin = Path(sys.executable).parent / "tapedeck"
    printed = subprocess.run([str(env_bin), "sim", "oracle-jump", "--out", str(cli)], capture_output=True, text=True,
                             check=True).stdout
    assert "perp (perp-oracle-lag): 2 entries" in printed and "exit latency (update)" in printed
    verified = subprocess.run([str(env_bin), "replay", str(cli), "--verify"], capture_output=True, text=True,
                              check=True).stdout
    (digest,) = re.findall(r"digest ([0-9a-f]{64})", verified)
    assert digests[0] == digests[1] == digest
