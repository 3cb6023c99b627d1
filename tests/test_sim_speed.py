"""What the sim's speed work must not change:

* ``build_run("sim", ...)`` runs on revm unless told otherwise, like ``tapedeck sim``'s ``--chain``;
* an eth-crash run whose market and positions are restored from the world cache records the same
  events, digest included, as the run that deployed them (market, positions, V2 pools) (and the restore is taken: the cache's
  counts say so); the fixed digest of the shipped scenario at its own seed is checked across the
  backends by ``tests/test_revm_parity.py``.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tapedeck.adapters.config_files import load_config
from tapedeck.adapters.eventlog import EventLog
from tapedeck.sim.chain import world_cache
from tapedeck.sim.chain.artifacts import node_modules
from tapedeck.sim.scenario import load_scenario
from tests.conftest import ROOT

CONFIG = ROOT / "fixtures" / "config" / "sim-default.toml"


def test_build_run_s_sim_defaults_to_revm(tmp_path: Path) -> None:
    from tapedeck.runtime.bootstrap import build_run
    from tapedeck.sim.cex_dex_config import complete as complete_cex_dex
    from tapedeck.sim.liquidator_config import complete

    scenario = load_scenario("quiet", seed=4)
    config, _ = complete(load_config(CONFIG), scenario)  # what run_scenario does before building
    config, _ = complete_cex_dex(config, scenario)
    run = build_run("sim", config, out=tmp_path / "r.db", scenario=scenario)
    try:
        assert run.world.chain == "revm"
        assert run.store.manifest.notes["chain"] == "revm"
    finally:
        run.store.close()


@pytest.mark.slow
def test_eth_crash_restored_from_the_world_cache_records_what_the_deploy_recorded(tmp_path: Path, monkeypatch) -> None:
    from tapedeck.sim.recording import run_scenario

    if not (node_modules() / "@aave" / "core-v3").is_dir():
        pytest.skip(f"@aave/core-v3 not installed under {node_modules()}")
    monkeypatch.setenv("TAPEDECK_WORLD_CACHE", str(tmp_path / "cache"))
    world_cache.clear_memory()
    for k in world_cache.stats:
        world_cache.stats[k] = 0
    scenario = load_scenario("eth-crash", seed=7)
    config = load_config(CONFIG)
    digests, events, counts = [], [], []
    for name in ("deployed.db", "restored.db"):
        world_cache.clear_memory()  # the second run reads the entries back from disk, as a new process does
        summary = run_scenario(scenario, config, tmp_path / name, chain="revm")
        counts.append(dict(world_cache.stats))
        log = EventLog.open(tmp_path / name)
        digests.append(log.manifest.seal["digest"])
        events.append(list(log.events()))
        log.close()
        assert summary.borrowers == 30 and summary.liquidations > 0
    # the market, the positions and the V2 pools with their traders: deployed once, then restored
    assert counts == [{"hits": 0, "misses": 3, "stale": 0}, {"hits": 3, "misses": 3, "stale": 0}]
    assert digests[0] == digests[1] and events[0] == events[1]
    world_cache.clear_memory()


def test_the_bus_delivers_in_subscription_order_by_class_with_subscribers_added_on_the_way() -> None:
    """``Bus.publish`` keeps its subscribers per message class (a cache): the order, the class and
    subclass matching, ``where`` and subscriptions made meanwhile behave as a plain scan does."""
    from tapedeck.sim.kernel import Bus

    class A:
        def __init__(self, n: int) -> None:
            self.n = n

    class B(A):
        pass

    bus, got = Bus(record=False), []
    bus.subscribe(lambda m: got.append(("any", type(m).__name__, m.n)))
    bus.subscribe(lambda m: got.append(("A", type(m).__name__, m.n)), A)
    bus.subscribe(lambda m: got.append(("B even", type(m).__name__, m.n)), B, where=lambda m: m.n % 2 == 0)

    def late(m: A) -> None:  # subscribes another on its first call: seen from the next message on
        got.append(("late", type(m).__name__, m.n))
        if m.n == 1:
            bus.subscribe(lambda x: got.append(("new", type(x).__name__, x.n)), A)

    bus.subscribe(late, B)
    for m in (A(0), B(1), B(2), A(3)):
        bus.publish(m)
    assert got == [("any", "A", 0), ("A", "A", 0),
                   ("any", "B", 1), ("A", "B", 1), ("late", "B", 1),
                   ("any", "B", 2), ("A", "B", 2), ("B even", "B", 2), ("late", "B", 2), ("new", "B", 2),
                   ("any", "A", 3), ("A", "A", 3), ("new", "A", 3)]
