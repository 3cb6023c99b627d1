"""The built wheel, installed into a fresh venv, runs a user's own strategy by import path from the
user's project (which has its own ``cli.py`` and ``domain/``), and ``replay --verify`` verifies it.

No network: the fresh venv sees this interpreter's dependencies through a ``.pth`` line naming
their site-packages directory. A plain path line does not run the ``.pth`` files in that directory,
so the repository's editable install cannot leak in; the test checks that ``tapedeck`` is imported
from inside the fresh venv."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
import setuptools

from tapedeck.adapters.eventlog import EventLog, Manifest
from tapedeck.domain import events as ev
from tapedeck.runtime.strategy_loader import domain_sha256
from tests.conftest import ROOT, quote

pytestmark = pytest.mark.slow

# Imported by the wheel's code; their directories become the fresh venv's dependency path.
DEPENDENCIES = ("msgspec", "click", "eventsourcing", "web3", "eth_abi", "simpy", "sqlite_utils")
SKIP_DIRS = {".venv", "node_modules", ".git", "build", "runs", "__pycache__", ".pytest_cache", ".hypothesis"}

USER_STRATEGY = '''
"""A user's liquidation-style bot (here: buys when a bid reaches its level), in the user's repo."""
from decimal import Decimal

from tapedeck.domain import events as ev
from tapedeck.domain.risk import Intent


class MyStrategy:
    handles = (ev.QuoteUpdated,)

    def __init__(self, name, level):
        self.name, self.level = name, Decimal(level)

    def on_event(self, e, state):
        if e.price(e.bid) < self.level:
            return []
        return [Intent(strategy=self.name, venue=e.venue, instrument=e.instrument, side="buy", amount=1,
                       notional=int(e.price(e.bid)))]
'''


def bdist_wheel_available() -> bool:
    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    return importlib.util.find_spec("wheel") is not None or (major, minor) >= (70, 1)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, f"{cmd}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def build_wheel(tmp: Path) -> Path:
    """Build from a copy of the source (the checkout is left as it was: no build/ or egg-info)."""
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=lambda d, names: [n for n in names if n in SKIP_DIRS or n.endswith(
        (".egg-info", ".db", ".db-wal", ".db-shm"))])
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(tmp / "dist"), str(src)])
    (wheel,) = (tmp / "dist").glob("tapedeck-*.whl")
    return wheel


def fresh_venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    # installed before the .pth exists, so pip sees an empty environment
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)])
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    dirs = sorted({str(Path(importlib.util.find_spec(d).origin).parent.parent) for d in DEPENDENCIES})  # type: ignore[arg-type]
    (site / "_tapedeck_test_deps.pth").write_text("".join(d + "\n" for d in dirs))
    return venv


def user_project(tmp: Path) -> Path:
    """A project of the user's own, with the module names a flat-layout tapedeck used to shadow."""
    proj = tmp / "userproj"
    (proj / "domain").mkdir(parents=True)
    (proj / "my_bots").mkdir()
    (proj / "cli.py").write_text('WHO = "the user\'s cli"\n')
    (proj / "domain" / "__init__.py").write_text('WHO = "the user\'s domain"\n')
    (proj / "my_bots" / "__init__.py").write_text("")
    (proj / "my_bots" / "liquidator.py").write_text(USER_STRATEGY)
    (proj / "user.toml").write_text(textwrap.dedent("""
        [risk]
        default_max_notional = 1_000_000_000_000
        default_max_outstanding = 10_000_000_000_000
        [[strategies]]
        kind = "my_bots.liquidator:MyStrategy"
        name = "my-liquidator"
        level = "101"
    """))
    log = EventLog.create(proj / "day.db", Manifest(run_id="", mode="import", sources=["test:quotes"]))
    for i, bid in enumerate(["99", "100.5", "101", "98", "102.25", "101", "97"]):
        log.append(quote(1_000 + i, "ab"[i % 2], bid, str(Decimal(bid) + 1)))
    log.close(ended="clean")
    return proj


PROBE = """
import importlib.metadata as m, json, sys
import cli, domain, tapedeck, tapedeck.cli, tapedeck.domain
from tapedeck.adapters import config_files
from tapedeck.runtime import strategy_loader
from tapedeck.sim.scenario import list_scenarios
print(json.dumps({
    "cli": cli.WHO, "domain": domain.WHO, "tapedeck": tapedeck.__file__, "tapedeck.cli": tapedeck.cli.__file__,
    "version": tapedeck.__version__, "metadata_version": m.version("tapedeck"),
    "default_config": str(config_files.DEFAULT_CONFIG), "default_config_exists": config_files.DEFAULT_CONFIG.is_file(),
    "scenarios": list_scenarios(),
    "entry_points": {ep.name: ep.value for ep in strategy_loader._entry_points()},
    "spread": strategy_loader.resolve("spread").__module__,
    "editable_finders": [repr(f) for f in sys.meta_path if "editable" in repr(f).lower()],
}))
"""


