"""``tapedeck report RUN.db``: the figures hold the run's numbers (computed from its events, equal to
what ``runtime.outcomes`` and the strategy reports compute), sections appear only when the run
has the events for them, the page is self-contained and the same run gives the same bytes; the
CLI (``report RUN``, ``report html``, ``report opportunities``, ``--report`` on sim and replay)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tapedeck.adapters.eventlog import EventLog, Manifest
from tapedeck.cli import main
from tapedeck.domain import events as ev
from tapedeck.runtime.outcomes import outcomes
from tapedeck.runtime.perp_report import perp_reports
from tapedeck.runtime.report_html import SECTIONS, figures, read_events, write_report
from tests.conftest import quote

T0 = 1_709_251_200 * 10**9  # 2024-03-01T00:00:00Z
S = 10**9
ETH = 10**18
USDC = 10**6
CONFIG = {"outcomes": {"eth_price": "oracle:eth-usd"}}


class Tape:
    """Events numbered as the log will number them (seq = position), so executions can name intents."""

    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def add(self, e: ev.Event) -> int:
        self.events.append(e)
        return len(self.events)


def rich_events(parts: int = 2) -> list[ev.Event]:
    """A run with something for every section: an arbitrage (one gap detected twice, filled at +9
    USDC net of a 1 USDC fee), two liquidations (one won: 2,000 USDC of WETH for 1,500 USDC, gas
    300k at 20 gwei = 0.006 ETH = 12 USDC: +488 USDC; one lost to 0xabc), three skips, borrowers'
    health over 40 s, a perp round trip (long 1 ETH at 2,000, out at 2,010, 0.5 USDC fees each way)
    with exits by the update and the timer paths. ``parts=1`` stops halfway (the dashboard grows it)."""
    t = Tape()
    t.add(ev.OracleUpdated(ts=T0, source="sim", feed="eth-usd", chain="ethereum", round_id=1, answer=2000 * 10**8,
                           decimals=8))
    for k in range(20):
        t.add(ev.AaveAccountObserved(ts=T0 + k * S, source="sim", chain="ethereum", block=k, user=f"0xu{k % 4}",
                                     total_collateral_base=10**11, total_debt_base=9 * 10**10,
                                     liquidation_threshold=8250, health_factor=9 * 10**17 + k * 10**16))
    for n, key in enumerate(("gap-1", "gap-1", "gap-2")):
        t.add(ev.OpportunityDetected(ts=T0 + (2 + n) * S, source="engine", strategy="arb", kind="cross-pool-arb",
                                     buy_venue="a", sell_venue="b", amount_in=1000 * USDC, amount_out=1010 * USDC,
                                     gross_profit=10 * USDC, gas_cost=USDC, net_profit=9 * USDC, profit_token="USDC",
                                     key=key))
    arb = t.add(ev.OrderIntended(ts=T0 + 3 * S, source="engine", strategy="arb", venue="pool:a", instrument="USDC",
                                 side="arb", amount=1000 * USDC, notional=1000 * USDC, client_id="arb-1"))
    t.add(ev.OrderFilled(ts=T0 + 4 * S, source="sim", intent=arb, venue="pool:a", amount=1010 * USDC,
                         notional=1000 * USDC, fee=USDC, fee_asset="USDC", final=True))
    won = _liquidation(t, T0 + 5 * S, "c1", "fast", 3_000_000)
    t.add(ev.TransactionIncluded(ts=T0 + 17 * S, source="sim", intent=won, chain="ethereum", tx="0x01", block=3,
                                 index=0, status="success", gas_used=300_000, gas_price=20 * 10**9))
    t.add(ev.OrderFilled(ts=T0 + 17 * S, source="sim", intent=won, venue="aave-v3:ethereum", amount=ETH,
                         notional=1500 * USDC, fee=0, fee_asset="ETH", final=True))
    for reason in ("below min profit", "below min profit", "no route"):
        t.add(ev.LiquidationSkipped(ts=T0 + 18 * S, source="engine", strategy="liq", user="0xu3", reason=reason,
                                    health_factor=97 * 10**16, expected_profit=0, debt_asset="USDC", path="scan"))
    if parts < 2:
        return t.events
    for k in range(20, 40):
        t.add(ev.AaveAccountObserved(ts=T0 + k * S, source="sim", chain="ethereum", block=k, user=f"0xu{k % 4}",
                                     total_collateral_base=10**11, total_debt_base=9 * 10**10,
                                     liquidation_threshold=8250, health_factor=9 * 10**17 + k * 10**16))
    lost = _liquidation(t, T0 + 21 * S, "c2", "scan", 40_000_000)
    t.add(ev.OrderFailed(ts=T0 + 33 * S, source="sim", intent=lost, venue="aave-v3:ethereum",
                         reason="liquidated first in block 5 by 0xabc"))
    _perp(t)
    return t.events


def _liquidation(t: Tape, ts: int, client_id: str, path: str, latency_ns: int) -> int:
    t.add(ev.LiquidationOpportunity(ts=ts, source="engine", strategy="liq", user="0xu1", collateral_asset="WETH",
                                    debt_asset="USDC", debt_to_cover=1500 * USDC, collateral_to_liquidator=ETH,
                                    protocol_fee=0, proceeds=2000 * USDC, flash_premium=0, gas_cost=12 * USDC,
                                    expected_profit=488 * USDC, health_factor=95 * 10**16, path=path,
                                    latency_ns=latency_ns, detected_cause=1, route=(), client_id=client_id,
                                    rules="v3.3"))
    return t.add(ev.OrderIntended(ts=ts, source="engine", strategy="liq", venue="aave-v3:ethereum",
                                  instrument="WETH", side="liquidate", amount=ETH, notional=1500 * USDC,
                                  target="0xu1", client_id=client_id))


def _perp(t: Tape) -> None:
    venue, inst = "hyperliquid", "ETH"
    for ts, mark in ((T0 + 34 * S, 2000), (T0 + 36 * S, 2010)):
        t.add(ev.MarkPriceUpdated(ts=ts, source="sim", venue=venue, instrument=inst, mark=mark * 10, oracle=mark * 10,
                                  price_decimals=1))
    t.add(ev.PerpEntryDecided(ts=T0 + 34 * S, source="engine", strategy="perp", venue=venue, instrument=inst,
                              side="buy", size=10**4, size_decimals=4, limit_price=20000, price_decimals=1,
                              oracle=20100, oracle_decimals=1, deviation_ppm=5000, available=10**5, client_id="p1"))
    entry = t.add(ev.OrderIntended(ts=T0 + 34 * S, source="engine", strategy="perp", venue=venue, instrument=inst,
                                   side="buy", amount=10**4, notional=2000 * USDC, client_id="p1", limit_price=20000,
                                   price_decimals=1, tif="ioc"))
    t.add(ev.OrderFilled(ts=T0 + 34 * S, source="sim", intent=entry, venue=venue, amount=10**4, notional=2000 * USDC,
                         fee=USDC // 2, fee_asset="USDC", final=True))
    for n, (path, latency) in enumerate((("update", 0), ("timer", 250_000_000), ("timer", 500_000_000))):
        t.add(ev.PerpExitDecided(ts=T0 + (36 + n) * S, source="engine", strategy="perp", venue=venue,
                                 instrument=inst, side="sell", position=10**4, size_decimals=4, limit_price=20100,
                                 price_decimals=1, entry_price=20000, path=path, reason="regressed",
                                 deviation_ppm=100, latency_ns=latency, qualified_cause=1, held_ns=2 * S,
                                 client_id=f"x{n}"))
    out = t.add(ev.OrderIntended(ts=T0 + 36 * S, source="engine", strategy="perp", venue=venue, instrument=inst,
                                 side="sell", amount=10**4, notional=2010 * USDC, client_id="x0", limit_price=20100,
                                 price_decimals=1, tif="ioc", reduce_only=True))
    t.add(ev.OrderFilled(ts=T0 + 36 * S, source="sim", intent=out, venue=venue, amount=10**4, notional=2010 * USDC,
                         fee=USDC // 2, fee_asset="USDC", final=True))


def record(path: Path, events: list[ev.Event], **manifest: Any) -> Path:
    log = EventLog.create(path, Manifest(run_id="", mode="sim", seed=5, sources=["test:rich"], config=CONFIG,
                                         **manifest))
    for e in events:
        log.append(e)
    log.close(ended="clean")
    return path


@pytest.fixture()
def rich(tmp_path: Path) -> Path:
    return record(tmp_path / "rich.db", rich_events())


def expected_numbers(run: Path) -> dict[str, Any]:
    """What the figures must show, computed from the run's events by the summaries' own code."""
    with EventLog.open(run) as log:
        events = list(log.events())
    res = outcomes(events, "oracle:eth-usd")
    return {"pnl": {n: r.pnl / 1e6 for n, r in res.items() if r.intents},
            "gas": {n: r.gas_wei / 1e18 for n, r in res.items() if r.gas_wei},
            "perp_net": {r.strategy: r.pnl()["net"] / 1e6 for r in perp_reports(events)}}


def figures_of(run: Path) -> dict[str, dict[str, Any]]:
    with EventLog.open(run) as log:
        return figures(list(read_events(log)), log.manifest.config).figures


def test_the_figures_hold_the_runs_numbers(rich: Path) -> None:
    figs = figures_of(rich)
    assert list(figs) == [sid for sid, _ in SECTIONS]  # every section has data in this run
    want = expected_numbers(rich)
    pnl = {t["name"]: t["y"][-1] for t in figs["pnl"]["data"]}
    assert pnl == pytest.approx(want["pnl"]) and pnl == pytest.approx({"arb": 9.0, "liq": 488.0, "perp": 9.0})  # the perp from its positions, as inspect
    # the liquidator's line steps when it earned: its fill at 17 s (no step at the lost one)
    liq = next(t for t in figs["pnl"]["data"] if t["name"] == "liq")
    assert liq["x"] == ["2024-03-01 00:00:17.000000"] and liq["y"] == [488.0]
    fate = {t["name"]: dict(zip(t["y"], t["x"])) for t in figs["fate"]["data"]}
    assert fate["arb"] == {"opportunities": 2, "re-detections": 1, "acted on": 1, "orders": 1, "won": 1}
    assert fate["liq"] == {"opportunities": 2, "acted on": 2, "orders": 2, "won": 1, "lost: outbid by 0xabc": 1,
                           "skipped: below min profit": 2, "skipped: no route": 1}
    # a perp's opportunities are its entries, acted on and won by their intents; the exit is counted apart
    assert fate["perp"] == {"opportunities": 1, "acted on": 1, "orders": 1, "won": 1, "exits": 1, "exits filled": 1}
    assert [(t["name"], t["x"]) for t in figs["detection-latency"]["data"]] == [("liq (fast)", [3.0]),
                                                                                  ("liq (scan)", [40.0])]
    assert [(t["name"], t["x"]) for t in figs["inclusion-latency"]["data"]] == [("liq", [12000.0])]
    (hf,) = figs["health-factor"]["data"]
    assert hf["y"] == [(9 * 10**17 + k * 10**16) / 1e18 for k in range(40)] and len(set(hf["x"])) > 10
    exits = {t["name"]: t["y"] for t in figs["exit-latency"]["data"]}
    assert exits == {"perp (timer)": [250.0, 500.0], "perp (update)": [0.0]}
    assert {t["name"]: t["y"] for t in figs["perp-pnl"]["data"]}["net"] == [want["perp_net"]["perp"]] == [9.0]
    (gas,) = figs["gas"]["data"]
    assert dict(zip(gas["x"], gas["y"])) == pytest.approx(want["gas"]) == {"liq": 0.006}


def test_every_figure_is_valid_for_plotly(rich: Path) -> None:
    import plotly.graph_objects as go

    for sid, fig in figures_of(rich).items():
        go.Figure(fig)  # raises on a property plotly does not know or a value of the wrong kind


def test_sections_appear_only_when_the_run_has_their_events(tmp_path: Path) -> None:
    quotes = record(tmp_path / "quotes.db", [quote(T0 + i, "a", "100", "101") for i in range(50)])
    assert figures_of(quotes) == {}
    page = write_report(EventLog.open(quotes), tmp_path / "q.html").read_text()
    assert "<section" not in page and "holds no decisions or executions to chart" in page
    half = record(tmp_path / "half.db", rich_events(parts=1))
    assert list(figures_of(half)) == ["pnl", "fate", "detection-latency", "inclusion-latency", "health-factor", "gas"]


def test_the_page_is_self_contained_and_the_same_run_gives_the_same_bytes(rich: Path, tmp_path: Path) -> None:
    a = write_report(EventLog.open(rich), tmp_path / "a.html").read_bytes()
    b = write_report(EventLog.open(rich), tmp_path / "b.html").read_bytes()
    assert a == b
    # the same events recorded again (another run id, another file) give the same page too
    again = record(tmp_path / "elsewhere" / "again.db", rich_events())
    assert EventLog.open(again).manifest.run_id != EventLog.open(rich).manifest.run_id
    assert write_report(EventLog.open(again), tmp_path / "c.html").read_bytes() == a
    page = a.decode()
    assert page.count("<script") == 2 and "<script src" not in page and "<link" not in page
    assert len(re.findall(r"plotly\.js v\d", page)) == 1  # plotly's bundle, embedded once
    ids = re.findall(r'<div id="([^"]+)"', page)
    assert ids == [sid for sid, _ in SECTIONS]
    assert str(tmp_path) not in page and EventLog.open(rich).manifest.run_id not in page


def test_report_command_writes_the_page_and_prints_its_path(rich: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "r.html"
    r = CliRunner().invoke(main, ["report", str(rich), "--out", str(out)])
    assert r.exit_code == 0 and r.output.strip() == str(out), r.output
    r2 = CliRunner().invoke(main, ["report", "html", str(rich)])
    default = rich.with_name("rich.report.html")
    assert r2.exit_code == 0 and r2.output.strip() == str(default)
    assert default.read_bytes() == out.read_bytes()
    opp = CliRunner().invoke(main, ["report", "opportunities", str(rich)])
    assert opp.exit_code == 0 and opp.output.startswith("opportunities in rich.db"), opp.output


def test_report_of_a_missing_or_tampered_run_is_one_line_exit_2(rich: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["report", str(tmp_path / "none.db")])
    assert r.exit_code == 2 and r.output.strip() == f"Error: {tmp_path / 'none.db'}: no such run file"
    bad = tmp_path / "bad.db"
    shutil.copy(rich, bad)
    import sqlite3

    with sqlite3.connect(bad) as c:  # one byte of a stored event changed: the chain catches it
        c.execute("UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), '0xu1', '0xu9') AS BLOB)")
    r = CliRunner().invoke(main, ["report", str(bad), "--out", str(tmp_path / "bad.html")])
    assert r.exit_code == 2 and "tampered" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "bad.html").exists()


def test_replay_with_report_prints_the_new_runs_report(tmp_path: Path) -> None:
    src = record(tmp_path / "tape.db", [quote(T0 + i * S, "binance" if i % 2 else "okx", "100", "101")
                                        for i in range(40)] + [quote(T0 + 50 * S, "okx", "103", "104")])
    out = tmp_path / "replayed.db"
    r = CliRunner().invoke(main, ["replay", str(src), "--out", str(out), "--report"])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert lines[-1] == f"report {out.with_name('replayed.report.html')}"
    assert Path(lines[-1].split(" ", 1)[1]).read_text().startswith("<!DOCTYPE html>")
    r = CliRunner().invoke(main, ["replay", str(src), "--verify", "--report"])
    assert r.exit_code == 2 and "--report writes the report of the run --out records" in r.output


@pytest.mark.slow
def test_sim_with_report_prints_its_path_and_the_page_holds_inspects_pnl(tmp_path: Path) -> None:
    out = tmp_path / "jump.db"
    r = CliRunner().invoke(main, ["sim", "oracle-jump", "--out", str(out), "--report"])
    assert r.exit_code == 0, r.output
    path = Path(r.output.strip().splitlines()[-1].removeprefix("report "))
    assert path == out.with_name("jump.report.html") and path.is_file()
    inspected = json.loads(CliRunner().invoke(main, ["inspect", str(out), "--json"]).output)
    figs = figures_of(out)
    pnl = {t["name"]: t["y"][-1] for t in figs["pnl"]["data"]}
    assert pnl == pytest.approx({n: s["pnl"] / 1e6 for n, s in inspected["strategies"].items() if s["intents"]})
    assert "exit-latency" in figs and "perp-pnl" in figs
    # a second report of the same run is the same bytes as the one sim wrote
    again = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "again.html")])
    assert again.exit_code == 0 and (tmp_path / "again.html").read_bytes() == path.read_bytes()


def test_the_header_says_each_strategys_pnl_and_the_perp_figure_beside_it(rich: Path) -> None:
    with EventLog.open(rich) as log:
        summary = dict(figures(list(read_events(log)), log.manifest.config).summary)
    assert summary["PnL liq"] == "488.00 USDC (1 won, 1 lost)"
    assert summary["PnL perp"] == "9.00 USDC (1 won, 0 lost; 1 of 1 exits filled)"  # as inspect: the perp's PnL from its positions
    assert summary["perp PnL perp"].startswith("9.00 USDC net (realised 10.00, unrealised 0.00 at the last mark, "
                                               "fees -1.00, funding 0.00)")
