"""Record a simulated world into a run: what a bot could observe becomes input events.

The world (``sim.processes.World``: price path, blocks, oracles, mock venues) publishes messages
on its bus as SimPy time advances; each observable one is turned into an input event and fed to
the same loop replay and live use (``adapters.runner.Loop``), so a sim run verifies with
``tapedeck replay --verify`` like any other. The true reference price is not recorded: no bot can
see it, and scenario + seed regenerate it.

Where the scenario has borrowers, a real Aave v3 market runs on py-evm beside the world
(``sim.aave_agents``): the oracle moves its price and competing searchers liquidate on it; the
``LiquidationCall`` logs are recorded as inputs. Not wired yet (issue #3): the Uniswap pools,
background traders, the mempool/block builder for agent transactions, and gateways that execute
the engine's intents.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from adapters.eventlog import EventLog, Manifest, config_hash
from adapters.runner import Loop, RunStats
from domain import events as ev
from domain.strategies import build_engine
from sim.processes import BlockBuilt, Bus, OracleRound, World
from sim.scenario import Scenario
from sim.venues.cex import BookQuote


@dataclass
class SimSummary:
    scenario: str
    seed: int
    simulated_seconds: float
    blocks: int = 0
    oracle_rounds: int = 0
    quotes: int = 0
    borrowers: int = 0
    liquidations: int = 0
    reverted_attempts: int = 0
    wins: dict[str, int] = field(default_factory=dict)
    stats: RunStats = field(default_factory=RunStats)


def _quote(q: BookQuote) -> ev.QuoteUpdated:
    return ev.QuoteUpdated(ts=q.ts, source=f"sim:{q.venue}", venue=q.venue, instrument=q.instrument,
                           bid=q.bid, bid_size=q.bid_size, ask=q.ask, ask_size=q.ask_size)


def _block(b: BlockBuilt) -> ev.BlockProduced:
    return ev.BlockProduced(ts=b.ts, source=f"sim:{b.chain}", chain=b.chain, number=b.number, base_fee=b.base_fee,
                            gas_used=b.gas_used, gas_limit=b.gas_limit, next_base_fee=b.next_base_fee)


def _oracle(o: OracleRound) -> ev.OracleUpdated:
    return ev.OracleUpdated(ts=o.ts, source=f"sim:{o.oracle}", feed=o.oracle, chain=o.chain or "",
                            round_id=o.round_id, answer=o.answer_int, decimals=o.decimals)


def run_scenario(scenario: Scenario, config: dict[str, Any], out: str | Path, *, overwrite: bool = False,
                 scenario_file: str = "", progress: Callable[[RunStats], None] | None = None) -> SimSummary:
    engine = build_engine(config)
    manifest = Manifest(run_id="", mode="sim", config=config, config_hash=config_hash(config), seed=scenario.seed,
                        sources=[f"scenario:{scenario.name}"],
                        notes={"scenario_file": scenario_file, "duration_s": scenario.duration})
    log = EventLog.create(out, manifest, overwrite=overwrite)
    loop = Loop(engine, log, gateway=None, progress=progress, progress_every=10_000)
    summary = SimSummary(scenario.name, scenario.seed, scenario.duration)
    world = World(scenario, bus=Bus(record=False))

    def on_quote(q: BookQuote) -> None:
        summary.quotes += 1
        loop.feed(_quote(q))

    def on_block(b: BlockBuilt) -> None:
        summary.blocks += 1
        loop.feed(_block(b))

    def on_oracle(o: OracleRound) -> None:
        summary.oracle_rounds += 1
        loop.feed(_oracle(o))

    world.bus.subscribe(on_quote, BookQuote)
    world.bus.subscribe(on_block, BlockBuilt)
    world.bus.subscribe(on_oracle, OracleRound)
    agents = None
    if scenario.agents.borrowers.count > 0:
        from sim.aave_agents import AaveAgents
        from sim.chain.pyevm import PyEvmChain

        from eth_tester import PyEVMBackend

        # Chain time starts at the scenario's start, not the wall clock (py-evm's default), so
        # interest accrual, and with it every liquidated amount, is the same in every run.
        genesis = PyEVMBackend.generate_genesis_params()
        genesis["timestamp"] = scenario.start_ns // 10**9
        chain = PyEvmChain(PyEVMBackend(genesis_parameters=genesis))
        agents = AaveAgents(scenario, chain, emit=loop.feed, now_ns=lambda: world.clock.now_ns)
        agents.start()
        world.bus.subscribe(agents.on_oracle, OracleRound)  # after the round itself is recorded
    try:
        world.run()
    except BaseException as e:
        log.close(ended=f"failed: {type(e).__name__}")
        raise
    summary.stats = loop.stats
    if agents is not None:
        summary.borrowers = len(agents.borrowers)
        summary.liquidations, summary.reverted_attempts = agents.liquidations, agents.reverted_attempts
        summary.wins = dict(sorted(agents.wins.items()))
    log.manifest.started_ts, log.manifest.ended_ts = scenario.start_ns, world.end_ns
    log.close(ended="clean")
    return summary
