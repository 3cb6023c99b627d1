"""Imports that must not pass quietly: the same recording into a log twice (refused, naming the file, the log
left as it was; the same file over disjoint blocks, as a V2 reserves file read a range at a time, is a new
import), a file of another kind (refused whole), and a V3 day whose own tick file says the flags priced
its swaps wrong (an error, not exit 0)."""
from __future__ import annotations

from click.testing import CliRunner, Result

from tapedeck.adapters.eventlog import EventLog
from tapedeck.cli import main
from tests.conftest import ROOT, require_data

SAMPLE = ROOT / "fixtures" / "samples"
V3_SAMPLE = SAMPLE / "ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-sample.raw.csv"
V2_SAMPLE = SAMPLE / "uniswap-v2-sample.reserves.csv"
V2_PAIR = "0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc"


def run(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def events_of(log) -> list:
    with EventLog.open(log) as day:
        return list(day.events())


def test_a_second_import_of_the_same_bytes_is_refused_and_loses_nothing(tmp_path) -> None:
    log = tmp_path / "day.db"
    assert run("import", "uniswap-v3-logs", V3_SAMPLE, "--out", log).exit_code == 0
    before = events_of(log)
    assert before
    renamed = tmp_path / V3_SAMPLE.name.replace("sample", "copy")  # the same bytes under another name
    renamed.write_bytes(V3_SAMPLE.read_bytes())
    for again in (V3_SAMPLE, renamed):
        r = run("import", "uniswap-v3-logs", again, "--out", log)
        assert r.exit_code != 0
        assert f"{again}: already imported into {log}" in r.output and V3_SAMPLE.name in r.output
        assert "twice" in r.output
    assert events_of(log) == before
    r = run("import", "uniswap-v3-logs", V3_SAMPLE, V3_SAMPLE, "--out", tmp_path / "new.db")  # twice in one command
    assert r.exit_code != 0 and "already imported" in r.output and not (tmp_path / "new.db").exists()


def test_the_same_file_over_disjoint_blocks_is_a_new_import_and_overlapping_ones_are_refused(tmp_path) -> None:
    log = tmp_path / "day.db"
    rows = V2_SAMPLE.read_text().splitlines()[1:]
    first, last = int(rows[0].split(",")[0]), int(rows[-1].split(",")[0])
    mid = (first + last) // 2
    assert run("import", "uniswap-v2-reserves", V2_SAMPLE, "--out", log, "--pool", V2_PAIR,
               "--from-block", first, "--to-block", mid).exit_code == 0
    n1 = len(events_of(log))
    r = run("import", "uniswap-v2-reserves", V2_SAMPLE, "--out", log, "--pool", V2_PAIR,
            "--from-block", mid + 1, "--to-block", last)
    assert r.exit_code == 0, r.output
    n2 = len(events_of(log))
    assert n1 > 0 and n2 > n1
    r = run("import", "uniswap-v2-reserves", V2_SAMPLE, "--out", log, "--pool", V2_PAIR, "--from-block", mid)
    assert r.exit_code != 0 and "already imported" in r.output
    assert len(events_of(log)) == n2


def test_a_file_of_the_wrong_kind_is_refused_whole_and_writes_no_log(tmp_path) -> None:
    """A file none of whose records the kind can read (another kind's recording) is one ``Error:`` line,
    exit 2, and no log; a file with some bad rows still imports them as recorded rejections."""
    log = tmp_path / "wrong.db"
    r = run("import", "uniswap-v3-logs", V2_SAMPLE, "--pool", "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640", "--out", log)
    assert r.exit_code == 2
    assert r.output.startswith(f"Error: {V2_SAMPLE}: not a uniswap-v3-logs recording: none of its 1 record(s)")
    assert "header lacks column(s)" in r.output and not log.exists()
    good = tmp_path / "day.db"
    assert run("import", "uniswap-v3-logs", V3_SAMPLE, "--out", good).exit_code == 0
    before = events_of(good)
    logs = tmp_path / "logs.csv"  # (V3 logs under a name without the V3 pool's address)
    logs.write_bytes(V3_SAMPLE.read_bytes())
    r = run("import", "uniswap-v2-reserves", logs, "--pool", V2_PAIR, "--out", good)  # into an existing log
    assert r.exit_code == 2 and "not a uniswap-v2-reserves recording" in r.output
    assert events_of(good) == before


def test_a_v3_day_the_pools_own_tick_file_contradicts_is_an_error(tmp_path) -> None:
    raw = require_data("uniswap-v3-usdc-weth-2024-01-05/"
                       "ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-2024-01-05.raw.csv")
    r = run("import", "uniswap-v3-logs", raw, "--out", tmp_path / "right.db")
    assert r.exit_code == 0 and "NOT OK" not in r.output  # (the registry's fee 500, spacing 10)
    r = run("import", "uniswap-v3-logs", raw, "--out", tmp_path / "wrong.db", "--fee", "3000", "--tick-spacing", "60")
    assert r.exit_code == 2 and "NOT OK" in r.output
    assert "Error: the import's check failed" in r.output and "fee 3000 pips, tick spacing 60" in r.output


def test_a_gzip_cut_short_is_one_error_line_and_no_log(tmp_path) -> None:
    """A recording whose gzip ends before its end-of-stream marker (a download cut off) is refused naming the
    file, exit 2, nothing written; click alone said only "Error: aborted" (its reading of EOFError)."""
    import gzip

    whole = gzip.compress(b"".join(b'{"jsonrpc":"2.0","method":"accountNotification","n":%d}\n' % i for i in range(2000)))
    cut = tmp_path / "solana_20250126.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    r = run("import", "solana-ws", cut, "--out", tmp_path / "s.db")
    assert r.exit_code == 2 and "aborted" not in r.output
    assert r.output.startswith(f"Error: {cut}: cannot read: ") and "cut short or corrupt" in r.output
    assert not (tmp_path / "s.db").exists()
