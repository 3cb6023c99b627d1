"""The deterministic core: fold each event into state, ask the strategies, gate their intents.

``Engine.handle(event)`` is a pure function of the events handled so far: it reads no clock, no
environment and no randomness, and iterates only over insertion-ordered containers. It returns the
decision events (not yet numbered: the recorder numbers them, then calls ``decided``), each naming
its cause. The engine folds its own decisions too (an intent raises the venue's outstanding
notional and gets its seq), so in a replay, where recorded decisions are compared rather than fed,
the state evolves exactly as it did live.

The contract with strategies (``Strategy``; all of it optional beyond ``name``/``handles``/``on_event``):

* ``on_event(event, state) -> proposals`` for each event of a type in ``handles``. Proposals are
  decision events the strategy makes (``OpportunityDetected``, ``OpportunitySuppressed``,
  ``TimerRequested``; their ``strategy`` must be its own name) and ``Intent``s for the risk gate.
* ``order_events`` (optional): the verdict and execution types the strategy's ``on_order`` acts on;
  the engine does not call it for the others (an ``OrderIntended`` approval, say), which it declares
  it would answer with nothing. Absent: every one is delivered.
* Correlation: an ``Intent`` carries the strategy's ``client_id``. Its verdict (the ``OrderIntended``
  or ``IntentRejected``, still unnumbered) and later every execution event of that intent
  (``OrderAcknowledged``, ``TransactionSubmitted/Included/Dropped``, ``OrderFilled``, ``OrderFailed``,
  matched by ``intent`` seq) go to that strategy only, as ``on_order(event, order, state) ->
  proposals`` if it defines ``on_order``. ``order`` is the engine's ``state.Order`` record, already
  updated (its ``intent`` seq is 0 while the approval itself is being delivered: the recorder
  numbers it next); ``state.in_flight(name)`` holds the strategy's approved, unfinished orders by
  client id. A client id still in flight cannot be reused (the intent is rejected).
* Cancels: an ``Intent`` with ``side = "cancel"`` and ``target`` = the client id of a resting order
  of the strategy's own (``domain/risk.py``) is gated and intended like any other. The venue's
  ``OrderCanceled`` ends both (the order ``canceled``, the cancel too) and goes to ``on_order`` once,
  with the canceled order's record; a cancel that found no resting order is the cancel's own
  ``OrderFailed`` (``order`` is then the cancel's record, ``order.side == "cancel"``).
* Timers: a ``TimerRequested`` proposal; the runner's ``TimerFired`` goes to ``on_event`` of the
  strategy it names only (it need not be in ``handles``).
* Risk: all proposals caused by one event (every strategy's, and those made in reaction to its
  verdicts) are one batch for the gate.
* Failure isolation: an exception from a strategy (or a malformed proposal) becomes a
  ``StrategyFailed`` decision caused by the event; after ``suspend_after_failures`` of them (0:
  never) the strategy is suspended: it is asked nothing more, though its orders are still folded.
  Proposals it returned in that same call are dropped. The run goes on.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Protocol, Sequence

from tapedeck.domain import events as ev
from tapedeck.domain.risk import Intent, RiskGate
from tapedeck.domain.state import (
    ACKNOWLEDGED, CANCELED, FAILED, FILLED, INTENDED, PARTIALLY_FILLED, REJECTED, SUBMITTED, MarketState, Order,
)

Proposal = ev.Event | Intent

# Rounds of reactions to verdicts within one event (a strategy that re-proposes on every verdict
# would otherwise never stop); beyond it the strategy fails.
MAX_VERDICT_ROUNDS = 8
# Decision types only the engine makes.
_ENGINE_ONLY = (ev.OrderIntended, ev.IntentRejected, ev.StrategyFailed)
_EXECUTIONS = (ev.OrderAcknowledged, ev.OrderFilled, ev.OrderFailed, ev.TransactionSubmitted,
               ev.TransactionIncluded, ev.TransactionDropped, ev.OrderCanceled)
_NONE: tuple[ev.Event, ...] = ()  # the quiet path's answer (no allocation)


def _nothing(event: ev.Event) -> Sequence[ev.Event]:
    """The handler of an event type nothing folds and no strategy is asked about."""
    return _NONE

# Event type -> may a strategy propose it: True (a decision with a ``strategy`` field, which must be
# the proposer's name), "" (a decision without one), False (not a decision, or engine-only). Filled
# on first sight of each type (``_decidable``); only looked up, never iterated.
_DECIDABLE: dict[type, bool | str] = {}


def _decidable(t: type) -> bool | str:
    if not (isinstance(t, type) and issubclass(t, ev.Event)) or t.KIND != ev.DECISION or t in _ENGINE_ONLY:
        return False
    return True if "strategy" in t.__struct_fields__ else ""
_MESSAGE_LIMIT = 300
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class Strategy(Protocol):
    """A strategy reads state and proposes decisions (events) or intents (to be risk-gated).

    Optionally ``on_order(event, order, state) -> Sequence[Proposal]`` (see the module docstring);
    ``StrategyBase`` gives a no-op one."""

    name: str
    handles: tuple[type[ev.Event], ...]

    def on_event(self, event: ev.Event, state: MarketState) -> Sequence[Proposal]: ...


class StrategyBase:
    """Optional base class: handles nothing, proposes nothing, ignores its orders' news."""

    name: str = ""
    handles: tuple[type[ev.Event], ...] = ()

    def on_event(self, event: ev.Event, state: MarketState) -> Sequence[Proposal]:
        return ()

    def on_order(self, event: ev.Event, order: Order, state: MarketState) -> Sequence[Proposal]:
        return ()


