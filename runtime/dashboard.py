"""``tapedeck dashboard RUN.db``: the report's charts on a small web page that follows the log as it grows.

The page (``GET /``) loads plotly from this server (``/static/plotly.js``: nothing from elsewhere)
and polls ``GET /api/update?since=SEQ``. Each poll reads the events after the last seq the
dashboard folded, through the ``EventStore`` port only (``segments(after)``, as the report reads:
the SQLite log today, the PostgreSQL store when it is wired in ``open_store``), refolds the figures
from every event it kept (``runtime.report_html.figures``: the same charts as the report) when any
arrived, and answers ``{"last_seq", "events", "figures"?}`` — the figures only when the client's
``since`` is behind. Runs are read, never written: a writer may be appending to the same file.

Refolding every kept event on a change is simple and exact (outcomes are a fold over the whole
run); the kept events are those the figures need (decisions, executions and a few inputs), so a
long tape of quotes costs its read, not its memory. Polls are serialized by one lock.
"""
from __future__ import annotations

import json
import threading
from typing import Any

from tapedeck.domain import codec, events as ev
from tapedeck.runtime.report_html import PLOT_CONFIG, SECTIONS, STYLE, figure_json, figures, wanted

JSON = "application/json"


def open_store(url: str) -> Any:
    """A store to read a run from: a SQLite run file or a ``postgresql://...?run=NAME`` run (the
    bootstrap's ``open_store``: the same port either way)."""
    from tapedeck.runtime.bootstrap import BuildError
    from tapedeck.runtime.bootstrap import open_store as open_run
    from tapedeck.adapters.eventlog import EventLogError

    try:
        return open_run(url)
    except BuildError as e:
        raise EventLogError(str(e)) from None


class Dashboard:
    """The dashboard's state: the events it kept, the last seq it read, the figures' JSON."""

    def __init__(self, store: Any, *, poll_ms: int = 1000):
        self.store = store
        self.poll_ms = poll_ms
        self.kept: list[ev.Event] = []
        self.last_seq = 0
        self.figures_json = "{}"
        self._decoders: dict[str, Any] = {}
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Read what was appended since the last refresh; refold the figures if any of it matters."""
        with self._lock:
            changed = False
            for first, items, _state in self.store.segments(self.last_seq):
                for i, (topic, body) in enumerate(items):
                    seq = first + i
                    if seq <= self.last_seq:
                        continue
                    self.last_seq = seq
                    dec = self._decoders.get(topic)
                    if dec is None:
                        dec = self._decoders[topic] = codec.decoder_for(topic) if wanted(topic) else False
                    if dec:
                        self.kept.append(dec(body))
                        changed = True
            if changed:
                figs = figures(self.kept, self.store.manifest.config)
                self.figures_json = "{" + ",".join(f"{json.dumps(sid)}:{figure_json(fig)}"
                                                   for sid, _ in SECTIONS if (fig := figs.figures.get(sid))) + "}"
            return changed

    def update(self, since: int) -> bytes:
        """The poll's answer for a client that has drawn up to ``since``."""
        self.refresh()
        head = f'{{"last_seq":{self.last_seq},"events":{len(self.kept)}'
        if since == self.last_seq:
            return (head + "}").encode()
        return (head + ',"figures":' + self.figures_json + "}").encode()

    def page(self) -> bytes:
        sections = "".join(f'<section id="section-{sid}" style="display:none"><div id="{sid}"></div></section>'
                           for sid, _ in SECTIONS)
        return (PAGE.replace("{{STYLE}}", STYLE).replace("{{SECTIONS}}", sections)
                .replace("{{CONFIG}}", json.dumps(PLOT_CONFIG, sort_keys=True))
                .replace("{{POLL_MS}}", str(int(self.poll_ms)))).encode()


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tapedeck dashboard</title><style>{{STYLE}}</style>
<script src="/static/plotly.js"></script></head><body>
<h1>tapedeck dashboard</h1><p id="status">waiting for the log</p>
<p class="empty" id="nothing">No decisions or executions to chart yet.</p>
{{SECTIONS}}
<script>
window.tapedeck = {lastSeq: -1, updates: 0, drawn: 0};
const CONFIG = {{CONFIG}};
async function poll() {
  try {
    const r = await fetch("/api/update?since=" + window.tapedeck.lastSeq, {cache: "no-store"});
    const u = await r.json();
    if (u.figures) {
      for (const [id, fig] of Object.entries(u.figures)) {
        document.getElementById("section-" + id).style.display = "";
        await Plotly.react(id, fig.data, fig.layout, CONFIG);
      }
      document.getElementById("nothing").style.display = Object.keys(u.figures).length ? "none" : "";
      window.tapedeck.drawn = u.last_seq;
    }
    window.tapedeck.lastSeq = u.last_seq;
    window.tapedeck.updates += 1;
    document.getElementById("status").textContent = "following the log: seq " + u.last_seq + ", " + u.events +
      " events charted";
  } catch (e) {
    document.getElementById("status").textContent = "cannot reach the dashboard server; retrying";
  }
  setTimeout(poll, {{POLL_MS}});
}
poll();
</script></body></html>
"""


def build_app(board: Dashboard) -> Any:
    """Starlette routes: the page, plotly's JS, the poll."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from tapedeck.runtime.report_html import plotly_js

    js = plotly_js().encode()
    page = board.page()

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    async def plotly(request: Request) -> Response:
        return Response(js, media_type="text/javascript", headers={"cache-control": "max-age=3600"})

    async def update(request: Request) -> Response:
        try:
            since = int(request.query_params.get("since", "-1"))
        except ValueError:
            return Response(b'{"error":"since must be an integer seq"}', status_code=422, media_type=JSON)
        try:
            body = await run_in_threadpool(board.update, since)
        except Exception as e:  # noqa: BLE001 - a damaged log is said to the page, the server stays up
            return Response(json.dumps({"error": f"{type(e).__name__}: {e}"}).encode(), status_code=500,
                            media_type=JSON)
        return Response(body, media_type=JSON, headers={"cache-control": "no-store"})

    async def favicon(request: Request) -> Response:
        return Response(b"", status_code=204)

    return Starlette(routes=[Route("/", index), Route("/static/plotly.js", plotly), Route("/api/update", update),
                             Route("/favicon.ico", favicon)])
