"""The borrower book folded from the real pool's logs equals the real pool (npm @aave/core-v3 on py-evm,
anvil and revm).

A market is deployed on the sim chain (tests/test_aave_v3_parity.py's, with background borrows on both
reserves, so both indexes move); borrowers supply, borrow, repay, withdraw, toggle collateral
and get liquidated (with and without ``receiveAToken``), time passes and the WETH price moves. Every
receipt's logs (the pool's ReserveDataUpdated/Supply/Withdraw/Borrow/Repay/collateral toggles/
LiquidationCall and the aTokens' BalanceTransfer) are decoded into the book's events, in log order,
stamped with their block's timestamp. After each step, for every user: the book's scaled balances
equal ``scaledBalanceOf`` on both tokens, and its account data (at the latest block's timestamp)
equals ``getUserAccountData`` field for field; before each liquidation the book's predicted amounts
equal the ``LiquidationCall`` log. (E-mode is not configured on this market: tests/test_aave_emode_parity.py
configures two categories and checks them the same way; the v3.3 rules are
checked against cases derived from v3.3's LiquidationLogic in tests/test_aave_book.py: the
published npm build is v3.0.)
"""
from __future__ import annotations

import random

import pytest
from web3.logs import DISCARD

from tapedeck.domain import events as ev
from tapedeck.domain.aave_book import AaveBook
from tapedeck.sim.chain.aave_v3 import AaveCallReverted
from tests.conftest import revert_again, time_travel
from tests.test_aave_v3_parity import world  # noqa: F401  (the deployed market with background borrows)

pytestmark = [pytest.mark.contract, pytest.mark.slow]

E6, E18, NS = 10**6, 10**18, 10**9
POOL_EVENTS = ("ReserveDataUpdated", "Supply", "Withdraw", "Borrow", "Repay", "ReserveUsedAsCollateralEnabled",
               "ReserveUsedAsCollateralDisabled", "LiquidationCall")


