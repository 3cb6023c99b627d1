"""The readers never raise: each hostile row the fuzz campaign of issue 8 found becomes one recorded
``InputRejected`` with its reason, the good rows around it survive, and time never runs backwards."""
from __future__ import annotations

import io

import pytest

from tapedeck.adapters.uniswap_v2_reserves import read_v2_reserves, read_v2_stream
from tapedeck.adapters.uniswap_v3_logs import read_v3_logs, read_v3_stream
from tapedeck.domain import codec, events as ev
from tests.test_uniswap_v3_real import HEADER, POOL, V2_PAIR, swap_row, write

GOOD = swap_row()  # block 18937382, log 250, 2024-01-05 00:00:23
LATER = swap_row(block=18937390, log_index=1).replace("00:00:23", "00:02:00")


def fields(row: str, i: int, value: str) -> str:
    import csv

    parts = next(csv.reader([row]))
    parts[i] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(parts)
    return out.getvalue()


V3_CASES = [
    (fields(GOOD, 5, "{[]: 1}"), "topics is not a list of"),
    (fields(GOOD, 5, "[" * 5000), "topics is not a list of"),
    (fields(GOOD, 5, "['0x" + "0" * 64 + "'] * 10**9"), "topics is not a list of"),
    (fields(GOOD, 1, "0001-01-01 00:00:00"), "outside 2015..2100"),
    (fields(GOOD, 1, "0001-01-01 00:00:00+01:00"), "bad block_timestamp"),
    (fields(GOOD, 1, "9999-12-31 23:59:59-01:00"), "bad block_timestamp"),
    (fields(GOOD, 1, "2200-01-01 00:00:00"), "outside 2015..2100"),
    (fields(GOOD, 0, "1" * 4301), "(4301 digits) is larger than"),
    (fields(GOOD, 0, "-18937382"), "negative block_number"),
    (fields(GOOD, 0, "\u0661\u0662"), "bad block_number"),
    (fields(GOOD, 4, str(2**32)), "log_index 4294967296 (10 digits) is larger than"),
    (GOOD.replace(",7,", ",\xff,"), "not UTF-8"),
    (GOOD + ",extra", "expected 7 fields, row has 8"),
    (GOOD.replace("0x", "\x00x", 1), "NUL byte"),
]


@pytest.mark.parametrize("bad, reason", V3_CASES)
def test_v3_hostile_rows_are_recorded(tmp_path, bad: str, reason: str) -> None:
    p = tmp_path / f"ethereum-{POOL}-x.raw.csv"
    p.write_bytes("\n".join([HEADER, bad, LATER]).encode("utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff")
                  + b"\n")
    out = list(read_v3_logs(p))
    assert [type(e) for e in out] == [ev.InputRejected, ev.V3Swapped], out
    assert reason in out[0].reason, out[0].reason
    assert out[0].origin == f"{p.name}:row 1" and out[0].raw


def test_v3_time_must_not_run_backwards(tmp_path) -> None:
    """Block rising while time falls (the merge would put a later block first), or one block with
    two times: rejected; a rejection keeps the last good time when its own runs backwards."""
    backwards = swap_row(block=18937385, log_index=1).replace("00:00:23", "00:00:11")
    two_times = swap_row(block=18937382, log_index=251).replace("00:00:23", "00:00:24")
    p = write(tmp_path, [HEADER, GOOD, backwards, two_times, LATER])
    out = list(read_v3_logs(p))
    assert [type(e) for e in out] == [ev.V3Swapped, ev.InputRejected, ev.InputRejected, ev.V3Swapped]
    assert "time runs backwards" in out[1].reason and "has two times" in out[2].reason
    assert out[1].ts == out[0].ts and out[2].ts == out[0].ts + 10**9  # its own time: not backwards
    assert [e.ts for e in out] == sorted(e.ts for e in out)


