"""The sim's Aave market as events: every seed opens every borrower, the events say exactly what the
chain's receipts say (decoded independently by web3 from the npm artifacts' ABIs), folding them
reproduces every borrower's scaled balances and ``getUserAccountData``, and a sim run verifies and
is the same for the same seed."""
from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner
from web3._utils.events import get_event_data

from tapedeck.domain import aave_v3 as aave
from tapedeck.domain import events as ev
from tapedeck.sim.aave_draws import MARGIN_BPS, MarketTerms, draw_positions, max_borrow_base
from tapedeck.sim.chain.artifacts import node_modules
from tapedeck.sim.scenario import Borrowers, ScenarioError, load_scenario, parse_scenario

# the simulated market's terms (sim.chain.aave_v3.WETH / USDC) at eth-crash's start price
CRASH = MarketTerms(collateral_decimals=18, collateral_price=3000 * 10**8, ltv=8000, liquidation_threshold=8250,
                    debt_decimals=6, debt_price=10**8)
EDGE = Borrowers(count=200, health_factor_min=Decimal(8250) / Decimal(8000), health_factor_max=Decimal("1.0313"),
                 collateral_min=Decimal("0.01"), collateral_max=Decimal("50000000"))

SMALL = """
name = "aave-small"
description = "a short crash on a small Aave market: for the event tests"
seed = 5
duration = 720
start = "2024-03-01T00:00:00Z"

[reference]
instrument = "ETH-USD"
start_price = "3000.00"
volatility = 0.4
tick = 1.0

[[reference.moves]]
at = 30
over = 300
change = "-0.25"

[chains.ethereum]
block_interval = 12
gas_limit = 30_000_000
initial_base_fee = 10_000_000_000
background_utilization = 0.5
background_max_priority_fee = 2_000_000_000

[oracles.eth-usd]
chain = "ethereum"
deviation_bps = 50
heartbeat = 3600
decimals = 8

[agents.searchers]
count = 2
latency = { base_ms = 40, jitter_ms = 60 }
bidding = "fixed"
priority_fee = 5_000_000_000

[agents.borrowers]
count = 8
health_factor_min = "1.04"
health_factor_max = "1.30"
collateral_min = "2000"
collateral_max = "200000"
"""


def _needs_aave() -> None:
    if not (node_modules() / "@aave" / "core-v3").is_dir():
        pytest.skip(f"@aave/core-v3 not installed under {node_modules()}")


def _pool_accepts(collateral: int, debt: int, m: MarketTerms) -> bool:
    """``ValidationLogic.validateBorrow`` (v3.0) for a first borrow against a fresh supply (index 1 ray)."""
    collateral_base = collateral * m.collateral_price // 10**m.collateral_decimals
    amount_base = m.debt_price * debt // 10**m.debt_decimals
    return debt > 0 and aave.percent_div(amount_base, m.ltv) <= collateral_base


# ----------------------------------------------------------------------------- the draw, pure


