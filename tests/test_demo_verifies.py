"""``make demo``'s run is verified the way a user verifies it: ``tapedeck replay run.db --verify``.

The demo once built its engine without the pool registry's identity (``domain.strategies.build_engine``)
and verified itself with that same builder, so it printed "verified" for a run the CLI's own
``replay --verify`` (``runtime.strategy_loader.build_engine``: profit token by the registry) found
diverged at its first opportunity. Run on the shipped synthetic sample (``TAPEDECK_DATA`` pointed at an
empty folder), which is small and always present."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tapedeck.adapters.eventlog import EventLog
from tapedeck.cli import main
from tapedeck.domain import events as ev
from tapedeck.runtime.demo import run_demo


def test_demo_run_verifies_with_the_cli(tmp_path: Path) -> None:
    lines: list[str] = []
    run_demo(str(tmp_path / "no-recordings"), tmp_path / "demo", echo=lines.append)
    assert any("synthetic sample" in line for line in lines)
    assert any(line.startswith("replay --verify: verified") for line in lines)
    run = tmp_path / "demo" / "run.db"
    with EventLog.open(run) as log:
        opps = [e for e in log.events() if type(e) is ev.OpportunityDetected]
    assert opps, "the sample's day must yield opportunities, or this test checks nothing"
    assert {o.profit_token for o in opps} == {"USDC"}  # (the registry's name of the pool's token0)
    r = CliRunner().invoke(main, ["replay", str(run), "--verify"])
    assert r.exit_code == 0, r.output
    assert "verified" in r.output and "diverged" not in r.output
