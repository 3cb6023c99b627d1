"""What a run's CEX-DEX arbitrage found, tried, and made, computed from its recorded events.

Nothing here is what the strategy hoped: an opportunity's ``expected_profit`` is shown beside
what the fills realised, never added to it. Legs and unwinds are tied to their attempt by the
client ids the ``CexDexOpportunity`` and ``CexDexUnwind`` decisions name, and each order's
outcome is its venue's report: ``OrderFilled`` (filled, or partial when it filled less than its
intent asked), ``OrderFailed`` (rejected by the book, reverted or dropped on chain),
``IntentRejected`` (refused by risk), or nothing yet (pending at the end).

Realised: every fill's quote flow (a sell's ``notional`` received, a buy's paid), less book fees in
the quote asset and the gas of every mined transaction of the strategy (``TransactionIncluded``,
paid whether it succeeded or reverted) valued at the named ETH price's value at that point. The
base the fills moved (ETH on the book, WETH on the pool) is the inventory left, marked at the
named price's last value in the run, as ``runtime/outcomes.py`` marks leftovers; the two together
are the PnL, the same figure ``outcomes`` gives the strategy.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from tapedeck.domain import events as ev
from tapedeck.runtime.outcomes import DEFAULT_ETH_PRICE, ETH_ASSETS, EthPrice


@dataclass
class Attempt:
    n: int
    direction: str
    pool: str
    base_amount: int
    expected: int
    realised_quote: int = 0  # quote flows of its fills less book fees (gas not included)
    base: dict[str, int] = field(default_factory=dict)  # asset -> net base its fills moved
    gas_wei: int = 0


@dataclass
class CexDexReport:
    strategy: str
    quote_asset: str = "USDC"
    opportunities: int = 0
    by_direction: Counter[str] = field(default_factory=Counter)
    by_pool: Counter[str] = field(default_factory=Counter)
    expected: int = 0  # summed expected profit of the opportunities (an estimate)
    suppressed: int = 0
    legs: dict[str, Counter[str]] = field(default_factory=dict)  # "book"/"pool"/"unwind" -> outcome -> n
    failures: Counter[str] = field(default_factory=Counter)  # why legs failed
    unwinds: Counter[str] = field(default_factory=Counter)  # action -> n
    holds: list[str] = field(default_factory=list)
    quote_flow: int = 0  # realised quote from fills (sells received - buys paid)
    fees: int = 0  # book fees in the quote asset
    gas_wei: int = 0
    gas_quote: int = 0  # gas valued at the ETH price when paid
    unpriced_gas: int = 0  # transactions mined before the ETH price had a value
    inventory: dict[str, int] = field(default_factory=dict)  # base asset -> net moved
    inventory_value: int = 0
    eth_price: str = ""
    attempts: dict[int, Attempt] = field(default_factory=dict)

    @property
    def realised(self) -> int:
        return self.quote_flow - self.fees - self.gas_quote

    @property
    def pnl(self) -> int:
        return self.realised + self.inventory_value

    def lines(self) -> list[str]:
        u = 10 ** 6 if self.quote_asset == "USDC" else 1
        q = self.quote_asset

        def money(x: int) -> str:
            return f"{x / u:,.2f} {q}"

        dirs = ", ".join(f"{d} {n}" for d, n in sorted(self.by_direction.items())) or "none"
        pools = ", ".join(f"{p} {n}" for p, n in sorted(self.by_pool.items()))
        out = [f"  cex-dex ({self.strategy}): {self.opportunities} opportunities acted on ({dirs}; pools: {pools or 'none'}), "
               f"expected {money(self.expected)} in total; {self.suppressed} suppressed as stale"]
        for role in ("book", "pool", "unwind"):
            c = self.legs.get(role)
            if c:
                out.append(f"    {role} legs: " + ", ".join(f"{n} {k}" for k, n in sorted(c.items())))
        if self.unwinds:
            out.append("    unwind decisions: " + ", ".join(f"{a} {n}" for a, n in sorted(self.unwinds.items())))
        for h in self.holds:
            out.append(f"    held: {h}")
        if self.failures:
            out.append("    failed legs: " + "; ".join(f"{why} x{n}" for why, n in self.failures.most_common(6)))
        gas = f"gas {self.gas_wei / 1e18:.4f} ETH = {money(self.gas_quote)}"
        if self.unpriced_gas:
            gas += f" ({self.unpriced_gas} transactions unpriced)"
        out.append(f"    realised from fills: {money(self.realised)} (quote flows {money(self.quote_flow)}, "
                   f"book fees {money(self.fees)}, {gas})")
        held = ", ".join(f"{a} {d / 1e18:+.6f}" for a, d in self.inventory.items()) or "none"
        out.append(f"    inventory left: {held}; marked {money(self.inventory_value)} at {self.eth_price}")
        out.append(f"    PnL {money(self.pnl)} (realised + marked inventory); expected at decision {money(self.expected)}")
        for a in self.attempts.values():
            net = sum(a.base.values())
            out.append(f"    #{a.n} {a.direction} {a.pool} {a.base_amount / 1e18:.4f}: expected {money(a.expected)}, "
                       f"fills moved {money(a.realised_quote)} before gas ({a.gas_wei / 1e18:.5f} ETH), "
                       f"net base {net / 1e18:+.6f}")
        return out


def cex_dex_reports(events: Iterable[ev.Event], eth_price: str = DEFAULT_ETH_PRICE) -> list[CexDexReport]:
    """One report per strategy that recorded a ``CexDexOpportunity``, folded from a run's events."""
    price = EthPrice(eth_price)
    reports: dict[str, CexDexReport] = {}
    attempt_of: dict[tuple[str, str], tuple[int, str]] = {}  # (strategy, client id) -> (attempt, role)
    base_of: dict[tuple[str, str], str] = {}  # (strategy, venue) -> base asset
    intents: dict[int, tuple[ev.OrderIntended, int, str]] = {}  # seq -> (intent, attempt, role)
    outcome: dict[int, str] = {}
    filled: dict[int, int] = {}  # intent seq -> base units filled so far
    for e in events:
        t = type(e)
        if e.KIND == ev.INPUT:
            price.fold(e)
            continue
        if t is ev.CexDexOpportunity:
            r = reports.setdefault(e.strategy, CexDexReport(e.strategy, e.quote_asset))
            r.opportunities += 1
            r.by_direction[e.direction] += 1
            r.by_pool[e.pool] += 1
            r.expected += e.expected_profit
            r.attempts[e.attempt] = Attempt(e.attempt, e.direction, e.pool, e.base_amount, e.expected_profit)
            attempt_of[(e.strategy, e.cex_client_id)] = (e.attempt, "book")
            attempt_of[(e.strategy, e.dex_client_id)] = (e.attempt, "pool")
            base_of[(e.strategy, e.cex_venue)] = e.cex_base
            base_of[(e.strategy, e.dex_venue)] = e.dex_base
        elif t is ev.CexDexUnwind:
            r = reports.setdefault(e.strategy, CexDexReport(e.strategy))
            r.unwinds[e.action] += 1
            if e.action == "hold":
                r.holds.append(f"attempt {e.attempt} round {e.round}: {e.reason}")
            else:
                attempt_of[(e.strategy, e.client_id)] = (e.attempt, "unwind")
        elif t is ev.OpportunitySuppressed and e.strategy in reports and e.kind == "cex-dex":
            reports[e.strategy].suppressed += 1
        elif t is ev.OrderIntended:
            found = attempt_of.get((e.strategy, e.client_id))
            if found is not None:
                intents[e.seq] = (e, *found)
                outcome[e.seq] = "pending"
        elif t is ev.IntentRejected:
            found = attempt_of.get((e.strategy, e.client_id))
            if found is not None:
                reports[e.strategy].legs.setdefault(found[1], Counter())["refused by risk"] += 1
                reports[e.strategy].failures[f"risk: {e.reason}"] += 1
        elif getattr(e, "intent", None) in intents:
            intent, n, role = intents[e.intent]  # type: ignore[index]
            r = reports[intent.strategy]
            a = r.attempts[n]
            if t is ev.TransactionIncluded:
                wei = e.gas_used * e.gas_price
                r.gas_wei += wei
                a.gas_wei += wei
                if price.value:
                    r.gas_quote += wei * price.value // 10**18
                else:
                    r.unpriced_gas += 1
            elif t is ev.OrderFilled:
                buy = intent.side == "buy"
                flow = -e.notional if buy else e.notional
                fee = e.fee if e.fee_asset == r.quote_asset else 0
                r.quote_flow += flow
                r.fees += fee
                a.realised_quote += flow - fee
                asset = base_of.get((intent.strategy, e.venue), "base")
                delta = e.amount if buy else -e.amount
                r.inventory[asset] = r.inventory.get(asset, 0) + delta
                a.base[asset] = a.base.get(asset, 0) + delta
                filled[e.intent] = filled.get(e.intent, 0) + e.amount
                if e.final:  # a swap's intent amount is what it sends in (quote for a buy): it fills whole
                    whole = filled[e.intent] >= intent.amount or role == "pool" or intent.instrument == a.pool
                    outcome[e.intent] = "filled" if whole else "partial"
            elif t is ev.OrderFailed:
                outcome[e.intent] = _failure(e.reason)
                r.failures[_why(e.reason)] += 1
    for seq, (intent, n, role) in intents.items():
        reports[intent.strategy].legs.setdefault(role, Counter())[outcome[seq]] += 1
    for r in reports.values():
        for asset, delta in r.inventory.items():
            if asset in ETH_ASSETS and price.value:
                r.inventory_value += delta * price.value // 10**18
        r.eth_price = price.describe()
    return list(reports.values())


def _failure(reason: str) -> str:
    if reason.startswith("reverted"):
        return "reverted"
    if reason.startswith("dropped"):
        return "dropped"
    if reason.startswith("rejected"):
        return "rejected by the venue"
    return "failed"


def _why(reason: str) -> str:
    """A failure grouped: who moved the pool first, else the reason without its details."""
    if " moved first by " in reason:
        head, who = reason.split(" moved first by ", 1)
        return f"lost to {who.rstrip(')')} ({head.split(': ', 1)[-1].split(' (')[0]})"
    return reason.split(";")[0]
