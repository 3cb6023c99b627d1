"""Every config shipped under fixtures/config/ is valid for the command the README pairs it with,
checked the way that command checks it and without a network: a live config as ``tapedeck live``
and ``tapedeck record`` load it and build its adapters (``LiveRunner.prepare``, no source started),
a sim config as ``tapedeck sim`` completes and validates it for each scenario the README runs it
with, a replay config as ``tapedeck replay`` does (schema, then the engine)."""
from __future__ import annotations

import socket
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tapedeck.adapters.config_files import FIXTURES

CONFIGS = FIXTURES / "config"
# the scenarios the README runs each sim config with (sim-default: `tapedeck sim`'s default config)
SIM_PAIRS = {"sim-default.toml": ("eth-crash", "cex-dex-dislocation", "oracle-jump", "perp-taker-flow", "quiet"),
             "sim-sliced-order.toml": ("oracle-jump",), "sim-vwap-order.toml": ("perp-taker-flow",)}


def _shipped(prefix: str) -> list[Path]:
    return sorted(CONFIGS.glob(f"{prefix}*.toml"))


def test_every_shipped_config_is_checked_here() -> None:
    def kind(p: Path) -> str:
        data = tomllib.loads(p.read_text())
        return "live" if "sources" in data or "live" in data else "sim" if p.name.startswith("sim-") else "replay"

    found = {p.name: kind(p) for p in CONFIGS.glob("*.toml")}
    assert {n for n, k in found.items() if k == "live"} == {p.name for p in _shipped("live-")}
    assert {n for n, k in found.items() if k == "sim"} == set(SIM_PAIRS)
    assert {n for n, k in found.items() if k == "replay"} == {"default.toml"}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a: Any, **k: Any) -> None:
        raise AssertionError(f"a shipped config's check connected somewhere: {a!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("path", _shipped("live-"), ids=lambda p: p.name)
def test_a_shipped_live_config_loads_and_builds_without_a_node(path: Path, tmp_path: Path, no_network: None) -> None:
    from tapedeck.live.config import load_live_config
    from tapedeck.live.record import build_sources, load_record_config
    from tapedeck.live.runner import LiveRunner

    settings = load_live_config(str(path), environ={}, sets=["ops.enabled=false"])  # ops: no port in a test
    assert settings.sources, f"{path.name}: a live config feeds its strategies from at least one source"
    runner = LiveRunner(settings, out=str(tmp_path / "live.db"), environ={}, signals=False).prepare()  # paper
    try:
        assert len(runner.sources) == len(settings.sources) and len(runner.gateways) == len(settings.gateways)
    finally:
        runner.close()
    cfg = load_record_config(path, environ={})  # `tapedeck record` reads the same file
    assert len(build_sources(cfg, str(path), environ={})) == len(settings.sources)


@pytest.mark.parametrize("path", _shipped("live-"), ids=lambda p: p.name)
def test_a_shipped_live_config_keeps_no_secret_or_provider_url(path: Path) -> None:
    from tapedeck.live.config import load_live_config

    settings = load_live_config(str(path), environ={})  # a secret-named key is refused by the loader itself
    for spec in settings.sources + settings.gateways:
        for key, value in spec.params.items():
            if key.endswith("_url"):
                assert str(value).split("://", 1)[1].startswith(("127.0.0.1", "localhost")), \
                    f"{path.name}: {spec.name}.{key}: a provider URL carries its key: from the environment"


@pytest.mark.parametrize("name,scenario", [(n, s) for n, ss in SIM_PAIRS.items() for s in ss])
def test_a_shipped_sim_config_validates_for_its_scenarios(name: str, scenario: str) -> None:
    from tapedeck.cli import load_config
    from tapedeck.runtime.strategy_loader import build_engine
    from tapedeck.sim.cex_dex_config import complete as complete_cex_dex
    from tapedeck.sim.liquidator_config import complete
    from tapedeck.sim.scenario import load_scenario

    sc = load_scenario(scenario)
    config, _ = complete(load_config(CONFIGS / name), sc)  # as `tapedeck sim SCENARIO --config NAME` does
    config, _ = complete_cex_dex(config, sc)
    assert build_engine(config).strategies


def test_the_shipped_replay_config_validates() -> None:
    from tapedeck.cli import load_config
    from tapedeck.runtime.strategy_loader import build_engine

    assert build_engine(load_config(CONFIGS / "default.toml")).strategies


def test_a_wrongly_typed_override_of_an_adapter_parameter_is_a_config_error(tmp_path: Path, no_network: None) -> None:
    """A number where an adapter reads a URL (an override parses as a TOML value) is the runner's one-line
    config error naming the entry and the types given, not an internal AttributeError (exit 70)."""
    from tapedeck.live.config import load_live_config
    from tapedeck.live.runner import LiveRunner, RunnerError

    path = FIXTURES / "config" / "live-paper.toml"
    settings = load_live_config(str(path), environ={"TAPEDECK_SOURCES__0__WS_URL": "12345"}, sets=["ops.enabled=false"])
    with pytest.raises(RunnerError, match=r"sources\[0\] \(mainnet\) \(kind evm\): a parameter has the wrong type.*"
                                          r"ws_url = int"):
        LiveRunner(settings, out=str(tmp_path / "live.db"), environ={}, signals=False).prepare()
