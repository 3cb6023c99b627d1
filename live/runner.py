"""The live runner: ``tapedeck live CONFIG [--execute]``, one asyncio loop hosting the run.

What it does, in the order it does it:

1. **Builds** the engine from the config's decision part (``live.config``), the run's store (a new
   log at ``--out``, or the same run resumed: see *Resume* below), one adapter per ``[[sources]]``
   entry and one gateway per ``[[gateways]]`` entry (``kind`` -> factory through ``SOURCE_KINDS`` /
   ``GATEWAY_KINDS``, or any ``"module:Class"``), and the core's ``runtime.loop.Loop`` over them:
   the same loop sim and replay run (an input is appended before the engine sees it, every
   decision is recorded, an intent goes to the gateway of its venue only after a flush).
2. **Paper is the default.** Without ``--execute`` every gateway is built with ``execute=False``
   (it simulates: ``eth_call``/``eth_callBundle``, fills against the live book) and a venue no
   gateway serves is filled by the core's honest ``adapters.paper_gateway.PaperGateway`` against
   the recorded state (``source="paper"``). ``--execute`` refuses to start without a signing key
   (environment or keystore, ``live.config.load_signing_key``), a notional cap for every venue a
   gateway serves and a daily loss limit (``domain.risk``: state, so replay refuses the same
   intents); with it an intent for a venue no gateway serves fails (``OrderFailed``), never paper.
3. **Runs**: each source's ``run(emit, stop)`` is a task; ``emit`` feeds the loop on the loop's own
   thread. A source task that returns or raises before the run stops is recorded
   (``SourceConnectionChanged(state="disconnected", source="live-runner")``, the exception's type
   only: a message may carry a URL with a key in it) and restarted after a ``Backoff`` delay
   (``[live] restart_base_s``/``restart_cap_s``; the attempt count resets once a restarted task has
   run for a minute). After ``[live] rebuild_after`` deaths in a row the adapter is rebuilt from its
   config and restored from the log (auto-recovery: its connections and in-memory state are reset,
   and it resyncs from the run's own checkpoint, as on a resume). Reconnecting inside a connection
   is the adapter's job. A gateway's ``start()`` is awaited before the sources start (the EVM
   gateway reconciles its nonces with the chain there). Timers a strategy asks for
   (``TimerRequested``) fire on the asyncio loop at their event time (``TimerFired`` stamped with
   the clock, never before ``at_ts``). The log commits at the end of every source batch (a source
   with an ``after_batch`` attribute, ``live.base``: the runner sets it to its group commit, so an
   event a source has seen ``after_batch`` return for is durable, acknowledged, and a crash loses
   none of those; a source with ``ack_after`` too, the WebSocket feeds, gets the pipelined form:
   the commit runs on the log's committer thread, ``EventLog.commit_async``, gathering for half of
   ``max_delay_ms``, at most ``ACK_GROUP_MS`` (2.5 ms), between commits, and the source acknowledges
   when its future resolves), at least every ``[store] max_delay_ms`` (5 ms by default in a live run: what a
   source without batches, or a gateway's report, may wait) and before any intent leaves the
   process. A source that emits
   anything but an input event gets an ``InputRejected`` recorded in its place.
4. **Operations** (``live.ops``): ``/health``, ``/metrics`` and ``POST /kill`` on 127.0.0.1. The
   **kill switch** is a recorded ``KillSwitchSet`` input (the risk gate refuses every intent from
   then on; the run goes on recording, and its log stays clean): ``POST /kill``, or the signal
   **SIGUSR1** (``kill -USR1 <pid>``). **SIGINT/SIGTERM** stop the run gracefully: sources are told
   to stop (and given ``[live] shutdown_grace_s``), pending timers are dropped, each gateway's
   ``aclose()``/``close()`` is awaited (the same grace: work in flight reports), the log is flushed
   and closed ``ended = clean`` (sealed: ``replay --verify`` verifies it).

**Resume.** A ``--out`` that exists is the same run continued: it is opened as its writer (the
``flock`` single-writer rule: a second runner on it is refused), and the runner *reconciles* it
before anything starts. Reconciling means, in this order, and a refusal (``RunnerError``, one
line) if any step fails:

* the log is a ``live`` run and its bytes check out (every segment's hash and link, the seal if it
  has one: ``adapters.eventlog``);
* its recorded decision config is this config (same hash; the top-level keys that differ are named);
* a fresh engine fed its inputs and executions recomputes every recorded decision byte for byte
  (``runtime.verify``): the engine now holds the state the run had, and nothing it decided is
  contradicted;
* the decisions of the last input that the crash kept from being recorded are recorded now (they
  are what the engine decides; any intent among them never left the process, since an intent is
  sent only once committed, and gets an ``OrderFailed`` saying so);
* every intent recorded without a final outcome is settled: a paper one (paper session, or a venue
  filled on paper) is closed with an ``OrderFailed`` (nothing happened anywhere); one sent for
  real is its gateway's to settle, by ``reconcile(intents)`` (it reports what the venue says
  happened) or by ``restore(events)`` then ``start()`` (it finds its open work in the log and asks
  the venue, as the EVM gateway's nonce manager does); a gateway with neither makes the runner
  refuse: a transaction may be in flight, and only a person (or a gateway that can ask the venue)
  can say.

Then every source's and gateway's ``restore(events)`` gets the run's recorded events (a source's
checkpoint, a gateway's nonces), timers still pending are scheduled again, the clock starts no
earlier than the last recorded event, and new events are appended after the last one (no sequence
number twice). The manifest says it was ``crashed-recovered`` or reopened and lists each session
(first seq, paper or execute); the metrics count the earlier sessions' events too.

**How adapters plug in.** ``SOURCE_KINDS``/``GATEWAY_KINDS`` map a ``kind`` to ``"module:attr"``:
``evm``, ``binance``, ``hyperliquid``, ``solana`` sources and ``evm``, ``book`` gateways name the small
factories below (``evm_source`` ... ``book_gateway``), which call the adapters' own config entry
points (``EvmSource.from_config``, ``build_evm_gateway``, ``BookGateway.from_config``...). A kind
that is not registered may be given as the import path itself. What the path names is built as:

* ``target.from_live(spec, ctx)`` when it has that attribute;
* ``target(spec, ctx)`` when it is a function whose first parameter is ``spec`` (a factory);
* else ``target(**params, **ctx)``: ``params`` are the entry's own keys (minus ``kind``, ``name``,
  ``venue(s)``) and ``ctx`` the fields of ``AdapterContext`` its signature names (``**kwargs``
  gets none): ``name``, ``clock``, ``execute``, ``state`` (the engine's ``MarketState``, read
  only), ``config``, ``venues``, ``key`` (``--execute`` only), ``flush`` (the log's commit),
  ``environ`` (where secrets are read by name), ``where`` (for error messages).

A source is a ``live.base.LiveSource``; a gateway a ``domain.ports.Gateway`` (``bind``,
``submit``), optionally with ``restore(events)``, ``start()``, ``reconcile(intents)``,
``health()`` and ``aclose()``/``close()`` (each may be sync or async). A ``ValueError`` or
``TypeError`` from a factory is the entry's config error (one line naming it).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import inspect
import os
import signal
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from tapedeck.adapters.eventlog import EventLog, EventLogError, Manifest, config_hash
from tapedeck.domain import events as ev
from tapedeck.domain.engine import Engine
from tapedeck.domain.strategies import ConfigError
from tapedeck.live.base import Backoff, Clock, LiveSource
from tapedeck.live.config import AdapterSpec, LiveSettings, LiveConfigError, execute_problems, load_signing_key
from tapedeck.live.ops import LiveMetrics, OpsServer, bind, build_app, is_loopback, redacted, source_health
from tapedeck.runtime.loop import Loop, timer_fired

RUNNER = "live-runner"  # the ``source`` of the events the runner itself records
SOURCE_KINDS: dict[str, str] = {
    "evm": "tapedeck.live.runner:evm_source",
    "binance": "tapedeck.live.runner:binance_source",
    "hyperliquid": "tapedeck.live.runner:hyperliquid_source",
    "solana": "tapedeck.live.runner:solana_source",
}
GATEWAY_KINDS: dict[str, str] = {
    "evm": "tapedeck.live.runner:evm_gateway",
    "book": "tapedeck.live.runner:book_gateway",
}
RESTART_RESET_S = 60.0  # a restarted source task that ran this long starts its backoff afresh
ACK_GROUP_MS = 2.5  # the longest a feed's pipelined commit gathers (EventLog.group_ms)


class RunnerError(ValueError):
    """A live run that cannot start (or resume) as asked; the message is one line saying why."""


@dataclass
class AdapterContext:
    """What the runner offers an adapter's constructor (it takes the ones it names)."""

    name: str
    clock: Clock
    execute: bool
    state: Any
    config: dict[str, Any]
    venues: tuple[str, ...] = ()
    key: Any = None  # the signing key, --execute only (repr shows the address, never the secret)
    flush: Callable[[], None] | None = None  # commits the run's log (a gateway saves before it sends)
    environ: Mapping[str, str] = field(default_factory=dict)  # where secrets are read (by variable name)
    where: str = ""  # "<file>: sources[0] (name)", for the adapter's own error messages


