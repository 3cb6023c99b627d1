"""The live adapter of one EVM chain: logs of the followed contracts and new heads, as input events.

What it emits, per block and in chain order: the block's decoded logs (``adapters.evm_logs.
ChainLogMapper``: V2 ``Sync``, V3 Swap/Mint/Burn/Collect, the Aave Pool's modelled events,
aggregators' ``AnswerUpdated``, aTokens' ``BalanceTransfer``), then its ``BlockProduced`` (v2: hash,
parent hash, block time). A block is *fully processed* once its ``BlockProduced`` is recorded: the
last one of this chain in the run's log is the checkpoint (``restore``). A log it cannot decode is
an ``InputRejected`` (origin ``<name>:block <n> log <i>``); a head it cannot read too. Every event is
emitted synchronously, one block at a time, so a block's events are contiguous in the log.

Connection (one loop per chain, ``run``): web3.py 8 ``AsyncWeb3(WebSocketProvider)`` subscribes to
``newHeads`` and to ``logs`` of the followed addresses (topic0 filtered to the modelled events).
web3 retries only the first connect and never re-subscribes or fills a gap, so this loop does: on
every (re)connect it subscribes again (``SourceConnectionChanged`` "connected", then "resubscribed"),
backfills from the checkpoint to the node's head (``eth_getLogs`` over block ranges, headers by
number; "backfilled" with the range) and then follows heads. When it starts following another
contract (an oracle's new price feed) it renews the logs subscription ("resubscribed"). A dropped connection is
"disconnected" plus ``SourceStale`` for the chain's pools; the reconnect waits ``Backoff`` (seeded,
full jitter). When the WebSocket cannot connect and an ``http_url`` is configured, it polls
``eth_blockNumber`` over HTTP (``AsyncHTTPProvider``) for ``ws_retry_s`` and then tries the
WebSocket again: the same backfill path, so no block is skipped either way.

Start: with ``snapshot`` (default) and no checkpoint, the state at the block before the first one
applied is read by ``eth_call`` at that block and emitted as that block's events, with its
``BlockProduced``: the pairs' ``getReserves`` (``V2ReservesSynced``), each V3 pool's slot0, liquidity
and every initialized tick (``V3PoolSnapshot``), and the Aave market (``_AaveMarket``: reserves,
e-mode categories, prices; the price feeds are followed from then on). Without it the pools are
known from their first log on.

Completeness: a head is applied with ``eth_getLogs({blockHash})`` for that block, joined with the
logs the subscription already delivered for it (the notifications of a block's logs and of its head
come in no guaranteed order); log identity is (block hash, log index), so nothing is applied twice.

Reorgs: a head whose ``parentHash`` is not the checkpoint's hash, a head at or below the checkpoint
with an unknown hash, or a ``removed: true`` log of a processed block starts a resync: walk back by
``eth_getBlockByNumber`` over the processed blocks (at most ``max_reorg_depth``) to the last one the
node still has, emit a ``LogRetracted`` for every log of each abandoned block (from the fork up, in log order:
the first one folds the whole reorg back, the rest find nothing left; reason "removed" for logs
the node flagged, "reorg" otherwise), then the canonical blocks as above.
The state folds retractions back (``domain/reorg.py``), told the depth by the ``ReorgWindowSet`` this
adapter emits when it starts. A reorg deeper than the window is an ``InputRejected`` (the state can
only fold back what it kept) and the adapter continues from the node's chain.

Restart: ``restore(events)`` rebuilds the processed-block window from the run's log (this adapter's
``BlockProduced``, log events and retractions). Events of a block whose ``BlockProduced`` never made
it (a crash mid-block) are compared with that block as re-read: the same prefix is not emitted again;
a different block gets them retracted first. (V2 ``Sync`` events and the events of an oracle's
``AssetSourceUpdated`` carry no transaction or log index: after a restart, a retraction of one names
``tx`` "" and ``log_index`` -1; the fold-back is by block, so the state is the same.)

Everything stamps ``ts`` with the runner's ``Clock``; the chain's own time is ``block_ts`` (on
``BlockProduced`` and on every Aave log event, from the block's header).
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import msgspec

import eth_abi
from eth_utils import keccak

from tapedeck.live.redact import redact_url  # (also this module's name for it: record.py, tests)
from tapedeck.adapters.evm_logs import (
    AAVE_ORACLE, AAVE_POOL, AGGREGATOR, ATOKEN, V2, V3, ChainLogMapper, LogDecodeError, log_field_hex, log_field_int,
)
from tapedeck.domain import aave_v3 as aave
from tapedeck.domain import uniswap_v3 as v3math
from tapedeck.domain import events as ev
from tapedeck.live.base import Backoff, Clock, Emit
from tapedeck.sim.inclusion import next_base_fee

_AAVE_LOGS = (ev.AaveLog, ev.AaveLiquidationObserved)  # the Aave logs that carry their block's time (block_ts)

KIND = "evm"
_RAW_LIMIT = 2000
HEADER_CONCURRENCY = 16


class RpcError(RuntimeError):
    """A JSON-RPC call the node answered with an error, or a connection that failed under it."""


class CallDecodeError(RpcError):
    """An ``eth_call`` whose answer is not the function's (e.g. no contract there at that block):
    the node is fine, the question was not; a snapshot records it and goes on."""


class _ConnectFailed(RuntimeError):
    pass


class _Resync(Exception):
    """The chain moved under a backfill (a header or log of another fork): start the resync again."""


@dataclass(frozen=True, slots=True)
class Head:
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    base_fee: int
    gas_used: int
    gas_limit: int


@dataclass(slots=True)
class _Block:
    number: int
    hash: str
    parent_hash: str
    logs: list[tuple[str, int]] = field(default_factory=list)  # (tx, log index) of its followed logs


def _head(raw: Mapping[str, Any]) -> Head:
    """A header from JSON-RPC (hex text) or web3 (ints, HexBytes); ``LogDecodeError`` if malformed."""
    try:
        base = raw.get("baseFeePerGas")
        return Head(log_field_int(raw["number"], "number"), log_field_hex(raw["hash"], "hash"),
                    log_field_hex(raw["parentHash"], "parentHash"), log_field_int(raw["timestamp"], "timestamp"),
                    0 if base is None else log_field_int(base, "baseFeePerGas"),
                    log_field_int(raw["gasUsed"], "gasUsed"), log_field_int(raw["gasLimit"], "gasLimit"))
    except KeyError as e:
        raise LogDecodeError(f"header without {e.args[0]}") from None
    except (TypeError, AttributeError):
        raise LogDecodeError("header is not an object") from None


def _raw_text(obj: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, (bytes, bytearray)):
            return "0x" + bytes(o).hex()
        if isinstance(o, Mapping):
            return dict(o)
        return str(o)

    try:
        text = json.dumps(obj, default=default, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(obj)
    return text[:_RAW_LIMIT]


def _strip(e: ev.Event) -> ev.Event:
    return msgspec.structs.replace(e, ts=0, seq=0, cause=0)


class _Rpc:
    """Raw JSON-RPC over a web3 provider (``make_request``: no result formatting), errors raised."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.calls = 0

    async def __call__(self, method: str, params: list[Any]) -> Any:
        self.calls += 1
        try:
            response = await self.provider.make_request(method, params)
        except Exception as e:  # noqa: BLE001 - the connection under the call
            raise RpcError(f"{method}: {type(e).__name__}: {e}") from e
        if "error" in response:
            raise RpcError(f"{method}: {response['error']}")
        return response.get("result")


