"""Intents the engine sends to a mock book venue in a sim run: filled with the venue's own amounts,
limited by its rate limit, refused when malformed, and the run verifies with the same strategy."""
from __future__ import annotations

from typing import Any

import pytest

from tapedeck.adapters.eventlog import EventLog
from tapedeck.runtime.verify import verify
from tapedeck.domain import events as ev
from tapedeck.runtime.strategy_loader import build_engine
from tapedeck.sim.recording import run_scenario
from tapedeck.sim.scenario import load_scenario

pytestmark = pytest.mark.contract  # quiet's world deploys its Uniswap pools (npm builds)
RISK = {"default_max_notional": 10**15, "default_max_outstanding": 10**16}


def burst(at_ns: int, n: int, amount: int, side: str = "buy") -> dict[str, Any]:
    """A config naming the test strategy by import path, so the run rebuilds it from its manifest."""
    return {"risk": RISK, "strategies": [{"kind": "tests.strategies_for_tests:BurstBuyer", "at_ns": at_ns, "n": n,
                                          "amount": amount, "side": side}]}


def run(tmp_path: Any, name: str, config: dict[str, Any]) -> tuple[list[ev.Event], Any]:
    sc = load_scenario("quiet", seed=4)
    out = tmp_path / name
    run_scenario(sc, config, out)
    return list(EventLog.open(out).events()), out


def test_market_orders_fill_at_the_books_prices_and_the_rate_limit_rejects_the_rest(tmp_path: Any) -> None:
    sc = load_scenario("quiet", seed=4)
    at = sc.start_ns + 60 * 10**9
    venue = sc.venues[0]
    lot = int(venue.lot_size.scaleb(venue.base_decimals))
    events, out = run(tmp_path, "burst.db", burst(at, venue.rate_limit + 3, 2 * lot))
    intents = [e for e in events if type(e) is ev.OrderIntended]
    fills = [e for e in events if type(e) is ev.OrderFilled]
    failed = [e for e in events if type(e) is ev.OrderFailed]
    acks = [e for e in events if type(e) is ev.OrderAcknowledged]
    assert len(intents) == venue.rate_limit + 3 and len(fills) >= venue.rate_limit - 2
    # the venue takes rate_limit orders in its one-second window, minus its seeded rejects
    assert len(failed) >= 3 and sum("rate limit" in f.reason for f in failed) == 3
    assert len(fills) + len(failed) == len(intents) and len(acks) == len(fills)
    for f in fills:
        assert f.final and f.amount == 2 * lot and f.fee_asset == "USDC" and f.fee > 0
        assert f.ts > intents[0].ts  # outbound + inbound latency
        quote = [q for q in events if type(q) is ev.QuoteUpdated and q.ts <= intents[0].ts][-1]
        # a buy pays at least the ask it saw for 2 lots (the book may have moved by a level)
        assert f.notional >= int(quote.price(quote.ask) * 2 * venue.lot_size * 10**venue.quote_decimals) * 99 // 100
    # the gate released everything: nothing outstanding once every order is final; the run
    # verifies from what its manifest records alone
    log = EventLog.open(out)
    assert verify(log, build_engine(log.manifest.config)).ok


def test_a_malformed_intent_fails_with_a_reason_and_the_run_goes_on(tmp_path: Any) -> None:
    sc = load_scenario("quiet", seed=4)
    events, _ = run(tmp_path, "bad.db", burst(sc.start_ns + 10**9, 1, 1, side="liquidate"))
    failed = [e for e in events if type(e) is ev.OrderFailed]
    assert len(failed) == 1 and "takes side buy or sell" in failed[0].reason
    assert max(e.ts for e in events) >= sc.start_ns + 590 * 10**9  # the world ran to its end
