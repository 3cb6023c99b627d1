"""The cross-venue opportunities a log offered, in a summary a person can read
(``tapedeck report opportunities LOG.db``).

Why: "what did the real 2024-01-05 USDC/WETH day offer above gas?" is the question before any
strategy is tuned. The log's inputs are folded by the engine (no strategies); after every update of
a venue the finder (``domain/arb_finder.py``) prices the round trips through it against every other
fresh venue of the same pair, exactly, sized at the optimum, net of fees and gas.

Counting: a **gap** is one priced state (the opportunity's ``key``: both venues' state versions); an
update that leaves it unmoved re-detects the same gap and is not counted again. An **episode** is
a run of consecutive detections in one direction between the same two venues: it opens when a
round trip first pays more than gas + ``min_profit`` and closes at the first update of either venue
after which it no longer does (or it goes stale). An arbitrageur can take an episode once: its
figure is its best detection (largest net profit); the day's total is the sum over episodes of
that best, an upper bound of what one searcher winning every race at the optimum size could have
made (competition, latency and the price impact of its own trades are not modelled).

Gas: the base fee of the log's blocks when it records them (``BlockProduced``), else
``gas_price_wei`` (default 15 gwei, about that day's base fee), per swap ``V2_SWAP_GAS``/
``V3_SWAP_GAS`` (as the paper gateway prices legs), valued at the mid of a fresh venue of the
profit token and WETH (on this day: the pools themselves).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tapedeck.adapters.registry import Registry
from tapedeck.domain import events as ev
from tapedeck.domain.arb_finder import ArbFinder, Opportunity
from tapedeck.domain.engine import Engine
from tapedeck.domain.risk import RiskGate
from tapedeck.runtime.serve import DEFAULT_GAS_PRICE_WEI, Token, log_inputs


@dataclass
class Episode:
    buy: str  # venue id of the first leg
    sell: str
    pair: tuple[str, str]
    profit_token: str
    start_ts: int
    end_ts: int  # time of the last detection
    detections: int = 0
    gaps: int = 0  # distinct gaps (keys) within it
    best: Opportunity | None = None
    best_ts: int = 0
    best_seq: int = 0  # the event after which the best was priced
    _keys: set[str] = field(default_factory=set, repr=False)

    def add(self, o: Opportunity, ts: int, seq: int = 0) -> None:
        self.detections += 1
        self.end_ts = ts
        if o.key not in self._keys:
            self._keys.add(o.key)
            self.gaps += 1
        if self.best is None or o.net_profit > self.best.net_profit:
            self.best, self.best_ts, self.best_seq = o, ts, seq


@dataclass
class OpportunityReport:
    log: str
    venues: list[Any]
    tokens: dict[str, Token]
    inputs: int = 0
    updates: int = 0  # venue updates priced
    episodes: list[Episode] = field(default_factory=list)
    gas_note: str = ""
    first_ts: int = 0
    last_ts: int = 0
    finder_stats: Any = None

    @property
    def gaps(self) -> int:
        return sum(e.gaps for e in self.episodes)

    def total(self) -> dict[str, int]:
        """The sum over episodes of each one's best net profit, per profit token."""
        out: dict[str, int] = {}
        for e in self.episodes:
            if e.best is not None:
                out[e.profit_token] = out.get(e.profit_token, 0) + e.best.net_profit
        return out

    def _amount(self, token: str, n: int, places: int = 2) -> str:
        t = self.tokens[token]
        return f"{n / 10**t.decimals:,.{places}f} {t.symbol}"

    def _name(self, venue_id: str) -> str:
        for v in self.venues:
            if v.id == venue_id:
                return getattr(v, "label", "") or v.id
        return venue_id

    def lines(self, top: int = 10) -> list[str]:
        span = f"{_iso(self.first_ts)} .. {_iso(self.last_ts)}" if self.first_ts else "no events"
        out = [f"opportunities in {Path(self.log).name}: {self.inputs} inputs ({span}), "
               f"{len(self.venues)} venues, {self.updates} venue updates priced",
               f"  gas: {self.gas_note}"]
        if not self.episodes:
            out.append("  no round trip paid more than its fees and gas")
            return out
        totals = ", ".join(self._amount(t, n) for t, n in self.total().items())
        detections = sum(e.detections for e in self.episodes)
        out.append(f"  {len(self.episodes)} episodes above gas ({self.gaps} distinct gaps, {detections} detections); "
                   f"best of each summed: {totals} net of fees and gas")
        by_dir: dict[tuple[str, str], list[Episode]] = {}
        for e in self.episodes:
            by_dir.setdefault((e.buy, e.sell), []).append(e)
        for (buy, sell), eps in by_dir.items():
            tot = sum(e.best.net_profit for e in eps if e.best)
            sizes = sorted(e.best.amount_in for e in eps if e.best)
            med = sizes[len(sizes) // 2]
            token = eps[0].profit_token
            out.append(f"  buy on {self._name(buy)}, sell on {self._name(sell)}: {len(eps)} episodes, "
                       f"{self._amount(token, tot)} net; median size {self._amount(token, med, 0)}")
        best = sorted(self.episodes, key=lambda e: -(e.best.net_profit if e.best else 0))[:top]
        out.append(f"  the {len(best)} best:")
        for e in best:
            o = e.best
            assert o is not None
            mid_token = o.legs[0].token_out
            out.append(f"    {_iso(e.best_ts)}  {self._amount(o.profit_token, o.amount_in, 0)} -> "
                       f"{self._amount(mid_token, o.legs[0].amount_out, 4)} on {self._name(o.legs[0].venue_id)} -> "
                       f"{self._amount(o.profit_token, o.amount_out)} on {self._name(o.legs[1].venue_id)}: gross "
                       f"{self._amount(o.profit_token, o.gross_profit)}, gas {self._amount(o.profit_token, o.gas_cost)}, "
                       f"net {self._amount(o.profit_token, o.net_profit)} ({o.method}"
                       f"{'' if o.proven else ', best probed'}); open {(e.end_ts - e.start_ts) / 1e9:,.0f} s, "
                       f"{e.detections} detections")
        return out


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts // 10**9)) + "Z"


def opportunities(log_path: str | Path, *, registry: Registry | None = None, gas_price_wei: int = DEFAULT_GAS_PRICE_WEI,
                  max_age_ns: int = 60 * 10**9, min_profit: int = 0) -> OpportunityReport:
    """Fold the log's inputs, price every venue update with the finder, group into episodes."""
    events, venues, tokens = log_inputs(log_path, registry)
    has_blocks = any(type(e) is ev.BlockProduced for e in events)
    finder = ArbFinder(venues, max_age_ns=max_age_ns, min_profit=min_profit, gas_price_wei=gas_price_wei)
    report = OpportunityReport(str(log_path), venues, tokens, inputs=len(events), finder_stats=finder.stats)
    units = ", ".join(f"{v.venue} {v.gas_units:,}" for v in venues if getattr(v, "gas_units", 0))
    report.gas_note = ("the base fee of the log's blocks" if has_blocks else
                       f"{gas_price_wei / 1e9:g} gwei (the log records no base fee)") + \
        (f"; {units} gas units per swap" if units else "; no on-chain leg (no gas)")
    engine = Engine([], RiskGate.from_config({"default_max_notional": 0, "default_max_outstanding": 0}))
    state = engine.state
    touch: dict[str, list[str]] = {}
    for v in venues:
        touch.setdefault(v.id if not hasattr(v, "instrument") else f"{v.venue}:{v.instrument}", []).append(v.id)
    open_: dict[tuple[str, str], Episode] = {}  # (buy, sell) -> episode in progress
    for e in events:
        engine.handle(e)
        key = getattr(e, "pool", None)
        if key is None and hasattr(e, "instrument"):
            key = f"{e.venue}:{e.instrument}"  # type: ignore[attr-defined]
        ids = touch.get(key, ()) if key is not None else ()  # type: ignore[arg-type]
        if not ids:
            continue
        if not report.first_ts:
            report.first_ts = e.ts
        report.last_ts = e.ts
        for vid in ids:
            report.updates += 1
            found = {(o.legs[0].venue_id, o.legs[1].venue_id): o for o in finder.on_update(state, vid, e.ts)}
            partners = [w.id for w in finder._partners[vid]]
            for other in partners:  # an episode through this venue closes when its update no longer pays
                for d in ((vid, other), (other, vid)):
                    o = found.get(d)
                    ep = open_.get(d)
                    if o is None:
                        if ep is not None:
                            report.episodes.append(open_.pop(d))
                        continue
                    if ep is None:
                        ep = open_[d] = Episode(d[0], d[1], o.pair, o.profit_token, e.ts, e.ts)
                    ep.add(o, e.ts, e.seq)
    report.episodes.extend(open_.values())
    report.episodes.sort(key=lambda ep: ep.start_ts)
    return report


def report_lines(log_path: str | Path, **options: Any) -> list[str]:
    return opportunities(log_path, **options).lines()
