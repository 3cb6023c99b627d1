"""What a run's perp strategies entered, how and how fast they exited, and what it earned,
computed from its recorded events.

Entries and exits are the strategies' own decisions (``PerpEntryDecided``, ``PerpExitDecided``:
``path`` update/timer, ``reason`` regressed/stop/time, ``latency_ns`` event time from the update at
which the exit first qualified to the intent). Everything about money is recomputed from fills,
never taken from a decision: positions, average entry, realised PnL and fees from the venue's
``OrderFilled`` reports of the strategy's intents (side from the intent) or its account stream
(``AccountFillReported``), funding from ``FundingPaid`` on the markets the strategy traded, and
unrealised PnL of what is still open at the market's last recorded mark (``MarkPriceUpdated``),
all folded by ``domain.perp_positions`` in event order (a venue with an account stream: the stream
only, see ``perp_reports``). Amounts print in USDC (6 dp); floats are for printing only.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from tapedeck.domain import events as ev
from tapedeck.domain.perp_positions import PerpPosition, PerpPositions


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


def perp_reports(events: Iterable[ev.Event],
                 booked: Callable[[PerpReport, ev.Event, PerpPosition, tuple[int, int, int, int]], None] | None = None
                 ) -> list[PerpReport]:
    """One report per strategy that decided a perp entry or exit, in order of first appearance.

    Positions are folded in event order: ``OrderFilled`` of the strategy's perp intents, and the
    account stream's fills and ``FundingPaid`` of the markets it traded. A venue with an account
    stream anywhere in the run has the stream as its only source of fills from the start (its
    ``OrderFilled`` reports are the same trades, ``domain.perp_positions``), whichever came first.
    ``booked(report, event, position, before)`` hears each change, ``before`` the position's
    (realised, fees, funding, size) until then (``runtime.outcomes`` books its PnL from it)."""
    reports: dict[str, PerpReport] = {}
    kinds: dict[tuple[str, str], tuple[str, int]] = {}  # (strategy, client id) -> ("entry"/"exit", size decimals)
    intents: dict[int, tuple[PerpReport, ev.OrderIntended, str, int]] = {}  # seq -> (report, intent, kind, dp)
    filled: dict[int, int] = {}  # intent seq -> amount filled so far
    marks: dict[tuple[str, str], tuple[int, int]] = {}
    money: list[ev.Event] = []  # fills, account fills and funding, in order: folded once all is known
    streams: dict[str, None] = {}  # venues with an account stream

    def report(name: str) -> PerpReport:
        return reports[name] if name in reports else reports.setdefault(name, PerpReport(name))

    for e in events:
        t = type(e)
        if t is ev.MarkPriceUpdated:
            marks[(e.venue, e.instrument)] = (e.mark, e.price_decimals)  # type: ignore[attr-defined]
        elif t is ev.FundingPaid:
            money.append(e)
        elif t is ev.AccountFillReported:
            money.append(e)
            streams[e.venue] = None  # type: ignore[attr-defined]
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
            money.append(e)
            done = filled[e.intent] = filled.get(e.intent, 0) + e.amount  # type: ignore[attr-defined]
            if e.final:  # type: ignore[attr-defined]
                r.filled[kind] += 1
                r.partial += done < intent.amount
        elif t is ev.OrderFailed and e.intent in intents:  # type: ignore[attr-defined]
            intents[e.intent][0].failed[e.reason] += 1  # type: ignore[attr-defined]
    traded = {r.strategy: {(i.venue, i.instrument) for rr, i, _, _ in intents.values() if rr is r}
              for r in reports.values()}
    for r in reports.values():
        r.positions.account_venues.update(streams)
        r.marks = {k: v for k, v in marks.items() if k in traded[r.strategy]}
    for e in money:
        if type(e) is ev.OrderFilled:
            r, intent, _, dp = intents[e.intent]  # type: ignore[attr-defined]
            key = (intent.venue, intent.instrument)
            before = _state(r, key)
            p = r.positions.on_order_fill(intent.venue, intent.instrument, intent.side, e, dp)  # type: ignore[arg-type]
            if p is not None and booked is not None:
                booked(r, e, p, before)
            continue
        key = (e.venue, e.instrument)  # type: ignore[attr-defined]
        for r in reports.values():
            if key not in traded[r.strategy]:
                continue
            before = _state(r, key)
            p = (r.positions.on_funding(e) if type(e) is ev.FundingPaid  # type: ignore[arg-type]
                 else r.positions.on_account_fill(e))  # type: ignore[arg-type]
            if p is not None and booked is not None:
                booked(r, e, p, before)
    return list(reports.values())


def _state(r: PerpReport, key: tuple[str, str]) -> tuple[int, int, int, int]:
    p = r.positions.positions.get(key)
    return (0, 0, 0, 0) if p is None else (p.realized, p.fees, p.funding, p.size)


def _p50_max(values: list[int]) -> str:
    v = sorted(values)
    return f"p50 {v[len(v) // 2] / 1e6:,.3f} ms, max {v[-1] / 1e6:,.3f} ms (n={len(v)})"
