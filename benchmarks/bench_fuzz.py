"""Fuzz campaign over the recording readers and the event codec: nothing escapes, nothing is lost.

Inputs are seeded mutations of real rows (the shared recordings under ``$TAPEDECK_DATA`` or
``../shared/data``, read in place, never copied; the repository's synthetic samples when absent):
field swaps and hostile field values (``"{[]: 1}"`` topics, year-1 and year-9999 timestamps,
4,301-digit numbers, negatives, non-ASCII digits, times running backwards), byte-level
flips/inserts/deletes/truncations, and whole-line re-encodings (UTF-16, Latin-1, BOMs, NULs).
Three targets:

* the V3 raw-log reader and the V2 reserves reader, fed small mutated files (header + rows) from
  memory: every non-blank line must come out as exactly one event or one ``InputRejected`` (V2:
  at most one, an unchanged reserve emits nothing), every event's fields in range, V3 event times
  non-decreasing with (block, log index) increasing, and every event must survive the codec;
* the codec: ``codec.decode`` of mutated stored bodies of real events (under their own and older
  topics) must return an event or raise ``codec.SchemaError``.

Anything else raised is an escape; the campaign counts them (must be 0) and keeps the first few.
Usage: ``nice python benchmarks/bench_fuzz.py [--inputs 1000000] [--seed 1]``.
"""
from __future__ import annotations

import argparse
import io
import os
import random
import re
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tapedeck.adapters.aave_v3_logs import encode_row, read_aave_stream  # noqa: E402
from tapedeck.adapters.uniswap_v2_reserves import MAX_UINT112, read_v2_stream  # noqa: E402
from tapedeck.adapters.uniswap_v3_logs import MAX_TS, MIN_TS, read_v3_stream  # noqa: E402
from tapedeck.domain import codec, events as ev  # noqa: E402
from tapedeck.domain import uniswap_v3 as v3  # noqa: E402

V3_FILE = "uniswap-v3-usdc-weth-2024-01-05/ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-2024-01-05.raw.csv"
V2_FILE = "uniswap-v2-usdc-weth-reserves/reserves.csv"
SAMPLES = ROOT / "fixtures" / "samples"
V3_SAMPLE = SAMPLES / "ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-sample.raw.csv"
V2_SAMPLE = SAMPLES / "uniswap-v2-sample.reserves.csv"
POOL = "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"
PAIR = "0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc"
SEED_ROWS = 3000  # real rows taken from the head of each file

HOSTILE = [
    "{[]: 1}", "[]", "[[]]", "['0x']", "[" * 200, "]", "()", "{}", "None", "__import__('os')", "'", '"', "",
    " ", "0", "-0", "-1", "+1", "1e18", "1_000", "0x10", "NaN", "inf", "\u0661\u0662\u0663", "１２３", "1" * 4301,
    "9" * 20, str(2**63), str(2**112), str(2**128), "-" + "9" * 40, "0001-01-01 00:00:00", "9999-12-31 23:59:59",
    "9999-12-31 23:59:59-01:00", "0001-01-01 00:00:00+01:00", "1970-01-01 00:00:00", "2024-13-05 00:00:23",
    "2024-01-05T00:00:23+05:30", "2024-01-05", "2200-01-01 00:00:00", "\x00", "\ufeff", "\u202e", "0x" + "f" * 64,
    "0x" + "0" * 64, "0x" + "g" * 64, "0x" + "ab" * 200, "0x" + "ab" * 5000, "0x1", "x" * 10000,
]


