"""The domain's Aave v3.0 math equals the real bytecode (npm @aave/core-v3 1.19.3) on py-evm, anvil and
revm, to the wei.

One market is deployed per module and backend; each case reverts to the same snapshot. For a seeded set of borrowers
(WETH and/or USDC collateral, USDC or WETH debt, sizes over six orders of magnitude, interest accrued over
up to 90 days, both reserves carrying background borrows so both indexes move):

* ``domain.account_data`` of the positions read from the chain and projected with the domain's index math
  equals ``getUserAccountData`` field for field, before and after the price move;
* after the oracle moves, ``liquidationCall``'s ``LiquidationCall`` event (debtToCover,
  liquidatedCollateralAmount) equals ``domain.liquidation`` evaluated at the liquidation block's
  timestamp, in the 50% and 100% close-factor regimes and when the collateral is insufficient, and the
  liquidator's and treasury's receipts and the user's flags agree;
* liquidating a healthy position reverts with Aave's ``45`` and the domain refuses it with the same code.
"""
from __future__ import annotations

import random
import time

import pytest

from tapedeck.domain import aave_v3 as aave
from tapedeck.sim.chain.aave_v3 import AaveCallReverted, deploy_aave_v3
from tapedeck.sim.chain.artifacts import ArtifactMissing, node_modules
from tests.conftest import CHAIN_BACKENDS, new_chain, revert_again, time_travel

pytestmark = pytest.mark.contract

E6, E8, E18 = 10**6, 10**8, 10**18
MAX = 2**256 - 1
DAY = 86_400

# (regime, collateral, debt, mixed collateral): regimes are the HF the price move aims for
CASES = [
    ("50", "WETH", "USDC", False), ("50", "WETH", "USDC", True), ("50", "USDC", "WETH", False),
    ("50", "WETH", "USDC", False),
    ("100", "WETH", "USDC", False), ("100", "WETH", "USDC", True), ("100", "USDC", "WETH", False),
    ("100", "WETH", "USDC", False),
    ("capped", "WETH", "USDC", False), ("capped", "USDC", "WETH", False), ("capped", "WETH", "USDC", False),
    ("healthy", "WETH", "USDC", False), ("healthy", "WETH", "USDC", True),
]
TARGET_HF = {"50": 0.975, "100": 0.915, "capped": 0.7, "healthy": 1.03}


@pytest.fixture(scope="module", params=CHAIN_BACKENDS)
def world(request):
    """A deployed market with deep liquidity and background borrows on both reserves, and its snapshot."""
    try:
        chain = new_chain(request)
        market = deploy_aave_v3(chain.w3)
    except ArtifactMissing as e:
        pytest.skip(f"contract builds not installed under {node_modules()}: {e}")
    lp, background = chain.accounts[9], chain.accounts[8]
    market.supply(lp, "WETH", 10_000 * E18, mint=True)
    market.supply(lp, "USDC", 50_000_000 * E6, mint=True)
    market.supply(background, "WETH", 20_000 * E18, mint=True)
    market.supply(background, "USDC", 4_000_000 * E6, mint=True)
    market.borrow(background, "USDC", 20_000_000 * E6)
    market.borrow(background, "WETH", 3_000 * E18)
    return chain, market, chain.snapshot()


