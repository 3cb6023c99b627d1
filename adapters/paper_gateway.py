"""A paper gateway for historical replays: every intent is acknowledged and filled at once.

It cannot move a recorded market, so it fills at the amounts the intent names, at the event time
of the intent, with no fee. It exists so that risk state (outstanding notional) is released the
way a real venue's fills would release it. Like every gateway it reports through one channel:
``submit`` returns nothing, the ack and the fill go to the ``report`` it was bound to.
"""
from __future__ import annotations

from typing import Any, Callable

from tapedeck.domain import events as ev


class PaperGateway:
    def __init__(self, state: Any = None, source: str = "paper"):
        self.state = state  # the engine's MarketState (read only); unused until fills are computed from it
        self.source = source
        self.report: Callable[[ev.Event], None] | None = None

    def bind(self, report: Callable[[ev.Event], None]) -> None:
        self.report = report

    def submit(self, intent: ev.OrderIntended) -> None:
        report = self.report
        if report is None:
            raise RuntimeError("PaperGateway.submit before bind(report)")
        order_id = f"paper-{intent.seq}"
        report(ev.OrderAcknowledged(ts=intent.ts, source=self.source, cause=intent.seq, intent=intent.seq,
                                    venue=intent.venue, order_id=order_id))
        report(ev.OrderFilled(ts=intent.ts, source=self.source, cause=intent.seq, intent=intent.seq,
                              venue=intent.venue, amount=intent.amount, notional=intent.notional, fee=0))
