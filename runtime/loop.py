"""The loop shared by every mode.

``Loop.feed`` is the loop of ARCHITECTURE.md, one event at a time: append the input (numbered,
before the engine sees it), let the engine decide, append the decisions, hand intents to the
gateway after a flush (so nothing leaves the process before it is durable), and feed what the
gateway reports (through the one ``report`` channel it is bound to) back in as execution events.
A gateway with an ``observe`` method (the paper gateway, whose GTC orders rest on recorded books)
is shown each input right after the engine folded it, before that input's intents are submitted
(an order already resting has time priority); what it reports is fed after the input's decisions.
A ``TimerRequested`` decision is handed to the run's timer scheduler, which produces the matching
``TimerFired`` input at its time. ``Loop.run`` drives a pull source (a historical log's inputs, a
tape) and merges the pending timers into it; push sources (the simulated world) call ``feed`` and
schedule timers on their own clock (``sim.recording``). Runs are built, and modes differ, only in
``runtime.bootstrap.build_run``; ``runtime.verify`` re-drives a recorded run and compares.
"""
from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from tapedeck.domain import events as ev
from tapedeck.domain.engine import Engine
from tapedeck.domain.ports import EventStore, Gateway

Timers = Callable[[ev.TimerRequested, int], None]
"""A runner's timer scheduler: called with each recorded (numbered) ``TimerRequested`` and the event
time of the event whose handling asked for it."""


@dataclass
class RunStats:
    inputs: int = 0
    executions: int = 0
    decisions: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    first_ts: int = 0
    last_ts: int = 0


def timer_fired(request: ev.TimerRequested, ts: int) -> ev.TimerFired:
    """The input a runner produces for ``request``, at event time ``ts`` (>= its ``at_ts``)."""
    return ev.TimerFired(ts=ts, source="timer", cause=request.seq, strategy=request.strategy, key=request.key,
                         requested=request.seq)


class TimerQueue:
    """Pending timers of a pull run, merged into the source's order by ``Loop.run``. A timer asked
    for at or before the time of the event that asked fires right after that event, stamped with
    its time; a later one fires before the first input with ``ts > at_ts`` (inputs at exactly
    ``at_ts`` come first), stamped ``at_ts``. Among those due together: by (``at_ts``, request seq)."""

    def __init__(self) -> None:
        self.heap: list[tuple[int, int, ev.TimerRequested]] = []  # later than the asking event
        self.due: list[tuple[int, int, ev.TimerRequested]] = []  # at or before it: right after it

    def schedule(self, request: ev.TimerRequested, now: int) -> None:
        heapq.heappush(self.due if request.at_ts <= now else self.heap, (request.at_ts, request.seq, request))

    def fire(self, feed: Callable[[ev.Event], None], before: int, now: int) -> None:
        """Feed every timer due before an input at ``before``, after an event at ``now`` (and the
        ones those timers ask for, as they become due)."""
        heap, due, pop = self.heap, self.due, heapq.heappop
        while True:
            ready = heap and heap[0][0] < before
            if due and not (ready and (heap[0][0], heap[0][1]) < (due[0][0], due[0][1])):
                at, _seq, request = pop(due)
            elif ready:
                at, _seq, request = pop(heap)
            else:
                return
            if at > now:
                now = at
            feed(timer_fired(request, now))


