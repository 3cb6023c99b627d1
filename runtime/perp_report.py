"""What a run's perp strategies entered, how and how fast they exited, and what it earned,
computed from its recorded events.

Entries and exits are the strategies' own decisions (``PerpEntryDecided``, ``PerpExitDecided``:
``path`` update/timer, ``reason`` regressed/stop/time, ``latency_ns`` event time from the update at
which the exit first qualified to the intent). Everything about money is recomputed from fills,
never taken from a decision: positions, average entry, realised PnL and fees from the venue's
``OrderFilled`` reports of the strategy's intents (side from the intent) or its account stream
(``AccountFillReported``), funding from ``FundingPaid`` on the markets the strategy traded, and
unrealised PnL of what is still open at the market's last recorded mark (``MarkPriceUpdated``),
all folded by ``domain.perp_positions``. Amounts print in USDC (6 dp); floats are for printing only.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from tapedeck.domain import events as ev
from tapedeck.domain.perp_positions import PerpPositions


@dataclass
class PerpReport:
    strategy: str
    entries: Counter[str] = field(default_factory=Counter)  # side -> entries decided
    exits: Counter[tuple[str, str]] = field(default_factory=Counter)  # (path, reason) -> exits decided
    latency_ns: dict[str, list[int]] = field(default_factory=dict)  # path -> exit latencies
    filled: Counter[str] = field(default_factory=Counter)  # "entry"/"exit" -> intents with a final fill
    partial: int = 0  # final fills for less than the intent asked
    failed: Counter[str] = field(default_factory=Counter)  # venue's reason -> count
    refused: int = 0  # by the risk gate
    positions: PerpPositions = field(default_factory=PerpPositions)
    marks: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # market -> (mark, decimals)

    @property
    def quote_decimals(self) -> int:
        return self.positions.quote_decimals

    def pnl(self) -> dict[str, int]:
        """Realised, unrealised (at the last mark; 0 for a market without one), fees, funding, net."""
        out = {"realised": 0, "unrealised": 0, "fees": 0, "funding": 0}
        for key, p in self.positions.positions.items():
            out["realised"] += p.realized
            out["fees"] += p.fees
            out["funding"] += p.funding
            mark = self.marks.get(key)
            if p.size and mark is not None:
                out["unrealised"] += p.unrealized(*mark)
        out["net"] = out["realised"] + out["unrealised"] - out["fees"] + out["funding"]
        return out

    def lines(self) -> list[str]:
        n_in, n_out = sum(self.entries.values()), sum(self.exits.values())
        sides = ", ".join(f"{s} {n}" for s, n in sorted(self.entries.items())) or "none"
        by = ", ".join(f"{p}/{r} {n}" for (p, r), n in sorted(self.exits.items())) or "none"
        out = [f"  perp ({self.strategy}): {n_in} entries ({sides}; {self.filled['entry']} filled), "
               f"{n_out} exits ({by}; {self.filled['exit']} filled); {self.refused} refused by risk, "
               f"{sum(self.failed.values())} failed at the venue, {self.partial} partial fills"]
        for path in sorted(self.latency_ns):
            out.append(f"    exit latency ({path}): {_p50_max(self.latency_ns[path])} "
                       f"(first qualifying update to intent, event time)")
        q = 10 ** self.quote_decimals
        money = self.pnl()
        held = [f"{k[0]} {k[1]} {p.size / 10**p.size_decimals:+g}" for k, p in self.positions.positions.items()
                if p.size]
        out.append(f"    PnL (USDC): realised {money['realised'] / q:,.2f}, unrealised {money['unrealised'] / q:,.2f} "
                   f"(at the mark), fees {-money['fees'] / q:,.2f}, funding {money['funding'] / q:,.2f}, "
                   f"net {money['net'] / q:,.2f}; {'open: ' + ', '.join(held) if held else 'flat'}")
        if self.failed:
            out.append("    failed: " + "; ".join(f"{why} x{n}" for why, n in self.failed.most_common(5)))
        return out


def perp_reports(events: Iterable[ev.Event]) -> list[PerpReport]:
    """One report per strategy that decided a perp entry or exit, in order of first appearance."""
    reports: dict[str, PerpReport] = {}
    kinds: dict[tuple[str, str], tuple[str, int]] = {}  # (strategy, client id) -> ("entry"/"exit", size decimals)
    intents: dict[int, tuple[PerpReport, ev.OrderIntended, str, int]] = {}  # seq -> (report, intent, kind, dp)
    filled: dict[int, int] = {}  # intent seq -> amount filled so far
    marks: dict[tuple[str, str], tuple[int, int]] = {}
    funding: list[ev.FundingPaid] = []
    account: list[ev.AccountFillReported] = []

    def report(name: str) -> PerpReport:
        return reports[name] if name in reports else reports.setdefault(name, PerpReport(name))

    for e in events:
        t = type(e)
        if t is ev.MarkPriceUpdated:
            marks[(e.venue, e.instrument)] = (e.mark, e.price_decimals)  # type: ignore[attr-defined]
        elif t is ev.FundingPaid:
            funding.append(e)  # type: ignore[arg-type]
        elif t is ev.AccountFillReported:
            account.append(e)  # type: ignore[arg-type]
        elif t is ev.PerpEntryDecided:
            report(e.strategy).entries[e.side] += 1  # type: ignore[attr-defined]
            kinds[(e.strategy, e.client_id)] = ("entry", e.size_decimals)  # type: ignore[attr-defined]
        elif t is ev.PerpExitDecided:
            r = report(e.strategy)  # type: ignore[attr-defined]
            r.exits[(e.path, e.reason)] += 1  # type: ignore[attr-defined]
            r.latency_ns.setdefault(e.path, []).append(e.latency_ns)  # type: ignore[attr-defined]
            kinds[(e.strategy, e.client_id)] = ("exit", e.size_decimals)  # type: ignore[attr-defined]
        elif t is ev.OrderIntended:
            known = kinds.get((e.strategy, e.client_id))  # type: ignore[attr-defined]
            if known is not None:
                intents[e.seq] = (reports[e.strategy], e, *known)  # type: ignore[arg-type, attr-defined]
        elif t is ev.IntentRejected and (e.strategy, e.client_id) in kinds:  # type: ignore[attr-defined]
            reports[e.strategy].refused += 1  # type: ignore[attr-defined]
        elif t is ev.OrderFilled and e.intent in intents:  # type: ignore[attr-defined]
            r, intent, kind, dp = intents[e.intent]  # type: ignore[attr-defined]
            r.positions.on_order_fill(intent.venue, intent.instrument, intent.side, e, dp)  # type: ignore[arg-type]
            done = filled[e.intent] = filled.get(e.intent, 0) + e.amount  # type: ignore[attr-defined]
            if e.final:  # type: ignore[attr-defined]
                r.filled[kind] += 1
                r.partial += done < intent.amount
        elif t is ev.OrderFailed and e.intent in intents:  # type: ignore[attr-defined]
            intents[e.intent][0].failed[e.reason] += 1  # type: ignore[attr-defined]
    for r in reports.values():
        traded = {(i.venue, i.instrument) for rr, i, _, _ in intents.values() if rr is r}
        for a in account:
            if (a.venue, a.instrument) in traded:
                r.positions.on_account_fill(a)
        for f in funding:
            if (f.venue, f.instrument) in traded:
                r.positions.on_funding(f)
        r.marks = {k: v for k, v in marks.items() if k in traded}
    return list(reports.values())


def _p50_max(values: list[int]) -> str:
    v = sorted(values)
    return f"p50 {v[len(v) // 2] / 1e6:,.3f} ms, max {v[-1] / 1e6:,.3f} ms (n={len(v)})"
