"""A paper gateway: fills computed from the market state at the time of the intent, never echoed.

``PaperGateway(state, ...)`` reads the engine's ``MarketState`` (read only). The loop calls
``submit`` right after the intent is recorded, so the state is the one its cause left. Every report
(``OrderAcknowledged`` then ``OrderFilled``, or ``OrderFailed`` with the reason) goes through the
``report`` callable given by ``bind`` (or the constructor), stamped ``source="paper"`` so outcomes
can tell paper from executed. Paper PnL is what the exact math gives, and it can be negative.

* **Arbitrage** (side ``arb``, ``instrument = "<buy pool>-><sell pool>"``, ``amount`` token0 in):
  token0 -> token1 on the buy pool, all of that token1 -> token0 on the sell pool. A pool is a key
  of ``state.v2``/``state.v3``; the labels ``uniswap-v2``/``uniswap-v3`` name the only pool of that
  kind. V2 legs use ``get_amount_out``. V3 legs swap inside the current tick-spacing interval
  (``swap_within_range``): the state knows in-range liquidity only, not the ticks beyond, so a trade
  that would leave the interval is filled only as far as the interval allows (the largest input
  both legs take whole: a final fill with ``notional`` below the intent's amount), or fails saying
  so. Fill: ``amount`` = token0 out, ``notional`` = token0 in.
  Gas: priced from the last recorded ``BlockProduced`` of the intent's chain (its ``next_base_fee``,
  the fee the next block charges, plus the intent's tip) times this gateway's own estimate of a
  swap's gas per leg (``v2_swap_gas``/``v3_swap_gas``, not the strategy's declared gas); ``fee`` in
  ETH wei, ``fee_asset="ETH"``. Without a recorded block the fill says ``fee=0, fee_asset=""``:
  gas not modelled (outcomes report it so).
* **Book** (side ``buy``/``sell`` on a venue with a quote for the instrument): against the top of
  book, the quoted size as depth (``base_decimals``), notional rounded in the venue's favour
  (``quote_decimals``), a fee in the quote asset. The intent's ``limit_price`` (at its
  ``price_decimals``; 0: a market order) and ``tif`` ("" = "ioc") decide how:

  - **IOC** (and every market order): fills at the top's price up to its depth if the top crosses
    the limit (a buy's ask at or below it, a sell's bid at or above it), the taker fee
    ``taker_fee_bps``; the rest is canceled: a final fill of what there was. A top that does not
    cross fills nothing: ``OrderFailed`` "limit price not reached".
  - **GTC**: what crosses on arrival fills as an IOC would (a non-final fill when some is left);
    the rest **rests** at its limit. A resting order fills when a later ``QuoteUpdated`` of its book
    crosses its limit (``observe``, called by the loop after each input the engine has folded): at
    its own limit price (it was the resting side), up to that quote's depth, with the maker fee
    ``maker_fee_bps`` (default: the taker fee), final when nothing is left. Orders resting on one
    book fill in the order they came (time priority), sharing each quote's depth.
  - **ALO** (post only): rests as a GTC; one whose limit crosses the top on arrival is refused
    (Hyperliquid's "Post only order would have immediately matched").

  Fills are always computed from the book (a crossing price and its depth), never echoed from the
  intent. A GTC/ALO needs a limit price.

* **Cancel** (side ``cancel``, ``target`` the order's client id, of the same strategy): a resting
  order is taken off (``OrderCanceled``, ``remaining`` what it had not filled, ending both the order
  and the cancel); anything else (filled, refused, never seen) is ``OrderFailed`` "cancel: no
  resting order <id>".

A recorded market cannot move for a paper trade, so the gateway remembers its own impact: a pool
(or a quote's depth) it traded is seen as it left it until the recording updates that pool (or that
quote). A re-detection of the same unmoved gap is then filled against the closed gap, not booked as
the same profit again.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Mapping

from tapedeck.domain import events as ev
from tapedeck.domain.decimals import CTX
from tapedeck.domain.uniswap_v2 import get_amount_out
from tapedeck.domain.uniswap_v3 import V3MathError, swap_within_range

PAPER = "paper"
V3_TICK_SPACING = {100: 1, 500: 10, 3000: 60, 10_000: 200}  # the V3 factory's fee tiers
V2_SWAP_GAS = 105_000  # about what a router swap on a V2 pair uses
V3_SWAP_GAS = 130_000  # about what a single-pool V3 router swap uses inside one tick interval

Report = Callable[[ev.Event], None]


@dataclass(frozen=True)
class PoolSpec:
    """What the state does not say about a pool: its fee (V2: bps, V3: pips) and V3 tick spacing."""

    fee: int
    tick_spacing: int = 0


class PaperConfigError(ValueError):
    """A ``[paper]`` config table that cannot build the gateway; the message names the key."""


class PaperRefusal(Exception):
    """Internal: the intent cannot be filled on paper; the message is the OrderFailed reason."""


@dataclass
class _Resting:
    """A GTC/ALO order resting on a book: its intent and what of it is not filled yet (base units)."""

    intent: ev.OrderIntended
    left: int


RESTING_TIFS = ("gtc", "alo")
BOOK_TIFS = ("ioc", *RESTING_TIFS)


class _Leg:
    """One pool as this gateway sees it: the recorded state, or its own last trade on that state."""

    def __init__(self, gw: PaperGateway, pool_id: str):
        st = gw.state
        self.id, self.gw = pool_id, gw
        if pool_id in st.v2:
            p = st.v2[pool_id]
            self.kind, self.snapshot = "v2", (p.reserve0, p.reserve1)
            if p.reserve0 <= 0 or p.reserve1 <= 0:
                raise PaperRefusal(f"pool {pool_id} has a zero reserve ({p.reserve0}, {p.reserve1})")
            self.spec = gw.pools.get(pool_id, PoolSpec(30))
            start: tuple[int, ...] = self.snapshot
        else:
            p3 = st.v3[pool_id]
            if not p3.known:
                raise PaperRefusal(f"pool {pool_id} state unknown (no swap recorded yet)")
            if not p3.liquidity:
                raise PaperRefusal(f"pool {pool_id} has no in-range liquidity")
            spec = gw.pools.get(pool_id)
            if spec is None:
                raise PaperRefusal(f"pool {pool_id}: fee tier unknown (configure [paper.pools.\"{pool_id}\"] fee)")
            if not spec.tick_spacing:
                spacing = V3_TICK_SPACING.get(spec.fee)
                if spacing is None:
                    raise PaperRefusal(f"pool {pool_id}: no tick spacing for fee {spec.fee} pips (configure it)")
                spec = PoolSpec(spec.fee, spacing)
            self.kind, self.spec = "v3", spec
            self.snapshot = (p3.sqrt_price_x96, p3.tick, p3.liquidity)  # type: ignore[assignment]
            start = (p3.sqrt_price_x96, p3.liquidity, p3.tick)  # type: ignore[assignment]
        seen = gw._impact.get(pool_id)
        self.start = seen[1] if seen is not None and seen[0] == self.snapshot else start

    def swap(self, amount: int, zero_for_one: bool, start: tuple[int, ...] | None = None) -> tuple[int, int, tuple[int, ...]]:
        """``(input taken, output, state after)`` of an exact-input swap from ``start`` (default: now)."""
        s = self.start if start is None else start
        if self.kind == "v2":
            r0, r1 = s
            if zero_for_one:
                out = get_amount_out(amount, r0, r1, self.spec.fee)
                return amount, out, (r0 + amount, r1 - out)
            out = get_amount_out(amount, r1, r0, self.spec.fee)
            return amount, out, (r0 - out, r1 + amount)
        sp, liquidity, anchor = s  # the recorded tick anchors the only interval whose liquidity is known
        r = swap_within_range(sp, liquidity, anchor, self.spec.tick_spacing, self.spec.fee, amount, zero_for_one)
        if zero_for_one:
            return r.amount0, -r.amount1, (r.sqrt_price_x96, liquidity, anchor)
        return r.amount1, -r.amount0, (r.sqrt_price_x96, liquidity, anchor)

    @property
    def gas(self) -> int:
        return self.gw.v2_swap_gas if self.kind == "v2" else self.gw.v3_swap_gas


class PaperGateway:
    """Fills intents on paper against ``state`` (see the module docstring for the rules)."""

    def __init__(self, state: Any, *, pools: Mapping[str, PoolSpec] | None = None, taker_fee_bps: int = 10,
                 maker_fee_bps: int | None = None, base_decimals: int = 8, quote_decimals: int = 6,
                 v2_swap_gas: int = V2_SWAP_GAS, v3_swap_gas: int = V3_SWAP_GAS, report: Report | None = None):
        maker_fee_bps = taker_fee_bps if maker_fee_bps is None else maker_fee_bps
        for name, bps in (("taker_fee_bps", taker_fee_bps), ("maker_fee_bps", maker_fee_bps)):
            if not 0 <= int(bps) < 10_000:
                raise ValueError(f"{name} must be in [0, 10000), got {bps}")
        self.state = state
        self.pools = {k.lower(): v for k, v in (pools or {}).items()}
        self.taker_fee_bps = int(taker_fee_bps)
        self.maker_fee_bps = int(maker_fee_bps)
        self.base_decimals = int(base_decimals)
        self.quote_decimals = int(quote_decimals)
        self.v2_swap_gas, self.v3_swap_gas = int(v2_swap_gas), int(v3_swap_gas)
        self.report = report
        self._impact: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}  # pool -> (recorded, after own trade)
        self._depth_used: dict[tuple[str, str, str], tuple[ev.QuoteUpdated, int]] = {}  # (instr, venue, side)
        self._resting: dict[tuple[str, str], dict[tuple[str, str], _Resting]] = {}  # (instr, venue) -> orders
        self._rests_on: dict[tuple[str, str], tuple[str, str]] = {}  # (strategy, client id) -> its book

    @classmethod
    def from_config(cls, state: Any, config: Mapping[str, Any], report: Report | None = None) -> PaperGateway:
        """Built from a run config's ``[paper]`` table (``taker_fee_bps``, ``base_decimals``,
        ``quote_decimals``, ``v2_swap_gas``, ``v3_swap_gas``, ``maker_fee_bps``, ``pools.<id>.fee`` /
        ``tick_spacing``).
        A pool not listed there takes the fee the config's ``cross_pool_arb`` strategies declare for
        it (a fact about the pool, not about the outcome)."""
        try:
            paper = dict(config.get("paper", {}))
            pools: dict[str, PoolSpec] = {}
            for s in config.get("strategies", []):
                if s.get("kind") == "cross_pool_arb":
                    if s.get("v2_pool"):
                        pools[str(s["v2_pool"]).lower()] = PoolSpec(int(s.get("v2_fee_bps", 30)))
                    if s.get("v3_pool"):
                        pools[str(s["v3_pool"]).lower()] = PoolSpec(int(s.get("v3_fee_pips", 500)),
                                                                    int(s.get("v3_tick_spacing", 0)))
            for pid, spec in dict(paper.pop("pools", {})).items():
                pools[pid.lower()] = PoolSpec(int(spec["fee"]), int(spec.get("tick_spacing", 0)))
            known = {"taker_fee_bps", "maker_fee_bps", "base_decimals", "quote_decimals", "v2_swap_gas",
                     "v3_swap_gas"}
            unknown = sorted(set(paper) - known)
            if unknown:
                raise PaperConfigError(f"[paper]: unknown key(s) {', '.join(unknown)} "
                                       f"(known: {', '.join(sorted(known))}, pools)")
            return cls(state, pools=pools, report=report, **{k: int(v) for k, v in paper.items()})
        except PaperConfigError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise PaperConfigError(f"[paper]: bad value: {type(e).__name__}: {e}") from None

    def bind(self, report: Report) -> None:
        self.report = report

    # ------------------------------------------------------------------ the port

    def submit(self, intent: ev.OrderIntended) -> None:
        if self.report is None:
            raise RuntimeError("PaperGateway.submit before bind(report)")
        try:
            if intent.side == "cancel":
                self.report(self._cancel(intent))
                return
            if intent.side == "arb":
                fills = [self._arb(intent)]
            elif intent.side in ("buy", "sell") and intent.venue in self.state.quotes.get(intent.instrument, {}):
                fills = self._book(intent)
            else:
                raise PaperRefusal(f"paper fills arbitrage intents (side 'arb') and buy/sell on a quoted book; "
                                   f"nothing to fill side {intent.side!r} {intent.instrument!r} on {intent.venue!r}")
        except PaperRefusal as e:
            self.report(ev.OrderFailed(ts=intent.ts, source=PAPER, cause=intent.seq, intent=intent.seq,
                                       venue=intent.venue, reason=str(e)))
            return
        self.report(ev.OrderAcknowledged(ts=intent.ts, source=PAPER, cause=intent.seq, intent=intent.seq,
                                         venue=intent.venue, order_id=f"paper-{intent.seq}"))
        for fill in fills:
            self.report(fill)

    def observe(self, e: ev.Event) -> None:
        """After the engine folded input ``e``: a new quote of a book with resting orders fills
        those its top crosses (see the module docstring). The loop calls this for every input."""
        if not self._resting or type(e) is not ev.QuoteUpdated:
            return
        book = self._resting.get((e.instrument, e.venue))  # type: ignore[attr-defined]
        if not book or self.state.quotes.get(e.instrument, {}).get(e.venue) is not e:  # type: ignore[attr-defined]
            return  # nothing rests there, or the state did not keep the quote (unusable)
        q: ev.QuoteUpdated = e  # type: ignore[assignment]
        for key, r in list(book.items()):
            i = r.intent
            buying = i.side == "buy"
            px = q.ask if buying else q.bid
            if not (px > 0 and _crosses(px, q.price_decimals, i.limit_price, i.price_decimals, buying)):
                continue
            qty = self._take(q, i.side, r.left)
            if not qty:
                continue
            r.left -= qty
            if not r.left:
                del book[key], self._rests_on[key]
            self.report(self._fill(i, qty, i.limit_price, i.price_decimals, self.maker_fee_bps, final=not r.left,
                                   ts=q.ts, cause=q.seq))
        if not book:
            del self._resting[(q.instrument, q.venue)]

    def _cancel(self, intent: ev.OrderIntended) -> ev.Event:
        key = (intent.strategy, intent.target)
        where = self._rests_on.pop(key, None)
        if where is None:
            raise PaperRefusal(f"cancel: no resting order {intent.target}")
        book = self._resting[where]
        r = book.pop(key)
        if not book:
            del self._resting[where]
        i = r.intent
        return ev.OrderCanceled(ts=intent.ts, source=PAPER, cause=intent.seq, intent=i.seq, venue=i.venue,
                                strategy=i.strategy, instrument=i.instrument, client_id=i.client_id,
                                cancel_id=intent.client_id, remaining=r.left, cancel_intent=intent.seq)

    # ------------------------------------------------------------------ arbitrage

    def _pool_id(self, name: str) -> str:
        st = self.state
        name = name.strip().lower()
        if name in st.v2 or name in st.v3:
            return name
        kind = {"uniswap-v2": st.v2, "uniswap-v3": st.v3}.get(name)
        if kind is None:
            raise PaperRefusal(f"no pool {name!r} in the state (pools: {', '.join([*st.v2, *st.v3]) or 'none'})")
        if len(kind) != 1:
            raise PaperRefusal(f"{name!r} is ambiguous: the state holds {len(kind)} such pools")
        return next(iter(kind))

    def _arb(self, intent: ev.OrderIntended) -> ev.OrderFilled:
        if len(intent.route) == 2:
            buy_name, sell_name = intent.route
        else:  # intents recorded before OrderIntended v4 name the route only in the instrument
            buy_name, arrow, sell_name = intent.instrument.partition("->")
            if not arrow or intent.route:
                raise PaperRefusal(f"arbitrage needs a route of two pools (buy, sell), got route {intent.route!r} "
                                   f"instrument {intent.instrument!r}")
        if intent.amount <= 0:
            raise PaperRefusal(f"arbitrage amount must be > 0, got {intent.amount}")
        buy, sell = _Leg(self, self._pool_id(buy_name)), _Leg(self, self._pool_id(sell_name))
        if buy.id == sell.id:
            raise PaperRefusal(f"both legs on pool {buy.id}")

        def legs(x: int) -> tuple[bool, int, int, tuple[int, ...], tuple[int, ...]]:
            taken1, y, after1 = buy.swap(x, True)
            if y <= 0:
                return taken1 == x, y, 0, after1, sell.start
            taken2, z, after2 = sell.swap(y, False)
            return taken1 == x and taken2 == y, y, z, after1, after2

        try:
            whole, y, z, after1, after2 = legs(intent.amount)
            x = intent.amount
            if not whole:  # the largest input both known ranges take whole (wholeness is monotone in x)
                lo, hi = 0, intent.amount
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if legs(mid)[0]:
                        lo = mid
                    else:
                        hi = mid
                x = lo
                if x == 0:
                    raise PaperRefusal(f"{buy.id}->{sell.id}: the known tick interval of the V3 leg takes none of "
                                       f"{intent.amount} (the state knows no liquidity beyond it)")
                _, y, z, after1, after2 = legs(x)
        except (ValueError, V3MathError) as e:
            raise PaperRefusal(f"{buy.id}->{sell.id}: {e}") from None
        if y <= 0 or z <= 0:
            raise PaperRefusal(f"{buy.id}->{sell.id}: {x} buys nothing (output {y} then {z})")
        self._impact[buy.id] = (buy.snapshot, after1)
        self._impact[sell.id] = (sell.snapshot, after2)
        fee, fee_asset = 0, ""
        block = self.state.blocks.get(intent.venue) if hasattr(self.state, "blocks") else None
        if block is not None:
            fee, fee_asset = (buy.gas + sell.gas) * (block.next_base_fee + intent.max_priority_fee), "ETH"
        return ev.OrderFilled(ts=intent.ts, source=PAPER, cause=intent.seq, intent=intent.seq, venue=intent.venue,
                              amount=z, notional=x, fee=fee, fee_asset=fee_asset, final=True)

    # ------------------------------------------------------------------ book

    def _book(self, intent: ev.OrderIntended) -> list[ev.OrderFilled]:
        q = self.state.quotes[intent.instrument][intent.venue]
        buying = intent.side == "buy"
        tif, limit = intent.tif or "ioc", intent.limit_price
        if tif not in BOOK_TIFS:
            raise PaperRefusal(f"time in force {intent.tif!r} unknown (ioc, gtc, alo)")
        if intent.amount <= 0 or limit < 0:
            raise PaperRefusal(f"amount {intent.amount} must be > 0 and limit_price {limit} >= 0")
        if tif in RESTING_TIFS and not limit:
            raise PaperRefusal(f"a {tif} order needs a limit price (a market order is IOC)")
        px, size = (q.ask, q.ask_size) if buying else (q.bid, q.bid_size)
        usable = px > 0 and size >= 0
        crosses = usable and (not limit or _crosses(px, q.price_decimals, limit, intent.price_decimals, buying))
        where = f"{intent.venue} {intent.instrument}"
        if tif == "ioc":
            if not usable:
                raise PaperRefusal(f"{where}: unusable quote {q.price(px)} x {q.size(size)}")
            if not crosses:
                raise PaperRefusal(f"{where}: limit price not reached (best {'ask' if buying else 'bid'} "
                                   f"{q.price(px)}, limit {_price(limit, intent.price_decimals)})")
            qty = self._take(q, intent.side, intent.amount)
            if not qty:
                raise PaperRefusal(f"{where}: no depth left at {q.price(px)} for {intent.amount}")
            return [self._fill(intent, qty, px, q.price_decimals, self.taker_fee_bps, final=True)]
        if tif == "alo" and crosses:
            raise PaperRefusal(f"{where}: Post only order would have immediately matched, bbo was "
                               f"{q.price(q.bid)}@{q.price(q.ask)}")
        qty = self._take(q, intent.side, intent.amount) if crosses else 0
        out = [self._fill(intent, qty, px, q.price_decimals, self.taker_fee_bps, final=qty == intent.amount)] if qty else []
        if qty < intent.amount:
            key, book = (intent.strategy, intent.client_id), (intent.instrument, intent.venue)
            self._resting.setdefault(book, {})[key] = _Resting(intent, intent.amount - qty)
            self._rests_on[key] = book
        return out

    def _take(self, q: ev.QuoteUpdated, side: str, want: int) -> int:
        """Up to ``want`` base units of the depth the top of ``q`` on the far side of ``side`` has
        left after this gateway's own trades on that same quote; records what it takes."""
        key = (q.instrument, q.venue, side)
        used = self._depth_used.get(key)
        before = used[1] if used is not None and used[0] == q else 0
        size = q.ask_size if side == "buy" else q.bid_size
        qty = max(0, min(want, _scaled(size, self.base_decimals - q.size_decimals, up=False) - before))
        if qty:
            self._depth_used[key] = (q, before + qty)
        return qty

    def _fill(self, intent: ev.OrderIntended, qty: int, px: int, price_decimals: int, fee_bps: int, *, final: bool,
              ts: int | None = None, cause: int | None = None) -> ev.OrderFilled:
        """``qty`` base units at ``px`` (``10**-price_decimals`` quote units): notional rounded in the
        venue's favour, fee rounded up."""
        notional = _scaled(qty * px, self.quote_decimals - self.base_decimals - price_decimals,
                           up=intent.side == "buy")
        fee = -(-notional * fee_bps // 10_000)
        return ev.OrderFilled(ts=intent.ts if ts is None else ts, source=PAPER,
                              cause=intent.seq if cause is None else cause, intent=intent.seq, venue=intent.venue,
                              amount=qty, notional=notional, fee=fee, fee_asset=intent.instrument.split("-")[-1],
                              final=final)


def _crosses(px: int, px_decimals: int, limit: int, limit_decimals: int, buying: bool) -> bool:
    """Whether a book price crosses a limit (a buy's ask at or below it, a sell's bid at or above
    it), each at its own precision: compared exactly, cross-multiplied."""
    a, b = px * 10**limit_decimals, limit * 10**px_decimals
    return a <= b if buying else a >= b


def _price(n: int, decimals: int) -> str:
    return str(Decimal(n).scaleb(-decimals, context=CTX))


def _scaled(n: int, places: int, *, up: bool) -> int:
    """``n * 10**places`` as an integer, rounded up or down when ``places`` is negative."""
    if places >= 0:
        return n * 10**places
    d = 10**-places
    return -(-n // d) if up else n // d