class Loop:
    """The loop of ARCHITECTURE.md over one engine, store and gateway (see the module docstring).

    ``feed`` takes an input or execution event (the gateway is bound to it: ``gateway.bind(feed)``).
    It is safe to call from what the loop calls out to (a gateway reporting inside ``submit``, the
    timer scheduler, ``progress``): the event is queued and fed once the current event's decisions
    are done, in order, never re-entrantly. ``timers`` schedules each recorded ``TimerRequested``
    (default: a ``TimerQueue``, merged into the source by ``run``; the sim passes its SimPy one)."""

    def __init__(self, engine: Engine, log: EventStore, gateway: Gateway | None = None,
                 progress: Callable[[RunStats], None] | None = None, progress_every: int = 100_000, *,
                 timers: Timers | TimerQueue | None = None):
        self.engine, self.log, self.gateway = engine, log, gateway
        self.stats = RunStats()
        self.progress, self.progress_every = progress, progress_every
        self._queue: deque[ev.Event] = deque()
        self._busy = False  # inside a call out of the loop: feed queues instead of re-entering
        self.timers = TimerQueue() if timers is None else timers
        self._schedule: Timers = self.timers.schedule if isinstance(self.timers, TimerQueue) else self.timers
        # a gateway with orders resting on books (paper) sees each input once the engine has folded it
        self._observe: Callable[[ev.Event], None] | None = getattr(gateway, "observe", None)
        if gateway is not None:
            gateway.bind(self.feed)

    def feed(self, incoming: ev.Event) -> None:
        """Take an input or execution event; safe from anywhere, the loop's own callees included."""
        if self._busy:
            self._queue.append(incoming)  # a report during submit: fed in turn, after this event's decisions
            return
        self._feed(incoming)

    def _feed(self, incoming: ev.Event) -> None:
        """The loop proper, for callers that are not inside it (``run``, ``feed``)."""
        stats, queue = self.stats, self._queue
        append, handle, decided = self.log.append, self.engine.handle, self.engine.decided
        observe, INPUT = self._observe, ev.INPUT
        queue.append(incoming)
        try:
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
                if observe is not None and e.KIND == INPUT:
                    self._busy = True  # as _call does, inlined (every input): what it reports is queued,
                    try:  # fed after this event's decisions
                        observe(e)
                    finally:
                        self._busy = False
                for d in decisions:
                    d = append(d)
                    decided(d)
                    stats.decisions += 1
                    kind = type(d)
                    name = kind.__name__
                    stats.by_type[name] = stats.by_type.get(name, 0) + 1
                    if kind is ev.OrderIntended:
                        if self.gateway is not None:
                            self.log.flush()  # durable before anything leaves the process
                            self._call(self.gateway.submit, d)
                    elif kind is ev.TimerRequested:
                        self._call(self._schedule, d, e.ts)
                if self.progress is not None and (stats.inputs + stats.executions) % self.progress_every == 0:
                    self._call(self.progress, stats)
        except BaseException:
            queue.clear()  # the run is failing: nothing half-fed is left to a later call
            raise

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call out of the loop (a gateway, a scheduler, progress); what it feeds back is queued."""
        self._busy = True
        try:
            fn(*args)
        finally:
            self._busy = False

    def run(self, source: Iterable[ev.Event]) -> RunStats:
        """Feed a pull source, with this loop's pending timers merged in (see ``TimerQueue``);
        timers not due when the source ends do not fire. Commits at the end."""
        timers = self.timers
        if not isinstance(timers, TimerQueue):
            raise TypeError("Loop.run merges timers from a TimerQueue; a push runner schedules its own")
        feed, heap, due, fire = self._feed, timers.heap, timers.due, timers.fire
        prev: Any = None  # the last input fed
        for incoming in source:
            if heap or due:
                fire(feed, incoming.ts, 0 if prev is None else prev.ts)
            feed(incoming)
            prev = incoming
        if (heap or due) and prev is not None:
            fire(feed, prev.ts + 1, prev.ts)  # those due by the last input's time
        self.log.flush()
        return self.stats


def drive(
    source: Iterable[ev.Event],
    engine: Engine,
    log: EventStore,
    gateway: Gateway | None = None,
    progress: Callable[[RunStats], None] | None = None,
    progress_every: int = 100_000,
) -> RunStats:
    """Run the loop over a pull source (a recorded log's inputs, a tape) and commit at the end."""
    return Loop(engine, log, gateway, progress, progress_every).run(source)


def replay_log(source: Any, config: dict[str, Any], engine: Engine, out: str, *, overwrite: bool = False,
               progress: Callable[[RunStats], None] | None = None) -> RunStats:
    """Drive ``engine`` over the input events of ``source`` (a historical log) into a new run at
    ``out``, with a paper gateway filling its intents (``build_run("replay", ...)``)."""
    from tapedeck.runtime.bootstrap import build_run

    return build_run("replay", config, out=out, source=source, engine=engine, overwrite=overwrite,
                     progress=progress).run()
