"""The best size of a round trip through two constant-product pools, in closed form, exactly.

Why: ``cross_pool_arb`` used to ternary-search ~170 exact swaps per priced event. Inside one
tick-spacing interval a V3 pool is a constant-product pool on virtual reserves
(``x_v = L * 2^96 / sqrtP`` of token0, ``y_v = L * sqrtP / 2^96`` of token1), so both round trips
(V2 then V3, V3 then V2) are two constant-product legs, whose composition is again one
constant-product pool with the first leg's fee:

    out(x) = fa*fb*Ao*Bo*x / (Ai*Bi + fa*x*(Bi + fb*Ao))
           = fa*E1*x / (E0 + fa*x),   E0 = Ai*Bi / (Bi + fb*Ao),   E1 = fb*Ao*Bo / (Bi + fb*Ao)

(``A``: the first pool, ``B``: the second, ``i``/``o``: the reserve of the token going in/out,
``f``: the fraction kept after the fee). The profit ``out(x) - x`` is concave, with its maximum at

    x* = (sqrt(fa*E0*E1) - E0) / fa,   M = (sqrt(E1) - sqrt(E0/fa))^2,

positive exactly when ``fa*fb*Ao*Bo > Ai*Bi`` (the marginal test). Every rounding of the contracts
(V2 ``getAmountOut``'s floor; V3's fee floor, its price rounding and its output floor) is against
the trader, so at every size this continuous profit is an upper bound of the exact integer profit:
``floor`` of the bounds below bound the integer optimum, and ``level_interval`` says where an exact
profit of at least a given level can be. All of it is exact integer arithmetic (``math.isqrt``,
square roots rounded the safe way), never floats.
"""
from __future__ import annotations

from math import isqrt
from typing import Callable

Q96 = 1 << 96


def memoized(profit: Callable[[int], int | None]) -> Callable[[int], int | None]:
    """``profit`` (a pure function of the size) with every value kept: searches that come back to
    a size do not price it again."""
    seen: dict[int, int | None] = {}

    def at(x: int) -> int | None:
        p = seen.get(x, seen)
        if p is seen:
            p = seen[x] = profit(x)
        return p  # type: ignore[return-value]
    return at


