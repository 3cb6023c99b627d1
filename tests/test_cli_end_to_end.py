"""The commands end to end: import (merge, rejections), replay --out, --verify, inspect, export."""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner, Result

from tapedeck.adapters.eventlog import EventLog
from tapedeck.cli import main
from tapedeck.domain import events as ev
from tests.conftest import ROOT, require_data

SAMPLE = ROOT / "fixtures" / "samples"
V3_SAMPLE = SAMPLE / "ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-sample.raw.csv"
V2_SAMPLE = SAMPLE / "uniswap-v2-sample.reserves.csv"
V2_PAIR = "0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc"  # the sample's file name holds no address


def run(*args: str) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_help_lists_the_commands() -> None:
    out = run("--help").output
    for name in ("sim", "replay", "import", "inspect", "export"):
        assert name in out
    r = CliRunner().invoke(main, ["sim", "x.toml"])
    assert r.exit_code != 0 and "x.toml: scenario file not found" in r.output


def test_import_merges_sources_in_event_time_order(tmp_path) -> None:
    log = tmp_path / "day.db"
    assert run("import", "uniswap-v3-logs", V3_SAMPLE, "--out", log).exit_code == 0
    r = run("import", "uniswap-v2-reserves", V2_SAMPLE, "--out", log, "--pool", V2_PAIR)
    assert r.exit_code == 0 and "rejected 0 row(s)" in r.output and "USDC/WETH V2" in r.output
    events = list(EventLog.open(log).events())
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    keys = [(e.ts, getattr(e, "block", 0)) for e in events]
    assert keys == sorted(keys)
    kinds = {type(e).__name__ for e in events}
    assert {"V3Swapped", "V2ReservesSynced"} <= kinds
    m = EventLog.open(log).manifest
    assert len(m.sources) == 2 and {s.partition(":")[0] for s in m.sources} == {"uniswap-v3-logs", "uniswap-v2-reserves"}
    # a V2 block-end state sorts after every V3 log of the same block
    for a, b in zip(events, events[1:]):
        if type(a) is ev.V2ReservesSynced and type(b) is ev.V3Swapped:
            assert b.block > a.block


def test_bad_rows_become_recorded_rejections_and_are_counted(tmp_path) -> None:
    lines = V3_SAMPLE.read_text().splitlines()
    broken = lines[:4] + [lines[4][: len(lines[4]) - 30]] + [lines[5].replace("0xc42079f9", "0xdeadbeef")] + lines[6:10]
    bad = tmp_path / "ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-bad.raw.csv"
    bad.write_text("\n".join(broken) + "\n")
    r = run("import", "uniswap-v3-logs", bad, "--out", tmp_path / "b.db")
    assert r.exit_code == 0, r.output
    assert "imported 7 events" in r.output and "rejected 2 row(s)" in r.output
    rejected = [e for e in EventLog.open(tmp_path / "b.db").events() if type(e) is ev.InputRejected]
    assert len(rejected) == 2 and all(e.reason and e.raw for e in rejected)


def test_unknown_kind_and_missing_files_are_named(tmp_path) -> None:
    r = CliRunner().invoke(main, ["import", "nope", "x", "--out", str(tmp_path / "x.db")])
    assert r.exit_code != 0 and "nope" in r.output
    r = CliRunner().invoke(main, ["import", "uniswap-v3-logs", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "x.db")])
    assert r.exit_code != 0 and "absent.csv: no such file" in r.output
    r = CliRunner().invoke(main, ["replay", str(tmp_path / "absent.db"), "--verify"])
    assert r.exit_code != 0 and "absent.db" in r.output


def replay_verify_roundtrip(tmp_path, v3, v2, **import_opts) -> tuple[str, str]:
    log, out = tmp_path / "day.db", tmp_path / "run.db"
    assert run("import", "uniswap-v3-logs", v3, "--out", log).exit_code == 0
    extra = [f"--{k.replace('_', '-')}={v}" for k, v in import_opts.items()]
    assert run("import", "uniswap-v2-reserves", v2, "--out", log, "--pool", V2_PAIR, *extra).exit_code == 0
    r = run("replay", log, "--out", out)
    assert r.exit_code == 0 and "OpportunityDetected" in r.output, r.output
    ok = run("replay", out, "--verify")
    assert ok.exit_code == 0
    last = ok.output.strip().splitlines()[-1]
    assert last.startswith("verified ") and " decisions, digest " in last
    # a changed threshold must make verification fail at the first affected decision
    cfg = tmp_path / "changed.toml"
    cfg.write_text((ROOT / "fixtures" / "config" / "default.toml").read_text().replace(
        "min_profit = 1_000_000", "min_profit = 50_000_000"))
    bad = CliRunner().invoke(main, ["replay", str(out), "--verify", "--config", str(cfg)])
    assert bad.exit_code == 1 and "diverged at seq" in bad.output
    first_opp = next(e for e in EventLog.open(out).events()  # (a suppressed one is gated by min_profit too)
                     if type(e) in (ev.OpportunityDetected, ev.OpportunitySuppressed) and e.net_profit < 50_000_000)
    assert f"diverged at seq {first_opp.seq}" in bad.output
    return str(out), last


def test_sample_day_replays_verifies_inspects_and_exports(tmp_path) -> None:
    out, _ = replay_verify_roundtrip(tmp_path, V3_SAMPLE, V2_SAMPLE)
    info = json.loads(run("inspect", out, "--json").output)
    assert info["manifest"]["mode"] == "replay" and info["manifest"]["ended"] == "clean"
    assert info["counts"]["OpportunityDetected.v2"] > 0 and info["total"] == sum(info["counts"].values())
    jl = run("export", out, "--format", "jsonl", "--type", "OpportunityDetected").output.splitlines()
    assert len(jl) == info["counts"]["OpportunityDetected.v2"]
    row = json.loads(jl[0])
    assert row["type"] == "OpportunityDetected" and isinstance(row["amount_in"], int)
    csv_out = run("export", out, "--format", "csv", "--type", "V3Swapped").output.splitlines()
    assert csv_out[0].startswith("type,seq,ts,source,cause,pool") and len(csv_out) == info["counts"]["V3Swapped.v1"] + 1


@pytest.mark.slow
def test_real_day_replays_and_verifies(tmp_path) -> None:
    v3 = require_data("uniswap-v3-usdc-weth-2024-01-05/ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-2024-01-05.raw.csv")
    v2 = require_data("uniswap-v2-usdc-weth-reserves/reserves.csv")
    out, last = replay_verify_roundtrip(tmp_path, v3, v2, from_block=18937382, to_block=18944480)
    counts = EventLog.open(out).counts_by_topic()
    assert counts["V3Swapped.v1"] == 6046 and counts["V2ReservesSynced.v1"] > 1000


def test_digest_is_independent_of_where_the_log_lives(tmp_path) -> None:
    out, last = replay_verify_roundtrip(tmp_path, V3_SAMPLE, V2_SAMPLE)
    shutil.copy(out, tmp_path / "copy.db")
    assert run("replay", tmp_path / "copy.db", "--verify").output.strip().splitlines()[-1] == last
