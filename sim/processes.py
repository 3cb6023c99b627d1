"""The seeded SimPy processes of the simulated world, and the bus they publish on.

SimPy is the clock: simulated time inside SimPy is **seconds as a float**, counted from the
scenario's start; everything a process publishes carries ``ts`` in **integer nanoseconds since the
epoch** (``SimClock``), computed from integers, never read back from the float. Each process owns a
``random.Random`` derived from the scenario seed and the process's name only
(``derive_rng(seed, name)``), so adding a process or a draw in one process never shifts another's
draws. Nothing here reads the wall clock or the global ``random``.

Processes publish small frozen messages on a ``Bus`` (synchronous callbacks, in subscription order;
every message is also kept in ``Bus.messages`` in publish order). A runner subscribes and turns
them into recorded events; see ``World`` for the whole world of a scenario wired up.

* ``PricePath``: the reference price (geometric diffusion + Poisson jumps + scripted moves) and each
  venue's and oracle's mark, one ``PriceTick`` per mark per tick; Decimal, quantized to cents.
* ``BlockProducer``: a block every ``block_interval`` on each chain, built from its ``Mempool`` plus
  seeded background traffic by ``sim.inclusion.build_block``; the base fee follows EIP-1559.
* ``OracleFeed``: a Chainlink-style feed: a new round when its mark deviates more than the threshold
  from the last answer, or when the heartbeat has elapsed since the last round.
* ``LatencyModel``: one-way delays per endpoint and direction (base + seeded jitter), FIFO per
  channel, and delivery of a call at the arrival time.
* ``TimerService``: named one-shot and periodic timers (``TimerDue``; the core's ``TimerFired``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal
from typing import Any, Callable, Iterable, Mapping

import simpy

from tapedeck.sim.inclusion import BlockPlan, Left, Mempool, PendingTx, build_block, next_base_fee
from tapedeck.sim.scenario import REFERENCE, Chain, Latency, Link, Oracle, ReferencePath, Scenario, derive_rng

NS = 1_000_000_000
SECONDS_PER_YEAR = 365 * 24 * 3600
CENT = Decimal("0.01")
# Every Decimal computation here runs in this context, whatever the caller's global context is.
CTX = Context(prec=34, rounding=ROUND_HALF_EVEN)
BACKGROUND_CHUNKS = 20  # background traffic comes in up to this many txs of gas_limit / 20


def dsum(values: Iterable[Decimal]) -> Decimal:
    """Sum in ``CTX`` (the builtin ``sum`` would use the caller's global context)."""
    total = Decimal(0)
    for v in values:
        total = CTX.add(total, v)
    return total


def to_ns(seconds: float | Decimal) -> int:
    """Seconds (as written in a scenario) to integer nanoseconds, exactly for decimal inputs."""
    d = seconds if isinstance(seconds, Decimal) else Decimal(repr(float(seconds)))
    return int(CTX.multiply(d, Decimal(NS)).to_integral_value(ROUND_HALF_EVEN))


def normal(rng: Any) -> Decimal:
    """A standard normal draw (Irwin-Hall: 12 uniforms - 6), in Decimal: the same on every platform."""
    total = Decimal(0)
    for _ in range(12):
        total = CTX.add(total, Decimal(rng.random()))
    return CTX.subtract(total, Decimal(6))


def exponential(rng: Any, mean: Decimal) -> Decimal:
    """An exponential draw with the given mean, in Decimal."""
    u = CTX.subtract(Decimal(1), Decimal(rng.random()))  # in (0, 1]
    return CTX.multiply(CTX.minus(CTX.ln(u)), mean)


class SimClock:
    """Simulated time as epoch nanoseconds: ``start_ns`` is simulated t = 0."""

    def __init__(self, env: simpy.Environment, start_ns: int = 0):
        self.env, self.start_ns = env, start_ns

    @property
    def now_ns(self) -> int:
        return self.start_ns + round(self.env.now * NS)

    def seconds_until(self, ts_ns: int) -> float:
        return max(0.0, (ts_ns - self.start_ns) / NS - self.env.now)

    def timeout_until(self, ts_ns: int, value: Any = None) -> simpy.Timeout:
        return self.env.timeout(self.seconds_until(ts_ns), value)

    def call_at(self, ts_ns: int, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` when simulated time reaches ``ts_ns`` (no generator needed)."""
        event = self.timeout_until(ts_ns)
        event.callbacks.append(lambda _e: fn(*args))


# ----------------------------------------------------------------------------- the bus


@dataclass(frozen=True)
class PriceTick:
    """A mark's price at ``ts``: the reference, or a venue's or oracle's (reference x its moves)."""

    ts: int
    mark: str
    price: Decimal


@dataclass(frozen=True)
class BlockBuilt:
    """A block produced on ``chain``. ``included``/``pending``/``dropped`` are the mempool's own
    transactions (background traffic only counts in ``background_txs``/``background_gas``)."""

    ts: int
    chain: str
    number: int
    base_fee: int
    gas_limit: int
    gas_used: int
    next_base_fee: int
    included: tuple[PendingTx, ...]
    pending: tuple[Left, ...]
    dropped: tuple[Left, ...]
    background_txs: int
    background_gas: int


@dataclass(frozen=True)
class OracleRound:
    """A new oracle round: ``answer`` as a price and as the feed's integer (``decimals`` places)."""

    ts: int
    oracle: str
    round_id: int
    answer: Decimal
    answer_int: int
    decimals: int
    reason: str  # "initial" | "deviation" | "heartbeat"
    chain: str | None


@dataclass(frozen=True)
class TimerDue:
    ts: int
    name: str


class Bus:
    """In-process publish/subscribe; synchronous and ordered, so a run is reproducible."""

    def __init__(self, *, record: bool = True):
        self.record = record
        self.messages: list[Any] = []
        self._subscribers: list[tuple[tuple[type, ...], Callable[[Any], bool] | None, Callable[[Any], None]]] = []

    def subscribe(self, callback: Callable[[Any], None], *types: type,
                  where: Callable[[Any], bool] | None = None) -> None:
        """Call ``callback(msg)`` for each message of one of ``types`` (all if none) that passes ``where``."""
        self._subscribers.append((types, where, callback))

    def publish(self, message: Any) -> None:
        if self.record:
            self.messages.append(message)
        for types, where, callback in list(self._subscribers):
            if (not types or isinstance(message, types)) and (where is None or where(message)):
                callback(message)

    def of(self, *types: type) -> list[Any]:
        return [m for m in self.messages if isinstance(m, types)]

    def store(self, env: simpy.Environment, *types: type) -> simpy.Store:
        """A SimPy store that receives every matching message (for processes that ``yield store.get()``)."""
        s = simpy.Store(env)
        self.subscribe(s.put, *types)
        return s


# ----------------------------------------------------------------------------- reference price


class PricePath:
    """The reference price and the marks derived from it, ticking every ``reference.tick`` seconds.

    ``log L`` follows a driftless geometric diffusion (annualised ``volatility``, with the
    ``-sigma^2/2`` correction) plus Poisson jumps (``jump_intensity`` per hour, normal log sizes
    with std ``jump_size``), applied at the tick after they occur. Then
    ``reference = start_price * exp(L) * (1 + sum of the reference's moves)`` and each other mark is
    ``reference * (1 + sum of its own moves)``, all quantized to cents.
    """

    def __init__(self, env: simpy.Environment, clock: SimClock, bus: Bus, reference: ReferencePath, rng: Any,
                 marks: Iterable[str] = (REFERENCE,)):
        self.env, self.clock, self.bus, self.spec, self.rng = env, clock, bus, reference, rng
        self.marks = tuple(dict.fromkeys((REFERENCE, *marks)))
        self.log_level = Decimal(0)
        self.prices: dict[str, Decimal] = {}
        self.tick_ns = to_ns(reference.tick)
        dt_years = CTX.divide(Decimal(repr(reference.tick)), Decimal(SECONDS_PER_YEAR))
        self._sigma_step = CTX.multiply(reference.volatility, CTX.sqrt(dt_years))
        self._drift = CTX.minus(CTX.divide(CTX.multiply(self._sigma_step, self._sigma_step), Decimal(2)))
        self._jump_mean_gap: Decimal | None = None
        self._next_jump: Decimal | None = None
        if reference.jump_intensity > 0 and reference.jump_size > 0:
            self._jump_mean_gap = CTX.divide(Decimal(3600), reference.jump_intensity)
            self._next_jump = exponential(rng, self._jump_mean_gap)
        self.jumps: list[tuple[int, Decimal]] = []  # (ts, log size) of each jump applied
        self.process = env.process(self._run())

    def price(self, mark: str = REFERENCE) -> Decimal:
        """The mark's price as of the last tick."""
        return self.prices[mark]

    def _factor(self, mark: str, t: float) -> Decimal:
        f = Decimal(1)
        for m in self.spec.moves:
            if m.target == mark:
                f = CTX.add(f, CTX.multiply(m.change, m.progress(t)))
        return f

    def _step(self, t_seconds: Decimal, ts: int) -> None:
        z = normal(self.rng)
        self.log_level = CTX.add(self.log_level, CTX.add(self._drift, CTX.multiply(self._sigma_step, z)))
        while self._next_jump is not None and self._next_jump <= t_seconds:
            size = CTX.multiply(self.spec.jump_size, normal(self.rng))
            self.log_level = CTX.add(self.log_level, size)
            self.jumps.append((ts, size))
            self._next_jump = CTX.add(self._next_jump, exponential(self.rng, self._jump_mean_gap))  # type: ignore[arg-type]

    def _publish(self, t: float, ts: int) -> None:
        ref = CTX.multiply(CTX.multiply(self.spec.start_price, CTX.exp(self.log_level)), self._factor(REFERENCE, t))
        for mark in self.marks:
            exact = ref if mark == REFERENCE else CTX.multiply(ref, self._factor(mark, t))
            price = exact.quantize(CENT, rounding=ROUND_HALF_EVEN, context=CTX)
            self.prices[mark] = price
            self.bus.publish(PriceTick(ts, mark, price))

    def _run(self):  # type: ignore[no-untyped-def]
        tick = Decimal(repr(self.spec.tick))
        k = 0
        while True:
            ts = self.clock.start_ns + k * self.tick_ns
            if k:
                self._step(CTX.multiply(tick, Decimal(k)), ts)
            self._publish(k * self.spec.tick, ts)
            k += 1
            yield self.clock.timeout_until(self.clock.start_ns + k * self.tick_ns)


# ----------------------------------------------------------------------------- blocks


class BlockProducer:
    """Builds a block every ``chain.block_interval`` seconds (the first at t = interval).

    Each block takes the mempool's pending transactions plus seeded background traffic (up to
    ``BACKGROUND_CHUNKS`` transactions of ``gas_limit / BACKGROUND_CHUNKS`` gas, each present with
    probability ``min(1, background_utilization * initial_base_fee / base_fee)`` -- demand is
    elastic, so the base fee hovers around ``2 * utilization * initial_base_fee`` -- with tips
    uniform on ``[0, background_max_priority_fee]``),
    orders them with ``build_block`` (seed ``"{seed}:{chain}:{number}"``), lets ``execute`` run
    them (it returns the gas really used, or None to use the reserved gas), applies the plan to the
    mempool, publishes ``BlockBuilt`` and moves the base fee by EIP-1559.
    """

    def __init__(self, env: simpy.Environment, clock: SimClock, bus: Bus, chain: Chain, rng: Any, *, seed: int | str,
                 mempool: Mempool | None = None,
                 execute: Callable[[BlockPlan, int, int], int | None] | None = None):
        self.env, self.clock, self.bus, self.chain, self.rng, self.seed = env, clock, bus, chain, rng, seed
        self.mempool = mempool if mempool is not None else Mempool()
        self.execute = execute
        self.base_fee = chain.initial_base_fee
        self.number = chain.first_block
        self.interval_ns = to_ns(chain.block_interval)
        self.process = env.process(self._run())

    def submit(self, tx: PendingTx) -> None:
        """A transaction reaches the mempool (call it through ``LatencyModel.send`` to add the delay)."""
        self.mempool.add(tx)

    def _background(self, number: int, slot_start_ns: int) -> list[PendingTx]:
        gas = self.chain.gas_limit // BACKGROUND_CHUNKS
        # Elastic demand: each chunk wants in with probability u * b0 / b (at most 1), so the base
        # fee reverts to about 2 * u * b0 instead of running away or collapsing.
        demand = CTX.multiply(self.chain.background_utilization, Decimal(self.chain.initial_base_fee))
        base = Decimal(self.base_fee)
        out = []
        for i in range(BACKGROUND_CHUNKS):
            present = CTX.multiply(Decimal(self.rng.random()), base) < demand
            tip = self.rng.randrange(self.chain.background_max_priority_fee + 1)
            arrival = slot_start_ns + int(self.rng.random() * self.interval_ns)
            if present and gas > 0:
                out.append(PendingTx(id=f"bg:{self.chain.name}:{number}:{i}", sender=f"bg:{number}:{i}", nonce=0,
                                     max_fee=2 * self.base_fee + tip, max_priority_fee=tip, gas=gas,
                                     arrival_ns=arrival))
        return out

    def _run(self):  # type: ignore[no-untyped-def]
        k = 1
        while True:
            ts = self.clock.start_ns + k * self.interval_ns
            yield self.clock.timeout_until(ts)
            self._produce(ts, ts - self.interval_ns)
            k += 1

    def _produce(self, ts: int, slot_start_ns: int) -> None:
        ours = self.mempool.pending()
        own_ids = {t.id for t in ours}  # membership only
        background = self._background(self.number, slot_start_ns)
        plan = build_block(ours + tuple(background), self.base_fee, self.chain.gas_limit,
                           seed=f"{self.seed}:{self.chain.name}:{self.number}", nonces=self.mempool.nonces)
        gas_used = plan.gas_used
        if self.execute is not None:
            used = self.execute(plan, self.number, ts)
            if used is not None:
                gas_used = used
        self.mempool.apply(plan)
        next_fee = next_base_fee(self.base_fee, gas_used, self.chain.gas_target)
        bg_included = [t for t in plan.included if t.id not in own_ids]
        self.bus.publish(BlockBuilt(
            ts=ts, chain=self.chain.name, number=self.number, base_fee=self.base_fee, gas_limit=self.chain.gas_limit,
            gas_used=gas_used, next_base_fee=next_fee,
            included=tuple(t for t in plan.included if t.id in own_ids),
            pending=tuple(x for x in plan.pending if x.tx.id in own_ids),
            dropped=tuple(x for x in plan.dropped if x.tx.id in own_ids),
            background_txs=len(bg_included), background_gas=sum(t.gas for t in bg_included),
        ))
        self.base_fee = next_fee
        self.number += 1


# ----------------------------------------------------------------------------- oracle


class OracleFeed:
    """Chainlink-style: observes its mark on every ``PriceTick`` and starts a new round when
    ``|price - last answer| / last answer`` is more than ``deviation_bps`` (strictly), or when
    ``heartbeat`` seconds have passed since the last round (then with the latest observed price,
    ticks of that same instant included). The first observation starts round 1 (``reason = "initial"``)."""

    def __init__(self, env: simpy.Environment, clock: SimClock, bus: Bus, oracle: Oracle, *, mark: str | None = None):
        self.env, self.clock, self.bus, self.spec = env, clock, bus, oracle
        self.mark = mark or oracle.name
        self.heartbeat_ns = to_ns(oracle.heartbeat)
        self.round_id = 0
        self.answer: Decimal | None = None
        self.updated_ns: int | None = None
        self.observed: Decimal | None = None
        bus.subscribe(self._on_tick, PriceTick, where=lambda m: m.mark == self.mark)
        self.process = env.process(self._heartbeat())

    def deviates(self, price: Decimal) -> bool:
        if self.answer is None:
            return True
        if self.spec.deviation_bps is None:
            return False
        moved = CTX.multiply(CTX.abs(CTX.subtract(price, self.answer)), Decimal(10_000))
        return moved > CTX.multiply(self.spec.deviation_bps, self.answer)

    def _on_tick(self, tick: PriceTick) -> None:
        self.observed = tick.price
        if self.answer is None:
            self._publish(tick.ts, tick.price, "initial")
        elif self.deviates(tick.price):
            self._publish(tick.ts, tick.price, "deviation")

    def _publish(self, ts: int, price: Decimal, reason: str) -> None:
        self.round_id += 1
        self.answer, self.updated_ns = price, ts
        scaled = CTX.scaleb(price, self.spec.decimals)
        answer_int = int(scaled.to_integral_value(ROUND_HALF_EVEN))
        self.bus.publish(OracleRound(ts, self.spec.name, self.round_id, price, answer_int, self.spec.decimals, reason,
                                     self.spec.chain))

    def _heartbeat(self):  # type: ignore[no-untyped-def]
        while True:
            if self.updated_ns is None:
                yield self.env.timeout(self.spec.heartbeat)
                continue
            due = self.updated_ns + self.heartbeat_ns
            yield self.clock.timeout_until(due)
            yield self.env.timeout(0)  # let price ticks of this same instant be observed first
            if self.updated_ns + self.heartbeat_ns == due and self.observed is not None:  # no round since
                self._publish(due, self.observed, "heartbeat")


# ----------------------------------------------------------------------------- latency


class LatencyModel:
    """One-way delays per endpoint (a venue or chain name) and direction (``outbound``: bot ->
    endpoint, ``inbound``: endpoint -> bot): ``base_ms`` plus a jitter drawn from the channel's own
    generator (``derive_rng(seed, "latency:{endpoint}:{direction}")``). Channels are FIFO by
    default, like the TCP/WebSocket connections they stand for: a message never overtakes the
    previous one on the same channel."""

    DIRECTIONS = ("outbound", "inbound")

    def __init__(self, env: simpy.Environment, clock: SimClock, seed: int | str, links: Mapping[str, Link], *,
                 fifo: bool = True):
        self.env, self.clock, self.seed, self.fifo = env, clock, seed, fifo
        self.links = dict(links)
        self._rngs: dict[tuple[str, str], Any] = {}
        self._last: dict[tuple[str, str], int] = {}

    def _spec(self, endpoint: str, direction: str) -> Latency:
        if direction not in self.DIRECTIONS:
            raise ValueError(f"direction must be 'outbound' or 'inbound', got {direction!r}")
        try:
            link = self.links[endpoint]
        except KeyError:
            raise KeyError(f"no latency for endpoint {endpoint!r} (known: {', '.join(self.links)})") from None
        return link.outbound if direction == "outbound" else link.inbound

    def sample_ns(self, endpoint: str, direction: str) -> int:
        spec = self._spec(endpoint, direction)
        key = (endpoint, direction)
        rng = self._rngs.get(key)
        if rng is None:
            rng = self._rngs[key] = derive_rng(self.seed, f"latency:{endpoint}:{direction}")
        base = CTX.multiply(spec.base_ms, Decimal(1_000_000))
        mean = CTX.multiply(spec.jitter_ms, Decimal(1_000_000))
        if spec.jitter == "exponential":
            jitter = exponential(rng, mean)
        else:
            jitter = CTX.multiply(Decimal(rng.random()), mean)
        return int(CTX.add(base, jitter).to_integral_value(ROUND_FLOOR))

    def arrival_ns(self, endpoint: str, direction: str, sent_ns: int | None = None) -> int:
        sent = self.clock.now_ns if sent_ns is None else sent_ns
        arrival = sent + self.sample_ns(endpoint, direction)
        if self.fifo:
            key = (endpoint, direction)
            arrival = max(arrival, self._last.get(key, arrival))
            self._last[key] = arrival
        return arrival

    def send(self, endpoint: str, direction: str, fn: Callable[..., Any], *args: Any) -> int:
        """Call ``fn(arrival_ns, *args)`` when a message sent now arrives; returns the arrival time."""
        arrival = self.arrival_ns(endpoint, direction)
        self.clock.call_at(arrival, fn, arrival, *args)
        return arrival


# ----------------------------------------------------------------------------- timers


class TimerService:
    """Named timers, fired as ``TimerDue`` at exactly their due time (a time already past fires
    now). Setting a name again replaces its timer; ``cancel`` stops it. Periodic timers fire at
    ``first + k * interval``."""

    def __init__(self, env: simpy.Environment, clock: SimClock, bus: Bus):
        self.env, self.clock, self.bus = env, clock, bus
        self._armed: dict[str, int] = {}  # name -> generation of its live timer
        self._generations = 0

    def _arm(self, name: str) -> int:
        self._generations += 1
        self._armed[name] = self._generations
        return self._generations

    def at(self, name: str, ts_ns: int) -> None:
        due = max(ts_ns, self.clock.now_ns)
        self.clock.call_at(due, self._fire, name, self._arm(name), due, 0)

    def after(self, name: str, delay_ns: int) -> None:
        self.at(name, self.clock.now_ns + delay_ns)

    def every(self, name: str, interval_ns: int, first_ns: int | None = None) -> None:
        if interval_ns <= 0:
            raise ValueError(f"timer {name!r}: interval must be positive, got {interval_ns}")
        due = self.clock.now_ns + interval_ns if first_ns is None else max(first_ns, self.clock.now_ns)
        self.clock.call_at(due, self._fire, name, self._arm(name), due, interval_ns)

    def cancel(self, name: str) -> bool:
        """Stop a timer; True if one was armed under that name."""
        return self._armed.pop(name, None) is not None

    @property
    def armed(self) -> tuple[str, ...]:
        return tuple(self._armed)

    def _fire(self, name: str, generation: int, due: int, interval: int) -> None:
        if self._armed.get(name) != generation:
            return  # replaced or cancelled
        if not interval:
            del self._armed[name]
        self.bus.publish(TimerDue(due, name))
        if interval and self._armed.get(name) == generation:
            self.clock.call_at(due + interval, self._fire, name, generation, due + interval, interval)


# ----------------------------------------------------------------------------- the world


class World:
    """Everything of a scenario wired on one environment and bus: price path (with every venue's
    and oracle's mark), one block producer and mempool per chain, the oracles, the latency model,
    the timers and the mock book venues (``sim.venues.cex.MockCex`` for ``cex``, ``sim.venues.perp.MockPerp``
    for ``perp``).
    Process creation order is fixed (price, chains, oracles, venues), so runs are reproducible."""

    def __init__(self, scenario: Scenario, *, env: simpy.Environment | None = None, bus: Bus | None = None,
                 execute: Mapping[str, Callable[[BlockPlan, int, int], int | None]] | None = None):
        from tapedeck.sim.venues.cex import MockCex  # the venues build on this module
        from tapedeck.sim.venues.perp import MockPerp

        self.scenario = scenario
        self.env = env or simpy.Environment()
        self.clock = SimClock(self.env, scenario.start_ns)
        self.bus = bus or Bus()
        seed = scenario.seed
        links: dict[str, Link] = {c.name: c.latency for c in scenario.chains}
        links.update({v.name: v.latency for v in scenario.venues})
        self.latency = LatencyModel(self.env, self.clock, seed, links)
        self.timers = TimerService(self.env, self.clock, self.bus)
        self.price = PricePath(self.env, self.clock, self.bus, scenario.reference, scenario.rng("price:reference"),
                               marks=scenario.marks)
        execute = execute or {}
        self.chains = {
            c.name: BlockProducer(self.env, self.clock, self.bus, c, scenario.rng(f"chain:{c.name}"), seed=seed,
                                  execute=execute.get(c.name))
            for c in scenario.chains
        }
        self.oracles = {o.name: OracleFeed(self.env, self.clock, self.bus, o) for o in scenario.oracles}
        self.venues = {
            v.name: (MockPerp if v.kind == "perp" else MockCex)(self.env, self.clock, self.bus, v,
                                                                scenario.rng(f"venue:{v.name}"), self.latency)
            for v in scenario.venues
        }

    @property
    def end_ns(self) -> int:
        return self.scenario.start_ns + to_ns(self.scenario.duration)

    def run(self, until: float | None = None) -> None:
        """Run to ``until`` seconds (default: the scenario's duration), events at exactly that time included."""
        end = self.scenario.duration if until is None else until
        self.env.run(until=math.nextafter(end, math.inf))
