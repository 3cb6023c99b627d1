"""The stale-state proof on real data: the whole shared V2 reserves file (2024-01-01..06) with the
V3 day (2024-01-05), imported into one log and replayed through the default config. Before the
freshness contract, 393 of 437 opportunities were priced on a V3 state up to 8.5 hours old (the V3
tape ends with 2024-01-05). Now none is, and what was suppressed is recorded in the run."""
from __future__ import annotations

import pytest

from tapedeck.adapters.config_files import DEFAULT_CONFIG, load_config
from tapedeck.adapters.eventlog import EventLog, Manifest
from tapedeck.domain import codec, events as ev
from tapedeck.domain.strategies import build_engine
from tapedeck.runtime.importers import import_files
from tests.conftest import require_data

V3_FILE = "uniswap-v3-usdc-weth-2024-01-05/ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-2024-01-05.raw.csv"
V2_FILE = "uniswap-v2-usdc-weth-reserves/reserves.csv"

pytestmark = pytest.mark.slow  # two replays of ~17k events with exact arbitrage search: ~15 s


def replay(day: EventLog, config: dict, out) -> tuple[EventLog, list[tuple[ev.Event, dict[str, int]]]]:
    """Record the inputs and the engine's decisions into a new run, as the loop does (no gateway:
    detection does not depend on fills). Also returns each decision with, per pool, the event time of
    that pool's last input before it, tracked here from the inputs alone (not from engine state)."""
    engine = build_engine(config)
    run = EventLog.create(out, Manifest(run_id="", mode="replay", config=config), overwrite=True)
    last: dict[str, int] = {}
    seen = []
    for e in day.events():
        e = run.append(e)
        pool = getattr(e, "pool", None)
        if pool is not None:
            last[pool] = e.ts
        for d in engine.handle(e):
            d = run.append(d)
            engine.decided(d)
            seen.append((d, dict(last)))
    run.close(ended="clean")
    return run, seen


def test_no_opportunity_is_priced_on_state_older_than_max_age(tmp_path) -> None:
    v3, v2 = require_data(V3_FILE), require_data(V2_FILE)
    day_path = tmp_path / "day.db"
    import_files("uniswap-v3-logs", [str(v3)], day_path)
    import_files("uniswap-v2-reserves", [str(v2)], day_path, pool="0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc")
    config = load_config(DEFAULT_CONFIG)
    (strategy,) = config["strategies"]
    pools = (strategy["v2_pool"], strategy["v3_pool"])
    max_age_ns = build_engine(config).strategies[0].max_age_ns
    assert max_age_ns == 60 * 10**9  # the default: five blocks

    day = EventLog.open(day_path)
    v3_end = max(e.ts for e in day.events() if type(e) is ev.V3Swapped)
    run, decided = replay(day, config, tmp_path / "run.db")
    # the same replay without a freshness rule: what the strategy used to report
    blind_config = {**config, "strategies": [{**strategy, "max_age_s": 10**9}]}
    _, blind = replay(day, blind_config, tmp_path / "blind.db")
    day.close()

    def age(last: dict[str, int], d: ev.Event) -> int:
        return max(d.ts - last[p] for p in pools)

    detected = [(d, last) for d, last in decided if type(d) is ev.OpportunityDetected]
    suppressed = [(d, last) for d, last in decided if type(d) is ev.OpportunitySuppressed]
    assert detected and all(age(last, d) <= max_age_ns for d, last in detected)
    assert all(age(last, d) > max_age_ns for d, last in suppressed)
    assert all(d.ts <= v3_end + max_age_ns for d, _ in detected)  # nothing after the V3 tape's end

    # exactly the blind run's opportunities on old state were suppressed, the rest detected as before
    blind_opps = [(d, last) for d, last in blind if type(d) is ev.OpportunityDetected]
    old = [(d.ts, d.key) for d, last in blind_opps if age(last, d) > max_age_ns]
    assert [(d.ts, d.key) for d, _ in suppressed] == old
    assert [(d.ts, d.key, d.net_profit) for d, _ in detected] == [
        (d.ts, d.key, d.net_profit) for d, last in blind_opps if age(last, d) <= max_age_ns]
    after_v3 = [d for d, _ in suppressed if d.ts > v3_end]
    assert len(after_v3) > len(detected)  # most of what the blind run reported came after the V3 tape
    assert all(d.ids == (pools[1],) for d in after_v3)  # ... and was priced on the V3 state

    # the suppressed count is in the recorded run, where inspect's counts by topic read it
    run = EventLog.open(tmp_path / "run.db")
    counts = run.counts_by_topic()
    run.close()
    assert counts[codec.topic(ev.OpportunitySuppressed)] == len(suppressed)
    assert counts[codec.topic(ev.OpportunityDetected)] == len(detected)

    # the summary a person reads says how many were suppressed as stale
    from click.testing import CliRunner

    from tapedeck.cli import main

    shown = CliRunner().invoke(main, ["inspect", str(tmp_path / "run.db")])
    unique = len({d.key for d, _ in suppressed})
    assert shown.exit_code == 0, shown.output
    assert f"suppressed as stale: {unique} gaps priced on state older than the strategy's max_age" in shown.output
