"""Aave borrowers, the oracle's transmitter and competing liquidators on the real Aave v3 market.

At the start a market of the published ``@aave/core-v3`` contracts is deployed on the chain
backend and a seeded borrower population opens WETH-collateral / USDC-debt positions at health
factors drawn from the scenario. From then on everything goes through the mempool and the sim's
block builder (``sim.onchain``):

* every on-chain oracle round is *transmitted*: the oracle node sends two transactions (a new
  ``MockAggregator`` with the answer, then ``AaveOracle.setAssetSources`` pointing WETH at it);
  the price moves when the block that includes them is mined;
* after each block that moved the price or saw a liquidation, the accounts near the threshold are
  read from the chain (``getUserAccountData``) and published as ``AaveAccountObserved``, and every
  ``LiquidationCall`` log as ``AaveLiquidationObserved`` (both after the chain's inbound latency);
* each searcher sends ``liquidationCall`` for every borrower the chain reports liquidatable,
  arriving after its own seeded latency, with a tip by its bidding rule (``fixed``, or
  ``profit-share``: that share of the expected bonus, per unit of gas); the builder orders them by
  tip, so the best bid wins and the others revert (or liquidate what is left).

Amounts come from the contracts; nothing here imitates them. Limits: one chain, WETH/USDC only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from eth_abi import encode as abi_encode

from tapedeck.domain import events as ev
from tapedeck.sim.chain.artifacts import load
from tapedeck.sim.chain.pyevm import call_data, create_address
from tapedeck.sim.onchain import SUCCESS, BlockResult, ChainSide, add_account, sim_key
from tapedeck.sim.processes import OracleRound
from tapedeck.sim.scenario import Link, Scenario
from tapedeck.sim.world import World

LIQUIDATION_GAS = 900_000  # gas limit of a liquidationCall (uses ~250-350k)
AGGREGATOR_GAS = 300_000
SET_SOURCE_GAS = 200_000
WATCH_HF = 105  # publish accounts whose estimated health factor is below 1.05 (in hundredths)
WETH_LT_BPS = 8250
MAX_UINT = 2**256 - 1


@dataclass
class Borrower:
    address: str
    collateral: int  # WETH wei supplied (as last read from the chain)
    debt_base: int  # debt in the oracle's base currency, 8 dp (as last read from the chain)

    def near_threshold(self, price_8dp: int, hundredths: int = WATCH_HF) -> bool:
        """Estimated HF below ``hundredths``/100 at this price (WETH's threshold, 82.50%): worth a read."""
        if self.debt_base == 0:
            return False
        collateral_base = self.collateral * price_8dp // 10**18
        return collateral_base * WETH_LT_BPS * 100 < self.debt_base * 10_000 * hundredths


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
    oracle_txs: set[str] = field(default_factory=set)
    _targets: dict[str, str] = field(default_factory=dict)  # searcher tx id -> borrower

    @property
    def chain(self) -> str:
        return self.side.name

    def start(self, funder: str) -> None:
        """Deploy the market and open the positions (before the clock starts).

        Deployed from a fixed simulation account, so every address is the same on every backend."""
        from eth_account import Account

        from tapedeck.sim.chain.aave_v3 import deploy_aave_v3

        deployer = sim_key("aave-deployer")
        add_account(self.side, deployer, funder)
        self.market = deploy_aave_v3(self.side.w3, admin=deployer.address)
        self.oracle_node = self.market.admin
        b = self.scenario.agents.borrowers
        s = self.scenario.agents.searchers
        rng = self.scenario.rng("agents:borrowers")
        price = Decimal(str(self.scenario.reference.start_price))
        self.price_8dp = int(price * 10**8)
        self.market.set_price("WETH", self.price_8dp)
        self.market.supply(deployer.address, "USDC", 10**9 * 10**6, mint=True)  # liquidity to borrow from
        count = b.count  # at most sim.scenario.MAX_BORROWERS: five set-up transactions each
        for i in range(count + s.count):
            key = ((0xB0B0 << 32) + i + 1 + self.scenario.seed * 1000).to_bytes(32, "big")
            acct = Account.from_key(key)  # deterministic per seed and index (simulation-only keys)
            add_account(self.side, acct, funder)
            if i >= count:
                k = i - count
                self.searchers.append(Searcher(f"searcher-{k + 1}", acct.address))
                self.world.latency.links[f"searcher-{k + 1}"] = Link(s.latency, s.latency)
                self.market.mint("USDC", acct.address, 10**9 * 10**6)
                self.market.approve("USDC", acct.address)
                continue
            value = b.collateral_min + (b.collateral_max - b.collateral_min) * Decimal(str(rng.random()))
            hf = b.health_factor_min + (b.health_factor_max - b.health_factor_min) * Decimal(str(rng.random()))
            weth = int(value / price * 10**18)
            usdc = int(value * Decimal("0.825") / hf * 10**6)  # HF = value * LT / debt (LT of WETH 82.5%)
            self.market.supply(acct.address, "WETH", weth, mint=True)
            self.market.borrow(acct.address, "USDC", usdc)
            self.borrowers.append(Borrower(acct.address, weth, usdc * 100))  # USDC (6 dp) at $1 in 8 dp
        self.side.subscribe(self.on_block)

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
        set_source = self.market.oracle.functions.setAssetSources([weth], [aggregator])
        side.submit(node, to=None, data=init, gas=AGGREGATOR_GAS, max_priority_fee=tip, arrival_ns=o.ts,
                    tag="oracle")
        tx = side.submit(node, to=self.market.oracle.address, data=call_data(set_source), gas=SET_SOURCE_GAS,
                         max_priority_fee=tip, arrival_ns=o.ts, tag="oracle", call=set_source)
        self.oracle_txs.add(tx.id)

    # ------------------------------------------------------------------ after each block

    def on_block(self, result: BlockResult) -> None:
        moved = False
        observed: list[ev.Event] = []
        liquidated: set[str] = set()
        by_address = {s.address: s for s in self.searchers}
        for out in result.outcomes:
            if out.tx.id in self.oracle_txs:
                self.oracle_txs.discard(out.tx.id)
                if out.status == SUCCESS:
                    self.price_8dp = self.market.price("WETH")
                    moved = True
                continue
            searcher = by_address.get(out.tx.sender)
            logs = self.market.liquidation_logs(out.receipt) if out.status == SUCCESS else []
            if searcher is not None:
                user = self._target_of(out)
                searcher.pending.discard(user)
                if logs:
                    searcher.won += 1
                else:
                    searcher.lost += 1
            for log in logs:
                self.liquidations += 1
                liquidated.add(str(log["user"]))
                observed.append(ev.AaveLiquidationObserved(
                    ts=0, source=f"sim:{self.chain}:aave", chain=self.chain, block=result.number,
                    tx=out.tx.id, log_index=int(log["_log_index"]),
                    collateral_asset=str(log["collateralAsset"]).lower(), debt_asset=str(log["debtAsset"]).lower(),
                    user=str(log["user"]).lower(), debt_to_cover=int(log["debtToCover"]),
                    liquidated_collateral=int(log["liquidatedCollateralAmount"]),
                    liquidator=str(log["liquidator"]).lower(), receive_atoken=bool(log["receiveAToken"])))
        for out in result.dropped:
            searcher = by_address.get(out.tx.sender)
            if searcher is not None:
                searcher.pending.discard(self._target_of(out))
        if not moved and not liquidated:
            return
        liquidatable = []
        for b in self.borrowers:
            if b.address not in liquidated and not b.near_threshold(self.price_8dp):
                continue
            collateral_base, debt_base, _avail, lt, _ltv, hf = self.market.user_account_data(b.address)
            b.collateral, b.debt_base = collateral_base * 10**18 // self.price_8dp, debt_base
            observed.append(ev.AaveAccountObserved(
                ts=0, source=f"sim:{self.chain}:aave", chain=self.chain, block=result.number, user=b.address.lower(),
                total_collateral_base=collateral_base, total_debt_base=debt_base, liquidation_threshold=lt,
                health_factor=hf))
            if hf < 10**18:
                liquidatable.append((b, debt_base, hf))
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
        fn = self.market.pool.functions.liquidationCall(self.market.asset("WETH"), self.market.asset("USDC"),
                                                        b.address, MAX_UINT, False)
        arrival = self.world.latency.arrival_ns(s.name, "outbound", seen_ns)
        tx = self.side.submit(s.address, to=self.market.pool.address, data=call_data(fn), gas=LIQUIDATION_GAS,
                              max_priority_fee=self.bid(debt_base, hf), arrival_ns=arrival, tag=s.name, call=fn)
        self._targets[tx.id] = b.address
        s.pending.add(b.address)

    @property
    def reverted_attempts(self) -> int:
        """Searchers' liquidation attempts that reverted (lost races)."""
        return sum(s.lost for s in self.searchers)

    @property
    def wins(self) -> dict[str, int]:
        return {s.name: s.won for s in self.searchers if s.won}

