"""The engine's per-type specialised handlers decide exactly as the general ``Engine.handle``.

``Engine.__init__`` replaces ``handle`` on the instance by a lookup of a closure per event type
(``_specialise``). Seeded random tapes are driven through two engines built alike, one by the
general method and one by the specialised ``handle`` bound once before the run (as the loop and
verify bind it), including a strategy that raises and is suspended mid-run (routing is rebuilt
while a bound ``handle`` is in use), one that intends on every quote (verdicts, the risk gate)
and executions; every decision must be equal, byte for byte.
"""
from __future__ import annotations

import random

from tapedeck.domain import codec, events as ev
from tapedeck.domain.engine import Engine
from tapedeck.domain.strategies import build_engine
from tests.conftest import SPREAD_CONFIG, quote
from tests.test_engine import AlwaysIntends


class RaisesSometimes:
    name = "raises"
    handles = (ev.QuoteUpdated,)

    def on_event(self, e, state):
        if e.bid % 7 == 0:
            raise RuntimeError(f"bid {e.bid} is a multiple of seven")
        return ()


def _engines(shape: str, suspend: int) -> tuple[Engine, Engine]:
    def one() -> Engine:
        base = build_engine(SPREAD_CONFIG)
        extra = {"spread": [], "spread+raises": [RaisesSometimes()],
                 "raises": [RaisesSometimes()], "spread+always": [AlwaysIntends(50)]}[shape]
        strategies = extra if shape == "raises" else [*base.strategies, *extra]
        return Engine(strategies, base.risk, suspend_after_failures=suspend)
    return one(), one()


def _tape(rng: random.Random, n: int) -> list[ev.Event]:
    out: list[ev.Event] = []
    for i in range(n):
        ts = 1_000_000_000 * (i + 1)
        r = rng.random()
        if r < 0.08:
            out.append(ev.SourceStale(ts=ts, source="test", venues=(rng.choice(["a", "b"]),), reason="gap"))
        else:
            mid = 2000 + rng.randint(-3, 3)
            bid = mid - rng.choice([0, 1, 2, 4])
            out.append(quote(ts, rng.choice(["a", "b", "c"]), f"{bid}.{rng.randint(0, 9)}", f"{mid}.5"))
    return out


def _drive(engine: Engine, handle, tape: list[ev.Event]) -> list[bytes]:
    seq, out, intents = 0, [], []
    for e in tape:
        seq += 1
        found = handle(ev.with_seq(e, seq))
        for d in found:
            seq += 1
            d = ev.with_seq(d, seq)
            engine.decided(d)
            out.append(codec.encode(d))
            if type(d) is ev.OrderIntended:
                intents.append(d)
        if intents and seq % 5 == 0:  # an execution: the venue fills the oldest intent
            d = intents.pop(0)
            seq += 1
            fill = ev.OrderFilled(ts=e.ts, source="venue", venue=d.venue, intent=d.seq, amount=d.amount,
                                  notional=d.notional, fee=0, seq=seq)
            out.extend(codec.encode(x) for x in handle(fill))
    return out


def test_specialised_handlers_decide_as_the_general_path() -> None:
    rng = random.Random(20261202)
    seen = {"decisions": 0, "failed": 0, "suspended": 0, "intended": 0}
    for round_ in range(60):
        shape = rng.choice(["spread", "spread+raises", "raises", "spread+always"])
        suspend = rng.choice([0, 1, 3])
        general, special = _engines(shape, suspend)
        bound = special.handle  # bound once, as runtime.loop and runtime.verify do
        assert not hasattr(bound, "__self__")  # the per-type dispatcher, not the bound general method
        tape = _tape(rng, 120)
        want = _drive(general, lambda e: Engine.handle(general, e), tape)
        got = _drive(special, bound, tape)
        assert got == want, f"round {round_}: {shape}, suspend_after_failures={suspend}"
        assert special.suspended == general.suspended
        seen["decisions"] += len(want)
        seen["failed"] += sum(b"StrategyFailed" in d for d in want)
        seen["suspended"] += len(special.suspended)
        seen["intended"] += sum(b"OrderIntended" in d for d in want)
    # the cases the test names were exercised: failures, a suspension mid-run, intents and their verdicts
    assert seen["failed"] > 0 and seen["suspended"] > 0 and seen["intended"] > 0, seen


def test_a_single_strategy_route_gets_its_own_closure() -> None:
    engine = build_engine(SPREAD_CONFIG)
    general = type(engine).handle
    quote_handler = engine._handlers[ev.QuoteUpdated]
    assert getattr(quote_handler, "__func__", None) is not general  # specialised, not the general path
    assert engine._handlers[ev.OrderFilled].__func__ is general  # executions route through the general path


def test_a_copied_engine_decides_on_its_own_state() -> None:
    """``copy.deepcopy`` of an engine mid-run (a what-if fork; the Aave benchmark times each run on
    one): the copy's handlers hold the copy's state, so feeding it leaves the original untouched and
    it decides as an engine fed the same events from the start."""
    import copy

    rng = random.Random(7)
    tape = [ev.with_seq(e, i + 1) for i, e in enumerate(_tape(rng, 400))]
    head, tail = tape[:200], tape[200:]
    original, reference = _engines("spread+always", 0)
    for e in head:
        original.handle(e)
        reference.handle(e)
    fork = copy.deepcopy(original)
    before = {k: dict(v) for k, v in original.state.quotes.items()}
    forked = [codec.encode(d) for e in tail for d in fork.handle(e)]
    assert {k: dict(v) for k, v in original.state.quotes.items()} == before
    assert forked == [codec.encode(d) for e in tail for d in reference.handle(e)]
    assert forked and fork.state is not original.state
