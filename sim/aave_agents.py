"""Aave borrowers and competing liquidators on the real Aave v3 market, driven by the sim's oracle.

At the start a market of the published ``@aave/core-v3`` contracts is deployed on the chain
backend and a seeded borrower population opens WETH-collateral / USDC-debt positions at health
factors drawn from the scenario. Every on-chain oracle round moves the market's WETH price; then
the competing searchers, in the order their seeded latency brings them in, send
``liquidationCall`` for every borrower the chain reports liquidatable (a searcher that arrives
after the position was fixed simply reverts). What the chain logs (``LiquidationCall``) becomes an
input event. Amounts come from the contracts; nothing here imitates them.

Limits (issue #3 goes on): one chain, WETH/USDC only; searchers act right after the oracle round
rather than through the mempool and the block builder; the engine's own intents are not executed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from domain import events as ev
from sim.processes import OracleRound
from sim.scenario import Scenario

MAX_BORROWERS = 20  # each is a funded account with four transactions; keeps a run to seconds


@dataclass
class Borrower:
    address: str
    collateral: int  # WETH wei supplied (as last read from the chain)
    debt_base: int  # debt in the oracle's base currency, 8 dp (as last read from the chain)

    def maybe_liquidatable(self, price_8dp: int) -> bool:
        """A cheap pre-filter before asking the chain: within 2% of HF 1 at this price, using
        WETH's liquidation threshold (82.50%). The chain's own health factor decides."""
        if self.debt_base == 0:
            return False
        collateral_base = self.collateral * price_8dp // 10**18
        return collateral_base * 8250 * 100 < self.debt_base * 10_000 * 102


@dataclass
class AaveAgents:
    scenario: Scenario
    chain: Any  # PyEvmChain or AnvilChain
    emit: Callable[[ev.Event], None]
    now_ns: Callable[[], int]
    market: Any = None
    borrowers: list[Borrower] = field(default_factory=list)
    searchers: list[str] = field(default_factory=list)
    liquidations: int = 0
    reverted_attempts: int = 0
    wins: dict[str, int] = field(default_factory=dict)

    def start(self) -> None:
        from eth_account import Account

        from sim.chain.aave_v3 import deploy_aave_v3

        w3 = self.chain.w3
        self.market = deploy_aave_v3(w3)
        b = self.scenario.agents.borrowers
        s = self.scenario.agents.searchers
        rng = self.scenario.rng("agents:borrowers")
        price = Decimal(str(self.scenario.reference.start_price))
        self.market.set_price("WETH", int(price * 10**8))
        funder = self.chain.accounts[0]
        # liquidity for borrowing: a deep USDC supplier
        self.market.supply(funder, "USDC", 10**9 * 10**6, mint=True)
        count = min(b.count, MAX_BORROWERS)
        for i in range(count + s.count):
            key = ((0xB0B0 << 32) + i + 1 + self.scenario.seed * 1000).to_bytes(32, "big")
            acct = Account.from_key(key)  # deterministic per seed and index (simulation-only keys)
            self._add_account(acct, funder)
            if i >= count:
                self.searchers.append(acct.address)
                self.market.mint("USDC", acct.address, 10**9 * 10**6)
                continue
            value = b.collateral_min + (b.collateral_max - b.collateral_min) * Decimal(str(rng.random()))
            hf = b.health_factor_min + (b.health_factor_max - b.health_factor_min) * Decimal(str(rng.random()))
            weth = int(value / price * 10**18)
            # debt so that HF = value * LT / debt  (LT of WETH: 82.5%)
            usdc = int(value * Decimal("0.825") / hf * 10**6)
            self.market.supply(acct.address, "WETH", weth, mint=True)
            self.market.borrow(acct.address, "USDC", usdc)
            self.borrowers.append(Borrower(acct.address, weth, usdc * 100))  # USDC (6 dp) at $1 in 8 dp

    def _add_account(self, acct: Any, funder: str) -> None:
        w3 = self.chain.w3
        tester = getattr(self.chain, "tester", None)
        if tester is not None:
            tester.add_account(acct.key.hex())
        else:  # anvil: let the node sign for it
            w3.provider.make_request("anvil_impersonateAccount", [acct.address])
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
            {"from": funder, "to": acct.address, "value": 10**20, "gas": 21_000}))

    def on_oracle(self, o: OracleRound) -> None:
        if o.chain is None or self.market is None:
            return
        answer = o.answer_int * 10**8 // 10**o.decimals if o.decimals >= 8 else o.answer_int * 10 ** (8 - o.decimals)
        self.market.set_price("WETH", answer)
        self._race(answer)

    def _race(self, price_8dp: int) -> None:
        from sim.chain.aave_v3 import AaveCallReverted

        rng = self.scenario.rng(f"agents:searchers:{self.now_ns()}")
        for b in self.borrowers:
            if not b.maybe_liquidatable(price_8dp):
                continue
            collateral_base, debt_base, _avail, _lt, _ltv, hf = self.market.user_account_data(b.address)
            b.collateral, b.debt_base = collateral_base * 10**18 // price_8dp, debt_base
            if hf >= 10**18:
                continue
            order = sorted(self.searchers, key=lambda _s: rng.random())  # who arrives first this round
            for searcher in order:
                try:
                    log = self.market.liquidation_call(searcher, "WETH", "USDC", b.address, 2**256 - 1)
                except AaveCallReverted:
                    self.reverted_attempts += 1  # lost the race: the position was already fixed
                    continue
                self.liquidations += 1
                collateral_base, b.debt_base = self.market.user_account_data(b.address)[:2]
                b.collateral = collateral_base * 10**18 // price_8dp
                self.wins[searcher] = self.wins.get(searcher, 0) + 1
                self.emit(ev.AaveLiquidationObserved(
                    ts=self.now_ns(), source="sim:aave", chain="ethereum", block=int(log["blockNumber"]),
                    collateral_asset=str(log["collateralAsset"]).lower(), debt_asset=str(log["debtAsset"]).lower(),
                    user=str(log["user"]).lower(), debt_to_cover=int(log["debtToCover"]),
                    liquidated_collateral=int(log["liquidatedCollateralAmount"]),
                    liquidator=str(log["liquidator"]).lower(), receive_atoken=bool(log["receiveAToken"])))
