"""Record a simulated world into a run: what a bot could observe becomes input events.

The world (``sim.world.World``: price path, blocks, oracles, mock venues) publishes messages
on its bus as SimPy time advances; each observable one is turned into an input event and fed to
the same loop replay and live use (``tapedeck.runtime.loop.Loop``), so a sim run verifies with
``tapedeck replay --verify`` like any other. The true reference price is not recorded: no bot can
see it, and scenario + seed regenerate it. A book quote keeps the venue's own time of it
(``QuoteUpdated.venue_ts``) beside its arrival time (``ts``). A perp's marks carry its running
funding rate (``MarkPriceUpdated.funding``), and its funding payments on the bot's position become
``FundingPaid`` inputs (``sim.venues.perp``). Every trade on a mock venue's public tape (our fills,
and its taker flow's: ``sim.venues.cex``) becomes a ``TradePrinted`` input (``_trade``), so a VWAP
slicer participates in the printed volume.

Where the scenario has pools or borrowers, a chain backend (py-evm or anvil) runs beside the world
(``sim.onchain``): an Aave v3 market with borrowers and searchers (``sim.aave_agents``), started
first, and Uniswap pools with their traders (``sim.dex_agents``) trading the market's own tokens,
so a liquidation's executor can sell the seized collateral through them; the scenario's
``[agents.copycats]`` watch the public mempool (``sim.searchers``). What the chain tells a bot arrives after the chain's
inbound latency (``deliver_to``). The engine's intents go to ``sim.gateway.SimGateway``, whose
reports come back as execution events through its one ``report`` channel (the loop's ``feed``).

A strategy's ``TimerRequested`` fires as a ``TimerFired`` input through SimPy at its ``at_ts`` (at
once if that is past); one due after the scenario's end never fires.

**Group commits.** The log is committed every ``flush_blocks`` sim blocks (default 64) at the
block's end, by the store's own timer (``[store] max_delay_ms``, default 200 ms: at most that long
after an event was appended) and at the end; a killed sim loses at most that window of its events.
Nothing of a sim leaves the process (its venues and chain are in it), so the loop's commit before it
hands an intent to the gateway waits for the next group commit too (``GroupCommits``): a sim is
reproduced from its scenario and seed. The digest and the integrity chain do not depend on how
events were grouped. Why: a commit is an fsync (~1-3 ms on this box), and eth-crash made 370 of
them (150 blocks, 220 intents), more than a third of a revm run's wall time. ``flush_blocks=1``
commits at every block (and still not before each intent).
"""
from __future__ import annotations

import contextlib
import gc
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from tapedeck.domain import events as ev
from tapedeck.domain.decimals import to_fixed
from tapedeck.domain.engine import Engine
from tapedeck.domain.ports import EventStore
from tapedeck.runtime.loop import Loop, RunStats, timer_fired
from tapedeck.runtime.outcomes import StrategyOutcome, eth_price_source, outcomes
from tapedeck.sim.gateway import BookOrders, SimGateway, delivery
from tapedeck.sim.kernel import Bus
from tapedeck.sim.processes import BlockBuilt, OracleRound
from tapedeck.sim.scenario import Scenario
from tapedeck.sim.venues.cex import BookQuote, TapeTrade
from tapedeck.sim.venues.perp import RATE_DECIMALS, FundingPayment, PerpMark
from tapedeck.sim.world import World


SETUP_SECONDS = 3600
BOT = "the bot"  # the bot's own account and executor, as the summary names the liquidations they won
FLUSH_BLOCKS = 64  # a group commit at the end of every this many sim blocks (and by the store's timer)


class GroupCommits:
    """The run's store as a sim's loop sees it: ``append`` is the store's; ``flush`` (the loop's,
    before it hands an intent to the sim's gateway: nothing of a sim leaves the process) is left to
    the world's next group commit (at a block's end, ``SimWorld.run``); everything else is the store's."""

    def __init__(self, store: EventStore):
        self.store = store
        self.append = store.append  # the loop's hot path: no call through this wrapper
        self.deferred = 0  # flushes left to the next group commit

    def flush(self) -> None:
        self.deferred += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@dataclass
