"""Per-strategy outcome of a run, read back from its events: what was seen, acted on, won, lost
(and to whom, why), and the PnL net of gas and fees, split into paper and executed.

* **Opportunities** are gaps, not detections: detections with the same ``OpportunityDetected.key``
  are one opportunity (the first detection's net profit counts once), the rest are counted as
  re-detections and never summed as profit. A detection without a key (older runs) is its own gap.
* **PnL** is in the risk currency's base units (USDC, 6 dp). An arbitrage fill (side ``arb``: USDC
  in, USDC out) earns what it received minus what it paid; a liquidation fill earns the ETH value
  of what it received minus the notional it paid; one through an executor contract (its intent has a
  ``route``: the collateral is sold in the same transaction) earns the sale the executor reported
  (``InventoryChanged`` of the debt asset) less the debt repaid. A non-ETH fee is subtracted as it stands; an ETH
  fee (gas) on a fill is charged at the ETH price unless the intent's transactions were recorded
  (``TransactionIncluded``: gas paid whether it succeeded or reverted, charged there).
* **Leftovers**: what a partial execution left (``InventoryChanged``: USDC spent, WETH held) is
  booked and marked at the ETH price's last value in the run.
* **The ETH price** is named, never "whichever oracle spoke last": ``oracle:<feed>`` (the last
  ``OracleUpdated`` answer of that feed) or ``pool:<id>`` (a USDC/WETH pool's own price: V2
  reserves, V3 sqrtPriceX96; token0 USDC, token1 WETH). A run's config names it as
  ``[outcomes] eth_price``; the default is :data:`DEFAULT_ETH_PRICE`, the scenarios' chain feed.
  Whatever needed a price before there was one is counted in ``unpriced``, not valued at 0.
* **CEX-DEX legs** (a strategy that records ``CexDexOpportunity``): its buy/sell fills on the book
  venue and on the pool's swap venue the opportunity names are spot trades: the quote asset they
  moved (``notional``: paid for a buy, received for a sell) is booked as it stands, less a fee in
  that asset; the base they moved (``amount``: ETH on the book, WETH on the pool) is inventory,
  marked at the ETH price at the end like a leftover. A hedged attempt's base nets to about zero.
* **Perp positions** (a strategy that decides ``PerpEntryDecided``/``PerpExitDecided``): the fills of
  those decisions' intents are folded into the strategy's positions (``domain.perp_positions``, as
  ``runtime.perp_report`` does), and each fill books what it realised less its fee; the venue's
  account stream (``AccountFillReported``) and ``FundingPaid`` of a market the strategy has traded
  book theirs when they come (the stream, once a venue has one, replaces its ``OrderFilled``
  reports, as in the positions); what is still open at the end is marked at the market's last
  ``MarkPriceUpdated`` mark (no mark: ``unpriced``). So the strategy's PnL is the perp report's
  net (realised + unrealised - fees + funding). Each entry decided counts as an opportunity seen,
  and its intent, fill, failure or risk refusal as that opportunity acted on, won, lost or refused,
  as for any strategy; an exit (a flatten of a position already counted) is no new opportunity, so
  its intent and end are counted apart (``exits``, ``exits_filled``, ``exits_failed``,
  ``exits_refused``, ``exits_pending``), never in ``intents``/``won``/``lost``. A fill counts "at a loss" when it closed part of a position for less than it cost (fees
  included): an opening fill's fee is booked, not counted as a losing fill.
* **Paper or executed**: fills whose ``source`` starts with ``paper`` (``PaperGateway``) are paper,
  computed from the recorded pool state and books; the rest were executed by a venue (the sim's
  chain and books, later live venues).

Everything comes from recorded events, so a replayed run gives the same figures.
"""
from __future__ import annotations

import re

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from tapedeck.domain import events as ev

