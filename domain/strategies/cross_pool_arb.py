"""Cross-pool arbitrage between a Uniswap V2 pair and a V3 pool of the same two tokens.

Both pools order their tokens by address, so token0/token1 agree. Profit is counted in token0
(USDC for USDC/WETH). Two round trips are checked after every event that moves either pool:

* A: token0 -> token1 on V2, token1 -> token0 on V3;
* B: token0 -> token1 on V3, token1 -> token0 on V2.

The math is exact: V2 ``getAmountOut`` and the V3 swap step inside the current tick-spacing
interval, where liquidity is certainly constant (no initialized tick can lie inside it); a trade
that would need to cross the interval's edge is not considered (the largest size that stays inside
is in closed form: ``feasible_max``). On the quiet path, the marginal-price test is two integer
compares of the V3 price against thresholds computed once per V2 reserves. Otherwise the size comes
from the closed form (``domain/cp_optimum.py``: inside the interval V3 is a constant-product pool on
virtual reserves, and the contracts round against the trader, so the continuous round trip bounds
the exact one): a priced event whose bound cannot pay gas and ``min_profit`` stops there, and the
rest are sized by ``best_size``, an exact search of the profit levels from the bound down, at the
candidate first. Every amount reported is the exact contract math at the size chosen. Gas (``gas_units`` x
``gas_price_wei``, paid in token1 = ETH) is converted to token0 at the V3 price.

Across ticks: once the V3 pool's ticks are known (its state came from a ``V3PoolSnapshot``, kept
by every Mint/Burn since), the V3 leg is the pool's own swap across as many ticks as it crosses,
and the size comes from ``size_across_ticks`` (the closed form inside a range of constant
liquidity, a walk of the ranges to the one holding the optimum, an exact search there); without
them, as above, inside the tick-spacing interval. ``max_amount_in`` (token0 base units, 0: none)
caps the size (e.g. at the risk gate's notional limit for the venue: a size above it is refused).

Freshness: it prices only on pools updated at most ``max_age_s`` seconds (default 60, five
blocks) before the event and not marked stale (``SourceStale``); an opportunity priced on older
state is recorded as ``OpportunitySuppressed`` (with the pools at fault and their age), never as
``OpportunityDetected``, and nothing is intended. An empty pool (a zero reserve, no V3 price or
liquidity) has no price and is skipped.

An opportunity's ``key`` is the gap's identity: both pool ids and the state that priced it (V2
reserves, V3 sqrtPrice and liquidity), so a re-detection of the same unmoved gap has the same key.
With ``act``, the intent's ``route`` is (buy pool, sell pool) and its instrument the same as text,
``"<buy pool id>-><sell pool id>"`` (the configured
``v2_pool``/``v3_pool``), side ``arb``, client id ``arb-<n>`` (n counts its intents).

``execution`` says how the round trip is to be carried out:

* ``"legs"`` (the default): two swaps on venue ``venue`` (the chain), each of which may go
  through alone; the intent's ``min_profit`` is the configured one;
* ``"atomic"``: one intent carrying the whole route on venue ``"<venue>:arb-executor"``, the bot's
  executor contract (``contracts/ArbExecutor.sol``: both swaps in one transaction, flash-funded,
  reverting unless the profit clears ``min_profit``), so one leg can never go through alone. Its
  ``min_profit`` is the gross profit the executor must see: gas at ``gas_price_wei`` plus the
  configured minimum, in token0; ``private`` sends it as a bundle rather than publicly.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import gcd, isqrt
from typing import Any, Callable, Sequence

from tapedeck.domain import events as ev
from tapedeck.domain.decimals import seconds_to_ns
from tapedeck.domain.dex_quotes import PoolSpec, quote
from tapedeck.domain.ids import Address, IdError
from tapedeck.domain.risk import Intent
from tapedeck.domain.state import MarketState
from tapedeck.domain.uniswap_v2 import get_amount_out
from tapedeck.domain.cp_optimum import RoundTrip, memoized
from tapedeck.domain.uniswap_v3 import (
    MAX_TICK, MIN_TICK, Q96, TickTable, V3MathError, V3PoolState, get_amount0_delta, get_amount1_delta,
    get_sqrt_ratio_at_tick, mul_div_rounding_up, swap, swap_within_range, tick_spacing_interval,
)

Q192 = 1 << 192
EXECUTIONS = ("legs", "atomic")
ATOMIC_VENUE = "{chain}:arb-executor"  # the bot's arbitrage executor contract on that chain
_NEVER = 1 << 256  # above any sqrt price


class CrossPoolArb:
    handles = (ev.V2ReservesSynced, ev.V3Swapped, ev.V3Minted, ev.V3Burned, ev.V3PoolSnapshot)

    def __init__(
        self,
        name: str,
        v2_pool: str,
        v3_pool: str,
        v3_fee_pips: int = 500,
        v3_tick_spacing: int = 10,
        v2_fee_bps: int = 30,
        min_profit: int = 0,
        gas_units: int = 250_000,
        gas_price_wei: int = 20_000_000_000,
        act: bool = False,
        venue: str = "ethereum",
        profit_token: str = "token0",
        priority_fee_wei: int = 0,
        max_age_s: Any = 60,
        execution: str = "legs",
        private: bool = False,
        max_amount_in: int = 0,
        triangles: Sequence[dict[str, Any]] = (),
        native_token: str = "",
        triangle_gas_units: int = 300_000,
        **unknown: Any,
    ):
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        if execution not in EXECUTIONS:
            raise ValueError(f"execution must be one of {', '.join(EXECUTIONS)}, got {execution!r}")
        self.execution = execution
        self.private = bool(private)
        self.max_amount_in = int(max_amount_in)  # token0 base units a round trip may put in (0: no cap)
        self.triangles = [Triangle.from_config(i, t) for i, t in enumerate(triangles)]
        self.native_token = str(native_token).lower()
        if self.triangles and not self.native_token:
            raise ValueError("triangles need native_token (the address gas is paid in, wrapped: WETH) to value gas")
        self.triangle_gas_units = int(triangle_gas_units)
        self._triangle_pools = {sp.pool for t in self.triangles for sp in t.pools}
        if self.max_amount_in < 0:
            raise ValueError(f"max_amount_in must be >= 0 (0: no cap), got {max_amount_in!r}")
        self.name = name
        self.v2_pool = _pool_id("v2_pool", v2_pool)
        self.v3_pool = _pool_id("v3_pool", v3_pool)
        self.fee_pips = int(v3_fee_pips)
        self.spacing = int(v3_tick_spacing)
        self.v2_fee_bps = int(v2_fee_bps)
        self.min_profit = int(min_profit)
        self.gas_units = int(gas_units)
        self.gas_price_wei = int(gas_price_wei)
        self.act = bool(act)
        self.venue = venue
        self.profit_token = profit_token
        self.priority_fee_wei = int(priority_fee_wei)  # the tip its transactions bid (wei per gas)
        self.max_age_ns = seconds_to_ns(max_age_s)
        self.intents = 0  # how many it has proposed (its client ids)
        self.unproven = 0  # sizings left within their bound of the optimum, not proven optimal (best_size)
        self.across_ticks = 0  # sizings on a pool whose ticks are known (size_across_ticks)
        fee_keep, v2_keep = 1_000_000 - self.fee_pips, 10_000 - self.v2_fee_bps
        self._a_keep, self._a_unit = v2_keep * fee_keep * Q192, 10_000 * 1_000_000  # the marginal tests
        self._b_keep, self._b_unit = fee_keep * v2_keep, 1_000_000 * Q192 * 10_000
        self._sp: Any = None  # the last V3 price seen, and its square
        self._r0 = self._r1 = -1  # the V2 reserves the thresholds below are for
        self._sp_a, self._sp_b = -1, _NEVER  # A pays iff sp <= _sp_a; B pays iff sp > _sp_b
        self._sp2 = 0

    # ------------------------------------------------------------------ event

    def on_event(self, e: ev.Event, state: MarketState) -> Sequence[ev.Event | Intent]:
        pool = e.pool  # type: ignore[attr-defined]  # every type it handles names its pool
        if self._triangle_pools and pool in self._triangle_pools:
            out = list(self._on_triangles(e, state, pool))
            if pool == self.v2_pool or pool == self.v3_pool:
                out.extend(self._on_pair(e, state))
            return out
        if pool != self.v2_pool and pool != self.v3_pool:
            return ()
        return self._on_pair(e, state)

    def _on_pair(self, e: ev.Event, state: MarketState) -> Sequence[ev.Event | Intent]:
        v2 = state.v2.get(self.v2_pool)
        v3 = state.v3.get(self.v3_pool)
        if v2 is None or v3 is None:
            return ()
        liq = v3.liquidity
        if liq is None or liq <= 0:
            return ()
        sp = v3.sqrt_price_x96
        r0, r1 = v2.reserve0, v2.reserve1
        if r0 != self._r0 or r1 != self._r1:  # new reserves: the V3 prices at which each direction pays
            self._thresholds(r0, r1)
        if self._sp_a < sp <= self._sp_b:  # type: ignore[operator]
            return ()  # the quiet path: at this price neither direction pays its fees
        if r0 <= 0 or r1 <= 0 or sp <= 0:  # type: ignore[operator]
            return ()  # an empty pool has no price
        if sp is not self._sp:
            self._sp, self._sp2 = sp, sp * sp  # type: ignore[operator]
        return self._priced(e, state, sp <= self._sp_a, r0, r1, sp, liq, v3.tick)  # type: ignore[arg-type, operator]

    def _thresholds(self, r0: int, r1: int) -> None:
        """The marginal tests as V3 price thresholds for these reserves, so that the quiet path
        compares two integers. The marginal output per unit input of each round trip at size 0,
        compared with 1, where V3 gives ``keep*sp^2/2^192`` token1 per token0 (``2^192/sp^2`` back):

        * A pays iff ``v2_keep*r1/r0 * fee_keep*2^192/sp^2 > 1``, i.e. ``sp^2 <= Ta``, i.e.
          ``sp <= isqrt(Ta)``, ``Ta = (v2_keep*fee_keep*2^192*r1 - 1) // (10^10*r0)``;
        * B pays iff ``fee_keep*sp^2/2^192 * v2_keep*r0/r1 > 1``, i.e. ``sp^2 > Tb``, i.e.
          ``sp > isqrt(Tb)``, ``Tb = 10^10*2^192*r1 // (fee_keep*v2_keep*r0)``.

        An empty pair (a reserve <= 0) prices nothing: both thresholds shut."""
        self._r0, self._r1 = r0, r1
        if r0 <= 0 or r1 <= 0:
            self._sp_a, self._sp_b = -1, _NEVER
            return
        self._sp_a = isqrt((self._a_keep * r1 - 1) // (self._a_unit * r0))
        self._sp_b = isqrt(self._b_unit * r1 // (self._b_keep * r0)) if self._b_keep > 0 else _NEVER

    def _priced(self, e: ev.Event, state: MarketState, a_pays: bool, r0: int, r1: int, sp: int, liq: int,
                tick: int) -> Sequence[ev.Event | Intent]:
        """A direction pays at the margin: size it (closed form, then exact), gate on gas and profit."""
        gas_cost = self.gas_units * self.gas_price_wei * Q192 // self._sp2  # token1 wei -> token0 units
        need = max(1, self.min_profit + gas_cost)  # the smallest gross profit that is reported
        v3 = state.v3[self.v3_pool]
        if v3.ticks is not None:  # the pool's ticks are known (a snapshot): size across them
            self.across_ticks += 1
            sized = size_across_ticks(a_pays, r0, r1, v3, self.fee_pips, self.v2_fee_bps, need, self.max_amount_in)
        else:
            sized = size_round_trip(a_pays, r0, r1, sp, liq, tick, self.spacing, self.fee_pips, self.v2_fee_bps, need,
                                    self.max_amount_in)
        if sized is None:
            return ()
        best_x, best, proven = sized
        if not proven:
            self.unproven += 1
        if best_x == 0 or best is None or best <= 0:
            return ()
        buy, sell = ("uniswap-v2", "uniswap-v3") if a_pays else ("uniswap-v3", "uniswap-v2")
        net = best - gas_cost
        if net < self.min_profit:
            return ()
        key = f"{self.v2_pool}@{r0}/{r1}|{self.v3_pool}@{sp}/{liq}"
        now, max_age = e.ts, self.max_age_ns
        if not (state.fresh(self.v2_pool, now, max_age) and state.fresh(self.v3_pool, now, max_age)):
            return (self._suppressed(e, state, key, net),)
        out: list[ev.Event | Intent] = [
            ev.OpportunityDetected(
                ts=e.ts, source="engine", cause=e.seq, strategy=self.name, kind="cross-pool-arb",
                buy_venue=buy, sell_venue=sell, amount_in=best_x, amount_out=best_x + best,
                gross_profit=best, gas_cost=gas_cost, net_profit=net, profit_token=self.profit_token, key=key,
            )
        ]
        if self.act:
            self.intents += 1
            route = (self.v2_pool, self.v3_pool) if buy == "uniswap-v2" else (self.v3_pool, self.v2_pool)
            if self.execution == "atomic":  # one transaction: the executor reverts unless it pays gas and more
                out.append(Intent(self.name, ATOMIC_VENUE.format(chain=self.venue), "->".join(route), "arb", best_x,
                                  best_x, max_priority_fee=self.priority_fee_wei, client_id=f"arb-{self.intents}",
                                  route=route, min_profit=self.min_profit + gas_cost, private=self.private))
            else:
                out.append(Intent(self.name, self.venue, "->".join(route), "arb", best_x, best_x,
                                  max_priority_fee=self.priority_fee_wei, client_id=f"arb-{self.intents}",
                                  route=route, min_profit=self.min_profit))
        return out

    # ------------------------------------------------------------------ triangles

    def _on_triangles(self, e: ev.Event, state: MarketState, pool: str) -> list[ev.Event | Intent]:
        """Every configured triangle through ``pool``, both ways round: sized (``size_triangle``),
        gated on gas (``triangle_gas_units`` at ``gas_price_wei``, valued in the start token at the
        mid of a leg pool of (native token, start token)) and ``min_profit``, freshness as for the
        pair; an opportunity is one intent on the executor (``triangle`` routes are atomic only)."""
        out: list[ev.Event | Intent] = []
        for t in self.triangles:
            if pool not in t.ids:
                continue
            for route in (t.pools, t.pools[::-1]):
                sized = size_triangle(state, route, t.start, self.max_amount_in, need=1)
                if sized is None:
                    continue
                x, outs, proven = sized
                gas = self._triangle_gas(state, t)
                if gas is None:
                    continue
                gross = outs[-1] - x
                net = gross - gas
                if net < self.min_profit or gross < max(1, gas + self.min_profit):
                    continue
                if not proven:
                    self.unproven += 1
                ids = tuple(sp.pool for sp in route)
                key = "|".join(f"{sp.pool}@{_pool_version(state, sp)}" for sp in route)
                stale = [p for p in ids if not state.fresh(p, e.ts, self.max_age_ns)]
                if stale:
                    ages = [state.age(p, e.ts) for p in stale]
                    out.append(ev.OpportunitySuppressed(
                        ts=e.ts, source="engine", cause=e.seq, strategy=self.name, kind="triangle-arb", key=key,
                        reason=f"{', '.join(stale)} not fresh (max_age {self.max_age_ns} ns)", ids=tuple(stale),
                        age_ns=-1 if None in ages else max(a for a in ages if a is not None), net_profit=net,
                        profit_token=t.start))
                    continue
                out.append(ev.OpportunityDetected(
                    ts=e.ts, source="engine", cause=e.seq, strategy=self.name, kind="triangle-arb",
                    buy_venue=ids[0], sell_venue=ids[-1], amount_in=x, amount_out=outs[-1], gross_profit=gross,
                    gas_cost=gas, net_profit=net, profit_token=t.start, key=key))
                if self.act:
                    self.intents += 1
                    out.append(Intent(self.name, ATOMIC_VENUE.format(chain=self.venue), "->".join(ids), "arb", x, x,
                                      max_priority_fee=self.priority_fee_wei, client_id=f"arb-{self.intents}",
                                      route=ids, min_profit=self.min_profit + gas, private=self.private))
        return out

    def _triangle_gas(self, state: MarketState, t: "Triangle") -> int | None:
        wei = self.triangle_gas_units * (self.gas_price_wei + self.priority_fee_wei)
        if t.start == self.native_token or wei == 0:
            return wei
        from tapedeck.domain.arb_finder import PoolVenue  # (arb_finder imports this module)

        for sp in t.pools:
            if {sp.token0, sp.token1} == {self.native_token, t.start}:
                m = PoolVenue(sp).mid(state, self.native_token)
                if m is not None and m[1] > 0:
                    return -(-wei * m[0] // m[1])  # rounded up: never understate the cost
        return None  # no leg prices the native token in the start token: not valued, not reported

    def _suppressed(self, e: ev.Event, state: MarketState, key: str, net: int) -> ev.OpportunitySuppressed:
        now, max_age = e.ts, self.max_age_ns
        old = [p for p in (self.v2_pool, self.v3_pool) if not state.fresh(p, now, max_age)]
        ages = [state.age(p, now) for p in old]
        age = -1 if None in ages else max(a for a in ages if a is not None)
        why = ", ".join(f"{p} stale ({state.stale[p]})" if p in state.stale else f"{p} state {a} ns old"
                        for p, a in zip(old, ages))
        return ev.OpportunitySuppressed(
            ts=e.ts, source="engine", cause=e.seq, strategy=self.name, kind="cross-pool-arb", key=key,
            reason=f"{why} (max_age {max_age} ns)", ids=tuple(old), age_ns=age, net_profit=net,
            profit_token=self.profit_token,
        )


def round_trip_profit(a_pays: bool, r0: int, r1: int, sp: int, liq: int, tick: int, spacing: int, fee_pips: int,
                      v2_fee_bps: int) -> Callable[[int], int | None]:
    """The exact profit in token0 of round trip A (``a_pays``: V2 then V3) or B (V3 then V2) as a
    function of the input, by the contracts' math (``get_amount_out``, ``swap_within_range``);
    ``None`` where the V3 leg would leave the tick-spacing interval."""
    def v3_swap(amount: int, zero_for_one: bool) -> Any:
        return swap_within_range(sp, liq, tick, spacing, fee_pips, amount, zero_for_one)

    if a_pays:
        def profit(x: int) -> int | None:
            y = get_amount_out(x, r0, r1, v2_fee_bps)
            if y <= 0:
                return -x  # too small to buy anything: feasible, a pure loss
            r = v3_swap(y, False)
            if r.amount1 != y:  # the V3 leg would leave the tick-spacing interval
                return None
            return -r.amount0 - x
        return profit

    def profit_b(x: int) -> int | None:
        r = v3_swap(x, True)
        if r.amount0 != x:
            return None
        y = -r.amount1
        if y <= 0:
            return -x
        return get_amount_out(y, r1, r0, v2_fee_bps) - x
    return profit_b


def size_round_trip(a_pays: bool, r0: int, r1: int, sp: int, liq: int, tick: int, spacing: int, fee_pips: int,
                    v2_fee_bps: int, need: int, cap: int = 0) -> tuple[int, int | None, bool] | None:
    """``best_size`` of round trip A or B over the sizes ``1..r0`` that keep the V3 leg inside its
    interval (and at most ``cap`` when it is not 0), or ``None`` when no size can make a profit of
    ``need`` (the continuous bound says so, or not even size 1 is feasible)."""
    profit = round_trip_profit(a_pays, r0, r1, sp, liq, tick, spacing, fee_pips, v2_fee_bps)
    if profit(1) is None:  # (raises, as the exact math does, on a state outside its interval)
        return None
    keep3, keep2 = 1_000_000 - fee_pips, 10_000 - v2_fee_bps
    if a_pays:
        trip = RoundTrip.v2_then_v3(r0, r1, keep2, sp, liq, keep3)
        period = 1  # the V2 leg takes its fee exactly (x * 9970): no input is better placed
    else:
        trip = RoundTrip.v3_then_v2(r0, r1, keep2, sp, liq, keep3)
        # V3 keeps floor(x * (1e6 - fee) / 1e6) of the input: multiples of this lose nothing to it
        period = 1_000_000 // gcd(fee_pips, 1_000_000) if fee_pips else 1
    x_max = min(r0, feasible_max(a_pays, r0, r1, sp, liq, tick, spacing, fee_pips, v2_fee_bps))
    if cap:
        x_max = min(x_max, cap)
    bound = trip.max_profit_bound(x_max)
    if bound < need:
        return None  # provably nothing to report: no exact profit exceeds the continuous bound
    return best_size(profit, trip, x_max, bound, need, period)


# A level's interval up to this many sizes is searched exhaustively; a wider one is probed near the
# closed-form optimum (there the exact profit is the continuous one rounded, all but certainly).
SCAN_LIMIT = 64
PROBES = 4


def best_size(profit: Callable[[int], int | None], trip: RoundTrip, x_max: int, bound: int, need: int,
              period: int) -> tuple[int, int | None, bool]:
    """``(size, exact profit, proven)``: the size in ``[1, x_max]`` (all feasible) with the largest
    exact ``profit``, searched from the closed-form optimum.

    ``trip`` is the continuous round trip, an upper bound of ``profit`` at every size; ``bound``
    (>= ``need``) bounds it on ``[1, x_max]``. Levels ``bound, bound - 1, ...`` down to the best
    profit found (or ``need``, below which nothing is reported) are tried in turn: an exact profit of
    at least a level can only be where the continuous one is (``trip.level_interval``), so a level
    whose interval is empty, or is searched through, is refuted. A wider interval is probed at the
    candidate, its neighbours and the nearest multiples of ``period`` (sizes the first leg's fee
    floor takes nothing from); if that finds the level, or every level above the best found is
    refuted, the best is the true integer optimum (``proven``). Otherwise it is the best probed,
    within ``bound - best`` of the optimum. Ties go to the first size found (the candidate side
    first in probes, the smallest size in a searched interval).
    """
    c = min(max(trip.optimum(), 1), x_max)
    at = memoized(profit)

    best_x, best = c, at(c)
    proven = True
    level = bound
    probed = False
    while level >= need and (best is None or level > best):
        span = trip.level_interval(level, 1, x_max)
        if span is None:  # no size reaches it even in the continuous trip (the bound is within ~1 of M)
            level -= 1
            continue
        lo, hi = span
        if hi - lo < SCAN_LIMIT:
            for x in range(lo, hi + 1):
                p = at(x)
                if p is not None and (best is None or p > best or (p == best and x < best_x)):
                    best_x, best = x, p
            if best is not None and best >= level:
                break  # found, every level above refuted: the optimum
            level -= 1  # refuted
            continue
        if probed:
            proven = False  # a wide level was probed without reaching it: not refuted
            break
        probed = True
        near = [c + d for d in range(-PROBES, PROBES + 1)]
        if period > 1:
            k = c // period
            near += [(k + d) * period for d in range(-PROBES // 2 + 1, PROBES // 2 + 1)]
        for x in sorted(dict.fromkeys(x for x in near if lo <= x <= hi), key=lambda x: (abs(x - c), x)):
            p = at(x)
            if p is not None and (best is None or p > best):
                best_x, best = x, p
        if best is not None and best >= level:
            break
    return best_x, best, proven


def feasible_max(a_pays: bool, r0: int, r1: int, sp: int, liq: int, tick: int, spacing: int, fee_pips: int,
                  v2_fee_bps: int) -> int:
    """The largest input whose V3 leg stays inside the tick-spacing interval, in closed form.

    With ``cap`` the input (after fee) that takes the price to the interval's edge, an exact-in
    swap of ``a`` stays inside iff ``a <= cap + ceil(cap * fee / (1e6 - fee))`` (up to that, the
    fee floor keeps it short of the edge, or lands it there having used ``a`` exactly; beyond it,
    the swap stops at the edge with input left), so feasibility is a prefix of the sizes, as
    ``swap_within_range``'s ``amount == specified`` test says. Direction A sends V2's output
    into V3, so its limit is the largest ``x`` whose ``getAmountOut`` is at most that.
    """
    lower, upper = tick_spacing_interval(tick, spacing)
    return feasible_max_to(a_pays, r0, r1, sp, liq, upper if a_pays else lower, fee_pips, v2_fee_bps)


def feasible_max_to(a_pays: bool, r0: int, r1: int, sp: int, liq: int, edge: int, fee_pips: int,
                    v2_fee_bps: int) -> int:
    """``feasible_max`` to a given edge tick (above the price for A, at or below it for B): the
    largest input whose V3 leg, at liquidity ``liq`` throughout, stops at or before that edge."""
    upper = lower = edge
    keep = 1_000_000 - fee_pips
    if a_pays:  # token1 into V3, price up to the upper edge
        cap = get_amount1_delta(sp, get_sqrt_ratio_at_tick(upper), liq, True)
        y = cap + mul_div_rounding_up(cap, fee_pips, keep)
        # floor(x*k*r1 / (r0*10000 + x*k)) <= y  <=>  x*k*(r1 - y - 1) < (y + 1)*r0*10000
        k = 10_000 - v2_fee_bps
        if r1 - y - 1 <= 0:
            return r0
        return ((y + 1) * r0 * 10_000 - 1) // (k * (r1 - y - 1))
    cap = get_amount0_delta(get_sqrt_ratio_at_tick(lower), sp, liq, True)  # token0 in, price down
    return cap + mul_div_rounding_up(cap, fee_pips, keep)


# ----------------------------------------------------------------------------- triangles


@dataclass(frozen=True)
class Triangle:
    """Three pools forming a cycle from ``start`` back to it (``start -> a -> b -> start``)."""

    start: str
    pools: tuple[PoolSpec, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(p.pool for p in self.pools)

    @classmethod
    def from_config(cls, i: int, d: Any) -> "Triangle":
        if not isinstance(d, dict) or "start" not in d or "pools" not in d:
            raise ValueError(f"triangles[{i}] must be a table with start (a token address) and pools (three pools)")
        start = str(d["start"]).lower()
        pools = tuple(PoolSpec.from_config(dict(p)) for p in d["pools"])
        if len(pools) != 3:
            raise ValueError(f"triangles[{i}] needs three pools, got {len(pools)}")
        token, seen = start, [start]
        for p in pools:
            if token not in (p.token0, p.token1):
                raise ValueError(f"triangles[{i}]: pool {p.pool} does not trade {token} (the route must be a cycle)")
            token = p.other(token)
            seen.append(token)
        if token != start or len(set(seen[:3])) != 3:
            raise ValueError(f"triangles[{i}]: {' -> '.join(seen)} is not a cycle of three tokens from {start}")
        return cls(start, pools)


def _pool_version(state: MarketState, spec: PoolSpec) -> str:
    if spec.kind == "v2":
        p = state.v2.get(spec.pool)
        return "" if p is None else f"{p.reserve0}/{p.reserve1}"
    s = state.v3.get(spec.pool)
    return "" if s is None else f"{s.sqrt_price_x96}/{s.liquidity}"


def size_triangle(state: MarketState, route: Sequence[PoolSpec], start: str, cap: int = 0,
                  need: int = 1) -> tuple[int, tuple[int, ...], bool] | None:
    """The best size of the cycle ``route`` from ``start`` (each hop the pool's exact quote,
    ``dex_quotes.quote``: across ticks where a V3 pool's ticks are known): ``(amount in, each hop's
    output, proven)``, or ``None`` if nothing pays ``need``.

    Each leg inside its constant-product view (V2 reserves; V3 virtual reserves of the current
    tick-spacing interval: ``arb_finder.PoolVenue.curve``) is ``out(x) = N*x/(P + R*x)``, and so is
    the composition of three (``(N1*N2)*x / (P1*P2 + (P2*R1 + R2*N1)*x)``, and again): one
    ``RoundTrip``, an upper bound of the exact cycle (every rounding is against the trader), with its
    closed-form optimum; ``best_size`` sizes it exactly over the inputs every leg prices inside its
    view (``x <= x_max``: each leg's capacity pulled back through the legs before it)."""
    from tapedeck.domain.arb_finder import PoolVenue  # (arb_finder imports this module)

    venues = [PoolVenue(sp) for sp in route]
    tokens = [start]
    for sp in route:
        tokens.append(sp.other(tokens[-1]))
    n = p = r = None
    x_max = cap or (1 << 255)
    for v, t in zip(venues, tokens):
        c = v.curve(state, t)
        if c is None or c.max_in <= 0:
            return None
        ln, lp, lr = c.keep * c.ro_num, c.keep_den * c.ri_num, c.keep * c.den
        if n is None:
            n, p, r = ln, lp, lr
            x_max = min(x_max, c.max_in)
        else:
            # the largest x whose output so far (at most n*x/(p + r*x)) is within this leg's capacity:
            # n*x <= m*(p + r*x)  <=>  x*(n - m*r) <= m*p
            m = c.max_in
            if n > m * r:
                x_max = min(x_max, m * p // (n - m * r))
            n, p, r = n * ln, p * lp, lp * r + lr * n
    assert n is not None and p is not None and r is not None
    if x_max < 1 or n <= p:
        return None
    trip = RoundTrip(n, p, r)

    def profit(x: int) -> int | None:
        amount = x
        for sp, t in zip(route, tokens):
            amount = quote(sp, state, t, amount)  # type: ignore[assignment]
            if amount is None:
                return None
        return amount - x

    bound = trip.max_profit_bound(x_max)
    if bound < need:
        return None  # proven: no exact profit exceeds the continuous bound
    x, best, proven = best_size(profit, trip, x_max, bound, need, 1)
    if best is None or best < need:
        return None
    outs, amount = [], x
    for sp, t in zip(route, tokens):
        amount = quote(sp, state, t, amount)  # type: ignore[assignment]
        outs.append(amount)
    return x, tuple(outs), proven


# ----------------------------------------------------------------------------- across ticks

RANGES = 256  # ranges of constant liquidity walked at most (beyond: the walk stops there, counted as clamped)


def next_initialized_tick(ticks: TickTable, tick: int, zero_for_one: bool) -> int:
    """The next initialized tick the price meets from ``tick``: at or below it going down
    (``zero_for_one``), above it going up (word by word, as the pool's swap walks the bitmap);
    ``MIN_TICK``/``MAX_TICK`` when there is none."""
    t = tick
    while True:
        nxt, initialized = ticks.next_initialized_tick_within_one_word(t, zero_for_one)
        if zero_for_one:
            if nxt <= MIN_TICK:
                return MIN_TICK if not initialized or nxt < MIN_TICK else nxt
            if initialized:
                return nxt
            t = nxt - 1
        else:
            if nxt >= MAX_TICK:
                return MAX_TICK if not initialized or nxt > MAX_TICK else nxt
            if initialized:
                return nxt
            t = nxt


def liquidity_ranges(v3: V3PoolState, zero_for_one: bool, limit: int = RANGES) -> list[tuple[int, int, int, int]]:
    """The ranges of constant liquidity a swap walks from the pool's price, in order: ``(sqrt price
    at the start, at the end, liquidity, end tick)``, from the tick table (each crossing adds the
    tick's ``liquidityNet``, subtracts it going down, as the pool does)."""
    sp, tick, lq, ticks = v3.sqrt_price_x96, v3.tick, v3.liquidity, v3.ticks
    assert sp is not None and tick is not None and lq is not None and ticks is not None
    out = []
    for _ in range(limit):
        edge = next_initialized_tick(ticks, tick, zero_for_one)
        s_edge = get_sqrt_ratio_at_tick(edge)
        out.append((sp, s_edge, lq, edge))
        if edge in (MIN_TICK, MAX_TICK) or edge not in ticks.net:
            break
        net = ticks.net[edge]
        lq = lq - net if zero_for_one else lq + net
        if lq < 0:
            break  # (a table that disagrees with the pool: nothing beyond is priced)
        sp, tick = s_edge, (edge - 1 if zero_for_one else edge)
    return out


def across_ticks_profit(a_pays: bool, r0: int, r1: int, v3: V3PoolState, fee_pips: int,
                        v2_fee_bps: int) -> Callable[[int], int | None]:
    """The exact profit in token0 of round trip A or B with the V3 leg swapped across as many
    ticks as it crosses (``uniswap_v3.swap``, as the pool does); ``None`` where the V3 leg runs out
    of liquidity before its input is used (or the pool would revert)."""
    sp, tick, lq, ticks = v3.sqrt_price_x96, v3.tick, v3.liquidity, v3.ticks

    def v3_swap(amount: int, zero_for_one: bool) -> int | None:
        try:
            m = swap(sp, tick, lq, ticks, fee_pips, amount, zero_for_one)  # type: ignore[arg-type]
        except (V3MathError, ValueError):
            return None
        paid, got = (m.amount0, -m.amount1) if zero_for_one else (m.amount1, -m.amount0)
        return got if paid == amount else None

    if a_pays:
        def profit(x: int) -> int | None:
            y = get_amount_out(x, r0, r1, v2_fee_bps)
            if y <= 0:
                return -x
            z = v3_swap(y, False)
            return None if z is None else z - x
        return profit

    def profit_b(x: int) -> int | None:
        y = v3_swap(x, True)
        if y is None:
            return None
        if y <= 0:
            return -x
        return get_amount_out(y, r1, r0, v2_fee_bps) - x
    return profit_b


def size_across_ticks(a_pays: bool, r0: int, r1: int, v3: V3PoolState, fee_pips: int, v2_fee_bps: int,
                      need: int, cap: int = 0) -> tuple[int, int | None, bool] | None:
    """The best size of round trip A or B when the V3 pool's ticks are known.

    Inside one range of constant liquidity (from the price to the next initialized tick) the V3
    pool is a constant-product pool on virtual reserves, so:

    1. the first range: the closed form (``RoundTrip``) on the current price and liquidity; when
       its optimum lies inside the range, the profit (concave: the V3 leg's marginal rate only
       falls, continuously, as it crosses ticks) has its maximum there, and ``best_size`` sizes it
       exactly (proven where it says so) over the sizes that stay in the range; its bound below
       ``need`` proves that no size, in any range, pays;
    2. otherwise the walk goes on range by range (``liquidity_ranges``), accumulating what the V3
       leg takes and gives to reach each range's start and the V2 leg's matching amount; the range
       where the round trip's marginal profit turns negative holds the optimum, and there the
       closed form on the range's virtual reserves and the V2 pair as the earlier part of the trade
       left it gives the candidate;
    3. a bounded exact search from the candidate (moves of +-2^j, j from ~half the candidate's bits
       down to 0, taken while the exact profit improves, within the feasible sizes): a local
       optimum on the exact math, not proven (``proven`` False).

    ``cap`` (when not 0) bounds the size: the profit being concave, the best size up to it is the
    optimum's, or ``cap`` itself where the optimum lies beyond (then sized as above within
    ``[1, cap]``). ``None`` when nothing can pay ``need``. Every profit is the exact multi-tick math
    at its size."""
    sp, lq = v3.sqrt_price_x96, v3.liquidity
    assert sp is not None and lq is not None
    profit = across_ticks_profit(a_pays, r0, r1, v3, fee_pips, v2_fee_bps)
    zero_for_one = not a_pays  # A sends token1 into V3 (price up); B token0 (price down)
    ranges = liquidity_ranges(v3, zero_for_one)
    keep3, keep2 = 1_000_000 - fee_pips, 10_000 - v2_fee_bps
    if lq > 0:
        trip = (RoundTrip.v2_then_v3(r0, r1, keep2, sp, lq, keep3) if a_pays
                else RoundTrip.v3_then_v2(r0, r1, keep2, sp, lq, keep3))
        x_range = min(r0, feasible_max_to(a_pays, r0, r1, sp, lq, ranges[0][3], fee_pips, v2_fee_bps))
        capped = bool(cap) and cap <= x_range  # the cap lies in the first range: size up to it there
        if capped:
            x_range = cap
        if x_range >= 1 and (capped or trip.optimum() <= x_range):
            bound = trip.max_profit_bound(x_range)
            if bound < need:
                return None  # the global maximum is this range's: provably nothing pays
            period = 1 if a_pays else (1_000_000 // gcd(fee_pips, 1_000_000) if fee_pips else 1)
            if profit(1) is None:
                return None
            return best_size(profit, trip, x_range, bound, need, period)
    x = _range_walk(a_pays, r0, r1, ranges, keep3, keep2)
    if x is None:
        return None
    hi = _feasible_end(profit, min(r0, cap) if cap else r0)
    if hi < 1:
        return None
    x = min(max(x, 1), hi)
    p = profit(x)
    if p is None:
        return None
    x, p = _climb(profit, x, p, hi)
    return x, p, False


def _range_walk(a_pays: bool, r0: int, r1: int, ranges: list[tuple[int, int, int, int]], keep3: int,
                keep2: int) -> int | None:
    """The candidate size from the ranges: continuous amounts (no roundings: a candidate only)."""
    v3_in = v3_out = 0  # what the V3 leg takes (with its fee) and gives up to the current range's start
    for sa, sb, lq, _ in ranges:
        if a_pays:  # x token0 -> V2 -> y token1 -> V3 (price up) -> z token0
            if v3_in >= r1:
                return None
            x_before = v3_in * 10_000 * r0 // (keep2 * (r1 - v3_in))  # V2's inverse: the x giving v3_in
            r0p, r1p = r0 + x_before, r1 - v3_in  # the pair after that much of the trade
            if lq > 0:
                # the marginal profit at this range's start, V2'(x) * V3' - 1, with
                # V2'(x) = keep2*1e4*r0*r1 / (1e4*r0 + keep2*x)^2 (token1 per token0) and
                # V3' = keep3/1e6 * 2^192/sa^2 (token0 per token1): not positive, the optimum is before
                d = 10_000 * r0 + keep2 * x_before
                if keep2 * 10_000 * r0 * r1 * keep3 * Q192 <= d * d * 1_000_000 * sa * sa:
                    return x_before
                trip = RoundTrip.v2_then_v3(r0p, r1p, keep2, sa, lq, keep3)
                u = trip.optimum()
                y_range = -(-(lq * (sb - sa)) >> 96) * 1_000_000 // keep3  # V3 input to the range's end
                y_u = keep2 * u * r1p // (10_000 * r0p + keep2 * u)  # V2's output for u more
                if y_u <= y_range:
                    return x_before + u
                v3_in += y_range
                v3_out += lq * Q96 * (sb - sa) // (sa * sb)
        else:  # x token0 -> V3 (price down) -> y token1 -> V2 -> z token0
            r1p = r1 + v3_out
            r0p = r0 - v3_out * keep2 * r0 // (10_000 * r1 + keep2 * v3_out)
            if lq > 0:
                # V3' = keep3/1e6 * sa^2/2^192 (token1 per token0) and V2'(y) = keep2*1e4*r0*r1 /
                # (1e4*r1 + keep2*y)^2 (token0 per token1) at y = what V3 gave so far
                d = 10_000 * r1 + keep2 * v3_out
                if keep3 * sa * sa * keep2 * 10_000 * r0 * r1 <= 1_000_000 * Q192 * d * d:
                    return v3_in
                trip = RoundTrip.v3_then_v2(r0p, r1p, keep2, sa, lq, keep3)
                u = trip.optimum()
                x_range = -(-(-(-(lq << 96) * (sa - sb) // sa)) // sb) * 1_000_000 // keep3  # token0 to the end
                if u <= x_range:
                    return v3_in + u
                v3_in += x_range
                v3_out += lq * (sa - sb) >> 96
    return v3_in if v3_in else None


def _feasible_end(profit: Callable[[int], int | None], hi: int) -> int:
    """The largest size up to ``hi`` that the exact math prices (feasibility is a prefix)."""
    if profit(hi) is not None:
        return hi
    good, bad = 0, hi
    while bad - good > 1:
        mid = (good + bad) // 2
        if profit(mid) is not None:
            good = mid
        else:
            bad = mid
    return good


def _climb(profit: Callable[[int], int | None], x: int, p: int, hi: int) -> tuple[int, int]:
    """Moves of +-2^j from ``x`` within ``[1, hi]``, j from half the bits of ``x`` down to 0, taken
    while the exact profit improves (ties keep the smaller size): a local optimum at every power of
    two up to that, on the exact math."""
    top = max(x.bit_length() // 2 + 2, 1)
    for j in range(top, -1, -1):
        d = 1 << j
        moved = True
        while moved:
            moved = False
            for n in (x - d, x + d):
                if 1 <= n <= hi:
                    v = profit(n)
                    if v is not None and (v > p or (v == p and n < x)):
                        x, p, moved = n, v, True
                        break
    return x, p


def _pool_id(field: str, value: Any) -> str:
    """A pool as the sources name it: a chain address (lowercase; a ``0x`` id must be a real
    20-byte address) or, in a simulated world, the scenario's pool name."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} must be a pool address or a scenario pool name, got {value!r}")
    if value.lower().startswith("0x"):
        try:
            return str(Address.parse(value))
        except IdError as e:
            raise ValueError(f"{field}: {e}") from None
    return value.lower()