class SimSummary:
    scenario: str
    seed: int
    simulated_seconds: float
    blocks: int = 0
    oracle_rounds: int = 0
    quotes: int = 0
    trades: int = 0  # TradePrinted: the mock venues' tape prints
    borrowers: int = 0
    liquidations: int = 0
    reverted_attempts: int = 0
    wins: dict[str, int] = field(default_factory=dict)  # liquidator -> liquidations, from the recorded logs
    liquidators: dict[str, str] = field(default_factory=dict)  # address -> who it is (searcher, copycat, the bot)
    chain: str = "pyevm"
    chain_txs: int = 0  # transactions executed on the backend
    chain_blocks: int = 0  # blocks mined on it for the sim's blocks
    strategies: dict[str, StrategyOutcome] = field(default_factory=dict)
    pools: int = 0
    pool_swaps: int = 0  # swaps the pools logged (traders' and arbitrageurs')
    arbitrages: int = 0  # of which the lagging arbitrageurs'
    arb_searchers: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (won, lost) V2/V3 races
    copycats: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (won, lost) copied liquidations
    copied_from: dict[str, dict[str, int]] = field(default_factory=dict)  # copycat -> {sender copied: copies}
    stats: RunStats = field(default_factory=RunStats)
    notes: list[str] = field(default_factory=list)  # what the sim completed in the config (sim.liquidator_config)


def _quote(q: BookQuote) -> ev.QuoteUpdated:
    """The venue's Decimal book as the event's fixed-point integers, at the instrument's precision."""
    pd, sd = q.price_decimals, q.size_decimals
    return ev.QuoteUpdated(ts=q.ts, source=f"sim:{q.venue}", venue=q.venue, instrument=q.instrument,
                           bid=to_fixed(q.bid, pd, "bid"), bid_size=to_fixed(q.bid_size, sd, "bid size"),
                           ask=to_fixed(q.ask, pd, "ask"), ask_size=to_fixed(q.ask_size, sd, "ask size"),
                           price_decimals=pd, size_decimals=sd, venue_ts=q.venue_ts)


def _trade(t: TapeTrade) -> ev.TradePrinted:
    """A mock venue's tape print as the event's fixed-point integers (tick and lot precision)."""
    return ev.TradePrinted(ts=t.ts, source=f"sim:{t.venue}", venue=t.venue, instrument=t.instrument,
                           price=to_fixed(t.price, t.price_decimals, "trade price"),
                           size=to_fixed(t.qty, t.size_decimals, "trade size"), price_decimals=t.price_decimals,
                           size_decimals=t.size_decimals, side=t.side, trade_id=t.trade_id, venue_ts=t.venue_ts)


def _funding(f: FundingPayment, spec: Any) -> ev.FundingPaid:
    """The mock perp's funding payment on the bot's position, at the venue's quote and base units."""
    qd, bd = spec.quote_decimals, spec.base_decimals
    return ev.FundingPaid(ts=f.ts, source=f"sim:{f.venue}", venue=f.venue, instrument=f.instrument,
                          amount=to_fixed(f.amount, qd, "funding amount"), amount_decimals=qd, asset="USDC",
                          size=to_fixed(f.size, bd, "funding size"), size_decimals=bd,
                          rate=to_fixed(f.rate, RATE_DECIMALS, "funding rate"), rate_decimals=RATE_DECIMALS,
                          venue_ts=f.venue_ts)


def _block(b: BlockBuilt) -> ev.BlockProduced:
    return ev.BlockProduced(ts=b.ts, source=f"sim:{b.chain}", chain=b.chain, number=b.number, base_fee=b.base_fee,
                            gas_used=b.gas_used, gas_limit=b.gas_limit, next_base_fee=b.next_base_fee)


