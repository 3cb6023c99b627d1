"""The sim completes an ``aave_liquidator`` entry's bare pools from the scenario and the sim's fixed
token addresses (never guessed), and the shipped sim config builds for every shipped scenario."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tapedeck.runtime.strategy_loader import build_engine
from tapedeck.sim.cex_dex_config import complete as complete_cex_dex
from tapedeck.sim.liquidator_config import complete
from tapedeck.sim.scenario import ScenarioError, load_scenario
from tapedeck.sim.sim_tokens import token_addresses

ROOT = Path(__file__).resolve().parent.parent
SIM_DEFAULT = ROOT / "fixtures" / "config" / "sim-default.toml"


def _liquidator(config: dict) -> dict:
    (s,) = [s for s in config["strategies"] if s["kind"] == "aave_liquidator"]
    return s


def test_the_sim_tokens_put_usdc_below_weth() -> None:
    t = token_addresses()
    assert int(t["USDC"], 16) < int(t["WETH"], 16)  # token0 of every pool, as the DEX agents assume


def test_eth_crash_completes_the_pool_with_the_markets_tokens() -> None:
    config = tomllib.loads(SIM_DEFAULT.read_text(encoding="utf-8"))
    done, notes = complete(config, load_scenario("eth-crash"))
    t = {k: v.lower() for k, v in token_addresses().items()}
    s = _liquidator(done)
    assert s["pools"] == [{"pool": "uniswap-v2-usdc-weth", "kind": "v2", "token0": t["USDC"], "token1": t["WETH"],
                           "fee": 30}]
    assert s["native_asset"] == t["WETH"] and s["flash_premium_bps"] == 0 and s["private"] is True
    assert len(notes) == 1 and "uniswap-v2-usdc-weth" in notes[0]
    assert _liquidator(config)["pools"] == [{"pool": "uniswap-v2-usdc-weth"}]  # the input is not changed
    assert complete(done, load_scenario("eth-crash")) == (done, [])  # idempotent: a full entry is the config's own


@pytest.mark.parametrize("name", ["cex-dex-dislocation", "oracle-jump", "quiet", "eth-crash"])
def test_the_shipped_config_builds_for_every_scenario(name: str) -> None:
    config = tomllib.loads(SIM_DEFAULT.read_text(encoding="utf-8"))
    done, notes = complete(config, load_scenario(name))
    done, _ = complete_cex_dex(done, load_scenario(name))  # the sim completes the cex-dex strategy's pools too
    build_engine(done)
    if name != "eth-crash":  # no Aave market: nothing to liquidate, its bare pools left out (and said)
        assert _liquidator(done)["pools"] == [] and "no Aave market" in notes[0]


def test_a_pool_the_scenario_lacks_is_left_out_and_said() -> None:
    config = {"strategies": [{"kind": "aave_liquidator", "pools": [{"pool": "uniswap-v3-usdc-weth-005"}]}]}
    done, notes = complete(config, load_scenario("eth-crash"))
    assert _liquidator(done)["pools"] == []
    assert "has no such pool on ethereum; pools left out: uniswap-v3-usdc-weth-005" in notes[0]


def test_copycats_need_borrowers(tmp_path: Path) -> None:
    text = (ROOT / "fixtures" / "scenarios" / "quiet.toml").read_text(encoding="utf-8")
    (tmp_path / "q.toml").write_text(text + "\n[agents.copycats]\ncount = 1\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match="agents.copycats.count"):
        load_scenario(tmp_path / "q.toml")
