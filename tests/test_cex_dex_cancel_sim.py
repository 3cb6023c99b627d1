"""cex_dex_arb cancels its timed-out book legs, in the sim (``cex-dex-dislocation`` with a slow book).

A variant of the scenario gives the mock CEX a 4 s outbound delay while the strategy's legs time
out after 3 s and its book leg is a GTC limit (``cex_tif = "gtc"``): every book leg times out
before it even reaches the venue, so each gets one cancel. At the venue the order arrives first:
one that filled at once is done when its cancel comes (the venue refuses the cancel: the cancel's
``OrderFailed``, the fill a late report), one that found the book moved away from its limit rests
and the cancel takes it off (``OrderCanceled`` releasing what did not fill). Both happen in this
run; every cancel ends exactly one of those two ways, the strategy's counters say the same (on the
engine that re-decides the run), and ``replay --verify`` verifies.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.domain import events as ev
from tapedeck.runtime.strategy_loader import build_engine
from tapedeck.runtime.verify import verify
from tapedeck.sim.chain.artifacts import node_modules
from tapedeck.sim.recording import run_scenario
from tapedeck.sim.scenario import load_scenario
from tests.conftest import ROOT

SHIPPED = "latency.outbound = { base_ms = 20, jitter_ms = 10 }\nlatency.inbound = { base_ms = 20, jitter_ms = 10 }"


def _config() -> dict[str, Any]:
    config = tomllib.loads((ROOT / "fixtures" / "config" / "sim-default.toml").read_text(encoding="utf-8"))
    config["strategies"] = [s for s in config["strategies"] if s.get("kind") == "cex_dex_arb"]
    (cd,) = config["strategies"]
    cd.update(cex_tif="gtc", leg_timeout_s=3)
    return config


@pytest.fixture(scope="module")
def run(tmp_path_factory: Any) -> tuple[list[ev.Event], Any]:
    if not (node_modules() / "@uniswap" / "v2-core").is_dir():
        pytest.skip(f"@uniswap/v2-core not installed under {node_modules()}")
    tmp = tmp_path_factory.mktemp("cexdexcancel")
    text = (ROOT / "fixtures" / "scenarios" / "cex-dex-dislocation.toml").read_text(encoding="utf-8")
    assert text.count(SHIPPED) == 1  # (the binance venue's latency: the only one with these figures)
    scenario = tmp / "cex-dex-slow-book.toml"
    scenario.write_text(text.replace(SHIPPED, SHIPPED.replace("base_ms = 20, jitter_ms = 10 }\nlatency.inbound",
                                                              "base_ms = 4000, jitter_ms = 10 }\nlatency.inbound"))
                        .replace('name = "cex-dex-dislocation"', 'name = "cex-dex-slow-book"'), encoding="utf-8")
    out = tmp / "slow.db"
    run_scenario(load_scenario(scenario), _config(), out)
    with EventLog.open(out) as log:
        engine = build_engine(log.manifest.config)
        assert verify(log, engine).ok
        (strategy,) = [s for s in engine.strategies if s.name == "cex-dex"]
        return list(log.events()), strategy


def test_every_timed_out_book_leg_gets_one_cancel_and_each_cancel_ends_once(run: tuple[list[ev.Event], Any]) -> None:
    events, strategy = run
    intents = {e.seq: e for e in events if type(e) is ev.OrderIntended and e.strategy == "cex-dex"}
    book = {i.client_id: i for i in intents.values() if i.venue == "binance" and i.side != "cancel"}
    cancels = {i.seq: i for i in intents.values() if i.side == "cancel"}
    assert all(i.tif == "gtc" for i in book.values() if i.client_id.endswith("-cex"))
    targets = [c.target for c in cancels.values()]
    assert sorted(targets) == sorted(set(targets))  # one cancel per leg at most
    assert set(targets) == {cid for cid in book if cid.endswith("-cex")}  # every book entry timed out (4 s > 3 s)
    canceled = [e for e in events if type(e) is ev.OrderCanceled]
    refused = [e for e in events if type(e) is ev.OrderFailed and e.intent in cancels]
    assert {e.cancel_intent for e in canceled} | {e.intent for e in refused} == set(cancels)
    assert not {e.cancel_intent for e in canceled} & {e.intent for e in refused}  # each ends one way
    assert canceled and refused  # both ways happen in this run
    for e in canceled:  # a resting leg: what did not fill is released, nothing fills after
        leg = book[e.client_id]
        filled = sum(f.amount for f in events if type(f) is ev.OrderFilled and f.intent == leg.seq)
        assert e.remaining == leg.amount - filled > 0
        assert not [f for f in events if type(f) is ev.OrderFilled and f.intent == leg.seq and f.seq > e.seq]
    for e in refused:  # the leg had filled whole before its cancel came
        leg = book[cancels[e.intent].target]
        assert sum(f.amount for f in events if type(f) is ev.OrderFilled and f.intent == leg.seq) == leg.amount
    assert (strategy.cancels, strategy.canceled, strategy.cancel_failed) == (len(cancels), len(canceled), len(refused))
    assert not strategy._cancel_of  # every cancel's end was accounted for
