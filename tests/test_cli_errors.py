"""Every subcommand refuses missing, unreadable, wrong-kind and malformed arguments in one line.

The command is run as a user runs it (a subprocess of the installed ``tapedeck`` entry point), so
what is checked is what a person sees: exit status 2, a single line on stderr that starts with
``Error:`` and names what was wrong, nothing on stdout, and no Python traceback.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, quote

SAMPLES = ROOT / "fixtures" / "samples"
V3_SAMPLE = SAMPLES / "ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-sample.raw.csv"
V2_SAMPLE = SAMPLES / "uniswap-v2-sample.reserves.csv"
GOOD_CONFIG = ROOT / "fixtures" / "config" / "default.toml"
V2_PAIR = "0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc"


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A workspace: a real run, a garbage file, a directory, bad configs, a V3 file with no pool in its name."""
    from tapedeck.adapters.eventlog import EventLog, Manifest

    d = tmp_path_factory.mktemp("cli-errors")
    with EventLog.create(d / "run.db", Manifest(run_id="", mode="replay")) as log:
        for i in range(5):
            log.append(quote(i + 1, "a", "10", "11"))
        log.manifest.ended = "clean"
    with EventLog.create(d / "import.db", Manifest(run_id="", mode="import")) as log:
        log.append(quote(1, "a", "10", "11"))
        log.manifest.ended = "clean"
    for run in ("run.db", "import.db"):  # (each case must leave them byte for byte as they were)
        (d / f"{run}.sha256").write_text(hashlib.sha256((d / run).read_bytes()).hexdigest())
    (d / "garbage.db").write_bytes(b"this is not a database at all\n" * 40)
    (d / "adir").mkdir()
    (d / "bad.toml").write_text("[risk\nkill_switch = ")
    good = GOOD_CONFIG.read_text()
    (d / "kill-no.toml").write_text(good.replace("kill_switch = false", 'kill_switch = "no"'))
    (d / "negative.toml").write_text(good.replace("default_max_notional = 250_000_000_000", "default_max_notional = -5"))
    (d / "unknown-key.toml").write_text("colour = 'blue'\n" + good)
    (d / "unknown-kind.toml").write_text(good.replace('kind = "cross_pool_arb"', 'kind = "no_such_strategy"'))
    (d / "bad-pool.toml").write_text(good.replace('v2_pool = "0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc"',
                                                  'v2_pool = "0xb4e16d0168e52d35cacd2c6185b44281ec28c9"'))
    (d / "no-pool-in-name.raw.csv").write_text(V3_SAMPLE.read_text())
    return d


