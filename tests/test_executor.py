"""tapedeck's AaveLiquidator (contracts/AaveLiquidator.sol, compiled by the pinned npm solc) on the
real Aave v3 market and real Uniswap V2 pairs on py-evm, anvil and revm.

For seeded borrowers made liquidatable by an oracle move (both close-factor regimes, requests above
and below the close-factor cap, one- and two-hop routes, interest accrued for up to a day, a 9 bps
flash premium; routes of one V2 pair, two V2 pairs, or one V3 pool whose exact-in swap is predicted
step by step over its tick bitmap), the owner's balance delta in the debt asset equals ``executor.predict`` (domain Aave
liquidation math at the block's timestamp + V2/V3 exact swap math + the premium) to the wei, and equals
the ``profit`` the contract logs. The executor reverts, costing only gas, when a swap moves its
pool before it in the same block, when ``minProfit`` is one wei above what it can make, and when a
competitor liquidated the borrower first in the block (Aave's ``45``, decoded as a lost race).
"""
from __future__ import annotations

import math
import random
from typing import Any

import pytest
from web3.logs import DISCARD

from tapedeck.domain import uniswap_v2 as v2
from tapedeck.sim.chain import uniswap_v2 as uv2
from tapedeck.sim.chain import uniswap_v3 as uv3
from tapedeck.sim.chain.aave_v3 import deploy_aave_v3
from tapedeck.sim.chain.artifacts import ArtifactMissing, load
from tapedeck.sim.chain.executor import LIQUIDATE_GAS, Hop, decode_revert, deploy_executor, explain_revert, predict
from tapedeck.sim.chain.pyevm import ChainTx, call_data, deploy, revert_reason, transact
from tests.conftest import CHAIN_BACKENDS, new_chain, revert_again

pytestmark = [pytest.mark.contract, pytest.mark.slow]

E6, E8, E18 = 10**6, 10**8, 10**18
MAX = 2**256 - 1
PREMIUM_BPS = 9
CASES = 20


@pytest.fixture(scope="module", params=CHAIN_BACKENDS)
def world(request) -> dict[str, Any]:
    try:
        chain = new_chain(request)
        market = deploy_aave_v3(chain.w3)
        executor = deploy_executor(market, chain.accounts[1])
    except ArtifactMissing as e:
        pytest.skip(f"contract builds missing: {e}")
    w3, admin = chain.w3, chain.accounts[0]
    market._send("premium", market.configurator.functions.updateFlashloanPremiumTotal(PREMIUM_BPS), gas=200_000)
    lp = chain.accounts[9]
    market.supply(lp, "USDC", 500_000_000 * E6, mint=True)
    market.supply(lp, "WETH", 100_000 * E18, mint=True)
    dai = deploy(chain.w3, load("@aave/core-v3", "MintableERC20"), "Dai", "DAI", 18, gas=2_000_000)
    factory, _router = uv2.deploy_factory_and_router(w3, market.asset("WETH"), admin)
    weth, usdc = market.tokens["WETH"], market.tokens["USDC"]
    pairs = {"WETH/USDC": uv2.create_pair(w3, factory, weth, usdc, admin),
             "WETH/DAI": uv2.create_pair(w3, factory, weth, dai, admin),
             "DAI/USDC": uv2.create_pair(w3, factory, dai, usdc, admin)}
    v3dep = uv3.deploy_v3(w3, sender=admin, weth=market.asset("WETH"))
    return dict(chain=chain, market=market, executor=executor, pairs=pairs, dai=dai, v3=v3dep, snap=chain.snapshot())


