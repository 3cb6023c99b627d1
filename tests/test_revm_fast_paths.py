"""The revm backend's fast paths, each held equal to the library or the slow path it replaces:

* ``rlp_encode`` (the transaction and block hashes) equals ``rlp.encode`` on generated nested
  lists of byte strings and unsigned ints, short and long (the 55-byte length boundary);
* ``signed_eip1559`` (the raw transactions anvil is sent, and revm's hashes) equals eth_account's
  ``sign_transaction`` on generated transactions, a contract creation included;
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
from tapedeck.sim.chain.revm import RevmChain, rlp_encode, signed_eip1559

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


_u = st.integers(min_value=0, max_value=2**256 - 1)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=2**200), st.integers(min_value=1, max_value=2**64), _u, _u, _u,
       st.integers(min_value=0, max_value=2**64), st.one_of(st.none(), st.binary(min_size=20, max_size=20)), _u,
       st.binary(max_size=300))
def test_signed_eip1559_equals_eth_account_s_signed_transaction(secret: int, chain_id: int, nonce: int, tip: int,
                                                                 fee: int, gas: int, to: bytes | None, value: int,
                                                                 data: bytes) -> None:
    import coincurve
    from eth_account import Account
    from eth_utils import to_checksum_address

    account = Account.from_key(secret.to_bytes(32, "big"))
    address = to_checksum_address(to) if to is not None else None
    tx = {"type": 2, "chainId": chain_id, "nonce": nonce, "gas": gas, "value": value, "maxFeePerGas": fee,
          "maxPriorityFeePerGas": tip, "data": data, "accessList": []}
    if address is not None:
        tx["to"] = address
    event("create" if to is None else "call")
    want = bytes(account.sign_transaction(tx).raw_transaction)
    got = signed_eip1559(coincurve.PrivateKey(bytes(account.key)), chain_id,
                         ChainTx(account.address, nonce, gas, fee, tip, address, data, value))
    assert got == want


def test_signed_eip1559_writes_r_and_s_without_leading_zero_bytes() -> None:
    """An r or an s below 2**248 (one signature in 256 each) is an int to RLP: shorter than 32 bytes.
    Signed until both were met (the property test above rarely draws one), each equal to eth_account's."""
    import coincurve
    from eth_account import Account

    account = Account.from_key((7).to_bytes(32, "big"))
    key = coincurve.PrivateKey(bytes(account.key))
    short: set[str] = set()
    for nonce in range(4000):
        got = signed_eip1559(key, 131277322940537, ChainTx(account.address, nonce, 21_000, 2 * GWEI, GWEI,
                                                           account.address, b"", 1))
        want = bytes(account.sign_transaction({"type": 2, "chainId": 131277322940537, "nonce": nonce, "gas": 21_000,
                                               "value": 1, "maxFeePerGas": 2 * GWEI, "maxPriorityFeePerGas": GWEI,
                                               "to": account.address, "data": b"", "accessList": []}).raw_transaction)
        assert got == want, nonce
        r, s = rlp.decode(got[1:])[-2:]
        short.update(name for name, v in (("r", r), ("s", s)) if len(v) < 32)
        if short == {"r", "s"}:
            break
    assert short == {"r", "s"}


def test_rlp_encode_refuses_a_negative_int() -> None:
    with pytest.raises(ValueError, match="unsigned"):
        rlp_encode([1, -1])


def _token_chain() -> tuple[Any, RevmChain, Any, str, str, int, bytes]:
    """A revm chain with an ERC20 deployed: (its build, the chain, the token, two accounts, the first's
    next nonce, the calldata of a transfer of 1e18 that succeeds)."""
    try:
        art = load("@uniswap/v2-core", "ERC20")
    except ArtifactMissing as e:
        pytest.skip(f"contract builds not installed under {node_modules()}: {e}")
    chain = RevmChain(start_time=START)
    token = chain.deploy(art, 10**30, gas=1_500_000)
    me, other = chain.accounts[0], chain.accounts[1]
    return (art, chain, token, me, other, chain.w3.eth.get_transaction_count(me),
            call_data(token.functions.transfer(other, 10**18)))


def test_receipts_in_web3_format_equal_the_provider_s_json_receipts() -> None:
    art, chain, token, me, other, n, ok = _token_chain()
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


def _fn_abi(name: str, types: list[str]) -> dict[str, Any]:
    return {"type": "function", "name": name, "stateMutability": "nonpayable", "outputs": [],
            "inputs": [{"name": f"a{i}", "type": t} for i, t in enumerate(types)]}


