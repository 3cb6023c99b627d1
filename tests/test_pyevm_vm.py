"""``sim.chain.pyevm_vm.SimPragueVM`` (the sim's py-evm VM, a leaner interpreter loop) executes as
py-evm's own ``PragueVM``: jump targets, the stack, and whole blocks (state roots, receipts, gas,
logs, outputs, errors), down to eth-crash recording the same events and mining the same blocks."""
from __future__ import annotations

import functools
import re
from typing import Any

import pytest
from eth.exceptions import FullStack, InsufficientStack
from eth.vm.code_stream import CodeStream
from eth.vm.stack import Stack
from eth_utils import ValidationError
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tapedeck.sim.chain.artifacts import ArtifactMissing, load
from tapedeck.sim.chain.pyevm import ChainTx, PyEvmChain, call_data
from tapedeck.sim.chain.pyevm_vm import SimCodeStream, SimPragueVM, SimStack, instruction_starts
from tests.test_revm_chain import _erc20

START = 1_709_251_200
GWEI = 10**9


def _py_evm_valid(code: bytes) -> list[bool]:
    stream = CodeStream(code)
    return [stream.is_valid_opcode(i) for i in range(len(code) + 40)]


def _ours_valid(code: bytes) -> list[bool]:
    stream = SimCodeStream(code)
    return [stream.is_valid_opcode(i) for i in range(len(code) + 40)]


def _builds() -> list[bytes]:
    out = []
    for package, name in [("@uniswap/v2-core", "UniswapV2Pair"), ("@uniswap/v2-core", "ERC20"),
                          ("@uniswap/v2-periphery", "UniswapV2Router02"), ("@uniswap/v3-core", "UniswapV3Pool")]:
        try:
            art = load(package, name)
        except ArtifactMissing as e:
            pytest.skip(f"contract builds not installed: {e}")
        out.append(bytes.fromhex(re.sub(r"__\$[0-9a-f]{34}\$__", "00" * 20, art.bytecode.removeprefix("0x"))))
    return out


def test_jump_targets_are_valid_exactly_where_py_evm_says_on_real_builds() -> None:
    for code in _builds():
        ours, theirs = _ours_valid(code), _py_evm_valid(code)
        assert ours == theirs
        assert 0 < sum(ours) < len(code)  # PUSH data present: some positions are not instruction starts


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.integers(0x5F, 0x7F), st.integers(0, 255)), max_size=300).map(bytes))
def test_jump_targets_are_valid_exactly_where_py_evm_says_on_any_code(code: bytes) -> None:
    assert _ours_valid(code) == _py_evm_valid(code)


def test_the_starts_of_push_heavy_code_include_positions_inside_push_data_that_are_not_starts() -> None:
    # PUSH2 0x5b5b JUMPDEST: positions 1, 2 hold 0x5b inside PUSH data; a PUSH32 running past the end
    code = bytes([0x61, 0x5B, 0x5B, 0x5B, 0x7F, 0x5B])
    assert list(instruction_starts(code)) == [1, 0, 0, 1, 1, 0]
    assert _ours_valid(code) == _py_evm_valid(code)


@settings(max_examples=300)
@example([("pop_ints", 0, 2)])  # underflow
@example([("push_int", 2**256, 0)])  # out of range
@example([("push_int", 7, 0), ("pop_ints", 0, 0)])  # py-evm pops the whole stack for 0
@example([("push_int", 7, 0)] * 1025)  # full
@given(st.lists(st.tuples(st.sampled_from(["push_int", "push_bytes", "pop_ints", "pop1_int", "pop_any", "dup",
                                           "swap"]), st.integers(0, 2**256 + 5), st.integers(0, 5)), max_size=60))