class _Calls:
    """``eth_call`` of a view function at a block, its arguments and results ABI-coded with eth_abi."""

    def __init__(self, rpc: _Rpc, block: int) -> None:
        self.rpc, self.block = rpc, block

    async def __call__(self, to: str, signature: str, args: tuple[Any, ...] = (), out: str = "") -> Any:
        name, _, rest = signature.partition("(")
        types = [t for t in rest.rstrip(")").split(",") if t]
        data = keccak(text=signature)[:4] + eth_abi.encode(types, list(args))
        raw = await self.rpc("eth_call", [{"to": to, "data": "0x" + data.hex()}, hex(self.block)])
        try:
            return eth_abi.decode([out], bytes.fromhex(str(raw)[2:]))[0]
        except Exception as e:  # noqa: BLE001 - a node answer that is not the function's
            raise CallDecodeError(f"eth_call {name} at block {self.block}: not a {out} ({type(e).__name__})") from None


# getReserveData's (ReserveData / ReserveDataLegacy) words that AaveReserveConfigured carries
_RESERVE_DATA_FIELDS = (("liquidity_index", 1), ("liquidity_rate", 2), ("variable_borrow_index", 3),
                        ("variable_borrow_rate", 4), ("last_update_timestamp", 6), ("reserve_id", 7))
_RESERVE_DATA = ("((uint256),uint128,uint128,uint128,uint128,uint128,uint40,uint16,address,address,address,address,"
                 "uint128,uint128,uint128)")


