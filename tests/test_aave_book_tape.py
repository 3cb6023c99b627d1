"""Synthetic Aave v3 event tapes for the book, the liquidator and the benchmark.

``Tape`` plays a tiny market by the contracts' rules and emits exactly the logs a real pool emits,
in their order: per action the ``ReserveDataUpdated`` carrying the index the action used (from
``updateState``: linear income, compounded debt, at the block's second), a first supply's
``ReserveUsedAsCollateralEnabled`` before the ``Supply``, a liquidation's debt burn, collateral burn
and protocol-fee ``BalanceTransfer`` before its ``LiquidationCall``. It keeps its own balances
(unscaled, by the same integer formulas) so tests can compare the book with an independent
computation. Rates are fixed per reserve (the book reads them from the logs; their source does
not matter to it).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tapedeck.domain import aave_v3 as m
from tapedeck.domain import events as ev

CHAIN = "sim"
POOL = "0x" + "a0" * 20
TREASURY = "0x" + "7e" * 20
NS = 10**9


def addr(tag: int, n: int = 0) -> str:
    return "0x" + f"{tag:02x}" * 2 + f"{n:036x}"


@dataclass
class R:
    asset: str
    rid: int
    decimals: int
    ltv: int
    lt: int
    bonus: int
    fee: int
    feed: str
    price: int
    lr: int = 3 * 10**25  # 3% supply rate
    vbr: int = 5 * 10**25  # 5% borrow rate
    li: int = m.RAY
    vbi: int = m.RAY
    last: int = 0
    emode: int = 0


WETH = R(addr(0x11), 0, 18, 8000, 8250, 10500, 1000, addr(0xf1), 2000 * 10**8, emode=1)
USDC = R(addr(0x22), 1, 6, 8000, 8500, 10500, 1000, addr(0xf2), 1 * 10**8)
WBTC = R(addr(0x33), 2, 8, 7000, 7500, 11000, 1000, addr(0xf3), 30000 * 10**8)
DAI = R(addr(0x44), 3, 18, 7500, 8000, 10500, 1000, addr(0xf4), 1 * 10**8)


@dataclass
class Tape:
    reserves: list[R]
    t0: int = 1_700_000_000
    events: list[ev.Event] = field(default_factory=list)
    block: int = 1
    now: int = 0  # seconds
    seq: int = 0
    log: int = 0
    ts: int = 0
    coll: dict[tuple[str, str], int] = field(default_factory=dict)  # scaled, by the tape's own count
    debt: dict[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.now = self.t0
        self.by = {r.asset: r for r in self.reserves}
        for r in self.reserves:
            r.last = self.now
            self._emit(ev.AaveReserveConfigured, chain=CHAIN, pool=POOL, block=self.block, reserve=r.asset,
                       reserve_id=r.rid, decimals=r.decimals, ltv=r.ltv, liquidation_threshold=r.lt,
                       liquidation_bonus=r.bonus, reserve_factor=1000, liquidation_protocol_fee=r.fee,
                       emode_category=r.emode, active=True, frozen_reserve=False, borrowing_enabled=True,
                       a_token=addr(0xa1, r.rid), variable_debt_token=addr(0xd1, r.rid), price_feed=r.feed,
                       liquidity_index=r.li, variable_borrow_index=r.vbi, liquidity_rate=r.lr,
                       variable_borrow_rate=r.vbr, last_update_timestamp=r.last)
            self.price(r, r.price)

    # ------------------------------------------------------------------ plumbing

    def _emit(self, cls: type, **kw: object) -> ev.Event:
        self.seq += 1
        self.ts = max(self.ts + 1000, self.now * NS)  # event time: the block's second, in log order
        e = cls(seq=self.seq, ts=self.ts, source="tape", **kw)
        self.events.append(e)
        return e

    def _log(self, cls: type, **kw: object) -> ev.Event:
        self.log += 1
        return self._emit(cls, chain=CHAIN, block=self.block, tx=f"0x{self.block:064x}", log_index=self.log, **kw)

    def advance(self, seconds: int) -> None:
        self.now += seconds
        self.block += 1
        self.log = 0

    def _update(self, r: R) -> None:
        """``ReserveLogic.updateState`` then ``updateInterestRates``: the log with the new indexes."""
        if self.now != r.last:
            r.li = m.ray_mul(m.calculate_linear_interest(r.lr, r.last, self.now), r.li)
            r.vbi = m.ray_mul(m.calculate_compounded_interest(r.vbr, r.last, self.now), r.vbi)
            r.last = self.now
        self._log(ev.AaveReserveDataUpdated, reserve=r.asset, liquidity_rate=r.lr, stable_borrow_rate=0,
                  variable_borrow_rate=r.vbr, liquidity_index=r.li, variable_borrow_index=r.vbi)

    def balance(self, user: str, r: R) -> tuple[int, int]:
        """(aToken balance, variable debt) now, by the contracts' formulas."""
        inc = m.normalized_income(r.li, r.lr, r.last, self.now)
        dbt = m.normalized_debt(r.vbi, r.vbr, r.last, self.now)
        return m.ray_mul(self.coll.get((user, r.asset), 0), inc), m.ray_mul(self.debt.get((user, r.asset), 0), dbt)

    # ------------------------------------------------------------------ actions

    def price(self, r: R, answer: int) -> None:
        r.price = answer
        self._emit(ev.OracleUpdated, feed=r.feed, chain=CHAIN, round_id=self.seq, answer=answer, decimals=8)

    def supply(self, user: str, r: R, amount: int) -> None:
        self._update(r)
        first = self.coll.get((user, r.asset), 0) == 0
        self.coll[(user, r.asset)] = self.coll.get((user, r.asset), 0) + m.ray_div(amount, r.li)
        if first:
            self._log(ev.AaveCollateralToggled, reserve=r.asset, user=user, enabled=True)
        self._log(ev.AaveSupplied, reserve=r.asset, user=user, on_behalf_of=user, amount=amount, referral=0)

    def withdraw(self, user: str, r: R, amount: int) -> None:
        self._update(r)
        self.coll[(user, r.asset)] -= m.ray_div(amount, r.li)
        self._log(ev.AaveWithdrawn, reserve=r.asset, user=user, to=user, amount=amount)

    def borrow(self, user: str, r: R, amount: int) -> None:
        self._update(r)
        self.debt[(user, r.asset)] = self.debt.get((user, r.asset), 0) + m.ray_div(amount, r.vbi)
        self._log(ev.AaveBorrowed, reserve=r.asset, user=user, on_behalf_of=user, amount=amount, rate_mode=2,
                  borrow_rate=r.vbr, referral=0)

    def repay(self, user: str, r: R, amount: int) -> None:
        self._update(r)
        self.debt[(user, r.asset)] -= m.ray_div(amount, r.vbi)
        self._log(ev.AaveRepaid, reserve=r.asset, user=user, repayer=user, amount=amount, use_atokens=False)

    def emode(self, user: str, category: int) -> None:
        self._log(ev.AaveEModeSet, user=user, category=category)

    def emode_category(self, category: int, ltv: int, lt: int, bonus: int, price_source: str = "") -> None:
        self._emit(ev.AaveEModeConfigured, chain=CHAIN, pool=POOL, block=self.block, category=category, ltv=ltv,
                   liquidation_threshold=lt, liquidation_bonus=bonus, price_source=price_source or "0x" + "00" * 20,
                   label=f"cat{category}")

    def liquidate(self, user: str, coll: R, debt: R, debt_repaid: int, coll_to_liquidator: int, fee: int,
                  liquidator: str = addr(0x99)) -> None:
        """A LiquidationCall (amounts given, e.g. from ``aave_v3.liquidation``), receiveAToken false."""
        self._update(debt)
        self.debt[(user, debt.asset)] -= m.ray_div(debt_repaid, debt.vbi)
        self._update(coll)
        self.coll[(user, coll.asset)] -= m.ray_div(coll_to_liquidator, coll.li)
        if fee:
            scaled = m.ray_div(fee, coll.li)
            self.coll[(user, coll.asset)] -= scaled
            self._log(ev.AaveATokenTransferred, reserve=coll.asset, sender=user, recipient=TREASURY,
                      scaled_amount=scaled, index=coll.li)
        self._log(ev.AaveLiquidationObserved, collateral_asset=coll.asset, debt_asset=debt.asset, user=user,
                  debt_to_cover=debt_repaid, liquidated_collateral=coll_to_liquidator, liquidator=liquidator,
                  receive_atoken=False)

    def block_produced(self, base_fee: int = 10**9) -> None:
        self._emit(ev.BlockProduced, chain=CHAIN, number=self.block, base_fee=base_fee, gas_used=0, gas_limit=30_000_000,
                   next_base_fee=base_fee)


