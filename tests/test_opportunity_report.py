"""The real 2024-01-05 USDC/WETH day's cross-pool opportunities (runtime/opportunity_report.py,
``tapedeck report opportunities``), cross-checked against an independent computation: the state
folded here from the events, each round trip sized by the V2/V3-specific code of the cross-pool
strategy (``size_round_trip``, its own closed form and exact search) rather than the generic
finder, gas valued here, and episodes grouped here."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from tapedeck.adapters.eventlog import EventLog
from tapedeck.cli import main
from tapedeck.domain import events as ev
from tapedeck.domain.state import MarketState
from tapedeck.domain.strategies.cross_pool_arb import round_trip_profit, size_round_trip
from tapedeck.runtime.importers import import_files
from tapedeck.runtime.opportunity_report import opportunities
from tests.conftest import require_data

V3_FILE = "uniswap-v3-usdc-weth-2024-01-05/ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-2024-01-05.raw.csv"
V2_FILE = "uniswap-v2-usdc-weth-reserves/reserves.csv"
V2 = "0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc"
V3 = "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"
Q192 = 1 << 192
GAS_WEI = (105_000 + 130_000) * 15 * 10**9  # a V2 and a V3 swap at 15 gwei
MAX_AGE = 60 * 10**9

pytestmark = pytest.mark.slow  # the whole day, priced twice: ~20 s


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    v3, v2 = require_data(V3_FILE), require_data(V2_FILE)
    path = tmp_path_factory.mktemp("day") / "day.db"
    import_files("uniswap-v3-logs", [str(v3)], path)
    import_files("uniswap-v2-reserves", [str(v2)], path, pool=V2, from_block=18937382, to_block=18944480)
    return path


def independent(path) -> list[list[tuple[int, bool, int, int, int]]]:
    """Episodes as runs of (ts, buy on V2, size, gross, net) per direction, computed from scratch."""
    with EventLog.open(path) as log:
        events = list(log.events())
    state = MarketState()
    runs: dict[bool, list] = {True: [], False: []}
    episodes = []
    for e in events:
        if type(e) is ev.V2ReservesSynced:
            state.on_v2(e)
        elif type(e) in (ev.V3Swapped, ev.V3Minted, ev.V3Burned, ev.V3Collected):
            state.on_v3(e)
        else:
            continue
        p2, p3 = state.v2.get(V2), state.v3.get(V3)
        found: dict[bool, tuple] = {}
        fresh = state.fresh(V2, e.ts, MAX_AGE) and state.fresh(V3, e.ts, MAX_AGE)
        if fresh and p2 and p3 and p3.liquidity:
            sp = p3.sqrt_price_x96
            gas = -(-GAS_WEI * Q192 // (sp * sp))  # WETH wei -> USDC units at the V3 pool's price, rounded up
            for a_pays in (True, False):
                sized = size_round_trip(a_pays, p2.reserve0, p2.reserve1, sp, p3.liquidity, p3.tick, 10, 500, 30,
                                        max(1, gas))
                if sized and sized[1] is not None and sized[1] >= max(1, gas):
                    found[a_pays] = (e.ts, a_pays, sized[0], sized[1], sized[1] - gas)
        for a_pays in (True, False):
            if a_pays in found:
                runs[a_pays].append(found[a_pays])
            elif runs[a_pays]:
                episodes.append(runs[a_pays])
                runs[a_pays] = []
    episodes.extend(r for r in runs.values() if r)
    return sorted(episodes, key=lambda r: r[0][0])


def test_the_real_day_opportunities_match_an_independent_computation(day) -> None:
    rep = opportunities(day)
    want = independent(day)
    assert len(want) > 5  # the day offered some
    assert len(rep.episodes) == len(want)
    for ep, run in zip(rep.episodes, want):
        assert ep.start_ts == run[0][0] and ep.end_ts == run[-1][0] and ep.detections == len(run)
        assert (ep.buy == V2) == run[0][1]
        best = max(run, key=lambda d: d[4])  # the first of the largest, as the report keeps it
        # the same profit to within 2 base units (2e-6 USDC): on these pools the best sizes lie on
        # plateaus ~1e7 sizes wide where the exact profit varies by rounding only; neither search
        # proves its optimum there (the finder's pattern search and the strategy's probes)
        assert abs(ep.best.gross_profit - best[3]) <= 2 and ep.best.gross_profit - ep.best.net_profit == best[3] - best[4]
    total = sum(max(d[4] for d in run) for run in want)
    (got,) = rep.total().values()
    assert abs(got - total) <= 2 * len(want) and total > 1_000 * 10**6  # over 1,000 USDC
    # each best size beats its neighbours by the pools' exact math (+-1, +-1000)
    with EventLog.open(day) as log:
        events = list(log.events())
    for ep in rep.episodes:
        state = MarketState()
        for e in events:
            if e.seq > ep.best_seq:
                break
            if type(e) is ev.V2ReservesSynced:
                state.on_v2(e)
            elif type(e) in (ev.V3Swapped, ev.V3Minted, ev.V3Burned):
                state.on_v3(e)
        p2, p3 = state.v2[V2], state.v3[V3]
        profit = round_trip_profit(ep.buy == V2, p2.reserve0, p2.reserve1, p3.sqrt_price_x96, p3.liquidity, p3.tick,
                                   10, 500, 30)
        x = ep.best.amount_in
        assert profit(x) == ep.best.gross_profit
        for n in (x - 1, x + 1, x - 1000, x + 1000):
            p = profit(n)
            assert p is None or p <= profit(x)


def test_report_command_prints_the_summary(day) -> None:
    r = CliRunner().invoke(main, ["report", "opportunities", str(day)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rep = opportunities(day)
    total = sum(e.best.net_profit for e in rep.episodes)
    assert f"{len(rep.episodes)} episodes above gas" in r.output
    assert f"best of each summed: {total / 1e6:,.2f} USDC net of fees and gas" in r.output
    assert "buy on USDC/WETH V2, sell on USDC/WETH 0.05%" in r.output and "15 gwei" in r.output
    r = CliRunner().invoke(main, ["report", "opportunities", str(day), "--min-profit", "1000000"])
    assert r.exit_code == 0 and "no round trip paid more than its fees and gas" in r.output
