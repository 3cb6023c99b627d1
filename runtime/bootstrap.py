"""One place builds a run: ``build_run(mode, config, ...)`` wires source, engine, store, gateway,
timers and the loop, and the modes differ only here.

=========  ======================================  ==================  =======================
mode       source                                  gateway             timers
=========  ======================================  ==================  =======================
replay     a historical log's inputs (``source``)  ``PaperGateway``    merged into its order
sim        the scenario's world (``scenario``)     ``SimGateway``      SimPy, at ``at_ts``
paper      any pull ``Source`` (``source``)        ``PaperGateway``    merged into its order
live       ``[[sources]]`` adapters (``live``)    per venue, else      asyncio, at ``at_ts``
                                                   ``PaperGateway``
=========  ======================================  ==================  =======================

The engine comes from ``tapedeck.runtime.strategy_loader.build_engine(config)`` unless one is given (a
test's strategy). The store is created from ``out``: a path, or a URL whose scheme names the store
(``sqlite:///path``, or ``postgresql://[user@]host[:port]/DB?run=NAME``: the run is schema NAME of
database DB, ``adapters.pg_eventlog``). ``Run.run()`` drives the run to its
end, seals the manifest (event-time span, ``ended``: ``clean`` or ``failed: <why>``) and closes
the store; a sim run's ``world.summary`` then says what the world did.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from tapedeck.adapters.eventlog import EventLog, Manifest, config_hash
from tapedeck.domain import events as ev
from tapedeck.domain.engine import Engine
from tapedeck.domain.ports import EventStore, Gateway
from tapedeck.runtime.loop import Loop, RunStats

MODES = ("replay", "sim", "paper", "live")
LIVE_ISSUE = "issue 13 (live runner: real adapters, paper by default)"
STORE_ISSUE = "issue 14 (a shared log on PostgreSQL)"


class BuildError(ValueError):
    """A run that cannot be built as asked; the message says what to change."""


class NotBuiltYet(BuildError, NotImplementedError):
    """A mode or store the design has a place for but that is not written yet (names its issue)."""


@dataclass
class Run:
    """A built run. ``run()`` once: it drives the source through the loop, then seals and closes."""

    mode: str
    config: dict[str, Any]
    engine: Engine
    store: EventStore
    loop: Loop
    gateway: Gateway | None
    execute: Callable[[], tuple[int, int]]  # drives the source; returns the run's (first, last) event time
    world: Any = None  # sim: the ``sim.recording.SimWorld`` (its ``summary``)

    def run(self) -> RunStats:
        try:
            started, ended = self.execute()
        except BaseException as e:
            self.store.close(ended=f"failed: {type(e).__name__}")
            raise
        self.store.manifest.started_ts, self.store.manifest.ended_ts = started, ended
        self.store.close(ended="clean")
        return self.loop.stats


def store_path(where: str | Path) -> Path:
    """The file behind ``where`` (a path or ``sqlite:`` URL); another scheme is not built yet."""
    if isinstance(where, str):
        parts = urlsplit(where)
        if len(parts.scheme) > 1:  # one letter is a Windows drive, not a scheme
            if is_pg_url(where):
                raise BuildError(f"{redact(where)}: a PostgreSQL run, not a file")
            if parts.scheme != "sqlite":
                raise NotBuiltYet(f"{where}: no {parts.scheme!r} store; the stores are sqlite "
                                  f"(a path or sqlite:///path) and postgresql://host/DB?run=NAME ({STORE_ISSUE})")
            if not parts.path:
                raise BuildError(f"{where}: a sqlite URL names a file (sqlite:///path/run.db)")
            return Path(parts.netloc + parts.path)
    return Path(where)


def create_store(where: str | Path, manifest: Manifest, *, overwrite: bool = False,
                 max_delay_ms: int | None = None) -> EventStore:
    """A new run's store at ``where`` (the seam a ``--store``/config choice plugs into). It commits
    at least every ``max_delay_ms`` (the config's ``[store] max_delay_ms``; default the store's own,
    200 ms), so a killed run loses at most that window."""
    if is_pg_url(where):
        from tapedeck.adapters.pg_eventlog import PgEventLog

        delay = {} if max_delay_ms is None else {"max_delay_ms": max_delay_ms}
        return PgEventLog.create(str(where), manifest, overwrite=overwrite, **delay)
    if max_delay_ms is None:
        return EventLog.create(store_path(where), manifest, overwrite=overwrite)
    return EventLog.create(store_path(where), manifest, overwrite=overwrite, max_delay_ms=max_delay_ms)


def store_delay(config: dict[str, Any]) -> int | None:
    """``[store] max_delay_ms`` of a config (checked by ``runtime.config_model``), or None."""
    value = config.get("store", {}).get("max_delay_ms") if isinstance(config.get("store"), dict) else None
    return int(value) if value is not None else None


def open_store(where: str | Path, *, resume: bool = False) -> EventStore:
    """An existing run's store, to read (``resume``: to go on writing it, as ``EventLog.open``)."""
    if is_pg_url(where):
        from tapedeck.adapters.pg_eventlog import PgEventLog

        return PgEventLog.open(str(where), resume=resume)
    return EventLog.open(store_path(where), resume=resume)


