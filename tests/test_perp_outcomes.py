"""The per-strategy outcome of a perp strategy says the perp's real figures: PnL from its positions
(realised less fees, funding, what is open at the last mark), equal to the perp report's net; no
"unpriced" fills; the venue's account stream and the gateway's fill of one trade counted once,
whichever comes first. Was: "PnL -11.21 USDC, 4 unpriced" (the fees alone) for oracle-jump."""
from __future__ import annotations

from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tapedeck.domain import events as ev
from tapedeck.runtime.outcomes import outcomes
from tapedeck.runtime.perp_report import perp_reports

V, I = "hyperliquid", "ETH"
T0 = 1_700_000_000 * 10**9
S = 10**9
USDC = 10**6


class Tape:
    def __init__(self) -> None:
        self.events: list[ev.Event] = []
        self.n = 0

    def add(self, e: ev.Event) -> int:
        self.n += 1
        self.events.append(ev.with_seq(e, self.n))
        return self.n

    def mark(self, ts: int, px: int) -> None:
        self.add(ev.MarkPriceUpdated(ts=ts, source="sim", venue=V, instrument=I, mark=px, oracle=px, price_decimals=1))

    def trade(self, ts: int, side: str, size: int, px: int, fee: int, kind: str = "entry", *, fill: bool = True,
              source: str = "sim", cid: str = "") -> int:
        """A perp decision, its intent and (``fill``) its fill: ``size`` at 4 dp, ``px`` at 1 dp."""
        cid = cid or f"c{self.n}"
        if kind == "entry":
            self.add(ev.PerpEntryDecided(ts=ts, source="engine", strategy="perp", venue=V, instrument=I, side=side,
                                         size=size, size_decimals=4, limit_price=px, price_decimals=1, oracle=px,
                                         oracle_decimals=1, deviation_ppm=6000, available=size, client_id=cid))
        else:
            self.add(ev.PerpExitDecided(ts=ts, source="engine", strategy="perp", venue=V, instrument=I, side=side,
                                        position=size, size_decimals=4, limit_price=px, price_decimals=1,
                                        entry_price=px, path="update", reason="regressed", deviation_ppm=0,
                                        latency_ns=0, qualified_cause=1, held_ns=S, client_id=cid))
        notional = size * px * 10  # 4 + 1 dp -> USDC 6 dp
        seq = self.add(ev.OrderIntended(ts=ts, source="engine", strategy="perp", venue=V, instrument=I, side=side,
                                        amount=size, notional=notional, client_id=cid, limit_price=px,
                                        price_decimals=1, tif="ioc", reduce_only=kind == "exit"))
        if fill:
            self.add(ev.OrderFilled(ts=ts, source=source, intent=seq, venue=V, amount=size, notional=notional,
                                    fee=fee, fee_asset="USDC", final=True))
        return seq


