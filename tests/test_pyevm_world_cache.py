"""The world cache on py-evm (``sim.chain.world_cache`` over a ``PyEvmChain``): a deploy replayed
from the cache leaves the chain exactly as running it does (blocks, receipts, storage, code, the
pending header, the chain's time, the added keys), the chain then goes on alike, and a change to
what the deploy depends on (the chain before it, the key, a contract build) runs it again.
Bundle simulations on a block that is never mined (``PyEvmChain.simulate_block``) leave the chain
as it was, and a mined block that goes on from one is the block mined from scratch."""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tapedeck.sim.chain import artifacts, world_cache
from tapedeck.sim.chain.artifacts import ArtifactMissing, Artifact, load, node_modules
from tapedeck.sim.chain.pyevm import ChainTx, PyEvmChain

# the same fresh cache per test as the revm world cache's tests (autouse), their start time and key
import tests.test_chain_world_cache as revm_tests
from tests.test_chain_world_cache import KEY, START, _fresh_cache  # noqa: E402,F401


def _erc20() -> Artifact:
    try:
        return load("@uniswap/v2-core", "ERC20")
    except ArtifactMissing as e:
        pytest.skip(f"contract builds not installed under {node_modules()}: {e}")


def _deploy(chain: PyEvmChain, runs: list[int]) -> Any:
    """The revm tests' deploy (adds a key, funds it, deploys a token and transfers some: what a
    set-up does), its key added to eth-tester as ``sim.onchain.add_account`` adds one."""
    _erc20()
    chain.add_key = lambda acct: chain.tester.add_account(acct.key.hex())  # type: ignore[attr-defined]
    return revm_tests._deploy(chain, runs)  # type: ignore[arg-type]


def _view(chain: PyEvmChain, token: str) -> tuple[Any, ...]:
    w3 = chain.w3
    blocks = [w3.eth.get_block(n, full_transactions=True) for n in range(w3.eth.block_number + 1)]
    receipts = [w3.eth.get_transaction_receipt(tx["hash"]) for b in blocks for tx in b["transactions"]]
    slots = [w3.eth.get_storage_at(token, i) for i in range(4)]
    return (blocks, receipts, slots, w3.eth.get_code(token), chain.time, chain.tester.get_accounts(),
            chain.tester.backend.chain.header, w3.eth.get_balance(KEY.address))


def _go_on(chain: PyEvmChain, token: str) -> tuple[Any, ...]:
    """The chain after the deploy: the new key sends again, in a block the sim mines (a block web3
    mines through eth-tester draws its prevrandao from ``os.urandom``: its hash differs run to run)."""
    art = _erc20()
    c = chain.w3.eth.contract(address=token, abi=art.abi)
    me = chain.accounts[0]
    data = bytes.fromhex(c.functions.transfer(chain.accounts[2], 777)._encode_transaction_data()[2:])
    chain.mine_block([ChainTx(KEY.address, chain.w3.eth.get_transaction_count(KEY.address), 100_000, 10**11, 10**9,
                              token, data),
                      ChainTx(me, chain.w3.eth.get_transaction_count(me), 21_000, 10**11, 10**9, KEY.address, b"", 5)],
                     chain.time + 12)
    return _view(chain, token)


def test_a_restored_deploy_leaves_the_py_evm_chain_as_the_deploy_does_and_it_goes_on_alike() -> None:
    runs: list[int] = []
    built = PyEvmChain(start_time=START, world_cache=True)
    a = _deploy(built, runs)
    restored = PyEvmChain(start_time=START, world_cache=True)
    b = _deploy(restored, runs)
    assert runs == [1] and world_cache.stats["hits"] == 1 and a == b
    assert _view(restored, b["token"]) == _view(built, a["token"])
    assert _go_on(restored, b["token"]) == _go_on(built, a["token"])


def test_a_hit_from_disk_in_a_fresh_process_memory_is_the_same() -> None:
    runs: list[int] = []
    built = PyEvmChain(start_time=START, world_cache=True)
    a = _deploy(built, runs)
    world_cache.clear_memory()  # as a new process: read from the file
    restored = PyEvmChain(start_time=START, world_cache=True)
    assert _deploy(restored, runs) == a and runs == [1]
    assert _view(restored, a["token"]) == _view(built, a["token"])


