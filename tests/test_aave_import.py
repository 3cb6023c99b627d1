"""``tapedeck import aave-v3-logs``: the reader, the day check and the command.

The real-day part reads the shared Polygon WETH-reserve day under ``$TAPEDECK_DATA`` (default
``../shared/data``) and skips, saying what is missing, when it is absent. The rest builds rows with
eth_abi from the Pool ABI, so every modelled event and every hostile row is covered without the data.
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from tapedeck.adapters import aave_v3_check as check
from tapedeck.adapters.aave_v3_logs import DECODER, OTHERS, encode_row, read_aave_logs, read_aave_stream
from tapedeck.adapters.eventlog import EventLog
from tapedeck.cli import main
from tapedeck.domain import aave_v3 as aave
from tapedeck.domain import codec, events as ev
from tapedeck.runtime.importers import ImportError_, import_files
from tests.conftest import require_data
from tests.test_readers_hardened import fields as _swap_field

DAY = "aave-v3-polygon-2024-01-06/polygon-aave_v3-0x7ceb23fd6bc0add59e62ac25578270cff1b9f619-2024-01-06"
WETH = "0x7ceb23fd6bc0add59e62ac25578270cff1b9f619"
USER = "0xa77f88c5031648b7903afaca4e2a431f21f07f0c"
OTHER = "0x000000000000000000000000000000000000beef"
HEADER = "block_number,block_timestamp,transaction_hash,transaction_index,log_index,topics,data"
NAME = f"polygon-aave_v3-{WETH}-2024-01-06.raw.csv"
RAY = aave.RAY


def log_row(event: str, args: dict, *, block: int = 51986202, log_index: int = 1, time: str = "2024-01-06 00:06:18",
            tx: str = "0x" + "ab" * 32, decoder=DECODER) -> str:
    return encode_row(event, args, block=block, log_index=log_index, time=time, tx=tx, decoder=decoder)


def reserve_data(li: int = RAY, vi: int = RAY, lr: int = 10**25, vr: int = 3 * 10**25) -> dict:
    return dict(reserve=WETH, liquidityRate=lr, stableBorrowRate=0, variableBorrowRate=vr, liquidityIndex=li,
                variableBorrowIndex=vi)


def supply(amount: int = 10**18) -> dict:
    return dict(reserve=WETH, user=USER, onBehalfOf=USER, amount=amount, referralCode=0)


def write(tmp_path: Path, lines: list[str], name: str = NAME) -> Path:
    p = tmp_path / name
    p.write_text("\n".join([HEADER] + lines) + "\n")
    return p


# ----------------------------------------------------------------------------- every modelled event


ALL_EVENTS = [
    ("ReserveDataUpdated", reserve_data(), ev.AaveReserveDataUpdated, dict(liquidity_rate=10**25)),
    ("Supply", supply(5), ev.AaveSupplied, dict(on_behalf_of=USER, amount=5)),
    ("Withdraw", dict(reserve=WETH, user=USER, to=OTHER, amount=7), ev.AaveWithdrawn, dict(to=OTHER, amount=7)),
    ("Borrow", dict(reserve=WETH, user=USER, onBehalfOf=OTHER, amount=9, interestRateMode=2, borrowRate=3,
                    referralCode=1), ev.AaveBorrowed, dict(on_behalf_of=OTHER, rate_mode=2, borrow_rate=3, referral=1)),
    ("Repay", dict(reserve=WETH, user=USER, repayer=OTHER, amount=4, useATokens=True), ev.AaveRepaid,
     dict(repayer=OTHER, use_atokens=True)),
    ("LiquidationCall", dict(collateralAsset=WETH, debtAsset=OTHER, user=USER, debtToCover=11,
                             liquidatedCollateralAmount=12, liquidator=OTHER, receiveAToken=False),
     ev.AaveLiquidationObserved, dict(debt_to_cover=11, liquidated_collateral=12, receive_atoken=False)),
    ("ReserveUsedAsCollateralEnabled", dict(reserve=WETH, user=USER), ev.AaveCollateralToggled, dict(enabled=True)),
    ("ReserveUsedAsCollateralDisabled", dict(reserve=WETH, user=USER), ev.AaveCollateralToggled, dict(enabled=False)),
    ("FlashLoan", dict(target=OTHER, initiator=USER, asset=WETH, amount=10**18, interestRateMode=0, premium=5 * 10**14,
                       referralCode=0), ev.AaveFlashLoaned, dict(asset=WETH, premium=5 * 10**14)),
    ("UserEModeSet", dict(user=USER, categoryId=1), ev.AaveEModeSet, dict(user=USER, category=1)),
]


@pytest.mark.parametrize("name, args, cls, fields", ALL_EVENTS, ids=[c[0] for c in ALL_EVENTS])
def test_every_modelled_log_decodes_to_its_event(tmp_path, name: str, args: dict, cls: type, fields: dict) -> None:
    mixed = {k: (v.upper().replace("0X", "0x") if isinstance(v, str) else v) for k, v in args.items()}
    (e,) = read_aave_logs(write(tmp_path, [log_row(name, mixed)]), "polygon")
    assert type(e) is cls, e
    assert (e.chain, e.block, e.log_index, e.tx, e.source) == ("polygon", 51986202, 1, "0x" + "ab" * 32, "aave-v3-logs")
    assert e.ts == 1704499578 * 10**9 and e.block_ts == 1704499578  # 2024-01-06 00:06:18 UTC: the block's
    for k, v in fields.items():
        assert getattr(e, k) == v, (k, getattr(e, k))
    assert codec.decode(codec.topic(cls), codec.encode(e)) == e  # and it survives the log's codec


# ----------------------------------------------------------------------------- hostile rows


GOOD = log_row("Supply", supply(), log_index=5)
LATER = log_row("Supply", supply(), block=51986300, log_index=2, time="2024-01-06 00:09:00")


_SUPPLY_TOPICS = next(__import__("csv").reader([GOOD]))[5]
HOSTILE = [
    ("bad hex", _swap_field(GOOD, 6, "0xzz" + "00" * 63), "data is not 0x-prefixed hex"),
    ("odd hex", _swap_field(GOOD, 6, "0x123"), "data is not 0x-prefixed hex"),
    ("truncated data", _swap_field(GOOD, 6, "0x" + "00" * 40), "truncated data"),
    ("wrong topic count", _swap_field(GOOD, 5, _SUPPLY_TOPICS.rsplit(",", 1)[0] + "]"), "wrong topic count"),
    ("garbage timestamp", _swap_field(GOOD, 1, "yesterday at noon"), "bad block_timestamp"),
    ("year 1", _swap_field(GOOD, 1, "0001-01-01 00:00:00"), "outside 2015..2100"),
    ("negative block", _swap_field(GOOD, 0, "-51986202"), "negative block_number"),
    ("bad tx", _swap_field(GOOD, 2, "0x1234"), "bad transaction_hash"),
    ("topics repr", _swap_field(GOOD, 5, "{[]: 1}"), "topics is not a list"),
    ("unknown topic0", _swap_field(GOOD, 5, "['0x" + "12" * 32 + "']"), "unknown topic0"),
    ("unmodelled event", log_row("MintedToTreasury", dict(reserve=WETH, amountMinted=1), log_index=5, decoder=OTHERS),
     "MintedToTreasury log"),
    ("bad rate mode", log_row("Borrow", dict(reserve=WETH, user=USER, onBehalfOf=USER, amount=1, interestRateMode=7,
                                             borrowRate=0, referralCode=0), log_index=5), "interestRateMode 7"),
    ("index below RAY", log_row("ReserveDataUpdated", reserve_data(li=RAY - 1), log_index=5), "below RAY"),
    ("rate over uint128", log_row("ReserveDataUpdated", reserve_data(lr=2**128), log_index=5), "exceeds uint128"),
    ("bad address word", _swap_field(GOOD, 5, _SUPPLY_TOPICS.replace("'0x000000000000000000000000a77f",
                                                                     "'0xff0000000000000000000000a77f")),
     "not a valid address"),
    ("extra field", GOOD + ",x", "expected 7 fields"),
    ("not utf-8", GOOD.replace(",0,", ",\udcff,", 1), "not UTF-8"),
]


@pytest.mark.parametrize("case, bad, reason", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_bad_rows_become_recorded_rejections(tmp_path, case: str, bad: str, reason: str) -> None:
    p = tmp_path / NAME
    p.write_bytes("\n".join([HEADER, bad, LATER]).encode("utf-8", "surrogateescape") + b"\n")
    out = list(read_aave_logs(p, "polygon"))
    assert [type(e) for e in out] == [ev.InputRejected, ev.AaveSupplied], out
    assert reason in out[0].reason, out[0].reason
    assert out[0].origin == f"{NAME}:row 1" and out[0].raw and out[0].source == "aave-v3-logs"


def test_order_rules_reject_non_monotonic_rows(tmp_path) -> None:
    """A block or log index that does not rise, a second time for one block, time running backwards:
    each a rejection, stamped so the output's times never fall; the good rows around them survive."""
    first = log_row("Supply", supply(), block=51986202, log_index=5)
    same_again = log_row("Supply", supply(), block=51986202, log_index=5)
    earlier_block = log_row("Supply", supply(), block=51986100, log_index=9)
    two_times = log_row("Supply", supply(), block=51986202, log_index=6, time="2024-01-06 00:06:19")
    backwards = log_row("Supply", supply(), block=51986250, log_index=1, time="2024-01-06 00:00:01")
    out = list(read_aave_logs(write(tmp_path, [first, same_again, earlier_block, two_times, backwards, LATER]),
                              "polygon"))
    assert [type(e).__name__ for e in out] == ["AaveSupplied"] + ["InputRejected"] * 4 + ["AaveSupplied"]
    reasons = [e.reason for e in out[1:5]]
    assert "duplicate or out of order" in reasons[0] and "duplicate or out of order" in reasons[1]
    assert "has two times" in reasons[2] and "time runs backwards" in reasons[3]
    assert all(e.ts >= out[0].ts for e in out[1:5]) and out[2].ts == out[0].ts  # own time when not earlier