def fresh_reserves() -> list[R]:
    """New copies of the four reserves (a tape mutates its reserves' indexes)."""
    from dataclasses import replace
    return [replace(r) for r in (WETH, USDC, WBTC, DAI)]


def test_the_tape_emits_the_logs_in_contract_order() -> None:
    t = Tape(fresh_reserves())
    weth, usdc = t.reserves[0], t.reserves[1]
    n = len(t.events)
    t.supply(addr(1, 1), weth, 10**18)
    kinds = [type(e).__name__ for e in t.events[n:]]
    assert kinds == ["AaveReserveDataUpdated", "AaveCollateralToggled", "AaveSupplied"]
    t.advance(12)
    t.borrow(addr(1, 1), usdc, 1000 * 10**6)
    assert t.balance(addr(1, 1), usdc)[1] == 1000 * 10**6


V2_POOL = "0x" + "b2" * 20


def sample_tape(seed: int = 7, n_users: int = 40, steps: int = 60) -> list[ev.Event]:
    """A seeded market of borrowers near the threshold and a wandering WETH/WBTC price, with a
    WETH/USDC V2 pool tracking the oracle: the liquidator's replay sample (``SAMPLE_CONFIG``)."""
    import random
    rng = random.Random(seed)
    t = Tape(fresh_reserves())
    weth, usdc, wbtc, dai = t.reserves

    def pool() -> None:
        t._emit(ev.V2ReservesSynced, pool=V2_POOL, block=t.block, reserve0=5_000 * 10**18,
                reserve1=5_000 * weth.price // 10**2)

    pool()
    t.block_produced()
    for i in range(n_users):
        u = addr(9, i)
        c, d = (weth, wbtc)[i % 2], (usdc, dai)[i % 2]
        usd = rng.randint(1, 20) * 2000
        t.supply(u, c, usd * 10**c.decimals // (c.price // 10**8))
        t.borrow(u, d, usd * c.lt // 10_000 * 100 // rng.randint(101, 115) * 10**d.decimals)
    for _ in range(steps):
        t.advance(rng.randint(0, 4))
        r = rng.choice([weth, wbtc])
        t.price(r, r.price * rng.randint(960, 1030) // 1000)
        pool()
        t.block_produced()
    return t.events


SAMPLE_CONFIG = {
    "risk": {"default_max_notional": 10**18, "default_max_outstanding": 10**19},
    "strategies": [{"kind": "aave_liquidator", "name": "aave_liquidator", "chain": CHAIN,
                    "pools": [{"pool": V2_POOL, "kind": "v2", "token0": WETH.asset, "token1": USDC.asset,
                               "fee": 30}],
                    "native_asset": WETH.asset, "flash_premium_bps": 5}],
}


def test_the_sample_tape_is_seeded() -> None:
    assert sample_tape(3, 5, 5) == sample_tape(3, 5, 5)
