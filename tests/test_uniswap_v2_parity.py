"""The domain's V2 math equals the real UniswapV2Pair bytecode (npm @uniswap/v2-core 1.0.1), on
py-evm and on anvil.

For hundreds of seeded random cases: ``get_amount_out`` is exactly the largest output the pair
accepts. ``swap(out)`` succeeds with the Swap/Sync amounts and the reserves the domain predicts,
and ``swap(out + 1)`` (probed with ``eth_call``, so the state is untouched) reverts with
``UniswapV2: K``. Inputs too small to buy one unit (``out == 0``) are checked too: ``swap(1)``
reverts with ``K`` and the paid input is skimmed back.

One pair is deployed per backend; every ``CASES_PER_POOL`` cases the chain reverts to the
snapshot taken before any liquidity and the pair is seeded with new random reserves (6-dp and
18-dp sized tokens, dust pools to whale pools), then swapped against in random directions with
inputs from one wei to ten times the input reserve.
"""
from __future__ import annotations

import random
import time

import pytest
from eth_tester.exceptions import TransactionFailed
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from tapedeck.domain import uniswap_v2 as v2
from tapedeck.sim.chain.artifacts import ArtifactMissing, load, node_modules
from tapedeck.sim.chain import artifacts

SEED = 20240611
CASES = 360  # >= 300 with a nonzero output; the rest are dust inputs (out == 0)
CASES_PER_POOL = 12
MAX_U112 = 2**112 - 1  # the pair's reserves are uint112: a balance above it reverts with OVERFLOW
REVERTED = (ContractLogicError, TransactionFailed)  # anvil / eth-tester flavour of an eth_call revert
GAS_TRANSFER, GAS_SWAP = 100_000, 200_000


@pytest.fixture(scope="module", params=["pyevm", "anvil", "revm"])
def chain(request):
    """The same deploy code on both backends: in-process py-evm and a real anvil node."""
    try:
        from tapedeck.sim.chain.uniswap_v2 import deploy_v2_pair
        if request.param == "pyevm":
            from tapedeck.sim.chain.pyevm import PyEvmChain
            c = PyEvmChain()
        elif request.param == "revm":
            from tapedeck.sim.chain.revm import RevmChain
            c = RevmChain()
        else:
            from tapedeck.sim.chain.anvil import AnvilChain
            c = AnvilChain()
            request.addfinalizer(c.close)
        market = deploy_v2_pair(c.w3)
    except ArtifactMissing as e:
        pytest.skip(f"contract builds not installed under {node_modules()} (run `make`): {e}")
    return c, market


def random_reserve(rng: random.Random) -> int:
    """A token balance: 6- or 18-decimals token, 0.01 .. 1e9 whole units; now and then dust or a whale."""
    kind = rng.random()
    if kind < 0.08:
        return rng.randint(1_001, 10**6)  # dust pool
    if kind < 0.14:
        return rng.randint(10**30, 10**32)  # whale pool, far above any real 18-dp supply
    decimals = rng.choice((6, 18))
    return max(1_001, int(10 ** rng.uniform(-2, 9) * 10**decimals))


def random_amount_in(rng: random.Random, reserve_in: int) -> int:
    """One wei up to ten times the input reserve, log-uniform relative to the reserve; kept below uint112."""
    if rng.random() < 0.05:
        amount = rng.randint(1, 1_000)  # dust: often buys nothing
    else:
        amount = max(1, int(reserve_in * 10 ** rng.uniform(-9, 1)))
    return min(amount, MAX_U112 - reserve_in)