def is_pg_url(where: Any) -> bool:
    """Whether ``where`` names a PostgreSQL run (``postgresql://`` or ``postgres://``)."""
    return isinstance(where, str) and urlsplit(where).scheme in ("postgresql", "postgres")


def redact(where: str | Path) -> str:
    """``where`` as messages show it: a URL without its password."""
    if not is_pg_url(str(where)):
        return str(where)
    from tapedeck.adapters.pg_eventlog import _redact

    return _redact(str(where))


def build_run(mode: str, config: dict[str, Any], *, out: str | Path, engine: Engine | None = None,
              source: Any = None, sources: list[str] | None = None, scenario: Any = None,
              overwrite: bool = False, progress: Callable[[RunStats], None] | None = None,
              chain: str = "revm", scenario_file: str = "", flush_blocks: int | None = None, live: Any = None,
              execute_orders: bool = False, say: Callable[[str], None] | None = None) -> Run:
    """Build a ``mode`` run recording into ``out`` with the engine of ``config`` (or ``engine``).

    * ``replay``: ``source`` is a historical log (an ``EventStore``); its inputs (not its recorded
      ``TimerFired``: the new run fires its own) drive the run, a paper gateway fills the intents.
      ``out`` may not be the source itself.
    * ``sim``: ``scenario`` (a ``sim.scenario.Scenario``) on the ``chain`` backend (default revm, as the
      CLI's ``--chain``); the log is committed every ``flush_blocks`` sim blocks (None: the sim's
      default, ``sim.recording.FLUSH_BLOCKS``; 0: only by the store's own timer and batching), not
      before each intent (nothing of a sim leaves the process: ``sim.recording.GroupCommits``).
    * ``paper``: ``source`` is any pull ``Source`` of input events in time order, named in the
      manifest by ``sources``; a paper gateway fills the intents. Live feeds come with the live runner.
    * ``live``: ``live`` is the run's ``live.config.LiveSettings`` (``config`` must be its decision
      config); ``live.runner.LiveRunner`` builds adapters, gateways and the store (resuming the run
      at ``out`` when it exists), ``execute_orders`` is ``--execute``; ``Run.run()`` runs it on
      asyncio until SIGINT/SIGTERM and returns with the log closed clean (``Run.world`` is the runner).
    ``progress`` is called with the running counts (replay/paper: every 100,000 events; sim: every
    2% of simulated time).
    """
    if mode not in MODES:
        raise BuildError(f"unknown run mode {mode!r} (known: {', '.join(MODES)})")
    if mode == "live":
        return _live(config, out, engine, live, execute_orders, say)
    from tapedeck.runtime.strategy_loader import build_engine, code_identity, with_pool_identity

    engine = engine or build_engine(config)  # before the store: a bad config leaves no run behind
    code = code_identity(engine)
    if mode == "sim":
        return _sim(config, out, engine, scenario, overwrite, progress, chain, scenario_file, flush_blocks, code)
    if source is None:
        what = "a historical log to replay" if mode == "replay" else \
            f"a source of input events (live feeds come with {LIVE_ISSUE})"
        raise BuildError(f"a {mode} run needs {what}")
    if mode == "replay":
        _not_onto_itself(source, out)
        manifest = Manifest(run_id="", mode="replay", config=config, config_hash=config_hash(config),
                            sources=list(source.manifest.sources), parent=str(getattr(source, "path", "")),
                            code=code)
        inputs = (e for e in source.events() if e.KIND == ev.INPUT and type(e) is not ev.TimerFired)
    else:
        manifest = Manifest(run_id="", mode="paper", config=config, config_hash=config_hash(config),
                            sources=list(sources or [type(source).__name__]), code=code)
        inputs = source
    from tapedeck.adapters.paper_gateway import PaperGateway

    # a bad [paper] table fails before the run exists; pools take the registry's fees like the strategies
    paper = PaperGateway.from_config(engine.state, with_pool_identity(config))
    store = create_store(out, manifest, overwrite=overwrite, max_delay_ms=store_delay(config))
    return _pull(mode, config, engine, store, inputs, progress, paper)


