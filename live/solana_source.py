"""The live Solana source: ``accountSubscribe`` per configured pool / vault account, then a refresh.

One RPC pubsub connection (``wss://api.mainnet-beta.solana.com`` or a provider's) with, once open,
one ``accountSubscribe`` per configured account (base64 encoding, the configured commitment),
built by ``solders.rpc.requests.AccountSubscribe``. Each acknowledgement (``{"result": <sub id>,
"id": n}``, read by ``solders``' ``parse_websocket_message``) ties its subscription id to the
account, since ``accountNotification`` names only the subscription. Notifications go through
``adapters.solana_accounts.parse_frame``: a Raydium AMM v4 pool, an SPL token account (a vault) or an
Orca Whirlpool / tick array becomes its typed event; anything else, or an account that does not
decode, is a recorded ``InputRejected``.

After every (re)subscription the source asks the HTTP JSON-RPC endpoint (``http_url``, by default
the pubsub URL with ``ws`` -> ``http``) for ``getMultipleAccounts`` of every account (``solders``'
``GetMultipleAccounts`` request and ``GetMultipleAccountsResp``, 100 keys a call): a subscription
only says what changes, so the refresh is the state at (re)connect, and it fills what changed while
the socket was away. Each account becomes its event at the response's context slot (the state folds
by slot, so a notification already seen at a later slot wins); an account the node does not have is
a rejection naming it. Then ``SourceConnectionChanged`` "backfilled" says how many were refreshed.

Disconnects mark every configured account stale (``SourceStale``); under a flood the queue
conflates the state of each account (a newer state replaces the queued one).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from solders.account_decoder import UiAccountEncoding
from solders.commitment_config import CommitmentLevel
from solders.pubkey import Pubkey
from solders.rpc.config import RpcAccountInfoConfig
from solders.rpc.requests import AccountSubscribe, GetMultipleAccounts
from solders.rpc.responses import GetMultipleAccountsResp, SubscriptionError, SubscriptionResult, parse_websocket_message
from websockets.asyncio.client import ClientConnection

from tapedeck.adapters import solana_accounts
from tapedeck.domain import events as ev
from tapedeck.live.base import Clock
from tapedeck.live.binance_source import FEED_KEYS, FeedConfigError, WsFeed, _keys, _str_list, feed_options

SOLANA_URL = "wss://api.mainnet-beta.solana.com"
COMMITMENTS = {"processed": CommitmentLevel.Processed, "confirmed": CommitmentLevel.Confirmed,
               "finalized": CommitmentLevel.Finalized}
BATCH_KEYS = 100  # getMultipleAccounts takes at most 100 keys


def http_url_for(ws_url: str) -> str:
    if ws_url.startswith("wss://"):
        return "https://" + ws_url[6:]
    if ws_url.startswith("ws://"):
        return "http://" + ws_url[5:]
    return ws_url


class SolanaSource(WsFeed):
    """Solana pool and vault accounts: see the module docstring."""

    source = solana_accounts.SOURCE

    def __init__(self, name: str = "solana", url: str = SOLANA_URL, *, accounts: Sequence[str], http_url: str = "",
                 commitment: str = "confirmed", **kw: Any) -> None:
        super().__init__(name, url, **kw)
        if not accounts:
            raise FeedConfigError("accounts must name at least one account")
        bad = []
        for a in accounts:
            try:
                Pubkey.from_string(a)
            except ValueError:
                bad.append(a[:60])
        if bad:
            raise FeedConfigError(f"accounts {', '.join(map(repr, bad))} are not base58 public keys")
        if commitment not in COMMITMENTS:
            raise FeedConfigError(f"commitment must be one of {', '.join(COMMITMENTS)}, got {commitment!r}")
        self.accounts = tuple(dict.fromkeys(accounts))
        self.http_url = http_url or http_url_for(url)
        self.commitment = commitment
        self._config = RpcAccountInfoConfig(encoding=UiAccountEncoding.Base64, commitment=COMMITMENTS[commitment])
        self._pending: dict[int, str] = {}  # request id -> account
        self.subscriptions: dict[int, str] = {}  # subscription id -> account
        self._request_id = 0
        self.refreshes = 0

    @classmethod
    def from_config(cls, table: Mapping[str, Any], *, clock: Clock | None = None) -> SolanaSource:
        where = f"[[sources]] {table.get('name', 'solana')!r}"
        _keys(table, (*FEED_KEYS, "accounts", "http_url", "commitment"), where)
        try:
            return cls(str(table.get("name", "solana")), str(table.get("url", SOLANA_URL)),
                       accounts=_str_list(table, "accounts", where), http_url=str(table.get("http_url", "")),
                       commitment=str(table.get("commitment", "confirmed")), clock=clock, **feed_options(table, where))
        except FeedConfigError as e:
            raise FeedConfigError(f"{where}: {e}") from None

    def _next_id(self) -> int:
        self._request_id += 1
        return self._request_id

    def subscription_text(self) -> str:
        return f"accountSubscribe x{len(self.accounts)} ({self.commitment})"

    async def subscribe(self, ws: ClientConnection) -> None:
        for key in self.accounts:
            rid = self._next_id()
            self._pending[rid] = key
            await ws.send(AccountSubscribe(Pubkey.from_string(key), self._config, rid).to_json())

    async def after_subscribe(self, ws: ClientConnection) -> None:
        await self.refresh()

    async def refresh(self) -> None:
        """``getMultipleAccounts`` of every account -> their events (see the module docstring)."""
        import aiohttp

        got = 0
        slot = 0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
            for i in range(0, len(self.accounts), BATCH_KEYS):
                keys = self.accounts[i:i + BATCH_KEYS]
                body = GetMultipleAccounts([Pubkey.from_string(k) for k in keys], self._config, self._next_id()).to_json()
                origin = f"{self.name}:getMultipleAccounts"
                try:
                    async with http.post(self.http_url, data=body, headers={"Content-Type": "application/json"}) as r:
                        text = await r.text()
                        status = r.status
                except (aiohttp.ClientError, OSError, TimeoutError) as e:
                    self._rejected(origin, f"request failed: {type(e).__name__}: {str(e)[:200]}", "")
                    continue
                self.stats.frames += 1
                if status != 200:
                    self._rejected(origin, f"HTTP {status}", text[:400])
                    continue
                try:
                    resp = GetMultipleAccountsResp.from_json(text)
                except Exception as e:  # noqa: BLE001 - solders' parse error: the answer is not what was asked
                    self._rejected(origin, f"not a getMultipleAccounts response: {str(e)[:200]}", text[:400])
                    continue
                if not isinstance(resp, GetMultipleAccountsResp):
                    self._rejected(origin, f"node error: {resp}", text[:400])
                    continue
                slot = max(slot, resp.context.slot)
                ts = self.clock()
                for key, account in zip(keys, resp.value):
                    if account is None:
                        self._rejected(origin, f"account {key} not found at slot {resp.context.slot}", "", ts)
                        continue
                    try:
                        e = solana_accounts.account_event(key, str(account.owner), resp.context.slot,
                                                          bytes(account.data), ts=ts)
                    except solana_accounts.AccountDataError as err:
                        self._rejected(origin, f"account {key} at slot {resp.context.slot}: {err}", "", ts)
                        continue
                    self.stats.events += 1
                    self.queue.put(e)
                    got += 1
        self.refreshes += 1
        self._connection("backfilled", f"getMultipleAccounts: {got} of {len(self.accounts)} account(s) at slot {slot}",
                         self.attempt)

    def _rejected(self, origin: str, reason: str, raw: str, ts: int | None = None) -> None:
        self.stats.rejected += 1
        self.stats.events += 1
        self.queue.put(ev.InputRejected(ts=self.clock() if ts is None else ts, source=self.source, origin=origin,
                                        reason=reason, raw=raw))

    def parse(self, raw: str | bytes, ts: int) -> list[ev.Event]:
        text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else raw
        origin = f"{self.name}:frame"
        if "Notification" not in text[:80]:
            try:
                messages = parse_websocket_message(text)
            except Exception:  # noqa: BLE001 - not a frame solders knows: parse_frame says why
                messages = []
            if messages and all(isinstance(m, (SubscriptionResult, SubscriptionError)) for m in messages):
                out: list[ev.Event] = []
                for m in messages:
                    key = self._pending.pop(m.id, None)
                    if isinstance(m, SubscriptionError):
                        out.append(ev.InputRejected(ts=ts, source=self.source, origin=origin,
                                                    reason=f"subscription for {key or m.id} refused: {m.error}",
                                                    raw=text[:400]))
                    elif key is None:
                        out.append(ev.InputRejected(ts=ts, source=self.source, origin=origin,
                                                    reason=f"acknowledgement of request {m.id}, which was not sent",
                                                    raw=text[:400]))
                    else:
                        self.subscriptions[m.result] = key
                return out
        return solana_accounts.parse_frame(text, ts=ts, subscriptions=self.subscriptions, origin=origin,
                                           source=self.source)

    def stale_ids(self) -> tuple[str, ...]:
        return self.accounts

    def on_disconnect(self) -> None:
        self._pending.clear()
        self.subscriptions.clear()

    def health(self) -> dict[str, Any]:
        return {**super().health(), "subscribed": len(self.subscriptions), "accounts": len(self.accounts),
                "refreshes": self.refreshes}