@pytest.mark.parametrize("borrowers", [load_scenario("eth-crash").agents.borrowers, EDGE], ids=["eth-crash", "edge"])
def test_every_drawn_position_is_one_the_pool_opens_for_thousands_of_seeds(borrowers: Borrowers) -> None:
    """eth-crash's own population for 2,000 seeds, and one drawn right at the openable line
    (health factor LT/LTV, tiny and huge positions): every borrow passes the Pool's check, with the
    margin to spare, and HFs are as drawn unless the borrowable line capped them."""
    for seed in range(2_000 if borrowers is not EDGE else 100):
        for p in draw_positions(random.Random(seed), borrowers, Decimal("3000"), CRASH):
            assert _pool_accepts(p.collateral, p.debt, CRASH)
            assert p.debt_base(CRASH) <= max_borrow_base(p.collateral, CRASH)
            assert _pool_accepts(p.collateral, p.debt * (10_000 + MARGIN_BPS // 2) // 10_000, CRASH)  # room left
            hf = Decimal(p.collateral * CRASH.collateral_price // 10**18 * CRASH.liquidation_threshold) / \
                (Decimal(p.debt_base(CRASH)) * 10_000)
            assert hf >= min(p.drawn_health_factor, Decimal("1.0324")) * Decimal("0.9999")


def test_a_position_too_small_to_borrow_is_a_scenario_error_naming_the_field() -> None:
    tiny = Borrowers(count=3, collateral_min=Decimal("0.000001"), collateral_max=Decimal("0.000002"))
    with pytest.raises(ScenarioError, match=r"agents\.borrowers\.collateral_min"):
        draw_positions(random.Random(1), tiny, Decimal("3000"), CRASH)


# ----------------------------------------------------------------------------- on the real market


@pytest.mark.contract
def test_a_sample_of_draws_is_within_available_borrows_and_opens_on_the_real_pool() -> None:
    """Positions from several seeds (and from the edge population) supplied on the real market:
    ``availableBorrowsBase`` covers each drawn debt, and the borrow goes through."""
    _needs_aave()
    from tapedeck.sim.chain.aave_v3 import deploy_aave_v3
    from tapedeck.sim.chain.pyevm import PyEvmChain

    chain = PyEvmChain(start_time=1_700_000_000)
    m = deploy_aave_v3(chain.w3)
    m.set_price("WETH", CRASH.collateral_price)
    m.supply(chain.accounts[0], "USDC", 10**15 * 10**6, mint=True)
    sample = [p for seed in (1, 9, 10) for p in draw_positions(random.Random(seed), load_scenario(
        "eth-crash").agents.borrowers, Decimal("3000"), CRASH)[:3]]
    sample += draw_positions(random.Random(0), EDGE, Decimal("3000"), CRASH)[:4]
    for i, p in enumerate(sample):
        user = chain.accounts[1 + i % 9]
        m.supply(user, "WETH", p.collateral, mint=True)
        before = m.user_account_data(user)
        m.borrow(user, "USDC", p.debt)
        after = m.user_account_data(user)
        assert after[1] - before[1] >= p.debt_base(CRASH) - 1 and after[5] > 10**18
        assert before[2] >= after[1] - before[1]  # availableBorrowsBase covered what was borrowed


@pytest.mark.slow
@pytest.mark.contract
def test_every_seed_of_a_range_opens_every_eth_crash_borrower() -> None:
    """Seeds 1-12 of eth-crash (1, 9 and 10 used to die with ``borrow reverted: 36``): the whole
    population opens on the real market, each borrower at its drawn health factor or above."""
    _needs_aave()
    for seed in range(1, 13):
        agents, _, _, _ = _start(load_scenario("eth-crash", seed=seed))
        assert len(agents.borrowers) == 30
        hfs = [d[5] for d in agents.market.users_account_data([b.address for b in agents.borrowers])]
        assert min(hfs) > 1.03 * 10**18


# ----------------------------------------------------------------------------- events == chain


def _start(sc: Any) -> tuple[Any, list[ev.Event], list[Any], Any]:
    """The Aave agents of ``sc`` started on a fresh py-evm chain, as ``SimWorld.run`` wires them:
    (agents, what they delivered, the chain's block results from now on, the world)."""
    from tapedeck.sim.aave_agents import AaveAgents
    from tapedeck.sim.kernel import Bus
    from tapedeck.sim.onchain import ChainSide
    from tapedeck.sim.recording import SETUP_SECONDS, chain_backend
    from tapedeck.sim.world import World

    world = World(sc, bus=Bus(record=False))
    backend = chain_backend("pyevm", sc.start_ns // 10**9 - SETUP_SECONDS)
    side = ChainSide(sc.chains[0].name, backend, world.chains[sc.chains[0].name], world.clock)
    delivered: list[ev.Event] = []
    blocks: list[Any] = []
    agents = AaveAgents(sc, world, side, lambda _chain, events: delivered.extend(events))
    agents.start(backend.accounts[0])
    side.subscribe(blocks.append)
    return agents, delivered, blocks, world


@pytest.fixture(scope="module")
def small_run() -> tuple[Any, list[ev.Event], list[Any], list[tuple[int, Any]]]:
    """The small crash run on a world without the engine: every delivered event, every block, and
    at each AaveAccountObserved what ``getUserAccountData`` said at that moment."""
    _needs_aave()
    from tapedeck.sim.processes import OracleRound

    agents, delivered, blocks, world = _start(parse_scenario(SMALL))
    reads: list[tuple[int, Any]] = []
    deliver = agents.deliver

    def checking(chain: str, events: list[ev.Event]) -> None:
        for e in events:
            if type(e) is ev.AaveAccountObserved:
                reads.append((len(delivered) + events.index(e),
                              agents.market.user_account_data(agents.market.w3.to_checksum_address(e.user))))
        deliver(chain, events)

    agents.deliver = checking
    world.bus.subscribe(agents.on_oracle, OracleRound)
    world.run()
    return agents, delivered, blocks, reads


WEB3_NAMES = {  # event type -> (log name, {field: log arg})
    ev.AaveReserveDataUpdated: ("ReserveDataUpdated", {"reserve": "reserve", "liquidity_rate": "liquidityRate",
                                                      "liquidity_index": "liquidityIndex",
                                                      "variable_borrow_index": "variableBorrowIndex"}),
    ev.AaveSupplied: ("Supply", {"reserve": "reserve", "on_behalf_of": "onBehalfOf", "amount": "amount"}),
    ev.AaveBorrowed: ("Borrow", {"reserve": "reserve", "on_behalf_of": "onBehalfOf", "amount": "amount",
                                 "rate_mode": "interestRateMode"}),
    ev.AaveLiquidationObserved: ("LiquidationCall", {"user": "user", "debt_to_cover": "debtToCover",
                                                     "liquidated_collateral": "liquidatedCollateralAmount",
                                                     "liquidator": "liquidator"}),
    ev.AaveATokenTransferred: ("BalanceTransfer", {"sender": "from", "recipient": "to", "scaled_amount": "value",
                                                   "index": "index"}),
}


def _web3_logs(agents: Any, receipts: list[Any]) -> dict[tuple[str, int], tuple[str, dict[str, Any]]]:
    """The market's logs in ``receipts`` decoded by web3 from the artifacts' own ABIs (not ours)."""
    from tapedeck.sim.chain.artifacts import load

    w3, m = agents.market.w3, agents.market
    abis = {m.pool.address: load("@aave/core-v3", "Pool").abi, m.oracle.address: load("@aave/core-v3", "AaveOracle").abi}
    for a in m.atokens.values():
        abis[a.address] = load("@aave/core-v3", "AToken").abi
    out = {}
    for r in receipts:
        for log in r["logs"]:
            abi = abis.get(log["address"])
            if abi is None:
                continue
            for entry in (e for e in abi if e["type"] == "event"):
                try:
                    d = get_event_data(w3.codec, entry, log)
                except Exception:  # noqa: BLE001 - not this event
                    continue
                args = {k: v.lower() if isinstance(v, str) else v for k, v in d["args"].items()}
                out[("0x" + bytes(log["transactionHash"]).hex(), int(log["logIndex"]))] = (d["event"], args)
                break
    return out


WANTED = {"ReserveDataUpdated", "Supply", "Withdraw", "Borrow", "Repay", "ReserveUsedAsCollateralEnabled",
          "ReserveUsedAsCollateralDisabled", "FlashLoan", "UserEModeSet", "LiquidationCall", "BalanceTransfer"}


@pytest.mark.contract
def test_the_events_are_the_receipts_logs_one_to_one(small_run: Any) -> None:
    agents, delivered, blocks, _ = small_run
    receipts = [r for _, _, rs in agents.setup_blocks for r in rs] + \
        [o.receipt for b in blocks for o in b.outcomes]
    theirs = {k: v for k, v in _web3_logs(agents, receipts).items() if v[0] in WANTED}
    ours = {(e.tx, e.log_index): e for e in delivered if isinstance(e, (ev.AaveLog, ev.AaveLiquidationObserved))}
    assert set(ours) == set(theirs) and len(ours) == len([e for e in delivered
                                                          if isinstance(e, (ev.AaveLog, ev.AaveLiquidationObserved))])
    for key, e in ours.items():
        name, args = theirs[key]
        want_name, fields = WEB3_NAMES.get(type(e), (name, {}))
        assert name == want_name
        for field, arg in fields.items():
            assert getattr(e, field) == args[arg], (key, field)
    # block_ts: the chain block's own timestamp (the set-up's blocks are before the sim's start)
    w3 = agents.market.w3
    stamp = {"0x" + bytes(r["transactionHash"]).hex(): w3.eth.get_block(r["blockNumber"])["timestamp"] for r in receipts}
    assert all(e.block_ts == stamp[e.tx] > 0 for e in ours.values())
    kinds = {type(e) for e in ours.values()}
    assert {ev.AaveSupplied, ev.AaveBorrowed, ev.AaveReserveDataUpdated, ev.AaveCollateralToggled,
            ev.AaveLiquidationObserved, ev.AaveATokenTransferred} <= kinds  # the protocol fee moves as aTokens
    # in the chain's order: (block, position of the tx in it, log index)
    order = [(e.block, e.log_index) for e in delivered if isinstance(e, ev.AaveLog) and e.block > 0]
    assert order == sorted(order)


@pytest.mark.contract
def test_the_start_is_a_snapshot_then_the_setup_logs_then_the_reserves_again(small_run: Any) -> None:
    agents, delivered, _, _ = small_run
    m = agents.market
    head = [type(e).__name__ for e in delivered[:4]]
    assert head == ["AaveReserveConfigured", "AaveReserveConfigured", "OracleUpdated", "OracleUpdated"]
    weth = delivered[0] if delivered[0].reserve == m.asset("WETH").lower() else delivered[1]
    assert (weth.decimals, weth.ltv, weth.liquidation_threshold, weth.liquidation_bonus) == (18, 8000, 8250, 10500)
    assert weth.a_token == m.atokens[m.asset("WETH")].address.lower()
    assert weth.price_feed == delivered[2].feed or weth.price_feed == delivered[3].feed
    # every price move on chain: the reserve's new feed, then its answer, equal to the oracle's price then
    moves = [i for i, e in enumerate(delivered) if type(e) is ev.AaveReserveConfigured and e.block > 0]
    assert moves
    for i in moves:
        assert type(delivered[i + 1]) is ev.OracleUpdated and delivered[i + 1].feed == delivered[i].price_feed
    assert agents.fold.reserves[m.asset("WETH").lower()].price == m.price("WETH")


@pytest.mark.contract
def test_folding_the_events_gives_every_borrowers_balances_and_account_data(small_run: Any) -> None:
    """From the events alone (``sim.aave_fold``, chain time from the blocks): the scaled aToken and
    debt balances and ``getUserAccountData`` of every borrower equal the chain's at the end, and every
    ``AaveAccountObserved`` equalled ``getUserAccountData`` when it was emitted."""
    from tapedeck.sim.aave_fold import AaveFold

    agents, delivered, blocks, reads = small_run
    m = agents.market
    times = {b.number: b.ts // 10**9 for b in blocks if b.outcomes}
    setup_time = {"0x" + bytes(r["transactionHash"]).hex(): t for _, t, rs in agents.setup_blocks for r in rs}
    fold = AaveFold()
    for e in delivered:
        t = getattr(e, "block", 0) and times.get(e.block, 0)
        fold.apply(e, t or setup_time.get(getattr(e, "tx", ""), 0))
    head = m.latest_timestamp()
    weth, usdc = m.asset("WETH"), m.asset("USDC")
    for b in agents.borrowers:
        user = b.address.lower()
        assert fold.balance(user, weth.lower()).scaled_collateral == \
            m.atokens[weth].functions.scaledBalanceOf(b.address).call()
        assert fold.balance(user, usdc.lower()).scaled_debt == \
            m.variable_debt[usdc].functions.scaledBalanceOf(b.address).call()
        a = fold.account(user, head)
        assert (a.total_collateral_base, a.total_debt_base, a.available_borrows_base, a.liquidation_threshold, a.ltv,
                a.health_factor) == m.user_account_data(b.address)
    assert reads
    for i, chain_says in reads:
        e = delivered[i]
        assert (e.total_collateral_base, e.total_debt_base, e.liquidation_threshold, e.health_factor) == \
            (chain_says[0], chain_says[1], chain_says[3], chain_says[5])
    assert agents.liquidations == len([e for e in delivered if type(e) is ev.AaveLiquidationObserved]) > 0


@pytest.mark.contract
def test_a_sim_run_verifies_and_the_same_seed_gives_the_same_digest(tmp_path: Any) -> None:
    _needs_aave()
    from tapedeck.cli import main

    scenario = tmp_path / "aave-small.toml"
    scenario.write_text(SMALL)
    digests = []
    for name in ("a.db", "b.db"):
        out = tmp_path / name
        r = CliRunner().invoke(main, ["sim", str(scenario), "--out", str(out)])
        assert r.exit_code == 0, r.output
        v = CliRunner().invoke(main, ["replay", str(out), "--verify"])
        assert v.exit_code == 0 and "verified" in v.output, v.output
        digests.append(v.output.strip().split("digest ")[-1])
    assert digests[0] == digests[1] and len(digests[0]) == 64
