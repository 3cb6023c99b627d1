"""What the live runner and its adapters agree on (issue 13).

The runner (``live/runner.py``) owns the asyncio loop, the run's store and the engine; adapters own
one outside connection each. They meet here:

* ``LiveSource``: an adapter that produces input events. ``run(emit, stop)`` connects, subscribes
  and calls ``emit(event)`` for every input (or ``InputRejected`` for a frame it cannot read) until
  ``stop`` is set, reconnecting itself with backoff and jitter (``Backoff``) and saying so with
  ``SourceConnectionChanged`` events; it returns only when stopped. ``restore(events)`` is called
  once before ``run`` on a resumed run with the run's recorded events, so the adapter can pick up
  its checkpoint (an EVM adapter: the last fully processed block) and never emit twice what the log
  already holds. ``health()`` is a small JSON-able dict for ``/health``.
* ``emit`` is synchronous and runs on the loop's thread: it stamps nothing, records the event and
  lets the engine decide before it returns. Adapters stamp ``ts`` with the runner's ``Clock`` (event
  time is receive time in a live run; the venue's own time goes in ``venue_ts``/``block_ts``).
* ``after_batch`` (optional attribute, ``None`` until the runner sets it): a source that emits in
  batches (a WebSocket feed's pump turn, an EVM block) has it; the runner sets it to the run's group
  commit, and the source calls it when a batch ends. When the call returns, every event the source
  emitted before it is durable in the log: *acknowledged* (a crash after it loses none of them; an
  EVM source's checkpoint block is committed). It raises when the log cannot commit (the run is
  failing): the source then acknowledges nothing more.
* ``ack_after`` (optional attribute beside ``after_batch``, ``None`` until the runner sets it): the
  same commit, pipelined. The call returns at once with a ``concurrent.futures.Future`` that
  resolves once every event the source emitted before it is durable (the run's
  ``EventLog.commit_async``, committing on the log's own thread), or fails with the store's error;
  the source goes on reading and emitting meanwhile and acknowledges the batch only when it
  resolves. The WebSocket feeds have it (``live.binance_source``): an fsync no longer stops the
  loop from reading the socket. ``after_batch`` stays for the last drain at the end of a run.
* Gateways are the core's ``domain.ports.Gateway`` (``bind(report)``, ``submit(intent)``): a live
  gateway's ``submit`` returns at once and does its network work in a task on the running loop,
  calling ``report`` (on the loop's thread) with every execution event it learns.
"""
from __future__ import annotations

import asyncio
import random
import time
from typing import Any, Callable, Iterable, Protocol, runtime_checkable

from tapedeck.domain import events as ev

Emit = Callable[[ev.Event], None]


@runtime_checkable
class LiveSource(Protocol):
    name: str

    async def run(self, emit: Emit, stop: asyncio.Event) -> None: ...

    def restore(self, events: Iterable[ev.Event]) -> None: ...

    def health(self) -> dict[str, Any]: ...


class Clock:
    """Event time for a live run: wall-clock nanoseconds that never go backwards (a clock step back
    repeats the last value plus one), so the log's ``ts`` order holds whatever NTP does."""

    def __init__(self, now: Callable[[], int] = time.time_ns) -> None:
        self._now = now
        self._last = 0

    def __call__(self) -> int:
        t = self._now()
        self._last = t if t > self._last else self._last + 1
        return self._last


class Backoff:
    """Reconnect delays: exponential from ``base`` to ``cap`` seconds with full jitter, reset by a
    connection that stayed up. Seeded, so a test can predict it; the runner seeds it from the OS."""

    def __init__(self, base: float = 0.2, cap: float = 30.0, seed: int | None = None) -> None:
        self.base, self.cap = base, cap
        self.attempt = 0
        self._rng = random.Random(seed)

    def next(self) -> float:
        delay = self._rng.uniform(0, min(self.cap, self.base * 2 ** self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