def test_bad_header_bytes_are_one_rejection(tmp_path) -> None:
    p = tmp_path / f"ethereum-{POOL}-x.raw.csv"
    p.write_bytes(b"block_number,\xff\xfe\n" + GOOD.encode() + b"\n")
    (e,) = read_v3_logs(p)
    assert type(e) is ev.InputRejected and e.origin.endswith(":header") and "not UTF-8" in e.reason
    bom = tmp_path / f"ethereum-{POOL}-bom.raw.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + HEADER.encode() + b"\n" + GOOD.encode() + b"\n")
    assert [type(e) for e in read_v3_logs(bom)] == [ev.V3Swapped]


V2_HEADER = "blockNumber,reserve0,reserve1"


def test_v2_hostile_rows_are_recorded() -> None:
    rows = [b'10,"100","200"', b'11,"-5","200"', b'12,"100","-1"', b"-13,1,2", ("1" * 4301 + ',1,2').encode(),
            b'14,"' + str(2**112).encode() + b'","1"', b"15,\xff,1", b"16,1", b'17,"1e3","2"', b'18,"101","201"']
    blob = V2_HEADER.encode() + b"\n" + b"\n".join(rows) + b"\n"
    out = list(read_v2_stream(io.BytesIO(blob), "r.csv", lambda b: b * 10**9, V2_PAIR))
    assert [type(e).__name__ for e in out] == ["V2ReservesSynced"] + ["InputRejected"] * 8 + ["V2ReservesSynced"]
    reasons = [e.reason for e in out[1:-1]]
    for want, got in zip(["negative reserve0", "negative reserve1", "negative blockNumber", "(4301 digits)",
                          "reserve0 5192296858534827628530496329220096 (34 digits) is larger than", "not UTF-8",
                          "expected 3 fields", "bad reserve0"], reasons):
        assert want in got, (want, got)
    assert all(e.ts == 10 * 10**9 for e in out[1:-1])  # the time of the last event emitted


def test_v2_block_problem_rejects_a_row(tmp_path) -> None:
    p = tmp_path / "r.csv"
    p.write_text(V2_HEADER + '\n10,"1","2"\n11,"1","3"\n')
    out = list(read_v2_reserves(p, lambda b: b, V2_PAIR, block_problem=lambda b: "too far" if b == 11 else None))
    assert [type(e) for e in out] == [ev.V2ReservesSynced, ev.InputRejected] and out[1].reason == "too far"


def test_v2_block_beyond_the_chains_time_is_rejected_at_import(tmp_path) -> None:
    """A block the chain's fixed anchors put past 2100 cannot be timed: one recorded rejection,
    decided before the log's own times are looked at (so import order cannot change it)."""
    from tapedeck.runtime.importers import import_files

    p = tmp_path / "r.csv"
    p.write_text(V2_HEADER + f'\n18937382,"1","2"\n{9 * 10**9},"1","3"\n')
    rep = import_files("uniswap-v2-reserves", [str(p)], tmp_path / "x.db", pool=V2_PAIR)
    assert (rep.imported, rep.rejected) == (1, 1) and "cannot be timed" in rep.rejections[0]


def test_codec_raises_only_schema_error() -> None:
    good = codec.encode(ev.V2ReservesSynced(ts=1, source="s", pool=V2_PAIR, block=1, reserve0=1, reserve1=2))
    for topic, body in [("V2ReservesSynced.v1", b'["V2ReservesSynced",0,1,"\xff"]'), ("TimerFired.v1", b"5"),
                        ("QuoteUpdated.v1", b'["QuoteUpdated",0,1,"\xff"]'), ("V2ReservesSynced.v1", good[:-3]),
                        ("V2ReservesSynced.v1", good.replace(b"1,2]", b'1,"2"]')), ("Nope.v1", good)]:
        with pytest.raises(codec.SchemaError):
            codec.decode(topic, body)
    assert codec.decode("V2ReservesSynced.v1", good).reserve1 == 2  # type: ignore[attr-defined]


def test_stream_and_file_readers_agree(tmp_path) -> None:
    p = write(tmp_path, [HEADER, GOOD, LATER])
    assert list(read_v3_logs(p)) == list(read_v3_stream(io.BytesIO(p.read_bytes()), p.name, POOL))
