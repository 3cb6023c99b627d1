"""Uniswap V3 pool logs (raw CSV) -> V3Swapped / V3Minted / V3Burned / V3Collected events.

The CSV is the raw form demeter-fetch downloads: ``block_number, block_timestamp (UTC),
transaction_hash, transaction_index, log_index, topics (a Python list repr of hex strings),
data (hex)``, one file per pool, no address column. Each row is decoded here from its topics and
data with eth_abi (the CSV's own interpretation is not trusted); a row that cannot be decoded
becomes an ``InputRejected`` event naming the row (``"<file name>:row <n>"``, n = 1 for the first
row after the header, i.e. line n+1 of the file), what was wrong, and the raw line. The reader
never raises on bad data.

Also here: :func:`check_day`, the proof that the decoded logs folded into
:class:`domain.uniswap_v3.V3PoolState` agree with an independent decode (demeter-fetch's
``*.tick.csv``) on every row, and that the exact swap math reproduces every swap that stayed
within initialized-tick bounds.
"""
from __future__ import annotations

import ast
import calendar
import csv
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import eth_abi
from eth_abi.exceptions import DecodingError
from eth_utils import keccak

from tapedeck.adapters.csv_header import read_header
from tapedeck.domain import events as ev
from tapedeck.domain import uniswap_v3 as v3

SOURCE = "uniswap-v3-logs"


def _topic0(signature: str) -> str:
    return "0x" + keccak(text=signature).hex()


SWAP = _topic0("Swap(address,address,int256,int256,uint160,uint128,int24)")
MINT = _topic0("Mint(address,address,int24,int24,uint128,uint256,uint256)")
BURN = _topic0("Burn(address,int24,int24,uint128,uint256,uint256)")
COLLECT = _topic0("Collect(address,address,int24,int24,uint128,uint128)")

# topic0 -> (name, number of topics, ABI types of the data words)
LAYOUTS: dict[str, tuple[str, int, tuple[str, ...]]] = {
    SWAP: ("Swap", 3, ("int256", "int256", "uint160", "uint128", "int24")),
    MINT: ("Mint", 4, ("address", "uint128", "uint256", "uint256")),
    BURN: ("Burn", 4, ("uint128", "uint256", "uint256")),
    COLLECT: ("Collect", 4, ("address", "uint128", "uint128")),
}
# Pool events that are real but not modelled as inputs (named in the rejection reason).
OTHER_POOL_EVENTS = {
    _topic0(s): s.split("(")[0]
    for s in (
        "Initialize(uint160,int24)",
        "Flash(address,address,uint256,uint256,uint256,uint256)",
        "IncreaseObservationCardinalityNext(uint16,uint16)",
        "SetFeeProtocol(uint8,uint8,uint8,uint8)",
        "CollectProtocol(address,address,uint128,uint128)",
    )
}

REQUIRED_COLUMNS = ("block_number", "block_timestamp", "transaction_hash", "log_index", "topics", "data")
_ADDRESS_IN_NAME = re.compile(r"(?<![0-9a-fA-F])0x[0-9a-fA-F]{40}(?![0-9a-fA-F])")
_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_UINT = re.compile(r"[0-9]+")


class RowError(ValueError):
    """What is wrong with one row (the message becomes the rejection reason)."""


def pool_from_filename(path: str | Path) -> str | None:
    m = _ADDRESS_IN_NAME.search(Path(path).name)
    return m.group(0).lower() if m else None


def parse_utc_ns(text: str) -> int:
    """``2024-01-05 00:00:23`` (UTC unless an offset is given) -> integer ns since the epoch."""
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RowError(f"bad block_timestamp {text!r}") from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc)
    return calendar.timegm(dt.timetuple()) * 1_000_000_000 + dt.microsecond * 1000


def _uint(name: str, text: str) -> int:
    t = text.strip()
    if not _UINT.fullmatch(t):
        raise RowError(f"bad {name} {text!r}")
    return int(t)