def _oracle(o: OracleRound) -> ev.OracleUpdated:
    return ev.OracleUpdated(ts=o.ts, source=f"sim:{o.oracle}", feed=o.oracle, chain=o.chain or "",
                            round_id=o.round_id, answer=o.answer_int, decimals=o.decimals)


def v3_pool_snapshots(dex: Any, block: int, ts: int = 0) -> list[ev.V3PoolSnapshot]:
    """A ``V3PoolSnapshot`` of every V3 pool of ``dex`` (``sim.dex_agents.DexAgents``) as a bot's
    start-up read gives it (``sim.chain.arb_executor.read_ticks``: slot0, liquidity and every
    initialized tick, the bitmap read word by word from ``MIN_TICK`` to ``MAX_TICK`` through the
    backend's ``call_many``), named by the pool's scenario name, so the domain knows the pools'
    ticks from the start and quotes and sizes across them (``dex_quotes.quote``,
    ``cross_pool_arb.size_across_ticks``). Recorded after the swap-log-shaped start state
    ``DexAgents`` delivers, which it supersedes."""
    from tapedeck.sim.chain.arb_executor import _Reader, read_ticks

    reader = _Reader(dex.side.w3, dex.side.backend)
    out = []
    for p in dex.pools:
        if not p.v3:
            continue
        sqrt_price, tick = p.contract.slot0()
        spacing = int(p.contract.tick_spacing)
        out.append(ev.V3PoolSnapshot(ts=ts, source=f"sim:{dex.side.name}:{p.spec.name}", pool=p.spec.name,
                                     block=block, sqrt_price_x96=sqrt_price, tick=tick,
                                     liquidity=p.contract.liquidity(), tick_spacing=spacing,
                                     ticks=read_ticks(reader, p.contract.pool.address, spacing)))
    return out


def deliver_to(world: World, loop: Loop) -> Callable[[str, list[ev.Event]], None]:
    """What an endpoint (a chain, a venue) sends the bot reaches it after the endpoint's inbound
    latency: the events are recorded then, stamped with their arrival time."""
    return delivery(world, loop.feed)


def chain_backend(kind: str, start_time: int) -> Any:
    """A fresh chain for a run: ``pyevm`` (in process), ``anvil`` (a node on 127.0.0.1) or ``revm`` (in process)."""
    if kind == "pyevm":
        from tapedeck.sim.chain.pyevm import PyEvmChain

        return PyEvmChain(start_time=start_time, world_cache=True)
    if kind == "anvil":
        from tapedeck.sim.chain.anvil import AnvilChain
        from tapedeck.sim.chain.pyevm import SIM_CHAIN_ID

        return AnvilChain(start_time=start_time, chain_id=SIM_CHAIN_ID)  # py-evm's: the same tx hashes
    if kind == "revm":
        from tapedeck.sim.chain.revm import RevmChain

        return RevmChain(start_time=start_time)  # py-evm's chain id and default keys: the same tx hashes
    raise ValueError(f"unknown chain backend {kind!r} (pyevm, anvil or revm)")


