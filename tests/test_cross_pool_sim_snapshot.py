"""The sim records a ``V3PoolSnapshot`` of every V3 pool at scenario start (sim/recording.py
``v3_pool_snapshots``), so the domain knows the pools' ticks from the first event and the
cross-pool strategy sizes across them.

One run of ``cex-dex-dislocation`` (its own seed): the snapshot follows the start state, names the
pool by its scenario name, holds what the chain holds (the full-range position's two ticks, read
from the pool's bitmap, with the in-range liquidity as their gross and +-net), and agrees with the
swap-log-shaped start record beside it; every opportunity of the cross-pool strategy is priced by
the multi-tick math on the state replayed up to it, and the strategy sizes past the tick-spacing
interval (up to its ``max_amount_in``), which the in-interval sizing could not; the run verifies.
"""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from tapedeck.adapters.eventlog import EventLog
from tapedeck.cli import main
from tapedeck.domain import events as ev
from tapedeck.domain.state import MarketState
from tapedeck.domain.strategies.cross_pool_arb import across_ticks_profit, feasible_max

V2, V3 = "uniswap-v2-usdc-weth", "uniswap-v3-usdc-weth-005"


@pytest.fixture(scope="module")
def run(tmp_path_factory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("snap") / "cd.db"
    r = CliRunner().invoke(main, ["sim", "cex-dex-dislocation", "--out", str(out)])
    assert r.exit_code == 0, r.output
    v = CliRunner().invoke(main, ["replay", str(out), "--verify"])
    assert v.exit_code == 0 and "verified" in v.output, v.output
    return list(EventLog.open(out).events())


@pytest.mark.slow
@pytest.mark.contract
def test_the_sim_records_a_snapshot_of_each_v3_pool_at_the_start(run) -> None:
    snaps = [e for e in run if type(e) is ev.V3PoolSnapshot]
    assert [s.pool for s in snaps] == [V3]
    (snap,) = snaps
    start = next(e for e in run if type(e) is ev.V3Swapped and e.pool == V3)
    assert start.seq < snap.seq and start.amount0 == start.amount1 == 0  # the start record, then the snapshot
    assert not [e for e in run if type(e) is ev.V3Swapped and e.seq < snap.seq and (e.amount0 or e.amount1)]
    assert (snap.sqrt_price_x96, snap.tick, snap.liquidity) == (start.sqrt_price_x96, start.tick, start.liquidity)
    assert snap.tick_spacing == 10 and snap.source.startswith("sim:")
    lq = snap.liquidity
    assert snap.ticks == ((-887270, lq, lq), (887270, lq, -lq))  # the full-range position (sim.dex_agents)


@pytest.mark.slow
@pytest.mark.contract
def test_the_strategy_sizes_across_ticks_in_the_sim(run) -> None:
    state, ops, beyond = MarketState(), 0, 0
    for e in run:
        if type(e) is ev.OpportunityDetected and e.strategy == "v2-v3-usdc-weth":
            v2, v3 = state.v2[V2], state.v3[V3]
            assert v3.ticks is not None and len(v3.ticks) == 2  # known from the snapshot, kept by the logs
            a_pays = e.buy_venue == "uniswap-v2"
            profit = across_ticks_profit(a_pays, v2.reserve0, v2.reserve1, v3, 500, 30)
            assert profit(e.amount_in) == e.gross_profit  # the multi-tick math at the size reported
            assert e.amount_in <= 100_000_000_000  # the sim config's max_amount_in
            inside = feasible_max(a_pays, v2.reserve0, v2.reserve1, v3.sqrt_price_x96, v3.liquidity, v3.tick, 10,
                                  500, 30)
            beyond += e.amount_in > inside
            ops += 1
        elif type(e) is ev.V2ReservesSynced:
            state.on_v2(e)
        elif type(e) in (ev.V3Swapped, ev.V3Minted, ev.V3Burned, ev.V3PoolSnapshot):
            state.on_v3(e)
    assert ops >= 5 and beyond >= 3, (ops, beyond)
