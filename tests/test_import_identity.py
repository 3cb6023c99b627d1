"""Imports: pool identity from the registry or flags (never guessed), the same log whatever the import
order, a run log refused, and every bad request one line (exit 2)."""
from __future__ import annotations

import hashlib

import pytest
from click.testing import CliRunner

from tapedeck.adapters.eventlog import EventLog
from tapedeck.cli import main
from tapedeck.domain import codec, events as ev
from tapedeck.runtime.importers import ImportError_, import_files
from tests.conftest import ROOT, require_data

SAMPLE = ROOT / "fixtures" / "samples"
V3_SAMPLE = SAMPLE / "ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-sample.raw.csv"
V2_SAMPLE = SAMPLE / "uniswap-v2-sample.reserves.csv"
V3_POOL = "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"
V2_PAIR = "0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc"


def events_of(path) -> list[ev.Event]:
    with EventLog.open(path) as log:
        return list(log.events())


def digest(events: list[ev.Event]) -> str:
    h = hashlib.sha256()
    for e in events:
        h.update(codec.topic(type(e)).encode() + b"\0" + codec.encode(e) + b"\n")
    return h.hexdigest()


def both_orders(tmp_path, v3, v2, **v2_opts) -> tuple[list[ev.Event], list[ev.Event]]:
    a, b = tmp_path / "v3-first.db", tmp_path / "v2-first.db"
    import_files("uniswap-v3-logs", [str(v3)], a)
    import_files("uniswap-v2-reserves", [str(v2)], a, pool=V2_PAIR, **v2_opts)
    import_files("uniswap-v2-reserves", [str(v2)], b, pool=V2_PAIR, **v2_opts)
    import_files("uniswap-v3-logs", [str(v3)], b)
    return events_of(a), events_of(b)


def block_order_inversions(events: list[ev.Event]) -> int:
    """Places where a V2 block-end state and a V3 log are in the wrong block order."""
    keys = [(e.block, 1 if type(e) is ev.V2ReservesSynced else 0) for e in events  # type: ignore[attr-defined]
            if type(e) in (ev.V2ReservesSynced, ev.V3Swapped, ev.V3Minted, ev.V3Burned, ev.V3Collected)]
    return sum(1 for x, y in zip(keys, keys[1:]) if y < x)


def test_import_order_does_not_change_the_log(tmp_path) -> None:
    # a V2 file with a bad row too: its rejection must land at the same time either way
    lines = V2_SAMPLE.read_text().splitlines()
    v2 = tmp_path / "v2.reserves.csv"
    v2.write_text("\n".join(lines[:6] + ['18937385,"-5","7"'] + lines[6:]) + "\n")
    first, second = both_orders(tmp_path, V3_SAMPLE, v2)
    assert digest(first) == digest(second) and first == second
    v2_events = [e for e in first if e.source == "uniswap-v2-reserves"]
    rejected = [e for e in v2_events if type(e) is ev.InputRejected]
    assert len(rejected) == 1 and "negative reserve0" in rejected[0].reason
    synced = [e for e in v2_events if type(e) is ev.V2ReservesSynced]
    before = [e for e in synced if e.block <= int(lines[5].split(",")[0])]  # emitted up to the row before it
    assert before and rejected[0].ts == before[-1].ts > 0  # the time of the last event its file emitted
    assert block_order_inversions(first) == 0
    v3_times = {e.block: e.ts for e in first if type(e) is ev.V3Swapped}
    shared = [e for e in synced if e.block in v3_times]
    assert shared and all(e.ts == v3_times[e.block] for e in shared)  # a V2 block the V3 file times: same time


@pytest.mark.slow
def test_real_day_import_order_does_not_change_the_log(tmp_path) -> None:
    """The issue's case: V2-then-V3 gave 12 block-order inversions that V3-then-V2 did not."""
    v3 = require_data("uniswap-v3-usdc-weth-2024-01-05/ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-2024-01-05.raw.csv")
    v2 = require_data("uniswap-v2-usdc-weth-reserves/reserves.csv")
    first, second = both_orders(tmp_path, v3, v2, from_block=18937382, to_block=18944480)
    assert len(first) > 8_000 and digest(first) == digest(second)
    assert block_order_inversions(first) == 0 and block_order_inversions(second) == 0


