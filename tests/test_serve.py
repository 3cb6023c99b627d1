"""``tapedeck serve``: the pool cache API over real HTTP on loopback (uvicorn in a thread, a free
port), from a log folded by the engine: health, prices, pairs, arbitrage scans checked against the
finder run independently on the same events, JSON errors, CORS, a live feed, and a concurrent load."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from click.testing import CliRunner

from tapedeck.adapters.eventlog import EventLog, Manifest
from tapedeck.cli import main
from tapedeck.domain import events as ev
from tapedeck.domain.state import MarketState
from tapedeck.runtime.serve import build_app, load_cache, uvicorn_config

JSON_TYPE = "application/json"
V2 = "0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc"  # USDC/WETH V2 (registry)
V3 = "0x88e6a0c2ddd26feeb64f039a2c41296fcb3f5640"  # USDC/WETH 0.05%
V3B = "0x8ad599c3a0ff1de082011efddc58f1908eb6e6d8"  # USDC/WETH 0.30%
USDT_V2 = "0x0d4a11d5eeaac28ec3f61d100daf4d40471f1852"  # WETH/USDT V2
T = 1_704_412_823 * 10**9
SP_2270 = 1663132957987881128134345656405165  # the V3 pool's price at the end of 2024-01-05 (~2269.37 USDC/WETH)
TICK_2270 = 199047


def day_events() -> list[ev.Event]:
    """Three USDC/WETH pools (V2 priced 1% above the V3 pools: a gap), a WETH/USDT pair, a CEX quote."""
    return [
        ev.V3Swapped(ts=T, source="t", pool=V3, block=1, tx="0x1", log_index=0, sender="", recipient="", amount0=0,
                     amount1=0, sqrt_price_x96=SP_2270, liquidity=11687005496855121730, tick=TICK_2270),
        ev.V3Swapped(ts=T + 1, source="t", pool=V3B, block=1, tx="0x2", log_index=1, sender="", recipient="", amount0=0,
                     amount1=0, sqrt_price_x96=SP_2270 + 10**28, liquidity=2 * 10**18, tick=TICK_2270),
        ev.V2ReservesSynced(ts=T + 2, source="t", pool=V2, block=1, reserve0=49_650_000 * 10**6,
                            reserve1=21_676_993016202145862202),
        ev.V2ReservesSynced(ts=T + 3, source="t", pool=USDT_V2, block=1, reserve0=10_000 * 10**18,
                            reserve1=22_700_000 * 10**6),
        ev.QuoteUpdated(ts=T + 4, source="t", venue="binance", instrument="ETHUSDT", bid=2269_00000000,
                        bid_size=5 * 10**8, ask=2269_01000000, ask_size=5 * 10**8, price_decimals=8, size_decimals=8),
    ]


@pytest.fixture()
def log_path(tmp_path):
    path = tmp_path / "day.db"
    log = EventLog.create(path, Manifest(run_id="", mode="import"))
    for e in day_events():
        log.append(e)
    log.close(ended="clean")
    return path


class Server:
    def __init__(self, app) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn_config(app, port=self.port))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "Server":
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            time.sleep(0.01)
        raise RuntimeError("uvicorn did not start")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def json(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
        status, headers, data = self.request(method, path, body)
        assert headers["content-type"] == "application/json"
        return status, json.loads(data)


def test_health_prices_and_pairs(log_path) -> None:
    cache = load_cache(log_path)
    with Server(build_app(cache)) as s:
        status, h = s.json("GET", "/health")
        assert status == 200 and h["status"] == "ok" and h["pools_cached"] == 4 and h["venues_cached"] == 5
        assert h["pairs"] == 2 and h["events"] == 5 and h["last_event_ts"] == T + 4
        assert h["last_event_age_ms"] >= (time.time_ns() - T - 4) // 10**6 - 60_000  # wall clock minus event time
        status, p = s.json("GET", "/prices")
        assert status == 200 and p["count"] == 5
        by_id = {e["id"]: e for e in p["pools"]}
        assert by_id[V2]["reserves"] == ["49650000000000", "21676993016202145862202"]
        want = Decimal(49_650_000) / Decimal("21676.993016202145862202")  # USDC per WETH, to 10 digits
        assert by_id[V2]["price"] == f"{want:.6f}" and by_id[V2]["price_of"] == "WETH in USDC"
        assert by_id[V3]["liquidity"] == "11687005496855121730" and by_id[V3]["tick"] == TICK_2270
        assert by_id[V3]["price"].startswith("2269.36")
        assert [by_id[i]["age_ms"] for i in (V3, V3B, V2)] == [0, 0, 0]  # ns apart: 0 ms behind the last event
        assert by_id["binance:ETHUSDT"]["bid"] == "2269.00000000" and by_id["binance:ETHUSDT"]["pair"] == "WETH-USDT"
        status, one = s.json("GET", "/prices/USDC-WETH")
        assert status == 200 and one["count"] == 3 and {e["id"] for e in one["pools"]} == {V2, V3, V3B}
        assert s.request("GET", "/prices/weth-usdc")[2] == s.request("GET", "/prices/USDC-WETH")[2]
        assert s.request("GET", f"/prices/{V3[:0]}0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48-"
                                "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2")[0] == 200
        status, err = s.json("GET", "/prices/DOGE-WETH")
        assert status == 404 and "unknown pair 'DOGE-WETH'" in err["error"] and "USDC-WETH" in err["error"]
        status, err = s.json("GET", "/nowhere")
        assert status == 404 and err["error"].startswith("no such path '/nowhere' (paths: GET /health,")
        for path in ("/prices/", "/health/", "/scan-arbitrage/"):  # no redirect with an empty body
            status, headers, data = s.request("GET", path)
            assert status == 404 and "location" not in headers and json.loads(data)["error"].startswith(
                f"no such path {path!r}"), path


def independent_opportunities() -> list:
    """The finder over a state folded here from the same events (not the server's)."""
    from tapedeck.adapters.registry import load_registry
    from tapedeck.runtime.serve import venues_for
    from tapedeck.domain.arb_finder import ArbFinder

    state = MarketState()
    for e in day_events():
        {ev.V3Swapped: state.on_v3, ev.V2ReservesSynced: state.on_v2, ev.QuoteUpdated: state.on_quote}[type(e)](e)
    venues, _ = venues_for([V3, V3B, V2, USDT_V2], [("binance", "ETHUSDT")], load_registry())
    return ArbFinder(venues, gas_price_wei=15 * 10**9).scan(state, T + 4)


def test_scan_arbitrage_answers_the_finder_and_filters_by_threshold(log_path) -> None:
    cache = load_cache(log_path)
    expected = independent_opportunities()
    assert expected  # the V2 pair is 1% above the V3 pools
    with Server(build_app(cache)) as s:
        status, r = s.json("POST", "/scan-arbitrage", b'{"threshold_pct": 0}')
        assert status == 200 and r["count"] == len(expected) == len(r["opportunities"])
        got = sorted((o["legs"][0]["id"], o["legs"][1]["id"], o["amount_in"], o["net_profit"]) for o in r["opportunities"])
        want = sorted((o.legs[0].venue_id, o.legs[1].venue_id, str(Decimal(o.amount_in).scaleb(-6)),
                       str(Decimal(o.net_profit).scaleb(-6))) for o in expected)
        assert got == want
        for o in r["opportunities"]:
            assert o["legs"][0]["sell"] == o["profit_token"] == "USDC" and o["legs"][0]["buy"] == "WETH"
            assert o["legs"][0]["amount_out"] == o["legs"][1]["amount_in"]
        pcts = sorted(float(o["profit_pct"]) for o in r["opportunities"])
        mid = (pcts[0] + pcts[-1]) / 2
        status, some = s.json("POST", "/scan-arbitrage", json.dumps({"threshold_pct": mid}).encode())
        assert some["count"] == sum(p >= mid for p in pcts) and some["threshold_pct"] == mid
        status, none = s.json("POST", "/scan-arbitrage", b'{"threshold_pct": 50}')
        assert status == 200 and none == {"count": 0, "threshold_pct": 50, "opportunities": []}
        status, only = s.json("POST", "/scan-arbitrage", b'{"threshold_pct": 0, "pair": "weth-usdc"}')
        assert only["count"] == r["count"]


@pytest.mark.parametrize("body, status, says", [
    (b"{not json", 400, "body is not JSON"),
    (b"", 400, "body is not JSON"),
    (b"[1]", 422, "must be a JSON object"),
    (b"{}", 422, "threshold_pct is required"),
    (b'{"threshold_pct": "1"}', 422, "must be a number"),
    (b'{"threshold_pct": -1}', 422, "must be a number"),
    (b'{"threshold_pct": true}', 422, "must be a number"),
    (b'{"threshold_pct": 1, "limit": 3}', 422, "unknown field(s): limit"),
    (b'{"threshold_pct": 1, "pair": 7}', 422, "pair must be text"),
    (b'{"threshold_pct": 1, "pair": "DOGE-WETH"}', 404, "unknown pair"),
    (b'{"threshold_pct": NaN}', 422, "must be a number of percent in 0..1000000"),
    (b'{"threshold_pct": 1e308}', 422, "must be a number of percent in 0..1000000"),
    # valid JSON, out of range: an integer too large for a float, and one past Python's 4300 digits
    (b'{"threshold_pct": 1' + b"0" * 309 + b"}", 422, "must be a number of percent in 0..1000000, got 1000"),
    (b'{"threshold_pct": 1' + b"0" * 5000 + b"}", 422, "(5001 digits)"),
    (b'{"threshold_pct": -1' + b"0" * 400 + b"}", 422, "must be a number of percent"),
])
def test_bad_requests_are_json_4xx(log_path, body, status, says) -> None:
    with Server(build_app(load_cache(log_path))) as s:
        got, err = s.json("POST", "/scan-arbitrage", body)
        assert got == status and says in err["error"] and err["status"] == status
        got, headers, data = s.request("GET", "/scan-arbitrage")
        assert got == 405 and headers["allow"] == "POST" and headers["content-type"] == JSON_TYPE
        assert json.loads(data) == {"error": "method not allowed: GET (allowed: POST)", "status": 405}


def raw(port: int, head: bytes, *chunks: bytes) -> tuple[int, dict, bytes]:
    """One request written as given (no client's own framing), the response read to the server's close."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(head)
        for chunk in chunks:
            c.sendall(chunk)
        data = b""
        while part := c.recv(65536):
            data += part
    status_line, _, rest = data.partition(b"\r\n")
    head_text, _, body = rest.partition(b"\r\n\r\n")
    headers = dict(line.decode().lower().split(": ", 1) for line in head_text.split(b"\r\n"))
    return int(status_line.split()[1]), headers, body


def test_a_body_over_the_limit_is_a_413_and_not_read(log_path) -> None:
    from tapedeck.runtime.serve import SCAN_BODY_LIMIT

    cache = load_cache(log_path)
    with Server(build_app(cache)) as s:
        at_limit = b'{"threshold_pct": 0' + b" " * (SCAN_BODY_LIMIT - 20) + b"}"
        assert len(at_limit) == SCAN_BODY_LIMIT and s.json("POST", "/scan-arbitrage", at_limit)[0] == 200
        status, err = s.json("POST", "/scan-arbitrage", at_limit + b" ")
        assert status == 413 and f"over the limit of {SCAN_BODY_LIMIT}" in err["error"] and err["status"] == 413
        # a gigabyte declared and none sent: answered at once from Content-Length, the connection closed
        post = b"POST /scan-arbitrage HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        status, headers, body = raw(s.port, post + b"Content-Length: 1000000000\r\n\r\n")
        assert status == 413 and headers["content-type"] == JSON_TYPE and headers["connection"] == "close"
        assert "body of 1000000000 bytes is over the limit" in json.loads(body)["error"]
        # chunked, no length: refused as it streams past the limit, the rest never sent
        chunk = b'{"threshold_pct": 0' + b" " * 4000
        status, headers, body = raw(s.port, post + b"Transfer-Encoding: chunked\r\n\r\n",
                                    *(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)))
        assert status == 413 and "more than" in json.loads(body)["error"] and headers["connection"] == "close"
        status, err = s.json("POST", "/scan-arbitrage", b"x" * 20 + b"\x00")
        assert status == 400  # a body under the limit is read and parsed as before
        # 300 spellings of one question (white space up to the limit): one answer kept, not 300
        for i in range(300):
            assert s.request("POST", "/scan-arbitrage", b'{"threshold_pct": 0.5' + b" " * (i * 27) + b"}")[0] == 200
        assert set(cache._scans[1]) == {(b"0", None), (b"0.5", None)}


def test_deep_nesting_is_a_4xx_whatever_the_recursion_limit(log_path) -> None:
    """Past the interpreter's recursion limit the parser gives up (400, not a RecursionError's 500);
    under a higher one (py_ecc, imported by other tests, sets 100,000) it parses: 422 for the shape."""
    import sys

    lists, objects = b"[" * 4000 + b"]" * 4000, b'{"a":' * 1300 + b"1" + b"}" * 1300
    before = sys.getrecursionlimit()
    try:
        with Server(build_app(load_cache(log_path))) as s:
            for limit, status, says in ((1000, 400, "body is not JSON this server reads: nested too deeply"),
                                        (100_000, 422, None)):
                sys.setrecursionlimit(limit)
                for body, shape in ((lists, "must be a JSON object"), (objects, "unknown field(s): a")):
                    got, err = s.json("POST", "/scan-arbitrage", body)
                    assert got == status and (says or shape) in err["error"], (limit, err)
    finally:
        sys.setrecursionlimit(before)


def test_cors_is_off_by_default_and_configurable(log_path) -> None:
    cache = load_cache(log_path)
    with Server(build_app(cache)) as s:
        _, headers, _ = s.request("GET", "/health", headers={"Origin": "http://dash.local"})
        assert "access-control-allow-origin" not in headers
    with Server(build_app(cache, cors=["http://dash.local"])) as s:
        _, headers, _ = s.request("GET", "/health", headers={"Origin": "http://dash.local"})
        assert headers["access-control-allow-origin"] == "http://dash.local"
        status, headers, _ = s.request("OPTIONS", "/scan-arbitrage", headers={
            "Origin": "http://dash.local", "Access-Control-Request-Method": "POST"})
        assert status == 200 and "POST" in headers["access-control-allow-methods"]
        _, headers, _ = s.request("GET", "/health", headers={"Origin": "http://evil.local"})
        assert "access-control-allow-origin" not in headers
        for asked, refused in (({"Origin": "http://evil.local", "Access-Control-Request-Method": "POST"}, "origin"),
                               ({"Origin": "http://dash.local", "Access-Control-Request-Method": "PUT"}, "method"),
                               ({"Origin": "http://dash.local", "Access-Control-Request-Method": "POST",
                                 "Access-Control-Request-Headers": "x-secret"}, "headers")):
            status, headers, data = s.request("OPTIONS", "/scan-arbitrage", headers=asked)
            assert status == 400 and headers["content-type"] == JSON_TYPE, refused
            err = json.loads(data)
            assert err["status"] == 400 and err["error"].startswith(f"Disallowed CORS {refused} (allowed: origins "
                                                                    "http://dash.local; methods GET, POST")
        status, headers, data = s.request("OPTIONS", "/health")  # not a preflight: the route's own 405
        assert status == 405 and headers["allow"] == "GET, HEAD" and json.loads(data)["status"] == 405


def test_405s_name_what_is_allowed_without_cors(log_path) -> None:
    with Server(build_app(load_cache(log_path))) as s:
        for method, path, allow in (("OPTIONS", "/health", "GET, HEAD"), ("POST", "/prices", "GET, HEAD"),
                                    ("DELETE", "/prices/USDC-WETH", "GET, HEAD"), ("PUT", "/scan-arbitrage", "POST")):
            status, headers, data = s.request(method, path)
            assert status == 405 and headers["allow"] == allow and headers["content-type"] == JSON_TYPE
            assert json.loads(data) == {"error": f"method not allowed: {method} (allowed: {allow})", "status": 405}


def test_a_fed_event_refreshes_the_answers(log_path) -> None:
    cache = load_cache(log_path)
    with Server(build_app(cache)) as s:
        assert s.json("POST", "/scan-arbitrage", b'{"threshold_pct": 0}')[1]["count"] > 0
        # the V2 pair is arbitraged back to the V3 price: the gap closes
        cache.feed(ev.V2ReservesSynced(ts=T + 5 * 10**9, source="t", pool=V2, block=2, reserve0=49_192_000 * 10**6,
                                       reserve1=21_676_993016202145862202))
        prices = {e["id"]: e for e in s.json("GET", "/prices")[1]["pools"]}
        assert prices[V2]["reserves"][0] == "49192000000000" and prices[V2]["age_ms"] == 0
        assert prices[V3]["age_ms"] == 5000  # its last update is 5 s of event time behind the last event
        usdc_weth = [o for o in s.json("POST", "/scan-arbitrage", b'{"threshold_pct": 0}')[1]["opportunities"]
                     if o["pair"] == "USDC-WETH" and V2 in (o["legs"][0]["id"], o["legs"][1]["id"])]
        assert usdc_weth == []
        assert s.json("GET", "/health")[1]["events"] == 6


def test_concurrent_load_is_answered_correctly(log_path) -> None:
    cache = load_cache(log_path)
    paths = ["/health", "/prices", "/prices/USDC-WETH", "/prices/WETH-USDT", "/scan-arbitrage", "/prices/NOPE-X"]
    with Server(build_app(cache)) as s:
        expected = {p: s.request("POST" if p == "/scan-arbitrage" else "GET", p,
                                 b'{"threshold_pct": 0}' if p == "/scan-arbitrage" else None)[:3:2] for p in paths}

        def one(i: int) -> tuple[str, bool]:
            p = paths[i % len(paths)]
            got = s.request("POST" if p == "/scan-arbitrage" else "GET", p,
                            b'{"threshold_pct": 0}' if p == "/scan-arbitrage" else None)[:3:2]
            if p == "/health":  # its age moves with the clock: compare the rest
                return p, got[0] == 200 and json.loads(got[1])["events"] == 5
            return p, got == expected[p]

        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(one, range(1_200)))
    assert len(results) == 1_200 and all(ok for _, ok in results), [p for p, ok in results if not ok][:5]
    assert {p for p, _ in results} == set(paths)
    assert expected["/prices/NOPE-X"][0] == 404 and expected["/scan-arbitrage"][0] == 200


def test_serve_command_refuses_a_missing_log_and_binds_loopback_by_default(tmp_path) -> None:
    r = CliRunner().invoke(main, ["serve", str(tmp_path / "absent.db")])
    assert r.exit_code == 2 and "absent.db" in r.output
    opts = {o.name: o.default for o in main.commands["serve"].params}
    assert opts["host"] == "127.0.0.1" and opts["port"] == 8080  # CORS: off unless --cors (test above)


def test_serve_command_says_why_it_cannot_listen_in_one_line_before_any_serving_line(log_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = CliRunner().invoke(main, ["serve", str(log_path), "--port", str(port)])
    assert r.exit_code == 2 and "serving" not in r.output, r.output
    assert r.output.splitlines() == [r.output.strip()]
    assert r.output.startswith(f"Error: cannot listen on 127.0.0.1:{port}: Address already in use")
    r = CliRunner().invoke(main, ["serve", str(log_path), "--host", "nosuchhost.invalid"])
    assert r.exit_code == 2 and r.output.strip() == "Error: cannot listen on nosuchhost.invalid:8080: " \
                                                    "Name or service not known"


def test_serve_command_on_port_0_prints_the_port_it_listens_on(log_path) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "from tapedeck.cli import main; main()", "serve", str(log_path),
                             "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        assert line.startswith(f"serving {log_path}: 5 events") and line.rstrip().endswith("/health"), line
        url = line.rsplit(" ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:") and not url.startswith("http://127.0.0.1:0/")
        c = http.client.HTTPConnection("127.0.0.1", int(url.split(":")[2].split("/")[0]), timeout=10)
        c.request("GET", "/health")
        r = c.getresponse()
        assert r.status == 200 and json.loads(r.read())["events"] == 5
        c.close()
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("option, value, says", [
    ("--max-age-s", "nan", "'nan' is not a number in the range 0<=x<=31536000"),
    ("--max-age-s", "inf", "inf is not in the range 0<=x<=31536000"),
    ("--max-age-s", "-1", "is not in the range"),
    ("--gas-price-gwei", "inf", "inf is not in the range 0<=x<=1000000"),
    ("--gas-price-gwei", "1e300", "1e+300 is not in the range 0<=x<=1000000"),
    ("--gas-price-gwei", "NaN", "is not a number in the range"),
])
def test_serve_command_refuses_options_out_of_range_as_usage_errors(log_path, option, value, says) -> None:
    r = CliRunner().invoke(main, ["serve", str(log_path), option, value])
    assert r.exit_code == 2 and len(r.output.splitlines()) == 1, r.output
    assert r.output.startswith(f"Error: Invalid value for '{option}': ") and says in r.output, r.output


def test_serve_command_says_a_directory_is_not_a_run_file(tmp_path) -> None:
    r = CliRunner().invoke(main, ["serve", str(tmp_path)])
    assert r.exit_code == 2 and r.output.strip() == f"Error: {tmp_path}: is a directory, not a run file"


def test_prices_are_plain_decimal_text_even_for_a_zero_size(tmp_path) -> None:
    """A quote with an empty side (size 0) reads ``"0.00000000"``, never Decimal's ``"0E-8"``, which a JSON
    client parsing numbers from text would take for an exponent form (seen on /prices)."""
    path = tmp_path / "empty-side.db"
    log = EventLog.create(path, Manifest(run_id="", mode="import"))
    for e in day_events()[:-1]:
        log.append(e)
    log.append(ev.QuoteUpdated(ts=T + 4, source="t", venue="binance", instrument="ETHUSDT", bid=2269_00000000,
                               bid_size=0, ask=2269_01000000, ask_size=5 * 10**8, price_decimals=8, size_decimals=8))
    log.close(ended="clean")
    with Server(build_app(load_cache(path))) as s:
        status, p = s.json("GET", "/prices")
    q = {e["id"]: e for e in p["pools"]}["binance:ETHUSDT"]
    assert status == 200 and q["bid_size"] == "0.00000000" and q["ask_size"] == "5.00000000"
    assert not any("E" in str(v) for e in p["pools"] for k, v in e.items() if k in ("bid", "ask", "bid_size", "ask_size"))
