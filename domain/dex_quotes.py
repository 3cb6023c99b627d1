"""Exact DEX quotes over the engine's pool state: what selling an amount through a route returns.

Why: a liquidator is paid in collateral and owes debt; what the collateral is worth is what the
pools give for it now, by the contracts' own math, not a mid price. One quote function per pool
kind, over the state the engine folds (``MarketState.v2`` reserves, ``MarketState.v3`` price,
tick and in-range liquidity):

* ``v2``: ``UniswapV2Library.getAmountOut`` (``domain/uniswap_v2.py``), fee in bps;
* ``v3``, where the pool's ticks are known (its state was set by a ``V3PoolSnapshot``, then kept
  by every Mint/Burn: ``V3PoolState.ticks``): the pool's own exact-in swap across as many
  initialized ticks as it crosses (``uniswap_v3.swap``, fee in pips); a size that runs out of
  liquidity before its input is used quotes ``None``;
* ``v3`` where they are not (a state known only from Swap logs, which carry the in-range liquidity
  and nothing of the ticks): an exact-in swap inside the current tick-spacing interval
  (``swap_within_range``), so a swap that would cross the interval's edge cannot be priced exactly
  and quotes ``None`` (the route is not usable at that size).

A pool is configured by its id (as its events name it: ``V2ReservesSynced.pool``), kind, token0,
token1 and fee; a route is a sequence of pools from one token to another (``routes`` finds the
direct ones and those through one intermediate token). ``best`` picks the route that returns the
most; ties go to the first route in the configured order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from tapedeck.domain.state import MarketState
from tapedeck.domain.uniswap_v3 import V3MathError, swap, swap_within_range

KINDS = ("v2", "v3")
V3_TICK_SPACING = {100: 1, 500: 10, 3000: 60, 10000: 200}  # Uniswap V3 fee tier (pips) -> tick spacing

@dataclass(frozen=True, slots=True)
class PoolSpec:
    """A configured pool: ``fee`` is bps for ``v2`` (30 = 0.3%), pips for ``v3`` (500 = 0.05%)."""

    pool: str
    kind: str
    token0: str
    token1: str
    fee: int
    tick_spacing: int = 0

    @classmethod
    def from_config(cls, d: dict[str, Any]) -> "PoolSpec":
        kind = str(d.get("kind", "")).lower()
        if kind not in KINDS:
            raise ValueError(f"pool kind must be one of {', '.join(KINDS)}, got {d.get('kind')!r}")
        t0, t1 = str(d["token0"]).lower(), str(d["token1"]).lower()
        if t0 == t1:
            raise ValueError(f"pool {d.get('pool')!r} has the same token on both sides")
        default_fee = 30 if kind == "v2" else 500
        spacing = int(d.get("tick_spacing", V3_TICK_SPACING.get(int(d.get("fee", 500)), 10)))
        return cls(str(d["pool"]).lower(), kind, t0, t1, int(d.get("fee", default_fee)),
                   spacing if kind == "v3" else 0)

    def other(self, token: str) -> str:
        return self.token1 if token == self.token0 else self.token0


Route = tuple[PoolSpec, ...]


def quote(spec: PoolSpec, state: MarketState, token_in: str, amount_in: int) -> int | None:
    """What the pool gives for ``amount_in`` of ``token_in`` now, exactly; None if it cannot say
    (unknown or empty pool, a V3 swap leaving the tick-spacing interval where the pool's ticks are
    not known, or running out of liquidity where they are, a zero output)."""
    if amount_in <= 0:
        return None
    zero_for_one = token_in == spec.token0
    if spec.kind == "v2":
        p = state.v2.get(spec.pool)
        if p is None:
            return None
        r_in, r_out = (p.reserve0, p.reserve1) if zero_for_one else (p.reserve1, p.reserve0)
        if r_in <= 0 or r_out <= 0:
            return None
        with_fee = amount_in * (10_000 - spec.fee)
        out = with_fee * r_out // (r_in * 10_000 + with_fee)
        return out or None
    s = state.v3.get(spec.pool)
    if s is None or s.sqrt_price_x96 is None or (s.ticks is None and not s.liquidity):
        return None  # (with its ticks known, a pool out of range here may still have liquidity ahead)
    if s.ticks is not None:  # across ticks, as the pool swaps
        try:
            m = swap(s.sqrt_price_x96, s.tick, s.liquidity, s.ticks, spec.fee, amount_in, zero_for_one)
        except (V3MathError, ValueError):
            return None
        paid, got = (m.amount0, -m.amount1) if zero_for_one else (m.amount1, -m.amount0)
        if paid != amount_in or got <= 0:
            return None  # it ran out of liquidity before its whole input was used
        return got
    try:
        r = swap_within_range(s.sqrt_price_x96, s.liquidity, s.tick, spec.tick_spacing, spec.fee, amount_in,
                              zero_for_one)
    except (V3MathError, ValueError):
        return None
    paid, got = (r.amount0, -r.amount1) if zero_for_one else (r.amount1, -r.amount0)
    if paid != amount_in or got <= 0:
        return None  # it would have crossed the interval's edge: not priceable exactly
    return got


def quote_route(route: Route, state: MarketState, token_in: str, amount_in: int) -> int | None:
    """The output of selling ``amount_in`` through every pool of ``route`` in turn."""
    amount, token = amount_in, token_in
    for spec in route:
        out = quote(spec, state, token, amount)
        if out is None:
            return None
        amount, token = out, spec.other(token)
    return amount


def routes(pools: Sequence[PoolSpec], token_in: str, token_out: str, max_hops: int = 2) -> list[Route]:
    """Routes from ``token_in`` to ``token_out``: direct pools, then two-hop ones (config order)."""
    direct: list[Route] = [(p,) for p in pools if {p.token0, p.token1} == {token_in, token_out}]
    if max_hops < 2:
        return direct
    two: list[Route] = []
    for a in pools:
        if token_in not in (a.token0, a.token1):
            continue
        mid = a.other(token_in)
        if mid == token_out:
            continue
        for b in pools:
            if b is not a and {b.token0, b.token1} == {mid, token_out}:
                two.append((a, b))
    return direct + two


def best(candidates: Iterable[Route], state: MarketState, token_in: str, amount_in: int) -> tuple[int, Route] | None:
    """The route that returns the most for ``amount_in`` (first on ties), or None if none can."""
    top: tuple[int, Route] | None = None
    for route in candidates:
        out = quote_route(route, state, token_in, amount_in)
        if out is not None and (top is None or out > top[0]):
            top = (out, route)
    return top


def marginal_ratio(route: Route, state: MarketState, token_in: str, amount_in: int) -> float | None:
    """For a route of V2 pools: the marginal output per unit input at ``amount_in`` divided by the
    average (``out/amount_in``), a float in (0, 1]. For one pair ``out = k*a*R/(r + k*a)`` (``r``
    scaled by 1e4), so ``d out/da = (out/a) * r/(r + k*a)``; a route multiplies its hops'. Used to
    tell whether a bigger sale would still pay (a float: it steers a search, never an amount).
    None when a hop is not V2 or its state is unknown."""
    ratio, amount, token = 1.0, float(amount_in), token_in
    for spec in route:
        if spec.kind != "v2":
            return None
        p = state.v2.get(spec.pool)
        if p is None:
            return None
        r_in, r_out = (p.reserve0, p.reserve1) if token == spec.token0 else (p.reserve1, p.reserve0)
        if r_in <= 0 or r_out <= 0:
            return None
        r, ka = r_in * 10_000.0, amount * (10_000 - spec.fee)
        ratio *= r / (r + ka)
        amount, token = ka * r_out / (r + ka), spec.other(token)
    return ratio
