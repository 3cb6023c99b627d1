"""The same world on every chain backend: each shipped scenario with its own seed records the same
run digest on revm as on py-evm, every run in a fresh interpreter under another hash seed
(``tapedeck sim`` through the CLI, as a user runs it). The digest covers every recorded event:
addresses, amounts, gas used, transaction hashes, revert reasons, block numbers and timestamps.
On anvil (when its binary is installed) the same: an ``Error(string)`` revert reaches web3 there as
another exception (``ContractLogicError(message, data)``), and ``pyevm.reason_text`` records it from
its revert data as on the other backends.

A revm sim killed mid-way (SIGKILL from its own progress callback, at a fixed simulated time) leaves
a log that opens, and its events are the first events of the complete run on py-evm, one for one.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.sim.chain.artifacts import ArtifactMissing, node_modules
from tests.conftest import ROOT
from tests.test_sim_recording import _digest_in_subprocess

pytestmark = [pytest.mark.contract, pytest.mark.slow]
SCENARIOS = {"eth-crash": 1, "cex-dex-dislocation": 2, "oracle-jump": 3, "quiet": 4}  # the files' own seeds


def _anvil() -> bool:
    from tapedeck.sim.chain.anvil import anvil_binary

    try:
        anvil_binary()
    except ArtifactMissing:
        return False
    return True


@pytest.fixture(scope="module")
def digest(tmp_path_factory):  # type: ignore[no-untyped-def]
    """``digest(scenario, chain)``: the digest of the scenario's own seed on ``chain``, recorded once
    per module in a fresh interpreter."""
    if not (node_modules() / "@aave" / "core-v3").is_dir():
        pytest.skip(f"@aave/core-v3 not installed under {node_modules()}")
    tmp = tmp_path_factory.mktemp("parity")
    found: dict[tuple[str, str], str] = {}

    def get(scenario: str, chain: str) -> str:
        if (scenario, chain) not in found:
            found[scenario, chain] = _digest_in_subprocess(tmp, SCENARIOS[scenario], f"{scenario}-{chain}.db",
                                                           scenario, chain)
            assert len(found[scenario, chain]) == 64, (scenario, chain, found[scenario, chain])
        return found[scenario, chain]

    get.tmp = tmp  # type: ignore[attr-defined]  # where the runs are: <scenario>-<chain>.db
    return get


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_scenario_records_the_same_digest_on_revm_as_on_py_evm(digest, scenario: str) -> None:
    assert digest(scenario, "revm") == digest(scenario, "pyevm")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_scenario_records_the_same_digest_on_anvil_as_on_py_evm(digest, scenario: str) -> None:
    if not _anvil():
        pytest.skip("no anvil binary installed")
    assert digest(scenario, "anvil") == digest(scenario, "pyevm")


KILL = """
import os, signal, sys
sys.path.insert(0, {root!r})
from tapedeck.adapters.config_files import load_config
from tapedeck.sim.recording import run_scenario
from tapedeck.sim.scenario import load_scenario

def progress(stats):
    if stats.last_ts >= {kill_ns}:
        os.kill(os.getpid(), signal.SIGKILL)

sc = load_scenario("cex-dex-dislocation", seed=2)
config = load_config({config!r})
run_scenario(sc, config, {out!r}, chain="revm", progress=progress)
"""


def test_a_revm_run_killed_mid_way_keeps_a_prefix_of_the_py_evm_run(digest, tmp_path) -> None:
    from tapedeck.sim.scenario import load_scenario

    sc = load_scenario("cex-dex-dislocation", seed=2)
    killed = tmp_path / "killed.db"
    code = KILL.format(root=str(ROOT), kill_ns=sc.start_ns + sc.duration * 10**9 // 2, out=str(killed),
                       config=str(ROOT / "fixtures" / "config" / "sim-default.toml"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONHASHSEED="5"))
    assert done.returncode == -signal.SIGKILL, done.stderr
    digest("cex-dex-dislocation", "pyevm")
    full = list(EventLog.open(digest.tmp / "cex-dex-dislocation-pyevm.db").events())
    log = EventLog.open(killed)
    got = list(log.events())
    assert 0 < len(got) < len(full)
    assert max(e.ts for e in got) < sc.start_ns + sc.duration * 10**9 // 2 + 10**9 * 13  # it stopped mid-way
    assert got == full[:len(got)]
