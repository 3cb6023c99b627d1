"""`tapedeck sim`: the world's observable messages become a recorded run that verifies; scenario +
seed fix the digest across processes; another seed gives another world."""
from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from tapedeck.adapters.eventlog import EventLog
from tapedeck.cli import main
from tapedeck.domain import events as ev
from tapedeck.sim.chain.artifacts import node_modules
from tests.conftest import ROOT


def sim_and_verify(tmp_path, scenario: str, seed: int, name: str) -> tuple[str, str]:
    out = tmp_path / name
    r = CliRunner().invoke(main, ["sim", scenario, "--seed", str(seed), "--out", str(out)])
    assert r.exit_code == 0, r.output
    v = CliRunner().invoke(main, ["replay", str(out), "--verify"])
    assert v.exit_code == 0, v.output
    return r.output, v.output.strip().splitlines()[-1]


@pytest.mark.contract
def test_eth_crash_makes_borrowers_liquidatable_and_competitors_race_on_real_aave(tmp_path) -> None:
    if not (node_modules() / "@aave" / "core-v3").is_dir():
        pytest.skip(f"@aave/core-v3 not installed under {node_modules()}")
    out, verified = sim_and_verify(tmp_path, "eth-crash", 7, "crash.db")
    assert "scenario eth-crash seed 7 on revm" in out  # the default backend
    assert "aave v3 (real contracts): 30 borrowers" in out
    log = EventLog.open(tmp_path / "crash.db")
    assert log.manifest.mode == "sim" and log.manifest.seed == 7 and log.manifest.ended == "clean"
    events = list(log.events())
    blocks = [e for e in events if type(e) is ev.BlockProduced]
    rounds = [e for e in events if type(e) is ev.OracleUpdated and e.feed == "eth-usd"]  # not the Aave feeds
    assert len(blocks) == 150  # 1800 s at 12 s per block
    assert [b.number for b in blocks] == sorted(b.number for b in blocks)
    assert all(b.next_base_fee > 0 for b in blocks)
    # the crash moves the oracle by more than its deviation threshold many times, downwards overall
    assert len(rounds) > 10 and rounds[-1].answer < rounds[0].answer * 75 // 100
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    decisions = len([e for e in events if e.KIND == ev.DECISION])
    assert decisions > 0  # the shipped sim config's liquidator acts (tests/test_sim_shipped_liquidator.py)
    assert verified.startswith(f"verified {len(events) - decisions} inputs, {decisions} decisions")
    # liquidations happened on the real contracts, after the crash began, and were raced for
    liqs = [e for e in events if type(e) is ev.AaveLiquidationObserved]
    assert liqs and all(e.debt_to_cover > 0 and e.liquidated_collateral > 0 for e in liqs)
    assert min(e.ts for e in liqs) > log.manifest.started_ts + 300 * 10**9  # the crash starts at t = 5 min
    assert len({e.liquidator for e in liqs}) >= 2  # more than one searcher won something
    reverted = int(out.split(" competing attempts reverted")[0].rsplit(" ", 1)[-1])
    assert reverted > 0  # and some lost races
    # the whole run, real-contract liquidations included, is the same in another process, and on the
    # other backend (anvil, when its binary is installed): every address, amount, gas figure, revert
    chain = "anvil" if _anvil_installed() else "pyevm"
    assert _digest_in_subprocess(tmp_path, 7, "again.db", "eth-crash", chain) == verified.split("digest ")[-1]


def _anvil_installed() -> bool:
    from tapedeck.sim.chain.anvil import anvil_binary
    from tapedeck.sim.chain.artifacts import ArtifactMissing
    try:
        anvil_binary()
    except ArtifactMissing:
        return False
    return True


def _digest_in_subprocess(tmp_path, seed: int, name: str, scenario: str = "cex-dex-dislocation",
                          chain: str = "pyevm") -> str:
    out = tmp_path / name
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from tapedeck.cli import main; "
            f"main(['sim', '{scenario}', '--seed', '{seed}', '--out', {str(out)!r}, '--chain', '{chain}'])")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env={"PYTHONHASHSEED": str(seed + 11)})
    v = CliRunner().invoke(main, ["replay", str(out), "--verify"])
    return v.output.strip().split("digest ")[-1]


@pytest.mark.contract
def test_same_seed_same_digest_across_processes_other_seed_other_world(tmp_path) -> None:
    a = _digest_in_subprocess(tmp_path, 3, "a.db")
    b = _digest_in_subprocess(tmp_path, 3, "b.db")
    c = _digest_in_subprocess(tmp_path, 4, "c.db")
    assert len(a) == 64 and a == b and c != a