@pytest.mark.contract
def test_get_amount_out_is_the_largest_output_the_real_pair_accepts(chain) -> None:
    from tapedeck.sim.chain.uniswap_v2 import add_liquidity

    c, m = chain
    me = c.accounts[0]
    swap = m.pair.functions.swap
    rng = random.Random(SEED)
    base = c.snapshot()
    checked = dust = pools = 0
    r0 = r1 = 0
    started = time.perf_counter()
    for case in range(CASES):
        if case % CASES_PER_POOL == 0:
            c.revert(base)
            base = c.snapshot()  # anvil's evm_revert consumes the snapshot (a second revert is a silent no-op)
            a0, a1 = random_reserve(rng), random_reserve(rng)
            while a0 * a1 <= 1_000**2:  # the first mint must exceed MINIMUM_LIQUIDITY
                a0, a1 = random_reserve(rng), random_reserve(rng)
            add_liquidity(m, a0, a1)
            r0, r1 = m.reserves()
            assert (r0, r1) == (a0, a1)
            pools += 1
        zero_for_one = rng.random() < 0.5
        amount_in = random_amount_in(rng, r0 if zero_for_one else r1)
        out, new0, new1 = v2.swap_exact_in(r0, r1, amount_in, zero_for_one)
        where = f"case {case} (seed {SEED}): reserves {r0}, {r1}, {amount_in} in, zero_for_one={zero_for_one}, out {out}"

        token_in = m.token0 if zero_for_one else m.token1
        receipt = c.w3.eth.wait_for_transaction_receipt(
            token_in.functions.transfer(m.pair.address, amount_in).transact({"from": me, "gas": GAS_TRANSFER}))
        assert receipt["status"] == 1, where

        # one unit more than the domain's answer: the pair must refuse it, for the K reason
        r_out = r1 if zero_for_one else r0
        one_more = (0, out + 1) if zero_for_one else (out + 1, 0)
        reason = "UniswapV2: INSUFFICIENT_LIQUIDITY" if out + 1 >= r_out else "UniswapV2: K"
        with pytest.raises(REVERTED, match=reason):
            swap(*one_more, me, b"").call({"from": me, "gas": GAS_SWAP})
            pytest.fail(f"swap({one_more}) accepted: {where}")

        if out == 0:  # the pair refuses a zero output; take the paid input back
            m.pair.functions.skim(me).transact({"from": me, "gas": GAS_SWAP})
            assert m.reserves() == (r0, r1), where
            dust += 1
            continue

        out0, out1 = (0, out) if zero_for_one else (out, 0)
        receipt = c.w3.eth.wait_for_transaction_receipt(swap(out0, out1, me, b"").transact({"from": me, "gas": GAS_SWAP}))
        assert receipt["status"] == 1, where
        ev_swap = m.pair.events.Swap().process_receipt(receipt, errors=DISCARD)[0]["args"]
        ev_sync = m.pair.events.Sync().process_receipt(receipt, errors=DISCARD)[0]["args"]
        expected_in = (amount_in, 0) if zero_for_one else (0, amount_in)
        assert (ev_swap["amount0In"], ev_swap["amount1In"]) == expected_in, where
        assert (ev_swap["amount0Out"], ev_swap["amount1Out"]) == (out0, out1), where
        assert (ev_sync["reserve0"], ev_sync["reserve1"]) == (new0, new1), where
        assert m.reserves() == (new0, new1), where
        r0, r1 = new0, new1
        checked += 1
    elapsed = time.perf_counter() - started
    print(f"\n{checked} swaps checked + {dust} dust inputs on {pools} pools in {elapsed:.1f} s")
    assert checked >= 300
    assert dust > 0


def test_missing_node_modules_names_the_file_and_says_run_make(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TAPEDECK_NODE_MODULES", str(tmp_path / "node_modules"))
    with pytest.raises(ArtifactMissing, match=r"(?s)node_modules/@uniswap/v2-core.*does not exist.*`make`"):
        artifacts._load.__wrapped__("@uniswap/v2-core", "UniswapV2Pair")  # past the cache


def test_aave_bytecode_is_linked_at_its_link_references() -> None:
    try:
        pool = load("@aave/core-v3", "Pool")
    except ArtifactMissing as e:
        pytest.skip(f"contract builds not installed under {node_modules()} (run `make`): {e}")
    assert pool.libraries == ["BorrowLogic", "BridgeLogic", "EModeLogic", "FlashLoanLogic",
                              "LiquidationLogic", "PoolLogic", "SupplyLogic"]
    fake = {lib: f"0x{i + 1:040x}" for i, lib in enumerate(pool.libraries)}
    code = pool.linked(fake)
    assert "__" not in code and len(code) == len(pool.bytecode)
    for libs in pool.link_references.values():
        for lib, spots in libs.items():
            for spot in spots:
                start = 2 + 2 * spot["start"]
                assert code[start:start + 40] == fake[lib][2:]
    with pytest.raises(ValueError, match="needs library"):
        pool.linked({})
    with pytest.raises(ValueError, match="unlinked libraries"):
        from tapedeck.sim.chain.pyevm import deploy
        deploy(None, pool)  # refused before touching any chain