def run_scenario(scenario: Scenario, config: dict[str, Any], out: str | Path, *, overwrite: bool = False,
                 scenario_file: str = "", progress: Callable[[RunStats], None] | None = None,
                 chain: str = "revm") -> SimSummary:
    """Run the world of ``scenario`` with the engine built from ``config`` and record everything into
    a new run at ``out``. The engine is only ever built from the config (a strategy of one's own is
    named by its import path), so the recorded config always rebuilds it for ``replay --verify``."""
    from tapedeck.runtime.bootstrap import build_run, open_store
    from tapedeck.sim.cex_dex_config import complete as complete_cex_dex
    from tapedeck.sim.liquidator_config import complete

    config, notes = complete(config, scenario)  # before the engine: the manifest records what it ran
    config, more = complete_cex_dex(config, scenario)
    config, priced = complete_eth_price(config, scenario)
    notes = notes + more + priced
    run = build_run("sim", config, out=out, scenario=scenario, overwrite=overwrite,
                    scenario_file=scenario_file, progress=progress, chain=chain)
    run.run()
    summary: SimSummary = run.world.summary
    recorded = open_store(out)
    try:
        found = outcomes(recorded.events(), eth_price_source(config))
        liquidated = [e for e in recorded.events() if type(e) is ev.AaveLiquidationObserved]
    finally:
        recorded.close()
    summary.strategies = {s.name: found.get(s.name, StrategyOutcome(s.name)) for s in run.engine.strategies}
    if summary.borrowers:  # who liquidated, as the chain's LiquidationCall logs recorded it
        ours = [s.get("name", s["kind"]) for s in config.get("strategies", []) if s.get("kind") == "aave_liquidator"]
        ours = ours or [BOT]
        names = {a: (", ".join(ours) if n == BOT else n) for a, n in summary.liquidators.items()}
        summary.liquidations = len(liquidated)
        summary.wins = dict(sorted(Counter(names.get(e.liquidator.lower(), e.liquidator.lower())
                                           for e in liquidated).items(), key=lambda kv: (-kv[1], kv[0])))
    summary.notes = notes
    return summary


def complete_eth_price(config: dict[str, Any], scenario: Scenario) -> tuple[dict[str, Any], list[str]]:
    """``config`` valuing ETH at the oracle feed ``scenario`` records: an ``[outcomes] eth_price``
    (or the default) naming an oracle the scenario has none of is replaced by the scenario's one
    oracle (a new dict), with a note; a pool price, a feed it has, or a choice among several is kept."""
    kind, _, feed = eth_price_source(config).partition(":")
    feeds = [o.name for o in scenario.oracles]
    if kind != "oracle" or feed in feeds or len(feeds) != 1:
        return config, []
    out = {**config, "outcomes": {**config.get("outcomes", {}), "eth_price": f"oracle:{feeds[0]}"}}
    return out, [f"outcomes: scenario {scenario.name!r} records no oracle {feed!r}; ETH valued at oracle:{feeds[0]}, "
                 f"the feed it records"]