def _pull(mode: str, config: dict[str, Any], engine: Engine, store: EventStore, inputs: Any,
          progress: Callable[[RunStats], None] | None, gateway: Any) -> Run:
    """A run over a pull source: paper fills, timers merged into the source's order by ``Loop.run``."""
    loop = Loop(engine, store, gateway, progress)

    def execute() -> tuple[int, int]:
        stats = loop.run(inputs)
        return stats.first_ts, stats.last_ts

    return Run(mode, config, engine, store, loop, gateway, execute)


def _sim(config: dict[str, Any], out: str | Path, engine: Engine, scenario: Any, overwrite: bool,
         progress: Callable[[RunStats], None] | None, chain: str, scenario_file: str, flush_blocks: int | None,
         code: dict[str, Any]) -> Run:
    """The simulated world: its messages are the inputs, its venues and chain the gateway's executors."""
    from tapedeck.sim.gateway import SimGateway
    from tapedeck.sim.recording import SimWorld

    if scenario is None:
        raise BuildError("a sim run needs a scenario")
    world = SimWorld(scenario, chain=chain, progress=progress, flush_blocks=flush_blocks)
    manifest = Manifest(run_id="", mode="sim", config=config, config_hash=config_hash(config), seed=scenario.seed,
                        sources=[f"scenario:{scenario.name}"],
                        notes={"scenario_file": scenario_file, "duration_s": scenario.duration, "chain": chain},
                        code=code)
    store = create_store(out, manifest, overwrite=overwrite, max_delay_ms=store_delay(config))
    gateway = SimGateway()
    loop = Loop(engine, world.grouped(store), gateway, timers=world.schedule)  # commits at its blocks' ends
    return Run("sim", config, engine, store, loop, gateway, lambda: world.run(loop, gateway, store), world)


def _live(config: dict[str, Any], out: str | Path, engine: Engine | None, live: Any, execute_orders: bool,
          say: Callable[[str], None] | None) -> Run:
    """The live runner (``live.runner``): asyncio sources and gateways around the same ``Loop``."""
    if live is None:
        raise BuildError("a live run needs its live settings (tapedeck.live.config.load_live_config)")
    if config is not live.config:
        raise BuildError("a live run's config is its settings' decision config (settings.config)")
    from tapedeck.live.runner import LiveRunner, RunnerError, run_prepared

    try:
        runner = LiveRunner(live, execute=execute_orders, out=str(out) if out else None, engine=engine,
                            say=say).prepare()
    except RunnerError as e:
        raise BuildError(str(e)) from None

    def execute() -> tuple[int, int]:
        run_prepared(runner)
        return runner.loop.stats.first_ts, runner.loop.stats.last_ts

    return Run("live", config, runner.engine, runner.store, runner.loop, runner.router, execute, runner)


def _not_onto_itself(source: Any, out: str | Path) -> None:
    """A replay never writes over the log it reads (``--force`` would delete it first)."""
    src = getattr(source, "path", None)
    if is_pg_url(out) or is_pg_url(str(src)):
        from tapedeck.adapters.pg_eventlog import PgURL

        if is_pg_url(out) and is_pg_url(str(src)) and PgURL.parse(str(out)).key == PgURL.parse(str(src)).key:
            raise BuildError(f"{redact(out)}: is the log being replayed; record the replay into another run")
        return
    dst = store_path(out)
    if src is None:
        return
    same = Path(src).resolve() == dst.resolve() or (dst.exists() and Path(src).exists() and os.path.samefile(src, dst))
    if same:
        raise BuildError(f"{out}: is the log being replayed; record the replay into another file")
