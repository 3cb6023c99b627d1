"""Operating a live run: ``/health`` and ``/metrics`` answer on 127.0.0.1 with the run's own
numbers (the metrics read from the recorded events), and the kill switch, by HTTP and by SIGUSR1,
is a recorded ``KillSwitchSet`` after which no intent is approved; the log still verifies."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tapedeck.domain import events as ev
from tapedeck.live.ops import LiveMetrics
from tapedeck.live.runner import LiveRunner
from tests.test_live_runner import BASE, count, drive, events, fake_run, settings, verified
from tests.test_live_runner_fakes import VENUE

OPS = BASE.replace("[ops]\nenabled = false", "[ops]\nport = 0")


def http(port: int, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


async def aget(runner: LiveRunner, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    assert runner.ops_port
    return await asyncio.to_thread(http, runner.ops_port, path, body)


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_health_and_metrics_answer_on_loopback_with_the_runs_numbers(tmp_path: Path) -> None:
    cfg, out = fake_run(tmp_path, 12, OPS)
    runner = LiveRunner(settings(cfg), out=str(out), signals=False).prepare()
    seen: dict[str, Any] = {}

    async def scrape(r: LiveRunner) -> None:
        assert r.ops is not None and r.ops.sock.getsockname()[0] == "127.0.0.1"
        status, body = await aget(r, "/health")
        seen["health"] = json.loads(body)
        status2, seen["metrics"] = await aget(r, "/metrics")
        assert status == status2 == 200

    done = lambda r: (r.sources[0][1].next_i >= 12 and r.loop.stats.by_type.get("OpportunityDetected", 0) >= 4  # noqa: E731
                      and not r.engine.risk.open_intents)
    drive(runner, done, before_stop=scrape)
    evs = events(out)
    h = seen["health"]
    q = h["sources"]["quotes"]
    assert q["connected"] is True and q["reconnects"] == 0 and q["restarts"] == 0
    assert q["last_event_age_ms"] is not None and q["last_event_age_ms"] >= 0
    assert q["adapter"] == {"emitted": 12, "restored_from": None, "url": "ws://127.0.0.1/..."}  # URLs cut
    assert h["mode"] == "paper" and h["kill_switch"] == {"engaged": False, "reason": ""}
    assert h["circuits"] == {"buyer": "closed"} and h["intents_in_flight"] == 0
    assert h["store"]["last_seq"] == len(evs) and h["store"]["lag_events"] >= 0
    assert h["recorded"] == len(evs)
    m = samples(seen["metrics"])
    assert m[("tapedeck_intents_total", (("venue", VENUE), ("verdict", "intended")))] == count(evs, ev.OrderIntended) == 4
    assert m[("tapedeck_events_total", (("kind", "input"), ("type", "QuoteUpdated")))] == 12
    assert m[("tapedeck_events_total", (("kind", "execution"), ("type", "OrderFilled")))] == count(evs, ev.OrderFilled)
    assert m[("tapedeck_decisions_total", (("type", "TimerRequested"),))] == 4
    assert m[("tapedeck_event_lag_seconds_count", (("source", "quotes"),))] == 13  # 12 quotes + connected
    assert m[("tapedeck_source_connected", (("source", "quotes"),))] == 1
    assert m[("tapedeck_kill_switch", ())] == 0


def test_kill_switch_by_http_stops_new_intents_and_is_recorded(tmp_path: Path) -> None:
    cfg, out = fake_run(tmp_path, 0, OPS)
    runner = LiveRunner(settings(cfg), out=str(out), signals=False).prepare()
    seen: dict[str, Any] = {}

    async def kill_then_watch(r: LiveRunner) -> None:
        status, body = await aget(r, "/kill", b'{"reason": "test"}')
        assert status == 200 and json.loads(body) == {"kill_switch": True, "reason": "test"}
        for _ in range(20_000):
            if r.loop.stats.by_type.get("IntentRejected", 0) >= 3:
                break
            await asyncio.sleep(0.001)
        seen["health"] = json.loads((await aget(r, "/health"))[1])
        seen["metrics"] = samples((await aget(r, "/metrics"))[1])
        status, body = await aget(r, "/kill", b"[1]")
        assert status == 400

    drive(runner, lambda r: r.loop.stats.by_type.get("OrderIntended", 0) >= 2, before_stop=kill_then_watch)
    evs = events(out)
    kills = [e for e in evs if type(e) is ev.KillSwitchSet]
    assert [(k.engaged, k.reason, k.source) for k in kills] == [(True, "test", "operator:http")]
    after = [e for e in evs if e.seq > kills[0].seq]
    assert count(after, ev.OrderIntended) == 0 and count(after, ev.IntentRejected) >= 3
    assert all(e.reason == "kill switch engaged (test)" for e in after if type(e) is ev.IntentRejected)
    assert seen["health"]["kill_switch"] == {"engaged": True, "reason": "test"}
    assert seen["metrics"][("tapedeck_kill_switch", ())] == 1
    assert EventLog_ended(out) == "clean" and verified(out).status == "verified"


def test_kill_switch_by_sigusr1_and_release_by_http(tmp_path: Path) -> None:
    cfg, out = fake_run(tmp_path, 0, OPS)
    runner = LiveRunner(settings(cfg), out=str(out), signals=True).prepare()

    async def signal_then_release(r: LiveRunner) -> None:
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(20_000):
            if r.loop.stats.by_type.get("IntentRejected", 0) >= 2:
                break
            await asyncio.sleep(0.001)
        await aget(r, "/kill", b'{"engaged": false, "reason": "resume trading"}')
        n = r.loop.stats.by_type.get("OrderIntended", 0)
        for _ in range(20_000):
            if r.loop.stats.by_type.get("OrderIntended", 0) > n:
                break
            await asyncio.sleep(0.001)

    drive(runner, lambda r: r.loop.stats.by_type.get("OrderIntended", 0) >= 1, before_stop=signal_then_release)
    evs = events(out)
    kills = [(k.engaged, k.source, k.reason) for k in evs if type(k) is ev.KillSwitchSet]
    assert kills == [(True, "operator:signal", "SIGUSR1"), (False, "operator:http", "resume trading")]
    released = [e.seq for e in evs if type(e) is ev.KillSwitchSet][1]
    assert count([e for e in evs if e.seq > released], ev.OrderIntended) >= 1
    assert verified(out).status == "verified"


def EventLog_ended(path: Path) -> str:
    from tapedeck.adapters.eventlog import EventLog

    return EventLog.open(path).manifest.ended


def test_a_busy_ops_port_is_one_error_before_any_run_exists(tmp_path: Path) -> None:
    import socket

    from tapedeck.live.runner import RunnerError

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        cfg, out = fake_run(tmp_path, 0, OPS.replace("port = 0", f"port = {busy.getsockname()[1]}"))
        with pytest.raises(RunnerError, match=f"^ops server: cannot listen on 127.0.0.1:{busy.getsockname()[1]}: "):
            LiveRunner(settings(cfg), out=str(out), signals=False).prepare()
        assert not out.exists()
    finally:
        busy.close()


def test_urls_in_an_adapters_health_are_cut_to_their_host() -> None:
    from tapedeck.live.ops import redacted

    assert redacted({"a": "wss://user:pw@mainnet.infura.io/v3/KEY123?x=1", "b": ["https://h:8545"], "n": 3,
                     "c": {"d": "http://127.0.0.1:9000/"}}) == \
        {"a": "wss://mainnet.infura.io/...", "b": ["https://h:8545"], "n": 3, "c": {"d": "http://127.0.0.1:9000"}}


def test_metrics_are_computed_from_the_recorded_events() -> None:
    m = LiveMetrics(wall_ns=lambda: 5 * 10**9)
    WAD = 10**18

    def it(seq: int, side: str, venue: str = "ethereum", client: str = "") -> ev.OrderIntended:
        return ev.OrderIntended(seq=seq, ts=1, strategy="s", venue=venue, instrument="x", side=side, amount=1,
                                notional=100_000_000, client_id=client)

    stream: list[ev.Event] = [
        ev.AaveAccountObserved(seq=1, ts=1, chain="ethereum", block=1, user="0xa", total_collateral_base=1,
                               total_debt_base=1, liquidation_threshold=1, health_factor=WAD * 98 // 100),
        ev.AaveAccountObserved(seq=2, ts=1, chain="ethereum", block=1, user="0xb", total_collateral_base=1,
                               total_debt_base=1, liquidation_threshold=1, health_factor=WAD * 3),
        it(3, "arb"),
        ev.OrderFilled(seq=4, ts=2, source="paper", intent=3, venue="ethereum", amount=112_500_000,
                       notional=100_000_000, fee=500_000, fee_asset="USDC"),
        it(5, "liquidate", "aave-v3:ethereum"),
        ev.TransactionSubmitted(seq=6, ts=2, intent=5, chain="ethereum", tx="0x1", sender="0xs", nonce=0, gas=1,
                                max_fee=1, max_priority_fee=1),
        ev.TransactionSubmitted(seq=7, ts=2, intent=5, chain="ethereum", tx="0x2", sender="0xs", nonce=1, gas=1,
                                max_fee=1, max_priority_fee=1),
        ev.TransactionIncluded(seq=8, ts=3, intent=5, chain="ethereum", tx="0x1", block=2, index=0, status="reverted",
                               gas_used=1, gas_price=1),
        ev.OrderFailed(seq=9, ts=3, intent=5, venue="aave-v3:ethereum", reason="reverted"),
        ev.PerpExitDecided(seq=10, ts=4_000_000_000, strategy="s", venue="hl", instrument="ETH", side="sell",
                           position=1, size_decimals=4, limit_price=1, price_decimals=1, entry_price=1, path="timer",
                           reason="time", deviation_ppm=0, latency_ns=250_000_000, qualified_cause=1, held_ns=1,
                           client_id="exit-1"),
        it(11, "sell", "hl", "exit-1"),
        ev.OrderFilled(seq=12, ts=4_050_000_000, source="hl", intent=11, venue="hl", amount=1, notional=1, fee=0),
        ev.CircuitBreakerChanged(seq=13, ts=5, strategy="s", state="open", failures=3, reason="reverted"),
        ev.IntentRejected(seq=14, ts=5, strategy="s", venue="ethereum", notional=1, reason="kill"),
    ]
    for e in stream:
        m.observe(e)
    s = samples(m.exposition(store_lag=7))
    assert s[("tapedeck_health_factor_bucket", (("le", "1.0"),))] == 1
    assert s[("tapedeck_health_factor_count", ())] == 2
    assert s[("tapedeck_arbitrages_total", (("outcome", "intended"),))] == 1
    assert s[("tapedeck_arbitrages_total", (("outcome", "filled"),))] == 1
    # 112.5 - 100 - 0.5 = 12 USDC (a histogram with negative buckets exposes no _sum: read its buckets)
    arb = (("execution", "paper"), ("kind", "arbitrage"))
    assert s[("tapedeck_profit_bucket", (*arb, ("le", "10.0")))] == 0
    assert s[("tapedeck_profit_bucket", (*arb, ("le", "100.0")))] == 1
    assert s[("tapedeck_liquidations_total", (("outcome", "failed"),))] == 1
    assert s[("tapedeck_pending_transactions", ())] == 1  # 0x2 still out
    assert s[("tapedeck_exit_trigger_to_flatten_seconds_sum", ())] == 0.3  # 4.05 s - (4 s - 0.25 s)
    assert s[("tapedeck_circuit_state", (("strategy", "s"),))] == 2
    assert s[("tapedeck_intents_total", (("venue", "ethereum"), ("verdict", "rejected")))] == 1
    assert s[("tapedeck_store_lag_events", ())] == 7
    assert s[("tapedeck_metrics_errors_total", ())] == 0
    # its own registry per run: a second run's metrics start from nothing
    assert samples(LiveMetrics().exposition(0))[("tapedeck_health_factor_count", ())] == 0


def test_a_liquidations_profit_is_valued_at_the_runs_named_eth_price() -> None:
    m = LiveMetrics(wall_ns=lambda: 5 * 10**9, eth_price="oracle:eth-usd")

    def it(seq: int, route: tuple[str, ...] = ()) -> ev.OrderIntended:
        return ev.OrderIntended(seq=seq, ts=1, strategy="liq", venue="aave-v3:ethereum", instrument="WETH/USDC",
                                side="liquidate", amount=1, notional=2_900_000_000, route=route)

    def fill(seq: int, intent: int, amount: int, source: str = "aave") -> ev.OrderFilled:
        return ev.OrderFilled(seq=seq, ts=2, source=source, intent=intent, venue="aave-v3:ethereum", amount=amount,
                              notional=2_900_000_000, fee=10**15, fee_asset="ETH")

    for e in (it(1), fill(2, 1, 10**18),  # before any price: counted as unpriced, not valued at 0
              ev.OracleUpdated(seq=3, ts=3, feed="eth-usd", chain="ethereum", round_id=1, answer=3_000 * 10**8,
                               decimals=8),
              it(4), fill(5, 4, 10**18),  # 1 WETH at 3000 - 2900 repaid - 0.001 ETH gas (3 USDC) = 97
              it(6, route=("0xpool",)), fill(7, 6, 0),  # through the executor: valued at its sale
              ev.InventoryChanged(seq=8, ts=3, intent=6, venue="aave-v3:ethereum", strategy="liq", asset="USDC",
                                  delta=2_950_000_000)):  # sold for 2950 - 2900 repaid = 50
        m.observe(e)
    s = samples(m.exposition(0))
    liq = (("execution", "executed"), ("kind", "liquidation"))
    assert s[("tapedeck_profit_bucket", (*liq, ("le", "+Inf")))] == 2
    assert s[("tapedeck_profit_bucket", (*liq, ("le", "10.0")))] == 0
    assert s[("tapedeck_profit_bucket", (*liq, ("le", "100.0")))] == 2
    assert m.profit[("liquidation", "executed")].sum == 97.0 + 50.0  # (no _sum is exposed: negative buckets)
    assert s[("tapedeck_unpriced_total", ())] == 1
    assert s[("tapedeck_liquidations_total", (("outcome", "filled"),))] == 3


def test_the_ops_endpoints_refuse_web_pages_foreign_hosts_and_huge_bodies() -> None:
    """A browser page (any POST it sends carries Origin, and a text/plain one needs no CORS preflight) cannot
    release or engage the kill switch; a Host that is not a loopback name (DNS rebinding: a hostile name
    resolved to 127.0.0.1) is refused while the server listens on loopback; a body is capped as it streams.
    Over real HTTP on loopback (http.client sends the Host given)."""
    from tapedeck.live.ops import KILL_BODY_LIMIT, build_app
    from tests.test_serve import Server

    calls: list[tuple[bool, str, str]] = []
    app = build_app(lambda: {"status": "ok"}, lambda: b"",
                    lambda engaged, reason, origin: calls.append((engaged, reason, origin)))
    release = b'{"engaged": false, "reason": "x"}'
    with Server(app) as s:
        here = f"127.0.0.1:{s.port}"
        status, _, body = s.request("POST", "/kill", release, {"Host": here, "Origin": "http://evil.example",
                                                               "Content-Type": "text/plain"})
        assert status == 403 and "web page" in json.loads(body)["error"] and calls == []
        status, _, body = s.request("POST", "/kill", release, {"Host": f"evil.example:{s.port}"})
        assert status == 403 and "loopback" in json.loads(body)["error"] and calls == []
        assert s.request("GET", "/health", None, {"Host": f"evil.example:{s.port}"})[0] == 403
        assert s.request("GET", "/metrics", None, {"Host": here, "Origin": "http://evil.example"})[0] == 403
        status, _, _ = s.request("POST", "/kill", b'{"reason": "' + b"x" * KILL_BODY_LIMIT + b'"}', {"Host": here})
        assert status == 413 and calls == []
        for host in (here, f"localhost:{s.port}", f"[::1]:{s.port}"):  # the operator's own tools
            assert s.request("POST", "/kill", release, {"Host": host})[0] == 200
    assert calls == [(False, "x", "operator:http")] * 3
    wide = build_app(lambda: {"status": "ok"}, lambda: b"", lambda *a: None, loopback=False)
    with Server(wide) as s:  # bound beyond loopback on purpose: any Host, still no web page
        assert s.request("GET", "/health", None, {"Host": f"10.0.0.5:{s.port}"})[0] == 200
        assert s.request("POST", "/kill", b"", {"Host": f"10.0.0.5:{s.port}", "Origin": "http://10.0.0.5"})[0] == 403
