"""A liquidation strategy plugged into the engine races the scenario's searchers on the real Aave
market: its transactions go through the mempool and the block builder, it wins some and loses
some, the results come back as execution events, and the run verifies with the same strategy."""
from __future__ import annotations

from typing import Any

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.runtime.verify import verify
from tapedeck.domain import events as ev
from tapedeck.runtime.strategy_loader import build_engine
from tapedeck.sim.chain.artifacts import node_modules
from tapedeck.runtime.outcomes import outcomes
from tapedeck.sim.recording import run_scenario
from tapedeck.sim.scenario import load_scenario

pytestmark = pytest.mark.contract
TIP = 5_000 * 10**9  # wei per gas: beats the searchers' bids on small positions, not on big ones


RISK = {"default_max_notional": 10**15, "default_max_outstanding": 10**16}


def config(tip: int) -> dict[str, Any]:
    """The test strategy named by import path, so the run's manifest rebuilds it."""
    return {"risk": RISK, "strategies": [{"kind": "tests.strategies_for_tests:LiquidateBelowOne", "tip": tip}]}


@pytest.fixture(scope="module")
def race(tmp_path_factory: Any) -> tuple[Any, list[ev.Event], Any]:
    if not (node_modules() / "@aave" / "core-v3").is_dir():
        pytest.skip(f"@aave/core-v3 not installed under {node_modules()}")
    out = tmp_path_factory.mktemp("race") / "race.db"
    summary = run_scenario(load_scenario("eth-crash", seed=7), config(TIP), out)
    return summary, list(EventLog.open(out).events()), out


def test_the_strategy_wins_some_races_and_loses_others_on_the_real_contracts(race: Any) -> None:
    summary, events, _ = race
    intents = {e.seq: e for e in events if type(e) is ev.OrderIntended}
    fills = [e for e in events if type(e) is ev.OrderFilled]
    failures = [e for e in events if type(e) is ev.OrderFailed]
    included = {e.intent: e for e in events if type(e) is ev.TransactionIncluded}
    assert intents and fills and failures
    # every intent became a transaction, and every transaction was mined (won or reverted)
    submitted = {e.intent for e in events if type(e) is ev.TransactionSubmitted}
    assert submitted == set(intents) == set(included)
    assert {f.intent for f in fills} | {f.intent for f in failures} == set(intents)
    # a win is a LiquidationCall by our account, with the amounts the contract logged
    ours = {e.sender for e in events if type(e) is ev.TransactionSubmitted}
    logged = [e for e in events if type(e) is ev.AaveLiquidationObserved and e.liquidator in ours]
    assert sorted((e.debt_to_cover, e.liquidated_collateral) for e in logged) == \
        sorted((f.notional, f.amount) for f in fills)
    for f in fills:
        inc = included[f.intent]
        assert inc.status == "success" and f.fee == inc.gas_used * inc.gas_price and f.fee_asset == "ETH"
        assert f.ts > intents[f.intent].ts  # the world answered later, after latency and a block
    # a loss reverted on chain, and names the searcher that got there first in the same block
    for f in failures:
        assert included[f.intent].status == "reverted" and "liquidated first in block" in f.reason
    searchers = {e.liquidator for e in events if type(e) is ev.AaveLiquidationObserved} - ours
    assert any(any(s in f.reason for s in searchers) for f in failures)
    # every liquidation the chain logged (ours and the searchers') was recorded as an input
    assert summary.liquidations == len([e for e in events if type(e) is ev.AaveLiquidationObserved])
    result = outcomes(events)["test-liquidator"]
    assert (result.intents, result.won, result.lost) == (len(intents), len(fills), len(failures))
    assert result.gas_wei == sum(i.gas_used * i.gas_price for i in included.values())
    assert result.lost_to and all(k.startswith("outbid by ") for k in result.lost_to)


def test_the_run_verifies_with_the_same_strategy_and_not_with_another(race: Any) -> None:
    _, events, out = race
    log = EventLog.open(out)
    ok = verify(log, build_engine(log.manifest.config))  # from the manifest alone
    assert ok.ok and ok.decisions == len([e for e in events if e.KIND == ev.DECISION])
    other = verify(EventLog.open(out), build_engine(config(TIP - 1)))  # another tip decides differently
    assert not other.ok and type(other.divergence.recorded) is ev.OrderIntended


def test_inspect_shows_the_strategys_races(race: Any) -> None:
    from click.testing import CliRunner

    from tapedeck.cli import main

    _, events, out = race
    r = CliRunner().invoke(main, ["inspect", str(out)])
    assert r.exit_code == 0, r.output
    intents = len([e for e in events if type(e) is ev.OrderIntended])
    # the test strategy records no opportunity: its orders act on none (counted as orders, not as acted on)
    assert f"strategy test-liquidator: 0 opportunities seen, 0 acted on (0 refused by risk); {intents} orders" in r.output
    assert "    lost: outbid by 0x" in r.output
