"""The live runner in process, with the in-memory fakes of ``tests/test_live_runner_fakes.py``
plugged in by import path (as the real adapters plug in by name): what it records verifies, a dead
source task is restarted and recorded, timers fire at their event time, a restart resumes the same
run (no seq twice, sources restored) and reconciles what a crash left open, and an unclean log it
cannot reconcile is refused in one line. Waits are on conditions (bounded), never on durations."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable

import pytest

from tapedeck.adapters.eventlog import EventLog, Manifest
from tapedeck.domain import events as ev
from tapedeck.live.config import load_live_config
from tapedeck.live.runner import SOURCE_KINDS, LiveRunner, RunnerError
from tapedeck.runtime.bootstrap import build_run
from tapedeck.runtime.strategy_loader import build_engine
from tapedeck.runtime.verify import verify
from tests.test_live_runner_fakes import VENUE

FAKES = "tests.test_live_runner_fakes"

BASE = f"""
[risk]
default_max_notional = 10_000_000
default_max_outstanding = 100_000_000

[[strategies]]
kind = "{FAKES}:Buyer"
name = "buyer"
every = 3

[ops]
enabled = false

[live]
restart_base_s = 0.001
restart_cap_s = 0.005
shutdown_grace_s = 2
"""
QUOTES = f"""
[[sources]]
kind = "{FAKES}:FakeQuotes"
name = "quotes"
count = {{count}}
interval_s = 0.0005
"""
GATEWAY = f"""
[[gateways]]
kind = "{FAKES}:FakeGateway"
venue = "{VENUE}"
{{extra}}
"""


def config(tmp_path: Path, text: str, name: str = "live.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def fake_run(tmp_path: Path, quotes: int = 0, head: str = BASE, gateway: str = "") -> tuple[Path, Path]:
    """A config of the fake quote source (``quotes`` of them, 0: until stopped) and the fake gateway
    (``gateway``: extra lines of its entry) under ``head``, and where its run goes."""
    return config(tmp_path, head + QUOTES.format(count=quotes) + GATEWAY.format(extra=gateway)), tmp_path / "run.db"


def settings(path: Path, **kw: Any) -> Any:
    return load_live_config(str(path), environ={}, **kw)


def drive(runner: LiveRunner, until: Callable[[LiveRunner], bool], *, before_stop: Callable[[LiveRunner], Any] | None = None,
          polls: int = 20_000) -> Any:
    """Run ``runner`` until ``until(runner)`` holds (checked every loop turn, at most ``polls`` times)."""

    async def main() -> Any:
        task = asyncio.get_running_loop().create_task(runner.run())
        for _ in range(polls):
            await asyncio.sleep(0.001)
            if task.done() or until(runner):
                break
        else:
            runner.stop()
            await task
            raise AssertionError("condition never held")
        if before_stop is not None:
            r = before_stop(runner)
            if asyncio.iscoroutine(r):
                await r
        runner.stop()
        return await task

    return asyncio.run(main())


def events(path: Path) -> list[ev.Event]:
    log = EventLog.open(path)
    try:
        return list(log.events())
    finally:
        log.close()


def verified(path: Path) -> Any:
    log = EventLog.open(path)
    try:
        log.check_manifest()
        result = verify(log, build_engine(log.manifest.config))
    finally:
        log.close()
    return result


def count(evs: list[ev.Event], t: type, **match: Any) -> int:
    return sum(1 for e in evs if type(e) is t and all(getattr(e, k) == v for k, v in match.items()))


def done_with(n_quotes: int, n_timers: int) -> Callable[[LiveRunner], bool]:
    def check(r: LiveRunner) -> bool:
        by = r.loop.stats.by_type
        return (r.sources[0][1].next_i >= n_quotes and by.get("OpportunityDetected", 0) >= n_timers
                and not r.engine.risk.open_intents)
    return check


# --------------------------------------------------------------------------- a paper run


def test_paper_run_records_every_input_decision_and_execution_and_verifies(tmp_path: Path) -> None:
    cfg, out = fake_run(tmp_path, 30)
    runner = LiveRunner(settings(cfg), out=str(out), signals=False).prepare()
    summary = drive(runner, done_with(30, 10))
    gw = runner.gateways[0][1]
    evs = events(out)
    assert [e.seq for e in evs] == list(range(1, len(evs) + 1))
    assert count(evs, ev.QuoteUpdated) == 30
    assert count(evs, ev.SourceConnectionChanged, name="quotes", state="connected") == 1
    assert count(evs, ev.OrderIntended, venue=VENUE) == 10 == len(gw.submitted)
    assert count(evs, ev.OrderFilled, source="paper:fake") == 10  # the gateway's paper fills, reported async
    # every intent was committed before it reached the gateway
    intents = {e.seq: e for e in evs if type(e) is ev.OrderIntended}
    assert [i.seq for i in gw.submitted] == sorted(intents)
    # timers fired on asyncio, never before their at_ts, each once
    requested = {e.seq: e for e in evs if type(e) is ev.TimerRequested}
    fired = [e for e in evs if type(e) is ev.TimerFired]
    assert len(requested) == len(fired) == 10
    assert all(f.ts >= requested[f.requested].at_ts for f in fired)
    assert sorted(f.requested for f in fired) == sorted(requested)
    assert all(a.ts <= b.ts for a, b in zip(evs, evs[1:]))  # one clock, never backwards
    m = EventLog.open(out).manifest
    assert (m.mode, m.ended, m.sources) == ("live", "clean", [f"{FAKES}:FakeQuotes:quotes"])
    assert m.notes["sessions"] == [{"from_seq": 1, "execute": False}]
    assert m.config["store"]["max_delay_ms"] == 5  # a live run commits every few ms unless told
    assert "sources" not in m.config and "gateways" not in m.config  # adapter parameters never recorded
    assert summary.ended == "clean" and summary.events == len(evs) and gw.closed
    result = verified(out)
    assert result.status == "verified", result.divergence and result.divergence.describe()
    assert result.decisions == count(evs, ev.OrderIntended) + count(evs, ev.TimerRequested) + 10


def test_a_venue_no_gateway_serves_is_filled_on_paper_by_the_cores_paper_gateway(tmp_path: Path) -> None:
    cfg = config(tmp_path, BASE + QUOTES.format(count=9))
    out = tmp_path / "run.db"
    runner = LiveRunner(settings(cfg), out=str(out), signals=False).prepare()
    drive(runner, done_with(9, 3))
    evs = events(out)
    fills = [e for e in evs if type(e) is ev.OrderFilled]
    assert len(fills) == 3 and {f.source for f in fills} == {"paper"}  # honest paper fills against the live book
    assert verified(out).status == "verified"


def test_build_run_live_is_the_same_runner(tmp_path: Path) -> None:
    cfg = config(tmp_path, BASE + QUOTES.format(count=3))
    s = settings(cfg, out=str(tmp_path / "b.db"))
    run = build_run("live", s.config, out=s.out, live=s)
    assert run.mode == "live" and isinstance(run.world, LiveRunner) and run.store.manifest.mode == "live"
    run.world.signals = False
    run.world.sources[0][1].interval_s = 0.0005

    async def stop_soon() -> None:
        while run.world.sources[0][1].next_i < 3:
            await asyncio.sleep(0.001)
        run.world.stop()

    async def both() -> None:
        loop = asyncio.get_running_loop()
        t = loop.create_task(stop_soon())
        await run.world.run()
        await t

    asyncio.run(both())
    assert count(events(tmp_path / "b.db"), ev.QuoteUpdated) == 3


# --------------------------------------------------------------------------- sources that die


def dying(tmp_path: Path, deaths: int, count_: int, rebuild_after: int = 3) -> str:
    return BASE.replace("shutdown_grace_s = 2", f"shutdown_grace_s = 2\nrebuild_after = {rebuild_after}") + f"""
