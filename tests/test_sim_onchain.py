"""The chain side of the sim loop: transactions reach the mempool after their latency, blocks take
them by the builder's rule and the real chain executes them in that order; gas is charged at the
sim's base fee, which moves with the gas really used; what waits too long expires."""
from __future__ import annotations

from typing import Any

from tapedeck.sim.chain.pyevm import PyEvmChain
from tapedeck.sim.inclusion import next_base_fee
from tapedeck.sim.onchain import BlockResult, ChainSide
from tapedeck.sim.kernel import NS, Bus
from tapedeck.sim.processes import BlockBuilt
from tapedeck.sim.scenario import load_scenario
from tapedeck.sim.world import World

GWEI = 10**9


def world() -> tuple[World, ChainSide, list[BlockResult], list[BlockBuilt]]:
    sc = load_scenario("quiet", seed=4)
    w = World(sc, bus=Bus(record=False))
    backend = PyEvmChain(start_time=sc.start_ns // NS - 3600)
    side = ChainSide("ethereum", backend, w.chains["ethereum"], w.clock, max_pending_blocks=3)
    results: list[BlockResult] = []
    built: list[BlockBuilt] = []
    side.subscribe(results.append)
    w.bus.subscribe(built.append, BlockBuilt)
    return w, side, results, built


def send(side: ChainSide, sender: str, tip: int, arrival: int, max_fee: int | None = None, tag: str = "t") -> Any:
    to = side.backend.accounts[9]
    return side.submit(sender, to=to, data=b"", gas=21_000, max_priority_fee=tip, arrival_ns=arrival,
                       max_fee=max_fee, value=1, tag=tag)


def by_id(results: list[BlockResult]) -> dict[str, Any]:
    return {o.tx.id: o for r in results for o in r.outcomes + r.dropped}


def test_higher_tip_first_then_earlier_arrival_and_the_chain_runs_that_order() -> None:
    w, side, results, _ = world()
    a, b, c = side.backend.accounts[:3]
    t0 = w.clock.start_ns
    low = send(side, a, 1 * GWEI, t0 + 1 * NS)  # first to arrive, lowest tip
    high = send(side, b, 3 * GWEI, t0 + 5 * NS)
    tie_late = send(side, c, 1 * GWEI, t0 + 6 * NS)
    w.run(until=12)
    out = by_id(results)
    assert out[high.id].index < out[low.id].index < out[tie_late.id].index
    receipts = [out[t.id].receipt for t in (high, low, tie_late)]
    assert len({r["blockNumber"] for r in receipts}) == 1  # one chain block for the sim block
    assert [r["transactionIndex"] for r in receipts] == [0, 1, 2]  # the builder's order, on chain
    assert all(out[t.id].status == "success" and out[t.id].block == 1 for t in (high, low, tie_late))


def test_a_transaction_arriving_after_the_block_waits_for_the_next_one() -> None:
    w, side, results, _ = world()
    a = side.backend.accounts[0]
    t0 = w.clock.start_ns
    late = send(side, a, GWEI, t0 + 12 * NS + 1)  # 1 ns after block 1 was built
    w.run(until=24)
    assert [r.number for r in results] == [1, 2]
    assert by_id(results)[late.id].block == 2


def test_gas_is_charged_at_the_sims_base_fee_and_moves_it_by_the_gas_really_used() -> None:
    w, side, results, built = world()
    a = side.backend.accounts[0]
    t0 = w.clock.start_ns
    tx = send(side, a, 2 * GWEI, t0 + NS)
    w.run(until=12)
    o = by_id(results)[tx.id]
    base = results[0].base_fee
    assert o.gas_used == 21_000 and o.gas_price == base + 2 * GWEI and o.gas_cost == 21_000 * (base + 2 * GWEI)
    block = built[0]
    assert block.gas_used == block.background_gas + 21_000  # the reserve replaced by the receipt's gas
    assert block.next_base_fee == next_base_fee(block.base_fee, block.gas_used, w.chains["ethereum"].chain.gas_target)


def test_an_underpriced_transaction_waits_then_expires_and_frees_its_nonce() -> None:
    w, side, results, _ = world()
    a = side.backend.accounts[0]
    t0 = w.clock.start_ns
    cheap = send(side, a, 0, t0 + NS, max_fee=1)  # below any base fee: never eligible
    w.run(until=12 * 4)
    out = by_id(results)[cheap.id]
    assert out.receipt is None and out.status.startswith("expired after 3 blocks (underpriced)")
    assert len(w.chains["ethereum"].mempool) == 0
    again = send(side, a, GWEI, w.clock.now_ns + NS)
    assert again.nonce == cheap.nonce  # the expired nonce is used again
    w.run(until=12 * 5)
    assert by_id(results)[again.id].status == "success"