def test_bad_header_is_one_rejection_and_stream_agrees(tmp_path) -> None:
    p = tmp_path / NAME
    p.write_text("block_number,block_timestamp,topics\n" + GOOD + "\n")
    (e,) = read_aave_logs(p, "polygon")
    assert type(e) is ev.InputRejected and e.origin.endswith(":header") and "lacks column" in e.reason
    good = write(tmp_path, [GOOD, LATER])
    assert list(read_aave_logs(good, "polygon")) == list(read_aave_stream(io.BytesIO(good.read_bytes()), NAME,
                                                                            "polygon"))


# ----------------------------------------------------------------------------- the index prediction


def _update(ts_s: int, li: int, vi: int, *, lr: int = 4 * 10**24, vr: int = 2 * 10**25, tx: str = "t0",
            log_index: int = 0) -> ev.AaveReserveDataUpdated:
    return ev.AaveReserveDataUpdated(ts=ts_s * 10**9, source="t", chain="polygon", block=ts_s, tx=tx,
                                     log_index=log_index, reserve=WETH, liquidity_rate=lr, stable_borrow_rate=0,
                                     variable_borrow_rate=vr, liquidity_index=li, variable_borrow_index=vi)


def _action(cls, ts_s: int, tx: str, log_index: int, amount: int) -> ev.Event:
    extra = dict(on_behalf_of=USER, referral=0) if cls is ev.AaveSupplied else dict(to=USER)
    return cls(ts=ts_s * 10**9, source="t", chain="polygon", block=ts_s, tx=tx, log_index=log_index, reserve=WETH,
               user=USER, amount=amount, **extra)


