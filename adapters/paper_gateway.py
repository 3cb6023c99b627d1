"""A paper gateway for historical replays: every intent is acknowledged and filled at once.

It cannot move a recorded market, so it fills at the amounts the intent names, at the event time
of the intent, with no fee. It exists so that risk state (outstanding notional) is released the
way a real venue's fills would release it.
"""
from __future__ import annotations

from tapedeck.domain import events as ev


class PaperGateway:
    def __init__(self, source: str = "paper"):
        self.source = source

    def submit(self, intent: ev.OrderIntended) -> list[ev.Event]:
        order_id = f"paper-{intent.seq}"
        return [
            ev.OrderAcknowledged(ts=intent.ts, source=self.source, cause=intent.seq, intent=intent.seq,
                                 venue=intent.venue, order_id=order_id),
            ev.OrderFilled(ts=intent.ts, source=self.source, cause=intent.seq, intent=intent.seq,
                           venue=intent.venue, amount=intent.amount, notional=intent.notional, fee=0),
        ]