def test_a_run_log_is_refused(tmp_path) -> None:
    log, run = tmp_path / "day.db", tmp_path / "run.db"
    import_files("uniswap-v3-logs", [str(V3_SAMPLE)], log)
    import_files("uniswap-v2-reserves", [str(V2_SAMPLE)], log, pool=V2_PAIR)
    r = CliRunner().invoke(main, ["replay", str(log), "--out", str(run)])
    assert r.exit_code == 0, r.output
    before = events_of(run)
    assert any(e.KIND != ev.INPUT for e in before)
    with pytest.raises(ImportError_, match="not an import log"):
        import_files("uniswap-v3-logs", [str(V3_SAMPLE)], run)
    assert events_of(run) == before


def test_pool_identity_from_registry_or_flags(tmp_path) -> None:
    rep = import_files("uniswap-v2-reserves", [str(V2_SAMPLE)], tmp_path / "a.db", pool=V2_PAIR.upper().replace("0X", "0x"))
    spec = rep.pools[str(V2_SAMPLE)]
    assert (spec.label, spec.fee, spec.token0.symbol) == ("USDC/WETH V2", 30, "USDC")
    assert {e.pool for e in events_of(tmp_path / "a.db") if type(e) is ev.V2ReservesSynced} == {V2_PAIR}
    with EventLog.open(tmp_path / "a.db") as log:
        assert log.manifest.notes["pools"][V2_PAIR]["token1"]["symbol"] == "WETH"
    # an unknown V2 pair is labelled by the address given, nothing else assumed
    other = "0x" + "34" * 20
    rep = import_files("uniswap-v2-reserves", [str(V2_SAMPLE)], tmp_path / "b.db", pool=other)
    assert rep.pools[str(V2_SAMPLE)].token0.symbol == "token0" and any("not in the registry" in n for n in rep.notes)
    assert {e.pool for e in events_of(tmp_path / "b.db") if type(e) is ev.V2ReservesSynced} == {other}
    # flags override the registry, with a note
    rep = import_files("uniswap-v3-logs", [str(V3_SAMPLE)], tmp_path / "c.db", fee=3000)
    assert (rep.pools[str(V3_SAMPLE)].fee, rep.pools[str(V3_SAMPLE)].tick_spacing) == (3000, 60)
    assert any("override" in n for n in rep.notes)


@pytest.mark.parametrize("kind, path, opts, message", [
    ("uniswap-v2-reserves", V2_SAMPLE, {}, "no pool address in the file name; give --pool ADDRESS"),
    ("uniswap-v2-reserves", V2_SAMPLE, {"pool": "0x1234"}, "--pool: '0x1234' is not an address"),
    ("uniswap-v2-reserves", V2_SAMPLE, {"pool": V3_POOL}, "is a uniswap-v3 pool in the registry"),
    ("uniswap-v2-reserves", V2_SAMPLE, {"pool": V2_PAIR, "tick_spacing": 60}, "a uniswap-v2 pair has no tick spacing"),
    ("uniswap-v3-logs", V3_SAMPLE, {"pool": "0x" + "56" * 20}, "disagrees with the address in the file name"),
    ("uniswap-v3-logs", V3_SAMPLE, {"fee": 3000, "tick_spacing": 10}, "fee 3000 goes with tick spacing 60"),
    ("uniswap-v3-logs", V3_SAMPLE, {"from_block": 10, "to_block": 5}, "--from-block 10 is after --to-block 5"),
])
def test_bad_requests_are_named(tmp_path, kind, path, opts, message) -> None:
    with pytest.raises(ImportError_) as info:
        import_files(kind, [str(path)], tmp_path / "x.db", **opts)
    assert message in str(info.value)
    assert not (tmp_path / "x.db").exists()


def test_unknown_v3_pool_needs_fee_and_spacing(tmp_path) -> None:
    v3 = tmp_path / f"ethereum-0x{'78' * 20}-day.raw.csv"
    v3.write_bytes(V3_SAMPLE.read_bytes())
    with pytest.raises(ImportError_, match="is not in the registry .*give --fee and --tick-spacing"):
        import_files("uniswap-v3-logs", [str(v3)], tmp_path / "x.db")
    with pytest.raises(ImportError_, match="--fee 1234 is not one of Uniswap's fee tiers"):
        import_files("uniswap-v3-logs", [str(v3)], tmp_path / "x.db", fee=1234)
    rep = import_files("uniswap-v3-logs", [str(v3)], tmp_path / "x.db", fee=1234, tick_spacing=7)
    assert (rep.pools[str(v3)].fee, rep.pools[str(v3)].tick_spacing) == (1234, 7) and rep.imported > 0


