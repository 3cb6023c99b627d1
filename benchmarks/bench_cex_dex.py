"""What cex_dex_arb costs per book quote: the quiet path (no direction pays at one lot) and a
dislocation (sized exactly over up to 200,000 lots), against a V2 pair and a V3 pool, priced anew
and repeated on unchanged state (memoised). Prints microseconds per event; nothing is asserted.

    python benchmarks/bench_cex_dex.py
"""
from __future__ import annotations

import time
from decimal import Decimal

from tapedeck.domain import events as ev
from tapedeck.domain.state import MarketState
from tapedeck.domain.strategies.cex_dex_arb import CexDexArb
from tapedeck.domain.uniswap_v3 import get_tick_at_sqrt_ratio

USDC, WETH = "0x" + "a" * 40, "0x" + "b" * 40
T0 = 1_709_251_200 * 10**9


def state_with(kind: str) -> tuple[MarketState, dict]:
    state = MarketState()
    if kind == "v2":
        state.on_v2(ev.V2ReservesSynced(ts=T0, pool="p", block=1, reserve0=40_000_000 * 10**6,
                                        reserve1=40_000_000 * 10**18 // 3000))
        return state, {"pool": "p", "kind": "v2", "token0": USDC, "token1": WETH, "fee": 30}
    sp = int((Decimal(10**12) / 3000).sqrt() * (1 << 96))
    state.on_v3(ev.V3Swapped(ts=T0, pool="p", block=1, tx="", log_index=0, sender="", recipient="", amount0=0,
                             amount1=0, sqrt_price_x96=sp, liquidity=2 * 10**22, tick=get_tick_at_sqrt_ratio(sp)))
    return state, {"pool": "p", "kind": "v3", "token0": USDC, "token1": WETH, "fee": 500, "tick_spacing": 10}


def bench(kind: str, gap_bps: int, n: int, cold: bool) -> tuple[float, int]:
    state, pool = state_with(kind)
    state.on_block(ev.BlockProduced(ts=T0, chain="ethereum", number=2, base_fee=10**10, gas_used=0,
                                    gas_limit=30_000_000, next_base_fee=10**10))
    s = CexDexArb("cd", pools=[pool], base_token=WETH, quote_token=USDC, act=False, max_notional=10**15)
    mid = 300_000 * (10_000 + gap_bps) // 10_000
    q = ev.QuoteUpdated(ts=T0, venue="binance", instrument="ETH-USDC", bid=mid - 1, bid_size=200_000, ask=mid + 1,
                        ask_size=200_000, price_decimals=2, size_decimals=4, venue_ts=T0)
    state.on_quote(q)
    found = s.on_event(q, state)
    t = time.perf_counter()
    for _ in range(n):
        if cold:
            s._memo.clear()  # price it again (a new book or pool state each time)
        s.on_event(q, state)
    return (time.perf_counter() - t) / n * 1e6, len(found)


if __name__ == "__main__":
    for kind in ("v2", "v3"):
        for gap, label, n in ((0, "quiet", 20_000), (150, "dislocated +1.5%", 200), (-150, "dislocated -1.5%", 200)):
            cold, found = bench(kind, gap, max(n // 10, 5), True)
            warm, _ = bench(kind, gap, n, False)
            print(f"{kind} {label:>17}: {cold:9.1f} us per quote priced, {warm:7.1f} us when book, pool and gas "
                  f"are unchanged ({'opportunity' if found else 'nothing'})")
