"""Event lag of the live Binance feed into a real run log, and its memory over an hour of traffic.

    .venv/bin/python benchmarks/bench_live_lag.py [--rate 5000] [--seconds 20] [--rounds 3] [--paths ...]
        [--loop uvloop|asyncio] [--hour-frames 350000] [--skip-memory] [--parser]

A loopback ``BinancePlayback`` (live/playback.py) in a *separate process* plays the real recording
(``binance-ethusdt-ws-2024-08-08``, 33,617 socket frames, repeated) at ``--rate`` frames/s; this
process runs ``live.binance_source.BinanceSource`` into ``emit``. One Binance frame is one event.

* **lag, no recording**: ``emit`` only counts; lag = time ``emit`` was called minus the event's
  ``ts`` (the runner's clock when the frame was read off the socket): the feed's own queueing.
* **lag, recorded**: ``emit`` is ``EventLog.append`` of a real run log (adapters/eventlog.py, its
  default group commit: 16,384 events or 200 ms, whichever first, fsync'd by SQLite); lag = the
  time the commit holding the event returned minus its ``ts``. Also with ``max_delay_ms`` 20 and 5,
  the knob that trades commits per second for lag; and with no timer, the feed's ``after_batch``
  hook committing after each pump turn (<= 64 events, or when the queue ran dry): what a runner
  can do on its own loop; and the ``LiveRunner`` itself (``run_runner``: engine, metrics, the run's
  log with every source's batches tied to its commit, as ``tapedeck live`` runs it), twice: with
  the feed's turns committed on the loop's thread (``runner-sync``, ``after_batch`` alone: the
  runner before the pipelined commit) and pipelined (``runner``: ``ack_after``, the log's
  ``commit_async`` on its committer thread, what the runner does now).
  "Recording adds" = recorded minus no-recording.
* **rate reached**: market events over the span of their receive times (what the client kept up
  with; below the offered rate when it falls behind and the backlog waits in the socket).
* **CPU**: CPU seconds per event of this process (every thread: reader, committer, timer) and of
  the playback server's process, both on the same 2 cores; ``--rounds`` interleaves the paths
  and prints medians (and each round).
* The event loop is uvloop, as ``tapedeck live`` runs (``live.runner.run_prepared``).
* ``--parser``: only the CPU per frame of the frame parser over the recording (the live parser's
  typed fast path, and the general path alone).
* **memory**: RSS of this process while an hour-equivalent of the recording's traffic (its 97
  frames/s x 3,600 s = ``--hour-frames``) streams into a real log as fast as the feed takes it
  (no pacing), sampled at every tenth; the bound is what the feed holds: the queue
  (``queue_limit`` events) and the parser's depth positions; the log's own pending list is
  committed every 200 ms. Growth beyond the first tenth is printed.

"Source timestamp" is the receive time on this side of the loopback socket (spot bookTicker
frames carry no venue time); the network and the server's send are not in the figures.
Figures from a 2-core machine shared with other jobs: compare runs on the same machine only.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT.parent))

from tapedeck.adapters.eventlog import EventLog, Manifest  # noqa: E402
from tapedeck.domain import events as ev  # noqa: E402
from tapedeck.live.base import Backoff  # noqa: E402
from tapedeck.live.binance_source import BinanceSource  # noqa: E402
from tapedeck.live.playback import BINANCE_RECORDING, BinancePlayback, read_frames, recording  # noqa: E402


def _serve(conn: Any, rate: float, repeat: int) -> None:
    async def main() -> None:
        frames = read_frames(recording(BINANCE_RECORDING))
        async with BinancePlayback(frames, rate=rate, repeat=repeat) as pb:
            conn.send((pb.url, pb.depth_url, len(pb.frames)))
            await pb.done.wait()
            conn.send(("done", pb.sent))
            await asyncio.sleep(3600)

    asyncio.run(main())


class TimedLog(EventLog):
    """The real log, noting when each group commit returned (the lag's end)."""

    commits: list[tuple[int, int, int]]

    def _commit_pending(self) -> None:
        first = self._pending_first
        super()._commit_pending()
        self.commits.append((first, self._pending_first, time.time_ns()))


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _pct(xs: list[int], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] / 1e6 if xs else float("nan")


async def _feed(url: str, emit: Any, n_frames: int, pipe: Any, *, progress: Any = None,
                after_batch: Any = None) -> BinanceSource:
    src = BinanceSource("bench", url, backoff=Backoff(0.01, 0.1, seed=1), after_batch=after_batch)
    stop = asyncio.Event()
    task = asyncio.create_task(src.run(emit, stop))
    loop = asyncio.get_running_loop()
    while src.stats.frames < n_frames + 1:
        await asyncio.sleep(0.05)
        if progress is not None:
            progress(src)
        if pipe.poll() and task.done():
            break
    stop.set()
    await task
    del loop
    return src


def _server(rate: float, frames: int) -> tuple[Any, Any, str, int]:
    """The playback server in its own process, repeating the recording for ``frames``: (process,
    pipe, url, frames it holds)."""
    parent, child = mp.Pipe()
    proc = mp.Process(target=_serve, args=(child, rate, frames // 33_617 + 1), daemon=True)
    proc.start()
    url, _, total = parent.recv()
    return proc, parent, url, total


MARKET = (ev.QuoteUpdated, ev.TradePrinted, ev.BookDepthUpdated)  # one a socket frame (the rate's span)


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (/proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _figures(mode: str, lags: list[int], ts: list[int], wall: float, cpu: float, server_cpu: float,
             **extra: Any) -> dict[str, Any]:
    """One row: lag percentiles, the rate reached (market events over the span of their receive times) and
    the CPU per event of this process (all its threads) and of the playback server."""
    span = (max(ts) - min(ts)) / 1e9 if len(ts) > 1 else float("nan")
    n = len(lags)
    return {"mode": mode, "events": n, "wall_s": wall, "rate": (len(ts) - 1) / span if span else float("nan"),
            "p50_ms": _pct(lags, 0.50), "p99_ms": _pct(lags, 0.99), "max_ms": max(lags) / 1e6 if lags else float("nan"),
            "cpu_us": cpu / n * 1e6 if n else float("nan"), "server_cpu_us": server_cpu / n * 1e6 if n else float("nan"),
            **extra}


def run_lag(rate: float, seconds: float, mode: str, max_delay_ms: float | None) -> dict[str, Any]:
    n = int(rate * seconds)
    proc, parent, url, total = _server(rate, n)
    cpu0, server0 = time.process_time(), _proc_cpu(proc.pid)
    tmp = tempfile.mkdtemp(prefix="bench-live-")
    lags: list[int] = []
    ts_by_seq: list[int] = [0]
    ts_of_frames: list[int] = []
    log: TimedLog | None = None
    if mode == "none":
        def emit(e: ev.Event) -> None:
            lags.append(time.time_ns() - e.ts)
    else:
        log = TimedLog.create(Path(tmp) / "run.db", Manifest(run_id="", mode="live"),
                              max_delay_ms=max_delay_ms if mode == "recorded" else None)
        log.commits = []
        append = log.append

        def emit(e: ev.Event) -> None:
            ts_by_seq.append(e.ts)
            if type(e) in MARKET:
                ts_of_frames.append(e.ts)
            append(e)
    t0 = time.perf_counter()
    flush = log.flush if (log is not None and mode == "turn") else None
    seen: list[int] = []
    if log is None:
        counted = emit

        def emit(e: ev.Event) -> None:  # noqa: F811 - the same, noting a frame's receive time
            if type(e) in MARKET:
                seen.append(e.ts)
            counted(e)
    src = _run_loop(_feed(url, emit, min(n, total), parent, after_batch=flush))
    wall = time.perf_counter() - t0
    if log is not None:
        log.flush()
        for first, end, at in log.commits:
            lags.extend(at - ts_by_seq[s] for s in range(first, end))
        commits = len(log.commits)
        log.close()
        seen = ts_of_frames
    else:
        commits = 0
    cpu, server_cpu = time.process_time() - cpu0, _proc_cpu(proc.pid) - server0
    proc.terminate()
    proc.join()
    return _figures(mode, lags, seen, wall, cpu, server_cpu, max_delay_ms=max_delay_ms, commits=commits,
                    conflated=src.queue.conflated, dropped=src.queue.dropped, queue_high=src.queue.high)


def run_runner(rate: float, seconds: float, pipelined: bool = True) -> dict[str, Any]:
    """The whole live path: ``tapedeck live``'s ``LiveRunner`` (engine, metrics, the run's log with the
    sources' batches tied to its commit, its 5 ms timer) over the same feed; lag = the commit holding
    an input returned minus its ``ts``. ``pipelined``: the feed's turns commit off the loop's thread
    (``ack_after``, what the runner does); else each turn commits on the loop's thread (``after_batch``
    alone, the runner before)."""
    import tapedeck.live.runner as runner_mod
    from tapedeck.live.config import load_live_config

    n = int(rate * seconds)
    proc, parent, url, total = _server(rate, n)
    cpu0, server0 = time.process_time(), _proc_cpu(proc.pid)
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-runner-"))
    cfg = tmp / "live.toml"
    cfg.write_text(f'[risk]\ndefault_max_notional = 1\ndefault_max_outstanding = 1\n[ops]\nenabled = false\n'
                   f'[[sources]]\nkind = "binance"\nname = "bench"\nurl = "{url}"\nsymbols = ["ETHUSDT"]\n')
    created: list[TimedLog] = []

    class Logged(TimedLog):
        @classmethod
        def create(cls, *a: Any, **k: Any) -> "Logged":
            log = super().create(*a, **k)
            log.commits = []
            created.append(log)
            return log

    saved = runner_mod.EventLog
    runner_mod.EventLog = Logged  # type: ignore[misc]
    try:
        runner = runner_mod.LiveRunner(load_live_config(str(cfg), environ={}), out=str(tmp / "run.db"),
                                       signals=False).prepare()
    finally:
        runner_mod.EventLog = saved  # type: ignore[misc]
    src = runner.sources[0][1]
    if not pipelined:
        src.ack_after = None

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(runner.run())
        while src.stats.frames < min(n, total) + 1 and not task.done():
            await asyncio.sleep(0.05)
            if parent.poll():
                break
        runner.stop()
        await task

    t0 = time.perf_counter()
    _run_loop(main())
    wall = time.perf_counter() - t0
    cpu, server_cpu = time.process_time() - cpu0, _proc_cpu(proc.pid) - server0
    log = created[0]
    ts = {e.seq: e.ts for e in EventLog.open(tmp / "run.db").events() if e.source == "binance-ws" and e.KIND == ev.INPUT}
    lags = [at - ts[s] for first, end, at in log.commits for s in range(first, end) if s in ts]
    proc.terminate()
    proc.join()
    frames = [e.ts for e in EventLog.open(tmp / "run.db").events() if type(e) in MARKET]
    return _figures("runner" if pipelined else "runner-sync", lags, frames, wall, cpu, server_cpu,
                    max_delay_ms=None, commits=len(log.commits), conflated=src.queue.conflated,
                    dropped=src.queue.dropped, queue_high=src.queue.high, batch_commits=runner.batch_commits)


LOOP = "uvloop"  # what ``tapedeck live`` runs on (``live.runner.run_prepared``); --loop asyncio for the stdlib's


def _run_loop(coro: Any) -> Any:
    if LOOP == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def run_memory(frames: int) -> dict[str, Any]:
    repeat = frames // 33_617 + 1
    parent, child = mp.Pipe()
    proc = mp.Process(target=_serve, args=(child, 0.0, repeat), daemon=True)
    proc.start()
    url, _, total = parent.recv()
    tmp = tempfile.mkdtemp(prefix="bench-live-mem-")
    log = EventLog.create(Path(tmp) / "run.db", Manifest(run_id="", mode="live"))
    samples: list[tuple[int, int]] = []
    step = frames // 10

    def progress(src: BinanceSource) -> None:
        if not samples or src.stats.frames >= samples[-1][0] + step:
            samples.append((src.stats.frames, _rss_kb()))

    t0 = time.perf_counter()
    src = _run_loop(_feed(url, log.append, min(frames, total), parent, progress=progress))
    wall = time.perf_counter() - t0
    samples.append((src.stats.frames, _rss_kb()))
    log.close()
    size = sum(p.stat().st_size for p in Path(tmp).iterdir())
    proc.terminate()
    proc.join()
    return {"frames": src.stats.frames, "wall_s": wall, "samples": samples, "log_bytes": size,
            "queue_high": src.queue.high, "queue_limit": src.queue.limit, "conflated": src.queue.conflated,
            "dropped": src.queue.dropped}


def run_parser(repeat: int = 5) -> dict[str, float]:
    """CPU per frame (this thread's, best of ``repeat``) of the live frame parser over the whole
    recording, as the feed calls it (``FrameParser.parse``: the typed fast path, else the general
    one), and of the general path alone (``_frame`` over the decoded dict)."""
    from tapedeck.adapters import binance_ws as bw

    bodies = [f.body.encode() for f in read_frames(recording(BINANCE_RECORDING))]

    def live() -> None:
        p = bw.FrameParser(bw.SPOT, "ETHUSDT")
        for i, b in enumerate(bodies):
            p.parse(b, 1_723_161_254_024_619_568 + i, "bench")

    def general() -> None:
        books = bw._Books()
        for i, b in enumerate(bodies):
            try:
                bw._frame(bw._object(b), 1_723_161_254_024_619_568 + i, bw.SPOT, False, "ETHUSDT", books)
            except bw.FrameError:
                pass

    out = {}
    for name, fn in (("live parser (fast path)", live), ("general path only", general)):
        best = float("inf")
        for _ in range(repeat):
            t = time.thread_time()
            fn()
            best = min(best, time.thread_time() - t)
        out[name] = best / len(bodies) * 1e6
    return out


NAMES = {"none": "emit only (no recording)", "turn": "recorded, commit per pump turn",
         "runner-sync": "LiveRunner, commit on loop thread", "runner": "LiveRunner, pipelined commit"}


def _name(r: dict[str, Any]) -> str:
    if r["mode"] in NAMES:
        return NAMES[r["mode"]]
    return f"recorded, commit <= {r['max_delay_ms']:.0f} ms"


def main() -> None:
    global LOOP
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=5000.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds of every path; medians printed")
    ap.add_argument("--paths", default="none,recorded200,recorded20,turn,runner-sync,runner",
                    help="which rows, comma-separated")
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    ap.add_argument("--hour-frames", type=int, default=350_000, help="frames of an hour of the recording's traffic")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--parser", action="store_true", help="only the frame parser's CPU per frame, then exit")
    args = ap.parse_args()
    LOOP = args.loop
    if args.parser:
        for name, us in run_parser().items():
            print(f"{name}: {us:.2f} us of CPU per frame (best of 5 over the recording; load average "
                  f"{os.getloadavg()[0]:.1f})")
        return
    print(f"live Binance feed lag at {args.rate:,.0f} frames/s for {args.seconds:.0f} s, {args.rounds} round(s), "
          f"{LOOP} (loopback playback in another process; cpu count {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f})")
    paths = args.paths.split(",")
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
    for _ in range(args.rounds):
        for p in paths:
            if p == "none":
                r = run_lag(args.rate, args.seconds, "none", None)
            elif p.startswith("recorded"):
                r = run_lag(args.rate, args.seconds, "recorded", float(p[len("recorded"):]))
            elif p == "turn":
                r = run_lag(args.rate, args.seconds, "turn", None)
            else:
                r = run_runner(args.rate, args.seconds, pipelined=p == "runner")
            runs[p].append(r)
    keys = ("events", "rate", "p50_ms", "p99_ms", "max_ms", "cpu_us", "server_cpu_us", "commits")
    med = {p: {k: statistics.median(r[k] for r in rs) for k in keys} for p, rs in runs.items()}
    print(f"{'path (median of rounds)':34} {'events':>8} {'ev/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'commits':>7} {'cpu us/ev':>9} {'server':>7} {'dropped':>7}")
    for p, m in med.items():
        dropped = max(r["dropped"] for r in runs[p])
        print(f"{_name(runs[p][0]):34} {m['events']:>8,.0f} {m['rate']:>7,.0f} {m['p50_ms']:>8.2f} {m['p99_ms']:>8.2f} "
              f"{m['max_ms']:>8.1f} {m['commits']:>7.0f} {m['cpu_us']:>9.1f} {m['server_cpu_us']:>7.1f} {dropped:>7}")
        if args.rounds > 1:
            print(f"{'':34}   rounds: " + "; ".join(f"{r['rate']:,.0f}/s {r['p50_ms']:.2f}/{r['p99_ms']:.2f} ms"
                                                   for r in runs[p]))
    if "none" in med:
        base = med["none"]
        for p, m in med.items():
            if p != "none":
                print(f"recording adds ({_name(runs[p][0])}): p50 +{m['p50_ms'] - base['p50_ms']:.2f} ms, "
                      f"p99 +{m['p99_ms'] - base['p99_ms']:.2f} ms")
    print(f"load average after the lag runs: {os.getloadavg()[0]:.1f}")
    if not args.skip_memory:
        m = run_memory(args.hour_frames)
        first, last = m["samples"][1] if len(m["samples"]) > 1 else m["samples"][0], m["samples"][-1]
        print(f"\nmemory, an hour-equivalent ({m['frames']:,} frames, {m['wall_s']:.0f} s unpaced) into a real log "
              f"({m['log_bytes'] / 1e6:.0f} MB): RSS by frames read:")
        print("  " + ", ".join(f"{f:,}: {kb / 1024:.0f} MB" for f, kb in m["samples"]))
        print(f"  growth after the first tenth: {(last[1] - first[1]) / 1024:+.1f} MB; queue high {m['queue_high']:,} of "
              f"{m['queue_limit']:,} (conflated {m['conflated']:,}, dropped {m['dropped']:,})")


if __name__ == "__main__":
    main()