def test_prediction_is_reserve_logic_and_elapsed_zero_changes_nothing() -> None:
    prev = _update(1_704_499_578, 1_008_157_656_576_295_903_321_058_460, 1_034_413_926_597_859_296_206_900_682)
    assert check.predict(prev, prev.ts) == (prev.liquidity_index, prev.variable_borrow_index)
    li, vi = check.predict(prev, prev.ts + 254 * 10**9)
    assert li == aave.ray_mul(RAY + prev.liquidity_rate * 254 // aave.SECONDS_PER_YEAR, prev.liquidity_index)
    assert vi == aave.ray_mul(aave.calculate_compounded_interest(prev.variable_borrow_rate, 0, 254),
                              prev.variable_borrow_index)
    zero_rate = _update(100, RAY + 5, RAY + 7, lr=0)
    assert check.predict(zero_rate, zero_rate.ts + 10**12)[0] == RAY + 5  # not cumulated at rate 0


def _flash_day(jump_amounts: list[int], pool_size: int = 30_000 * 10**18) -> list[ev.Event]:
    """Per amount: a withdraw's update and log, then the flash-loan repayment update (premium to LPs)."""
    out: list[ev.Event] = []
    li, vi, t = 1_008 * 10**24, 1_034 * 10**24, 1_704_499_578
    out.append(_update(t, li, vi, tx="genesis"))
    for i, amount in enumerate(jump_amounts):
        t += 60
        tx = f"tx{i}"
        prev = out[-1] if isinstance(out[-1], ev.AaveReserveDataUpdated) else out[-3]
        li, vi = check.predict(prev, t * 10**9)
        out.append(_update(t, li, vi, tx=tx, log_index=1))
        out.append(_action(ev.AaveWithdrawn, t, tx, 2, amount + aave.percent_mul(amount, 5)))
        premium = aave.percent_mul(amount, 5)
        li = aave.ray_mul(aave.ray_div(premium * 10**9, pool_size * 10**9) + RAY, li)  # cumulateToLiquidityIndex
        out.append(_update(t, li, vi, tx=tx, log_index=3))
    return out


def test_flash_loan_premiums_are_explained_and_other_jumps_are_not() -> None:
    day = _flash_day([10**18, 2 * 10**17, 93 * 10**18])
    (r,) = check.check_reserves(day).values()
    assert (r.updates, r.first, r.variable_exact, r.liquidity_exact) == (7, 1, 6, 3)
    assert r.causes() == {check.FLASH: 3} and r.unexplained == 0
    assert all(check.round_principal_fee(m.moved) == 5 for m in r.misses)
    # the same jump on an update that is followed by its own action log is not a flash loan's
    tampered = day[:-1] + [day[-1], _action(ev.AaveSupplied, day[-1].ts // 10**9, day[-1].tx, 4, 1)]
    (r2,) = check.check_reserves(tampered).values()
    assert r2.unexplained == 1 and r2.causes()[check.FLASH] == 2
    # a jump far out of proportion to the amount moved is not premium-like
    odd = day[:-1] + [msgspec_replace(day[-1], liquidity_index=day[-1].liquidity_index * 2)]
    (r3,) = check.check_reserves(odd).values()
    assert r3.unexplained == 1


def test_a_logged_flash_loan_names_its_jump() -> None:
    day = _flash_day([10**18])
    last = day[-1]
    loan = ev.AaveFlashLoaned(ts=last.ts, source="t", chain="polygon", block=last.block, tx=last.tx, log_index=9,
                              target=OTHER, initiator=USER, asset=WETH, amount=10**18, rate_mode=0,
                              premium=5 * 10**14, referral=0)
    (r,) = check.check_reserves(day + [loan]).values()
    assert r.causes() == {check.FLASH_LOGGED: 1} and r.unexplained == 0


def msgspec_replace(e: ev.Event, **changes) -> ev.Event:
    import msgspec

    return msgspec.structs.replace(e, **changes)


# ----------------------------------------------------------------------------- the command and its errors


def test_chain_comes_from_the_flag_or_the_file_name(tmp_path) -> None:
    named = write(tmp_path, [GOOD])
    nameless = write(tmp_path, [GOOD], name="weth.raw.csv")
    rep = import_files("aave-v3-logs", [str(named)], tmp_path / "a.db")
    assert rep.imported == 1 and rep.pools[str(named)].address == "0x794a61358d6845594f94dc1db02a252b5b4814ad"
    assert EventLog.open(tmp_path / "a.db").manifest.notes["pools"]["0x794a61358d6845594f94dc1db02a252b5b4814ad"][
        "protocol"] == "aave-v3"
    with pytest.raises(ImportError_, match="--chain NAME"):
        import_files("aave-v3-logs", [str(nameless)], tmp_path / "b.db")
    with pytest.raises(ImportError_, match="disagrees"):
        import_files("aave-v3-logs", [str(named)], tmp_path / "c.db", chain="ethereum")
    with pytest.raises(ImportError_, match="give --pool"):
        import_files("aave-v3-logs", [str(nameless)], tmp_path / "d.db", chain="arbitrum")
    rep = import_files("aave-v3-logs", [str(nameless)], tmp_path / "e.db", chain="arbitrum", pool=OTHER)
    (e,) = EventLog.open(tmp_path / "e.db").events()
    assert e.chain == "arbitrum" and rep.pools[str(nameless)].address == OTHER
    with pytest.raises(ImportError_, match="neither"):
        import_files("aave-v3-logs", [str(named)], tmp_path / "f.db", fee=500)


def test_import_merges_into_an_import_log_and_refuses_a_run(tmp_path) -> None:
    from tapedeck.adapters.eventlog import Manifest

    p = write(tmp_path, [GOOD, LATER])
    log = tmp_path / "day.db"
    import_files("uniswap-v3-logs", [str(Path(__file__).resolve().parent.parent / "fixtures" / "samples" /
                                       "ethereum-0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640-sample.raw.csv")], log)
    rep = import_files("aave-v3-logs", [str(p)], log)
    events = list(EventLog.open(log).events())
    assert rep.imported == 2 and rep.total_in_log == len(events)
    assert {type(e).__name__ for e in events} >= {"V3Swapped", "AaveSupplied"}
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    run = tmp_path / "run.db"
    with EventLog.create(run, Manifest(run_id="", mode="replay")) as r:
        r.append(ev.KillSwitchSet(ts=1, engaged=False))
        r.manifest.ended = "clean"
    with pytest.raises(ImportError_, match="not an import log"):
        import_files("aave-v3-logs", [str(p)], run)


# ----------------------------------------------------------------------------- the shared day


def test_real_day_counts_amounts_and_index_prediction() -> None:
    raw = require_data(DAY + ".raw.csv")
    tick = require_data(DAY + ".tick.csv")
    r = check.check_day(raw, "polygon", tick)
    # PROVENANCE.md: WETH 858 logs: ReserveDataUpdated 445, Supply 210, Withdraw 129, Repay 41, Borrow 33
    assert r.by_type == {"AaveReserveDataUpdated": 445, "AaveSupplied": 210, "AaveWithdrawn": 129, "AaveRepaid": 41,
                         "AaveBorrowed": 33}
    assert (r.logs, r.rejected) == (858, 0)
    # every decoded action equals demeter-fetch's tick.csv row (action, reserve, owner, amount)
    assert (r.rows_compared, r.rows_equal, r.unmatched_rows) == (413, 413, 0)
    (w,) = r.reserves.values()
    assert (w.updates, w.first, w.predicted) == (445, 1, 444)
    assert (w.liquidity_exact, w.variable_exact) == (413, 444)  # measured
    assert w.causes() == {check.FLASH: 31} and w.unexplained == 0 and w.orphans == 32
    flash = [m for m in w.misses if m.cause == check.FLASH]
    assert all(m.elapsed == 0 and m.other_exact and m.logged > m.predicted for m in flash)
    ks = sorted(m.jump_per_unit for m in flash)
    assert ks[-1] / ks[0] < 1.01  # the jump is proportional to the amount moved, within 1%
    assert sum(1 for m in flash if check.round_principal_fee(m.moved) == 5) == 18  # round x + 0.05% premium
    assert r.ok


def test_real_day_amounts_equal_the_tick_file_row_by_row() -> None:
    """The same, read without the check's own comparison: every tick.csv row is our event's amount."""
    import csv

    raw, tick = require_data(DAY + ".raw.csv"), require_data(DAY + ".tick.csv")
    ours = {(e.block, e.log_index): e for e in read_aave_logs(raw, "polygon")}
    with open(tick, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 413
    for row in rows:
        e = ours[(int(row["block_number"]), int(row["log_index"]))]
        assert (e.amount, e.reserve, e.tx) == (int(row["amount"]), row["reserve"], row["transaction_hash"]), row
        assert e.ts == int(__import__("calendar").timegm(__import__("time").strptime(
            row["block_timestamp"], "%Y-%m-%d %H:%M:%S"))) * 10**9


def test_block_range_limits_the_import(tmp_path) -> None:
    raw = require_data(DAY + ".raw.csv")
    rep = import_files("aave-v3-logs", [str(raw)], tmp_path / "x.db", from_block=51986202, to_block=51986321)
    assert (rep.imported, rep.rejected) == (6, 0)  # the rows of blocks 51986202..51986321 (awk count)


def test_real_day_imports_prints_its_check_and_verifies(tmp_path) -> None:
    raw = require_data(DAY + ".raw.csv")
    log, out = tmp_path / "day.db", tmp_path / "run.db"
    r = CliRunner().invoke(main, ["import", "aave-v3-logs", str(raw), "--out", str(log)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "imported 858 events" in r.output and "rejected 0 row(s)" in r.output
    assert "liquidityIndex exact 413/444 (missed 31), variableBorrowIndex exact 444/444" in r.output
    assert "flash-loan premium (cumulateToLiquidityIndex): 31" in r.output and "unexplained: 0" in r.output
    events = list(EventLog.open(log).events())
    assert len(events) == 858 and all(e.chain == "polygon" for e in events)
    assert CliRunner().invoke(main, ["replay", str(log), "--out", str(out)]).exit_code == 0
    ok = CliRunner().invoke(main, ["replay", str(out), "--verify"])
    assert ok.exit_code == 0 and ok.output.strip().splitlines()[-1].startswith("verified 858 inputs"), ok.output