# The real adapters (issue 13's other helpers), built through their own config entry points. A
# [[sources]] table reaches them whole (kind and name included); a [[gateways]] table without
# kind, name and venue(s), which are the runner's.


def evm_source(spec: AdapterSpec, ctx: AdapterContext) -> Any:
    from tapedeck.live.evm_source import EvmSource

    return EvmSource.from_config(spec.table(), clock=ctx.clock, where=ctx.where)


def binance_source(spec: AdapterSpec, ctx: AdapterContext) -> Any:
    from tapedeck.live.binance_source import BinanceSource

    return BinanceSource.from_config(spec.table(), clock=ctx.clock)


def hyperliquid_source(spec: AdapterSpec, ctx: AdapterContext) -> Any:
    from tapedeck.live.hyperliquid_source import HyperliquidSource

    return HyperliquidSource.from_config(spec.table(), clock=ctx.clock)


def solana_source(spec: AdapterSpec, ctx: AdapterContext) -> Any:
    from tapedeck.live.solana_source import SolanaSource

    return SolanaSource.from_config(spec.table(), clock=ctx.clock)


def evm_gateway(spec: AdapterSpec, ctx: AdapterContext) -> Any:
    """``live.evm_gateway.build_evm_gateway``: its table's ``key_env``/``keystore`` name its key
    (default ``TAPEDECK_PRIVATE_KEY``, as ``[keys]``), ``flush`` is the run's log."""
    from tapedeck.live.evm_gateway import build_evm_gateway

    return build_evm_gateway(spec.params, execute=ctx.execute, flush=ctx.flush, environ=ctx.environ,
                             clock=ctx.clock, where=ctx.where)


def book_gateway(spec: AdapterSpec, ctx: AdapterContext) -> Any:
    """``live.book_gateway.BookGateway``: the entry is its ``[book_gateway]`` table (fees, decimals,
    ``binance``/``binance-usdm``/``hyperliquid`` sub-tables naming their secrets' variables)."""
    from tapedeck.live.book_gateway import BookGateway

    gw = BookGateway.from_config(ctx.state, {"book_gateway": spec.params}, execute=ctx.execute, clock=ctx.clock,
                                 env=ctx.environ)
    missing = [v for v in spec.venues if v not in gw.executors] if ctx.execute else []
    if missing:  # (else the run says EXECUTING and fails every order for these venues)
        raise ValueError(f"--execute: no executor for venue(s) {', '.join(missing)}: give each its "
                         f"[book_gateway.<venue>] table with its keys' variables (binance, binance-usdm, hyperliquid)")
    return gw


