"""Uniswap V3 logs and V2 reserves adapters: crafted bad rows, and the proof on a real day.

The real-day part reads ``$TAPEDECK_DATA`` (default ``../shared/data``) and skips, saying what is
missing, when the recordings are absent:

* every raw log of the USDC/WETH 0.05% pool on 2024-01-05 decodes (our own eth_abi decode), and
  agrees field by field with demeter-fetch's independent decode;
* folded into ``V3PoolState`` the price and tick equal demeter's on every row, and the in-range
  liquidity on every row except 47 where demeter's own rule is wrong (see ``test_real_day_proof``);
* every swap that crossed no initialized tick is reproduced exactly by the integer math.
"""
from __future__ import annotations

import csv
from pathlib import Path

import eth_abi
import pytest

from tapedeck.adapters.uniswap_v2_reserves import block_time_estimator, read_v2_reserves
from tapedeck.adapters.uniswap_v3_check import _as_int, _read_tick_csv, check_day
from tapedeck.adapters.uniswap_v3_logs import BURN, COLLECT, MINT, SWAP, read_v3_logs
from tapedeck.domain import events as ev
from tests.conftest import require_data

V3_DIR = "uniswap-v3-usdc-weth-2024-01-05"
V3_STEM = "ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-2024-01-05"
POOL = "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"
V2_PAIR = "0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc"
HEADER = "block_number,block_timestamp,transaction_hash,transaction_index,log_index,topics,data"

# ----------------------------------------------------------------------------- crafted rows

SENDER = "0x68b3465833fb72a70ecdf485e0e4c7bd8665fc45"
RECIPIENT = "0x4fd39c9e151e50580779bd04b1f7ecc310079fd3"
TX = "0x" + "3c" * 32


def word(abi_type: str, value) -> str:
    return "0x" + eth_abi.encode([abi_type], [value]).hex()


def topics_repr(topics: list[str]) -> str:
    return '"' + repr(topics) + '"'


def row(block: int, log_index: int, topics: list[str], data: str, ts: str = "2024-01-05 00:00:23", tx: str = TX) -> str:
    return f"{block},{ts},{tx},7,{log_index},{topics_repr(topics)},{data}"


def swap_row(block=18937382, log_index=250, amount0=1779711470, amount1=-783707260129944808,
             sqrt_price=1662990119151672310826534140478120, liquidity=12453647101533358277, tick=199045) -> str:
    data = "0x" + eth_abi.encode(["int256", "int256", "uint160", "uint128", "int24"],
                                 [amount0, amount1, sqrt_price, liquidity, tick]).hex()
    return row(block, log_index, [SWAP, word("address", SENDER), word("address", RECIPIENT)], data)


def mint_row(block=18937383, log_index=1, lower=199050, upper=199060) -> str:
    data = "0x" + eth_abi.encode(["address", "uint128", "uint256", "uint256"], [SENDER, 10**18, 5, 6]).hex()
    return row(block, log_index, [MINT, word("address", RECIPIENT), word("int24", lower), word("int24", upper)], data)


def burn_row(block=18937383, log_index=2, lower=-887270, upper=887270) -> str:
    data = "0x" + eth_abi.encode(["uint128", "uint256", "uint256"], [7, 8, 9]).hex()
    return row(block, log_index, [BURN, word("address", RECIPIENT), word("int24", lower), word("int24", upper)], data)


def collect_row(block=18937383, log_index=3) -> str:
    data = "0x" + eth_abi.encode(["address", "uint128", "uint128"], [SENDER, 11, 12]).hex()
    return row(block, log_index, [COLLECT, word("address", RECIPIENT), word("int24", -10), word("int24", 10)], data)


def write(tmp_path: Path, lines: list[str], name: str = f"{V3_STEM}.raw.csv") -> Path:
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_decodes_crafted_good_rows(tmp_path):
    p = write(tmp_path, [HEADER, swap_row(), mint_row(), burn_row(), collect_row()])
    s, m, b, c = list(read_v3_logs(p))
    assert isinstance(s, ev.V3Swapped) and s.pool == POOL and s.source == "uniswap-v3-logs"
    assert s.ts == 1704412823 * 10**9  # 2024-01-05 00:00:23 UTC
    assert (s.block, s.log_index, s.tx, s.sender, s.recipient) == (18937382, 250, TX, SENDER, RECIPIENT)
    assert (s.amount0, s.amount1, s.liquidity, s.tick) == (1779711470, -783707260129944808, 12453647101533358277, 199045)
    assert isinstance(m, ev.V3Minted)
    assert (m.owner, m.sender, m.tick_lower, m.tick_upper, m.amount, m.amount0, m.amount1) == (
        RECIPIENT, SENDER, 199050, 199060, 10**18, 5, 6)
    assert isinstance(b, ev.V3Burned) and (b.tick_lower, b.tick_upper, b.amount) == (-887270, 887270, 7)
    assert isinstance(c, ev.V3Collected) and (c.recipient, c.tick_lower, c.amount0, c.amount1) == (SENDER, -10, 11, 12)


