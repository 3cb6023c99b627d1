"""Operating a live run: ``GET /health``, Prometheus ``GET /metrics`` and ``POST /kill``.

**Metrics are read from the recorded events as they pass** (``LiveMetrics.observe`` is called with
every event the run's log numbers: inputs, decisions, executions), never from the runner's or a
strategy's intentions, so what ``/metrics`` says is what a reader of the log would count. Each run
has its own ``prometheus_client.CollectorRegistry`` (two runners in one process never mix). The
figures (all names ``tapedeck_``):

* ``events_total{kind,type}`` and ``events_per_second`` (recorded events over the last full second
  of wall-clock time);
* ``event_lag_seconds{source}``: wall clock when the event was recorded minus the venue's own time
  of it (``venue_ts``, a block's ``block_ts``), or minus its receive time ``ts`` when the venue gave
  none (then it is the recording's own delay);
* ``decisions_total{type}``, ``intents_total{venue,verdict}`` (intended / rejected);
* ``liquidations_total{outcome}`` and ``arbitrages_total{outcome}`` (intended, filled, failed) for
  intents of side ``liquidate`` and ``arb`` (a refused one is in ``intents_total{verdict="rejected"}``:
  ``IntentRejected`` does not say the side);
* ``profit`` histogram (risk currency, USDC units) of an arbitrage's final fill: received minus
  paid minus a fee in the risk asset, labelled ``paper`` (``source`` starts with ``paper``) or
  ``executed``;
* ``pending_transactions`` (``TransactionSubmitted`` not yet included or dropped);
* ``health_factor`` histogram of ``AaveAccountObserved`` (1.0 = the liquidation line);
* ``exit_trigger_to_flatten_seconds``: event time from the update at which a perp exit first
  qualified (``PerpExitDecided``: ``ts - latency_ns``) to the final fill of its reduce-only order;
* ``circuit_state{strategy}`` (0 closed, 1 half open, 2 open: ``CircuitBreakerChanged``),
  ``kill_switch`` (``KillSwitchSet``);
* ``source_connected{source}`` and ``source_reconnects_total{source}`` (``SourceConnectionChanged``),
  ``source_restarts_total{source}`` (the runner restarting a source task that died), and
  ``store_lag_events`` (numbered but not yet committed, sampled at scrape).

``/health`` is JSON: per source (connected, last event age, reconnects, restarts, the adapter's own
``health()``), the store's lag, each strategy's circuit state, the kill switch, the mode. ``POST
/kill`` engages the kill switch (a recorded ``KillSwitchSet``: no new intents; the run goes on
recording and stays clean); a JSON body ``{"engaged": false, "reason": "..."}`` releases it. The
server binds 127.0.0.1 unless told otherwise.
"""
from __future__ import annotations

import contextlib
import json
import socket
import time
from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tapedeck.domain import events as ev
from tapedeck.domain.risk import RISK_ASSET

CIRCUIT = {"closed": 0, "half_open": 1, "open": 2}
PROFIT_BUCKETS = (-100.0, -10.0, -1.0, 0.0, 1.0, 10.0, 100.0, 1000.0, 10000.0)
HF_BUCKETS = (0.5, 0.8, 0.9, 0.95, 1.0, 1.02, 1.05, 1.1, 1.25, 1.5, 2.0, 5.0)
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
WAD = 10**18


