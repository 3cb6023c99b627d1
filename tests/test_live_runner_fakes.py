"""Small in-memory fakes the live runner's tests plug in by import path (``kind =
"tests.test_live_runner_fakes:FakeQuotes"``), exactly as the real adapters plug in by name: a
quote source, a source that dies, a gateway that reports asynchronously, a strategy that buys on
every n-th quote and asks for timers. No tests here (pytest collects none)."""
from __future__ import annotations

import asyncio
import os
from typing import Any, Iterable

from tapedeck.domain import events as ev
from tapedeck.domain.risk import Intent
from tapedeck.live.base import Clock

VENUE, INSTRUMENT = "fakex", "ETH-USD"


class FakeQuotes:
    """Emits ``QuoteUpdated`` on ``venue`` every ``interval_s`` (``count`` of them; 0: until stopped),
    the bid walking up by one tick from ``start``; says ``connected`` first. ``restore`` picks the
    walk up after the last quote the log holds (no quote is emitted twice across a resume)."""

    def __init__(self, name: str, clock: Clock, venue: str = VENUE, interval_s: float = 0.002, count: int = 0,
                 start: int = 2_000_000_000) -> None:
        self.name, self.clock, self.venue = name, clock, venue
        self.interval_s, self.count, self.start = float(interval_s), int(count), int(start)
        self.next_i = 0
        self.restored_from: int | None = None
        self.connects = 0

    def restore(self, events: Iterable[ev.Event]) -> None:
        n = 0
        for e in events:
            if type(e) is ev.QuoteUpdated and e.venue == self.venue:
                n += 1
        self.next_i = self.restored_from = n

    def health(self) -> dict[str, Any]:
        return {"emitted": self.next_i, "restored_from": self.restored_from, "url": "ws://127.0.0.1/fake"}

    def quote(self, i: int) -> ev.QuoteUpdated:
        bid = self.start + i * 10_000
        return ev.QuoteUpdated(ts=self.clock(), source=f"fake:{self.name}", venue=self.venue, instrument=INSTRUMENT,
                               bid=bid, bid_size=10**8, ask=bid + 1_000_000, ask_size=10**8, price_decimals=6,
                               size_decimals=8)

    async def run(self, emit: Any, stop: asyncio.Event) -> None:
        emit(ev.SourceConnectionChanged(ts=self.clock(), source=f"fake:{self.name}", name=self.name,
                                        state="connected", attempt=self.connects))
        self.connects += 1
        while not stop.is_set() and (not self.count or self.next_i < self.count):
            emit(self.quote(self.next_i))
            self.next_i += 1
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
            except asyncio.TimeoutError:
                pass
        await stop.wait()


class AckingQuotes(FakeQuotes):
    """Emits its quotes in batches of ``batch``; at the end of each batch it calls ``after_batch`` (the
    runner sets it: ``live.base``) and then *acknowledges* the batch to the outside, as a source that
    tells its upstream "received" would: it appends the batch's last quote index to ``ack_file``
    (fsync'd), and calls ``on_ack(i)`` when a test set one. Without ``after_batch`` it acknowledges
    all the same (a naive source), so a runner that does not tie the batches to its commit loses
    acknowledged quotes to a ``kill -9``."""

    after_batch: Any = None
    on_ack: Any = None

    def __init__(self, name: str, clock: Clock, batch: int = 8, ack_file: str = "", **kw: Any) -> None:
        super().__init__(name, clock, **kw)
        self.batch, self.ack_file = int(batch), ack_file
        self.acked = -1

    def health(self) -> dict[str, Any]:
        return {**super().health(), "acked": self.acked}

    async def run(self, emit: Any, stop: asyncio.Event) -> None:
        emit(ev.SourceConnectionChanged(ts=self.clock(), source=f"fake:{self.name}", name=self.name,
                                        state="connected", attempt=self.connects))
        self.connects += 1
        while not stop.is_set() and (not self.count or self.next_i < self.count):
            for _ in range(self.batch):
                emit(self.quote(self.next_i))
                self.next_i += 1
            if self.after_batch is not None:
                self.after_batch()
            self.acked = self.next_i - 1
            if self.ack_file:
                with open(self.ack_file, "a") as f:
                    f.write(f"{self.acked}\n")
                    f.flush()
                    os.fsync(f.fileno())
            if self.on_ack is not None:
                self.on_ack(self.acked)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
            except asyncio.TimeoutError:
                pass
        await stop.wait()


def quotes_factory(spec: Any, ctx: Any) -> FakeQuotes:
    """A ``(spec, ctx)`` factory, the way the runner builds the real adapters."""
    q = FakeQuotes(spec.name, ctx.clock, **spec.params)
    q.where = ctx.where  # type: ignore[attr-defined]
    return q


class DyingSource(FakeQuotes):
    """Like ``FakeQuotes`` but its task raises after ``die_after`` quotes, ``deaths`` times in all
    (counted per ``run_id`` across instances, so a rebuilt adapter goes on where the old one was;
    the message holds a planted "secret" URL, which the runner must not record)."""

    deaths_left: dict[str, int] = {}
    built = 0

    def __init__(self, name: str, clock: Clock, die_after: int = 3, deaths: int = 2, run_id: str = "",
                 **kw: Any) -> None:
        super().__init__(name, clock, **kw)
        self.die_after, self.key = int(die_after), f"{run_id}:{name}"
        DyingSource.deaths_left.setdefault(self.key, int(deaths))
        DyingSource.built += 1

    async def run(self, emit: Any, stop: asyncio.Event) -> None:
        if DyingSource.deaths_left[self.key] <= 0:
            return await super().run(emit, stop)
        for _ in range(self.die_after):
            emit(self.quote(self.next_i))
            self.next_i += 1
            await asyncio.sleep(0)
        DyingSource.deaths_left[self.key] -= 1
        raise ConnectionError("wss://user:SECRET-IN-URL@node.example/ws refused")