async def _v3_snapshot(call: _Calls, pool: str, block: int, source: str) -> ev.V3PoolSnapshot:
    """A V3 pool's whole state at the call's block: slot0, liquidity, and every initialized tick (the
    ``tickBitmap`` words from MIN_TICK to MAX_TICK, then ``ticks(t)`` of each set bit), as
    ``sim.chain.arb_executor.read_state`` reads it through web3; ``HEADER_CONCURRENCY`` calls at once."""
    slot0 = await call(pool, "slot0()", (), "(uint160,int24,uint16,uint16,uint16,uint8,bool)")
    liquidity = await call(pool, "liquidity()", (), "uint128")
    spacing = await call(pool, "tickSpacing()", (), "int24")
    gate = asyncio.Semaphore(HEADER_CONCURRENCY)

    async def gated(*args: Any) -> Any:
        async with gate:
            return await call(*args)

    positions = list(range((v3math.MIN_TICK // spacing) >> 8, ((v3math.MAX_TICK // spacing) >> 8) + 1))
    words = await asyncio.gather(*(gated(pool, "tickBitmap(int16)", (p,), "uint256") for p in positions))
    initialized = [(p * 256 + bit) * spacing for p, w in zip(positions, words) for bit in range(256) if w >> bit & 1]
    infos = await asyncio.gather(*(gated(pool, "ticks(int24)", (t,), "(uint128,int128)") for t in initialized))
    return ev.V3PoolSnapshot(ts=0, source=source, pool=pool, block=block, sqrt_price_x96=slot0[0], tick=slot0[1],
                             liquidity=liquidity, tick_spacing=spacing,
                             ticks=tuple((t, g, n) for t, (g, n) in zip(initialized, infos)))


class _AaveMarket:
    """What the adapter keeps of an Aave v3 market to say what its logs alone do not.

    The start of a run (``snapshot``, at the block before the first one applied, by ``eth_call``, as
    ``sim.chain.aave_events.AaveLogReader.snapshot`` reads it through web3): one
    ``AaveReserveConfigured`` per reserve, ``AaveEModeConfigured`` per category in use, an
    ``OracleUpdated`` per price feed (``AaveOracle.getAssetPrice``, base-currency decimals), and the
    feeds are followed from then on (``AnswerUpdated``). An oracle's ``AssetSourceUpdated`` (a
    reserve's feed replaced) re-emits the reserve's snapshot with the new feed (indexes and rates as
    its last ``ReserveDataUpdated`` left them) and the new feed's price at that block, and follows it."""

    def __init__(self, chain: str, source: str, pool: str, oracle: str) -> None:
        self.chain, self.source, self.pool, self.oracle = chain, source, pool, oracle
        self.reserves: dict[str, ev.AaveReserveConfigured] = {}
        self.base_decimals = 8

    def observe(self, e: ev.Event, chain_time: int) -> None:
        t = type(e)
        if t is ev.AaveReserveConfigured:
            self.reserves[e.reserve] = e  # type: ignore[attr-defined]
        elif t is ev.AaveReserveDataUpdated:
            r = self.reserves.get(e.reserve)  # type: ignore[attr-defined]
            if r is not None:
                self.reserves[r.reserve] = msgspec.structs.replace(
                    r, liquidity_index=e.liquidity_index, variable_borrow_index=e.variable_borrow_index,  # type: ignore[attr-defined]
                    liquidity_rate=e.liquidity_rate, variable_borrow_rate=e.variable_borrow_rate,  # type: ignore[attr-defined]
                    last_update_timestamp=chain_time)
        elif t is ev.OracleUpdated:
            self.base_decimals = e.decimals  # type: ignore[attr-defined]

    async def snapshot(self, rpc: _Rpc, block: int) -> list[ev.Event]:
        call = _Calls(rpc, block)
        pool, oracle = self.pool, self.oracle
        unit = await call(oracle, "BASE_CURRENCY_UNIT()", (), "uint256")
        self.base_decimals = len(str(unit)) - 1
        out: list[ev.Event] = []
        emodes: list[int] = []
        prices: list[tuple[str, str]] = []
        for asset in await call(pool, "getReservesList()", (), "address[]"):
            d = await call(pool, "getReserveData(address)", (asset,), _RESERVE_DATA)
            cfg = aave.decode_reserve_configuration(d[0][0])
            feed = (await call(oracle, "getSourceOfAsset(address)", (asset,), "address")).lower()
            bitmap = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("frozen", "paused")}
            out.append(ev.AaveReserveConfigured(
                ts=0, source=self.source, chain=self.chain, pool=pool, block=block, reserve=asset.lower(),
                frozen_reserve=cfg.frozen, price_feed=feed, a_token=d[8].lower(), variable_debt_token=d[10].lower(),
                **bitmap, **{name: d[i] for name, i in _RESERVE_DATA_FIELDS}))
            if cfg.emode_category and cfg.emode_category not in emodes:
                emodes.append(cfg.emode_category)
            if feed not in [f for f, _ in prices]:
                prices.append((feed, asset))
        for category in sorted(emodes):
            c = await call(pool, "getEModeCategoryData(uint8)", (category,), "(uint16,uint16,uint16,address,string)")
            out.append(ev.AaveEModeConfigured(ts=0, source=self.source, chain=self.chain, pool=pool, block=block,
                                              category=category, ltv=c[0], liquidation_threshold=c[1],
                                              liquidation_bonus=c[2], price_source=c[3].lower(), label=c[4]))
        for feed, asset in prices:
            price = await call(oracle, "getAssetPrice(address)", (asset,), "uint256")
            out.append(ev.OracleUpdated(ts=0, source=self.source, feed=feed, chain=self.chain, round_id=0,
                                        answer=price, decimals=self.base_decimals))
        return out

    async def prices(self, rpc: _Rpc, block: int, assets: list[str]) -> dict[str, int]:
        call = _Calls(rpc, block)
        return {a: await call(self.oracle, "getAssetPrice(address)", (a,), "uint256") for a in assets}

    def source_updated(self, asset: str, feed: str, price: int | None, block: int) -> list[ev.Event]:
        r = self.reserves.get(asset)
        if r is None:
            return []
        configured = msgspec.structs.replace(r, ts=0, block=block, price_feed=feed)
        out: list[ev.Event] = [configured]
        if price is not None:
            out.append(ev.OracleUpdated(ts=0, source=self.source, feed=feed, chain=self.chain, round_id=0,
                                        answer=price, decimals=self.base_decimals))
        return out


class EvmSource:
    """A ``LiveSource`` for one EVM chain (see the module docstring). ``from_config`` reads a
    ``[[sources]] kind = "evm"`` table."""

    def __init__(self, name: str, *, chain: str, ws_url: str = "", http_url: str = "",
                 v2_pairs: Iterable[str] = (), v3_pools: Iterable[str] = (), aave_pools: Iterable[str] = (),
                 aggregators: Iterable[str] | Mapping[str, int] = (), atokens: Iterable[str] | Mapping[str, str] = (),
                 aave_oracle: str = "", snapshot: bool = True, max_reorg_depth: int = 64, poll_interval_s: float = 1.0, ws_retry_s: float = 10.0,
                 head_timeout_s: float = 0.0, backfill_chunk: int = 500, start_block: int | None = None,
                 request_timeout_s: float = 10.0, clock: Callable[[], int] | None = None,
                 backoff: Backoff | None = None) -> None:
        if not ws_url and not http_url:
            raise ValueError(f"source {name!r}: needs ws_url or http_url")
        if ws_url and not ws_url.startswith(("ws://", "wss://")):
            raise ValueError(f"source {name!r}: ws_url must start with ws:// or wss://")
        if http_url and not http_url.startswith(("http://", "https://")):
            raise ValueError(f"source {name!r}: http_url must start with http:// or https://")
        if max_reorg_depth < 1 or backfill_chunk < 1:
            raise ValueError(f"source {name!r}: max_reorg_depth and backfill_chunk must be >= 1")
        self.name, self.chain = name, chain
        self.ws_url, self.http_url = ws_url, http_url
        kinds: dict[str, str] = {}
        aave_pools = list(aave_pools)
        if aave_oracle and len(aave_pools) != 1:
            raise ValueError(f"source {name!r}: aave_oracle goes with exactly one of aave_pools")
        for kind, addresses in ((V2, v2_pairs), (V3, v3_pools), (AAVE_POOL, aave_pools), (AGGREGATOR, aggregators),
                                (ATOKEN, atokens), (AAVE_ORACLE, [aave_oracle] if aave_oracle else [])):
            for a in addresses:
                if a.lower() in kinds:
                    raise ValueError(f"source {name!r}: address {a} is listed twice")
                kinds[a.lower()] = kind
        if not kinds:
            raise ValueError(f"source {name!r}: follows no address")
        self.mapper = ChainLogMapper(chain, kinds,
                                     decimals=dict(aggregators) if isinstance(aggregators, Mapping) else None,
                                     reserves=dict(atokens) if isinstance(atokens, Mapping) else None)
        self.aave = _AaveMarket(chain, name, aave_pools[0].lower(), aave_oracle.lower()) if aave_oracle else None
        self.snapshot = bool(snapshot)
        self.depth = int(max_reorg_depth)
        self.poll_interval_s, self.ws_retry_s, self.head_timeout_s = poll_interval_s, ws_retry_s, head_timeout_s
        self.backfill_chunk, self.start_block = int(backfill_chunk), start_block
        self.request_timeout_s = request_timeout_s
        self.clock = clock or Clock()
        self.backoff = backoff or Backoff()
        self.window: list[_Block] = []  # processed blocks, oldest first, at most depth
        self._restart_at: int | None = None  # after a reorg deeper than the window: where to go on
        self._partial: list[ev.Event] = []  # restored events of a block whose BlockProduced is missing
        self._buffer: dict[str, dict[int, Mapping[str, Any]]] = {}  # block hash -> log index -> subscription log
        self._removed: dict[tuple[str, int], None] = {}  # (block hash, log index) flagged removed
        self._emit: Emit | None = None
        self.after_batch: Callable[[], None] | None = None  # the runner's group commit (live.base): after each block
        self.acked_block: int | None = None  # the last block whose events after_batch made durable
        self.stats = {"connects": 0, "reconnects": 0, "disconnects": 0, "blocks": 0, "logs": 0,
                      "logs_via_subscription": 0, "subscription_logs": 0, "subscription_heads": 0, "backfilled_blocks": 0, "retracted": 0, "rejected": 0,
                      "reorgs": 0, "http_polls": 0}
        self.transport = ""
        self.connected = False
        self._venues = self.mapper.pools() + ((f"aave-v3:{chain}",) if AAVE_POOL in kinds.values() else ())

    # ------------------------------------------------------------------ config

    KEYS = ("kind", "name", "chain", "ws_url", "http_url", "v2_pairs", "v3_pools", "aave_pools", "aggregators",
            "atokens", "aave_oracle", "snapshot", "max_reorg_depth", "poll_interval_s", "ws_retry_s", "head_timeout_s", "backfill_chunk",
            "start_block", "request_timeout_s")

    @classmethod
    def from_config(cls, table: Mapping[str, Any], *, clock: Callable[[], int] | None = None,
                    backoff: Backoff | None = None, where: str = "[[sources]]") -> "EvmSource":
        """From a ``[[sources]]`` table: ``kind = "evm"``, ``name``, ``chain``, ``ws_url`` and/or
        ``http_url``, the followed contracts (``v2_pairs``, ``v3_pools``, ``aave_pools`` lists;
        ``aggregators`` a list or a table address -> decimals; ``atokens`` a list or a table
        aToken -> underlying; ``aave_oracle`` the market's AaveOracle, for its snapshot and feed
        changes), and optional ``snapshot`` (true: read the pairs' reserves, the V3 pools' whole
        state and the Aave market at the block before the first one applied), ``max_reorg_depth`` (64), ``poll_interval_s`` (1),
        ``ws_retry_s`` (10), ``head_timeout_s`` (0: off), ``backfill_chunk`` (500),
        ``start_block`` (default: the node's head when the run starts), ``request_timeout_s`` (10)."""
        unknown = [k for k in table if k not in cls.KEYS]
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} for kind = \"evm\"")
        if table.get("kind", KIND) != KIND:
            raise ValueError(f"{where}: kind is {table.get('kind')!r}, not \"evm\"")
        for key in ("name", "chain"):
            if not isinstance(table.get(key), str) or not table[key]:
                raise ValueError(f"{where}: {key} must be a non-empty string")
        args = {k: v for k, v in table.items() if k not in ("kind", "name")}
        try:
            return cls(table["name"], clock=clock, backoff=backoff, **args)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where} {table['name']!r}: {e}") from None

    # ------------------------------------------------------------------ LiveSource

    def health(self) -> dict[str, Any]:
        tip = self.window[-1] if self.window else None
        return {"name": self.name, "kind": KIND, "chain": self.chain, "connected": self.connected,
                "transport": self.transport, "block": tip.number if tip else None,
                "block_hash": tip.hash if tip else "", "acked_block": self.acked_block, **self.stats}

    def checkpoint(self) -> tuple[int, str] | None:
        """The last fully processed block (number, hash)."""
        return (self.window[-1].number, self.window[-1].hash) if self.window else None

    def restore(self, events: Iterable[ev.Event]) -> None:
        """Pick up the checkpoint and the window of processed blocks from the run's log."""
        window: list[_Block] = []
        pending: list[ev.Event] = []
        for e in events:
            if e.source != self.name:
                continue
            t = type(e)
            if t is ev.BlockProduced:
                if e.chain != self.chain:  # type: ignore[attr-defined]
                    continue
                while window and window[-1].number >= e.number:  # type: ignore[attr-defined]
                    window.pop()
                if self.aave is not None:  # a block's logs, at its own time (as _apply observed them)
                    for x in pending:
                        self.aave.observe(x, e.block_ts)  # type: ignore[attr-defined]
                window.append(_Block(e.number, e.hash, e.parent_hash,  # type: ignore[attr-defined]
                                     [(getattr(x, "tx", ""), getattr(x, "log_index", -1)) for x in pending]))
                del window[:-self.depth]
                pending = []
            elif t is ev.LogRetracted:
                if e.chain == self.chain:  # type: ignore[attr-defined]
                    window = [b for b in window if b.number < e.block]  # type: ignore[attr-defined]
                    pending = []
            elif hasattr(e, "block") or t is ev.OracleUpdated:
                pending.append(e)
            if t is ev.AaveReserveConfigured and self.aave is not None:
                self.mapper.follow(e.price_feed, AGGREGATOR)  # type: ignore[attr-defined]
        self.window = window
        self._partial = pending

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        self._emit = emit
        emit(ev.ReorgWindowSet(ts=self.clock(), source=self.name, chain=self.chain, depth=self.depth,
                               pools=self.mapper.pools()))
        attempt = 0
        while not stop.is_set():
            detail = ""
            try:
                if self.ws_url:
                    try:
                        await self._ws_session(stop, attempt)
                        detail = "connection closed"
                    except _ConnectFailed as e:
                        detail = f"websocket connect failed: {e}"
                        self._connection("disconnected", detail, attempt)
                        if self.http_url and not stop.is_set():
                            await self._http_session(stop, attempt, self.ws_retry_s)
                            detail = "http fallback ended"
                else:
                    await self._http_session(stop, attempt, None)
                    detail = "http polling ended"
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - any failure: record it, reconnect, backfill
                detail = self._scrub(f"{type(e).__name__}: {e}")[:300]
            if stop.is_set():
                detail = "stopped"
            if self.connected:
                self._lost(detail, attempt)
            if stop.is_set():
                break
            attempt += 1
            self.stats["reconnects"] += 1
            await _wait(stop, self.backoff.next())
        if self.connected:
            self._lost("stopped", attempt)

    # ------------------------------------------------------------------ sessions

    async def _ws_session(self, stop: asyncio.Event, attempt: int) -> None:
        from web3 import AsyncWeb3, WebSocketProvider
        from web3.utils.subscriptions import LogsSubscription, NewHeadsSubscription

        provider = WebSocketProvider(self.ws_url, max_connection_retries=1, request_timeout=self.request_timeout_s)
        w3 = AsyncWeb3(provider)
        try:
            await provider.connect()
        except Exception as e:  # noqa: BLE001
            raise _ConnectFailed(f"{type(e).__name__}") from None
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        async def on_head(ctx: Any) -> None:
            queue.put_nowait(("head", ctx.result))

        async def on_log(ctx: Any) -> None:
            queue.put_nowait(("log", ctx.result))

        handler: asyncio.Task[None] | None = None
        try:
            self.transport, self.connected = "ws", True
            self.stats["connects"] += 1
            self._connection("connected", "websocket", attempt)
            rpc = _Rpc(provider)

            def logs_subscription() -> Any:
                return LogsSubscription(address=[w3.to_checksum_address(a) for a in self.mapper.addresses()],
                                        topics=[self.mapper.topic0s()], handler=on_log,
                                        label=f"logs-{len(self.mapper.kinds)}")

            logs = logs_subscription()
            await w3.subscription_manager.subscribe([NewHeadsSubscription(handler=on_head, label="heads"), logs])
            followed = len(self.mapper.kinds)
            self._connection("resubscribed", f"newHeads, logs of {followed} addresses", attempt)
            handler = asyncio.create_task(w3.subscription_manager.handle_subscriptions(run_forever=True))
            await self._catch_up(rpc, attempt)
            self.backoff.reset()
            while not stop.is_set():
                if len(self.mapper.kinds) != followed:  # a new price feed: subscribe to its logs too
                    await w3.subscription_manager.unsubscribe(logs)
                    logs = logs_subscription()
                    await w3.subscription_manager.subscribe(logs)
                    followed = len(self.mapper.kinds)
                    self._connection("resubscribed", f"logs of {followed} addresses (a new price feed)", attempt)
                getter = asyncio.ensure_future(queue.get())
                stopper = asyncio.ensure_future(stop.wait())
                timeout = self.head_timeout_s or None
                done, _ = await asyncio.wait({getter, stopper, handler}, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if getter not in done:
                    getter.cancel()
                if not done:
                    raise RpcError(f"no new head for {self.head_timeout_s}s (a stalled subscription)")
                if getter in done:
                    kind, item = getter.result()
                    if kind == "head":
                        await self._on_head(rpc, item)
                    else:
                        await self._on_log(rpc, item)
                    continue
                if handler in done:
                    exc = handler.exception()
                    if exc is not None and not _connection_error(exc):
                        self._reject("subscription", f"web3 could not read a notification: {type(exc).__name__}: "
                                                     f"{exc}"[:300], "")
                        raise RpcError(f"subscription handling failed: {type(exc).__name__}")
                    return  # web3's listener stopped: the connection is gone
        finally:
            if handler is not None and not handler.done():
                handler.cancel()
                try:
                    await handler
                except BaseException:  # noqa: BLE001 - it is being torn down
                    pass
            try:
                await provider.disconnect()
            except Exception:  # noqa: BLE001
                pass

    async def _http_session(self, stop: asyncio.Event, attempt: int, seconds: float | None) -> None:
        from web3 import AsyncHTTPProvider

        provider = AsyncHTTPProvider(self.http_url, request_kwargs={"timeout": self.request_timeout_s})
        rpc = _Rpc(provider)
        try:
            await rpc("eth_blockNumber", [])
        except RpcError as e:
            raise _ConnectFailed(f"http: {e}") from None
        try:
            self.transport, self.connected = "http", True
            self.stats["connects"] += 1
            self._connection("connected", "http polling", attempt)
            await self._catch_up(rpc, attempt)
            until = None if seconds is None else time.monotonic() + seconds
            while not stop.is_set() and (until is None or time.monotonic() < until):
                await _wait(stop, self.poll_interval_s)
                if stop.is_set():
                    break
                self.stats["http_polls"] += 1
                number = log_field_int(await rpc("eth_blockNumber", []), "eth_blockNumber")
                tip = self.window[-1] if self.window else None
                if tip is None or number != tip.number:
                    await self._resync(rpc, number, "reorg")
                else:
                    head = await self._header(rpc, number)
                    if head is not None and head.hash != tip.hash:
                        await self._resync(rpc, number, "reorg")
        finally:
            try:
                await provider.disconnect()
            except Exception:  # noqa: BLE001
                pass

    async def _catch_up(self, rpc: _Rpc, attempt: int) -> None:
        """After a (re)connect: everything from the checkpoint to the node's head."""
        number = log_field_int(await rpc("eth_blockNumber", []), "eth_blockNumber")
        before = self.stats["blocks"]
        first = self.window[-1].number + 1 if self.window else None
        await self._resync(rpc, number, "reorg")
        done = self.stats["blocks"] - before
        self.stats["backfilled_blocks"] += done
        span = f"blocks {first}..{number}" if first is not None and first <= number else "nothing missed"
        self._connection("backfilled", f"{span} ({done} applied)", attempt)

    # ------------------------------------------------------------------ notifications

    async def _on_head(self, rpc: _Rpc, raw: Any) -> None:
        self.stats["subscription_heads"] += 1
        try:
            head = _head(raw)
        except LogDecodeError as e:
            self._reject("head", str(e), _raw_text(raw))
            return
        tip = self.window[-1] if self.window else None
        if any(b.hash == head.hash for b in self.window):
            return  # already applied (a backfill got there first)
        if tip is not None and head.parent_hash == tip.hash and head.number == tip.number + 1:
            logs = await self._block_logs(rpc, head.hash)
            self._apply(head, logs, prices=await self._oracle_prices(rpc, head, logs))
            return
        await self._resync(rpc, head.number, "reorg")

    async def _on_log(self, rpc: _Rpc, raw: Any) -> None:
        try:
            block_hash = log_field_hex(raw.get("blockHash"), "blockHash")
            index = log_field_int(raw.get("logIndex"), "logIndex")
            removed = bool(raw.get("removed", False))
        except (LogDecodeError, AttributeError) as e:
            self._reject("log", str(e) if isinstance(e, LogDecodeError) else "log is not an object", _raw_text(raw))
            return
        self.stats["subscription_logs"] += 1
        if not removed:
            if not any(b.hash == block_hash for b in self.window):
                if len(self._buffer) > 4 * self.depth:  # never applied (an orphan): do not keep it forever
                    self._buffer.pop(next(iter(self._buffer)))
                self._buffer.setdefault(block_hash, {})[index] = raw
            return
        self._removed[(block_hash, index)] = None
        self._buffer.get(block_hash, {}).pop(index, None)
        if any(b.hash == block_hash for b in self.window):
            number = log_field_int(await rpc("eth_blockNumber", []), "eth_blockNumber")
            await self._resync(rpc, number, "removed")

    # ------------------------------------------------------------------ the chain

    async def _header(self, rpc: _Rpc, number: int) -> Head | None:
        raw = await rpc("eth_getBlockByNumber", [hex(number), False])
        if raw is None:
            return None
        try:
            return _head(raw)
        except LogDecodeError as e:
            raise RpcError(f"eth_getBlockByNumber({number}): {e}") from None

    async def _headers(self, rpc: _Rpc, first: int, last: int) -> list[Head | None]:
        """Headers ``first..last``, at most ``HEADER_CONCURRENCY`` requests in flight (a backfill's
        cost is a header per block: one at a time it was ~340 blocks/s on a loopback anvil)."""
        gate = asyncio.Semaphore(HEADER_CONCURRENCY)

        async def one(number: int) -> Head | None:
            async with gate:
                return await self._header(rpc, number)

        return list(await asyncio.gather(*(one(k) for k in range(first, last + 1))))

    def _filter(self) -> dict[str, Any]:
        return {"address": self.mapper.addresses(), "topics": [self.mapper.topic0s()]}

    async def _block_logs(self, rpc: _Rpc, block_hash: str) -> list[Mapping[str, Any]]:
        got = await rpc("eth_getLogs", [{**self._filter(), "blockHash": block_hash}])
        logs = {log_field_int(x.get("logIndex"), "logIndex"): x for x in got or ()}
        for index, x in self._buffer.pop(block_hash, {}).items():
            if index not in logs:
                logs[index] = x
                self.stats["logs_via_subscription"] += 1
        return [logs[i] for i in sorted(logs)]

    async def _resync(self, rpc: _Rpc, target: int, reason: str) -> None:
        """Make the processed chain the node's up to ``target``: retract what it abandoned, apply the rest."""
        for _ in range(8):
            try:
                await self._rewind_to_canonical(rpc, reason)
                node = log_field_int(await rpc("eth_blockNumber", []), "eth_blockNumber")
                await self._backfill(rpc, min(target, node) if self.window else node)
                return
            except _Resync:
                continue
        raise RpcError("the chain kept moving under the backfill (8 tries)")

    async def _rewind_to_canonical(self, rpc: _Rpc, reason: str) -> None:
        abandoned: list[_Block] = []
        i = len(self.window) - 1
        while i >= 0:
            b = self.window[i]
            canon = await self._header(rpc, b.number)
            if canon is not None and canon.hash == b.hash:
                break
            abandoned.append(b)
            i -= 1
        if self._partial and (abandoned or not self.window):
            self._retract_partial()
        if not abandoned:
            return
        self.stats["reorgs"] += 1
        if i < 0:  # every block we kept is gone: deeper than the window
            self._reject("reorg", f"reorg deeper than max_reorg_depth {self.depth}: the state folds back only "
                                  f"{len(self.window)} blocks", "")
            self._restart_at = abandoned[-1].number  # the canonical chain from the oldest block folded back
        for b in reversed(abandoned):  # from the fork up
            self._retract(b, reason)
        del self.window[i + 1:]

    def _retract(self, b: _Block, reason: str) -> None:
        emit = self._emit
        assert emit is not None
        for tx, index in b.logs:
            why = "removed" if (b.hash, index) in self._removed else reason
            emit(ev.LogRetracted(ts=self.clock(), source=self.name, chain=self.chain, block=b.number,
                                 block_hash=b.hash, tx=tx, log_index=index, reason=why))
            self.stats["retracted"] += 1
        for key in [k for k in self._removed if k[0] == b.hash]:
            del self._removed[key]

    def _retract_partial(self) -> None:
        emit = self._emit
        assert emit is not None
        for e in self._partial:
            emit(ev.LogRetracted(ts=self.clock(), source=self.name, chain=self.chain, block=getattr(e, "block", 0),
                                 block_hash="", tx=getattr(e, "tx", ""), log_index=getattr(e, "log_index", -1),
                                 reason="reorg"))
            self.stats["retracted"] += 1
        self._partial = []

    async def _backfill(self, rpc: _Rpc, target: int) -> None:
        """Apply blocks after the checkpoint up to ``target``, logs by ranges of ``backfill_chunk``."""
        if self.window:
            start = self.window[-1].number + 1
        elif self._restart_at is not None:
            start, self._restart_at = self._restart_at, None
        else:
            start = target if self.start_block is None else self.start_block  # not there yet: wait
            if self.snapshot and start <= target and start > 0:
                await self._snapshot(rpc, start - 1)
                return await self._backfill(rpc, target)
        n = start
        while n <= target:
            end = min(target, n + self.backfill_chunk - 1)
            got = await rpc("eth_getLogs", [{**self._filter(), "fromBlock": hex(n), "toBlock": hex(end)}])
            by_block: dict[int, list[Mapping[str, Any]]] = {}
            for x in got or ():
                try:
                    by_block.setdefault(log_field_int(x.get("blockNumber"), "blockNumber"), []).append(x)
                except LogDecodeError as e:
                    self._reject("log", str(e), _raw_text(x))
            heads = await self._headers(rpc, n, end)
            for number in range(n, end + 1):
                head = heads[number - n]
                if head is None:
                    raise _Resync()
                tip = self.window[-1] if self.window else None
                if tip is not None and head.parent_hash != tip.hash:
                    raise _Resync()
                logs = by_block.get(number, [])
                if any(log_field_hex(x.get("blockHash"), "blockHash") != head.hash for x in logs):
                    raise _Resync()
                sub = self._buffer.pop(head.hash, {})
                have = {log_field_int(x.get("logIndex"), "logIndex") for x in logs}
                merged = logs + [x for i, x in sub.items() if i not in have]
                self.stats["logs_via_subscription"] += len(merged) - len(logs)
                merged.sort(key=lambda x: log_field_int(x.get("logIndex"), "logIndex"))
                self._apply(head, merged, prices=await self._oracle_prices(rpc, head, merged))
            n = end + 1

    async def _snapshot(self, rpc: _Rpc, block: int) -> None:
        """The state at ``block`` by ``eth_call`` (the pairs' reserves, the Aave market), emitted as
        that block's events with its BlockProduced: the checkpoint the first applied block follows."""
        head = await self._header(rpc, block)
        if head is None:
            raise _Resync()
        call = _Calls(rpc, block)
        events: list[ev.Event] = []
        def unread(what: str, e: CallDecodeError) -> ev.InputRejected:  # e.g. deployed after ``block``
            return ev.InputRejected(ts=0, source=self.name, origin=f"{self.name}:snapshot {what} at block {block}",
                                    reason=f"{e}; its state comes from its first log", raw="")

        for pair in [a for a, k in self.mapper.kinds.items() if k == V2]:
            try:
                r0, r1, _ = await call(pair, "getReserves()", (), "(uint112,uint112,uint32)")
            except CallDecodeError as e:
                events.append(unread(f"pair {pair}", e))
                continue
            events.append(ev.V2ReservesSynced(ts=0, source=self.name, pool=pair, block=block, reserve0=r0, reserve1=r1))
        for pool in [a for a, k in self.mapper.kinds.items() if k == V3]:
            try:
                events.append(await _v3_snapshot(call, pool, block, self.name))
            except CallDecodeError as e:
                events.append(unread(f"pool {pool}", e))
        if self.aave is not None:
            events.extend(await self.aave.snapshot(rpc, block))
            for e in events:
                if type(e) is ev.AaveReserveConfigured:  # its price feed's AnswerUpdated from now on
                    self.mapper.follow(e.price_feed, AGGREGATOR, self.aave.base_decimals)
        self._apply(head, [], events)

    async def _oracle_prices(self, rpc: _Rpc, head: Head, logs: list[Mapping[str, Any]]) -> dict[str, int]:
        """The new price of each reserve whose feed an ``AssetSourceUpdated`` of this block replaced."""
        if self.aave is None:
            return {}
        assets = []
        for log in logs:
            try:
                if self.mapper.kinds.get(log_field_hex(log.get("address"), "address", 20)) == AAVE_ORACLE:
                    assets.append(self.mapper.source_updated(log)[0])
            except LogDecodeError:
                continue  # rejected when the block is applied
        return await self.aave.prices(rpc, head.number, assets) if assets else {}

    def _apply(self, head: Head, logs: list[Mapping[str, Any]], extra: list[ev.Event] | None = None,
               prices: Mapping[str, int] | None = None) -> None:
        """Emit one block: its logs' events (or rejections), then its BlockProduced. Synchronous."""
        emit = self._emit
        assert emit is not None
        events: list[ev.Event] = list(extra or ())
        identities: list[tuple[str, int]] = [("", -1)] * len(events)
        seen: set[int] = set()
        for log in logs:
            try:
                index = log_field_int(log.get("logIndex"), "logIndex")
                if index in seen:
                    continue
                seen.add(index)
                if self.aave is not None and self.mapper.kinds.get(
                        log_field_hex(log.get("address"), "address", 20)) == AAVE_ORACLE:
                    asset, feed = self.mapper.source_updated(log)
                    mapped = self.aave.source_updated(asset, feed, (prices or {}).get(asset), head.number)
                    if mapped:
                        self.mapper.follow(feed, AGGREGATOR, self.aave.base_decimals)
                else:
                    mapped = [msgspec.structs.replace(e, block_ts=head.timestamp) if isinstance(e, _AAVE_LOGS) else e
                              for e in self.mapper.events(log, 0, self.name)]  # the Aave book accrues at block time
                tx = log_field_hex(log.get("transactionHash"), "transactionHash")
            except LogDecodeError as e:
                events.append(ev.InputRejected(ts=0, source=self.name,
                                               origin=f"{self.name}:block {head.number} log {log.get('logIndex')}",
                                               reason=str(e), raw=_raw_text(log)))
                continue
            events.extend(mapped)
            identities.extend((tx, index) for _ in mapped)
            if self.aave is not None:
                for e in mapped:
                    self.aave.observe(e, head.timestamp)
        if self.aave is not None:
            for e in extra or ():
                self.aave.observe(e, head.timestamp)
        events.append(ev.BlockProduced(
            ts=0, source=self.name, chain=self.chain, number=head.number, base_fee=head.base_fee,
            gas_used=head.gas_used, gas_limit=head.gas_limit,
            next_base_fee=next_base_fee(head.base_fee, head.gas_used, head.gas_limit // 2) if head.gas_limit >= 2
            else head.base_fee, hash=head.hash, parent_hash=head.parent_hash, block_ts=head.timestamp))
        skip = 0
        if self._partial:
            recorded = [_strip(e) for e in self._partial]
            number = next((getattr(e, "block") for e in self._partial if hasattr(e, "block")), head.number)
            if number == head.number and [_strip(e) for e in events[:len(recorded)]] == recorded:
                skip = len(recorded)  # already in the log before the crash
                self._partial = []
            else:
                self._retract_partial()
        for e in events[skip:]:
            e = msgspec.structs.replace(e, ts=self.clock())
            if type(e) is ev.InputRejected:
                self.stats["rejected"] += 1
            elif type(e) is not ev.BlockProduced:
                self.stats["logs"] += 1
            emit(e)
        self.window.append(_Block(head.number, head.hash, head.parent_hash, identities))
        del self.window[:-self.depth]
        self.stats["blocks"] += 1
        if self.after_batch is not None:  # one block is one batch: its events and checkpoint are durable
            self.after_batch()
            self.acked_block = head.number

    # ------------------------------------------------------------------ telling

    def _connection(self, state: str, detail: str, attempt: int) -> None:
        assert self._emit is not None
        self._emit(ev.SourceConnectionChanged(ts=self.clock(), source=self.name, name=self.name, state=state,
                                              detail=detail, attempt=attempt))

    def _lost(self, detail: str, attempt: int) -> None:
        self.connected = False
        self.stats["disconnects"] += 1
        self._connection("disconnected", detail, attempt)
        if self._venues:
            assert self._emit is not None
            self._emit(ev.SourceStale(ts=self.clock(), source=self.name, venues=self._venues,
                                      reason=f"{self.name} disconnected: {detail}"[:300]))

    def _reject(self, what: str, reason: str, raw: str) -> None:
        assert self._emit is not None
        self.stats["rejected"] += 1
        self._emit(ev.InputRejected(ts=self.clock(), source=self.name, origin=f"{self.name}:{what}",
                                    reason=self._scrub(reason), raw=raw))

    def _scrub(self, text: str) -> str:
        """No configured URL (which may hold an API key) in anything recorded."""
        for url in (self.ws_url, self.http_url):
            if url:
                text = text.replace(url, redact_url(url))
        return text


def _connection_error(exc: BaseException) -> bool:
    """The connection went away (not a notification web3 could not read)."""
    from web3.exceptions import ProviderConnectionError, TaskNotRunning
    from websockets.exceptions import ConnectionClosed

    kinds = (ConnectionClosed, OSError, asyncio.TimeoutError, ProviderConnectionError, TaskNotRunning)
    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < 8:
        if isinstance(e, kinds):
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    except asyncio.TimeoutError:
        pass
