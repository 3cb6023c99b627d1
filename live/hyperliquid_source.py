"""The live Hyperliquid source: market data and the user streams over one WebSocket.

One connection to ``wss://api.hyperliquid.xyz/ws`` (testnet ``wss://api.hyperliquid-testnet.xyz/ws``)
with, once open, ``{"method": "subscribe", "subscription": {...}}`` for every configured coin and
channel (``bbo``, ``l2Book``, ``activeAssetCtx``, ``trades``) and, when ``user`` is set, the user
streams ``userFills`` and ``orderUpdates`` of that address. Every frame goes through
``adapters.hyperliquid_ws.parse_frame``, the parser of the recordings (acks and pongs give no event
and are counted; any bad frame is one recorded ``InputRejected``).

* **Keep-alive**: the venue closes a connection it heard nothing from for 60 s, so the source sends
  ``{"method": "ping"}`` every ``ping_interval`` seconds (default 30) and counts the ``pong``\\s.
* **Reconnect**: the shared ``WsFeed`` loop (``live/binance_source.py``): ``SourceStale`` for
  ``hyperliquid`` and each coin's depth book on a disconnect, backoff with jitter, every
  subscription sent again ("resubscribed"). What was missed comes back as the venue's snapshots:
  ``l2Book`` is a snapshot feed (its first message on the new connection is the whole book), and
  ``userFills`` answers a subscription first with ``isSnapshot: true`` (the account's recent fills,
  recorded as ``AccountFillReported(snapshot=True)``: a reader dedupes them against fills it has by
  trade id). ``orderUpdates`` has no snapshot; an order that changed while away shows in the fills
  snapshot, or on its next update.
* Under a flood the queue conflates ``bbo`` quotes, ``l2Book`` books and asset contexts per coin;
  trades are dropped only with a recorded rejection; user-stream events are never dropped
  (``FeedQueue``).
"""
from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from typing import Any, Mapping, Sequence

from websockets.asyncio.client import ClientConnection

from tapedeck.adapters import hyperliquid_ws
from tapedeck.domain import events as ev
from tapedeck.domain.book_depth import depth_id
from tapedeck.live.base import Clock
from tapedeck.live.binance_source import FEED_KEYS, FeedConfigError, WsFeed, _keys, _str_list, feed_options

HYPERLIQUID_URL = "wss://api.hyperliquid.xyz/ws"
MARKET_CHANNELS = ("bbo", "l2Book", "activeAssetCtx", "trades")
USER_CHANNELS = ("userFills", "orderUpdates")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class HyperliquidSource(WsFeed):
    """Hyperliquid market data and user streams: see the module docstring."""

    source = hyperliquid_ws.SOURCE

    def __init__(self, name: str = "hyperliquid", url: str = HYPERLIQUID_URL, *, coins: Sequence[str] = ("BTC",),
                 channels: Sequence[str] = MARKET_CHANNELS, user: str = "",
                 user_channels: Sequence[str] = USER_CHANNELS, ping_interval: float = 30.0, **kw: Any) -> None:
        super().__init__(name, url, **kw)
        unknown = [c for c in (*channels, *(user_channels if user else ())) if c not in hyperliquid_ws.MODELLED]
        if unknown:
            raise FeedConfigError(f"channels {', '.join(unknown)} are not modelled "
                                  f"(modelled: {', '.join(hyperliquid_ws.MODELLED)})")
        if user and not _ADDRESS.fullmatch(user):
            raise FeedConfigError(f"user {user[:60]!r} is not 0x + 40 hex digits")
        if not 0 < ping_interval < 60:
            raise FeedConfigError(f"ping_interval must be within (0, 60) s (the venue closes after 60 s idle), "
                                  f"got {ping_interval}")
        self.coins, self.channels = tuple(coins), tuple(channels)
        self.user, self.user_channels = user.lower(), tuple(user_channels) if user else ()
        self.ping_interval = float(ping_interval)
        self.pings = self.pongs = self.acks = 0
        self.by_channel: Counter[str] = Counter()

    @classmethod
    def from_config(cls, table: Mapping[str, Any], *, clock: Clock | None = None) -> HyperliquidSource:
        where = f"[[sources]] {table.get('name', 'hyperliquid')!r}"
        _keys(table, (*FEED_KEYS, "coins", "channels", "user", "user_channels", "ping_interval"), where)
        try:
            ping = float(table.get("ping_interval", 30.0))
        except (TypeError, ValueError):
            raise FeedConfigError(f"{where}: ping_interval must be a number of seconds") from None
        try:
            return cls(str(table.get("name", "hyperliquid")), str(table.get("url", HYPERLIQUID_URL)),
                       coins=_str_list(table, "coins", where, ("BTC",)),
                       channels=_str_list(table, "channels", where, MARKET_CHANNELS), user=str(table.get("user", "")),
                       user_channels=_str_list(table, "user_channels", where, USER_CHANNELS), ping_interval=ping,
                       clock=clock, **feed_options(table, where))
        except FeedConfigError as e:
            raise FeedConfigError(f"{where}: {e}") from None

    def subscriptions(self) -> list[dict[str, Any]]:
        subs: list[dict[str, Any]] = [{"type": ch, "coin": c} for c in self.coins for ch in self.channels]
        subs += [{"type": ch, "user": self.user} for ch in self.user_channels]
        return subs

    def subscription_text(self) -> str:
        return ", ".join(f"{s['type']}:{s.get('coin') or s.get('user')}" for s in self.subscriptions())

    async def subscribe(self, ws: ClientConnection) -> None:
        for sub in self.subscriptions():
            await ws.send(json.dumps({"method": "subscribe", "subscription": sub}))

    async def keepalive(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            await ws.send('{"method":"ping"}')
            self.pings += 1

    def parse(self, raw: str | bytes, ts: int) -> list[ev.Event]:
        parsed = hyperliquid_ws.parse_frame(raw, ts, f"{self.name}:frame")
        self.by_channel[parsed.channel] += 1
        if parsed.channel == "pong":
            self.pongs += 1
        elif parsed.channel == "subscriptionResponse":
            self.acks += 1
        return list(parsed.events)

    def stale_ids(self) -> tuple[str, ...]:
        return (hyperliquid_ws.VENUE, *(depth_id(hyperliquid_ws.VENUE, c) for c in self.coins))

    def health(self) -> dict[str, Any]:
        return {**super().health(), "pings": self.pings, "pongs": self.pongs, "acks": self.acks,
                "subscriptions": len(self.subscriptions())}
