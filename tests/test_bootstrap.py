"""One place builds a run (``runtime.bootstrap.build_run``), and the loop's one gateway channel:
reports are fed in order and never re-entrantly, intents leave only once durable."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tapedeck.adapters.eventlog import EventLog, Manifest
from tapedeck.cli import main
from tapedeck.domain import events as ev
from tapedeck.domain.engine import Engine
from tapedeck.domain.ports import EventStore, Gateway, Source
from tapedeck.domain.risk import Intent, RiskGate
from tapedeck.domain.strategies import build_engine
from tapedeck.runtime.bootstrap import BuildError, NotBuiltYet, build_run, store_path
from tapedeck.runtime.loop import Loop
from tapedeck.runtime.verify import verify
from tests.conftest import SPREAD_CONFIG, quote

RISK = {"default_max_notional": 10**12, "default_max_outstanding": 10**13}


class TwoOrders:
    """Test-only: two intents on every quote."""

    name = "two"
    handles = (ev.QuoteUpdated,)

    def on_event(self, e: Any, state: Any) -> list[Intent]:
        return [Intent(self.name, e.venue, e.instrument, side, 1, 1) for side in ("buy", "sell")]


class EagerGateway:
    """Test-only: reports ack and fill inside ``submit``, after checking the intent is committed."""

    def __init__(self, log: EventLog):
        self.log, self.report, self.seen_durable = log, None, []

    def bind(self, report: Any) -> None:
        self.report = report

    def submit(self, intent: ev.OrderIntended) -> None:
        self.seen_durable.append(self.log.last_seq() >= intent.seq)  # read back from the database
        common = dict(ts=intent.ts, source="eager", cause=intent.seq, intent=intent.seq, venue=intent.venue)
        self.report(ev.OrderAcknowledged(**common, order_id=f"o{intent.seq}"))  # type: ignore[misc]
        self.report(ev.OrderFilled(**common, amount=1, notional=1, fee=0))  # type: ignore[misc]


def test_reports_during_submit_are_fed_after_the_decisions_in_order(tmp_path: Path) -> None:
    log = EventLog.create(tmp_path / "run.db", Manifest(run_id="", mode="test"))
    gateway = EagerGateway(log)
    assert isinstance(gateway, Gateway) and isinstance(log, EventStore)
    engine = Engine([TwoOrders()], RiskGate.from_config(RISK))
    Loop(engine, log, gateway).run([quote(1, "a", "100", "101"), quote(2, "a", "100", "101")])
    log.close(ended="clean")
    got = [(type(e).__name__, e.cause) for e in EventLog.open(tmp_path / "run.db").events()]
    # not re-entrant: both intents of a quote are decided before any report of the first is fed
    assert got == [("QuoteUpdated", 0), ("OrderIntended", 1), ("OrderIntended", 1),
                   ("OrderAcknowledged", 2), ("OrderFilled", 2), ("OrderAcknowledged", 3), ("OrderFilled", 3),
                   ("QuoteUpdated", 0), ("OrderIntended", 8), ("OrderIntended", 8),
                   ("OrderAcknowledged", 9), ("OrderFilled", 9), ("OrderAcknowledged", 10), ("OrderFilled", 10)]
    assert gateway.seen_durable == [True] * 4  # each intent was committed before it left
    assert verify(EventLog.open(tmp_path / "run.db"), Engine([TwoOrders()], RiskGate.from_config(RISK))).ok


def source_log(path: Path) -> EventLog:
    log = EventLog.create(path, Manifest(run_id="", mode="import", sources=["test:quotes"]))
    for e in [quote(1, "a", "100", "101"), quote(2, "b", "102", "103"), quote(3, "b", "99", "100")]:
        log.append(e)
    log.close(ended="clean")
    return EventLog.open(path)


def test_replay_builds_a_paper_run_with_its_parent_and_sources(tmp_path: Path) -> None:
    src = source_log(tmp_path / "day.db")
    stats = build_run("replay", SPREAD_CONFIG, out=f"sqlite:///{tmp_path / 'run.db'}", source=src).run()
    src.close()
    run = EventLog.open(tmp_path / "run.db")
    m = run.manifest
    assert (m.mode, m.ended, m.parent, m.sources) == ("replay", "clean", str(tmp_path / "day.db"), ["test:quotes"])
    assert (m.started_ts, m.ended_ts) == (1, 3) and stats.inputs == 3 and stats.decisions >= 1
    assert verify(run, build_engine(m.config)).ok


def test_paper_takes_any_pull_source(tmp_path: Path) -> None:
    tape = [quote(1, "a", "100", "101"), quote(2, "b", "102", "103")]
    assert isinstance(tape, Source)
    build_run("paper", SPREAD_CONFIG, out=tmp_path / "p.db", source=tape, sources=["tape:test"]).run()
    m = EventLog.open(tmp_path / "p.db").manifest
    assert (m.mode, m.sources, m.ended) == ("paper", ["tape:test"], "clean")


def test_modes_and_stores_not_built_yet_say_where_they_come_from(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="live settings"):  # built (issue 13): it needs its live settings
        build_run("live", SPREAD_CONFIG, out=tmp_path / "l.db")
    with pytest.raises(BuildError, match="issue 13"):
        build_run("paper", SPREAD_CONFIG, out=tmp_path / "p.db")  # no source given
    with pytest.raises(BuildError, match="unknown run mode 'backtest'"):
        build_run("backtest", SPREAD_CONFIG, out=tmp_path / "b.db")
    with pytest.raises(NotBuiltYet, match="issue 14"):
        build_run("replay", SPREAD_CONFIG, out="mysql://db/runs", source=[])
    with pytest.raises(BuildError, match="a PostgreSQL run, not a file"):  # postgresql:// is a store (issue 14)
        store_path("postgresql://db/runs?run=a")
    assert store_path("sqlite:///tmp/x.db") == Path("/tmp/x.db") and store_path("runs/x.db") == Path("runs/x.db")
    assert not list(tmp_path.iterdir())  # nothing was created by a run that could not be built


def test_a_replay_never_writes_over_its_own_source(tmp_path: Path) -> None:
    source_log(tmp_path / "day.db").close()
    before = (tmp_path / "day.db").read_bytes()
    r = CliRunner().invoke(main, ["replay", str(tmp_path / "day.db"), "--out", str(tmp_path / "day.db"), "--force"])
    assert r.exit_code == 2 and "is the log being replayed" in r.output and "Traceback" not in r.output
    assert (tmp_path / "day.db").read_bytes() == before
    (tmp_path / "link.db").symlink_to(tmp_path / "day.db")
    r = CliRunner().invoke(main, ["replay", str(tmp_path / "link.db"), "--out", str(tmp_path / "day.db"), "--force"])
    assert r.exit_code == 2 and "is the log being replayed" in r.output
    assert len(list(EventLog.open(tmp_path / "day.db").events())) == 3


def test_the_configs_store_table_sets_the_commit_window(tmp_path) -> None:
    """``[store] max_delay_ms`` reaches the run's log (the bound on what a kill can lose), and the
    schema refuses a window that is not a positive whole number of milliseconds."""
    import copy

    from tapedeck.runtime.bootstrap import build_run
    from tapedeck.runtime.config_model import ConfigInvalid, validate_config
    from tests.conftest import SPREAD_CONFIG

    src = EventLog.create(tmp_path / "day.db", Manifest(run_id="", mode="import"))
    src.append(quote(1, "a", "10", "11"))
    src.close(ended="clean")
    config = {**copy.deepcopy(SPREAD_CONFIG), "store": {"max_delay_ms": 35}}
    day = EventLog.open(tmp_path / "day.db")
    run = build_run("replay", validate_config(config, "cfg"), out=tmp_path / "run.db", source=day)
    assert run.store.max_delay_ms == 35
    run.run()
    day.close()
    default = build_run("replay", SPREAD_CONFIG, out=tmp_path / "run2.db", source=EventLog.open(tmp_path / "day.db"))
    assert default.store.max_delay_ms == 200
    default.run()
    for bad in (0, -5, "50", 2.5):
        with pytest.raises(ConfigInvalid, match="cfg: store.max_delay_ms"):
            validate_config({**SPREAD_CONFIG, "store": {"max_delay_ms": bad}}, "cfg")
