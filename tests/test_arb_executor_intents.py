"""``cross_pool_arb`` with ``execution = "atomic"``: one intent carrying the whole route to the bot's
executor venue, with the minimum profit the executor must see (gas + the configured minimum), so
one leg can never go through alone; the legs mode is unchanged. Fast: no chain."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tapedeck.domain import events as ev
from tapedeck.domain.strategies import build_engine

sys.path.insert(0, str(Path(__file__).parent))
from test_cross_pool_arb import V2, V3, config, decide, reserves_at, v2_event, v3_swap_event  # noqa: E402

EVENTS = [v3_swap_event(1), v2_event(2, *reserves_at(2040))]  # V2 ~1% cheaper than V3


def test_atomic_execution_sends_one_intent_with_the_route_and_a_floor_that_pays_gas() -> None:
    gas = dict(gas_units=180_000, gas_price_wei=30 * 10**9, min_profit=1_000_000)
    legs = decide(build_engine(config(**gas)), EVENTS)
    atomic = decide(build_engine(config(execution="atomic", **gas)), EVENTS)
    opp, intent = atomic
    assert type(opp) is ev.OpportunityDetected and opp == legs[0]  # the same opportunity, priced the same
    assert [type(e) for e in atomic] == [ev.OpportunityDetected, ev.OrderIntended]  # one intent: the whole route
    assert (intent.venue, intent.side, intent.route, intent.instrument) == (
        "ethereum:arb-executor", "arb", (V2, V3), f"{V2}->{V3}")
    assert intent.amount == intent.notional == opp.amount_in
    assert intent.min_profit == opp.gas_cost + 1_000_000 <= opp.gross_profit  # it reverts unless gas is paid
    assert not intent.private
    assert legs[1].venue == "ethereum" and legs[1].min_profit == 1_000_000  # legs mode as before


def test_private_atomic_intents_are_bundles_and_a_bad_execution_is_refused() -> None:
    (_, intent) = decide(build_engine(config(execution="atomic", private=True)), EVENTS)
    assert intent.private
    with pytest.raises(Exception, match="execution must be one of legs, atomic"):
        build_engine(config(execution="both"))
