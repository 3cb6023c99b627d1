"""Aave borrowers, the oracle's transmitter and competing liquidators on the real Aave v3 market.

At the start a market of the published ``@aave/core-v3`` contracts is deployed on the chain
backend and a seeded borrower population opens WETH-collateral / USDC-debt positions drawn by
``sim.aave_draws`` from the market's own LTV, prices and decimals (every seed opens every
borrower). The set-up runs in a few batched blocks. From then on everything goes through the
mempool and the sim's block builder (``sim.onchain``):

* every on-chain oracle round is *transmitted*: the oracle node sends two transactions (a new
  ``MockAggregator`` with the answer, then ``AaveOracle.setAssetSources`` pointing WETH at it);
  the price moves when the block that includes them is mined;
* what the bot sees of the market is its logs: at the start the market's snapshot and the set-up's
  logs, then every block's Aave logs (``sim.chain.aave_events.AaveLogReader``: pool, aTokens,
  oracle, feeds, in log order), delivered after the chain's inbound latency;
* after each block that moved the price or saw a liquidation, the accounts near the threshold are
  read in ONE batch (``AaveV3Market.users_account_data``) and published after the logs as
  ``AaveAccountObserved`` (what a polling bot sees; the searchers below act on it);
* each searcher sends ``liquidationCall`` for every borrower the chain reports liquidatable,
  arriving after its own seeded latency, with a tip by its bidding rule (``fixed``, or
  ``profit-share``: that share of the expected bonus, per unit of gas); the builder orders them by
  tip, so the best bid wins and the others revert (or liquidate what is left). A searcher's
  reverted transaction is not re-run for its reason (nobody reads it).

Amounts come from the contracts; nothing here imitates them. Limits: one chain, WETH/USDC only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from eth_abi import encode as abi_encode

from tapedeck.domain import events as ev
from tapedeck.sim.aave_draws import MarketTerms, draw_positions
from tapedeck.sim.aave_fold import AaveFold
from tapedeck.sim.chain.aave_events import AaveLogReader
from tapedeck.sim.chain.aave_v3 import VARIABLE, AaveCallReverted
from tapedeck.sim.chain.artifacts import load
from tapedeck.sim.chain.pyevm import ChainTx, PreparedCall, call_data, create_address, revert_reason
from tapedeck.sim.kernel import NS
from tapedeck.sim.onchain import SUCCESS, BlockResult, ChainSide, add_account, sim_account, sim_key
from tapedeck.sim.processes import OracleRound
from tapedeck.sim.scenario import Link, Scenario
from tapedeck.sim.world import World

LIQUIDATION_GAS = 900_000  # gas limit of a liquidationCall (uses ~250-350k)
AGGREGATOR_GAS = 300_000
SET_SOURCE_GAS = 200_000
MINT_GAS, APPROVE_GAS, SUPPLY_GAS, BORROW_GAS = 120_000, 80_000, 400_000, 500_000
WATCH_HF = 105  # publish accounts whose estimated health factor is below 1.05 (in hundredths)
MAX_UINT = 2**256 - 1
LIQUIDITY = 10**9 * 10**6  # USDC the deployer supplies (at least), and each searcher's working capital
SETUP_MAX_FEE = 50 * 10**9  # wei per gas a set-up transaction may pay (backends' base fees start at 1 gwei)
SETUP_BATCH = 3  # borrowers per set-up block (4 transactions each)


def _mint(market: Any, asset: str, to: str, amount: int) -> Any:
    return market._token(asset).get_function_by_signature("mint(address,uint256)")(to, amount)


class SetupBlocks:
    """Set-up transactions mined in batched blocks on the backend, outside the sim's block builder.

    Why: one automined block per transaction through web3 was ~5 JSON-RPC requests each on anvil
    and a block each on py-evm (eth-crash: ~160 set-up transactions). Here nonces, gas and fees are
    explicit and ``backend.mine_block`` runs a block of them at once; ``blocks`` keeps each block's
    (number, timestamp, receipts) for the logs. A reverted set-up transaction raises
    ``AaveCallReverted`` with the reason replayed on the block's end state."""

    def __init__(self, side: ChainSide, funder: str):
        self.side, self.funder, self.w3 = side, funder, side.w3
        self.pending: list[tuple[ChainTx, Any]] = []
        self.nonces: dict[str, int] = {}
        self.blocks: list[tuple[int, int, list[Any]]] = []
        self.transactions = 0

    def enroll(self, accounts: list[Any], eth: int = 10**20) -> None:
        """Make each account able to send (its key on py-evm, impersonation on anvil) and fund it
        with ``eth`` wei for gas, in a block of its own (anvil checks a sender's balance when a
        transaction arrives, not when its block runs)."""
        tester = getattr(self.side.backend, "tester", None)
        for acct in accounts:
            if tester is not None:
                tester.add_account(acct.key.hex())
            else:
                self.w3.provider.make_request("anvil_impersonateAccount", [acct.address])
                if hasattr(self.side.backend, "add_key"):
                    self.side.backend.add_key(acct)  # signed as on py-evm: the same transaction hashes
            self._queue(self.funder, acct.address, b"", 21_000, eth, None)
        self.mine()

    def send(self, sender: str, fn: Any, gas: int) -> None:
        self._queue(sender, fn.address, call_data(fn), gas, 0, fn)

    def _queue(self, sender: str, to: str, data: bytes, gas: int, value: int, fn: Any) -> None:
        if sender not in self.nonces:
            self.nonces[sender] = self.w3.eth.get_transaction_count(sender)
        nonce = self.nonces[sender]
        self.nonces[sender] = nonce + 1
        self.pending.append((ChainTx(sender, nonce, gas, 0, 0, to, data, value), fn))

    def mine(self) -> None:
        if not self.pending:
            return
        latest = self.w3.eth.get_block("latest")
        # a fixed fee cap, not one from the backend's own base fee: the same transaction (and hash) on both
        fee = max(SETUP_MAX_FEE, 2 * int(latest.get("baseFeePerGas", 0)))
        txs = [ChainTx(t.sender, t.nonce, t.gas, fee, 0, t.to, t.data, t.value) for t, _ in self.pending]
        receipts = self.side.backend.mine_block(txs, int(latest["timestamp"]) + 1)
        for (tx, fn), r in zip(self.pending, receipts):
            if r["status"] != 1:
                what = fn.fn_name if fn is not None else "transfer"
                reason = revert_reason(fn, {"from": tx.sender, "gas": tx.gas}) if fn is not None else ""
                raise AaveCallReverted(f"set-up {what} from {tx.sender}", reason.removeprefix("execution reverted: "))
        self.blocks.append((int(receipts[0]["blockNumber"]), int(latest["timestamp"]) + 1, receipts))
        self.transactions += len(txs)
        self.pending = []