[[sources]]
kind = "{FAKES}:DyingSource"
name = "flaky"
run_id = "{tmp_path.name}"
die_after = 3
deaths = {deaths}
count = {count_}
interval_s = 0.0005
"""


def test_a_source_task_that_dies_is_recorded_and_restarted_with_backoff(tmp_path: Path) -> None:
    out = tmp_path / "run.db"
    runner = LiveRunner(settings(config(tmp_path, dying(tmp_path, 2, 12))), out=str(out), signals=False,
                        backoff_seed=7).prepare()
    first = runner.sources[0][1]
    drive(runner, lambda r: r.sources[0][1].next_i >= 12)
    assert runner.sources[0][1] is first  # two deaths in a row: restarted, not rebuilt
    evs = events(out)
    died = [e for e in evs if type(e) is ev.SourceConnectionChanged and e.source == "live-runner"]
    assert [(d.name, d.state, d.attempt) for d in died] == [("flaky", "disconnected", 1), ("flaky", "disconnected", 2)]
    assert all("raised ConnectionError" in d.detail and "rebuilt" not in d.detail for d in died)
    assert count(evs, ev.QuoteUpdated) == 12  # nothing lost or repeated around the restarts
    assert runner.restarts == {"flaky": 2}
    assert runner.health()["sources"]["flaky"]["restarts"] == 2
    raw = out.read_bytes()
    assert b"SECRET-IN-URL" not in raw  # the exception's message (a URL with credentials) is never recorded
    assert verified(out).status == "verified"


def test_repeated_deaths_rebuild_the_adapter_and_restore_it_from_the_log(tmp_path: Path) -> None:
    out = tmp_path / "run.db"
    runner = LiveRunner(settings(config(tmp_path, dying(tmp_path, 5, 24, rebuild_after=2))), out=str(out),
                        signals=False, backoff_seed=3).prepare()
    first = runner.sources[0][1]
    drive(runner, lambda r: r.sources[0][1].next_i >= 24)
    now = runner.sources[0][1]
    assert now is not first and now.restored_from is not None and now.restored_from > 0
    evs = events(out)
    died = [e for e in evs if type(e) is ev.SourceConnectionChanged and e.source == "live-runner"]
    assert len(died) == 5
    assert ["rebuilt from its config and restored from the log" in d.detail for d in died] == \
        [False, True, False, True, False]
    bids = [e.bid for e in evs if type(e) is ev.QuoteUpdated]
    assert len(bids) == 24 == len(set(bids))  # each rebuilt adapter went on after the log's last quote
    assert verified(out).status == "verified"


def test_a_source_that_emits_what_is_not_an_input_gets_a_recorded_rejection(tmp_path: Path) -> None:
    cfg, out = fake_run(tmp_path, 0)
    runner = LiveRunner(settings(cfg), out=str(out), signals=False).prepare()
    emit = runner.emit_for("quotes")
    emit(ev.OrderFilled(ts=1, intent=1, venue=VENUE, amount=1, notional=1, fee=0))
    emit({"not": "an event"})  # type: ignore[arg-type]
    runner.close()
    got = [(type(e).__name__, e.origin, e.reason) for e in events(out)]
    assert got == [("InputRejected", "source quotes", "a source emits input events, not OrderFilled (execution)"),
                   ("InputRejected", "source quotes", "a source emits input events, not dict")]
    assert verified(out).status == "verified"


def test_an_adapter_kind_resolves_by_registered_name_or_import_path(tmp_path: Path) -> None:
    import importlib.util

    assert SOURCE_KINDS["evm"] == "tapedeck.live.runner:evm_source"  # a (spec, ctx) factory per real adapter
    text = BASE + '[[sources]]\nkind = "nosuch"\n'
    with pytest.raises(RunnerError, match=r"sources\[0\] \(nosuch\): unknown kind 'nosuch' \(known: binance, evm"):
        LiveRunner(settings(config(tmp_path, text)), out=str(tmp_path / "x.db"), signals=False).prepare()
    text = BASE + f'[[sources]]\nkind = "{FAKES}:FakeQuotes"\nbogus = 1\n'
    with pytest.raises(RunnerError, match="unexpected keyword argument 'bogus'"):
        LiveRunner(settings(config(tmp_path, text)), out=str(tmp_path / "x.db"), signals=False).prepare()
    if importlib.util.find_spec("tapedeck.live.evm_source") is None:  # until the EVM adapter is merged
        text = BASE + '[[sources]]\nkind = "evm"\nchain = "anvil"\nws_url = "ws://127.0.0.1:1"\n'
        with pytest.raises(RunnerError, match=r"kind 'evm' needs tapedeck\.live\.evm_source, which is not installed"):
            LiveRunner(settings(config(tmp_path, text)), out=str(tmp_path / "x.db"), signals=False).prepare()
    assert not (tmp_path / "x.db").exists()  # a bad adapter entry leaves no run behind


def test_an_adapter_config_error_names_the_entry_once(tmp_path: Path) -> None:
    pytest.importorskip("tapedeck.live.evm_gateway")
    gw = '[[gateways]]\nkind = "evm"\nvenues = ["anvil:swap"]\nchain = "anvil"\nrpc_url = "http://127.0.0.1:1"\n'
    with pytest.raises(RunnerError) as e:  # named by its kind: "(evm)" once, not "(evm) (evm)"
        LiveRunner(settings(config(tmp_path, BASE + gw)), out=str(tmp_path / "x.db"), signals=False).prepare()
    assert str(e.value) == (f"{tmp_path / 'live.toml'}: gateways[0] (evm): sender is required in paper mode "
                            f"without a key (the executors' owner)")
    with pytest.raises(RunnerError) as e:  # named otherwise: the kind is said too
        LiveRunner(settings(config(tmp_path, BASE + gw + 'name = "node"\n')), out=str(tmp_path / "x.db"),
                   signals=False).prepare()
    assert str(e.value).startswith(f"{tmp_path / 'live.toml'}: gateways[0] (node) (kind evm): sender is required")


def test_the_three_ways_an_adapter_is_built(tmp_path: Path) -> None:
    from tapedeck.live.base import Clock
    from tapedeck.live.config import AdapterSpec
    from tapedeck.live.runner import AdapterContext, build_adapter

    ctx = AdapterContext("q", Clock(), False, state=None, config={}, environ={"X": "1"})
    by_class = build_adapter(AdapterSpec(f"{FAKES}:FakeQuotes", "q", {"count": 2}), {}, ctx, "w")
    assert (by_class.name, by_class.count, by_class.clock) == ("q", 2, ctx.clock)  # the context it names
    made = build_adapter(AdapterSpec("mine", "q", {"count": 3}), {"mine": f"{FAKES}:quotes_factory"}, ctx, "w: x")
    assert (made.name, made.count, made.where) == ("q", 3, "w: x")  # a (spec, ctx) factory


# --------------------------------------------------------------------------- resume


def test_a_restart_with_the_same_out_resumes_the_run(tmp_path: Path) -> None:
    cfg, out = fake_run(tmp_path)
    first = LiveRunner(settings(cfg), out=str(out), signals=False).prepare()
    drive(first, lambda r: r.sources[0][1].next_i >= 12 and not r.engine.risk.open_intents)
    n1 = len(events(out))
    second = LiveRunner(settings(cfg), out=str(out), signals=False).prepare()
    assert second.resumed
    # the run's numbers include the first session's (read back from its events), its connections do not
    assert second.metrics.recorded == n1
    intended = second.metrics.intents[(VENUE, "intended")]
    assert intended == count(events(out), ev.OrderIntended) > 0
    assert second.health()["sources"]["quotes"]["connected"] is False
    src = second.sources[0][1]
    drive(second, lambda r: r.sources[0][1].next_i >= src.restored_from + 9 and not r.engine.risk.open_intents)
    assert src.restored_from == count(events(out)[:n1], ev.QuoteUpdated)  # restore saw the first session's quotes
    evs = events(out)
    assert [e.seq for e in evs] == list(range(1, len(evs) + 1))  # appended after the last event, no seq twice
    bids = [e.bid for e in evs if type(e) is ev.QuoteUpdated]
    assert len(bids) == len(set(bids))  # the source picked up after its checkpoint: no quote twice
    m = EventLog.open(out).manifest
    assert m.ended == "clean" and m.notes["reopened_at_seq"] == n1
    assert [s["from_seq"] for s in m.notes["sessions"]] == [1, n1 + 1]
    assert verified(out).status == "verified"  # one run, both sessions, every decision the same


def _crash(runner: LiveRunner) -> None:
    """Leave the log as a killed process would: what was committed stays, nothing is closed."""
    runner.store.flush()
    runner.store._stop.set()
    runner.store._writer.release()
    runner._closed = True  # the runner's own close is skipped


def test_resume_after_a_crash_closes_paper_intents_left_open_and_reschedules_timers(tmp_path: Path) -> None:
    text = BASE.replace("every = 3", "every = 3\ntimer_ms = 600000") + QUOTES.format(count=0) + GATEWAY.format(
        extra="hold = true")
    cfg = config(tmp_path, text)
    out = tmp_path / "run.db"
    first = LiveRunner(settings(cfg), out=str(out), signals=False).prepare()
    drive(first, lambda r: len(r.engine.risk.open_intents) >= 2, before_stop=_crash)
    assert EventLog.open(out).manifest.ended == "open"
    held = sorted(first.engine.risk.open_intents)
    text2 = text.replace("hold = true", "")
    second = LiveRunner(settings(config(tmp_path, text2, "live.toml")), out=str(out), signals=False).prepare()
    assert any("closed" in n for n in second.notes)
    assert not set(held) & set(second.engine.risk.open_intents)
    assert len(second._prepared_timers) >= 2  # the first session's pending timers, to fire again
    drive(second, lambda r: r.sources[0][1].next_i >= r.sources[0][1].restored_from + 3)
    evs = events(out)
    closed = [e for e in evs if type(e) is ev.OrderFailed and e.intent in held]
    assert len(closed) == len(held) and all("closed on resume" in e.reason for e in closed)
    m = EventLog.open(out).manifest
    assert m.ended == "clean" and m.notes["recovered_at_seq"] > 0
    assert verified(out).status == "verified"


def test_resume_records_the_decisions_a_crash_left_unrecorded_and_never_sends_them(tmp_path: Path) -> None:
    cfg, out = fake_run(tmp_path)
    s = settings(cfg)
    # a log whose last input (the 3rd quote: the buyer's intent and timer) lost its decisions in a crash
    engine = build_engine(s.config)
    log = EventLog.create(out, Manifest(run_id="", mode="live", config=s.config,
                                        notes={"sessions": [{"from_seq": 1, "execute": False}]}))
    src_quote = __import__(FAKES, fromlist=["FakeQuotes"]).FakeQuotes("quotes", lambda: 10**18)
    for i in range(3):
        e = log.append(src_quote.quote(i))
        decisions = engine.handle(e)
        if i < 2:
            for d in decisions:
                engine.decided(log.append(d))
    assert len(decisions) == 2
    log.flush()
    log._stop.set()
    log._writer.release()
    runner = LiveRunner(s, out=str(out), signals=False).prepare()
    assert runner.resumed and any("stopped before recording" in n for n in runner.notes)
    drive(runner, lambda r: r.loop.stats.by_type.get("OpportunityDetected", 0) >= 1)
    evs = events(out)
    assert [type(e).__name__ for e in evs[3:6]] == ["OrderIntended", "TimerRequested", "OrderFailed"]
    assert "never sent" in evs[5].reason and evs[5].intent == evs[3].seq
    assert runner.gateways[0][1].submitted == [] or all(i.seq != evs[3].seq for i in runner.gateways[0][1].submitted)
    assert verified(out).status == "verified"


def test_resume_hands_open_executed_intents_to_the_gateways_reconcile_or_refuses(tmp_path: Path) -> None:
    text = BASE.replace("default_max_outstanding = 100_000_000", "default_max_outstanding = 100_000_000\n"
                        "daily_loss_limit = 50_000_000\n[risk.venues.fakex]\nmax_notional = 5_000_000") \
        + QUOTES.format(count=0) + GATEWAY.format(extra="hold = true")
    env = {"TAPEDECK_PRIVATE_KEY": "0x" + "11" * 32}
    out = tmp_path / "run.db"
    first = LiveRunner(settings(config(tmp_path, text)), out=str(out), execute=True, environ=env,
                       signals=False).prepare()
    drive(first, lambda r: len(r.engine.risk.open_intents) >= 1, before_stop=_crash)
    before = out.read_bytes()
    refuse = text.replace("hold = true", "hold = true\ncan_reconcile = false")
    with pytest.raises(RunnerError, match=r"intent\(s\) sent with --execute have no recorded outcome .* cannot "
                                          r"reconcile"):
        LiveRunner(settings(config(tmp_path, refuse)), out=str(out), execute=True, environ=env,
                   signals=False).prepare()
    assert out.read_bytes() == before and EventLog.open(out).manifest.ended == "open"  # refused: left as it was
    again = LiveRunner(settings(config(tmp_path, text)), out=str(out), execute=True, environ=env,
                       signals=False).prepare()
    open_before = sorted(again.engine.risk.open_intents)
    drive(again, lambda r: not set(open_before) & set(r.engine.risk.open_intents))
    assert again.gateways[0][1].reconciled == open_before
    assert verified(out).status == "verified"


def test_a_gateway_that_restores_from_the_log_settles_open_executed_intents_itself(tmp_path: Path) -> None:
    text = BASE.replace("default_max_outstanding = 100_000_000", "default_max_outstanding = 100_000_000\n"
                        "daily_loss_limit = 50_000_000\n[risk.venues.fakex]\nmax_notional = 5_000_000") \
        + QUOTES.format(count=0) + GATEWAY.format(extra="hold = true").replace("FakeGateway", "RestoringGateway")
    env = {"TAPEDECK_PRIVATE_KEY": "0x" + "22" * 32}
    out = tmp_path / "run.db"
    first = LiveRunner(settings(config(tmp_path, text)), out=str(out), execute=True, environ=env,
                       signals=False).prepare()
    drive(first, lambda r: len(r.engine.risk.open_intents) >= 2, before_stop=_crash)
    again = LiveRunner(settings(config(tmp_path, text.replace("hold = true", ""))), out=str(out), execute=True,
                       environ=env, signals=False).prepare()
    held = sorted(again.engine.risk.open_intents)
    drive(again, lambda r: not set(held) & set(r.engine.risk.open_intents))
    gw = again.gateways[0][1]
    assert gw.restored == held and gw.started and gw.closed
    evs = events(out)
    assert all(any(type(e) is ev.OrderFailed and e.intent == h and e.reason.startswith("restored") for e in evs)
               for h in held)
    assert verified(out).status == "verified"


def test_resume_refuses_what_it_cannot_reconcile_in_one_line(tmp_path: Path) -> None:
    cfg = config(tmp_path, BASE + QUOTES.format(count=6))
    out = tmp_path / "run.db"
    drive(LiveRunner(settings(cfg), out=str(out), signals=False).prepare(), done_with(6, 2))
    changed = config(tmp_path, (BASE + QUOTES.format(count=6)).replace("every = 3", "every = 2"), "changed.toml")
    with pytest.raises(RunnerError, match=r"recorded config differs from .*changed.toml in strategies"):
        LiveRunner(settings(changed), out=str(out), signals=False).prepare()
    # another run's log
    from tests.conftest import SPREAD_CONFIG, quote

    paper = tmp_path / "paper.db"
    build_run("paper", SPREAD_CONFIG, out=paper, source=[quote(1, "a", "1", "2")], sources=["t"]).run()
    with pytest.raises(RunnerError, match="it is a paper run, not a live one"):
        LiveRunner(settings(cfg), out=str(paper), signals=False).prepare()
    # damaged bytes
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a log at all" * 100)
    with pytest.raises(RunnerError, match="cannot resume .*bad.db"):
        LiveRunner(settings(cfg), out=str(bad), signals=False).prepare()
    # a second runner while the first holds the log
    holder = LiveRunner(settings(cfg), out=str(out), signals=False).prepare()
    try:
        with pytest.raises(RunnerError, match="another writer"):
            LiveRunner(settings(cfg), out=str(out), signals=False).prepare()
    finally:
        holder.close()


def test_every_refusal_is_one_line(tmp_path: Path) -> None:
    cfg = config(tmp_path, BASE + QUOTES.format(count=3))
    out = tmp_path / "run.db"
    drive(LiveRunner(settings(cfg), out=str(out), signals=False).prepare(), lambda r: r.sources[0][1].next_i >= 3)
    changed = config(tmp_path, (BASE + QUOTES.format(count=3)).replace("every = 3", "every = 4"), "c.toml")
    for attempt in (lambda: LiveRunner(settings(changed), out=str(out), signals=False).prepare(),
                    lambda: LiveRunner(settings(cfg), out=str(out), execute=True, environ={}, signals=False).prepare()):
        with pytest.raises(RunnerError) as info:
            attempt()
        assert "\n" not in str(info.value) and str(info.value)
