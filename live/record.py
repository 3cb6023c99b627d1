"""``tapedeck record CONFIG --out LOG.db``: the live adapters, no strategies, into a run's log.

Why: a live tape is the input of every later replay (``tapedeck replay LOG.db --out RUN.db`` drives
strategies over it; ``--verify`` checks it). The same adapters as ``tapedeck live``, the same
``EventLog``; no engine decides anything, so the log holds inputs only (every frame an event or a
recorded rejection).

Config: read through ``live.config.load_live_config``, the live runner's loader: one TOML file, then
``TAPEDECK_<TABLE>__<KEY>`` environment variables, then ``--set table.key=value`` (the same
validation, every problem one line naming the file and the key, secrets refused from the file).
Its ``[[sources]]`` entries are built exactly as the runner builds them (``live.runner.SOURCE_KINDS``
by name, ``evm``, ``binance``, ``hyperliquid``, ``solana``, or an import path); ``[store]
max_delay_ms`` bounds the commit timer (5 ms unless told), and every source's batches are tied to
the log's commit (``after_batch``, ``live.base``: what a source acknowledged is durable). Strategies
and gateways in the file are ignored (nothing decides). Secrets never reach the manifest: URLs are
stored as ``scheme://host:port`` (a path or query, where providers put API keys, is replaced by
``/...``).

An ``--out`` that exists is resumed: the log is opened as its writer (a crashed one is marked
"crashed-recovered"), each source's ``restore`` gets the recorded events and continues from its
checkpoint, so the log has no gap and no duplicate. SIGINT/SIGTERM stop the sources, flush and
close the log clean.
"""
from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from tapedeck.adapters.config_files import DEFAULT_CONFIG, read_toml
from tapedeck.adapters.eventlog import EventLog, Manifest
from tapedeck.domain import events as ev
from tapedeck.live.base import Clock
from tapedeck.live.config import LiveConfigError, LiveSettings, load_live_config
from tapedeck.live.evm_source import redact_url

RECORD_MODE = "record"


class RecordConfigError(ValueError):
    """A record config that cannot be used; the message names the file and the key."""


def load_record_config(path: str | Path, *, environ: Mapping[str, str] | None = None,
                       sets: Sequence[str] = ()) -> dict[str, Any]:
    """The config as ``live.config`` reads it (file, environment, ``--set``; validated), as the dict
    the recorder uses: ``sources`` (each entry's table, ``kind`` and ``name`` included), ``store``,
    ``risk`` when given, and ``settings`` (the ``LiveSettings``). One clear error otherwise."""
    try:
        settings = load_live_config(str(path), environ=environ, sets=sets,
                                    defaults={"risk": read_toml(DEFAULT_CONFIG, "config").get("risk", {})})
    except LiveConfigError as e:
        raise RecordConfigError(str(e)) from None
    if not settings.sources:
        raise RecordConfigError(f"{path}: needs at least one [[sources]] table")
    cfg: dict[str, Any] = {"sources": [spec.table() for spec in settings.sources],
                           "store": dict(settings.config["store"]), "settings": settings}
    cfg["risk"] = settings.config["risk"]
    return cfg


def build_sources(cfg: Mapping[str, Any], where: str, *, clock: Callable[[], int] | None = None,
                  environ: Mapping[str, str] | None = None) -> list[Any]:
    """One adapter per ``[[sources]]`` entry, built as ``tapedeck live`` builds it."""
    from tapedeck.live.runner import SOURCE_KINDS, AdapterContext, RunnerError, build_adapter

    settings: LiveSettings = cfg["settings"]
    clock = clock or Clock()
    out = []
    for i, spec in enumerate(settings.sources):
        ctx = AdapterContext(spec.name, clock, False, None, settings.config,  # type: ignore[arg-type]
                             environ={} if environ is None else environ)
        try:
            src = build_adapter(spec, SOURCE_KINDS, ctx, f"{where}: sources[{i}] ({spec.name})")
        except RunnerError as e:
            raise RecordConfigError(str(e)) from None
        out.append(src)
    return out


