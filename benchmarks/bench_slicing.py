"""Cost of a slicer's decisions inside the engine (domain/slicing.py through Engine.handle).

Figures, each the engine's own time for one event (``Engine.handle`` plus folding its decisions
with ``Engine.decided``, as the recorder would), p50/p99/mean over the run:

* **child decision** (TWAP): a slice timer fires -> ``SliceScheduled`` + the child ``Intent`` (risk
  gate, ``OrderIntended``, its verdict back through ``on_order``) + the next ``TimerRequested``;
* **child fill**: the child's final ``OrderFilled`` -> ``ParentOrderProgress`` (the TWAP waits for
  its next slice);
* **iceberg replenish**: a fill that ends a resting child -> progress + the next child at once;
* **VWAP tape print**: a ``TradePrinted`` counted by the VWAPs watching that market (no decision).

``--parents`` parents are worked at once by one strategy (children interleave in event time).
Usage: python benchmarks/bench_slicing.py [--parents P] [--slices N] [--prints M]
"""
from __future__ import annotations

import argparse
import gc
import heapq
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tapedeck.domain import events as ev  # noqa: E402
from tapedeck.domain.engine import Engine  # noqa: E402
from tapedeck.domain.risk import RiskGate  # noqa: E402
from tapedeck.domain.slicing import Iceberg, ParentOrder, ParentOrders, Twap, Vwap  # noqa: E402
from tapedeck.runtime.loop import timer_fired  # noqa: E402

NS = 10**9
T0 = 1_700_000_000 * NS
RISK = {"default_max_notional": 10**18, "default_max_outstanding": 10**19}


class Many:
    """Starts every parent on the first quote; hands the slicer its events."""

    name = "bench"
    handles = (ev.QuoteUpdated,) + ParentOrders.handles

    def __init__(self, parents: list[tuple[ParentOrder, Any]]):
        self.parents, self.orders, self.started = parents, ParentOrders(self.name), False

    def on_event(self, e: Any, state: Any) -> Any:
        if self.orders.wants(e):
            return self.orders.on_event(e, state)
        if not self.started:
            self.started = True
            return [d for p, s in self.parents for d in self.orders.start(p, s, e, state)]
        return ()

    def on_order(self, e: Any, order: Any, state: Any) -> Any:
        return self.orders.on_order(e, order, state)


class Driver:
    def __init__(self, parents: list[tuple[ParentOrder, Any]]):
        self.engine = Engine([Many(parents)], RiskGate.from_config(RISK))
        self.seq, self.timers, self.open = 0, [], {}
        self.times: dict[str, list[int]] = {}

    def feed(self, e: ev.Event, label: str = "") -> None:
        self.seq += 1
        e = ev.with_seq(e, self.seq)
        engine, clock = self.engine, time.perf_counter_ns
        t = clock()
        out = engine.handle(e)
        numbered = []
        for d in out:
            self.seq += 1
            d = ev.with_seq(d, self.seq)
            engine.decided(d)
            numbered.append(d)
        elapsed = clock() - t
        if label:
            self.times.setdefault(label, []).append(elapsed)
        for d in numbered:
            if type(d) is ev.TimerRequested:
                heapq.heappush(self.timers, (d.at_ts, d.seq, d))
            elif type(d) is ev.OrderIntended:
                self.open[d.client_id] = d

    def fill(self, client_id: str, ts: int, label: str) -> None:
        i = self.open.pop(client_id)
        self.feed(ev.OrderFilled(ts=ts, source="venue", cause=i.seq, intent=i.seq, venue=i.venue, amount=i.amount,
                                 notional=i.notional, fee=0, fee_asset="USDC"), label)


def quote(ts: int) -> ev.QuoteUpdated:
    return ev.QuoteUpdated(ts=ts, source="bench", venue="cex", instrument="ETH-USDC", bid=30_000, bid_size=10**6,
                           ask=30_010, ask_size=10**6, price_decimals=1, size_decimals=4)


def parent(i: int, quantity: int, duration: int, **kw: Any) -> ParentOrder:
    return ParentOrder(f"p{i}", "cex", "ETH-USDC", "buy", quantity, T0, T0 + duration if duration else 0, 4, 6, **kw)


def twap(n_parents: int, slices: int) -> Driver:
    d = Driver([(parent(i, slices * 10**4, slices * 10 * NS), Twap(10 * NS)) for i in range(n_parents)])
    d.feed(quote(T0))
    while d.timers:
        at, _, req = heapq.heappop(d.timers)
        d.feed(timer_fired(req, at), "child decision (TWAP timer -> child intent)")
        for cid in list(d.open):
            d.fill(cid, at + 1, "child fill (final fill -> progress)")
    return d


def iceberg(n_parents: int, slices: int) -> Driver:
    d = Driver([(parent(i, slices * 10**4, 0, limit_price=30_010, price_decimals=1, tif="gtc"),
                 Iceberg(visible=10**4, retry_ns=NS)) for i in range(n_parents)])
    d.feed(quote(T0))
    ts = T0
    while d.open:
        ts += 1
        d.fill(next(iter(d.open)), ts, "iceberg replenish (fill -> progress + next child)")
    return d


def vwap(n_parents: int, prints: int) -> Driver:
    d = Driver([(parent(i, 10**12, 10**6 * NS), Vwap(1_000, 0, 10**12, 10**6 * NS)) for i in range(n_parents)])
    d.feed(quote(T0))
    for k in range(prints):
        d.feed(ev.TradePrinted(ts=T0 + k + 1, source="bench", venue="cex", instrument="ETH-USDC", price=30_005,
                               size=1 + k % 50, price_decimals=1, size_decimals=4, side="buy"),
               f"VWAP tape print ({n_parents} VWAPs watching)")
    return d


def best(runs: list[dict[str, list[int]]]) -> dict[str, list[int]]:
    """Per figure, the repetition with the lowest p50 (a shared machine's other load only adds)."""
    return {label: min((r[label] for r in runs), key=lambda xs: sorted(xs)[len(xs) // 2]) for label in runs[0]}


def show(times: dict[str, list[int]]) -> None:
    for label, xs in times.items():
        xs = sorted(xs)
        p50, p99 = xs[len(xs) // 2], xs[min(len(xs) - 1, len(xs) * 99 // 100)]
        print(f"  {label}: n={len(xs):,} p50 {p50 / 1e3:.1f} us, p99 {p99 / 1e3:.1f} us, "
              f"mean {statistics.fmean(xs) / 1e3:.1f} us")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parents", type=int, default=100)
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--prints", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    gc.disable()
    print(f"slicing decision cost, engine time per event ({a.parents} parents at once, {a.slices} children each; "
          f"best p50 of {a.repeat} runs)")
    for run in (lambda: twap(a.parents, a.slices), lambda: iceberg(a.parents, a.slices), lambda: vwap(1, a.prints),
                lambda: vwap(a.parents, a.prints // 10)):
        show(best([run().times for _ in range(a.repeat)]))


if __name__ == "__main__":
    main()
