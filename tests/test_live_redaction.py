"""A provider's API key in a URL (its path, query or credentials) never reaches a recorded reason: the
depth snapshot's failure, which quoted aiohttp's message with the whole URL in it, records the URL cut to
its host; a URL that does not even parse is named as such, not repeated (nor an internal error)."""
from __future__ import annotations

import asyncio

from tapedeck.domain import events as ev
from tapedeck.live.binance_source import BinanceSource
from tapedeck.live.redact import redact_in, redact_url

SECRET = "SECRETKEY456"


def test_a_failed_depth_snapshot_records_no_secret_of_its_url() -> None:
    for url in (f"http://127.0.0.1:99999/api/v3/depth?symbol={{symbol}}&k={SECRET}",  # (a port out of range)
                f"ftp://127.0.0.1:1/api/{SECRET}/depth?symbol={{symbol}}"):
        src = BinanceSource("bn", "ws://127.0.0.1:1/ws", depth_snapshot_url=url)
        asyncio.run(src.after_subscribe(None))  # type: ignore[arg-type]  (the websocket is not used there)
        got = []
        while len(src.queue):
            got.append(src.queue.pop())
        rejected = [e for e in got if type(e) is ev.InputRejected]
        assert rejected and all("depth snapshot request failed" in e.reason for e in rejected)
        assert not any(SECRET in e.reason or SECRET in e.raw for e in rejected), [e.reason for e in rejected]


def test_redaction_keeps_the_host_and_names_what_does_not_parse() -> None:
    assert redact_url(f"wss://u:{SECRET}@mainnet.example:8546/v3/{SECRET}?a=1") == "wss://mainnet.example:8546/..."
    assert redact_url("http://[::1/x") == "(a URL that does not parse)"
    assert redact_url("http://127.0.0.1:99999/x") == "(a URL that does not parse)"
    url = f"https://node.example/rpc?apikey={SECRET}"
    assert SECRET not in redact_in(f"ClientError: {url} refused; query apikey={SECRET}", url)