def _topics(text: str) -> list[str]:
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise RowError(f"topics is not a list of hex strings: {text[:80]!r}") from None
    if not isinstance(value, (list, tuple)) or not all(isinstance(t, str) for t in value):
        raise RowError(f"topics is not a list of hex strings: {text[:80]!r}")
    for i, t in enumerate(value):
        if not _HEX32.fullmatch(t):
            raise RowError(f"topic {i} is not 32 bytes of hex: {t[:80]!r}")
    return [t.lower() for t in value]


def _data(text: str) -> bytes:
    t = text.strip()
    if not _HEX.fullmatch(t):
        raise RowError(f"data is not 0x-prefixed hex of whole bytes (length {len(t)})")
    return bytes.fromhex(t[2:])


def _decode_word(abi_type: str, topic: str, what: str) -> int | str:
    try:
        return eth_abi.decode([abi_type], bytes.fromhex(topic[2:]))[0]
    except DecodingError as exc:
        raise RowError(f"{what}: not a valid {abi_type} ({exc})") from None


def decode_log(topics: list[str], data: bytes) -> tuple[str, dict]:
    """Decode one pool log -> (event name, fields). Raises RowError naming what is wrong."""
    if not topics:
        raise RowError("no topics (anonymous log)")
    t0 = topics[0]
    layout = LAYOUTS.get(t0)
    if layout is None:
        other = OTHER_POOL_EVENTS.get(t0)
        if other is not None:
            raise RowError(f"{other} log (topic0 {t0}) is not modelled as an input")
        raise RowError(f"unknown topic0 {t0}")
    name, n_topics, types = layout
    if len(topics) != n_topics:
        raise RowError(f"wrong topic count: {name} has {n_topics} topics, row has {len(topics)}")
    if len(data) != 32 * len(types):
        raise RowError(f"{'truncated' if len(data) < 32 * len(types) else 'oversized'} data: {name} needs "
                       f"{32 * len(types)} bytes, row has {len(data)}")
    try:
        words = eth_abi.decode(list(types), data)
    except DecodingError as exc:
        raise RowError(f"data: not a valid {name} encoding ({exc})") from None
    if name == "Swap":
        amount0, amount1, sqrt_price, liquidity, tick = words
        if not v3.MIN_SQRT_RATIO <= sqrt_price < v3.MAX_SQRT_RATIO:
            raise RowError(f"Swap sqrtPriceX96 {sqrt_price} is outside the pool's price range")
        if not v3.MIN_TICK <= tick <= v3.MAX_TICK:
            raise RowError(f"Swap tick {tick} is outside [MIN_TICK, MAX_TICK]")
        return name, dict(sender=_decode_word("address", topics[1], "topic 1 (sender)").lower(),
                          recipient=_decode_word("address", topics[2], "topic 2 (recipient)").lower(),
                          amount0=amount0, amount1=amount1, sqrt_price_x96=sqrt_price, liquidity=liquidity,
                          tick=tick)
    tick_lower = _decode_word("int24", topics[2], "topic 2 (tickLower)")
    tick_upper = _decode_word("int24", topics[3], "topic 3 (tickUpper)")
    if not v3.MIN_TICK <= tick_lower < tick_upper <= v3.MAX_TICK:  # type: ignore[operator]
        raise RowError(f"{name} with impossible tick range [{tick_lower}, {tick_upper}]")
    owner = _decode_word("address", topics[1], "topic 1 (owner)").lower()  # type: ignore[union-attr]
    if name == "Mint":
        sender, amount, amount0, amount1 = words
        return name, dict(owner=owner, sender=sender.lower(), tick_lower=tick_lower, tick_upper=tick_upper,
                          amount=amount, amount0=amount0, amount1=amount1)
    if name == "Burn":
        amount, amount0, amount1 = words
        return name, dict(owner=owner, tick_lower=tick_lower, tick_upper=tick_upper, amount=amount,
                          amount0=amount0, amount1=amount1)
    recipient, amount0, amount1 = words
    return name, dict(owner=owner, recipient=recipient.lower(), tick_lower=tick_lower, tick_upper=tick_upper,
                      amount0=amount0, amount1=amount1)


_EVENT_CLASSES = {"Swap": ev.V3Swapped, "Mint": ev.V3Minted, "Burn": ev.V3Burned, "Collect": ev.V3Collected}


