"""The proof of an Aave v3 Pool-log day: decoded actions vs an independent decode, and every
``ReserveDataUpdated`` index predicted by the exact math from the update before it.

(a) Each decoded Supply/Withdraw/Borrow/Repay is compared with demeter-fetch's ``*.tick.csv`` row of
the same (block, log index): action, reserve, owner and amount. demeter's ``owner`` is, as measured
on the shared day, ``onBehalfOf`` for Supply and Borrow, ``user`` for Repay and ``to`` for Withdraw.

(b) Between two updates of a reserve its stored rates and indexes are those the earlier update
logged (``updateInterestRates`` stores what it emits), so the next update's indexes are
``ReserveLogic._updateIndexes`` of them over the elapsed seconds: the liquidity index by linear
interest (only if the liquidity rate is not 0), the variable borrow index compounded
(``domain.aave_v3.normalized_income``/``normalized_debt``; elapsed 0 leaves both unchanged). Each
miss is given the cause the logs support, or counted unexplained:

* ``flash-loan premium, its FlashLoan log in the tx``: the liquidity index rose beyond the
  time-based accrual while the variable borrow index is exactly as predicted (only
  ``cumulateToLiquidityIndex`` moves one index alone), and a ``FlashLoan`` of the reserve follows
  the update in its transaction (a file of the whole Pool's logs, or the sim's).
* ``flash-loan premium (cumulateToLiquidityIndex)``: the same jump, where no FlashLoan log is at
  hand, on an update that is an orphan: no action log of the reserve follows it in its transaction (a user
  action's update is always followed by its own log; a flash loan's repayment update is followed by
  ``FlashLoan``, whose topic1 is the receiver, so a reserve-filtered file never holds it). Where the
  transaction holds a Supply/Withdraw of the reserve, the jump per unit of that amount must be within
  5% of the reserve's median over these misses: a fee proportional to the amount moved, paid to a pool
  whose size changes slowly over the day. ``BackUnbacked`` (the other caller of
  ``cumulateToLiquidityIndex``) has topic1 = reserve and would be in the file; none is.
* ``no variable debt``: the variable index stayed put while time passed at a non-zero rate
  (``_updateIndexes`` skips it when the scaled variable debt is 0).
"""
from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Mapping

from tapedeck.adapters.aave_v3_logs import read_aave_logs
from tapedeck.domain import aave_v3 as aave
from tapedeck.domain import events as ev

NS = 1_000_000_000
FLASH = "flash-loan premium (cumulateToLiquidityIndex)"
FLASH_LOGGED = "flash-loan premium, its FlashLoan log in the tx"
NO_DEBT = "no variable debt (index not cumulated)"
PREMIUM_TOLERANCE = Fraction(5, 100)  # of the median jump per unit moved
ACTIONS = (ev.AaveSupplied, ev.AaveWithdrawn, ev.AaveBorrowed, ev.AaveRepaid, ev.AaveCollateralToggled)
_TICK_TYPES = {ev.AaveSupplied: "AAVE_SUPPLY", ev.AaveWithdrawn: "AAVE_WITHDRAW", ev.AaveBorrowed: "AAVE_BORROW",
               ev.AaveRepaid: "AAVE_REPAY"}


@dataclass
class Miss:
    """One index the math did not predict: where, by how much (ray), and the transaction's own amount."""

    index: str  # "liquidity" | "variable"
    block: int
    log_index: int
    tx: str
    elapsed: int  # seconds since the previous update
    predicted: int
    logged: int
    orphan: bool  # no action log of the reserve after it in its transaction
    other_exact: bool  # the other index of the same update was predicted exactly
    moved: int | None  # the Supply/Withdraw amount of its transaction, if exactly one
    cause: str = ""

    @property
    def jump_per_unit(self) -> Fraction | None:
        """Relative jump of the index per base unit moved: a premium-like fee makes it constant."""
        if self.moved is None or self.moved == 0:
            return None
        return Fraction(self.logged - self.predicted, self.predicted * self.moved)


@dataclass
class ReserveReport:
    reserve: str
    updates: int = 0
    first: int = 0  # updates with no earlier one in the file: nothing to predict from
    liquidity_exact: int = 0
    variable_exact: int = 0
    orphans: int = 0  # updates with no action log after them in their transaction
    misses: list[Miss] = field(default_factory=list)

    @property
    def predicted(self) -> int:
        return self.updates - self.first

    def causes(self) -> Counter:
        return Counter(m.cause or "unexplained" for m in self.misses)

    @property
    def unexplained(self) -> int:
        return sum(1 for m in self.misses if not m.cause)


