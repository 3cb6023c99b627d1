"""The sim's own fold of the Aave market's events: every user's scaled balances, from the logs only.

Why: the sim's searchers and its ``AaveAccountObserved`` used to poll ``getUserAccountData`` per
borrower after every price move (302 calls at ~89 ms in eth-crash seed 7, 19% of a py-evm run).
The events the sim emits (``sim.chain.aave_events``) carry everything that call reads, so folding
them with the domain's exact Aave math (``domain.aave_v3``, proven equal to the contracts) gives the
same integers with no chain read. It is also the proof that the emitted events are complete:
``tests/test_sim_aave_events.py`` folds a run's events and compares every borrower with the chain.

What each event does (Aave v3.0, variable debt only, no e-mode; rounding as the tokens do):

* ``AaveReserveConfigured``: the reserve's parameters, indexes, rates, last update; its feed.
* ``OracleUpdated``: the price of every reserve reading that feed.
* ``AaveReserveDataUpdated``: indexes and rates, last update = the chain time of its block.
* ``AaveSupplied``: aToken ``+= rayDiv(amount, liquidityIndex)`` (``_mintScaled``), for ``on_behalf_of``.
* ``AaveWithdrawn``: aToken ``-= rayDiv(amount, liquidityIndex)`` (``_burnScaled``).
* ``AaveBorrowed``: variable debt ``+= rayDiv(amount, variableBorrowIndex)``.
* ``AaveRepaid``: variable debt ``-= rayDiv(amount, variableBorrowIndex)``; with aTokens also the aToken.
* ``AaveCollateralToggled``: the user's collateral flag.
* ``AaveATokenTransferred``: the scaled amount moves (the protocol fee to the treasury on a
  liquidation; the seized collateral when the liquidator takes aTokens).
* ``AaveLiquidationObserved``: debt ``-= rayDiv(debtToCover, index)``; collateral ``-= rayDiv(
  liquidatedCollateral, index)`` unless the liquidator received aTokens (then a transfer did it).
  The pool logs it last, after both reserves' ``ReserveDataUpdated`` and the fee's transfer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from tapedeck.domain import aave_v3 as aave

# The reserves' indexes at a timestamp: pure functions of their int arguments, the same for every user of
# a reserve in one block (``account`` of ~15 borrowers a block re-derived them per user and reserve).
_income = lru_cache(maxsize=1024)(aave.normalized_income)
_debt = lru_cache(maxsize=1024)(aave.normalized_debt)
from tapedeck.domain import events as ev


@dataclass
class FoldedReserve:
    decimals: int
    ltv: int
    liquidation_threshold: int
    feed: str
    liquidity_index: int
    liquidity_rate: int
    variable_borrow_index: int
    variable_borrow_rate: int
    last_update: int  # chain time, s
    price: int = 0


@dataclass
class FoldedBalance:
    scaled_collateral: int = 0
    scaled_debt: int = 0
    using_as_collateral: bool = False


@dataclass
class AaveFold:
    reserves: dict[str, FoldedReserve] = field(default_factory=dict)
    users: dict[str, dict[str, FoldedBalance]] = field(default_factory=dict)  # user -> reserve -> balances

    def balance(self, user: str, reserve: str) -> FoldedBalance:
        return self.users.setdefault(user, {}).setdefault(reserve, FoldedBalance())

    def apply(self, e: ev.Event, chain_time: int) -> None:
        """Fold one event; ``chain_time`` is the chain timestamp (s) of the block that logged it."""
        kind = type(e)
        if kind is ev.AaveReserveConfigured:
            old = self.reserves.get(e.reserve)
            self.reserves[e.reserve] = FoldedReserve(
                e.decimals, e.ltv, e.liquidation_threshold, e.price_feed, e.liquidity_index, e.liquidity_rate,
                e.variable_borrow_index, e.variable_borrow_rate, e.last_update_timestamp,
                old.price if old is not None and old.feed == e.price_feed else 0)
        elif kind is ev.OracleUpdated:
            for r in self.reserves.values():
                if r.feed == e.feed:
                    r.price = e.answer
        elif kind is ev.AaveReserveDataUpdated:
            r = self.reserves[e.reserve]
            r.liquidity_index, r.liquidity_rate = e.liquidity_index, e.liquidity_rate
            r.variable_borrow_index, r.variable_borrow_rate = e.variable_borrow_index, e.variable_borrow_rate
            r.last_update = chain_time
        elif kind is ev.AaveSupplied:
            self.balance(e.on_behalf_of, e.reserve).scaled_collateral += \
                aave.ray_div(e.amount, self.reserves[e.reserve].liquidity_index)
        elif kind is ev.AaveWithdrawn:
            self.balance(e.user, e.reserve).scaled_collateral -= \
                aave.ray_div(e.amount, self.reserves[e.reserve].liquidity_index)
        elif kind is ev.AaveBorrowed:
            self.balance(e.on_behalf_of, e.reserve).scaled_debt += \
                aave.ray_div(e.amount, self.reserves[e.reserve].variable_borrow_index)
        elif kind is ev.AaveRepaid:
            r, b = self.reserves[e.reserve], self.balance(e.user, e.reserve)
            b.scaled_debt -= aave.ray_div(e.amount, r.variable_borrow_index)
            if e.use_atokens:
                b.scaled_collateral -= aave.ray_div(e.amount, r.liquidity_index)
        elif kind is ev.AaveCollateralToggled:
            self.balance(e.user, e.reserve).using_as_collateral = e.enabled
        elif kind is ev.AaveATokenTransferred:
            self.balance(e.sender, e.reserve).scaled_collateral -= e.scaled_amount
            self.balance(e.recipient, e.reserve).scaled_collateral += e.scaled_amount
        elif kind is ev.AaveLiquidationObserved:
            self.balance(e.user, e.debt_asset).scaled_debt -= \
                aave.ray_div(e.debt_to_cover, self.reserves[e.debt_asset].variable_borrow_index)
            if not e.receive_atoken:
                self.balance(e.user, e.collateral_asset).scaled_collateral -= \
                    aave.ray_div(e.liquidated_collateral, self.reserves[e.collateral_asset].liquidity_index)

    def positions(self, user: str, timestamp: int) -> list[aave.Position]:
        """The user's reserves as ``calculateUserAccountData`` sees them at ``timestamp`` (s)."""
        out = []
        for reserve, b in self.users.get(user, {}).items():
            r = self.reserves[reserve]
            collateral = aave.ray_mul(b.scaled_collateral, _income(
                r.liquidity_index, r.liquidity_rate, r.last_update, timestamp)) if b.scaled_collateral else 0
            debt = aave.ray_mul(b.scaled_debt, _debt(
                r.variable_borrow_index, r.variable_borrow_rate, r.last_update, timestamp)) if b.scaled_debt else 0
            if collateral or debt:
                out.append(aave.Position(price=r.price, decimals=r.decimals, ltv=r.ltv,
                                         liquidation_threshold=r.liquidation_threshold, collateral=collateral,
                                         debt=debt, using_as_collateral=b.using_as_collateral))
        return out

    def account(self, user: str, timestamp: int) -> aave.AccountData:
        """What ``getUserAccountData(user)`` returns on a block stamped ``timestamp``."""
        return aave.account_data(self.positions(user, timestamp))
