"""Cancels end to end in the sim (``oracle-jump``, the mock perp ``hyperliquid-eth``): an iceberg
``sliced_order`` whose GTC child rests away from the market has it cancelled at the deadline
(``OrderCanceled`` releasing its size, the parent finishes), a stale child is cancelled after
``child_timeout_s`` and sent again until the book comes to it, and the runs verify with
``tapedeck replay --verify``. The venue's own answers: a cancel of an order that is done fails at
once, one that reaches the venue after the order filled fails after the round trip."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tapedeck.adapters.eventlog import EventLog
from tapedeck.domain import events as ev
from tapedeck.runtime.strategy_loader import build_engine
from tapedeck.runtime.verify import verify
from tapedeck.sim.recording import run_scenario
from tapedeck.sim.scenario import load_scenario

NS = 10**9


def iceberg(**kw: Any) -> dict[str, Any]:
    strategy = dict(kind="sliced_order", name="ice", venue="hyperliquid-eth", instrument="ETH-PERP", side="buy",
                    quantity=20_000, base_decimals=4, quote_decimals=6, lot=1, algo="iceberg", visible=10_000,
                    retry_s=5, start_after_s=30, duration_s=200, limit_price="2900.0", price_decimals=1, tif="gtc")
    strategy.update(kw)
    return {"risk": {"kill_switch": False, "default_max_notional": 250_000_000_000,
                     "default_max_outstanding": 1_000_000_000_000}, "strategies": [strategy]}


SUMMARIES: dict[str, Any] = {}


def run(tmp_path: Path, name: str, config: dict[str, Any]) -> list[ev.Event]:
    out = tmp_path / name
    SUMMARIES[name] = run_scenario(load_scenario("oracle-jump"), config, out)
    with EventLog.open(out) as log:
        assert verify(log, build_engine(log.manifest.config)).ok
        return list(log.events())


def of(events: list[ev.Event], t: type) -> list[Any]:
    return [e for e in events if type(e) is t]


def test_a_resting_child_is_cancelled_at_the_deadline_and_the_parent_finishes(tmp_path: Path) -> None:
    events = run(tmp_path, "deadline.db", iceberg())
    (started,) = of(events, ev.ParentOrderStarted)
    child, cancel = of(events, ev.OrderIntended)
    assert (child.side, child.tif, child.limit_price, child.amount) == ("buy", "gtc", 29_000, 10_000)
    assert (cancel.side, cancel.target, cancel.client_id, cancel.amount, cancel.notional) == (
        "cancel", child.client_id, child.client_id + "-cancel", 0, 0)
    assert cancel.ts == started.deadline_ts
    (done,) = of(events, ev.OrderCanceled)
    assert (done.intent, done.cancel_intent, done.client_id, done.cancel_id, done.remaining) == (
        child.seq, cancel.seq, child.client_id, cancel.client_id, 10_000)
    assert done.ts > cancel.ts  # a round trip to the venue
    assert not of(events, ev.OrderFilled) and not of(events, ev.OrderFailed)
    (progress,) = of(events, ev.ParentOrderProgress)
    assert (progress.outcome, progress.reason) == ("canceled", "deadline")
    (finished,) = of(events, ev.ParentOrderFinished)
    assert (finished.status, finished.filled, finished.remaining, finished.ts) == ("expired", 0, 20_000, done.ts)
    outcome = SUMMARIES["deadline.db"].strategies["ice"]  # the summary: one order, canceled, none pending
    assert (outcome.intents, outcome.won, outcome.lost, outcome.pending) == (1, 0, 0, 0)


def test_a_stale_child_is_cancelled_and_sent_again_until_the_book_comes_to_it(tmp_path: Path) -> None:
    # a sell resting at 3100 while the book is at 3000; the makers follow the oracle's +8% from about
    # t = 320 s, and the bid then trades through 3100: the child resting then fills
    config = iceberg(side="sell", limit_price="3100.0", child_timeout_s=60, duration_s=600)
    events = run(tmp_path, "stale.db", config)
    intents = of(events, ev.OrderIntended)
    cancels = [i for i in intents if i.side == "cancel"]
    children = [i for i in intents if i.side == "sell"]
    canceled = of(events, ev.OrderCanceled)
    assert len(cancels) == len(canceled) >= 3  # the children before the jump went stale
    for c, done in zip(cancels, canceled):
        child = next(i for i in children if i.client_id == c.target)
        assert c.ts == child.ts + 60 * NS and done.remaining == child.amount and done.cancel_intent == c.seq
    fills = of(events, ev.OrderFilled)
    assert sum(f.amount for f in fills) == 20_000 and all(f.fee_asset == "USDC" for f in fills)
    (finished,) = of(events, ev.ParentOrderFinished)
    assert (finished.status, finished.filled, finished.failed_children) == ("filled", 20_000, len(canceled))
    assert finished.average_price >= 31_000  # never below its limit
    reasons = [p.reason for p in of(events, ev.ParentOrderProgress) if p.outcome == "canceled"]
    assert reasons == ["stale"] * len(canceled)


def test_a_cancel_of_an_order_that_is_done_or_filled_first_fails(tmp_path: Path) -> None:
    config = {"risk": {"kill_switch": False, "default_max_notional": 10**12, "default_max_outstanding": 10**13},
              "strategies": [{"kind": "tests.test_cancel_sim:CancelRacer"}]}
    events = run(tmp_path, "race.db", config)
    intents = {i.client_id: i for i in of(events, ev.OrderIntended)}
    failed = {f.intent: f.reason for f in of(events, ev.OrderFailed)}
    # an IOC buy, then (same event) a cancel of it: it reaches the venue after the order filled
    assert failed[intents["k-ioc"].seq] == "cancel: no resting order ioc"
    # a cancel of an order the venue never had
    assert failed[intents["k-none"].seq] == "cancel: no resting order nothing"
    outcome = SUMMARIES["race.db"].strategies["racer"]  # cancels are not trades: 2 orders, 1 filled
    assert (outcome.intents, outcome.won, outcome.lost, outcome.pending) == (2, 1, 0, 0)
    # a GTC sell far above the book rests, then its cancel releases all of it
    (done,) = of(events, ev.OrderCanceled)
    assert (done.client_id, done.cancel_id, done.remaining) == ("gtc", "k-gtc", 10_000)
    fill = next(f for f in of(events, ev.OrderFilled) if f.intent == intents["ioc"].seq)
    assert fill.ts < next(f for f in of(events, ev.OrderFailed) if f.intent == intents["k-ioc"].seq).ts


class CancelRacer:
    """On the venue's first quote: an IOC buy and at once a cancel of it, a cancel of nothing, and a
    GTC sell far from the book, cancelled on the next quote after its acknowledgement."""

    name = "racer"
    handles = (ev.QuoteUpdated,)

    def __init__(self, name: str = "racer") -> None:
        self.name = name
        self.step = 0
        self.acked = False

    def on_event(self, e: Any, state: Any) -> Any:
        from tapedeck.domain.risk import Intent

        v, i = "hyperliquid-eth", "ETH-PERP"
        if self.step == 0:
            self.step = 1
            return [Intent(self.name, v, i, "buy", 10_000, 40_000_000_000, client_id="ioc"),
                    Intent(self.name, v, i, "cancel", 0, 0, target="ioc", client_id="k-ioc"),
                    Intent(self.name, v, i, "cancel", 0, 0, target="nothing", client_id="k-none"),
                    Intent(self.name, v, i, "sell", 10_000, 40_000_000_000, client_id="gtc", limit_price=40_000,
                           price_decimals=1, tif="gtc")]
        if self.step == 1 and self.acked:
            self.step = 2
            return [Intent(self.name, v, i, "cancel", 0, 0, target="gtc", client_id="k-gtc")]
        return ()

    def on_order(self, e: Any, order: Any, state: Any) -> Any:
        if type(e) is ev.OrderAcknowledged and order.client_id == "gtc":
            self.acked = True
        return ()
