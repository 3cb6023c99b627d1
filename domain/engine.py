"""The deterministic core: fold each event into state, ask the strategies, gate their intents.

``Engine.handle(event)`` is a pure function of the events handled so far: it reads no clock, no
environment and no randomness, and iterates only over insertion-ordered containers. It returns the
decision events (not yet numbered: the recorder numbers them), each naming its cause. The engine
folds its own decisions too (an intent raises the venue's outstanding notional), so in a replay,
where recorded decisions are compared rather than fed, the state evolves exactly as it did live.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

from tapedeck.domain import events as ev
from tapedeck.domain.risk import Intent, RiskGate
from tapedeck.domain.state import MarketState

Proposal = ev.Event | Intent


class Strategy(Protocol):
    """A strategy reads state and proposes decisions (events) or intents (to be risk-gated)."""

    name: str
    handles: tuple[type[ev.Event], ...]

    def on_event(self, event: ev.Event, state: MarketState) -> Sequence[Proposal]: ...


class Engine:
    def __init__(self, strategies: Sequence[Strategy], risk: RiskGate):
        self.state = MarketState()
        self.risk = risk
        self.strategies = list(strategies)
        self._folds: dict[type[ev.Event], Callable[[Any], None]] = {
            ev.QuoteUpdated: self.state.on_quote,
            ev.V2ReservesSynced: self.state.on_v2,
            ev.V3Swapped: self.state.on_v3,
            ev.V3Minted: self.state.on_v3,
            ev.V3Burned: self.state.on_v3,
            ev.V3Collected: self.state.on_v3,
            ev.BlockProduced: self.state.on_block,
            ev.KillSwitchSet: risk.on_kill_switch,
            ev.OrderFilled: risk.on_finished,
            ev.OrderFailed: risk.on_finished,
        }
        routes: dict[type[ev.Event], list[Strategy]] = {}
        for s in self.strategies:
            for t in s.handles:
                routes.setdefault(t, []).append(s)
        # One lookup per event: (fold or None, strategies) by exact type.
        self._dispatch: dict[type[ev.Event], tuple[Callable[[Any], None] | None, tuple[Strategy, ...]]] = {
            t: (self._folds.get(t), tuple(routes.get(t, ()))) for t in ev.EVENT_TYPES
        }

    def handle(self, event: ev.Event) -> list[ev.Event]:
        """Fold one input or execution event and return the decisions it caused."""
        fold, strategies = self._dispatch[type(event)]
        if fold is not None:
            fold(event)
        if not strategies:
            return []
        out: list[ev.Event] = []
        for strategy in strategies:
            proposals = strategy.on_event(event, self.state)
            if proposals:
                out.extend(self._decide(event, proposals))
        return out

    def _decide(self, cause: ev.Event, proposals: Sequence[Proposal]) -> list[ev.Event]:
        decisions: list[ev.Event] = []
        pending: dict[str, int] = {}  # notional approved in this batch, not yet folded via decided()
        for p in proposals:
            if isinstance(p, Intent):
                reason = self.risk.check(p, pending.get(p.venue, 0))
                if reason:
                    decisions.append(
                        ev.IntentRejected(
                            ts=cause.ts, source="engine", cause=cause.seq,
                            strategy=p.strategy, venue=p.venue, notional=p.notional, reason=reason,
                        )
                    )
                else:
                    pending[p.venue] = pending.get(p.venue, 0) + p.notional
                    decisions.append(
                        ev.OrderIntended(
                            ts=cause.ts, source="engine", cause=cause.seq, strategy=p.strategy,
                            venue=p.venue, instrument=p.instrument, side=p.side,
                            amount=p.amount, notional=p.notional, target=p.target,
                            max_priority_fee=p.max_priority_fee,
                        )
                    )
            else:
                decisions.append(p)
        return decisions

    def decided(self, decision: ev.Event) -> None:
        """Fold a decision once the recorder has numbered it (so executions can refer to it)."""
        if type(decision) is ev.OrderIntended:
            self.risk.on_intended(decision)  # type: ignore[arg-type]
