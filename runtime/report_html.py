"""``tapedeck report RUN.db``: one self-contained HTML page of a run's charts, computed from its events.

What it shows, each section only when the run holds the events for it:

* **PnL over event time** per strategy: every amount ``runtime.outcomes`` books (fills, gas of mined
  transactions, fees, leftovers marked at the end), cumulated at the event time that booked it, so
  the last point of each line is the PnL ``tapedeck inspect`` prints. Perp strategies get their own
  breakdown from ``runtime.perp_report`` (realised, unrealised at the last mark, fees, funding).
* **Perp PnL over event time** per perp strategy (``perp_pnl_series``): the same money as the
  breakdown, folded in event order: after every fill of the strategy's perp intents, account
  fill, funding payment and mark of a market it holds, net = realised + unrealised at the mark
  known then - fees + funding (and each part, hidden until picked in the legend). Its last point
  is the breakdown's net. (A venue that reports both gateway fills and an account stream counts
  the stream from its first fill on, as ``domain.perp_positions`` rules; the breakdown applies the
  stream after the fills.) At most ``PERP_POINTS`` points a line: the last of each time bucket.
* **Opportunities and their fate** per strategy: unique opportunities, re-detections, acted on,
  won, lost (to whom: the failure's reason grouped as ``outcomes`` groups it), pending, refused by
  risk, suppressed as stale, skipped by reason (``LiquidationSkipped``). For a perp strategy an
  opportunity is an entry decided and acted on / won / lost count its entry intents; its exits
  (flattens) are bars of their own (exits, filled, failed, pending, refused by risk).
* **Latency histograms**: detection (``LiquidationOpportunity.latency_ns``: causing event to intent)
  and inclusion (intent to its ``TransactionIncluded``), in event-time milliseconds.
* **Health factors over time** for liquidation runs (``AaveAccountObserved``, else the HF the
  liquidator's own decisions name), as a box per time bucket.
* **Exit latency by path** for perp runs (``PerpExitDecided.latency_ns``).
* **Gas paid** per strategy (ETH), as ``outcomes`` charges it.

The page needs no network: plotly's JavaScript is embedded once, every chart is a ``div`` with a
fixed id (``SECTIONS``), and nothing in it depends on the clock, the run file's path or the random
run id, so the same run (or the same scenario and seed run twice) gives the same bytes. The
dashboard (``runtime/dashboard.py``) draws the same figures from the same ``figures`` function.
Money is folded as ints; floats appear only in what is drawn.
"""
from __future__ import annotations

import functools
import html
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from tapedeck.domain import codec, events as ev

# (div id, title): the order sections appear in; ids are fixed so the page's bytes are too
SECTIONS: tuple[tuple[str, str], ...] = (
    ("pnl", "PnL over event time (USDC, net of gas and fees; what partial and spot legs left is marked at the end)"),
    ("perp-pnl", "Perp PnL by strategy (USDC)"),
    ("perp-pnl-time", "Perp PnL over event time (USDC: realised + unrealised at the mark then - fees + funding)"),
    ("fate", "Opportunities and their fate<br><sub>opportunities: unique gaps (perp: entries decided); acted on, "
             "won, lost: their intents and how they ended; a perp's exits (flattens) are counted apart</sub>"),
    ("detection-latency", "Detection latency (ms, causing event to intent)"),
    ("inclusion-latency", "Inclusion latency (ms, intent to inclusion)"),
    ("health-factor", "Health factors over time (AAVE borrowers)"),
    ("exit-latency", "Perp exit latency by path (ms, first qualifying update to intent)"),
    ("gas", "Gas paid (ETH)"),
)
TITLES = dict(SECTIONS)
# the inputs the figures fold (ETH price, perp marks and funding, borrowers' health); other inputs
# (quotes, books, blocks) are skipped without decoding them
NEEDED_INPUTS = frozenset({"OracleUpdated", "V2ReservesSynced", "V3Swapped", "MarkPriceUpdated", "FundingPaid",
                           "AccountFillReported", "AaveAccountObserved"})
