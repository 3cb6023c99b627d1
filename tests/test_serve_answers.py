"""``PoolCache.scan`` keeps an answer per question (threshold and pair, as parsed) until the state
changes (runtime/serve.py).

The same question gets the same bytes, however its body is spelled (white space, ``0.10`` or
``1e-1``): what a client sends never makes a new entry; a bad body is never kept (it is a 4xx every
time); past ``SCAN_ANSWERS`` questions the answers are still right, only no longer kept; and a fed
event that changes the opportunities changes the answer (``tests/test_serve.py`` checks that over
HTTP: ``test_a_fed_event_refreshes_the_answers``)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tapedeck.runtime import serve


@pytest.fixture(scope="module")
def cache():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import random

    import bench_arb_finder
    import bench_serve

    cache = bench_serve.cache_of_50()
    _, first, _ = bench_arb_finder.world(random.Random(1))
    for i in (0, 7, 12):  # three pools 2% off their pairs: gaps to report
        cache.feed(bench_arb_finder.moved(first[i], first[i].ts + 10**9, 1.02))
    return cache


def test_the_same_question_gets_the_kept_answer_and_a_bad_one_is_never_kept(cache) -> None:
    first = cache.scan(b'{"threshold_pct": 0.1}')
    assert json.loads(first)["count"] == sum(1 for pct, _, _ in cache.opportunities if pct >= 10**7)
    assert cache.opportunities and json.loads(cache.scan(b'{"threshold_pct": 0}'))["count"] == len(cache.opportunities)
    kept = dict(cache._scans[1])
    for i in range(100):  # the same two questions in 200 spellings: no new entry, the same bytes
        assert cache.scan(b'{"threshold_pct":' + b" " * i + b"0.1}") is first
        assert cache.scan(b'{ "threshold_pct" : 1e-1 ' + b"\n" * i + b"}") is first
    assert cache._scans[1] == kept
    assert cache.scan(b'{"threshold_pct": 0.1, "pair": "USDC-WETH"}') is not first  # another question
    for _ in range(2):
        with pytest.raises(serve.BadRequest):
            cache.scan(b'{"threshold_pct": -1}')
    assert len(cache._scans[1]) == len(kept) + 1  # a bad body is refused each time, never kept


def test_past_the_kept_answers_every_answer_is_still_right(cache) -> None:
    want = {}
    for i in range(serve.SCAN_ANSWERS + 20):
        body = json.dumps({"threshold_pct": i / 1000}).encode()
        want[body] = cache.scan(body)
    for body, answer in want.items():
        x = json.loads(body)["threshold_pct"]
        got = json.loads(cache.scan(body))
        assert cache.scan(body) == answer and got["threshold_pct"] == x
        assert got["count"] == sum(1 for pct, _, _ in cache.opportunities if pct >= round(x * 10**8))
    assert len(cache._scans[1]) == serve.SCAN_ANSWERS