@pytest.mark.skipif(not bdist_wheel_available(), reason="building a wheel needs setuptools >= 70.1 or the wheel "
                    "package (pip install -e '.[test]' installs it)")
def test_the_wheel_runs_a_users_strategy_from_their_project_and_verify_verifies_it(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    venv = fresh_venv(tmp_path, wheel)
    proj = user_project(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    tapedeck = str(venv / "bin" / "tapedeck")

    probe = json.loads(run([str(venv / "bin" / "python"), "-c", PROBE], cwd=proj, env=env).stdout)
    inside = str(venv.resolve())
    assert probe["cli"] == "the user's cli" and probe["domain"] == "the user's domain"
    assert probe["tapedeck"].startswith(inside) and probe["tapedeck.cli"].startswith(inside), probe
    assert probe["editable_finders"] == []  # the repository's editable install did not leak in
    assert probe["version"] == probe["metadata_version"] == wheel.name.split("-")[1]
    assert probe["default_config"].startswith(inside) and probe["default_config_exists"]
    assert probe["scenarios"] == sorted(p.stem for p in (ROOT / "fixtures" / "scenarios").glob("*.toml"))
    assert probe["entry_points"] == {"spread": "tapedeck.domain.strategies.spread:SpreadCheck",
                                     "cross_pool_arb": "tapedeck.domain.strategies.cross_pool_arb:CrossPoolArb",
                                     "aave_liquidator": "tapedeck.domain.strategies.aave_liquidator:AaveLiquidator",
                                     "sliced_order": "tapedeck.domain.strategies.sliced_order:SlicedOrder",
                                     "cex_dex_arb": "tapedeck.domain.strategies.cex_dex_arb:CexDexArb",
                                     "perp_oracle_lag": "tapedeck.domain.strategies.perp_oracle_lag:PerpOracleLag"}
    assert probe["spread"] == "tapedeck.domain.strategies.spread"

    # from the project's directory, no PYTHONPATH: the import path is found in the current directory
    rec = run([tapedeck, "replay", "day.db", "--out", "run.db", "--config", "user.toml"], cwd=proj, env=env)
    assert "3 OrderIntended" in rec.stdout, rec.stdout  # bids 101, 102.25, 101 reach the level
    ver = run([tapedeck, "replay", "run.db", "--verify"], cwd=proj, env=env)
    assert ver.stdout.splitlines()[-1].startswith("verified ") and "different code" not in ver.stdout, ver.stdout

    manifest = EventLog.open(proj / "run.db").manifest
    assert manifest.version == probe["version"] and manifest.config["strategies"][0]["kind"] == "my_bots.liquidator:MyStrategy"
    assert manifest.code["tapedeck"] == {"version": probe["version"], "domain_sha256": domain_sha256()}
    assert manifest.code["strategies"] == [{
        "name": "my-liquidator", "module": "my_bots.liquidator", "class": "MyStrategy", "distribution": "",
        "version": "", "sha256": hashlib.sha256((proj / "my_bots" / "liquidator.py").read_bytes()).hexdigest()}]
    assert [type(e) for e in EventLog.open(proj / "run.db").events() if e.KIND == ev.DECISION].count(ev.OrderIntended) == 3

    # the shipped scenarios and default sim config are package data: a sim run from the wheel verifies
    sim = run([tapedeck, "sim", "oracle-jump", "--out", "sim.db"], cwd=proj, env=env)
    assert "scenario oracle-jump" in sim.stdout, sim.stdout
    assert run([tapedeck, "replay", "sim.db", "--verify"], cwd=proj, env=env).stdout.splitlines()[-1].startswith("verified ")
    assert [s["module"] for s in EventLog.open(proj / "sim.db").manifest.code["strategies"]] == [
        "tapedeck.domain.strategies.spread", "tapedeck.domain.strategies.cross_pool_arb",
        "tapedeck.domain.strategies.aave_liquidator", "tapedeck.domain.strategies.perp_oracle_lag",
        "tapedeck.domain.strategies.cex_dex_arb"]

    # the user changes their strategy's behaviour: verify says the code differs and still compares
    (proj / "my_bots" / "liquidator.py").write_text(USER_STRATEGY.replace("e.price(e.bid) < self.level", "e.price(e.bid) <= self.level"))
    diverged = subprocess.run([tapedeck, "replay", "run.db", "--verify"], cwd=proj, env=env, capture_output=True,
                              text=True, timeout=300)
    assert diverged.returncode == 1, diverged.stdout + diverged.stderr
    assert diverged.stdout.splitlines()[0] == "recorded with different code: strategy 'my-liquidator' source (my_bots.liquidator)"
    assert "diverged at seq" in diverged.stdout