def _v3_pool(world: dict[str, Any], price: int, depth_usd: int) -> Hop:
    """A WETH/USDC 0.3% V3 pool at the oracle's price with one full-range position of ``depth_usd`` a side."""
    market, admin = world["market"], world["chain"].accounts[0]
    weth, usdc = market.tokens["WETH"], market.tokens["USDC"]
    weth_first = int(weth.address, 16) < int(usdc.address, 16)
    # sqrt(token1/token0) in base units, Q64.96: USDC per WETH is price/1e8 * 1e6/1e18
    ratio_num, ratio_den = (price * 10**6, 10**26) if weth_first else (10**26, price * 10**6)
    sqrt_p = math.isqrt(ratio_num * 2**192 // ratio_den)
    pool = uv3.create_pool(world["v3"], weth, usdc, 3000, sqrt_p, admin)
    amounts = {weth.address: depth_usd * E18 * E8 // price, usdc.address: depth_usd * E6}
    for token in (weth, usdc):
        market.mint(token.address, admin, amounts[token.address])
    uv3.mint_position(pool, admin, -887220, 887220, amounts[pool.token0.address], amounts[pool.token1.address])
    return Hop(pool.address, v3=True)


def _fund(world: dict[str, Any], price: int, depth_usd: int) -> None:
    """Fund every pair at the oracle's price (8 dp), ``depth_usd`` of each side."""
    market, chain, dai = world["market"], world["chain"], world["dai"]
    admin = chain.accounts[0]
    amounts = {"WETH": depth_usd * E18 * E8 // price, "USDC": depth_usd * E6, "DAI": depth_usd * E18}
    for name, pair in world["pairs"].items():
        for token in (pair.token0, pair.token1):
            sym = token.functions.symbol().call()
            amount = amounts[sym] * (3 if name == "WETH/USDC" else 1)
            transact(chain.w3, token.get_function_by_signature("mint(address,uint256)")(admin, amount), admin, 120_000)
            transact(chain.w3, token.functions.transfer(pair.pair.address, amount), admin, 100_000)
        transact(chain.w3, pair.pair.functions.mint(admin), admin, 300_000)
    del dai


def _borrower(world: dict[str, Any], who: str, weth: int, usdc: int) -> None:
    market = world["market"]
    market.supply(who, "WETH", weth, mint=True)
    market.borrow(who, "USDC", usdc)


def _tx(chain: Any, sender: str, fn: Any, gas: int, nonce: int | None = None, value: int = 0) -> ChainTx:
    base = chain.w3.eth.get_block("latest")["baseFeePerGas"]
    n = chain.w3.eth.get_transaction_count(sender) if nonce is None else nonce
    return ChainTx(sender, n, gas, 2 * base + 10**9, 10**9, fn.address, call_data(fn), value)


def _liquidatable(world: dict[str, Any], rng: random.Random, hf_target: float) -> tuple[str, int]:
    """A borrower at HF ~1.25 whose collateral price then falls to reach ``hf_target``; returns (user, new price)."""
    chain, market = world["chain"], world["market"]
    user = chain.accounts[2]
    weth = int(rng.uniform(0.5, 400) * E18)
    price0 = 2000 * E8
    usdc = int(weth * price0 // E18 // 100 * 0.825 / 1.25)  # USDC 6 dp from 8-dp base
    _borrower(world, user, weth, usdc)
    price = int(price0 * hf_target / 1.25)
    market.set_price("WETH", price)
    return user, price


def _route(world: dict[str, Any], two_hops: bool) -> list[Hop]:
    p = world["pairs"]
    if two_hops:
        return [Hop(p["WETH/DAI"].pair.address), Hop(p["DAI/USDC"].pair.address)]
    return [Hop(p["WETH/USDC"].pair.address)]


@pytest.mark.parametrize("case", range(CASES))
def test_profit_equals_the_prediction_to_the_wei(world: dict[str, Any], case: int) -> None:
    chain, market, ex = world["chain"], world["market"], world["executor"]
    revert_again(chain, world["snap"])
    rng = random.Random(1000 + case)
    regime = case % 3  # 0: HF in (0.95, 1) -> 50%; 1: HF < 0.95 -> 100%; 2: request above the cap
    user, price = _liquidatable(world, rng, [0.975, 0.90, 0.97][regime])
    shallow = case >= CASES - 2  # the last two: pools too thin to cover the loan; the executor reverts
    _fund(world, price, 50_000 if shallow else rng.choice([20_000_000, 200_000_000, 2_000_000_000]))
    debt = market.variable_debt[market.asset("USDC")].functions.balanceOf(user).call()
    cover = {0: int(debt * rng.uniform(0.05, 0.5)), 1: int(debt * rng.uniform(0.3, 1.0)), 2: debt}[regime]
    if shallow:
        cover = debt
    route = _route(world, two_hops=case % 2 == 1)
    if case % 5 == 3 and not shallow:  # through a V3 pool (the swap callback pays it)
        route = [_v3_pool(world, price, rng.choice([5_000_000, 50_000_000]))]
    ts = market.latest_timestamp() + rng.randint(1, 86_400)
    expected = predict(market, "WETH", "USDC", user, cover, route, ts, premium_bps=PREMIUM_BPS)
    min_profit = max(expected.profit, 0) if case % 4 == 0 else 0  # exactly the prediction is still enough
    usdc = market.tokens["USDC"]
    before = usdc.functions.balanceOf(ex.owner).call()
    fn = ex.liquidate_call("WETH", "USDC", user, cover, route, min_profit)
    [receipt] = chain.mine_block([_tx(chain, ex.owner, fn, LIQUIDATE_GAS)], ts)
    if expected.profit < min_profit:  # a shallow pool: the sale does not cover the loan; the contract agrees
        assert receipt["status"] == 0
        name, args = decode_revert(revert_reason(fn, {"from": ex.owner}, receipt["blockNumber"] - 1))
        # (an eth_call replay runs at another timestamp, so its profit figure differs by the interest)
        assert name == "ProfitBelowMinimum" and args["profit"] < min_profit == args["minProfit"]
        assert usdc.functions.balanceOf(ex.owner).call() == before
        return
    assert not shallow
    assert receipt["status"] == 1, explain_revert(revert_reason(fn, {"from": ex.owner}))
    assert usdc.functions.balanceOf(ex.owner).call() - before == expected.profit
    [log] = market.liquidation_logs(receipt)
    assert (log["debtToCover"], log["liquidatedCollateralAmount"]) == (expected.debt_repaid,
                                                                       expected.collateral_seized)
    [mine] = ex.contract.events.Liquidated().process_receipt(receipt, errors=DISCARD)
    assert (mine.args.profit, mine.args.premium, mine.args.debtRepaid) == (expected.profit, expected.premium,
                                                                            expected.debt_repaid)
    assert receipt["gasUsed"] < LIQUIDATE_GAS


def _setup_one(world: dict[str, Any], hf: float, seed: int) -> tuple[str, list[Hop], int, Any]:
    chain, market = world["chain"], world["market"]
    revert_again(chain, world["snap"])
    rng = random.Random(seed)
    user, price = _liquidatable(world, rng, hf)
    _fund(world, price, 20_000_000)
    debt = market.variable_debt[market.asset("USDC")].functions.balanceOf(user).call()
    return user, _route(world, False), debt, rng


def _owner_balances(world: dict[str, Any]) -> tuple[int, int]:
    ex = world["executor"]
    return world["market"].tokens["USDC"].functions.balanceOf(ex.owner).call(), world["chain"].w3.eth.get_balance(
        ex.owner)


def _assert_only_gas(world: dict[str, Any], before: tuple[int, int], receipt: Any) -> None:
    usdc, eth = _owner_balances(world)
    assert receipt["status"] == 0
    assert usdc == before[0]
    assert before[1] - eth == receipt["gasUsed"] * receipt["effectiveGasPrice"]


def test_reverts_at_only_gas_cost_when_a_swap_moves_the_pool_first_in_the_same_block(world: dict[str, Any]) -> None:
    chain, market, ex = world["chain"], world["market"], world["executor"]
    user, route, debt, _ = _setup_one(world, 0.975, 7)
    cover = debt // 2
    ts = market.latest_timestamp() + 12
    expected = predict(market, "WETH", "USDC", user, cover, route, ts, premium_bps=PREMIUM_BPS)
    pair = world["pairs"]["WETH/USDC"]
    trader = chain.accounts[7]
    weth = market.tokens["WETH"]
    dump = 500 * E18  # sells WETH into the pair just before the executor
    market.mint("WETH", trader, dump)
    r0, r1 = pair.reserves()
    zero = pair.token0.address == weth.address
    out = v2.get_amount_out(dump, r0, r1) if zero else v2.get_amount_out(dump, r1, r0)
    n = chain.w3.eth.get_transaction_count(trader)
    pay = _tx(chain, trader, weth.functions.transfer(pair.pair.address, dump), 100_000, n)
    swap = _tx(chain, trader, pair.pair.functions.swap(0 if zero else out, out if zero else 0, trader, b""),
               200_000, n + 1)
    fn = ex.liquidate_call("WETH", "USDC", user, cover, route, expected.profit)
    before = _owner_balances(world)
    receipts = chain.mine_block([pay, swap, _tx(chain, ex.owner, fn, LIQUIDATE_GAS)], ts)
    assert [r["status"] for r in receipts[:2]] == [1, 1]
    _assert_only_gas(world, before, receipts[2])
    name, args = decode_revert(revert_reason(fn, {"from": ex.owner}))
    assert name == "ProfitBelowMinimum" and args["minProfit"] == expected.profit
    assert args["profit"] < expected.profit
    # the borrower was not liquidated: the same call with the old minimum still reverts, a lower one goes
    assert market.variable_debt[market.asset("USDC")].functions.balanceOf(user).call() >= debt


def test_reverts_when_min_profit_is_one_wei_above_what_it_can_make(world: dict[str, Any]) -> None:
    chain, market, ex = world["chain"], world["market"], world["executor"]
    user, route, debt, _ = _setup_one(world, 0.9, 8)
    ts = market.latest_timestamp() + 30
    expected = predict(market, "WETH", "USDC", user, debt, route, ts, premium_bps=PREMIUM_BPS)
    fn = ex.liquidate_call("WETH", "USDC", user, debt, route, expected.profit + 1)
    before = _owner_balances(world)
    [receipt] = chain.mine_block([_tx(chain, ex.owner, fn, LIQUIDATE_GAS)], ts)
    _assert_only_gas(world, before, receipt)
    name, args = decode_revert(revert_reason(fn, {"from": ex.owner}, receipt["blockNumber"] - 1))
    assert name == "ProfitBelowMinimum" and args["minProfit"] == expected.profit + 1
    assert explain_revert(revert_reason(fn, {"from": ex.owner})).startswith("ProfitBelowMinimum(")


def test_reverts_as_a_lost_race_when_a_competitor_liquidates_first(world: dict[str, Any]) -> None:
    chain, market, ex = world["chain"], world["market"], world["executor"]
    user, route, debt, _ = _setup_one(world, 0.9, 9)  # HF < 0.95: the competitor may take all of it
    rival = chain.accounts[6]
    market.mint("USDC", rival, 2 * debt)
    market.approve("USDC", rival)
    ts = market.latest_timestamp() + 12
    first = market.pool.functions.liquidationCall(market.asset("WETH"), market.asset("USDC"), user, MAX, False)
    fn = ex.liquidate_call("WETH", "USDC", user, debt, route, 0)
    before = _owner_balances(world)
    receipts = chain.mine_block([_tx(chain, rival, first, 900_000), _tx(chain, ex.owner, fn, LIQUIDATE_GAS)], ts)
    assert receipts[0]["status"] == 1
    _assert_only_gas(world, before, receipts[1])
    reason = revert_reason(fn, {"from": ex.owner})
    assert decode_revert(reason) == ("aave", {"code": "45"})
    assert explain_revert(reason).startswith("lost race: 45 HEALTH_FACTOR_NOT_BELOW_THRESHOLD")


def test_only_the_owner_may_call_it(world: dict[str, Any]) -> None:
    chain, market, ex = world["chain"], world["market"], world["executor"]
    user, route, debt, _ = _setup_one(world, 0.9, 10)
    fn = ex.liquidate_call("WETH", "USDC", user, debt, route, 0)
    name, args = decode_revert(revert_reason(fn, {"from": chain.accounts[5]}))
    assert name == "NotOwner" and args["caller"].lower() == chain.accounts[5].lower()
