"""Replay: any recorded run verifies; a changed config or input is caught; digests are hash-seed proof."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapedeck.adapters.eventlog import EventLog, Manifest
from tapedeck.adapters.paper_gateway import PaperGateway
from tapedeck.runtime.loop import drive
from tapedeck.runtime.verify import verify
from tapedeck.cli import main
from tapedeck.domain import events as ev
from tapedeck.domain.strategies import build_engine
from tests.conftest import ROOT, SPREAD_CONFIG, quote

ACTING_CONFIG = {
    "risk": {"default_max_notional": 10**12, "default_max_outstanding": 10**13},
    "strategies": [{"kind": "spread", "name": "spread", "min_edge": "0.5"}],
}

prices = st.integers(min_value=9_000, max_value=11_000).map(lambda c: Decimal(c) / 100)
quotes = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), prices, st.integers(1, 300).map(lambda c: Decimal(c) / 100),
              st.sampled_from(["1", "0.25", "7.5"])),
    min_size=1, max_size=60,
)


def tape(items) -> list[ev.Event]:
    out = []
    for i, (venue, bid, spread, size) in enumerate(items):
        out.append(quote(1_000 + i, venue, str(bid), str(bid + spread), size))
    return out


def record(path, events, config=SPREAD_CONFIG) -> EventLog:
    log = EventLog.create(path, Manifest(run_id="", mode="replay", config=config), overwrite=True)
    engine = build_engine(config)
    drive(events, engine, log, PaperGateway.from_config(engine.state, config))
    log.close(ended="clean")
    return EventLog.open(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(quotes)
def test_replay_of_any_generated_stream_verifies(tmp_path, items) -> None:
    log = record(tmp_path / "run.db", tape(items))
    recorded = list(log.events())
    result = verify(log, build_engine(log.manifest.config))
    assert result.ok, result.divergence.describe()
    assert result.decisions == sum(1 for e in recorded if e.KIND == ev.DECISION)
    assert result.inputs == sum(1 for e in recorded if e.KIND != ev.DECISION)


def test_a_changed_threshold_diverges_at_the_first_differing_decision(tmp_path) -> None:
    events = [quote(1, "a", "100", "101"), quote(2, "b", "101.2", "103"), quote(3, "b", "102", "103")]
    log = record(tmp_path / "run.db", events)
    stricter = json.loads(json.dumps(SPREAD_CONFIG))
    stricter["strategies"][0]["min_edge"] = "5"
    result = verify(log, build_engine(stricter))
    assert not result.ok
    # seq 1, 2, 3 are quotes; seq 4 is the recorded opportunity the stricter engine does not make
    assert result.divergence.seq == 4
    assert type(result.divergence.recorded) is ev.OpportunityDetected and result.divergence.recomputed is None
    looser = json.loads(json.dumps(SPREAD_CONFIG))
    looser["strategies"][0]["min_edge"] = "0.1"
    result = verify(log, build_engine(looser))
    assert result.divergence.seq == 3 and result.divergence.recorded is None  # it decides at quote 2 already
    assert type(result.divergence.recomputed) is ev.OpportunityDetected


def test_cli_verify_succeeds_then_fails_under_a_changed_config(tmp_path) -> None:
    record(tmp_path / "run.db", [quote(1, "a", "100", "101"), quote(2, "b", "102", "103")]).close()
    runner = CliRunner()
    ok = runner.invoke(main, ["replay", str(tmp_path / "run.db"), "--verify"])
    assert ok.exit_code == 0, ok.output
    last = ok.output.strip().splitlines()[-1]
    assert last.startswith("verified 2 inputs, 1 decisions, digest ")
    cfg = tmp_path / "strict.toml"
    cfg.write_text('[risk]\ndefault_max_notional = 1000000000000\ndefault_max_outstanding = 10000000000000\n'
                   '[[strategies]]\nkind = "spread"\nname = "spread"\nmin_edge = "5"\n')
    bad = runner.invoke(main, ["replay", str(tmp_path / "run.db"), "--verify", "--config", str(cfg)])
    assert bad.exit_code == 1
    assert "diverged at seq 3" in bad.output and "OpportunityDetected" in bad.output


def _digest_in_subprocess(path, hashseed: str) -> str:
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        from tapedeck.adapters.eventlog import EventLog
        from tapedeck.runtime.verify import verify
        from tapedeck.domain.strategies import build_engine
        log = EventLog.open({str(path)!r})
        print(verify(log, build_engine(log.manifest.config)).digest)
    """)
    env = dict(os.environ, PYTHONHASHSEED=hashseed)
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout.strip()


