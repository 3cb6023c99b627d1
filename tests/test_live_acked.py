"""Issue 13: a live source's batches are tied to the runner's group commit (``after_batch``, see
``live/base.py``): once a source has seen ``after_batch`` return, everything it emitted is durable
in the run's log (acknowledged), so a ``kill -9`` at any point loses nothing acknowledged.

The runs here set ``[store] max_delay_ms`` to a minute, so the log's own timer never commits in
time: only the tie to the source's batches can make an acknowledged event durable. A runner that
did not set ``after_batch`` fails every test here (the fake source acknowledges all the same, as a
naive source would)."""
from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

import pytest

from tapedeck.domain import events as ev
from tapedeck.live.base import Backoff
from tapedeck.live.binance_source import WsFeed
from tapedeck.live.runner import LiveRunner
from tests.test_live_runner import BASE, FAKES, config, count, drive, events, settings, verified
from tests.test_live_runner_fakes import AckingQuotes

SLOW_TIMER = "\n[store]\nmax_delay_ms = 60000\n"


def acking(count_: int, ack_file: str = "", batch: int = 8, head: str = BASE) -> str:
    quiet = head.replace("every = 3", "every = 1_000_000")  # no intents: the loop's flush-before-send stays out of it
    return quiet + SLOW_TIMER + f"""
[[sources]]
kind = "{FAKES}:AckingQuotes"
name = "quotes"
count = {count_}
batch = {batch}
interval_s = 0.0005
ack_file = "{ack_file}"
"""


def bids_of(evs: list[ev.Event]) -> list[int]:
    return [e.bid for e in evs if type(e) is ev.QuoteUpdated]


def index_of(bid: int) -> int:
    return (bid - 2_000_000_000) // 10_000


def test_every_acknowledged_batch_is_committed_when_the_source_acknowledges_it(tmp_path: Path) -> None:
    out = tmp_path / "run.db"
    runner = LiveRunner(settings(config(tmp_path, acking(96, batch=8))), out=str(out), signals=False).prepare()
    src = runner.sources[0][1]
    assert isinstance(src, AckingQuotes) and src.after_batch is not None  # the runner tied it to its commit
    seen: list[tuple[int, int, int]] = []  # (acked quote index, committed last seq, numbered last seq)

    def on_ack(i: int) -> None:
        seen.append((i, runner.store.last_seq(), runner.store.next_seq - 1))

    src.on_ack = on_ack
    drive(runner, lambda r: src.acked >= 95)
    assert [i for i, _, _ in seen] == list(range(7, 96, 8))  # every batch acknowledged, in order
    # nothing the source had emitted was still pending when it acknowledged: the commit came first
    assert all(committed == numbered for _, committed, numbered in seen), seen
    assert runner.batch_commits >= len(seen)
    evs = events(out)
    assert sorted(index_of(b) for b in bids_of(evs)) == list(range(96))
    assert verified(out).status == "verified"


def test_a_failed_commit_is_not_acknowledged(tmp_path: Path) -> None:
    """The store fails at a batch's end: ``after_batch`` raises, the source acknowledges nothing
    more, the run stops and says why."""
    out = tmp_path / "run.db"
    runner = LiveRunner(settings(config(tmp_path, acking(0, batch=8))), out=str(out), signals=False).prepare()
    src = runner.sources[0][1]
    acks: list[int] = []
    src.on_ack = acks.append
    real_flush = runner.store.flush

    def flush() -> None:
        if len(acks) >= 3:
            raise OSError("disk full (a test's)")
        real_flush()

    runner.store.flush = flush  # type: ignore[method-assign]
    with pytest.raises(Exception, match="disk full|OSError"):
        drive(runner, lambda r: False, polls=20_000)
    assert acks == [7, 15, 23]  # the fourth batch's commit failed: it was never acknowledged
    assert runner.health()["status"] == "degraded"


class _ListFeed(WsFeed):
    """A feed whose socket is a list (the pump is what is under test)."""

    def parse(self, raw: str | bytes, ts: int) -> list[ev.Event]:
        return [ev.QuoteUpdated(ts=ts, source="t", venue="v", instrument="I", bid=int(raw), bid_size=1, ask=int(raw) + 1,
                                ask_size=1, price_decimals=0, size_decimals=0)]

    def stale_ids(self) -> tuple[str, ...]:
        return ("v",)


def test_a_feed_counts_as_acknowledged_only_what_after_batch_returned_for() -> None:
    feed = _ListFeed("t", "ws://127.0.0.1:1", batch=5, backoff=Backoff(seed=1))
    emitted: list[int] = []
    committed: list[int] = []  # what was emitted when each commit returned
    at_commit: list[tuple[int, int]] = []  # (feed's acked before the commit, events emitted then)

    def after_batch() -> None:
        at_commit.append((feed.stats.acked, feed.stats.emitted))
        if len(committed) == 2:
            raise RuntimeError("the log cannot commit")
        committed.append(len(emitted))

    feed.after_batch = after_batch

    async def main() -> None:
        pump = asyncio.get_running_loop().create_task(feed._pump(lambda e: emitted.append(e.bid)))
        for i in range(12):
            feed.frame(str(i).encode())
        for _ in range(50):
            await asyncio.sleep(0)
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)

    asyncio.run(main())
    assert committed == [5, 10] and emitted == list(range(12))
    assert [a for a, _ in at_commit] == [0, 5, 10]  # acked moves only once a commit returned
    assert feed.stats.acked == 10 and feed.health()["acked"] == 10  # the failed third commit acknowledged nothing


@pytest.mark.slow
def test_kill_9_at_random_points_loses_no_acknowledged_event(tmp_path: Path) -> None:
    """``tapedeck live`` as a process, killed with SIGKILL three times at random points while its
    source acknowledges batches to a file, restarted on the same ``--out`` each time: every quote
    the file says was acknowledged is in the log, no quote twice, and the run verifies."""
    from tests.test_live_runner_process import OPS, Live, cli

    acks = tmp_path / "acks.txt"
    cfg = config(tmp_path, acking(0, str(acks), head=OPS))
    out = tmp_path / "run.db"
    rng = random.Random(13)
    for round_ in range(3):
        live = Live(str(cfg), "--out", str(out))
        target = (round_ + 1) * 40 + rng.randrange(40)
        live.wait_for(lambda h: (h["sources"]["quotes"]["adapter"]["acked"] or -1) >= target)
        live.signal(signal.SIGKILL)
        live.finish()
        acked = int(acks.read_text().split()[-1])
        assert acked >= target
        present = sorted(index_of(b) for b in bids_of(events(out)))
        assert present[:acked + 1] == list(range(acked + 1)), f"round {round_}: acknowledged quotes lost"
    live = Live(str(cfg), "--out", str(out))
    live.wait_for(lambda h: h["resumed"] and (h["sources"]["quotes"]["adapter"]["acked"] or -1) >= acked + 16)
    live.signal(signal.SIGTERM)
    rc, _, stderr = live.finish()
    assert rc == 0, stderr
    evs = events(out)
    bids = bids_of(evs)
    assert len(bids) == len(set(bids))  # no quote twice across four sessions
    assert sorted(index_of(b) for b in bids) == list(range(len(bids)))  # and no gap
    assert [e.seq for e in evs] == list(range(1, len(evs) + 1))
    assert count(evs, ev.SourceConnectionChanged, name="quotes", state="connected") == 4
    v = cli("replay", str(out), "--verify")
    assert v.returncode == 0, v.stdout + v.stderr
