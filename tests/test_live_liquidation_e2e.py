"""End to end on a real node: ``LiveRunner`` in paper mode sees a borrower become liquidatable through
its WebSocket log subscription and records a paper liquidation.

anvil on 127.0.0.1 holds the sim's Aave v3 market, a Uniswap V2 WETH/USDC pair and the bot's
AaveLiquidator executor. The runner's config is what a user writes: an ``evm`` source following the
pool, its oracle and the pair; an ``evm`` gateway for ``aave-v3:anvil`` (paper: ``eth_simulateV1``
of the executor transaction, nothing sent); the shipped ``aave_liquidator`` strategy. While the
runner runs, the oracle's WETH feed is replaced by a lower one: the source re-emits the reserve and
its new price, the book sees the borrower cross HF 1, the fast path intends in the same handling,
and the gateway's simulated transaction is recorded as a paper fill (computed by the node, never
echoed from the intent). Nothing reaches the chain: the bot's nonce does not move. The run's log
verifies. The source starts before the pair exists: its snapshot of the pair is a recorded rejection
and the pair's state comes from its first ``Sync``.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from tapedeck.domain import events as ev
from tests.test_live_runner import config, events, settings, verified

pytestmark = [pytest.mark.slow, pytest.mark.contract]

E6, E8, E18 = 10**6, 10**8, 10**18
BOT_KEY = "0x" + "5d" * 32


def test_paper_liquidation_through_the_websocket_subscription(tmp_path: Path) -> None:
    pytest.importorskip("tapedeck.live.evm_source")
    pytest.importorskip("tapedeck.live.evm_gateway")
    from tapedeck.live.runner import LiveRunner
    from tapedeck.sim.chain import uniswap_v2 as uv2
    from tapedeck.sim.chain.aave_v3 import deploy_aave_v3
    from tapedeck.sim.chain.anvil import AnvilChain
    from tapedeck.sim.chain.artifacts import ArtifactMissing
    from tapedeck.sim.chain.executor import deploy_executor
    from tapedeck.sim.chain.pyevm import transact

    try:
        chain = AnvilChain(start_time=1_700_000_000)
    except ArtifactMissing as e:
        pytest.skip(f"no anvil: {e}")
    with chain:
        w3, admin = chain.w3, chain.accounts[0]
        bot = Account.from_key(BOT_KEY).address
        chain.rpc("anvil_setBalance", [bot, hex(100 * E18)])
        chain.rpc("anvil_impersonateAccount", [bot])
        m = deploy_aave_v3(w3)
        executor = deploy_executor(m, bot)
        chain.rpc("anvil_stopImpersonatingAccount", [bot])
        start = w3.eth.block_number + 1  # the source backfills every user action from here (a snapshot has no users)
        weth, usdc = m.tokens["WETH"], m.tokens["USDC"]
        factory, _router = uv2.deploy_factory_and_router(w3, m.asset("WETH"), admin)
        pair = uv2.create_pair(w3, factory, weth, usdc, admin)  # after the snapshot block: known from its Sync
        m.supply(chain.accounts[9], "USDC", 50_000_000 * E6, mint=True)
        for token, amount in ((weth, 10_000 * E18), (usdc, 20_000_000 * E6)):  # $2000 a WETH, deep
            transact(w3, token.get_function_by_signature("mint(address,uint256)")(admin, amount), admin, 120_000)
            transact(w3, token.functions.transfer(pair.pair.address, amount), admin, 100_000)
        transact(w3, pair.pair.functions.mint(admin), admin, 300_000)
        user = chain.accounts[2]
        m.supply(user, "WETH", 10 * E18, mint=True)
        m.borrow(user, "USDC", 15_900 * E6)  # HF 2000 * 10 * 0.825 / 15,900 = 1.04
        t0, t1 = sorted((m.asset("WETH").lower(), m.asset("USDC").lower()))
        p = pair.pair.address.lower()
        cfg = config(tmp_path, f'''
[risk]
default_max_notional = 10_000_000_000_000
default_max_outstanding = 100_000_000_000_000

[[strategies]]
kind = "aave_liquidator"
name = "liq"
chain = "anvil"
native_asset = "{m.asset("WETH").lower()}"
scan_interval_s = 3600
pools = [{{pool = "{p}", kind = "v2", token0 = "{t0}", token1 = "{t1}", fee = 30}}]

[ops]
enabled = false

[live]
shutdown_grace_s = 5

[[sources]]
kind = "evm"
name = "anvil"
chain = "anvil"
ws_url = "{chain.ws_url}"
http_url = "{chain.url}"
v2_pairs = ["{pair.pair.address}"]
aave_pools = ["{m.pool.address}"]
aave_oracle = "{m.oracle.address}"
start_block = {start}

[[gateways]]
kind = "evm"
venues = ["aave-v3:anvil"]
chain = "anvil"
rpc_url = "{chain.url}"
sender = "{bot}"
liquidator = "{executor.address}"
aave_pool = "{m.pool.address}"
block_time = 1
pools = {{"{p}" = "{pair.pair.address}"}}
tokens = {{WETH = "{m.asset("WETH")}", USDC = "{m.asset("USDC")}"}}
''')
        out = tmp_path / "run.db"
        nonce_before = w3.eth.get_transaction_count(bot)
        runner = LiveRunner(settings(cfg), out=str(out), signals=False).prepare()
        state: dict[str, Any] = {"moved": False, "ticks": 0}

        def tick() -> None:
            state["ticks"] += 1
            if not state["moved"] and state["ticks"] >= 50 and runner.metrics.recorded > 20:
                m.set_price("WETH", 1900 * E8)  # HF 0.986: liquidatable from this block on
                state["moved"], state["moved_tick"] = w3.eth.block_number, state["ticks"]
            chain.rpc("evm_mine", [])

        async def main() -> None:
            task = asyncio.get_running_loop().create_task(runner.run())
            for _ in range(3000):
                await asyncio.sleep(0.02)
                await asyncio.to_thread(tick)
                if state["moved"] and state["ticks"] >= state["moved_tick"] + 100 or task.done():
                    break
            runner.stop()
            await task

        asyncio.run(main())
        assert w3.eth.get_transaction_count(bot) == nonce_before  # paper: nothing was sent
        chain_hf = m.user_account_data(user)[5]
    evs = events(out)
    opp = [e for e in evs if type(e) is ev.LiquidationOpportunity]
    assert state["moved"], "the price never moved"
    assert opp and opp[0].user == user.lower() and opp[0].path == "fast", \
        (state, [e for e in evs if type(e) in (ev.OracleUpdated, ev.LiquidationSkipped, ev.InputRejected)])
    assert abs(opp[0].health_factor - chain_hf) * 10**4 < chain_hf  # the chain's HF (interest accrues a little)
    cause = next(e for e in evs if e.seq == opp[0].cause)
    assert type(cause) is ev.OracleUpdated and cause.answer == 1900 * E8  # the new price did it, through the log
    intent = next(e for e in evs if type(e) is ev.OrderIntended)
    fills = [e for e in evs if type(e) is ev.OrderFilled and e.intent == intent.seq]
    assert fills, [e for e in evs if type(e) is ev.OrderFailed]
    fill = fills[0]
    assert fill.source.startswith("paper") and fill.amount > 0 and fill.fee > 0  # simulated, gas priced
    assert fill.notional <= intent.amount  # what the simulated liquidationCall repaid, not the intent echoed
    unread = [e for e in evs if type(e) is ev.InputRejected]  # the pair did not exist at the snapshot block
    assert len(unread) == 1 and "snapshot pair" in unread[0].origin and unread[0].seq < opp[0].seq
    assert verified(out).status == "verified"