def test_disagreeing_block_times_are_refused(tmp_path) -> None:
    """Two recordings that give one block two times cannot both be right: nothing is imported."""
    log = tmp_path / "day.db"
    import_files("uniswap-v3-logs", [str(V3_SAMPLE)], log)
    lines = V3_SAMPLE.read_text().splitlines()
    first_ts = lines[1].split(",")[1]
    other = tmp_path / "ethereum-0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8-day.raw.csv"
    other.write_text("\n".join([lines[0], lines[1].replace(first_ts, "2024-01-05 00:00:11")]) + "\n")
    before = events_of(log)
    with pytest.raises(ImportError_, match="has two times in the log"):
        import_files("uniswap-v3-logs", [str(other)], log)
    # a later block timed before an earlier one, by another pool's file
    last = lines[-1].split(",")
    late = str(int(last[0]) + 1)
    row = ",".join([late, "2024-01-05 00:00:01"] + lines[-1].split(",")[2:])
    backwards = tmp_path / "ethereum-0x4e68ccd3e89f51c3074ca5072bbac773960dfa36-day.raw.csv"
    backwards.write_text("\n".join([lines[0], row]) + "\n")
    with pytest.raises(ImportError_, match=f"block {late} on ethereum is timed before block"):
        import_files("uniswap-v3-logs", [str(backwards)], log)
    assert events_of(log) == before


def invoke(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("args, message", [
    (["uniswap-v2-reserves", V2_SAMPLE], "no pool address in the file name; give --pool ADDRESS"),
    (["uniswap-v2-reserves", V2_SAMPLE, "--pool", "nope"], "is not an address"),
    (["uniswap-v3-logs", V3_SAMPLE, "--fee", "500", "--tick-spacing", "60"], "fee 500 goes with tick spacing 10"),
    (["uniswap-v3-logs", ROOT / "fixtures"], "fixtures: is a directory, not a recording"),
    (["uniswap-v3-logs", ROOT / "absent.raw.csv"], "absent.raw.csv: no such file"),
    (["uniswap-v3-logs", V3_SAMPLE, "--registry", ROOT / "fixtures" / "config" / "default.toml"],
     "default.toml: risk: Extra inputs are not permitted"),
    (["uniswap-v3-logs", V3_SAMPLE, "--registry", ROOT / "absent.toml"], "absent.toml: registry file not found"),
    (["uniswap-v3-logs", V3_SAMPLE, "--from-block", "9", "--to-block", "3"], "after --to-block 3"),
])
def test_cli_import_errors_are_one_line_exit_2(tmp_path, args, message) -> None:
    r = invoke("import", *args, "--out", tmp_path / "x.db")
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.output, r.output
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("out, message", [("dir", "is a directory, not a log file"),
                                          ("/proc/x.db", "cannot write the log")])
def test_cli_bad_out_is_one_line_exit_2(tmp_path, out, message) -> None:
    r = invoke("import", "uniswap-v3-logs", V3_SAMPLE, "--out", tmp_path if out == "dir" else out)
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and message in r.output, r.output


def test_cli_config_pools_extend_the_registry(tmp_path) -> None:
    v3 = tmp_path / f"ethereum-0x{'9a' * 20}-day.raw.csv"
    v3.write_bytes(V3_SAMPLE.read_bytes())
    cfg = tmp_path / "config.toml"
    cfg.write_text((ROOT / "fixtures" / "config" / "default.toml").read_text() + f"""
[[pools]]
name = "my pool"
chain = "ethereum"
address = "0x{'9a' * 20}"
protocol = "uniswap-v3"
fee = 500
tick_spacing = 10
token0 = {{ address = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", symbol = "USDC", decimals = 6 }}
token1 = {{ address = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2", symbol = "WETH", decimals = 18 }}
""")
    r = invoke("import", "uniswap-v3-logs", v3, "--out", tmp_path / "x.db", "--config", cfg)
    assert r.exit_code == 0 and "as uniswap-v3-logs of my pool" in r.output, r.output