def test_the_stack_gives_py_evm_stacks_results_and_errors(ops: list[tuple[str, int, int]]) -> None:
    ours, theirs = SimStack(), Stack()
    for name, value, k in ops:
        results = []
        for s in (ours, theirs):
            try:
                if name == "push_int":
                    out: Any = s.push_int(value)
                elif name == "push_bytes":
                    out = s.push_bytes(value.to_bytes(33, "big").lstrip(b"\0")[:32] or b"\0")
                elif name in ("pop_ints", "pop_any"):
                    out = getattr(s, name)(k)
                elif name == "pop1_int":
                    out = s.pop1_int()
                elif name == "dup":
                    out = s.dup(k + 1)
                else:
                    out = s.swap(k + 1)
                results.append(("ok", out))
            except (InsufficientStack, FullStack, ValidationError) as e:
                results.append((type(e).__name__, str(e)))
        assert results[0] == results[1]
        event(results[0][0])
        assert ours.values == theirs.values


@settings(max_examples=300, deadline=None)
@example([(0, 0), (0, 32), (0, 32), (5, 20), (31, 2), (2**256 - 1, 0), (64, 0)])
@example([(0, 2**256)])  # refused by py-evm's validation
@example([(10**6, 10**6)])  # out of gas
@given(st.lists(st.tuples(st.one_of(st.integers(0, 300), st.integers(0, 2**256)),
                          st.one_of(st.integers(0, 100), st.integers(0, 2**256))), max_size=12))
def test_extending_memory_charges_and_grows_as_py_evm_does(extends: list[tuple[int, int]]) -> None:
    from eth.vm.forks.prague.computation import PragueComputation
    from eth.vm.message import Message

    state = _chain().tester.backend.chain.get_vm().state
    sender = bytes(19) + b"\x01"
    msg = Message(gas=100_000, to=bytes(20), sender=sender, value=0, data=b"", code=b"")
    comps = [cls(state, msg, state.get_transaction_context_class()(gas_price=0, origin=sender))
             for cls in (SimPragueVM._state_class.computation_class, PragueComputation)]
    for start, size in extends:
        seen = []
        for c in comps:
            try:
                c.extend_memory(start, size)
                seen.append(("ok", len(c._memory), c._gas_meter.gas_remaining))
            except Exception as e:  # noqa: BLE001 - the same error, or none, on both
                seen.append((type(e).__name__, str(e), c._gas_meter.gas_remaining))
        event(seen[0][0])
        assert seen[0] == seen[1]
        if seen[0][0] != "ok":
            break


@functools.lru_cache(maxsize=1)
def _chain() -> PyEvmChain:
    return PyEvmChain(start_time=START)


def test_the_loop_takes_py_evms_opcodes_but_for_its_own_pushes() -> None:
    from eth.vm.forks.prague.computation import PragueComputation

    from tapedeck.sim.chain.pyevm_vm import _PUSHES, SimComputation

    table = SimComputation._dispatch_table()
    for op in range(256):
        fn = PragueComputation.opcodes.get(op)
        entry = table[op]
        if fn is None:
            assert type(entry).__name__ == "InvalidOpcode" and entry.value == op
        elif isinstance(entry, tuple):
            assert (entry[0], entry[2]) == (fn.gas_cost, fn.mnemonic)
            assert entry[1] is (_PUSHES[op - 0x60] if 0x60 <= op <= 0x7F else fn.logic_fn)
        else:
            assert entry is fn


def _block_facts(chain: PyEvmChain, receipts: list[Any]) -> dict[str, Any]:
    head = chain.tester.backend.chain.get_canonical_head()
    return {"state_root": head.state_root, "receipt_root": head.receipt_root, "gas_used": head.gas_used,
            "bloom": head.bloom,
            "receipts": [(r["status"], r["gasUsed"], r["contractAddress"],
                          [(log["address"], log["topics"], log["data"]) for log in r["logs"]]) for r in receipts]}


