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