ETH_PRICED_VENUES = ("aave-v3:",)  # venues whose fills receive WETH (a liquidation's collateral)
DEFAULT_ETH_PRICE = "oracle:eth-usd"  # the chain's ETH/USD feed in the shipped scenarios
RISK_ASSET = "USDC"
ETH_ASSETS = ("ETH", "WETH")
SPOT_SIDES = ("buy", "sell")
Q192 = 1 << 192


def eth_price_source(config: Mapping[str, Any] | None) -> str:
    """The ETH price a run's outcomes use: ``[outcomes] eth_price`` of its config, else the default."""
    table = (config or {}).get("outcomes", {})
    return str(table.get("eth_price", DEFAULT_ETH_PRICE)) if isinstance(table, Mapping) else DEFAULT_ETH_PRICE


class EthPrice:
    """A named ETH/USDC price folded from events: USDC base units per 1 ETH (10**18 wei), 0 = none yet."""

    def __init__(self, source: str = DEFAULT_ETH_PRICE):
        kind, sep, name = source.partition(":")
        if not sep:
            kind, name = "oracle", source  # a bare name is an oracle feed
        if kind not in ("oracle", "pool") or not name:
            raise ValueError(f"ETH price source must be 'oracle:<feed>' or 'pool:<pool id>', got {source!r}")
        self.kind, self.name = kind, name if kind == "oracle" else name.lower()
        self.source = f"{self.kind}:{self.name}"
        self.value = 0

    def fold(self, e: ev.Event) -> None:
        t = type(e)
        if self.kind == "oracle":
            if t is ev.OracleUpdated and e.feed == self.name and e.answer > 0:  # type: ignore[attr-defined]
                self.value = e.answer * 10**6 // 10**e.decimals  # type: ignore[attr-defined]
        elif getattr(e, "pool", None) == self.name:
            if t is ev.V2ReservesSynced and e.reserve1 > 0:  # type: ignore[attr-defined]
                self.value = e.reserve0 * 10**18 // e.reserve1  # type: ignore[attr-defined]
            elif t is ev.V3Swapped and e.sqrt_price_x96 > 0:  # type: ignore[attr-defined]
                self.value = 10**18 * Q192 // (e.sqrt_price_x96 * e.sqrt_price_x96)  # type: ignore[attr-defined]

    def describe(self) -> str:
        what = f"{self.kind} {self.name}"
        return f"{what} (last {self.value / 1e6:,.2f} USDC)" if self.value else f"{what} (no price recorded)"


@dataclass
class StrategyOutcome:
    strategy: str
    opportunities: int = 0  # unique gaps
    redetections: int = 0  # detections of a gap already counted
    opportunity_net: int = 0  # net profit of the unique gaps as detected (an estimate, not an outcome)
    suppressed: int = 0  # unique gaps priced on state older than the strategy's max_age (or stale): not acted on
    suppressed_net: int = 0  # what those would have reported (not profit: the state was too old to trust)
    acted: int = 0  # opportunities (counted above) the risk gate passed an order of, decided in the same handling
    refused: int = 0  # opportunities whose every order the risk gate refused
    intents: int = 0  # orders that passed risk (an opportunity may send several: legs; unwinds have none)
    rejected: int = 0  # orders the risk gate refused
    won: int = 0  # orders that ended filled by a venue (paper fills are not won: paper_filled)
    paper_filled: int = 0  # orders that ended filled on paper
    priced_fills: int = 0  # fills whose PnL could be valued (paper_losing + executed_losing of them lost)
    lost: int = 0
    pending: int = 0  # intended, nothing final yet when the run ended
    lost_to: Counter[str] = field(default_factory=Counter)  # reason (winner or cause) -> count
    gas_wei: int = 0
    pnl: int = 0  # paper_pnl + executed_pnl, risk-currency base units (USDC 6 dp)
    unpriced: int = 0  # fills or fees that needed the ETH price before it had a value, or another asset
    paper_fills: int = 0
    paper_partial: int = 0  # final paper fills for less than the intent asked (depth, known range)
    paper_pnl: int = 0
    paper_gas_unmodelled: int = 0  # paper chain fills without a recorded block to price gas
    paper_losing: int = 0  # paper fills that lost money (received less than paid, fees included)
    executed_fills: int = 0
    executed_losing: int = 0
    executed_pnl: int = 0
    inventory: dict[str, int] = field(default_factory=dict)  # asset -> what partial executions left
    inventory_value: int = 0  # of which marked at the ETH price (included in executed_pnl)
    eth_price: str = ""  # which price valued ETH, with its last value
    exits: int = 0  # perp exit (flatten) intents that passed risk: not opportunities, not in intents
    exits_filled: int = 0  # of which ended filled (a final fill)
    exits_failed: int = 0  # of which failed at the venue
    exits_refused: int = 0  # exits the risk gate refused (not in rejected)
    exits_pending: int = 0  # exits with nothing final when the run ended


