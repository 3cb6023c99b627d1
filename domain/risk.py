"""The risk gate between strategies and intents.

Strategies propose ``Intent``s; the gate turns each into an ``OrderIntended`` or an
``IntentRejected`` naming the rule. Its state (kill switch, outstanding notional per venue) is
folded from events only — operator ``KillSwitchSet`` inputs, the engine's own ``OrderIntended``
decisions and the gateways' fills/failures — so a replay reaches exactly the same verdicts.

The gate sees one event's proposals as one batch, across all strategies: ``check(intent,
pending)`` counts ``pending``, the notional already approved for that venue in the batch (not
yet folded back through ``on_intended``), so two strategies reacting to the same event cannot
together exceed a venue's ``max_outstanding``.

**Daily loss limit** (``[risk] daily_loss_limit``, risk-currency base units; issue 13, the live
runner's ``--execute`` requires it): the gate books the risk-currency cash flow of every fill per
UTC day of *event time* (``ts // DAY_NS``): a ``sell`` receives its notional, a ``buy`` or
``liquidate`` (or any other side) pays it, an ``arb`` (risk currency in, risk currency out) earns
``amount - notional``; a fee in the risk asset is paid; ``InventoryChanged`` of the risk asset is
booked as it stands. What a fill bought is counted as spent until it is sold (no price marks it),
so the figure is a conservative bound on the day's loss: once the day's net outflow reaches the
limit, every intent that day is refused. The day rolls over at the first event of the next day.
Folded from recorded events only, so a replay refuses the same intents.

**Cancels** (``side = "cancel"``, ``target`` the client id of the strategy's resting order to
cancel, ``amount = notional = 0``): a cancel only removes risk, so it passes the kill switch, the
daily loss limit and the notional limits; one that names no target or carries an amount or notional
is refused. ``OrderCanceled`` frees the canceled order's outstanding notional (and ends the cancel).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from tapedeck.domain import events as ev

DAY_NS = 86_400 * 10**9
CANCEL = "cancel"  # the side of a cancel intent (module docstring)
RISK_ASSET = "USDC"  # the risk currency (notionals are its base units); a fee in it is booked as paid


class Intent(msgspec.Struct, frozen=True, gc=False):
    """What a strategy would like to do; not yet an event.

    A frozen msgspec Struct, not a dataclass, because strategies build one per decision on the hot
    path: a frozen dataclass of these 17 fields took ~11 us to construct, the Struct ~0.7 us.
    Positional and keyword construction, equality and hashing are as they were.

    ``client_id`` is the strategy's own name for it, unique among its intents in flight: the
    verdict and every execution event come back to the strategy with it (``Engine``). Left empty,
    the engine names it ``auto-<n>`` (n counts the strategy's unnamed intents)."""

    strategy: str
    venue: str
    instrument: str
    side: str
    amount: int
    notional: int  # risk-currency base units
    target: str = ""  # whom an on-chain action is about (a liquidation's borrower)
    max_priority_fee: int = 0  # tip bid per gas (wei) for chain venues
    client_id: str = ""
    route: tuple[str, ...] = ()  # pools an executor contract swaps through, in order
    min_profit: int = 0  # the executor reverts below this (base units of profit_asset)
    profit_asset: str = ""
    private: bool = False  # a bundle to a builder rather than the public mempool
    limit_price: int = 0  # book venues: worst price, 10**-price_decimals quote units; 0 = market
    price_decimals: int = 0
    tif: str = ""  # "ioc" | "gtc" | "alo"; "" = the venue's default (IOC)
    reduce_only: bool = False  # perp exits: may only shrink the position


@dataclass(frozen=True)
class VenueLimits:
    max_notional: int  # largest single intent
    max_outstanding: int  # intended but not yet filled/failed, summed


@dataclass
class RiskGate:
    default: VenueLimits
    venues: dict[str, VenueLimits] = field(default_factory=dict)
    kill_switch: bool = False
    kill_reason: str = ""
    outstanding: dict[str, int] = field(default_factory=dict)  # venue -> notional
    open_intents: dict[int, tuple[str, int]] = field(default_factory=dict)  # intent seq -> (venue, notional)
    daily_loss_limit: int | None = None  # None: no limit (see the module docstring)
    day: int = -1  # UTC day (event time) that ``day_flow`` counts
    day_flow: int = 0  # net risk-currency flow of that day's fills (negative: paid out)
    sides: dict[int, str] = field(default_factory=dict)  # intent seq -> side, while it can still fill

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "RiskGate":
        """``[risk]`` table: default_max_notional, default_max_outstanding, kill_switch, venues.<v>,
        daily_loss_limit."""
        try:
            default = VenueLimits(int(cfg["default_max_notional"]), int(cfg["default_max_outstanding"]))
            venues = {
                name: VenueLimits(
                    int(v.get("max_notional", default.max_notional)),
                    int(v.get("max_outstanding", default.max_outstanding)),
                )
                for name, v in sorted(cfg.get("venues", {}).items())
            }
            loss = cfg.get("daily_loss_limit")
            loss = None if loss is None else int(loss)
        except KeyError as e:
            raise ValueError(f"risk config is missing {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            raise ValueError(f"risk config has a bad limit: {e}") from None
        return cls(default=default, venues=venues, kill_switch=bool(cfg.get("kill_switch", False)),
                   daily_loss_limit=loss)

    # ------------------------------------------------------------------ folding

    def on_kill_switch(self, e: ev.KillSwitchSet) -> None:
        self.kill_switch = e.engaged
        self.kill_reason = e.reason

    def on_intended(self, e: ev.OrderIntended) -> None:
        self.outstanding[e.venue] = self.outstanding.get(e.venue, 0) + e.notional
        self.open_intents[e.seq] = (e.venue, e.notional)
        if self.daily_loss_limit is not None:
            self.sides[e.seq] = e.side

    def _book(self, ts: int, flow: int) -> None:
        day = ts // DAY_NS
        if day != self.day:
            self.day, self.day_flow = day, 0
        self.day_flow += flow

    def on_inventory(self, e: ev.InventoryChanged) -> None:
        if self.daily_loss_limit is not None and e.asset == RISK_ASSET:
            self._book(e.ts, e.delta)

    def on_canceled(self, e: ev.OrderCanceled) -> None:
        """The canceled order and the cancel both end: the order's notional is no longer outstanding."""
        for seq in (e.intent, e.cancel_intent):
            self.sides.pop(seq, None)
            opened = self.open_intents.pop(seq, None)
            if opened is not None:
                self.outstanding[opened[0]] -= opened[1]

    def on_finished(self, e: ev.OrderFilled | ev.OrderFailed) -> None:
        if self.daily_loss_limit is not None:
            if type(e) is ev.OrderFilled:
                side = self.sides.get(e.intent)
                if side is not None:
                    flow = e.notional if side == "sell" else e.amount - e.notional if side == "arb" else -e.notional
                    self._book(e.ts, flow - (e.fee if e.fee_asset == RISK_ASSET else 0))
            if type(e) is ev.OrderFailed or e.final:
                self.sides.pop(e.intent, None)
        if type(e) is ev.OrderFilled and not e.final:
            return  # a partial fill: the rest is still outstanding
        opened = self.open_intents.pop(e.intent, None)
        if opened is not None:
            venue, notional = opened
            self.outstanding[venue] -= notional

    # ------------------------------------------------------------------ deciding

    def day_loss(self, now: int | None = None) -> int:
        """The booked loss (>= 0) of the UTC day of event time ``now`` (None: the day last booked)."""
        if now is not None and now // DAY_NS != self.day:
            return 0
        return max(0, -self.day_flow)

    def check(self, intent: Intent, pending: int = 0, now: int | None = None) -> str:
        """'' if the intent may go, else the reason it may not (``pending``: approved for the same
        venue earlier in this event's batch, by any strategy, not yet folded; ``now``: the event
        time of the event being handled, for the daily loss limit's day)."""
        if intent.side == CANCEL:
            if not intent.target or intent.amount or intent.notional:
                return (f"a cancel names the client id of the order to cancel (target) and has no amount or "
                        f"notional; got target {intent.target!r}, amount {intent.amount}, notional {intent.notional}")
            return ""  # it only removes risk: allowed with the kill switch engaged or the day's loss reached
        if self.kill_switch:
            return f"kill switch engaged ({self.kill_reason})" if self.kill_reason else "kill switch engaged"
        if self.daily_loss_limit is not None:
            loss = self.day_loss(now)
            if loss >= self.daily_loss_limit > 0:
                return f"daily loss {loss} reached daily_loss_limit {self.daily_loss_limit}"
        venue, notional = intent.venue, intent.notional
        limits = self.venues.get(venue, self.default)
        if notional > limits.max_notional:
            return f"notional {notional} exceeds {venue} max_notional {limits.max_notional}"
        after = self.outstanding.get(venue, 0) + pending + notional
        if after > limits.max_outstanding:
            return f"outstanding {after} would exceed {venue} max_outstanding {limits.max_outstanding}"
        return ""