def test_a_round_trip_books_what_it_realised_less_fees_and_the_open_rest_at_the_last_mark() -> None:
    t = Tape()
    t.mark(T0, 30_000)
    t.trade(T0 + S, "buy", 2 * 10**4, 30_000, 2 * USDC)  # 2 ETH at 3000.0, fee 2
    t.add(ev.FundingPaid(ts=T0 + 2 * S, source="sim", venue=V, instrument=I, amount=-300_000, amount_decimals=6,
                         asset="USDC", size=2 * 10**4, size_decimals=4, rate=5, rate_decimals=5))  # paid 0.30
    t.trade(T0 + 3 * S, "sell", 10**4, 31_000, USDC, "exit")  # 1 ETH out at 3100.0: +100, fee 1
    t.trade(T0 + 4 * S, "sell", 5_000, 29_000, USDC // 2, "exit")  # 0.5 out at 2900.0: -50 (a loss), fee 0.5
    t.mark(T0 + 5 * S, 30_500)  # 0.5 still held: +25 at the mark
    booked: list[tuple[int, str, int, bool]] = []
    (s,) = [o for o in outcomes(t.events, booked=lambda *a: booked.append(a)).values() if o.intents]
    (r,) = perp_reports(t.events)
    # +100 realised, -50 realised, +25 open at the mark; fees 2 + 1 + 0.5, funding -0.30
    assert s.pnl == r.pnl()["net"] == (100 - 50 + 25) * USDC - 3_500_000 - 300_000 == 71_200_000
    assert (s.unpriced, s.opportunities, s.executed_fills, s.executed_losing) == (0, 1, 3, 1)
    # the one entry is the opportunity acted on and won; the two exits are counted apart, not as acted on
    assert (s.intents, s.won, s.lost, s.pending) == (1, 1, 0, 0)
    assert (s.exits, s.exits_filled, s.exits_failed, s.exits_pending, s.exits_refused) == (2, 2, 0, 0, 0)
    assert sum(a for _, _, a, _ in booked) == s.pnl
    assert [(ts - T0) // S for ts, *_ in booked] == [1, 2, 3, 4, 5]  # each at its own event time; the mark at the end
    assert [a for *_, a, _ in booked] == [-2 * USDC, -300_000, 99 * USDC, -50_500_000, 25 * USDC]


def test_the_summary_line_says_the_perp_figures() -> None:
    from tapedeck.cli import outcome_lines

    t = Tape()
    t.trade(T0, "buy", 2 * 10**4, 29_928, 2_693_520)
    t.trade(T0 + S, "sell", 2 * 10**4, 32_144, 2_892_960, "exit")
    lines = outcome_lines(outcomes(t.events).values())
    # 2 ETH bought at 2992.8, sold at 3214.4: 443.20 realised, 5.59 in fees
    assert lines[0].endswith("1 opportunities seen, 1 acted on (0 refused by risk); 1 orders (0 refused): 1 won, 0 lost, 0 pending; "
                             "PnL 437.61 USDC net of gas (0.0000 ETH) and fees")
    assert lines[1] == ("    exits (flattens of those positions, not opportunities): 1 intended (0 refused by risk), "
                        "1 filled, 0 failed, 0 pending")
    assert "executed: 2 fills, 0 at a loss, PnL 437.61 USDC" in lines[3]
    assert not any("unpriced" in line for line in lines)


def test_exits_that_fail_are_refused_or_are_left_open_are_counted_apart_from_the_entries() -> None:
    t = Tape()
    t.trade(T0, "buy", 2 * 10**4, 30_000, USDC)  # entry 1: filled
    t.trade(T0 + S, "buy", 10**4, 30_000, USDC, fill=False)  # entry 2: fails at the venue
    t.add(ev.OrderFailed(ts=T0 + S, source="sim", intent=t.n, venue=V, reason="no liquidity"))
    failed = t.trade(T0 + 2 * S, "sell", 2 * 10**4, 30_100, 0, "exit", fill=False)
    t.add(ev.OrderFailed(ts=T0 + 2 * S, source="sim", intent=failed, venue=V, reason="rejected by venue"))
    t.add(ev.PerpExitDecided(ts=T0 + 3 * S, source="engine", strategy="perp", venue=V, instrument=I, side="sell",
                             position=2 * 10**4, size_decimals=4, limit_price=30_100, price_decimals=1,
                             entry_price=30_000, path="timer", reason="regressed", deviation_ppm=0, latency_ns=0,
                             qualified_cause=1, held_ns=S, client_id="refused"))
    t.add(ev.IntentRejected(ts=T0 + 3 * S, source="engine", strategy="perp", venue=V, notional=1, reason="kill switch",
                            client_id="refused"))
    t.trade(T0 + 4 * S, "sell", 2 * 10**4, 30_100, 0, "exit", fill=False)  # still out when the run ends
    (s,) = outcomes(t.events).values()
    assert (s.opportunities, s.intents, s.won, s.lost, s.rejected, s.pending) == (2, 2, 1, 1, 0, 0)
    assert dict(s.lost_to) == {"no liquidity": 1}  # the exit's failure is not a lost opportunity
    assert (s.exits, s.exits_filled, s.exits_failed, s.exits_refused, s.exits_pending) == (2, 0, 1, 1, 1)


@pytest.mark.parametrize("stream_first", [False, True])
def test_the_account_stream_and_the_gateways_fill_of_one_trade_count_once(stream_first: bool) -> None:
    t = Tape()

    def stream(ts: int, side: str, size: int, px: int, start: int, tid: str, fee: int) -> None:
        t.add(ev.AccountFillReported(ts=ts, source="hl", venue=V, instrument=I, side=side, price=px, size=size,
                                     price_decimals=1, size_decimals=4, fee=fee, fee_decimals=6, fee_asset="USDC",
                                     start_position=start, trade_id=tid))

    if stream_first:
        stream(T0, "buy", 10**4, 30_000, 0, "t1", USDC)
    t.trade(T0, "buy", 10**4, 30_000, 0, source="hyperliquid-exchange")  # the gateway's report: no fee in it
    if not stream_first:
        stream(T0, "buy", 10**4, 30_000, 0, "t1", USDC)
    t.trade(T0 + S, "sell", 10**4, 30_500, 0, "exit", source="hyperliquid-exchange")
    stream(T0 + S, "sell", 10**4, 30_500, 10**4, "t2", USDC)
    (s,) = [o for o in outcomes(t.events).values() if o.intents]
    (r,) = perp_reports(t.events)
    assert s.pnl == r.pnl()["net"] == 48 * USDC  # +50 once, the stream's two fees
    assert r.positions.get(V, I).size == 0


@settings(max_examples=120, deadline=None)
@given(fills=st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 5 * 10**4), st.integers(25_000, 35_000),
                                st.integers(0, 3 * USDC), st.booleans()), min_size=1, max_size=12),
       mark=st.one_of(st.none(), st.integers(25_000, 35_000)), close=st.booleans())
def test_outcomes_pnl_is_the_perp_reports_net_and_the_sum_of_what_it_booked(fills: list[Any], mark: int | None,
                                                                         close: bool) -> None:
    t = Tape()
    held = 0
    for i, (side, size, px, fee, paper) in enumerate(fills):
        t.trade(T0 + i * S, side, size, px, fee, "entry" if i % 2 == 0 else "exit", source="paper" if paper else "sim")
        held += size if side == "buy" else -size
    if close and held:  # flatten what is left
        t.trade(T0 + len(fills) * S, "sell" if held > 0 else "buy", abs(held), fills[-1][2], 1, "exit")
    if mark is not None:
        t.mark(T0 + (len(fills) + 1) * S, mark)
    booked: list[tuple[int, str, int, bool]] = []
    (s,) = [o for o in outcomes(t.events, booked=lambda *a: booked.append(a)).values() if o.intents]
    (r,) = perp_reports(t.events)
    open_ = r.positions.get(V, I).size != 0
    event("left open" if open_ else "flat at the end")
    if open_ and mark is None:
        event("open without a mark: unpriced")
        assert s.unpriced == 1 and s.pnl == r.pnl()["net"] - r.pnl()["unrealised"]
    else:
        assert s.unpriced == 0 and s.pnl == r.pnl()["net"]
    assert s.pnl == sum(a for _, _, a, _ in booked) == s.paper_pnl + s.executed_pnl
