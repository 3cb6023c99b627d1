"""The live EVM adapter on a local anvil: how soon a mined block's events are emitted over the
WebSocket (receipt in hand -> the block's BlockProduced emitted, wall clock), and how fast a gap is
backfilled (``eth_getLogs`` by ranges + a header per block) over HTTP.

Run: ``PYTHONPATH=. python benchmarks/bench_live_evm.py [--swaps 40] [--gap 2000]``; prints figures."""
from __future__ import annotations

import argparse
import statistics
import time

from tapedeck.domain import events as ev
from tapedeck.live.base import Backoff
from tapedeck.live.evm_source import EvmSource
from tests.test_live_evm import Live


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--swaps", type=int, default=40)
    ap.add_argument("--gap", type=int, default=2000)
    args = ap.parse_args()
    from tapedeck.domain.uniswap_v2 import get_amount_out
    from tapedeck.sim.chain import uniswap_v2 as u2
    from tapedeck.sim.chain.anvil import AnvilChain

    with AnvilChain() as chain:
        w3 = chain.w3
        m = u2.deploy_v2_pair(w3)
        u2.add_liquidity(m, 10**21, 2 * 10**21)
        src = EvmSource("bench", chain="anvil", ws_url=chain.ws_url, v2_pairs=[m.pair.address],
                        backoff=Backoff(seed=1))
        live = Live(src).start()
        live.wait("connected", lambda: src.connected)
        lags = []
        for _ in range(args.swaps):
            r0, r1 = m.reserves()
            u2.swap_exact_in(m, 10**17, True, get_amount_out(10**17, r0, r1))
            mined, number = time.time_ns(), w3.eth.block_number
            live.wait_block(number)
            produced = next(e for e in reversed(live.events) if type(e) is ev.BlockProduced and e.number == number)
            lags.append((produced.ts - mined) / 1e6)
        live.stop()
        lags.sort()
        print(f"websocket: receipt -> BlockProduced emitted, {len(lags)} swap blocks: p50 {statistics.median(lags):.1f} ms, "
              f"max {lags[-1]:.1f} ms (negative: emitted before web3's receipt poll returned)")

        first = w3.eth.block_number + 1
        chain.rpc("anvil_mine", [hex(args.gap)])
        head = w3.eth.block_number
        src = EvmSource("bench-gap", chain="anvil", http_url=chain.url, v2_pairs=[m.pair.address], start_block=first,
                        snapshot=False, poll_interval_s=0.05, backoff=Backoff(seed=1))
        t = time.perf_counter()
        live = Live(src).start()
        live.wait_block(head, timeout=600)
        took = time.perf_counter() - t
        live.stop()
        print(f"backfill over HTTP: {head - first + 1} blocks in {took:.1f} s ({(head - first + 1) / took:.0f} blocks/s, "
              f"{src.stats['blocks']} applied)")


if __name__ == "__main__":
    main()
