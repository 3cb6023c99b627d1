"""Venue-agnostic arbitrage finding: every pair of venues quoting the same two tokens, both ways.

Why: the cross-pool strategy knows one V2 pair and one V3 pool; a user watches many pools on
several venues (EVM pools, Solana pools, a CEX book) and wants, on every update, the round trips
that pay after fees, gas and slippage, sized exactly. This module is that search, over the
engine's ``MarketState`` and nothing else (no clock, no I/O; ties broken by configuration order).

**Venues** (``VenueQuote``, a small Protocol) give, for a token in and an amount, the exact output
by the venue's own math, plus what the search needs to be fast: the marginal rate at size zero
(``margin``), an optional constant-product view (``curve``) and the largest input they can price
(inside ``curve().max_in`` the curve is exact up to the contracts' roundings). Shipped:

* ``PoolVenue``: an EVM pool through ``domain/dex_quotes.quote`` (V2 ``getAmountOut``; V3 inside
  the tick-spacing interval today; when ``dex_quotes`` quotes V3 across ticks, ``quote`` follows it
  and the curve stays the current interval's). A Solana pool plugs in the same way: an adapter with
  ``quote``/``margin``/``curve``/``mid`` over its own state (Raydium is constant-product on its
  vault reserves; a Whirlpool inside its tick range is constant-product on virtual reserves).
* ``BookVenue``: a CEX instrument through its book (``MarketState.depth``, ``domain/book_depth.py``)
  when that is in sync and fresh, else its top of book (``QuoteUpdated``, one level of the quoted
  size): the output walks the levels (slippage), whole lots only, less the taker fee (taken from
  what is received, as Binance does by default).

Token identity is the registry's (token addresses, lowercase), never symbol text: a CEX instrument
says which tokens its base and quote are (e.g. Binance ETHUSDT = WETH/USDT by address).

**Sizing** a round trip ``s -> o`` on venue A then ``o -> s`` on venue B (profit in ``s``):

* quiet path: it pays at the margin iff ``margin_A * margin_B > 1`` (integer cross-multiplication);
* two constant-product curves: their composition is one constant-product round trip
  (``domain/cp_optimum.RoundTrip``, closed-form optimum and an upper bound of every exact profit);
  a bound below gas + ``min_profit`` ends it (proven: nothing pays). Else the closed-form size is
  priced exactly; from it, the sizes that could do better are ``level_interval(profit + 1)``: searched
  whole when at most ``FINISH_SCAN`` wide (the result is the exact integer optimum, ``proven``; top
  down by levels, with the V3 fee floor in the bound and the sizes between the legs' exact inverses
  skipped, ``_finish``: the answer of the size-by-size scan in a few quotes), else a pattern search (+-2^j, j <= ``PATTERN_BITS``: a local optimum, not proven; on
  USDC/WETH-scale pools such plateaus are ~1e7 sizes wide and their exact profits differ by a unit or
  two of rounding). A candidate below gas + ``min_profit`` is settled by ``best_size``
  (``cross_pool_arb``) when the bound is within ``PROOF_LEVELS`` of it, else left (counted in
  ``FinderStats.unsearched``);
* otherwise a bounded exact search: ternary search over the sizes the first leg can really take
  (whole lots of a book: its cost of ``n`` lots; any integer for a pool) on the exact profit, down
  to a window searched exhaustively, then a neighbour climb (+-1 until neither side improves).

Every figure reported (outputs, profit) is the venues' exact math at the size chosen. Gas: the
on-chain legs' ``gas_units`` at the chain's current base fee (``state.blocks[chain].next_base_fee``,
plus ``priority_fee_wei``; ``gas_price_wei`` when no block was recorded), valued in the profit
token at the mid of the first fresh venue quoting (native token, profit token) (``native`` per
chain, WETH on Ethereum); an opportunity whose gas cannot be valued is not reported. Freshness:
venues whose state is older than ``max_age_ns`` or marked stale (``state.fresh``) take no part.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from typing import Any, Callable, Iterable, NamedTuple, Protocol, Sequence

import msgspec

from tapedeck.domain import dex_quotes
from tapedeck.domain.book_depth import depth_id
from tapedeck.domain.cp_optimum import RoundTrip, memoized
from tapedeck.domain.state import MarketState
from tapedeck.domain.strategies.cross_pool_arb import best_size
from tapedeck.domain.uniswap_v3 import (MAX_TICK, MAX_UINT160, MAX_UINT256, MIN_TICK, V3MathError, get_amount0_delta, get_amount1_delta,
                                        get_next_sqrt_price_from_input, get_sqrt_ratio_at_tick, mul_div_rounding_up)

try:  # the closed-form sizing's integer work in C on GMP (domain/_closed_form_gmp.c, built by setup.py);
    # ``_closed_form`` below is the reference, run wherever that module declines or is not built
    from tapedeck.domain._closed_form_gmp import closed_form as _gmp_closed_form
    from tapedeck.domain._closed_form_gmp import product_below as _gmp_product_below
    from tapedeck.domain._closed_form_gmp import v3_edge as _gmp_v3_edge
    from tapedeck.domain._closed_form_gmp import surplus as _gmp_surplus
    from tapedeck.domain._closed_form_gmp import ceil_mul_div as _gmp_ceil_mul_div
except ImportError:
    _gmp_closed_form = _gmp_product_below = _gmp_v3_edge = _gmp_surplus = _gmp_ceil_mul_div = None

Q96 = 1 << 96
Q192 = 1 << 192
Q192_MILLION = 1_000_000 * Q192  # a V3 margin's denominator, token0 in (PoolVenue.margins_if_fresh)
MAX_INT256 = (1 << 255) - 1
V2_SWAP_GAS = 105_000  # about what a V2 pair swap costs (as adapters/paper_gateway.py prices paper legs)
V3_SWAP_GAS = 130_000  # a V3 swap inside one tick interval
WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
NEVER = 1 << 256  # ``least_input`` where no input reaches the output
WINDOW = 64  # the bounded search scans this many sizes exhaustively once ternary has narrowed to them


class Curve(NamedTuple):
    """A constant-product view of a venue for one direction: ``out(x) = k*x*ro / (ri + k*x)``, with
    ``ri = ri_num/den``, ``ro = ro_num/den``, ``k = keep/keep_den``; an upper bound of the venue's exact
    output (its roundings are against the trader) and exact to them for ``x <= max_in``. ``period``:
    inputs that are multiples of it lose nothing to a fee floor taken from the input (V3).
    (A NamedTuple, not a frozen dataclass: built on the finder's hot path, 0.3 us against 2 us.)"""

    ri_num: int
    ro_num: int
    den: int
    keep: int
    keep_den: int
    max_in: int
    period: int = 1


class VenueQuote(Protocol):
    """What the finder asks of a venue. ``id`` is unique (a pool address, ``binance:ETHUSDT``);
    ``venue`` its kind for people (``uniswap-v2``, ``binance``); ``chain`` where its legs settle
    ("" off chain: no gas); ``token0``/``token1`` registry identities; ``gas_units`` per swap."""

    id: str
    venue: str
    chain: str
    token0: str
    token1: str
    gas_units: int

    def quote(self, state: MarketState, token_in: str, amount_in: int) -> int | None: ...
    def margin(self, state: MarketState, token_in: str) -> tuple[int, int] | None: ...
    def curve(self, state: MarketState, token_in: str) -> Curve | None: ...
    def max_in(self, state: MarketState, token_in: str) -> int: ...
    def mid(self, state: MarketState, token_in: str) -> tuple[int, int] | None: ...
    def fresh(self, state: MarketState, now_ts: int, max_age_ns: int) -> bool: ...
    def sizes(self, state: MarketState, token_in: str) -> tuple[Callable[[int], int], int] | None: ...
    def version(self, state: MarketState) -> Any: ...


# ----------------------------------------------------------------------------- EVM pools


class PoolVenue:
    """A Uniswap V2 pair or V3 pool (``dex_quotes.PoolSpec``) on ``chain``."""

    def __init__(self, spec: dex_quotes.PoolSpec, chain: str = "ethereum", venue: str = "",
                 gas_units: int | None = None, label: str = "") -> None:
        self.spec = spec
        self.id = spec.pool
        self.venue = venue or ("uniswap-v2" if spec.kind == "v2" else "uniswap-v3")
        self.chain = chain
        self.token0, self.token1 = spec.token0, spec.token1
        self.gas_units = int(gas_units if gas_units is not None else (V2_SWAP_GAS if spec.kind == "v2" else V3_SWAP_GAS))
        self.label = label or spec.pool
        self._v3_keep = 1_000_000 - spec.fee
        self._v2 = spec.kind == "v2"  # (the spec is frozen: its fields are read as this object's on the hot paths)
        self._v2_keep = 10_000 - spec.fee
        self._fee, self._spacing = spec.fee, spec.tick_spacing
        self._period = 1_000_000 // gcd(spec.fee, 1_000_000) if spec.kind == "v3" and spec.fee else 1
        self._margins: dict[str, tuple[Any, tuple[int, int] | None]] = {}  # token in -> (state version, margin)
        self._views: dict[str, list[Any]] = {}  # token in -> _priced's [price key, max_in, leg, curve parts, curve, version]
        self._edges: dict[str, tuple[Any, int, int]] = {}  # V3: token in -> (price key, edge sqrt price, amount to it)
        self._both: tuple[Any, ...] | None = None  # (price objects, token in, both margins): margins_if_fresh

    def quote(self, state: MarketState, token_in: str, amount_in: int) -> int | None:
        """``dex_quotes.quote``; for a V3 pool whose ticks are not known (priced inside its
        tick-spacing interval), the same exact-in swap step without what the quote does not need:
        the amount to the interval's edge is the curve's (kept per price) and the pool's new tick
        is not computed (``get_tick_at_sqrt_ratio``: 10 of ``swap_within_range``'s 26 us). Equal
        to ``dex_quotes.quote`` (``tests/test_arb_finder_speed.py``)."""
        spec = self.spec
        if self._v2:  # getAmountOut, as dex_quotes.quote (inlined: the sizing prices a few per round trip)
            pv = state.v2.get(self.id)
            if pv is None or amount_in <= 0:
                return None
            r_in, r_out = (pv.reserve0, pv.reserve1) if token_in == self.token0 else (pv.reserve1, pv.reserve0)
            if r_in <= 0 or r_out <= 0:
                return None
            with_fee = amount_in * self._v2_keep
            return with_fee * r_out // (r_in * 10_000 + with_fee) or None
        if amount_in <= 0:
            return dex_quotes.quote(spec, state, token_in, amount_in)
        q = state.v3.get(self.id)
        if q is None or q.ticks is not None or not q.liquidity or not q.sqrt_price_x96:
            return dex_quotes.quote(spec, state, token_in, amount_in)
        sp, lq = q.sqrt_price_x96, q.liquidity
        edge = self._edges.get(token_in)
        if edge is None or edge[0] is None or edge[0] != (sp, lq, q.tick, True):  # (kept for another price)
            if self._priced(state, token_in)[3] is None:  # (no curve)
                return dex_quotes.quote(spec, state, token_in, amount_in)
            edge = self._edges.get(token_in)
            if edge is None or edge[0] is None:
                return dex_quotes.quote(spec, state, token_in, amount_in)
        _, target, raw = edge
        zero_for_one = token_in == self.token0
        if sp == target:
            return None  # at the edge already: nothing moves (the quote's "not priceable")
        if amount_in > MAX_INT256:
            return dex_quotes.quote(spec, state, token_in, amount_in)
        less = amount_in * self._v3_keep // 1_000_000
        if less < raw:  # it stops short of the edge: SqrtPriceMath inlined where it cannot overflow
            if zero_for_one:
                n1 = lq << 96
                d = n1 + less * sp
                if d <= MAX_UINT256:  # getNextSqrtPriceFromAmount0RoundingUp's first form
                    sn = -(-(n1 * sp) // d)
                    if sn != target:
                        out = lq * (sp - sn) >> 96  # getAmount1Delta, rounded down
                        return out if out > 0 else None
            elif less <= MAX_UINT160:  # getNextSqrtPriceFromAmount1RoundingDown, then getAmount0Delta
                sn = sp + (less << 96) // lq
                if sn != target:
                    if sn > MAX_UINT160:
                        return None  # (SafeCast reverts)
                    out = (lq << 96) * (sn - sp) // sn // sp
                    return out if out > 0 else None
        try:  # SwapMath.computeSwapStep, exact in, towards the interval's edge
            sn = target if less >= raw else get_next_sqrt_price_from_input(sp, lq, less, zero_for_one)
            if sn == target:  # it reaches the edge: the step takes raw and its fee, any rest is left
                if raw + mul_div_rounding_up(raw, self._fee, self._v3_keep) != amount_in:
                    return None  # input left at the edge: not priceable without the ticks
            # (else it stops short: all of the input is used, the rest of it being fee)
            out = get_amount1_delta(sn, sp, lq, False) if zero_for_one else get_amount0_delta(sp, sn, lq, False)
        except (V3MathError, ValueError):
            return None
        return out if out > 0 else None

    def curve(self, state: MarketState, token_in: str) -> Curve | None:
        """The constant-product view of the current reserves (V2) or of the current tick-spacing
        interval (V3: virtual reserves; it depends on price, liquidity and tick only, not on the
        tick table), kept per price so the partners of one update do not rebuild it."""
        view = self._priced(state, token_in)
        c = view[4]
        if c is None and view[3] is not None:
            if self._v2:
                r_in, r_out = view[3]
                c = Curve(r_in, r_out, 1, self._v2_keep, 10_000, view[1])
            else:  # token0 in: x_v = L*2^96/sp in, y_v = L*sp/2^96 out (over sp*2^96); token1 in the other way
                lq, sp, zfo = view[3]
                ri, ro = (lq * Q192, lq * sp * sp) if zfo else (lq * sp * sp, lq * Q192)
                c = Curve(ri, ro, sp * Q96, self._v3_keep, 1_000_000, view[1], self._period)
            view[4] = c
        return c

    def _priced(self, state: MarketState, token_in: str) -> list[Any]:
        """``[price key, max_in, leg, curve parts, curve, version]`` of the current price for ``token_in``,
        kept per price: what the finder's capacity test (``max_in``) and the C sizing (``leg``,
        ``_gmp_leg``) take, without the curve's products of ~400-bit integers, made only when ``curve``
        is asked for (the Python sizing). ``curve parts``: V2 ``(reserve in, reserve out)``, V3
        ``(liquidity, sqrt price, zero_for_one)``; None: no curve (an unknown or empty pool).
        ``version``: ``version(state)`` of that price (an opportunity's, read off the view it was sized on)."""
        if self._v2:
            v2 = state.v2  # (the state's tables as locals: typed dicts in the compiled build, arb_finder.pxd)
            p = v2.get(self.id)
            key: Any = p  # a V2 state is replaced, never changed, on each update
        else:
            v3 = state.v3
            q = v3.get(self.id)  # (whether its ticks are unknown is in the key: its leg is made only then)
            key = None if q is None else (q.sqrt_price_x96, q.liquidity, q.tick, q.ticks is None)
        hit = self._views.get(token_in)
        if hit is not None and key is not None and (hit[0] is key if self._v2 else hit[0] == key):
            return hit
        view = self._view(state, token_in, key)
        self._views[token_in] = view
        if view[3] is None:
            self._edges.pop(token_in, None)
        return view

    def _v2_reserves(self, state: MarketState, token_in: str) -> tuple[int, int] | None:
        """A V2 pair's (reserve in, reserve out) for ``token_in``; None if unknown or empty."""
        p = state.v2.get(self.id)
        if p is None or p.reserve0 <= 0 or p.reserve1 <= 0:
            return None
        return (p.reserve0, p.reserve1) if token_in == self.token0 else (p.reserve1, p.reserve0)

    def _view(self, state: MarketState, token_in: str, key: Any) -> list[Any]:
        """``_priced``'s view, made for a price it does not hold (and the V3 edge ``quote`` steps to), from
        ``_priced``'s key of the current state: the V2 state itself, or the V3 ``(sqrt price, liquidity,
        tick, ticks unknown)`` (read once, there). A V3 view's leg (the C sizing's) is None where the
        pool's ticks are known: ``quote`` then swaps across them, which the leg does not."""
        if self._v2:  # (``_v2_reserves`` inlined: a view is made on most gap-opening updates' legs)
            p = key
            if p is None or p.reserve0 <= 0 or p.reserve1 <= 0:
                return [key, 0, None, None, None, self.version(state)]
            r0, r1 = p.reserve0, p.reserve1
            r_in, r_out = (r0, r1) if token_in == self.token0 else (r1, r0)
            return [key, 1 << 255, (0, r_in, r_out, self._v2_keep), (r_in, r_out), None, (r0, r1)]
        if key is None or not key[1] or not key[0]:
            return [key, 0, None, None, None, self.version(state)]
        sp, lq, tick, plain = key
        fee, keep, spacing = self._fee, self._v3_keep, self._spacing
        if _gmp_v3_edge is not None:  # the same edge and amounts in C (tick math included), where it prices them
            zfo = token_in == self.token0
            got = _gmp_v3_edge(sp, lq, tick, spacing, fee, zfo)
            if got is not None:
                mx, edge, cap = got
                self._edges[token_in] = (key, edge, cap)
                return [key, mx, (1, sp, lq, edge, cap, keep, zfo) if plain else None, (lq, sp, zfo), None, (sp, lq)]
        lower = max((tick // spacing) * spacing, MIN_TICK)  # type: ignore[operator]  # tick_spacing_interval
        # the amounts to the interval's edge, rounded up, as SqrtPriceMath.getAmount0Delta /
        # getAmount1Delta (inlined: this is the finder's hot path; equal to them, as the test of
        # ``max_in`` against ``feasible_max`` holds)
        leg = None
        if token_in == self.token0:
            sl = get_sqrt_ratio_at_tick(lower)
            cap = (-(-(-(-(lq << 96) * (sp - sl) // sp)) // sl) if sp >= sl
                   else get_amount0_delta(sl, sp, lq, True))  # (a price outside its tick's interval)
            self._edges[token_in] = (key if sp >= sl else None, sl, cap)
            if sp >= sl and plain:
                leg = (1, sp, lq, sl, cap, keep, True)
            zfo = True
        else:
            su = get_sqrt_ratio_at_tick(min(lower + spacing, MAX_TICK))
            cap = -(-(lq * (su - sp)) >> 96) if su >= sp else get_amount1_delta(sp, su, lq, True)
            self._edges[token_in] = (key if su >= sp else None, su, cap)
            if su >= sp and plain:
                leg = (1, sp, lq, su, cap, keep, False)
            zfo = False
        # an exact-in swap stays inside the interval iff amount <= cap + ceil(cap*fee/keep)
        # (cross_pool_arb.feasible_max)
        return [key, cap - (-(cap * fee) // keep), leg, (lq, sp, zfo), None, (sp, lq)]

    def margin(self, state: MarketState, token_in: str) -> tuple[int, int] | None:
        """The output per unit input at size zero after the fee (the quiet path: no tick math;
        kept per state, so a pool that did not move is not priced again for each partner)."""
        if self._v2:
            key: Any = state.v2.get(self.id)  # replaced, never changed, on each update: identity will do
            hit = self._margins.get(token_in)
            if hit is not None and hit[0] is key and key is not None:
                return hit[1]
        else:
            q = state.v3.get(self.id)
            key = None if q is None else (q.sqrt_price_x96, q.liquidity)
            hit = self._margins.get(token_in)
            if hit is not None and hit[0] == key:
                return hit[1]
        if self._v2:
            m = self.mid(state, token_in)
            if m is not None:
                m = (10_000 - self._fee) * m[0], 10_000 * m[1]
        elif key is None or not key[0] or not key[1]:
            m = None
        else:
            up, down = self._v3_margins(key[0])
            m = up if token_in == self.token0 else down
        self._margins[token_in] = (key, m)
        return m

    def _v3_margins(self, sp: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """A V3 pool's margins at sqrt price ``sp``, token0 in and token1 in: ``mid`` (sp^2 over 2^192
        one way, the other way back) after the fee, from one square of the price."""
        sp2, keep = sp * sp, self._v3_keep
        return (keep * sp2, Q192_MILLION), (keep * Q192, 1_000_000 * sp2)

    def margins_if_fresh(self, state: MarketState, s: str, o: str, now_ts: int,
                         max_age_ns: int) -> tuple[Any, Any, float, float] | None:
        """``None`` if not fresh, else ``(margin(s), margin(o), _ratio(margin(s)), _ratio(margin(o)))``:
        the finder's quiet path in one call (the floats for its margin screen), kept while the state
        holds the very same price objects (a V2 state is replaced on each update; a V3 state's price
        and liquidity are the ints its last event set: the same objects mean the same values, and a
        different object with an equal value is just priced again)."""
        pid = self.id
        updated, stale = state.updated, state.stale  # (typed dicts in the compiled build)
        t = updated.get(pid)
        if t is None or now_ts - t > max_age_ns or (stale and pid in stale):
            return None
        both = self._both
        if self._v2:
            v2 = state.v2
            p = v2.get(pid)
            if both is not None and both[0] is p and both[2] is s:
                return both[3]
            k1: Any = p
            k2: Any = None
        else:
            v3 = state.v3
            q = v3.get(pid)
            k1, k2 = (None, None) if q is None else (q.sqrt_price_x96, q.liquidity)
            if both is not None and both[0] is k1 and both[1] is k2 and both[2] is s and k1 is not None:
                return both[3]
        if k1 and k2 and not self._v2 and ((s == self.token0 and o == self.token1) or (s == self.token1 and o == self.token0)):
            # both margins from one square of the price, kept as ``margin`` keeps them
            up, down = self._v3_margins(k1)
            ms, mo = (up, down) if s == self.token0 else (down, up)
            price = (k1, k2)
            self._margins[s] = (price, ms)
            self._margins[o] = (price, mo)
        else:
            ms, mo = self.margin(state, s), self.margin(state, o)
        m = (ms, mo, _ratio(ms), _ratio(mo))
        self._both = (k1, k2, s, m)
        return m

    def mid(self, state: MarketState, token_in: str) -> tuple[int, int] | None:
        """The price without fee, ``token_out`` units per ``token_in`` unit, as ``(num, den)``."""
        if self._v2:
            p = state.v2.get(self.id)
            if p is None or p.reserve0 <= 0 or p.reserve1 <= 0:
                return None
            return (p.reserve1, p.reserve0) if token_in == self.token0 else (p.reserve0, p.reserve1)
        s = state.v3.get(self.id)
        if s is None or not s.liquidity or not s.sqrt_price_x96:
            return None
        sp2 = s.sqrt_price_x96 * s.sqrt_price_x96
        return (sp2, Q192) if token_in == self.token0 else (Q192, sp2)

    def max_in(self, state: MarketState, token_in: str) -> int:
        return self._priced(state, token_in)[1]  # type: ignore[no-any-return]

    def least_input(self, state: MarketState, token_in: str, amount_out: int) -> int | None:
        """The least input ``x`` whose output reaches ``amount_out``, as an equivalence the sizing
        may skip by: every ``x`` below it quotes less than ``amount_out`` (or nothing), and (inside
        what ``quote`` prices the same way) every ``x`` at or above it quotes at least that;
        ``NEVER`` when no input does. ``None`` where there is no closed form (a V3 pool whose ticks
        are known is swapped across them; an unknown or empty pool). Each step inverts one floor
        or ceiling of the contracts' math exactly (``tests/test_arb_finder_fast.py`` checks it
        against ``quote`` at and below the answer):

        * V2: ``floor(x*k*ro / (ri*1e4 + x*k)) >= y  <=>  x*k*(ro - y) >= y*ri*1e4``;
        * V3, token0 in: ``floor(L*(sp - sn)/2^96) >= y  <=>  sn <= S = sp - ceil(y*2^96/L)``;
          ``sn = ceil(N*sp/(N + m*sp)) <= S  <=>  m >= ceil(N*(sp - S)/(S*sp))`` (``N = L*2^96``,
          ``m`` the input after the fee, ``floor(x*keep/1e6) >= m  <=>  x >= ceil(m*1e6/keep)``);
        * V3, token1 in: ``floor(floor(N*(sn - sp)/sn)/sp) >= y  <=>  sn >= S = ceil(N*sp/(N -
          y*sp))``; ``sn = sp + floor(m*2^96/L) >= S  <=>  m >= ceil((S - sp)*L/2^96)``.

        Where the swap would stop at the interval's edge the quote is at most the unclamped
        formula's (or nothing), so below the answer it still falls short. A V3 input past
        ``getNextSqrtPriceFromAmount0RoundingUp``'s overflow fallback is not inverted (``None``)."""
        if amount_out <= 0:
            return 1
        if self._v2:
            res = self._v2_reserves(state, token_in)
            if res is None:
                return None
            ri, ro = res
            if amount_out >= ro:
                return NEVER
            k = 10_000 - self._fee
            return max(1, -(-(amount_out * ri * 10_000) // (k * (ro - amount_out))))
        q = state.v3.get(self.id)
        if q is None or q.ticks is not None or not q.liquidity or not q.sqrt_price_x96:
            return None
        sp, lq, keep = q.sqrt_price_x96, q.liquidity, self._v3_keep
        n1 = lq << 96
        if token_in == self.token0:
            target = sp - (-(-(amount_out << 96) // lq))
            if target <= 0:
                return NEVER
            m = -(-(n1 * (sp - target)) // (target * sp))
            x = -(-(m * 1_000_000) // keep)
            if x * sp > MAX_UINT256 or n1 + x * sp > MAX_UINT256:
                return None  # (the contract's overflow fallback rounds otherwise)
        else:
            if n1 <= amount_out * sp:
                return NEVER
            target = -(-(n1 * sp) // (n1 - amount_out * sp))
            m = -(-((target - sp) * lq) >> 96)
            x = -(-(m * 1_000_000) // keep)
        return max(1, x)

    def sizes(self, state: MarketState, token_in: str) -> tuple[Callable[[int], int], int] | None:
        return None  # any integer input

    def fresh(self, state: MarketState, now_ts: int, max_age_ns: int) -> bool:
        """``MarketState.fresh`` of the pool, inlined (the gas's native price asks it on each
        gap-opening update; a call into the interpreted method costs more than the test)."""
        t = state.updated.get(self.id)
        return t is not None and now_ts - t <= max_age_ns and not (state.stale and self.id in state.stale)

    def version(self, state: MarketState) -> Any:
        """The state that prices it, as immutable ints: V2 reserves, V3 ``(sqrt price, liquidity)``."""
        if self._v2:
            p = state.v2.get(self.id)
            return None if p is None else (p.reserve0, p.reserve1)
        s = state.v3.get(self.id)
        return None if s is None else (s.sqrt_price_x96, s.liquidity)


# ----------------------------------------------------------------------------- CEX books


class BookVenue:
    """A CEX instrument: ``base``/``quote`` are the registry tokens it trades (addresses), with their
    on-chain decimals; the book's fixed-point precision comes from its events. ``taker_fee_pips``
    (1000 = 0.1%) is taken from what a taker receives."""

    def __init__(self, venue: str, instrument: str, base: str, quote: str, base_decimals: int, quote_decimals: int,
                 taker_fee_pips: int = 1000, label: str = "") -> None:
        if not 0 <= taker_fee_pips < 1_000_000:
            raise ValueError(f"taker_fee_pips must be in 0..999999, got {taker_fee_pips}")
        self.id = f"{venue}:{instrument}"
        self.venue, self.instrument = venue, instrument
        self.chain = ""
        self.gas_units = 0
        self.token0, self.token1 = base, quote
        self.base, self.quote_token = base, quote
        self.base_decimals, self.quote_decimals = base_decimals, quote_decimals
        self.keep = 1_000_000 - taker_fee_pips
        self.depth_key = depth_id(venue, instrument)
        self.label = label or self.id

    # which levels: the synced book if fresh, else the top of book
    def _levels(self, state: MarketState, sell_base: bool) -> tuple[tuple[tuple[int, int], ...], int, int] | None:
        book = state.depth.get(self.depth_key)
        if book is not None and book.synced and self.depth_key not in state.stale:
            levels = book.bids() if sell_base else book.asks()
            if levels:
                return levels, book.price_decimals, book.size_decimals
        q = state.quotes.get(self.instrument, {}).get(self.venue)
        if q is None:
            return None
        p, s = (q.bid, q.bid_size) if sell_base else (q.ask, q.ask_size)
        if p <= 0 or s <= 0:
            return None
        return ((p, s),), q.price_decimals, q.size_decimals

    def curve(self, state: MarketState, token_in: str) -> Curve | None:
        return None  # a book is not a constant-product curve: the bounded search sizes it

    def fresh(self, state: MarketState, now_ts: int, max_age_ns: int) -> bool:
        book = state.depth.get(self.depth_key)
        if book is not None and book.synced and state.fresh(self.depth_key, now_ts, max_age_ns):
            return True
        q = state.quotes.get(self.instrument, {}).get(self.venue)
        return q is not None and state.quote_fresh(q, now_ts, max_age_ns)

    def quote(self, state: MarketState, token_in: str, amount_in: int) -> int | None:
        if amount_in <= 0:
            return None
        sell = token_in == self.base
        got = self._levels(state, sell)
        if got is None:
            return None
        levels, pd, sd = got
        bd, qd = self.base_decimals, self.quote_decimals
        if sell:  # base units -> whole size units, sold down the bids
            left = amount_in * 10**sd // 10**bd
            if left <= 0:
                return None
            acc = 0
            for p, s in levels:
                t = s if s < left else left
                acc += t * p
                left -= t
                if not left:
                    break
            if left:
                return None  # deeper than the book
            out = acc * 10**qd // 10 ** (pd + sd)
        else:  # quote units buy whole size units up the asks
            budget = amount_in * 10 ** (pd + sd)
            bought = 0
            unit = 10**qd
            for p, s in levels:
                cost = p * unit
                t = budget // cost
                if t >= s:
                    bought += s
                    budget -= s * cost
                    continue
                bought += t
                budget = 0
                break
            if budget:
                return None  # money left after the whole book: deeper than the book
            out = bought * 10**bd // 10**sd
        out = out * self.keep // 1_000_000
        return out or None

    def sizes(self, state: MarketState, token_in: str) -> tuple[Callable[[int], int], int] | None:
        """``(input of n lots, how many lots the side holds)``, for the search: the base units of ``n``
        size units when selling, the exact quote cost of the ``n`` cheapest units when buying."""
        sell = token_in == self.base
        got = self._levels(state, sell)
        if got is None:
            return None
        levels, pd, sd = got
        bd, qd = self.base_decimals, self.quote_decimals
        units = sum(s for _, s in levels)
        if sell:
            return (lambda n: -((-n * 10**bd) // 10**sd)), units

        def cost(n: int) -> int:
            acc = 0
            for p, s in levels:
                t = s if s < n else n
                acc += t * p
                n -= t
                if not n:
                    break
            return -((-acc * 10**qd) // 10 ** (pd + sd))  # ceil: enough to buy them all
        return cost, units

    def max_in(self, state: MarketState, token_in: str) -> int:
        sell = token_in == self.base
        got = self._levels(state, sell)
        if got is None:
            return 0
        levels, pd, sd = got
        total = sum(s for _, s in levels)
        if sell:
            return total * 10**self.base_decimals // 10**sd
        return sum(p * s for p, s in levels) * 10**self.quote_decimals // 10 ** (pd + sd)

    def margin(self, state: MarketState, token_in: str) -> tuple[int, int] | None:
        sell = token_in == self.base
        got = self._levels(state, sell)
        if got is None:
            return None
        (p, _), pd = got[0][0], got[1]
        bd, qd = self.base_decimals, self.quote_decimals
        if sell:  # quote units per base unit at the best bid, after the fee
            return self.keep * p * 10**qd, 1_000_000 * 10 ** (pd + bd)
        return self.keep * 10 ** (pd + bd), 1_000_000 * p * 10**qd

    def mid(self, state: MarketState, token_in: str) -> tuple[int, int] | None:
        bid, ask = self._levels(state, True), self._levels(state, False)
        if bid is None or ask is None:
            return None
        b, a, pd = bid[0][0][0], ask[0][0][0], bid[1]
        bd, qd = self.base_decimals, self.quote_decimals
        if token_in == self.base:
            return (b + a) * 10**qd, 2 * 10 ** (pd + bd)
        return 2 * 10 ** (pd + bd), (b + a) * 10**qd

    def version(self, state: MarketState) -> Any:
        book = state.depth.get(self.depth_key)
        q = state.quotes.get(self.instrument, {}).get(self.venue)
        return (book.version if book is not None else None, None if q is None else (q.bid, q.ask, q.ts))


# ----------------------------------------------------------------------------- results


class Leg(msgspec.Struct, frozen=True, gc=False):
    """One venue's part of a round trip (base units). Results are msgspec Structs, not frozen
    dataclasses: built on the finder's hot path (two legs and an opportunity per gap: 0.9 us a leg
    and 2.9 us an opportunity as dataclasses, measured here); untracked by the garbage collector
    (``gc=False``, as the events: immutable ints, strings and tuples of them hold no cycle)."""

    venue_id: str
    venue: str
    token_in: str
    token_out: str
    amount_in: int
    amount_out: int


class Opportunity(msgspec.Struct, frozen=True, gc=False):
    """A round trip that pays: ``legs`` in order, ``amount_in`` of ``profit_token`` in and
    ``amount_out`` back (base units), ``gross_profit = amount_out - amount_in``, ``gas_cost`` (profit
    token units; ``gas_wei`` of the native token), ``net_profit = gross - gas``. ``method``
    "closed-form" or "search"; ``proven``: the size is the exact integer optimum (closed form) or
    a local one (+-1, search). ``versions``: ``(venue a, its state version, venue b, its state
    version, profit token)``, each version immutable (a pool's ints, or another venue's version
    text); ``key``, the gap's identity, is their text."""

    pair: tuple[str, str]
    profit_token: str
    legs: tuple[Leg, ...]
    amount_in: int
    amount_out: int
    gross_profit: int
    gas_wei: int
    gas_cost: int
    net_profit: int
    method: str
    proven: bool
    versions: tuple[Any, ...]

    @property
    def key(self) -> str:
        """The gap's identity as text, ``"{a}@{a's version}|{b}@{b's version}|{profit token}"``: rendered
        when asked, not when found (two version texts of ~50-digit integers cost ~2 us an opportunity
        on the finder's hot path; a report asks for it once)."""
        a, va, b, vb, s = self.versions
        return f"{a}@{va}|{b}@{vb}|{s}"

    @property
    def profit_bps(self) -> int:
        """Net profit per amount in, in hundredths of a percent (floor)."""
        return self.net_profit * 10_000 // self.amount_in if self.amount_in else 0


@dataclass(slots=True)
class FinderStats:
    evaluated: int = 0  # round trips looked at (fresh venues, both directions)
    paid_at_margin: int = 0  # of them, those whose first unit pays
    sized: int = 0  # sized exactly
    found: int = 0  # above gas + min_profit
    skipped_stale: int = 0  # venue pairs left out for freshness
    unpriced_gas: int = 0
    unsearched: int = 0  # closed form: the bound reaches gas + min_profit, the exact candidate is far below
    below_cap: int = 0  # paid at the margin, but (margin surplus) x (the legs' capacity) is below gas + min_profit


def pair_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


# ----------------------------------------------------------------------------- the finder


class ArbFinder:
    """Round trips over ``venues`` (grouped by token pair, configuration order kept).

    ``numeraires``: tokens profit is counted in, first match of the pair wins (default: USD
    stablecoins by address, then WETH), else the pair's lower address. ``native``: chain -> the
    token its gas is paid in (wrapped). ``min_profit`` in profit-token base units after gas."""

    def __init__(self, venues: Sequence[Any], *, max_age_ns: int = 60 * 10**9, min_profit: int = 0,
                 gas_price_wei: int | None = None, priority_fee_wei: int = 0,
                 native: dict[str, str] | None = None, numeraires: Sequence[str] = ()) -> None:
        # (switches set per instance: in the compiled build ArbFinder is an extension type, arb_finder.pxd)
        self.refute_by_capacity = True  # (a test switches it off to show it never drops an opportunity)
        self.compiled_sizing = True  # (a test switches it off: the Python sizing only, where the GMP one is built)
        self.scan_whole = False  # (a test switches it on: every level interval priced size by size, as
        #                          before the top-down search and the legs' inverses; the same sizes either way)
        ids = [v.id for v in venues]
        for i in ids:
            if ids.count(i) > 1:
                raise ValueError(f"venue {i!r} is listed twice")
        self.venues = list(venues)
        self.max_age_ns = max_age_ns
        self.min_profit = min_profit
        self.gas_price_wei = gas_price_wei
        self.priority_fee_wei = priority_fee_wei
        self.native = dict(native if native is not None else {"ethereum": WETH})
        self.numeraires = list(numeraires) or list(DEFAULT_NUMERAIRES)
        self.pairs: dict[tuple[str, str], list[Any]] = {}
        self.by_id: dict[str, Any] = {}
        self._partners: dict[str, list[Any]] = {}
        for v in self.venues:
            self.pairs.setdefault(pair_key(v.token0, v.token1), []).append(v)
            self.by_id[v.id] = v
        for v in self.venues:
            self._partners[v.id] = [w for w in self.pairs[pair_key(v.token0, v.token1)] if w is not v]
        self._sides: dict[str, tuple[str, str]] = {}  # venue -> (profit token, the other) of its pair
        for pair in self.pairs:
            t = self.profit_token(pair)
            for v in self.pairs[pair]:
                self._sides[v.id] = (t, pair[1] if t == pair[0] else pair[0])
        self._quiet: dict[str, Callable[..., Any]] = {v.id: _quiet_of(v) for v in self.venues}
        self.stats = FinderStats()

    def profit_token(self, pair: tuple[str, str]) -> str:
        for t in self.numeraires:
            if t in pair:
                return t
        return pair[0]

    # ------------------------------------------------------------------ scanning

    def scan(self, state: MarketState, now_ts: int) -> list[Opportunity]:
        """Every pair's opportunities (each venue pair and direction at most once), best net first
        within a pair, pairs in configuration order."""
        out: list[Opportunity] = []
        for pair, vs in self.pairs.items():
            for i, a in enumerate(vs):
                for b in vs[i + 1:]:
                    out.extend(self._pair(state, now_ts, a, b))
        return out

    def on_update(self, state: MarketState, venue_id: str, now_ts: int) -> list[Opportunity]:
        """The opportunities involving the venue that just changed (the hot path: one event)."""
        a = self.by_id.get(venue_id)
        if a is None:
            return []
        partners = self._partners[venue_id]
        st, max_age, quiet = self.stats, self.max_age_ns, self._quiet
        s, o = self._sides[venue_id]
        ra = a if type(a) is PoolVenue else None
        mine = (ra.margins_if_fresh(state, s, o, now_ts, max_age) if ra is not None
                else quiet[venue_id](state, s, o, now_ts, max_age))
        if mine is None:
            st.skipped_stale += len(partners)
            return []
        # the hot path (measured: 98% of updates stop here): each venue's margin at size zero is kept
        # per state, so an update prices only its own two margins; each partner is two integer
        # cross-multiplications. Only a round trip whose first unit pays goes on to be sized
        # (``_sized``), with its gas priced once per update (``memo``).
        # The margin test is exact: ``ma*mb > 1`` by the margins' integer products (~330 bits for a V3
        # pool). Floats rule out first the round trips whose margin product lies clearly below 1 (most
        # of them: an arbitraged pair sits within its fees), where a float product's error (a few
        # 2^-53) cannot reach ``1 - NEAR_ONE``; every other one is decided by the integers.
        ma_s, ma_o, fa_s, fa_o = mine  # (the margins and their floats, ``_ratio``: kept with the margins)
        out: list[Opportunity] = []
        memo: dict[Any, tuple[int, int] | None] = {}
        evaluated = stale = paid = 0  # (counted here, added to the stats once)
        for b in partners:
            pb = b if type(b) is PoolVenue else None  # (compiled: a typed PoolVenue, its methods called directly)
            theirs = (pb.margins_if_fresh(state, s, o, now_ts, max_age) if pb is not None
                      else quiet[b.id](state, s, o, now_ts, max_age))
            if theirs is None:
                stale += 1
                continue
            evaluated += 2
            first = second = None
            mb_s, mb_o, fb_s, fb_o = theirs
            if ma_s is not None and mb_o is not None and fa_s * fb_o >= NEAR_ONE:
                surplus = _surplus(ma_s, mb_o)
                if surplus > 0:
                    paid += 1
                    first = self._sized(state, a, b, s, o, now_ts, memo, ma_s, mb_o, a, surplus)
            if ma_o is not None and mb_s is not None and fa_o * fb_s >= NEAR_ONE:
                surplus = _surplus(mb_s, ma_o)
                if surplus > 0:
                    paid += 1
                    second = self._sized(state, b, a, s, o, now_ts, memo, mb_s, ma_o, a, surplus)
            if first is not None:
                if second is not None and second.net_profit > first.net_profit:
                    out.append(second)
                    out.append(first)
                    continue
                out.append(first)
            if second is not None:
                out.append(second)
        st.evaluated += evaluated
        st.skipped_stale += stale
        if paid:
            st.paid_at_margin += paid
        return out

    def _pair(self, state: MarketState, now: int, a: Any, b: Any) -> list[Opportunity]:
        if not (a.fresh(state, now, self.max_age_ns) and b.fresh(state, now, self.max_age_ns)):
            self.stats.skipped_stale += 1
            return []
        pair = pair_key(a.token0, a.token1)
        s = self.profit_token(pair)
        o = pair[1] if s == pair[0] else pair[0]
        found = []
        for first, second in ((a, b), (b, a)):
            opp = self.round_trip(state, first, second, s, o, now)
            if opp is not None:
                found.append(opp)
        found.sort(key=lambda x: -x.net_profit)
        return found

    # ------------------------------------------------------------------ one round trip

    def gas(self, state: MarketState, legs: Sequence[Any], profit_token: str, now: int,
            memo: dict[Any, Any] | None = None) -> tuple[int, int] | None:
        """(gas in wei, its value in the profit token) of the on-chain legs; None if unpriceable.
        ``memo`` (one update's, as ``_sized``'s) keeps the native token's mid in the profit token
        (the first fresh venue's), the same for every leg pair of the update."""
        wei = 0
        first = None  # the first on-chain leg's chain: its native token pays
        blocks = state.blocks
        for v in legs:
            chain = v.chain
            if not chain:
                continue
            if first is None:
                first = chain
            units = v.gas_units
            if not units:
                continue
            block = blocks.get(chain)
            price = (block.next_base_fee + self.priority_fee_wei) if block is not None else self.gas_price_wei
            if price is None:
                return None
            wei += units * price
        return self._gas_valued(state, wei, first, profit_token, now, memo)

    def _gas_on(self, state: MarketState, chain: Any, units: Any, profit_token: str, now: int,
                memo: dict[Any, Any]) -> tuple[int, int] | None:
        """``gas`` of legs all on ``chain`` whose gas units sum to ``units`` (``_sized``'s two pools on one
        chain): the same answer, without the walk over the legs."""
        if not chain or not units:
            return 0, 0
        blocks = state.blocks  # (a typed dict in the compiled build)
        block = blocks.get(chain)
        price = (block.next_base_fee + self.priority_fee_wei) if block is not None else self.gas_price_wei
        if price is None:
            return None
        return self._gas_valued(state, units * price, chain, profit_token, now, memo)

    def _gas_valued(self, state: MarketState, wei: Any, chain: Any, profit_token: str, now: int,
                    memo: dict[Any, Any] | None) -> tuple[int, int] | None:
        """``(wei, its value in profit_token)``, the value rounded up (never understating the cost), by
        ``chain``'s native token's mid: that of the first fresh venue of its pair (kept in ``memo``)."""
        if wei == 0:
            return 0, 0
        native = self.native.get(chain)
        if native is None:
            return None
        if native == profit_token:
            return wei, wei
        mk = (native, profit_token)  # (a 2-tuple: never equal to _sized's keys)
        if memo is not None and mk in memo:
            m = memo[mk]
        else:
            m = None
            for v in self.pairs.get(pair_key(native, profit_token), ()):
                pv = v if type(v) is PoolVenue else None  # (compiled: a typed PoolVenue, its methods called directly)
                if not (pv.fresh(state, now, self.max_age_ns) if pv is not None else v.fresh(state, now, self.max_age_ns)):
                    continue
                got = pv.mid(state, native) if pv is not None else v.mid(state, native)
                if got is not None and got[1] > 0:
                    m = got
                    break
            if memo is not None:
                memo[mk] = m
        if m is None:
            return None
        return wei, _ceil_mul_div(wei, m[0], m[1])

    def round_trip(self, state: MarketState, a: Any, b: Any, s: str, o: str, now: int | None = None) -> Opportunity | None:
        """``s -> o`` on ``a``, ``o -> s`` on ``b``: the exact best size, if it pays gas + min_profit."""
        st = self.stats
        st.evaluated += 1
        ma, mb = a.margin(state, s), b.margin(state, o)
        if ma is None or mb is None or ma[0] * mb[0] <= ma[1] * mb[1]:
            return None  # (the first unit does not pay: no size does, every venue being concave)
        st.paid_at_margin += 1
        if now is None:
            now = max(state.updated.get(a.id, 0), state.updated.get(b.id, 0))
        return self._sized(state, a, b, s, o, now, None, ma, mb)

    def _sized(self, state: MarketState, a: Any, b: Any, s: str, o: str, now: int,
               memo: dict[Any, tuple[int, int] | None] | None, ma: tuple[int, int],
               mb: tuple[int, int], hot: Any = None, surplus: int | None = None) -> Opportunity | None:
        """The round trip whose first unit pays (``round_trip`` past its margin test, ``ma``/``mb``
        the legs' margins), sized exactly. ``memo`` keeps, for one update, the gas of legs on the same
        chains with the same gas units, and the moved venue's views (``_view_of``).

        Before any curve: every venue's exact output is at most its margin times the input
        (``out(x) <= m*x``: concave, rounded against the trader), so with ``y = out_a(x)``,
        ``profit = out_b(y) - x <= mb*y - y/ma = y*(ma*mb - 1)/ma``, and also ``<= x*(ma*mb - 1)``
        (``mb*ma*x - x``); with ``x <= cap_a`` and ``y <= cap_b`` (what the legs can price), a
        round trip whose ``(ma*mb - 1)*min(cap_a, cap_b/ma)`` is below gas + ``min_profit``
        provably pays nothing (four multiplications: most sized round trips end here). ``hot``: the
        venue whose update this is; its capacity is tried first (its view is the one already
        priced, a partner's may not be). ``surplus``: ``ma[0]*mb[0] - ma[1]*mb[1]``, where the caller
        has it from its margin test."""
        st = self.stats
        pa, pb = type(a) is PoolVenue, type(b) is PoolVenue
        ra = a if pa else None  # (compiled: typed PoolVenues, whose fields and methods are read directly)
        rb = b if pb else None
        if memo is None:
            g = self.gas(state, (a, b), s, now)
        else:
            if pa and pb and ra.chain == rb.chain:  # (one chain, the hot venue's: its gas price times both legs' units)
                gk: Any = ra.gas_units + rb.gas_units
                g = memo[gk] if gk in memo else memo.setdefault(gk, self._gas_on(state, ra.chain, gk, s, now, memo))
            else:
                gk = (ra.chain if pa else a.chain, ra.gas_units if pa else a.gas_units,
                      rb.chain if pb else b.chain, rb.gas_units if pb else b.gas_units, s)
                g = memo[gk] if gk in memo else memo.setdefault(gk, self.gas(state, (a, b), s, now, memo))
        if g is None:
            st.unpriced_gas += 1
            return None
        gas_wei, gas_cost = g
        need = max(1, gas_cost + self.min_profit)

        # A plain PoolVenue's capacity is its ``max_in``, read from its priced view (``_priced``: kept per
        # price, no curve built), which also holds its leg for the C sizing; any other venue is asked
        # its ``max_in``, then its curve. A curve is built only for the Python sizing.
        va = vb = None
        if not self.refute_by_capacity:
            surplus = 0
        elif surplus is None:
            surplus = ma[0] * mb[0] - ma[1] * mb[1]
        b_first = bool(surplus) and hot is b  # the venue that just changed first: its capacity is priced already
        if b_first:
            if pb:
                vb = _view_of(rb, state, o, memo, hot)
            cap_b = vb[1] if pb else b.max_in(state, o)
            if cap_b > 0 and _below(surplus, cap_b, need, ma[0], mb[1]):
                st.below_cap += 1
                return None
        if pa:
            va = _view_of(ra, state, s, memo, hot)
        cap_a = va[1] if pa else a.max_in(state, s)
        if surplus and not b_first and cap_a > 0 and _below(surplus, cap_a, need, ma[1], mb[1]):
            st.below_cap += 1
            return None
        if not b_first:
            if pb:
                vb = _view_of(rb, state, o, memo, hot)
            cap_b = vb[1] if pb else b.max_in(state, o)
        if cap_a <= 0 or cap_b <= 0:
            return None
        if surplus and (_below(surplus, cap_a, need, ma[1], mb[1]) if b_first
                        else _below(surplus, cap_b, need, ma[0], mb[1])):
            st.below_cap += 1  # (the other side's test passed above)
            return None
        ca = cb = None
        if not pa:
            ca = a.curve(state, s)
        if not pb:
            cb = b.curve(state, o)
        st.sized += 1
        fast: Any = False
        if pa and pb and self.compiled_sizing and _gmp_closed_form is not None and not self.scan_whole:
            la = va[2]  # (the legs of the views just taken, where the C takes them: None where it does not)
            lb = vb[2] if la is not None else None
            if la is not None and lb is not None:
                fast = _gmp_closed_form(la, lb, cap_a, cap_b, need)  # (False: not its path, the Python sizes it)
                if fast:
                    fast = fast + ("closed-form",)
        if fast is False:
            if pa:
                ca = a.curve(state, s)
            if pb:
                cb = b.curve(state, o)
            fast = self._sized_here(state, a, b, s, o, ca, cb, cap_a, cap_b, need)
        if fast is None:
            return None
        x, p, proven, y, z, method = fast
        net = p - gas_cost
        if net < self.min_profit:
            return None
        st.found += 1
        a_id, a_venue = (ra.id, ra.venue) if pa else (a.id, a.venue)
        b_id, b_venue = (rb.id, rb.venue) if pb else (b.id, b.venue)
        versions = (a_id, va[5] if pa else _version_text(a, state),  # (a PoolVenue's: its view's, of this price)
                    b_id, vb[5] if pb else _version_text(b, state), s)
        return Opportunity(pair_key(s, o), s, (Leg(a_id, a_venue, s, o, x, y), Leg(b_id, b_venue, o, s, y, z)),
                           x, z, p, gas_wei, gas_cost, net, method, proven, versions)

    def _sized_here(self, state: MarketState, a: Any, b: Any, s: str, o: str, ca: Curve | None, cb: Curve | None,
                    cap_a: int, cap_b: int, need: int) -> tuple[int, int, bool, int, int, str] | None:
        """``_sized``'s sizing in Python: ``(x, profit, proven, y, z, method)`` with ``y``, ``z`` the legs'
        outputs at ``x``, or None when nothing pays ``need`` (the reference of the C sizing)."""
        st = self.stats
        legs: dict[int, tuple[int, int]] = {}  # size -> (its first leg's output, the round trip's)

        def profit(x: int) -> int | None:
            y = a.quote(state, s, x)
            if y is None:
                return None if x > cap_a else -x
            z = b.quote(state, o, y)
            if z is None:
                return None if y > cap_b else -x
            legs[x] = (y, z)
            return z - x

        if ca is not None and cb is not None:
            ia, ib = getattr(a, "least_input", None), getattr(b, "least_input", None)
            nxt = None
            if ia is not None and ib is not None and not self.scan_whole:
                def nxt(x: int) -> int:
                    """The least size above ``x`` whose round trip can return more than ``x``'s: every
                    size below it gets at most the same out of the round trip for more in."""
                    got = legs.get(x)
                    if got is None:
                        return x + 1
                    y2 = ib(state, o, got[1] + 1)  # the least second-leg input that returns more
                    x2 = None if y2 is None else ia(state, s, y2)  # the least size that feeds it
                    return x2 if x2 is not None and x2 > x else x + 1
            sized = _closed_form(ca, cb, profit, a, state, s, need, nxt, not self.scan_whole)
            method = "closed-form"
            if sized is UNSEARCHED:
                st.unsearched += 1
        else:
            sized = _search(profit, a, b, state, s, o, cap_a, cap_b)
            method = "search"
        if sized is None:
            return None
        x, p, proven = sized
        if p is None or p < need:
            return None
        got = legs.get(x)  # (what the search priced at x: the same quotes again would give the same)
        if got is not None:
            y, z = got
        else:
            y = a.quote(state, s, x)
            z = b.quote(state, o, y) if y is not None else None
        if y is None or z is None or z - x != p:
            return None  # (cannot happen: the search priced it so)
        return x, p, proven, y, z, method


NEAR_ONE = 1.0 - 2.0 ** -30  # on_update's float screen: a margin product below it is below 1, exactly


def _ratio(m: tuple[int, int] | None) -> float:
    """A margin ``(num, den)`` as a float (each int correctly rounded, then one division: within
    3 * 2^-53 of the ratio, relatively); ``inf`` where a float cannot hold it (a part too large,
    a zero ``den``), so that the exact test decides; 0.0 for None (the caller tests it first)."""
    if m is None:
        return 0.0
    try:
        return float(m[0]) / float(m[1])
    except (OverflowError, ZeroDivisionError):
        return float("inf")


def _product_below(u: int, v: int, w: int, x: int, y: int) -> bool:
    """``u*v < w*x*y`` exactly, for positive ints, the products taken only where the factors' bit lengths
    do not decide it (``_sized``'s capacity test: its margins are ~330-bit integers, and a round trip
    that opened a gap clears the test by many bits): ``u*v`` lies in ``[2^(U+V-2), 2^(U+V))`` and
    ``w*x*y`` in ``[2^(W+X+Y-3), 2^(W+X+Y))``, ``U`` being ``u.bit_length()`` and so on."""
    if u > 0 and v > 0 and w > 0 and x > 0 and y > 0:
        left = u.bit_length() + v.bit_length()
        right = w.bit_length() + x.bit_length() + y.bit_length()
        if left - 2 >= right:
            return False
        if left <= right - 3:
            return True
    return u * v < w * x * y


def _margin_surplus(m: tuple[int, int], n: tuple[int, int]) -> int:
    """``m[0]*n[0] - m[1]*n[1]``: a round trip's margin product above 1, times its denominators (on_update's exact
    test; ``_closed_form_gmp.surplus`` where the C is built: ~330-bit products, the same ints)."""
    return m[0] * n[0] - m[1] * n[1]


_surplus = _margin_surplus if _gmp_surplus is None else _gmp_surplus


def _ceil_div_of_product(a: int, b: int, c: int) -> int:
    """``ceil(a*b/c)`` for ``c > 0``: the gas's value in the profit token, rounded up (never understating the
    cost; ``_closed_form_gmp.ceil_mul_div`` where the C is built, on ~250- by ~190-bit integers)."""
    return -((-a * b) // c)


_ceil_mul_div = _ceil_div_of_product if _gmp_ceil_mul_div is None else _gmp_ceil_mul_div


# the capacity test where the C is built (``_closed_form_gmp.product_below``: the same answers,
# tests/test_arb_finder_compiled.py; ~5x fewer instructions, each ``bit_length`` here being a method call)
_below = _product_below if _gmp_product_below is None else _gmp_product_below


def _view_of(v: PoolVenue, state: MarketState, token_in: str, memo: dict[Any, Any] | None, hot: Any) -> list[Any]:
    """``v._priced(state, token_in)``, where the venue that moved (``hot``) keeps its view in the update's
    ``memo`` under the token (no other key there is a str): each of its partners reads the same one."""
    if v is hot and memo is not None:
        got = memo.get(token_in)
        if got is None:
            got = memo[token_in] = v._priced(state, token_in)
        return got  # type: ignore[no-any-return]
    return v._priced(state, token_in)


def _gmp_leg(v: Any, state: MarketState, token_in: str) -> tuple[Any, ...] | None:
    """A leg as ``_closed_form_gmp.closed_form`` takes it, of ``v``'s current price: ``(0, reserve in,
    reserve out, keep bps)`` for a V2 pair, ``(1, sqrt price, liquidity, edge sqrt price, amount to it,
    keep pips, zero_for_one)`` for a V3 pool priced inside its interval; None where ``PoolVenue.quote``
    would take another path (a V3 pool whose ticks are known, a price outside its interval) or the
    venue is not a plain ``PoolVenue``."""
    if type(v) is not PoolVenue:
        return None
    return v._priced(state, token_in)[2]  # type: ignore[no-any-return]


def _version_text(v: Any, state: MarketState) -> str:
    """A venue's version as text, taken when found: another venue's version object may change later."""
    return f"{v.version(state)}"


def _quiet_of(v: Any) -> Callable[..., Any]:
    """``(state, s, o, now, max_age) -> None | (margin(s), margin(o), their _ratio floats)`` for a venue:
    its own ``margins_if_fresh`` where it has one (``PoolVenue``), else ``fresh`` then ``margin`` twice."""
    own = getattr(v, "margins_if_fresh", None)
    if own is not None:
        return own  # type: ignore[no-any-return]

    def quiet(state: MarketState, s: str, o: str, now: int, max_age: int) -> Any:
        if not v.fresh(state, now, max_age):
            return None
        ms, mo = v.margin(state, s), v.margin(state, o)
        return ms, mo, _ratio(ms), _ratio(mo)
    return quiet


def _closed_form(ca: Curve, cb: Curve, profit: Callable[[int], int | None], a: Any, state: MarketState, s: str,
                 need: int, nxt: Callable[[int], int] | None = None,
                 top_down: bool = True) -> tuple[int, int | None, bool] | None:
    """Two constant-product legs as one ``RoundTrip``: ``out(x) = ka*kb*ao*bo*x / (KA*KB*ai*bi +
    ka*x*(KB*bi*Da + kb*ao*Db))`` (legs' reserves ``num/D``, keeps ``k/K``), sized by ``best_size``
    over the inputs both legs price exactly."""
    ka, KA, kb, KB = ca.keep, ca.keep_den, cb.keep, cb.keep_den
    n = ka * kb * ca.ro_num * cb.ro_num
    p = KA * KB * ca.ri_num * cb.ri_num
    r = ka * (KB * cb.ri_num * ca.den + kb * ca.ro_num * cb.den)
    trip = RoundTrip(n, p, r)
    x_max = min(ca.max_in, _largest_feeding(a, state, s, cb.max_in, ca))
    if x_max <= 0 or trip.below(need, x_max):
        return None  # proven without a square root: the quiet path of most sized round trips
    top = trip.relaxed().max_profit_bound(x_max)  # (>= the exact bound, on ~200-bit integers)
    if top < need:
        return None  # proven: no exact profit exceeds the continuous bound
    floor = (ka, KA) if ca.period > 1 else None  # the first leg prices floor(x*ka/KA) of its input
    c = min(max(trip.optimum(), 1), x_max)
    p = profit(c)
    if p is not None and p >= need:
        return _finish(profit, trip, x_max, c, p, top if top_down else None, nxt, floor)
    bound = trip.max_profit_bound(x_max)  # the exact bound, where it decides more than the relaxed one
    if bound < need:
        return None  # proven: no exact profit exceeds the continuous bound
    if bound - need <= PROOF_LEVELS:  # the exact optimum may still reach need: prove it either way
        x, p, proven = best_size(profit, trip, x_max, bound, need, ca.period)
        if p is None or proven or p < need:
            return x, p, proven
        return _finish(profit, trip, x_max, x, p, top if top_down else None, nxt, floor)
    return UNSEARCHED  # the candidate is far below need, the bound is not: not searched (counted)


UNSEARCHED: tuple[int, int | None, bool] = (0, None, False)


FINISH_SCAN = 256  # a level interval up to this wide is scanned whole to prove the optimum
PATTERN_BITS = 8  # the largest move of the pattern search is 2^8
PROOF_LEVELS = 64  # profit levels best_size may refute one by one (beyond: a pattern search, unproven)


def _pattern(profit: Callable[[int], int | None], lo: int, hi: int, x: int, p: int) -> tuple[int, int]:
    """A pattern search from ``x`` within ``[lo, hi]`` (where anything better can be): moves of
    +-2^j for j from ``PATTERN_BITS`` down to 0, taken while they improve; it ends at a size that
    no such move improves (on real-scale pools the sizes it could still gain by are worth less than
    a base unit's rounding, and each round costs ~2 * PATTERN_BITS exact quotes)."""
    steps = [1 << i for i in range(min(PATTERN_BITS, (hi - lo).bit_length()), -1, -1)]
    moved = True
    while moved:
        moved = False
        for d in steps:
            for n in (x - d, x + d):
                if lo <= n <= hi:
                    v = profit(n)
                    if v is not None and v > p:
                        x, p, moved = n, v, True
    return x, p


def _finish(profit: Callable[[int], int | None], trip: RoundTrip, x_max: int, x: int, p: int,
            bound: int | None = None, nxt: Callable[[int], int] | None = None,
            floor: tuple[int, int] | None = None) -> tuple[int, int, bool]:
    """From a size of profit ``p``: the sizes where more than ``p`` can be are those of
    ``trip.level_interval(p + 1)``; scanned whole when narrow enough (then proven), else a pattern
    search (+-2^j for j down to 0, moving while it improves: a local optimum at every power of two).

    The scan's answer is the first (smallest) size of the largest exact profit above ``p`` in that
    interval. With ``bound`` (an upper bound of every exact profit on ``[1, x_max]``) the first
    interval is searched top down (``_top_down``) instead of whole: the same answer, found after a
    few exact quotes where the exact profit reaches the highest level its continuous bound allows
    (measured: most gap updates of ``benchmarks/bench_arb_finder.py``). ``nxt(x)`` (after ``x`` was
    priced) is the next size that can return more than ``x``'s round trip (the legs' exact inverses,
    ``PoolVenue.least_input``): the sizes in between are skipped, each being priced below ``x``. Every
    profit is kept, so the later rounds (and the pattern search) price no size twice."""
    at = memoized(profit)
    top = bound
    refuted = False  # every size that could beat p has been priced below it
    width = 0
    if top is not None:
        # First on the relaxed trip's interval (a superset of the exact one, on ~200-bit integers
        # instead of ~1,150): empty, the exact one is; narrow, so is the exact one (and the next
        # round's, as below), and searching the superset finds the same first best size above p
        # (every size that beats p is in the exact interval).
        loose = trip.relaxed()
        span = loose.level_interval(p + 1, 1, x_max)
        if span is None:
            return x, p, True
        if span[1] - span[0] < FINISH_SCAN - 2:
            better = _top_down(at, trip, x_max, span[0], span[1], p, top, nxt, floor, loose)
            if better is None:
                return x, p, True
            x, p = better[0], better[1]
            if better[2]:
                return x, p, True
            top = None  # (a size beat its level: the rounds go on as the whole scan's would)
    while True:
        if refuted and width < FINISH_SCAN - 2:
            # The scan of the next span (where more than the new p can be) would find nothing:
            # every size of it inside the last span was priced at most p by the levels refuted
            # there; any other is outside where the last, smaller p could be beaten. Nor can it
            # be wide enough for the pattern search: a higher level's interval lies inside the
            # lower one's (or the relaxed one's) but for one size at each end (the roundings).
            return x, p, True
        span = trip.level_interval(p + 1, 1, x_max)
        if span is None:
            return x, p, True
        lo, hi = span
        width = hi - lo
        if width >= FINISH_SCAN:
            break
        if refuted:
            return x, p, True  # (as above: nothing in it beats p)
        if top is not None:
            better = _top_down(at, trip, x_max, lo, hi, p, top, nxt, floor)
            refuted = better is not None and better[2]
        else:
            better = _scan(at, lo, hi, p, nxt)
        top = None
        if better is None:
            return x, p, True
        x, p = better[0], better[1]
    return _pattern(at, lo, hi, x, p) + (False,)


def _scan(at: Callable[[int], int | None], lo: int, hi: int, p: int,
          nxt: Callable[[int], int] | None = None) -> tuple[int, int] | None:
    """The first size of the largest exact profit above ``p`` in ``[lo, hi]``, priced one by one
    (or from each size to ``nxt`` of it: those between price below it)."""
    better = None
    n = lo
    while n <= hi:
        v = at(n)
        if v is not None and v > p and (better is None or v > better[1]):
            better = (n, v)
        n = nxt(n) if nxt is not None else n + 1
    return better


TOP_DOWN_LEVELS = 2 * FINISH_SCAN  # more levels between the bound and ``p`` than this: scanned whole


def _top_down(at: Callable[[int], int | None], trip: RoundTrip, x_max: int, lo: int, hi: int, p: int,
              bound: int, nxt: Callable[[int], int] | None = None,
              floor: tuple[int, int] | None = None, loose: RoundTrip | None = None) -> tuple[int, int, bool] | None:
    """``_scan(at, lo, hi, p)`` and whether every level above its profit was refuted (then no size
    of ``[lo, hi]`` prices more), by levels: for ``level = bound, bound - 1, ..., p + 1``, the sizes of
    ``[lo, hi]`` where an exact profit of at least ``level`` can be (``trip.level_interval(level)``:
    the continuous round trip bounds every exact profit) in ascending order; the first that reaches
    ``level`` is the answer (every level above was refuted: each size that could reach it was
    priced below it; and every size with this profit lies in this level's interval, so none smaller
    has it). No level reached: nothing in ``[lo, hi]`` beats ``p`` (``None``). Where a size beats its
    level (the bound would be wrong) the whole interval is scanned instead: the same answer either
    way, never a different one (``tests/test_arb_finder_fast.py`` holds it equal to ``_scan``).
    ``floor = (keep, keep_den)`` where the first leg prices only ``floor(x*keep/keep_den)`` of its
    input (a V3 pool: ``Curve.period > 1``): the sizes searched per level are then those of
    ``trip.floored_level_intervals``, the bound with the fee floor in it (on the real-scale pools
    of the benchmark, the plain bound's top level is one the fee floor keeps every size from)."""
    if bound - p > TOP_DOWN_LEVELS:
        found = _scan(at, lo, hi, p, nxt)
        return None if found is None else found + (False,)
    if loose is None:
        loose = trip.relaxed()  # (its intervals hold this one's: a few sizes more at most, on smaller ints)
    for level in range(bound, p, -1):
        if floor is not None:
            spans = loose.floored_level_intervals(level, lo, hi, floor[0], floor[1])
        else:
            span = loose.level_interval_exact(level, lo, hi)  # (exact: no size priced that cannot reach it)
            spans = [span] if span is not None else []
        for n, end in spans:
            while n <= end:
                v = at(n)
                if v is not None and v >= level:
                    if v == level:
                        return n, v, True
                    return _scan(at, lo, hi, p, nxt) + (False,)  # type: ignore[operator]
                n = nxt(n) if nxt is not None else n + 1
    return None


def _largest_feeding(a: Any, state: MarketState, s: str, y_max: int, ca: Curve) -> int:
    """An input of leg ``a`` up to which every exact output is at most ``y_max`` (what leg b takes):
    the curve's inverse, rounded down."""
    if y_max >= ca.ro_num // ca.den:
        return ca.max_in
    # y = k*x*ro/(ri + k*x)  <=>  x = y*ri / (k*(ro - y)), with ri = ri_num/D, ro = ro_num/D; rounded
    # down, the curve's output there is at most y_max, and the exact output (rounded against the
    # trader) too: every input up to it is one leg b takes (a few more might be; they are not tried)
    num = y_max * ca.ri_num * ca.keep_den
    den = ca.keep * (ca.ro_num - y_max * ca.den)
    if den <= 0:
        return ca.max_in
    return min(num // den, ca.max_in)


def _least_input(a: Any, state: MarketState, s: str, y: int, ca: Curve | None, cap: int) -> int:
    """The least input of leg ``a`` whose exact output is at least ``y`` (``cap + 1`` if none is):
    from the curve's inverse when it has one (its exact output is at most the curve's, so only
    steps up can be needed), else by bisection (the output grows with the input)."""
    def enough(x: int) -> bool:
        out = a.quote(state, s, x)
        return out is not None and out >= y

    if ca is not None and y * ca.den < ca.ro_num:
        x = -(-(y * ca.ri_num * ca.keep_den) // (ca.keep * (ca.ro_num - y * ca.den)))  # the curve's inverse, up
        for _ in range(64):
            if x > cap:
                return cap + 1
            if enough(x):
                while x > 1 and enough(x - 1):
                    x -= 1
                return x
            x += 1
    lo, hi = 1, cap
    if not enough(hi):
        return cap + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if enough(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _search(profit: Callable[[int], int | None], a: Any, b: Any, state: MarketState, s: str, o: str, cap_a: int,
            cap_b: int) -> tuple[int, int | None, bool] | None:
    """Ternary search on the exact profit over a grid of sizes, to a window scanned whole, then a
    neighbour climb. The grid is what can be better than its neighbours: the input of ``n`` lots when
    leg ``a`` is a book; when only ``b`` is, the least input of ``a`` that delivers ``n`` of b's lots
    (any more buys nothing on b); otherwise every integer."""
    lots = a.sizes(state, s)
    if lots is not None:
        size_of, hi = lots
    else:
        lots_b = b.sizes(state, o)
        if lots_b is not None and o == getattr(b, "base", None):
            b_size, hi = lots_b
            ca = a.curve(state, s)
            size_of = lambda n: _least_input(a, state, s, b_size(n), ca, cap_a)  # noqa: E731
        else:
            size_of, hi = (lambda n: n), max(1, cap_a)
    lo = 1  # then the largest n whose input a prices and whose output b takes

    def feasible(n: int) -> bool:  # within both legs' capacity (a size too small to buy anything is a loss, not out)
        x = size_of(n)
        if x > cap_a:
            return False
        y = a.quote(state, s, x)
        return y is None or y <= cap_b

    if not feasible(lo):
        return None
    if not feasible(hi):  # feasibility is a prefix of the sizes: bisect its end
        good, bad = lo, hi
        while bad - good > 1:
            mid = (good + bad) // 2
            if feasible(mid):
                good = mid
            else:
                bad = mid
        hi = good
    memo: dict[int, int] = {}

    def value(n: int) -> int:
        v = memo.get(n)
        if v is None:
            pv = profit(size_of(n))
            v = memo[n] = pv if pv is not None else -(1 << 255)
        return v

    while hi - lo > WINDOW:
        m1 = lo + (hi - lo) // 3
        m2 = hi - (hi - lo) // 3
        if value(m1) < value(m2):
            lo = m1 + 1
        else:
            hi = m2
    best_n = max(range(lo, hi + 1), key=lambda n: (value(n), -n))
    top = hi if hi >= best_n else best_n
    while best_n > 1 and value(best_n - 1) > value(best_n):  # neighbour climb (ties keep the smaller)
        best_n -= 1
    while best_n < top and value(best_n + 1) > value(best_n):
        best_n += 1
    x = size_of(best_n)  # (inputs between a book's lot sizes are never better: they buy no more)
    return x, profit(x), False


# Profit numeraires by address: USDC, USDT, DAI (Ethereum), then WETH.
DEFAULT_NUMERAIRES = (
    "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
    "0xdac17f958d2ee523a2206206994597c13d831ec7",
    "0x6b175474e89094c44da98b954eedeac495271d0f",
    WETH,
)


def pool_venues(specs: Iterable[Any], gas: dict[str, int] | None = None) -> list[PoolVenue]:
    """``PoolVenue`` for each registry pool (``adapters.registry.PoolSpec``-like: ``address``,
    ``protocol``, ``fee``, ``tick_spacing``, ``token0``/``token1`` asset ids, ``id.chain``)."""
    out = []
    for p in specs:
        kind = "v2" if p.protocol == "uniswap-v2" else "v3"
        spec = dex_quotes.PoolSpec(p.address, kind, p.token0.address.value, p.token1.address.value, p.fee,
                                   p.tick_spacing or 0)
        out.append(PoolVenue(spec, chain=str(p.id.chain), venue=p.protocol, gas_units=(gas or {}).get(kind),
                             label=p.label))
    return out

