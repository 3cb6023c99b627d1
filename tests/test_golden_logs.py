"""Golden logs written by the code of each earlier schema version load with today's code.

The logs in ``fixtures/golden`` were written by old commits (see its README), not by this test:
each stored event must decode through both read paths (event by event, and the one-call segment
decode of replay's fast path) to the same current-version event, and round-trip at the current
schema. The counts are the logs' own (read once with the code that wrote them).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.domain import events as ev

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden"

COUNTS = {
    "schema1-untagged/replay.db": {"OpportunityDetected.v1": 169, "OrderAcknowledged.v1": 169, "OrderFilled.v1": 169,
                                   "OrderIntended.v1": 169, "V2ReservesSynced.v1": 15, "V3Swapped.v1": 428},
    "schema1-tagged/replay.db": {"OpportunityDetected.v1": 169, "OrderAcknowledged.v1": 169, "OrderFilled.v1": 169,
                                 "OrderIntended.v1": 169, "V2ReservesSynced.v1": 15, "V3Swapped.v1": 428},
    "schema2/replay.db": {"OpportunityDetected.v1": 169, "OrderAcknowledged.v1": 169, "OrderFilled.v2": 169,
                          "OrderIntended.v2": 169, "V2ReservesSynced.v1": 15, "V3Swapped.v1": 428},
    "schema2/sim-cex-dex-dislocation.db": {
        "BlockProduced.v1": 50, "IntentRejected.v1": 11, "OpportunityDetected.v1": 19, "OracleUpdated.v1": 6,
        "OrderFailed.v1": 6, "OrderFilled.v2": 2, "OrderIntended.v2": 8, "QuoteUpdated.v2": 591,
        "TransactionIncluded.v1": 16, "TransactionSubmitted.v1": 16, "V2ReservesSynced.v1": 38, "V3Swapped.v1": 48},
    "schema2/sim-eth-crash.db": {"AaveAccountObserved.v1": 302, "AaveLiquidationObserved.v1": 20, "BlockProduced.v1": 150,
                                 "OracleUpdated.v1": 68, "QuoteUpdated.v2": 1792, "V2ReservesSynced.v1": 708},
    "schema2/sim-oracle-jump.db": {"MarkPriceUpdated.v1": 687, "OracleUpdated.v1": 301, "QuoteUpdated.v2": 772},
}
for era in ("schema1-untagged", "schema1-tagged", "schema2"):
    COUNTS[f"{era}/day.db"] = {"V2ReservesSynced.v1": 15, "V3Swapped.v1": 428}


def _open(name: str) -> EventLog:
    return EventLog.open(GOLDEN / name)


def test_every_golden_log_is_listed() -> None:
    on_disk = sorted(str(p.relative_to(GOLDEN)) for p in GOLDEN.glob("*/*.db"))
    assert on_disk == sorted(COUNTS)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_golden_log_loads_through_both_decoders_alike(name: str) -> None:
    log = _open(name)
    try:
        assert log.counts_by_topic() == COUNTS[name]
        one_by_one = list(log.events())
        fast = [e for _first, items, _state in log.typed_segments() for _topic, e in items]
    finally:
        log.close()
    assert one_by_one == fast
    assert [e.seq for e in one_by_one] == list(range(1, len(one_by_one) + 1))
    for e in one_by_one:  # today's schema, and it round-trips there
        assert ev.decode(ev.topic(type(e)), ev.encode(e)) == e


@pytest.mark.parametrize("era", ["schema1-untagged", "schema1-tagged"])
def test_version_1_intents_and_fills_take_todays_defaults(era: str) -> None:
    log = _open(f"{era}/replay.db")
    try:
        intents = [e for e in log.events() if type(e) is ev.OrderIntended]
        fills = [e for e in log.events() if type(e) is ev.OrderFilled]
    finally:
        log.close()
    assert len(intents) == 169 and all(i.target == "" and i.max_priority_fee == 0 and i.client_id == "" for i in intents)
    assert all(f.final and f.fee_asset == "" for f in fills)
    assert {f.intent for f in fills} == {i.seq for i in intents}  # the references survived the upcast


def test_schema2_quotes_load_as_version_3_without_a_venue_time() -> None:
    log = _open("schema2/sim-oracle-jump.db")
    try:
        quotes = [e for e in log.events() if type(e) is ev.QuoteUpdated]
    finally:
        log.close()
    assert len(quotes) == 772 and all(q.venue_ts == 0 and q.bid < q.ask for q in quotes)


def test_the_segment_fast_path_honours_the_stored_version(tmp_path) -> None:
    """A tagged OrderIntended.v1 body (what 4b5e517..8d012f1 wrote) decodes through the union by its
    type name alone; the fast path must see the v1 topic and upcast it like the per-event path."""
    import shutil

    p = tmp_path / "tagged.db"
    shutil.copy(GOLDEN / "schema1-tagged" / "replay.db", p)
    log = EventLog.open(p)
    try:
        pairs = [(t, e) for _f, items, _s in log.typed_segments() for t, e in items]
        per_event = list(log.events())
    finally:
        log.close()
    assert [e for _t, e in pairs] == per_event
    assert {t for t, _e in pairs if t.startswith("OrderIntended")} == {"OrderIntended.v1"}


def test_the_fast_path_applies_the_upcasters(tmp_path, monkeypatch) -> None:
    """An upcaster that changes a value must be applied whichever path reads the segment (the union
    decode alone would fill the new field with its default)."""
    import shutil

    p = tmp_path / "tagged.db"
    shutil.copy(GOLDEN / "schema1-tagged" / "replay.db", p)
    monkeypatch.setitem(ev.UPCASTERS, ("OpportunityDetected", 1), lambda d: {**d, "key": "from-v1"})
    log = EventLog.open(p)
    try:
        fast = [e for _f, items, _s in log.typed_segments() for _t, e in items if type(e) is ev.OpportunityDetected]
        slow = [e for e in log.events() if type(e) is ev.OpportunityDetected]
    finally:
        log.close()
    assert len(fast) == 169 and fast == slow and all(e.key == "from-v1" for e in fast)
