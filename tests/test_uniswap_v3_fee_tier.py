"""A V3 pool of another fee tier (0.30%: fee 3000, tick spacing 60), imported and checked with its own
fee: the raw logs come from the real v3-core bytecode on py-evm, written in the shared recordings'
raw-log format (``block_number,block_timestamp,transaction_hash,transaction_index,log_index,topics,data``)
and decoded only by the importer; the independent side (``*.tick.csv``) is the pool's own
``slot0()``/``liquidity()`` after every transaction.

The pool's address is a fresh one (not in the registry), so an import without flags must stop with
a clear error, never check it at a guessed fee; with ``--fee 3000 --tick-spacing 60`` (or a
``--registry`` file naming the pool) the day check passes, and the same logs checked at 0.05% fail.
"""
from __future__ import annotations

import csv
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tapedeck.adapters.eventlog import EventLog
from tapedeck.adapters.uniswap_v3_check import check_day
from tapedeck.cli import main
from tapedeck.domain import events as ev
from tapedeck.domain import uniswap_v3 as v3

pytestmark = pytest.mark.contract

FEE, SPACING = 3000, 60
START = 1704412800  # 2024-01-05 00:00:00 UTC
HEADER = ["block_number", "block_timestamp", "transaction_hash", "transaction_index", "log_index", "topics", "data"]
TICK_HEADER = ["block_number", "pool_log_index", "tx_type", "sqrtPriceX96", "current_tick", "total_liquidity"]


