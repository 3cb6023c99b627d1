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
* **Book** (side ``buy``/``sell`` on a venue with a quote for the instrument): an IOC at the top of
  book, the quoted size as depth (``base_decimals``), notional rounded in the venue's favour
  (``quote_decimals``), a taker fee of ``taker_fee_bps`` in the quote asset. Less depth than asked:
  a final fill of what there was.

* **Cancel** (side ``cancel``, ``target`` the order's client id): every paper order is filled or
  refused at once, so nothing ever rests: a cancel is ``OrderFailed`` "cancel: no resting order <id>".

A recorded market cannot move for a paper trade, so the gateway remembers its own impact: a pool
(or a quote's depth) it traded is seen as it left it until the recording updates that pool (or that
quote). A re-detection of the same unmoved gap is then filled against the closed gap, not booked as
the same profit again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from tapedeck.domain import events as ev
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
                 base_decimals: int = 8, quote_decimals: int = 6, v2_swap_gas: int = V2_SWAP_GAS,
                 v3_swap_gas: int = V3_SWAP_GAS, report: Report | None = None):
        if not 0 <= int(taker_fee_bps) < 10_000:
            raise ValueError(f"taker_fee_bps must be in [0, 10000), got {taker_fee_bps}")
        self.state = state
        self.pools = {k.lower(): v for k, v in (pools or {}).items()}
        self.taker_fee_bps = int(taker_fee_bps)
        self.base_decimals = int(base_decimals)
        self.quote_decimals = int(quote_decimals)
        self.v2_swap_gas, self.v3_swap_gas = int(v2_swap_gas), int(v3_swap_gas)
        self.report = report
        self._impact: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}  # pool -> (recorded, after own trade)
        self._depth_used: dict[tuple[str, str, str], tuple[ev.QuoteUpdated, int]] = {}  # (instr, venue, side)

    @classmethod
    def from_config(cls, state: Any, config: Mapping[str, Any], report: Report | None = None) -> PaperGateway:
        """Built from a run config's ``[paper]`` table (``taker_fee_bps``, ``base_decimals``,
        ``quote_decimals``, ``v2_swap_gas``, ``v3_swap_gas``, ``pools.<id>.fee`` / ``tick_spacing``).
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
            known = {"taker_fee_bps", "base_decimals", "quote_decimals", "v2_swap_gas", "v3_swap_gas"}
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
                raise PaperRefusal(f"cancel: no resting order {intent.target}")  # paper orders never rest
            if intent.side == "arb":
                fill = self._arb(intent)
            elif intent.side in ("buy", "sell") and intent.venue in self.state.quotes.get(intent.instrument, {}):
                fill = self._book(intent)
            else:
                raise PaperRefusal(f"paper fills arbitrage intents (side 'arb') and buy/sell on a quoted book; "
                                   f"nothing to fill side {intent.side!r} {intent.instrument!r} on {intent.venue!r}")
        except PaperRefusal as e:
            self.report(ev.OrderFailed(ts=intent.ts, source=PAPER, cause=intent.seq, intent=intent.seq,
                                       venue=intent.venue, reason=str(e)))
            return
        self.report(ev.OrderAcknowledged(ts=intent.ts, source=PAPER, cause=intent.seq, intent=intent.seq,
                                         venue=intent.venue, order_id=f"paper-{intent.seq}"))
        self.report(fill)

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

    def _book(self, intent: ev.OrderIntended) -> ev.OrderFilled:
        q = self.state.quotes[intent.instrument][intent.venue]
        buying = intent.side == "buy"
        px, size = (q.ask, q.ask_size) if buying else (q.bid, q.bid_size)
        if not (px > 0 and size >= 0):
            raise PaperRefusal(f"{intent.venue} {intent.instrument}: unusable quote {q.price(px)} x {q.size(size)}")
        key = (intent.instrument, intent.venue, intent.side)
        used = self._depth_used.get(key)
        depth = _scaled(size, self.base_decimals - q.size_decimals, up=False)
        if used is not None and used[0] == q:
            depth -= used[1]
        qty = min(intent.amount, depth)
        if qty <= 0:
            raise PaperRefusal(f"{intent.venue} {intent.instrument}: no depth left at {q.price(px)} for {intent.amount}")
        self._depth_used[key] = (q, (used[1] if used is not None and used[0] == q else 0) + qty)
        # qty base units x px (10**-pd quote) -> quote base units: exact integers, the venue's rounding
        notional = _scaled(qty * px, self.quote_decimals - self.base_decimals - q.price_decimals, up=buying)
        fee = -(-notional * self.taker_fee_bps // 10_000)  # rounded up: the venue's favour
        return ev.OrderFilled(ts=intent.ts, source=PAPER, cause=intent.seq, intent=intent.seq, venue=intent.venue,
                              amount=qty, notional=notional, fee=fee, fee_asset=intent.instrument.split("-")[-1],
                              final=True)


def _scaled(n: int, places: int, *, up: bool) -> int:
    """``n * 10**places`` as an integer, rounded up or down when ``places`` is negative."""
    if places >= 0:
        return n * 10**places
    d = 10**-places
    return -(-n // d) if up else n // d
