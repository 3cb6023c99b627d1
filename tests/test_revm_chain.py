"""What the revm backend adds to pyrevm to be a chain, each against py-evm doing the same:

* every transaction starts cold (pyrevm alone keeps the journal warm across calls: a second ERC20
  transfer would cost 24,705 gas instead of 34,305);
* EIP-1559 fees: the base fee follows the parent's gas used, the sender pays gas used x effective
  price, the coinbase gets only the tip, the rest is burnt; nonces move by one per transaction,
  reverted ones included;
* transaction hashes, gas, logs and revert reasons (``Error(string)``, custom errors, empty data)
  as py-evm records them;
* a refused transaction mines nothing; snapshots revert as often as wanted; reads at an older block
  see that block's state and context.
"""
from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode

from tapedeck.sim.chain.artifacts import ArtifactMissing, load, node_modules
from tapedeck.sim.chain.pyevm import ChainTx, PyEvmChain, call_data, create_address, reason_text, revert_reason
from tapedeck.sim.chain.revm import RevmChain, RevmTxInvalid

START = 1_709_251_200
ZERO = "0x0000000000000000000000000000000000000000"
GWEI = 10**9


def _erc20(chain: Any) -> Any:
    try:
        art = load("@uniswap/v2-core", "ERC20")
    except ArtifactMissing as e:
        pytest.skip(f"contract builds not installed under {node_modules()}: {e}")
    return chain.deploy(art, 10**30, gas=1_500_000)


def _init_code(runtime: bytes) -> bytes:
    """Init code that returns ``runtime`` (CODECOPY from after the 12-byte prefix)."""
    return bytes([0x60, len(runtime), 0x60, 0x0C, 0x60, 0x00, 0x39, 0x60, len(runtime), 0x60, 0x00, 0xF3]) + runtime


def _both() -> list[Any]:
    return [PyEvmChain(start_time=START), RevmChain(start_time=START)]


def test_each_transaction_starts_cold_and_pays_what_py_evm_charges() -> None:
    out = []
    for chain in _both():
        token = _erc20(chain)
        me, other = chain.accounts[0], chain.accounts[1]
        n = chain.w3.eth.get_transaction_count(me)
        data = call_data(token.functions.transfer(other, 10**18))
        txs = [ChainTx(me, n + i, 100_000, 100 * GWEI, (i + 1) * GWEI, token.address, data) for i in range(3)]
        coinbase = chain.w3.eth.get_balance(ZERO)
        before = chain.w3.eth.get_balance(me)
        receipts = chain.mine_block(txs, START + 100)
        block = chain.w3.eth.get_block("latest")
        gas = [r["gasUsed"] for r in receipts]
        price = [r["effectiveGasPrice"] for r in receipts]
        paid = before - chain.w3.eth.get_balance(me)
        tips = chain.w3.eth.get_balance(ZERO) - coinbase
        out.append((gas, price, paid, tips, block["baseFeePerGas"], block["gasUsed"], block["timestamp"],
                    [r["transactionHash"] for r in receipts], chain.w3.eth.get_transaction_count(me) - n,
                    [(log["address"], log["topics"], log["data"], log["logIndex"]) for r in receipts
                     for log in r["logs"]]))
    pyevm, revm = out
    assert revm == pyevm
    gas, price, paid, tips, base, used, ts, _hashes, moved, logs = revm
    assert gas == [51_405, 34_305, 34_305]  # cold slots every time (pyrevm as is: 46,605 then 24,705)
    assert price == [base + (i + 1) * GWEI for i in range(3)]
    assert paid == sum(g * p for g, p in zip(gas, price)) and tips == sum(g * (i + 1) * GWEI for i, g in enumerate(gas))
    assert used == sum(gas) and ts == START + 100 and moved == 3 and [x[3] for x in logs] == [0, 1, 2]


def test_the_base_fee_follows_eip_1559_as_on_py_evm() -> None:
    fees = []
    for chain in _both():
        me = chain.accounts[0]
        for i in range(4):  # full-ish then empty blocks
            n = chain.w3.eth.get_transaction_count(me)
            txs = [ChainTx(me, n + j, 21_000, 100 * GWEI, 0, chain.accounts[1], b"", 1) for j in range(300 * (i % 2))]
            chain.mine_block(txs, START + 12 * (i + 1))
        fees.append([chain.w3.eth.get_block(k)["baseFeePerGas"] for k in range(chain.w3.eth.block_number + 1)])
    assert fees[1] == fees[0]
    assert fees[1][:2] == [10**9, 875_000_000]