class Logs:
    """Receipts -> the book's events (lowercase addresses, the block's timestamp as event time)."""

    def __init__(self, m) -> None:
        self.m, self.events, self.by_token = m, [], {a.address: u for u, a in m.atokens.items()}

    def snapshot(self) -> None:
        m = self.m
        ts = m.latest_timestamp()
        for i, (addr, a) in enumerate(m.atokens.items()):
            rs = m.reserve_state(addr)
            cfg = rs.config
            rid = m.pool.functions.getReserveData(addr).call()[7]
            self.events.append(ev.AaveReserveConfigured(
                ts=ts * NS, chain="sim", pool=m.pool.address.lower(), block=0, reserve=addr.lower(), reserve_id=rid,
                decimals=cfg.decimals, ltv=cfg.ltv, liquidation_threshold=cfg.liquidation_threshold,
                liquidation_bonus=cfg.liquidation_bonus, reserve_factor=cfg.reserve_factor,
                liquidation_protocol_fee=cfg.liquidation_protocol_fee, emode_category=cfg.emode_category,
                active=cfg.active, frozen_reserve=cfg.frozen, borrowing_enabled=cfg.borrowing_enabled,
                a_token=a.address.lower(), variable_debt_token=m.variable_debt[addr].address.lower(),
                price_feed=f"feed-{addr.lower()}", liquidity_index=rs.liquidity_index,
                variable_borrow_index=rs.variable_borrow_index, liquidity_rate=rs.liquidity_rate,
                variable_borrow_rate=rs.variable_borrow_rate, last_update_timestamp=rs.last_update_timestamp))
            self.price(addr)

    def price(self, addr: str) -> None:
        self.events.append(ev.OracleUpdated(ts=self.m.latest_timestamp() * NS, feed=f"feed-{addr.lower()}",
                                            chain="sim", round_id=len(self.events), answer=self.m.price(addr),
                                            decimals=8))

    def receipt(self, r) -> None:
        m = self.m
        ts = m.w3.eth.get_block(r["blockNumber"])["timestamp"] * NS
        logs = []
        for name in POOL_EVENTS:
            logs += getattr(m.pool.events, name)().process_receipt(r, errors=DISCARD)
        for a in m.atokens.values():
            logs += [x for x in a.events.BalanceTransfer().process_receipt(r, errors=DISCARD) if x.address == a.address]
        for x in sorted(logs, key=lambda x: x.logIndex):
            a = {k: (v.lower() if isinstance(v, str) and v.startswith("0x") else v) for k, v in x.args.items()}
            base = dict(ts=ts, chain="sim", block=r["blockNumber"], tx=r["transactionHash"].hex(), log_index=x.logIndex)
            e: ev.Event
            if x.event == "ReserveDataUpdated":
                e = ev.AaveReserveDataUpdated(**base, reserve=a["reserve"], liquidity_rate=a["liquidityRate"],
                                              stable_borrow_rate=a["stableBorrowRate"],
                                              variable_borrow_rate=a["variableBorrowRate"],
                                              liquidity_index=a["liquidityIndex"],
                                              variable_borrow_index=a["variableBorrowIndex"])
            elif x.event == "Supply":
                e = ev.AaveSupplied(**base, reserve=a["reserve"], user=a["user"], on_behalf_of=a["onBehalfOf"],
                                    amount=a["amount"], referral=a["referralCode"])
            elif x.event == "Withdraw":
                e = ev.AaveWithdrawn(**base, reserve=a["reserve"], user=a["user"], to=a["to"], amount=a["amount"])
            elif x.event == "Borrow":
                e = ev.AaveBorrowed(**base, reserve=a["reserve"], user=a["user"], on_behalf_of=a["onBehalfOf"],
                                    amount=a["amount"], rate_mode=a["interestRateMode"], borrow_rate=a["borrowRate"],
                                    referral=a["referralCode"])
            elif x.event == "Repay":
                e = ev.AaveRepaid(**base, reserve=a["reserve"], user=a["user"], repayer=a["repayer"], amount=a["amount"],
                                  use_atokens=a["useATokens"])
            elif x.event.startswith("ReserveUsedAsCollateral"):
                e = ev.AaveCollateralToggled(**base, reserve=a["reserve"], user=a["user"],
                                             enabled=x.event.endswith("Enabled"))
            elif x.event == "LiquidationCall":
                e = ev.AaveLiquidationObserved(ts=ts, chain="sim", block=r["blockNumber"], tx=base["tx"],
                                               log_index=x.logIndex, collateral_asset=a["collateralAsset"],
                                               debt_asset=a["debtAsset"], user=a["user"],
                                               debt_to_cover=a["debtToCover"],
                                               liquidated_collateral=a["liquidatedCollateralAmount"],
                                               liquidator=a["liquidator"], receive_atoken=a["receiveAToken"])
            else:  # BalanceTransfer
                e = ev.AaveATokenTransferred(**base, reserve=self.by_token[x.address].lower(), sender=a["from"],
                                             recipient=a["to"], scaled_amount=a["value"], index=a["index"])
            self.events.append(e)


def check(book: AaveBook, logs: Logs, users: list[str]) -> int:
    m = logs.m
    for e in logs.events[check.n:]:  # type: ignore[attr-defined]
        book.apply(e)
    check.n = len(logs.events)  # type: ignore[attr-defined]
    now = m.latest_timestamp()
    for u in users:
        lu = u.lower()
        for addr in m.atokens:
            bu = book.users.get(lu)
            assert (bu.coll.get(addr.lower(), 0) if bu else 0) == m.atokens[addr].functions.scaledBalanceOf(u).call()
            assert (bu.debt.get(addr.lower(), 0) if bu else 0) == \
                m.variable_debt[addr].functions.scaledBalanceOf(u).call()
        acc = book.account(lu, now)
        got = m.user_account_data(u)
        if acc is None:  # never seen by the book: the pool's empty account
            assert lu not in book.users and got == (0, 0, 0, 0, 0, 2**256 - 1)
            continue
        assert (acc.total_collateral_base, acc.total_debt_base, acc.liquidation_threshold, acc.ltv,
                acc.health_factor) == (got[0], got[1], got[3], got[4], got[5]), (u, acc, got)
    return len(users)


