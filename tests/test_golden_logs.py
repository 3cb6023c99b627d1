"""Golden logs written by the code of each earlier schema version load with today's code.

The logs in ``fixtures/golden`` were written by old commits (see its README), not by this test:
each stored event must decode through both read paths (event by event, and the one-call segment
decode of replay's fast path) to the same current-version event, and round-trip at the current
schema. The counts are the logs' own (read once with the code that wrote them).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.domain import codec, events as ev

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
    "schema3/replay.db": {"OpportunityDetected.v2": 72, "OpportunitySuppressed.v1": 97, "OrderAcknowledged.v1": 72,
                          "OrderFilled.v2": 72, "OrderIntended.v3": 72, "V2ReservesSynced.v1": 15, "V3Swapped.v1": 428},
    "schema3/sim-cex-dex-dislocation.db": {
        "BlockProduced.v1": 50, "IntentRejected.v2": 11, "InventoryChanged.v1": 8, "OpportunityDetected.v2": 19,
        "OracleUpdated.v1": 6, "OrderFailed.v1": 6, "OrderFilled.v2": 2, "OrderIntended.v3": 8, "QuoteUpdated.v3": 591,
        "TransactionIncluded.v1": 16, "TransactionSubmitted.v1": 16, "V2ReservesSynced.v1": 38, "V3Swapped.v1": 48},
    "schema3/sim-eth-crash.db": {"AaveAccountObserved.v1": 273, "AaveLiquidationObserved.v1": 20, "BlockProduced.v1": 150,
                                 "OracleUpdated.v1": 68, "QuoteUpdated.v3": 1792, "V2ReservesSynced.v1": 708},
    "schema3/sim-oracle-jump.db": {"MarkPriceUpdated.v1": 687, "OracleUpdated.v1": 301, "QuoteUpdated.v3": 772},
}
for era in ("schema1-untagged", "schema1-tagged", "schema2", "schema3"):
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
        assert codec.decode(codec.topic(type(e)), codec.encode(e)) == e


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
    past = ev.OpportunityDetected.PAST[1]
    monkeypatch.setitem(ev.OpportunityDetected.PAST, 1, past._replace(upgrade=lambda d: {**d, "key": "from-v1"}))
    log = EventLog.open(p)
    try:
        fast = [e for _f, items, _s in log.typed_segments() for _t, e in items if type(e) is ev.OpportunityDetected]
        slow = [e for e in log.events() if type(e) is ev.OpportunityDetected]
    finally:
        log.close()
    assert len(fast) == 169 and fast == slow and all(e.key == "from-v1" for e in fast)


# Digests of the stored bytes as the code that wrote each log printed them (fixtures/golden/README.md).
DIGESTS = {
    "schema1-untagged/replay.db": "d11d3e594494f76f64ffab3e70ef1bc98f3c32dacc2f77445ca302cfedc1cbaf",
    "schema1-tagged/replay.db": "20cbe7c9ef6eceb33b79242cf514600c820d2e3bfa80245a38031649ae4ab054",
    "schema2/replay.db": "edb7ab6b865b94b2febbd59fe92f864f25e59cfddd173104b1962fb7c8b4dbcb",
    "schema2/sim-cex-dex-dislocation.db": "4f1db26d3fdff6c5ae5b11a6e95ee3ae205d518796a96c85b7c529bea91a4e35",
    "schema2/sim-eth-crash.db": "bdff3892139fecf1e2049d1f25e2a3f104793e8d9cbd830d7a3cb0c10f84c990",
    "schema2/sim-oracle-jump.db": "a53018e9b1b32c36cdde39c00fc83f22819f7c1cb798aaac78b74cbafefe5c43",
    "schema1-tagged/day.db": "d786cda0ff7459164dbfa4b29f3b306904e417b034d3af44fd1eb6afecbacfa7",
    "schema2/day.db": "d786cda0ff7459164dbfa4b29f3b306904e417b034d3af44fd1eb6afecbacfa7",
    "schema3/replay.db": "a34fa4f34a1f33bf13c0b501f5a67f79797c23760a4799d89834d0bf4f36201c",
    "schema3/sim-cex-dex-dislocation.db": "0a4ab9da295c47c6f90e9a68b99e9625ffa951420bf7820be93ea859f0ce0ce9",
    "schema3/sim-eth-crash.db": "95a4ffa177796a56f0e646181994feb7d3845d38a476d5e678ffa777e04c18aa",
    "schema3/sim-oracle-jump.db": "367966906b150bb0a17ab60eb10dcb3d59ed33de7228e778af26f4534c689367",
}


@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_golden_log_bytes_verify_to_the_digest_their_code_printed(name: str) -> None:
    log = _open(name)
    try:
        log.counts_by_topic()  # a full read checks every segment (old logs: contiguous, unchained)
        assert log.integrity is not None and log.integrity.digest == DIGESTS[name]
    finally:
        log.close()


@pytest.mark.parametrize("name", ["schema2/sim-eth-crash.db", "schema2/sim-oracle-jump.db", "schema2/day.db",
                                  "schema1-untagged/day.db", "schema3/sim-eth-crash.db", "schema3/sim-oracle-jump.db"])
def test_golden_runs_without_decisions_verify_in_full(name: str, tmp_path) -> None:
    import shutil

    from tapedeck.runtime.strategy_loader import build_engine
    from tapedeck.runtime.verify import verify

    shutil.copy(GOLDEN / name, tmp_path / "run.db")
    log = EventLog.open(tmp_path / "run.db")
    config = log.manifest.config or {"risk": {"default_max_notional": 1, "default_max_outstanding": 1}}
    result = verify(log, build_engine(config))
    log.close()
    assert result.ok and result.decisions == 0 and result.inputs == sum(COUNTS[name].values())


def _verify_golden(name: str, tmp_path: Path) -> Any:
    import shutil

    from tapedeck.runtime.strategy_loader import build_engine
    from tapedeck.runtime.verify import verify

    shutil.copy(GOLDEN / name, tmp_path / "run.db")
    log = EventLog.open(tmp_path / "run.db")
    try:
        return verify(log, build_engine(log.manifest.config))
    finally:
        log.close()


def test_schema3_sim_decisions_verify_with_todays_code(tmp_path) -> None:
    """The cex-dex sim 62aa107 wrote (intents at OrderIntended v3, before route/min_profit/private)
    verifies decision for decision with today's engine: the fields v4 added are not compared."""
    result = _verify_golden("schema3/sim-cex-dex-dislocation.db", tmp_path)
    assert result.status == "verified" and result.decisions == 38 and result.older_schema == 8


