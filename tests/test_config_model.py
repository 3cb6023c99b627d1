"""The config schema refuses wrong values by name (file and dotted key), and accepts the shipped configs."""
from __future__ import annotations

import pytest

from tapedeck.adapters.config_files import load_config
from tapedeck.runtime.config_model import ConfigInvalid, validate_config
from tests.conftest import ROOT

GOOD = {"risk": {"default_max_notional": 10, "default_max_outstanding": 20},
        "strategies": [{"kind": "spread", "name": "s", "min_edge": "0.5"}]}


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "fixtures" / "config").glob("*.toml")
                                         if not p.name.startswith("live-")))  # live-*: tests/test_live_config.py
def test_shipped_configs_fit(path) -> None:
    assert validate_config(load_config(path), str(path))["risk"]


@pytest.mark.parametrize("change, expected", [
    (lambda c: c["risk"].update(kill_switch="no"), "cfg.toml: risk.kill_switch: Input should be a valid boolean (got 'no')"),
    (lambda c: c["risk"].update(default_max_notional=-5), "cfg.toml: risk.default_max_notional: Input should be greater than or equal to 0 (got -5)"),
    (lambda c: c["risk"].update(default_max_outstanding="5"), "cfg.toml: risk.default_max_outstanding: Input should be a valid integer (got '5')"),
    (lambda c: c.update(stratgies=[]), "cfg.toml: stratgies: unknown key"),
    (lambda c: c["risk"].pop("default_max_notional"), "cfg.toml: risk.default_max_notional: missing"),
    (lambda c: c["risk"].update(venues={"eth": {"max_notional": -1}}), "cfg.toml: risk.venues.eth.max_notional: Input should be greater than or equal to 0 (got -1)"),
    (lambda c: c["risk"].update(venues={"eth": {"max_notionl": 1}}), "cfg.toml: risk.venues.eth.max_notionl: unknown key"),
    (lambda c: c["strategies"][0].pop("kind"), "cfg.toml: strategies[0].kind: missing"),
    (lambda c: c["strategies"].append({"kind": ""}), "cfg.toml: strategies[1].kind: String should have at least 1 character (got '')"),
    (lambda c: c.pop("risk"), "cfg.toml: risk: missing"),
    (lambda c: c.update(outcomes={"eth_price": "bogus:x"}), "cfg.toml: outcomes.eth_price: Value error, ETH price "
     "source must be 'oracle:<feed>' or 'pool:<pool id>', got 'bogus:x' (got 'bogus:x')"),
])
def test_wrong_values_are_named(change, expected) -> None:
    import copy

    cfg = copy.deepcopy(GOOD)
    change(cfg)
    with pytest.raises(ConfigInvalid) as info:
        validate_config(cfg, "cfg.toml")
    assert str(info.value) == expected


def test_a_strategy_keeps_its_own_parameters() -> None:
    assert validate_config(GOOD, "x")["strategies"][0]["min_edge"] == "0.5"
