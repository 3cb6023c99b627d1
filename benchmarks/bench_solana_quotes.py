"""Cost of the Solana pools' exact quotes and decoders (``domain/raydium_amm.py``, ``domain/whirlpool.py``,
``adapters/solana_accounts.py``).

Prints the median CPU time per call over ``--repeat`` runs of:

* a Raydium AMM v4 ``quote`` (constant product with the program's ceil fee);
* a Whirlpool ``quote`` that stays inside the current tick range, and ones that cross 1, 10 and
  50 initialized ticks (a pool with a tick every spacing across 3 arrays each way), from which the
  cost per tick crossed;
* decoding one Whirlpool account (653 bytes), one fixed tick array (9988 bytes) and one
  ``accountNotification`` frame through solders into its event.

Usage: python benchmarks/bench_solana_quotes.py [--repeat 7] [--number 2000]
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

from tapedeck.adapters import solana_accounts as sa
from tapedeck.domain import raydium_amm as ray
from tapedeck.domain import whirlpool as w


def per_call(fn: Callable[[], object], number: int, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(number):
            fn()
        runs.append((time.process_time() - t0) / number)
    return statistics.median(runs)


def dense_pool(spacing: int = 8, net: int = 10**9) -> w.WhirlpoolPool:
    """A tick every spacing across 3 arrays below and 3 above tick 0, each adding ``net`` going up."""
    span = w.TICK_ARRAY_SIZE * spacing
    arrays = {}
    for start in range(-3 * span, 3 * span, span):
        arrays[start] = w.TickArray(start, {o: w.Tick(True, net) for o in range(w.TICK_ARRAY_SIZE)})
    tick = 3  # inside [0, 8): liquidity is every position below tick 0's ticks plus tick 0's
    liquidity = net * (3 * w.TICK_ARRAY_SIZE + 1)
    return w.WhirlpoolPool(sqrt_price=w.sqrt_price_from_tick_index(tick), tick_current_index=tick, liquidity=liquidity,
                           tick_spacing=spacing, fee_rate=3000, protocol_fee_rate=300, arrays=arrays)


def amount_crossing(pool: w.WhirlpoolPool, ticks: int) -> int:
    """The smallest power-of-two-ish input (a to b) whose swap crosses at least ``ticks`` initialized ticks."""
    amount = 1
    while True:
        r = pool.swap(amount, True)
        crossed = (pool.tick_current_index - r.next_tick_index + pool.tick_spacing - 1) // pool.tick_spacing
        if crossed >= ticks:
            return amount
        amount = amount * 5 // 4 + 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--number", type=int, default=2000)
    args = ap.parse_args()
    n, rep = args.number, args.repeat

    rp = ray.RaydiumPool(ray.SWAP_ONLY, 5000 * 10**9, 750_000 * 10**6, 1234, 5678, 25, 10_000)
    print(f"raydium quote: {per_call(lambda: rp.quote(10**9, True), n, rep) * 1e6:.2f} us")

    pool = dense_pool()
    inside = per_call(lambda: pool.quote(1000, True), n, rep)
    print(f"whirlpool quote inside the tick range: {inside * 1e6:.2f} us")
    costs = {}
    for k in (1, 10, 50):
        amount = amount_crossing(pool, k)
        costs[k] = per_call(lambda: pool.quote(amount, True), max(n // k, 20), rep)
        print(f"whirlpool quote crossing {k} ticks: {costs[k] * 1e6:.1f} us")
    print(f"whirlpool cost per tick crossed (50 vs 1): {(costs[50] - costs[1]) / 49 * 1e6:.2f} us")

    whirl = sa.encode_whirlpool({name: (1 if kind in ("u8", "u16", "i32", "u64", "u128") else
                                        str(sa.Pubkey(bytes([3] * 32))) if kind == "pubkey" else bytes(384))
                                 for name, kind, _ in sa.WHIRLPOOL_LAYOUT.fields if name != "discriminator"})
    key = str(sa.Pubkey(bytes([9] * 32)))
    print(f"decode Whirlpool account -> event: "
          f"{per_call(lambda: sa.account_event(key, sa.WHIRLPOOL_PROGRAM, 1, whirl, ts=0), n, rep) * 1e6:.1f} us")
    ta = sa.encode_fixed_tick_array(sa.TickArrayAccount(0, key, tuple(
        sa.TickRecord(o, 10**9, 10**9) for o in range(0, 88, 4))))
    print(f"decode fixed tick array (22 initialized ticks) -> event: "
          f"{per_call(lambda: sa.account_event(key, sa.WHIRLPOOL_PROGRAM, 1, ta, ts=0), max(n // 10, 20), rep) * 1e6:.0f} us")
    frame = sa.account_notification(1, 5, sa.WHIRLPOOL_PROGRAM, whirl)
    print(f"accountNotification frame (Whirlpool) -> event: "
          f"{per_call(lambda: sa.parse_frame(frame, ts=0, subscriptions={1: key}), n, rep) * 1e6:.1f} us")


if __name__ == "__main__":
    main()