def adapter_factory(kind: str, registry: Mapping[str, str], what: str) -> Any:
    """What a ``kind`` names: a registered name or ``module:attr`` (``RunnerError`` otherwise)."""
    from tapedeck.runtime.strategy_loader import _load_path

    path = registry.get(kind, kind)
    if ":" not in path:
        raise RunnerError(f"{what}: unknown kind {kind!r} (known: {', '.join(sorted(registry))}; or an import "
                          f"path \"package.module:Class\")")
    try:
        return _load_path(path)
    except ConfigError as e:
        raise RunnerError(f"{what}: {e}") from None


def build_adapter(spec: AdapterSpec, registry: Mapping[str, str], ctx: AdapterContext, what: str) -> Any:
    """An adapter from its config entry (see *How adapters plug in* in the module docstring)."""
    target = adapter_factory(spec.kind, registry, what)
    ctx = dataclasses.replace(ctx, where=what)
    try:
        if hasattr(target, "from_live"):
            return target.from_live(spec, ctx)
        try:
            params = inspect.signature(target).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        if not inspect.isclass(target) and next(iter(params), "") == "spec":
            return target(spec, ctx)
        offered = {f.name: getattr(ctx, f.name) for f in fields(ctx)}
        named = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        extra = {k: v for k, v in offered.items() if k in named and k not in spec.params
                 and not (k == "key" and v is None)}
        return target(**spec.params, **extra)
    except ImportError as e:
        raise RunnerError(f"{what}: kind {spec.kind!r} needs {e.name or 'a module'}, which is not installed in this "
                          f"build") from None
    except (TypeError, ValueError) as e:  # the adapters' config errors are ValueErrors naming the key
        text = " ".join(str(e).split())[:300]
        kind = f" (kind {spec.kind})" if spec.kind != spec.name else ""  # what names the entry: once
        raise RunnerError(text if text.startswith(what) else f"{what}{kind}: {text}") from None
    except AttributeError as e:  # a value of another type than the adapter reads (a number for a URL, from --set or
        kind = f" (kind {spec.kind})" if spec.kind != spec.name else ""  # TAPEDECK_..., which parse TOML values)
        given = ", ".join(f"{k} = {type(v).__name__}" for k, v in sorted(spec.params.items())
                          if not isinstance(v, (str, bool)))
        raise RunnerError(f"{what}{kind}: a parameter has the wrong type ({' '.join(str(e).split())[:120]}); "
                          f"the non-text ones given: {given or 'none'}") from None


class _Recorder:
    """The store as the loop sees it: every numbered event also passes the metrics (``observe``)."""

    def __init__(self, store: EventLog, observe: Callable[[ev.Event, str], None], origin: Callable[[], str]):
        self.store, self._observe, self._origin = store, observe, origin

    def append(self, event: ev.Event) -> ev.Event:
        e = self.store.append(event)
        self._observe(e, self._origin() if e.KIND == ev.INPUT else "")
        return e

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class VenueRouter:
    """The loop's one gateway: an intent goes to the gateway of its venue, else to ``fallback``
    (paper), else fails (``--execute``: nothing is filled on paper by surprise)."""

    def __init__(self, by_venue: dict[str, Any], names: dict[int, str], fallback: Any, clock: Clock,
                 guard: Callable[[Callable[[ev.Event], None]], Callable[[ev.Event], None]] = lambda f: f):
        self.by_venue, self.names, self.fallback, self.clock = by_venue, names, fallback, clock
        self.guard = guard  # wraps the loop's feed for reports that come from the gateways' own tasks
        self.report: Any = None
        # Paper orders resting on books fill on later quotes: the loop calls ``observe`` with every
        # input the engine has folded, when a gateway has one (``Loop``); the router has one only then.
        observers = [g.observe for g in self._gateways() if callable(getattr(g, "observe", None))]
        if len(observers) == 1:
            self.observe: Callable[[ev.Event], None] = observers[0]
        elif observers:
            def observe_all(e: ev.Event) -> None:
                for o in observers:
                    o(e)
            self.observe = observe_all

    def _gateways(self) -> list[Any]:
        """Each distinct gateway once, in configuration order (a gateway may serve several venues)."""
        return list({id(g): g for g in [*self.by_venue.values(), self.fallback] if g is not None}.values())

    def gateway_for(self, venue: str) -> Any:
        return self.by_venue.get(venue, self.fallback)

    def bind(self, report: Any) -> None:
        self.report = report
        guarded = self.guard(report)
        for gw in self._gateways():
            gw.bind(guarded)

    def submit(self, intent: ev.OrderIntended) -> None:
        gw = self.gateway_for(intent.venue)
        if gw is None:
            self._fail(intent, f"no gateway for venue {intent.venue!r} (with --execute only configured gateways "
                               f"send; add a [[gateways]] entry for it)")
            return
        try:
            gw.submit(intent)
        except Exception as e:  # noqa: BLE001 - a gateway's bug must not end the run; the type only (no secrets)
            self._fail(intent, f"gateway {self.names.get(id(gw), type(gw).__name__)} raised {type(e).__name__}")

    def _fail(self, intent: ev.OrderIntended, reason: str) -> None:
        self.report(ev.OrderFailed(ts=self.clock(), source=RUNNER, cause=intent.seq, intent=intent.seq,
                                   venue=intent.venue, reason=reason))