HF_BUCKETS = 24
PERP_POINTS = 2_000  # points per perp PnL line at most (the last one of each event-time bucket)
HF_CAP = 5.0  # health factors above this are drawn at it (a healthy borrower's HF can be huge)
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def wanted(topic: str) -> bool:
    """Whether the figures need events of this stored topic (``Name.vN``)."""
    name = topic.partition(".v")[0]
    cls = ev.BY_NAME.get(name)
    return cls is not None and (cls.KIND != ev.INPUT or name in NEEDED_INPUTS)


def read_events(store: Any, after: int = 0) -> Iterator[ev.Event]:
    """The events the figures need, after seq ``after``, through the ``EventStore`` port's
    ``segments`` (only those are decoded: a 1M-quote tape is mostly skipped as raw bytes)."""
    decoders: dict[str, Any] = {}
    for first, items, _state in store.segments(after):
        for topic, body in (items[after - first + 1:] if first <= after else items):
            dec = decoders.get(topic)
            if dec is None:
                dec = decoders[topic] = codec.decoder_for(topic) if wanted(topic) else False
            if dec:
                yield dec(body)


def iso(ts_ns: int) -> str:
    """Event time as plotly's date text (UTC, microseconds); fixed, so the bytes are."""
    secs, ns = divmod(ts_ns, 10**9)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(secs)) + f".{ns // 1000:06d}"


@dataclass
class Figures:
    """The run's figures as plotly figure dicts (``{"data": [...], "layout": {...}}``), by section id."""

    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: list[tuple[str, str]] = field(default_factory=list)  # (label, value) rows of the header


@functools.cache
def _template() -> dict[str, Any]:
    """plotly's ``plotly_white`` template as plotly.js takes it (a name is resolved only by plotly.py)."""
    import plotly.io as pio

    return json.loads(json.dumps(pio.templates["plotly_white"].to_plotly_json(), sort_keys=True))


def _layout(section: str, **extra: Any) -> dict[str, Any]:
    return {"title": {"text": TITLES[section]}, "template": _template(), "height": 380,
            "margin": {"l": 70, "r": 30, "t": 50, "b": 100},
            # below the x axis and its title (plotly's default place for a horizontal legend overlaps the title)
            "legend": {"orientation": "h", "yanchor": "top", "y": -0.28, "x": 0}, **extra}


def figures(events: Iterable[ev.Event], config: dict[str, Any] | None = None) -> Figures:
    """Every section the events hold data for (see the module's docstring)."""
    from tapedeck.runtime.liquidation_report import liquidation_reports
    from tapedeck.runtime.outcomes import EthPrice, eth_price_source, outcomes
    from tapedeck.runtime.perp_report import perp_reports

    events = events if isinstance(events, list) else list(events)
    out = Figures()
    try:
        price = EthPrice(eth_price_source(config)).source
    except ValueError:
        price = EthPrice().source
    amounts: dict[str, list[tuple[int, int]]] = {}  # strategy -> [(ts, amount booked)]

    def booked(ts: int, strategy: str, amount: int, paper: bool) -> None:
        amounts.setdefault(strategy, []).append((ts, amount))

    results = outcomes(events, price, booked)
    series = {name: _cumulated(points) for name, points in amounts.items()}
    liquidations = liquidation_reports(events)
    perps = perp_reports(events)
    if events:
        out.summary.append(("events read", f"{len(events):,} (decisions, executions and the inputs the charts fold)"))
    _pnl(out, series, results)
    _perp_pnl(out, perps)
    _perp_pnl_time(out, perp_pnl_series(events))
    _fate(out, results, liquidations)
    _latencies(out, events, liquidations)
    _health(out, events)
    _exit_latency(out, perps)
    _gas(out, results)
    return out


