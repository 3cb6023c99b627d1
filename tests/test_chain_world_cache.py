"""The world cache (``sim.chain.world_cache``): a deploy replayed from the cache leaves the chain
exactly as running it does (state, blocks, hashes, receipts, keys), and any change to what the
deploy depends on (the chain before it, the key, a contract build) runs it again."""
from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from tapedeck.sim.chain import artifacts, world_cache
from tapedeck.sim.chain.artifacts import ArtifactMissing, Artifact, load, node_modules
from tapedeck.sim.chain.pyevm import ChainTx
from tapedeck.sim.chain.revm import RevmChain

START = 1_709_251_200
KEY = Account.from_key(b"\x42" * 32)


@pytest.fixture(autouse=True)
def _fresh_cache(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TAPEDECK_WORLD_CACHE", str(tmp_path / "cache"))
    world_cache.clear_memory()
    for k in world_cache.stats:
        world_cache.stats[k] = 0
    yield
    world_cache.clear_memory()


def _deploy(chain: RevmChain, runs: list[int]) -> Any:
    """A deploy that adds a key, funds it, deploys a token and transfers some: what a set-up does."""
    try:
        load("@uniswap/v2-core", "ERC20")
    except ArtifactMissing as e:
        pytest.skip(f"contract builds not installed under {node_modules()}: {e}")

    def build() -> dict[str, str]:
        runs.append(1)
        art = load("@uniswap/v2-core", "ERC20")  # loaded inside: the entry names the build
        chain.add_key(KEY)
        me = chain.accounts[0]
        chain.mine_block([ChainTx(me, chain.w3.eth.get_transaction_count(me), 21_000, 10**11, 10**9, KEY.address, b"",
                                  10**20)], chain.time + 5)
        token = chain.deploy(art, 10**30, sender=KEY.address, gas=1_500_000)
        chain.transact(token.functions.transfer(chain.accounts[1], 12345), sender=KEY.address, gas=100_000)
        return {"token": token.address}

    return world_cache.cached(chain, ("test deploy", 1), build)


def _view(chain: RevmChain, token: str) -> tuple[Any, ...]:
    w3 = chain.w3
    blocks = [w3.eth.get_block(n, full_transactions=True) for n in range(w3.eth.block_number + 1)]
    receipts = [w3.eth.get_transaction_receipt(tx["hash"]) for b in blocks for tx in b["transactions"]]
    slots = [w3.eth.get_storage_at(token, i) for i in range(4)]
    return (blocks, receipts, slots, w3.eth.get_code(token), chain.time, sorted(chain.senders), sorted(chain.keys),
            [chain._accounts[a] for a in sorted(chain._accounts)])


def test_a_restored_deploy_leaves_the_chain_as_the_deploy_does_and_the_chain_goes_on_alike() -> None:
    runs: list[int] = []
    built = RevmChain(start_time=START)
    a = _deploy(built, runs)
    restored = RevmChain(start_time=START)
    b = _deploy(restored, runs)
    assert a == b and len(runs) == 1 and world_cache.stats == {"hits": 1, "misses": 1, "stale": 0}
    assert _view(restored, b["token"]) == _view(built, a["token"])
    # both go on the same: the restored key signs, snapshots revert past the restored blocks
    for chain in (built, restored):
        snap = chain.snapshot()
        chain.mine_block([ChainTx(KEY.address, chain.w3.eth.get_transaction_count(KEY.address), 21_000, 10**11, 10**9,
                                  chain.accounts[2], b"", 7)], START + 500)
        chain.revert(snap)
        chain.mine_block([ChainTx(KEY.address, chain.w3.eth.get_transaction_count(KEY.address), 21_000, 10**11, 10**9,
                                  chain.accounts[3], b"", 9)], START + 600)
    assert _view(restored, b["token"]) == _view(built, a["token"])


def test_a_restore_is_read_back_from_disk_in_another_process_s_place() -> None:
    runs: list[int] = []
    _deploy(RevmChain(start_time=START), runs)
    world_cache.clear_memory()  # as a new process: only the file is left
    chain = RevmChain(start_time=START)
    _deploy(chain, runs)
    assert len(runs) == 1 and world_cache.stats["hits"] == 1


def test_another_chain_state_before_the_deploy_runs_it_again() -> None:
    runs: list[int] = []
    _deploy(RevmChain(start_time=START), runs)
    _deploy(RevmChain(start_time=START + 1), runs)  # another genesis
    moved = RevmChain(start_time=START)
    moved.mine_block([], START + 3)  # one block more before it
    _deploy(moved, runs)
    assert len(runs) == 3 and world_cache.stats == {"hits": 0, "misses": 3, "stale": 0}


def test_a_changed_contract_build_makes_the_entry_stale(monkeypatch) -> None:
    runs: list[int] = []
    _deploy(RevmChain(start_time=START), runs)
    real = artifacts._load

    def changed(package: str, name: str) -> Artifact:
        art = real(package, name)
        if name == "ERC20":  # the same name, other bytecode (a rebuilt package)
            return Artifact(art.name, art.abi, art.bytecode + "00", art.link_references, art.path)
        return art

    monkeypatch.setattr(artifacts, "_load", changed)
    _deploy(RevmChain(start_time=START), runs)
    assert len(runs) == 2 and world_cache.stats == {"hits": 0, "misses": 1, "stale": 1}


def test_off_or_another_backend_always_deploys(monkeypatch) -> None:
    from tapedeck.sim.chain.pyevm import PyEvmChain

    runs: list[int] = []
    monkeypatch.setenv("TAPEDECK_WORLD_CACHE", "off")
    _deploy(RevmChain(start_time=START), runs)
    _deploy(RevmChain(start_time=START), runs)
    monkeypatch.delenv("TAPEDECK_WORLD_CACHE")
    calls: list[int] = []
    assert world_cache.cached(PyEvmChain(start_time=START), ("k",), lambda: calls.append(1) or 5) == 5
    assert len(runs) == 2 and calls == [1] and world_cache.stats == {"hits": 0, "misses": 0, "stale": 0}