def test_a_block_of_transfers_reverts_and_vm_errors_is_the_same_block_on_both_vms() -> None:
    """ERC20 deploys and transfers, a transfer that reverts, one out of gas, init code that runs an
    invalid opcode, jumps into PUSH data and to a JUMPDEST, a stack underflow: the same state root,
    receipts root, gas and logs block by block on both VMs, and the same outputs and errors."""
    facts = []
    for stock in (True, False):
        chain = PyEvmChain(start_time=START, stock_vm=stock)
        assert isinstance(chain.tester.backend.chain.get_vm(), SimPragueVM) is not stock
        token = _erc20(chain)
        me, other = chain.accounts[:2]
        n = chain.w3.eth.get_transaction_count(me)
        ok = call_data(token.functions.transfer(other, 10**18))
        too_much = call_data(token.functions.transfer(other, 10**31))
        init = [bytes.fromhex(h) for h in (
            "fe",                      # INVALID
            "600456005b00",            # PUSH1 4 JUMP STOP JUMPDEST STOP: a valid jump
            "6003566100005b00",        # PUSH1 3 JUMP into PUSH2's data (a 0x5b byte there): invalid
            "6001600157",              # PUSH1 1 PUSH1 1 JUMPI to position 1 (PUSH data): invalid
            "01",                      # ADD on an empty stack
            "60ff60005260206000f3",    # returns 32 bytes of code
            "5a600052" + "6020600020" * 40 + "60206000f3",  # GAS, MSTORE, SHA3s
        )]
        txs = [ChainTx(me, n, 100_000, 100 * GWEI, GWEI, token.address, ok),
               ChainTx(me, n + 1, 100_000, 100 * GWEI, 2 * GWEI, token.address, too_much),
               ChainTx(me, n + 2, 23_000, 100 * GWEI, GWEI, token.address, ok)]  # out of gas
        txs += [ChainTx(me, n + 3 + i, 200_000, 100 * GWEI, GWEI, None, code) for i, code in enumerate(init)]
        receipts = chain.mine_block(txs, START + 100)
        block = _block_facts(chain, receipts)
        statuses = [r[0] for r in block["receipts"]]
        assert statuses == [1, 0, 0, 0, 1, 0, 0, 0, 1, 1]
        run = chain.simulate_block([ChainTx(me, n + 3 + len(init), 100_000, 100 * GWEI, GWEI, token.address, ok),
                                    ChainTx(me, n + 4 + len(init), 100_000, 100 * GWEI, GWEI, token.address,
                                            too_much)], START + 112, keep=False)
        outcomes = [(bytes(c.output), repr(c._error) if c.is_error else None, c.get_gas_used())
                    for c in run.computations]
        facts.append((block, outcomes, chain.call_many([(token.address, call_data(token.functions.balanceOf(me)))])))
    assert facts[0] == facts[1]


@pytest.mark.slow
def test_eth_crash_records_the_same_events_and_mines_the_same_blocks_on_both_vms(tmp_path, monkeypatch) -> None:
    """The whole of eth-crash (seed 7, deployed from scratch: no world cache) on py-evm's own VM and
    on the sim's: the same recorded events, and every block's state root, receipts, gas and bloom."""
    import tapedeck
    from tapedeck.adapters.config_files import load_config
    from tapedeck.adapters.eventlog import EventLog
    from tapedeck.sim import recording
    from tapedeck.sim.scenario import load_scenario

    monkeypatch.setenv("TAPEDECK_WORLD_CACHE", "off")
    root = __import__("pathlib").Path(tapedeck.__file__).resolve().parent
    config = load_config(root / "fixtures" / "config" / "sim-default.toml")
    found = []
    for stock in (True, False):
        made: list[PyEvmChain] = []

        def backend(kind: str, start_time: int, stock: bool = stock) -> PyEvmChain:
            assert kind == "pyevm"
            made.append(PyEvmChain(start_time=start_time, world_cache=True, stock_vm=stock))
            return made[-1]

        monkeypatch.setattr(recording, "chain_backend", backend)
        out = tmp_path / f"{stock}.db"
        recording.run_scenario(load_scenario("eth-crash", seed=7), config, out, chain="pyevm")
        chain = made[0].tester.backend.chain
        assert len(made) == 1 and isinstance(chain.get_vm(), SimPragueVM) is not stock
        head = chain.get_canonical_head().block_number
        headers = [chain.get_canonical_block_header_by_number(i) for i in range(1, head + 1)]
        blocks = [(h.state_root, h.receipt_root, h.transaction_root, h.gas_used, h.bloom) for h in headers]
        events = [(type(e).__name__, e) for e in EventLog.open(out).events()]
        found.append((blocks, events))
    assert len(found[0][0]) > 100 and len(found[0][1]) > 4000
    assert found[0][0] == found[1][0]
    assert found[0][1] == found[1][1]
