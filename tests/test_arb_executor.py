"""The atomic arbitrage executor (``contracts/ArbExecutor.sol``, built by ``make contracts``) on py-evm
with the real Uniswap V2 and V3 builds: its realised profit equals the domain's prediction to the
wei, and it reverts, losing only gas, when a competitor moved the pool first in the same block.

One world per module: three tokens A, B, C; two V2 factories (so two A/B pairs: V2<->V2), a B/C
pair; V3 A/B pools at 0.05 % and 0.3 % and a C/A pool at 0.3 %, each with a full-range position
and narrow ones, so V3 hops cross initialized ticks. Each generated case first skews one pool
(a swap of random size and direction), then runs a two-pool (V2<->V3, V3<->V3, V2<->V2) or
triangular route from A, flash-funded or from the executor's own balance, at a generated size,
with ``minProfit`` at, above or below the prediction: a case at or below it must realise exactly
the predicted profit (owner's balance, the ``Arbitraged`` log); one above it must revert with
``ProfitBelowMinimum(predicted, minProfit)`` -- the profit in the revert is the prediction too.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from tapedeck.domain import uniswap_v3 as v3

sys.path.insert(0, str(Path(__file__).parent))

pytestmark = pytest.mark.contract

BIG = 10**40


def _build() -> Any:
    from test_uniswap_v3_contracts import _require_builds

    from tapedeck.sim.chain.arb_executor import deploy_arb_executor
    from tapedeck.sim.chain.artifacts import ArtifactMissing, load, load_own
    from tapedeck.sim.chain.pyevm import PyEvmChain, deploy, transact
    from tapedeck.sim.chain.uniswap_v2 import add_liquidity, create_pair, deploy_factory_and_router
    from tapedeck.sim.chain.uniswap_v3 import create_pool, deploy_v3, mint_position

    _require_builds()
    try:
        load_own("ArbExecutor")
    except ArtifactMissing as e:
        pytest.skip(str(e))
    chain = PyEvmChain()
    w3, me, bot, rival = chain.w3, chain.accounts[0], chain.accounts[1], chain.accounts[2]
    art = load("@aave/core-v3", "MintableERC20")
    tokens = [deploy(w3, art, f"Token {s}", s, 18, sender=me, gas=2_000_000) for s in "ABC"]
    for t in tokens:
        transact(w3, t.functions.mint(me, BIG), me, gas=100_000)
    a, b, c = tokens
    f1, _ = deploy_factory_and_router(w3, a.address, me)
    f2, _ = deploy_factory_and_router(w3, a.address, me)
    dep = deploy_v3(w3, sender=me)
    for t in tokens:
        transact(w3, t.functions.approve(dep.manager.address, 2**256 - 1), me, gas=100_000)
    v2_ab = create_pair(w3, f1, a, b, me)
    v2_ab2 = create_pair(w3, f2, a, b, me)
    v2_bc = create_pair(w3, f1, b, c, me)
    for m in (v2_ab, v2_ab2, v2_bc):
        add_liquidity(m, 10**24, 10**24, me)

    def v3_pool(x: Any, y: Any, fee: int) -> Any:
        p = create_pool(dep, x, y, fee, v3.get_sqrt_ratio_at_tick(0))
        s = p.tick_spacing
        full = (-(887272 // s) * s, 887272 // s * s)
        mint_position(p, me, *full, 10**22, 10**22)
        for k in (1, 2, 3, 7, 12, 300):
            mint_position(p, me, -k * s, k * s, 10**20, 10**20)
        mint_position(p, me, -260 * s, -3 * s, 0, 10**21)  # below the price: token1 only
        return p

    v3_ab5, v3_ab30, v3_ca = v3_pool(a, b, 500), v3_pool(a, b, 3000), v3_pool(c, a, 3000)
    ex = deploy_arb_executor(w3, bot)
    rival_ex = deploy_arb_executor(w3, rival)
    transact(w3, a.functions.mint(ex.address, 10**23), me, gas=100_000)  # for the own-balance cases
    pools = dict(v2_ab=v2_ab.pair.address, v2_ab2=v2_ab2.pair.address, v2_bc=v2_bc.pair.address,
                 v3_ab5=v3_ab5.address, v3_ab30=v3_ab30.address, v3_ca=v3_ca.address)
    return SimpleNamespace(chain=chain, w3=w3, me=me, bot=bot, rival=rival, a=a, b=b, c=c, ex=ex, rival_ex=rival_ex,
                           pools=pools, v3={"v3_ab5": v3_ab5, "v3_ab30": v3_ab30, "v3_ca": v3_ca},
                           v2={"v2_ab": v2_ab, "v2_ab2": v2_ab2, "v2_bc": v2_bc})


@pytest.fixture(scope="module")
def world() -> Any:
    return _build()


ROUTES = {
    "v2-v3": ("v2_ab", "v3_ab5"), "v3-v2": ("v3_ab30", "v2_ab"), "v3-v3": ("v3_ab5", "v3_ab30"),
    "v2-v2": ("v2_ab", "v2_ab2"), "triangle": ("v2_ab", "v2_bc", "v3_ca"),
}  # each is tried both ways round


def hops(w: Any, names: tuple[str, ...]) -> list[Any]:
    from tapedeck.sim.chain.executor import Hop

    return [Hop(w.pools[n], n.startswith("v3")) for n in names]


def skew(w: Any, name: str, token_in: Any, amount: int) -> None:
    """Move one pool: ``amount`` of ``token_in`` swapped in by the deployer."""
    from tapedeck.sim.chain.pyevm import transact
    from tapedeck.sim.chain.uniswap_v2 import swap_exact_in
    from tapedeck.sim.chain.uniswap_v3 import approve_router, swap_exact_input

    from tapedeck.domain.uniswap_v2 import get_amount_out

    if name.startswith("v3"):
        p = w.v3[name]
        approve_router(p, w.me)
        swap_exact_input(p, w.me, token_in, amount, gas=5_000_000)
        return
    m = w.v2[name]
    zero = token_in.address == m.token0.address
    r0, r1 = m.reserves()
    out = get_amount_out(amount, r0, r1) if zero else get_amount_out(amount, r1, r0)
    swap_exact_in(m, amount, zero, out, w.me)
    del transact


def balance(token: Any, who: str) -> int:
    return int(token.functions.balanceOf(who).call())


@pytest.mark.slow
def test_generated_routes_realise_the_predicted_profit_to_the_wei(world: Any) -> None:
    from tapedeck.sim.chain.arb_executor import decode_revert, predict, read_state
    from tapedeck.sim.chain.pyevm import TransactionReverted, transact

    w = world
    base = w.chain.snapshot()
    seen: Counter[str] = Counter()
    started = time.perf_counter()

    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              phases=(Phase.generate,),  # no shrinking on a chain: each example deploys and mints
              suppress_health_check=[HealthCheck.too_slow])
    @given(kind=st.sampled_from(sorted(ROUTES)), skewed=st.integers(0, 2), skew_in=st.sampled_from("ABC"),
           skew_size=st.integers(21, 23), size=st.floats(-0.7, 0.3), flash=st.booleans(),
           margin=st.sampled_from(("at", "below", "above")))
    def run(kind: str, skewed: int, skew_in: str, skew_size: int, size: float, flash: bool, margin: str) -> None:
        w.chain.revert(base)
        names = ROUTES[kind]
        target = names[min(skewed, len(names) - 1)]
        tok = {"A": w.a, "B": w.b, "C": w.c}[skew_in]
        pool_tokens = {"v2_ab": "AB", "v2_ab2": "AB", "v2_bc": "BC", "v3_ab5": "AB", "v3_ab30": "AB", "v3_ca": "CA"}
        if skew_in not in pool_tokens[target]:
            tok = {"A": w.a, "B": w.b, "C": w.c}[pool_tokens[target][0]]
        skew(w, target, tok, 10**skew_size // 3)
        state, specs = read_state(w.w3, list(dict.fromkeys(w.pools[n] for n in names)), backend=w.chain)
        # the way round and the size (on a coarse grid) that pay most: the skew made one direction
        # the arbitrage; then a generated multiple of that size
        sizes = [10**(17 + k // 2) * (3 if k % 2 else 1) for k in range(15)]
        grid = [(predict(state, specs, w.a.address, x, r), x, r) for x in sizes
                for r in (hops(w, names), hops(w, names[::-1]))]
        _, best, route = max(grid, key=lambda o: o[0].profit if o[0] is not None else -2**256)
        amount = max(1, int(best * 10**size))
        pred = predict(state, specs, w.a.address, amount, route)
        assert pred is not None
        min_profit = max(0, pred.profit + {"at": 0, "below": -10**15, "above": 1}[margin])
        fn = w.ex.arbitrage_call(w.a, amount, route, min_profit, flash=flash)
        owner_before, ex_before = balance(w.a, w.bot), balance(w.a, w.ex.address)
        if pred.profit < min_profit:
            with pytest.raises(TransactionReverted) as info:
                transact(w.w3, fn, w.bot, gas=3_000_000)
            name, args = decode_revert(str(info.value).split(": ", 1)[-1])
            assert (name, args) == ("ProfitBelowMinimum", {"profit": pred.profit, "minProfit": min_profit}), info.value
            assert (balance(w.a, w.bot), balance(w.a, w.ex.address)) == (owner_before, ex_before)
            seen["reverted with the predicted profit"] += 1
            event("reverted below minProfit")
        else:
            receipt = transact(w.w3, fn, w.bot, gas=3_000_000)
            log = w.ex.arbitraged(receipt)
            assert log is not None and log["profit"] == pred.profit and log["amount_out"] == pred.amount_out
            assert balance(w.a, w.bot) - owner_before == pred.profit
            assert balance(w.a, w.ex.address) == ex_before  # flash or own: the executor keeps nothing
            seen["realised the predicted profit"] += 1
            seen["profit > 0"] += pred.profit > 0
            event("realised")
        seen[kind] += 1
        seen["flash" if flash else "own balance"] += 1
        seen["a V3 hop crossed initialized ticks"] += any(pred.crossed)
        event(kind)

    run()
    print(f"\narbitrage executor: {dict(seen)} in {time.perf_counter() - started:.1f}s")
    assert seen["realised the predicted profit"] >= 10 and seen["reverted with the predicted profit"] >= 5
    assert seen["profit > 0"] >= 5 and seen["a V3 hop crossed initialized ticks"] >= 5
    assert all(seen[k] >= 2 for k in ROUTES) and seen["flash"] >= 5 and seen["own balance"] >= 5


def test_a_competitor_first_in_the_block_makes_it_revert_at_the_cost_of_gas(world: Any) -> None:
    """Both executors see the same gap and send the same route; the rival's lands first in the block,
    so the bot's, priced on the state before the block, reverts with ``ProfitBelowMinimum`` and the
    bot pays gas and nothing else."""
    from tapedeck.sim.chain.arb_executor import decode_revert, predict, read_state
    from tapedeck.sim.chain.pyevm import ChainTx, call_data, revert_reason

    w = world
    sid = w.chain.snapshot()
    try:
        skew(w, "v3_ab5", w.b, 10**23)  # B sold into the 0.05 % pool: A is dear there. A->B on V3, B->A on V2
        route = hops(w, ("v3_ab5", "v2_ab"))
        state, specs = read_state(w.w3, [h.pool for h in route], backend=w.chain)
        amount = 10**21
        pred = predict(state, specs, w.a.address, amount, route)
        assert pred is not None and pred.profit > 0
        floor = pred.profit * 9 // 10  # the bot accepts 10 % less than it predicts
        mine = w.ex.arbitrage_call(w.a, amount, route, floor, flash=True)
        theirs = w.rival_ex.arbitrage_call(w.a, 3 * amount, route, 0, flash=True)  # the rival takes more of the gap
        base_fee = w.w3.eth.get_block("latest")["baseFeePerGas"]
        txs = [ChainTx(w.rival, w.w3.eth.get_transaction_count(w.rival), 3_000_000, 10 * base_fee + 2 * 10**9,
                       2 * 10**9, w.rival_ex.address, call_data(theirs)),
               ChainTx(w.bot, w.w3.eth.get_transaction_count(w.bot), 3_000_000, 10 * base_fee + 10**9, 10**9,
                       w.ex.address, call_data(mine))]
        a_before, eth_before = balance(w.a, w.bot), w.w3.eth.get_balance(w.bot)
        ts = w.w3.eth.get_block("latest")["timestamp"] + 12
        r_rival, r_bot = w.chain.mine_block(txs, ts)
        assert r_rival["status"] == 1 and r_bot["status"] == 0
        rival = predict(state, specs, w.a.address, 3 * amount, route)
        assert w.rival_ex.arbitraged(r_rival)["profit"] == rival.profit > 0  # predicted on the same state, too
        name, args = decode_revert(revert_reason(mine, {"from": w.bot, "gas": 3_000_000}))
        assert name == "ProfitBelowMinimum" and args["minProfit"] == floor > args["profit"]
        assert balance(w.a, w.bot) == a_before  # no leg went through alone
        gas_paid = r_bot["gasUsed"] * r_bot["effectiveGasPrice"]
        assert eth_before - w.w3.eth.get_balance(w.bot) == gas_paid > 0
    finally:
        w.chain.revert(sid)


def test_only_the_owner_may_call_and_a_route_must_close(world: Any) -> None:
    from tapedeck.sim.chain.arb_executor import decode_revert
    from tapedeck.sim.chain.pyevm import revert_reason

    w = world
    route = hops(w, ("v2_ab", "v3_ab5"))
    fn = w.ex.arbitrage_call(w.a, 10**18, route, 0)
    name, args = decode_revert(revert_reason(fn, {"from": w.rival, "gas": 3_000_000}))
    assert (name, args["caller"].lower()) == ("NotOwner", w.rival.lower())
    open_route = hops(w, ("v2_ab", "v2_bc"))  # A -> B -> C: never back to A
    name, args = decode_revert(revert_reason(w.ex.arbitrage_call(w.a, 10**18, open_route, 0),
                                             {"from": w.bot, "gas": 3_000_000}))
    assert name == "RouteDoesNotEnd" and args["start"].lower() == w.a.address.lower()
    name, _ = decode_revert(revert_reason(w.ex.arbitrage_call(w.a, 10**18, route[:1], 0),
                                          {"from": w.bot, "gas": 3_000_000}))
    assert name == "RouteTooShort"
