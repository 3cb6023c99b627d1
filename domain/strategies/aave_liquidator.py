"""Aave v3 liquidator: see a position become liquidatable on the event that made it so, size the
most profitable liquidation exactly, and intend it through a flash-loan executor.

Why this shape: liquidations are races. The **fast path** acts in the handling of the event that
moved a user (its own Supply/Withdraw/Borrow/Repay/..., an oracle update of an asset it holds, an
index update), re-evaluating only the users the book says may have crossed HF 1
(``domain/aave_book.py``). A **periodic full scan** (``TimerRequested``/``TimerFired``, every
``scan_interval_s`` of event time) is the backup and also catches what only interest accrual did;
it starts with the first event of the market itself (an oracle or pool event alone is not one), so
a world without the market sees no timers. ``fast_path = false`` leaves the scan as the only path
that acts (the book still notes when each user became liquidatable, so both paths report their
detection latency).

Repeats: one intent per user within ``dedupe_s`` of event time, and never while one for that user
is in flight (the engine's ``in_flight`` by client id ``liq-<n>``). A ``CircuitBreaker`` stops
intents after ``breaker_failures`` consecutive failures (OrderFailed, TransactionDropped, a
reverted inclusion) for ``breaker_timeout_s``, then lets one probe through.

Sizing: for each (debt, collateral) pair of the user, the request ``x`` up to the close factor's cap
(the market's ``rules``), what ``liquidationCall`` repays and seizes (exact contract math), the
collateral sold through the best configured route (``domain/dex_quotes.py``), minus the flash-loan
premium (``flash_premium_bps`` of the debt borrowed, percentMul) and gas
(``gas_units`` x (next base fee + ``priority_fee_wei``), valued in the debt asset through the
oracle prices of ``native_asset``). The cap is taken unless profit still rises below it (price
impact), then a ternary search of the integer sizes. Below ``min_profit_base`` (base currency, 8 dp)
it records ``LiquidationSkipped``; otherwise ``LiquidationOpportunity`` and the intent: side
``liquidate``, ``instrument = AssetPair(collateral, debt)``, ``amount`` = debt to cover, ``target`` the
user, ``route`` the pools, ``min_profit`` = gas + minimum in debt units (the executor's token profit
must pay for its gas), ``profit_asset`` the debt asset, ``private`` from config. A skip is
recorded once per user and reason within ``skip_repeat_s`` (default 60 s of event time).

Config (``[[strategies]] kind = "aave_liquidator"``): ``chain``, ``venue`` (default
``aave-v3:<chain>``, the sim gateway's name), ``rules`` ("v3.0"/"v3.3"), ``pools`` (tables of
``pool``, ``kind`` v2/v3, ``token0``, ``token1``, ``fee``, ``tick_spacing``), ``max_hops``,
``fast_path``, ``scan_interval_s``, ``dedupe_s``, ``min_profit_base``, ``flash_premium_bps``,
``gas_units``, ``priority_fee_wei``, ``gas_price_wei`` (before the first block), ``native_asset``,
``bid_profit_share_bps`` (0: bid ``priority_fee_wei``; else that share of the profit before the tip,
as the tip per gas, at least ``priority_fee_wei``: what the sim's profit-share searchers do),
``private``, ``max_route_age_s``/``max_price_age_s`` (0: off), ``breaker_failures``,
``breaker_timeout_s``, ``skip_repeat_s``.
"""
from __future__ import annotations

from operator import attrgetter
from typing import Any, Callable, Sequence

from tapedeck.domain import events as ev
from tapedeck.domain.aave_book import Account, AaveBook, chain_time_s
from tapedeck.domain.aave_v3 import MAX_UINT256, WAD
from tapedeck.domain.circuit_breaker import OPEN, CircuitBreaker
from tapedeck.domain.decimals import seconds_to_ns
from tapedeck.domain.dex_quotes import PoolSpec, Route, best, marginal_ratio, quote_route, routes
from tapedeck.domain.ids import AssetPair
from tapedeck.domain.risk import Intent
from tapedeck.domain.state import MarketState, Order

_AAVE = (ev.AaveReserveConfigured, ev.AaveEModeConfigured, ev.AaveReserveDataUpdated, ev.AaveSupplied,
         ev.AaveWithdrawn, ev.AaveBorrowed, ev.AaveRepaid, ev.AaveCollateralToggled, ev.AaveEModeSet,
         ev.AaveATokenTransferred, ev.AaveLiquidationObserved, ev.OracleUpdated)