def manifest_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What the manifest keeps: the sources with URLs redacted, no strategies, and a risk table (the
    file's, else the default config's) so ``replay --verify`` can build its engine."""
    risk = cfg.get("risk")
    if not isinstance(risk, dict):
        risk = read_toml(DEFAULT_CONFIG, "config").get("risk", {})
    sources = [{k: (redact_url(v) if (k.endswith("_url") or k == "url") and isinstance(v, str) else v)
                for k, v in s.items()} for s in cfg["sources"]]
    out: dict[str, Any] = {"risk": risk, "strategies": [], "sources": sources}
    if isinstance(cfg.get("store"), dict):
        out["store"] = cfg["store"]
    return out


def open_tape(out: str | Path, cfg: Mapping[str, Any], sources: Iterable[Any]) -> tuple[EventLog, bool]:
    """The log to record into: created, or (if it exists) resumed as its writer. (log, resumed)."""
    out = Path(out)
    delay = (cfg.get("store") or {}).get("max_delay_ms", 5)
    if out.exists():
        log = EventLog.open(out, resume=True, max_delay_ms=delay)
        if log.manifest.mode != RECORD_MODE:
            log.close()
            raise RecordConfigError(f"{out}: is a {log.manifest.mode} run, not a recording: choose another --out")
        return log, True
    manifest = Manifest(run_id="", mode=RECORD_MODE, config=manifest_config(cfg),
                        sources=[s.name for s in sources])
    return EventLog.create(out, manifest, max_delay_ms=delay), False


async def record(sources: list[Any], log: EventLog, stop: asyncio.Event,
                 on_event: Callable[[ev.Event], None] | None = None) -> dict[str, int]:
    """Run every source until ``stop``; each event is appended to ``log`` as it comes. Counts by type."""
    counts: dict[str, int] = {}

    def emit(e: ev.Event) -> None:
        numbered = log.append(e)
        name = type(e).__name__
        counts[name] = counts.get(name, 0) + 1
        if on_event is not None:
            on_event(numbered)

    for s in sources:  # a source's batches end in a commit: what it acknowledged is durable
        if hasattr(s, "after_batch"):
            s.after_batch = log.flush
    tasks = [asyncio.create_task(s.run(emit, stop), name=f"source:{s.name}") for s in sources]
    try:
        done, _ = await asyncio.wait([asyncio.ensure_future(stop.wait()), *tasks],
                                     return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            if t in done and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        stop.set()
        for t in tasks:
            if not t.done():
                t.cancel()
        log.flush()
    return counts


def run_record(config_path: str | Path, out: str | Path, *, stop: asyncio.Event | None = None,
               clock: Callable[[], int] | None = None,
               on_started: Callable[[list[Any], EventLog], None] | None = None,
               environ: Mapping[str, str] | None = None, sets: Sequence[str] = ()) -> dict[str, int]:
    """``tapedeck record``: load, open (or resume), restore the sources, record until a signal (or ``stop``)."""
    import os

    env = os.environ if environ is None else environ
    cfg = load_record_config(config_path, environ=env, sets=sets)
    sources = build_sources(cfg, str(config_path), clock=clock or Clock(), environ=env)
    log, resumed = open_tape(out, cfg, sources)
    ended = "clean"
    try:
        if resumed:
            recorded = list(log.events())
            for s in sources:
                s.restore(recorded)

        async def main() -> dict[str, int]:
            halt = stop or asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, halt.set)
                except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                    pass
            if on_started is not None:
                on_started(sources, log)
            return await record(sources, log, halt)

        return asyncio.run(main())
    except BaseException as e:
        ended = f"failed: {type(e).__name__}"
        raise
    finally:
        log.close(ended=ended)