class ProposalError(ValueError):
    """A strategy proposed something the engine cannot take (recorded as its StrategyFailed)."""


def engine_options(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``Engine`` from a config's ``[engine]`` table:
    ``suspend_after_failures`` (default 1: a strategy is out after its first exception; 0: never)."""
    n = cfg.get("suspend_after_failures", 1)
    if type(n) is not int or n < 0:
        raise ValueError(f"[engine] suspend_after_failures must be an integer >= 0, got {n!r}")
    return {"suspend_after_failures": n}


class _Batch:
    """The decisions caused by one event, and the notional the gate approved in it per venue."""

    __slots__ = ("cause", "out", "pending", "verdicts")

    def __init__(self, cause: ev.Event):
        self.cause = cause
        self.out: list[ev.Event] = []
        self.pending: dict[str, int] = {}
        self.verdicts: list[tuple[Any, ev.Event, Order]] = []


class Engine:
    def __init__(self, strategies: Sequence[Strategy], risk: RiskGate, *, suspend_after_failures: int = 1):
        self.state = MarketState()
        self.risk = risk
        self.strategies = list(strategies)
        self.suspend_after_failures = suspend_after_failures
        names = [s.name for s in self.strategies]
        for n in names:
            if names.count(n) > 1:
                raise ValueError(f"two strategies are named {n!r}; names route timers and orders")
        self.failures: dict[str, int] = {}  # strategy -> StrategyFailed count
        self.suspended: list[str] = []  # in the order they were suspended
        self._active: dict[str, Any] = {s.name: s for s in self.strategies}
        self._on_order: dict[str, Callable[..., Sequence[Proposal]] | None] = {
            s.name: getattr(s, "on_order", None) for s in self.strategies
        }
        self._order_events: dict[str, tuple[type, ...] | None] = {}  # strategy -> what on_order acts on (None: all)
        for s in self.strategies:
            types = getattr(s, "order_events", None)
            if types is not None and (isinstance(types, (str, type)) or not all(isinstance(t, type) for t in types)):
                raise ValueError(f"strategy {s.name!r}: order_events must be a tuple of event types, got {types!r}")
            self._order_events[s.name] = None if types is None else tuple(types)
        self._intents: dict[int, Order] = {}  # intent seq -> order in flight
        self._unnamed: dict[str, int] = {}  # strategy -> intents it left without a client id
        self._folds: dict[type[ev.Event], Callable[[Any], None]] = {
            ev.QuoteUpdated: self.state.on_quote,
            ev.V2ReservesSynced: self.state.on_v2,
            ev.V3Swapped: self.state.on_v3,
            ev.V3Minted: self.state.on_v3,
            ev.V3Burned: self.state.on_v3,
            ev.V3Collected: self.state.on_v3,
            ev.V3PoolSnapshot: self.state.on_v3,
            ev.SourceStale: self.state.on_source_stale,
            ev.BlockProduced: self.state.on_block,
            ev.ReorgWindowSet: self.state.on_reorg_window,
            ev.LogRetracted: self.state.on_log_retracted,
            ev.RaydiumPoolSynced: self.state.on_solana,
            ev.SplTokenAccountSynced: self.state.on_solana,
            ev.WhirlpoolSynced: self.state.on_solana,
            ev.WhirlpoolTickArraySynced: self.state.on_solana,
            ev.BookDepthUpdated: self.state.on_depth,
            ev.KillSwitchSet: risk.on_kill_switch,
            ev.OrderFilled: risk.on_finished,
            ev.OrderFailed: risk.on_finished,
            ev.InventoryChanged: risk.on_inventory,  # the daily loss limit books a leftover's risk currency
            ev.OrderCanceled: risk.on_canceled,  # frees the canceled order's outstanding notional
        }
        self._dispatch: dict[type[ev.Event], tuple[Callable[[Any], None] | None, tuple[Any, ...],
                                                   Callable[[Any], Sequence[ev.Event]] | None]] = {}
        # Per event type, a handler specialised for its route (``_specialise``); ``self.handle`` looks
        # it up by exact type. The dict is updated in place, so a ``handle`` bound before a strategy
        # is suspended still routes as the engine now does.
        self._specialised()

    def _specialised(self) -> None:
        """Route, and bind ``self.handle`` to the per-type handlers (its closures hold this engine's
        state, so a copy of the engine must build its own: ``__getstate__``/``__setstate__``)."""
        self._handlers: dict[type[ev.Event], Callable[[Any], Sequence[ev.Event]]] = {}
        self._route()
        handlers = self._handlers

        def handle(event: ev.Event, handlers: dict[type[ev.Event], Callable[[Any], Sequence[ev.Event]]] = handlers
                   ) -> Sequence[ev.Event]:
            return handlers[type(event)](event)

        handle.__doc__ = Engine.handle.__doc__
        self.handle = handle  # type: ignore[method-assign]  # decides as ``Engine.handle`` does, faster

    def __getstate__(self) -> dict[str, Any]:
        """A copy (``copy.deepcopy``, pickle) without the handlers: closures over this engine's state."""
        state = self.__dict__.copy()
        del state["handle"], state["_handlers"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._specialised()

    def _route(self) -> None:
        """One lookup per event, by exact type: (fold or None, strategies asked, router or None)."""
        routes: dict[type[ev.Event], list[Any]] = {}
        for s in self._active.values():
            for t in s.handles:
                routes.setdefault(t, []).append(s)
        routers: dict[type[ev.Event], Callable[[Any], Sequence[ev.Event]]] = {t: self._execution for t in _EXECUTIONS}
        routers[ev.TimerFired] = self._timer
        self._dispatch = {t: (self._folds.get(t), tuple((s, s.on_event) for s in routes.get(t, ())), routers.get(t))
                          for t in ev.EVENT_TYPES}
        self._handlers.clear()
        self._handlers.update((t, self._specialise(*route)) for t, route in self._dispatch.items())

    def _specialise(self, fold: Callable[[Any], None] | None, strategies: tuple[Any, ...],
                    router: Callable[[Any], Sequence[ev.Event]] | None) -> Callable[[Any], Sequence[ev.Event]]:
        """The handler of one route, deciding exactly as ``Engine.handle`` does: the general path
        costs a tuple unpack, a loop and four tests per event, which is a fifth of the engine's time
        on a quote tape, so the common shapes (a fold and one strategy; a fold only) get closures."""
        if router is not None or len(strategies) > 1:
            return type(self).handle.__get__(self)  # executions, timers, several strategies: the general path
        if not strategies:
            if fold is None:
                return _nothing
            return lambda event: fold(event) or _NONE  # type: ignore[func-returns-value]
        ((strategy, on_event),) = strategies
        state, take, settle, failed = self.state, self._take, self._settle, self._failed

        def one(event: ev.Event) -> Sequence[ev.Event]:
            if fold is not None:
                fold(event)
            try:
                proposals = on_event(event, state)
            except Exception as exc:
                batch = _Batch(event)
                batch.out.append(failed(event, strategy, exc))
                return settle(batch)
            if proposals:
                batch = _Batch(event)
                take(batch, strategy, proposals)
                return settle(batch)
            return _NONE

        return one

    # ------------------------------------------------------------------ handling

    def handle(self, event: ev.Event) -> Sequence[ev.Event]:
        """Fold one input or execution event and return the decisions it caused (a shared empty
        tuple when none: the common case allocates nothing)."""
        fold, strategies, router = self._dispatch[type(event)]
        if fold is not None:
            fold(event)
        if router is not None:
            return router(event)
        if not strategies:
            return _NONE
        state = self.state
        batch = None
        for strategy, on_event in strategies:
            try:
                proposals = on_event(event, state)
            except Exception as exc:
                if batch is None:
                    batch = _Batch(event)
                batch.out.append(self._failed(event, strategy, exc))
                continue
            if proposals:
                if batch is None:
                    batch = _Batch(event)
                self._take(batch, strategy, proposals)
        return _NONE if batch is None else self._settle(batch)

    def decided(self, decision: ev.Event) -> None:
        """Fold a decision once the recorder has numbered it (so executions can refer to it)."""
        if type(decision) is ev.OrderIntended:
            d: ev.OrderIntended = decision  # type: ignore[assignment]
            self.risk.on_intended(d)
            mine = self.state.orders.get(d.strategy)
            order = mine.get(d.client_id) if mine else None
            if order is None or order.intent:  # not approved by this engine (a foreign log): track it anyway
                order = Order(d.strategy, d.client_id, d.venue, d.instrument, d.side, d.amount, d.notional)
                self.state.orders.setdefault(d.strategy, {})[d.client_id] = order
            order.intent = d.seq
            self._intents[d.seq] = order

    # ------------------------------------------------------------------ routing

    def _execution(self, e: Any) -> Sequence[ev.Event]:
        """Update the intent's order and tell the strategy that proposed it (only that one)."""
        t = type(e)
        order = self._canceled(e) if t is ev.OrderCanceled else self._intents.get(e.intent)
        if order is None:
            return _NONE
        if t is ev.OrderFilled:
            order.filled_amount += e.amount
            order.filled_notional += e.notional
            if e.final:
                order.status = FILLED
                self._finish(order)
            else:
                order.status = PARTIALLY_FILLED
        elif t is ev.OrderFailed:
            order.status, order.reason = FAILED, e.reason
            self._finish(order)
        elif t is ev.OrderAcknowledged:
            order.order_id = e.order_id
            if order.status in (INTENDED, SUBMITTED):
                order.status = ACKNOWLEDGED
        elif t is ev.TransactionSubmitted:
            order.tx = e.tx
            if order.status == INTENDED:
                order.status = SUBMITTED
        on_order = self._on_order.get(order.strategy)
        if on_order is None:
            return _NONE
        wanted = self._order_events.get(order.strategy)
        if wanted is not None and t not in wanted:
            return _NONE  # the strategy declared it does nothing with these
        batch = _Batch(e)
        self._call(batch, self._active[order.strategy], on_order, e, order)
        return self._settle(batch)

    def _canceled(self, e: ev.OrderCanceled) -> Order | None:
        """End the canceled order and the cancel; the record the strategy is told about (the order's,
        else the cancel's when the order is not known here)."""
        cancel = self._intents.get(e.cancel_intent) if e.cancel_intent else None
        if cancel is not None:
            cancel.status = CANCELED
            self._finish(cancel)
        order = self._intents.get(e.intent)
        if order is None:
            return cancel
        order.status = CANCELED
        self._finish(order)
        return order

    def _timer(self, e: ev.TimerFired) -> Sequence[ev.Event]:
        strategy = self._active.get(e.strategy)
        if strategy is None:  # unknown or suspended: nobody to wake
            return _NONE
        batch = _Batch(e)
        self._call(batch, strategy, strategy.on_event, e)
        return self._settle(batch) if batch.out else _NONE

    def _finish(self, order: Order) -> None:
        mine = self.state.orders.get(order.strategy)
        if mine is not None and mine.get(order.client_id) is order:
            del mine[order.client_id]
        self._intents.pop(order.intent, None)

    # ------------------------------------------------------------------ deciding

    def _call(self, batch: _Batch, strategy: Any, fn: Callable[..., Sequence[Proposal]], *args: Any) -> None:
        try:
            proposals = fn(*args, self.state)
        except Exception as exc:
            batch.out.append(self._failed(batch.cause, strategy, exc))
            return
        if proposals:
            self._take(batch, strategy, proposals)

    def _take(self, batch: _Batch, strategy: Any, proposals: Sequence[Proposal]) -> None:
        """Check a strategy's proposals, then decide them: all of them, or (if one is bad) none.

        The common proposals (an ``Intent`` itself, a decision type strategies may make) are
        checked by a fast path that decides exactly as the general checks below it; anything the
        fast path does not accept is checked by those (which raise the same messages)."""
        name = strategy.name
        fast = True
        try:
            proposals = tuple(proposals)
        except Exception as exc:
            batch.out.append(self._failed(batch.cause, strategy, exc))
            return
        try:
            for p in proposals:
                t = type(p)
                if t is Intent:
                    a, n, f = p.amount, p.notional, p.max_priority_fee  # type: ignore[union-attr]
                    if (p.strategy != name or type(a) is not int or a < 0 or type(n) is not int or n < 0  # type: ignore[union-attr]
                            or type(f) is not int or f < 0 or type(p.client_id) is not str):  # type: ignore[union-attr]
                        fast = False
                        break
                else:
                    named = _DECIDABLE.get(t)
                    if named is None:
                        named = _DECIDABLE[t] = _decidable(t)
                    if named is False or (named and p.strategy != name):  # type: ignore[union-attr]
                        fast = False
                        break
        except Exception:  # the general checks below meet it again and record it
            fast = False
        if fast:
            for p in proposals:
                if type(p) is Intent:
                    self._gate(batch, strategy, p)  # type: ignore[arg-type]
                else:
                    batch.out.append(p)  # type: ignore[arg-type]
            return
        self._take_checked(batch, strategy, proposals)

    def _take_checked(self, batch: _Batch, strategy: Any, proposals: tuple[Any, ...]) -> None:
        """``_take``'s general checks (every rule, each with its message), then the decisions."""
        name = strategy.name
        try:
            for p in proposals:
                if isinstance(p, Intent):
                    if p.strategy != name:
                        raise ProposalError(f"an intent for strategy {p.strategy!r}")
                    for f in ("amount", "notional", "max_priority_fee"):
                        v = getattr(p, f)
                        if type(v) is not int or v < 0:
                            raise ProposalError(f"an intent whose {f} is {v!r}, not an integer >= 0")
                    if type(p.client_id) is not str:
                        raise ProposalError(f"an intent whose client_id is {p.client_id!r}")
                elif isinstance(p, ev.Event):
                    if p.KIND != ev.DECISION or type(p) in _ENGINE_ONLY:
                        raise ProposalError(f"a {type(p).__name__}, which strategies cannot decide")
                    if getattr(p, "strategy", name) != name:
                        raise ProposalError(f"a {type(p).__name__} for strategy {p.strategy!r}")  # type: ignore[attr-defined]
                else:
                    raise ProposalError(f"{type(p).__name__} {p!r:.80}, neither an event nor an Intent")
        except Exception as exc:
            batch.out.append(self._failed(batch.cause, strategy, exc))
            return
        for p in proposals:
            if isinstance(p, Intent):
                self._gate(batch, strategy, p)
            else:
                batch.out.append(p)  # type: ignore[arg-type]

    def _gate(self, batch: _Batch, strategy: Any, p: Intent) -> None:
        name, cause, state = strategy.name, batch.cause, self.state
        client_id, venue, notional, ts = p.client_id, p.venue, p.notional, cause.ts
        if not client_id:
            n = self._unnamed[name] = self._unnamed.get(name, 0) + 1
            client_id = f"auto-{n}"
        mine = state.orders.get(name)
        pending = batch.pending
        if mine is not None and client_id in mine:
            reason = f"client_id {client_id!r} is already in flight"
        else:
            reason = self.risk.check(p, pending.get(venue, 0), ts)
        order = Order(name, client_id, venue, p.instrument, p.side, p.amount, notional)
        verdict: ev.Event
        if reason:
            order.status, order.reason = REJECTED, reason
            verdict = ev.IntentRejected(ts=ts, source="engine", cause=cause.seq, strategy=name,
                                        venue=venue, notional=notional, reason=reason, client_id=client_id)
        else:
            pending[venue] = pending.get(venue, 0) + notional
            if mine is None:
                mine = state.orders[name] = {}
            mine[client_id] = order  # in flight from approval; decided() gives it its seq
            verdict = ev.OrderIntended(ts=ts, source="engine", cause=cause.seq, strategy=name,
                                       venue=venue, instrument=p.instrument, side=p.side, amount=p.amount,
                                       notional=notional, target=p.target, max_priority_fee=p.max_priority_fee,
                                       client_id=client_id, route=p.route, min_profit=p.min_profit,
                                       profit_asset=p.profit_asset, private=p.private,
                                       limit_price=p.limit_price, price_decimals=p.price_decimals, tif=p.tif,
                                       reduce_only=p.reduce_only)
        batch.out.append(verdict)
        batch.verdicts.append((strategy, verdict, order))

    def _settle(self, batch: _Batch) -> list[ev.Event]:
        """Tell each strategy its verdicts; what it proposes in reaction joins the same batch."""
        rounds = 0
        while batch.verdicts:
            verdicts, batch.verdicts = batch.verdicts, []
            rounds += 1
            looped: list[str] = []
            for strategy, verdict, order in verdicts:
                on_order = self._on_order.get(strategy.name)
                if on_order is None or strategy.name in looped:
                    continue
                if rounds > MAX_VERDICT_ROUNDS:
                    looped.append(strategy.name)
                    loop = ProposalError(f"still proposing after {MAX_VERDICT_ROUNDS} rounds of verdicts on one event")
                    batch.out.append(self._failed(batch.cause, strategy, loop))
                    continue
                wanted = self._order_events.get(strategy.name)
                if wanted is not None and type(verdict) not in wanted:
                    continue  # the strategy declared it does nothing with these (an approval, say)
                self._call(batch, strategy, on_order, verdict, order)
        return batch.out

    def _failed(self, cause: ev.Event, strategy: Any, exc: Exception) -> ev.StrategyFailed:
        name = strategy.name
        n = self.failures[name] = self.failures.get(name, 0) + 1
        suspend = 0 < self.suspend_after_failures <= n and name in self._active
        if suspend:
            self.suspended.append(name)
            del self._active[name]
            self._on_order[name] = None
            self._route()
        message = _ADDRESS.sub("", " ".join(str(exc).split()))  # no object addresses: replay must match
        if len(message) > _MESSAGE_LIMIT:
            message = message[: _MESSAGE_LIMIT - 3] + "..."
        return ev.StrategyFailed(ts=cause.ts, source="engine", cause=cause.seq, strategy=name,
                                 error=type(exc).__name__, message=message, suspended=suspend)