_MARKET = _AAVE[:-1]  # the market's own events (an oracle or a pool alone is not an Aave market)
_POOLS = (ev.V2ReservesSynced, ev.V3Swapped, ev.V3Minted, ev.V3Burned)
_REORG = (ev.ReorgWindowSet, ev.BlockProduced, ev.LogRetracted)  # a live chain's reorgs (AaveBook.on_reorg)
_WATCHED = ("below min profit", "no route", "stale route", "stale price")  # re-tried when pools move
FAST, SCAN = "fast", "scan"
_POOL_ID = attrgetter("pool")


class _Plan:
    __slots__ = ("collateral", "debt", "liq", "proceeds", "premium", "gas", "profit", "route", "dp", "tip")

    def __init__(self, collateral: str, debt: str, liq: Any, proceeds: int, premium: int, gas: int,
                 route: Route, dp: int, tip: int) -> None:
        self.collateral, self.debt, self.liq, self.route, self.dp = collateral, debt, liq, route, dp
        self.proceeds, self.premium, self.gas, self.tip = proceeds, premium, gas, tip
        self.profit = proceeds - liq.debt_to_cover - premium - gas


class AaveLiquidator:
    handles = _AAVE + _POOLS + _REORG
    # what on_order acts on (the engine skips the call for the rest: an approval, an acknowledgement)
    order_events = (ev.IntentRejected, ev.OrderFilled, ev.OrderFailed, ev.TransactionDropped, ev.TransactionIncluded)

    def __init__(self, name: str = "aave_liquidator", chain: str = "ethereum", venue: str = "", rules: str = "v3.0",
                 pools: Sequence[dict[str, Any]] = (), max_hops: int = 2, fast_path: bool = True,
                 scan_interval_s: Any = 12, dedupe_s: Any = 2, min_profit_base: int = 0, flash_premium_bps: int = 5,
                 gas_units: int = 600_000, priority_fee_wei: int = 1_000_000_000, gas_price_wei: int = 0,
                 native_asset: str = "", private: bool = True, max_route_age_s: Any = 0, max_price_age_s: Any = 0,
                 breaker_failures: int = 5, breaker_timeout_s: Any = 60, skip_repeat_s: Any = 60,
                 bid_profit_share_bps: int = 0, **unknown: Any) -> None:
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        self.name, self.chain = name, chain
        self.venue = venue or f"aave-v3:{chain}"
        self.book = AaveBook(rules, chain)
        self.pools = [PoolSpec.from_config(p) for p in pools]
        self.max_hops = int(max_hops)
        self.fast_path = bool(fast_path)
        self.scan_ns = seconds_to_ns(scan_interval_s)
        self.dedupe_ns = seconds_to_ns(dedupe_s)
        self.skip_repeat_ns = seconds_to_ns(skip_repeat_s)
        self.min_profit_base = int(min_profit_base)
        self.premium_bps = int(flash_premium_bps)
        self.gas_units, self.priority_fee, self.gas_price = int(gas_units), int(priority_fee_wei), int(gas_price_wei)
        self.native = native_asset.lower()
        self.private = bool(private)
        self.max_route_age_ns = seconds_to_ns(max_route_age_s)
        self.max_price_age_ns = seconds_to_ns(max_price_age_s)
        self.breaker = CircuitBreaker(int(breaker_failures), seconds_to_ns(breaker_timeout_s))
        if self.scan_ns <= 0:
            raise ValueError("scan_interval_s must be > 0")
        self.bid_bps = int(bid_profit_share_bps)
        if not 0 <= self.bid_bps < 10_000:
            raise ValueError(f"bid_profit_share_bps must be in 0..9999, got {bid_profit_share_bps!r}")
        self.intents = 0
        self._scanning = False
        self._routes: dict[tuple[str, str], list[Route]] = {}
        self._pairs: dict[tuple[str, str], str] = {}  # (collateral, debt) -> AssetPair text
        self._gas_key: tuple[str, int, int, int] = ("", -1, -1, -1)  # the last gas valuation's inputs
        self._gas_cost = 0
        self._memo_event: ev.Event | None = None  # the event _gas_memo is for
        self._gas_memo: dict[tuple[str, int], int] = {}  # (debt asset, its price) -> _gas, for _memo_event
        self._pending: dict[str, str] = {}  # user -> client id in flight
        self._cid_user: dict[str, str] = {}  # client id -> user
        self._failed: dict[str, None] = {}  # client ids whose failure was counted
        self._last_intent: dict[str, int] = {}  # user -> event time of its last intent
        self._last_skip: dict[str, tuple[str, int]] = {}
        self._watch: dict[str, None] = {}  # liquidatable users skipped for a reason the pools may lift
        self.counts = {"evaluated": 0, "deduped": 0, "in_flight": 0}

    # ------------------------------------------------------------------ events

    def on_event(self, e: ev.Event, state: MarketState) -> Sequence[ev.Event | Intent]:
        out: list[ev.Event | Intent] = []
        t = type(e)
        if not self._scanning and t in _MARKET:  # a world without the market: no timers, nothing at all
            self._scanning = True
            out.append(self._timer(e, "scan", e.ts + self.scan_ns))
        if t is ev.TimerFired:
            return out + self._on_timer(e, state)  # type: ignore[arg-type]
        if t in _REORG:
            self.book.on_reorg(e)
            return out
        users = list(self._watch) if t in _POOLS else self.book.apply(e)
        if not users:
            return out
        now = chain_time_s(e)  # an Aave log: its block's time (block_ts) when known
        self.counts["evaluated"] += len(users)
        found = self.book.evaluate(users, now, e.seq, e.ts)
        watch = self._watch
        if watch and len(found) < len(users):  # the users no longer liquidatable leave the watch list
            liquidatable = {a for a, _ in found}
            for a in users:
                if a not in liquidatable:
                    watch.pop(a, None)
        if self.fast_path:
            for a, acc in found:
                out.extend(self._act(a, acc, e, state, FAST, now))
        return out

    def _on_timer(self, e: ev.TimerFired, state: MarketState) -> list[ev.Event | Intent]:
        if e.key == "scan":
            out: list[ev.Event | Intent] = [self._timer(e, "scan", e.ts + self.scan_ns)]
            now = chain_time_s(e)
            for a, acc in self.book.rescan(now, e.ts, e.seq):
                out.extend(self._act(a, acc, e, state, SCAN, now))
            return out
        if e.key.startswith("breaker:"):
            if self.breaker.timer(int(e.key.split(":", 1)[1])):
                return [self._breaker_event(e, "timeout")]
        return []

    def _timer(self, e: ev.Event, key: str, at: int) -> ev.TimerRequested:
        return ev.TimerRequested(ts=e.ts, source="engine", cause=e.seq, strategy=self.name, key=key, at_ts=at)

    # ------------------------------------------------------------------ acting

    def _act(self, user: str, acc: Account, e: ev.Event, state: MarketState, path: str,
             now: int) -> list[ev.Event | Intent]:
        """Intend a liquidation of ``user`` (liquidatable at chain second ``now``), or record why not."""
        cid = self._pending.get(user)
        if cid is not None:
            if cid in state.in_flight(self.name):
                self.counts["in_flight"] += 1
                return []
            del self._pending[user]
        last = self._last_intent.get(user)
        if last is not None and e.ts - last < self.dedupe_ns:
            self.counts["deduped"] += 1
            return []
        if not self.breaker.allows():
            return self._skip(user, acc, e, path, "breaker open", 0, "")
        if self._memo_event is not e:  # what sizing reads that one event cannot change: valued once per event
            self._memo_event, self._gas_memo = e, {}
        plan, reason = self._size(user, acc, e.ts, state, now)
        if plan is None or reason:
            return self._skip(user, acc, e, path, reason, plan.profit if plan else 0, plan.debt if plan else "")
        self._watch.pop(user, None)
        self.intents += 1
        cid = f"liq-{self.intents}"
        self._pending[user], self._cid_user[cid] = cid, user
        self._last_intent[user] = e.ts
        self.breaker.sent(cid)
        u = self.book.users[user]
        since = u.since if u.since >= 0 else e.ts
        liq, d = plan.liq, self.book.reserves[plan.debt]
        route = tuple(map(_POOL_ID, plan.route))
        dp = plan.dp
        notional = liq.debt_to_cover * dp // d.unit // 100  # base (8 dp USD) -> risk currency (6 dp)
        min_profit = plan.gas + (self._from_base(self.min_profit_base, dp, d.unit) if self.min_profit_base > 0 else 0)
        if min_profit < 1:
            min_profit = 1
        return [
            ev.LiquidationOpportunity(
                ts=e.ts, source="engine", cause=e.seq, strategy=self.name, user=user,
                collateral_asset=plan.collateral, debt_asset=plan.debt, debt_to_cover=liq.debt_to_cover,
                collateral_to_liquidator=liq.collateral_to_liquidator, protocol_fee=liq.protocol_fee,
                proceeds=plan.proceeds, flash_premium=plan.premium, gas_cost=plan.gas, expected_profit=plan.profit,
                health_factor=acc.health_factor, path=path, latency_ns=e.ts - since,
                detected_cause=u.since_seq if u.since >= 0 else e.seq, route=route, client_id=cid,
                rules=self.book.rules),
            Intent(self.name, self.venue, self._instrument(plan.collateral, plan.debt), "liquidate",
                   liq.debt_to_cover, notional, target=user, max_priority_fee=plan.tip, client_id=cid,
                   route=route, min_profit=min_profit, profit_asset=plan.debt, private=self.private),
        ]

    def _skip(self, user: str, acc: Account, e: ev.Event, path: str, reason: str, profit: int,
              debt: str) -> list[ev.Event | Intent]:
        if reason in _WATCHED:
            self._watch[user] = None
        last = self._last_skip.get(user)
        if last is not None and last[0] == reason and e.ts - last[1] < self.skip_repeat_ns:
            return []
        self._last_skip[user] = (reason, e.ts)
        return [ev.LiquidationSkipped(ts=e.ts, source="engine", cause=e.seq, strategy=self.name, user=user,
                                      reason=reason, health_factor=acc.health_factor, expected_profit=profit,
                                      debt_asset=debt, path=path)]

    # ------------------------------------------------------------------ sizing

    def _size(self, user: str, acc: Account, ts: int, state: MarketState, now: int) -> tuple[_Plan | None, str]:
        """The most profitable (pair, size) at chain second ``now``, or the reason there is none worth doing."""
        book = self.book
        u = book.users[user]
        reserves = book.reserves
        debts = [*filter(u.debt.get, u.debt)]  # with a balance (sorted below when there are several)
        colls = [*filter(u.coll.get, u.on)]  # enabled, with a balance (a known reserve: coll has it)
        if len(colls) == 1:
            if not reserves[colls[0]].lt:
                colls = []
        elif colls:
            colls = [a for a in colls if reserves[a].lt]
        if len(debts) == 1 and len(colls) == 1:  # the usual borrower: one pair
            top, why = self._size_pair(user, colls[0], debts[0], acc, now, ts, state)
            if top is None:
                return None, why or "no collateral"
        else:
            if len(debts) > 1:
                debts.sort()
            if len(colls) > 1:
                colls.sort()
            top = None
            why = "no collateral"
            for d in debts:
                for c in colls:
                    plan, reason = self._size_pair(user, c, d, acc, now, ts, state)
                    if plan is not None and (top is None or plan.profit > top.profit):
                        top = plan
                    if reason and (top is None or plan is top):
                        why = reason
            if top is None:
                return None, why
        if self.bid_bps:
            self._bid(top, state)
        if self.max_route_age_ns and any(not state.fresh(p.pool, ts, self.max_route_age_ns) for p in top.route):
            return top, "stale route"
        if self.max_price_age_ns:
            for a in (top.collateral, top.debt):
                if ts - book.reserves[a].price_ts > self.max_price_age_ns:
                    return top, "stale price"
        profit = top.profit
        if profit <= 0 or profit * top.dp // reserves[top.debt].unit < self.min_profit_base:
            return top, "below min profit"
        return top, ""

    def _size_pair(self, user: str, c: str, d: str, acc: Account, now: int, ts: int,
                   state: MarketState) -> tuple[_Plan | None, str]:
        book = self.book
        pair = book.pair(user, c, d, acc, now)
        dp = pair.dp
        full = pair.amounts(MAX_UINT256)
        cap = full.max_debt
        if full.reason:
            if full.reason.startswith("dust"):  # v3.3: the cap leaves dust; smaller requests leave more of both
                cap = _largest_valid(pair, cap)
                if cap == 0:
                    return None, "dust"
                full = pair.amounts(cap)
            if full.reason:
                return None, full.reason
        cands = self._routes.get((c, d))
        if cands is None:
            cands = self._candidate_routes(c, d)
        if c != d and not cands:
            return None, "no route"
        gas = self._gas_memo.get((d, dp))  # this event's gas valuation in the debt asset (see _act)
        if gas is None:
            gas = self._gas_memo[(d, dp)] = self._gas(state, d, dp)
        if c != d and full.collateral_to_liquidator > 0:  # the usual case first: the cap, one route quote
            if len(cands) == 1:  # best() of one route
                out = quote_route(cands[0], state, c, full.collateral_to_liquidator)
                got = None if out is None else (out, cands[0])
            else:
                got = best(cands, state, c, full.collateral_to_liquidator)
            if got is not None and got[1]:
                top = _Plan(c, d, full, got[0], (full.debt_to_cover * self.premium_bps + 5000) // 10_000, gas, got[1],
                            dp, self.priority_fee)
                ratio = marginal_ratio(top.route, state, c, full.collateral_to_liquidator)
                if ratio is not None and \
                        top.proceeds * ratio > full.debt_to_cover * (1 + self.premium_bps / 1e4) * 1.001:
                    return top, ""  # a bigger sale still pays at the cap: profit (concave) is highest there
        cache: dict[int, _Plan | None] = {}

        def plan_at(x: int) -> _Plan | None:
            if x in cache:
                return cache[x]
            lq = full if x >= cap else pair.amounts(x)
            p: _Plan | None = None
            if not lq.reason and lq.collateral_to_liquidator > 0:
                if c == d:
                    got: tuple[int, Route] | None = (lq.collateral_to_liquidator, ())
                else:
                    got = best(cands, state, c, lq.collateral_to_liquidator)
                if got is not None:
                    premium = (lq.debt_to_cover * self.premium_bps + 5000) // 10_000
                    p = _Plan(c, d, lq, got[0], premium, gas, got[1], dp, self.priority_fee)
            cache[x] = p
            return p

        top = plan_at(cap)
        if top is not None and top.route:
            ratio = marginal_ratio(top.route, state, c, top.liq.collateral_to_liquidator)
            if ratio is not None and top.proceeds * ratio > top.liq.debt_to_cover * (1 + self.premium_bps / 1e4) * 1.001:
                return top, ""  # a bigger sale still pays at the cap: profit (concave) is highest there
        below = plan_at(cap - cap // 64) if cap >= 64 else None
        if top is None or (below is not None and below.profit > top.profit):
            top = _best_of(plan_at, 1, cap, top)
        if top is None:
            return None, "no route"
        return top, ""

    def _instrument(self, c: str, d: str) -> str:
        pair = self._pairs.get((c, d))
        if pair is None:
            pair = self._pairs[(c, d)] = str(AssetPair.of(c, d))
        return pair

    def _candidate_routes(self, c: str, d: str) -> list[Route]:
        r = self._routes.get((c, d))
        if r is None:
            r = self._routes[(c, d)] = routes(self.pools, c, d, self.max_hops)
        return r

    def _gas(self, state: MarketState, debt: str, debt_price: int) -> int:
        """Gas at the next base fee plus our tip, in debt-asset base units (0 without ``native_asset``)."""
        if not self.native or self.gas_units == 0:
            return 0
        nat = self.book.reserves.get(self.native)
        if nat is None or not nat.price:
            return 0
        block = state.blocks.get(self.chain)
        base = block.next_base_fee if block is not None else self.gas_price
        key = (debt, base, nat.price, debt_price)
        if key == self._gas_key:
            return self._gas_cost
        wei = self.gas_units * (base + self.priority_fee)
        unit = self.book.reserves[debt].unit
        self._gas_key, self._gas_cost = key, -(-wei * nat.price * unit // (debt_price * nat.unit))  # rounded up
        return self._gas_cost

    def _bid(self, plan: _Plan, state: MarketState) -> None:
        """Bid ``bid_profit_share_bps`` of the profit before the tip as the priority fee per gas
        (never below ``priority_fee_wei``), and charge the plan that gas. The profit left is
        (1 - share) of the same amount at every size, so the size chosen at the floor tip stays best."""
        nat = self.book.reserves.get(self.native)
        if not self.native or self.gas_units == 0 or nat is None or not nat.price:
            return
        block = state.blocks.get(self.chain)
        base = block.next_base_fee if block is not None else self.gas_price
        unit = self.book.reserves[plan.debt].unit
        scale_num, scale_den = nat.price * unit, plan.dp * nat.unit  # wei -> debt units
        base_cost = -(-self.gas_units * base * scale_num // scale_den)
        before_tip = plan.proceeds - plan.liq.debt_to_cover - plan.premium - base_cost
        if before_tip <= 0:
            return
        budget_wei = before_tip * self.bid_bps // 10_000 * scale_den // scale_num
        tip = max(self.priority_fee, budget_wei // self.gas_units)
        plan.tip = tip
        plan.gas = -(-self.gas_units * (base + tip) * scale_num // scale_den)
        plan.profit = plan.proceeds - plan.liq.debt_to_cover - plan.premium - plan.gas

    @staticmethod
    def _from_base(value: int, price: int, unit: int) -> int:
        return -(-value * unit // price) if value > 0 and price > 0 else 0

    # ------------------------------------------------------------------ outcomes

    def on_order(self, e: ev.Event, order: Order, state: MarketState) -> Sequence[ev.Event | Intent]:
        t = type(e)
        if t is ev.OrderIntended:  # approved: nothing to do until its outcome
            return ()
        cid = order.client_id
        if t is ev.IntentRejected:
            self.breaker.released(cid)
            self._release(cid)
            return ()
        if t is ev.OrderFilled:
            if not e.final:  # type: ignore[attr-defined]
                return ()
            self._release(cid)
            self._failed.pop(cid, None)
            return [self._breaker_event(e, "success")] if self.breaker.success(cid) else ()
        failed = t is ev.OrderFailed or t is ev.TransactionDropped or \
            (t is ev.TransactionIncluded and e.status != "success")  # type: ignore[attr-defined]
        if not failed:
            return ()
        if t is ev.OrderFailed:
            self._release(cid)
        if cid in self._failed:
            if t is ev.OrderFailed:
                del self._failed[cid]
            return ()
        if t is not ev.OrderFailed:
            self._failed[cid] = None  # its OrderFailed will follow: count it once
        reason = getattr(e, "reason", "") or getattr(e, "status", "")
        changed = self.breaker.failure(cid, e.ts)
        if not changed:
            return ()
        out: list[ev.Event | Intent] = [self._breaker_event(e, reason)]
        if changed == OPEN:
            out.append(self._timer(e, f"breaker:{self.breaker.gen}", self.breaker.reopen_at))
        return out

    def _release(self, cid: str) -> None:
        user = self._cid_user.pop(cid, None)
        if user is not None and self._pending.get(user) == cid:
            del self._pending[user]

    def _breaker_event(self, e: ev.Event, reason: str) -> ev.CircuitBreakerChanged:
        return ev.CircuitBreakerChanged(ts=e.ts, source="engine", cause=e.seq, strategy=self.name,
                                        state=self.breaker.state, failures=self.breaker.failures, reason=reason)


def _largest_valid(pair: Any, cap: int) -> int:
    """The largest request <= ``cap`` that leaves no dust (0: none). The leftovers of debt and
    collateral both shrink as the request grows, so validity holds up to a point: bisect it."""
    lo, hi = 0, cap
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if pair.amounts(mid).reason:
            hi = mid - 1
        else:
            lo = mid
    return lo


def _best_of(plan_at: Callable[[int], _Plan | None], lo: int, hi: int, top: _Plan | None) -> _Plan | None:
    """Ternary search of the integer sizes in [lo, hi] for the most profit (profit is concave in
    the size for one route: linear in it, less the pools' price impact); sizes without a plan
    (a route that cannot take them) count as worst."""
    def score(x: int) -> int:
        p = plan_at(x)
        return p.profit if p is not None else -(1 << 255)

    while hi - lo > 2:
        m1, m2 = lo + (hi - lo) // 3, hi - (hi - lo) // 3
        if score(m1) < score(m2):
            lo = m1 + 1
        else:
            hi = m2 - 1 if score(m1) > score(m2) else m2
    for x in range(lo, hi + 1):
        p = plan_at(x)
        if p is not None and (top is None or p.profit > top.profit):
            top = p
    return top
