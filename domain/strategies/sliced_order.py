"""Work one configured parent order through a slicer (``domain/slicing.py``): TWAP, VWAP by
participation of the tape's volume, or an iceberg.

The parent starts on the first quote of its venue and instrument (so a market child can be priced
for the risk gate), ``start_after_s`` later, and runs ``duration_s`` (its deadline; an iceberg may
have none, 0). Everything else is the slicer's: children on the core's timers, adapting to fills,
failures and rejections routed back by client id, finishing on schedule; its decision events say
what it did (``runtime/slicing_report.py`` summarises them).

Config (``[[strategies]] kind = "sliced_order"``; sizes in base units of the base asset, integers):
``venue``, ``instrument``, ``side`` (buy/sell), ``quantity``, ``base_decimals``, ``quote_decimals``
(the risk currency's, for the children's notional), ``lot`` (children are multiples; default 1),
``algo`` ("twap" | "vwap" | "iceberg"), ``start_after_s`` (0), ``duration_s``, ``interval_s`` (TWAP
and VWAP: slice / check interval, default 10), ``participation_bps``, ``min_child``, ``max_child``
(VWAP), ``visible``, ``retry_s`` (iceberg; default 1), ``on_deadline`` ("catch_up": one final child
for what is left, the default for TWAP and VWAP; "leave": report it left, an iceberg's only choice),
``limit_price`` (text, e.g. "3000.5"; "" = market children) with ``price_decimals``, ``tif`` ("",
"ioc", "gtc", "alo"), ``reduce_only``, ``max_price_age_s`` (5: a market child is priced on a quote at
most this old), ``max_failures`` (10 children in a row with nothing filled: the parent fails; 0
never), ``parent_id`` (default the strategy's name), ``child_timeout_s`` (0: never; a child in
flight longer than this is cancelled as stale and its remainder worked again).
"""
from __future__ import annotations

from typing import Any, Sequence

from tapedeck.domain import events as ev
from tapedeck.domain.decimals import seconds_to_ns, to_fixed
from tapedeck.domain.slicing import CATCH_UP, ICEBERG, LEAVE, TWAP, VWAP, ParentOrder, ParentOrders, Proposal, \
    slicer_from_config
from tapedeck.domain.state import MarketState, Order


class SlicedOrder:
    handles: tuple[type[ev.Event], ...] = (ev.QuoteUpdated,) + ParentOrders.handles

    def __init__(self, name: str = "sliced_order", *, venue: str, instrument: str, side: str, quantity: int,
                 base_decimals: int, quote_decimals: int, lot: int = 1, algo: str = TWAP, start_after_s: Any = 0,
                 duration_s: Any = 0, interval_s: Any = 10, participation_bps: int = 0, min_child: int = 0,
                 max_child: int = 0, visible: int = 0, retry_s: Any = 1, on_deadline: str = "",
                 limit_price: str = "", price_decimals: int = 0, tif: str = "", reduce_only: bool = False,
                 max_price_age_s: Any = 5, max_failures: int = 10, parent_id: str = "", child_timeout_s: Any = 0):
        self.name = name
        self.venue, self.instrument = venue, instrument
        self.orders = ParentOrders(name)
        limit = to_fixed(limit_price, int(price_decimals), "limit_price") if str(limit_price) else 0
        self.start_after = seconds_to_ns(start_after_s, "start_after_s")
        self.duration = seconds_to_ns(duration_s, "duration_s")
        if algo in (TWAP, VWAP) and not self.duration:
            raise ValueError(f"a {algo} needs duration_s > 0")
        self.template = dict(parent_id=parent_id or name, venue=venue, instrument=instrument, side=side,
                             quantity=quantity, base_decimals=base_decimals, quote_decimals=quote_decimals, lot=lot,
                             limit_price=limit, price_decimals=int(price_decimals), tif=tif,
                             reduce_only=bool(reduce_only),
                             max_price_age_ns=seconds_to_ns(max_price_age_s, "max_price_age_s"),
                             child_timeout_ns=seconds_to_ns(child_timeout_s, "child_timeout_s"))
        ParentOrder(start_ts=0, deadline_ts=self.duration, **self.template)  # type: ignore[arg-type]  # validate now
        deadline = on_deadline or (LEAVE if algo == ICEBERG else CATCH_UP)
        if algo == TWAP:
            params: dict[str, Any] = dict(interval_ns=seconds_to_ns(interval_s, "interval_s"))
        elif algo == VWAP:
            params = dict(participation_bps=participation_bps, min_child=min_child, max_child=max_child,
                          interval_ns=seconds_to_ns(interval_s, "interval_s"))
        elif algo == ICEBERG:
            params = dict(visible=visible, retry_ns=seconds_to_ns(retry_s, "retry_s"))
        else:
            params = {}
        self.slicer = slicer_from_config(algo, on_deadline=deadline, max_failures=max_failures, **params)
        self.slicer.check(ParentOrder(start_ts=0, deadline_ts=self.duration, **self.template))  # type: ignore[arg-type]
        self.started = False

    def on_event(self, e: ev.Event, state: MarketState) -> Sequence[Proposal]:
        if self.orders.wants(e):
            return self.orders.on_event(e, state)
        if (not self.started and type(e) is ev.QuoteUpdated and e.venue == self.venue  # type: ignore[attr-defined]
                and e.instrument == self.instrument):  # type: ignore[attr-defined]
            self.started = True
            start = e.ts + self.start_after
            parent = ParentOrder(start_ts=start, deadline_ts=start + self.duration if self.duration else 0,
                                 **self.template)  # type: ignore[arg-type]
            return self.orders.start(parent, self.slicer, e, state)
        return ()

    def on_order(self, e: ev.Event, order: Order, state: MarketState) -> Sequence[Proposal]:
        if self.orders.owns(order.client_id):
            return self.orders.on_order(e, order, state)
        return ()
