"""Where cex_dex_arb's pools and book get their identity: the sim completes scenario pool names
and the book's fee, lot and decimals from the scenario; a config naming a pool by address takes
kind, tokens, fee and tick spacing (and which token is the base) from the pool registry."""
from __future__ import annotations

import tomllib

import pytest

from tapedeck.domain.strategies import ConfigError
from tapedeck.domain.strategies.cex_dex_arb import CexDexArb
from tapedeck.runtime.strategy_loader import build_engine
from tapedeck.sim.cex_dex_config import complete
from tapedeck.sim.liquidator_config import complete as complete_liquidator
from tapedeck.sim.scenario import load_scenario
from tapedeck.sim.sim_tokens import token_addresses
from tests.conftest import ROOT

RISK = {"default_max_notional": 10**12, "default_max_outstanding": 10**13}
USDC_WETH_005 = "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"  # fixtures/registry.toml


def _shipped(scenario: str = "") -> dict:
    config = tomllib.loads((ROOT / "fixtures" / "config" / "sim-default.toml").read_text(encoding="utf-8"))
    return complete_liquidator(config, load_scenario(scenario))[0] if scenario else config  # as the sim does


def _entry(config: dict) -> dict:
    (entry,) = [s for s in config["strategies"] if s["kind"] == "cex_dex_arb"]
    return entry


def test_the_sim_completes_book_and_pools_from_the_scenario() -> None:
    done, notes = complete(_shipped("cex-dex-dislocation"), load_scenario("cex-dex-dislocation"))
    e = _entry(done)
    tokens = {k: v.lower() for k, v in token_addresses().items()}
    assert (e["cex_instrument"], e["cex_taker_fee_bps"], e["cex_lot_size"]) == ("ETH-USDC", "10", "0.0001")
    assert [p["kind"] for p in e["pools"]] == ["v3", "v2"] and e["pools"][0]["fee"] == 500
    assert e["pools"][0]["tick_spacing"] == 10 and e["base_token"] == tokens["WETH"]
    assert any("cex-dex: completed from the scenario" in n for n in notes)
    assert complete(done, load_scenario("cex-dex-dislocation"))[1] == []  # completing again changes nothing
    s = [x for x in build_engine(done).strategies if isinstance(x, CexDexArb)][0]
    assert [p.pool for p in s.pools] == ["uniswap-v3-usdc-weth-005", "uniswap-v2-usdc-weth"]


def test_pools_or_a_book_the_scenario_lacks_are_left_out_and_said() -> None:
    done, notes = complete(_shipped(), load_scenario("eth-crash"))  # a V2 pool only
    assert [p["pool"] for p in _entry(done)["pools"]] == ["uniswap-v2-usdc-weth"]
    assert any("pools left out: uniswap-v3-usdc-weth-005" in n for n in notes)
    done, notes = complete(_shipped("oracle-jump"), load_scenario("oracle-jump"))  # no binance venue
    assert _entry(done)["pools"] == [] and any("no book venue 'binance'; inert" in n for n in notes)
    s = [x for x in build_engine(done).strategies if isinstance(x, CexDexArb)][0]
    assert s.handles == ()


def test_a_bare_pool_nobody_completed_is_a_clear_error() -> None:
    config = {"risk": RISK, "strategies": [{"kind": "cex_dex_arb", "pools": [{"pool": "uniswap-v2-usdc-weth"}]}]}
    with pytest.raises(ConfigError, match="has no kind: give kind, token0, token1 and fee"):
        build_engine(config)


def test_a_registered_pool_by_address_takes_its_identity_from_the_registry() -> None:
    config = {"risk": RISK, "strategies": [{"kind": "cex_dex_arb", "pools": [{"pool": USDC_WETH_005}]}]}
    (s,) = build_engine(config).strategies
    (p,) = s.pools
    assert (p.kind, p.fee, p.tick_spacing) == ("v3", 500, 10)
    assert s.base_token == "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"  # WETH
    assert s.quote_token == "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48" and s.quote_asset == "USDC"
    config["strategies"][0]["pools"] = [{"pool": USDC_WETH_005, "fee": 3000}]
    with pytest.raises(ConfigError, match=r"pools\[0\].fee = 3000 contradicts the pool registry's 500"):
        build_engine(config)
