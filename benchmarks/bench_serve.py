"""``tapedeck serve`` under load on loopback: latency p50/p99 and requests/s with 50 cached pools.

The server (runtime/serve.py: Starlette on uvicorn, httptools, uvloop, precomputed bytes) runs in a
subprocess pinned to core 0 (``taskset``) over a cache of 50 pools in 10 pairs (the world of
``bench_arb_finder.py``); the load generator runs pinned to core 1: ``wrk --latency`` closed loop
(as fast as the server answers) and ``hey -q`` paced at ``--rate`` requests/s (latency at a
steady offered load), on ``GET /prices/{pair}``, ``GET /prices`` and ``POST /scan-arbitrage``.
Both are Debian packages (``make loadgen`` installs them, as root); without either this prints why and
exits 0. Each line also gives the server's CPU time per request (``/proc/<pid>/stat`` utime +
stime over the run, divided by the requests answered): on a shared machine the latency counts the
time the server waits for its core, the CPU time does not (1e6 / it is what one core could serve).
``--connections`` takes a comma-separated list (wrk closed loop at each).
Usage: python benchmarks/bench_serve.py [--seconds 8] [--connections 1,4,32] [--rate 5000]
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def cache_of_50():  # type: ignore[no-untyped-def]
    from bench_arb_finder import addr, world

    from tapedeck.runtime.serve import PoolCache, Token

    venues, events, numeraire = world(random.Random(1))
    tokens = {}
    for v in venues:
        for t in (v.token0, v.token1):
            name = {numeraire: "USDC", addr(0xC0): "WETH"}.get(t, f"TK{int(t, 16) & 0xFFFF:X}")
            tokens.setdefault(t, Token(t, name, 6 if name == "USDC" else 18))
    cache = PoolCache(venues, tokens, gas_price_wei=15 * 10**9)
    cache.finder.native = {"ethereum": addr(0xC0)}
    for e in events:
        cache.feed(e, refresh=False)
    cache.refresh()
    return cache


def serve(port: int) -> None:
    import uvicorn

    from tapedeck.runtime.serve import build_app, uvicorn_config

    cache = cache_of_50()
    print(f"ready {len(cache.venues)} pools {len(cache.finder.pairs)} pairs {cache.known_pairs()[1]}", flush=True)
    uvicorn.Server(uvicorn_config(build_app(cache), port=port)).run()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (``/proc/<pid>/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_per_request(pid: int, run, *args) -> str:  # type: ignore[no-untyped-def]
    """``run(*args)`` (a load generator's summary and how many requests it completed), with the
    server's CPU microseconds per request appended."""
    hz = os.sysconf("SC_CLK_TCK")
    before = cpu_ticks(pid)
    text, n = run(*args)
    used = (cpu_ticks(pid) - before) / hz
    return text + (f"  server CPU {used * 1e6 / n:6.1f} us/req" if n else "")


def wrk(url: str, seconds: int, conns: int, body: str | None) -> tuple[str, int]:
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        if body is not None:
            f.write(f'wrk.method = "POST"\nwrk.body = {body!r}\nwrk.headers["Content-Type"] = "application/json"\n')
        script = f.name
    out = subprocess.run(cmd + ["-s", script, url], capture_output=True, text=True, timeout=seconds + 30).stdout
    os.unlink(script)
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    rps = re.search(r"Requests/sec:\s+(\S+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    done = re.search(r"(\d+) requests in", out)
    return (f"p50 {lat.get('50', '?'):>8}  p99 {lat.get('99', '?'):>8}  {float(rps.group(1)) if rps else 0:>9,.0f} req/s"
            + (f"  ({errors.group(0)})" if errors else "")), int(done.group(1)) if done else 0


def hey(url: str, seconds: int, rate: int, body: str | None) -> tuple[str, int]:
    workers = 10
    cmd = ["taskset", "-c", "1", "hey", "-z", f"{seconds}s", "-c", str(workers), "-q", str(rate // workers)]
    if body is not None:
        cmd += ["-m", "POST", "-T", "application/json", "-d", body]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 30).stdout
    lat = dict(re.findall(r"^\s+(50|99)%% in (\S+) secs", out.replace("%", "%%"), re.M))
    rps = re.search(r"Requests/sec:\s+(\S+)", out)
    codes = re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)

    def ms(s: str | None) -> str:
        return f"{float(s) * 1000:.3f}ms" if s else "?"
    return (f"p50 {ms(lat.get('50')):>8}  p99 {ms(lat.get('99')):>8}  {float(rps.group(1)) if rps else 0:>9,.0f} req/s"
            f"  ({', '.join(f'{n} x {c}' for c, n in codes)})"), sum(int(n) for _, n in codes)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", default="1,4,32", help="wrk connections, comma-separated")
    ap.add_argument("--rate", type=int, default=5000, help="hey's paced offered load, requests/s")
    ap.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve is not None:
        serve(a.serve)
        return
    have = [t for t in ("wrk", "hey") if shutil.which(t)]
    if not have:
        print("bench_serve: skipped: neither wrk nor hey is installed (make loadgen, as root)")
        return
    if not shutil.which("taskset"):
        print("bench_serve: skipped: taskset (util-linux) is not installed")
        return
    port = free_port()
    server = subprocess.Popen(["taskset", "-c", "0", sys.executable, __file__, "--serve", str(port)],
                              stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        pair = line.split()[-1]
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        print(f"serve: {line.strip()}; server on core 0, load on core 1, {os.cpu_count()} cores; {a.seconds}s each")
        targets = [("GET /prices/" + pair, f"{base}/prices/{pair}", None), ("GET /prices", f"{base}/prices", None),
                   ("POST /scan-arbitrage", f"{base}/scan-arbitrage", '{"threshold_pct": 0}')]
        pid = server.pid
        for name, url, body in targets:
            if "wrk" in have:
                for c in (int(x) for x in str(a.connections).split(",")):
                    line = cpu_per_request(pid, wrk, url, a.seconds, c, body)
                    print(f"  {name:<22} wrk -c{c:<3} (closed loop): {line}", flush=True)
            if "hey" in have:
                line = cpu_per_request(pid, hey, url, a.seconds, a.rate, body)
                print(f"  {name:<22} hey paced {a.rate:,}/s:      {line}", flush=True)
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
