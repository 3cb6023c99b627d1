"""`tapedeck sim eth-crash` with the shipped sim config liquidates: the ``aave_liquidator`` strategy
(on by default) finds opportunities on the fast path, sends them through the flash-loan executor
as private bundles, races the scenario's searchers and copycat, wins some and loses some; with the
fast path off the scan still liquidates; a lost public race pays gas, a lost private one does not;
every run verifies from its manifest alone."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.domain import events as ev
from tapedeck.runtime.liquidation_report import liquidation_reports
from tapedeck.runtime.strategy_loader import build_engine
from tapedeck.runtime.verify import verify
from tapedeck.sim.chain.artifacts import ArtifactMissing, node_modules
from tapedeck.sim.recording import run_scenario
from tapedeck.sim.scenario import load_scenario

pytestmark = [pytest.mark.contract, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
NAME = "aave-liquidator"


def _chain() -> str:
    from tapedeck.sim.chain.anvil import anvil_binary

    try:
        anvil_binary()
        return "anvil"
    except ArtifactMissing:
        return "pyevm"


def _config(**changes: Any) -> dict[str, Any]:
    import tomllib

    config = tomllib.loads((ROOT / "fixtures" / "config" / "sim-default.toml").read_text(encoding="utf-8"))
    config = copy.deepcopy(config)
    for s in config["strategies"]:
        if s["kind"] == "aave_liquidator":
            s.update(changes)
    return config


def _run(tmp: Path, label: str, **changes: Any) -> tuple[Any, list[ev.Event], Path]:
    out = tmp / f"{label}.db"
    summary = run_scenario(load_scenario("eth-crash", seed=7), _config(**changes), out, chain=_chain())
    return summary, list(EventLog.open(out).events()), out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: Any) -> dict[str, tuple[Any, list[ev.Event], Path]]:
    if not (node_modules() / "@aave" / "core-v3").is_dir():
        pytest.skip(f"@aave/core-v3 not installed under {node_modules()}")
    tmp = tmp_path_factory.mktemp("shipped")
    return {"private": _run(tmp, "private"), "scan": _run(tmp, "scan", fast_path=False),
            "public": _run(tmp, "public", private=False)}


def _report(events: list[ev.Event]) -> Any:
    (report,) = [r for r in liquidation_reports(events) if r.strategy == NAME]
    return report


def _verifies(out: Path) -> None:
    log = EventLog.open(out)
    result = verify(log, build_engine(log.manifest.config))  # the manifest's (completed) config alone
    assert result.ok, result.divergence


def test_the_shipped_strategy_liquidates_wins_and_loses_and_verifies(runs: Any) -> None:
    summary, events, out = runs["private"]
    assert "completed from the sim's deployment" in " ".join(summary.notes)
    opps = [e for e in events if type(e) is ev.LiquidationOpportunity and e.strategy == NAME]
    intents = [e for e in events if type(e) is ev.OrderIntended and e.side == "liquidate"]
    fills = [e for e in events if type(e) is ev.OrderFilled]
    failures = [e for e in events if type(e) is ev.OrderFailed]
    assert opps and intents and fills and failures
    assert all(i.private and i.route == ("uniswap-v2-usdc-weth",) for i in intents)
    r = _report(events)
    # the fast path finds nearly all; the scan catches one the fast path could not act on then
    assert sum(r.found.values()) == len(opps) and r.found["fast"] > r.found.get("scan", 0)
    assert r.attempted == len(intents) == r.private
    assert r.won >= 1 and sum(r.lost.values()) >= 1
    assert all("first" in why or "bundle" in why for why in r.lost)  # lost to a competitor's liquidation
    ours = {e.sender for e in events if type(e) is ev.TransactionSubmitted}
    theirs = {e.liquidator for e in events if type(e) is ev.AaveLiquidationObserved} - ours
    assert theirs and any(any(t in f.reason for t in theirs) for f in failures)
    assert all(p > 0 for p in r.realised)  # the executor keeps at least its minimum, or reverts
    # the run's PnL is the executor's realised profit less its gas: nothing left over, no price marked
    from tapedeck.runtime.outcomes import outcomes

    o = outcomes(events)[NAME]
    assert o.inventory == {} and o.inventory_value == 0 and o.executed_losing == 0
    assert sum(r.realised) - r.gas_wei * 4_000 // 10**12 < o.pnl < sum(r.realised)  # gas at < 4,000 USDC/ETH
    _verifies(out)


def test_with_the_fast_path_off_the_scan_still_liquidates(runs: Any) -> None:
    _, events, out = runs["scan"]
    opps = [e for e in events if type(e) is ev.LiquidationOpportunity and e.strategy == NAME]
    assert opps and {o.path for o in opps} == {"scan"}
    r = _report(events)
    assert r.won >= 1
    fast = _report(runs["private"][1])
    assert max(r.detection_ns["scan"]) > max(fast.detection_ns["fast"])  # later than the fast path
    _verifies(out)


def test_a_lost_public_race_pays_gas_and_a_lost_private_one_does_not(runs: Any) -> None:
    """The builder orders bundles and public transactions by payment per gas, so the copycat (re-bidding
    the searchers' public liquidations) can take a borrower from a private bundle too; what private
    submission saves is the cost of losing: a bundle that would revert is left out, a public
    transaction that lost is mined, reverts, and pays its gas."""
    _, public, out = runs["public"]
    _, private, _ = runs["private"]
    pub, priv = _report(public), _report(private)
    assert pub.attempted and pub.private == 0 and priv.private == priv.attempted
    copycat = {e.sender for e in public if type(e) is ev.TransactionSubmitted}  # ours, to exclude
    cats = [e for e in public if type(e) is ev.AaveLiquidationObserved and e.liquidator not in copycat]
    assert cats  # competitors liquidated in the public run
    assert sum(n for why, n in pub.lost.items() if _copycat() in why.lower()) >= 1  # the copycat takes some
    for events, private_run in ((public, False), (private, True)):
        ours = {e.seq for e in events if type(e) is ev.OrderIntended and e.strategy == NAME}
        failed = {e.intent for e in events if type(e) is ev.OrderFailed and e.intent in ours}
        paid = [e for e in events if type(e) is ev.TransactionIncluded and e.intent in failed]
        assert failed
        if private_run:  # left out: never mined, no gas
            assert paid == [] and all(e.intent in failed for e in events
                                      if type(e) is ev.TransactionDropped and e.intent in ours)
        else:  # mined and reverted: gas paid
            assert paid and all(e.status == "reverted" and e.gas_used * e.gas_price > 0 for e in paid)
    _verifies(out)


def test_the_copycat_never_sees_our_bundles(runs: Any) -> None:
    """The copycat watches the public mempool only: in the private run it copies the searchers' public
    liquidations and none of ours. (In the public run it copies the searchers too: it copies one
    liquidation per borrower and collateral, and the searchers' reach the mempool before ours, so on
    this seed its harm to us comes through those copies, private or public alike.)"""
    for label in ("public", "private"):
        summary, events, _ = runs[label]
        intents = {e.seq for e in events if type(e) is ev.OrderIntended and e.strategy == NAME}
        ours = {e.sender.lower() for e in events if type(e) is ev.TransactionSubmitted and e.intent in intents}
        (copied,) = summary.copied_from.values()  # the scenario ships one copycat
        assert ours and copied  # we sent, and it copied someone
        if label == "private":
            assert not ours & set(copied), (ours, copied)


def _copycat() -> str:
    from tapedeck.sim.onchain import sim_key

    return sim_key("copycat", 0).address.lower()