def outcomes(events: Iterable[ev.Event], eth_price: str = DEFAULT_ETH_PRICE,
             booked: Callable[[int, str, int, bool], None] | None = None) -> dict[str, StrategyOutcome]:
    """Fold a run's events (in order) into each strategy's outcome, valuing ETH at ``eth_price``.
    ``booked(ts, strategy, amount, paper)`` hears every amount booked to a PnL, at the event time of
    the event that earned it (leftovers marked at the run's last price: at the last event's time)."""
    out: dict[str, StrategyOutcome] = {}
    price = EthPrice(eth_price)
    intents: dict[int, ev.OrderIntended] = {}
    open_intents: set[int] = set()
    gas_recorded: set[int] = set()  # intents whose transactions were recorded (gas charged there)
    keys: dict[Any, set[str]] = {}
    leftovers: list[tuple[StrategyOutcome, str, int, bool]] = []  # (outcome, asset, delta, paper)
    settled: dict[int, int] = {}  # executor liquidation intent -> debt it repaid (its fill's notional)
    sold: list[tuple[StrategyOutcome, str, int, int]] = []  # (outcome, debt asset, sale less debt repaid, ts)
    spot: dict[str, dict[str, str]] = {}  # cex-dex strategy -> venue -> the base asset its fills move
    perp_kinds: dict[tuple[str, str], bool] = {}  # (strategy, client id) of a perp decision -> is an exit
    exit_intents: set[int] = set()  # intent seqs of perp exits (counted apart from the opportunities)
    perp_intents: dict[int, None] = {}  # intent seqs of perp decisions
    perp_paper: dict[str, bool] = {}  # perp strategy -> were its fills paper (the last one's source)
    perp_events: list[ev.Event] = []  # what runtime.perp_report folds the positions from
    size_decimals: dict[str, int] = {}  # book venue -> its quotes' size precision (base units of a fill)
    opps = _Opportunities()  # which counted opportunity an order acts on (acted / refused)

    def of(name: str) -> StrategyOutcome:
        if name not in out:
            out[name] = StrategyOutcome(name)
        return out[name]

    now = 0  # event time of the event being folded

    def book(s: StrategyOutcome, paper: bool, amount: int, ts: int | None = None) -> None:
        if booked is not None:
            booked(now if ts is None else ts, s.strategy, amount, paper)
        s.pnl += amount
        if paper:
            s.paper_pnl += amount
        else:
            s.executed_pnl += amount

    for e in events:
        t = type(e)
        now = e.ts
        if t in _PERP_TYPES:
            perp_events.append(e)
        if e.KIND == ev.INPUT:
            price.fold(e)
            if t is ev.QuoteUpdated:
                size_decimals[e.venue] = e.size_decimals  # type: ignore[attr-defined]
        elif t is ev.PerpEntryDecided or t is ev.PerpExitDecided:
            perp_kinds[(e.strategy, e.client_id)] = t is ev.PerpExitDecided  # type: ignore[attr-defined]
            if t is ev.PerpEntryDecided:
                of(e.strategy).opportunities += 1  # type: ignore[attr-defined]
                opps.seen(e, (e.client_id,))  # type: ignore[attr-defined]
        elif t is ev.LiquidationOpportunity:  # a liquidatable position sized to act on (skips are not)
            of(e.strategy).opportunities += 1
            opps.seen(e, (e.client_id,))
        elif t is ev.OpportunityDetected or t is ev.CexDexOpportunity:
            s = of(e.strategy)
            if t is ev.CexDexOpportunity:  # its legs are spot trades on these venues (see above)
                spot.setdefault(e.strategy, {}).update({e.cex_venue: e.cex_base, e.dex_venue: e.dex_base})
            seen = keys.setdefault(e.strategy, set())
            if e.key and e.key in seen:
                s.redetections += 1
            else:
                seen.add(e.key)
                s.opportunities += 1
                opps.seen(e, (e.cex_client_id, e.dex_client_id) if t is ev.CexDexOpportunity else ())
                s.opportunity_net += e.net_profit if t is ev.OpportunityDetected else e.expected_profit
        elif t is ev.OpportunitySuppressed:
            s = of(e.strategy)
            seen = keys.setdefault(("suppressed", e.strategy), set())  # type: ignore[arg-type]
            if not e.key or e.key not in seen:
                seen.add(e.key)
                s.suppressed += 1
                s.suppressed_net += e.net_profit
        elif t is ev.OrderIntended:
            intents[e.seq] = e
            if e.side == "cancel":  # a cancel is no trade: neither acted on, won, lost nor pending
                continue
            open_intents.add(e.seq)
            kind = perp_kinds.get((e.strategy, e.client_id))
            if kind is not None:
                perp_intents[e.seq] = None
            if kind:
                exit_intents.add(e.seq)
                of(e.strategy).exits += 1
            else:
                of(e.strategy).intents += 1
                opps.order(of(e.strategy), e, "acted")
        elif t is ev.IntentRejected:
            if perp_kinds.get((e.strategy, e.client_id)):  # type: ignore[attr-defined]
                of(e.strategy).exits_refused += 1  # type: ignore[attr-defined]
            else:
                of(e.strategy).rejected += 1  # type: ignore[attr-defined]
                opps.order(of(e.strategy), e, "refused")
        elif e.KIND != ev.EXECUTION or getattr(e, "intent", None) not in intents:
            continue
        elif t is ev.TransactionIncluded:
            s = of(intents[e.intent].strategy)
            gas_recorded.add(e.intent)
            s.gas_wei += e.gas_used * e.gas_price  # paid whether it succeeded or reverted
            if price.value:
                book(s, False, -(e.gas_used * e.gas_price * price.value // 10**18))
            else:
                s.unpriced += 1
        elif t is ev.OrderFilled:
            intent = intents[e.intent]
            s = of(intent.strategy)
            paper = e.source.startswith("paper")
            if paper:
                s.paper_fills += 1
                if e.final and (e.notional if intent.side == "arb" else e.amount) < intent.amount:
                    s.paper_partial += 1
            else:
                s.executed_fills += 1
            if e.final:
                if e.intent in exit_intents:
                    s.exits_filled += 1
                elif paper:
                    s.paper_filled += 1
                else:
                    s.won += 1
                open_intents.discard(e.intent)
            if e.intent in perp_intents:  # a perp position's fill: booked from the positions (below)
                perp_paper[intent.strategy] = paper
                continue
            result: int | None = None  # what this fill earned, where it can be valued
            base_asset = spot.get(intent.strategy, {}).get(e.venue) if intent.side in SPOT_SIDES else None
            if base_asset is not None:  # a cex-dex leg: the quote it moved now, the base as inventory
                buy = intent.side == "buy"
                result = -e.notional if buy else e.notional
                delta = e.amount if buy else -e.amount
                s.inventory[base_asset] = s.inventory.get(base_asset, 0) + delta
                leftovers.append((s, base_asset, delta, paper))
            elif intent.side == "liquidate" and intent.route and not paper:
                # through an executor contract: the collateral was sold in the same transaction; what
                # it earned is the sale (its InventoryChanged) less the debt repaid, booked there
                settled[e.intent] = e.notional
                result = 0
            elif intent.side == "arb":
                result = e.amount - e.notional
                if paper and e.fee_asset != "ETH":
                    s.paper_gas_unmodelled += 1
            elif e.venue.startswith(ETH_PRICED_VENUES) and price.value:
                result = e.amount * price.value // 10**18 - e.notional
            elif (intent.side in SPOT_SIDES and e.venue in size_decimals and price.value
                  and re.split(r"[-/]", intent.instrument)[0].upper() in ETH_ASSETS):
                # ETH (or an ETH perp) bought or sold on a book for USDC: marked at the ETH price when it filled
                worth = e.amount * price.value // 10**size_decimals[e.venue]
                result = worth - e.notional if intent.side == "buy" else e.notional - worth
            else:
                s.unpriced += 1
            if e.fee_asset in ETH_ASSETS:
                if e.intent not in gas_recorded:  # no recorded transaction charged it: charge it here
                    s.gas_wei += e.fee
                    if price.value:
                        result = (result or 0) - e.fee * price.value // 10**18
                    elif e.fee:
                        s.unpriced += 1
            else:
                result = (result or 0) - e.fee
            if result is not None:
                book(s, paper, result)
                s.priced_fills += 1
                if result < 0:
                    if paper:
                        s.paper_losing += 1
                    else:
                        s.executed_losing += 1
        elif t is ev.InventoryChanged:
            s = of(intents[e.intent].strategy)
            if e.intent in settled:  # an executor's own flows: the sale nets against the fill, nothing is left
                if e.delta > 0:
                    sold.append((s, e.asset, e.delta - settled.pop(e.intent), e.ts))
                continue
            s.inventory[e.asset] = s.inventory.get(e.asset, 0) + e.delta
            leftovers.append((s, e.asset, e.delta, e.source.startswith("paper")))
        elif t is ev.OrderCanceled:
            open_intents.discard(e.intent)  # ended unfilled (its fills before the cancel are booked)
        elif t is ev.OrderFailed:
            if intents[e.intent].side == "cancel":
                continue  # a cancel that found nothing resting: the order's own end decides
            s = of(intents[e.intent].strategy)
            open_intents.discard(e.intent)
            if e.intent in exit_intents:
                s.exits_failed += 1
                continue
            s.lost += 1
            s.lost_to[_why(e.reason)] += 1
    for s, asset, delta, paper in leftovers:  # marked at the named price's last value in the run
        if asset == RISK_ASSET:
            value = delta
        elif asset in ETH_ASSETS and price.value:
            value = delta * price.value // 10**18
        else:
            s.unpriced += 1
            continue
        s.inventory_value += value
        book(s, paper, value)
    for s, asset, earned, now in sold:  # an executor liquidation's profit, in its debt asset, when it was made
        value = earned if asset == RISK_ASSET else (earned * price.value // 10**18
                                                   if asset in ETH_ASSETS and price.value else None)
        if value is None:
            s.unpriced += 1
            continue
        book(s, False, value)
        if value < 0:
            s.executed_losing += 1
    if perp_kinds:
        _perp_outcomes(perp_events, of, book, perp_paper)
    for seq in open_intents:
        if seq in exit_intents:
            of(intents[seq].strategy).exits_pending += 1
        else:
            of(intents[seq].strategy).pending += 1
    for s in out.values():
        s.eth_price = price.describe()
    return out


class _Opportunities:
    """Which counted opportunity an order is for: the one naming its client id, else one decided
    by the same strategy in the same handling (same ``cause``). An opportunity is acted on once
    any of its orders passed risk, refused while every one so far was refused; an order that is
    for none (an unwind, a flatten) acts on nothing."""

    def __init__(self) -> None:
        self.verdict: list[str] = []  # per opportunity: "seen", "acted", "refused"
        self.by_id: dict[tuple[str, str], int] = {}
        self.by_cause: dict[tuple[str, int], list[int]] = {}  # of those naming no client id

    def seen(self, e: Any, client_ids: tuple[str, ...]) -> None:
        n = len(self.verdict)
        self.verdict.append("seen")
        named = [cid for cid in client_ids if cid]
        for cid in named:
            self.by_id[(e.strategy, cid)] = n
        if not named:
            self.by_cause.setdefault((e.strategy, e.cause), []).append(n)

    def order(self, s: StrategyOutcome, e: Any, verdict: str) -> None:
        n = self.by_id.get((e.strategy, e.client_id)) if e.client_id else None
        if n is None:  # none names it: the first of the handling's opportunities still without that verdict
            n = next((i for i in self.by_cause.get((e.strategy, e.cause), ())
                      if self.verdict[i] in (("seen", "refused") if verdict == "acted" else ("seen",))), None)
        if n is None or self.verdict[n] == "acted" or self.verdict[n] == verdict:
            return
        if self.verdict[n] == "refused":
            s.refused -= 1
        self.verdict[n] = verdict
        if verdict == "acted":
            s.acted += 1
        else:
            s.refused += 1


_WINNERS = re.compile(r"(?:liquidated|moved) first(?: in block \d+)? by ([^();]+)")  # sim.gateway's reasons


def _why(reason: str) -> str:
    """The part of a failure worth grouping by: who won the race (as the gateway named them), else
    the reason's first clause, whole (a ``;`` inside parentheses does not end it)."""
    won = _WINNERS.search(reason)
    if won:
        return "outbid by " + won.group(1).strip()
    depth = 0
    for i, ch in enumerate(reason):
        depth += (ch == "(") - (ch == ")")
        if ch == ";" and depth <= 0:
            return reason[:i]
    return reason


_PERP_TYPES = (ev.MarkPriceUpdated, ev.FundingPaid, ev.AccountFillReported, ev.PerpEntryDecided, ev.PerpExitDecided,
               ev.OrderIntended, ev.IntentRejected, ev.OrderFilled, ev.OrderFailed)


def _perp_outcomes(events: list[ev.Event], of: Callable[[str], StrategyOutcome],
                   book: Callable[..., None], paper_of: Mapping[str, bool]) -> None:
    """Book the perp strategies' PnL from their positions (``runtime.perp_report``'s fold): each
    fill's realised less its fee, each payment, at its event time; what is open at the end at the
    market's last mark (none: unpriced). A fill that closed some of a position for less than it
    cost counts as at a loss."""
    from tapedeck.runtime.perp_report import perp_reports

    def booked(r: Any, e: ev.Event, p: Any, before: tuple[int, int, int, int]) -> None:
        s = of(r.strategy)
        paper = type(e) is ev.OrderFilled and e.source.startswith("paper")
        result = (p.realized - before[0]) - (p.fees - before[1]) + (p.funding - before[2])
        book(s, paper, result, e.ts)
        if type(e) is ev.OrderFilled:
            s.priced_fills += 1
        held = before[3]
        if held and result < 0 and (not p.size or (p.size > 0) != (held > 0) or abs(p.size) < abs(held)):
            if paper:
                s.paper_losing += 1
            else:
                s.executed_losing += 1

    for r in perp_reports(events, booked):
        s = of(r.strategy)
        for key, p in r.positions.positions.items():
            if not p.size:
                continue
            mark = r.marks.get(key)
            if mark is None or mark[0] <= 0:
                s.unpriced += 1
                continue
            book(s, paper_of.get(r.strategy, False), p.unrealized(*mark))  # at the run's last event time
