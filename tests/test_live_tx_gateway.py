"""The live EVM gateway on anvil (127.0.0.1) with the sim's Aave v3 + Uniswap V2 deployment and
the AaveLiquidator executor, owned by a planted key that signs every transaction here.

* **execute**: a liquidation intent becomes one transaction; its execution events (signed,
  broadcast, submitted, included, filled) match the chain's receipt: block, index, gas used,
  status, effective gas price; the fill is the pool's ``LiquidationCall`` log.
* **paper**: the same intent on the same state is simulated (``eth_simulateV1``), nothing is
  sent (the account's nonce and the head do not move), and the computed fill equals the one the
  executed transaction made, to the wei (gas priced at the same base fee).
* **private**: the bundle path through a local relay (``tests/test_flashbots.LocalRelay``) lands
  the transaction; a relay that leaves the bundle out gives dropped + failed.
* **crash**: a process killed with SIGKILL between recording the signed transaction and
  broadcasting it (and another killed right after broadcasting, before recording that it did)
  is restarted on the same log: the nonce manager reconciles, rebroadcasts the recorded bytes
  (or finds them mined), and the chain holds exactly one transaction per nonce: none sent twice.
* the planted key appears nowhere: not in the log file's bytes, nor any output of the processes.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from tapedeck.adapters.eventlog import EventLog, Manifest
from tapedeck.domain import events as ev
from tapedeck.live.evm_gateway import EvmGateway, EvmGatewayConfig
from tapedeck.live.fees import GWEI, FeePolicy
from tapedeck.live.flashbots import FlashbotsRelay
from tapedeck.live.keys import key_from_hex
from tapedeck.live.playback import serve_loopback

pytestmark = [pytest.mark.contract, pytest.mark.slow]

E6, E8, E18 = 10**6, 10**8, 10**18
BOT_SECRET = "0x" + "b7" * 16 + "2e" * 16  # planted: must appear in no log and no output
RELAY_SECRET = "0x" + "4c" * 32
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def world() -> Any:
    from tapedeck.sim.chain import uniswap_v2 as uv2
    from tapedeck.sim.chain.aave_v3 import deploy_aave_v3
    from tapedeck.sim.chain.arb_executor import deploy_arb_executor
    from tapedeck.sim.chain.anvil import AnvilChain
    from tapedeck.sim.chain.artifacts import ArtifactMissing
    from tapedeck.sim.chain.executor import deploy_executor
    from tapedeck.sim.chain.pyevm import transact

    try:
        chain = AnvilChain(start_time=1_700_000_000)
    except ArtifactMissing as e:
        pytest.skip(f"no anvil: {e}")
    try:
        w3, admin = chain.w3, chain.accounts[0]
        bot = Account.from_key(BOT_SECRET).address
        chain.rpc("anvil_setBalance", [bot, hex(100 * E18)])
        chain.rpc("anvil_impersonateAccount", [bot])
        market = deploy_aave_v3(w3)
        executor = deploy_executor(market, bot)
        chain.rpc("anvil_stopImpersonatingAccount", [bot])
        lp = chain.accounts[9]
        market.supply(lp, "USDC", 500_000_000 * E6, mint=True)
        market.supply(lp, "WETH", 100_000 * E18, mint=True)
        weth, usdc = market.tokens["WETH"], market.tokens["USDC"]
        factory, router = uv2.deploy_factory_and_router(w3, market.asset("WETH"), admin)
        pair = uv2.create_pair(w3, factory, weth, usdc, admin)
        user = chain.accounts[2]
        market.supply(user, "WETH", 100 * E18, mint=True)
        market.borrow(user, "USDC", 100 * 2000 * E6 * 825 // 1000 * 100 // 125)  # HF ~1.25 at $2000
        price = 2000 * E8 * 90 // 125  # HF ~0.9: the whole debt may be covered
        market.set_price("WETH", price)
        depth = 20_000_000
        for token, amount in ((weth, depth * E18 * E8 // price), (usdc, depth * E6)):
            transact(w3, token.get_function_by_signature("mint(address,uint256)")(admin, amount), admin, 120_000)
            transact(w3, token.functions.transfer(pair.pair.address, amount), admin, 100_000)
        transact(w3, pair.pair.functions.mint(admin), admin, 300_000)
        # a second WETH/USDC pair (another factory) 2% dearer, and the bot's ArbExecutor: an arbitrage
        factory2, _ = uv2.deploy_factory_and_router(w3, market.asset("WETH"), admin)
        pair2 = uv2.create_pair(w3, factory2, weth, usdc, admin)
        for token, amount in ((weth, depth * E18 * E8 // price), (usdc, depth * E6 * 102 // 100)):
            transact(w3, token.get_function_by_signature("mint(address,uint256)")(admin, amount), admin, 120_000)
            transact(w3, token.functions.transfer(pair2.pair.address, amount), admin, 100_000)
        transact(w3, pair2.pair.functions.mint(admin), admin, 300_000)
        chain.rpc("anvil_impersonateAccount", [bot])
        arb = deploy_arb_executor(w3, bot)
        market.mint("USDC", bot, 1_000_000 * E6)  # plain swaps pay from the bot's own balance
        transact(w3, usdc.functions.approve(router.address, 2**256 - 1), bot, 100_000)
        chain.rpc("anvil_stopImpersonatingAccount", [bot])
        debt = market.variable_debt[market.asset("USDC")].functions.balanceOf(user).call()
        yield dict(chain=chain, market=market, executor=executor, pair=pair.pair.address, user=user, bot=bot,
                   pair2=pair2.pair.address, arb=arb, router=router.address,
                   debt=debt, snap=chain.snapshot())
    finally:
        chain.close()


def _fresh(world: Any) -> None:
    """Back to the deployed state. Anvil keeps its own next base fee across ``evm_revert``; it is
    set back to what EIP-1559 gives for the reverted head (what the gateway computes)."""
    from tapedeck.live.fees import head_next_base_fee

    chain = world["chain"]
    chain.revert(world["snap"])
    world["snap"] = chain.snapshot()
    head = chain.w3.eth.get_block("latest")
    chain.rpc("anvil_setNextBlockBaseFeePerGas", [hex(head_next_base_fee(head["baseFeePerGas"], head["gasUsed"],
                                                                         head["gasLimit"]))])


def _config(world: Any) -> EvmGatewayConfig:
    m = world["market"]
    return EvmGatewayConfig(chain="anvil", rpc_url=world["chain"].url, sender=world["bot"],
                            liquidator=world["executor"].address, aave_pool=m.pool.address,
                            arb_executor=world["arb"].address, arb_token=m.asset("USDC"), v2_router=world["router"],
                            tokens={"WETH": m.asset("WETH"), "USDC": m.asset("USDC")},
                            pools={"weth-usdc": world["pair"], "weth-usdc-2": world["pair2"]},
                            fees=FeePolicy(max_priority_fee_cap=10 * GWEI), poll_interval=0.05, block_time=1)


def _intent(world: Any, seq: int = 1, private: bool = False) -> ev.OrderIntended:
    return ev.OrderIntended(seq=seq, ts=1, source="engine", strategy="liq", venue="aave-v3:anvil", instrument="WETH/USDC",
                            side="liquidate", amount=world["debt"] // 2, notional=world["debt"] // 2, target=world["user"],
                            max_priority_fee=2 * GWEI, client_id=f"c{seq}", route=("weth-usdc",), min_profit=0,
                            private=private)


class Recorder:
    """The runner's recording path without an engine: every report appended to the run's log."""

    def __init__(self, path: Path) -> None:
        self.log = EventLog.create(path, Manifest(run_id="", mode="live"))
        self.events: list[ev.Event] = []
        self.flushes = 0

    def report(self, e: ev.Event) -> None:
        self.events.append(self.log.append(e))

    def flush(self) -> None:
        self.flushes += 1
        self.log.flush()

    def intent(self, intent: ev.OrderIntended) -> ev.OrderIntended:
        numbered = self.log.append(msgspec_replace(intent, seq=0))
        self.log.flush()
        return numbered  # type: ignore[return-value]


def msgspec_replace(e: Any, **kw: Any) -> Any:
    import msgspec

    return msgspec.structs.replace(e, **kw)


def _run(gw: EvmGateway, rec: Recorder, intents: list[ev.OrderIntended]) -> list[ev.Event]:
    async def go() -> None:
        gw.bind(rec.report)
        await gw.start()
        for i in intents:
            gw.submit(rec.intent(i))
        await gw.close()

    asyncio.run(go())
    rec.log.close("clean")
    return rec.events


async def until(pred: Any, rec: Recorder, limit: float = 60.0) -> None:
    """Wait for a condition on what was reported; a safety limit turns a hang into a failure that
    shows the events (the condition, not the time, is what the test checks)."""
    async def wait() -> None:
        while not pred():
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(wait(), limit)
    except asyncio.TimeoutError:
        raise AssertionError(f"condition never held; events: {[type(e).__name__ for e in rec.events]}") from None


def _of(events: list[ev.Event], t: type) -> list[Any]:
    return [e for e in events if type(e) is t]


def test_execute_matches_the_receipt_and_paper_computes_the_same_fill(world: Any, tmp_path: Path) -> None:
    _fresh(world)
    w3 = world["chain"].w3
    head0, nonce0 = w3.eth.block_number, w3.eth.get_transaction_count(world["bot"])
    paper = _run(EvmGateway(_config(world)), Recorder(tmp_path / "paper.db"), [_intent(world)])
    assert (w3.eth.block_number, w3.eth.get_transaction_count(world["bot"])) == (head0, nonce0)  # nothing sent
    assert [type(e).__name__ for e in paper] == ["OrderAcknowledged", "OrderFilled", "InventoryChanged",
                                                 "InventoryChanged"]
    assert all(e.source == "paper:evm:anvil" for e in paper)
    [pfill] = _of(paper, ev.OrderFilled)
    assert 0 < pfill.notional <= world["debt"] // 2 and pfill.amount > 0

    key = key_from_hex(BOT_SECRET, "test")
    rec = Recorder(tmp_path / "live.db")
    live = _run(EvmGateway(_config(world), key=key, execute=True, flush=rec.flush), rec, [_intent(world)])
    names = [type(e).__name__ for e in live]
    assert names[:5] == ["NonceReconciled", "TransactionSigned", "TransactionBroadcast", "TransactionSubmitted",
                         "TransactionIncluded"] or names[:6] == ["NonceReconciled", "TransactionSigned",
                                                                 "TransactionBroadcast", "TransactionSubmitted",
                                                                 "TransactionPending", "TransactionIncluded"]
    assert names[-3:] == ["OrderFilled", "InventoryChanged", "InventoryChanged"]
    [recon] = _of(live, ev.NonceReconciled)
    [signed] = _of(live, ev.TransactionSigned)
    [inc] = _of(live, ev.TransactionIncluded)
    [fill] = _of(live, ev.OrderFilled)
    assert (recon.chain_pending, recon.next_nonce, signed.nonce) == (nonce0, nonce0, nonce0)
    receipt = w3.eth.get_transaction_receipt(signed.tx)
    assert (inc.tx, inc.block, inc.index, inc.gas_used, inc.gas_price, inc.status) == (
        signed.tx, receipt["blockNumber"], receipt["transactionIndex"], receipt["gasUsed"],
        receipt["effectiveGasPrice"], "success")
    assert receipt["status"] == 1 and receipt["from"].lower() == signed.sender
    tx = w3.eth.get_transaction(signed.tx)
    assert "0x" + bytes(tx["hash"]).hex() == signed.tx and tx["nonce"] == signed.nonce
    assert (tx["maxFeePerGas"], tx["maxPriorityFeePerGas"], tx["gas"]) == (signed.max_fee, signed.max_priority_fee,
                                                                          signed.gas)
    [log] = world["market"].liquidation_logs(receipt)
    assert (fill.amount, fill.notional) == (log["liquidatedCollateralAmount"], log["debtToCover"])
    assert fill.fee == receipt["gasUsed"] * receipt["effectiveGasPrice"] and fill.source == "live:evm:anvil"
    # paper computed the same fill, without sending, on the state before (the same gas, at the EIP's base fee)
    assert (pfill.amount, pfill.notional) == (fill.amount, fill.notional)
    _same_gas(w3, receipt, pfill, _intent(world))
    assert [(e.asset, e.delta) for e in _of(paper, ev.InventoryChanged)] == [
        (e.asset, e.delta) for e in _of(live, ev.InventoryChanged)]
    # saved before sent: the signed event was flushed before the broadcast was recorded
    seqs = {type(e).__name__: e.seq for e in live}
    assert seqs["TransactionSigned"] < seqs["TransactionBroadcast"] and rec.flushes >= 1
    stored = list(EventLog.open(tmp_path / "live.db").events())
    assert [type(e).__name__ for e in stored if e.KIND == ev.EXECUTION] == names
    assert w3.eth.get_transaction_count(world["bot"]) == nonce0 + 1


def _paper_then_execute(world: Any, tmp_path: Path, intent: ev.OrderIntended) -> tuple[Any, Any, Any, Any]:
    """The intent on paper (nothing sent), then executed on the same state: (paper fill, inclusion,
    executed fill, receipt)."""
    w3 = world["chain"].w3
    nonce0 = w3.eth.get_transaction_count(world["bot"])
    paper = _run(EvmGateway(_config(world)), Recorder(tmp_path / "paper.db"), [intent])
    assert w3.eth.get_transaction_count(world["bot"]) == nonce0
    [pfill] = _of(paper, ev.OrderFilled)
    rec = Recorder(tmp_path / "live.db")
    live = _run(EvmGateway(_config(world), key=key_from_hex(BOT_SECRET, "test"), execute=True, flush=rec.flush), rec,
                [intent])
    [inc] = _of(live, ev.TransactionIncluded)
    [fill] = _of(live, ev.OrderFilled)
    return pfill, inc, fill, w3.eth.get_transaction_receipt(inc.tx)


def test_atomic_arbitrage_through_the_arb_executor_paper_then_execute(world: Any, tmp_path: Path) -> None:
    _fresh(world)
    w3 = world["chain"].w3
    intent = ev.OrderIntended(seq=1, ts=1, source="engine", strategy="arb", venue="anvil:arb-executor",
                              instrument="weth-usdc->weth-usdc-2", side="arb", amount=20_000 * E6, notional=20_000 * E6,
                              max_priority_fee=GWEI, client_id="a1", route=("weth-usdc", "weth-usdc-2"), min_profit=1)
    pfill, inc, fill, receipt = _paper_then_execute(world, tmp_path, intent)
    assert pfill.notional == 20_000 * E6 and pfill.amount > pfill.notional  # computed from the Arbitraged log
    got = world["arb"].arbitraged(receipt)
    assert (inc.block, inc.index, inc.gas_used, inc.status) == (receipt["blockNumber"], receipt["transactionIndex"],
                                                                receipt["gasUsed"], "success")
    assert (fill.amount, fill.notional) == (got["amount_out"], got["amount_in"])
    assert (pfill.amount, pfill.notional) == (fill.amount, fill.notional)
    _same_gas(w3, receipt, pfill, intent)


def _same_gas(w3: Any, receipt: Any, pfill: ev.OrderFilled, intent: ev.OrderIntended) -> None:
    """Paper priced the simulated gas at the next base fee computed from the head it ran on (the
    inclusion block's parent) plus the tip: the same gas as the receipt's, at the price the chain
    charged (``_fresh`` keeps anvil's base fee the EIP's across reverts)."""
    from tapedeck.live.fees import head_next_base_fee

    parent = w3.eth.get_block(receipt["blockNumber"] - 1)
    price = head_next_base_fee(parent["baseFeePerGas"], parent["gasUsed"], parent["gasLimit"]) + intent.max_priority_fee
    assert pfill.fee == receipt["gasUsed"] * price == receipt["gasUsed"] * receipt["effectiveGasPrice"]


def test_a_plain_swap_through_the_v2_router_fills_what_the_pair_pays(world: Any, tmp_path: Path) -> None:
    from tapedeck.domain.uniswap_v2 import get_amount_out
    from tapedeck.sim.chain.executor import v2_reserves

    _fresh(world)
    w3, m = world["chain"].w3, world["market"]
    intent = ev.OrderIntended(seq=1, ts=1, source="engine", strategy="cd", venue="anvil:swap", instrument="weth-usdc",
                              side="buy", amount=10_000 * E6, notional=10_000 * E6, max_priority_fee=GWEI,
                              client_id="s1", min_profit=1, profit_asset="WETH")
    t0, r0, r1 = v2_reserves(w3, world["pair"])
    r_usdc, r_weth = (r0, r1) if t0 == m.asset("USDC").lower() else (r1, r0)
    expected = get_amount_out(10_000 * E6, r_usdc, r_weth)
    pfill, inc, fill, receipt = _paper_then_execute(world, tmp_path, intent)
    assert (pfill.amount, pfill.notional) == (expected, 10_000 * E6)  # read from the Transfer logs
    assert receipt["to"].lower() == world["router"].lower() and inc.gas_used == receipt["gasUsed"]
    assert (fill.amount, fill.notional) == (expected, 10_000 * E6)
    _same_gas(w3, receipt, pfill, intent)
    sell = msgspec_replace(intent, side="sell", amount=E18, profit_asset="USDC", client_id="s2")
    [failed] = _run(EvmGateway(_config(world)), Recorder(tmp_path / "sq.db"), [sell])  # WETH never approved
    assert type(failed) is ev.OrderFailed and failed.reason.startswith("would revert: ")


def test_intents_submitted_together_take_consecutive_nonces_and_all_land(world: Any, tmp_path: Path) -> None:
    _fresh(world)
    w3 = world["chain"].w3
    nonce0 = w3.eth.get_transaction_count(world["bot"])
    arb = ev.OrderIntended(seq=1, ts=1, source="engine", strategy="arb", venue="anvil:arb-executor",
                           instrument="weth-usdc->weth-usdc-2", side="arb", amount=20_000 * E6, notional=20_000 * E6,
                           max_priority_fee=GWEI, client_id="a1", route=("weth-usdc", "weth-usdc-2"), min_profit=1)
    swap = ev.OrderIntended(seq=1, ts=1, source="engine", strategy="cd", venue="anvil:swap", instrument="weth-usdc-2",
                            side="buy", amount=1_000 * E6, notional=1_000 * E6, max_priority_fee=GWEI, client_id="s1",
                            min_profit=1, profit_asset="WETH")
    rec = Recorder(tmp_path / "many.db")
    events = _run(EvmGateway(_config(world), key=key_from_hex(BOT_SECRET, "test"), execute=True, flush=rec.flush), rec,
                  [_intent(world), arb, swap])  # submitted back to back: their tasks interleave
    signs = _of(events, ev.TransactionSigned)
    assert sorted(s.nonce for s in signs) == [nonce0, nonce0 + 1, nonce0 + 2]
    assert len(_of(events, ev.NonceReconciled)) == 1 and len(_of(events, ev.OrderFilled)) == 3
    assert w3.eth.get_transaction_count(world["bot"]) == nonce0 + 3
    for s in signs:
        assert w3.eth.get_transaction(s.tx)["nonce"] == s.nonce


def test_a_liquidation_that_would_revert_fails_on_paper_and_is_not_sent(world: Any, tmp_path: Path) -> None:
    _fresh(world)
    w3 = world["chain"].w3
    nonce0 = w3.eth.get_transaction_count(world["bot"])
    greedy = msgspec_replace(_intent(world), min_profit=10**15)  # more than it can make
    paper = _run(EvmGateway(_config(world)), Recorder(tmp_path / "p.db"), [greedy])
    [failed] = paper
    assert type(failed) is ev.OrderFailed and failed.reason.startswith("would revert: ProfitBelowMinimum(")
    key = key_from_hex(BOT_SECRET, "test")
    rec = Recorder(tmp_path / "l.db")
    live = _run(EvmGateway(_config(world), key=key, execute=True, flush=rec.flush), rec, [greedy])
    assert [type(e).__name__ for e in live] == ["NonceReconciled", "OrderFailed"]
    assert "ProfitBelowMinimum(" in live[-1].reason and "not sent" in live[-1].reason
    assert w3.eth.get_transaction_count(world["bot"]) == nonce0


def test_a_mined_revert_reports_included_reverted_with_the_reason(world: Any, tmp_path: Path) -> None:
    _fresh(world)
    w3 = world["chain"].w3
    key = key_from_hex(BOT_SECRET, "test")
    rec = Recorder(tmp_path / "r.db")
    cfg = msgspec_free_replace(_config(world), precheck=False)
    live = _run(EvmGateway(cfg, key=key, execute=True, flush=rec.flush), rec,
                [msgspec_replace(_intent(world), min_profit=10**15)])
    [inc] = _of(live, ev.TransactionIncluded)
    receipt = w3.eth.get_transaction_receipt(inc.tx)
    assert receipt["status"] == 0 and inc.status == "reverted" and inc.gas_used == receipt["gasUsed"]
    assert inc.reason.startswith("ProfitBelowMinimum(")
    [failed] = _of(live, ev.OrderFailed)
    assert failed.reason == f"reverted: {inc.reason}"


def msgspec_free_replace(cfg: EvmGatewayConfig, **kw: Any) -> EvmGatewayConfig:
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def test_private_liquidation_goes_as_a_bundle_through_the_relay(world: Any, tmp_path: Path) -> None:
    from tests.test_flashbots import LocalRelay, recover_header

    _fresh(world)
    w3 = world["chain"].w3
    key = key_from_hex(BOT_SECRET, "test")
    auth = key_from_hex(RELAY_SECRET, "test")

    async def go(include: bool, path: Path) -> tuple[list[ev.Event], LocalRelay]:
        relay = await LocalRelay(world["chain"].url).start()
        relay.include = include
        rec = Recorder(path)
        gw = EvmGateway(_config(world), key=key, execute=True, flush=rec.flush,
                        relay=FlashbotsRelay(relay.url, auth, name="local"))
        gw.bind(rec.report)
        await gw.start()
        gw.submit(rec.intent(_intent(world, private=True)))
        if not include:  # the relay left it out: once it was offered, the chain moves on past its target block
            while not _of(rec.events, ev.TransactionBroadcast):
                await asyncio.sleep(0.01)
            await asyncio.to_thread(world["chain"].rpc, "evm_mine", [])
        await gw.close()
        await relay.stop()
        rec.log.close("clean")
        return rec.events, relay

    events, relay = asyncio.run(go(True, tmp_path / "b.db"))
    [signed] = _of(events, ev.TransactionSigned)
    [bcast] = _of(events, ev.TransactionBroadcast)
    [inc] = _of(events, ev.TransactionIncluded)
    assert signed.route == "bundle" and bcast.via == "bundle:local" and bcast.target_block == signed.target_block
    assert inc.status == "success" and w3.eth.get_transaction_receipt(signed.tx)["blockNumber"] == inc.block
    assert _of(events, ev.OrderFilled)
    body, header, payload = relay.requests[-1]
    assert payload["method"] == "eth_sendBundle" and payload["params"][0]["txs"] == [signed.raw]
    assert recover_header(body, header) == (auth.address, True)

    _fresh(world)
    events, relay = asyncio.run(go(False, tmp_path / "d.db"))
    [signed] = _of(events, ev.TransactionSigned)
    [drop] = _of(events, ev.TransactionDropped)
    [failed] = _of(events, ev.OrderFailed)
    assert drop.tx == signed.tx and "bundle not included by its target block" in drop.reason
    assert failed.reason.startswith("dropped: bundle not included")
    assert world["chain"].rpc("eth_getTransactionReceipt", [signed.tx]) is None
    assert w3.eth.get_transaction_count(world["bot"]) == signed.nonce  # its nonce is still free


def test_a_pending_transaction_replaced_on_purpose_lands_once(world: Any, tmp_path: Path) -> None:
    _fresh(world)
    chain, w3 = world["chain"], world["chain"].w3
    nonce0 = w3.eth.get_transaction_count(world["bot"])
    rec = Recorder(tmp_path / "rp.db")
    gw = EvmGateway(_config(world), key=key_from_hex(BOT_SECRET, "test"), execute=True, flush=rec.flush)

    async def go() -> str:
        gw.bind(rec.report)
        await gw.start()
        await asyncio.to_thread(chain.rpc, "evm_setAutomine", [False])
        try:
            gw.submit(rec.intent(_intent(world)))
            await until(lambda: _of(rec.events, ev.TransactionPending), rec)  # in the node's mempool, not mined
            [old] = _of(rec.events, ev.TransactionSigned)
            new = await gw.replace(old.tx, "stuck")
            await asyncio.to_thread(chain.rpc, "evm_mine", [])
        finally:
            await asyncio.to_thread(chain.rpc, "evm_setAutomine", [True])
        await gw.close()
        return new

    new = asyncio.run(go())
    rec.log.close("clean")
    events = rec.events
    old, repl = _of(events, ev.TransactionSigned)
    assert repl.tx == new and repl.replaces == old.tx and repl.nonce == old.nonce == nonce0
    assert repl.max_priority_fee * 10 >= old.max_priority_fee * 11 and repl.max_fee * 10 >= old.max_fee * 11
    [inc] = _of(events, ev.TransactionIncluded)
    [gone] = _of(events, ev.TransactionReplaced)
    assert inc.tx == new and (gone.tx, gone.by) == (old.tx, new)
    assert len(_of(events, ev.OrderFilled)) == 1
    assert w3.eth.get_transaction_count(world["bot"]) == nonce0 + 1
    assert chain.rpc("eth_getTransactionReceipt", [old.tx]) is None


def test_paper_private_is_checked_with_eth_call_bundle_and_sends_nothing(world: Any, tmp_path: Path) -> None:
    from tests.test_flashbots import LocalRelay

    _fresh(world)
    w3 = world["chain"].w3
    head0, nonce0 = w3.eth.block_number, w3.eth.get_transaction_count(world["bot"])

    async def go(intent: ev.OrderIntended, path: Path) -> tuple[list[ev.Event], LocalRelay]:
        relay = await LocalRelay(world["chain"].url).start()
        rec = Recorder(path)
        gw = EvmGateway(_config(world), key=key_from_hex(BOT_SECRET, "test"),
                        relay=FlashbotsRelay(relay.url, key_from_hex(RELAY_SECRET, "test"), name="local"))
        gw.bind(rec.report)
        await gw.start()
        gw.submit(rec.intent(intent))
        await gw.close()
        await relay.stop()
        rec.log.close("clean")
        return rec.events, relay

    events, relay = asyncio.run(go(_intent(world, private=True), tmp_path / "pp.db"))
    assert [type(e).__name__ for e in events] == ["OrderAcknowledged", "OrderFilled", "InventoryChanged",
                                                 "InventoryChanged"]
    [(_, _, call)] = relay.requests
    assert call["method"] == "eth_callBundle" and call["params"][0]["blockNumber"] == hex(head0 + 1)
    events2, _ = asyncio.run(go(msgspec_replace(_intent(world, private=True), min_profit=10**15), tmp_path / "pq.db"))
    [failed] = events2
    assert failed.reason.startswith("would revert (relay local eth_callBundle)")
    assert (w3.eth.block_number, w3.eth.get_transaction_count(world["bot"])) == (head0, nonce0)  # nothing sent


def test_a_broadcast_the_node_refuses_is_dropped_and_its_nonce_reused_after_reconciling(world: Any,
                                                                                      tmp_path: Path) -> None:
    _fresh(world)
    chain, w3 = world["chain"], world["chain"].w3
    nonce0 = w3.eth.get_transaction_count(world["bot"])
    balance = w3.eth.get_balance(world["bot"])
    rec = Recorder(tmp_path / "rf.db")
    gw = EvmGateway(_config(world), key=key_from_hex(BOT_SECRET, "test"), execute=True, flush=rec.flush)

    async def go() -> None:
        gw.bind(rec.report)
        await gw.start()
        await asyncio.to_thread(chain.rpc, "anvil_setBalance", [world["bot"], "0x0"])  # cannot pay for gas
        gw.submit(rec.intent(_intent(world, 1)))
        await gw.drain()
        await asyncio.to_thread(chain.rpc, "anvil_setBalance", [world["bot"], hex(balance)])
        gw.submit(rec.intent(_intent(world, 2)))
        await gw.close()

    asyncio.run(go())
    rec.log.close("clean")
    events = rec.events
    first, second = _of(events, ev.TransactionSigned)
    [drop] = _of(events, ev.TransactionDropped)
    assert drop.tx == first.tx and "not broadcast" in drop.reason
    assert [f.reason.split(":")[0] for f in _of(events, ev.OrderFailed)] == ["dropped"]
    assert len(_of(events, ev.NonceReconciled)) == 2  # asked the chain again before the next send
    assert first.nonce == second.nonce == nonce0  # the hole was filled by the next transaction
    assert w3.eth.get_transaction_count(world["bot"]) == nonce0 + 1 and _of(events, ev.OrderFilled)


def test_through_the_loop_and_engine_the_strategy_sees_its_transaction_to_the_fill(world: Any, tmp_path: Path) -> None:
    from tapedeck.domain.engine import Engine
    from tapedeck.domain.risk import Intent, RiskGate, VenueLimits
    from tapedeck.runtime.loop import Loop

    _fresh(world)
    it = _intent(world)

    class Liquidates:
        name, handles = "liq", (ev.BlockProduced,)
        seen: list[str] = []

        def on_event(self, e: Any, state: Any) -> Any:
            return [Intent("liq", it.venue, it.instrument, "liquidate", it.amount, it.notional, target=it.target,
                           max_priority_fee=it.max_priority_fee, client_id="one", route=it.route)]

        def on_order(self, e: Any, order: Any, state: Any) -> Any:
            self.seen.append(f"{type(e).__name__}:{order.status}")
            return []

    strategy = Liquidates()
    engine = Engine([strategy], RiskGate(default=VenueLimits(10**15, 10**16)))
    log = EventLog.create(tmp_path / "loop.db", Manifest(run_id="", mode="live"))
    gw = EvmGateway(_config(world), key=key_from_hex(BOT_SECRET, "test"), execute=True, flush=log.flush)
    loop = Loop(engine, log, gw)

    async def go() -> None:
        await gw.start()
        loop.feed(ev.BlockProduced(ts=10, source="test", chain="anvil", number=1, base_fee=1, gas_used=0,
                                   gas_limit=30_000_000, next_base_fee=1))
        await gw.close()

    asyncio.run(go())
    log.close("clean")
    assert strategy.seen == ["OrderIntended:intended", "TransactionSubmitted:submitted",
                             "TransactionIncluded:submitted", "OrderFilled:filled"], strategy.seen
    stored = [type(e).__name__ for e in EventLog.open(tmp_path / "loop.db").events()]
    assert stored.index("OrderIntended") < stored.index("TransactionSigned") < stored.index("TransactionIncluded")
    assert not engine.state.orders.get("liq")  # finished: the order left the book of open ones


@pytest.mark.parametrize("rebid", [True, False])
def test_a_transaction_priced_out_is_re_bid_or_dropped(world: Any, tmp_path: Path, rebid: bool) -> None:
    """The base fee jumps past what it bid: the node leaves it out of the next block (anvil also
    drops it from its pool and refuses the same bytes: "max fee per gas less than block base fee").
    With ``replace_after_blocks`` the gateway re-bids at the same nonce and that one lands; without,
    it is dropped and the intent fails, its nonce free for the next transaction."""
    _fresh(world)
    chain, w3 = world["chain"], world["chain"].w3
    nonce0 = w3.eth.get_transaction_count(world["bot"])
    rec = Recorder(tmp_path / "rebid.db")
    cfg = msgspec_free_replace(_config(world), replace_after_blocks=1 if rebid else 0,
                               fees=FeePolicy(headroom_bps=10_000, max_priority_fee_cap=10 * GWEI, max_fee_cap=0))
    gw = EvmGateway(cfg, key=key_from_hex(BOT_SECRET, "test"), execute=True, flush=rec.flush)

    async def go() -> None:
        gw.bind(rec.report)
        await gw.start()
        await asyncio.to_thread(chain.rpc, "evm_setAutomine", [False])
        try:
            gw.submit(rec.intent(_intent(world)))
            await until(lambda: _of(rec.events, ev.TransactionPending), rec)
            [first] = _of(rec.events, ev.TransactionSigned)
            # the base fee jumps above what it bid: the next block leaves it out
            await asyncio.to_thread(chain.rpc, "anvil_setNextBlockBaseFeePerGas", [hex(first.max_fee * 2)])
            await asyncio.to_thread(chain.rpc, "evm_mine", [])
            if rebid:
                await until(lambda: len(_of(rec.events, ev.TransactionBroadcast)) == 2, rec)
                await asyncio.to_thread(chain.rpc, "evm_mine", [])
            await until(lambda: _of(rec.events, ev.OrderFilled) or _of(rec.events, ev.OrderFailed), rec)
        finally:
            await asyncio.to_thread(chain.rpc, "evm_setAutomine", [True])
            await gw.close(wait=False)

    asyncio.run(go())
    rec.log.close("clean")
    signs = _of(rec.events, ev.TransactionSigned)
    first = signs[0]
    if not rebid:
        assert len(signs) == 1
        [drop] = _of(rec.events, ev.TransactionDropped)
        [failed] = _of(rec.events, ev.OrderFailed)
        assert drop.tx == first.tx and "refuses it again: max fee per gas less than block base fee" in drop.reason
        assert failed.reason.startswith("dropped: ") and not gw.nonces.reconciled  # a hole: reconcile before sending
        assert w3.eth.get_transaction_count(world["bot"]) == nonce0
        return
    first, second = signs
    assert second.replaces == first.tx and second.nonce == first.nonce == nonce0 and second.max_fee > 2 * first.max_fee
    [inc] = _of(rec.events, ev.TransactionIncluded)
    [gone] = _of(rec.events, ev.TransactionReplaced)
    assert inc.tx == second.tx and (gone.tx, gone.by) == (first.tx, second.tx)
    rebids = [b for b in _of(rec.events, ev.TransactionBroadcast) if b.tx == second.tx]
    assert len(rebids) == 1 and rebids[0].detail.startswith(f"replaces {first.tx}: ")
    assert not _of(rec.events, ev.TransactionDropped)
    assert w3.eth.get_transaction_count(world["bot"]) == nonce0 + 1 and len(_of(rec.events, ev.OrderFilled)) == 1


class LossyRpc:
    """A JSON-RPC proxy to the node on 127.0.0.1 that forwards the first ``eth_sendRawTransaction``
    and then drops the connection without answering: the sender cannot know the node took it."""

    def __init__(self, node_url: str) -> None:
        self.node_url, self.url, self.runner, self.dropped = node_url, "", None, 0

    async def start(self) -> "LossyRpc":
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/", self.handle)
        self.runner, port = await serve_loopback(app)
        self.url = f"http://127.0.0.1:{port}/"
        return self

    async def handle(self, request: Any) -> Any:
        import aiohttp
        from aiohttp import web

        body = await request.read()
        async with aiohttp.ClientSession() as s:
            async with s.post(self.node_url, data=body, headers={"Content-Type": "application/json"}) as r:
                answer = await r.read()
        if json.loads(body).get("method") == "eth_sendRawTransaction" and not self.dropped:
            self.dropped += 1
            request.transport.close()  # the node has it; the client gets no answer
            raise web.HTTPInternalServerError()
        return web.Response(body=answer, content_type="application/json")


def test_a_lost_answer_to_the_broadcast_is_followed_not_sent_again(world: Any, tmp_path: Path) -> None:
    _fresh(world)
    w3 = world["chain"].w3
    nonce0 = w3.eth.get_transaction_count(world["bot"])

    async def go() -> list[ev.Event]:
        proxy = await LossyRpc(world["chain"].url).start()
        rec = Recorder(tmp_path / "lossy.db")
        cfg = msgspec_free_replace(_config(world), rpc_url=proxy.url)
        gw = EvmGateway(cfg, key=key_from_hex(BOT_SECRET, "test"), execute=True, flush=rec.flush)
        gw.bind(rec.report)
        await gw.start()
        gw.submit(rec.intent(_intent(world)))
        await gw.close()
        await proxy.runner.cleanup()
        assert proxy.dropped == 1
        rec.log.close("clean")
        return rec.events

    events = asyncio.run(go())
    [signed] = _of(events, ev.TransactionSigned)
    [inc] = _of(events, ev.TransactionIncluded)
    assert inc.tx == signed.tx and not _of(events, ev.TransactionDropped) and len(_of(events, ev.OrderFilled)) == 1
    assert not _of(events, ev.TransactionBroadcast)  # no answer, no claim it was accepted; the receipt settles it
    assert [e.tx for e in _of(events, ev.TransactionSubmitted)] == [signed.tx]
    assert w3.eth.get_transaction_count(world["bot"]) == nonce0 + 1


# ----------------------------------------------------------------------------- kill -9 and restart

CHILD = r'''
import asyncio, json, os, signal, sys
from tapedeck.adapters.eventlog import EventLog, Manifest
from tapedeck.domain import events as ev
from tapedeck.live import evm_gateway as g
from tapedeck.live.keys import key_from_env

args = json.loads(sys.argv[1])
cfg = g.EvmGatewayConfig(**args["config"])
key = key_from_env("TAPEDECK_PRIVATE_KEY")
print("key loaded:", key)
path = args["log"]
log = EventLog.open(path, resume=True) if os.path.exists(path) else EventLog.create(path, Manifest(run_id="", mode="live"))
gw = g.EvmGateway(cfg, key=key, execute=True, flush=log.flush)
gw.restore(log.events())
stage = args["stage"]
if stage == "after-sign":  # killed once the signed transaction is saved, before it is broadcast
    async def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)
    gw._broadcast = die
elif stage in ("before-sign", "after-broadcast", "after-included"):  # killed just before recording that
    kill_at = {"before-sign": ev.TransactionSigned, "after-broadcast": ev.TransactionBroadcast,
               "after-included": ev.OrderFilled}[stage]
    orig = gw._record
    def record(e, durable=False):
        if type(e) is kill_at:
            log.flush()  # what came before is durable (the runner commits every few ms)
            os.kill(os.getpid(), signal.SIGKILL)
        orig(e, durable=durable)
    gw._record = record

async def main():
    gw.bind(log.append)
    await gw.start()
    if args.get("intent"):
        i = ev.OrderIntended(**args["intent"])
        gw.submit(log.append(i))
        log.flush()
    await gw.close()
    log.close("clean")
    print("done", gw.health())

asyncio.run(main())
'''


def _child(world: Any, tmp_path: Path, stage: str, intent: ev.OrderIntended | None) -> subprocess.CompletedProcess:
    cfg = _config(world)
    config = {k: getattr(cfg, k) for k in ("chain", "rpc_url", "sender", "liquidator", "aave_pool", "poll_interval", "block_time")}
    config["tokens"], config["pools"] = dict(cfg.tokens), dict(cfg.pools)
    spec = {"config": config, "log": str(tmp_path / "run.db"), "stage": stage, "intent": None}
    if intent is not None:
        spec["intent"] = {f: getattr(intent, f) for f in intent.__struct_fields__ if f != "seq"}
        spec["intent"]["route"] = list(intent.route)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "TAPEDECK_PRIVATE_KEY": BOT_SECRET}
    return subprocess.run([sys.executable, str(script), json.dumps(spec)], capture_output=True, text=True, env=env,
                          timeout=120, cwd=str(ROOT))


def _secretless(*texts: str) -> None:
    for t in texts:
        for needle in (BOT_SECRET, BOT_SECRET[2:], BOT_SECRET[2:].upper(), RELAY_SECRET[2:]):
            assert needle not in t


KILL_AT = {  # stage -> the event the first process is killed just before recording (None: see CHILD)
    "before-sign": "TransactionSigned", "after-sign": None, "after-broadcast": "TransactionBroadcast",
    "after-included": "OrderFilled"}


@pytest.mark.parametrize("stage", list(KILL_AT))
def test_kill_9_at_each_step_then_restart_sends_nothing_twice(world: Any, tmp_path: Path, stage: str) -> None:
    """Killed before signing, after saving the signed bytes (before broadcasting), after the node
    took them (before that was recorded), after recording the inclusion (before the fill): the
    restart reconciles, the chain holds one transaction per nonce, each the recorded one, and the
    first intent ends exactly once (filled, or failed "not sent")."""
    _fresh(world)
    w3 = world["chain"].w3
    nonce0 = w3.eth.get_transaction_count(world["bot"])
    first = _child(world, tmp_path, stage, _intent(world))
    assert first.returncode == -9, first.stderr
    crashed = list(EventLog.open(tmp_path / "run.db").events())
    crashed_names = [type(e).__name__ for e in crashed]
    if KILL_AT[stage]:
        assert KILL_AT[stage] not in crashed_names
    signed = next(iter(_of(crashed, ev.TransactionSigned)), None)
    assert (signed is None) == (stage == "before-sign")
    assert bool(_of(crashed, ev.TransactionBroadcast)) == (stage == "after-included")
    assert bool(_of(crashed, ev.TransactionIncluded)) == (stage == "after-included")
    sent = w3.eth.get_transaction_count(world["bot"]) - nonce0
    assert sent == (0 if stage in ("before-sign", "after-sign") else 1)

    second = _child(world, tmp_path, "normal", _intent(world, private=False))  # restart; then a new intent
    assert second.returncode == 0, second.stderr
    events = list(EventLog.open(tmp_path / "run.db").events())
    recons = _of(events, ev.NonceReconciled)
    assert len(recons) == 2  # the first process's, and the restart's (before anything else was sent)
    recon = recons[-1]
    assert recon.rebroadcast == ((signed.tx,) if stage == "after-sign" else ())
    if stage == "after-broadcast":
        assert signed.tx in recon.open  # found mined: nothing sent again
    signs = _of(events, ev.TransactionSigned)
    first_intent = next(e.seq for e in events if type(e) is ev.OrderIntended)
    first_end = [e for e in events if type(e) in (ev.OrderFilled, ev.OrderFailed) and e.intent == first_intent]
    assert len(first_end) == 1  # the crashed intent ends once
    if stage == "before-sign":
        assert [s.nonce for s in signs] == [nonce0]  # only the new intent's: the nonce was never used
        assert first_end[0].reason.startswith("not sent")
    else:
        assert [s.nonce for s in signs] == [nonce0, nonce0 + 1]  # the new intent took the next nonce
        assert signs[0].tx == signed.tx and signs[0].raw == signed.raw
        assert type(first_end[0]) is ev.OrderFilled
    # exactly one transaction per nonce on chain, and it is the recorded one, followed to its receipt once
    assert w3.eth.get_transaction_count(world["bot"]) == nonce0 + len(signs)
    for s in signs:
        assert w3.eth.get_transaction_receipt(s.tx)["status"] == 1 and w3.eth.get_transaction(s.tx)["nonce"] == s.nonce
    assert sorted(i.tx for i in _of(events, ev.TransactionIncluded)) == sorted(s.tx for s in signs)
    # the planted key: nowhere in the log's bytes or any output
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("run.db*"))
    for needle in (BOT_SECRET[2:], BOT_SECRET[2:].upper()):
        assert needle.encode() not in blob and bytes.fromhex(BOT_SECRET[2:]) not in blob
    _secretless(first.stdout, first.stderr, second.stdout, second.stderr)
    assert "key loaded: SigningKey(address=" in second.stdout