def test_a_bad_scenario_names_the_file_and_field(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    text = (ROOT / "fixtures" / "scenarios" / "quiet.toml").read_text()
    bad.write_text(text.replace("block_interval = 12", "block_interval = \"abc\""))
    r = CliRunner().invoke(main, ["sim", str(bad), "--out", str(tmp_path / "x.db")])
    assert r.exit_code != 0
    assert "bad.toml" in r.output and "block_interval" in r.output
    assert not (tmp_path / "x.db").exists()


@pytest.mark.contract
def test_cex_dex_dislocation_opens_a_cross_pool_arbitrage_the_strategy_detects(tmp_path) -> None:
    out, verified = sim_and_verify(tmp_path, "cex-dex-dislocation", 2, "cd.db")
    log = EventLog.open(tmp_path / "cd.db")
    t0 = log.manifest.started_ts
    events = list(log.events())
    ops = [e for e in events if type(e) is ev.OpportunityDetected and e.strategy == "v2-v3-usdc-weth"]
    gaps = len({e.key or e.seq for e in ops})  # detections of the same gap (same key) count once
    assert ops and "strategy v2-v3-usdc-weth: " + f"{gaps} opportunities seen" in out
    # the CEX jumps 3% at t = 120..130 s; the V3 pool's arbitrageurs (12 s late) catch up before the
    # V2 pool's (36 s late): in between, V2 is cheap, so buy WETH on V2 and sell it on V3
    assert all(e.buy_venue == "uniswap-v2" and e.sell_venue == "uniswap-v3" for e in ops)
    assert all(130 * 10**9 < e.ts - t0 < 200 * 10**9 for e in ops)
    assert max(e.net_profit for e in ops) > 500 * 10**6  # > 500 USDC after gas: a 3% gap on deep pools
    # the default sim config acts atomically: one call of the bot's arbitrage executor per intent,
    # racing the scenario's two searchers (5 gwei) and its own earlier intents in the block builder
    # (the shipped cex-dex strategy trades in this world too: its own legs are tests/test_cex_dex_sim.py's)
    intents = {e.seq: e for e in events if type(e) is ev.OrderIntended and e.strategy == "v2-v3-usdc-weth"}
    legs = [e for e in events if type(e) is ev.TransactionIncluded and e.intent in intents]
    fills = [e for e in events if type(e) is ev.OrderFilled and e.intent in intents]
    failed = [e for e in events if type(e) is ev.OrderFailed and e.intent in intents]
    assert intents and all(i.side == "arb" and i.max_priority_fee == 6 * 10**9 for i in intents.values())
    assert sorted(e.intent for e in legs) == sorted(intents)  # every intent's one transaction was mined
    assert fills and all(f.amount > f.notional and f.fee_asset == "ETH" for f in fills)  # won: USDC out > in
    assert {f.intent for f in fills} | {f.intent for f in failed} == set(intents)
    assert all("reverted: " in f.reason for f in failed)
    assert [e for e in events if type(e) is ev.IntentRejected and "max_outstanding" in e.reason]
    assert "v2/v3 arbitrage searchers: arb-searcher-1 won" in out

    def price(e: ev.Event) -> float:
        if type(e) is ev.V2ReservesSynced:
            return e.reserve0 * 10**12 / e.reserve1
        return 10**12 * 2**192 / e.sqrt_price_x96**2

    v2 = [e for e in events if type(e) is ev.V2ReservesSynced]
    v3 = [e for e in events if type(e) is ev.V3Swapped]
    cex = [e for e in events if type(e) is ev.QuoteUpdated]
    assert len(v2) > 5 and len(v3) > 5
    end = float(cex[-1].price(cex[-1].bid))
    for pool in (v2, v3):  # both pools caught up with the CEX by the end, within their fee band
        assert price(pool[0]) == pytest.approx(3000, rel=1e-9) and price(pool[-1]) == pytest.approx(end, rel=0.006)


@pytest.mark.contract
def test_quiet_produces_no_trades(tmp_path) -> None:
    out, verified = sim_and_verify(tmp_path, "quiet", 4, "quiet.db")
    events = list(EventLog.open(tmp_path / "quiet.db").events())
    assert not [e for e in events if e.KIND == ev.DECISION]
    assert " inputs, 0 decisions, digest " in verified
    # the pools did trade (background traders, arbitrageurs): there was something to look at
    assert len([e for e in events if type(e) is ev.V2ReservesSynced]) > 5
    assert len([e for e in events if type(e) is ev.V3Swapped]) > 5
    assert "0 opportunities seen, 0 acted on" in out