def test_negative_tick_and_amounts_round_trip(tmp_path):
    p = write(tmp_path, [HEADER, swap_row(amount0=-5, amount1=7, tick=-887271)])
    (s,) = read_v3_logs(p)
    assert (s.amount0, s.amount1, s.tick) == (-5, 7, -887271)


def _bad_rows() -> list[tuple[str, str]]:
    good = swap_row()
    fields = next(csv.reader([good]))
    topics = [SWAP, word("address", SENDER), word("address", RECIPIENT)]
    data = fields[6]

    def with_data(d: str, t: list[str] | None = None, log_index: int = 300) -> str:
        return row(18937382, log_index, topics if t is None else t, d)

    # a tick that is not sign-extended: int24 -1 written with zero padding
    bad_tick = data[:-64] + "0" * 58 + "ffffff"
    flash = "0xbdbdb71d7860376ba52b25a5028beea23581364a40522f6bcfb86bb1f2dca633"
    return [
        (with_data(data[:-10]), "truncated data: Swap needs 160 bytes, the log has 155"),
        (with_data(data[:-1], log_index=301), "data is not 0x-prefixed hex"),
        (with_data(data + "00" * 32, log_index=302), "oversized data"),
        (with_data(data, topics[:2], log_index=303), "wrong topic count: Swap has 3 topics, the log has 2"),
        (with_data(data, ["0x" + "12" * 32] + topics[1:], log_index=304), "unknown topic0 0x1212"),
        (with_data(data, [flash] + topics[1:], log_index=305), "Flash log"),
        (with_data(data, [], log_index=306), "no topics"),
        (with_data(bad_tick, log_index=307), "data word 4 (tick): not a valid int24"),
        (with_data(data, [topics[0], "0x" + "ff" * 32, topics[2]], log_index=308), "topic 1 (sender): not a valid address"),
        (with_data(data, [topics[0], topics[1][:-2]], log_index=309), "topics is not a list of"),
        (good.replace("18937382,", "1893x382,", 1), "bad block_number"),
        (good.replace("2024-01-05 00:00:23", "2024-13-05 00:00:23"), "bad block_timestamp"),
        (good.replace(",250,", ",-250,"), "negative log_index"),
        (good.replace(TX, TX[:-2]), "bad transaction_hash"),
        (good.replace('"[', '"{', 1).replace(']"', '}"'), "topics is not a list of"),
        (good.replace('"[', '"[__import__(1), ', 1), "topics is not a list of"),
        (good.rsplit(",", 1)[0], "expected 7 fields, row has 6"),
        (good, "duplicate or out of order"),  # the same log again
        ('18937382,"unbalanced', "expected 7 fields"),
        (swap_row(log_index=400, sqrt_price=1), "outside the pool's price range"),
        (mint_row(block=18937382, log_index=401, lower=10, upper=10), "impossible tick range [10, 10]"),
    ]


def test_bad_rows_become_input_rejected(tmp_path):
    bad = _bad_rows()
    lines = [HEADER, swap_row()] + [b for b, _ in bad] + [swap_row(block=18937390, log_index=1)]
    p = write(tmp_path, lines)
    out = list(read_v3_logs(p))
    assert len(out) == len(bad) + 2
    assert isinstance(out[0], ev.V3Swapped) and isinstance(out[-1], ev.V3Swapped)  # good rows around bad ones survive
    for i, (e, (raw, reason)) in enumerate(zip(out[1:-1], bad)):
        assert isinstance(e, ev.InputRejected), (i, e)
        assert e.origin == f"{p.name}:row {i + 2}"
        assert reason in e.reason, (reason, e.reason)
        assert e.raw == raw
        assert e.source == "uniswap-v3-logs" and e.ts == 1704412823 * 10**9


