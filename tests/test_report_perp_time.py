"""Issue 14: the run report's perp PnL over event time (``runtime.report_html.perp_pnl_series``, the
"perp-pnl-time" section): folded in event order from fills, marks and funding (never from a
decision), stepping when the money moves, its last point the perp breakdown's net
(``runtime.perp_report``), thinned to at most ``PERP_POINTS`` points with the last one kept; and
the shipped perp scenario's report holds it."""
from __future__ import annotations

from pathlib import Path

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.domain import events as ev
from tapedeck.runtime.perp_report import perp_reports
from tapedeck.runtime.report_html import PERP_POINTS, figures, perp_pnl_series, read_events
from tests.test_report import CONFIG, S, T0, USDC, Tape, record, rich_events

VENUE, INST = "hyperliquid", "ETH"


def _mark(t: Tape, at: int, price: int) -> None:
    t.add(ev.MarkPriceUpdated(ts=T0 + at * S, source="sim", venue=VENUE, instrument=INST, mark=price * 10,
                              oracle=price * 10, price_decimals=1))


def _order(t: Tape, at: int, side: str, price: int, cid: str, exit_: bool = False) -> None:
    if exit_:
        t.add(ev.PerpExitDecided(ts=T0 + at * S, source="engine", strategy="perp", venue=VENUE, instrument=INST,
                                 side=side, position=10**4, size_decimals=4, limit_price=price * 10, price_decimals=1,
                                 entry_price=20000, path="update", reason="regressed", deviation_ppm=1, latency_ns=0,
                                 qualified_cause=1, held_ns=S, client_id=cid))
    else:
        t.add(ev.PerpEntryDecided(ts=T0 + at * S, source="engine", strategy="perp", venue=VENUE, instrument=INST,
                                  side=side, size=10**4, size_decimals=4, limit_price=price * 10, price_decimals=1,
                                  oracle=price * 10, oracle_decimals=1, deviation_ppm=1, available=10**5, client_id=cid))
    seq = t.add(ev.OrderIntended(ts=T0 + at * S, source="engine", strategy="perp", venue=VENUE, instrument=INST,
                                 side=side, amount=10**4, notional=price * USDC, client_id=cid, limit_price=price * 10,
                                 price_decimals=1, tif="ioc", reduce_only=exit_))
    t.add(ev.OrderFilled(ts=T0 + at * S, source="sim", intent=seq, venue=VENUE, amount=10**4, notional=price * USDC,
                         fee=USDC // 2, fee_asset="USDC", final=True))


def round_trip(extra_marks: int = 0) -> list[ev.Event]:
    """Long 1 ETH at 2,000 (0.5 USDC fee), marks 2,005 then 1,990, funding paid -0.2 USDC, out at 2,010
    (0.5 USDC fee); ``extra_marks`` more marks in between (the line must be thinned)."""
    t = Tape()
    _mark(t, 0, 2000)
    _order(t, 1, "buy", 2000, "p1")
    _mark(t, 2, 2005)
    _mark(t, 3, 1990)
    for k in range(extra_marks):
        t.add(ev.MarkPriceUpdated(ts=T0 + 3 * S + (k + 1) * 1000, source="sim", venue=VENUE, instrument=INST,
                                  mark=19900 + k % 7, oracle=19900, price_decimals=1))
    t.add(ev.FundingPaid(ts=T0 + 4 * S, source="sim", venue=VENUE, instrument=INST, amount=-200_000, amount_decimals=6,
                         asset="USDC", size=10**4, size_decimals=4, rate=1, rate_decimals=6))
    _order(t, 5, "sell", 2010, "x1", exit_=True)
    _mark(t, 6, 2050)  # flat by then: no step
    return t.events


def numbered(tmp_path: Path, events: list[ev.Event]) -> list[ev.Event]:
    """The events as a run's log numbers them (an execution names its intent by seq)."""
    with EventLog.open(record(tmp_path / "n.db", events)) as log:
        return list(log.events())


def test_the_line_steps_when_the_money_moves_and_ends_at_the_breakdowns_net(tmp_path: Path) -> None:
    events = numbered(tmp_path, round_trip())
    (qd, pts), = perp_pnl_series(events).values()
    assert qd == 6
    times = [(ts - T0) // S for ts, _ in pts]
    nets = [m["net"] / USDC for _, m in pts]
    # entry (-0.5 fee), mark 2005 (+5 open), mark 1990 (-10 open), funding -0.2, exit at 2010: +10 - 1 - 0.2
    assert times == [1, 2, 3, 4, 5] and nets == [-0.5, 4.5, -10.5, -10.7, 8.8]
    last = pts[-1][1]
    assert (last["realised"], last["unrealised"], last["fees"], last["funding"]) == (10 * USDC, 0, USDC, -200_000)
    (r,) = perp_reports(events)
    assert r.pnl() == last  # the same money as the breakdown


def test_the_figure_holds_the_series_and_the_rich_runs_net(tmp_path: Path) -> None:
    run = record(tmp_path / "rt.db", round_trip())
    with EventLog.open(run) as log:
        fig = figures(list(read_events(log)), log.manifest.config).figures["perp-pnl-time"]
    traces = {t["name"]: t for t in fig["data"]}
    assert list(traces) == ["perp net", "perp realised", "perp unrealised", "perp fees", "perp funding"]
    assert traces["perp net"]["y"] == [-0.5, 4.5, -10.5, -10.7, 8.8] and "visible" not in traces["perp net"]
    assert traces["perp fees"]["y"][-1] == -1.0 and traces["perp funding"]["y"][-1] == -0.2
    assert all(t["visible"] == "legendonly" for name, t in traces.items() if name != "perp net")
    assert traces["perp net"]["x"][0] == "2024-03-01 00:00:01.000000"
    rich = record(tmp_path / "rich.db", rich_events())
    with EventLog.open(rich) as log:
        events = list(log.events())
        figs = figures(list(read_events(log)), CONFIG).figures
    net = next(t for t in figs["perp-pnl-time"]["data"] if t["name"] == "perp net")
    assert net["y"][-1] == perp_reports(events)[0].pnl()["net"] / USDC == 9.0


def test_a_long_line_is_thinned_and_keeps_its_last_point(tmp_path: Path) -> None:
    events = numbered(tmp_path, round_trip(extra_marks=3 * PERP_POINTS))
    (_, pts), = perp_pnl_series(events).values()
    assert len(pts) <= PERP_POINTS
    assert [ts for ts, _ in pts] == sorted({ts for ts, _ in pts})  # time order, one point per time
    assert pts[-1][1] == perp_reports(events)[0].pnl() and (pts[-1][0] - T0) // S == 5
    assert pts[0][1]["net"] == -USDC // 2  # the entry is the first point


def test_a_run_without_perp_decisions_has_no_such_section(tmp_path: Path) -> None:
    events = [e for e in numbered(tmp_path, round_trip()) if type(e) not in (ev.PerpEntryDecided, ev.PerpExitDecided)]
    assert perp_pnl_series(events) == {}
    assert "perp-pnl-time" not in figures(events, CONFIG).figures


@pytest.mark.slow
def test_the_shipped_perp_scenarios_report_has_its_perp_pnl_over_time(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tapedeck.cli import main

    out = tmp_path / "jump.db"
    r = CliRunner().invoke(main, ["sim", "oracle-jump", "--out", str(out)])
    assert r.exit_code == 0, r.output
    with EventLog.open(out) as log:
        events = list(log.events())
        figs = figures(list(read_events(log)), log.manifest.config).figures
    reports = {p.strategy: p for p in perp_reports(events)}
    nets = {t["name"].removesuffix(" net"): t for t in figs["perp-pnl-time"]["data"] if t["name"].endswith(" net")}
    assert set(nets) == {s for s, p in reports.items() if p.positions.positions} and nets
    for name, trace in nets.items():
        q = 10 ** reports[name].quote_decimals
        assert trace["y"][-1] == reports[name].pnl()["net"] / q
        assert len(trace["x"]) > 2
