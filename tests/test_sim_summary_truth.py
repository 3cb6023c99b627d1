"""What ``tapedeck sim`` prints adds up with what the run recorded: the liquidations' winners are
counted from the chain's recorded ``LiquidationCall`` logs (the bot's among them), and a lost
reason is grouped whole, never cut inside its parentheses."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.domain import events as ev
from tapedeck.runtime.outcomes import _why


def test_a_lost_reason_is_grouped_by_the_winner_or_kept_whole() -> None:
    assert _why("rejected: rejected by venue (simulated)") == "rejected: rejected by venue (simulated)"
    assert _why("reverted: Too little received (uniswap-v3 moved first by 0xab, 0xcd)") == "outbid by 0xab, 0xcd"
    assert _why("reverted: X; liquidated first in block 7 by 0xab") == "outbid by 0xab"
    assert _why("reverted: ProfitBelowMinimum; profit=1 (a->b moved first in block 9 by 0xef)") == "outbid by 0xef"
    assert _why("dropped: left out (a; b): c; later") == "dropped: left out (a; b): c"  # ; inside () is not an end


@pytest.fixture(scope="module")
def eth_crash(tmp_path_factory: Any) -> tuple[Any, list[ev.Event]]:
    from tapedeck.cli import load_config
    from tapedeck.adapters.config_files import FIXTURES
    from tapedeck.sim.recording import run_scenario
    from tapedeck.sim.scenario import load_scenario

    out = tmp_path_factory.mktemp("sum") / "eth-crash.db"
    summary = run_scenario(load_scenario("eth-crash", seed=7), load_config(FIXTURES / "config" / "sim-default.toml"),
                           out)
    return summary, list(EventLog.open(out).events())


@pytest.mark.contract
def test_the_liquidations_winners_are_counted_from_the_recorded_logs(eth_crash: Any) -> None:
    from tapedeck.cli import sim_report

    summary, events = eth_crash
    logged = [e for e in events if type(e) is ev.AaveLiquidationObserved]
    assert summary.liquidations == len(logged) > 0
    assert sum(summary.wins.values()) == len(logged)  # every liquidation has its winner: none "won by nobody"
    names = {a: n for a, n in summary.liquidators.items()}
    by = Counter(names.get(e.liquidator.lower(), e.liquidator.lower()) for e in logged)
    assert summary.wins == {("aave-liquidator" if k == "the bot" else k): n for k, n in by.items()}
    ours = summary.strategies["aave-liquidator"]
    assert summary.wins.get("aave-liquidator", 0) == ours.won > 0  # the bot's wins as its own outcome says
    for name, (won, _lost) in summary.copycats.items():
        assert summary.wins.get(name, 0) == won
    line = next(x for x in sim_report(summary, 1.0) if x.startswith("  aave v3"))
    assert "won by nobody" not in line and f"aave-liquidator {ours.won}" in line


@pytest.mark.contract
def test_every_lost_reason_printed_closes_its_parentheses(eth_crash: Any) -> None:
    from tapedeck.cli import sim_report

    summary, _ = eth_crash
    for line in sim_report(summary, 1.0):
        if line.strip().startswith("lost:"):
            for item in line.split(": ", 1)[1].split("; "):
                assert item.count("(") == item.count(")"), item


@pytest.mark.contract
def test_acted_on_counts_opportunities_and_orders_are_counted_apart(eth_crash: Any) -> None:
    summary, events = eth_crash
    liq, cex = summary.strategies["aave-liquidator"], summary.strategies["cex-dex"]
    assert liq.opportunities == len([e for e in events if type(e) is ev.LiquidationOpportunity]) == liq.acted > 0
    cex_opps = len([e for e in events if type(e) is ev.CexDexOpportunity])
    assert cex.opportunities == cex_opps and cex.acted + cex.refused <= cex_opps < cex.intents  # two legs, unwinds
    for s in summary.strategies.values():
        assert s.acted + s.refused <= s.opportunities
        assert s.intents == s.won + s.lost + s.pending + s.paper_filled  # every order ended one way, or is pending


@pytest.mark.contract
@pytest.mark.parametrize("scenario,config", [("oracle-jump", "sim-sliced-order.toml"),
                                             ("perp-taker-flow", "sim-vwap-order.toml")])
def test_a_book_order_sims_fills_are_valued_at_the_feed_the_scenario_records(scenario: str, config: str,
                                                                          tmp_path: Path) -> None:
    from tapedeck.adapters.config_files import FIXTURES
    from tapedeck.cli import load_config
    from tapedeck.sim.recording import run_scenario
    from tapedeck.sim.scenario import load_scenario

    sc = load_scenario(scenario)
    summary = run_scenario(sc, load_config(FIXTURES / "config" / config), tmp_path / "run.db")
    (feed,) = [o.name for o in sc.oracles]
    events = list(EventLog.open(tmp_path / "run.db").events())
    (s,) = summary.strategies.values()
    assert s.eth_price.startswith(f"oracle {feed} (last ") and s.unpriced == 0 and s.executed_fills > 0
    # each fill against the feed's last round before it: ETH received at that price, less what it paid
    price, losing, pnl = 0, 0, 0
    for e in events:
        if type(e) is ev.OracleUpdated and e.feed == feed:
            price = e.answer * 10**6 // 10**e.decimals
        elif type(e) is ev.OrderFilled:
            result = e.amount * price // 10**4 - e.notional - e.fee  # a buy of 4-decimal ETH for USDC
            losing += result < 0
            pnl += result
    assert (s.executed_losing, s.executed_pnl) == (losing, pnl)
