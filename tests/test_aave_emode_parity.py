"""E-mode on the real Aave v3.0 pool: the book folded from the market's logs equals the pool.

The sim's default market has no e-mode category, so this test lists four reserves (WETH, USDC, DAI,
an 18-decimal "STETH") and configures two categories through the real ``PoolConfigurator``:

* category 1 "stables" (USDC, DAI): LTV 93 %, threshold 95 %, bonus 1 %, **no price source** (each
  asset at its own oracle price);
* category 2 "eth" (WETH, STETH): LTV 90 %, threshold 93 %, bonus 2 %, **price source WETH** (both
  assets valued at WETH's price, in the account data and in ``liquidationCall``).

Borrowers enter a category (``setUserEMode``) and borrow near the category's LTV, beyond what the
reserves' own LTVs allow; one borrower stays out of e-mode as the control. The book reads only what
the production path reads: ``sim.chain.aave_events.AaveLogReader``'s snapshot (reserves, categories,
prices) and every receipt of every block, decoded by the same reader. After every step, for every
user, the book's account data equals ``getUserAccountData`` field for field. Liquidations in both
categories (a DAI depeg for category 1; a lowered category threshold for category 2, re-read as a
new ``AaveEModeConfigured`` snapshot since the v3.0 configurator's event is not in the book's
vocabulary) are predicted to the wei: debt covered and collateral seized equal the
``LiquidationCall`` log, the e-mode bonus and price source included.
"""
from __future__ import annotations

import random

import pytest

from tapedeck.domain.aave_book import AaveBook
from tapedeck.sim.chain.aave_events import AaveLogReader
from tapedeck.sim.chain.aave_v3 import USDC, WETH, AaveCallReverted, ReserveSpec, deploy_aave_v3
from tapedeck.sim.chain.artifacts import ArtifactMissing, node_modules
from tests.conftest import CHAIN_BACKENDS, new_chain, revert_again, time_travel

pytestmark = [pytest.mark.contract, pytest.mark.slow]

E18, E6, NS, DAY = 10**18, 10**6, 10**9, 86_400
DAI = ReserveSpec("DAI", "Dai Stablecoin", 18, 1 * 10**8, 7500, 8000, 10500)
STETH = ReserveSpec("STETH", "Staked Ether", 18, 1990 * 10**8, 7000, 7500, 10700)
STABLES, ETH = 1, 2


@pytest.fixture(scope="module", params=CHAIN_BACKENDS)
def emode_world(request):
    try:
        chain = new_chain(request)
        m = deploy_aave_v3(chain.w3, (WETH, USDC, DAI, STETH))
    except ArtifactMissing as e:
        pytest.skip(f"contract builds not installed under {node_modules()}: {e}")
    zero = "0x" + "00" * 20
    conf = m.configurator.functions
    m._send("setEModeCategory", conf.setEModeCategory(STABLES, 9300, 9500, 10100, zero, "stables"), gas=300_000)
    m._send("setEModeCategory", conf.setEModeCategory(ETH, 9000, 9300, 10200, m.asset("WETH"), "eth"), gas=300_000)
    for sym, cat in (("USDC", STABLES), ("DAI", STABLES), ("WETH", ETH), ("STETH", ETH)):
        m._send("setAssetEModeCategory", conf.setAssetEModeCategory(m.asset(sym), cat), gas=300_000)
    lp = chain.accounts[9]
    for sym, amount in (("WETH", 10_000 * E18), ("USDC", 50_000_000 * E6), ("DAI", 50_000_000 * E18),
                        ("STETH", 10_000 * E18)):
        m.supply(lp, sym, amount, mint=True)
    return chain, m, chain.snapshot()


class Tape:
    """The book fed as a run would feed it: the reader's snapshot, then every block's receipts."""

    def __init__(self, m, book: AaveBook) -> None:
        self.m, self.book = m, book
        self.reader = AaveLogReader(m, "sim", "test")
        self.block = m.w3.eth.block_number
        ts = m.latest_timestamp() * NS
        for e in self.reader.snapshot(self.block, ts):
            book.apply(e)
        self.events = 0

    def drain(self) -> None:
        w3 = self.m.w3
        head = w3.eth.block_number
        for n in range(self.block + 1, head + 1):
            blk = w3.eth.get_block(n)
            receipts = [w3.eth.get_transaction_receipt(h) for h in blk["transactions"]]
            for e in self.reader.block_events(receipts, n, blk["timestamp"] * NS, blk["timestamp"]):
                self.book.apply(e)
                self.events += 1
        self.block = head

    def reconfigure(self) -> None:
        """The categories as the pool's getters give them now (what a market snapshot re-reads)."""
        ts = self.m.latest_timestamp() * NS
        for e in self.reader.snapshot(self.m.w3.eth.block_number, ts, prices=False):
            self.book.apply(e)


def check(tape: Tape, users: list[str]) -> int:
    tape.drain()
    m, now = tape.m, tape.m.latest_timestamp()
    for u in users:
        acc = tape.book.account(u.lower(), now)
        got = m.user_account_data(u)
        if acc is None:  # never seen by the book (the liquidator without receiveAToken): the pool's empty account
            assert u.lower() not in tape.book.users and got == (0, 0, 0, 0, 0, 2**256 - 1), (u, got)
            continue
        assert (acc.total_collateral_base, acc.total_debt_base, acc.liquidation_threshold, acc.ltv,
                acc.health_factor) == (got[0], got[1], got[3], got[4], got[5]), (u, acc, got)
    return len(users)