class RoundTrip:
    """The continuous round trip as ``out(x) = n*x / (p + r*x)`` with positive integers ``n, p, r``
    (the composition above with all denominators multiplied out: one common factor scales all three
    and changes nothing). It pays at the margin iff ``n > p``; ``x* = (sqrt(n*p) - p) / r`` and
    ``M = (sqrt(n*p) - p)^2 / (r*p)``."""

    __slots__ = ("n", "p", "r", "_np", "_root", "_loose", "_floor")

    def __init__(self, n: int, p: int, r: int):
        if n <= 0 or p <= 0 or r <= 0:
            raise ValueError(f"a round trip needs n, p, r > 0, got {n}, {p}, {r}")
        self.n, self.p, self.r = n, p, r
        self._np = self._root = 0  # n*p and isqrt(n*p), computed once when first needed
        self._loose: RoundTrip | None = None  # relaxed(), kept
        self._floor: tuple[int, ...] | None = None  # floored_level_intervals' constants, kept

    def _sqrt_np(self) -> tuple[int, int]:
        """``(n*p, isqrt(n*p))``, kept: ``optimum`` and ``max_profit_bound`` both need them (on two
        V3 legs ``n*p`` has ~1,150 bits: ~3.4 us a square root)."""
        if not self._np:
            self._np = self.n * self.p
            self._root = isqrt(self._np)
        return self._np, self._root

    def relaxed(self, bits: int = 192) -> "RoundTrip":
        """A round trip whose ``out`` is at least this one's at every size, on integers of about
        ``bits`` bits: ``n`` rounded up, ``p`` and ``r`` rounded down after dropping the same low
        bits of all three (``ceil(n/2^s)*x / (floor(p/2^s) + floor(r/2^s)*x) >= n*x/(p + r*x)``).
        Its level intervals are supersets of this one's (wider by a size or so at real scales):
        for searches that may look at more sizes than needed, never fewer (``_top_down``)."""
        if bits == 192 and self._loose is not None:
            return self._loose
        shift = min(self.p.bit_length(), self.r.bit_length()) - bits
        loose = self if shift <= 0 else RoundTrip(-(-self.n >> shift), self.p >> shift, self.r >> shift)
        if bits == 192:
            self._loose = loose
        return loose

    @classmethod
    def v2_then_v3(cls, r0: int, r1: int, v2_keep_bps: int, sqrt_price_x96: int, liquidity: int,
                   v3_keep_pips: int) -> RoundTrip:
        """token0 -> token1 on V2 (reserves ``r0, r1``), token1 -> token0 on V3 (virtual reserves
        ``y_v = L*sqrtP/2^96`` in, ``x_v = L*2^96/sqrtP`` out); times ``10^4 * 10^6 * 2^96 * sqrtP``:
        ``n = ka*kb*r1*L*2^192``, ``p = r0*L*sqrtP^2*10^10``, ``r = ka*sqrtP*(10^6*L*sqrtP + kb*r1*2^96)``."""
        ka, kb, sp, lq = v2_keep_bps, v3_keep_pips, sqrt_price_x96, liquidity
        return cls(ka * kb * r1 * lq * Q96 * Q96, r0 * lq * sp * sp * 10**10, ka * sp * (10**6 * lq * sp + kb * r1 * Q96))

    @classmethod
    def v3_then_v2(cls, r0: int, r1: int, v2_keep_bps: int, sqrt_price_x96: int, liquidity: int,
                   v3_keep_pips: int) -> RoundTrip:
        """token0 -> token1 on V3 (``x_v`` in, ``y_v`` out), token1 -> token0 on V2 (``r1`` in, ``r0``
        out); times ``10^6 * 10^4 * 2^96 * sqrtP``: ``n = kb*ka*L*sqrtP^2*r0``,
        ``p = L*2^192*r1*10^10``, ``r = kb*sqrtP*(10^4*2^96*r1 + ka*L*sqrtP)``."""
        ka, kb, sp, lq = v2_keep_bps, v3_keep_pips, sqrt_price_x96, liquidity
        return cls(kb * ka * lq * sp * sp * r0, lq * Q96 * Q96 * r1 * 10**10, kb * sp * (10**4 * Q96 * r1 + ka * lq * sp))

    def pays(self) -> bool:
        """The first unit pays (the marginal output ``n/p`` exceeds 1)."""
        return self.n > self.p

    def out(self, x: int) -> tuple[int, int]:
        """``out(x)`` as an exact ratio ``(numerator, denominator)``."""
        return self.n * x, self.p + self.r * x

    def optimum(self) -> int:
        """``x*`` rounded down (0 when nothing pays): the candidate size."""
        n, p, r = self.n, self.p, self.r
        if n <= p:
            return 0
        if self._np:
            return (self._root - p) // r
        loose = self._loose
        if loose is not None and loose is not self and loose._np:
            # From the relaxed trip's optimum (its square root is on ~400 bits, and kept), the exact
            # one is found by its defining inequalities instead of a square root of ~1,150 bits:
            # c = floor((isqrt(n*p) - p)/r)  <=>  (p + r*c)^2 <= n*p < (p + r*(c + 1))^2  (c >= 0,
            # and c = 0 satisfies the left one: n > p). A few steps at most; else the square root.
            np_ = n * p
            c = max(loose.optimum(), 0)
            t = p + r * c
            for _ in range(4):
                if t * t > np_:
                    c -= 1
                    t -= r
                    continue
                u = t + r
                if u * u <= np_:
                    c += 1
                    t = u
                    continue
                return c
        return (self._sqrt_np()[1] - p) // r

    def below(self, need: int, x_max: int) -> bool:
        """Cheaply (no square root) whether every profit on ``[0, x_max]`` is provably below
        ``need``: ``out(x) - x <= (n - p)*x/p`` (the marginal rate is the largest) and
        ``<= (n - p)^2 / (4*p*r)`` (as ``sqrt(n) - sqrt(p) <= (n - p) / (2*sqrt(p))``), both upper
        bounds of ``M``. False says nothing (``max_profit_bound`` decides)."""
        n, p = self.n, self.p
        d = n - p
        if d <= 0 or x_max <= 0:
            return True
        return d * x_max < need * p or d * d < need * 4 * p * self.r

    def max_profit_bound(self, x_max: int) -> int:
        """An integer ``U >= out(x) - x`` for every real ``x`` in ``[0, x_max]`` (so no exact integer
        profit there exceeds it): ``floor(M)`` computed with ``sqrt(n*p)`` rounded up, or
        ``floor(out(x_max) - x_max)`` when the optimum lies beyond ``x_max`` (the profit rises up to
        it). 0 when nothing pays."""
        n, p, r = self.n, self.p, self.r
        if n <= p or x_max <= 0:
            return 0
        d = p + r * x_max
        np_, root = self._sqrt_np()
        if np_ > d * d:  # sqrt(n*p) > p + r*x_max: x* > x_max
            return (n * x_max - x_max * d) // d
        s = root + 1  # >= sqrt(n*p); M grows with it
        return (s - p) ** 2 // (r * p)

    def level_interval(self, level: int, lo: int, hi: int) -> tuple[int, int] | None:
        """The integers of ``[lo, hi]`` where ``out(x) - x >= level`` may hold (``level >= 1``), as
        ``(first, last)``, a superset by at most one integer at each end (``None``: none):
        ``r*x^2 - b*x + level*p <= 0`` with ``b = n - p - r*level``."""
        n, p, r = self.n, self.p, self.r
        b = n - p - r * level
        disc = b * b - 4 * r * level * p
        if b <= 0 or disc < 0:
            return None
        root = isqrt(disc) + 1  # >= sqrt(disc)
        first = max(lo, (b - root) // (2 * r))
        last = min(hi, -((-(b + root)) // (2 * r)))
        return (first, last) if first <= last else None

    def level_interval_exact(self, level: int, lo: int, hi: int) -> tuple[int, int] | None:
        """``level_interval`` without the square root's slack: exactly the integers of ``[lo, hi]``
        where ``out(x) - x >= level`` (each end checked by ``r*x^2 - b*x + level*p <= 0``). For
        searches that price what they are given (``level_interval`` itself keeps its superset: the
        width decides how a search goes on, which must not move)."""
        span = self.level_interval(level, lo, hi)
        if span is None:
            return None
        first, last = span
        r, lp = self.r, level * self.p
        b = self.n - self.p - r * level
        while first <= last and (r * first - b) * first + lp > 0:
            first += 1
        while last >= first and (r * last - b) * last + lp > 0:
            last -= 1
        return (first, last) if first <= last else None

    def floored_level_intervals(self, level: int, lo: int, hi: int, keep: int,
                                keep_den: int) -> list[tuple[int, int]]:
        """``level_interval`` for a round trip whose first leg prices only ``m = floor(x*keep/keep_den)``
        of its input ``x`` (a V3 pool's fee floor: ``keep = 1e6 - fee``, ``keep_den = 1e6``): the
        exact profit at ``x`` is at most ``out(x_eff) - x`` with ``x_eff = m*keep_den/keep <= x`` (the
        exact first leg gives at most the continuous curve at what it kept; the second leg's
        output only grows with its input), a tighter bound than ``out(x) - x``. The integers of
        ``[lo, hi]`` where that bound reaches ``level`` (``level >= 1``), exactly, as ascending
        disjoint ``(first, last)`` intervals (the square root's rounding widens each by a size or
        so; each end is then checked by the quadratic itself).

        On the sizes where ``d = x - m = ceil(x*(keep_den - keep)/keep_den)`` is one value ``c`` (runs
        of ``keep_den/(keep_den - keep)`` sizes: 2,000 for a 0.05% pool) ``u = x - c = m`` and the
        condition ``n*u*D/(p*k + r*u*D) >= level + c + u`` (``k = keep``, ``D = keep_den``) is
        ``r*D*u^2 - B*u + (level + c)*p*k <= 0`` with ``B = n*D - p*k - r*D*(level + c)``: one
        quadratic per run."""
        n, p, r = self.n, self.p, self.r
        k, big_d = keep, keep_den
        fee = big_d - k
        out: list[tuple[int, int]] = []
        if fee <= 0 or k <= 0:  # nothing floored: the plain bound
            span = self.level_interval(level, lo, hi)
            return [span] if span is not None else []
        got = self._floor
        if got is not None and got[0] == k and got[1] == big_d:
            _, _, a2, a4, base, pk, pk4 = got
        else:  # (what does not depend on the level or the run, kept per fee: the search asks level by level)
            a2, pk = r * big_d, p * k
            a4, base, pk4 = 2 * a2, n * big_d - pk, 4 * a2 * pk
            self._floor = (k, big_d, a2, a4, base, pk, pk4)
        c = -(-lo * fee // big_d)  # d at lo
        while True:
            start = (c - 1) * big_d // fee + 1  # the run of sizes whose d is c
            if start < lo:
                start = lo
            if start > hi:
                break
            end = c * big_d // fee
            if end > hi:
                end = hi
            if start <= end:
                lc = level + c
                b = base - a2 * lc
                if b > 0:
                    disc = b * b - pk4 * lc
                    if disc >= 0:
                        root = isqrt(disc) + 1
                        first = (b - root) // a4 + c
                        last = -((-(b + root)) // a4) + c
                        if first < start:
                            first = start
                        if last > end:
                            last = end
                        # the roots' rounding leaves a size or so at each end whose bound falls
                        # short of the level: those are dropped by the quadratic itself (exact,
                        # q(u) = a2*u^2 - b*u + (level + c)*p*k <= 0 iff the bound reaches it), so
                        # the search prices none of them
                        kc = lc * pk
                        u = first - c
                        while first <= last and (a2 * u - b) * u + kc > 0:
                            first += 1
                            u += 1
                        u = last - c
                        while last >= first and (a2 * u - b) * u + kc > 0:
                            last -= 1
                            u -= 1
                        if first <= last:
                            out.append((first, last))
            c += 1
        return out
