"""Every event type round-trips exactly; old schema versions still load."""
from __future__ import annotations

import typing
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapedeck.domain import codec, events as ev

_BY_ANNOTATION = {
    int: st.integers(min_value=-(2**256), max_value=2**256),
    str: st.text(max_size=40),
    bool: st.booleans(),
    Decimal: st.decimals(allow_nan=False, allow_infinity=False, places=None).map(lambda d: Decimal(str(d))),
    tuple[str, ...]: st.lists(st.text(max_size=12), max_size=4).map(tuple),
    tuple[tuple[int, int], ...]: st.lists(st.tuples(st.integers(min_value=0, max_value=2**64),
                                                    st.integers(min_value=0, max_value=2**64)), max_size=4).map(tuple),
    tuple[tuple[int, int, int], ...]: st.lists(st.tuples(st.integers(-(2**24), 2**24), st.integers(0, 2**128),  # V3 ticks
                                                         st.integers(-(2**127), 2**127)), max_size=4).map(tuple),
}


def event_strategy(cls: type[ev.Event]) -> st.SearchStrategy[ev.Event]:
    hints = typing.get_type_hints(cls)
    fields = {f: _BY_ANNOTATION[hints[f]] for f in cls.__struct_fields__}
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


any_event = st.one_of([event_strategy(t) for t in ev.EVENT_TYPES])


@settings(max_examples=400)
@given(any_event)
def test_every_event_round_trips_exactly(e: ev.Event) -> None:
    data = codec.encode(e)
    back = codec.decode(codec.topic(type(e)), data)
    assert back == e
    assert type(back) is type(e)
    assert codec.encode(back) == data


def test_type_names_and_topics_are_stable() -> None:
    assert codec.topic(ev.QuoteUpdated) == "QuoteUpdated.v4"
    assert codec.topic(ev.V3Swapped) == "V3Swapped.v1"
    assert len(ev.BY_NAME) == len(ev.EVENT_TYPES)
    kinds = {t.__name__: t.KIND for t in ev.EVENT_TYPES}
    assert kinds["OpportunityDetected"] == ev.DECISION
    assert kinds["OrderFilled"] == ev.EXECUTION
    assert kinds["V3Swapped"] == ev.INPUT


def test_big_ints_survive() -> None:
    e = ev.V3Swapped(ts=1, pool="p", block=1, tx="t", log_index=0, sender="s", recipient="r",
                     amount0=-(2**255), amount1=2**255 - 1, sqrt_price_x96=2**159 + 7, liquidity=2**127 + 1, tick=-887272)
    assert codec.decode("V3Swapped.v1", codec.encode(e)) == e


def test_a_version_1_quote_is_upcast_on_load() -> None:
    """QuoteUpdated v1 stored bid_px/bid_qty/ask_px/ask_qty; v2 renamed them."""
    class QuoteV1(msgspec.Struct, array_like=True):  # the v1 wire layout, field for field
        seq: int
        ts: int
        source: str
        cause: int
        venue: str
        instrument: str
        bid_px: Decimal
        bid_qty: Decimal
        ask_px: Decimal
        ask_qty: Decimal

    old = msgspec.json.encode(QuoteV1(7, 100, "binance", 0, "binance", "ETHUSDT", Decimal("2301.5"), Decimal("3"), Decimal("2301.6"), Decimal("4")))
    e = codec.decode("QuoteUpdated.v1", old)
    assert e == ev.QuoteUpdated(seq=7, ts=100, source="binance", venue="binance", instrument="ETHUSDT",
                                bid=23015, bid_size=3, ask=23016, ask_size=4, price_decimals=1, size_decimals=0)


def test_every_type_describes_each_of_its_past_versions() -> None:
    """A type at schema N keeps versions 1..N-1 (stored fields, upgrade step); nothing more."""
    for t in ev.EVENT_TYPES:
        assert sorted(t.PAST) == list(range(1, t.SCHEMA)), t.__name__
        for v, past in t.PAST.items():
            assert past.fields[:4] == ev.ENVELOPE and callable(past.upgrade), (t.__name__, v)
    assert "QuoteUpdated.v1" in codec.stored_versions() and "AaveLiquidationObserved.v1" in codec.stored_versions()


def test_version_3_decimal_quotes_load_as_fixed_point_at_their_own_precision() -> None:
    """v3 stored prices as Decimal text: v4 takes the finest precision either side used, and a
    price that was not a finite number as -1 (refused by the state, as the NaN was)."""
    old = b'["QuoteUpdated",1,5,"x",0,"a","ETH","2300.1","1.5","2300.12","NaN",7]'
    e = codec.decode("QuoteUpdated.v3", old)
    assert (e.bid, e.ask, e.price_decimals) == (230010, 230012, 2) and e.price(e.ask) == Decimal("2300.12")
    assert (e.bid_size, e.ask_size, e.size_decimals, e.venue_ts) == (15, -1, 1, 7)


def test_an_old_body_its_upgrade_cannot_read_is_a_schema_error() -> None:
    bad = b'["QuoteUpdated",1,5,"x",0,"a","ETH","abc","1.5","2300.12","1",7]'  # a v3 bid that is not a number
    with pytest.raises(codec.SchemaError, match="QuoteUpdated.v3: cannot upgrade v3 to v4: InvalidOperation"):
        codec.decode("QuoteUpdated.v3", bad)


def test_unknown_or_newer_types_are_named_in_the_error() -> None:
    with pytest.raises(codec.SchemaError, match="NoSuchEvent"):
        codec.decode("NoSuchEvent.v1", b"[]")
    with pytest.raises(codec.SchemaError, match="newer"):
        codec.decode("QuoteUpdated.v9", b"[]")


def test_version_1_intents_and_fills_load_with_the_new_fields_defaulted() -> None:
    """OrderIntended v2 added target/max_priority_fee; OrderFilled v2 added fee_asset/final."""
    intent_v1 = b'[7,100,"engine",3,"arb","ethereum","USDC/WETH","buy",5,6]'
    e = codec.decode("OrderIntended.v1", intent_v1)
    assert isinstance(e, ev.OrderIntended)
    assert (e.seq, e.cause, e.amount, e.notional, e.target, e.max_priority_fee) == (7, 3, 5, 6, "", 0)
    fill_v1 = b'[8,100,"paper",7,7,"ethereum",5,6,0]'
    f = codec.decode("OrderFilled.v1", fill_v1)
    assert isinstance(f, ev.OrderFilled)
    assert (f.intent, f.amount, f.notional, f.fee, f.fee_asset, f.final) == (7, 5, 6, 0, "", True)
    assert codec.topic(ev.OrderFilled) == "OrderFilled.v2"


def test_tagged_old_bodies_upcast_like_untagged_ones() -> None:
    """Since the type name led the array, old versions were written tagged; both forms load."""
    tagged = b'["OrderIntended",7,100,"engine",3,"arb","ethereum","USDC/WETH","buy",5,6,"0xb",9]'
    e = codec.decode("OrderIntended.v2", tagged)
    assert (e.seq, e.target, e.max_priority_fee, e.client_id) == (7, "0xb", 9, "")
    t = codec.decode("TimerFired.v1", b'["TimerFired",4,50,"sim",0,"exit-check"]')
    assert (t.strategy, t.key, t.requested) == ("", "exit-check", 0)
