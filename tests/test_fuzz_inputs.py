"""The fuzz campaign at a small budget (``benchmarks/bench_fuzz.py`` runs >= 1,000,000 inputs): mutated
real rows and stored bodies through the V3 reader, the V2 reader and the codec. Nothing escapes,
every reader output keeps its invariants, and the campaign shows it exercised what it claims."""
from __future__ import annotations

import os

import pytest

from benchmarks.bench_fuzz import run_campaign

pytestmark = pytest.mark.slow

BUDGET = int(os.environ.get("TAPEDECK_FUZZ_BUDGET", "20000"))


def test_fuzz_campaign_nothing_escapes() -> None:
    c = run_campaign(BUDGET, seed=8)
    print("\n".join(c.lines()))
    assert c.escaped == 0 and c.invariant_failures == 0, c.examples
    assert c.inputs >= BUDGET
    # every target was fed, and each produced both outcomes
    assert all(c.by_target[t] >= BUDGET // 5 for t in ("v3", "v2", "codec")), c.by_target
    assert c.events > 0 and c.rejections > 0 and c.codec_decoded > 0 and c.codec_rejected > 0
    # the hostile classes the issue names were met and recorded
    seen = " | ".join(c.reasons)
    for kind in ("not UTF-N text", "NUL byte", "topics is not a list", "expected N fields, row has",
                 "bad block_timestamp", "is outside N..N", "negative", "digits) is larger", "time runs backwards",
                 "has two times", "is not after the", "bad transaction_hash", "unknown topicN", "truncated data",
                 "data is not Nx-prefixed", "header lacks column"):
        assert kind in seen, (kind, c.reasons.most_common())


AAVE_BUDGET = int(os.environ.get("TAPEDECK_FUZZ_AAVE_BUDGET", "5000"))


def test_fuzz_aave_reader_nothing_escapes() -> None:
    """Mutated rows of the Aave v3 Pool-log day (synthetic rows of every event when it is absent)."""
    from benchmarks.bench_fuzz import run_aave_campaign

    c = run_aave_campaign(AAVE_BUDGET, seed=9)
    print("\n".join(c.lines()))
    assert c.escaped == 0 and c.invariant_failures == 0, c.examples
    assert c.inputs >= AAVE_BUDGET and c.events > 0 and c.rejections > 0
    seen = " | ".join(c.reasons)
    for kind in ("not UTF-N text", "topics is not a list", "bad block_timestamp", "data is not Nx-prefixed",
                 "log (block N, log_index N) is", "truncated data"):
        assert kind in seen, (kind, c.reasons.most_common())


BINANCE_BUDGET = int(os.environ.get("TAPEDECK_FUZZ_BINANCE_BUDGET", "5000"))


def test_fuzz_binance_ws_reader_nothing_escapes(tmp_path) -> None:
    """Mutated lines of the shared Binance recording (synthetic frames of each stream when it is
    absent) through ``read_binance_ws``: every line is one event (a diff that shows a gap: two,
    its SourceStale first), nothing raises, every event keeps its invariants."""
    import gzip
    import random
    from collections import Counter

    from tapedeck.adapters.binance_ws import read_binance_ws
    from tapedeck.domain import events as ev
    from tests.conftest import data_dir

    real = data_dir() / "binance-ethusdt-ws-2024-08-08" / "spot_ethusdt_20240808.gz"
    if real.exists():
        with gzip.open(real, "rt") as f:
            seeds = [line.rstrip("\n") for _, line in zip(range(3_000), f)]
    else:
        seeds = ['1723161254024619568 {"stream":"ethusdt@bookTicker","data":{"u":35346513501,"s":"ETHUSDT",'
                 '"b":"2683.80000000","B":"3.02920000","a":"2683.81000000","A":"31.43950000"}}',
                 '1723161254036052868 {"stream":"ethusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255308,'
                 '"s":"ETHUSDT","U":35346513499,"u":35346513505,"b":[["2683.80000000","3.02920000"]],"a":[]}}',
                 '1723161254152322667 {"lastUpdateId":35346513512,"bids":[["2683.80000000","3.02920000"]],"asks":[]}',
                 '1723161254200000000 {"stream":"ethusdt@trade","data":{"e":"trade","E":1723161255400,"s":"ETHUSDT",'
                 '"t":1,"p":"2683.80000000","q":"0.10000000","T":1723161255400,"m":true,"M":true}}']
    rng = random.Random(10)
    junk = ['"', "{", "}", "[", "]", ",", ":", "-", ".", "e", "x", "\x00", "null", "1e999", "\u00e9", " "]

    def mutate(line: str) -> str:
        for _ in range(rng.randint(1, 3)):
            op = rng.randrange(6)
            i = rng.randrange(len(line) + 1)
            if op == 0:
                line = line[:i]
            elif op == 1 and line:
                line = line[:i] + line[i + 1:]
            elif op == 2:
                line = line[:i] + rng.choice(junk) + line[i:]
            elif op == 3:
                line = line.replace(rng.choice(["0", "5", "8"]), rng.choice(["a", "-", ".", "99999999999"]), 1)
            elif op == 4:
                line = line.replace('"', "", 1)
            else:
                line = line.replace(rng.choice(['"b"', '"u"', '"s"', '"m"', '"p"', '"U"']), '"z"', 1)
        return line

    lines = [mutate(rng.choice(seeds)) if rng.random() < 0.8 else rng.choice(seeds) for _ in range(BINANCE_BUDGET)]
    lines = [line.replace("\n", " ").replace("\r", " ") for line in lines]
    path = tmp_path / "spot_ethusdt_fuzz.gz"
    with gzip.open(path, "wt", encoding="utf-8", errors="surrogateescape") as f:
        f.write("\n".join(lines) + "\n")
    out = list(read_binance_ws(path))  # nothing escapes
    kinds = Counter(type(e).__name__ for e in out)
    assert len(out) - kinds["SourceStale"] == len(lines)  # one event per line, plus a gap's SourceStale
    reasons: Counter[str] = Counter()
    for e in out:
        if type(e) is ev.InputRejected:
            assert e.reason and e.origin.startswith("binance-ws:spot_ethusdt_fuzz.gz:line ")
            reasons[e.reason.split(":")[0].split(" ")[0]] += 1
        elif type(e) is ev.QuoteUpdated:
            assert min(e.bid, e.ask, e.bid_size, e.ask_size) >= 0 and e.price_decimals == 8
        elif type(e) is ev.BookDepthUpdated:
            assert all(p >= 0 and s >= 0 for p, s in e.bids + e.asks) and (e.snapshot or e.first_update <= e.last_update)
        elif type(e) is ev.TradePrinted:
            assert e.side in ("buy", "sell") and e.price >= 0 and e.size >= 0
        else:
            assert type(e) is ev.SourceStale and e.reason.startswith("depth gap")
    print(dict(kinds), reasons.most_common(12))
    assert kinds["InputRejected"] > len(lines) // 4 and kinds["QuoteUpdated"] > 0
    seen = " ".join(reasons)
    for kind in ("not", "missing", "field"):  # not JSON / not an object, missing fields, mistyped fields
        assert kind in seen, reasons.most_common()