@dataclass
class FuzzCounts:
    inputs: int = 0  # mutated rows / bodies fed
    files: int = 0
    events: int = 0  # good events out of the readers
    rejections: int = 0  # InputRejected recorded by the readers
    codec_inputs: int = 0
    codec_decoded: int = 0
    codec_rejected: int = 0  # SchemaError
    escaped: int = 0  # exceptions other than the documented ones: must be 0
    invariant_failures: int = 0  # a reader output that breaks a stated invariant: must be 0
    by_target: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)  # rejection reason kinds (see reason_kind)
    examples: list[str] = field(default_factory=list)  # the first escapes / failures

    def note(self, what: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(what)

    def lines(self) -> list[str]:
        return [
            f"inputs {self.inputs:,} ({', '.join(f'{k} {v:,}' for k, v in sorted(self.by_target.items()))}) "
            f"in {self.files:,} files",
            f"readers: {self.events:,} events, {self.rejections:,} rejections recorded",
            f"codec: {self.codec_inputs:,} mutated bodies, {self.codec_decoded:,} decoded, "
            f"{self.codec_rejected:,} SchemaError",
            f"exceptions escaped: {self.escaped}; invariant failures: {self.invariant_failures}",
        ] + [f"  {e}" for e in self.examples]


def data_dir() -> Path:
    return Path(os.environ.get("TAPEDECK_DATA") or ROOT.parent / "shared" / "data")


def seed_lines(path: Path, n: int = SEED_ROWS) -> tuple[bytes, list[bytes]]:
    """The header and the first ``n`` rows of a recording, as bytes (read in place)."""
    with open(path, "rb") as f:
        header = f.readline().rstrip(b"\r\n")
        rows = []
        for line in f:
            rows.append(line.rstrip(b"\r\n"))
            if len(rows) >= n:
                break
    return header, rows


def corpus(data: Path | None = None) -> dict[str, tuple[bytes, list[bytes]]]:
    data = data or data_dir()
    v3_path, v2_path = data / V3_FILE, data / V2_FILE
    return {"v3": seed_lines(v3_path if v3_path.is_file() else V3_SAMPLE),
            "v2": seed_lines(v2_path if v2_path.is_file() else V2_SAMPLE)}


# ----------------------------------------------------------------------------- mutators


def _split(line: bytes) -> list[str]:
    import csv

    try:
        return next(csv.reader([line.decode("utf-8")]))
    except Exception:
        return [line.decode("utf-8", "replace")]


def _join(fields: list[str]) -> bytes:
    import csv

    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    return buf.getvalue().encode("utf-8", "surrogatepass")


def mutate_fields(rng: random.Random, line: bytes, others: list[bytes]) -> bytes:
    fields = _split(line)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(fields))
        op = rng.random()
        if op < 0.45:
            fields[i] = rng.choice(HOSTILE)
        elif op < 0.6:
            other = _split(rng.choice(others))
            if i < len(other):
                fields[i] = other[i]  # a real value from another row (times/blocks out of order)
        elif op < 0.7 and fields[i].lstrip("-").isdigit() and len(fields[i]) < 100:
            fields[i] = str(int(fields[i]) + rng.choice([-1, 1, -10**6, 10**6, -(10**30), 2**112]))
        elif op < 0.8 and len(fields[i]) > 2:
            j = rng.randrange(len(fields[i]))
            fields[i] = fields[i][:j] + rng.choice("0fF9x-,'\"[] \t") + fields[i][j + 1:]
        elif op < 0.88:
            del fields[i]
            if not fields:
                fields = [""]
        elif op < 0.94:
            fields.insert(i, rng.choice(HOSTILE))
        else:
            fields[i] = fields[i] * rng.randint(2, 4)
    return _join(fields)


def mutate_bytes(rng: random.Random, line: bytes) -> bytes:
    b = bytearray(line)
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        pos = rng.randrange(len(b) + 1)
        if op < 0.35 and b:
            b[pos % len(b)] = rng.randrange(256)
        elif op < 0.6:
            b[pos:pos] = rng.choice([bytes([rng.randrange(256)]), b"\xff", b"\xc3", b"\xe2\x80", b"\x00", b",",
                                     b'"', b"\r", b"\n", b"'", b"]", b"\xef\xbb\xbf"])
        elif op < 0.85:
            del b[pos:pos + rng.randint(1, 8)]
        else:
            del b[pos:]
    return bytes(b)


