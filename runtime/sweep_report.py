"""A sweep's own report: one self-contained HTML file, parameter against PnL.

What it shows, all from the sweep's tables (themselves folded from each run's recorded events):
each parameter set's PnL over its seeds (a box with every run as a point, one colour per source),
its win rate, and the per-set summary table. Conventions (shared with the single-run report): no
network (plotly's JavaScript embedded once, in the head; no MathJax, no fonts from elsewhere),
fixed div ids (``sweep-pnl``, ``sweep-win-rate``, ``sweep-summary``) and no timestamps, so the same
sweep gives the same bytes.
"""
from __future__ import annotations

import html
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from tapedeck.runtime.sweep import SweepResult, summary_rows, task_rows

DIV_PNL, DIV_WIN, DIV_TABLE = "sweep-pnl", "sweep-win-rate", "sweep-summary"
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def set_label(params: dict[str, Any], k: int) -> str:
    """A set's name on the x axis: its values (``min_profit=5000000``), or ``set k`` with no --set."""
    if not params:
        return f"set {k}"
    return ", ".join(f"{p.rsplit('.', 1)[-1]}={json.dumps(v, default=str)}" for p, v in params.items())


def figures(result: SweepResult) -> tuple[Any, Any]:
    """The PnL-by-set box plot and the win-rate-by-set bars (plotly figures)."""
    import plotly.graph_objects as go

    plan = result.plan
    labels = [set_label(dict(s), k) for k, s in enumerate(plan.sets)]
    tasks = task_rows(result)
    pnl = go.Figure()
    for src in plan.sources:
        rows = [r for r in tasks if r["scenario"] == src.label and r["pnl_usdc"] is not None]
        pnl.add_trace(go.Box(x=[labels[r["set"]] for r in rows], y=[float(r["pnl_usdc"]) for r in rows],
                             name=src.label, boxpoints="all", jitter=0.3, pointpos=0,
                             text=[f"seed {r['seed']}" if r["seed"] is not None else r["run"] for r in rows],
                             hovertemplate="%{text}: %{y:,.2f} USDC<extra>%{fullData.name}</extra>"))
    pnl.update_layout(title="PnL per run by parameter set (USDC, from the recorded events)", boxmode="group",
                      xaxis={"title": "parameter set", "categoryorder": "array", "categoryarray": labels},
                      yaxis={"title": "PnL (USDC)"}, template="plotly_white", height=480)
    win = go.Figure()
    summary = [r for r in summary_rows(result) if r["scenario"] != "*"]
    for src in plan.sources:
        rows = [r for r in summary if r["scenario"] == src.label]
        win.add_trace(go.Bar(x=[labels[r["set"]] for r in rows],
                             y=[r["win_rate"] if r["win_rate"] is not None else 0.0 for r in rows], name=src.label,
                             text=[f"{r['won']} won / {r['lost']} lost" for r in rows], textposition="auto"))
    win.update_layout(title="Win rate by parameter set (races won / decided)", barmode="group",
                      xaxis={"title": "parameter set", "categoryorder": "array", "categoryarray": labels},
                      yaxis={"title": "win rate", "range": [0, 1]}, template="plotly_white", height=380)
    return pnl, win


def render(result: SweepResult) -> str:
    """The report's HTML text (deterministic for a given result)."""
    from plotly.offline import get_plotlyjs

    pnl, win = figures(result)

    def div(fig: Any, div_id: str) -> str:
        return fig.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False, div_id=div_id,
                           config=PLOT_CONFIG)

    plan = result.plan
    summary = summary_rows(result)
    cols = ["scenario", "set", *[o.path for o in plan.overrides], "strategy", "tasks", "failed", "pnl_mean", "pnl_p5",
            "pnl_p50", "pnl_p95", "win_rate", "opportunities", "won", "lost"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in cols) + "</tr>"
                   for r in summary)
    sources = ", ".join(html.escape(s.arg) for s in plan.sources)
    grid = (f"{len(plan.cells)} tasks: {len(plan.sources)} source(s) ({sources}) x {len(plan.sets)} parameter set(s)"
            + (f" x {len(plan.seeds)} seed(s) ({plan.seeds[0]}..{plan.seeds[-1]})" if plan.seeds else ""))
    failed = (f"<p class=\"failed\">{len(result.failed)} task(s) failed every attempt: "
              f"{html.escape(', '.join(sorted(result.failed)))}</p>" if result.failed else "")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tapedeck sweep</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }}
th {{ background: #f4f4f4; }}
.failed {{ color: #a00; }}
</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head>
<body>
<h1>Sweep</h1>
<p>{html.escape(grid)}. Figures are folded from each run's recorded events (<code>runtime/outcomes.py</code>)
for strategy {html.escape(", ".join(sorted({c.strategy for c in plan.cells})))}; PnL in USDC net of gas and fees,
percentiles nearest-rank.</p>
{failed}
{div(pnl, DIV_PNL)}
{div(win, DIV_WIN)}
<h2>Per parameter set</h2>
<table id="{DIV_TABLE}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
</body>
</html>
"""


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, Decimal):
        return f"{v:,.2f}"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def write_report(result: SweepResult, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render(result), encoding="utf-8")
    return path
