"""cex_dex_arb's leg timeout (``leg_timeout_s``) through the real engine and its core timers.

A leg that never reports: each send asks for a ``TimerRequested`` due ``leg_timeout_s`` later; when
the runner's ``TimerFired`` comes and the leg is still not final, the strategy takes it as final
with what it filled so far and the attempt settles: an unwind decision on the exposure the other
leg's fill left, naming the timeout. A leg that reports in time makes its timer a no-op; a report
after the timeout still moves the position (into the held inventory once the attempt closed); and
without ``leg_timeout_s`` no timer is asked for at all (the shipped behaviour, digests unchanged).
A timed-out book leg is cancelled (``Intent(side="cancel")``, once): the venue's ``OrderCanceled``
ends it for good and frees its notional; a cancel that finds it filled fails, and the fill counts.
"""
from __future__ import annotations

import pytest

from tapedeck.domain import events as ev
from tapedeck.domain.strategies.cex_dex_arb import CexDexArb
from tests.test_cex_dex_legs import LOT, POOL, USDC, WETH, Run, open_gap

TIMEOUT_NS = 3 * 10**9


def strategy(**kw) -> CexDexArb:
    return CexDexArb("cd", pools=[POOL], base_token=WETH, quote_token=USDC, **kw)


def fire(run: Run, timer: ev.TimerRequested) -> list[ev.Event]:
    """What the runner does with a timer: ``TimerFired`` at its event time."""
    run.t = max(run.t, timer.at_ts)
    return run.feed(ev.TimerFired(ts=timer.at_ts, source="runner", cause=timer.seq, strategy=timer.strategy,
                                  key=timer.key, requested=timer.seq))