def read_v3_logs(path: str | Path, pool: str | None = None) -> Iterator[ev.Event]:
    """Events of one pool's raw-log CSV, in file order; bad rows become ``InputRejected``.

    The pool address comes from the file name when it holds one (``0x`` + 40 hex), else from
    ``pool``; a ``pool`` that disagrees with the file name, or no address at all, is a caller
    error (``ValueError``, raised here, before any row is read). Rows must be in (block, log
    index) order; a row that is not after the previous good one is rejected as a duplicate or
    out of order. ``InputRejected.ts`` is the row's own timestamp if it parses, else the last good one.
    """
    path = Path(path)
    from_name = pool_from_filename(path)
    if pool is not None and not re.fullmatch(r"0x[0-9a-fA-F]{40}", pool):
        raise ValueError(f"pool {pool!r} is not an address")
    if from_name and pool and pool.lower() != from_name:
        raise ValueError(f"pool {pool} disagrees with the address in the file name {path.name} ({from_name})")
    address = from_name or (pool.lower() if pool else None)
    if address is None:
        raise ValueError(f"no pool address: {path.name} holds none and no pool was given")
    return _read(path, address)


def _read(path: Path, pool: str) -> Iterator[ev.Event]:
    name = path.name
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        col = read_header(f, name, REQUIRED_COLUMNS, SOURCE)
        if isinstance(col, ev.InputRejected):
            yield col
            return
        width = col["__width__"]
        last_ts = 0
        last_key: tuple[int, int] | None = None
        for n, line in enumerate(f, start=1):
            raw = line.rstrip("\r\n")
            if not raw.strip():
                continue
            ts = last_ts
            try:
                fields = next(csv.reader([raw]))
                if len(fields) != width:
                    raise RowError(f"expected {width} fields, row has {len(fields)}")
                ts = parse_utc_ns(fields[col["block_timestamp"]])
                block = _uint("block_number", fields[col["block_number"]])
                log_index = _uint("log_index", fields[col["log_index"]])
                tx = fields[col["transaction_hash"]].strip()
                if not _HEX32.fullmatch(tx):
                    raise RowError(f"bad transaction_hash {tx[:80]!r}")
                kind, values = decode_log(_topics(fields[col["topics"]]), _data(fields[col["data"]]))
                key = (block, log_index)
                if last_key is not None and key <= last_key:
                    raise RowError(f"log (block {block}, log_index {log_index}) is not after the previous one "
                                   f"(block {last_key[0]}, log_index {last_key[1]}): duplicate or out of order")
            except (RowError, csv.Error) as exc:
                yield ev.InputRejected(ts=ts, source=SOURCE, origin=f"{name}:row {n}", reason=str(exc), raw=raw)
                continue
            last_ts, last_key = ts, key
            yield _EVENT_CLASSES[kind](ts=ts, source=SOURCE, pool=pool, block=block, tx=tx.lower(),
                                       log_index=log_index, **values)


# ----------------------------------------------------------------------------- the proof on a real day