def test_revert_reasons_read_as_py_evm_records_them() -> None:
    # runtime that reverts with its calldata as the revert data: any reason shape we want
    runtime = bytes.fromhex("366000600037" "366000fd")  # CALLDATACOPY(0, 0, size); REVERT(0, size)
    error_string = bytes.fromhex("08c379a0") + encode(["string"], ["UniswapV2: K"])
    custom = bytes.fromhex("deadbeef") + encode(["int256", "uint256"], [-12, 5])
    panic = bytes.fromhex("4e487b71") + encode(["uint256"], [0x11])
    seen = []
    for chain in _both():
        me = chain.accounts[0]
        (r,) = chain.mine_block([ChainTx(me, chain.w3.eth.get_transaction_count(me), 100_000, 100 * GWEI, GWEI, None,
                                         _init_code(runtime))], START + 10)
        target = r["contractAddress"]
        reasons = []
        for data in (error_string, custom, panic, b""):
            try:
                chain.w3.eth.call({"from": me, "to": target, "data": "0x" + data.hex(), "gas": 100_000})
                reasons.append("no revert")
            except Exception as e:  # noqa: BLE001 - each backend's exception for a revert
                reasons.append(reason_text(e))
        n = chain.w3.eth.get_transaction_count(me)
        (mined,) = chain.mine_block([ChainTx(me, n, 100_000, 100 * GWEI, GWEI, target, error_string)], START + 20)
        seen.append((reasons, mined["status"], mined["gasUsed"], chain.w3.eth.get_transaction_count(me) - n))
    assert seen[1] == seen[0]
    reasons, status, _gas, moved = seen[1]
    assert reasons[0] == "execution reverted: UniswapV2: K" and reasons[1] == "0x" + custom.hex()
    assert reasons[3] == "0x" and status == 0 and moved == 1  # a reverted transaction still takes its nonce


def test_a_refused_transaction_mines_nothing_and_nonces_are_checked() -> None:
    chain = RevmChain(start_time=START)
    me, other = chain.accounts[:2]
    height = chain.w3.eth.block_number
    good = ChainTx(me, 0, 21_000, 100 * GWEI, 0, other, b"", 5)  # valid: the block fails on the second
    for bad, why in ((ChainTx(me, 0, 21_000, 100 * GWEI, 0, other), "nonce"),
                     (ChainTx(me, 1, 21_000, 10, 0, other), "below the base fee"),
                     (ChainTx(me, 1, 21_000, 100 * GWEI, 0, other, b"", 10**30), "cannot afford"),
                     (ChainTx("0x" + "ab" * 20, 0, 21_000, 100 * GWEI, 0, other), "cannot afford"),
                     (ChainTx(me, 1, 10_000, 100 * GWEI, 0, other), "gas")):
        with pytest.raises(RevmTxInvalid, match=why):
            chain.mine_block([good, bad], START + 5)
        assert chain.w3.eth.block_number == height and chain.w3.eth.get_transaction_count(me) == 0
        assert chain.w3.eth.get_balance(other) == 10**24  # the good one was undone with the block


def test_snapshots_revert_as_often_as_wanted_and_old_blocks_read_their_own_state() -> None:
    chain = RevmChain(start_time=START)
    token = _erc20(chain)
    me, other = chain.accounts[:2]
    w3 = chain.w3
    base = chain.snapshot()
    height = w3.eth.block_number
    for round_ in range(3):
        chain.revert(base)
        assert w3.eth.block_number == height and token.functions.balanceOf(other).call() == 0
        n = w3.eth.get_transaction_count(me)
        data = call_data(token.functions.transfer(other, 10**18 * (round_ + 1)))
        (r,) = chain.mine_block([ChainTx(me, n, 100_000, 100 * GWEI, 0, token.address, data)], START + 50)
        assert r["status"] == 1 and token.functions.balanceOf(other).call() == 10**18 * (round_ + 1)
    mined = w3.eth.block_number
    assert token.functions.balanceOf(other).call(block_identifier=mined - 1) == 0  # before the transfer
    assert w3.eth.get_transaction_count(me, mined - 1) == w3.eth.get_transaction_count(me) - 1
    assert token.functions.balanceOf(other).call() == 3 * 10**18  # and back at the head
    # a read runs in its block's context: the timestamp of that block
    runtime = bytes.fromhex("4260005260206000f3")  # return TIMESTAMP
    n = w3.eth.get_transaction_count(me)
    (r,) = chain.mine_block([ChainTx(me, n, 100_000, 100 * GWEI, 0, None, _init_code(runtime))], START + 500)
    assert r["contractAddress"] == create_address(me, n)
    chain.mine_block([], START + 900)
    now = int.from_bytes(w3.eth.call({"to": r["contractAddress"]}), "big")
    then = int.from_bytes(w3.eth.call({"to": r["contractAddress"]}, w3.eth.block_number - 1), "big")
    assert (now, then) == (START + 900, START + 500)


def test_revert_reason_of_a_mined_revert_through_the_shared_helper() -> None:
    """``pyevm.revert_reason`` (what the sim records for a reverted transaction) reads the same text."""
    out = []
    for chain in _both():
        token = _erc20(chain)
        fn = token.functions.transfer(chain.accounts[1], 10**31)  # more than the supply: SafeMath reverts
        out.append(revert_reason(fn, {"from": chain.accounts[0], "gas": 100_000}))
    assert out[1] == out[0] and out[0] != ""