class LiveMetrics:
    """The run's Prometheus registry, fed with every recorded event (see the module docstring)."""

    def __init__(self, wall_ns: Callable[[], int] = time.time_ns) -> None:
        self.wall_ns = wall_ns
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter("tapedeck_events", "Recorded events", ["kind", "type"], registry=r)
        self.rate = Gauge("tapedeck_events_per_second", "Recorded events over the last full second", registry=r)
        self.lag = Histogram("tapedeck_event_lag_seconds", "Recorded wall time minus the venue's time of the event "
                             "(or its receive time)", ["source"], buckets=LAG_BUCKETS, registry=r)
        self.decisions = Counter("tapedeck_decisions", "Recorded decisions", ["type"], registry=r)
        self.intents = Counter("tapedeck_intents", "Intents by verdict", ["venue", "verdict"], registry=r)
        self.liquidations = Counter("tapedeck_liquidations", "Liquidation intents by outcome", ["outcome"], registry=r)
        self.arbitrages = Counter("tapedeck_arbitrages", "Arbitrage intents by outcome", ["outcome"], registry=r)
        self.profit = Histogram("tapedeck_profit", "An arbitrage's result at its final fill (USDC)", ["execution"],
                                buckets=PROFIT_BUCKETS, registry=r)
        self.pending_tx = Gauge("tapedeck_pending_transactions", "Transactions sent, not yet included or dropped",
                                registry=r)
        self.health_factor = Histogram("tapedeck_health_factor", "Observed Aave health factors", buckets=HF_BUCKETS,
                                       registry=r)
        self.exit_latency = Histogram("tapedeck_exit_trigger_to_flatten_seconds", "Event time from a perp exit's "
                                      "trigger to its final fill", buckets=LAG_BUCKETS, registry=r)
        self.circuit = Gauge("tapedeck_circuit_state", "0 closed, 1 half open, 2 open", ["strategy"], registry=r)
        self.kill = Gauge("tapedeck_kill_switch", "1 when the kill switch is engaged", registry=r)
        self.connected = Gauge("tapedeck_source_connected", "1 while the source says it is connected", ["source"],
                               registry=r)
        self.reconnects = Counter("tapedeck_source_reconnects", "Reconnections a source recorded", ["source"],
                                  registry=r)
        self.restarts = Counter("tapedeck_source_restarts", "Source tasks the runner restarted", ["source"],
                                registry=r)
        self.store_lag = Gauge("tapedeck_store_lag_events", "Events numbered but not yet committed", registry=r)
        self.errors = Counter("tapedeck_metrics_errors", "Events the metrics could not read", registry=r)
        # what the figures above need to remember, keyed by seq: only intents in flight and open exits
        self._kind: dict[int, str] = {}  # intent seq -> "liquidate" | "arb"
        self._exit_trigger: dict[tuple[str, str], int] = {}  # (strategy, client_id) -> trigger event time
        self._exit_intent: dict[int, int] = {}  # intent seq -> trigger event time
        self._pending: set[str] = set()
        self._second = 0
        self._in_second = 0
        self._names: dict[type, tuple[str, str]] = {}
        # for /health, per source name: (state, last event wall ns, reconnects)
        self.source_state: dict[str, dict[str, Any]] = {}
        self.last_by_source: dict[str, int] = {}
        self.circuits: dict[str, str] = {}
        self.kill_engaged = False
        self.kill_reason = ""
        self.recorded = 0
        self.last_seq = 0

    def observe(self, e: ev.Event, origin: str = "", replayed: bool = False) -> None:
        """Count one recorded event; ``origin`` is the configured name of the source that emitted
        it (the runner knows it), else its ``source`` field labels it. ``replayed``: an event an
        earlier session of a resumed run recorded (counted, but no lag, rate or source age)."""
        try:
            self._observe(e, origin, replayed)
        except Exception:  # noqa: BLE001 - a metric must never stop the run
            self.errors.inc()

    def new_session(self) -> None:
        """After an earlier session's events were replayed in: no source is connected yet."""
        for name, s in self.source_state.items():
            s["state"] = ""
            self.connected.labels(name).set(0)

    def _observe(self, e: ev.Event, origin: str, replayed: bool = False) -> None:
        now = self.wall_ns()
        t = type(e)
        names = self._names.get(t)
        if names is None:
            names = self._names[t] = (e.KIND, t.__name__)
        self.events.labels(*names).inc()
        self.recorded += 1
        self.last_seq = e.seq
        if replayed:
            if e.KIND == ev.INPUT:
                self._state(e, t)
            elif e.KIND == ev.DECISION:
                self._decision(e, t)
            else:
                self._execution(e, t)
            return
        second = now // 10**9
        if second != self._second:
            if second == self._second + 1:
                self.rate.set(self._in_second)
            else:
                self.rate.set(0)
            self._second, self._in_second = second, 0
        self._in_second += 1
        if e.KIND == ev.INPUT:
            self._input(e, t, now, origin or e.source or "?")
        elif e.KIND == ev.DECISION:
            self._decision(e, t)
        else:
            self._execution(e, t)

    def _input(self, e: Any, t: type, now: int, src: str) -> None:
        self.last_by_source[src] = now
        venue_ts = getattr(e, "venue_ts", 0) or (getattr(e, "block_ts", 0) * 10**9)
        self.lag.labels(src).observe(max(0, now - (venue_ts or e.ts)) / 1e9)
        self._state(e, t)

    def _state(self, e: Any, t: type) -> None:
        """What an input says about the run's state: connections, the kill switch, health factors."""
        if t is ev.SourceConnectionChanged:
            s = self.source_state.setdefault(e.name, {"state": "", "reconnects": 0, "restarts": 0})
            s["state"] = e.state
            if e.state == "connected":
                self.connected.labels(e.name).set(1)
                if e.attempt > 0:
                    s["reconnects"] += 1
                    self.reconnects.labels(e.name).inc()
            elif e.state == "disconnected":
                self.connected.labels(e.name).set(0)
                if e.source == "live-runner":
                    s["restarts"] += 1
                    self.restarts.labels(e.name).inc()
        elif t is ev.KillSwitchSet:
            self.kill_engaged, self.kill_reason = e.engaged, e.reason
            self.kill.set(1 if e.engaged else 0)
        elif t is ev.AaveAccountObserved:
            self.health_factor.observe(e.health_factor / WAD)

    def _decision(self, e: Any, t: type) -> None:
        self.decisions.labels(t.__name__).inc()
        if t is ev.OrderIntended:
            self.intents.labels(e.venue, "intended").inc()
            if e.side in ("liquidate", "arb"):
                self._kind[e.seq] = e.side
                (self.liquidations if e.side == "liquidate" else self.arbitrages).labels("intended").inc()
            trigger = self._exit_trigger.pop((e.strategy, e.client_id), None)
            if trigger is not None:
                self._exit_intent[e.seq] = trigger
        elif t is ev.IntentRejected:
            self.intents.labels(e.venue, "rejected").inc()
        elif t is ev.PerpExitDecided:
            self._exit_trigger[(e.strategy, e.client_id)] = e.ts - e.latency_ns
        elif t is ev.CircuitBreakerChanged:
            self.circuits[e.strategy] = e.state
            self.circuit.labels(e.strategy).set(CIRCUIT.get(e.state, -1))

    def _execution(self, e: Any, t: type) -> None:
        if t is ev.TransactionSubmitted:
            self._pending.add(e.tx)
            self.pending_tx.set(len(self._pending))
        elif t is ev.TransactionIncluded or t is ev.TransactionDropped:
            self._pending.discard(e.tx)
            self.pending_tx.set(len(self._pending))
        elif t is ev.OrderFilled or t is ev.OrderFailed:
            final = t is ev.OrderFailed or e.final
            if not final:
                return
            kind = self._kind.pop(e.intent, None)
            outcome = "filled" if t is ev.OrderFilled else "failed"
            if kind is not None:
                (self.liquidations if kind == "liquidate" else self.arbitrages).labels(outcome).inc()
                if kind == "arb" and t is ev.OrderFilled:
                    fee = e.fee if e.fee_asset == RISK_ASSET else 0
                    self.profit.labels("paper" if e.source.startswith("paper") else "executed").observe(
                        (e.amount - e.notional - fee) / 1e6)
            trigger = self._exit_intent.pop(e.intent, None)
            if trigger is not None and t is ev.OrderFilled:
                self.exit_latency.observe(max(0, e.ts - trigger) / 1e9)

    def exposition(self, store_lag: int) -> bytes:
        self.store_lag.set(store_lag)
        second = self.wall_ns() // 10**9
        if second > self._second + 1:
            self.rate.set(0)  # nothing recorded in the last full second
        elif second == self._second + 1:
            self.rate.set(self._in_second)
        return generate_latest(self.registry)