def reencode(rng: random.Random, line: bytes) -> bytes:
    text = line.decode("utf-8", "replace")
    enc = rng.choice(["utf-16", "utf-16-le", "latin-1", "utf-32", "bom", "nul"])
    if enc == "bom":
        return b"\xef\xbb\xbf" + line
    if enc == "nul":
        return line.replace(b",", b"\x00,", 1)
    return (text + "\u00e9").encode(enc, "replace")


def mutate_line(rng: random.Random, line: bytes, others: list[bytes]) -> bytes:
    r = rng.random()
    if r < 0.15:
        return line  # unchanged real rows keep the monotonicity checks busy
    if r < 0.6:
        return mutate_fields(rng, line, others)
    if r < 0.92:
        return mutate_bytes(rng, line)
    return reencode(rng, line)


# ----------------------------------------------------------------------------- targets


def reason_kind(reason: str) -> str:
    """A rejection reason without its values: the first words, quoted text as Q, numbers as N."""
    text = re.sub(r"[0-9]+", "N", re.sub(r"'[^']*'|\"[^\"]*\"", "Q", reason))
    return " ".join(text.split()[:6])


def _check_event(e: ev.Event) -> str | None:
    """Which field of a reader's event is out of its range, or None."""
    if not MIN_TS <= e.ts < MAX_TS:
        return f"ts {e.ts} out of range"
    block = getattr(e, "block", 0)
    if not 0 <= block < 2**63:
        return f"block {block}"
    if isinstance(e, ev.V2ReservesSynced):
        if not (0 <= e.reserve0 <= MAX_UINT112 and 0 <= e.reserve1 <= MAX_UINT112):
            return "reserve out of uint112"
    if isinstance(e, ev.V3Swapped):
        if not (0 <= e.liquidity < 2**128 and v3.MIN_SQRT_RATIO <= e.sqrt_price_x96 < v3.MAX_SQRT_RATIO
                and v3.MIN_TICK <= e.tick <= v3.MAX_TICK and -(2**255) <= e.amount0 < 2**255):
            return "swap field out of range"
    if isinstance(e, (ev.V3Minted, ev.V3Burned)) and not 0 <= e.amount < 2**128:
        return "liquidity amount out of range"
    if codec.decode(codec.topic(type(e)), codec.encode(e)) != e:
        return "does not survive the codec"
    return None


def _nonblank_rows(blob: bytes) -> int:
    lines = io.BytesIO(blob).readlines()[1:]
    return sum(1 for line in lines if line.rstrip(b"\r\n").decode("utf-8", "backslashreplace").strip())


def fuzz_reader(rng: random.Random, counts: FuzzCounts, kind: str, header: bytes, seeds: list[bytes]) -> None:
    n = rng.randint(1, 12)
    start = rng.randrange(len(seeds))
    rows = [mutate_line(rng, seeds[(start + i) % len(seeds)], seeds) for i in range(n)]
    head = header if rng.random() > 0.02 else mutate_line(rng, header, [header])
    blob = head + b"\n" + b"\n".join(rows) + rng.choice([b"\n", b"", b"\r\n"])
    counts.inputs += n
    counts.files += 1
    counts.by_target[kind] += n
    try:
        if kind == "v3":
            out = list(read_v3_stream(io.BytesIO(blob), "fuzz.raw.csv", POOL))
        else:
            out = list(read_v2_stream(io.BytesIO(blob), "fuzz.csv", lambda b: MIN_TS + b, PAIR))
    except Exception as e:  # noqa: BLE001 - the point: nothing may escape
        counts.escaped += 1
        counts.note(f"{kind} reader raised {type(e).__name__}: {e} on {blob[:300]!r}\n"
                    f"{traceback.format_exc(limit=3)}")
        return
    header_rejected = bool(out) and type(out[0]) is ev.InputRejected and out[0].origin.endswith(":header")
    expected = 1 if header_rejected else _nonblank_rows(blob)
    if (len(out) != expected) if kind == "v3" else (len(out) > expected):
        counts.invariant_failures += 1
        counts.note(f"{kind}: {len(out)} outputs for {expected} rows: {blob[:300]!r}")
    last: ev.Event | None = None
    for e in out:
        if type(e) is ev.InputRejected:
            counts.rejections += 1
            counts.reasons[reason_kind(e.reason)] += 1
            if not e.reason or not e.origin:
                counts.invariant_failures += 1
                counts.note(f"{kind}: rejection without reason/origin: {e}")
            continue
        counts.events += 1
        try:
            problem = _check_event(e)
        except codec.SchemaError as x:
            problem = f"codec refused its own encoding: {x}"
        if problem is None and kind == "v3" and last is not None:
            if (e.block, e.log_index) <= (last.block, last.log_index) or e.ts < last.ts:  # type: ignore[attr-defined]
                problem = "V3 events out of (block, log index, time) order"
        if problem:
            counts.invariant_failures += 1
            counts.note(f"{kind}: {problem}: {e}")
        last = e