class FakeGateway:
    """Fills every intent at its notional, reporting from a task on the running loop (as a live
    gateway does: ``submit`` returns at once). Paper unless built with ``execute=True``: its fills
    are stamped ``source="paper:fake"`` then. ``reconcile`` reports a recorded outcome for intents
    a crash left open (the venue "says" they filled); ``hold=True`` never reports (intents stay open)."""

    def __init__(self, name: str, clock: Clock, execute: bool = False, key: Any = None, hold: bool = False,
                 can_reconcile: bool = True) -> None:
        self.name, self.clock, self.execute, self.key, self.hold = name, clock, execute, key, bool(hold)
        self.report: Any = None
        self.submitted: list[ev.OrderIntended] = []
        self.reconciled: list[int] = []
        self.closed = False
        if not can_reconcile:
            self.reconcile = None  # type: ignore[assignment]

    @property
    def source(self) -> str:
        return "fake-venue" if self.execute else "paper:fake"

    def bind(self, report: Any) -> None:
        self.report = report

    def submit(self, intent: ev.OrderIntended) -> None:
        self.submitted.append(intent)
        if not self.hold:
            asyncio.get_running_loop().create_task(self._fill(intent))

    async def _fill(self, intent: ev.OrderIntended) -> None:
        await asyncio.sleep(0)
        self.report(ev.OrderAcknowledged(ts=self.clock(), source=self.source, cause=intent.seq, intent=intent.seq,
                                         venue=intent.venue, order_id=f"fake-{intent.seq}"))
        await asyncio.sleep(0)
        self.report(ev.OrderFilled(ts=self.clock(), source=self.source, cause=intent.seq, intent=intent.seq,
                                   venue=intent.venue, amount=intent.amount, notional=intent.notional, fee=0))

    def reconcile(self, intents: list[ev.OrderIntended]) -> None:
        for i in intents:
            self.reconciled.append(i.seq)
            self.report(ev.OrderFailed(ts=self.clock(), source=self.source, cause=i.seq, intent=i.seq, venue=i.venue,
                                       reason="reconciled: the venue has no such order"))

    async def aclose(self) -> None:
        self.closed = True


class RestoringGateway(FakeGateway):
    """A gateway that settles a crash from the log itself (``restore``, then ``start``: as the EVM
    gateway's nonce manager does), with no ``reconcile``; ``close()`` is its async shutdown."""

    def __init__(self, name: str, clock: Clock, execute: bool = False, key: Any = None, hold: bool = False) -> None:
        super().__init__(name, clock, execute, key, hold, can_reconcile=False)
        self.restored: list[int] = []
        self.started = False

    def restore(self, events: Iterable[ev.Event]) -> None:
        done = set()
        intents = []
        for e in events:
            if type(e) is ev.OrderIntended:
                intents.append(e)
            elif type(e) in (ev.OrderFilled, ev.OrderFailed):
                done.add(e.intent)
        self.restored = [i.seq for i in intents if i.seq not in done]
        self.to_settle = [i for i in intents if i.seq not in done]

    async def start(self) -> None:
        self.started = True
        for i in getattr(self, "to_settle", []):
            self.report(ev.OrderFailed(ts=self.clock(), source=self.source, cause=i.seq, intent=i.seq, venue=i.venue,
                                       reason="restored: dropped by the venue"))

    async def close(self) -> None:  # type: ignore[override]
        self.closed = True


class Buyer:
    """Buys ``amount`` on every ``every``-th quote (client ids numbered), and asks for a timer
    ``timer_ms`` after every quote it buys on; on the timer it records an ``OpportunityDetected``."""

    handles = (ev.QuoteUpdated,)

    def __init__(self, name: str = "buyer", every: int = 3, amount: int = 1_000, notional: int = 2_000_000,
                 timer_ms: int = 1, **_: Any) -> None:
        self.name, self.every, self.amount, self.notional = name, int(every), int(amount), int(notional)
        self.timer_ns = int(timer_ms) * 10**6
        self.seen = 0
        self.bought = 0

    def on_event(self, e: Any, state: Any) -> list[Any]:
        if type(e) is ev.TimerFired:
            return [ev.OpportunityDetected(ts=e.ts, source="engine", cause=e.seq, strategy=self.name,
                                           kind="timer", buy_venue=VENUE, sell_venue=VENUE, amount_in=0,
                                           amount_out=0, gross_profit=0, gas_cost=0, net_profit=0,
                                           profit_token="USDC", key=e.key)]
        self.seen += 1
        if self.seen % self.every:
            return []
        self.bought += 1
        return [Intent(self.name, e.venue, e.instrument, "buy", self.amount, self.notional,
                       client_id=f"b{self.bought}"),
                ev.TimerRequested(ts=e.ts, source="engine", cause=e.seq, strategy=self.name, key=f"t{self.bought}",
                                  at_ts=e.ts + self.timer_ns)]