def test_book_from_the_real_pools_logs_equals_the_pool(world) -> None:
    chain, m, base = world
    revert_again(chain, base)
    rng = random.Random(9)
    liq = chain.accounts[2]
    users = list(chain.accounts[3:8])
    logs = Logs(m)
    logs.snapshot()
    book = AaveBook("v3.0")
    check.n = 0  # type: ignore[attr-defined]
    weth, usdc = m.asset("WETH"), m.asset("USDC")
    for u in users:  # WETH collateral (some also USDC), USDC debt at 60-80% of the limit
        logs.receipt(m.supply(u, "WETH", rng.randint(1, 50) * E18 // 10, mint=True))
        if rng.random() < 0.5:
            logs.receipt(m.supply(u, "USDC", rng.randint(100, 5000) * E6, mint=True))
        avail = m.user_account_data(u)[2]
        logs.receipt(m.borrow(u, "USDC", avail * rng.randint(60, 95) // 100 // 100))
    checks = check(book, logs, users)
    liquidations = repays = withdrawals = toggles = 0
    for step in range(30):
        time_travel(chain, m.latest_timestamp() + rng.randint(60, 30 * 86_400))
        u = rng.choice(users)
        what = rng.choice(["repay", "repay_atokens", "withdraw", "borrow", "price", "price", "toggle"])
        try:
            if what == "repay":
                m.mint("USDC", u, 10**12)
                m.approve("USDC", u)
                logs.receipt(m._send("repay", m.pool.functions.repay(usdc, rng.randint(1, 500) * E6, 2, u), u,
                                     gas=500_000))
                repays += 1
            elif what == "repay_atokens":
                logs.receipt(m._send("repayWithATokens", m.pool.functions.repayWithATokens(
                    usdc, rng.randint(1, 50) * E6, 2), u, gas=500_000))
                repays += 1
            elif what == "withdraw":
                logs.receipt(m._send("withdraw", m.pool.functions.withdraw(weth, rng.randint(1, 10**16), u), u,
                                     gas=500_000))
                withdrawals += 1
            elif what == "borrow":
                logs.receipt(m.borrow(u, "USDC", max(1, m.user_account_data(u)[2] // 200)))
            elif what == "toggle":
                logs.receipt(m._send("toggle", m.pool.functions.setUserUseReserveAsCollateral(usdc, False), u,
                                     gas=300_000))
                toggles += 1
            else:
                m.set_price("WETH", m.price("WETH") * rng.randint(85, 99) // 100)
                logs.price(weth)
        except AaveCallReverted:
            pass  # e.g. a withdrawal or toggle the health factor forbids: nothing happened
        checks += check(book, logs, users)
        # liquidate whoever the book says is liquidatable, predicting the log
        now = m.latest_timestamp()
        for v in users:
            acc = book.account(v.lower(), now)
            if acc is None or not acc.liquidatable:
                continue
            receive = rng.random() < 0.5
            m.mint("USDC", liq, 10**15)
            bu = book.users[v.lower()]
            coll = next((c for c in (weth, usdc) if c.lower() in bu.on and bu.coll.get(c.lower())), None)
            if coll is None:
                continue  # bad debt: nothing left to seize
            got = m.liquidation_call(liq, coll, "USDC", v, 2**256 - 1, receive)
            t = got["timestamp"]  # the book (not yet told) predicts it at the liquidation block's second
            acc = book.account(v.lower(), t)
            pred = book.liquidation(v.lower(), coll.lower(), usdc.lower(), 2**256 - 1, acc, t)
            assert (got["debtToCover"], got["liquidatedCollateralAmount"]) == (pred.debt_to_cover,
                                                                               pred.collateral_to_liquidator)
            blk = m.w3.eth.get_block(got["blockNumber"], full_transactions=False)
            logs.receipt(m.w3.eth.get_transaction_receipt(blk["transactions"][-1]))
            liquidations += 1
            checks += check(book, logs, users + [liq, m.treasury])
            now = m.latest_timestamp()
    assert liquidations >= 2 and repays >= 2 and withdrawals >= 1 and checks > 100, (liquidations, repays, checks)
    print(f"\nparity: {checks} user checks, {liquidations} liquidations, {repays} repays, {withdrawals} withdrawals, "
          f"{toggles} toggles, {len(logs.events)} events")