def codec_seeds(c: dict[str, tuple[bytes, list[bytes]]]) -> list[tuple[str, bytes]]:
    """Stored (topic, body) pairs of real events: V3 logs and V2 reserves decoded from the seed rows."""
    header, rows = c["v3"]
    events = [e for e in read_v3_stream(io.BytesIO(header + b"\n" + b"\n".join(rows[:500])), "seed", POOL)
              if type(e) is not ev.InputRejected]
    header, rows = c["v2"]
    events += [e for e in read_v2_stream(io.BytesIO(header + b"\n" + b"\n".join(rows[:200])), "seed",
                                         lambda b: MIN_TS + b, PAIR) if type(e) is not ev.InputRejected]
    events.append(ev.InputRejected(ts=MIN_TS, source="fuzz", origin="x:row 1", reason="r", raw="\u00e9\x00"))
    return [(codec.topic(type(e)), codec.encode(e)) for e in events]


CODEC_TOPICS = codec.stored_versions() + [
    "V3Swapped.v9", "Nope.v1", "V3Swapped", "V3Swapped.vx", ""]
BODY_TOKENS = [b"-1", b"-9999999999999999999999", b"1" * 5000, b"1e400", b"null", b"true", b"[]", b"{}", b'"\xff"',
               b'"\\ud800"', b'"\\u0000"', b"[" * 100, b"]", b",", b'"1.5"', b"1.5", b"NaN", b'"', b"0x1"]


def fuzz_codec(rng: random.Random, counts: FuzzCounts, seeds: list[tuple[str, bytes]]) -> None:
    stored_topic, body = rng.choice(seeds)
    b = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        pos = rng.randrange(len(b) + 1)
        if op < 0.3 and b:
            b[pos % len(b)] = rng.randrange(256)
        elif op < 0.6:
            b[pos:pos] = rng.choice(BODY_TOKENS)
        elif op < 0.8:
            del b[pos:pos + rng.randint(1, 10)]
        else:  # replace one JSON value between commas
            j = b.find(b",", pos)
            k = b.find(b",", j + 1) if j >= 0 else -1
            if j >= 0 and k > j:
                b[j + 1:k] = rng.choice(BODY_TOKENS)
    if rng.random() < 0.2:
        stored_topic = rng.choice(CODEC_TOPICS)
    counts.inputs += 1
    counts.codec_inputs += 1
    counts.by_target["codec"] += 1
    try:
        codec.decode(stored_topic, bytes(b))
        counts.codec_decoded += 1
    except codec.SchemaError:
        counts.codec_rejected += 1
    except Exception as e:  # noqa: BLE001
        counts.escaped += 1
        counts.note(f"codec raised {type(e).__name__}: {e} on {stored_topic} {bytes(b)[:200]!r}")