def test_schema3_replay_diverges_only_where_the_profit_asset_got_its_name(tmp_path) -> None:
    """62aa107 reported the arbitrage profit of the registry's USDC/WETH pools as "token0"; today the
    registry names it (USDC). Verify reports that at the first opportunity, and nothing else differs."""
    result = _verify_golden("schema3/replay.db", tmp_path)
    d = result.divergence
    assert result.status == "diverged" and d is not None and d.seq == 107
    recorded, recomputed = codec.to_builtins(d.recorded), codec.to_builtins(d.recomputed)
    assert {k for k in recorded if recorded[k] != recomputed[k]} == {"profit_token"}
    assert (recorded["profit_token"], recomputed["profit_token"]) == ("token0", "USDC")


def test_golden_decisions_changed_since_are_reported_at_their_seq(tmp_path) -> None:
    """The cex-dex sim of schema 2 decided with older code: today's cross_pool_arb sizes its trades
    by a closed form (other amounts, equal or higher profit) and names pools by id, so verify must
    report the first recorded decision as diverged, with both sides."""
    import shutil

    from tapedeck.runtime.strategy_loader import build_engine
    from tapedeck.runtime.verify import verify

    shutil.copy(GOLDEN / "schema2/sim-cex-dex-dislocation.db", tmp_path / "run.db")
    log = EventLog.open(tmp_path / "run.db")
    result = verify(log, build_engine(log.manifest.config))
    log.close()
    d = result.divergence
    assert result.status == "diverged" and d is not None and d.seq == 199 and result.decisions == 0
    assert type(d.recorded) is ev.OpportunityDetected and type(d.recomputed) is ev.OpportunityDetected
    assert d.recorded.key == "" and d.recomputed.key  # the key came with schema 2 of OpportunityDetected
    assert d.recomputed.gross_profit >= d.recorded.gross_profit