@dataclass
class AaveDayReport:
    logs: int = 0
    rejected: int = 0
    by_type: Counter = field(default_factory=Counter)
    rows_compared: int = 0
    rows_equal: int = 0
    unmatched_rows: int = 0  # an action in one file but not the other
    reserves: dict[str, ReserveReport] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.rejected == 0 and self.unmatched_rows == 0 and self.rows_equal == self.rows_compared
                and all(r.unexplained == 0 for r in self.reserves.values()))

    def lines(self) -> list[str]:
        out = [f"logs {self.logs} ({', '.join(f'{k} {v}' for k, v in sorted(self.by_type.items()))}); "
               f"rejected rows {self.rejected}"]
        if self.rows_compared or self.unmatched_rows:
            out.append(f"(a) actions vs demeter-fetch decode: {self.rows_compared} rows compared, {self.rows_equal} "
                       f"equal (action, reserve, owner, amount); unmatched rows {self.unmatched_rows}")
        for r in self.reserves.values():
            out += _reserve_lines(r)
        return out + ["OK" if self.ok else "NOT OK"] + self.details


def _reserve_lines(r: ReserveReport) -> list[str]:
    n = r.predicted
    lines = [f"(b) reserve {r.reserve}: {r.updates} ReserveDataUpdated, {r.first} first (no prior update), "
             f"{n} predicted from the previous update: liquidityIndex exact {r.liquidity_exact}/{n} "
             f"(missed {n - r.liquidity_exact}), variableBorrowIndex exact {r.variable_exact}/{n} "
             f"(missed {n - r.variable_exact}); orphan updates (no action log after them in their tx) {r.orphans}"]
    for cause, count in sorted(r.causes().items()):
        lines.append(f"    missed, {cause}: {count}")
    lines.append(f"    unexplained: {r.unexplained}")
    lines += _premium_evidence(r)
    return lines


def _premium_evidence(r: ReserveReport) -> list[str]:
    flash = [m for m in r.misses if m.cause == FLASH]  # the ones shown by their shape and size
    sized = [m for m in flash if m.jump_per_unit is not None]
    if not flash:
        return []
    same_block = sum(1 for m in flash if m.elapsed == 0)
    lines = [f"    flash-loan evidence: {len(flash)} liquidityIndex jumps with variableBorrowIndex exact, all orphan "
             f"updates; {same_block} at elapsed 0 (no time-based accrual at all)"]
    if sized:
        ks = sorted(m.jump_per_unit for m in sized)  # type: ignore[type-var]
        amounts = sorted(m.moved for m in sized)  # type: ignore[type-var]
        spread = float(ks[-1] / ks[0] - 1)
        lines.append(f"    jump/index per unit of the tx's Supply/Withdraw amount: {float(ks[0]):.4e}..{float(ks[-1]):.4e} "
                     f"(spread {spread:.2%}) over amounts {amounts[0]}..{amounts[-1]} base units "
                     f"({len(sized)} misses): proportional to the amount moved, as a fee is")
    fees = Counter(p for m in flash if m.moved is not None and (p := round_principal_fee(m.moved)) is not None)
    if fees:
        lines.append(f"    amounts that are a round principal x plus percentMul(x, p): {sum(fees.values())} of "
                     f"{len(sized)} (p in bps: {', '.join(f'{p} x{n}' for p, n in sorted(fees.items()))}); the others "
                     f"are not of that form with a round principal")
    return lines


def _round(x: int) -> bool:
    digits = str(x)
    return len(digits) - len(digits.rstrip("0")) >= (len(digits) + 1) // 2


def round_principal_fee(amount: int) -> int | None:
    """The smallest fee ``p`` (bps, 1..100) with ``amount == x + percentMul(x, p)`` for a round ``x`` (at
    most half its digits significant), or None: how a flash-loan repayment of principal + premium looks."""
    for p in range(1, 101):
        x = amount * aave.PERCENTAGE_FACTOR // (aave.PERCENTAGE_FACTOR + p)
        for cand in (x, x + 1):
            if cand and cand + aave.percent_mul(cand, p) == amount and _round(cand):
                return p
    return None


