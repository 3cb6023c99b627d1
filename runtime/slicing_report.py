"""What a run's slicers did with their parent orders, from the recorded decision events alone
(``ParentOrderStarted`` / ``SliceScheduled`` / ``SliceSkipped`` / ``ParentOrderProgress`` /
``ParentOrderFinished``, see ``domain/slicing.py``): filled against scheduled through the parent's
life (at each quarter of its duration, from the progress each child's end recorded), children and
how they ended, average price and slippage against the arrival price, and how it finished.
Sizes and prices are printed as decimals of the parent's own precision (display only)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

from tapedeck.domain import events as ev

_TYPES = (ev.ParentOrderStarted, ev.SliceScheduled, ev.SliceSkipped, ev.ParentOrderProgress, ev.ParentOrderFinished)
TOPICS = tuple(t.__name__ for t in _TYPES)


@dataclass
class ParentReport:
    started: ev.ParentOrderStarted
    base_decimals: int = 0
    quote_decimals: int = 0
    children: int = 0
    reasons: Counter[str] = field(default_factory=Counter)  # SliceScheduled reason -> count
    skipped: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)  # child outcome -> count
    progress: list[ev.ParentOrderProgress] = field(default_factory=list)
    finished: ev.ParentOrderFinished | None = None

    def size(self, n: int) -> str:
        return f"{Decimal(n).scaleb(-self.base_decimals):f}" if self.base_decimals else str(n)

    def money(self, n: int) -> str:
        return f"{Decimal(n).scaleb(-self.quote_decimals):f}" if self.quote_decimals else f"{n} base units of"

    def lines(self) -> list[str]:
        s, f = self.started, self.finished
        span = (f"over {(s.deadline_ts - s.start_ts) / 1e9:,.0f} s" if s.deadline_ts else "no deadline")
        who = "" if s.strategy == s.parent_id else f"{s.strategy}; "
        head = (f"  sliced order {s.parent_id} ({who}{s.algo}, {span}): {s.side} {self.size(s.quantity)} "
                f"{s.instrument} on {s.venue}")
        out = [head]
        if f is None:
            last = self.progress[-1] if self.progress else None
            filled = last.filled if last else 0
            out.append(f"    still working at the end of the run: filled {self.size(filled)}, {self.children} children")
            return out
        out.append(f"    finished {f.status}: filled {self.size(f.filled)} of {self.size(f.quantity)} (scheduled "
                   f"{self.size(f.scheduled)} by the finish), {self.size(f.remaining)} left; "
                   + _when(f))
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.reasons.items()))
        ends = ", ".join(f"{n} {k}" for k, n in sorted(self.outcomes.items()))
        out.append(f"    children: {self.children} ({kinds}); ended {ends or 'none'}"
                   + (f"; skipped: " + ", ".join(f"{k} x{n}" for k, n in sorted(self.skipped.items()))
                      if self.skipped else ""))
        if f.filled:
            avg = Decimal(f.average_price).scaleb(-f.price_decimals)
            arrival = (f"{Decimal(f.arrival_price).scaleb(-f.price_decimals):f}" if f.arrival_price > 0 else "none")
            out.append(f"    average price {avg:f} vs arrival mid {arrival}: {f.slippage_bps:+d} bps "
                       f"(positive: worse for a {s.side}); fees {self.money(f.fees)} {f.fee_asset}")
        if s.deadline_ts and self.progress:
            marks = []
            for q in (1, 2, 3):
                at = s.start_ts + (s.deadline_ts - s.start_ts) * q // 4
                before = [p for p in self.progress if p.ts <= at]
                if before:
                    p = before[-1]
                    marks.append(f"{25 * q}%: {self.size(p.filled)}/{self.size(p.scheduled)}")
            if marks:
                out.append("    filled/scheduled at " + ", ".join(marks))
        return out


def _when(f: ev.ParentOrderFinished) -> str:
    if not f.late_ns and f.status != "filled":
        return "no deadline"
    return (f"{-f.late_ns / 1e9:,.1f} s before the deadline" if f.late_ns < 0
            else f"{f.late_ns / 1e9:,.1f} s after the deadline")


def slicing_reports(events: Iterable[ev.Event],
                    decimals: dict[str, tuple[int, int]] | None = None) -> list[ParentReport]:
    """One report per parent order, in start order (``decimals``: strategy -> (base, quote)
    decimals, for display; amounts print as base units without them)."""
    reports: dict[tuple[str, str], ParentReport] = {}
    for e in events:
        t = type(e)
        if t not in _TYPES:
            continue
        key = (e.strategy, e.parent_id)  # type: ignore[attr-defined]
        if t is ev.ParentOrderStarted:
            bd, qd = (decimals or {}).get(e.strategy, (0, 0))  # type: ignore[attr-defined]
            reports[key] = ParentReport(e, bd, qd)  # type: ignore[arg-type]
            continue
        r = reports.get(key)
        if r is None:
            continue
        if t is ev.SliceScheduled:
            r.children += 1
            r.reasons[e.reason] += 1  # type: ignore[attr-defined]
        elif t is ev.SliceSkipped:
            r.skipped[e.reason] += 1  # type: ignore[attr-defined]
        elif t is ev.ParentOrderProgress:
            r.outcomes[e.outcome] += 1  # type: ignore[attr-defined]
            r.progress.append(e)  # type: ignore[arg-type]
        else:
            r.finished = e  # type: ignore[assignment]
    return list(reports.values())


def slicing_lines(events: Iterable[ev.Event], config: dict[str, Any] | None = None) -> list[str]:
    """The lines ``tapedeck sim`` prints for a run's sliced orders (none when it has none)."""
    decimals = {s.get("name", s.get("kind", "")): (int(s["base_decimals"]), int(s.get("quote_decimals", 0)))
                for s in (config or {}).get("strategies", []) if isinstance(s, dict) and "base_decimals" in s}
    return [line for r in slicing_reports(events, decimals) for line in r.lines()]
