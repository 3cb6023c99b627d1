"""Issue 13: a feed's pipelined acknowledgement (``WsFeed.ack_after``, set by the runner to the run's
``EventLog.commit_async``): the pump goes on emitting while its batch commits off the loop's thread,
and counts a batch acknowledged only once its commit is durable; a failed commit acknowledges nothing
more; a queue's worth unacknowledged holds the pump. Through the whole runner on the loopback
Binance playback, no acknowledgement ever runs ahead of the log, and ``kill -9`` of ``tapedeck live``
loses no acknowledged event."""
from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from tapedeck.domain import events as ev
from tapedeck.live.base import Backoff
from tapedeck.live.runner import LiveRunner
from tests.conftest import require_data
from tests.test_live_acked import _ListFeed
from tests.test_live_runner import BASE, config, events, settings, verified

QUIET = BASE.replace("every = 3", "every = 1_000_000") + "\n[store]\nmax_delay_ms = 60000\n"  # only acks commit


async def _turns(n: int = 50) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_a_batch_is_acknowledged_when_its_commit_resolves_not_when_it_was_asked() -> None:
    feed = _ListFeed("t", "ws://127.0.0.1:1", batch=5, backoff=Backoff(seed=1))
    asked: list[tuple[int, concurrent.futures.Future[int]]] = []  # (emitted when asked, its commit)

    def ack_after() -> concurrent.futures.Future[int]:
        fut: concurrent.futures.Future[int] = concurrent.futures.Future()
        asked.append((feed.stats.emitted, fut))
        return fut

    feed.ack_after = ack_after
    emitted: list[int] = []

    async def main() -> None:
        pump = asyncio.get_running_loop().create_task(feed._pump(lambda e: emitted.append(e.bid)))
        for i in range(12):
            feed.frame(str(i).encode())
        await _turns()
        assert emitted == list(range(12))  # the pump did not wait for any commit
        assert [n for n, _ in asked] == [5, 10, 12] and feed.stats.acked == 0
        asked[1][1].set_result(10)  # the second commit is durable (a group commit covering the first)
        await _turns()
        assert feed.stats.acked == 10
        asked[0][1].set_result(5)  # a late answer does not move it back
        await _turns()
        assert feed.stats.acked == 10
        asked[2][1].set_exception(OSError("disk full (a test's)"))
        await _turns()
        assert feed.stats.acked == 10  # the failed commit acknowledged nothing
        for i in range(12, 20):
            feed.frame(str(i).encode())
        await _turns()
        assert pump.done() and isinstance(pump.exception(), OSError)  # and nothing more is asked
        assert len(asked) == 3

    asyncio.run(main())


def test_a_queue_of_unacknowledged_events_holds_the_pump_until_the_log_catches_up() -> None:
    feed = _ListFeed("t", "ws://127.0.0.1:1", batch=4, queue_limit=8, backoff=Backoff(seed=1))
    asked: list[concurrent.futures.Future[int]] = []
    feed.ack_after = lambda: asked.append(concurrent.futures.Future()) or asked[-1]  # type: ignore[func-returns-value]
    emitted: list[int] = []

    async def main() -> None:
        pump = asyncio.get_running_loop().create_task(feed._pump(lambda e: emitted.append(e.bid)))
        for i in range(8):
            feed.frame(str(i).encode())
        await _turns()
        for i in range(8, 16):
            feed.frame(str(i).encode())
        await _turns()
        assert len(emitted) == 8  # 8 unacknowledged (the queue's limit): the pump waits
        asked[-1].set_result(8)
        await _turns()
        assert len(emitted) == 16 and feed.stats.acked >= 8
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)

    asyncio.run(main())


