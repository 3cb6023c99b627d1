"""Cancels in the core (CONTRACT vocabulary): a cancel intent (``side="cancel"``, ``target`` = the
client id of the strategy's resting order, no amount or notional) passes the risk gate even with the
kill switch engaged or the day's loss limit reached; a malformed one is refused. ``OrderCanceled``
ends both the order and the cancel (dropped from in flight, the order's outstanding notional freed)
and reaches the strategy once, with the canceled order's record; a cancel that found nothing resting
is the cancel's own ``OrderFailed`` and the order stays in flight. A hypothesis state machine drives
any interleaving of orders, partial and final fills, failures, cancels and their answers and checks
that the gate's outstanding notional is always exactly that of the orders still in flight."""
from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from tapedeck.domain import events as ev
from tapedeck.domain.engine import Engine
from tapedeck.domain.risk import Intent, RiskGate
from tapedeck.domain.state import CANCELED

VENUE = "cex"
RISK = {"default_max_notional": 10**12, "default_max_outstanding": 10**15}


class Scripted:
    """Proposes what the test queued, on a timer of its own; records what it is told."""

    name = "s"
    handles: tuple[type[ev.Event], ...] = ()

    def __init__(self) -> None:
        self.queue: list[Intent] = []
        self.told: list[tuple[str, str, str]] = []  # (event type, order client id, order status)

    def on_event(self, e: Any, state: Any) -> Any:
        out, self.queue = self.queue, []
        return out

    def on_order(self, e: Any, order: Any, state: Any) -> Any:
        self.told.append((type(e).__name__, order.client_id, order.status))
        return ()


def order(cid: str, notional: int = 1_000) -> Intent:
    return Intent("s", VENUE, "ETH-USDC", "sell", 10, notional, client_id=cid, limit_price=3000, price_decimals=0,
                  tif="gtc")


def cancel(target: str, cid: str, **kw: Any) -> Intent:
    return Intent("s", VENUE, "ETH-USDC", "cancel", kw.pop("amount", 0), kw.pop("notional", 0), target=target,
                  client_id=cid, **kw)


class Core:
    def __init__(self, risk: dict[str, Any] = RISK) -> None:
        self.strategy = Scripted()
        self.engine = Engine([self.strategy], RiskGate.from_config(risk))
        self.seq = 0
        self.intents: dict[str, ev.OrderIntended] = {}  # client id -> its OrderIntended

    def feed(self, e: ev.Event) -> list[ev.Event]:
        self.seq += 1
        out = []
        for d in self.engine.handle(ev.with_seq(e, self.seq)):
            self.seq += 1
            d = ev.with_seq(d, self.seq)
            self.engine.decided(d)
            out.append(d)
            if type(d) is ev.OrderIntended:
                self.intents[d.client_id] = d
        return out

    def propose(self, *intents: Intent) -> list[ev.Event]:
        self.strategy.queue = list(intents)
        return self.feed(ev.TimerFired(ts=self.seq + 1, source="timer", strategy="s", key="go"))

    def canceled(self, cid: str, cancel_id: str, remaining: int = 10) -> list[ev.Event]:
        o, c = self.intents[cid], self.intents[cancel_id]
        return self.feed(ev.OrderCanceled(ts=self.seq + 1, source="venue", intent=o.seq, venue=VENUE, strategy="s",
                                          instrument=o.instrument, client_id=cid, cancel_id=cancel_id,
                                          remaining=remaining, cancel_intent=c.seq))

    def failed(self, cid: str, reason: str = "rejected") -> list[ev.Event]:
        return self.feed(ev.OrderFailed(ts=self.seq + 1, source="venue", intent=self.intents[cid].seq, venue=VENUE,
                                        reason=reason))

    def filled(self, cid: str, amount: int, final: bool) -> list[ev.Event]:
        return self.feed(ev.OrderFilled(ts=self.seq + 1, source="venue", intent=self.intents[cid].seq, venue=VENUE,
                                        amount=amount, notional=amount * 100, fee=0, final=final))

    @property
    def in_flight(self) -> dict[str, Any]:
        return dict(self.engine.state.in_flight("s"))

    @property
    def outstanding(self) -> int:
        return self.engine.risk.outstanding.get(VENUE, 0)


def test_a_cancel_passes_the_kill_switch_and_the_daily_loss_limit_but_an_order_does_not() -> None:
    core = Core({**RISK, "daily_loss_limit": 1})
    core.propose(order("o1"))
    core.feed(ev.KillSwitchSet(ts=core.seq + 1, source="operator", engaged=True, reason="stop"))
    verdicts = core.propose(order("o2"), cancel("o1", "k1"))
    assert [type(v) for v in verdicts] == [ev.IntentRejected, ev.OrderIntended]
    assert verdicts[0].reason == "kill switch engaged (stop)"  # type: ignore[attr-defined]
    assert (verdicts[1].side, verdicts[1].target, verdicts[1].notional) == ("cancel", "o1", 0)  # type: ignore[attr-defined]
    core.feed(ev.KillSwitchSet(ts=core.seq + 1, source="operator", engaged=False))
    core.propose(order("o3"))
    core.propose(Intent("s", VENUE, "ETH-USDC", "buy", 10, 1_000, client_id="b1"))
    core.filled("b1", 10, final=True)  # a buy pays 1,000: the day's loss passes the limit of 1
    assert core.engine.risk.day_loss() == 1_000
    verdicts = core.propose(order("o4"), cancel("o3", "k3"))
    assert [type(v) for v in verdicts] == [ev.IntentRejected, ev.OrderIntended]
    assert "daily loss" in verdicts[0].reason  # type: ignore[attr-defined]