def _hex(b: Any) -> str:
    return "0x" + bytes(b).hex()


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, int]:
    """(raw csv, tick csv, pool address, number of logs) of a short day on a fresh 0.30% pool."""
    from tapedeck.sim.chain.artifacts import ArtifactMissing, load
    from tapedeck.sim.chain.pyevm import PyEvmChain, deploy, transact

    try:
        load("@uniswap/v3-core", "UniswapV3Pool")
        token_art = load("@aave/core-v3", "MintableERC20")
    except ArtifactMissing as e:
        pytest.skip(f"contract builds not installed (run `make`): {e}")
    from tapedeck.sim.chain.uniswap_v3 import create_pool, deploy_v3, mint_position, swap_exact_input

    chain = PyEvmChain(start_time=START)
    w3, me = chain.w3, chain.accounts[0]
    dep = deploy_v3(w3, sender=me)
    a = deploy(w3, token_art, "Token A", "TKA", 18, sender=me, gas=2_000_000)
    b = deploy(w3, token_art, "Token B", "TKB", 18, sender=me, gas=2_000_000)
    for t in (a, b):
        transact(w3, t.functions.mint(me, 10**40), me, gas=100_000)
        for spender in (dep.router.address, dep.manager.address):
            transact(w3, t.functions.approve(spender, 2**256 - 1), me, gas=100_000)
    pool = create_pool(dep, a, b, FEE, v3.get_sqrt_ratio_at_tick(0))
    assert (pool.fee, pool.tick_spacing) == (FEE, SPACING)
    address = pool.address.lower()
    rng = random.Random(3000)
    rows: list[list[Any]] = []
    ticks: list[list[Any]] = []

    def record(receipt: Any) -> None:
        logs = [lg for lg in receipt["logs"] if lg["address"].lower() == address]
        names = [d["event"] for d in pool.decode_logs(receipt)]
        # One pool log per transaction, or the manager's collect: a zero Burn (no state change) then
        # Collect. Either way the state after the transaction is the state after each of its logs.
        assert len(logs) == 1 or names == ["Burn", "Collect"], names
        sp, tick = pool.slot0()
        for lg, name in zip(logs, names):
            block = w3.eth.get_block(lg["blockNumber"])
            when = datetime.fromtimestamp(block["timestamp"], tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            topics = [_hex(t) for t in lg["topics"]]
            rows.append([lg["blockNumber"], when, _hex(lg["transactionHash"]), lg["transactionIndex"],
                         lg["logIndex"], repr(topics), _hex(lg["data"])])
            ticks.append([lg["blockNumber"], lg["logIndex"], name.upper(), sp, tick, pool.liquidity()])

    full = ((v3.MIN_TICK // SPACING) + 1) * SPACING, (v3.MAX_TICK // SPACING) * SPACING
    record(mint_position(pool, me, *full, 10**21, 10**21))
    record(mint_position(pool, me, -120, 120, 10**20, 10**20))
    for i in range(30):
        token_in = a if rng.random() < 0.5 else b
        record(swap_exact_input(pool, me, token_in, int(10 ** rng.uniform(16, 19.7))))
        if i == 10:
            record(mint_position(pool, me, 60, 300, 10**20, 10**20))
        if i == 20:
            token_id = dep.manager.functions.totalSupply().call()  # the last position minted
            position = dep.manager.functions.positions(token_id).call()
            record(transact(w3, dep.manager.functions.decreaseLiquidity((token_id, position[7] // 2, 0, 0, 2**63)),
                            me, gas=500_000))
            record(transact(w3, dep.manager.functions.collect((token_id, me, 2**128 - 1, 2**128 - 1)), me,
                            gas=500_000))
    folder = tmp_path_factory.mktemp("fee3000")
    raw = folder / f"ethereum-{address}-sim.raw.csv"
    tick = folder / f"ethereum-{address}-sim.tick.csv"
    for path, header, body in ((raw, HEADER, rows), (tick, TICK_HEADER, ticks)):
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(body)
    return raw, tick, address, len(rows)


def invoke(*args: Any) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_unknown_pool_without_flags_is_a_clear_error(day, tmp_path) -> None:
    raw, _, address, _ = day
    r = invoke("import", "uniswap-v3-logs", raw, "--out", tmp_path / "x.db")
    assert r.exit_code == 2, r.output
    (line,) = r.output.strip().splitlines()
    assert f"pool {address} is not in the registry" in line and "--fee" in line and "--tick-spacing" in line
    assert "Traceback" not in r.output and not (tmp_path / "x.db").exists()


def test_import_with_flags_checks_at_the_pools_fee(day, tmp_path) -> None:
    raw, _, address, n = day
    out = tmp_path / "day.db"
    r = invoke("import", "uniswap-v3-logs", raw, "--out", out, "--fee", FEE, "--tick-spacing", SPACING)
    assert r.exit_code == 0, r.output
    assert f"imported {n} events" in r.output and "rejected 0 row(s)" in r.output
    assert "pool fee 3000 pips, tick spacing 60" in r.output
    assert r.output.strip().splitlines()[-1].strip() == "OK", r.output
    with EventLog.open(out) as log:
        events = list(log.events())
        note = log.manifest.notes["pools"][address]
    assert len(events) == n and {e.pool for e in events} == {address}  # type: ignore[attr-defined]
    assert (note["protocol"], note["fee"], note["tick_spacing"]) == ("uniswap-v3", FEE, SPACING)
    bad = invoke("import", "uniswap-v3-logs", raw, "--out", tmp_path / "y.db", "--fee", FEE, "--tick-spacing", 10)
    assert bad.exit_code == 2 and "fee 3000 goes with tick spacing 60" in bad.output


def test_registry_file_names_the_pool(day, tmp_path) -> None:
    raw, _, address, _ = day
    reg = tmp_path / "mine.toml"
    reg.write_text(f"""
[[pools]]
chain = "ethereum"
address = "{address}"
protocol = "uniswap-v3"
fee = 3000
tick_spacing = 60
token0 = {{ address = "0x{'1' * 40}", symbol = "TKA", decimals = 18 }}
token1 = {{ address = "0x{'2' * 40}", symbol = "TKB", decimals = 18 }}
""")
    r = invoke("import", "uniswap-v3-logs", raw, "--out", tmp_path / "d.db", "--registry", reg)
    assert r.exit_code == 0, r.output
    assert "TKA/TKB" in r.output and r.output.strip().splitlines()[-1].strip() == "OK"


def test_the_fee_decides_the_check(day) -> None:
    """At its own fee every non-crossing swap is reproduced exactly; at 0.05% none is."""
    raw, tick, _, n = day
    right = check_day(raw, tick, fee_pips=FEE, tick_spacing=SPACING)
    assert right.ok, right.lines()
    assert right.logs == n and right.rows_compared + right.before_first_swap == n
    assert right.rows_equal == right.rows_compared and right.unmatched_rows == 0
    assert right.swaps == 30 and right.reproduced + right.crossed == right.swaps_with_prior_state
    assert right.reproduced >= 20 and right.crossed >= 1  # both cases exercised
    assert right.positions_checked >= 2 and right.position_amounts_reproduced == right.positions_checked
    wrong = check_day(raw, tick, fee_pips=500, tick_spacing=10)
    assert not wrong.ok and wrong.not_reproduced == right.reproduced


def test_swaps_across_a_bitmap_word_boundary_are_reproduced(day) -> None:
    """The pool starts at tick 0, the edge of a tick-bitmap word: swaps down across it are two steps
    in the pool (rounding differs from one step), and the check must chain them the same way."""
    from tapedeck.adapters.uniswap_v3_check import reproduce_swap
    from tapedeck.adapters.uniswap_v3_logs import read_v3_logs

    raw, _, _, _ = day
    state, across = v3.V3PoolState(), 0
    for e in read_v3_logs(raw):
        if isinstance(e, ev.V3Swapped) and state.known and e.liquidity == state.liquidity:
            if state.tick // SPACING // 256 != e.tick // SPACING // 256:
                assert reproduce_swap(state.sqrt_price_x96, state.liquidity, e, FEE, state.tick, SPACING), e
                across += 1
        state.apply(e)
    assert across >= 1