def source_health(metrics: LiveMetrics, name: str, own: dict[str, Any], now_ns: int, restarts: int) -> dict[str, Any]:
    """One source's entry in ``/health`` (``own``: the adapter's ``health()``)."""
    s = metrics.source_state.get(name, {})
    last = metrics.last_by_source.get(name)
    return {
        "connected": s.get("state") in ("connected", "resubscribed", "backfilled"),
        "state": s.get("state", "not connected yet"),
        "last_event_age_ms": None if last is None else round((now_ns - last) / 1e6, 3),
        "reconnects": s.get("reconnects", 0),
        "restarts": restarts,
        "adapter": own,
    }


def build_app(health: Callable[[], dict[str, Any]], metrics: Callable[[], bytes],
              kill: Callable[[bool, str, str], None]) -> Any:
    """The starlette app: ``GET /health``, ``GET /metrics``, ``POST /kill``. Handlers run on the
    runner's event loop (uvicorn is served as a task of it), so ``kill`` may feed the loop directly."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def health_route(request: Request) -> Response:
        return JSONResponse(health())

    async def metrics_route(request: Request) -> Response:
        return Response(metrics(), media_type=CONTENT_TYPE_LATEST)

    async def kill_route(request: Request) -> Response:
        body = await request.body()
        engaged, reason = True, "http"
        if body.strip():
            try:
                data = json.loads(body)
                if not isinstance(data, dict):
                    raise ValueError("not an object")
                engaged = data.get("engaged", True)
                reason = data.get("reason", "http")
                if not isinstance(engaged, bool) or not isinstance(reason, str):
                    raise ValueError("engaged must be true/false and reason text")
            except ValueError as e:
                return JSONResponse({"error": f"bad body: {e}"}, status_code=400)
        kill(engaged, reason[:200], "operator:http")
        return JSONResponse({"kill_switch": engaged, "reason": reason[:200]})

    return Starlette(routes=[Route("/health", health_route), Route("/metrics", metrics_route),
                             Route("/kill", kill_route, methods=["POST"])])


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (bound here, so a busy port is one clear error and port 0 tells its number)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(f"ops server: cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class OpsServer:
    """uvicorn serving ``app`` on ``sock`` as a task of the running loop; it leaves signals to the runner."""

    def __init__(self, app: Any, sock: socket.socket) -> None:
        import uvicorn

        class _Server(uvicorn.Server):
            def capture_signals(self) -> Any:  # the runner handles SIGINT/SIGTERM (graceful shutdown)
                return contextlib.nullcontext()

        self.sock = sock
        self.port = sock.getsockname()[1]
        self.server = _Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
        self.task: Any = None

    def start(self) -> None:
        import asyncio

        self.task = asyncio.get_running_loop().create_task(self.server.serve(sockets=[self.sock]))

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(Exception):
                await self.task
        self.sock.close()