def test_a_malformed_cancel_is_refused_naming_what_is_wrong() -> None:
    core = Core()
    core.propose(order("o1"))
    verdicts = core.propose(cancel("", "k1"), cancel("o1", "k2", amount=5), cancel("o1", "k3", notional=5))
    assert [type(v) for v in verdicts] == [ev.IntentRejected] * 3
    assert all("a cancel names the client id of the order to cancel" in v.reason for v in verdicts)  # type: ignore[attr-defined]
    assert "target ''" in verdicts[0].reason and "amount 5" in verdicts[1].reason  # type: ignore[attr-defined]


def test_order_canceled_ends_the_order_and_the_cancel_and_frees_the_notional() -> None:
    core = Core()
    core.propose(order("o1", 1_000), order("o2", 500))
    assert core.outstanding == 1_500
    core.filled("o1", 4, final=False)  # part of it trades while it rests
    core.propose(cancel("o1", "k1"))
    assert set(core.in_flight) == {"o1", "o2", "k1"} and core.outstanding == 1_500
    core.strategy.told.clear()
    assert core.canceled("o1", "k1", remaining=6) == []
    assert set(core.in_flight) == {"o2"} and core.outstanding == 500
    assert core.strategy.told == [("OrderCanceled", "o1", CANCELED)]  # once, with the canceled order's record
    assert set(core.engine.risk.open_intents) == {core.intents["o2"].seq}
    core.propose(order("o1"))  # its client id is free again
    assert "o1" in core.in_flight


def test_a_cancel_that_found_nothing_resting_fails_and_the_order_stays_in_flight() -> None:
    core = Core()
    core.propose(order("o1"))
    core.propose(cancel("o1", "k1"))
    core.strategy.told.clear()
    core.failed("k1", "cancel: no resting order o1")
    assert set(core.in_flight) == {"o1"} and core.outstanding == 1_000
    assert core.strategy.told == [("OrderFailed", "k1", "failed")]  # the cancel's record: side "cancel"
    core.filled("o1", 10, final=True)
    assert core.in_flight == {} and core.outstanding == 0


class CancelMachine(RuleBasedStateMachine):
    """Orders, fills, failures, cancels and the venue's answers in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.core = Core()
        self.n = 0
        self.resting: dict[str, int] = {}  # our model: order -> notional, while the venue holds it
        self.cancels: dict[str, str] = {}  # cancel id -> its target, while in flight

    @rule(notional=st.integers(1, 10**6))
    def place(self, notional: int) -> None:
        self.n += 1
        cid = f"o{self.n}"
        self.core.propose(order(cid, notional))
        self.resting[cid] = notional

    @precondition(lambda self: self.resting)
    @rule(data=st.data(), final=st.booleans())
    def fill(self, data: Any, final: bool) -> None:
        cid = data.draw(st.sampled_from(sorted(self.resting)))
        self.core.filled(cid, 1, final)
        if final:
            seen("final fill")
            del self.resting[cid]

    @precondition(lambda self: self.resting)
    @rule(data=st.data())
    def venue_fails(self, data: Any) -> None:
        cid = data.draw(st.sampled_from(sorted(self.resting)))
        self.core.failed(cid)
        del self.resting[cid]

    @rule(data=st.data())
    def ask_cancel(self, data: Any) -> None:
        known = sorted(set(self.resting) | {f"o{i}" for i in range(1, self.n + 1)}) or ["o0"]
        target = data.draw(st.sampled_from(known))
        self.n += 1
        cid = f"k{self.n}"
        verdicts = self.core.propose(cancel(target, cid))
        assert [type(v) for v in verdicts] == [ev.OrderIntended]
        self.cancels[cid] = target

    @precondition(lambda self: self.cancels)
    @rule(data=st.data())
    def venue_answers_cancel(self, data: Any) -> None:
        cid = data.draw(st.sampled_from(sorted(self.cancels)))
        target = self.cancels.pop(cid)
        if target in self.resting:
            seen("canceled a resting order")
            del self.resting[target]
            for other, t in list(self.cancels.items()):  # a second cancel of the same order finds nothing
                if t == target:
                    seen("a second cancel of one order")
            self.core.canceled(target, cid)
        else:
            seen("cancel found nothing resting")
            self.core.failed(cid, f"cancel: no resting order {target}")

    @invariant()
    def outstanding_is_what_is_in_flight(self) -> None:
        flight = self.core.in_flight
        assert set(flight) == set(self.resting) | set(self.cancels)
        assert self.core.outstanding == sum(self.resting.values())
        assert len(self.core.engine.risk.open_intents) == len(flight)


SEEN: Counter[str] = Counter()
CASES = ("final fill", "canceled a resting order", "a second cancel of one order", "cancel found nothing resting")


def seen(label: str) -> None:
    event(label)
    SEEN[label] += 1


def test_any_interleaving_keeps_outstanding_equal_to_what_is_in_flight() -> None:
    SEEN.clear()
    run_state_machine_as_test(CancelMachine, settings=settings(max_examples=150, stateful_step_count=30,
                                                               deadline=None, derandomize=True, database=None))
    missing = [c for c in CASES if not SEEN[c]]
    assert not missing, f"the machine never reached {missing} ({dict(SEEN)})"
