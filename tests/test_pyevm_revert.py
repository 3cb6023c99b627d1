"""``PyEvmChain.revert`` sets the snapshot's block as the head without re-importing it (eth-tester's
``revert_to_snapshot`` re-executes the block): the chain it leaves is eth-tester's, block for block —
what is mined after a revert has the same hashes, receipts and balances either way, a snapshot can
be reverted to again, and a revert to genesis or an unknown id takes eth-tester's own path."""
from __future__ import annotations

from typing import Any

import pytest
from eth_tester.exceptions import SnapshotNotFound

from tapedeck.sim.chain.pyevm import ChainTx, PyEvmChain

START = 1_709_251_200
GWEI = 10**9


def transfers(chain: PyEvmChain, n: int, value: int) -> list[ChainTx]:
    me, other = chain.accounts[:2]
    nonce = chain.w3.eth.get_transaction_count(me)
    return [ChainTx(me, nonce + i, 21_000, 100 * GWEI, GWEI, other, b"", value + i) for i in range(n)]


def history(eth_testers: bool) -> list[Any]:
    chain = PyEvmChain(start_time=START)
    revert = chain.tester.revert_to_snapshot if eth_testers else chain.revert
    chain.mine_block(transfers(chain, 3, 10), START + 12)
    snap = chain.snapshot()
    out = []
    for attempt in range(2):  # a detour, reverted, twice to the same snapshot
        chain.mine_block(transfers(chain, 2, 1_000 + attempt), START + 24)
        chain.mine_block(transfers(chain, 1, 2_000 + attempt), START + 36)
        revert(snap)
        latest = chain.w3.eth.get_block("latest")
        out.append((latest["number"], latest["hash"], chain.w3.eth.get_balance(chain.accounts[1])))
    receipts = chain.mine_block(transfers(chain, 2, 5), START + 48)
    latest = chain.w3.eth.get_block("latest")
    out.append((latest["number"], latest["hash"], latest["timestamp"], [dict(r) for r in receipts],
                chain.w3.eth.get_balance(chain.accounts[1])))
    return out


def test_a_revert_leaves_eth_tester_s_chain_block_for_block() -> None:
    mine, theirs = history(False), history(True)
    assert mine == theirs
    assert mine[0][0] == mine[1][0] == 1 and mine[2][0] == 2  # back at block 1 each time; then block 2


def test_genesis_and_unknown_snapshots_take_eth_tester_s_path() -> None:
    chain = PyEvmChain(start_time=START)
    genesis = chain.snapshot()
    chain.mine_block(transfers(chain, 1, 7), START + 12)
    chain.revert(genesis)
    assert chain.w3.eth.block_number == 0
    with pytest.raises(SnapshotNotFound):
        chain.revert(12345)
