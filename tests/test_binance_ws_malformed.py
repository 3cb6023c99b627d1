"""Adversarial input to the Binance WebSocket reader (adapters/binance_ws.py): every malformed line
or frame is one recorded ``InputRejected`` naming what was wrong, the lines around it are imported,
nothing crashes and nothing is invented from a value of the wrong shape."""
from __future__ import annotations

import json

import pytest

from tapedeck.adapters import binance_ws as bw
from tapedeck.domain import events as ev

T0 = 1723161254024619568
TICKER = {"u": 35346513501, "s": "ETHUSDT", "b": "2683.80000000", "B": "3.02920000", "a": "2683.81000000",
          "A": "31.43950000"}


def test_a_deep_frame_is_rejected_before_any_decoder_even_under_py_eccs_recursion_limit() -> None:
    """py_ecc (imported with the EVM and signing code) raises the recursion limit to 100,000, and a
    decoder left to its own guard then overflows the C stack: run in a child, a crash would show."""
    import subprocess
    import sys

    code = ("import sys; sys.setrecursionlimit(100_000)\n"
            "from tapedeck.adapters import binance_ws as bw\n"
            "for raw in ('[' * 100_000 + ']' * 100_000, '[' * 100_000, '{\"a\":' * 50_000,\n"
            "            '[\"' + ']' * 1000 + '\",' + '[' * 100_000 + ']' * 100_000 + ']'):  # brackets in a string too\n"
            "    out = bw.FrameParser().parse(raw, 1723161254024619568, 'x')\n"
            "    assert [e.reason for e in out] == [bw.NESTED], out\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout == "ok\n", (r.returncode, r.stderr[-500:])


def test_nesting_within_the_limit_from_a_deep_stack_under_a_low_recursion_limit_is_a_rejection() -> None:
    import sys

    body = ticker(x=[]).replace("[]", "[" * (bw.MAX_DEPTH - 3) + "]" * (bw.MAX_DEPTH - 3))
    assert not bw._too_deep(body.encode())

    def deeper(k: int) -> list[ev.Event]:
        return deeper(k - 1) if k else bw.FrameParser().parse(body, T0, "live")

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        depth_now = len(__import__("inspect").stack(0))
        out = deeper(1000 - depth_now - bw.MAX_DEPTH // 2)
    finally:
        sys.setrecursionlimit(limit)
    assert [(type(e), e.reason) for e in out] == [(ev.InputRejected, bw.NESTED)]  # type: ignore[attr-defined]


def test_real_nesting_is_not_too_deep() -> None:
    levels = [["2683.80000000", "1.00000000"]] * 5000  # a snapshot's thousands of levels: many brackets, 3 deep
    assert not bw._too_deep(json.dumps({"lastUpdateId": 1, "bids": levels, "asks": levels}).encode())
    assert not bw._too_deep(json.dumps([[[["x"]]]] * 100 + ["[" * 500]).encode())  # brackets in strings are text
    assert bw._too_deep(("[" * (bw.MAX_DEPTH + 1) + "]" * (bw.MAX_DEPTH + 1)).encode())
    assert not bw._too_deep(("[" * bw.MAX_DEPTH + "]" * bw.MAX_DEPTH).encode())


def frame(stream: str, data: dict) -> str:
    return json.dumps({"stream": f"ethusdt@{stream}", "data": data}, separators=(",", ":"))


def ticker(**fields: object) -> str:
    return frame("bookTicker", {**TICKER, **fields})


def write(tmp_path, name: str, lines: list[str]) -> str:
    p = tmp_path / name
    p.write_text("".join(f"{T0 + i * 1_000_000} {line}\n" for i, line in enumerate(lines)))
    return str(p)


def rejected(events: list[ev.Event]) -> list[str]:
    return [e.reason for e in events if type(e) is ev.InputRejected]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["spot_ethusdt_deep.txt", "deep.txt"])  # (no market in the name: sniffed first)
def test_a_deeply_nested_line_is_one_rejection_and_the_others_are_imported(tmp_path, name: str) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    deep_in_a_frame = ticker(x=[]).replace("[]", deep)  # under a stream the typed fast path tries first
    path = write(tmp_path, name, [deep, deep_in_a_frame, ticker()])
    events = list(bw.read_binance_ws(path))
    assert [type(e).__name__ for e in events] == ["InputRejected", "InputRejected", "QuoteUpdated"]
    assert rejected(events) == [bw.NESTED, bw.NESTED]
    assert events[0].origin == f"binance-ws:{name}:line 1" and events[0].raw.startswith(f"{T0} [[[")  # type: ignore[attr-defined]
    assert events[2].venue == bw.SPOT and events[2].instrument == "ETHUSDT"  # type: ignore[attr-defined]


def test_a_deeply_nested_live_frame_is_one_rejection() -> None:
    p = bw.FrameParser()
    for raw in ("[" * 100_000 + "]" * 100_000, ticker(x=[]).replace("[]", "[" * 100_000 + "]" * 100_000)):
        out = p.parse(raw, T0, "live")
        assert [(type(e), e.reason) for e in out] == [(ev.InputRejected, bw.NESTED)]  # type: ignore[attr-defined]
    assert type(p.parse(ticker(), T0, "live")[0]) is ev.QuoteUpdated  # the parser goes on


DIFF = {"e": "depthUpdate", "E": 1723161255308, "s": "ETHUSDT", "U": 35346513499, "u": 35346513505,
        "b": [["2683.80000000", "3.02920000"]], "a": [["2683.81000000", "0.00000000"]]}
SNAPSHOT = {"lastUpdateId": 35346513498, "bids": [["2683.80000000", "3.02920000"]],
            "asks": [["2683.81000000", "1.00000000"]]}
NOT_A_PAIR = [["12"], [{"2683.80000000": 1, "1.00000000": 2}], ["ab"], [("2683.80000000", "1.00000000", "1")],
              [["2683.80000000"]], [["2683.80000000", "1.00000000", "2.00000000"]], [[2683.8, 1.0]],
              [["2683.80000000", None]], [None], [[]]]


@pytest.mark.parametrize("side", NOT_A_PAIR, ids=lambda v: json.dumps(v)[:30])
def test_a_depth_level_that_is_not_a_pair_of_strings_is_rejected_not_invented(tmp_path, side: list) -> None:
    lines = [frame("depth@100ms", {**DIFF, "b": side}), frame("depth@100ms", {**DIFF, "a": [*DIFF["a"], *side]}),
             json.dumps({**SNAPSHOT, "bids": side}), json.dumps({**SNAPSHOT, "asks": [*SNAPSHOT["asks"], *side]})]
    events = list(bw.read_binance_ws(write(tmp_path, "spot_ethusdt_levels.txt", lines)))
    assert rejected(events) == ["b: level 0 is not a [price, size] pair of strings",
                                "a: level 1 is not a [price, size] pair of strings",
                                "bids: level 0 is not a [price, size] pair of strings",
                                "asks: level 1 is not a [price, size] pair of strings"]
    p = bw.FrameParser(instrument="ETHUSDT")
    for line in lines:
        assert [type(e) for e in p.parse(line, T0, "live")] == [ev.InputRejected]


def test_well_formed_levels_are_still_read() -> None:
    p = bw.FrameParser(instrument="ETHUSDT")
    snap = p.parse(json.dumps(SNAPSHOT), T0, "live")[0]
    assert type(snap) is ev.BookDepthUpdated and snap.bids == ((268380000000, 302920000),)
    diff = p.parse(json.dumps({"data": DIFF, "stream": "ethusdt@depth@100ms"}), T0, "live")[0]  # general path
    assert type(diff) is ev.BookDepthUpdated and diff.asks == ((268381000000, 0),)  # size 0: the level is gone


NOT_PLAIN = ["2.6838e3", "2.68380000E3", "+2683.8", "+2683.80000000", "２６８３.8", "２６８３.80000000", "٢٦٨٣.80000000",
             "2_683.8", " 2683.8", "2683.8 ", "2683.8\n", "2683.", ".5", "0x10", "NaN", "Infinity", "", "1.2.3",
             "2683,80000000"]


@pytest.mark.parametrize("text", NOT_PLAIN)
def test_only_plain_ascii_decimal_strings_are_prices_and_sizes(tmp_path, text: str) -> None:
    lines = [ticker(b=text), ticker(A=text), frame("depth@100ms", {**DIFF, "b": [[text, "1.00000000"]]}),
             frame("depth@100ms", {**DIFF, "a": [["2683.90000000", text]]}),
             frame("trade", {"e": "trade", "E": 1723161255308, "s": "ETHUSDT", "t": 1, "p": text, "q": "1.00000000",
                             "T": 1723161255307, "m": True})]
    events = list(bw.read_binance_ws(write(tmp_path, "spot_ethusdt_numbers.txt", lines)))
    reasons = rejected(events)
    assert len(reasons) == len(events) == len(lines), events
    for reason, field in zip(reasons, ["field 'b'", "field 'A'", "b: level 0 price", "a: level 0 size", "field 'p'"]):
        assert reason == f"{field} {text!r:.40} is not a plain decimal string (ASCII digits and one optional '.')"
    p = bw.FrameParser()
    assert all([type(e) for e in p.parse(line, T0, "live")] == [ev.InputRejected] for line in lines)


def test_plain_decimal_strings_of_any_places_up_to_eight_are_exact() -> None:
    p = bw.FrameParser()
    for text, n in [("2683.80000000", 268380000000), ("2683.8", 268380000000), ("2684", 268400000000),
                    ("0.00000001", 1), ("0002683.80", 268380000000), ("9" * 20 + ".5", int("9" * 20 + "50000000"))]:
        q = p.parse(ticker(b=text, a="9" * 20 + ".99999999"), T0, "live")[0]
        assert type(q) is ev.QuoteUpdated and q.bid == n, (text, q)


@pytest.mark.parametrize("text", ["9" * 21, "9" * 21 + ".00000000", "9" * 5000 + ".00000000", "1" * 5000])
def test_a_number_too_long_to_be_a_price_is_a_rejection_not_a_crash(text: str) -> None:
    p = bw.FrameParser()
    for line in (ticker(b=text), frame("depth@100ms", {**DIFF, "b": [[text, "1.00000000"]]})):
        out = p.parse(line, T0, "live")
        assert [type(e) for e in out] == [ev.InputRejected]
        assert out[0].reason.endswith(f"{text:.40} has more than {bw.MAX_DIGITS} digits before the point")  # type: ignore[attr-defined]


@pytest.mark.parametrize("stamp", ["1_723_161_254_024_619_568", "+1723161254024619568", "１７２３１６１２５４０２４６１９５６８",
                                   "1723161254024619568\t", "0x17E9F0C39D4A4C70", "-1723161254024619568", "1" * 25])
def test_the_receive_time_is_ascii_digits_only(tmp_path, stamp: str) -> None:
    p = tmp_path / "spot_ethusdt_stamps.txt"
    p.write_text(f"{T0} {ticker()}\n{stamp} {ticker()}\n{T0 + 2} {ticker()}\n")
    events = list(bw.read_binance_ws(p))
    assert [type(e).__name__ for e in events] == ["QuoteUpdated", "InputRejected", "QuoteUpdated"]
    assert events[1].reason == f"no receive time: {stamp.encode()[:30]!r} is not an integer in ASCII digits"  # type: ignore[attr-defined]
    assert events[1].ts == T0  # stamped with the last good time


def trade(**fields: object) -> str:
    return frame("trade", {"e": "trade", "E": 1723161255308, "s": "ETHUSDT", "t": 1, "p": "2683.80000000",
                           "q": "0.00370000", "T": 1723161255307, "m": True, **fields})


NOT_MARKET_DATA = [
    (ticker(b="0.00000000", a="0.00000000"), "field 'b' (best bid) is 0: no price"),
    (ticker(b="0", B="0"), "field 'b' (best bid) is 0: no price"),
    (ticker(a="0.00000000"), "field 'a' (best ask) is 0: no price"),
    (ticker(B="0.00000000"), "field 'B' (best bid size) is 0: nothing at the best level"),
    (ticker(A="0.00000000", B="0.00000000"), "field 'B' (best bid size) is 0: nothing at the best level"),
    (ticker(A="0"), "field 'A' (best ask size) is 0: nothing at the best level"),
    (ticker(b="2684.00000000"), "crossed book: best bid 2684.00000000 is not below best ask 2683.81000000"),
    (ticker(b="2683.81"), "crossed book: best bid 2683.81000000 is not below best ask 2683.81000000"),  # locked
    (trade(q="0.00000000"), "field 'q' (quantity) is 0: not a trade"),
    (trade(p="0.00000000"), "field 'p' (price) is 0: not a trade"),
    (trade(p="0", q="0"), "field 'p' (price) is 0: not a trade"),
    (frame("depth@100ms", {**DIFF, "b": [["2683.80000000", "1.00000000"], ["0.00000000", "1.00000000"]]}),
     "b: level 1 price is 0"),
    (frame("depth@100ms", {**DIFF, "a": [["0", "0"]]}), "a: level 0 price is 0"),
    (json.dumps({**SNAPSHOT, "bids": [["2683.80000000", "0.00000000"]]}),
     "bids: level 0 size is 0 in a snapshot (it lists standing levels only)"),
    (json.dumps({**SNAPSHOT, "asks": [["0.00000000", "1.00000000"]]}), "asks: level 0 price is 0"),
]


def test_zero_prices_empty_best_levels_crossed_quotes_and_empty_trades_are_rejections(tmp_path) -> None:
    lines = [line for line, _ in NOT_MARKET_DATA]
    events = list(bw.read_binance_ws(write(tmp_path, "spot_ethusdt_zero.txt", lines)))
    assert rejected(events) == [why for _, why in NOT_MARKET_DATA] and len(events) == len(lines)
    p = bw.FrameParser(instrument="ETHUSDT")
    assert [e.reason for line in lines for e in p.parse(line, T0, "live")] == [why for _, why in NOT_MARKET_DATA]  # type: ignore[attr-defined]


def test_what_is_market_data_is_kept_a_diffs_size_0_removing_its_level() -> None:
    p = bw.FrameParser(instrument="ETHUSDT")
    good = [ticker(), ticker(b="0.00000001", B="0.00000001", a="0.00000002", A="0.00000001"), trade(),
            trade(p="0.00000001", q="0.00000001"), frame("depth@100ms", DIFF), json.dumps(SNAPSHOT)]
    out = [e for line in good for e in p.parse(line, T0, "live")]
    assert [type(e).__name__ for e in out] == ["QuoteUpdated", "QuoteUpdated", "TradePrinted", "TradePrinted",
                                               "BookDepthUpdated", "BookDepthUpdated"]
    assert out[4].asks == ((268381000000, 0),)  # type: ignore[attr-defined]


def test_a_frame_of_another_symbol_than_the_files_is_a_rejection_naming_both(tmp_path) -> None:
    btc = {**TICKER, "s": "BTCUSDT", "b": "60000.00000000", "a": "60000.01000000"}
    lines = [ticker(), frame("bookTicker", btc), frame("depth@100ms", {**DIFF, "s": "BTCUSDT"}), trade(s="BTCUSDT"),
             json.dumps(SNAPSHOT), trade()]
    events = list(bw.read_binance_ws(write(tmp_path, "spot_ethusdt_20240808.txt", lines)))
    assert [type(e).__name__ for e in events] == ["QuoteUpdated", *["InputRejected"] * 3, "BookDepthUpdated",
                                                  "TradePrinted"]
    assert set(rejected(events)) == {"symbol 'BTCUSDT' is not 'ETHUSDT', the instrument of spot_ethusdt_20240808.txt "
                                     "(its name)"}
    assert {e.instrument for e in events if type(e) is not ev.InputRejected} == {"ETHUSDT"}  # type: ignore[attr-defined]
    given = list(bw.read_binance_ws(write(tmp_path, "recording.txt", lines), instrument="ETHUSDT"))
    assert rejected(given) == ["symbol 'BTCUSDT' is not 'ETHUSDT', the instrument being imported"] * 3
    # with neither a name nor an instrument given, the file's frames say it (as before): nothing to contradict
    assert rejected(list(bw.read_binance_ws(write(tmp_path, "recording.txt", lines)))) == []


def test_importing_a_file_whose_name_contradicts_its_frames_is_refused_and_the_log_is_untouched(tmp_path) -> None:
    from click.testing import CliRunner

    from tapedeck.adapters.eventlog import EventLog
    from tapedeck.cli import main

    lines = [ticker(), frame("depth@100ms", DIFF), json.dumps(SNAPSHOT), trade()]
    good = write(tmp_path, "spot_ethusdt_20240808.txt", lines)
    wrong = write(tmp_path, "spot_btcusdt_20240808.txt", lines)
    out = tmp_path / "m.db"
    r = CliRunner().invoke(main, ["import", "binance-ws", wrong, "--out", str(out)])
    assert r.exit_code == 2 and not out.exists()
    assert ("spot_btcusdt_20240808.txt: its name says BTCUSDT but its frames are of ETHUSDT: not imported "
            "(name the file after the symbol it holds)") in r.output
    r = CliRunner().invoke(main, ["import", "binance-ws", good, "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0 and "imported 4 events" in r.output
    before = out.read_bytes()
    r = CliRunner().invoke(main, ["import", "binance-ws", wrong, "--out", str(out)])
    assert r.exit_code == 2 and out.read_bytes() == before
    with EventLog.open(out) as log:
        assert {e.instrument for e in log.events()} == {"ETHUSDT"}  # type: ignore[attr-defined]


def gz_recording(n: int = 3_000) -> bytes:
    import gzip

    lines = [ticker(u=i, B=f"{i % 97 + 1}.{i:08d}"[:13]) for i in range(n)]
    return gzip.compress("".join(f"{T0 + i} {line}\n" for i, line in enumerate(lines)).encode(), mtime=0)


@pytest.mark.parametrize("cut", ["half", "magic only", "trailer cut"])
def test_a_truncated_gzip_is_refused_naming_the_file_and_the_log_is_untouched(tmp_path, cut: str) -> None:
    from click.testing import CliRunner

    from tapedeck.cli import main

    whole = gz_recording()
    (tmp_path / "spot_ethusdt_whole.gz").write_bytes(whole)
    part = {"half": whole[:len(whole) // 2], "magic only": b"\x1f\x8b", "trailer cut": whole[:-4]}[cut]
    path = tmp_path / "spot_ethusdt_cut.gz"
    path.write_bytes(part)
    with pytest.raises(bw.RecordingUnreadable):
        list(bw.read_binance_ws(path))
    out = tmp_path / "m.db"
    r = CliRunner().invoke(main, ["import", "binance-ws", str(path), "--out", str(out)])
    assert r.exit_code == 2 and not out.exists(), r.output
    assert f"Error: {path}: cannot read: compressed file ended before the end-of-stream marker was reached, after " \
           in r.output and "gzip -dc spot_ethusdt_cut.gz > spot_ethusdt_cut.txt" in r.output
    if cut == "trailer cut":
        assert "after 3000 lines" in r.output
    r = CliRunner().invoke(main, ["import", "binance-ws", str(tmp_path / "spot_ethusdt_whole.gz"), "--out", str(out)])
    assert r.exit_code == 0 and "imported 3000 events" in r.output
    before = out.read_bytes()
    r = CliRunner().invoke(main, ["import", "binance-ws", str(path), "--out", str(out)])
    assert r.exit_code == 2 and out.read_bytes() == before  # what the log held is kept as it was
    cut_name = tmp_path / "cut.gz"  # no market in the name: the venue is sniffed from the frames first
    cut_name.write_bytes(part)
    r = CliRunner().invoke(main, ["import", "binance-ws", str(cut_name), "--out", str(tmp_path / "n.db")])
    assert r.exit_code == 2 and "cannot read: compressed file ended" in r.output


def test_a_corrupt_gzip_is_refused_not_a_crash(tmp_path) -> None:
    import gzip
    import zlib

    from click.testing import CliRunner

    from tapedeck.cli import main

    whole = gz_recording()
    seen = set()
    for at in (40, 60, 100, len(whole) // 2, len(whole) - 20):
        bad = bytearray(whole)
        bad[at] ^= 0x55
        try:
            gzip.decompress(bytes(bad))
            continue
        except EOFError:  # the damage reads as a cut (above)
            continue
        except (zlib.error, gzip.BadGzipFile) as e:
            seen.add(type(e))
        path = tmp_path / f"spot_ethusdt_bad{at}.gz"
        path.write_bytes(bad)
        r = CliRunner().invoke(main, ["import", "binance-ws", str(path), "--out", str(tmp_path / f"{at}.db")])
        assert r.exit_code == 2 and f"Error: {path}: cannot read: corrupt compressed data, after " in r.output, r.output
        assert not (tmp_path / f"{at}.db").exists()
    assert seen == {zlib.error, gzip.BadGzipFile}  # both kinds of damage were tried
