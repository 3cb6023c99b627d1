"""The seeded SimPy processes of the simulated world and the messages they publish.

They run on the kernel (``sim.kernel``: ``SimClock``, ``Bus``, the Decimal context ``CTX``, seeded
draws); each owns a ``random.Random`` derived from the scenario seed and its name only. Nothing
here reads the wall clock or the global ``random``. ``sim.world.World`` wires them, with the mock
venues, into the whole world of a scenario.

* ``PricePath``: the reference price (geometric diffusion + Poisson jumps + scripted moves) and each
  venue's and oracle's mark, one ``PriceTick`` per mark per tick; Decimal, quantized to cents.
* ``BlockProducer``: a block every ``block_interval`` on each chain, built from its ``Mempool`` plus
  seeded background traffic by ``sim.inclusion.build_block``; the base fee follows EIP-1559.
* ``OracleFeed``: a Chainlink-style feed: a new round when its mark deviates more than the threshold
  from the last answer, or when the heartbeat has elapsed since the last round.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Callable, Iterable

import simpy

from tapedeck.sim.inclusion import BlockPlan, Left, Mempool, PendingTx, build_block, next_base_fee
from tapedeck.sim.kernel import CTX, Bus, SimClock, exponential, normal, to_ns
from tapedeck.sim.scenario import REFERENCE, Chain, Oracle, ReferencePath

SECONDS_PER_YEAR = 365 * 24 * 3600
CENT = Decimal("0.01")
BACKGROUND_CHUNKS = 20  # background traffic comes in up to this many txs of gas_limit / 20


# ----------------------------------------------------------------------------- messages


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
        # Bundles (sim.bundles) are chosen before the public transactions: it returns the gas they take.
        self.prepare: Callable[[int, int], int] | None = None
        # Or a block builder of its own (sim.bundles): build_block's arguments plus number= and ts=.
        self.build: Callable[..., BlockPlan] | None = None
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
        if self.build is not None:  # e.g. sim.bundles.BundleBuilder.build: bundles among the transactions
            plan = self.build(ours + tuple(background), self.base_fee, self.chain.gas_limit,
                              seed=f"{self.seed}:{self.chain.name}:{self.number}", nonces=self.mempool.nonces,
                              number=self.number, ts=ts)
        else:
            reserved = self.prepare(self.number, ts) if self.prepare is not None else 0
            plan = build_block(ours + tuple(background), self.base_fee, self.chain.gas_limit - reserved,
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