def units(market, symbol: str, value_usd: float) -> int:
    """Base units of ``symbol`` worth about ``value_usd`` at the oracle price."""
    return int(value_usd * 10**8 * 10 ** market.specs[symbol].decimals // market.price(symbol))


def positions(market, reserves: dict, timestamp: int) -> list[aave.Position]:
    return [ur.position_at(timestamp) for ur in reserves.values()]


def assert_account_parity(market, user: str) -> aave.AccountData:
    """Chain state read at the latest block, projected to its timestamp, equals getUserAccountData."""
    reserves = market.user_reserves(user)
    expected = aave.account_data(positions(market, reserves, market.latest_timestamp()))
    got = market.user_account_data(user)
    assert got == (expected.total_collateral_base, expected.total_debt_base, expected.available_borrows_base,
                   expected.liquidation_threshold, expected.ltv, expected.health_factor)
    return expected


def price_for_hf(market, user: str, asset: str, target_wad: int) -> int:
    """The oracle price of ``asset`` (8 dp) that puts the user's HF at about ``target_wad`` (domain search)."""
    reserves = market.user_reserves(user)
    ts = market.latest_timestamp()
    addr = market.asset(asset)

    def hf(p: int) -> int:
        moved = {a: (aave.UserReserve(ur.reserve, p, ur.scaled_collateral, ur.scaled_variable_debt, ur.stable_debt,
                                      ur.using_as_collateral) if a == addr else ur) for a, ur in reserves.items()}
        return aave.health_factor(positions(market, moved, ts))

    lo, hi = 1, reserves[addr].price * 1000
    rising = hf(hi) > hf(lo)  # collateral: HF rises with its price; debt: falls
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (hf(mid) < target_wad) == rising:
            lo = mid
        else:
            hi = mid
    return hi


def test_health_factor_and_liquidation_match_the_real_pool(world) -> None:
    chain, m, base = world
    rng = random.Random(20240611)
    borrower, liquidator = chain.accounts[1], chain.accounts[2]
    seen: dict[str, int] = {}
    timings: list[float] = []
    for i, (regime, coll_sym, debt_sym, mixed) in enumerate(CASES):
        t0 = time.perf_counter()
        revert_again(chain, base)
        # --- open the position: collateral worth $100 to $5M, borrow 50-99% of the limit
        value_usd = 10 ** rng.uniform(2, 6.7)
        m.supply(borrower, coll_sym, units(m, coll_sym, value_usd), mint=True)
        if mixed:  # a second collateral worth 20-50% of the first (different liquidation threshold)
            other = "USDC" if coll_sym == "WETH" else "WETH"
            m.supply(borrower, other, units(m, other, value_usd * rng.uniform(0.2, 0.5)), mint=True)
        available = m.user_account_data(borrower)[2]
        debt_price = m.price(debt_sym)
        amount = available * rng.uniform(0.5, 0.99) * 10 ** m.specs[debt_sym].decimals // debt_price
        m.borrow(borrower, debt_sym, int(amount))
        assert_account_parity(m, borrower)
        # --- let interest accrue, then check again (indexes projected by the domain, not read)
        time_travel(chain, m.latest_timestamp() + rng.randint(1, 90 * DAY))
        assert_account_parity(m, borrower)

        # --- move the oracle to the regime's health factor; parity again
        # (WETH moves: down when it is the collateral, up when it is the debt)
        target = int(TARGET_HF[regime] * E18)
        m.set_price("WETH", price_for_hf(m, borrower, "WETH", target))
        after = assert_account_parity(m, borrower)
        assert abs(after.health_factor - target) < 10**15, (regime, after.health_factor)

        # --- liquidate; the domain sees the state read before, at the liquidation block's timestamp
        reserves = m.user_reserves(borrower)
        coll_addr, debt_addr = m.asset(coll_sym), m.asset(debt_sym)
        user_debt_now = reserves[debt_addr].position_at(m.latest_timestamp()).debt
        cover = MAX if regime == "capped" or rng.random() < 0.4 else int(user_debt_now * rng.uniform(0.05, 0.6))
        receive_atoken = rng.random() < 0.3
        m.mint(debt_sym, liquidator, 10 ** (m.specs[debt_sym].decimals + 9))
        before_liq = m.balance_of(coll_sym, liquidator)
        a_liq_before = m.atokens[coll_addr].functions.balanceOf(liquidator).call()
        a_treasury_before = m.atokens[coll_addr].functions.balanceOf(m.treasury).call()

        def expected_at(ts: int) -> aave.LiquidationResult:
            pos = {a: ur.position_at(ts) for a, ur in reserves.items()}
            cfg = reserves[coll_addr].reserve.config
            return aave.liquidation(aave.LiquidationInput(
                health_factor=aave.health_factor(pos.values()), user_debt=pos[debt_addr].debt,
                user_collateral=pos[coll_addr].collateral, debt_to_cover=cover,
                collateral_price=reserves[coll_addr].price, debt_price=reserves[debt_addr].price,
                collateral_decimals=cfg.decimals, debt_decimals=reserves[debt_addr].reserve.config.decimals,
                liquidation_bonus=cfg.liquidation_bonus, protocol_fee=cfg.liquidation_protocol_fee,
                collateral_enabled=reserves[coll_addr].using_as_collateral))

        if regime == "healthy":
            with pytest.raises(AaveCallReverted) as reverted:
                m.liquidation_call(liquidator, coll_sym, debt_sym, borrower, cover, receive_atoken)
            assert reverted.value.reason == aave.HEALTH_FACTOR_NOT_BELOW_THRESHOLD
            with pytest.raises(aave.LiquidationNotAllowed) as refused:
                expected_at(m.latest_timestamp() + 1)
            assert refused.value.code == aave.HEALTH_FACTOR_NOT_BELOW_THRESHOLD
            seen["healthy"] = seen.get("healthy", 0) + 1
            timings.append(time.perf_counter() - t0)
            continue

        event = m.liquidation_call(liquidator, coll_sym, debt_sym, borrower, cover, receive_atoken)
        r = expected_at(event["timestamp"])
        assert (event["debtToCover"], event["liquidatedCollateralAmount"]) == (r.debt_to_cover,
                                                                               r.collateral_to_liquidator), \
            (i, regime, event, r)
        assert (event["collateralAsset"], event["debtAsset"], event["user"]) == (coll_addr, debt_addr, borrower)
        # what the liquidator and the treasury received
        if receive_atoken:
            got = m.atokens[coll_addr].functions.balanceOf(liquidator).call() - a_liq_before
            assert abs(got - r.collateral_to_liquidator) <= 1  # aToken transfers move rayDiv'd scaled amounts
        else:
            assert m.balance_of(coll_sym, liquidator) - before_liq == r.collateral_to_liquidator
        treasury_gain = m.atokens[coll_addr].functions.balanceOf(m.treasury).call() - a_treasury_before
        assert r.protocol_fee > 0 and abs(treasury_gain - r.protocol_fee) <= 2
        # the user's flags follow the domain's debt_cleared / collateral_cleared
        user_config = m.pool.functions.getUserConfiguration(borrower).call()[0]
        coll_id = m.pool.functions.getReserveData(coll_addr).call()[7]
        debt_id = m.pool.functions.getReserveData(debt_addr).call()[7]
        assert aave.user_is_borrowing(user_config, debt_id) == (not r.debt_cleared)
        assert aave.user_is_using_as_collateral(user_config, coll_id) == (not r.collateral_cleared)

        kind = "capped" if r.collateral_capped else f"cf{r.close_factor}"
        if regime == "capped":
            assert r.collateral_capped and r.collateral_cleared, (i, r)
        else:
            assert r.close_factor == (5000 if regime == "50" else 10_000), (i, r)
        seen[kind] = seen.get(kind, 0) + 1
        timings.append(time.perf_counter() - t0)

    assert seen.get("cf5000", 0) >= 3 and seen.get("cf10000", 0) >= 3 and seen.get("capped", 0) >= 3, seen
    assert seen.get("healthy", 0) == 2, seen
    print(f"\n{len(CASES)} cases, per case {min(timings):.2f}-{max(timings):.2f}s, "
          f"mean {sum(timings) / len(timings):.2f}s; coverage {seen}; deploy {m.deploy_seconds:.2f}s")


def test_snapshot_restore_is_cheap_and_exact(world) -> None:
    chain, m, base = world
    revert_again(chain, base)
    before = m.user_account_data(chain.accounts[8])
    m.set_price("WETH", 1 * E8)
    assert m.user_account_data(chain.accounts[8]) != before
    t0 = time.perf_counter()
    revert_again(chain, base)
    elapsed = time.perf_counter() - t0
    assert m.user_account_data(chain.accounts[8]) == before
    assert m.price("WETH") == 2000 * E8
    print(f"\nsnapshot restore {elapsed * 1000:.0f} ms")