@dataclass
class Borrower:
    address: str
    collateral: int  # WETH wei supplied (as last folded from the events)
    debt_base: int  # debt in the oracle base currency, 8 dp (as last folded from the events)


@dataclass
class Searcher:
    name: str
    address: str
    pending: set[str] = field(default_factory=set)  # borrowers it has a transaction out for
    won: int = 0
    lost: int = 0


@dataclass
class AaveAgents:
    scenario: Scenario
    world: World
    side: ChainSide
    deliver: Callable[[str, list[ev.Event]], None]  # (endpoint, events): observed after its inbound latency
    market: Any = None
    oracle_node: str = ""
    price_8dp: int = 0
    borrowers: list[Borrower] = field(default_factory=list)
    searchers: list[Searcher] = field(default_factory=list)
    liquidations: int = 0
    reader: Any = None  # AaveLogReader of the market, after start
    fold: AaveFold = field(default_factory=AaveFold)  # every user's balances, folded from the events we emit
    chain_time: int = 0  # timestamp (s) of the chain's latest block (where a read would be evaluated)
    setup_transactions: int = 0
    setup_blocks: list[Any] = field(default_factory=list)  # (chain block, timestamp, receipts) of the set-up
    _targets: dict[str, str] = field(default_factory=dict)  # searcher tx id -> borrower

    @property
    def chain(self) -> str:
        return self.side.name

    @property
    def source(self) -> str:
        return f"sim:{self.chain}:aave"

    def start(self, funder: str) -> None:
        """Deploy the market and open the positions (before the clock starts).

        Deployed from a fixed simulation account, so every address is the same on every backend.
        The market's snapshot (reserves, e-mode categories, prices) is taken before any position
        opens; the set-up transactions then run in a few batched blocks (``SETUP_BATCH`` borrowers
        each) and their logs are delivered with the snapshot at the start, so a book folded from
        the events holds every position from the first event on."""
        from tapedeck.sim.chain.aave_v3 import DEFAULT_RESERVES, deploy_aave_v3, market_addresses, market_at
        from tapedeck.sim.chain.world_cache import cached
        from tapedeck.sim.sim_tokens import deploy_tokens

        deployer = sim_key("aave-deployer")
        price = Decimal(str(self.scenario.reference.start_price))
        self.price_8dp = int(price * 10**8)
        w3 = self.side.w3

        def deploy() -> dict[str, Any]:  # the sim's tokens and the market, at the start price
            add_account(self.side, deployer, funder)
            market = deploy_aave_v3(w3, DEFAULT_RESERVES, admin=deployer.address, tokens=deploy_tokens(self.side, funder))
            market.set_price("WETH", self.price_8dp)
            return market_addresses(market)

        # restored from the world cache when the same market was deployed on the same chain before
        found = cached(self.side.backend, ("aave-v3 market", funder, deployer.address, DEFAULT_RESERVES, self.price_8dp),
                       deploy, modules=(__name__, "tapedeck.sim.sim_tokens", "tapedeck.sim.onchain"))
        self.market = market_at(w3, found, DEFAULT_RESERVES)
        self.market.call_many = getattr(self.side.backend, "call_many", None)
        self.oracle_node = self.market.admin
        b = self.scenario.agents.borrowers
        s = self.scenario.agents.searchers
        self.reader = AaveLogReader(self.market, self.chain, self.source)
        start_ns = self.world.clock.now_ns
        opening = self.reader.snapshot(0, start_ns)
        terms = self.market_terms()  # (the set-up moves neither the price nor the reserves' terms)
        positions = draw_positions(self.scenario.rng("agents:borrowers"), b, price, terms)
        accounts = []
        for i in range(b.count + s.count):
            key = ((0xB0B0 << 32) + i + 1 + self.scenario.seed * 1000).to_bytes(32, "big")
            accounts.append(sim_account(key))  # deterministic per seed and index (simulation-only keys)
        m, usdc, weth = self.market, self.market.asset("USDC"), self.market.asset("WETH")

        def open_positions() -> tuple[int, list[Any]]:  # the chain side: accounts, liquidity, positions
            setup = SetupBlocks(self.side, funder)
            setup.enroll(accounts)
            liquidity = max(LIQUIDITY, 2 * sum(p.debt for p in positions))  # what the borrowers take, twice over
            setup.send(deployer.address, _mint(m, usdc, deployer.address, liquidity), MINT_GAS)
            setup.send(deployer.address, m.tokens["USDC"].functions.approve(m.pool.address, liquidity), APPROVE_GAS)
            setup.send(deployer.address, m.pool.functions.supply(usdc, liquidity, deployer.address, 0), SUPPLY_GAS)
            for acct in accounts[b.count:]:
                setup.send(acct.address, _mint(m, usdc, acct.address, LIQUIDITY), MINT_GAS)
                setup.send(acct.address, m.tokens["USDC"].functions.approve(m.pool.address, MAX_UINT), APPROVE_GAS)
            setup.mine()
            for n, (acct, p) in enumerate(zip(accounts, positions)):
                user = acct.address
                setup.send(user, _mint(m, weth, user, p.collateral), MINT_GAS)
                setup.send(user, m.tokens["WETH"].functions.approve(m.pool.address, p.collateral), APPROVE_GAS)
                setup.send(user, m.pool.functions.supply(weth, p.collateral, user, 0), SUPPLY_GAS)
                setup.send(user, m.pool.functions.borrow(usdc, p.debt, VARIABLE, 0, user), BORROW_GAS)
                if (n + 1) % SETUP_BATCH == 0:
                    setup.mine()
            setup.mine()
            return setup.transactions, setup.blocks

        transactions, setup_blocks = cached(
            self.side.backend, ("aave positions", funder, deployer.address, [a.address for a in accounts], positions),
            open_positions, modules=(__name__, "tapedeck.sim.onchain"))
        for k, acct in enumerate(accounts[b.count:]):
            self.searchers.append(Searcher(f"searcher-{k + 1}", acct.address))
            self.world.latency.links[f"searcher-{k + 1}"] = Link(s.latency, s.latency)
        for acct, p in zip(accounts, positions):
            self.borrowers.append(Borrower(acct.address, p.collateral, p.debt_base(terms)))
        for e in opening:
            self.fold.apply(e, 0)
        for number, chain_time, receipts in setup_blocks:
            logs = self.reader.block_events(receipts, 0, start_ns, chain_time)
            for e in logs:
                self.fold.apply(e, chain_time)
            opening += logs
            self.chain_time = chain_time
        # the reserves again, as the set-up left them: exact indexes, rates and last update at the
        # start (the set-up's blocks are in the hour before it, at chain times no event carries)
        after = self.reader.snapshot(0, start_ns, prices=False)
        for e in after:
            self.fold.apply(e, 0)
        self.setup_transactions, self.setup_blocks = transactions, setup_blocks
        self.deliver(self.chain, opening + after)
        self.side.subscribe(self.on_block)

    def market_terms(self) -> MarketTerms:
        """The collateral's and debt's terms on the deployed market, for the position draw."""
        weth, usdc = self.market.reserve_config("WETH"), self.market.reserve_config("USDC")
        return MarketTerms(collateral_decimals=weth.decimals, collateral_price=self.market.price("WETH"),
                           ltv=weth.ltv, liquidation_threshold=weth.liquidation_threshold,
                           debt_decimals=usdc.decimals, debt_price=self.market.price("USDC"))

    # ------------------------------------------------------------------ the oracle's transmitter

    def on_oracle(self, o: OracleRound) -> None:
        if o.chain != self.chain or self.market is None:
            return
        answer = o.answer_int * 10**8 // 10**o.decimals if o.decimals >= 8 else o.answer_int * 10 ** (8 - o.decimals)
        node, side = self.oracle_node, self.side
        tip = self.world.chains[self.chain].chain.background_max_priority_fee
        art = load("@aave/core-v3", "MockAggregator")
        init = bytes.fromhex(art.bytecode.removeprefix("0x")) + abi_encode(["int256"], [answer])
        aggregator = create_address(node, side.nonce(node))
        weth = self.market.asset("WETH")
        # encoded by eth_abi (web3's bound function only if its revert reason is asked for)
        set_source = PreparedCall(self.market.oracle, "setAssetSources", ("address[]", "address[]"), ([weth], [aggregator]))
        side.submit(node, to=None, data=init, gas=AGGREGATOR_GAS, max_priority_fee=tip, arrival_ns=o.ts,
                    tag="oracle")
        side.submit(node, to=self.market.oracle.address, data=set_source.data, gas=SET_SOURCE_GAS,
                    max_priority_fee=tip, arrival_ns=o.ts, tag="oracle", call=set_source)
        self.reader.rounds[aggregator.lower()] = o.round_id  # the round its OracleUpdated will carry

    # ------------------------------------------------------------------ after each block

    def on_block(self, result: BlockResult) -> None:
        """The block's Aave logs as events (``AaveLogReader``), folded (``AaveFold``); after a price
        move or a liquidation, the accounts near the threshold as ``AaveAccountObserved`` (what
        ``getUserAccountData`` returns at the chain's head, computed from the fold: no read) and
        the searchers go after those below HF 1. Delivered together after the chain's inbound
        latency, logs first, in log order."""
        receipts = [out.receipt for out in result.outcomes]
        if receipts:
            self.chain_time = result.ts // NS  # the backend mined a block for these (sim.onchain)
        observed = self.reader.block_events(receipts, result.number, result.ts, self.chain_time)
        weth = self.market.asset("WETH").lower()
        moved = False
        liquidated: set[str] = set()
        winners: set[tuple[str, str]] = set()
        for e in observed:
            self.fold.apply(e, self.chain_time)
            kind = type(e)
            if kind is ev.OracleUpdated and weth in self.reader.feeds.get(e.feed, ()):
                self.price_8dp, moved = e.answer, True
            elif kind is ev.AaveLiquidationObserved:
                self.liquidations += 1
                liquidated.add(e.user)
                winners.add((e.tx, e.liquidator))
        by_address = {s.address: s for s in self.searchers}
        for out in result.outcomes:
            searcher = by_address.get(out.tx.sender)
            if searcher is not None:
                searcher.pending.discard(self._target_of(out))
                tx = "0x" + bytes(out.receipt["transactionHash"]).hex()
                if out.status == SUCCESS and (tx, searcher.address.lower()) in winners:
                    searcher.won += 1
                else:
                    searcher.lost += 1
        for out in result.dropped:
            searcher = by_address.get(out.tx.sender)
            if searcher is not None:
                searcher.pending.discard(self._target_of(out))
        liquidatable = []
        if moved or liquidated:
            for b in self.borrowers:
                user = b.address.lower()
                data = self.fold.account(user, self.chain_time)
                if user not in liquidated and data.health_factor >= WATCH_HF * 10**16:
                    continue
                b.collateral, b.debt_base = data.total_collateral_base * 10**18 // self.price_8dp, data.total_debt_base
                observed.append(ev.AaveAccountObserved(
                    ts=result.ts, source=self.source, chain=self.chain, block=result.number, user=user,
                    total_collateral_base=data.total_collateral_base, total_debt_base=data.total_debt_base,
                    liquidation_threshold=data.liquidation_threshold, health_factor=data.health_factor))
                if data.health_factor < 10**18:
                    liquidatable.append((b, data.total_debt_base, data.health_factor))
        if observed:
            self.deliver(self.chain, observed)
        for b, debt_base, hf in liquidatable:
            for s in self.searchers:
                if b.address not in s.pending:
                    self._liquidate(s, b, debt_base, hf, result.ts)

    def _target_of(self, out: Any) -> str:
        return self._targets.pop(out.tx.id, "")

    def bid(self, debt_base: int, hf: int) -> int:
        """A searcher's tip per gas: fixed, or its share of the expected bonus (5% of what it may cover)."""
        s = self.scenario.agents.searchers
        if s.bidding == "fixed":
            return s.priority_fee
        close = debt_base if hf < 95 * 10**16 else debt_base // 2  # Aave's close factor: 100% below HF 0.95
        bonus_wei = close * 5 // 100 * 10**18 // self.price_8dp
        return int(Decimal(bonus_wei) * s.profit_share) // LIQUIDATION_GAS

    def _liquidate(self, s: Searcher, b: Borrower, debt_base: int, hf: int, seen_ns: int) -> None:
        fn = PreparedCall(self.market.pool, "liquidationCall", ("address", "address", "address", "uint256", "bool"),
                          (self.market.asset("WETH"), self.market.asset("USDC"), b.address, MAX_UINT, False))
        arrival = self.world.latency.arrival_ns(s.name, "outbound", seen_ns)
        tx = self.side.submit(s.address, to=self.market.pool.address, data=fn.data, gas=LIQUIDATION_GAS,
                              max_priority_fee=self.bid(debt_base, hf), arrival_ns=arrival, tag=s.name)
        self._targets[tx.id] = b.address
        s.pending.add(b.address)

    @property
    def reverted_attempts(self) -> int:
        """Searchers' liquidation attempts that reverted (lost races)."""
        return sum(s.lost for s in self.searchers)

