"""The chain backends measured (issues #3, #12): py-evm in process (``PyEvmChain``), an anvil node
(``AnvilChain``) and revm in process (``RevmChain``), through the same calls the sim makes.

Per backend:
- tx/s for ETH transfers, a Uniswap V2 swap on the real pair (pay + ``swap``, the two
  transactions of ``swap_exact_in``) and Aave v3 ``Pool.supply`` on the real market, each
  (a) automined, one transaction per block: ``eth_sendTransaction`` + wait for the receipt, and
  (b) batched, many per block: ``chain.mine_block(txs, ts)`` (the sim's block path: send all, mine
  once, read every receipt). Transactions carry explicit nonces, gas and fees (no estimation) and
  their calldata is encoded before the clock starts: what is timed is the backend.
- blocks/s: empty blocks and blocks of 10 transfers, through ``mine_block``; then automined
  transfers again once the chain holds 1,000 more blocks.
- scenario start: chain start (anvil: the node process until it answers), a full Aave v3 market
  deploy (``deploy_aave_v3``) vs restoring a snapshot taken right after it (anvil: revert plus the
  new snapshot a further restore needs).
- ``eth-crash`` (seed 7, default sim config): simulated seconds per wall second of the whole run,
  set-up included, per CPU second of this process too (the box is shared: CPU time moves less with
  the load; anvil's node CPU is not counted), and the chain transactions/blocks it executed; its
  set-up (chain, market, positions, pools: until the world's clock starts) apart. On revm it runs
  twice: with an empty world cache (the market deployed) and again (restored from the cache,
  ``sim.chain.world_cache``); the other backends always deploy.
- paper simulation on anvil (``--no-paper`` to skip): one ``Pool.liquidationCall`` simulated by the
  live EVM gateway with ``simulate = "eth_call"`` (the node's ``eth_simulateV1``) and ``"revm-fork"``
  (a revm fork of the node's state at the head), each on a new head and again at the same head.

Each group of figures runs on a fresh chain. Each repetition runs every backend in turn; the
table gives the median and min-max.
The load average is printed before and after.
Usage: python benchmarks/bench_chain.py [--repeat N] [--only pyevm|anvil|revm] [--json] [--no-scenario] [--no-paper]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tapedeck.adapters.config_files import load_config  # noqa: E402
from tapedeck.domain.uniswap_v2 import get_amount_out  # noqa: E402
from tapedeck.sim.chain.aave_v3 import deploy_aave_v3  # noqa: E402
from tapedeck.sim.chain.artifacts import ArtifactMissing  # noqa: E402
from tapedeck.sim.chain.pyevm import ChainTx, call_data  # noqa: E402
from tapedeck.sim.chain.uniswap_v2 import GAS_SWAP, GAS_TRANSFER, add_liquidity, deploy_v2_pair  # noqa: E402
from tapedeck.sim.recording import SETUP_SECONDS, chain_backend, run_scenario  # noqa: E402
from tapedeck.sim.scenario import load_scenario  # noqa: E402

BACKENDS = ("pyevm", "anvil", "revm")
START = 1_709_251_200 - SETUP_SECONDS  # eth-crash's start (2024-03-01) minus the sim's set-up hour
MAX_FEE, TIP = 100 * 10**9, 10**9
GAS_ETH = 21_000
GAS_SUPPLY = 400_000

# how many of each, per backend and repetition (swaps count 2 transactions: pay + swap)
N_TRANSFER_AUTO, N_TRANSFER_BATCH = 100, 100
N_SWAP_AUTO, N_SWAP_BATCH = 30, 30
N_SUPPLY_AUTO, N_SUPPLY_BATCH = 30, 40
PER_BLOCK = 20  # transactions per batched block
BIG_BLOCK, N_BIG_BLOCKS = 50, 1  # py-evm re-roots the block's tx/receipt tries per tx
N_EMPTY_BLOCKS, N_FULL_BLOCKS = 100, 10
N_AGED, N_AGED_AUTO = 800, 50  # blocks mined before the aged-chain automine figure, and its transfers
N_RESTORES = 5

FIGURES: list[tuple[str, str, str]] = [  # key, label, unit
    ("transfer_auto", "ETH transfer, automine (1 tx/block)", "tx/s"),
    ("transfer_batch", f"ETH transfer, batched ({PER_BLOCK} tx/block)", "tx/s"),
    ("transfer_big", f"ETH transfer, batched ({BIG_BLOCK} tx/block)", "tx/s"),
    ("transfer_aged", f"ETH transfer, automine, after {N_AGED:,} more blocks", "tx/s"),
    ("swap_auto", "Uniswap V2 swap (pay + swap), automine (1 tx/block)", "tx/s"),
    ("swap_batch", f"Uniswap V2 swap (pay + swap), batched ({PER_BLOCK} tx/block)", "tx/s"),
    ("supply_auto", "Aave v3 Pool.supply, automine (1 tx/block)", "tx/s"),
    ("supply_batch", f"Aave v3 Pool.supply, batched ({PER_BLOCK} tx/block)", "tx/s"),
    ("empty_blocks", "empty blocks (mine_block([]))", "blocks/s"),
    ("full_blocks", "blocks of 10 transfers (mine_block)", "blocks/s"),
    ("chain_start", "chain start (anvil: node process up and answering)", "ms"),
    ("aave_deploy", "scenario start: full Aave v3 market deploy", "ms"),
    ("snapshot_restore", "scenario start: snapshot restore (anvil: + new snapshot)", "ms"),
    ("eth_crash", "eth-crash seed 7, whole run incl. set-up", "sim s/wall s"),
    ("eth_crash_wall", "eth-crash wall time", "s"),
    ("eth_crash_cpu", "eth-crash, per CPU s of this process (anvil: its node's not counted)", "sim s/CPU s"),
    ("eth_crash_setup", "eth-crash set-up, market deployed (until the world's clock starts)", "ms"),
    ("eth_crash_setup_cpu", "eth-crash set-up, market deployed, CPU of this process", "CPU ms"),
    ("eth_crash_restored", "eth-crash, market restored from the world cache: whole run", "sim s/wall s"),
    ("eth_crash_restored_cpu", "eth-crash, market restored, per CPU s", "sim s/CPU s"),
    ("eth_crash_restored_setup", "eth-crash set-up, market restored from the world cache", "ms"),
    ("eth_crash_restored_setup_cpu", "eth-crash set-up, market restored, CPU of this process", "CPU ms"),
    ("paper_node_new", "paper liquidation simulated: eth_simulateV1, each on a new head", "ms"),
    ("paper_fork_new", "paper liquidation simulated: revm fork, each on a new head", "ms"),
    ("paper_node_same", "paper liquidation simulated: eth_simulateV1, again at the same head", "ms"),
    ("paper_fork_same", "paper liquidation simulated: revm fork, again at the same head (fork reused)", "ms"),
]
COUNTS = ("eth_crash_chain_txs", "eth_crash_chain_blocks", "eth_crash_sim_blocks")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Bench:
    """One fresh chain of ``kind`` with local nonce bookkeeping and a block clock."""

    def __init__(self, kind: str) -> None:
        t = time.perf_counter()
        self.chain = chain_backend(kind, START)
        self.start_s = time.perf_counter() - t
        self.kind = kind
        self.w3 = self.chain.w3
        self.admin, self.user = self.chain.accounts[0], self.chain.accounts[1]
        self.ts = START + 10_000
        self.nonces: dict[str, int] = {}

    def close(self) -> None:
        if hasattr(self.chain, "close"):
            self.chain.close()

    def next_ts(self) -> int:
        self.ts += 12
        return self.ts

    def tx(self, sender: str, to: str | None, data: bytes = b"", gas: int = GAS_ETH, value: int = 0) -> ChainTx:
        nonce = self.nonces.get(sender)
        if nonce is None:
            nonce = self.w3.eth.get_transaction_count(sender)
        self.nonces[sender] = nonce + 1
        return ChainTx(sender, nonce, gas, MAX_FEE, TIP, to, data, value)

    def transfers(self, n: int) -> list[ChainTx]:
        return [self.tx(self.admin, self.user, value=10**15) for _ in range(n)]

    def automine(self, txs: list[ChainTx]) -> float:
        """tx/s sending each transaction on its own and waiting for its receipt (one block each)."""
        send, wait = self.w3.eth.send_transaction, self.w3.eth.wait_for_transaction_receipt
        failed = 0
        t = time.perf_counter()
        for tx in txs:
            failed += wait(send(tx.params()))["status"] != 1  # type: ignore[arg-type]
        rate = len(txs) / (time.perf_counter() - t)
        if failed:
            raise RuntimeError(f"{self.kind}: {failed} of {len(txs)} automined transactions reverted")
        return rate

    def batched(self, txs: list[ChainTx], per_block: int) -> float:
        """tx/s through ``mine_block`` with ``per_block`` transactions per block."""
        blocks = [txs[i:i + per_block] for i in range(0, len(txs), per_block)]
        stamps = [self.next_ts() for _ in blocks]
        failed = 0
        t = time.perf_counter()
        for block, ts in zip(blocks, stamps):
            failed += sum(r["status"] != 1 for r in self.chain.mine_block(block, ts))
        rate = len(txs) / (time.perf_counter() - t)
        if failed:
            raise RuntimeError(f"{self.kind}: {failed} of {len(txs)} batched transactions reverted")
        return rate

    def blocks(self, contents: list[list[ChainTx]]) -> float:
        stamps = [self.next_ts() for _ in contents]
        t = time.perf_counter()
        for block, ts in zip(contents, stamps):
            self.chain.mine_block(block, ts)
        return len(contents) / (time.perf_counter() - t)


def fresh(kind: str, section: Callable[[Bench], None]) -> None:
    t = time.perf_counter()
    b = Bench(kind)
    try:
        section(b)
    finally:
        b.close()
    log(f"  {kind} {section.__name__}: {time.perf_counter() - t:.1f} s")


def micro(kind: str, out: dict[str, float]) -> None:
    """Every figure but eth-crash; each group on a fresh chain of ``kind`` (anvil slows down once
    a chain holds more than a few hundred blocks: that is measured on its own, ``transfer_aged``)."""

    def aave(b: Bench) -> None:
        out["chain_start"] = b.start_s * 1000
        t = time.perf_counter()
        market = deploy_aave_v3(b.w3)
        out["aave_deploy"] = (time.perf_counter() - t) * 1000
        snap = b.chain.snapshot()
        restores = []
        for _ in range(N_RESTORES):  # each restore undoes a block of 10 transfers
            b.chain.mine_block(b.transfers(10), b.next_ts())
            t = time.perf_counter()
            b.chain.revert(snap)
            if kind == "anvil":
                snap = b.chain.snapshot()  # anvil uses a snapshot up
            restores.append(time.perf_counter() - t)
            b.nonces.clear()
        out["snapshot_restore"] = statistics.median(restores) * 1000

        # Pool.supply of 1 WETH by a user who already supplies (collateral flag set), allowance max
        market.supply(b.user, "WETH", 10**18, mint=True)
        market.mint("WETH", b.user, 10**24)
        market.approve("WETH", b.user)
        data = call_data(market.pool.functions.supply(market.asset("WETH"), 10**18, b.user, 0))

        def supplies(n: int) -> list[ChainTx]:
            return [b.tx(b.user, market.pool.address, data, GAS_SUPPLY) for _ in range(n)]

        out["supply_auto"] = b.automine(supplies(N_SUPPLY_AUTO))
        out["supply_batch"] = b.batched(supplies(N_SUPPLY_BATCH), PER_BLOCK)

    def transfers(b: Bench) -> None:
        out["transfer_auto"] = b.automine(b.transfers(N_TRANSFER_AUTO))
        out["transfer_batch"] = b.batched(b.transfers(N_TRANSFER_BATCH), PER_BLOCK)
        out["transfer_big"] = b.batched(b.transfers(BIG_BLOCK * N_BIG_BLOCKS), BIG_BLOCK)

    def blocks(b: Bench) -> None:
        out["empty_blocks"] = b.blocks([[] for _ in range(N_EMPTY_BLOCKS)])
        out["full_blocks"] = b.blocks([b.transfers(10) for _ in range(N_FULL_BLOCKS)])
        if kind == "anvil":  # age the chain by the cheapest path (not timed)
            for _ in range(N_AGED):
                b.chain.rpc("evm_mine", [])
        else:
            b.chain.tester.mine_blocks(N_AGED)
        out["transfer_aged"] = b.automine(b.transfers(N_AGED_AUTO))

    def swaps(b: Bench) -> None:
        # the real pair, 1M/1M liquidity, swaps of 1,000 alternating in direction
        m = deploy_v2_pair(b.w3)
        add_liquidity(m, 10**24, 10**24)
        reserves = list(m.reserves())

        def build(n: int) -> list[ChainTx]:
            txs = []
            for i in range(n):
                zero = i % 2 == 0  # token0 in, token1 out
                amount_in = 10**21
                r_in, r_out = (reserves[0], reserves[1]) if zero else (reserves[1], reserves[0])
                amount_out = get_amount_out(amount_in, r_in, r_out)
                token = m.token(zero)
                txs.append(b.tx(b.admin, token.address, call_data(token.functions.transfer(m.pair.address, amount_in)),
                                GAS_TRANSFER))
                outs = (0, amount_out) if zero else (amount_out, 0)
                txs.append(b.tx(b.admin, m.pair.address, call_data(m.pair.functions.swap(*outs, b.admin, b"")),
                                GAS_SWAP))
                d = (amount_in, -amount_out) if zero else (-amount_out, amount_in)
                reserves[0] += d[0]
                reserves[1] += d[1]
            return txs

        out["swap_auto"] = b.automine(build(N_SWAP_AUTO))
        out["swap_batch"] = b.batched(build(N_SWAP_BATCH), PER_BLOCK)
        if list(m.reserves()) != reserves:
            raise RuntimeError(f"{kind}: pair reserves {m.reserves()} != expected {reserves}")

    for section in (aave, transfers, blocks, swaps):
        fresh(kind, section)


def eth_crash(kind: str, out: dict[str, float], tmp: Path, config: dict[str, Any], i: int) -> None:
    from tapedeck.sim import world as world_module
    from tapedeck.sim.chain import world_cache

    def one(prefix: str) -> Any:
        scenario = load_scenario("eth-crash", seed=7)
        started: list[tuple[float, float]] = []
        run = world_module.World.run

        def timed(self: Any, until: float | None = None) -> None:  # the set-up ends when the clock starts
            started.append((time.perf_counter(), time.process_time()))
            run(self, until)

        world_module.World.run = timed  # type: ignore[method-assign]
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            summary = run_scenario(scenario, config, tmp / f"eth-crash-{kind}-{i}-{prefix}.db", overwrite=True, chain=kind)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        finally:
            world_module.World.run = run  # type: ignore[method-assign]
        (w1, c1), = started
        out[prefix] = scenario.duration / wall
        out[f"{prefix}_cpu"] = scenario.duration / cpu
        out[f"{prefix}_setup"] = (w1 - t0) * 1000
        out[f"{prefix}_setup_cpu"] = (c1 - c0) * 1000
        return summary, wall

    # the cache starts empty each repetition: the first run deploys, the second (revm) restores
    os.environ["TAPEDECK_WORLD_CACHE"] = str(tmp / f"world-cache-{i}")
    world_cache.clear_memory()
    summary, wall = one("eth_crash")
    out["eth_crash_wall"] = wall
    out["eth_crash_chain_txs"] = summary.chain_txs
    out["eth_crash_chain_blocks"] = summary.chain_blocks
    out["eth_crash_sim_blocks"] = summary.blocks
    if kind == "revm":
        one("eth_crash_restored")


N_PAPER = 10  # simulations per paper figure


def paper(out: dict[str, float]) -> None:
    """Anvil: the live gateway's paper simulation of one liquidation, ``eth_simulateV1`` vs a revm
    fork of the node's state (``simulate = "revm-fork"``): the median ms per simulation, each on a
    new head (an empty block mined between: the fork reads the state it needs again) and at the
    same head (the fork reused)."""
    import asyncio
    import dataclasses

    from tapedeck.live.evm_gateway import Call, EvmGateway, EvmGatewayConfig

    b = Bench("anvil")
    try:
        market = deploy_aave_v3(b.w3)
        lp, user, liq = b.chain.accounts[7], b.chain.accounts[2], b.chain.accounts[3]
        market.supply(lp, "USDC", 10**9 * 10**6, mint=True)
        market.supply(user, "WETH", 100 * 10**18, mint=True)
        market.borrow(user, "USDC", 100 * 2000 * 10**6 * 75 // 100)
        market.set_price("WETH", 2000 * 10**8 * 80 // 100)  # HF < 1: liquidatable
        market.mint("USDC", liq, 10**12 * 10**6)
        market.approve("USDC", liq)
        data = call_data(market.pool.functions.liquidationCall(market.asset("WETH"), market.asset("USDC"), user,
                                                               2**256 - 1, False))
        call = Call("plain", market.pool.address, data, 900_000)
        base = EvmGatewayConfig(chain="anvil", rpc_url=b.chain.url, sender=liq, aave_pool=market.pool.address)

        async def go(simulate: str, new_head: bool) -> list[float]:
            gw = EvmGateway(dataclasses.replace(base, simulate=simulate))
            times, gas = [], set()
            try:
                for _ in range(N_PAPER):
                    if new_head:
                        b.chain.rpc("evm_mine", [])
                    head = await gw._head()
                    t = time.perf_counter()
                    sim = await gw._simulate(call, head)
                    times.append(time.perf_counter() - t)
                    if not sim.ok:
                        raise RuntimeError(f"paper liquidation would revert ({simulate}): {sim.error}")
                    gas.add(sim.gas_used)
            finally:
                await gw.close()
            log(f"  paper {simulate} new_head={new_head}: gas {sorted(gas)}; ms {[round(x * 1000, 1) for x in times]}")
            return times

        for simulate, key in (("eth_call", "node"), ("revm-fork", "fork")):
            out[f"paper_{key}_new"] = statistics.median(asyncio.run(go(simulate, True))) * 1000
            out[f"paper_{key}_same"] = statistics.median(asyncio.run(go(simulate, False))[1:]) * 1000
    finally:
        b.close()


def fmt(v: float, unit: str) -> str:
    if unit in ("s", "blocks/s") and v < 100:
        return f"{v:.1f}"
    return f"{v:.2f}" if v < 10 else f"{v:,.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", choices=BACKENDS)
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    ap.add_argument("--no-scenario", action="store_true", help="skip the eth-crash runs (the slow part)")
    ap.add_argument("--no-paper", action="store_true", help="skip the paper simulation figures (anvil)")
    args = ap.parse_args()
    kinds = [args.only] if args.only else list(BACKENDS)
    config = load_config(ROOT / "fixtures" / "config" / "sim-default.toml")
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    skipped: dict[str, str] = {}
    t_all = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tapedeck-bench-chain-") as d:
        tmp = Path(d)
        for i in range(args.repeat):
            for kind in kinds:
                if kind in skipped:
                    continue
                out: dict[str, float] = {}
                try:
                    t = time.perf_counter()
                    micro(kind, out)
                    log(f"[{i + 1}/{args.repeat}] {kind}: micro figures {time.perf_counter() - t:.1f} s")
                    if kind == "anvil" and not args.no_paper:
                        paper(out)
                    if not args.no_scenario:
                        eth_crash(kind, out, tmp, config, i)
                        log(f"[{i + 1}/{args.repeat}] {kind}: eth-crash {out['eth_crash_wall']:.1f} s")
                except ArtifactMissing as e:
                    skipped[kind] = str(e)
                    log(f"{kind}: skipped ({e})")
                    continue
                runs[kind].append(out)
    total = time.perf_counter() - t_all
    kinds = [k for k in kinds if runs[k]]

    result: dict[str, Any] = {"repeat": args.repeat, "wall_s": round(total, 1), "skipped": skipped, "backends": {},
                              "load": [round(x, 1) for x in load_before + os.getloadavg()]}
    for kind in kinds:
        figs: dict[str, Any] = {}
        for key, label, unit in FIGURES:
            vals = [r[key] for r in runs[kind] if key in r]
            if vals:
                figs[key] = {"label": label, "unit": unit, "median": statistics.median(vals), "min": min(vals),
                             "max": max(vals), "runs": vals}
        for key in COUNTS:
            vals = sorted({int(r[key]) for r in runs[kind] if key in r})
            if vals:
                figs[key] = vals[0] if len(vals) == 1 else vals
        result["backends"][kind] = figs
    print(json.dumps(result, indent=2) if args.json else render(result))


def render(result: dict[str, Any]) -> str:
    """The results as a markdown table (median, min-max) plus the eth-crash counts."""
    kinds = list(result["backends"])
    load = result["load"]
    lines = [f"chain backends: median (min-max) of {result['repeat']} repetitions; whole run {result['wall_s']:.0f} s; "
             f"load average (1/5/15 min) {load[:3]} before, {load[3:]} after",
             f"| figure | unit | {' | '.join(kinds)} |", f"|---|---|{'---|' * len(kinds)}"]
    for key, label, unit in FIGURES:
        cells = []
        for kind in kinds:
            f = result["backends"][kind].get(key)
            cells.append("-" if f is None else f"**{fmt(f['median'], unit)}** ({fmt(f['min'], unit)}-{fmt(f['max'], unit)})")
        if any(c != "-" for c in cells):
            lines.append(f"| {label} | {unit} | {' | '.join(cells)} |")
    for kind in kinds:
        f = result["backends"][kind]
        if "eth_crash_chain_txs" in f:
            lines.append(f"{kind} eth-crash: {f['eth_crash_sim_blocks']} sim blocks, {f['eth_crash_chain_blocks']} "
                         f"chain blocks, {f['eth_crash_chain_txs']} chain transactions")
    lines += [f"{kind}: skipped ({why})" for kind, why in result["skipped"].items()]
    return "\n".join(lines)

if __name__ == "__main__":
    main()
