"""Bundles in the sim's block builder, on the real chain (py-evm) with the real Aave market and
tapedeck's executor: a bundle goes in whole and in order at the top of the block or not at all; one
that would revert is left out at no cost to its sender; bundles compete by what they pay the builder
(priority fee x gas, or a coinbase transfer); a copycat watching the public mempool takes a public
liquidation from the bot, and cannot see a private one. Execution events come from the receipts."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from tapedeck.domain import events as ev
from tapedeck.sim.bundles import BundleBuilder
from tapedeck.sim.chain import uniswap_v2 as uv2
from tapedeck.sim.chain.aave_v3 import deploy_aave_v3
from tapedeck.sim.chain.artifacts import ArtifactMissing
from tapedeck.sim.chain.executor import LIQUIDATE_GAS, Hop, deploy_executor
from tapedeck.sim.chain.pyevm import PyEvmChain, call_data, transact
from tapedeck.sim.gateway import AaveLiquidations, SimGateway
from tapedeck.sim.kernel import NS, Bus
from tapedeck.sim.onchain import BlockResult, ChainSide
from tapedeck.sim.scenario import load_scenario
from tapedeck.sim.searchers import add_copycats
from tapedeck.sim.world import World

pytestmark = [pytest.mark.contract, pytest.mark.slow]

GWEI, E6, E8, E18 = 10**9, 10**6, 10**8, 10**18
MAX = 2**256 - 1


def _backend(name: str, start: int) -> Any:
    if name == "pyevm":
        return PyEvmChain(start_time=start)
    from tapedeck.sim.chain.anvil import AnvilChain, anvil_binary

    try:
        anvil_binary()
    except ArtifactMissing as e:
        pytest.skip(str(e))
    return AnvilChain(start_time=start)


class Sim:
    """A quiet world's chain with an Aave market, a funded WETH/USDC pair and one liquidatable borrower."""

    bot_before: tuple[int, int] = (0, 0)  # the bot's (nonce, ETH) when its intent was submitted
    rival_tx: Any = None  # a rival searcher's public liquidation (_run_bot(public_tip=...))

    def __init__(self, hf: float = 0.9, backend: str = "pyevm") -> None:
        sc = load_scenario("quiet", seed=4)
        self.world = World(sc, bus=Bus(record=False))
        self.backend = _backend(backend, sc.start_ns // NS - 3600)
        self.side = ChainSide("ethereum", self.backend, self.world.chains["ethereum"], self.world.clock)
        try:
            self.market = deploy_aave_v3(self.backend.w3)
        except ArtifactMissing as e:
            pytest.skip(f"contract builds missing: {e}")
        self.builder = BundleBuilder(self.side)
        self.results: list[BlockResult] = []
        self.side.subscribe(self.results.append)
        a = self.backend.accounts
        self.admin, self.user, self.lp = a[0], a[2], a[9]
        m = self.market
        m.supply(self.lp, "USDC", 100_000_000 * E6, mint=True)
        m.supply(self.user, "WETH", 100 * E18, mint=True)
        m.borrow(self.user, "USDC", 130_000 * E6)  # HF 1.27 at $2000
        price = int(2000 * E8 * hf / 1.269)
        m.set_price("WETH", price)
        factory, _ = uv2.deploy_factory_and_router(self.backend.w3, m.asset("WETH"), self.admin)
        self.pair = uv2.create_pair(self.backend.w3, factory, m.tokens["WETH"], m.tokens["USDC"], self.admin)
        for token in (self.pair.token0, self.pair.token1):
            amount = 50_000 * E18 if token.address == m.asset("WETH") else 50_000 * price // 100  # USDC 6 dp
            m.mint(token.address, self.pair.pair.address, amount)
        transact(self.backend.w3, self.pair.pair.functions.mint(self.admin), self.admin, 300_000)
        self.t0 = self.world.clock.start_ns

    def outcomes(self) -> dict[str, Any]:
        return {o.tx.id: o for r in self.results for o in r.outcomes + r.dropped}

    def liquidation(self, who: str, tip: int) -> dict[str, Any]:
        m = self.market
        m.mint("USDC", who, 10**9 * E6)
        m.approve("USDC", who)
        fn = m.pool.functions.liquidationCall(m.asset("WETH"), m.asset("USDC"), self.user, MAX, False)
        return dict(sender=who, to=m.pool.address, data=call_data(fn), gas=900_000, max_priority_fee=tip, call=fn)


def _transfer(sim: Sim, sender: str, to: str, value: int, tip: int = GWEI) -> dict[str, Any]:
    return dict(sender=sender, to=to, data=b"", gas=21_000, max_priority_fee=tip, value=value)


def test_a_bundle_goes_in_whole_and_in_order_among_the_public_transactions_by_payment_per_gas() -> None:
    sim = Sim()
    a, x = sim.backend.accounts[3], sim.backend.accounts[4]
    before = sim.backend.w3.eth.get_balance(x)
    b = sim.builder.send([_transfer(sim, a, x, 1), _transfer(sim, a, x, 2), _transfer(sim, x, a, 3)],
                         arrival_ns=sim.t0 + NS)  # pays 1 gwei per gas
    rich = sim.side.submit(sim.backend.accounts[5], to=x, data=b"", gas=21_000, max_priority_fee=100 * GWEI,
                           arrival_ns=sim.t0 + NS)  # pays more per gas: goes before the bundle
    poor = sim.side.submit(sim.backend.accounts[6], to=x, data=b"", gas=21_000, max_priority_fee=GWEI // 2,
                           arrival_ns=sim.t0 + NS)  # pays less: after it
    sim.world.run(until=12)
    out = sim.outcomes()
    got = [out[t.id] for t in b.txs]
    assert [o.status for o in got] == ["success"] * 3
    first = got[0].index
    assert [o.index for o in got] == [first, first + 1, first + 2]  # whole, in order, nothing in between
    assert out[rich.id].index < first and out[poor.id].index > first + 2
    assert [out[rich.id].receipt["transactionIndex"]] + [o.receipt["transactionIndex"] for o in got] + \
        [out[poor.id].receipt["transactionIndex"]] == [0, 1, 2, 3, 4]
    assert sim.backend.w3.eth.get_balance(x) == before + 1 + 2 - 3 - got[2].receipt["gasUsed"] * \
        got[2].receipt["effectiveGasPrice"]
    assert [o.tx.nonce for o in got] == [0, 1, 0]  # the builder's nonces, in the order they run


def test_a_bundle_with_one_reverting_transaction_is_left_out_whole_at_no_cost() -> None:
    sim = Sim()
    a, x = sim.backend.accounts[3], sim.backend.accounts[4]
    w3 = sim.backend.w3
    usdc = sim.market.tokens["USDC"]
    too_much = usdc.functions.transfer(x, 10**30)  # a holds no USDC: reverts
    eth_a, eth_x, nonce_a = w3.eth.get_balance(a), w3.eth.get_balance(x), w3.eth.get_transaction_count(a)
    b = sim.builder.send([_transfer(sim, a, x, 10**18),
                          dict(sender=a, to=usdc.address, data=call_data(too_much), gas=100_000,
                               max_priority_fee=GWEI, call=too_much)], arrival_ns=sim.t0 + NS)
    sim.world.run(until=24)
    out = sim.outcomes()
    assert all(not out[t.id].included for t in b.txs)
    assert all(out[t.id].reason.startswith("bundle left out: would revert") for t in b.txs)
    assert (w3.eth.get_balance(a), w3.eth.get_balance(x), w3.eth.get_transaction_count(a)) == (eth_a, eth_x, nonce_a)
    assert sim.builder.left_out == 1 and sim.builder.included == 0
    # the sender's next transaction takes the nonce the left-out bundle never used
    again = sim.side.submit(a, to=x, data=b"", gas=21_000, max_priority_fee=GWEI, arrival_ns=sim.world.clock.now_ns)
    sim.world.run(until=36)
    assert sim.outcomes()[again.id].status == "success" and again.nonce == nonce_a


def test_the_bundle_that_pays_the_builder_more_wins_the_same_liquidation() -> None:
    sim = Sim(hf=0.9)  # below 0.95: the first liquidation may take all the debt, the second reverts
    rich, poor = sim.backend.accounts[6], sim.backend.accounts[7]
    poor_tx, rich_tx = sim.liquidation(poor, 3 * GWEI), sim.liquidation(rich, 5 * GWEI)
    w3 = sim.backend.w3
    poor_before = (w3.eth.get_transaction_count(poor), w3.eth.get_balance(poor))
    low = sim.builder.send([poor_tx], arrival_ns=sim.t0 + NS)
    high = sim.builder.send([rich_tx], arrival_ns=sim.t0 + 2 * NS)
    sim.world.run(until=12)
    out = sim.outcomes()
    assert out[high.txs[0].id].status == "success"
    loser = out[low.txs[0].id]
    assert not loser.included and "reverts after a better-paying bundle" in loser.reason and "45" in loser.reason
    assert (w3.eth.get_transaction_count(poor), w3.eth.get_balance(poor)) == poor_before  # lost, paid nothing
    assert sim.market.balance_of("USDC", poor) == 10**9 * E6


def test_a_coinbase_transfer_outbids_a_higher_priority_fee() -> None:
    sim = Sim(hf=0.9)
    bot, rival = sim.backend.accounts[1], sim.backend.accounts[6]
    executor = deploy_executor(sim.market, bot)
    debt = sim.market.variable_debt[sim.market.asset("USDC")].functions.balanceOf(sim.user).call()
    fn = executor.liquidate_call("WETH", "USDC", sim.user, debt, [Hop(sim.pair.pair.address)], 0)
    # the rival tips 10 gwei x ~300k gas = 0.003 ETH; the bot tips 1 gwei and pays 0.05 ETH to the coinbase
    rival_b = sim.builder.send([sim.liquidation(rival, 10 * GWEI)], arrival_ns=sim.t0 + NS)
    bot_b = sim.builder.send([dict(sender=bot, to=executor.address, data=call_data(fn), gas=LIQUIDATE_GAS,
                                   max_priority_fee=GWEI, value=5 * 10**16, call=fn)], arrival_ns=sim.t0 + 2 * NS)
    sim.world.run(until=12)
    out = sim.outcomes()
    assert out[bot_b.txs[0].id].status == "success"
    assert not out[rival_b.txs[0].id].included
    [log] = sim.market.liquidation_logs(out[bot_b.txs[0].id].receipt)
    assert log["liquidator"] == executor.address


def _intent(sim: Sim, gateway: AaveLiquidations, private: bool, tip: int = 2 * GWEI) -> ev.OrderIntended:
    m = sim.market
    debt = m.variable_debt[m.asset("USDC")].functions.balanceOf(sim.user).call()
    usdc, weth = m.asset("USDC").lower(), m.asset("WETH").lower()
    return ev.OrderIntended(seq=7, ts=sim.t0 + NS, source="test", strategy="aave", venue=gateway.venue,
                            instrument=f"{weth}/{usdc}", side="liquidate", amount=debt, notional=debt,
                            target=sim.user.lower(), max_priority_fee=tip, client_id="c1",
                            route=(sim.pair.pair.address.lower(),), min_profit=0, profit_asset=usdc, private=private)


def _run_bot(private: bool, copycat: bool, backend: str = "pyevm", rival_tip: int = 0,
             public_tip: int = 0) -> tuple[Sim, list[ev.Event], Any]:
    sim = Sim(hf=0.9, backend=backend)
    bot = sim.backend.accounts[1]
    gateway = AaveLiquidations(SimpleNamespace(market=sim.market, side=sim.side, world=sim.world), bot)
    routes = SimGateway()
    routes.add(gateway.venue, gateway)
    reports: list[ev.Event] = []
    routes.bind(reports.append)
    cat = add_copycats(sim.side, sim.market, sim.admin, 1, latency_ns=50_000_000)[0] if copycat else None
    intent = _intent(sim, gateway, private)
    if private:  # CONTRACT.md's name of the market reaches the same executor
        intent = msgspec.structs.replace(intent, venue="ethereum:aave")
    sim.bot_before = (sim.backend.w3.eth.get_transaction_count(bot), sim.backend.w3.eth.get_balance(bot))
    routes.submit(intent)
    if rival_tip:  # a rival searcher's own bundle for the same borrower
        sim.builder.send([sim.liquidation(sim.backend.accounts[6], rival_tip)], arrival_ns=sim.t0 + NS)
    if public_tip:  # a rival searcher's public liquidationCall of the same borrower
        rtx = sim.liquidation(sim.backend.accounts[6], public_tip)
        sim.rival_tx = sim.side.submit(rtx["sender"], to=rtx["to"], data=rtx["data"], gas=rtx["gas"],
                                       max_priority_fee=public_tip, arrival_ns=sim.t0 + NS, call=rtx["call"])
    try:
        sim.world.run(until=14)
    finally:
        if hasattr(sim.backend, "close"):
            sim.backend.close()  # anvil: reads after the run are not needed beyond this point
    return sim, reports, cat


@pytest.mark.parametrize("private", [False, True])
def test_without_a_copycat_both_submissions_liquidate_through_the_executor(private: bool) -> None:
    sim, reports, _ = _run_bot(private, copycat=False)
    kinds = [type(e).__name__ for e in reports]
    assert kinds == ["TransactionSubmitted", "TransactionIncluded", "OrderFilled", "InventoryChanged",
                     "InventoryChanged"]
    sub, inc, fill, weth, usdc = reports
    assert inc.status == "success" and fill.fee == inc.gas_used * inc.gas_price
    assert (sub.nonce == -1) is private  # a bundle's nonce is the builder's, at inclusion
    [log] = sim.market.liquidation_logs(sim.outcomes()[sub.tx].receipt)
    assert (fill.amount, fill.notional) == (log["liquidatedCollateralAmount"], log["debtToCover"])
    assert weth.asset == "WETH" and weth.delta == -fill.amount and usdc.asset == "USDC"
    profit = usdc.delta - fill.notional  # what the bot's USDC gained: the executor's profit
    bot_usdc = sim.market.balance_of("USDC", sim.backend.accounts[1])
    assert profit > 0 and bot_usdc == 50_000_000 * E6 + profit


@pytest.mark.parametrize("backend", ["pyevm", "anvil"])
def test_a_copycat_takes_a_public_liquidation_and_never_sees_a_private_one(backend: str) -> None:
    sim, public, cat = _run_bot(private=False, copycat=True, backend=backend)
    assert cat.copied == 1 and cat.won == 1
    failed = [e for e in public if type(e) is ev.OrderFailed]
    inc = [e for e in public if type(e) is ev.TransactionIncluded]
    assert len(failed) == 1 and inc[0].status == "reverted"  # costs the bot gas
    assert "lost race: 45" in failed[0].reason and cat.address.lower() in failed[0].reason
    sim, private, cat = _run_bot(private=True, copycat=True, backend=backend)
    assert cat.copied == 0
    assert any(type(e) is ev.OrderFilled for e in private)


@pytest.mark.parametrize("rival_tip", [50 * GWEI, GWEI])
def test_a_public_liquidation_paying_more_per_gas_goes_before_the_bots_bundle_and_wins(rival_tip: int) -> None:
    """The bot's bundle pays 2 gwei per gas: a searcher's public liquidationCall of the same borrower
    at 50 gwei goes first and takes it (the bundle is left out, costing nothing); at 1 gwei it goes
    after the bundle and reverts, paying its gas."""
    sim, reports, _ = _run_bot(private=True, copycat=False, public_tip=rival_tip)
    rival, bot = sim.backend.accounts[6], sim.backend.accounts[1]
    out = sim.outcomes()[sim.rival_tx.id]
    assert out.included
    if rival_tip > 2 * GWEI:
        assert out.status == "success"
        assert [type(e).__name__ for e in reports] == ["TransactionSubmitted", "TransactionDropped", "OrderFailed"]
        assert "bundle left out: reverts after a better-paying transaction or better-paying bundle: lost race: 45" in \
            reports[-1].reason and rival.lower() in reports[-1].reason
        assert (sim.backend.w3.eth.get_transaction_count(bot), sim.backend.w3.eth.get_balance(bot)) == sim.bot_before
    else:
        assert out.status == "reverted" and out.gas_used > 0  # second: nothing left to liquidate
        inc = [e for e in reports if type(e) is ev.TransactionIncluded]
        assert [e.status for e in inc] == ["success"] and any(type(e) is ev.OrderFilled for e in reports)
        assert inc[0].block == out.block and inc[0].index < out.index  # the bundle went first, same block


def test_a_private_liquidation_outbid_by_a_rival_bundle_is_left_out_at_no_cost_naming_the_winner() -> None:
    sim, reports, _ = _run_bot(private=True, copycat=False, rival_tip=50 * GWEI)
    assert [type(e).__name__ for e in reports] == ["TransactionSubmitted", "TransactionDropped", "OrderFailed"]
    failed = reports[-1]
    assert "bundle left out: reverts after a better-paying bundle: lost race: 45" in failed.reason
    assert sim.backend.accounts[6].lower() in failed.reason  # who liquidated first
    bot = sim.backend.accounts[1]
    assert (sim.backend.w3.eth.get_transaction_count(bot), sim.backend.w3.eth.get_balance(bot)) == sim.bot_before
