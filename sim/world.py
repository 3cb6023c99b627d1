"""The whole world of a scenario: the kernel, the world's processes and the mock venues, wired.

This is the one module that knows both ``sim.processes`` and ``sim.venues`` (both build on
``sim.kernel`` only), so neither has to import the other.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import simpy

from tapedeck.sim.inclusion import BlockPlan
from tapedeck.sim.kernel import Bus, LatencyModel, SimClock, TimerService, to_ns
from tapedeck.sim.processes import BlockProducer, OracleFeed, PricePath
from tapedeck.sim.scenario import Link, Scenario
from tapedeck.sim.venues.cex import MockCex
from tapedeck.sim.venues.perp import MockPerp


class World:
    """Everything of a scenario wired on one environment and bus: price path (with every venue's
    and oracle's mark), one block producer and mempool per chain, the oracles, the latency model,
    the timers and the mock book venues (``sim.venues.cex.MockCex`` for ``cex``, ``sim.venues.perp.MockPerp``
    for ``perp``).
    Process creation order is fixed (price, chains, oracles, venues), so runs are reproducible."""

    def __init__(self, scenario: Scenario, *, env: simpy.Environment | None = None, bus: Bus | None = None,
                 execute: Mapping[str, Callable[[BlockPlan, int, int], int | None]] | None = None):
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
