"""The daily loss limit ``--execute`` requires is domain state (``domain.risk``): the day's
risk-currency flow of fills, per UTC day of event time, refuses every intent once the loss reaches
the limit, rolls over with the day, and a replay of the log refuses the same intents."""
from __future__ import annotations

from pathlib import Path

from tapedeck.domain import events as ev
from tapedeck.domain.risk import DAY_NS, Intent, RiskGate
from tapedeck.live.runner import LiveRunner
from tapedeck.runtime.strategy_loader import build_engine
from tests.test_live_runner import BASE, FAKES, count, drive, events, fake_run, settings, verified
from tests.test_live_runner_fakes import FakeQuotes

DAY0 = 20_000 * DAY_NS  # some UTC midnight


def cfg(limit: int) -> dict:
    return {"risk": {"default_max_notional": 10**9, "default_max_outstanding": 10**12, "daily_loss_limit": limit},
            "strategies": [{"kind": f"{FAKES}:Buyer", "name": "buyer", "every": 1, "notional": 2_000_000}]}


def fill_all(engine, decisions, ts: int, **fill) -> list[ev.Event]:
    out = []
    for d in decisions:
        d = ev.with_seq(d, engine.seq)
        engine.seq += 1
        engine.decided(d)
        out.append(d)
        if type(d) is ev.OrderIntended:
            f = ev.with_seq(ev.OrderFilled(ts=ts, intent=d.seq, venue=d.venue, amount=d.amount, notional=d.notional,
                                           fee=fill.get("fee", 0), fee_asset=fill.get("fee_asset", "")), engine.seq)
            engine.seq += 1
            out.extend(fill_all(engine, engine.handle(f), ts))
    return out


def run_day(limit: int, quotes: list[int]) -> list[ev.Event]:
    engine = build_engine(cfg(limit))
    engine.seq = 1
    src = FakeQuotes("q", lambda: 0)
    out: list[ev.Event] = []
    for i, ts in enumerate(quotes):
        q = ev.with_seq(ev.QuoteUpdated(**{**{f: getattr(src.quote(i), f) for f in src.quote(i).__struct_fields__},
                                           "ts": ts, "seq": 0}), engine.seq)
        engine.seq += 1
        out.append(q)
        out.extend(fill_all(engine, engine.handle(q), ts, fee=100_000, fee_asset="USDC"))
    return out


def test_intents_are_refused_once_the_days_loss_reaches_the_limit_and_again_allowed_the_next_day() -> None:
    ts = [DAY0 + i for i in range(5)] + [DAY0 + DAY_NS + 1, DAY0 + DAY_NS + 2]
    out = run_day(5_000_000, ts)
    verdicts = [(type(e).__name__, getattr(e, "reason", "")) for e in out
                if type(e) in (ev.OrderIntended, ev.IntentRejected)]
    # each buy pays 2 USDC + a 0.1 USDC fee: after three the day's loss is 6.3 USDC >= 5
    assert verdicts[:3] == [("OrderIntended", "")] * 3
    assert verdicts[3:5] == [("IntentRejected", "daily loss 6300000 reached daily_loss_limit 5000000")] * 2
    assert verdicts[5:] == [("OrderIntended", "")] * 2  # a new UTC day of event time
    assert run_day(5_000_000, ts) == out  # folded from events only: the same stream, the same verdicts


def test_the_flow_by_side() -> None:
    gate = RiskGate.from_config({"default_max_notional": 10**9, "default_max_outstanding": 10**12,
                                 "daily_loss_limit": 10})
    for seq, side in ((1, "buy"), (2, "sell"), (3, "arb"), (4, "liquidate")):
        gate.on_intended(ev.OrderIntended(seq=seq, ts=DAY0, strategy="s", venue="v", instrument="i", side=side,
                                          amount=0, notional=0))
    fill = lambda i, amount, notional, final=True: ev.OrderFilled(ts=DAY0, intent=i, venue="v", amount=amount,  # noqa: E731
                                                                notional=notional, fee=0, final=final)
    gate.on_finished(fill(1, 5, 7, final=False))  # a partial fill books its part
    assert gate.day_flow == -7
    gate.on_finished(fill(2, 5, 4))
    gate.on_finished(fill(3, 12, 10))
    gate.on_finished(fill(4, 999, 3))
    assert gate.day_flow == -7 + 4 + 2 - 3
    gate.on_inventory(ev.InventoryChanged(ts=DAY0, intent=1, venue="v", strategy="s", asset="USDC", delta=-5))
    gate.on_inventory(ev.InventoryChanged(ts=DAY0, intent=1, venue="v", strategy="s", asset="WETH", delta=-99))
    assert gate.day_loss(DAY0) == 9 and gate.day_loss(DAY0 + DAY_NS) == 0
    assert gate.check(Intent("s", "v", "i", "buy", 1, 1), now=DAY0) == ""
    gate.on_finished(fill(1, 0, 1))
    assert gate.check(Intent("s", "v", "i", "buy", 1, 1), now=DAY0) == "daily loss 10 reached daily_loss_limit 10"
    assert gate.sides == {}  # nothing kept for intents that finished
    no_limit = RiskGate.from_config({"default_max_notional": 1, "default_max_outstanding": 1})
    assert no_limit.daily_loss_limit is None


def test_a_live_run_with_a_loss_limit_records_the_refusals_and_verifies(tmp_path: Path) -> None:
    text = BASE.replace("default_max_outstanding = 100_000_000", "default_max_outstanding = 100_000_000\n"
                        "daily_loss_limit = 5_000_000")
    path, out = fake_run(tmp_path, 18, text)
    runner = LiveRunner(settings(path), out=str(out), signals=False).prepare()
    drive(runner, lambda r: r.sources[0][1].next_i >= 18 and not r.engine.risk.open_intents
          and r.loop.stats.by_type.get("OpportunityDetected", 0) >= 3)
    evs = events(out)
    assert count(evs, ev.OrderIntended) == 3  # 2 USDC each: the third reaches 6 >= 5
    assert count(evs, ev.IntentRejected) == 3
    assert all(e.reason.startswith("daily loss 6000000 reached") for e in evs if type(e) is ev.IntentRejected)
    assert verified(out).status == "verified"