def test_another_chain_before_another_key_or_a_changed_build_deploys_again(monkeypatch) -> None:
    runs: list[int] = []
    _deploy(PyEvmChain(start_time=START, world_cache=True), runs)
    _deploy(PyEvmChain(start_time=START + 1, world_cache=True), runs)  # another genesis: another head hash
    assert len(runs) == 2
    world_cache.cached(PyEvmChain(start_time=START, world_cache=True), ("test deploy", 2), lambda: runs.append(1))
    assert len(runs) == 3
    _deploy(PyEvmChain(start_time=START, world_cache=True), runs)  # a hit
    assert len(runs) == 3
    real = artifacts._load

    def changed(package: str, name: str) -> Artifact:
        art = real(package, name)
        return dataclasses.replace(art, bytecode=art.bytecode + "00") if name == "ERC20" else art

    monkeypatch.setattr(artifacts, "_load", changed)
    _deploy(PyEvmChain(start_time=START, world_cache=True), runs)
    assert len(runs) == 4 and world_cache.stats["stale"] == 1


def test_a_py_evm_chain_made_without_the_flag_always_deploys() -> None:
    runs: list[int] = []
    _deploy(PyEvmChain(start_time=START), runs)
    _deploy(PyEvmChain(start_time=START), runs)
    assert len(runs) == 2 and world_cache.stats == {"hits": 0, "misses": 0, "stale": 0}


def test_a_simulated_block_leaves_the_chain_as_it_was_and_a_block_going_on_from_it_is_the_block() -> None:
    art = _erc20()

    def world() -> tuple[PyEvmChain, Any]:  # deployed in a block the sim mines (web3's draw a prevrandao)
        chain = PyEvmChain(start_time=START, world_cache=True)
        init = chain.w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor(10**30).data_in_transaction
        me = chain.accounts[0]
        (r,) = chain.mine_block([ChainTx(me, 0, 1_500_000, 10**11, 10**9, None, bytes.fromhex(init[2:]))], START + 12)
        return chain, chain.w3.eth.contract(address=r["contractAddress"], abi=art.abi)

    def txs(chain: PyEvmChain, token: Any) -> list[ChainTx]:
        me, other = chain.accounts[0], chain.accounts[1]
        n = chain.w3.eth.get_transaction_count(me)
        data = bytes.fromhex(token.functions.transfer(other, 5)._encode_transaction_data()[2:])
        return [ChainTx(me, n, 100_000, 10**11, 10**9, token.address, data),
                ChainTx(me, n + 1, 100_000, 10**11, 2 * 10**9, token.address, data),
                ChainTx(me, n + 2, 21_000, 10**11, 10**9, other, b"", 10**18)]

    plain, token = world()
    expected = plain.mine_block(txs(plain, token), START + 30)
    sim, token2 = world()
    head = sim.w3.eth.get_block("latest")
    run = sim.simulate_block(txs(sim, token2)[:2], START + 30)
    assert [r["status"] for r in run.outcomes()] == [1, 1]
    assert sim.w3.eth.get_block("latest") == head  # nothing mined
    assert sim.tester.backend.chain.header.block_number == head["number"] + 1
    assert len(sim._runs) == 1  # kept for the pending block
    got = sim.mine_block(txs(sim, token2), START + 30)  # goes on from the kept run
    assert not sim._runs
    assert got == expected
    assert sim.w3.eth.get_block("latest") == plain.w3.eth.get_block("latest")


@pytest.mark.slow
def test_eth_crash_on_py_evm_restored_from_the_world_cache_records_what_the_deploy_recorded(tmp_path) -> None:
    """The shipped scenario's set-up (the Aave market, the positions, the V2 pools) kept by one run
    and replayed from disk by the next (as a new process reads it): the same events, the same digest."""
    from tapedeck.adapters.config_files import load_config
    from tapedeck.adapters.eventlog import EventLog
    from tapedeck.sim.recording import run_scenario
    from tapedeck.sim.scenario import load_scenario
    from tests.conftest import ROOT

    if not (node_modules() / "@aave" / "core-v3").is_dir():
        pytest.skip(f"@aave/core-v3 not installed under {node_modules()}")
    scenario = load_scenario("eth-crash", seed=7)
    config = load_config(ROOT / "fixtures" / "config" / "sim-default.toml")
    digests, events, counts = [], [], []
    for name in ("deployed.db", "restored.db"):
        world_cache.clear_memory()
        run_scenario(scenario, config, tmp_path / name, chain="pyevm")
        counts.append(dict(world_cache.stats))
        log = EventLog.open(tmp_path / name)
        digests.append(log.manifest.seal["digest"])
        events.append(list(log.events()))
        log.close()
    assert counts == [{"hits": 0, "misses": 3, "stale": 0}, {"hits": 3, "misses": 3, "stale": 0}]
    assert digests[0] == digests[1] and events[0] == events[1]
