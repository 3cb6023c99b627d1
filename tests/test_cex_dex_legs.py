"""cex_dex_arb's legs through the real engine, with generated venue outcomes for every leg and
unwind (filled, partially filled, rejected by the book, refused, reverted on chain, coming out
short): the reported PnL is exactly what the fills realised plus the inventory they left marked
at the named price, never the opportunity's expectation; and no exposure is left without an
unwind or a hold decision saying so."""
from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tapedeck.domain import events as ev
from tapedeck.domain.engine import Engine
from tapedeck.domain.risk import RiskGate, VenueLimits
from tapedeck.domain.strategies.cex_dex_arb import CexDexArb
from tapedeck.runtime.cex_dex_report import cex_dex_reports
from tapedeck.runtime.outcomes import outcomes

USDC, WETH = "0x" + "a" * 40, "0x" + "b" * 40
T0 = 1_709_251_200 * 10**9
MS = 10**6
PRICE = 3_000 * 10**6  # the oracle's ETH price, USDC units per ETH
LOT = 10**14
POOL = {"pool": "v2", "kind": "v2", "token0": USDC, "token1": WETH, "fee": 30}
R0 = 40_000_000 * 10**6
R1 = R0 * 10**12 // 3000


class Run:
    """The engine with a recorder's numbering: every event and decision in log order."""

    def __init__(self, strategy: CexDexArb):
        self.engine = Engine([strategy], RiskGate(VenueLimits(10**15, 10**16)))
        self.events: list[ev.Event] = []
        self.t = T0

    def feed(self, e: ev.Event) -> list[ev.Event]:
        self.events.append(ev.with_seq(e, len(self.events) + 1))
        out = []
        for d in self.engine.handle(self.events[-1]):
            d = ev.with_seq(d, len(self.events) + 1)
            self.events.append(d)
            self.engine.decided(d)
            out.append(d)
        return out

    def now(self) -> int:
        self.t += 50 * MS
        return self.t


def open_gap(run: Run, gap_bps: int) -> list[ev.Event]:
    t = run.now()
    run.feed(ev.OracleUpdated(ts=t, feed="eth-usd", chain="ethereum", round_id=1, answer=3_000 * 10**8, decimals=8))
    run.feed(ev.BlockProduced(ts=t, chain="ethereum", number=2, base_fee=10**10, gas_used=0, gas_limit=30_000_000,
                              next_base_fee=10**10))
    run.feed(ev.V2ReservesSynced(ts=t, pool="v2", block=2, reserve0=R0, reserve1=R1))
    mid = 300_000 * (10_000 + gap_bps) // 10_000
    return run.feed(ev.QuoteUpdated(ts=run.now(), venue="binance", instrument="ETH-USDC", bid=mid - 1,
                                    bid_size=100_000, ask=mid + 1, ask_size=100_000, price_decimals=2,
                                    size_decimals=4, venue_ts=run.t))


BOOK = ("fill", "partial", "reject", "refuse")
POOL_OUT = ("fill", "short", "revert", "drop")


