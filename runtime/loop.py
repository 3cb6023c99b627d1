"""The loop shared by every mode, and the replay verifier.

``drive`` is the loop of ARCHITECTURE.md: append an input (numbered, before the engine sees it),
let the engine decide, append the decisions, hand intents to the gateway after a flush (so nothing
leaves the process before it is durable), and feed what the gateway reports back in as execution
events. ``verify`` re-drives a fresh engine from a recorded run's inputs and executions and
compares every decision byte for byte, stopping at the first divergence (``runtime.verify``).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

from tapedeck.adapters.eventlog import EventLog, Manifest, config_hash
from tapedeck.adapters.paper_gateway import PaperGateway
from tapedeck.runtime.strategy_loader import code_identity
from tapedeck.domain import events as ev
from tapedeck.domain.engine import Engine


class Gateway(Protocol):
    """Executor port: takes a numbered intent, returns the execution events it produced."""

    def submit(self, intent: ev.OrderIntended) -> list[ev.Event]: ...


@dataclass
class RunStats:
    inputs: int = 0
    executions: int = 0
    decisions: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    first_ts: int = 0
    last_ts: int = 0


class Loop:
    """The loop of ARCHITECTURE.md, one event at a time: append the input (numbered before the
    engine sees it), let the engine decide, append the decisions, hand intents to the gateway
    after a flush (nothing leaves the process before it is durable) and feed what the gateway
    reports back in as execution events. Push sources (the simulated world) call ``feed``."""

    def __init__(self, engine: Engine, log: EventLog, gateway: Gateway | None = None,
                 progress: Callable[[RunStats], None] | None = None, progress_every: int = 100_000):
        self.engine, self.log, self.gateway = engine, log, gateway
        self.stats = RunStats()
        self.progress, self.progress_every = progress, progress_every
        self._queue: deque[ev.Event] = deque()
        bind = getattr(gateway, "bind", None)
        if bind is not None:  # one-channel gateways report through the queue (fed FIFO, never re-entrantly)
            bind(self._queue.append)

    def feed(self, incoming: ev.Event) -> None:
        stats, queue = self.stats, self._queue
        append, handle, decided = self.log.append, self.engine.handle, self.engine.decided
        queue.append(incoming)
        while queue:
            e = append(queue.popleft())
            if e.KIND == ev.EXECUTION:
                stats.executions += 1
            else:
                stats.inputs += 1
            if not stats.first_ts:
                stats.first_ts = e.ts
            stats.last_ts = e.ts
            decisions = handle(e)
            for d in decisions:
                d = append(d)
                decided(d)
                stats.decisions += 1
                name = type(d).__name__
                stats.by_type[name] = stats.by_type.get(name, 0) + 1
                if self.gateway is not None and type(d) is ev.OrderIntended:
                    self.log.flush()  # durable before anything leaves the process
                    reports = self.gateway.submit(d)  # type: ignore[arg-type]
                    if reports:
                        queue.extend(reports)
            if self.progress is not None and (stats.inputs + stats.executions) % self.progress_every == 0:
                self.progress(stats)


def drive(
    source: Iterable[ev.Event],
    engine: Engine,
    log: EventLog,
    gateway: Gateway | None = None,
    progress: Callable[[RunStats], None] | None = None,
    progress_every: int = 100_000,
) -> RunStats:
    """Run the loop over a pull source (a recorded log, a tape) and commit at the end."""
    loop = Loop(engine, log, gateway, progress, progress_every)
    feed = loop.feed
    for incoming in source:
        feed(incoming)
    log.flush()
    return loop.stats


def replay_log(source: EventLog, config: dict[str, Any], engine: Engine, out: str, *, overwrite: bool = False,
               progress: Callable[[RunStats], None] | None = None) -> RunStats:
    """Drive ``engine`` over the input events of ``source`` (a historical log) into a new run at ``out``,
    with a paper gateway filling its intents from the engine's state (``config``'s ``[paper]`` table)."""
    manifest = Manifest(run_id="", mode="replay", config=config, config_hash=config_hash(config),
                        sources=list(source.manifest.sources), parent=str(source.path), code=code_identity(engine))
    paper = PaperGateway.from_config(engine.state, config)  # a bad [paper] table fails before the run exists
    run = EventLog.create(out, manifest, overwrite=overwrite)
    inputs = (e for e in source.events() if e.KIND == ev.INPUT)
    try:
        stats = drive(inputs, engine, run, paper, progress=progress)
    except BaseException as e:
        run.close(ended=f"failed: {type(e).__name__}")
        raise
    run.manifest.started_ts, run.manifest.ended_ts = stats.first_ts, stats.last_ts
    run.close(ended="clean")
    return stats