class _Capture:
    """An engine as ``runtime.verify`` uses it, keeping what the last ``handle`` decided (so a
    resume can record the decisions a crash left unrecorded)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.last: list[ev.Event] = []

    def handle(self, e: ev.Event) -> Any:
        found = self.engine.handle(e)
        self.last = list(found)
        return found

    def decided(self, d: ev.Event) -> None:
        self.engine.decided(d)


@dataclass
class Summary:
    out: str
    resumed: bool
    events: int
    first_seq: int
    last_seq: int
    ended: str
    kill_switch: bool
    execute: bool
    notes: list[str] = field(default_factory=list)


class LiveRunner:
    """One live run (see the module docstring). ``prepare()`` builds and reconciles (raising
    ``RunnerError``), ``await run()`` runs until ``stop()`` (or a signal) and closes the log."""

    def __init__(self, settings: LiveSettings, *, execute: bool = False, out: str | None = None,
                 engine: Engine | None = None, environ: Mapping[str, str] | None = None,
                 wall_ns: Callable[[], int] = time.time_ns, signals: bool = True,
                 say: Callable[[str], None] | None = None, backoff_seed: int | None = None) -> None:
        self.settings, self.execute = settings, execute
        self.out = out or settings.out
        if not self.out:
            raise RunnerError(f"{settings.file}: no run log: give --out RUN.db (or [live] out)")
        self.environ = os.environ if environ is None else environ
        self.wall_ns, self.signals = wall_ns, signals
        self.say = say or (lambda line: None)
        self.backoff_seed = backoff_seed
        self._engine = engine
        from tapedeck.runtime.outcomes import eth_price_source

        self.metrics = LiveMetrics(wall_ns, eth_price_source(settings.config))
        self.stop_event: asyncio.Event | None = None
        self.resumed = False
        self.notes: list[str] = []
        self.sources: list[tuple[AdapterSpec, Any]] = []
        self.gateways: list[tuple[AdapterSpec, Any]] = []
        self.restarts: dict[str, int] = {}
        self.ops: OpsServer | None = None
        self.ops_port: int | None = None
        self._current = ""  # the configured name of the source whose event is being fed
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._prepared_timers: list[ev.TimerRequested] = []
        self._restore: list[tuple[AdapterSpec, Any]] = []
        self._failure: BaseException | None = None
        self._first_seq = 1
        self._closed = False
        self._open: list[ev.OrderIntended] = []  # resume: intents recorded without an outcome
        self._open_execute: set[int] = set()
        self._unrecorded: list[ev.Event] = []
        self._reconcile: list[tuple[Any, list[ev.OrderIntended]]] = []
        self.summary: Summary | None = None
        self._sock: Any = None  # the ops server's socket, bound by ``prepare``
        self.late_reports = 0  # gateway reports that came after the log closed (said in the summary)
        self.batch_commits = 0  # commits a source's ``after_batch`` asked for

    # ------------------------------------------------------------------ building

    def prepare(self) -> "LiveRunner":
        from tapedeck.runtime.strategy_loader import build_engine, code_identity, with_pool_identity

        s = self.settings
        self.key = None
        if self.execute:
            problems = execute_problems(s)
            if problems:
                raise RunnerError(f"--execute refused: {'; '.join(problems)}")
            try:
                self.key = load_signing_key(s.keys, self.environ)
            except LiveConfigError as e:
                raise RunnerError(f"--execute refused: {e}") from None
        try:
            self.engine = self._engine or build_engine(s.config)
        except (ConfigError, ValueError) as e:
            raise RunnerError(f"{s.file}: {e}") from None
        path = Path(self.out)
        self._last_ts = 0
        if path.exists():
            checked = self._check_resume(path)  # before anything is built: a refusal leaves the log as it was
        self._build_adapters(with_pool_identity)  # before the store: a bad adapter entry leaves no run behind
        if s.ops.enabled:  # and a busy port neither
            try:
                self._sock = bind(s.ops.host, s.ops.port)
            except OSError as e:
                raise RunnerError(str(e)) from None
        if path.exists():
            self._check_open_intents()
        try:
            if path.exists():
                store = EventLog.open(path, resume=True, max_delay_ms=s.max_delay_ms)
                if store.next_seq != checked + 1:
                    store.close(ended=None)
                    raise RunnerError(f"cannot resume {path}: it changed while it was being checked (another writer?)")
                self.resumed = True
            else:
                manifest = Manifest(run_id="", mode="live", config=s.config, config_hash=config_hash(s.config),
                                    sources=[spec.describe() for spec in s.sources],
                                    notes={"gateways": [g.describe() for g in s.gateways], "sessions": []},
                                    code=code_identity(self.engine))
                store = EventLog.create(path, manifest, max_delay_ms=s.max_delay_ms)
        except EventLogError as e:
            self._release_sock()
            raise RunnerError(f"cannot {'resume' if path.exists() else 'create'} {path}: {e}") from None
        except BaseException:
            self._release_sock()
            raise
        self.store = store
        # the feeds' pipelined commits (``_ack_after``) gather for a moment: a commit costs CPU (~0.2-0.4 ms
        # of it here), and back to back they were ~730 a second at 5,000 events/s. Half the store's
        # delay, at most ACK_GROUP_MS (a long timer, [store] max_delay_ms = 60000, must not hold acks).
        store.group_ms = min(ACK_GROUP_MS, (s.max_delay_ms or 2 * ACK_GROUP_MS) / 2)
        self.recorder = _Recorder(store, self.metrics.observe, lambda: self._current)
        self.loop = Loop(self.engine, self.recorder, self.router, timers=self._schedule)  # type: ignore[arg-type]
        store.manifest.notes.setdefault("sessions", []).append({"from_seq": store.next_seq, "execute": self.execute})
        store.write_manifest()
        self._first_seq = store.next_seq
        if self.resumed:
            self._settle_resume()
        return self

    def _build_adapters(self, with_pool_identity: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        from tapedeck.adapters.paper_gateway import PaperConfigError, PaperGateway

        s = self.settings
        last_ts = self._last_ts
        self.clock = Clock(lambda: max(self.wall_ns(), last_ts))  # a resumed run's time goes on from its last event
        state = self.engine.state
        for i, spec in enumerate(s.sources):
            ctx = AdapterContext(spec.name, self.clock, self.execute, state, s.config, environ=self.environ)
            src = build_adapter(spec, SOURCE_KINDS, ctx, f"{s.file}: sources[{i}] ({spec.name})")
            if not isinstance(src, LiveSource):
                raise RunnerError(f"{s.file}: sources[{i}] ({spec.name}): {type(src).__name__} is not a live "
                                  f"source (name, async run(emit, stop), restore(events), health())")
            self._tie_batches(src)
            self.sources.append((spec, src))
        by_venue, names = {}, {}
        for i, spec in enumerate(s.gateways):
            ctx = AdapterContext(spec.name, self.clock, self.execute, state, s.config, spec.venues, self.key,
                                 flush=self._flush, environ=self.environ)
            gw = build_adapter(spec, GATEWAY_KINDS, ctx, f"{s.file}: gateways[{i}] ({spec.name})")
            if not (callable(getattr(gw, "bind", None)) and callable(getattr(gw, "submit", None))):
                raise RunnerError(f"{s.file}: gateways[{i}] ({spec.name}): {type(gw).__name__} is not a gateway "
                                  f"(bind(report), submit(intent))")
            self.gateways.append((spec, gw))
            names[id(gw)] = spec.name
            for v in spec.venues:
                by_venue[v] = gw
        fallback = None
        if not self.execute:
            try:
                fallback = PaperGateway.from_config(state, with_pool_identity(s.config))
            except PaperConfigError as e:
                raise RunnerError(f"{s.file}: {e}") from None
            names[id(fallback)] = "paper"
        self.router = VenueRouter(by_venue, names, fallback, self.clock, self._guarded)

    # ------------------------------------------------------------------ resume

    def _check_resume(self, path: Path) -> int:
        """The checks of *Resume* on ``path`` opened as a reader (a refusal leaves it as it was);
        returns the last seq checked."""
        from tapedeck.runtime.verify import DIVERGED, verify

        s = self.settings
        try:
            probe = EventLog.open(path)
        except EventLogError as e:
            raise RunnerError(f"cannot resume {path}: {e}") from None
        try:
            if probe.manifest.mode != "live":
                raise RunnerError(f"cannot resume {path}: it is a {probe.manifest.mode} run, not a live one "
                                  f"(choose another --out)")
            recorded = probe.manifest.config
            if config_hash(recorded) != config_hash(s.config):
                keys = sorted(k for k in {*recorded, *s.config} if recorded.get(k) != s.config.get(k))
                raise RunnerError(f"cannot resume {path}: its recorded config differs from {s.file} in "
                                  f"{', '.join(keys) or 'its hash'}; a run resumes with the config it was started "
                                  f"with (or choose another --out)")
            capture = _Capture(self.engine)
            result = verify(probe, capture)  # type: ignore[arg-type]
            if result.problem is not None:
                raise RunnerError(f"cannot resume {path}: {result.problem}")
            if result.status == DIVERGED:
                d = result.divergence
                raise RunnerError(f"cannot resume {path}: this code and config decide differently from the recorded "
                                  f"run at seq {d.seq if d else '?'} (replay --verify shows both sides)")
            self._unrecorded = capture.last[len(capture.last) - result.unrecorded:] if result.unrecorded else []
            self._scan(probe)
            checked = probe.last_seq()
        finally:
            probe.close()
        return checked

    def _scan(self, store: EventLog) -> None:
        """The recorded intents without an outcome, the timers still pending, the last event time."""
        open_seqs = set(self.engine.risk.open_intents)
        intents: dict[int, ev.OrderIntended] = {}
        timers: dict[int, ev.TimerRequested] = {}
        sessions = store.manifest.notes.get("sessions", [])
        self._last_ts = 0
        for e in store.events():
            self.metrics.observe(e, replayed=True)  # the run's numbers include its earlier sessions
            self._last_ts = max(self._last_ts, e.ts)
            t = type(e)
            if t is ev.OrderIntended and e.seq in open_seqs:
                intents[e.seq] = e  # type: ignore[assignment]
            elif t is ev.TimerRequested:
                timers[e.seq] = e  # type: ignore[assignment]
            elif t is ev.TimerFired:
                timers.pop(e.requested, None)  # type: ignore[attr-defined]
        self.metrics.new_session()
        self._open = list(intents.values())
        self._open_execute = {seq for seq in intents if _session_executed(sessions, seq)}
        self._prepared_timers = list(timers.values())

    def _real_open(self) -> list[ev.OrderIntended]:
        """The open intents a session with --execute handed to a real gateway (not the paper fallback)."""
        return [i for i in self._open if i.seq in self._open_execute
                and self.router.gateway_for(i.venue) is not self.router.fallback]

    def _check_open_intents(self) -> None:
        """Refuse to resume when an intent sent for real has no outcome and its gateway cannot ask the venue."""
        def settles(gw: Any) -> bool:
            return callable(getattr(gw, "reconcile", None)) or callable(getattr(gw, "restore", None))

        unsettled = [i for i in self._real_open() if not settles(self.router.gateway_for(i.venue))]
        if unsettled:
            seqs = ", ".join(str(i.seq) for i in unsettled[:5])
            raise RunnerError(f"cannot resume {self.out}: {len(unsettled)} intent(s) sent with --execute have no "
                              f"recorded outcome (seq {seqs}) and their gateway cannot reconcile them with the venue; "
                              f"check the venue, then start a new run (another --out)")

    def _settle_resume(self) -> None:
        """Record what reconciling decided (the checks passed in ``_resume``); see *Resume*."""
        store, loop = self.store, self.loop
        never_sent = []
        for d in self._unrecorded:  # the last input's decisions the crash kept from the log
            d = self.recorder.append(d)
            self.engine.decided(d)
            if type(d) is ev.OrderIntended:
                never_sent.append(d)
            elif type(d) is ev.TimerRequested:
                self._prepared_timers.append(d)  # type: ignore[arg-type]
        if self._unrecorded:
            self.notes.append(f"recorded the {len(self._unrecorded)} decision(s) of seq {self._unrecorded[0].cause} "
                              f"that the run stopped before recording")
        real = self._real_open()
        for i in never_sent:
            loop.feed(ev.OrderFailed(ts=self.clock(), source=RUNNER, cause=i.seq, intent=i.seq, venue=i.venue,
                                     reason="never sent: the run stopped before this intent was recorded"))
        paper = [i for i in self._open if i not in real]
        for i in paper:
            loop.feed(ev.OrderFailed(ts=self.clock(), source=RUNNER, cause=i.seq, intent=i.seq, venue=i.venue,
                                     reason="no outcome was recorded before the run stopped (paper: nothing was "
                                            "sent); closed on resume"))
        if paper or never_sent:
            self.notes.append(f"closed {len(paper) + len(never_sent)} intent(s) left without an outcome")
        by_gateway: dict[int, list[ev.OrderIntended]] = {}
        for i in real:  # a gateway with only ``restore`` finds its open intents in the log itself
            if callable(getattr(self.router.gateway_for(i.venue), "reconcile", None)):
                by_gateway.setdefault(id(self.router.gateway_for(i.venue)), []).append(i)
        self._reconcile = [(self.router.gateway_for(v[0].venue), v) for v in by_gateway.values()]
        self._restore = list(self.sources)
        store.flush()

    # ------------------------------------------------------------------ the loop's callees

    def emit_for(self, name: str) -> Callable[[ev.Event], None]:
        """The ``emit`` a source gets: feed the loop on its thread; a failing store ends the run."""

        def emit(event: ev.Event) -> None:
            if self._failure is not None or self._closed:
                return
            if not isinstance(event, ev.Event) or event.KIND != ev.INPUT:  # an adapter's bug, kept, never decided on
                what = type(event).__name__ + (f" ({event.KIND})" if isinstance(event, ev.Event) else "")
                event = ev.InputRejected(ts=self.clock(), source=RUNNER, origin=f"source {name}",
                                         reason=f"a source emits input events, not {what}", raw=what)
            self._current = name
            try:
                self.loop.feed(event)
            except Exception as e:  # noqa: BLE001 - the store failed (disk full...): the run cannot go on
                self._fail(e)
            finally:
                self._current = ""

        return emit

    def _feed(self, event: ev.Event) -> None:
        """The runner's own inputs (timers, kill switch) and reports."""
        if self._failure is not None or self._closed:
            return
        try:
            self.loop.feed(event)
        except Exception as e:  # noqa: BLE001
            self._fail(e)

    def _guarded(self, report: Callable[[ev.Event], None]) -> Callable[[ev.Event], None]:
        """A gateway's ``report``: a store failure ends the run (not the gateway's task); a report
        that arrives after the log closed cannot be recorded and is counted (``late_reports``)."""

        def guarded(event: ev.Event) -> None:
            if self._closed or self._failure is not None:
                self.late_reports += 1
                return
            try:
                report(event)
            except Exception as e:  # noqa: BLE001
                self._fail(e)

        return guarded

    def _flush(self) -> None:
        """The run log's commit, for a gateway that saves what it is about to send."""
        self.store.flush()

    def _tie_batches(self, src: Any) -> None:
        """A source with an ``after_batch`` attribute (``live.base``: the feeds, the EVM source) gets
        the run's batch commit there, so what it emitted is durable when the call returns (whatever
        the source had there before is called first)."""
        if not hasattr(src, "after_batch"):
            return
        own = getattr(src, "after_batch", None)
        if getattr(own, "__self__", None) is self:
            return
        if callable(own):
            def both() -> None:
                own()
                self._after_batch()
            src.after_batch = both
        else:
            src.after_batch = self._after_batch
            if hasattr(src, "ack_after") and getattr(src, "ack_after", None) is None:
                src.ack_after = self._ack_after  # the feeds: the same commit, pipelined (off the loop's thread)

    def _ack_after(self) -> "concurrent.futures.Future[int]":
        """A source's batch ends, pipelined: the run's log commits on its committer thread
        (``EventLog.commit_async``) and the returned future resolves once every event the source
        emitted so far is durable; the source acknowledges the batch only then. A failed commit
        fails the future, and the run (on the loop's thread)."""
        if self._failure is not None:
            raise RunnerError(f"{self.out}: the run's log failed ({type(self._failure).__name__}); nothing more is "
                              f"recorded")
        if self._closed:
            done: concurrent.futures.Future[int] = concurrent.futures.Future()
            done.set_result(self.store.next_seq - 1)  # shutting down: close() committed everything emitted
            return done
        fut = self.store.commit_async()
        self.batch_commits += 1
        aio = asyncio.get_running_loop()

        def failed(f: "concurrent.futures.Future[int]") -> None:
            if not f.cancelled() and f.exception() is not None:
                try:
                    aio.call_soon_threadsafe(self._fail, f.exception())
                except RuntimeError:  # the loop is gone: close() has said how the run ended
                    pass

        fut.add_done_callback(failed)
        return fut

    def _after_batch(self) -> None:
        """A source's batch ends: commit the run's log (group commit). When it returns, every event the
        source emitted so far is durable (acknowledged); when the store failed it raises, so the
        source acknowledges nothing the log does not hold."""
        if self._failure is not None:
            raise RunnerError(f"{self.out}: the run's log failed ({type(self._failure).__name__}); nothing more is "
                              f"recorded")
        if self._closed:
            return  # shutting down: close() committed everything that was emitted
        try:
            self.store.flush()
        except Exception as e:  # noqa: BLE001 - the store failed (disk full...): the run cannot go on
            self._fail(e)
            raise RunnerError(f"{self.out}: cannot commit the run's log: {type(e).__name__}") from None
        self.batch_commits += 1

    def _fail(self, e: BaseException) -> None:
        if self._failure is None:
            self._failure = e
        if self.stop_event is not None:
            self.stop_event.set()

    def _schedule(self, request: ev.TimerRequested, now: int) -> None:
        """Fire ``request`` on the asyncio loop at its event time (never stamped before ``at_ts``)."""
        try:
            aio = asyncio.get_running_loop()
        except RuntimeError:  # recorded while resuming, before the loop runs: scheduled by ``run``
            self._prepared_timers.append(request)
            return

        def fire() -> None:
            self._timers.pop(request.seq, None)
            t = self.clock()
            if t < request.at_ts:  # woke early by the wall clock: wait the rest
                self._timers[request.seq] = aio.call_later((request.at_ts - t) / 1e9, fire)
                return
            self._feed(timer_fired(request, t))

        delay = max(0.0, (request.at_ts - self.wall_ns()) / 1e9)
        self._timers[request.seq] = aio.call_later(delay, fire)

    # ------------------------------------------------------------------ operations

    def kill(self, engaged: bool = True, reason: str = "", origin: str = "operator") -> None:
        """Engage (or release) the kill switch: a recorded ``KillSwitchSet`` input."""
        self._feed(ev.KillSwitchSet(ts=self.clock(), source=origin, engaged=engaged, reason=reason))
        self.say(f"kill switch {'engaged' if engaged else 'released'} ({origin}{': ' + reason if reason else ''})")

    def stop(self) -> None:
        if self.stop_event is not None:
            self.stop_event.set()

    def store_lag(self) -> int:
        """Events numbered but not yet committed (0 once the log is closed; -1: the store did not answer)."""
        if self._closed:
            return 0
        try:
            return max(0, self.store.next_seq - 1 - self.store.last_seq())
        except Exception:  # noqa: BLE001 - a health probe never fails the run
            return -1

    def health(self) -> dict[str, Any]:
        now = self.wall_ns()
        sources = {}
        for spec, src in self.sources:
            sources[spec.name] = source_health(self.metrics, spec.name, _health_of(src), now,
                                               self.restarts.get(spec.name, 0))
        risk = self.engine.risk
        circuits = {s.name: self.metrics.circuits.get(s.name, "closed") for s in self.engine.strategies}
        ok = all(v["connected"] for v in sources.values()) and self._failure is None
        return {
            "status": "ok" if ok else "degraded",
            "mode": "execute" if self.execute else "paper",
            "run": self.store.manifest.run_id,
            "resumed": self.resumed,
            "sources": sources,
            "store": {"last_seq": self.store.next_seq - 1, "lag_events": self.store_lag(),
                      "max_delay_ms": self.settings.max_delay_ms, "batch_commits": self.batch_commits},
            "gateways": {spec.name: redacted(_health_of(gw)) for spec, gw in self.gateways},
            "circuits": circuits,
            "kill_switch": {"engaged": risk.kill_switch, "reason": risk.kill_reason},
            "daily_loss": {"booked": risk.day_loss(), "limit": risk.daily_loss_limit},
            "recorded": self.metrics.recorded,
            "intents_in_flight": len(risk.open_intents),
        }

    # ------------------------------------------------------------------ running

    async def run(self) -> Summary:
        """Run until stopped, then shut down gracefully (the log closes clean) and say how it went."""
        aio = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        installed = []
        if self.signals:
            for sig, handler in ((signal.SIGINT, self.stop), (signal.SIGTERM, self.stop),
                                 (signal.SIGUSR1, lambda: self.kill(True, "SIGUSR1", "operator:signal"))):
                try:
                    aio.add_signal_handler(sig, handler)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError, ValueError):
                    pass
        tasks: list[asyncio.Task[None]] = []
        try:
            if self._sock is not None:
                sock, self._sock = self._sock, None
                ops_host = self.settings.ops.host
                self.ops = OpsServer(build_app(self.health, lambda: self.metrics.exposition(self.store_lag()),
                                               lambda engaged, reason, origin: self.kill(engaged, reason, origin),
                                               loopback=is_loopback(ops_host)),
                                     sock)
                self.ops_port = self.ops.port
                self.ops.start()
                url_host = f"[{ops_host}]" if ":" in ops_host else ops_host
                self.say(f"ops: http://{url_host}:{self.ops_port}/health /metrics, POST /kill")
                if not is_loopback(ops_host):
                    self.say(f"warning: the ops server listens on {ops_host}, beyond this machine: anyone who "
                             "reaches it can read /health and /metrics and engage or release the kill switch")
            for spec, gw in self.gateways:  # a resumed run: a gateway picks up its own state from the log
                if self.resumed and callable(getattr(gw, "restore", None)):
                    gw.restore(self.store.events())
            for gw, intents in self._reconcile:
                await _maybe(gw.reconcile(intents))
            for spec, gw in self.gateways:  # e.g. reconcile nonces with the chain before anything is sent
                if callable(getattr(gw, "start", None)):
                    await _maybe(gw.start())
            for spec, src in self._restore:
                src.restore(self.store.events())
            pending, self._prepared_timers = self._prepared_timers, []
            for request in pending:
                self._schedule(request, self.clock())
            for i, (spec, src) in enumerate(self.sources):
                tasks.append(aio.create_task(self._supervise(i, spec, src), name=f"source:{spec.name}"))
            await self.stop_event.wait()
        finally:
            await self._shutdown(tasks)
            for sig in installed:
                aio.remove_signal_handler(sig)
        self.summary = self._summary()
        return self.summary

    async def _supervise(self, index: int, spec: AdapterSpec, src: Any) -> None:
        """Run one source until the run stops. A task that dies is recorded and restarted after a
        backoff; after ``[live] rebuild_after`` deaths in a row (none of them up for a minute) the
        adapter is rebuilt from its config and restored from the log (``_rebuild``), so whatever
        state it had in memory goes with it and it resumes from what the run recorded."""
        stop = self.stop_event
        assert stop is not None
        r = self.settings.runner
        backoff = Backoff(float(r.restart_base_s), float(r.restart_cap_s), seed=self.backoff_seed)
        emit = self.emit_for(spec.name)
        in_a_row = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                await src.run(emit, stop)
                if stop.is_set():
                    return
                why = "returned before the run stopped"
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the type only: a message may carry a URL with a key
                why = f"raised {type(e).__name__}"
            if time.monotonic() - started >= RESTART_RESET_S:
                backoff.reset()
                in_a_row = 0
            in_a_row += 1
            delay = backoff.next()
            self.restarts[spec.name] = self.restarts.get(spec.name, 0) + 1
            rebuilt = ""
            if in_a_row >= int(r.rebuild_after):
                try:
                    src = self._rebuild(index, spec)
                    rebuilt = "; rebuilt from its config and restored from the log"
                except RunnerError:  # its config built once: go on with the old instance, and say so
                    rebuilt = "; could not be rebuilt from its config"
                in_a_row = 0
            self._feed(ev.SourceConnectionChanged(ts=self.clock(), source=RUNNER, name=spec.name, state="disconnected",
                                                  detail=f"source task {why}{rebuilt}; restarting in {delay:.2f} s",
                                                  attempt=backoff.attempt))
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass

    def _rebuild(self, index: int, spec: AdapterSpec) -> Any:
        """A fresh adapter for source ``index`` from its config entry, restored from the log so far."""
        s = self.settings
        ctx = AdapterContext(spec.name, self.clock, self.execute, self.engine.state, s.config, environ=self.environ)
        src = build_adapter(spec, SOURCE_KINDS, ctx, f"{s.file}: sources[{index}] ({spec.name})")
        self._tie_batches(src)
        self.store.flush()  # restore reads what is committed
        src.restore(self.store.events())
        self.sources[index] = (spec, src)
        return src

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        if self.stop_event is not None:
            self.stop_event.set()
        grace = float(self.settings.runner.shutdown_grace_s)
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=grace)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for spec, gw in self.gateways:  # work in flight gets the grace period to report
            close = getattr(gw, "aclose", None) or getattr(gw, "close", None)
            if callable(close):
                try:
                    await asyncio.wait_for(_maybe(close()), timeout=max(grace, 0.1))
                except Exception:  # noqa: BLE001 - shutting down: the log must still close
                    pass
        if self.ops is not None:
            await self.ops.stop()
        self.close()

    def _release_sock(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        """Flush and close the log: ``clean`` unless the store failed."""
        if self._closed:
            return
        self._closed = True
        self._release_sock()  # prepared, never run
        m = self.store.manifest
        if not m.started_ts:
            m.started_ts = self.loop.stats.first_ts
        m.ended_ts = max(m.ended_ts, self.loop.stats.last_ts)
        if self._failure is not None:
            try:
                self.store.close(ended=f"failed: {type(self._failure).__name__}")
            except EventLogError:
                pass
            raise RunnerError(f"{self.out}: the run stopped: {self._failure}")
        self.store.close(ended="clean")

    def _summary(self) -> Summary:
        if self.late_reports:
            self.notes.append(f"{self.late_reports} gateway report(s) came after the log closed and are not recorded")
        last = self.store.manifest.seal.get("last_seq", self.store.next_seq - 1)
        return Summary(str(self.out), self.resumed, last - self._first_seq + 1, self._first_seq, last,
                       self.store.manifest.ended, self.engine.risk.kill_switch, self.execute, self.notes)


def _health_of(adapter: Any) -> dict[str, Any]:
    """An adapter's own ``health()`` (``{}`` without one; the error's type when it raises)."""
    if not callable(getattr(adapter, "health", None)):
        return {}
    try:
        return dict(adapter.health())
    except Exception as e:  # noqa: BLE001 - a health probe never fails the run
        return {"error": type(e).__name__}


async def _maybe(result: Any) -> Any:
    """``result``, awaited when it is awaitable (a hook may be sync or async)."""
    return await result if inspect.isawaitable(result) else result


def _session_executed(sessions: Iterable[Mapping[str, Any]], seq: int) -> bool:
    """Whether the session that recorded ``seq`` ran with ``--execute``."""
    executed = False
    for s in sessions:
        if int(s.get("from_seq", 0)) <= seq:
            executed = bool(s.get("execute"))
    return executed


def run_prepared(runner: LiveRunner) -> Summary:
    """Run a prepared runner to its end on a new event loop (uvloop when installed)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(runner.run())
    return uvloop.run(runner.run())
