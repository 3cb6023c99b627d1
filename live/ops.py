"""Operating a live run: ``GET /health``, Prometheus ``GET /metrics`` and ``POST /kill``.

**Metrics are read from the recorded events as they pass** (``LiveMetrics.observe`` is called with
every event the run's log numbers: inputs, decisions, executions), never from the runner's or a
strategy's intentions, so what ``/metrics`` says is what a reader of the log would count. Each run
has its own ``prometheus_client.CollectorRegistry`` (two runners in one process never mix), whose
one collector turns plain counters into metric families at scrape time (both on the loop's thread:
no lock; counting an event is a few dict operations. Measured on the shared 2-core box, a fake
source's emit, recorded and decided: p50 22 us with a prometheus-client labelled child per figure,
9.5 us with this, 5.2 us with no metrics). The figures (all names ``tapedeck_``):

* ``events_total{kind,type}`` and ``events_per_second`` (recorded events over the last full second
  of wall-clock time);
* ``event_lag_seconds{source}``: wall clock when the event was recorded minus the venue's own time
  of it (``venue_ts``, a block's ``block_ts``), or minus its receive time ``ts`` when the venue gave
  none (then it is the recording's own delay);
* ``decisions_total{type}``, ``intents_total{venue,verdict}`` (intended / rejected);
* ``liquidations_total{outcome}`` and ``arbitrages_total{outcome}`` (intended, filled, failed) for
  intents of side ``liquidate`` and ``arb`` (a refused one is in ``intents_total{verdict="rejected"}``:
  ``IntentRejected`` does not say the side);
* ``profit{kind,execution}`` histogram (risk currency, USDC units), as ``runtime.outcomes`` values
  them: an arbitrage's final fill (received minus paid minus a fee in the risk asset); a
  liquidation's final fill on an Aave venue (the collateral received at the run's named ETH price,
  ``[outcomes] eth_price``, minus the debt repaid and the fee), or for one through an executor
  contract (its intent has a ``route``) the sale it reported (``InventoryChanged``) minus the debt
  repaid; ``execution`` is ``paper`` (``source`` starts with ``paper``) or ``executed``; a
  liquidation with no price yet counts in ``unpriced_total``;
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
``health()``, every URL in it cut to scheme://host:port), the store's lag, each gateway's own
``health()``, each strategy's circuit state, the kill switch, the mode. ``POST
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

from bisect import bisect_left

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tapedeck.domain import events as ev
from tapedeck.domain.risk import RISK_ASSET
from tapedeck.runtime.outcomes import DEFAULT_ETH_PRICE, ETH_ASSETS, ETH_PRICED_VENUES, EthPrice

CIRCUIT = {"closed": 0, "half_open": 1, "open": 2}
PROFIT_BUCKETS = (-100.0, -10.0, -1.0, 0.0, 1.0, 10.0, 100.0, 1000.0, 10000.0)
HF_BUCKETS = (0.5, 0.8, 0.9, 0.95, 1.0, 1.02, 1.05, 1.1, 1.25, 1.5, 2.0, 5.0)
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
WAD = 10**18


class _Hist:
    """A histogram kept as plain bucket counts (``le`` inclusive, as Prometheus counts them)."""

    __slots__ = ("buckets", "counts", "sum", "n")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets, self.counts, self.sum, self.n = buckets, [0] * (len(buckets) + 1), 0.0, 0

    def observe(self, v: float) -> None:
        self.counts[bisect_left(self.buckets, v)] += 1
        self.sum += v
        self.n += 1

    def cumulative(self) -> list[tuple[str, float]]:
        out, acc = [], 0
        for le, c in zip((*map(repr, map(float, self.buckets)), "+Inf"), self.counts):
            acc += c
            out.append((le, acc))
        return out


class LiveMetrics:
    """The run's figures, fed with every recorded event (see the module docstring), kept as plain
    ints and bucket counts and turned into Prometheus metric families only when scraped (its own
    ``CollectorRegistry``): counting an event costs a few dict operations, not a labelled
    prometheus-client child and its lock per figure."""

    def __init__(self, wall_ns: Callable[[], int] = time.time_ns, eth_price: str = DEFAULT_ETH_PRICE) -> None:
        self.wall_ns = wall_ns
        self.events: dict[tuple[str, str], int] = {}  # (kind, type) -> recorded
        self.lag: dict[str, _Hist] = {}  # source -> seconds
        self.decisions: dict[str, int] = {}
        self.intents: dict[tuple[str, str], int] = {}  # (venue, verdict)
        self.liquidations: dict[str, int] = {}  # outcome
        self.arbitrages: dict[str, int] = {}
        self.profit: dict[tuple[str, str], _Hist] = {}  # ("arbitrage" | "liquidation", "paper" | "executed")
        self.price = EthPrice(eth_price)  # the run's named ETH price (runtime.outcomes), folded from inputs
        self.unpriced = 0
        self._settled: dict[int, tuple[int, str]] = {}  # executor liquidation -> (debt repaid, execution)
        self.health_factor = _Hist(HF_BUCKETS)
        self.exit_latency = _Hist(LAG_BUCKETS)
        self.restarts: dict[str, int] = {}
        self.errors = 0
        self.store_lag = 0
        self.rate = 0
        # what the figures above need to remember: only intents in flight and open exits
        self._kind: dict[int, tuple[str, bool]] = {}  # intent seq -> ("liquidate" | "arb", has a route)
        self._exit_trigger: dict[tuple[str, str], int] = {}  # (strategy, client_id) -> trigger event time
        self._exit_intent: dict[int, int] = {}  # intent seq -> trigger event time
        self._pending: set[str] = set()
        self._second = 0
        self._in_second = 0
        self._names: dict[type, tuple[str, str]] = {}
        # for /health, per source name: state, reconnects, restarts; wall time of its last event
        self.source_state: dict[str, dict[str, Any]] = {}
        self.last_by_source: dict[str, int] = {}
        self.circuits: dict[str, str] = {}
        self.kill_engaged = False
        self.kill_reason = ""
        self.recorded = 0
        self.last_seq = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # type: ignore[arg-type]

    def observe(self, e: ev.Event, origin: str = "", replayed: bool = False) -> None:
        """Count one recorded event; ``origin`` is the configured name of the source that emitted
        it (the runner knows it), else its ``source`` field labels it. ``replayed``: an event an
        earlier session of a resumed run recorded (counted, but no lag, rate or source age)."""
        try:
            self._observe(e, origin, replayed)
        except Exception:  # noqa: BLE001 - a metric must never stop the run
            self.errors += 1

    def new_session(self) -> None:
        """After an earlier session's events were replayed in: no source is connected yet."""
        for s in self.source_state.values():
            s["state"] = ""

    def _observe(self, e: ev.Event, origin: str, replayed: bool = False) -> None:
        t = type(e)
        names = self._names.get(t)
        if names is None:
            names = self._names[t] = (e.KIND, t.__name__)
        self.events[names] = self.events.get(names, 0) + 1
        self.recorded += 1
        self.last_seq = e.seq
        kind = names[0]
        if not replayed:
            now = self.wall_ns()
            second = now // 10**9
            if second != self._second:
                self.rate = self._in_second if second == self._second + 1 else 0
                self._second, self._in_second = second, 0
            self._in_second += 1
            if kind == ev.INPUT:
                src = origin or e.source or "?"
                self.last_by_source[src] = now
                venue_ts = getattr(e, "venue_ts", 0) or (getattr(e, "block_ts", 0) * 10**9)
                lag = self.lag.get(src)
                if lag is None:
                    lag = self.lag[src] = _Hist(LAG_BUCKETS)
                lag.observe(max(0, now - (venue_ts or e.ts)) / 1e9)
        if kind == ev.INPUT:
            if t in _STATE:
                self._state(e, t)
            elif t in _PRICED:
                self.price.fold(e)
        elif kind == ev.DECISION:
            self.decisions[names[1]] = self.decisions.get(names[1], 0) + 1
            if t in _DECISIONS:
                self._decision(e, t)
        elif t in _EXECUTIONS:
            self._execution(e, t)

    def _state(self, e: Any, t: type) -> None:
        """What an input says about the run's state: connections, the kill switch, health factors."""
        if t is ev.SourceConnectionChanged:
            s = self.source_state.setdefault(e.name, {"state": "", "reconnects": 0, "restarts": 0})
            s["state"] = e.state
            if e.state == "connected" and e.attempt > 0:
                s["reconnects"] += 1
            elif e.state == "disconnected" and e.source == "live-runner":
                s["restarts"] += 1
        elif t is ev.KillSwitchSet:
            self.kill_engaged, self.kill_reason = e.engaged, e.reason
        elif t is ev.AaveAccountObserved:
            self.health_factor.observe(e.health_factor / WAD)

    def _count(self, table: dict[Any, int], key: Any) -> None:
        table[key] = table.get(key, 0) + 1

    def _decision(self, e: Any, t: type) -> None:
        if t is ev.OrderIntended:
            self._count(self.intents, (e.venue, "intended"))
            if e.side in ("liquidate", "arb"):
                self._kind[e.seq] = (e.side, bool(e.route))
                self._count(self.liquidations if e.side == "liquidate" else self.arbitrages, "intended")
            trigger = self._exit_trigger.pop((e.strategy, e.client_id), None)
            if trigger is not None:
                self._exit_intent[e.seq] = trigger
        elif t is ev.IntentRejected:
            self._count(self.intents, (e.venue, "rejected"))
        elif t is ev.PerpExitDecided:
            self._exit_trigger[(e.strategy, e.client_id)] = e.ts - e.latency_ns
        elif t is ev.CircuitBreakerChanged:
            self.circuits[e.strategy] = e.state

    def _execution(self, e: Any, t: type) -> None:
        if t is ev.TransactionSubmitted:
            self._pending.add(e.tx)
        elif t is ev.TransactionIncluded or t is ev.TransactionDropped:
            self._pending.discard(e.tx)
        elif t is ev.InventoryChanged:
            settled = self._settled.pop(e.intent, None) if e.delta > 0 else None
            if settled is not None:  # an executor liquidation's sale, in its debt asset
                value = self._usdc(e.asset, e.delta)
                if value is None:
                    self.unpriced += 1
                else:
                    self._profit("liquidation", settled[1], value - settled[0])
        elif t is ev.OrderFailed or e.final:  # OrderFilled: only its final fill ends the intent
            kind = self._kind.pop(e.intent, None)
            filled = t is ev.OrderFilled
            if kind is not None:
                side, routed = kind
                self._count(self.liquidations if side == "liquidate" else self.arbitrages,
                            "filled" if filled else "failed")
                if filled:
                    self._fill_profit(e, side, routed)
            trigger = self._exit_intent.pop(e.intent, None)
            if trigger is not None and filled:
                self.exit_latency.observe(max(0, e.ts - trigger) / 1e9)

    def _usdc(self, asset: str, amount: int) -> int | None:
        if asset == RISK_ASSET:
            return amount
        if asset in ETH_ASSETS and self.price.value:
            return amount * self.price.value // 10**18
        return None

    def _profit(self, kind: str, execution: str, usdc: int) -> None:
        hist = self.profit.get((kind, execution))
        if hist is None:
            hist = self.profit[(kind, execution)] = _Hist(PROFIT_BUCKETS)
        hist.observe(usdc / 1e6)

    def _fill_profit(self, e: Any, side: str, routed: bool) -> None:
        execution = "paper" if e.source.startswith("paper") else "executed"
        fee = self._usdc(e.fee_asset or RISK_ASSET, e.fee) if e.fee else 0
        if side == "arb":
            self._profit("arbitrage", execution, e.amount - e.notional - (e.fee if e.fee_asset == RISK_ASSET else 0))
        elif routed and execution == "executed":
            self._settled[e.intent] = (e.notional, execution)  # valued when the executor reports its sale
        elif e.venue.startswith(ETH_PRICED_VENUES) and self.price.value and fee is not None:
            self._profit("liquidation", execution, e.amount * self.price.value // 10**18 - e.notional - fee)
        else:
            self.unpriced += 1

    # ------------------------------------------------------------------ scraping

    def exposition(self, store_lag: int) -> bytes:
        self.store_lag = store_lag
        return generate_latest(self.registry)

    def collect(self) -> Any:
        """The figures as Prometheus metric families (called by the registry at each scrape)."""
        second = self.wall_ns() // 10**9
        rate = self._in_second if second == self._second + 1 else self.rate if second == self._second else 0

        def counter(name: str, doc: str, labels: list[str], table: dict[Any, int]) -> Any:
            f = CounterMetricFamily(name, doc, labels=labels)
            for key, n in table.items():
                f.add_metric(list(key) if isinstance(key, tuple) else [key], n)
            return f

        def gauge(name: str, doc: str, value: float) -> Any:
            return GaugeMetricFamily(name, doc, value=value)

        def histogram(name: str, doc: str, labels: list[str], table: dict[Any, _Hist]) -> Any:
            f = HistogramMetricFamily(name, doc, labels=labels)
            for key, h in table.items():
                f.add_metric(list(key) if isinstance(key, tuple) else [key] if labels else [], h.cumulative(), h.sum)
            return f

        yield counter("tapedeck_events", "Recorded events", ["kind", "type"], self.events)
        yield gauge("tapedeck_events_per_second", "Recorded events over the last full second", rate)
        yield histogram("tapedeck_event_lag_seconds", "Recorded wall time minus the venue's time of the event (or "
                        "its receive time)", ["source"], self.lag)
        yield counter("tapedeck_decisions", "Recorded decisions", ["type"], self.decisions)
        yield counter("tapedeck_intents", "Intents by verdict", ["venue", "verdict"], self.intents)
        yield counter("tapedeck_liquidations", "Liquidation intents by outcome", ["outcome"], self.liquidations)
        yield counter("tapedeck_arbitrages", "Arbitrage intents by outcome", ["outcome"], self.arbitrages)
        yield histogram("tapedeck_profit", "An arbitrage's or liquidation's result (USDC)", ["kind", "execution"],
                        self.profit)
        yield counter("tapedeck_unpriced", "Liquidation results not valued (no ETH price yet)", [],
                      {(): self.unpriced})
        yield gauge("tapedeck_pending_transactions", "Transactions sent, not yet included or dropped",
                    len(self._pending))
        yield histogram("tapedeck_health_factor", "Observed Aave health factors", [], {"": self.health_factor})
        yield histogram("tapedeck_exit_trigger_to_flatten_seconds", "Event time from a perp exit's trigger to its "
                        "final fill", [], {"": self.exit_latency})
        circuits = GaugeMetricFamily("tapedeck_circuit_state", "0 closed, 1 half open, 2 open", labels=["strategy"])
        for name, state in self.circuits.items():
            circuits.add_metric([name], CIRCUIT.get(state, -1))
        yield circuits
        yield gauge("tapedeck_kill_switch", "1 when the kill switch is engaged", 1 if self.kill_engaged else 0)
        connected = GaugeMetricFamily("tapedeck_source_connected", "1 while the source says it is connected",
                                      labels=["source"])
        for name, st in self.source_state.items():
            connected.add_metric([name], 1 if st["state"] in CONNECTED else 0)
        yield connected
        yield counter("tapedeck_source_reconnects", "Reconnections a source recorded", ["source"],
                      {n: st["reconnects"] for n, st in self.source_state.items()})
        yield counter("tapedeck_source_restarts", "Source tasks the runner restarted", ["source"],
                      {n: st["restarts"] for n, st in self.source_state.items()})
        yield gauge("tapedeck_store_lag_events", "Events numbered but not yet committed", self.store_lag)
        yield counter("tapedeck_metrics_errors", "Events the metrics could not read", [], {(): self.errors})


CONNECTED = ("connected", "resubscribed", "backfilled")
_STATE = frozenset({ev.SourceConnectionChanged, ev.KillSwitchSet, ev.AaveAccountObserved})
_DECISIONS = frozenset({ev.OrderIntended, ev.IntentRejected, ev.PerpExitDecided, ev.CircuitBreakerChanged})
_EXECUTIONS = frozenset({ev.TransactionSubmitted, ev.TransactionIncluded, ev.TransactionDropped, ev.OrderFilled,
                         ev.OrderFailed, ev.InventoryChanged})
_PRICED = frozenset({ev.OracleUpdated, ev.V2ReservesSynced, ev.V3Swapped})  # what an EthPrice folds


def redacted(value: Any) -> Any:
    """An adapter's health with every URL cut to scheme://host:port (a node URL may carry an API key
    in its user info, path or query), recursively; the rest as it is."""
    if isinstance(value, dict):
        return {k: redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted(v) for v in value]
    if isinstance(value, str) and "://" in value:
        from urllib.parse import urlsplit

        try:
            u = urlsplit(value.strip())
            port = f":{u.port}" if u.port else ""
            rest = "/..." if (u.path not in ("", "/") or u.query or u.username) else ""
            return f"{u.scheme}://{u.hostname or ''}{port}{rest}"
        except ValueError:
            return "<url>"
    return value


def source_health(metrics: LiveMetrics, name: str, own: dict[str, Any], now_ns: int, restarts: int) -> dict[str, Any]:
    """One source's entry in ``/health`` (``own``: the adapter's ``health()``, URLs redacted)."""
    s = metrics.source_state.get(name, {})
    last = metrics.last_by_source.get(name)
    return {
        "connected": s.get("state") in CONNECTED,
        "state": s.get("state", "not connected yet"),
        "last_event_age_ms": None if last is None else round((now_ns - last) / 1e6, 3),
        "reconnects": s.get("reconnects", 0),
        "restarts": restarts,
        "adapter": redacted(own),
    }


LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
KILL_BODY_LIMIT = 4096  # bytes: {"engaged": false, "reason": "..."} with a reason of up to 200 characters


def is_loopback(host: str) -> bool:
    """Whether a bind address is the machine's own (127.0.0.0/8, ::1, localhost)."""
    return host in LOOPBACK_NAMES or host.startswith("127.")


def _host_name(header: str) -> str:
    """The name part of a Host header (``127.0.0.1:9108`` -> ``127.0.0.1``, ``[::1]:9108`` -> ``[::1]``)."""
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def build_app(health: Callable[[], dict[str, Any]], metrics: Callable[[], bytes],
              kill: Callable[[bool, str, str], None], loopback: bool = True) -> Any:
    """The starlette app: ``GET /health``, ``GET /metrics``, ``POST /kill``. Handlers run on the
    runner's event loop (uvicorn is served as a task of it), so ``kill`` may feed the loop directly.

    The operator is a process on this machine (curl, a script, Prometheus), never a web page: a request
    that carries ``Origin`` (every browser POST does, same-origin or not) is refused, so a page the operator
    happens to have open cannot engage or release the kill switch (a ``text/plain`` POST needs no CORS
    preflight); and while the server is bound to loopback (``loopback``), a ``Host`` other than a loopback
    name is refused, which stops DNS rebinding (a hostile name resolved to 127.0.0.1) reading or killing."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def refused(request: Request) -> Response | None:
        if "origin" in request.headers:
            return JSONResponse({"error": "a request from a web page (it carries Origin) is refused: the ops "
                                 "endpoints are for the operator's own tools"}, status_code=403)
        if loopback and _host_name(request.headers.get("host", "")) not in LOOPBACK_NAMES:
            return JSONResponse({"error": "Host must be a loopback name (127.0.0.1, localhost, [::1]) while the ops "
                                 "server listens on loopback"}, status_code=403)
        return None

    async def health_route(request: Request) -> Response:
        return refused(request) or JSONResponse(health())

    async def metrics_route(request: Request) -> Response:
        return refused(request) or Response(metrics(), media_type=CONTENT_TYPE_LATEST)

    async def kill_route(request: Request) -> Response:
        no = refused(request)
        if no is not None:
            return no
        body = b""
        async for chunk in request.stream():  # (capped as it streams: nothing unbounded is read)
            body += chunk
            if len(body) > KILL_BODY_LIMIT:
                return JSONResponse({"error": f"body over {KILL_BODY_LIMIT} bytes"}, status_code=413,
                                    headers={"Connection": "close"})
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