def book_fill(run: Run, intent: ev.OrderIntended, amount: int | None = None, final: bool = True) -> list[ev.Event]:
    amount = intent.amount if amount is None else amount
    notional = intent.notional * amount // intent.amount
    return run.feed(ev.OrderFilled(ts=run.now(), source="test", cause=intent.seq, intent=intent.seq,
                                   venue=intent.venue, amount=amount, notional=notional,
                                   fee=-(-notional * 10 // 10_000), fee_asset="USDC", final=final))


def legs(decisions: list[ev.Event]) -> tuple[ev.OrderIntended, ev.OrderIntended, ev.TimerRequested]:
    intents = [d for d in decisions if isinstance(d, ev.OrderIntended)]
    (timer,) = [d for d in decisions if isinstance(d, ev.TimerRequested)]
    cex = next(i for i in intents if i.venue == "binance")
    dex = next(i for i in intents if i.venue != "binance")
    return cex, dex, timer


@pytest.mark.parametrize("gap_bps", [150, -150])
def test_a_leg_that_never_reports_triggers_the_unwind_decision(gap_bps: int) -> None:
    s = strategy(leg_timeout_s=3)
    run = Run(s)
    decisions = open_gap(run, gap_bps)
    cex, dex, timer = legs(decisions)
    assert timer.at_ts == timer.ts + TIMEOUT_NS and timer.key == "cd1:t1"
    book_fill(run, cex)  # the book leg fills; the swap never reports (a lost transaction, a dead node)
    assert s.open  # waiting for the swap
    out = fire(run, timer)
    (unwind,) = [d for d in out if isinstance(d, ev.CexDexUnwind)]
    assert unwind.attempt == 1 and "dex timeout" in unwind.reason and "cex filled" in unwind.reason
    assert abs(unwind.exposure) == cex.amount  # what the book leg moved, with nothing against it
    assert unwind.action in ("cex", "pool", "hold")
    if unwind.action != "hold":  # the unwind leg is sent, with its own timer
        assert [d for d in out if isinstance(d, ev.OrderIntended) and d.client_id == unwind.client_id]
        assert [d for d in out if isinstance(d, ev.TimerRequested) and d.key == "cd1:t2"]
    assert s.timeouts == 1


def test_a_leg_reporting_in_time_makes_its_timer_a_no_op() -> None:
    s = strategy(leg_timeout_s=3)
    run = Run(s)
    cex, dex, timer = legs(open_gap(run, 150))
    book_fill(run, cex)
    run.feed(ev.OrderFailed(ts=run.now(), source="test", cause=dex.seq, intent=dex.seq, venue=dex.venue,
                            reason="reverted: INSUFFICIENT_OUTPUT_AMOUNT"))  # final in time: settles now
    assert fire(run, timer) == [] and s.timeouts == 0


def test_a_late_fill_after_the_attempt_closed_is_held_inventory() -> None:
    s = strategy(leg_timeout_s=3, max_unwind_cost=0)  # any unwind costs more: the exposure is held
    run = Run(s)
    cex, dex, timer = legs(open_gap(run, 150))
    out = fire(run, timer)  # neither leg reported: both taken as final, nothing moved
    assert not [d for d in out if isinstance(d, ev.CexDexUnwind)] and not s.open and s.timeouts == 2
    book_fill(run, cex)  # the book leg's fill arrives after all
    assert s.late == 1 and s.held == (cex.amount if cex.side == "buy" else -cex.amount)


def test_without_a_timeout_no_timer_is_asked_for() -> None:
    run = Run(strategy())
    decisions = open_gap(run, 150)
    assert [d for d in decisions if isinstance(d, ev.OrderIntended)]
    assert not [d for d in decisions if isinstance(d, ev.TimerRequested)]


def test_a_bad_timeout_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="leg_timeout_s"):
        strategy(leg_timeout_s="soon")
    assert LOT > 0


def test_cex_first_a_book_leg_that_never_reports_sends_no_swap_and_closes() -> None:
    s = strategy(leg_timeout_s=3, leg_order="cex_first")
    run = Run(s)
    decisions = open_gap(run, 150)
    intents = [d for d in decisions if isinstance(d, ev.OrderIntended)]
    (timer,) = [d for d in decisions if isinstance(d, ev.TimerRequested)]
    assert [i.venue for i in intents] == ["binance"]  # the swap waits for the book leg
    out = fire(run, timer)
    sent = [d for d in out if isinstance(d, ev.OrderIntended)]
    assert not [d for d in sent if d.side != "cancel"]  # no swap for a fill that never came
    (cancel,) = sent  # only the book leg's cancel (it may still rest on the venue)
    assert cancel.target == intents[0].client_id and cancel.venue == "binance"
    assert not s.open and s.timeouts == 1  # nothing moved: nothing to unwind, the attempt is closed
    book_fill(run, intents[0])  # and if it fills after all, the base it bought is held, not lost
    assert s.late == 1 and abs(s.held) == intents[0].amount


def cancel_of(out: list[ev.Event], leg: ev.OrderIntended) -> ev.OrderIntended:
    (cancel,) = [d for d in out if isinstance(d, ev.OrderIntended) and d.side == "cancel"]
    assert cancel.target == leg.client_id and cancel.client_id == leg.client_id + "-cancel"
    assert cancel.venue == leg.venue and cancel.amount == 0
    return cancel


def test_a_resting_book_leg_is_cancelled_on_its_timeout_and_the_cancel_ends_it() -> None:
    s = strategy(leg_timeout_s=3, cex_tif="gtc")
    run = Run(s)
    cex, dex, timer = legs(open_gap(run, 150))
    assert cex.tif == "gtc"
    half = cex.amount // 2 // LOT * LOT
    book_fill(run, cex, half, final=False)  # part fills; the rest rests on the book
    run.feed(ev.OrderFailed(ts=run.now(), source="test", cause=dex.seq, intent=dex.seq, venue=dex.venue,
                            reason="reverted"))  # the swap ends; the book leg still rests
    assert s.open and cex.client_id in run.engine.state.orders["cd"]
    out = fire(run, timer)
    cancel = cancel_of(out, cex)
    (unwind,) = [d for d in out if isinstance(d, ev.CexDexUnwind)]
    assert abs(unwind.exposure) == half and "cex timeout" in unwind.reason  # what filled before the timeout
    assert s.cancels == 1 and s.timeouts == 1
    run.feed(ev.OrderCanceled(ts=run.now(), source="test", cause=cancel.seq, intent=cex.seq, venue="binance",
                              strategy="cd", instrument=cex.instrument, client_id=cex.client_id,
                              cancel_id=cancel.client_id, remaining=cex.amount - half, cancel_intent=cancel.seq))
    assert s.canceled == 1 and s.cancel_failed == 0
    assert cex.client_id not in s._timed_out and cancel.client_id not in s._cancel_of  # nothing more can come
    orders = run.engine.state.orders.get("cd", {})
    assert cex.client_id not in orders and cancel.client_id not in orders  # both ended: notional freed
    assert fire(run, timer) == []  # (a timer fired twice is a no-op)


def test_a_cancel_that_finds_the_book_leg_filled_fails_and_the_fill_still_counts() -> None:
    s = strategy(leg_timeout_s=3, max_unwind_cost=0)  # (unwinds cost more: exposure is held)
    run = Run(s)
    cex, dex, timer = legs(open_gap(run, 150))
    out = fire(run, timer)  # neither leg reported; the book leg gets a cancel, the swap none
    cancel = cancel_of(out, cex)
    assert s.cancels == 1 and s.timeouts == 2
    book_fill(run, cex)  # it had filled before the cancel reached the venue
    run.feed(ev.OrderFailed(ts=run.now(), source="test", cause=cancel.seq, intent=cancel.seq, venue="binance",
                            reason="cancel: unknown or finished order"))
    assert s.cancel_failed == 1 and s.canceled == 0 and not s._cancel_of
    assert s.late == 1 and s.held == (cex.amount if cex.side == "buy" else -cex.amount)


def test_a_timed_out_swap_is_not_cancelled() -> None:
    s = strategy(leg_timeout_s=3)
    run = Run(s)
    cex, dex, timer = legs(open_gap(run, 150))
    book_fill(run, cex)
    out = fire(run, timer)
    assert not [d for d in out if isinstance(d, ev.OrderIntended) and d.side == "cancel"] and s.cancels == 0


def test_a_bad_tif_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="cex_tif"):
        strategy(cex_tif="fok")