@contextlib.contextmanager
def _set_up_frozen() -> Iterator[None]:
    """The world's run with everything built before it (contracts, ABIs, the chain's state, the
    engine) out of the cyclic collector's reach (``gc.freeze``): each collection otherwise rescans
    it, 0.13-0.26 s of a ~1.6 s revm eth-crash. Unfrozen at the end, so a process that runs many
    sims (a sweep, the tests) collects what the run left as usual. Nothing recorded depends on it."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class SimWorld:
    """The world of one scenario, wired to a run's loop by ``run``: its observable messages become
    inputs, the sim venues and chain become the gateway's executors, timers fire on its clock.
    Built by ``tapedeck.runtime.bootstrap.build_run("sim", ...)``; ``summary`` says what happened."""

    def __init__(self, scenario: Scenario, *, chain: str = "pyevm",
                 progress: Callable[[RunStats], None] | None = None, flush_blocks: int | None = None):
        """``flush_blocks``: a commit every this many blocks (module docstring; None: ``FLUSH_BLOCKS``;
        0: none at blocks, only the store's own timer and batching, and the end)."""
        self.scenario, self.chain, self.progress = scenario, chain, progress
        self.flush_blocks = FLUSH_BLOCKS if flush_blocks is None else flush_blocks
        self.world = World(scenario, bus=Bus(record=False))
        self.summary = SimSummary(scenario.name, scenario.seed, scenario.duration, chain=chain)
        self.loop: Loop | None = None

    def schedule(self, request: ev.TimerRequested, now: int) -> None:
        """The loop's timer scheduler: ``TimerFired`` at ``at_ts`` on the world's clock (now if past)."""
        self.world.clock.call_at(request.at_ts, self._fire, request)

    def _fire(self, request: ev.TimerRequested) -> None:
        assert self.loop is not None
        self.loop.feed(timer_fired(request, max(request.at_ts, self.world.clock.now_ns)))

    def grouped(self, store: EventStore) -> GroupCommits:
        """``store`` as this world's loop writes it (``GroupCommits``): committed by ``run``'s groups."""
        return GroupCommits(store)

    def run(self, loop: Loop, gateway: SimGateway, store: EventStore) -> tuple[int, int]:
        """Wire the world to ``loop`` (inputs), ``gateway`` (executors) and ``store`` (a commit per
        ``flush_blocks`` blocks), run it to the scenario's end; returns its (start, end) event time."""
        scenario, summary, world, chain, progress = self.scenario, self.summary, self.world, self.chain, self.progress
        self.loop = loop
        deliver = deliver_to(world, loop)
        flush_blocks = self.flush_blocks

        def on_quote(q: BookQuote) -> None:
            summary.quotes += 1
            loop.feed(_quote(q))

        def on_mark(m: PerpMark) -> None:
            pd = m.price_decimals
            loop.feed(ev.MarkPriceUpdated(ts=m.ts, source=f"sim:{m.venue}", venue=m.venue, instrument=m.instrument,
                                          mark=to_fixed(m.mark, pd, "mark"), oracle=to_fixed(m.oracle, pd, "oracle"),
                                          price_decimals=pd, funding=to_fixed(m.funding, RATE_DECIMALS, "funding"),
                                          funding_decimals=RATE_DECIMALS, venue_ts=m.venue_ts))

        def on_funding(f: FundingPayment) -> None:
            loop.feed(_funding(f, world.venues[f.venue].spec))

        def on_trade(t: TapeTrade) -> None:
            summary.trades += 1
            loop.feed(_trade(t))

        def on_block(b: BlockBuilt) -> None:
            summary.blocks += 1
            loop.feed(_block(b))
            if flush_blocks and summary.blocks % flush_blocks == 0:
                store.flush()  # a killed sim loses at most this many blocks' events (or the store's delay)

        def on_oracle(o: OracleRound) -> None:
            summary.oracle_rounds += 1
            loop.feed(_oracle(o))

        for name, venue in world.venues.items():
            gateway.add(name, BookOrders(venue))
        if progress is not None:  # every 2% of simulated time, whatever the event rate
            world.env.process(_report_progress(world, loop, progress, max(scenario.duration / 50, 1.0)))
        world.bus.subscribe(on_quote, BookQuote)
        world.bus.subscribe(on_mark, PerpMark)
        world.bus.subscribe(on_funding, FundingPayment)
        world.bus.subscribe(on_trade, TapeTrade)
        world.bus.subscribe(on_block, BlockBuilt)
        world.bus.subscribe(on_oracle, OracleRound)
        backend = agents = side = dex = None
        copycats: list[Any] = []
        try:
            on_chain = scenario.chains and (scenario.agents.borrowers.count > 0 or scenario.pools)
            if on_chain:
                from tapedeck.sim.aave_agents import AaveAgents
                from tapedeck.sim.gateway import AaveLiquidations
                from tapedeck.sim.onchain import ChainSide, add_account

                name = scenario.chains[0].name
                # Chain time comes from the scenario, never the wall clock, so interest accrual, and with
                # it every liquidated amount, is the same in every run. The set-up (deploy, positions:
                # a few hundred one-second blocks) happens in the hour before the start.
                backend = chain_backend(chain, scenario.start_ns // 10**9 - SETUP_SECONDS)
                side = ChainSide(name, backend, world.chains[name], world.clock)
                if scenario.agents.borrowers.count > 0:  # first: the pools trade the market's tokens
                    agents = AaveAgents(scenario, world, side, deliver)
                    agents.start(backend.accounts[0])
                if scenario.pools:
                    from tapedeck.sim.dex_agents import DexAgents

                    dex = DexAgents(scenario, world, side, deliver)
                    dex.start(backend.accounts[0], agents.market.tokens if agents is not None else None)
                    snaps = v3_pool_snapshots(dex, world.chains[name].number - 1)  # the V3 pools' ticks
                    if snaps:
                        deliver(name, snaps)  # type: ignore[arg-type]
                bot = bot_account(scenario.seed)
                add_account(side, bot, backend.accounts[0])
                if dex is not None and dex.pool("uniswap-v2") and dex.pool("uniswap-v3"):
                    from tapedeck.sim.gateway import AtomicArbitrage, PoolArbitrage

                    gateway.add(name, PoolArbitrage(dex, bot.address, name))
                    gateway.add(f"{name}:arb-executor", AtomicArbitrage(dex, bot.address, f"{name}:arb-executor"))
                if agents is not None:
                    pools = {p.spec.name.lower(): p.contract.address if p.v3 else p.contract.pair.address
                             for p in (dex.pools if dex is not None else [])}
                    liquidations = AaveLiquidations(agents, bot.address, pools=pools)
                    gateway.add(f"aave-v3:{name}", liquidations)
                    summary.liquidators[bot.address.lower()] = BOT
                    if liquidations.executor is not None:  # what LiquidationCall names when the bot wins
                        summary.liquidators[liquidations.executor.address.lower()] = BOT
                    summary.liquidators.update({x.address.lower(): x.name for x in agents.searchers})
                    world.bus.subscribe(agents.on_oracle, OracleRound)  # after the round itself is recorded
                    cats = scenario.agents.copycats
                    if cats.count:
                        from tapedeck.sim.searchers import add_copycats

                        copycats = add_copycats(side, agents.market, backend.accounts[0], cats.count,
                                                latency_ns=int(cats.latency_ms * 10**6), outbid_bps=cats.outbid_bps)
                if dex is not None and dex.pools:
                    from tapedeck.sim.gateway import PoolSwaps
                    from tapedeck.sim.onchain import sim_key

                    # its own account, added last: the liquidator's and pool arbitrage's nonces and
                    # executor address stay as they were, and a pending swap never holds up their bundles
                    swapper = sim_key("bot-swaps", scenario.seed)
                    add_account(side, swapper, backend.accounts[0])
                    gateway.add(f"{name}:swap", PoolSwaps(dex, swapper.address, f"{name}:swap"))
            with _set_up_frozen():
                world.run()
        finally:
            if backend is not None and hasattr(backend, "close"):
                backend.close()
        summary.stats = loop.stats
        if side is not None:
            summary.chain_txs, summary.chain_blocks = side.transactions, side.blocks_mined
        if agents is not None:
            summary.borrowers = len(agents.borrowers)
            summary.reverted_attempts = agents.reverted_attempts
            summary.liquidators.update({c.address.lower(): c.name for c in copycats})
            summary.copycats = {c.name: (c.won, c.lost) for c in copycats}
            summary.copied_from = {c.name: dict(sorted(c.copied_from.items())) for c in copycats}
        if dex is not None:
            summary.pools, summary.pool_swaps, summary.arbitrages = len(dex.pools), dex.swaps, dex.arbitrages
            summary.arb_searchers = {x.name: (x.won, x.lost) for x in dex.searchers}
        return scenario.start_ns, world.end_ns


def _report_progress(world: World, loop: Loop, progress: Callable[[RunStats], None], every: float):  # type: ignore[no-untyped-def]
    while True:
        yield world.env.timeout(every)
        progress(replace(loop.stats, last_ts=world.clock.now_ns))  # "where the world is", not the last event


def bot_account(seed: int) -> Any:
    """The bot's own account in the sim (a fixed simulation-only key per seed)."""
    from tapedeck.sim.onchain import sim_key

    return sim_key("bot", seed)