def test_digest_is_the_same_under_different_hash_seeds_and_changes_with_one_input(tmp_path) -> None:
    events = tape([("a", Decimal("100"), Decimal("1"), "1"), ("b", Decimal("102"), Decimal("1"), "1"),
                   ("c", Decimal("99"), Decimal("0.5"), "2"), ("a", Decimal("104"), Decimal("1"), "1")])
    record(tmp_path / "one.db", events).close()
    d1 = _digest_in_subprocess(tmp_path / "one.db", "1")
    d2 = _digest_in_subprocess(tmp_path / "one.db", "4242")
    assert d1 == d2 and len(d1) == 64
    changed = list(events)
    changed[2] = quote(changed[2].ts, "c", "99", "99.6", "2")  # one ask moved by 0.1
    record(tmp_path / "two.db", changed).close()
    assert _digest_in_subprocess(tmp_path / "two.db", "1") != d1


def test_digest_does_not_depend_on_how_events_were_batched_into_segments(tmp_path) -> None:
    events = tape([("a", Decimal("100"), Decimal("1"), "1"), ("b", Decimal("102"), Decimal("1"), "1"),
                   ("c", Decimal("99"), Decimal("0.5"), "2"), ("a", Decimal("104"), Decimal("1"), "1")] * 5)
    digests = []
    for batch in (1, 3, 7, 16384):
        log = EventLog.create(tmp_path / f"b{batch}.db", Manifest(run_id="", mode="replay", config=SPREAD_CONFIG))
        log._batch = batch
        engine = build_engine(SPREAD_CONFIG)
        drive(events, engine, log, PaperGateway.from_config(engine.state, SPREAD_CONFIG))
        log.close(ended="clean")
        result = verify(EventLog.open(tmp_path / f"b{batch}.db"), build_engine(SPREAD_CONFIG))
        assert result.ok and result.decisions > 0
        digests.append(result.digest)
    assert len(set(digests)) == 1


ARB_CONFIG = {
    "risk": {"default_max_notional": 300_000 * 10**6, "default_max_outstanding": 10**13},
    "strategies": [{"kind": "cross_pool_arb", "name": "arb", "v2_pool": "pool-v2", "v3_pool": "pool-v3",
                    "min_profit": 0, "gas_units": 150_000, "gas_price_wei": 10**10, "act": True}],
}

pool_moves = st.lists(
    st.one_of(
        st.tuples(st.just("v2"), st.integers(1900, 2200), st.integers(1, 80)),
        st.tuples(st.just("v3"), st.integers(199_500, 200_500), st.integers(1, 30)),
        st.tuples(st.just("kill"), st.booleans(), st.just(0)),
    ),
    min_size=1, max_size=40,
)


def pool_tape(moves) -> list[ev.Event]:
    from tapedeck.domain.uniswap_v3 import get_sqrt_ratio_at_tick

    out: list[ev.Event] = []
    for i, (what, a, b) in enumerate(moves):
        ts = 1_000 + i
        if what == "v2":
            r0 = b * 1_000_000 * 10**6
            out.append(ev.V2ReservesSynced(ts=ts, pool="pool-v2", block=i, reserve0=r0, reserve1=r0 * 10**12 // a))
        elif what == "v3":
            sp = get_sqrt_ratio_at_tick(a) + 1
            out.append(ev.V3Swapped(ts=ts, pool="pool-v3", block=i, tx="0x", log_index=i, sender="s", recipient="r",
                                    amount0=1, amount1=-1, sqrt_price_x96=sp, liquidity=b * 10**18, tick=a))
        else:
            out.append(ev.KillSwitchSet(ts=ts, engaged=a, reason="test"))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pool_moves)
def test_replay_of_any_generated_pool_stream_with_intents_verifies(tmp_path, moves) -> None:
    log = record(tmp_path / "arb.db", pool_tape(moves), ARB_CONFIG)
    result = verify(log, build_engine(ARB_CONFIG))
    assert result.ok, result.divergence.describe()
    kinds = {type(e) for e in log.events()}
    if ev.OrderIntended in kinds:
        assert ev.OrderFilled in kinds  # the paper gateway's executions were recorded and re-fed