def execute(run: Run, intent: ev.OrderIntended, data: st.DataObject) -> tuple[str, list[ev.Event]]:
    """One generated venue outcome for ``intent``, fed to the engine; returns (kind, decisions)."""
    t = run.now()
    common = dict(ts=t, source="test", cause=intent.seq, intent=intent.seq, venue=intent.venue)
    if intent.venue == "binance":
        kind = data.draw(st.sampled_from(BOOK), label=f"book {intent.client_id}")
        if kind in ("reject", "refuse"):  # (a refusal by the venue's own checks: rate limit, validation)
            why = "rejected: rejected by venue (simulated)" if kind == "reject" else "rejected: rate limit"
            return kind, run.feed(ev.OrderFailed(**common, reason=why))
        amount = intent.amount
        if kind == "partial":
            amount = max(1, data.draw(st.integers(1, 99), label="filled %") * (intent.amount // LOT) // 100) * LOT
        moved = data.draw(st.integers(-200, 200), label="book price moved (bps)")
        notional = intent.notional * amount // intent.amount * (10_000 + moved) // 10_000
        fee = -(-notional * 10 // 10_000)
        return kind, run.feed(ev.OrderFilled(**common, amount=amount, notional=notional, fee=fee, fee_asset="USDC"))
    kind = data.draw(st.sampled_from(POOL_OUT), label=f"pool {intent.client_id}")
    if kind == "drop":
        run.feed(ev.TransactionDropped(**{k: common[k] for k in ("ts", "source", "cause", "intent")}, chain="ethereum",
                                       tx="t", reason="expired"))
        return kind, run.feed(ev.OrderFailed(**common, reason="dropped: expired"))
    gas_used = data.draw(st.integers(90_000, 160_000), label="gas used")
    ok = kind != "revert"
    run.feed(ev.TransactionIncluded(**{k: common[k] for k in ("ts", "source", "cause", "intent")}, chain="ethereum",
                                    tx="t", block=3, index=1, status="success" if ok else "reverted",
                                    gas_used=gas_used, gas_price=12 * 10**9))
    if not ok:
        return kind, run.feed(ev.OrderFailed(**common, reason="reverted: INSUFFICIENT_OUTPUT_AMOUNT (v2 moved first by 0xc)"))
    extra = 0 if kind == "short" else data.draw(st.integers(0, 100), label="output above its minimum (bps)")
    out = intent.min_profit * (10_000 + extra) // 10_000
    if intent.side == "buy":  # USDC in, at least min_profit WETH out
        amount, notional = out, intent.amount
    else:  # WETH in, at least min_profit USDC out
        amount, notional = intent.amount, out
    return kind, run.feed(ev.OrderFilled(**common, amount=amount, notional=notional, fee=gas_used * 12 * 10**9,
                                         fee_asset="ETH"))


@given(st.sampled_from([150, -150, 90, -90]), st.sampled_from(["together", "cex_first"]),
       st.sampled_from([500_000_000, 0]), st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_reported_pnl_is_what_the_fills_realised_plus_marked_inventory(gap_bps, leg_order, max_cost, data) -> None:
    run = Run(CexDexArb("cd", pools=[POOL], base_token=WETH, quote_token=USDC, leg_order=leg_order,
                        max_unwind_cost=max_cost))
    decisions = open_gap(run, gap_bps)
    opp = decisions[0]
    assert isinstance(opp, ev.CexDexOpportunity)
    queue = [d for d in decisions if isinstance(d, ev.OrderIntended)]
    seen: list[str] = []
    while queue:
        intent = queue.pop(0)
        kind, more = execute(run, intent, data)
        seen.append(f"{intent.client_id.split('-', 1)[1]} {kind}")
        queue += [d for d in more if isinstance(d, ev.OrderIntended)]
        assert len(seen) < 12, "the strategy keeps unwinding"
    unwinds = [e for e in run.events if isinstance(e, ev.CexDexUnwind)]
    event(f"{leg_order}: " + ", ".join(s for s in seen if not s.startswith("u")))
    event("unwinds: " + (", ".join(u.action for u in unwinds) or "none"))

    # what the fills realised, computed here from the venue reports alone
    mine = {e.seq: e for e in run.events if isinstance(e, ev.OrderIntended) and e.strategy == "cd"}
    quote_flow = gas = 0
    base: dict[str, int] = {}
    for e in run.events:
        if isinstance(e, ev.OrderFilled) and e.intent in mine:
            i = mine[e.intent]
            quote_flow += (-e.notional if i.side == "buy" else e.notional) - (e.fee if e.fee_asset == "USDC" else 0)
            asset = "ETH" if i.venue == "binance" else "WETH"
            base[asset] = base.get(asset, 0) + (e.amount if i.side == "buy" else -e.amount)
        elif isinstance(e, ev.TransactionIncluded) and e.intent in mine:
            gas += e.gas_used * e.gas_price * PRICE // 10**18
    marked = sum(d * PRICE // 10**18 for d in base.values())
    (report,) = cex_dex_reports(run.events, "oracle:eth-usd")
    assert report.realised == quote_flow - gas
    assert report.pnl == quote_flow - gas + marked
    fills = sum(1 for e in run.events if isinstance(e, ev.OrderFilled))
    assert abs(outcomes(run.events, "oracle:eth-usd")["cd"].pnl - report.pnl) <= fills  # (it marks each fill apart)
    if fills == 0:
        assert report.pnl <= 0  # nothing filled: nothing earned, whatever was expected
        event("nothing filled")

    # an exposure left is always decided: unwound below one lot, or held by a decision
    net = sum(base.values())
    holds = [u for u in unwinds if u.action == "hold"]
    assert abs(net) < LOT or holds, (seen, net)
    if holds:
        assert sum(h.exposure for h in holds) - net in range(-LOT, LOT)
        event("held: " + holds[-1].reason.split(";")[0].split(" would")[0])
    assert not run.engine.strategies[0].open  # every attempt settled


def test_a_rejected_book_leg_beside_a_filled_swap_is_unwound_on_the_cheaper_venue() -> None:
    run = Run(CexDexArb("cd", pools=[POOL], base_token=WETH, quote_token=USDC))
    opp, cex, dex = (d for d in open_gap(run, 150) if not isinstance(d, ev.CexDexUnwind))
    assert (opp.direction, cex.side, dex.side) == ("dex->cex", "sell", "buy")
    t = run.now()
    assert run.feed(ev.OrderFailed(ts=t, cause=cex.seq, intent=cex.seq, venue="binance",
                                   reason="rejected: rejected by venue (simulated)")) == []
    run.feed(ev.TransactionIncluded(ts=t, cause=dex.seq, intent=dex.seq, chain="ethereum", tx="t", block=3, index=0,
                                    status="success", gas_used=120_000, gas_price=12 * 10**9))
    out = run.feed(ev.OrderFilled(ts=run.now(), cause=dex.seq, intent=dex.seq, venue="ethereum:swap",
                                  amount=dex.min_profit, notional=dex.amount, fee=120_000 * 12 * 10**9, fee_asset="ETH"))
    unwind, intent = out[0], out[1]
    assert isinstance(unwind, ev.CexDexUnwind) and unwind.exposure == dex.min_profit == opp.base_amount
    assert unwind.action == "cex" and intent.side == "sell" and intent.client_id == "cd1-u1"  # the book is cheaper
    assert "cex failed, dex filled" in unwind.reason and 0 < unwind.expected_cost < 500_000_000
