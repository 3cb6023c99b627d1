"""The revm backend's fast paths, each held equal to the library or the slow path it replaces:

* ``rlp_encode`` (the transaction and block hashes) equals ``rlp.encode`` on generated nested
  lists of byte strings and unsigned ints, short and long (the 55-byte length boundary);
* a mined block's receipts, built in web3's format directly, equal what web3 makes of the JSON-RPC
  receipt the provider answers (``eth_getTransactionReceipt``), logs, created address and revert
  status included; the JSON-RPC transaction names the block it was mined in.
"""
from __future__ import annotations

from typing import Any

import pytest
import rlp
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tapedeck.sim.chain.anvil import _receipt as web3_receipt
from tapedeck.sim.chain.artifacts import ArtifactMissing, load, node_modules
from tapedeck.sim.chain.pyevm import ChainTx, call_data
from tapedeck.sim.chain.revm import RevmChain, rlp_encode

START = 1_709_251_200
GWEI = 10**9

_leaf = st.one_of(st.binary(max_size=80), st.integers(min_value=0, max_value=2**300))
_items = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=12), max_leaves=40)


@settings(max_examples=200, deadline=None)
@given(_items)
def test_rlp_encode_equals_the_rlp_library(item: Any) -> None:
    got = rlp_encode(item)
    event("long (>= 56 bytes)" if len(got) > 57 else "short")
    event("list" if isinstance(item, list) else "leaf")
    assert got == rlp.encode(item)


def test_rlp_encode_refuses_a_negative_int() -> None:
    with pytest.raises(ValueError, match="unsigned"):
        rlp_encode([1, -1])


def test_receipts_in_web3_format_equal_the_provider_s_json_receipts() -> None:
    try:
        art = load("@uniswap/v2-core", "ERC20")
    except ArtifactMissing as e:
        pytest.skip(f"contract builds not installed under {node_modules()}: {e}")
    chain = RevmChain(start_time=START)
    token = chain.deploy(art, 10**30, gas=1_500_000)
    me, other = chain.accounts[0], chain.accounts[1]
    n = chain.w3.eth.get_transaction_count(me)
    ok = call_data(token.functions.transfer(other, 10**18))
    too_much = call_data(token.functions.transfer(other, 10**40))  # reverts: status 0, no logs
    init = bytes.fromhex(art.bytecode.removeprefix("0x")) + (10**6).to_bytes(32, "big")
    txs = [ChainTx(me, n, 100_000, 100 * GWEI, GWEI, token.address, ok),
           ChainTx(me, n + 1, 100_000, 100 * GWEI, 2 * GWEI, token.address, too_much),
           ChainTx(me, n + 2, 1_500_000, 100 * GWEI, GWEI, None, init),
           ChainTx(me, n + 3, 100_000, 100 * GWEI, GWEI, token.address, ok)]
    receipts = chain.mine_block(txs, START + 100)
    assert [r["status"] for r in receipts] == [1, 0, 1, 1]
    assert receipts[2]["contractAddress"] and [len(r["logs"]) for r in receipts] == [1, 0, 1, 1]
    assert [log["logIndex"] for r in receipts for log in r["logs"]] == [0, 1, 2]
    block = chain.w3.eth.get_block("latest", full_transactions=True)
    for i, r in enumerate(receipts):
        raw = chain.w3.provider.make_request("eth_getTransactionReceipt", ["0x" + bytes(r["transactionHash"]).hex()])
        assert web3_receipt(raw["result"]) == r
        assert chain.w3.eth.get_transaction_receipt(r["transactionHash"]) == r
        tx = chain.w3.eth.get_transaction(r["transactionHash"])
        assert (tx["blockNumber"], tx["blockHash"], tx["transactionIndex"]) == (block["number"], block["hash"], i)
        assert block["transactions"][i]["hash"] == r["transactionHash"]