def test_missing_columns_and_pool_address(tmp_path):
    p = write(tmp_path, ["block_number,topics", swap_row()])
    (e,) = read_v3_logs(p)
    assert isinstance(e, ev.InputRejected) and "log_index" in e.reason and e.origin.endswith(":header")
    no_addr = write(tmp_path, [HEADER, swap_row()], name="logs.csv")
    with pytest.raises(ValueError, match="no pool address"):
        read_v3_logs(no_addr)
    other = "0x" + "22" * 20
    (s,) = read_v3_logs(no_addr, pool=other.upper().replace("0X", "0x"))
    assert s.pool == other
    with pytest.raises(ValueError, match="disagrees"):
        read_v3_logs(write(tmp_path, [HEADER]), pool=other)
    assert list(read_v3_logs(write(tmp_path, [HEADER]), pool=POOL)) == []


# ----------------------------------------------------------------------------- V2 reserves, crafted

V2_HEADER = "blockNumber,reserve0,reserve1"


def test_block_time_estimator():
    f = block_time_estimator([(200, 2_000 * 10**9), (100, 1_000 * 10**9)])
    assert f(100) == 1_000 * 10**9 and f(200) == 2_000 * 10**9
    assert f(150) == 1_500 * 10**9 and f(101) == 1_010 * 10**9
    assert f(99) == 1_000 * 10**9 - 12 * 10**9 and f(210) == 2_000 * 10**9 + 120 * 10**9
    g = block_time_estimator([(0, 0), (3, 10)])
    assert [g(b) for b in range(4)] == [0, 3, 6, 10]  # floor, integers only
    assert block_time_estimator([(5, 60 * 10**9)])(6) == 72 * 10**9
    with pytest.raises(ValueError):
        block_time_estimator([])
    with pytest.raises(ValueError):
        block_time_estimator([(1, 5), (1, 6)])
    with pytest.raises(ValueError):
        block_time_estimator([(1, 10), (2, 5)])


def test_v2_reserves_changes_only_and_bad_rows(tmp_path):
    p = tmp_path / "reserves.csv"
    p.write_text("\n".join([
        V2_HEADER, '10,"100","200"', '11,"100","200"', '12,"101","199"', '13,"1x1","199"', '12,"5","5"',
        '14,"101","199"', f'15,"{1 << 112}","1"', '16,"7"', '17,"102","198"',
    ]) + "\n")
    out = list(read_v2_reserves(p, lambda b: b * 10**9, V2_PAIR))
    kinds = [(type(e).__name__, getattr(e, "block", None)) for e in out]
    assert kinds == [("V2ReservesSynced", 10), ("V2ReservesSynced", 12), ("InputRejected", None),
                     ("InputRejected", None), ("InputRejected", None), ("InputRejected", None),
                     ("V2ReservesSynced", 17)]
    first = out[0]
    assert (first.pool, first.reserve0, first.reserve1, first.ts, first.source) == (
        V2_PAIR, 100, 200, 10 * 10**9, "uniswap-v2-reserves")
    rejected = [e for e in out if isinstance(e, ev.InputRejected)]
    assert [e.origin for e in rejected] == ["reserves.csv:row 4", "reserves.csv:row 5", "reserves.csv:row 7",
                                           "reserves.csv:row 8"]
    assert "bad reserve0" in rejected[0].reason and rejected[0].raw == '13,"1x1","199"'
    assert "not after" in rejected[1].reason
    assert "reserve0" in rejected[2].reason and "larger than" in rejected[2].reason
    assert "expected 3 fields" in rejected[3].reason
    ranged = list(read_v2_reserves(p, lambda b: b, V2_PAIR, from_block=11, to_block=14))
    assert [(type(e).__name__, getattr(e, "block", None)) for e in ranged][0] == ("V2ReservesSynced", 11)
    assert all(getattr(e, "block", 0) <= 14 for e in ranged)


# ----------------------------------------------------------------------------- the real day


@pytest.fixture(scope="module")
def day() -> tuple[Path, Path]:
    raw = require_data(f"{V3_DIR}/{V3_STEM}.raw.csv")
    tick = require_data(f"{V3_DIR}/{V3_STEM}.tick.csv")
    return raw, tick