def test_revert_reasons_read_directly_on_revm_equal_web3_s_and_py_evm_s() -> None:
    """``revert_reason`` runs the call in process on revm (no web3 request); the text is the one the
    web3 path gives there and on py-evm, for each revert shape, bound calls and ``PreparedCall`` alike."""
    from tapedeck.sim.chain.pyevm import PreparedCall, PyEvmChain, reason_text, revert_reason

    # a contract that reverts with its calldata: calling "Error(string)" reverts with an Error(string)
    runtime = bytes.fromhex("366000600037" "366000fd")
    init = bytes([0x60, len(runtime), 0x60, 0x0C, 0x60, 0x00, 0x39, 0x60, len(runtime), 0x60, 0x00, 0xF3]) + runtime
    abi = [_fn_abi("Error", ["string"]), _fn_abi("Panic", ["uint256"]), _fn_abi("f", ["int256", "uint256"])]
    calls = [("Error", ("string",), ("UniswapV2: K",)), ("Panic", ("uint256",), (0x11,)),
             ("f", ("int256", "uint256"), (-12, 5))]
    seen = []
    for chain in (RevmChain(start_time=START), PyEvmChain(start_time=START)):
        me = chain.accounts[0]
        (r,) = chain.mine_block([ChainTx(me, chain.w3.eth.get_transaction_count(me), 100_000, 100 * GWEI, GWEI, None,
                                         init)], START + 10)
        contract = chain.w3.eth.contract(address=r["contractAddress"], abi=abi)
        direct = []
        if isinstance(chain, RevmChain):  # count the reasons read directly (the fast path is taken)
            provider, inner = chain.w3.provider, chain.w3.provider.revert_text
            provider.revert_text = lambda *a, **k: direct.append(1) or inner(*a, **k)  # type: ignore[method-assign]
        params = {"from": me, "gas": 100_000}
        texts = []
        for name, types, args in calls:
            for fn in (getattr(contract.functions, name)(*args), PreparedCall(contract, name, types, args)):
                got = revert_reason(fn, params)
                try:
                    fn.call(params)
                    slow = ""
                except Exception as e:  # noqa: BLE001 - the web3 path's exception
                    slow = reason_text(e)
                assert got == slow, (name, got, slow)
                texts.append(got)
        seen.append((texts, len(direct)))
    (revm, direct_revm), (pyevm, direct_pyevm) = seen
    assert (direct_revm, direct_pyevm) == (6, 0)
    assert revm == pyevm
    assert revm[0] == "execution reverted: UniswapV2: K" and revm[4].startswith("0x") and len(set(revm)) == 3


def test_a_simulated_block_reads_what_the_block_mined_on_a_snapshot_reads_and_leaves_nothing() -> None:
    """``RevmChain.simulate_block`` (the bundle auction's path) against the path it replaces, mining
    the block on a snapshot: the same statuses, gas used and prices, the same coinbase surplus (a
    transfer to the coinbase in it) before and after ``apply``-ing more, the same revert reasons
    read on the block's end state; and the chain as before (state, blocks, the next block mined
    for real), a refused transaction raising what ``mine_block`` raises."""
    from tapedeck.sim.bundles import coinbase_surplus
    from tapedeck.sim.chain.pyevm import PreparedCall, revert_reason
    from tapedeck.sim.chain.revm import ZERO, RevmTxInvalid

    art, chain, token, me, other, n, ok = _token_chain()
    too_much = PreparedCall(token, "transfer", ("address", "uint256"), (other, 10**40))  # reverts
    head = [ChainTx(me, n, 100_000, 100 * GWEI, GWEI, token.address, ok),
            ChainTx(me, n + 1, 30_000, 100 * GWEI, 3 * GWEI, ZERO, b"", 7 * 10**15)]  # pays the coinbase
    tail = [ChainTx(me, n + 2, 100_000, 100 * GWEI, 2 * GWEI, token.address, too_much.data),
            ChainTx(me, n + 3, 100_000, 100 * GWEI, GWEI, token.address, ok)]
    params = {"from": me, "gas": 100_000}

    def mined_on_a_snapshot(txs: list[ChainTx]) -> tuple[list[dict[str, int]], int, str]:
        snap = chain.snapshot()
        try:
            receipts = chain.mine_block(txs, START + 50)
            reason = revert_reason(too_much, params)
            return ([{k: r[k] for k in ("status", "gasUsed", "effectiveGasPrice")} for r in receipts],
                    coinbase_surplus(chain.w3, receipts), reason)
        finally:
            chain.revert(snap)

    def state() -> Any:
        return (dict(chain._accounts), len(chain._log), len(chain.blocks), token.functions.balanceOf(other).call(),
                chain.w3.eth.get_balance(ZERO))

    before = state()
    want_head, want_head_surplus, _ = mined_on_a_snapshot(head)
    want, want_surplus, want_reason = mined_on_a_snapshot(head + tail)
    run = chain.simulate_block(head, START + 50, keep=False)
    assert (run.outcomes(), run.coinbase_surplus()) == (want_head, want_head_surplus)
    assert want_head_surplus == 7 * 10**15
    assert state() == before
    run.apply(chain, tail)
    assert (run.outcomes(), run.coinbase_surplus()) == (want, want_surplus)
    assert [r["status"] for r in run.outcomes()] == [1, 1, 0, 1] and run.outcomes(2) == want[2:]
    assert run.revert_reason(too_much, params) == want_reason and want_reason.startswith("execution reverted: ")
    assert run.revert_reason(PreparedCall(token, "transfer", ("address", "uint256"), (other, 1)), params) is None
    assert state() == before
    chain.keep(run)
    with pytest.raises(RevmTxInvalid) as simulated:
        chain.simulate_block([ChainTx(me, n + 5, 100_000, 100 * GWEI, GWEI, token.address, ok)], START + 50)
    with pytest.raises(RevmTxInvalid) as mined:
        chain.mine_block([ChainTx(me, n + 5, 100_000, 100 * GWEI, GWEI, token.address, ok)], START + 50)
    assert str(simulated.value) == str(mined.value) and state() == before
    receipts = chain.mine_block(head + tail, START + 50)
    assert [{k: r[k] for k in ("status", "gasUsed", "effectiveGasPrice")} for r in receipts] == want
    with pytest.raises(RuntimeError, match="moved on"):
        run.apply(chain, tail)