def _reserves_of(e: ev.Event) -> tuple[str, ...]:
    """The reserves whose update an action log closes (a liquidation closes both of its own)."""
    if isinstance(e, ev.AaveLiquidationObserved):
        return (e.collateral_asset, e.debt_asset)
    if isinstance(e, ACTIONS):
        return (e.reserve,)  # type: ignore[attr-defined]
    return ()


def _update_links(events: list[ev.Event]) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """(orphans, flash-loaned): (block, log index) of the updates with no action log of their reserve
    after them in their transaction, and of those a ``FlashLoan`` of that reserve follows there."""
    orphan: set[tuple[int, int]] = set()
    flashed: set[tuple[int, int]] = set()
    open_update: dict[tuple[str, str], tuple[int, int]] = {}  # (tx, reserve) -> the update awaiting its action
    for e in events:
        if isinstance(e, ev.AaveReserveDataUpdated):
            if (key := (e.tx, e.reserve)) in open_update:
                orphan.add(open_update[key])
            open_update[key] = (e.block, e.log_index)
        elif isinstance(e, ev.AaveFlashLoaned) and (e.tx, e.asset) in open_update:
            flashed.add(open_update[(e.tx, e.asset)])
        for reserve in _reserves_of(e):
            open_update.pop((e.tx, reserve), None)
    return orphan | set(open_update.values()), flashed


def _moved(events: list[ev.Event]) -> dict[tuple[str, str], int]:
    """(tx, reserve) -> its one Supply/Withdraw amount (several: left out, the amount is ambiguous)."""
    amounts: dict[tuple[str, str], list[int]] = defaultdict(list)
    for e in events:
        if isinstance(e, (ev.AaveSupplied, ev.AaveWithdrawn)):
            amounts[(e.tx, e.reserve)].append(e.amount)
    return {key: a[0] for key, a in amounts.items() if len(a) == 1}


def predict(prev: ev.AaveReserveDataUpdated, now_ts: int) -> tuple[int, int]:
    """(liquidityIndex, variableBorrowIndex) ``_updateIndexes`` gives at ``now_ts`` (ns) from ``prev``'s state."""
    t0, t1 = prev.ts // NS, now_ts // NS
    liquidity = prev.liquidity_index
    if prev.liquidity_rate != 0:
        liquidity = aave.normalized_income(prev.liquidity_index, prev.liquidity_rate, t0, t1)
    variable = aave.normalized_debt(prev.variable_borrow_index, prev.variable_borrow_rate, t0, t1)
    return liquidity, variable


def _compare(r: ReserveReport, prev: ev.AaveReserveDataUpdated, e: ev.AaveReserveDataUpdated, orphan: bool,
             moved: int | None) -> None:
    liquidity, variable = predict(prev, e.ts)
    l_ok, v_ok = liquidity == e.liquidity_index, variable == e.variable_borrow_index
    r.liquidity_exact += l_ok
    r.variable_exact += v_ok
    elapsed = (e.ts - prev.ts) // NS
    if not l_ok:
        r.misses.append(Miss("liquidity", e.block, e.log_index, e.tx, elapsed, liquidity, e.liquidity_index, orphan,
                             v_ok, moved))
    if not v_ok:
        m = Miss("variable", e.block, e.log_index, e.tx, elapsed, variable, e.variable_borrow_index, orphan, l_ok, moved)
        if e.variable_borrow_index == prev.variable_borrow_index and elapsed > 0 and prev.variable_borrow_rate > 0:
            m.cause = NO_DEBT
        r.misses.append(m)


