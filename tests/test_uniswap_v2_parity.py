"""The domain's V2 math equals the real UniswapV2Pair bytecode (npm @uniswap/v2-core), on py-evm
and on anvil.

For hundreds of seeded random cases: ``get_amount_out`` is exactly the largest output the pair
accepts — ``swap(out)`` succeeds with the Swap/Sync amounts and reserves the domain predicts, and
``swap(out + 1)`` reverts with ``UniswapV2: K``.
"""
from __future__ import annotations

import random

import pytest
from web3.logs import DISCARD

from domain import uniswap_v2 as v2
from sim.chain.artifacts import ArtifactMissing, node_modules

pytestmark = pytest.mark.contract

CASES = 320
RESEED_EVERY = 20


@pytest.fixture(scope="module", params=["pyevm", "anvil"])
def chain(request):
    """The same deploy code on both backends: in-process py-evm and a real anvil node."""
    try:
        from sim.chain.uniswap_v2 import deploy_v2_pair
        if request.param == "pyevm":
            from sim.chain.pyevm import PyEvmChain
            c = PyEvmChain()
        else:
            from sim.chain.anvil import AnvilChain
            c = AnvilChain()
            request.addfinalizer(c.close)
        market = deploy_v2_pair(c.w3)
    except ArtifactMissing as e:
        pytest.skip(f"contract builds not installed under {node_modules()}: {e}")
    return c, market


def test_get_amount_out_is_the_largest_output_the_real_pair_accepts(chain) -> None:
    from sim.chain.uniswap_v2 import add_liquidity

    c, m = chain
    rng = random.Random(7)
    base = c.snapshot()
    checked = 0
    for case in range(CASES):
        if case % RESEED_EVERY == 0:
            c.revert(base)
            # magnitudes from dust pools to whale pools, 6-dp and 18-dp sized tokens
            add_liquidity(m, rng.randint(10**6, 10**rng.randint(7, 26)), rng.randint(10**6, 10**rng.randint(7, 30)))
        r0, r1 = m.reserves()
        zero_for_one = rng.random() < 0.5
        r_in = r0 if zero_for_one else r1
        amount_in = max(1, int(r_in * 10 ** rng.uniform(-7, 0.5)))
        out, new0, new1 = v2.swap_exact_in(r0, r1, amount_in, zero_for_one)
        if out == 0:
            continue  # the pair refuses a zero output (INSUFFICIENT_OUTPUT_AMOUNT); nothing to compare
        token_in = m.token0 if zero_for_one else m.token1
        c.w3.eth.wait_for_transaction_receipt(
            token_in.functions.transfer(m.pair.address, amount_in).transact({"gas": 100_000}))
        one_more = (0, out + 1) if zero_for_one else (out + 1, 0)
        with pytest.raises(Exception, match="UniswapV2: K"):
            m.pair.functions.swap(*one_more, c.accounts[0], b"").call({"gas": 200_000})
        out0, out1 = (0, out) if zero_for_one else (out, 0)
        receipt = c.w3.eth.wait_for_transaction_receipt(
            m.pair.functions.swap(out0, out1, c.accounts[0], b"").transact({"gas": 200_000}))
        assert receipt["status"] == 1
        swap = m.pair.events.Swap().process_receipt(receipt, errors=DISCARD)[0]["args"]
        sync = m.pair.events.Sync().process_receipt(receipt, errors=DISCARD)[0]["args"]
        expected_in = (amount_in, 0) if zero_for_one else (0, amount_in)
        assert (swap["amount0In"], swap["amount1In"]) == expected_in
        assert (swap["amount0Out"], swap["amount1Out"]) == (out0, out1)
        assert (sync["reserve0"], sync["reserve1"]) == (new0, new1) == m.reserves()
        checked += 1
    assert checked >= 300