@dataclass
class DayReport:
    """What :func:`check_day` found; ``ok`` is True when nothing is unexplained."""

    logs: int = 0
    rejected: int = 0
    swaps: int = 0
    mints: int = 0
    burns: int = 0
    collects: int = 0
    # (a) folded state vs the independent decode (demeter-fetch *.tick.csv), row by row
    rows_compared: int = 0
    rows_equal: int = 0
    price_or_tick_mismatches: int = 0  # must be 0
    liquidity_demeter_boundary: int = 0  # mint/burn at tick == tick_lower: demeter drops the delta
    liquidity_demeter_stale: int = 0  # demeter's value = last swap's liquidity + only this row's delta
    liquidity_unexplained: int = 0  # must be 0
    liquidity_confirmed_by_next_swap: int = 0  # of the demeter rows: next swap reproduced with our liquidity
    unmatched_rows: int = 0  # a log missing from the other file
    before_first_swap: int = 0  # state unknown, not compared
    # (b) swaps recomputed from the state before them
    swaps_with_prior_state: int = 0
    crossed: int = 0  # in-range liquidity changed: an initialized tick was crossed
    reproduced_exact_in: int = 0
    reproduced_exact_out: int = 0
    reproduced_price_limit: int = 0  # stopped at a price limit before the amount was used up
    not_reproduced: int = 0
    tick_mismatches: int = 0  # amounts/price reproduced but the log's tick is not the computed one
    within_interval: int = 0  # also reproduced by swap_within_range (stayed in one tick-spacing interval)
    # mint/burn token amounts recomputed from the state before them (_modifyPosition)
    positions_checked: int = 0
    position_amounts_reproduced: int = 0
    details: list[str] = field(default_factory=list)  # the first unexplained disagreements

    @property
    def reproduced(self) -> int:
        return self.reproduced_exact_in + self.reproduced_exact_out + self.reproduced_price_limit

    @property
    def liquidity_demeter(self) -> int:
        return self.liquidity_demeter_boundary + self.liquidity_demeter_stale

    @property
    def ok(self) -> bool:
        return (self.rejected == 0 and self.unmatched_rows == 0 and self.price_or_tick_mismatches == 0
                and self.liquidity_unexplained == 0 and self.not_reproduced == 0 and self.tick_mismatches == 0
                and self.position_amounts_reproduced == self.positions_checked)

    def lines(self) -> list[str]:
        return [
            f"logs {self.logs} (swaps {self.swaps}, mints {self.mints}, burns {self.burns}, "
            f"collects {self.collects}); rejected rows {self.rejected}",
            f"(a) state vs demeter-fetch decode: {self.rows_compared} rows compared, {self.rows_equal} equal; "
            f"sqrtPriceX96/tick mismatches {self.price_or_tick_mismatches}; in-range liquidity differs on "
            f"{self.liquidity_demeter} rows, all where demeter's own rule gives its value "
            f"({self.liquidity_demeter_boundary} mint/burn at tick == tickLower, which the pool counts in range; "
            f"{self.liquidity_demeter_stale} rows reset to the last swap's liquidity), "
            f"{self.liquidity_confirmed_by_next_swap} of them confirmed by the next swap reproducing exactly with our "
            f"liquidity; unexplained {self.liquidity_unexplained}; unmatched rows {self.unmatched_rows}; "
            f"before the first swap {self.before_first_swap}",
            f"(b) swaps {self.swaps} ({self.swaps_with_prior_state} with a known prior state): crossed an "
            f"initialized tick {self.crossed}; reproduced exactly {self.reproduced} (exact-in "
            f"{self.reproduced_exact_in}, exact-out {self.reproduced_exact_out}, stopped at a price limit "
            f"{self.reproduced_price_limit}); not reproduced {self.not_reproduced}; tick mismatches "
            f"{self.tick_mismatches}; inside one tick-spacing interval (swap_within_range) {self.within_interval}",
            f"mint/burn token amounts recomputed exactly: {self.position_amounts_reproduced}/{self.positions_checked}",
            "OK" if self.ok else "NOT OK",
        ] + self.details


