"""The proof of a Uniswap V3 pool's day: decoded logs vs an independent decode and the exact math.

:func:`check_day` folds the logs :func:`adapters.uniswap_v3_logs.read_v3_logs` decodes into
:class:`domain.uniswap_v3.V3PoolState` and checks, row by row, that they agree with an independent
decode (demeter-fetch's ``*.tick.csv``, or any file of the same columns), and that the exact swap
math reproduces every swap that stayed within initialized-tick bounds. The swap math needs the
pool's own fee and tick spacing, so they are arguments (from the registry or the user's flags),
never a default: a 0.30% pool checked with 0.05% fails every swap.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from tapedeck.adapters.uniswap_v3_logs import read_v3_logs
from tapedeck.domain import events as ev
from tapedeck.domain import uniswap_v3 as v3



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


def swap_without_crossing(sqrt_price_x96: int, tick: int, liquidity: int, tick_spacing: int, fee_pips: int,
                          amount: int, zero_for_one: bool, limit: int) -> tuple[int, int, int, int]:
    """``UniswapV3Pool.swap`` over ticks none of which is initialized -> ``(sqrtP, tick, paid, received)``.

    The pool still ends a step at every tick-bitmap word boundary (``nextInitializedTickWithinOneWord``
    returns the word's last tick when it finds none), and a step's rounding depends on where it
    ends, so a swap across a boundary is chained step by step as the pool does, liquidity unchanged.
    ``amount`` > 0: exact input; < 0: exact output."""
    remaining, paid, got = amount, 0, 0
    exact_in = amount > 0
    while remaining != 0 and sqrt_price_x96 != limit:
        compressed = tick // tick_spacing
        if zero_for_one:
            tick_next = (compressed - compressed % 256) * tick_spacing
        else:
            tick_next = (compressed + 1 + 255 - (compressed + 1) % 256) * tick_spacing
        tick_next = min(max(tick_next, v3.MIN_TICK), v3.MAX_TICK)
        sqrt_next = v3.get_sqrt_ratio_at_tick(tick_next)
        target = limit if (sqrt_next < limit if zero_for_one else sqrt_next > limit) else sqrt_next
        start = sqrt_price_x96
        sqrt_price_x96, a_in, a_out, fee = v3.compute_swap_step(sqrt_price_x96, target, liquidity, remaining, fee_pips)
        paid += a_in + fee
        got += a_out
        remaining = remaining - (a_in + fee) if exact_in else remaining + a_out
        if sqrt_price_x96 == sqrt_next:
            tick = tick_next - 1 if zero_for_one else tick_next
        elif sqrt_price_x96 != start:
            tick = v3.get_tick_at_sqrt_ratio(sqrt_price_x96)
    return sqrt_price_x96, tick, paid, got


def reproduce_swap(sqrt_price_x96: int, liquidity: int, e: ev.V3Swapped, fee_pips: int, tick: int,
                   tick_spacing: int) -> tuple[str, int] | None:
    """How a swap that crossed no initialized tick is reproduced from the pool state before it, and
    the tick the pool then has: ``(how, tick)``, or None if nothing reproduces it.

    Tries, in order: exact-in with the amount paid ('in'), exact-out with the amount received
    ('out'), exact-in stopped at a price limit equal to the final price ('limit'), each run by
    :func:`swap_without_crossing` toward the far end of the price range (or the limit). A match
    needs the log's amounts and final price exactly.
    """
    zfo, paid, got = _swap_direction(e)
    far = v3.MIN_SQRT_RATIO + 1 if zfo else v3.MAX_SQRT_RATIO - 1
    for how, limit, amount in (("in", far, paid), ("out", far, -got), ("limit", e.sqrt_price_x96, paid)):
        if amount == 0 or limit == sqrt_price_x96:
            continue
        try:
            nxt, new_tick, a_paid, a_got = swap_without_crossing(sqrt_price_x96, tick, liquidity, tick_spacing,
                                                                 fee_pips, amount, zfo, limit)
        except v3.V3MathError:
            continue
        if nxt == e.sqrt_price_x96 and a_paid == paid and a_got == got:
            return how, new_tick
    return None


def _demeter_liquidity(last_swap_liquidity: int, e: ev.Event, tick: int) -> int:
    """demeter-fetch's total_liquidity for a row (processor_uniswap/tick.py @2fda05e): the last
    swap's liquidity forward-filled, plus this row's own delta when ``lower < tick < upper``."""
    if isinstance(e, (ev.V3Minted, ev.V3Burned)) and e.tick_lower < tick < e.tick_upper:
        return last_swap_liquidity + (e.amount if isinstance(e, ev.V3Minted) else -e.amount)
    return last_swap_liquidity


_HOW_FIELD = {"in": "reproduced_exact_in", "out": "reproduced_exact_out", "limit": "reproduced_price_limit"}


def check_day(raw_csv: str | Path, tick_csv: str | Path, *, fee_pips: int, tick_spacing: int,
              pool: str | None = None, max_details: int = 20) -> DayReport:
    """Prove a day of raw pool logs against an independent decode and the exact V3 math.

    (a) Folds every decoded log into :class:`V3PoolState` and compares (sqrtPriceX96, tick,
    in-range liquidity) with the tick file's row for the same (block, log index). A liquidity
    difference counts as explained only when the tick file holds exactly what demeter-fetch's
    own rule computes (see :func:`_demeter_liquidity`); the next swap then shows whose value the
    pool had. (b) Recomputes every swap whose logged liquidity equals the liquidity before it
    (see :func:`reproduce_swap`, which steps over tick-bitmap word boundaries as the pool does),
    checks the log's tick, and whether :func:`swap_within_range`
    gives the same; recomputes mint/burn token amounts with ``_modifyPosition``'s formulas.
    ``fee_pips``/``tick_spacing`` are the pool's; ``pool`` its address when the file name holds none.
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

    for e in read_v3_logs(raw_csv, pool=pool):
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
                    found = reproduce_swap(sp, liq, e, fee_pips, tick, tick_spacing)
                    if found is None:
                        report.not_reproduced += 1
                        note(f"swap not reproduced: block {e.block} log {e.log_index} tx {e.tx}")
                    else:
                        reproduced = True
                        how, want_tick = found
                        setattr(report, _HOW_FIELD[how], getattr(report, _HOW_FIELD[how]) + 1)
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


def tick_file_for(raw_path: str | Path) -> Path | None:
    """The ``*.tick.csv`` beside a ``*.raw.csv``, if there is one."""
    p = str(raw_path)
    if not p.endswith(".raw.csv"):
        return None
    tick = Path(p[: -len(".raw.csv")] + ".tick.csv")
    return tick if tick.is_file() else None


def independent_decode_report(raw_paths: list[str], fees: dict[str, tuple[int, int]] | None = None,
                              pool: str | None = None) -> list[str]:
    """``independent_decode_check``'s lines."""
    return independent_decode_check(raw_paths, fees, pool)[0]


def independent_decode_check(raw_paths: list[str], fees: dict[str, tuple[int, int]] | None = None,
                             pool: str | None = None) -> tuple[list[str], list[str]]:
    """Where a ``*.tick.csv`` lies beside a ``*.raw.csv``, check our decode, pool state and swap math
    against it: the report's lines, ready to print, and the raw files whose check failed (NOT OK).

    ``fees`` maps a raw file path to its pool's ``(fee_pips, tick_spacing)``; a file not in it is
    looked up in the shipped registry by the address in its name (or ``pool``), and is reported as
    not checked when the registry does not know it either."""
    from tapedeck.adapters.registry import RegistryError, load_registry
    from tapedeck.adapters.uniswap_v3_logs import pool_from_filename

    lines: list[str] = []
    failed: list[str] = []
    registry = None
    for p in raw_paths:
        tick = tick_file_for(p)
        if tick is None:
            continue
        lines.append(f"check of {Path(p).name} against {tick.name}:")
        fee_spacing = (fees or {}).get(p)
        if fee_spacing is None:
            try:
                registry = registry or load_registry()
                address = pool_from_filename(p) or pool
                spec = registry.find(address) if address else None
            except RegistryError as e:
                lines.append(f"  not checked: {e}")
                continue
            if spec is None or spec.tick_spacing is None:
                lines.append("  not checked: the pool's fee and tick spacing are unknown (not in the registry)")
                continue
            fee_spacing = (spec.fee, spec.tick_spacing)
        fee, spacing = fee_spacing
        lines.append(f"  pool fee {fee} pips, tick spacing {spacing}")
        try:
            day = check_day(p, tick, fee_pips=fee, tick_spacing=spacing, pool=pool)
        except (ValueError, KeyError, OSError, csv.Error) as e:
            lines.append(f"  not checked: {tick.name} is unreadable: {e}")
            continue
        lines.extend(f"  {line}" for line in day.lines())
        if not day.ok:
            failed.append(p)
    return lines, failed