def open_position(m, user: str, category: int, coll: str, amount: int, debt: str, share: int) -> None:
    if category:
        m._send("setUserEMode", m.pool.functions.setUserEMode(category), user, gas=300_000)
    m.supply(user, coll, amount, mint=True)
    avail = m.user_account_data(user)[2]  # base currency, 8 dp
    dec = m.specs[debt].decimals
    m.borrow(user, debt, avail * share // 100 * 10**dec // m.price(debt))


def liquidate(tape: Tape, liq: str, user: str, coll: str, debt: str, receive: bool) -> tuple[int, int]:
    m, book = tape.m, tape.book
    m.mint(debt, liq, 10**30)
    got = m.liquidation_call(liq, coll, debt, user, 2**256 - 1, receive)
    t = got["timestamp"]  # predicted at the liquidation block's second, before the book sees it
    acc = book.account(user.lower(), t)
    pred = book.liquidation(user.lower(), m.asset(coll).lower(), m.asset(debt).lower(), 2**256 - 1, acc, t)
    assert (got["debtToCover"], got["liquidatedCollateralAmount"]) == (pred.debt_to_cover,
                                                                       pred.collateral_to_liquidator), (got, pred)
    return got["debtToCover"], got["liquidatedCollateralAmount"]


def test_emode_accounts_and_liquidations_equal_the_pool(emode_world) -> None:
    chain, m, base = emode_world
    revert_again(chain, base)
    rng = random.Random(5)
    book = AaveBook("v3.0")
    tape = Tape(m, book)
    a, b, c, ctl, liq = chain.accounts[2:7]
    open_position(m, a, STABLES, "DAI", 100_000 * E18, "USDC", 97)  # near the 93 % e-mode LTV
    open_position(m, b, ETH, "STETH", 50 * E18, "WETH", 97)  # valued at WETH's price (price source)
    open_position(m, c, ETH, "WETH", 40 * E18, "STETH", 90)
    open_position(m, ctl, 0, "DAI", 100_000 * E18, "USDC", 97)  # the control: the reserves' own 75 %
    users = [a, b, c, ctl]
    checks = check(tape, users)
    assert book.users[a.lower()].emode == STABLES and book.users[b.lower()].emode == ETH
    in_emode = book.account(a.lower(), m.latest_timestamp())
    control = book.account(ctl.lower(), m.latest_timestamp())
    assert in_emode.liquidation_threshold == 9500 and control.liquidation_threshold == 8000
    assert in_emode.total_debt_base > control.total_debt_base * 12 // 10  # e-mode lent more on the same collateral
    # category 2 values STETH at WETH's price (its price source), not at STETH's own, before and after it moves
    def steth_valued_at_weth() -> bool:
        held = m.atokens[m.asset("STETH")].functions.balanceOf(b).call()
        return book.account(b.lower(), m.latest_timestamp()).total_collateral_base == held * m.price("WETH") // E18
    assert steth_valued_at_weth()
    m.set_price("STETH", m.price("STETH") * 80 // 100)
    checks += check(tape, users)
    assert steth_valued_at_weth()
    for _ in range(6):  # time and prices move; the book follows the pool
        time_travel(chain, m.latest_timestamp() + rng.randint(1, 20) * DAY)
        sym = rng.choice(["WETH", "DAI", "USDC"])
        m.set_price(sym, m.price(sym) * rng.randint(990, 1010) // 1000)
        checks += check(tape, users)
    # category 1: a DAI depeg makes the stables borrower liquidatable; the e-mode bonus (1 %) applies
    while not book.account(a.lower(), m.latest_timestamp()).liquidatable:
        m.set_price("DAI", m.price("DAI") * 99 // 100)
        checks += check(tape, users)
    dai, usdc, weth, steth = (m.asset(x).lower() for x in ("DAI", "USDC", "WETH", "STETH"))
    assert book.prices(a.lower(), dai, usdc) == (m.price("DAI"), m.price("USDC"), 10100)  # e-mode bonus, own prices
    covered, seized = liquidate(tape, liq, a, "DAI", "USDC", receive=False)
    assert covered > 0 and seized > 0
    checks += check(tape, users + [liq])
    # category 2: the risk admin lowers the category's threshold (still above its reserves' own)
    m._send("setEModeCategory", m.configurator.functions.setEModeCategory(ETH, 8300, 8400, 10200, m.asset("WETH"),
                                                                           "eth"), gas=300_000)
    tape.drain()
    tape.reconfigure()
    checks += check(tape, users + [liq])
    assert book.account(b.lower(), m.latest_timestamp()).liquidatable
    assert book.prices(b.lower(), steth, weth) == (m.price("WETH"), m.price("WETH"), 10200)  # the price source's
    liquidated = 0
    for u, coll, debt in ((b, "STETH", "WETH"), (c, "WETH", "STETH")):
        acc = book.account(u.lower(), m.latest_timestamp())
        if acc.liquidatable:
            try:
                liquidate(tape, liq, u, coll, debt, receive=rng.random() < 0.5)
            except AaveCallReverted as e:  # the book said liquidatable: the pool must agree
                pytest.fail(f"{u}: the book predicted a liquidation the pool refused: {e}")
            liquidated += 1
            checks += check(tape, users + [liq])
    assert liquidated >= 1
    # a user in e-mode cannot borrow outside its category: the pool refuses, the book records nothing
    with pytest.raises(AaveCallReverted):
        m.borrow(c, "USDC", 10 * E6)
    checks += check(tape, users + [liq])
    assert checks > 40, checks
    print(f"\ne-mode parity: {checks} account checks, {tape.events} events, {1 + liquidated} liquidations")