def _read_tick_csv(path: Path) -> dict[tuple[int, int], dict[str, str]]:
    rows: dict[tuple[int, int], dict[str, str]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            log_index = r.get("pool_log_index") or r.get("log_index") or ""
            rows[(int(r["block_number"]), _as_int(log_index))] = r
    return rows


def _as_int(text: str) -> int:
    """demeter writes some integers as floats (``199045.0``); accept only exact integers."""
    t = text.strip()
    whole, dot, frac = t.partition(".")
    if re.fullmatch(r"-?[0-9]+", whole) and (not dot or re.fullmatch(r"0*", frac)):
        return int(whole)
    raise ValueError(f"not an integer: {text!r}")


def _swap_direction(e: ev.V3Swapped) -> tuple[bool, int, int]:
    """(zero_for_one, amount paid in, amount received) read off the pool deltas."""
    if e.amount0 > 0 or (e.amount0 == 0 and e.amount1 < 0):
        return True, e.amount0, -e.amount1
    return False, e.amount1, -e.amount0


def reproduce_swap(sqrt_price_x96: int, liquidity: int, e: ev.V3Swapped, fee_pips: int) -> str | None:
    """How a swap that crossed no initialized tick is reproduced from the pool state before it.

    Tries, in order: exact-in with the amount paid ('in'), exact-out with the amount received
    ('out'), exact-in stopped at a price limit equal to the final price ('limit'). The price
    target of the first two is the far end of the price range, which gives the pool's result for
    any swap that ends before the next initialized tick. Returns None if none reproduces the
    log's amounts and price exactly.
    """
    zfo, paid, got = _swap_direction(e)
    far = v3.MIN_SQRT_RATIO + 1 if zfo else v3.MAX_SQRT_RATIO - 1
    for how, target, amount in (("in", far, paid), ("out", far, -got), ("limit", e.sqrt_price_x96, paid)):
        if amount == 0 or target == sqrt_price_x96:
            continue
        try:
            nxt, a_in, a_out, fee = v3.compute_swap_step(sqrt_price_x96, target, liquidity, amount, fee_pips)
        except v3.V3MathError:
            continue
        if nxt == e.sqrt_price_x96 and a_in + fee == paid and a_out == got:
            return how
    return None


def _demeter_liquidity(last_swap_liquidity: int, e: ev.Event, tick: int) -> int:
    """demeter-fetch's total_liquidity for a row (processor_uniswap/tick.py @2fda05e): the last
    swap's liquidity forward-filled, plus this row's own delta when ``lower < tick < upper``."""
    if isinstance(e, (ev.V3Minted, ev.V3Burned)) and e.tick_lower < tick < e.tick_upper:
        return last_swap_liquidity + (e.amount if isinstance(e, ev.V3Minted) else -e.amount)
    return last_swap_liquidity


_HOW_FIELD = {"in": "reproduced_exact_in", "out": "reproduced_exact_out", "limit": "reproduced_price_limit"}


def check_day(raw_csv: str | Path, tick_csv: str | Path, *, fee_pips: int = 500, tick_spacing: int = 10,
              max_details: int = 20) -> DayReport:
    """Prove a day of raw pool logs against an independent decode and the exact V3 math.

    (a) Folds every decoded log into :class:`V3PoolState` and compares (sqrtPriceX96, tick,
    in-range liquidity) with the tick file's row for the same (block, log index). A liquidity
    difference counts as explained only when the tick file holds exactly what demeter-fetch's
    own rule computes (see :func:`_demeter_liquidity`); the next swap then shows whose value the
    pool had. (b) Recomputes every swap whose logged liquidity equals the liquidity before it
    (see :func:`reproduce_swap`), checks the log's tick, and whether :func:`swap_within_range`
    gives the same; recomputes mint/burn token amounts with ``_modifyPosition``'s formulas.
    """
    report = DayReport()
    expected = _read_tick_csv(Path(tick_csv))
    seen: set[tuple[int, int]] = set()
    state = v3.V3PoolState()
    last_swap_liquidity: int | None = None
    unconfirmed = 0  # demeter-rule rows since the last swap

    def note(msg: str) -> None:
        if len(report.details) < max_details:
            report.details.append(msg)

    for e in read_v3_logs(raw_csv):
        if isinstance(e, ev.InputRejected):
            report.rejected += 1
            note(f"rejected {e.origin}: {e.reason}")
            continue
        report.logs += 1
        before = state.copy()
        sp, liq, tick = before.sqrt_price_x96, before.liquidity, before.tick
        if isinstance(e, ev.V3Swapped):
            report.swaps += 1
            reproduced = False
            if sp is not None and liq is not None and tick is not None:
                report.swaps_with_prior_state += 1
                if e.liquidity != liq:
                    report.crossed += 1
                else:
                    how = reproduce_swap(sp, liq, e, fee_pips)
                    if how is None:
                        report.not_reproduced += 1
                        note(f"swap not reproduced: block {e.block} log {e.log_index} tx {e.tx}")
                    else:
                        reproduced = True
                        setattr(report, _HOW_FIELD[how], getattr(report, _HOW_FIELD[how]) + 1)
                        want_tick = v3.get_tick_at_sqrt_ratio(e.sqrt_price_x96) if e.sqrt_price_x96 != sp else tick
                        if e.tick != want_tick:
                            report.tick_mismatches += 1
                            note(f"tick mismatch: block {e.block} log {e.log_index}: log {e.tick}, computed {want_tick}")
                        zfo, paid, got = _swap_direction(e)
                        spec = paid if how == "in" else -got
                        try:
                            r = v3.swap_within_range(sp, liq, tick, tick_spacing, fee_pips, spec, zfo)
                            if (not r.reached_edge and (r.amount0, r.amount1, r.sqrt_price_x96, r.tick)
                                    == (e.amount0, e.amount1, e.sqrt_price_x96, e.tick)):
                                report.within_interval += 1
                        except (v3.V3MathError, ValueError):
                            pass
            if reproduced:
                report.liquidity_confirmed_by_next_swap += unconfirmed
            unconfirmed = 0
        elif isinstance(e, (ev.V3Minted, ev.V3Burned)):
            if isinstance(e, ev.V3Minted):
                report.mints += 1
            else:
                report.burns += 1
            if sp is not None and tick is not None:
                report.positions_checked += 1
                delta = e.amount if isinstance(e, ev.V3Minted) else -e.amount
                a0, a1 = v3.position_amounts(sp, tick, e.tick_lower, e.tick_upper, delta)
                if delta < 0:
                    a0, a1 = -a0, -a1  # Burn logs the amounts owed, as positive numbers
                if (a0, a1) == (e.amount0, e.amount1):
                    report.position_amounts_reproduced += 1
                else:
                    note(f"{type(e).__name__} amounts differ: block {e.block} log {e.log_index}: log "
                         f"({e.amount0}, {e.amount1}), computed ({a0}, {a1})")
        elif isinstance(e, ev.V3Collected):
            report.collects += 1
        state.apply(e)
        if isinstance(e, ev.V3Swapped):
            last_swap_liquidity = e.liquidity

        key = (e.block, e.log_index)  # type: ignore[attr-defined]
        seen.add(key)
        row = expected.get(key)
        if row is None:
            report.unmatched_rows += 1
            note(f"log at block {key[0]} index {key[1]} is not in the tick file")
            continue
        if not state.known:
            report.before_first_swap += 1
            continue
        report.rows_compared += 1
        try:
            theirs = (_as_int(row["sqrtPriceX96"]), _as_int(row["current_tick"]), _as_int(row["total_liquidity"]))
        except (ValueError, KeyError) as exc:
            report.price_or_tick_mismatches += 1
            note(f"tick file row at block {key[0]} index {key[1]} unreadable: {exc}")
            continue
        ours = (state.sqrt_price_x96, state.tick, state.liquidity)
        if theirs == ours:
            report.rows_equal += 1
            continue
        where = f"block {key[0]} log {key[1]} ({type(e).__name__})"
        if theirs[:2] != ours[:2]:
            report.price_or_tick_mismatches += 1
            note(f"price/tick differ at {where}: ours {ours}, tick file {theirs}")
        elif (last_swap_liquidity is not None and tick is not None
              and theirs[2] == _demeter_liquidity(last_swap_liquidity, e, tick)):
            if isinstance(e, (ev.V3Minted, ev.V3Burned)) and e.amount and tick == e.tick_lower:
                report.liquidity_demeter_boundary += 1
            else:
                report.liquidity_demeter_stale += 1
            unconfirmed += 1
        else:
            report.liquidity_unexplained += 1
            note(f"liquidity differs at {where}: ours {ours[2]}, tick file {theirs[2]}")
    extra = [k for k in expected if k not in seen]
    report.unmatched_rows += len(extra)
    for k in extra[:3]:
        note(f"tick file row at block {k[0]} index {k[1]} has no log")
    return report


def independent_decode_report(raw_paths: list[str]) -> list[str]:
    """Where a ``*.tick.csv`` (demeter-fetch decode) lies beside a ``*.raw.csv``, check our decode,
    pool state and swap math against it; the report's lines, ready to print."""
    lines: list[str] = []
    for p in raw_paths:
        if not p.endswith(".raw.csv"):
            continue
        tick = Path(p[: -len(".raw.csv")] + ".tick.csv")
        if tick.is_file():
            lines.append(f"check of {Path(p).name} against {tick.name}:")
            lines.extend(f"  {line}" for line in check_day(p, tick).lines())
    return lines
