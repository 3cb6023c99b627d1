"""Both chain backends mine the sim's blocks as told: one block, the builder's order, the sim's
time (never the wall clock), reverts mined with status 0."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from tapedeck.sim.chain.pyevm import ChainTx, PyEvmChain, create_address

START = 1_709_251_200  # 2024-03-01T00:00:00Z


@pytest.fixture(params=["pyevm", pytest.param("anvil", marks=pytest.mark.contract), "revm"])
def chain(request: Any) -> Iterator[Any]:
    if request.param == "pyevm":
        yield PyEvmChain(start_time=START)
        return
    if request.param == "revm":
        from tapedeck.sim.chain.revm import RevmChain
        yield RevmChain(start_time=START)
        return
    from tapedeck.sim.chain.anvil import AnvilChain, anvil_binary
    from tapedeck.sim.chain.artifacts import ArtifactMissing
    try:
        anvil_binary()
    except ArtifactMissing as e:
        pytest.skip(str(e))
    with AnvilChain(start_time=START) as c:
        yield c


def transfer(c: Any, sender: str, to: str, nonce: int, tip: int, value: int = 1) -> ChainTx:
    return ChainTx(sender=sender, nonce=nonce, gas=21_000, max_fee=100 * 10**9, max_priority_fee=tip, to=to,
                   value=value)


def test_time_is_the_sims_not_the_wall_clock(chain: Any) -> None:
    w3 = chain.w3
    a, b = chain.accounts[:2]
    assert w3.eth.get_block("latest")["timestamp"] == START
    for _ in range(3):  # automined transactions: one second apart from the genesis
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": a, "to": b, "value": 1, "gas": 21_000}))
    assert w3.eth.get_block("latest")["timestamp"] == START + 3
    chain.mine_block([], START + 12)
    assert w3.eth.get_block("latest")["timestamp"] == START + 12


def test_one_block_in_the_given_order_whatever_the_tips(chain: Any) -> None:
    w3 = chain.w3
    a, b, c = chain.accounts[:3]
    before = w3.eth.block_number
    na, nb = w3.eth.get_transaction_count(a), w3.eth.get_transaction_count(b)
    txs = [transfer(chain, a, c, na, 1), transfer(chain, b, c, nb, 9 * 10**9), transfer(chain, a, c, na + 1, 1)]
    receipts = chain.mine_block(txs, START + 24)
    assert [r["blockNumber"] for r in receipts] == [before + 1] * 3
    assert [r["transactionIndex"] for r in receipts] == [0, 1, 2]
    assert [r["from"] for r in receipts] == [a, b, a]
    assert all(r["status"] == 1 for r in receipts)
    assert w3.eth.get_block(before + 1)["timestamp"] == START + 24


def test_a_reverting_transaction_is_mined_with_status_0_and_a_create_address_is_known_before(chain: Any) -> None:
    w3 = chain.w3
    a = chain.accounts[0]
    n = w3.eth.get_transaction_count(a)
    # init code that reverts at once (PUSH1 0 PUSH1 0 REVERT), then one that deploys an empty contract
    revert = ChainTx(a, n, 100_000, 100 * 10**9, 10**9, None, bytes.fromhex("60006000fd"))
    ok = ChainTx(a, n + 1, 100_000, 100 * 10**9, 10**9, None, bytes.fromhex("60006000f3"))
    r_bad, r_ok = chain.mine_block([revert, ok], START + 36)
    assert r_bad["status"] == 0 and r_ok["status"] == 1
    assert r_ok["contractAddress"] == create_address(a, n + 1)