def _cases() -> list[tuple[str, list[str], str]]:
    """(id, argv with {ws} for the workspace, a fragment the error line must contain)."""
    return [
        # inspect
        ("inspect-missing", ["inspect", "{ws}/nope.db"], "nope.db"),
        ("inspect-dir", ["inspect", "{ws}/adir"], "adir: is a directory, not a run file"),
        ("export-over-its-run", ["export", "{ws}/run.db", "--out", "{ws}/run.db"], "is the run being read"),
        ("export-over-another-run", ["export", "{ws}/run.db", "--out", "{ws}/import.db"], "is a database"),
        ("report-over-its-run", ["report", "html", "{ws}/run.db", "--out", "{ws}/run.db"], "is the run being read"),
        ("sim-out-dir-force", ["sim", "quiet", "--out", "{ws}/adir", "--force"], "adir: is a directory"),
        ("copy-to-dir-force", ["copy", "{ws}/run.db", "{ws}/adir", "--force"], "adir: is a directory"),
        ("sweep-out-is-a-file", ["sweep", "quiet", "--seeds", "1", "--out", "{ws}/bad.toml", "--workers", "1"],
         "is a file, not a directory"),
        ("report-opportunities-nan", ["report", "opportunities", "{ws}/run.db", "--max-age-s", "nan"], "--max-age-s"),
        ("report-opportunities-inf", ["report", "opportunities", "{ws}/run.db", "--gas-price-gwei", "inf"],
         "--gas-price-gwei"),
        ("inspect-garbage", ["inspect", "{ws}/garbage.db"], "garbage.db"),
        # export
        ("export-missing", ["export", "{ws}/nope.db"], "nope.db"),
        ("export-garbage", ["export", "{ws}/garbage.db"], "garbage.db"),
        ("export-bad-format", ["export", "{ws}/run.db", "--format", "xml"], "xml"),
        ("export-unknown-type", ["export", "{ws}/run.db", "--type", "NoSuchEvent"], "NoSuchEvent"),
        ("export-out-dir", ["export", "{ws}/run.db", "--out", "{ws}/adir"], "adir"),
        ("export-out-missing-folder", ["export", "{ws}/run.db", "--out", "{ws}/no/such/folder/x.jsonl"], "no/such/folder"),
        ("export-out-unwritable", ["export", "{ws}/run.db", "--out", "/proc/x.jsonl"], "/proc/x.jsonl"),
        ("export-csv-no-type", ["export", "{ws}/run.db", "--format", "csv"], "--type"),
        # replay
        ("replay-missing", ["replay", "{ws}/nope.db", "--verify"], "nope.db"),
        ("replay-dir", ["replay", "{ws}/adir", "--verify"], "adir"),
        ("replay-garbage", ["replay", "{ws}/garbage.db", "--verify"], "garbage.db"),
        ("replay-neither", ["replay", "{ws}/run.db"], "--verify"),
        ("replay-verify-an-import", ["replay", "{ws}/import.db", "--verify"], "import.db: is an import log"),
        ("import-wrong-kind", ["import", "uniswap-v3-logs", str(V2_SAMPLE), "--pool",
                               "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640", "--out", "{ws}/iw.db"],
         "not a uniswap-v3-logs recording"),
        ("replay-config-missing", ["replay", "{ws}/run.db", "--out", "{ws}/o1.db", "--config", "{ws}/nope.toml"], "nope.toml"),
        ("replay-config-dir", ["replay", "{ws}/run.db", "--out", "{ws}/o2.db", "--config", "{ws}/adir"], "adir"),
        ("replay-config-not-toml", ["replay", "{ws}/run.db", "--out", "{ws}/o3.db", "--config", "{ws}/bad.toml"], "bad.toml"),
        ("replay-kill-switch-no", ["replay", "{ws}/run.db", "--out", "{ws}/o4.db", "--config", "{ws}/kill-no.toml"],
         "risk.kill_switch"),
        ("replay-negative-limit", ["replay", "{ws}/run.db", "--out", "{ws}/o5.db", "--config", "{ws}/negative.toml"],
         "risk.default_max_notional"),
        ("replay-unknown-key", ["replay", "{ws}/run.db", "--out", "{ws}/o6.db", "--config", "{ws}/unknown-key.toml"],
         "colour: unknown key"),
        ("replay-unknown-kind", ["replay", "{ws}/run.db", "--out", "{ws}/o7.db", "--config", "{ws}/unknown-kind.toml"],
         "no_such_strategy"),
        ("replay-pool-not-address", ["replay", "{ws}/run.db", "--out", "{ws}/o8.db", "--config", "{ws}/bad-pool.toml"],
         "is not an address"),
        ("replay-out-dir", ["replay", "{ws}/run.db", "--out", "{ws}/adir"], "adir"),
        ("replay-out-unwritable", ["replay", "{ws}/run.db", "--out", "/proc/no/such/o.db"], "/proc/no/such/o.db"),
        ("replay-out-is-source", ["replay", "{ws}/run.db", "--out", "{ws}/run.db", "--force"], "run.db"),
        # sim
        ("sim-unknown-scenario", ["sim", "no-such-scenario"], "no-such-scenario"),
        ("sim-seed-negative", ["sim", "quiet", "--seed", "-1"], "--seed"),
        ("sim-seed-huge", ["sim", "quiet", "--seed", str(2**200)], "--seed"),
        ("sim-config-dir", ["sim", "quiet", "--config", "{ws}/adir"], "adir"),
        ("sim-config-not-toml", ["sim", "quiet", "--config", "{ws}/bad.toml"], "bad.toml"),
        ("sim-out-dir", ["sim", "quiet", "--out", "{ws}/adir"], "adir"),
        ("sim-bad-chain", ["sim", "quiet", "--chain", "geth"], "geth"),
        # import
        ("import-unknown-kind", ["import", "csv-of-my-own", str(V2_SAMPLE), "--out", "{ws}/i1.db"], "csv-of-my-own"),
        ("import-missing-file", ["import", "uniswap-v2-reserves", "{ws}/nope.csv", "--out", "{ws}/i2.db"], "nope.csv"),
        ("import-dir", ["import", "uniswap-v2-reserves", "{ws}/adir", "--out", "{ws}/i3.db"], "adir"),
        ("import-no-out", ["import", "uniswap-v2-reserves", str(V2_SAMPLE)], "--out"),
        ("import-out-dir", ["import", "uniswap-v2-reserves", str(V2_SAMPLE), "--pool", V2_PAIR, "--out", "{ws}/adir"],
         "adir"),
        ("import-out-unwritable", ["import", "uniswap-v2-reserves", str(V2_SAMPLE), "--pool", V2_PAIR, "--out",
                                   "/proc/no/such/x.db"], "/proc/no/such/x.db"),
        ("import-blocks-reversed", ["import", "uniswap-v2-reserves", str(V2_SAMPLE), "--pool", V2_PAIR, "--out", "{ws}/i4.db",
                                    "--from-block", "200", "--to-block", "100"], "--from-block"),
        ("import-v3-no-pool", ["import", "uniswap-v3-logs", "{ws}/no-pool-in-name.raw.csv", "--out", "{ws}/i5.db"],
         "--pool"),
        ("import-into-a-run", ["import", "uniswap-v2-reserves", str(V2_SAMPLE), "--pool", V2_PAIR, "--out", "{ws}/run.db"],
         "not an import log"),
        ("import-into-garbage", ["import", "uniswap-v2-reserves", str(V2_SAMPLE), "--pool", V2_PAIR, "--out",
                                 "{ws}/garbage.db"], "garbage.db"),
        ("import-aave-no-chain", ["import", "aave-v3-logs", "{ws}/no-pool-in-name.raw.csv", "--out", "{ws}/i6.db"],
         "--chain"),
        ("import-aave-bad-chain", ["import", "aave-v3-logs", "{ws}/no-pool-in-name.raw.csv", "--chain", "Poly gon",
                                   "--out", "{ws}/i7.db"], "Poly gon"),
        ("import-aave-fee", ["import", "aave-v3-logs", "{ws}/no-pool-in-name.raw.csv", "--chain", "polygon", "--fee", "500",
                             "--out", "{ws}/i8.db"], "--fee"),
        ("import-aave-no-known-pool", ["import", "aave-v3-logs", "{ws}/no-pool-in-name.raw.csv", "--chain", "arbitrum",
                                       "--out", "{ws}/i9.db"], "--pool"),
        ("import-aave-bad-pool", ["import", "aave-v3-logs", "{ws}/no-pool-in-name.raw.csv", "--chain", "polygon",
                                  "--pool", "0x123", "--out", "{ws}/i10.db"], "0x123"),
        ("import-aave-into-a-run", ["import", "aave-v3-logs", "{ws}/no-pool-in-name.raw.csv", "--chain", "polygon",
                                    "--out", "{ws}/run.db"], "not an import log"),
        ("import-aave-missing-file", ["import", "aave-v3-logs", "{ws}/nope.raw.csv", "--chain", "polygon", "--out",
                                      "{ws}/i11.db"], "nope.raw.csv"),
        ("import-hl-pool", ["import", "hyperliquid-ws", str(V2_SAMPLE), "--pool", V2_PAIR, "--out", "{ws}/i12.db"],
         "--pool"),
        ("import-hl-blocks", ["import", "hyperliquid-ws", str(V2_SAMPLE), "--from-block", "5", "--out", "{ws}/i13.db"],
         "no pool, chain or blocks"),
        ("import-hl-missing-file", ["import", "hyperliquid-ws", "{ws}/nope.gz", "--out", "{ws}/i14.db"], "nope.gz"),
        ("import-hl-into-a-run", ["import", "hyperliquid-ws", str(V2_SAMPLE), "--out", "{ws}/run.db"],
         "not an import log"),
        # unknown command and option
        ("no-such-command", ["frobnicate"], "frobnicate"),
        ("no-such-option", ["inspect", "{ws}/run.db", "--colour"], "--colour"),
    ]


def _tapedeck() -> list[str]:
    exe = Path(sys.executable).parent / "tapedeck"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "tapedeck.cli"]


@pytest.mark.slow
@pytest.mark.parametrize("case_id, argv, fragment", _cases(), ids=[c[0] for c in _cases()])
def test_bad_invocation_is_one_clear_line(ws: Path, case_id: str, argv: list[str], fragment: str) -> None:
    args = [a.replace("{ws}", str(ws)) for a in argv]
    proc = subprocess.run(_tapedeck() + args, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr, proc.stdout)
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert fragment in lines[0], lines[0]
    assert proc.stdout == ""
    for run in ("run.db", "import.db"):  # nothing already recorded was lost (nor overwritten)
        assert hashlib.sha256((ws / run).read_bytes()).hexdigest() == (ws / f"{run}.sha256").read_text(), run
