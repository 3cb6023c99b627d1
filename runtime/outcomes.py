"""Per-strategy outcome of a run, read back from its events: what was seen, acted on, won, lost
(and to whom, why), and the PnL net of gas and fees.

PnL = for each fill of an arbitrage (side ``arb``: USDC in, USDC out), what it received minus what
it paid; for each other fill, the value of what it received at the last ETH/USD oracle answer recorded
before it, minus the notional it paid, minus its non-gas fee; minus the gas of every transaction
the strategy's intents got mined, won or reverted (valued at the answer before its inclusion). It is in the risk currency's base units (USDC, 6 dp). Fills on
venues whose received asset is not ETH-priced are counted but not valued (``unpriced``).
Everything comes from recorded events, so a replayed run gives the same figures.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from tapedeck.domain import events as ev

ETH_PRICED_VENUES = ("aave-v3:",)  # venues whose fills receive WETH (a liquidation's collateral)


@dataclass
class StrategyOutcome:
    strategy: str
    opportunities: int = 0
    intents: int = 0
    rejected: int = 0
    won: int = 0
    lost: int = 0
    pending: int = 0  # intended, nothing final yet when the run ended
    lost_to: Counter[str] = field(default_factory=Counter)  # reason (winner or cause) -> count
    gas_wei: int = 0
    pnl: int = 0  # risk-currency base units (USDC 6 dp)
    unpriced: int = 0


def outcomes(events: Iterable[ev.Event]) -> dict[str, StrategyOutcome]:
    """Fold a run's events (in order) into each strategy's outcome."""
    out: dict[str, StrategyOutcome] = {}
    intent_strategy: dict[int, str] = {}
    arbs: set[int] = set()  # intents whose fills pay and receive the risk currency
    open_intents: set[int] = set()
    eth_usd_6dp = 0  # last ETH/USD oracle answer in USDC base units

    def of(name: str) -> StrategyOutcome:
        if name not in out:
            out[name] = StrategyOutcome(name)
        return out[name]

    for e in events:
        t = type(e)
        if t is ev.OracleUpdated and e.chain:
            eth_usd_6dp = e.answer * 10**6 // 10**e.decimals
        elif t is ev.OpportunityDetected:
            of(e.strategy).opportunities += 1
        elif t is ev.OrderIntended:
            of(e.strategy).intents += 1
            intent_strategy[e.seq] = e.strategy
            open_intents.add(e.seq)
            if e.side == "arb":
                arbs.add(e.seq)
        elif t is ev.IntentRejected:
            of(e.strategy).rejected += 1
        elif t is ev.TransactionIncluded and e.intent in intent_strategy:
            s = of(intent_strategy[e.intent])
            s.gas_wei += e.gas_used * e.gas_price  # paid whether it succeeded or reverted
            s.pnl -= e.gas_used * e.gas_price * eth_usd_6dp // 10**18
        elif t is ev.OrderFilled and e.intent in intent_strategy:
            s = of(intent_strategy[e.intent])
            if e.final:
                s.won += 1
                open_intents.discard(e.intent)
            if e.intent in arbs:
                s.pnl += e.amount - e.notional
            elif e.venue.startswith(ETH_PRICED_VENUES) and eth_usd_6dp:
                s.pnl += e.amount * eth_usd_6dp // 10**18 - e.notional
            else:
                s.unpriced += 1
            if e.fee_asset != "ETH":  # gas (ETH) was charged with the transaction's inclusion
                s.pnl -= e.fee
        elif t is ev.OrderFailed and e.intent in intent_strategy:
            s = of(intent_strategy[e.intent])
            s.lost += 1
            open_intents.discard(e.intent)
            s.lost_to[_why(e.reason)] += 1
    for seq in open_intents:
        of(intent_strategy[seq]).pending += 1
    return out


def _why(reason: str) -> str:
    """The part of a failure worth grouping by: who won the race, else the reason itself."""
    if " by " in reason:
        return "outbid by " + reason.rsplit(" by ", 1)[1].rstrip(")")
    return reason.split(";")[0]
