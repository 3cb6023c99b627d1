"""Cross-pool arbitrage between a Uniswap V2 pair and a V3 pool of the same two tokens.

Both pools order their tokens by address, so token0/token1 agree. Profit is counted in token0
(USDC for USDC/WETH). Two round trips are checked after every event that moves either pool:

* A: token0 -> token1 on V2, token1 -> token0 on V3;
* B: token0 -> token1 on V3, token1 -> token0 on V2.

The math is exact: V2 ``getAmountOut`` and the V3 swap step inside the current tick-spacing
interval, where liquidity is certainly constant (no initialized tick can lie inside it); a trade
that would need to cross the interval's edge is not considered. A cheap marginal-price test skips
the search when neither direction can pay; otherwise an integer ternary search finds the input
with the largest profit (the profit is concave in the input). Gas (``gas_units`` x
``gas_price_wei``, paid in token1 = ETH) is converted to token0 at the V3 price.

Freshness: it prices only on pools updated at most ``max_age_s`` seconds (default 60, five
blocks) before the event and not marked stale (``SourceStale``); an opportunity priced on older
state is recorded as ``OpportunitySuppressed`` (with the pools at fault and their age), never as
``OpportunityDetected``, and nothing is intended. An empty pool (a zero reserve, no V3 price or
liquidity) has no price and is skipped.

An opportunity's ``key`` is the gap's identity: both pool ids and the state that priced it (V2
reserves, V3 sqrtPrice and liquidity), so a re-detection of the same unmoved gap has the same key.
With ``act``, the intent's instrument is ``"<buy pool id>-><sell pool id>"`` (the configured
``v2_pool``/``v3_pool``), side ``arb``, client id ``arb-<n>`` (n counts its intents).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from tapedeck.domain import events as ev
from tapedeck.domain.decimals import seconds_to_ns
from tapedeck.domain.ids import Address, IdError
from tapedeck.domain.risk import Intent
from tapedeck.domain.state import MarketState
from tapedeck.domain.uniswap_v2 import get_amount_out
from tapedeck.domain.uniswap_v3 import swap_within_range

Q192 = 1 << 192


class CrossPoolArb:
    handles = (ev.V2ReservesSynced, ev.V3Swapped, ev.V3Minted, ev.V3Burned)

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
        **unknown: Any,
    ):
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
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

    # ------------------------------------------------------------------ event

    def on_event(self, e: ev.Event, state: MarketState) -> Sequence[ev.Event | Intent]:
        pool = getattr(e, "pool", "")
        if pool != self.v2_pool and pool != self.v3_pool:
            return ()
        v2 = state.v2.get(self.v2_pool)
        v3 = state.v3.get(self.v3_pool)
        if v2 is None or v3 is None or not v3.known or v3.liquidity <= 0 or v3.sqrt_price_x96 <= 0:
            return ()
        r0, r1 = v2.reserve0, v2.reserve1
        if r0 <= 0 or r1 <= 0:
            return ()  # an empty pair has no price
        sp, liq, tick = v3.sqrt_price_x96, v3.liquidity, v3.tick
        sp2 = sp * sp
        fee_keep = 1_000_000 - self.fee_pips
        v2_keep = 10_000 - self.v2_fee_bps
        # Marginal output per unit input of each round trip at size 0, compared with 1.
        # A: token1 per token0 on V2 = keep*r1/r0; token0 per token1 on V3 = keep*2^192/sp^2.
        a_pays = v2_keep * r1 * fee_keep * Q192 > 10_000 * r0 * 1_000_000 * sp2
        # B: token1 per token0 on V3 = keep*sp^2/2^192; token0 per token1 on V2 = keep*r0/r1.
        b_pays = fee_keep * sp2 * v2_keep * r0 > 1_000_000 * Q192 * 10_000 * r1
        if not (a_pays or b_pays):
            return ()
        gas_cost = self.gas_units * self.gas_price_wei * Q192 // sp2  # token1 wei -> token0 units

        def v3_swap(amount: int, zero_for_one: bool) -> Any:
            return swap_within_range(sp, liq, tick, self.spacing, self.fee_pips, amount, zero_for_one)

        if a_pays:
            def profit(x: int) -> int | None:
                y = get_amount_out(x, r0, r1, self.v2_fee_bps)
                if y <= 0:
                    return -x  # too small to buy anything: feasible, a pure loss
                r = v3_swap(y, False)
                if r.amount1 != y:  # the V3 leg would leave the tick-spacing interval
                    return None
                return -r.amount0 - x
            buy, sell = "uniswap-v2", "uniswap-v3"
        else:
            def profit(x: int) -> int | None:
                r = v3_swap(x, True)
                if r.amount0 != x:
                    return None
                y = -r.amount1
                if y <= 0:
                    return -x
                return get_amount_out(y, r1, r0, self.v2_fee_bps) - x
            buy, sell = "uniswap-v3", "uniswap-v2"

        best_x, best = _maximise(profit, r0)
        if best_x == 0 or best is None or best <= 0:
            return ()
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
            pools = f"{self.v2_pool}->{self.v3_pool}" if buy == "uniswap-v2" else f"{self.v3_pool}->{self.v2_pool}"
            out.append(Intent(self.name, self.venue, pools, "arb", best_x, best_x,
                              max_priority_fee=self.priority_fee_wei, client_id=f"arb-{self.intents}"))
        return out

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


def _maximise(profit: Callable[[int], int | None], upper: int) -> tuple[int, int | None]:
    """Largest value of a concave integer function on its feasible prefix [1, x_max] of [1, upper]."""
    if upper < 1 or profit(1) is None:
        return 0, None
    lo, hi = 1, upper  # binary search the feasible prefix (feasibility is monotone in the size)
    if profit(hi) is None:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if profit(mid) is None:
                hi = mid
            else:
                lo = mid
        hi = lo
    lo = 1
    while hi - lo > 2:  # ternary search on the integer interval
        m1 = lo + (hi - lo) // 3
        m2 = hi - (hi - lo) // 3
        if profit(m1) < profit(m2):  # type: ignore[operator]
            lo = m1 + 1
        else:
            hi = m2
    best_x, best = lo, profit(lo)
    for x in range(lo + 1, hi + 1):
        p = profit(x)
        if p is not None and (best is None or p > best):
            best_x, best = x, p
    return best_x, best


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