def _cumulated(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(ts, running total) in event-time order, one point per distinct time."""
    out: list[tuple[int, int]] = []
    total = 0
    for ts, amount in sorted(points, key=lambda p: p[0]):  # stable: same-time amounts keep their order
        total += amount
        if out and out[-1][0] == ts:
            out[-1] = (ts, total)
        else:
            out.append((ts, total))
    return out


def _pnl(out: Figures, series: dict[str, list[tuple[int, int]]], results: dict[str, Any]) -> None:
    data = []
    for name, points in series.items():
        data.append({"type": "scatter", "mode": "lines+markers", "line": {"shape": "hv"}, "name": name,
                     "x": [iso(ts) for ts, _ in points], "y": [v / 1e6 for _, v in points]})
    if data:
        out.figures["pnl"] = {"data": data, "layout": _layout("pnl", xaxis={"title": {"text": "event time (UTC)"}},
                                                              yaxis={"title": {"text": "USDC"}})}
        for name, r in results.items():
            if r.intents:
                exits = f"; {r.exits_filled} of {r.exits} exits filled" if r.exits else ""
                paper = f"{r.paper_filled} filled on paper, {r.paper_losing} at a loss; " if r.paper_filled else ""
                out.summary.append((f"PnL {name}", f"{r.pnl / 1e6:,.2f} USDC ({paper}{r.won} won, {r.lost} lost{exits})"))


def _perp_pnl(out: Figures, perps: list[Any]) -> None:
    rows = [(r.strategy, r.pnl(), 10 ** r.quote_decimals) for r in perps if r.positions.positions]
    if not rows:
        return
    parts = ("realised", "unrealised", "fees", "funding", "net")
    data = [{"type": "bar", "name": p, "x": [name for name, _, _ in rows],
             "y": [(-m[p] if p == "fees" else m[p]) / q for _, m, q in rows]} for p in parts]
    out.figures["perp-pnl"] = {"data": data, "layout": _layout("perp-pnl", barmode="group",
                                                               yaxis={"title": {"text": "USDC"}})}
    for name, money, q in rows:  # the perp figure's parts beside the outcomes' PnL line
        out.summary.append((f"perp PnL {name}", f"{money['net'] / q:,.2f} USDC net (realised {money['realised'] / q:,.2f}, "
                            f"unrealised {money['unrealised'] / q:,.2f} at the last mark, fees {-money['fees'] / q:,.2f}, "
                            f"funding {money['funding'] / q:,.2f})"))


PERP_PARTS = ("net", "realised", "unrealised", "fees", "funding")


def perp_pnl_series(events: Iterable[ev.Event]) -> dict[str, tuple[int, list[tuple[int, dict[str, int]]]]]:
    """Per perp strategy (one that decided a perp entry or exit, as ``runtime.perp_report``):
    (quote decimals, [(event time, {net, realised, unrealised, fees, funding})]) after every event
    that moves its money (see the module docstring), in quote base units; fees as paid (>= 0)."""
    from tapedeck.runtime.perp_report import PerpReport

    events = events if isinstance(events, list) else list(events)
    kinds: dict[tuple[str, str], int] = {}  # (strategy, client id) -> size decimals
    intents: dict[int, tuple[str, ev.OrderIntended, int]] = {}  # seq -> (strategy, intent, size decimals)
    traded: dict[str, dict[tuple[str, str], None]] = {}  # strategy -> markets its perp intents traded
    for e in events:
        t = type(e)
        if t is ev.PerpEntryDecided or t is ev.PerpExitDecided:
            kinds[(e.strategy, e.client_id)] = e.size_decimals  # type: ignore[attr-defined]
            traded.setdefault(e.strategy, {})  # type: ignore[attr-defined]
        elif t is ev.OrderIntended and (e.strategy, e.client_id) in kinds:  # type: ignore[attr-defined]
            intents[e.seq] = (e.strategy, e, kinds[(e.strategy, e.client_id)])  # type: ignore[assignment, attr-defined]
            traded[e.strategy][(e.venue, e.instrument)] = None  # type: ignore[attr-defined]
    if not traded:
        return {}
    reports = {name: PerpReport(name) for name in traded}
    marks: dict[tuple[str, str], tuple[int, int]] = {}
    for r in reports.values():
        r.marks = marks  # only the markets a strategy holds are looked up
    points: dict[str, list[tuple[int, dict[str, int]]]] = {name: [] for name in traded}
    for e in events:
        t = type(e)
        moved: list[str]
        if t is ev.MarkPriceUpdated:
            key = (e.venue, e.instrument)  # type: ignore[attr-defined]
            marks[key] = (e.mark, e.price_decimals)  # type: ignore[attr-defined]
            moved = [n for n, r in reports.items() if (p := r.positions.get(*key)) is not None and p.size]
        elif t is ev.OrderFilled and e.intent in intents:  # type: ignore[attr-defined]
            name, intent, dp = intents[e.intent]  # type: ignore[attr-defined]
            reports[name].positions.on_order_fill(intent.venue, intent.instrument, intent.side, e, dp)  # type: ignore[arg-type]
            moved = [name]
        elif t is ev.AccountFillReported or t is ev.FundingPaid:
            key = (e.venue, e.instrument)  # type: ignore[attr-defined]
            moved = [n for n, m in traded.items() if key in m]
            for n in moved:
                if t is ev.AccountFillReported:
                    reports[n].positions.on_account_fill(e)  # type: ignore[arg-type]
                else:
                    reports[n].positions.on_funding(e)  # type: ignore[arg-type]
        else:
            continue
        for n in moved:
            points[n].append((e.ts, reports[n].pnl()))
    return {n: (reports[n].quote_decimals, _thinned(pts)) for n, pts in points.items() if pts}


def _thinned(points: list[tuple[int, Any]], most: int = PERP_POINTS) -> list[tuple[int, Any]]:
    """At most ``most`` points: one per distinct time (the last), then the last of each time bucket."""
    out: list[tuple[int, Any]] = []
    for p in points:
        if out and out[-1][0] == p[0]:
            out[-1] = p
        else:
            out.append(p)
    if len(out) <= most:
        return out
    lo, hi = out[0][0], out[-1][0]
    width = -(-(hi - lo + 1) // most)
    kept: dict[int, tuple[int, Any]] = {}
    for p in out:
        kept[(p[0] - lo) // width] = p  # insertion order is time order
    return list(kept.values())


def _perp_pnl_time(out: Figures, series: dict[str, tuple[int, list[tuple[int, dict[str, int]]]]]) -> None:
    data = []
    for name, (qd, pts) in series.items():
        q = 10 ** qd
        x = [iso(ts) for ts, _ in pts]
        for part in PERP_PARTS:
            trace: dict[str, Any] = {"type": "scatter", "mode": "lines", "line": {"shape": "hv"},
                                     "name": f"{name} {part}", "x": x,
                                     "y": [(-m[part] if part == "fees" else m[part]) / q for _, m in pts]}
            if part != "net":
                trace["visible"] = "legendonly"
            data.append(trace)
    if data:
        out.figures["perp-pnl-time"] = {"data": data, "layout": _layout(
            "perp-pnl-time", xaxis={"title": {"text": "event time (UTC)"}}, yaxis={"title": {"text": "USDC"}})}


def _fate(out: Figures, results: dict[str, Any], liquidations: list[Any]) -> None:
    skipped = {r.strategy: r.skipped for r in liquidations}
    data = []
    for name, r in results.items():
        rows: list[tuple[str, int]] = [("opportunities", r.opportunities), ("re-detections", r.redetections),
                                       ("acted on", r.acted), ("orders", r.intents),
                                       ("filled on paper", r.paper_filled), ("won", r.won)]
        rows += [(f"lost: {why}", n) for why, n in sorted(r.lost_to.items(), key=lambda kv: (-kv[1], kv[0]))]
        rows += [("pending", r.pending), ("refused by risk", r.rejected), ("suppressed as stale", r.suppressed)]
        rows += [("exits", r.exits), ("exits filled", r.exits_filled), ("exits failed", r.exits_failed),
                 ("exits pending", r.exits_pending), ("exits refused by risk", r.exits_refused)]
        rows += [(f"skipped: {why}", n) for why, n in sorted(skipped.get(name, Counter()).items(),
                                                             key=lambda kv: (-kv[1], kv[0]))]
        rows = [(label, n) for label, n in rows if n]
        if rows:
            data.append({"type": "bar", "orientation": "h", "name": name, "y": [_short(label) for label, _ in rows],
                         "x": [n for _, n in rows], "hovertext": [label for label, _ in rows]})
    if data:
        height = max(380, 120 + 22 * len({y for d in data for y in d["y"]}))
        out.figures["fate"] = {"data": data, "layout": _layout(
            "fate", barmode="group", height=height, yaxis={"autorange": "reversed", "automargin": True},
            margin={"l": 70, "r": 30, "t": 80, "b": 100},
            xaxis={"title": {"text": "count"}})}


def _short(label: str, width: int = 70) -> str:
    return label if len(label) <= width else label[: width - 3] + "..."


def _latencies(out: Figures, events: list[ev.Event], liquidations: list[Any]) -> None:
    detection = []
    for r in liquidations:
        for path, values in sorted(r.detection_ns.items()):
            detection.append({"type": "histogram", "name": f"{r.strategy} ({path})", "x": [v / 1e6 for v in values],
                              "opacity": 0.75})
    if detection:
        out.figures["detection-latency"] = {"data": detection, "layout": _layout(
            "detection-latency", barmode="overlay", xaxis={"title": {"text": "ms"}}, yaxis={"title": {"text": "count"}})}
    intents: dict[int, ev.OrderIntended] = {}
    inclusion: dict[str, list[int]] = {}
    for e in events:
        t = type(e)
        if t is ev.OrderIntended:
            intents[e.seq] = e  # type: ignore[assignment]
        elif t is ev.TransactionIncluded and e.intent in intents:  # type: ignore[attr-defined]
            intent = intents[e.intent]  # type: ignore[attr-defined]
            inclusion.setdefault(intent.strategy, []).append(e.ts - intent.ts)
    if inclusion:
        out.figures["inclusion-latency"] = {"data": [
            {"type": "histogram", "name": name, "x": [v / 1e6 for v in values], "opacity": 0.75}
            for name, values in inclusion.items()], "layout": _layout(
            "inclusion-latency", barmode="overlay", xaxis={"title": {"text": "ms"}}, yaxis={"title": {"text": "count"}})}


def _health(out: Figures, events: list[ev.Event]) -> None:
    points = [(e.ts, e.health_factor) for e in events if type(e) is ev.AaveAccountObserved]  # type: ignore[attr-defined]
    what = "borrowers' accounts (AaveAccountObserved)"
    if not points:
        points = [(e.ts, e.health_factor) for e in events  # type: ignore[attr-defined]
                  if type(e) in (ev.LiquidationOpportunity, ev.LiquidationSkipped)]
        what = "the liquidator's decisions"
    if not points:
        return
    lo, hi = points[0][0], points[-1][0]
    width = max(1, -(-(hi - lo + 1) // HF_BUCKETS))
    x = [iso(lo + (ts - lo) // width * width) for ts, _ in points]
    y = [min(hf / 1e18, HF_CAP) for _, hf in points]
    out.figures["health-factor"] = {"data": [{"type": "box", "name": what, "x": x, "y": y, "boxpoints": False}],
                                    "layout": _layout("health-factor", xaxis={"title": {"text": "event time (UTC)"}},
                                                      yaxis={"title": {"text": f"health factor (capped at {HF_CAP:g})"}},
                                                      shapes=[{"type": "line", "xref": "paper", "x0": 0, "x1": 1,
                                                               "y0": 1, "y1": 1, "line": {"dash": "dot"}}])}


def _exit_latency(out: Figures, perps: list[Any]) -> None:
    data = [{"type": "box", "name": f"{r.strategy} ({path})", "y": [v / 1e6 for v in values], "boxpoints": "all"}
            for r in perps for path, values in sorted(r.latency_ns.items())]
    if data:
        out.figures["exit-latency"] = {"data": data, "layout": _layout("exit-latency",
                                                                       yaxis={"title": {"text": "ms"}})}


def _gas(out: Figures, results: dict[str, Any]) -> None:
    rows = [(name, r.gas_wei) for name, r in results.items() if r.gas_wei]
    if rows:
        out.figures["gas"] = {"data": [{"type": "bar", "name": "gas", "x": [n for n, _ in rows],
                                        "y": [g / 1e18 for _, g in rows]}],
                              "layout": _layout("gas", yaxis={"title": {"text": "ETH"}})}


# ----------------------------------------------------------------------------- the page


def plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


STYLE = ("body{font-family:system-ui,sans-serif;margin:24px;color:#222}h1{font-size:22px}"
         "table{border-collapse:collapse;margin-bottom:16px}td{padding:2px 12px 2px 0;vertical-align:top}"
         "td:first-child{color:#666}section{margin:18px 0}.empty{color:#888}")


def figure_json(fig: dict[str, Any]) -> str:
    """A figure as the page embeds it: canonical JSON (sorted keys), ``</`` escaped for a script.
    (The figures are plain dicts; tests check each against plotly's schema with ``go.Figure``.)"""
    return json.dumps(fig, sort_keys=True, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def render(figs: Figures, title: str, header: list[tuple[str, str]],
           sections_order: tuple[tuple[str, str], ...] = SECTIONS) -> str:
    """The whole page: header table, one section per figure (in ``sections_order``: (div id, title);
    another report, e.g. a sweep's, passes its own), plotly's JS once, no clock, no path."""
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in header + figs.summary)
    sections, calls = [], []
    for sid, _heading in sections_order:
        fig = figs.figures.get(sid)
        if fig is None:
            continue
        sections.append(f'<section id="section-{sid}"><div id="{sid}"></div></section>')
        calls.append(f'(function(f){{Plotly.newPlot("{sid}",f.data,f.layout,{json.dumps(PLOT_CONFIG, sort_keys=True)});}})'
                     f'({figure_json(fig)});')
    body = "\n".join(sections) or '<p class="empty">This run holds no decisions or executions to chart.</p>'
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style>\n"
            f"<script>{plotly_js()}</script>\n</head><body>\n<h1>{html.escape(title)}</h1>\n"
            f"<table>{rows}</table>\n{body}\n<script>\n" + "\n".join(calls) + "\n</script>\n</body></html>\n")


def header_rows(manifest: Any, integrity: Any) -> list[tuple[str, str]]:
    """What identifies the run without the random run id or the file's path."""
    rows = [("mode", str(manifest.mode)), ("seed", str(manifest.seed)),
            ("config hash", manifest.config_hash or "-"), ("tapedeck", str(manifest.version))]
    if manifest.sources:
        rows.insert(0, ("sources", ", ".join(map(str, manifest.sources))))
    if manifest.started_ts:
        rows.append(("event time", f"{iso(manifest.started_ts)} .. {iso(manifest.ended_ts)} UTC"))
    if integrity is not None:
        rows.append(("integrity", integrity.describe()))
        rows.append(("digest", integrity.digest))
    return rows


def write_report(store: Any, out: str | Path) -> Path:
    """Read the run through its store (a full read: the chain and seal are checked), write the page."""
    events = list(read_events(store))
    figs = figures(events, store.manifest.config)
    page = render(figs, "tapedeck run report", header_rows(store.manifest, getattr(store, "integrity", None)))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def default_out(run: str | Path) -> Path:
    p = Path(run)
    return p.with_name(p.stem + ".report.html")