def test_real_day_decodes_completely_and_agrees_with_demeter(day):
    raw, tick = day
    events = list(read_v3_logs(raw))
    assert not [e for e in events if isinstance(e, ev.InputRejected)]
    counts = {t: sum(isinstance(e, t) for e in events) for t in (ev.V3Swapped, ev.V3Minted, ev.V3Burned, ev.V3Collected)}
    assert list(counts.values()) == [6046, 54, 69, 65]  # as PROVENANCE.md lists
    assert events[0].block == 18937382 and events[-1].block == 18944480
    assert events[0].ts == 1704412823 * 10**9 and events[-1].ts == 1704499199 * 10**9  # 00:00:23 .. 23:59:59 UTC
    assert {e.pool for e in events} == {POOL}
    theirs = _read_tick_csv(tick)
    assert len(theirs) == len(events)
    kinds = {ev.V3Swapped: "SWAP", ev.V3Minted: "MINT", ev.V3Burned: "BURN", ev.V3Collected: "COLLECT"}
    for e in events:
        r = theirs[(e.block, e.log_index)]
        assert r["tx_type"] == kinds[type(e)] and r["transaction_hash"] == e.tx
        assert (_as_int(r["amount0"]), _as_int(r["amount1"])) == (e.amount0, e.amount1)
        if isinstance(e, ev.V3Swapped):
            assert (r["sender"], r["receipt"]) == (e.sender, e.recipient)
        else:
            assert (_as_int(r["tick_lower"]), _as_int(r["tick_upper"])) == (e.tick_lower, e.tick_upper)
        if isinstance(e, (ev.V3Minted, ev.V3Burned)):
            assert _as_int(r["liquidity"]) == e.amount


def test_real_day_proof(day):
    """(a) fold vs demeter on every row; (b) every non-crossing swap reproduced exactly.

    demeter-fetch (processor_uniswap/tick.py @2fda05e) computes total_liquidity as the last
    Swap's liquidity forward-filled plus *this row's own* delta, counted only when
    ``tick_lower < current_tick < tick_upper``. Two errors follow, both on this day:
    * 8 Mint/Burn rows at current tick == tickLower: the pool's ``_modifyPosition`` counts them in
      range (``tick < tickLower`` is false), demeter drops the delta. The log proves the pool's
      side: those mints' token amounts need both tokens (in-range formula, recomputed exactly here),
      and the next swap is reproduced exactly with the liquidity including them;
    * 39 Collect / zero-amount Burn rows after a liquidity change in the same gap between swaps:
      demeter resets them to the last Swap's liquidity (+ 0), undoing the earlier Mint/Burn.
    Everywhere else (6187 rows) the three values are equal, and sqrtPriceX96/tick on all 6234.
    """
    raw, tick = day
    r = check_day(raw, tick, fee_pips=500, tick_spacing=10)
    print("\n".join(r.lines()))
    assert r.ok, r.lines()
    assert (r.logs, r.rejected, r.unmatched_rows, r.before_first_swap) == (6234, 0, 0, 0)
    assert (r.rows_compared, r.rows_equal, r.price_or_tick_mismatches) == (6234, 6187, 0)
    assert (r.liquidity_demeter_boundary, r.liquidity_demeter_stale, r.liquidity_unexplained) == (8, 39, 0)
    assert r.liquidity_confirmed_by_next_swap == 43  # the other 4: the next swap crossed a tick
    assert (r.swaps, r.swaps_with_prior_state, r.crossed) == (6046, 6045, 567)
    assert (r.reproduced_exact_in, r.reproduced_exact_out, r.reproduced_price_limit) == (4777, 577, 124)
    assert r.reproduced == 5478 and r.reproduced + r.crossed == r.swaps_with_prior_state
    assert (r.not_reproduced, r.tick_mismatches) == (0, 0)
    assert r.within_interval == 5269
    assert (r.positions_checked, r.position_amounts_reproduced) == (123, 123)


def test_real_v2_reserves():
    path = require_data("uniswap-v2-usdc-weth-reserves/reserves.csv")
    anchors = [(18937382, 1704412823 * 10**9), (18944480, 1704499199 * 10**9)]
    events = list(read_v2_reserves(path, block_time_estimator(anchors), V2_PAIR))
    assert all(isinstance(e, ev.V2ReservesSynced) for e in events)
    assert len(events) == 10_479  # first row + the 10,478 blocks PROVENANCE.md counts as changes
    assert (events[0].block, events[0].reserve0, events[0].reserve1) == (18908895, 52034452364125, 22864731471058335602880)
    day = [e for e in events if 18937382 <= e.block <= 18944480]
    last = day[-1]
    assert last.block <= 18944480 and last.ts <= 1704499199 * 10**9
    ranged = list(read_v2_reserves(path, block_time_estimator(anchors), V2_PAIR, from_block=18937382,
                                   to_block=18944480))
    assert ranged[0].block == 18937382 and ranged[0].ts == 1704412823 * 10**9
    assert ranged[-1] == last
