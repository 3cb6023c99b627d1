"""The ports: the small interfaces the core's runners need from the outside world.

They are Protocols (structural): an adapter fits by having the methods, not by inheriting. Nothing
here does I/O; the implementations live in ``adapters/``, ``sim/`` and (later) ``live/``, and
``tapedeck.runtime.bootstrap.build_run`` is the one place that picks and wires them.

* ``Source``: where input events come from. A pull source is any iterable of input events in event
  time order (a historical log's inputs, a tape); an asyncio source (the live issue) is an async
  iterable of the same. Push sources (the simulated world) call ``Loop.feed`` themselves.
* ``Gateway``: where intents go. One channel: ``submit(intent)`` returns nothing; everything the
  gateway learns about the intent (acknowledged, submitted, included, filled, failed, dropped) is
  an execution event passed to the ``report`` callable it was bound to, during ``submit`` or at any
  time later (a sim block, a venue's answer, an asyncio callback). The loop queues reports and
  feeds them in order, never re-entrantly, so a gateway may report inside ``submit``.
* ``EventStore``: the run's append-only, numbered log (``adapters.eventlog.EventLog``, on SQLite,
  today; the PostgreSQL store of issue 14 is the second).
"""
from __future__ import annotations

from typing import Any, AsyncIterator, Callable, Iterator, Protocol, runtime_checkable

import msgspec

from tapedeck.domain import events as ev

Report = Callable[[ev.Event], None]
"""What a gateway calls with each execution event it learns (the loop's ``feed``)."""


@runtime_checkable
class Source(Protocol):
    """A pull source: input events in event-time order (``ts`` never decreases)."""

    def __iter__(self) -> Iterator[ev.Event]: ...


@runtime_checkable
class AsyncSource(Protocol):
    """An asyncio source (live adapters): the same events, awaited."""

    def __aiter__(self) -> AsyncIterator[ev.Event]: ...


@runtime_checkable
class Gateway(Protocol):
    """Executor port: intents in, execution events out through one channel (``report``)."""

    def bind(self, report: Report) -> None:
        """Set the callable every execution event goes to (called once, before any ``submit``)."""
        ...

    def submit(self, intent: ev.OrderIntended) -> None:
        """Act on a numbered, recorded (flushed) intent; report what follows through ``report``."""
        ...


@runtime_checkable
class EventStore(Protocol):
    """What a runner needs of the run's log: number and append, commit, read back, close."""

    manifest: Any  # adapters.eventlog.Manifest: the run's identity, config, sources, how it ended

    def append(self, event: ev.Event) -> ev.Event:
        """Give ``event`` the next sequence number, queue it for the next commit, return it numbered."""
        ...

    def flush(self) -> None:
        """Commit everything appended so far; returns once it is durable."""
        ...

    def close(self, ended: str | None = None) -> None:
        """Commit, record how the run ended (``clean``, ``failed: ...``) in the manifest, release."""
        ...

    def write_manifest(self) -> None: ...

    @property
    def next_seq(self) -> int: ...

    def last_seq(self) -> int: ...

    def events(self, after: int = 0) -> Iterator[ev.Event]:
        """Every event after seq ``after``, decoded (older schemas upcast), in sequence order."""
        ...

    def segments(self, after: int = 0) -> Iterator[tuple[int, list[tuple[str, msgspec.Raw]], bytes]]:
        """The stored commits in order: (seq of the first event, [(topic, encoded event)], bytes)."""
        ...

    def typed_segments(self) -> Iterator[tuple[int, list[tuple[str, ev.Event]], bytes]]:
        """Like ``segments`` with the events decoded (what ``verify`` reads)."""
        ...