def _explain_premiums(r: ReserveReport, flashed: set[tuple[int, int]]) -> None:
    """Name the flash-loan premium misses: liquidity jumps with the other index exact, on an update a
    ``FlashLoan`` log follows, or an orphan one whose jump is premium-sized."""
    shaped = [m for m in r.misses if m.index == "liquidity" and m.other_exact and m.logged > m.predicted]
    for m in shaped:
        if (m.block, m.log_index) in flashed:
            m.cause = FLASH_LOGGED
    guessed = [m for m in shaped if m.orphan and not m.cause]
    ks = sorted(k for m in guessed if (k := m.jump_per_unit) is not None)
    median = ks[len(ks) // 2] if ks else None
    for m in guessed:
        k = m.jump_per_unit
        if k is None or (median is not None and abs(k - median) <= median * PREMIUM_TOLERANCE):
            m.cause = FLASH


def check_reserves(events: Iterable[ev.Event]) -> dict[str, ReserveReport]:
    """Predict every ReserveDataUpdated's indexes from the reserve's previous one; explain the misses."""
    evs = [e for e in events if isinstance(e, ev.AaveLog) or isinstance(e, ev.AaveLiquidationObserved)]
    (orphans, flashed), moved = _update_links(evs), _moved(evs)
    reports: dict[str, ReserveReport] = {}
    last: dict[str, ev.AaveReserveDataUpdated] = {}
    for e in evs:
        if not isinstance(e, ev.AaveReserveDataUpdated):
            continue
        r = reports.setdefault(e.reserve, ReserveReport(e.reserve))
        r.updates += 1
        orphan = (e.block, e.log_index) in orphans
        r.orphans += orphan
        prev = last.get(e.reserve)
        last[e.reserve] = e
        if prev is None:
            r.first += 1
            continue
        _compare(r, prev, e, orphan, moved.get((e.tx, e.reserve)))
    for r in reports.values():
        _explain_premiums(r, flashed)
    return reports


def _owner(e: ev.Event) -> str:
    if isinstance(e, (ev.AaveSupplied, ev.AaveBorrowed)):
        return e.on_behalf_of
    if isinstance(e, ev.AaveWithdrawn):
        return e.to
    return e.user  # type: ignore[attr-defined]


def _read_tick_csv(path: Path) -> dict[tuple[int, int], dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return {(int(r["block_number"]), int(r["log_index"])): r for r in csv.DictReader(f)}


def _compare_tick_file(report: AaveDayReport, events: list[ev.Event], tick_csv: Path) -> None:
    expected = _read_tick_csv(tick_csv)
    seen: set[tuple[int, int]] = set()
    for e in events:
        want_type = _TICK_TYPES.get(type(e))
        if want_type is None:
            continue
        key = (e.block, e.log_index)  # type: ignore[attr-defined]
        seen.add(key)
        row = expected.get(key)
        if row is None:
            report.unmatched_rows += 1
            report.details.append(f"{type(e).__name__} at block {key[0]} log {key[1]} is not in the tick file")
            continue
        report.rows_compared += 1
        ours = (want_type, e.reserve, _owner(e), str(e.amount))  # type: ignore[attr-defined]
        theirs = (row["tx_type"], row["reserve"].lower(), row["owner"].lower(), row["amount"].strip())
        if ours == theirs:
            report.rows_equal += 1
        elif len(report.details) < 20:
            report.details.append(f"block {key[0]} log {key[1]}: ours {ours}, tick file {theirs}")
    report.unmatched_rows += sum(1 for k, r in expected.items() if k not in seen and r["tx_type"] in _TICK_TYPES.values())


def check_day(raw_csv: str | Path, chain: str, tick_csv: str | Path | None = None) -> AaveDayReport:
    """Read a raw Pool-log day, compare its actions with ``tick_csv`` (if given) and predict its indexes."""
    report = AaveDayReport()
    events: list[ev.Event] = []
    for e in read_aave_logs(raw_csv, chain):
        if isinstance(e, ev.InputRejected):
            report.rejected += 1
            if len(report.details) < 20:
                report.details.append(f"rejected {e.origin}: {e.reason}")
            continue
        report.logs += 1
        report.by_type[type(e).__name__] += 1
        events.append(e)
    if tick_csv is not None:
        _compare_tick_file(report, events, Path(tick_csv))
    report.reserves = check_reserves(events)
    return report


def tick_file_for(raw_path: str | Path) -> Path | None:
    """The ``*.tick.csv`` beside a ``*.raw.csv``, if there is one."""
    p = str(raw_path)
    tick = Path(p[: -len(".raw.csv")] + ".tick.csv") if p.endswith(".raw.csv") else None
    return tick if tick is not None and tick.is_file() else None


def day_report(chains: Mapping[str, str]) -> list[str]:
    """The check of each raw file (path -> its chain), ready to print; the tick file beside it, when
    there is one, is compared too."""
    lines: list[str] = []
    for p, chain in chains.items():
        tick = tick_file_for(p)
        lines.append(f"check of {Path(p).name}" + (f" against {tick.name}:" if tick else ":"))
        try:
            lines.extend(f"  {line}" for line in check_day(p, chain, tick).lines())
        except (ValueError, KeyError, OSError, csv.Error) as e:
            lines.append(f"  not checked: {e}")
    return lines