def test_the_group_window_follows_a_short_store_delay_and_never_a_long_one(tmp_path: Path) -> None:
    from tapedeck.live.runner import ACK_GROUP_MS

    quotes = '\n[[sources]]\nkind = "tests.test_live_runner_fakes:FakeQuotes"\nname = "q"\ncount = 1\n'
    for delay, window in (("60000", ACK_GROUP_MS), ("2", 1.0)):
        text = BASE + f"\n[store]\nmax_delay_ms = {delay}\n" + quotes
        runner = LiveRunner(settings(config(tmp_path, text, f"d{delay}.toml")), out=str(tmp_path / f"d{delay}.db"),
                            signals=False).prepare()
        assert runner.store.group_ms == window  # a minute's timer must not hold a feed's acknowledgements
        runner.close()


def _binance(url: str) -> str:
    return QUIET + f'''
[[sources]]
kind = "binance"
name = "binance"
url = "{url}"
symbols = ["ETHUSDT"]
batch = 16
'''


def test_through_the_runner_no_acknowledgement_runs_ahead_of_the_log(tmp_path: Path) -> None:
    require_data("binance-ethusdt-ws-2024-08-08")
    from tapedeck.live.playback import BinancePlayback

    out = tmp_path / "run.db"
    checks: list[tuple[int, int, int]] = []  # (acked, seq of the last acked event, committed last seq)

    async def play() -> None:
        async with BinancePlayback(rate=4000) as pb:
            runner = LiveRunner(settings(config(tmp_path, _binance(pb.url))), out=str(out), signals=False).prepare()
            src = runner.sources[0][1]
            assert src.ack_after is not None  # the runner tied the feed to its pipelined commit
            seqs: list[int] = []
            emit_for = runner.emit_for

            def recording_emit(name: str) -> Any:
                emit = emit_for(name)

                def e(event: ev.Event) -> None:
                    emit(event)
                    seqs.append(runner.store.next_seq - 1)
                return e

            runner.emit_for = recording_emit  # type: ignore[method-assign]
            acked = src._acked

            def check(fut: Any, upto: int) -> None:
                acked(fut, upto)
                if src.stats.acked == upto and upto:
                    checks.append((upto, seqs[upto - 1], runner.store.last_seq()))

            src._acked = check
            task = asyncio.get_running_loop().create_task(runner.run())
            for _ in range(3000):
                await asyncio.sleep(0.01)
                if src.stats.acked >= 6000:
                    break
            runner.stop()
            await task

    asyncio.run(play())
    assert len(checks) > 20
    assert all(seq <= committed for _, seq, committed in checks), [c for c in checks if c[1] > c[2]][:5]
    evs = events(out)
    assert sum(1 for e in evs if e.source == "binance-ws") >= 6000
    assert verified(out).status == "verified"


@pytest.mark.slow
def test_kill_9_of_tapedeck_live_on_the_binance_playback_loses_no_acknowledged_event(tmp_path: Path) -> None:
    require_data("binance-ethusdt-ws-2024-08-08")
    from tapedeck.live.playback import BinancePlayback
    from tests.test_live_runner_process import Live

    ready = threading.Event()
    box: dict[str, Any] = {}

    def serve() -> None:
        async def main() -> None:
            async with BinancePlayback(rate=3000) as pb:
                box["url"], box["loop"], box["stop"] = pb.url, asyncio.get_running_loop(), asyncio.Event()
                ready.set()
                await box["stop"].wait()

        asyncio.run(main())

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    assert ready.wait(30)
    out = tmp_path / "run.db"
    try:
        cfg = config(tmp_path, _binance(box["url"]).replace("[ops]\nenabled = false", "[ops]\nport = 0"))
        live = Live(str(cfg), "--out", str(out))
        h = live.wait_for(lambda h: h["sources"]["binance"]["adapter"]["acked"] >= 3000)
        acked = h["sources"]["binance"]["adapter"]["acked"]
        live.signal(signal.SIGKILL)
        live.finish()
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        server.join(30)
    evs = events(out)
    from_feed = [e for e in evs if e.source == "binance-ws"]
    assert len(from_feed) >= acked, (len(from_feed), acked)
    assert [e.seq for e in evs] == list(range(1, len(evs) + 1))
