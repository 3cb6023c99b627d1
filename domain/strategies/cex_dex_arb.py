"""CEX-DEX arbitrage with leg risk: a book venue's top of book against a pool of the same pair.

Detect. After every book quote of ``cex_venue``/``cex_instrument`` and every event of a configured
pool, both directions are checked on the state the engine folded:

* ``cex->dex``: buy the base on the book at its asks, sell it on the pool;
* ``dex->cex``: buy the base on the pool, sell it on the book at its bids.

Sizes are whole lots of the book (``cex_lot_size``). At a size ``q`` the book side walks the
levels it can see (the top of book of ``QuoteUpdated``; the levels of the venue's last
``BookDepthUpdated`` snapshot instead, while that is fresh) exactly as the venue rounds: the
notional rounded in the venue's favour, the taker fee rounded up. The pool side is the pool's own
math (``domain/dex_quotes.quote``: V2 ``getAmountOut``, V3 inside its tick-spacing interval): the
output of selling ``q``, or for buying ``q`` the least input whose output is at least ``q``
(``min_input``: V2 in closed form, V3 by bisection on the exact quote). Gas is ``gas_units`` at the
chain's next base fee plus the tip (the last ``BlockProduced``), valued at the book's mid. The
profit ``proceeds - cost - fee - gas`` (quote units) is maximised over ``1..N`` lots, ``N`` bounded
by the visible depth, ``max_base``, ``max_notional`` (at the mid) and the largest size the pool can price
(``best_lots``: the feasible prefix by bisection, then a bisection on the concave profit's step and a
climb to where neither neighbour is better). A quiet event costs one or two exact quotes of one lot.
Only an opportunity of at least ``min_profit`` after gas is reported, at most ``max_in_flight``
attempts at a time, and none while the inventory held by holds is ``max_held`` base units or more. A quote older than
``max_age_s`` (event time and venue time) or a pool older than ``pool_max_age_s``, or either marked
stale, is never acted on: the gap is recorded as ``OpportunitySuppressed`` instead.

Execute. Each opportunity is a ``CexDexOpportunity`` decision (legs, sizes, expected profit in
``quote_asset``) and two intents, correlated by client id: ``cd<n>-cex``, an IOC order on the book
(``limit_price`` the worst level it priced), and ``cd<n>-dex``, one swap on the pool through the
sim's ``PoolSwaps`` executor (venue ``dex_venue``; side ``buy``: ``amount`` quote in, ``sell``:
``amount`` base in; ``min_profit`` is the least output, in ``profit_asset``, below which the swap
reverts: break-even against the book leg, so a pool a competitor moved first reverts it).

Order of the legs (``leg_order``): ``"together"`` (default) sends both at once. The pool leg is
the one raced: it waits for the next block (up to ``block_interval``, 12 s) among the pools'
arbitrageurs and searchers, so every millisecond of arrival counts, while the book answers in tens
of ms; waiting for the book before sending the swap would give that away, and sending the swap
first and the book after its block would leave a whole block of price risk on the book leg. The
cost of "together" is that a book rejection (rate limit, the venue's rejects) leaves the swap's
fill unhedged: that is what the unwind is for. ``"cex_first"`` sends the book leg alone and the
swap only after its fill, sized to what filled (a rejection then costs nothing; the swap arrives
one book round trip later).

Unwind. When every leg (and unwind) of an attempt is final, the net base its fills moved is the
exposure. Under one lot it is dust, left as inventory. Otherwise a ``CexDexUnwind`` decides, from
fresh state: trade it back on the book (IOC, ``cd<n>-u<k>``; its cost the spread walked and the
fee against the book's mid) or swap it back on the pool (its exact quote and gas against the mid),
whichever costs less, or hold it as inventory when the cheaper costs more than ``max_unwind_cost``
or ``max_unwinds`` rounds were spent or no venue can price it now. An unwind that fails or fills
partially is settled the same way, in the next round.

Leg timeout (``leg_timeout_s``, event seconds; 0, the default: none). Every leg sent (book,
swap, unwind) asks the core for a timer (``TimerRequested``, key ``cd<n>:t<k>``) at its send time
plus the timeout; when it fires (``TimerFired``) and a leg of that send still has not reported a
final outcome, the leg is taken as final with what its fills moved so far (status ``timeout``) and,
once every leg is final, the attempt is settled as above: the unwind decision (``CexDexUnwind``)
on the exposure it leaves. A report that arrives for a timed-out leg later still moves the
position: into the open attempt (its next round settles it), or into the held inventory once the
attempt is closed (``late``). A book leg (the entry's, or a book unwind) taken as final by its
timer may still be working on the venue (resting, as a ``cex_tif = "gtc"`` entry does when the book
moved away from its limit, or still in flight): the timer also sends its cancel (``Intent(side=
"cancel", target=<leg>)``, client id ``<leg>-cancel``, once per leg). The venue's ``OrderCanceled``
ends the leg for good (``canceled``; what it filled before still counts, and nothing more can come);
a cancel the venue refuses or that finds the order already done (``OrderFailed``: it filled first,
and that fill arrives as a late report) is counted in ``cancel_failed``. ``cex_tif``: the entry book
leg's time in force, ``"ioc"`` (default: what the book does not fill at once expires) or ``"gtc"``
(what it does not fill rests at its limit until filled or cancelled).

Profit is never taken from the intents: the strategy only keeps positions from its fills (to know
what to unwind); runs are valued by ``runtime/outcomes.py`` and ``runtime/cex_dex_report.py`` from
``OrderFilled`` and the gas of mined transactions, with leftovers marked at a named price.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Sequence

from tapedeck.domain import events as ev
from tapedeck.domain.decimals import CTX, seconds_to_ns, to_fixed
from tapedeck.domain.dex_quotes import PoolSpec, quote
from tapedeck.domain.engine import Proposal
from tapedeck.domain.risk import Intent
from tapedeck.domain.state import MarketState, Order
from tapedeck.domain.uniswap_v3 import V3MathError, swap_within_range

CEX_DEX, DEX_CEX = "cex->dex", "dex->cex"
LEG_ORDERS = ("together", "cex_first")
Levels = tuple[tuple[int, int], ...]  # (price in 10**-pd quote, size in base units), best first


# ------------------------------------------------------------------------------ exact legs


@dataclass(frozen=True, slots=True)
class Book:
    """One side of a book as the strategy may take it: levels best first, sizes in base units
    (``base_decimals``), prices in ``10**-price_decimals`` quote; amounts in quote units
    (``quote_decimals``); the taker fee as the exact fraction ``fee_num / fee_den``."""

    levels: Levels
    price_decimals: int
    base_decimals: int
    quote_decimals: int
    fee_num: int
    fee_den: int

    def depth(self) -> int:
        return sum(s for _, s in self.levels)

    def walk(self, q: int) -> tuple[int, int] | None:
        """``(sum of price * size, worst price)`` of taking ``q`` base units, or None past the depth."""
        left, total, worst = q, 0, 0
        for price, size in self.levels:
            if left <= 0:
                break
            take = min(left, size)
            total += price * take
            worst = price
            left -= take
        return None if left > 0 else (total, worst)

    def buy_cost(self, q: int) -> tuple[int, int, int] | None:
        """``(notional, fee, worst price)`` of buying ``q``: notional rounded up, fee rounded up."""
        return self._take(q, True)

    def sell_proceeds(self, q: int) -> tuple[int, int, int] | None:
        """``(notional, fee, worst price)`` of selling ``q``: notional rounded down, fee rounded up."""
        return self._take(q, False)

    def _take(self, q: int, buy: bool) -> tuple[int, int, int] | None:
        """As the venue reports a fill: the exact sum of price x size scaled to quote units once,
        rounded in the venue's favour, and the fee on that exact sum rounded up."""
        w = self.walk(q)
        if w is None:
            return None
        total, worst = w
        den = 10 ** (self.price_decimals + self.base_decimals)
        scaled = total * 10**self.quote_decimals
        notional = -(-scaled // den) if buy else scaled // den
        fee = -(-scaled * self.fee_num // (den * self.fee_den))
        return notional, fee, worst


def min_input(spec: PoolSpec, state: MarketState, token_in: str, want: int) -> int | None:
    """The least ``amount_in`` of ``token_in`` for which the pool gives at least ``want`` of the
    other token, by its exact math; None if no amount it can price does."""
    if want <= 0:
        return None
    if spec.kind == "v2":
        p = state.v2.get(spec.pool)
        if p is None:
            return None
        r_in, r_out = (p.reserve0, p.reserve1) if token_in == spec.token0 else (p.reserve1, p.reserve0)
        if r_in <= 0 or want >= r_out:
            return None
        # floor(x*k*R/(r*1e4 + x*k)) >= want  <=>  x*k*(R - want) >= want*r*1e4
        k = 10_000 - spec.fee
        x = -(-want * r_in * 10_000 // (k * (r_out - want)))
        return x if (quote(spec, state, token_in, x) or 0) >= want else None
    def buys(x: int) -> bool:
        return x > 0 and (quote(spec, state, token_in, x) or 0) >= want

    seed = _exact_out_input(spec, state, token_in, want)
    if seed is not None and buys(seed):
        d = max(1, seed >> 20)  # the least input is just below what the exact-output swap asks
        while buys(seed - d):
            d *= 2
        lo, hi = max(0, seed - d), seed
    else:
        hi = 1
        while not buys(hi):  # the first power of two that buys enough (None: the pool cannot price it)
            if (hi > 1 and quote(spec, state, token_in, hi) is None) or hi > 1 << 200:
                return None
            hi *= 2
        lo = hi // 2
    while hi - lo > 1:  # lo does not buy want, hi does
        mid = (lo + hi) // 2
        if buys(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _exact_out_input(spec: PoolSpec, state: MarketState, token_in: str, want: int) -> int | None:
    """What the V3 pool's exact-output swap of ``want`` takes in (inside the interval), or None."""
    st = state.v3.get(spec.pool)
    if spec.kind != "v3" or st is None or not st.liquidity or st.sqrt_price_x96 is None:
        return None
    zero_for_one = token_in == spec.token0
    try:
        r = swap_within_range(st.sqrt_price_x96, st.liquidity, st.tick, spec.tick_spacing, spec.fee, -want,
                              zero_for_one)
    except (V3MathError, ValueError):
        return None
    got = -(r.amount1 if zero_for_one else r.amount0)
    return (r.amount0 if zero_for_one else r.amount1) if got == want else None


def marginal_pays(spec: PoolSpec, state: MarketState, base_token: str, book: Book, buy_on_book: bool) -> bool:
    """Whether the first unit could pay, from the pool's spot price and both fees (exact rationals):
    a necessary condition for any size to pay, since the profit is concave and every rounding is
    against the trader. ``buy_on_book``: buy at the book's best ask, sell on the pool; else buy on
    the pool, sell at the best bid."""
    if spec.kind == "v2":
        p = state.v2.get(spec.pool)
        if p is None or p.reserve0 <= 0 or p.reserve1 <= 0:
            return False
        base_is0 = base_token == spec.token0
        num, den = (p.reserve1, p.reserve0) if base_is0 else (p.reserve0, p.reserve1)  # quote units per base unit
        keep_n, keep_d = 10_000 - spec.fee, 10_000
    else:
        st = state.v3.get(spec.pool)
        if st is None or not st.liquidity or not st.sqrt_price_x96:
            return False
        sp2 = st.sqrt_price_x96 * st.sqrt_price_x96  # token1 per token0, times 2**192
        num, den = (sp2, 1 << 192) if base_token == spec.token0 else (1 << 192, sp2)
        keep_n, keep_d = 1_000_000 - spec.fee, 1_000_000
    price = book.levels[0][0] if book.levels else 0
    if price <= 0:
        return False
    # the book's price in quote units per base unit: price * 10**qd / 10**(pd + bd)
    b_num, b_den = price * 10**book.quote_decimals, 10 ** (book.price_decimals + book.base_decimals)
    if buy_on_book:  # pool pays num/den*keep per unit; the book costs b*(1 + f)
        return num * keep_n * b_den * book.fee_den > den * keep_d * b_num * (book.fee_den + book.fee_num)
    # the pool costs num/den/keep per unit; the book pays b*(1 - f)
    return b_num * (book.fee_den - book.fee_num) * den * keep_n > b_den * book.fee_den * num * keep_d


@dataclass(frozen=True, slots=True)
class Sized:
    """One direction at one size, by the venues' exact math (quote units unless said)."""

    direction: str
    lots: int
    base: int  # base units traded on the book (and at least that on the pool)
    cex_quote: int  # book notional: paid (cex->dex) or received (dex->cex)
    cex_fee: int
    cex_worst: int  # the worst book price walked (10**-pd quote)
    dex_quote: int  # pool: received for base (cex->dex) or paid for it (dex->cex)
    dex_in: int  # what the swap sends in: base (cex->dex) or quote (dex->cex)
    dex_min_out: int  # the least the swap may return: break-even against the book leg
    gas: int
    profit: int


def size_at(direction: str, lots: int, lot: int, book: Book, spec: PoolSpec, state: MarketState, base_token: str,
            quote_token: str, gas: int) -> Sized | None:
    """The direction's exact outcome at ``lots`` lots, or None if a venue cannot price it."""
    q = lots * lot
    buy_on_book = direction == CEX_DEX
    c = book.buy_cost(q) if buy_on_book else book.sell_proceeds(q)
    if c is None:
        return None
    # the pool: what selling q returns, or the least input that buys q
    dex = quote(spec, state, base_token, q) if buy_on_book else min_input(spec, state, quote_token, q)
    if dex is None:
        return None
    notional, fee, worst = c
    if buy_on_book:
        return Sized(direction, lots, q, notional, fee, worst, dex, q, notional + fee, gas, dex - notional - fee - gas)
    return Sized(direction, lots, q, notional, fee, worst, dex, dex, q, gas, notional - fee - dex - gas)


def best_lots(profit_at: Any, n_max: int) -> tuple[int, Any] | None:
    """The lot count in ``[1, n_max]`` with the largest profit, and its result.

    ``profit_at(n)`` is a ``Sized`` or None; the sizes it can price are a prefix (a pool that cannot
    price ``n`` cannot price more), found by bisection. On that prefix the profit is concave (the
    pool's output is concave in its input, the book's cost convex in size: worse levels come later)
    up to the contracts' and the venue's roundings, so a search finds the optimum's
    neighbourhood (a bisection on the sign of the step ``p(n + 1) - p(n)``) and a climb ends where
    neither neighbour is better. Ties go to the smaller size."""
    if n_max < 1:
        return None
    cache: dict[int, Any] = {}

    def at(n: int) -> Any:
        if n not in cache:
            cache[n] = profit_at(n)
        return cache[n]

    if at(1) is None:
        return None
    lo, hi = 1, n_max
    if at(hi) is None:  # bisect for the largest priceable size: at(lo) prices, at(hi) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if at(mid) is None:
                hi = mid
            else:
                lo = mid
        hi = lo
    feasible = hi

    def p(n: int) -> int:
        return at(n).profit  # type: ignore[no-any-return]

    lo = 1  # bisect for the last size whose step up still pays: p(lo + 1) > p(lo) holds left of it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if p(mid + 1) > p(mid):
            lo = mid + 1
        else:
            hi = mid
    n = max(range(lo, hi + 1), key=lambda k: (p(k), -k))
    while n < feasible and p(n + 1) > p(n):  # climb until neither neighbour is better
        n += 1
    while n > 1 and p(n - 1) >= p(n):
        n -= 1
    return n, at(n)


# ------------------------------------------------------------------------------ attempts


@dataclass(slots=True)
class _Leg:
    role: str  # "cex" | "dex" | "u<k>"
    client_id: str
    venue: str
    side: str
    base: int = 0  # signed base units its fills moved (+ bought)
    done: bool = False
    status: str = ""  # "filled" | "partial" | "failed" | "refused"


@dataclass(slots=True)
class _Attempt:
    n: int
    direction: str
    spec: PoolSpec
    base: int  # the base units the opportunity traded
    legs: dict[str, _Leg] = field(default_factory=dict)  # client id -> leg
    rounds: int = 0
    dex_pending: Sized | None = None  # cex_first: the swap to send once the book leg fills
    timers: int = 0  # leg timers asked for (their keys: cd<n>:t<k>)
    waiting: dict[str, tuple[str, ...]] = field(default_factory=dict)  # timer key -> the legs it watches


class CexDexArb:
    handles = (ev.QuoteUpdated, ev.BookDepthUpdated, ev.V2ReservesSynced, ev.V3Swapped, ev.V3Minted, ev.V3Burned)

    def __init__(
        self,
        name: str,
        cex_venue: str = "binance",
        cex_instrument: str = "ETH-USDC",
        cex_taker_fee_bps: Any = "10",
        cex_lot_size: Any = "0.0001",
        cex_base_decimals: int = 18,
        cex_quote_decimals: int = 6,
        pools: Sequence[dict[str, Any]] = (),
        base_token: str = "",
        quote_token: str = "",
        cex_base: str = "",
        dex_base: str = "WETH",
        quote_asset: str = "",
        dex_venue: str = "ethereum:swap",
        chain: str = "ethereum",
        gas_units: int = 150_000,
        priority_fee_wei: int = 0,
        min_profit: int = 1_000_000,
        max_base: Any = "20",
        max_held: Any = "40",
        max_notional: int = 100_000_000_000,
        max_age_s: Any = 5,
        pool_max_age_s: Any = 60,
        max_in_flight: int = 1,
        max_unwinds: int = 2,
        max_unwind_cost: int = 500_000_000,
        unwind_slippage_bps: int = 50,
        leg_order: str = "together",
        leg_timeout_s: Any = 0,
        cex_tif: str = "ioc",
        act: bool = True,
        **unknown: Any,
    ):
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        self.name = name
        self.cex_venue, self.cex_instrument = str(cex_venue), str(cex_instrument)
        fee = CTX.create_decimal(str(cex_taker_fee_bps))
        if not fee.is_finite() or fee < 0:
            raise ValueError(f"cex_taker_fee_bps must be a number >= 0, got {cex_taker_fee_bps!r}")
        num, den = CTX.divide(fee, Decimal(10_000)).as_integer_ratio()
        self.fee_num, self.fee_den = num, den
        self.base_decimals, self.quote_decimals = int(cex_base_decimals), int(cex_quote_decimals)
        self.lot = to_fixed(str(cex_lot_size), self.base_decimals, "cex_lot_size")
        if self.lot <= 0:
            raise ValueError(f"cex_lot_size must be > 0, got {cex_lot_size!r}")
        for p in pools:
            if not isinstance(p, dict) or "kind" not in p:
                raise ValueError(f"pool {p!r} has no kind: give kind, token0, token1 and fee, or name a pool the "
                                 f"registry knows (a sim run completes its scenario's pools)")
        self.pools = [PoolSpec.from_config(dict(p)) for p in pools]
        self.base_token, self.quote_token = str(base_token).lower(), str(quote_token).lower()
        for s in self.pools:
            if {s.token0, s.token1} != {self.base_token, self.quote_token}:
                raise ValueError(f"pool {s.pool} trades {s.token0}/{s.token1}, not base_token {base_token!r} "
                                 f"and quote_token {quote_token!r}")
        base, _, quote_sym = self.cex_instrument.partition("-")
        self.cex_base = cex_base or base
        self.dex_base = dex_base
        self.quote_asset = quote_asset or quote_sym
        self.dex_venue, self.chain = dex_venue, chain
        self.gas_units, self.priority_fee_wei = int(gas_units), int(priority_fee_wei)
        self.min_profit, self.max_notional = int(min_profit), int(max_notional)
        self.max_base = to_fixed(str(max_base), self.base_decimals, "max_base")
        self.max_held = to_fixed(str(max_held), self.base_decimals, "max_held")
        self.max_age_ns, self.pool_max_age_ns = seconds_to_ns(max_age_s), seconds_to_ns(pool_max_age_s, "pool_max_age_s")
        self.max_in_flight, self.max_unwinds = int(max_in_flight), int(max_unwinds)
        self.max_unwind_cost, self.unwind_slippage_bps = int(max_unwind_cost), int(unwind_slippage_bps)
        if leg_order not in LEG_ORDERS:
            raise ValueError(f"leg_order must be one of {', '.join(LEG_ORDERS)}, got {leg_order!r}")
        self.leg_order, self.act = leg_order, bool(act)
        self.leg_timeout_ns = seconds_to_ns(leg_timeout_s, "leg_timeout_s")
        if cex_tif not in ("ioc", "gtc"):
            raise ValueError(f"cex_tif must be ioc or gtc, got {cex_tif!r}")
        self.cex_tif = cex_tif
        self.timeouts = 0  # legs taken as final by their timer
        self.cancels = 0  # cancels sent for timed-out book legs
        self.canceled = 0  # of them, legs the venue took off the book (OrderCanceled)
        self.cancel_failed = 0  # cancels refused, or that found the order already done
        self._cancel_of: dict[str, str] = {}  # client id of a cancel in flight -> the leg it cancels
        self.late = 0  # reports of timed-out legs after their attempt closed (into the held inventory)
        self._timed_out: dict[str, int] = {}  # client id of a timed-out leg -> its attempt
        self._pool_ids = {s.pool for s in self.pools}
        if not self.pools:
            self.handles = ()  # nothing to compare against: inert
        self.attempts = 0
        self.open: dict[int, _Attempt] = {}  # attempt -> in flight
        self.held = 0  # base units left as inventory by holds (signed)
        self._depth: dict[str, ev.BookDepthUpdated] = {}  # venue -> last snapshot of our instrument
        self._memo: dict[str, tuple[tuple[Any, ...], Sized | None]] = {}  # pool -> (state it priced, result)

    # ------------------------------------------------------------------ detection

    def on_event(self, e: ev.Event, state: MarketState) -> Sequence[Proposal]:
        t = type(e)
        if t is ev.TimerFired:
            return self._on_timer(e, state)  # type: ignore[arg-type]
        if t is ev.QuoteUpdated or t is ev.BookDepthUpdated:
            if e.venue != self.cex_venue or e.instrument != self.cex_instrument:  # type: ignore[attr-defined]
                return ()
            if t is ev.BookDepthUpdated:
                if e.snapshot:  # type: ignore[attr-defined]
                    self._depth[e.venue] = e  # type: ignore[assignment, attr-defined]
                return ()
        elif e.pool not in self._pool_ids:  # type: ignore[attr-defined]
            return ()
        if len(self.open) >= self.max_in_flight or abs(self.held) >= self.max_held:
            return ()  # busy, or holding as much unhedged inventory as it may
        q = state.quotes.get(self.cex_instrument, {}).get(self.cex_venue)
        block = state.blocks.get(self.chain)
        if q is None or block is None or q.bid <= 0 or q.ask <= 0:
            return ()
        best: tuple[Sized, PoolSpec] | None = None
        for spec in self.pools:
            found = self.best(e.ts, q, spec, state, block)
            if found is not None and (best is None or found.profit > best[0].profit):
                best = (found, spec)
        if best is None or best[0].profit < self.min_profit:
            return ()
        return self._act(e, state, q, *best)

    def books(self, q: ev.QuoteUpdated, now: int) -> tuple[Book, Book]:
        """(asks, bids) the strategy may take: the fresh depth snapshot's levels, else the top of book."""
        scale = 10 ** (self.base_decimals - q.size_decimals)
        d = self._depth.get(self.cex_venue)
        if d is not None and now - d.ts <= self.max_age_ns and d.price_decimals == q.price_decimals:
            s = 10 ** (self.base_decimals - d.size_decimals)
            asks: Levels = tuple((p, n * s) for p, n in d.asks)
            bids: Levels = tuple((p, n * s) for p, n in d.bids)
        else:
            asks, bids = ((q.ask, q.ask_size * scale),), ((q.bid, q.bid_size * scale),)
        mk = (q.price_decimals, self.base_decimals, self.quote_decimals, self.fee_num, self.fee_den)
        return Book(asks, *mk), Book(bids, *mk)

    def gas_cost(self, q: ev.QuoteUpdated, block: ev.BlockProduced) -> int:
        """Gas of one swap at the next base fee plus the tip, in quote units at the book's mid."""
        wei = self.gas_units * (block.next_base_fee + self.priority_fee_wei)
        mid2 = q.bid + q.ask  # twice the mid, 10**-pd quote per base
        return -(-wei * mid2 * 10**self.quote_decimals // (2 * 10 ** (q.price_decimals + 18)))

    def best(self, now: int, q: ev.QuoteUpdated, spec: PoolSpec, state: MarketState,
             block: ev.BlockProduced) -> Sized | None:
        """The better direction at its best size for this pool, or None if neither pays at one lot."""
        depth = self._depth.get(self.cex_venue)
        memo = (q.bid, q.ask, q.bid_size, q.ask_size, block.next_base_fee,
                depth.seq if depth is not None and now - depth.ts <= self.max_age_ns else 0, _pool_key(spec, state))
        last = self._memo.get(spec.pool)
        if last is not None and last[0] == memo:
            return last[1]  # the same book, pool and gas price as last time: the same answer
        found = self._best(now, q, spec, state, block)
        self._memo[spec.pool] = (memo, found)
        return found

    def _best(self, now: int, q: ev.QuoteUpdated, spec: PoolSpec, state: MarketState,
              block: ev.BlockProduced) -> Sized | None:
        asks, bids = self.books(q, now)
        gas = self.gas_cost(q, block)
        out: Sized | None = None
        for direction, book in ((CEX_DEX, asks), (DEX_CEX, bids)):
            if not marginal_pays(spec, state, self.base_token, book, direction == CEX_DEX):
                continue  # the quiet path: at the spot price neither fee is covered
            one = size_at(direction, 1, self.lot, book, spec, state, self.base_token, self.quote_token, 0)
            if one is None or one.profit <= 0:  # the first lot does not pay before gas: nor will more
                continue
            n_max = min(book.depth(), self.max_base) // self.lot
            mid = (q.bid + q.ask) // 2
            if mid > 0:  # notional bound, at the mid
                n_max = min(n_max, self.max_notional * 10 ** (q.price_decimals + self.base_decimals)
                            // (mid * 10**self.quote_decimals * self.lot))
            found = best_lots(lambda n, d=direction, b=book: size_at(d, n, self.lot, b, spec, state, self.base_token,
                                                                     self.quote_token, gas), n_max)
            if found is not None and (out is None or found[1].profit > out.profit):
                out = found[1]
        return out

    def _act(self, e: ev.Event, state: MarketState, q: ev.QuoteUpdated, s: Sized,
             spec: PoolSpec) -> Sequence[Proposal]:
        key = (f"{q.venue}:{q.instrument}@{q.bid}/{q.ask}x{q.bid_size}/{q.ask_size}|{spec.pool}@"
               + _pool_key(spec, state))
        now = e.ts
        old = [x for x in (q.venue, spec.pool) if not (state.quote_fresh(q, now, self.max_age_ns) if x == q.venue
                                                       else state.fresh(x, now, self.pool_max_age_ns))]
        if old:
            ages = [state.age(x, now) for x in old]
            why = ", ".join(f"{x} {'stale' if a is None else f'{a} ns old'}" for x, a in zip(old, ages))
            return (ev.OpportunitySuppressed(
                ts=now, source="engine", cause=e.seq, strategy=self.name, kind="cex-dex", key=key,
                reason=f"{why} (max_age {self.max_age_ns} ns, pools {self.pool_max_age_ns} ns)", ids=tuple(old),
                age_ns=-1 if None in ages else max(a for a in ages if a is not None), net_profit=s.profit,
                profit_token=self.quote_asset),)
        self.attempts += 1
        n = self.attempts
        cex_id, dex_id = f"cd{n}-cex", f"cd{n}-dex"
        opp = ev.CexDexOpportunity(
            ts=now, source="engine", cause=e.seq, strategy=self.name, attempt=n, direction=s.direction,
            cex_venue=self.cex_venue, cex_instrument=self.cex_instrument, cex_base=self.cex_base, pool=spec.pool,
            dex_venue=self.dex_venue, dex_base=self.dex_base, quote_asset=self.quote_asset, base_amount=s.base,
            cex_quote=s.cex_quote, dex_quote=s.dex_quote, cex_fee=s.cex_fee, gas_cost=s.gas,
            expected_profit=s.profit, dex_min_out=s.dex_min_out, leg_order=self.leg_order, cex_client_id=cex_id,
            dex_client_id=dex_id, key=key)
        if not self.act:
            return (opp,)
        a = self.open[n] = _Attempt(n, s.direction, spec, s.base)
        cex_side = "buy" if s.direction == CEX_DEX else "sell"
        cex = Intent(self.name, self.cex_venue, self.cex_instrument, cex_side, s.base, s.cex_quote,
                     client_id=cex_id, limit_price=s.cex_worst, price_decimals=q.price_decimals, tif=self.cex_tif)
        a.legs[cex_id] = _Leg("cex", cex_id, self.cex_venue, cex_side)
        out: list[Proposal] = [opp, cex]
        if self.leg_order == "together":
            out.append(self._swap(a, "dex", dex_id, s))
            out.extend(self._timer(e, a, (cex_id, dex_id)))
        else:
            a.dex_pending = s
            out.extend(self._timer(e, a, (cex_id,)))
        return out

    # ------------------------------------------------------------------ leg timeouts

    def _timer(self, e: ev.Event, a: _Attempt, legs: tuple[str, ...]) -> list[Proposal]:
        """A timer watching ``legs`` of ``a``, due ``leg_timeout_s`` after ``e`` (none when 0)."""
        if not self.leg_timeout_ns:
            return []
        a.timers += 1
        key = f"cd{a.n}:t{a.timers}"
        a.waiting[key] = legs
        return [ev.TimerRequested(ts=e.ts, source="engine", cause=e.seq, strategy=self.name, key=key,
                                  at_ts=e.ts + self.leg_timeout_ns)]

    def _on_timer(self, e: ev.TimerFired, state: MarketState) -> Sequence[Proposal]:
        """A leg timer fired: legs it watches that are still not final are taken as final with
        what they filled so far (``timeout``), then the attempt settles if every leg is final."""
        head, sep, _ = e.key.partition(":")
        if not sep or not head.startswith("cd") or not head[2:].isdigit():
            return ()
        a = self.open.get(int(head[2:]))
        if a is None:
            return ()  # the attempt closed before its timer: nothing to do
        watched = a.waiting.pop(e.key, ())
        late = [a.legs[c] for c in watched if c in a.legs and not a.legs[c].done]
        if not late:
            return ()
        out: list[Proposal] = []
        for leg in late:
            leg.done, leg.status = True, "timeout"
            self._timed_out[leg.client_id] = a.n
            self.timeouts += 1
            if leg.role == "cex":
                a.dex_pending = None  # cex_first: the swap waited for this leg; it is not sent now
            if leg.venue == self.cex_venue:  # a book leg may still rest (or be in flight): take it off
                cancel_id = leg.client_id + "-cancel"
                self._cancel_of[cancel_id] = leg.client_id
                self.cancels += 1
                out.append(Intent(self.name, self.cex_venue, self.cex_instrument, "cancel", 0, 0,
                                  target=leg.client_id, client_id=cancel_id))
        if all(x.done for x in a.legs.values()) and a.dex_pending is None:
            out.extend(self._settle(e, a, state))
        return out

    def _swap(self, a: _Attempt, role: str, client_id: str, s: Sized) -> Intent:
        """The pool leg: buy the base with ``dex_in`` quote, or sell ``dex_in`` base, reverting below
        ``dex_min_out`` of what it buys."""
        buy = s.direction == DEX_CEX
        side = "buy" if buy else "sell"
        a.legs[client_id] = _Leg(role, client_id, self.dex_venue, side)
        notional = s.dex_in if buy else s.dex_quote
        return Intent(self.name, self.dex_venue, a.spec.pool, side, s.dex_in, notional,
                      max_priority_fee=self.priority_fee_wei, client_id=client_id, min_profit=s.dex_min_out,
                      profit_asset=self.base_token if buy else self.quote_token)

    # ------------------------------------------------------------------ legs and unwinds

    def on_order(self, e: ev.Event, order: Order, state: MarketState) -> Sequence[Proposal]:
        if order.client_id in self._cancel_of:  # a cancel's own news: only how it ended matters
            t = type(e)
            if t in (ev.OrderFailed, ev.IntentRejected):
                del self._cancel_of[order.client_id]
                self.cancel_failed += 1  # (the leg it named ended by itself: its own report says how)
            elif t is ev.OrderCanceled:  # (told with the cancel's record: the leg was not known here)
                self._timed_out.pop(self._cancel_of.pop(order.client_id), None)
                self.canceled += 1
            return ()
        if order.client_id in self._timed_out:
            return self._late_report(e, order)
        n, leg = self._leg(order.client_id)
        if leg is None:
            return ()
        a = self.open[n]
        t = type(e)
        if t is ev.IntentRejected:
            leg.done, leg.status = True, "refused"
        elif t is ev.OrderFilled:
            leg.base += e.amount if leg.side == "buy" else -e.amount  # type: ignore[attr-defined]
            if e.final:  # type: ignore[attr-defined]
                leg.done = True
                whole = leg.venue == self.dex_venue or order.filled_amount >= order.amount  # (a swap fills whole)
                leg.status = "filled" if whole else "partial"
        elif t is ev.OrderFailed:
            leg.done, leg.status = True, "failed"
        else:
            return ()
        if not leg.done:
            return ()
        out: list[Proposal] = []
        if a.dex_pending is not None and leg.role == "cex":  # cex_first: now the swap, sized to the fill
            s, a.dex_pending = a.dex_pending, None
            filled = abs(leg.base) // self.lot * self.lot
            if filled:
                resized = self._resized(a, s, filled, order, state)
                if resized is not None:
                    out.append(self._swap(a, "dex", f"cd{a.n}-dex", resized))
                    out.extend(self._timer(e, a, (f"cd{a.n}-dex",)))
        if all(x.done for x in a.legs.values()) and a.dex_pending is None:
            out.extend(self._settle(e, a, state))
        return out

    def _late_report(self, e: ev.Event, order: Order) -> Sequence[Proposal]:
        """A fill of a leg already taken as final by its timer: the base it moved joins the open
        attempt (its next settlement sees it) or, once the attempt closed, the held inventory."""
        if type(e) is not ev.OrderFilled:
            if type(e) in (ev.OrderFailed, ev.IntentRejected, ev.OrderCanceled):
                self._timed_out.pop(order.client_id, None)
            if type(e) is ev.OrderCanceled:  # our cancel took it off the book: nothing more will fill
                self._cancel_of.pop(order.client_id + "-cancel", None)
                self.canceled += 1
            return ()
        n = self._timed_out[order.client_id]
        moved = e.amount if order.side == "buy" else -e.amount  # type: ignore[attr-defined]
        if e.final:  # type: ignore[attr-defined]
            del self._timed_out[order.client_id]
        a = self.open.get(n)
        leg = a.legs.get(order.client_id) if a is not None else None
        if leg is not None:
            leg.base += moved
        else:
            self.held += moved
            self.late += 1
        return ()

    def _resized(self, a: _Attempt, s: Sized, base: int, order: Order, state: MarketState) -> Sized | None:
        """The swap for what the book leg really filled, break-even against its real fill."""
        if s.direction == CEX_DEX:  # sell the base bought; at least what the book cost (fee included)
            fee = -(-order.filled_notional * self.fee_num // self.fee_den)
            return Sized(s.direction, base // self.lot, base, order.filled_notional, fee, s.cex_worst, 0, base,
                         order.filled_notional + fee, s.gas, 0)
        x = min_input(a.spec, state, self.quote_token, base)
        return None if x is None else Sized(s.direction, base // self.lot, base, order.filled_notional, 0,
                                            s.cex_worst, x, x, base, s.gas, 0)

    def _leg(self, client_id: str) -> tuple[int, _Leg | None]:
        head, sep, _ = client_id.partition("-")
        if not sep or not head.startswith("cd") or not head[2:].isdigit():
            return 0, None
        n = int(head[2:])
        a = self.open.get(n)
        return (n, a.legs.get(client_id)) if a is not None else (n, None)

    def _settle(self, e: ev.Event, a: _Attempt, state: MarketState) -> Sequence[Proposal]:
        """Every leg is final: close the attempt, or unwind (or hold) what its fills left."""
        exposure = sum(x.base for x in a.legs.values())
        if abs(exposure) < self.lot:
            del self.open[a.n]
            return ()
        a.rounds += 1
        k = a.rounds
        common = dict(ts=e.ts, source="engine", cause=e.seq, strategy=self.name, attempt=a.n, round=k,
                      exposure=exposure, max_cost=self.max_unwind_cost)
        if k > self.max_unwinds:
            return (self._hold(a, common, f"{self.max_unwinds} unwind round(s) spent", -1),)
        options = self._unwind_options(e.ts, a, exposure, state)
        if not options:
            return (self._hold(a, common, "no fresh venue can price the unwind", -1),)
        cost, venue, intent = min(options, key=lambda o: o[0])
        if cost > self.max_unwind_cost:
            return (self._hold(a, common, f"cheapest unwind ({venue}) would cost {cost} > max_unwind_cost", cost),)
        amount = intent.amount if venue == "cex" or intent.side == "sell" else abs(exposure)
        decision = ev.CexDexUnwind(**common, action=venue, venue=intent.venue, side=intent.side, amount=amount,
                                   expected_cost=cost, client_id=intent.client_id,
                                   reason=self._why(a, exposure))
        a.legs[intent.client_id] = _Leg(f"u{k}", intent.client_id, intent.venue, intent.side)
        return (decision, intent, *self._timer(e, a, (intent.client_id,)))

    def _why(self, a: _Attempt, exposure: int) -> str:
        legs = ", ".join(f"{x.role} {x.status}" for x in a.legs.values())
        return f"legs {legs}; {'long' if exposure > 0 else 'short'} {abs(exposure)} base units"

    def _hold(self, a: _Attempt, common: dict[str, Any], reason: str, cost: int) -> ev.CexDexUnwind:
        self.held += common["exposure"]
        del self.open[a.n]
        return ev.CexDexUnwind(**common, action="hold", venue="", side="", amount=0, expected_cost=cost,
                               client_id="", reason=f"{reason}; {self._why(a, common['exposure'])}")

    def _unwind_options(self, now: int, a: _Attempt, exposure: int, state: MarketState) -> list[tuple[int, str, Intent]]:
        """(expected cost against the book's mid, "cex"|"pool", intent) for each venue that can take it now."""
        q = state.quotes.get(self.cex_instrument, {}).get(self.cex_venue)
        if q is None or q.bid <= 0 or q.ask <= 0:
            return []
        long, size = exposure > 0, abs(exposure)
        mid2 = q.bid + q.ask
        den = 2 * 10 ** (q.price_decimals + self.base_decimals)
        options: list[tuple[int, str, Intent]] = []
        k = a.rounds
        slip = self.unwind_slippage_bps
        if state.quote_fresh(q, now, self.max_age_ns):
            asks, bids = self.books(q, now)
            book = bids if long else asks
            lots = min(size, book.depth()) // self.lot
            if lots:
                base = lots * self.lot
                fair = base * mid2 * 10**self.quote_decimals // den
                if long:
                    notional, fee, worst = book.sell_proceeds(base)  # type: ignore[misc]
                    cost = fair - notional + fee
                    limit = worst * (10_000 - slip) // 10_000
                else:
                    notional, fee, worst = book.buy_cost(base)  # type: ignore[misc]
                    cost = notional + fee - fair
                    limit = -(-worst * (10_000 + slip) // 10_000)
                cost += (size - base) * mid2 * 10**self.quote_decimals // den  # what stays unhedged counts whole
                options.append((cost, "cex", Intent(self.name, self.cex_venue, self.cex_instrument,
                                                    "sell" if long else "buy", base, notional,
                                                    client_id=f"cd{a.n}-u{k}", limit_price=limit,
                                                    price_decimals=q.price_decimals, tif="ioc")))
        block = state.blocks.get(self.chain)
        spec = a.spec
        if block is not None and state.fresh(spec.pool, now, self.pool_max_age_ns):
            gas = self.gas_cost(q, block)
            fair = size * mid2 * 10**self.quote_decimals // den
            if long:
                got = quote(spec, state, self.base_token, size)
                if got is not None:
                    min_out = got * (10_000 - slip) // 10_000
                    options.append((fair - got + gas, "pool", Intent(
                        self.name, self.dex_venue, spec.pool, "sell", size, got, max_priority_fee=self.priority_fee_wei,
                        client_id=f"cd{a.n}-u{k}", min_profit=min_out, profit_asset=self.quote_token)))
            else:
                x = min_input(spec, state, self.quote_token, size)
                if x is not None:
                    options.append((x - fair + gas, "pool", Intent(
                        self.name, self.dex_venue, spec.pool, "buy", x, x, max_priority_fee=self.priority_fee_wei,
                        client_id=f"cd{a.n}-u{k}", min_profit=size, profit_asset=self.base_token)))
        return options


def _pool_key(spec: PoolSpec, state: MarketState) -> str:
    if spec.kind == "v2":
        p = state.v2.get(spec.pool)
        return f"{p.reserve0}/{p.reserve1}" if p is not None else "?"
    s = state.v3.get(spec.pool)
    return f"{s.sqrt_price_x96}/{s.liquidity}" if s is not None else "?"