# Rejection classes the issue named, counted by the script's summary.
NAMED = ("topics is not a list", "outside N..N", "digits) is larger", "negative", "not UTF-N", "expected N fields",
         "time runs backwards", "has two times", "is not after")
SHARES = {"v3": 0.45, "v2": 0.25, "codec": 0.30}


def run_campaign(budget: int, seed: int = 1, data: Path | None = None,
                 progress: Callable[[FuzzCounts], None] | None = None) -> FuzzCounts:
    """Feed about ``budget`` generated inputs (45% V3 rows, 25% V2 rows, 30% codec bodies)."""
    rng = random.Random(seed)
    c = corpus(data)
    bodies = codec_seeds(c)
    counts = FuzzCounts()
    next_report = 100_000
    while counts.inputs < budget:
        target = min(SHARES, key=lambda t: counts.by_target[t] / SHARES[t])  # the one furthest below its share
        if target == "codec":
            fuzz_codec(rng, counts, bodies)
        else:
            fuzz_reader(rng, counts, target, *c[target])
        if progress and counts.inputs >= next_report:
            progress(counts)
            next_report += 100_000
    return counts


# ----------------------------------------------------------------------------- the Aave v3 Pool-log reader

AAVE_FILE = ("aave-v3-polygon-2024-01-06/"
             "polygon-aave_v3-0x7ceb23fd6bc0add59e62ac25578270cff1b9f619-2024-01-06.raw.csv")
AAVE_HEADER = b"block_number,block_timestamp,transaction_hash,transaction_index,log_index,topics,data"


def synthetic_aave_rows(n: int = 60) -> list[bytes]:
    """Rows of every modelled Pool event, when the shared day is absent (encoded from the ABI)."""
    weth, user, ray = "0x7ceb23fd6bc0add59e62ac25578270cff1b9f619", "0x" + "a7" * 20, 10**27
    kinds = [("ReserveDataUpdated", dict(reserve=weth, liquidityRate=10**25, stableBorrowRate=0, variableBorrowRate=3 * 10**25,
                                         liquidityIndex=ray, variableBorrowIndex=ray)),
             ("Supply", dict(reserve=weth, user=user, onBehalfOf=user, amount=10**18, referralCode=0)),
             ("Withdraw", dict(reserve=weth, user=user, to=user, amount=5)),
             ("Borrow", dict(reserve=weth, user=user, onBehalfOf=user, amount=7, interestRateMode=2, borrowRate=1,
                             referralCode=0)),
             ("Repay", dict(reserve=weth, user=user, repayer=user, amount=3, useATokens=False)),
             ("LiquidationCall", dict(collateralAsset=weth, debtAsset=user, user=user, debtToCover=1,
                                      liquidatedCollateralAmount=2, liquidator=user, receiveAToken=True)),
             ("ReserveUsedAsCollateralEnabled", dict(reserve=weth, user=user)),
             ("FlashLoan", dict(target=user, initiator=user, asset=weth, amount=9, interestRateMode=0, premium=1,
                                referralCode=0)),
             ("UserEModeSet", dict(user=user, categoryId=1))]
    return [encode_row(*kinds[i % len(kinds)], block=51986202 + i // 3, log_index=i, tx="0x" + f"{i:064x}",
                       time=f"2024-01-06 00:{i // 3 // 30:02d}:{i // 3 * 2 % 60:02d}").encode() for i in range(n)]


def aave_corpus(data: Path | None = None) -> tuple[bytes, list[bytes]]:
    path = (data or data_dir()) / AAVE_FILE
    return seed_lines(path) if path.is_file() else (AAVE_HEADER, synthetic_aave_rows())


