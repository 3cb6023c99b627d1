"""What a run's liquidation strategy found, tried, won and lost, computed from its recorded events.

Nothing here is taken from what a strategy hoped: "won" is an ``OrderFilled`` the gateway computed
from the chain's receipt, "lost" an ``OrderFailed`` (its reason says to whom and why), realised
profit what the executor's balances moved (``InventoryChanged`` of the debt asset less the debt
repaid). Latencies are event time: detection from the causing event to the intent
(``LiquidationOpportunity.latency_ns``), inclusion from the intent to its ``TransactionIncluded``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from tapedeck.domain import events as ev


@dataclass
class LiquidationReport:
    strategy: str
    found: Counter[str] = field(default_factory=Counter)  # path -> opportunities
    rules: Counter[str] = field(default_factory=Counter)  # rule set named by the opportunities
    detection_ns: dict[str, list[int]] = field(default_factory=dict)  # path -> latencies
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> count
    attempted: int = 0
    private: int = 0  # of which sent as bundles
    won: int = 0
    lost: Counter[str] = field(default_factory=Counter)  # reason -> count
    won_by_path: Counter[str] = field(default_factory=Counter)
    expected: list[int] = field(default_factory=list)  # expected profit of each attempt (debt-asset units)
    realised: list[int] = field(default_factory=list)  # realised profit of each win
    gas_wei: int = 0
    inclusion_ns: list[int] = field(default_factory=list)
    breaker: list[str] = field(default_factory=list)  # circuit-breaker states in order

    def lines(self) -> list[str]:
        paths = ", ".join(f"{n} by the {p} path" for p, n in sorted(self.found.items())) or "none"
        out = [f"  liquidations ({self.strategy}; rules {', '.join(sorted(self.rules)) or 'n/a'}): found {paths}; "
               f"attempted {self.attempted} ({self.private} private, {self.attempted - self.private} public), "
               f"won {self.won}, lost {sum(self.lost.values())}, skipped {sum(self.skipped.values())}"]
        for p, lat in sorted(self.detection_ns.items()):
            out.append(f"    detection latency ({p}): {_dist_ms(lat)} (causing event to intent, event time)")
        if self.inclusion_ns:
            out.append(f"    intent to inclusion: {_dist_ms(self.inclusion_ns)}")
        if self.won_by_path:
            out.append("    won by path: " + ", ".join(f"{p} {n}" for p, n in sorted(self.won_by_path.items())))
        if self.realised:
            out.append(f"    realised profit per win (debt-asset base units): {_dist(self.realised)}; "
                       f"gas {self.gas_wei / 1e18:.4f} ETH")
        if self.expected:
            out.append(f"    expected profit per attempt: {_dist(self.expected)}")
        if self.lost:
            out.append("    lost: " + "; ".join(f"{why} x{n}" for why, n in self.lost.most_common(5)))
        if self.skipped:
            out.append("    skipped: " + "; ".join(f"{why} x{n}" for why, n in self.skipped.most_common(5)))
        if self.breaker:
            out.append("    circuit breaker: " + " -> ".join(self.breaker))
        return out


def liquidation_reports(events: Iterable[ev.Event]) -> list[LiquidationReport]:
    """One report per strategy that found or skipped a liquidation, in order of first appearance."""
    reports: dict[str, LiquidationReport] = {}
    opportunity: dict[tuple[str, str], ev.Event] = {}  # (strategy, client id) -> its opportunity
    intents: dict[int, tuple[LiquidationReport, Any, Any]] = {}  # intent seq -> (report, intent, opportunity)
    filled: dict[int, int] = {}  # intent seq -> debt repaid (the fill's notional)

    def report(name: str) -> LiquidationReport:
        r = reports.get(name)
        if r is None:
            r = reports[name] = LiquidationReport(name)
        return r

    for e in events:
        t = type(e)
        name = getattr(e, "strategy", "")
        if t is ev.LiquidationOpportunity:
            r = report(name)
            r.found[e.path] += 1  # type: ignore[attr-defined]
            r.rules[e.rules] += 1  # type: ignore[attr-defined]
            r.detection_ns.setdefault(e.path, []).append(e.latency_ns)  # type: ignore[attr-defined]
            opportunity[(name, e.client_id)] = e  # type: ignore[attr-defined]
        elif t is ev.LiquidationSkipped:
            report(name).skipped[_reason(e.reason)] += 1  # type: ignore[attr-defined]
        elif t is ev.CircuitBreakerChanged:
            report(name).breaker.append(e.state)  # type: ignore[attr-defined]
        elif t is ev.OrderIntended and e.side == "liquidate":  # type: ignore[attr-defined]
            r = report(name)
            r.attempted += 1
            r.private += bool(e.private)  # type: ignore[attr-defined]
            opp = opportunity.get((name, e.client_id))  # type: ignore[attr-defined]
            if opp is not None:
                r.expected.append(opp.expected_profit)  # type: ignore[attr-defined]
            intents[e.seq] = (r, e, opp)
        elif t is ev.TransactionIncluded and e.intent in intents:  # type: ignore[attr-defined]
            r, intent, _ = intents[e.intent]  # type: ignore[attr-defined]
            r.inclusion_ns.append(e.ts - intent.ts)
        elif t is ev.OrderFilled and e.intent in intents and e.final:  # type: ignore[attr-defined]
            r, _, opp = intents[e.intent]  # type: ignore[attr-defined]
            r.won += 1
            r.gas_wei += e.fee if e.fee_asset == "ETH" else 0  # type: ignore[attr-defined]
            if opp is not None:
                r.won_by_path[opp.path] += 1
            filled[e.intent] = e.notional  # type: ignore[attr-defined]
        elif t is ev.OrderFailed and e.intent in intents:  # type: ignore[attr-defined]
            intents[e.intent][0].lost[_reason(e.reason)] += 1  # type: ignore[attr-defined]
        elif t is ev.InventoryChanged and getattr(e, "intent", 0) in filled:
            if e.delta > 0:  # the debt asset the route paid, premium repaid (the collateral's is negative)
                intents[e.intent][0].realised.append(e.delta - filled.pop(e.intent))  # type: ignore[attr-defined]
    return list(reports.values())


def _reason(text: str) -> str:
    """A reason without its per-case numbers, so like reasons group (``... in block 12 by 0xab`` -> by whom)."""
    head, sep, tail = text.partition("; liquidated first in block ")
    if sep:
        return f"{head}; liquidated first by {tail.partition(' by ')[2]}"
    return text if len(text) <= 120 else text[:117] + "..."


def _dist(values: list[int]) -> str:
    v = sorted(values)
    return f"min {v[0]:,}, median {v[len(v) // 2]:,}, max {v[-1]:,} (n={len(v)})"


def _dist_ms(values: list[int]) -> str:
    v = sorted(values)
    return f"median {v[len(v) // 2] / 1e6:,.1f} ms, max {v[-1] / 1e6:,.1f} ms (n={len(v)})"
