"""Solana pools as venues of the arbitrage finder (``domain.arb_finder.VenueQuote``).

Why a module of its own: the finder asks every venue the same few questions (an exact quote, the
price at size zero, a constant-product view where there is one, freshness, a state version), and
the answers for Solana pools come from their own exact math: ``domain.raydium_amm`` (the program's
ceil fee on the input, then constant product) and ``domain.whirlpool`` (Orca's swap loop across
the known tick arrays). Token identity is the mint address (base58 text) on both sides of a pair,
so a Raydium pool and a Whirlpool of the same two mints are partners. Their legs settle on chain
``solana`` with no gas counted here (a Solana fee is a fixed few thousand lamports per signature,
not priced by the finder's EVM gas model; say so where it matters).
"""
from __future__ import annotations

from typing import Any, Callable

from tapedeck.domain.arb_finder import Curve
from tapedeck.domain.state import MarketState

Q128 = 1 << 128
U64 = (1 << 64) - 1  # SPL token amounts are u64: no input is larger
FEE_RATE_DEN = 1_000_000  # Whirlpool fee_rate: hundredths of a basis point


class RaydiumVenue:
    """A Raydium AMM v4 pool (``state.raydium``): token0 its coin mint, token1 its pc mint."""

    def __init__(self, pool: str, coin_mint: str, pc_mint: str, label: str = "") -> None:
        self.id, self.venue, self.chain = pool, "raydium-amm-v4", "solana"
        self.token0, self.token1 = coin_mint, pc_mint
        self.gas_units = 0
        self.label = label or pool

    def _pool(self, state: MarketState) -> Any:
        return state.raydium.pool(self.id)

    def _reserves(self, state: MarketState, token_in: str) -> tuple[int, int, Any] | None:
        p = self._pool(state)
        if p is None:
            return None
        coin, pc = p.reserves()
        if coin <= 0 or pc <= 0:
            return None
        return (coin, pc, p) if token_in == self.token0 else (pc, coin, p)

    def quote(self, state: MarketState, token_in: str, amount_in: int) -> int | None:
        p = self._pool(state)
        return None if p is None else p.quote(amount_in, token_in == self.token0)

    def curve(self, state: MarketState, token_in: str) -> Curve | None:
        r = self._reserves(state, token_in)
        if r is None:
            return None
        ri, ro, p = r
        num, den = p.swap_fee_numerator, p.swap_fee_denominator
        # the program takes ceil(x*num/den) from the input: out(x) <= the curve's with keep = den - num
        return Curve(ri, ro, 1, den - num, den, U64)

    def mid(self, state: MarketState, token_in: str) -> tuple[int, int] | None:
        r = self._reserves(state, token_in)
        return None if r is None else (r[1], r[0])

    def margin(self, state: MarketState, token_in: str) -> tuple[int, int] | None:
        r = self._reserves(state, token_in)
        if r is None:
            return None
        ri, ro, p = r
        return ro * (p.swap_fee_denominator - p.swap_fee_numerator), ri * p.swap_fee_denominator

    def max_in(self, state: MarketState, token_in: str) -> int:
        return 0 if self._reserves(state, token_in) is None else U64

    def sizes(self, state: MarketState, token_in: str) -> tuple[Callable[[int], int], int] | None:
        return None  # any integer input

    def fresh(self, state: MarketState, now_ts: int, max_age_ns: int) -> bool:
        return state.fresh(self.id, now_ts, max_age_ns)

    def version(self, state: MarketState) -> Any:
        p = self._pool(state)
        return None if p is None else (p.reserves(), p.slot)


class WhirlpoolVenue:
    """An Orca Whirlpool (``state.whirlpools``): token0 its mint A, token1 its mint B. No
    constant-product view (its liquidity changes at each initialized tick), so the finder sizes it
    by its bounded exact search; a quote that would need a tick array not known is None."""

    def __init__(self, pool: str, mint_a: str, mint_b: str, label: str = "") -> None:
        self.id, self.venue, self.chain = pool, "orca-whirlpool", "solana"
        self.token0, self.token1 = mint_a, mint_b
        self.gas_units = 0
        self.label = label or pool

    def _pool(self, state: MarketState) -> Any:
        return state.whirlpools.pool(self.id)

    def quote(self, state: MarketState, token_in: str, amount_in: int) -> int | None:
        p = self._pool(state)
        return None if p is None else p.quote(amount_in, token_in == self.token0)

    def curve(self, state: MarketState, token_in: str) -> Curve | None:
        return None

    def mid(self, state: MarketState, token_in: str) -> tuple[int, int] | None:
        """B per A is ``sqrt_price**2 / 2**128`` (Q64.64)."""
        p = self._pool(state)
        if p is None or not p.sqrt_price or not p.liquidity:
            return None
        sp2 = p.sqrt_price * p.sqrt_price
        return (sp2, Q128) if token_in == self.token0 else (Q128, sp2)

    def margin(self, state: MarketState, token_in: str) -> tuple[int, int] | None:
        m = self.mid(state, token_in)
        if m is None:
            return None
        fee = self._pool(state).fee_rate
        return m[0] * (FEE_RATE_DEN - fee), m[1] * FEE_RATE_DEN

    def max_in(self, state: MarketState, token_in: str) -> int:
        return 0 if self.mid(state, token_in) is None else U64

    def sizes(self, state: MarketState, token_in: str) -> tuple[Callable[[int], int], int] | None:
        return None

    def fresh(self, state: MarketState, now_ts: int, max_age_ns: int) -> bool:
        return state.fresh(self.id, now_ts, max_age_ns)

    def version(self, state: MarketState) -> Any:
        p = self._pool(state)
        return None if p is None else (p.sqrt_price, p.liquidity, p.tick_current_index, p.slot)