def _aave_problem(out: list[ev.Event], rows: int) -> str | None:
    """The reader's promises: one output per row, events in range and codec-safe, (block, log index)
    rising and times not falling among the events."""
    header_rejected = bool(out) and type(out[0]) is ev.InputRejected and out[0].origin.endswith(":header")
    if len(out) != (1 if header_rejected else rows):
        return f"{len(out)} outputs for {rows} rows"
    good = [e for e in out if type(e) is not ev.InputRejected]
    for a, b in zip(good, good[1:]):
        if (b.block, b.log_index) <= (a.block, a.log_index) or b.ts < a.ts:  # type: ignore[attr-defined]
            return "Aave events out of (block, log index, time) order"
    for e in good:
        if (problem := _check_event(e)) is not None:
            return problem
    return None


def fuzz_aave(rng: random.Random, counts: FuzzCounts, header: bytes, seeds: list[bytes]) -> None:
    """One small mutated file through the Aave reader: nothing may escape, every promise must hold."""
    start, n = rng.randrange(len(seeds)), rng.randint(1, 12)
    blob = header + b"\n" + b"\n".join(mutate_line(rng, seeds[(start + i) % len(seeds)], seeds) for i in range(n)) + b"\n"
    counts.inputs, counts.files, counts.by_target["aave"] = counts.inputs + n, counts.files + 1, counts.by_target["aave"] + n
    try:
        out = list(read_aave_stream(io.BytesIO(blob), "fuzz.raw.csv", "polygon"))
        problem = _aave_problem(out, _nonblank_rows(blob))
    except Exception as e:  # noqa: BLE001 - the point: nothing may escape
        counts.escaped += 1
        counts.note(f"aave reader raised {type(e).__name__}: {e} on {blob[:300]!r}\n{traceback.format_exc(limit=3)}")
        return
    rejected = [e for e in out if type(e) is ev.InputRejected]
    counts.rejections += len(rejected)
    counts.events += len(out) - len(rejected)
    counts.reasons.update(reason_kind(e.reason) for e in rejected)
    if problem is not None or not all(e.reason and e.origin for e in rejected):
        counts.invariant_failures += 1
        counts.note(f"aave: {problem or 'rejection without reason/origin'}: {blob[:300]!r}")


def run_aave_campaign(budget: int, seed: int = 1, data: Path | None = None) -> FuzzCounts:
    """About ``budget`` mutated rows of the Aave v3 Pool-log day (or synthetic rows) through its reader."""
    rng = random.Random(seed)
    header, seeds = aave_corpus(data)
    counts = FuzzCounts()
    while counts.inputs < budget:
        fuzz_aave(rng, counts, header, seeds)
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--aave-inputs", type=int, default=100_000, help="rows through the Aave v3 Pool-log reader")
    args = ap.parse_args()
    t0 = time.perf_counter()
    source = data_dir() if (data_dir() / V3_FILE).is_file() else "the repository's synthetic samples"
    print(f"fuzzing {args.inputs:,} inputs, seed {args.seed}, rows from {source}", flush=True)
    counts = run_campaign(args.inputs, args.seed, progress=lambda c: print(
        f"  {c.inputs:,} inputs, {c.escaped} escaped, {time.perf_counter() - t0:.0f}s", flush=True))
    for line in counts.lines():
        print(line)
    named = {k: sum(v for r, v in counts.reasons.items() if k in r) for k in NAMED}
    print("named classes: " + "; ".join(f"{k} x{v:,}" for k, v in named.items()))
    print(f"rejection reason kinds: {len(counts.reasons)}; most common: "
          + "; ".join(f"{k} x{v:,}" for k, v in counts.reasons.most_common(15)))
    print(f"{time.perf_counter() - t0:.0f}s")
    aave = run_aave_campaign(args.aave_inputs, args.seed)
    print("aave-v3-logs reader: " + "; ".join(aave.lines()))
    print(f"{time.perf_counter() - t0:.0f}s")
    sys.exit(1 if counts.escaped or counts.invariant_failures or aave.escaped or aave.invariant_failures else 0)


if __name__ == "__main__":
    main()
