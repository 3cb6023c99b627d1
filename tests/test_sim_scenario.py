"""Scenario files: the shipped ones load; every kind of bad field is named with its file and path."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tapedeck.sim.scenario import (
    REFERENCE,
    SCENARIO_DIR,
    Move,
    ScenarioError,
    derive_rng,
    list_scenarios,
    load_scenario,
    parse_scenario,
)

SHIPPED = ["cex-dex-dislocation", "eth-crash", "oracle-jump", "perp-taker-flow", "quiet"]

MINIMAL = """
duration = 60
[reference]
start_price = "3000.00"
"""

FULL = """
name = "t"
seed = 9
duration = 600
[reference]
start_price = "3000.00"
volatility = 0.5
[[reference.moves]]
at = 10
over = 20
change = "-0.1"
[chains.ethereum]
block_interval = 12
gas_limit = 30_000_000
initial_base_fee = 1_000_000_000
latency.outbound = { base_ms = 10, jitter_ms = 5 }
latency.inbound = { base_ms = 10 }
[oracles.eth-usd]
chain = "ethereum"
deviation_bps = 50
heartbeat = 3600
[venues.cex]
kind = "cex"
instrument = "ETH-USDC"
depth_levels = 3
level_size = "2"
spread_bps = 2
taker_fee_bps = 10
[pools.v2]
chain = "ethereum"
protocol = "uniswap-v2"
fee_bps = 30
liquidity = "1000000"
[agents.searchers]
count = 2
bidding = "fixed"
priority_fee = 1_000_000_000
"""


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_loads(name: str) -> None:
    s = load_scenario(name)
    assert s.name == name
    assert s.duration > 0
    assert s.reference.start_price == Decimal("3000.00")
    assert s.file.endswith(f"{name}.toml")
    assert load_scenario(SCENARIO_DIR / f"{name}.toml") == s


def test_shipped_list_is_exactly_the_five() -> None:
    assert list_scenarios() == SHIPPED


def test_shipped_scenarios_say_what_they_promise() -> None:
    crash = load_scenario("eth-crash")
    (move,) = crash.reference.moves
    assert (move.change, move.over, move.target) == (Decimal("-0.30"), 1200.0, REFERENCE)
    assert crash.chain("ethereum").block_interval == 12.0
    assert crash.oracle("eth-usd").deviation_bps == Decimal(50)
    assert crash.agents.borrowers.count > 0 and crash.agents.searchers.count > 0

    jump = load_scenario("oracle-jump")
    assert {m.target for m in jump.reference.moves} == {"hl-eth-oracle"}
    assert jump.oracle("hl-eth-oracle").chain is None

    dislocation = load_scenario("cex-dex-dislocation")
    assert dislocation.agents.background.arbitrage_lag > 0
    assert dislocation.reference.moves[0].change == Decimal("0.03")

    quiet = load_scenario("quiet")
    assert quiet.reference.moves == () and quiet.reference.jump_intensity == 0


def test_defaults_and_parsed_types() -> None:
    s = parse_scenario(MINIMAL, file="min.toml")
    assert (s.name, s.seed, s.duration, s.chains, s.venues) == ("min", 0, 60.0, (), ())
    assert s.start_ns == 1_709_251_200_000_000_000  # 2024-03-01T00:00:00Z

    f = parse_scenario(FULL, file="full.toml")
    chain = f.chain("ethereum")
    assert chain.gas_target == 15_000_000  # limit / 2 (EIP-1559 elasticity)
    assert chain.latency.outbound.base_ms == Decimal(10) and chain.latency.inbound.jitter_ms == 0
    assert f.venue("cex").taker_fee_bps == Decimal(10)
    assert f.venue("cex").level_size == Decimal("2")
    assert f.marks == (REFERENCE, "cex", "eth-usd")
    assert f.with_seed(5).seed == 5 and f.seed == 9


def test_a_seed_can_be_given_when_loading() -> None:
    assert load_scenario("quiet", seed=42).seed == 42


def test_move_progress() -> None:
    m = Move(at=10.0, over=20.0, change=Decimal("-0.3"))
    assert [m.progress(t) for t in (0.0, 10.0, 20.0, 30.0, 99.0)] == [0, 0, Decimal("0.5"), 1, 1]
    jump = Move(at=10.0, over=0.0, change=Decimal("0.1"))
    assert (jump.progress(9.99), jump.progress(10.0)) == (0, 1)


def test_derived_generators_depend_on_seed_and_name_only() -> None:
    a = [derive_rng(1, "x").random() for _ in range(2)]
    assert a[0] == a[1]
    assert derive_rng(1, "x").random() != derive_rng(2, "x").random()
    assert derive_rng(1, "x").random() != derive_rng(1, "y").random()


# ----------------------------------------------------------------------------- bad files


def _error(text: str, file: str = "fixtures/scenarios/x.toml") -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, file=file)
    return str(info.value)


def _with(extra: str, base: str = FULL) -> str:
    if extra.startswith("["):
        return base + "\n" + extra
    return extra + "\n" + base  # a top-level key goes before the first table


BAD = [
    # (replace this line of FULL, with this, field path, words in the message)
    ("block_interval = 12", "block_interval = 'abc'", "chains.ethereum.block_interval",
     "expected a positive number, got 'abc'"),
    ("block_interval = 12", "block_interval = 0", "chains.ethereum.block_interval", "expected a positive number, got 0"),
    ("block_interval = 12", "block_interval = -3", "chains.ethereum.block_interval", "got -3"),
    ("gas_limit = 30_000_000", "gas_limit = 3.5", "chains.ethereum.gas_limit", "expected a positive integer, got 3.5"),
    ("gas_limit = 30_000_000", "gas_limit = true", "chains.ethereum.gas_limit", "got True"),
    ('start_price = "3000.00"', "start_price = 3000.5", "reference.start_price", "floats are not exact"),
    ('start_price = "3000.00"', 'start_price = "lots"', "reference.start_price", "got 'lots'"),
    ('start_price = "3000.00"', 'start_price = "-1"', "reference.start_price", "positive decimal string"),
    ("volatility = 0.5", "volatility = -0.5", "reference.volatility", "got -0.5"),
    ('change = "-0.1"', 'change = "-1.5"', "reference.moves[0].change", "a fraction > -1"),
    ("at = 10", "at = 'soon'", "reference.moves[0].at", "expected a number >= 0, got 'soon'"),
    ("deviation_bps = 50", "deviation_bps = 0", "oracles.eth-usd.deviation_bps", "positive number of basis points"),
    ("heartbeat = 3600", "heartbeat = []", "oracles.eth-usd.heartbeat", "got an array"),
    ('kind = "cex"', 'kind = "dex"', "venues.cex.kind", "expected one of 'cex', 'perp', got 'dex'"),
    ("depth_levels = 3", "depth_levels = 0", "venues.cex.depth_levels", "positive integer"),
    ('level_size = "2"', 'level_size = "2.00005"', "venues.cex.level_size", "not a multiple of lot_size"),
    ("count = 2", "count = -2", "agents.searchers.count", "integer >= 0"),
    ("latency.inbound = { base_ms = 10 }", "latency.inbound = { base_ms = 10, jitter = 'gaussian' }",
     "chains.ethereum.latency.inbound.jitter", "expected one of 'uniform', 'exponential'"),
    ("duration = 600", "duration = '10 minutes'", "duration", "got '10 minutes'"),
    ("seed = 9", "seed = 'x'", "seed", "integer >= 0"),
]


@pytest.mark.parametrize("old,new,path,words", BAD, ids=[b[2] + ":" + b[1] for b in BAD])
def test_bad_field_names_file_and_path(old: str, new: str, path: str, words: str) -> None:
    assert FULL.count(old + "\n") == 1, old
    message = _error(FULL.replace(old + "\n", new + "\n"))
    assert message.startswith(f"fixtures/scenarios/x.toml: {path}: "), message
    assert words in message


def test_the_example_from_the_issue_reads_exactly() -> None:
    message = _error(FULL.replace("block_interval = 12\n", "block_interval = 'abc'\n"))
    assert message == "fixtures/scenarios/x.toml: chains.ethereum.block_interval: expected a positive number, got 'abc'"


@pytest.mark.parametrize("extra,path", [
    ("colour = 'red'", "colour"),
    ("[chains.base]\nblock_interval = 2\ngas_limit = 1\ninitial_base_fee = 1\nblok_time = 2", "chains.base.blok_time"),
    ("[venues.b]\nkind='cex'\ninstrument='X'\ndepth_levels=1\nlevel_size='1'\nspread_bps=1\ntaker_fee_bps=1\n"
     "latency.outbound = { base_ms = 1, median_ms = 2 }\nlatency.inbound = { base_ms = 1 }",
     "venues.b.latency.outbound.median_ms"),
    ("[agents.borrowers]\ncount = 3\nhealth = 2", "agents.borrowers.health"),
    ("[agents.pirates]\ncount = 1", "agents.pirates"),
])
def test_unknown_fields_are_errors(extra: str, path: str) -> None:
    message = _error(_with(extra))
    assert message.startswith(f"fixtures/scenarios/x.toml: {path}: unknown field"), message


def test_unknown_field_in_a_move() -> None:
    message = _error(FULL.replace('change = "-0.1"\n', 'change = "-0.1"\nspeed = 3\n'))
    assert message.startswith("fixtures/scenarios/x.toml: reference.moves[0].speed: unknown field"), message


@pytest.mark.parametrize("text,path,words", [
    ("duration = 60", "reference", "required table missing"),
    ("[reference]\nstart_price = '1'", "duration", "required field missing"),
    (MINIMAL + "[[reference.moves]]\nat = 1", "reference.moves[0].change", "required field missing"),
    (MINIMAL + "[chains.eth]\nblock_interval = 12\ninitial_base_fee = 1", "chains.eth.gas_limit", "required field missing"),
])
def test_missing_fields_are_named(text: str, path: str, words: str) -> None:
    message = _error(text)
    assert message.startswith(f"fixtures/scenarios/x.toml: {path}: {words}"), message


@pytest.mark.parametrize("old,new,path,words", [
    ('chain = "ethereum"\ndeviation_bps', 'chain = "solana"\ndeviation_bps', "oracles.eth-usd.chain", "unknown chain 'solana'"),
    ('change = "-0.1"', 'change = "-0.1"\ntarget = "kraken"', "reference.moves[0].target", "unknown target 'kraken'"),
    ("at = 10", "at = 601", "reference.moves[0].at", "after the scenario ends"),
    ("initial_base_fee = 1_000_000_000", "initial_base_fee = 1_000_000_000\ngas_target = 40_000_000",
     "chains.ethereum.gas_target", "exceeds the gas limit"),
    ('bidding = "fixed"\npriority_fee = 1_000_000_000', 'bidding = "profit-share"',
     "agents.searchers.profit_share", "required field missing"),
])
def test_inconsistent_fields_are_named(old: str, new: str, path: str, words: str) -> None:
    assert FULL.count(old) == 1, old
    message = _error(FULL.replace(old, new))
    assert message.startswith(f"fixtures/scenarios/x.toml: {path}: "), message
    assert words in message


def test_moves_that_would_take_a_price_below_zero() -> None:
    text = FULL.replace('change = "-0.1"', 'change = "-0.6"') + '[[reference.moves]]\nat = 50\nchange = "-0.5"\n'
    message = _error(text)
    assert message.startswith("fixtures/scenarios/x.toml: reference.moves[1].change: "), message


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    assert _error("duration = = 3", file="broken.toml").startswith("broken.toml: not valid TOML")
    missing = tmp_path / "nope.toml"
    with pytest.raises(ScenarioError, match="nope.toml: scenario file not found"):
        load_scenario(missing)
    with pytest.raises(ScenarioError, match="no-such-scenario.toml: scenario file not found"):
        load_scenario("no-such-scenario")


def test_a_bad_file_on_disk_is_named_as_given(tmp_path: Path) -> None:
    p = tmp_path / "x.toml"
    p.write_text(FULL.replace("heartbeat = 3600", "heartbeat = 'hourly'"))
    with pytest.raises(ScenarioError) as info:
        load_scenario(p)
    assert str(info.value) == f"{p}: oracles.eth-usd.heartbeat: expected a positive number, got 'hourly'"


@pytest.mark.parametrize("extra,path,words", [
    ("[agents.borrowers]\ncount = 201", "agents.borrowers.count", "at most 200 borrowers"),
    ("[agents.borrowers]\ncount = 3\ncollateral = 'WBTC'", "agents.borrowers.collateral", "against WETH only"),
    ("[agents.borrowers]\ncount = 3\ndebt = 'DAI'", "agents.borrowers.debt", "owe USDC only"),
])
def test_borrowers_the_market_cannot_open_are_errors_not_ignored(extra: str, path: str, words: str) -> None:
    message = _error(_with(extra))
    assert message.startswith(f"fixtures/scenarios/x.toml: {path}: "), message
    assert words in message


def test_borrowers_cannot_start_below_what_the_market_lets_them_borrow(tmp_path) -> None:
    """eth-crash once asked for health factors from 1.02: its own seed drew one below LT/LTV and the
    real Pool reverted the borrow (error 36) with a traceback. The loader now names the field."""
    from tapedeck.sim.chain.aave_v3 import WETH
    from tapedeck.sim.scenario import OPENABLE_HEALTH_FACTOR, ScenarioError, load_scenario

    assert OPENABLE_HEALTH_FACTOR == Decimal(WETH.liquidation_threshold) / Decimal(WETH.ltv)
    text = (Path(__file__).resolve().parent.parent / "fixtures" / "scenarios" / "eth-crash.toml").read_text()
    bad = tmp_path / "low.toml"
    bad.write_text(text.replace('health_factor_min = "1.04"', 'health_factor_min = "1.02"'))
    with pytest.raises(ScenarioError, match=r"low.toml: agents.borrowers.health_factor_min: 1.02 is below"):
        load_scenario(str(bad))


def test_every_problem_is_its_own_line_naming_file_and_field() -> None:
    """All the field problems of a file come at once (pydantic collects them), one line each."""
    text = (FULL.replace("seed = 9", "seed = -1").replace("block_interval = 12", "block_interval = 'x'\nblok = 1")
            .replace('kind = "cex"', "kind = 3"))
    lines = _error(text).splitlines()
    assert lines == [
        "fixtures/scenarios/x.toml: seed: expected an integer >= 0, got -1",
        "fixtures/scenarios/x.toml: chains.ethereum.block_interval: expected a positive number, got 'x'",
        "fixtures/scenarios/x.toml: chains.ethereum.blok: unknown field (known here: block_interval, gas_limit, "
        "gas_target, initial_base_fee, first_block, background_utilization, background_max_priority_fee, latency)",
        "fixtures/scenarios/x.toml: venues.cex.kind: expected one of 'cex', 'perp', got 3",
    ]


def test_every_inconsistency_is_its_own_line() -> None:
    text = FULL.replace('chain = "ethereum"\nprotocol', 'chain = "sol"\nprotocol').replace("at = 10\n", "at = 900\n")
    assert _error(text).splitlines() == [
        "fixtures/scenarios/x.toml: pools.v2.chain: unknown chain 'sol' (declared: ethereum)",
        "fixtures/scenarios/x.toml: reference.moves[0].at: move starts at 900.0 s, after the scenario ends (600.0 s)",
    ]


@pytest.mark.parametrize("old,new,path,words", [
    ("latency.inbound = { base_ms = 10 }\n", "", "chains.ethereum.latency.inbound", "required table missing"),
    ("priority_fee = 1_000_000_000", "priority_fee = 1_000_000_000\nlatency = 3", "agents.searchers.latency",
     "expected a table, got 3"),
    ('taker_fee_bps = 10', "taker_fee_bps = 10\nmaker_lag = 3", "venues.cex.maker_lag", "only for perp venues"),
    ("seed = 9", "seed = 9\nstart = 'yesterday'", "start", "expected an ISO-8601 time"),
    ("seed = 9", "seed = 9\ndescription = 3", "description", "expected a string, got 3"),
])
def test_wrong_kinds_of_value_are_named(old: str, new: str, path: str, words: str) -> None:
    assert FULL.count(old) == 1, old
    message = _error(FULL.replace(old, new))
    assert message.splitlines()[0].startswith(f"fixtures/scenarios/x.toml: {path}: "), message
    assert words in message.splitlines()[0]


@pytest.mark.parametrize("new,path,words", [
    ("chains = 3\n[reference]", "chains", "expected a table, got 3"),
    ("[reference]\nmoves = 3", "reference.moves", "expected an array of tables, got 3"),
    ("reference = 'ETH'\n[x]", "reference", "expected a table, got 'ETH'"),
])
def test_a_value_where_a_table_belongs_is_named(new: str, path: str, words: str) -> None:
    message = _error(MINIMAL.replace("[reference]", new))
    assert message.startswith(f"fixtures/scenarios/x.toml: {path}: {words}"), message


def test_an_empty_latency_table_is_no_latency() -> None:
    old = "latency.outbound = { base_ms = 10, jitter_ms = 5 }\nlatency.inbound = { base_ms = 10 }\n"
    assert FULL.count(old) == 1
    chain = parse_scenario(FULL.replace(old, "latency = {}\n")).chain("ethereum")
    assert chain.latency.outbound.base_ms == 0 and chain.latency.inbound.jitter_ms == 0
    assert chain.latency == parse_scenario(FULL.replace(old, "")).chain("ethereum").latency