def test_decisions_stored_at_an_older_version_are_compared_on_its_fields(tmp_path) -> None:
    """A run of the spread strategy whose OpportunityDetected were stored as v1 (no ``key``), as code
    before the key wrote them: they verify on the fields v1 has; changing one of those diverges."""
    import json
    import sqlite3

    import msgspec
    from eventsourcing.persistence import StoredEvent

    from tapedeck.adapters.eventlog import SEGMENT_TOPIC, Manifest
    from tapedeck.runtime.loop import drive
    from tapedeck.runtime.strategy_loader import build_engine
    from tapedeck.runtime.verify import verify
    from tests.conftest import SPREAD_CONFIG, quote

    tape = [quote(i + 1, "ab"[i % 2], f"{100 + (i % 7)}", f"{100.5 + (i % 5)}") for i in range(60)]
    new = EventLog.create(tmp_path / "new.db", Manifest(run_id="", mode="replay", config=SPREAD_CONFIG))
    drive(tape, build_engine(SPREAD_CONFIG), new)
    new.close(ended="clean")
    with EventLog.open(tmp_path / "new.db") as run:
        events = list(run.events())
    opportunities = [e for e in events if type(e) is ev.OpportunityDetected]
    assert opportunities and all(o.key for o in opportunities)

    def old_log(name: str, change=None) -> EventLog:  # type: ignore[no-untyped-def]
        pairs = []
        for e in events:
            if type(e) is ev.OpportunityDetected:
                if change is not None and e.seq == opportunities[0].seq:
                    e = change(e)
                body = msgspec.json.decode(codec.encode(e))[:-1]  # v1: every field but the key
                pairs.append(b'["OpportunityDetected.v1",' + msgspec.json.encode(body) + b"]")
            else:
                pairs.append(b'["' + codec.topic(type(e)).encode() + b'",' + codec.encode(e) + b"]")
        log = EventLog.create(tmp_path / name, Manifest(run_id="", mode="replay", config=SPREAD_CONFIG))
        log.manifest.log_format = ""  # unchained, as code before chaining wrote it
        log.write_manifest()
        log._recorder.insert_events([StoredEvent(originator_id=log.manifest.run_id, originator_version=1,
                                                 topic=SEGMENT_TOPIC, state=b"[" + b",".join(pairs) + b"]")])
        log.close()
        with sqlite3.connect(tmp_path / name) as db:  # ended clean, as old code closed it (no seal then)
            body = json.loads(db.execute("SELECT body FROM manifest").fetchone()[0])
            db.execute("UPDATE manifest SET body = ?", (json.dumps({**body, "ended": "clean"}, sort_keys=True),))
        return EventLog.open(tmp_path / name)

    old = old_log("old.db")
    result = verify(old, build_engine(SPREAD_CONFIG))
    old.close()
    assert result.ok and result.older_schema == len(opportunities) and result.decisions == sum(
        e.KIND == ev.DECISION for e in events)
    moved = old_log("moved.db", change=lambda o: msgspec.structs.replace(o, gross_profit=o.gross_profit + 1))
    diverged = verify(moved, build_engine(SPREAD_CONFIG))
    moved.close()
    assert diverged.status == "diverged" and diverged.divergence.seq == opportunities[0].seq
