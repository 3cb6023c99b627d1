"""The live EVM gateway: liquidation, atomic-arbitrage and plain-swap intents as transactions
(of the bot's executor contracts, or the V2 router), simulated on paper (the default) or signed and
sent with ``execute``.

``EvmGateway(config, key=..., execute=..., relay=..., flush=...)`` (or ``build_evm_gateway(table,
execute=..., flush=...)`` from a config table) is a ``domain.ports.Gateway``: ``bind(report)``,
``submit(intent)`` (returns at once; the work runs in an asyncio task on the running loop and every
execution event goes to ``report`` on the loop's thread), plus what the live runner needs:
``handles(venue)``, ``restore(events)`` on a resumed run, ``await start()`` (reconcile the nonce
manager with the chain before anything is sent, follow what a crash left open, finish what it left
unreported), ``await drain()`` (wait for the work in flight), ``await close(wait=True)`` (``wait=
False``: stop following; open transactions stay open in the log for the next start) and ``health()``.

Venues (the same as the sim's ``sim/gateway.py``, and the same calldata: ``sim.chain.executor.
liquidate_fn``, ``sim.chain.arb_executor.ArbExecutor.arbitrage_call``, ``sim.chain.pyevm.call_data``):

* ``aave-v3:<chain>`` / ``<chain>:aave``, side ``liquidate``, ``target`` the borrower, instrument
  ``"<collateral>/<debt>"`` (addresses or the config's token symbols): with a ``route``, one call of
  ``AaveLiquidator.liquidate`` (flash loan, ``liquidationCall``, sell along the route, revert below
  ``min_profit``); without, ``Pool.liquidationCall`` from the sender's own debt asset.
  Fill from the Aave pool's ``LiquidationCall`` log for the target: ``amount`` collateral seized,
  ``notional`` debt repaid; for the executor, two ``InventoryChanged`` from its ``Liquidated`` log.
* ``<chain>:arb-executor``, side ``arb``, ``route`` of pools from ``profit_asset`` (or the config's
  ``arb_token``) back to it: ``ArbExecutor.arbitrage`` with a flash swap; fill from its
  ``Arbitraged`` log (``amount`` out, ``notional`` in).
* ``<chain>:swap``, side ``buy``/``sell``, ``instrument`` a V2 pair, ``profit_asset`` the token
  bought, ``min_profit`` the least out (``cex_dex_arb``'s pool legs; the sim's ``PoolSwaps``):
  ``UniswapV2Router02.swapExactTokensForTokens`` from the sender's balance; fill from the tokens'
  ``Transfer`` logs (``amount`` base moved, ``notional`` quote moved).

**Paper** (default): the call is simulated with ``eth_simulateV1`` from ``sender`` in the block
after the latest head (its number, ``block_time`` later, at its base fee): the logs it would emit are
decoded exactly as a receipt's (fills are computed, never echoed from the intent); gas is the
simulation's ``gasUsed`` priced at that next block's base fee (EIP-1559 from the head) plus the tip.
A private intent with a relay and a key is also checked with ``eth_callBundle`` (the relay's
verdict wins when it says the bundle reverts). Reports: ``OrderAcknowledged`` + ``OrderFilled``
(+ ``InventoryChanged``) or ``OrderFailed`` ("would revert: ..."), ``source="paper:evm:<chain>"``.

With ``simulate = "revm-fork"`` (the gateway table's key; default ``"eth_call"``: the node's
``eth_simulateV1`` as above) the call runs instead on a revm fork of the node's state at the head
(``sim.chain.revm_fork``: pyrevm reads what the call touches from the node once, then locally; one
fork per head, reused by the intents of that block), in the same next-block context: the same
logs, gas and revert data as the node's simulation (tested on anvil), for execute's precheck too.

**Execute**: simulate first (``precheck``: an intent that would revert fails without costing gas;
the gas limit is the simulated gas x ``gas_headroom_bps``), choose EIP-1559 fees (``live.fees``),
take a nonce (``live.nonces``: refused until reconciled), sign with the key, record
``TransactionSigned`` (raw bytes) and **flush the log**, then broadcast: ``eth_sendRawTransaction``,
or ``eth_sendBundle`` to the relay for ``bundle_blocks`` target blocks when ``intent.private``. Then
follow it: ``TransactionBroadcast``, ``TransactionSubmitted``, ``TransactionPending`` (seen in the
node's mempool), and ``TransactionIncluded`` (block, index, status, gas used, effective gas price,
the revert reason replayed on the block's state) with the fill or ``OrderFailed``; a bundle not in
its target blocks: ``TransactionDropped`` + ``OrderFailed``; a nonce taken by a transaction the log
did not sign: ``TransactionReplaced`` + ``OrderFailed``; a replacement on purpose (``replace``):
a second ``TransactionSigned`` with ``replaces``, and the one not mined ``TransactionReplaced``.
``source="live:evm:<chain>"``.

The JSON-RPC client is this module's ``JsonRpc`` (aiohttp, one session; what web3's async HTTP
provider does, without its per-call middleware). Secrets: the key object never prints itself;
URLs are not put in events (only the configured names).
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from web3 import Web3

from tapedeck.adapters import evm_abis
from tapedeck.adapters.evm_logs import EventDecoder
from tapedeck.domain import events as ev
from tapedeck.live.base import Clock
from tapedeck.live.fees import FeePolicy, FeeRefused, Fees, choose_fees
from tapedeck.live.flashbots import FlashbotsRelay, RelayError
from tapedeck.live.keys import SigningKey
from tapedeck.live.nonces import NonceManager, NotReconciled, RpcError, is_already_known

Report = Callable[[ev.Event], None]
BPS = 10_000
LIQUIDATE_GAS_CAP = 1_200_000  # sim.chain.executor.LIQUIDATE_GAS: the most a liquidation may use
ARB_GAS_CAP = 1_500_000  # sim.chain.arb_executor.ARB_GAS
PLAIN_LIQUIDATION_GAS_CAP = 900_000
SWAP_GAS_CAP = 400_000  # a V2 router swap through one pair uses ~110k
_TRANSFER = bytes(Web3.keccak(text="Transfer(address,address,uint256)"))
SIMULATE = ("eth_call", "revm-fork")  # EvmGatewayConfig.simulate
TRANSPORT = -1  # RpcError.code of a request that got no answer (the node may or may not have acted)


class EvmGatewayConfigError(ValueError):
    """A gateway config that cannot work; the message names the key."""


@dataclass(frozen=True)
class EvmGatewayConfig:
    """What the runner's ``[[gateways]] kind = "evm"`` table gives (see ``from_mapping``)."""

    chain: str  # the chain's name in events and venues ("anvil", "mainnet")
    rpc_url: str
    sender: str = ""  # the executors' owner; with a key it must be the key's address
    liquidator: str = ""  # AaveLiquidator address
    aave_pool: str = ""  # the Aave v3 Pool (its LiquidationCall logs are the fill)
    arb_executor: str = ""  # ArbExecutor address
    arb_token: str = ""  # the token an arbitrage starts and ends in (default: the intent's profit_asset)
    v2_router: str = ""  # UniswapV2Router02 for plain swaps (venue "<chain>:swap")
    swap_deadline_s: int = 300  # a plain swap's router deadline: this long after it is built
    tokens: Mapping[str, str] = field(default_factory=dict)  # symbol -> address (instruments)
    pools: Mapping[str, str] = field(default_factory=dict)  # route name -> pool address
    v3_pools: tuple[str, ...] = ()  # pools known to be V3 (others are asked: a V3 pool answers fee())
    fees: FeePolicy = field(default_factory=FeePolicy)
    gas_headroom_bps: int = 13_000  # gas limit = simulated gas x this / 10000
    bundle_blocks: int = 1  # a bundle is offered for this many blocks after the head
    precheck: bool = True  # execute: simulate first, never send what would revert
    poll_interval: float = 0.25  # seconds between receipt polls
    chain_id: int = 0  # 0: asked from the node
    block_time: int = 12  # seconds from the head to the next block (simulations run at that time)
    replace_after_blocks: int = 0  # a public transaction pending this many blocks is re-bid (0: never)
    max_replacements: int = 3  # at most this many re-bids per intent
    # how paper (and execute's precheck) simulates: "eth_call" = the node's eth_simulateV1, "revm-fork"
    # = a revm fork of the node's state at the head (sim.chain.revm_fork), in this process
    simulate: str = "eth_call"

    def __post_init__(self) -> None:
        if self.simulate not in SIMULATE:
            raise EvmGatewayConfigError(f"simulate must be one of {', '.join(SIMULATE)}, got {self.simulate!r}")

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], where: str = "[gateway]") -> "EvmGatewayConfig":
        known = {f for f in cls.__dataclass_fields__}  # type: ignore[attr-defined]
        data = dict(table)
        unknown = sorted(set(data) - known)
        if unknown:
            raise EvmGatewayConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        for req in ("chain", "rpc_url"):
            if not data.get(req):
                raise EvmGatewayConfigError(f"{where}: {req} is required")
        if isinstance(data.get("fees"), Mapping):
            try:
                data["fees"] = FeePolicy(**{k: int(v) for k, v in data["fees"].items()})
            except (TypeError, ValueError) as e:
                raise EvmGatewayConfigError(f"{where}.fees: {e}") from None
        if "v3_pools" in data:
            data["v3_pools"] = tuple(data["v3_pools"])
        return cls(**data)


class JsonRpc:
    """A small asyncio JSON-RPC client over HTTP (aiohttp)."""

    def __init__(self, url: str, *, name: str = "rpc", timeout: float = 10.0) -> None:
        self.url, self.name, self.timeout = url, name, timeout
        self._session: Any = None
        self._id = 0
        self.calls = 0

    def __repr__(self) -> str:
        return f"JsonRpc(name={self.name!r})"

    async def call(self, method: str, params: list[Any]) -> Any:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._id += 1
        self.calls += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        try:
            async with self._session.post(self.url, data=body, headers={"Content-Type": "application/json"}) as r:
                answer = json.loads(await r.text())
        except (aiohttp.ClientError, ValueError, asyncio.TimeoutError) as e:
            raise RpcError(method, TRANSPORT, f"{self.name}: {type(e).__name__}: {e}") from None
        if "error" in answer:
            err = answer["error"] or {}
            data = err.get("data", "")
            raise RpcError(method, int(err.get("code", 0)), str(err.get("message", "")),
                           data if isinstance(data, str) else json.dumps(data))
        return answer.get("result")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@dataclass(frozen=True)
class Call:
    """A transaction to make for an intent: ``to``, ``data``, ``value``, its gas cap, its kind."""

    kind: str  # "executor" | "plain" | "arb" | "swap"
    to: str
    data: bytes
    gas_cap: int
    value: int = 0
    swap: tuple[str, str, bool] = ("", "", False)  # a plain swap's (token in, token out, buys the base)


@dataclass(frozen=True)
class Simulated:
    ok: bool
    gas_used: int
    logs: list[dict[str, Any]]
    return_data: str
    error: str


class Refused(Exception):
    """Internal: the intent cannot be acted on; the message is the ``OrderFailed`` reason."""


def _hex(n: int) -> str:
    return hex(int(n))


def _int(v: Any) -> int:
    return int(v, 16) if isinstance(v, str) else int(v or 0)


class EvmGateway:
    """See the module docstring."""

    def __init__(self, config: EvmGatewayConfig, *, key: SigningKey | None = None, execute: bool = False,
                 relay: FlashbotsRelay | None = None, rpc: Any = None, clock: Callable[[], int] | None = None,
                 flush: Callable[[], None] | None = None, report: Report | None = None) -> None:
        from tapedeck.sim.chain.artifacts import load, load_own

        self.config, self.key, self.execute, self.relay = config, key, execute, relay
        if execute:
            if key is None:
                raise EvmGatewayConfigError("execute needs a signing key (TAPEDECK_PRIVATE_KEY or a keystore)")
            if flush is None:
                raise EvmGatewayConfigError("execute needs the run log's flush: a signed transaction is saved "
                                            "before it is sent")
        sender = config.sender or (key.address if key is not None else "")
        if key is not None and sender.lower() != key.address.lower():
            raise EvmGatewayConfigError(f"sender {sender} is not the key's address {key.address}")
        if not sender:
            raise EvmGatewayConfigError("sender is required in paper mode without a key (the executors' owner)")
        self.sender = Web3.to_checksum_address(sender)
        self.chain = config.chain
        self.rpc = rpc if rpc is not None else JsonRpc(config.rpc_url, name=f"{config.chain}-rpc")
        self.now = clock or Clock()
        self.flush = flush
        self.report: Report | None = report
        self.nonces = NonceManager(self.chain, self.sender)
        self.venues = {f"aave-v3:{self.chain}": "liquidate", f"{self.chain}:aave": "liquidate",
                       f"{self.chain}:arb-executor": "arb", f"{self.chain}:swap": "swap"}
        self.source = f"live:evm:{self.chain}" if execute else f"paper:evm:{self.chain}"
        self.intents: dict[int, ev.OrderIntended] = {}  # intent seq -> intent (this gateway's, open or not)
        self.tasks: set[asyncio.Task[Any]] = set()
        self._send_lock: asyncio.Lock | None = None
        self._v3: dict[str, bool] = {a.lower(): True for a in config.v3_pools}
        self._chain_id = config.chain_id
        w3 = Web3()
        self._liquidator = w3.eth.contract(abi=load_own("AaveLiquidator").abi)
        self._arb = w3.eth.contract(abi=load_own("ArbExecutor").abi)
        self._pool = w3.eth.contract(abi=load("@aave/core-v3", "Pool").abi)
        self._router = w3.eth.contract(abi=load("@uniswap/v2-periphery", "UniswapV2Router02").abi)
        self._pair_tokens: dict[str, tuple[str, str]] = {}
        self._liquidations = EventDecoder(evm_abis.AAVE_V3_POOL, only=["LiquidationCall"])
        self._liquidated = EventDecoder(load_own("AaveLiquidator").abi, only=["Liquidated"])
        self._arbitraged = EventDecoder(load_own("ArbExecutor").abi, only=["Arbitraged"])
        self._symbols = {v.lower(): k for k, v in config.tokens.items()}
        self.started = False
        self._stopping = False
        self._reporting: set[str] = set()  # mined transactions being reported
        self._unfinished: list[tuple[int, ev.TransactionIncluded | None, bool]] = []  # from restore
        self._finished: set[int] = set()  # intents this process reported an end for
        self._fork: Any = None  # simulate = "revm-fork": the fork at the latest head simulated on
        self._fork_pool: Any = None  # its one worker thread
        self.fork_stats = {"forks": 0, "calls": 0}  # revm forks made, calls simulated on them

    def __repr__(self) -> str:
        return f"EvmGateway(chain={self.chain!r}, sender={self.sender}, execute={self.execute})"

    # ------------------------------------------------------------------ the port and the runner's hooks

    def bind(self, report: Report) -> None:
        self.report = report

    def handles(self, venue: str) -> bool:
        return venue in self.venues

    def submit(self, intent: ev.OrderIntended) -> None:
        if self.report is None:
            raise RuntimeError("EvmGateway.submit before bind(report)")
        self.intents[intent.seq] = intent
        self._spawn(self._handle(intent))

    def restore(self, events: Iterable[ev.Event]) -> None:
        """A resumed run: the nonce state and this gateway's intents from the recorded log, and
        which of them the previous process left unfinished (no final fill or failure recorded)."""
        evs = list(events)
        self.nonces.restore(evs)
        finished: set[int] = set()
        included: dict[int, ev.TransactionIncluded] = {}
        signed: set[int] = set()
        for e in evs:
            t = type(e)
            if t is ev.OrderIntended and e.venue in self.venues:
                self.intents[e.seq] = e
            elif t is ev.OrderFailed or (t is ev.OrderFilled and e.final):
                finished.add(e.intent)
            elif t is ev.TransactionIncluded:
                included[e.intent] = e
            elif t is ev.TransactionSigned:
                signed.add(e.intent)
        self._unfinished = [(seq, included.get(seq), seq in signed) for seq in self.intents if seq not in finished]

    async def start(self) -> None:
        """Reconcile with the chain (execute) and finish what a previous process left: a mined
        transaction whose outcome was not recorded is reported from its receipt; an intent that
        never reached signing fails ("not sent"); the open transactions are followed."""
        if self.execute:
            await self._reconcile()
        open_intents = {s.intent for s in self.nonces.open.values()}
        for seq, inc, was_signed in self._unfinished:
            intent = self.intents[seq]
            if seq in open_intents or seq in self._finished:
                continue  # reconciling follows it, or has ended it
            if inc is not None:
                receipt = await self.rpc.call("eth_getTransactionReceipt", [inc.tx])
                if receipt:
                    await self._outcome(intent, self.nonces.signed[inc.tx], receipt, inc.reason)
                    continue
            if not was_signed:
                self._fail(intent, "not sent: the previous process stopped before acting on it")
            else:
                self._fail(intent, "dropped: its transaction was closed without being mined (before the restart)")
        self._unfinished = []
        self.started = True

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def close(self, wait: bool = True) -> None:
        """Wait for the work in flight (``wait``), or stop following open transactions (they stay
        open in the log: the next start reconciles them), then close the connections."""
        if not wait:
            self._stopping = True
        await self.drain()
        for c in (self.rpc, self.relay):
            if c is not None and hasattr(c, "close"):
                await c.close()
        if self._fork_pool is not None:  # the fork is let go on its own thread (pyrevm's objects stay on one)
            await asyncio.get_running_loop().run_in_executor(self._fork_pool, setattr, self, "_fork", None)
            self._fork_pool.shutdown()
            self._fork_pool = None

    def health(self) -> dict[str, Any]:
        return {"chain": self.chain, "mode": "execute" if self.execute else "paper", "sender": self.sender,
                "reconciled": self.nonces.reconciled, "next_nonce": self.nonces.next_nonce,
                "open_transactions": len(self.nonces.open), "tasks": len(self.tasks)}

    # ------------------------------------------------------------------ reporting

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _record(self, e: ev.Event, *, durable: bool = False) -> None:
        """Fold into the nonce state, report to the run (appended on the loop's thread), and with
        ``durable`` commit the log before returning (nothing leaves the process before it is saved)."""
        self.nonces.fold(e)
        if type(e) is ev.OrderFailed or (type(e) is ev.OrderFilled and e.final):
            self._finished.add(e.intent)
        assert self.report is not None
        self.report(e)
        if durable:
            assert self.flush is not None
            self.flush()

    def _common(self, intent: ev.OrderIntended) -> dict[str, Any]:
        return dict(ts=self.now(), source=self.source, cause=intent.seq, intent=intent.seq)

    def _fail(self, intent: ev.OrderIntended, reason: str) -> None:
        self._record(ev.OrderFailed(**self._common(intent), venue=intent.venue, reason=reason))

    # ------------------------------------------------------------------ one intent

    async def _handle(self, intent: ev.OrderIntended) -> None:
        try:
            call = await self._build(intent)
            if self.execute:
                await self._send(intent, call)
            else:
                await self._paper(intent, call)
        except Refused as e:
            self._fail(intent, str(e))
        except (RpcError, RelayError, FeeRefused, NotReconciled) as e:
            self._fail(intent, f"{type(e).__name__}: {e}")
        except Exception as e:  # noqa: BLE001 - a gateway bug must fail the intent, not the run
            self._fail(intent, f"gateway error: {type(e).__name__}: {e}")

    async def _build(self, intent: ev.OrderIntended) -> Call:
        from tapedeck.sim.chain.arb_executor import ArbExecutor
        from tapedeck.sim.chain.executor import Hop, liquidate_fn
        from tapedeck.sim.chain.pyevm import call_data

        kind = self.venues.get(intent.venue)
        if kind is None:
            raise Refused(f"no venue {intent.venue!r} on this gateway (venues: {', '.join(self.venues)})")
        if intent.amount <= 0:
            raise Refused(f"{intent.venue}: amount must be > 0, got {intent.amount}")
        cfg = self.config
        if kind == "liquidate":
            if intent.side != "liquidate" or not intent.target:
                raise Refused(f"{intent.venue} takes side 'liquidate' with a target borrower, got side "
                              f"{intent.side!r} target {intent.target!r}")
            collateral, sep, debt = intent.instrument.partition("/")
            if not sep:
                raise Refused(f"{intent.venue}: instrument {intent.instrument!r} is not '<collateral>/<debt>'")
            collateral, debt = self._asset(collateral), self._asset(debt)
            if not intent.route:
                if intent.private:
                    raise Refused(f"{intent.venue}: a private liquidation goes through the executor: give it a route")
                if not cfg.aave_pool:
                    raise Refused(f"{intent.venue}: no aave_pool configured")
                fn = self._pool.functions.liquidationCall(collateral, debt, Web3.to_checksum_address(intent.target),
                                                          intent.amount, False)
                return Call("plain", cfg.aave_pool, call_data(fn), PLAIN_LIQUIDATION_GAS_CAP)
            if not cfg.liquidator:
                raise Refused(f"{intent.venue}: no liquidator (AaveLiquidator address) configured")
            if intent.profit_asset and intent.profit_asset.lower() != debt.lower():
                raise Refused(f"{intent.venue}: the executor keeps its profit in the debt asset {debt.lower()}, "
                              f"not {intent.profit_asset}")
            route = [Hop(p, await self._is_v3(p)) for p in (self._pool_address(r) for r in intent.route)]
            fn = liquidate_fn(self._liquidator, collateral, debt, intent.target, intent.amount, route,
                              intent.min_profit)
            return Call("executor", cfg.liquidator, call_data(fn), LIQUIDATE_GAS_CAP)
        if kind == "swap":
            return await self._swap_call(intent)
        if intent.side != "arb" or len(intent.route) < 2:
            raise Refused(f"{intent.venue} takes side 'arb' with a route of two or more pools, got "
                          f"{intent.side!r} route {intent.route!r}")
        if not cfg.arb_executor:
            raise Refused(f"{intent.venue}: no arb_executor configured")
        token = self._asset(intent.profit_asset or cfg.arb_token) if (intent.profit_asset or cfg.arb_token) else ""
        if not token:
            raise Refused(f"{intent.venue}: no start token (the intent's profit_asset or the config's arb_token)")
        route = [Hop(p, await self._is_v3(p)) for p in (self._pool_address(r) for r in intent.route)]
        fn = ArbExecutor(None, self._arb, self.sender).arbitrage_call(token, intent.amount, route,  # type: ignore[arg-type]
                                                                      intent.min_profit, flash=True)
        return Call("arb", cfg.arb_executor, call_data(fn), ARB_GAS_CAP)

    async def _swap_call(self, intent: ev.OrderIntended) -> Call:
        """A plain swap (``cex_dex_arb``'s pool legs, the sim's ``PoolSwaps``): ``instrument`` a V2
        pair, side ``buy`` (``amount`` of the quote in for the base) or ``sell`` (``amount`` base in),
        ``profit_asset`` the token bought, ``min_profit`` the least it may pay out; through the V2
        router (``swapExactTokensForTokens``) from the sender's own balance (approved beforehand)."""
        import time

        from tapedeck.sim.chain.pyevm import call_data

        if intent.side not in ("buy", "sell"):
            raise Refused(f"{intent.venue} swaps take side buy or sell, got {intent.side!r}")
        if not self.config.v2_router:
            raise Refused(f"{intent.venue}: no v2_router configured")
        if not intent.profit_asset:
            raise Refused(f"{intent.venue}: profit_asset (the token the swap buys) is required")
        pair = self._pool_address(intent.instrument)
        key = pair.lower()
        if key not in self._pair_tokens:
            t0 = await self.rpc.call("eth_call", [{"to": pair, "data": "0x0dfe1681"}, "latest"])  # token0()
            t1 = await self.rpc.call("eth_call", [{"to": pair, "data": "0xd21220a7"}, "latest"])  # token1()
            self._pair_tokens[key] = tuple(Web3.to_checksum_address("0x" + str(t)[-40:]) for t in (t0, t1))  # type: ignore[assignment]
        tokens = self._pair_tokens[key]
        tout = self._asset(intent.profit_asset)
        if tout not in tokens:
            raise Refused(f"{intent.venue}: {intent.profit_asset} is not a token of pair {key}")
        tin = tokens[1] if tout == tokens[0] else tokens[0]
        fn = self._router.functions.swapExactTokensForTokens(intent.amount, intent.min_profit, [tin, tout], self.sender,
                                                             int(time.time()) + self.config.swap_deadline_s)
        return Call("swap", self.config.v2_router, call_data(fn), SWAP_GAS_CAP, swap=(tin, tout, intent.side == "buy"))

    def _moved(self, logs: list[dict[str, Any]], token: str, incoming: bool) -> int:
        """What ERC-20 ``token`` moved into (``incoming``) or out of the sender in these logs."""
        me, total = self.sender.lower(), 0
        for log in logs:
            topics = [bytes.fromhex(str(t)[2:]) if isinstance(t, str) else bytes(t) for t in log.get("topics", [])]
            if str(log.get("address", "")).lower() != token.lower() or len(topics) != 3 or topics[0] != _TRANSFER:
                continue
            who = "0x" + (topics[2] if incoming else topics[1])[-20:].hex()
            if who == me:
                data = log.get("data", "0x")
                total += int(data, 16) if isinstance(data, str) else int.from_bytes(bytes(data), "big")
        return total

    def _asset(self, name: str) -> str:
        name = name.strip()
        addr = self.config.tokens.get(name) or self.config.tokens.get(name.upper())
        if addr is None:
            if not Web3.is_address(name):
                raise Refused(f"unknown token {name!r} (tokens: {', '.join(self.config.tokens) or 'none'})")
            addr = name
        return Web3.to_checksum_address(addr)

    def _pool_address(self, name: str) -> str:
        addr = self.config.pools.get(name) or self.config.pools.get(name.lower()) or name
        if not Web3.is_address(addr):
            raise Refused(f"unknown pool {name!r} in the route (pools: {', '.join(self.config.pools) or 'none'})")
        return Web3.to_checksum_address(addr)

    async def _is_v3(self, pool: str) -> bool:
        key = pool.lower()
        if key not in self._v3:
            try:
                out = await self.rpc.call("eth_call", [{"to": pool, "data": "0xddca3f43"}, "latest"])
                self._v3[key] = len(bytes.fromhex(str(out)[2:])) == 32
            except RpcError:
                self._v3[key] = False
        return self._v3[key]

    # ------------------------------------------------------------------ simulation and fills

    async def _head(self) -> dict[str, Any]:
        return await self.rpc.call("eth_getBlockByNumber", ["latest", False])

    async def _simulate(self, call: Call, head: Mapping[str, Any]) -> Simulated:
        """``eth_simulateV1`` of the call in the block after ``head`` (its number, ``block_time``
        seconds later, at the base fee it will charge): the same timestamp-dependent work (Aave's
        index updates) as the transaction will do when mined there, so the same gas and logs."""
        nxt = choose_fees(_int(head.get("baseFeePerGas", 0)), _int(head["gasUsed"]), _int(head["gasLimit"]), 0,
                          FeePolicy(max_fee_cap=0)).base_fee
        overrides = {"number": _hex(_int(head["number"]) + 1), "time": _hex(_int(head["timestamp"]) + self.config.block_time),
                     "baseFeePerGas": _hex(nxt)}
        params = [{"blockStateCalls": [{"blockOverrides": overrides,
                                        "calls": [{"from": self.sender, "to": call.to, "data": "0x" + call.data.hex(),
                                                   "value": _hex(call.value), "gas": _hex(call.gas_cap)}]}],
                   "validation": False}, _hex(_int(head["number"]))]
        if self.config.simulate == "revm-fork":
            return await self._fork_simulate(call, head, _int(overrides["time"]))
        blocks = await self.rpc.call("eth_simulateV1", params)
        r = blocks[0]["calls"][0]
        ok = _int(r.get("status", "0x0")) == 1
        err = r.get("error") or {}
        return Simulated(ok, _int(r.get("gasUsed", 0)), list(r.get("logs") or []), str(r.get("returnData", "0x")),
                         "" if ok else str(err.get("data") or r.get("returnData") or err.get("message") or ""))

    async def _fork_simulate(self, call: Call, head: Mapping[str, Any], timestamp: int) -> Simulated:
        """The call on a revm fork of the node at ``head`` (``simulate = "revm-fork"``), in the next
        block's context: the same fields as ``eth_simulateV1`` gives. One fork per head, kept for the
        intents of the same block (its reads are then local), made and used on one worker thread."""
        import concurrent.futures

        from tapedeck.sim.chain.revm_fork import RevmFork

        if self._chain_id == 0:
            self._chain_id = _int(await self.rpc.call("eth_chainId", []))
        if self._fork_pool is None:
            self._fork_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"revm-fork-{self.chain}")
        block_hash, number, chain_id = str(head["hash"]), _int(head["number"]), self._chain_id

        def run() -> Any:
            fork = self._fork
            if fork is None or fork.block_hash != block_hash:
                fork = self._fork = RevmFork(self.config.rpc_url, block_hash, number=number, timestamp=timestamp,
                                             chain_id=chain_id)
                self.fork_stats["forks"] += 1
            self.fork_stats["calls"] += 1
            return fork.call(self.sender, call.to, call.data, value=call.value, gas=call.gas_cap)

        r = await asyncio.get_running_loop().run_in_executor(self._fork_pool, run)
        out = "0x" + r.output.hex()
        return Simulated(r.ok, r.gas_used, r.logs, out, "" if r.ok else out)

    def _explain(self, call: Call, revert: str) -> str:
        if call.kind == "arb":
            from tapedeck.sim.chain.arb_executor import decode_revert, explain_revert

            name, args = decode_revert(revert)
            if name:
                return f"{name}; {', '.join(f'{k}={v}' for k, v in args.items())}"
            return explain_revert(revert) or "no reason given"
        from tapedeck.sim.chain.executor import explain_revert as explain_liq

        return explain_liq(revert) or "no reason given"

    def _fill(self, intent: ev.OrderIntended, call: Call, logs: list[dict[str, Any]], fee: int,
              common: dict[str, Any]) -> list[ev.Event]:
        """The fill (and inventory changes) the logs show, or an ``OrderFailed`` saying what is missing."""
        receipt = {"logs": logs}
        if call.kind == "swap":
            tin, tout, buy = call.swap
            paid, got = self._moved(logs, tin, False), self._moved(logs, tout, True)
            base, quote = (got, paid) if buy else (paid, got)
            return [ev.OrderFilled(**common, venue=intent.venue, amount=base, notional=quote, fee=fee, fee_asset="ETH")]
        if call.kind == "arb":
            got = self._arbitraged.decode_receipt(receipt, address=call.to)
            if not got:
                return [ev.OrderFailed(**common, venue=intent.venue, reason="no Arbitraged log in the transaction")]
            a = got[0].args
            return [ev.OrderFilled(**common, venue=intent.venue, amount=int(a["amountOut"]), notional=int(a["amountIn"]),
                                   fee=fee, fee_asset="ETH")]
        mine = [d for d in self._liquidations.decode_receipt(receipt, address=self.config.aave_pool or None)
                if str(d.args["user"]).lower() == intent.target.lower()]
        if not mine:
            return [ev.OrderFailed(**common, venue=intent.venue,
                                   reason=f"no LiquidationCall log for {intent.target.lower()} in the transaction")]
        log = mine[0].args
        out: list[ev.Event] = [ev.OrderFilled(**common, venue=intent.venue, amount=int(log["liquidatedCollateralAmount"]),
                                              notional=int(log["debtToCover"]), fee=fee, fee_asset="ETH")]
        if call.kind == "executor":
            liq = self._liquidated.decode_receipt(receipt, address=call.to)
            if liq:
                a = liq[0].args
                proceeds = int(a["profit"]) + int(a["debtRepaid"]) + int(a["premium"])
                reason = f"sold by the executor through {len(intent.route)} pool(s); profit {int(a['profit'])}"
                out += [ev.InventoryChanged(**common, venue=intent.venue, strategy=intent.strategy,
                                            asset=self._symbol(str(log["collateralAsset"])),
                                            delta=-int(a["collateralSeized"]), reason=reason),
                        ev.InventoryChanged(**common, venue=intent.venue, strategy=intent.strategy,
                                            asset=self._symbol(str(log["debtAsset"])),
                                            delta=proceeds - int(a["premium"]), reason=reason)]
        return out

    def _symbol(self, address: str) -> str:
        return self._symbols.get(address.lower(), address.lower())

    def _fees(self, intent: ev.OrderIntended, head: Mapping[str, Any]) -> Fees:
        return choose_fees(_int(head.get("baseFeePerGas", 0)), _int(head["gasUsed"]), _int(head["gasLimit"]),
                           intent.max_priority_fee, self.config.fees)

    async def _paper(self, intent: ev.OrderIntended, call: Call) -> None:
        block = await self._head()
        fees, head = self._fees(intent, block), _int(block["number"])
        sim = await self._simulate(call, block)
        common = self._common(intent)
        if intent.private and self.relay is not None and self.key is not None:
            verdict = await self._call_bundle(call, fees, head)
            if verdict:
                self._fail(intent, f"would revert (relay {self.relay.name} eth_callBundle): {verdict}")
                return
        if not sim.ok:
            self._fail(intent, f"would revert: {self._explain(call, sim.error)}")
            return
        fee = sim.gas_used * (fees.base_fee + fees.max_priority_fee)
        self._record(ev.OrderAcknowledged(**common, venue=intent.venue, order_id=f"paper-{intent.seq}"))
        for e in self._fill(intent, call, sim.logs, fee, common):
            self._record(e)

    async def _call_bundle(self, call: Call, fees: Fees, head: int) -> str:
        """The relay's simulation of the signed transaction (paper: signed at the chain's pending
        nonce, never recorded or sent); "" if it succeeds, else its error."""
        assert self.relay is not None and self.key is not None
        nonce = _int(await self.rpc.call("eth_getTransactionCount", [self.sender, "pending"]))
        raw, _ = self.key.sign_transaction(await self._tx(call, fees, nonce, call.gas_cap))
        calls, _answer = await self.relay.call_bundle([raw], head + 1)
        bad = [c for c in calls if c.error]
        return "; ".join(f"{c.error} {c.revert}".strip() for c in bad)

    async def _tx(self, call: Call, fees: Fees, nonce: int, gas: int) -> dict[str, Any]:
        if not self._chain_id:
            self._chain_id = _int(await self.rpc.call("eth_chainId", []))
        return {"type": 2, "chainId": self._chain_id, "nonce": nonce, "gas": gas, "maxFeePerGas": fees.max_fee,
                "maxPriorityFeePerGas": fees.max_priority_fee, "to": Web3.to_checksum_address(call.to),
                "value": call.value, "data": call.data, "accessList": []}

    # ------------------------------------------------------------------ execute

    def _lock(self) -> asyncio.Lock:
        if self._send_lock is None:
            self._send_lock = asyncio.Lock()
        return self._send_lock

    async def _reconcile(self) -> None:
        async with self._lock():
            await self._reconcile_locked()

    async def _reconcile_locked(self) -> None:
        head = _int(await self.rpc.call("eth_blockNumber", []))
        rec = await self.nonces.reconcile(self.rpc, now=self.now, head=head, source=self.source)
        for e in rec.events:
            self._record(e)
        for signed, why in rec.closed:
            intent = self.intents.get(signed.intent)
            if intent is not None:
                common = self._common(intent)
                if not any(type(x) is ev.TransactionDropped and x.tx == signed.tx for x in rec.events):
                    self._record(ev.TransactionDropped(**common, chain=self.chain, tx=signed.tx, reason=why))
                self._fail(intent, f"dropped: {why}")
        for tx, receipt in rec.mined.items():
            signed = self.nonces.signed[tx]
            self._spawn(self._mined(signed, receipt))
        for signed in rec.resend:  # signed, saved, never sent (a crash): the same bytes, the blocks still ahead
            intent = self.intents.get(signed.intent)
            if intent is not None and self.relay is not None:
                await self._send_bundle(self._common(intent), signed, head,
                                        detail="sent from the log after a restart (signed, never sent)")
        for signed in rec.follow:
            self._spawn(self._follow(signed, head))

    async def _send(self, intent: ev.OrderIntended, call: Call) -> None:
        cfg = self.config
        gas = call.gas_cap
        block = await self._head()
        if cfg.precheck:
            sim = await self._simulate(call, block)
            if not sim.ok:
                self._fail(intent, f"would revert: {self._explain(call, sim.error)} (not sent)")
                return
            gas = min(call.gas_cap, max(21_000, -(-sim.gas_used * cfg.gas_headroom_bps // BPS)))
        fees, head = self._fees(intent, block), _int(block["number"])
        route = "bundle" if intent.private else "public"
        if route == "bundle" and self.relay is None:
            raise Refused(f"{intent.venue}: a private intent needs a relay ([gateway] relay) configured")
        async with self._lock():
            if not self.nonces.reconciled:
                await self._reconcile_locked()
            tx = await self._tx(call, fees, self.nonces.next_nonce or 0, gas)  # chain id asked before the nonce
            nonce = self.nonces.take()  # no await from here to the flush: the nonce is used by these bytes only
            tx["nonce"] = nonce
            assert self.key is not None
            raw, tx_hash = self.key.sign_transaction(tx)
            target = head + cfg.bundle_blocks if route == "bundle" else 0
            signed = ev.TransactionSigned(**self._common(intent), chain=self.chain, tx=tx_hash,
                                          sender=self.sender.lower(), nonce=nonce, gas=gas, max_fee=fees.max_fee,
                                          max_priority_fee=fees.max_priority_fee, raw="0x" + raw.hex(), route=route,
                                          target_block=target)
            self._record(signed, durable=True)
        signed = self.nonces.signed[tx_hash]  # numbered as recorded (seq) when the report path numbers it
        await self._broadcast(intent, signed, head)

    async def _broadcast(self, intent: ev.OrderIntended, signed: ev.TransactionSigned, head: int) -> None:
        """Hand the saved bytes out. A refusal the node answered (a JSON-RPC error) drops the
        transaction; a transport failure (timeout, connection lost: the bytes may have arrived) and
        any relay failure leave it open: ``_follow`` finds it mined, rebroadcasts the same bytes, or
        (a bundle) drops it once its target blocks have passed."""
        common = self._common(intent)
        if signed.route == "bundle":
            await self._send_bundle(common, signed, head)
        else:
            detail = ""
            try:
                await self.rpc.call("eth_sendRawTransaction", [signed.raw])
            except RpcError as e:
                if e.code == TRANSPORT:  # sent, answer lost: submitted, not known accepted; followed, rebroadcast if unknown
                    self._submitted(common, signed)
                    await self._follow(signed, head)
                    return
                if not is_already_known(e):
                    why = f"not broadcast: {e}"
                    self._record(ev.TransactionDropped(**common, chain=self.chain, tx=signed.tx, reason=why))
                    self._fail(intent, f"dropped: {why}")
                    return
                detail = "already known"
            self._record(ev.TransactionBroadcast(**common, chain=self.chain, tx=signed.tx, via="public", detail=detail))
        self._submitted(common, signed)
        await self._follow(signed, head)

    async def _send_bundle(self, common: dict[str, Any], signed: ev.TransactionSigned, head: int,
                           detail: str = "") -> None:
        """The saved bundle to the relay for each block from ``head + 1`` to its target; recorded
        (``TransactionBroadcast``) once the relay took them all. A relay failure leaves it open:
        followed to its target block like any bundle (unknown whether the relay has it)."""
        assert self.relay is not None
        hashes = []
        try:
            for block in range(head + 1, signed.target_block + 1):
                hashes.append(await self.relay.send_bundle([signed.raw], block))
            said = ",".join(h for h in hashes if h)
            self._record(ev.TransactionBroadcast(**common, chain=self.chain, tx=signed.tx,
                                                 via=f"bundle:{self.relay.name}", target_block=signed.target_block,
                                                 detail=f"{detail}: {said}" if detail else said))
        except RelayError:
            pass

    def _submitted(self, common: dict[str, Any], signed: ev.TransactionSigned) -> None:
        self._record(ev.TransactionSubmitted(**common, chain=self.chain, tx=signed.tx, sender=signed.sender,
                                             nonce=signed.nonce, gas=signed.gas, max_fee=signed.max_fee,
                                             max_priority_fee=signed.max_priority_fee))

    async def replace(self, tx_hash: str, reason: str = "fee bump") -> str:
        """Replace an open public transaction on purpose: the same call at the same nonce with fees
        at least +10% over the old (``live.fees.replacement_fees``), signed, saved, then sent; the
        one of the two that is mined closes the other (``TransactionReplaced``). Returns the new hash."""
        from tapedeck.live.fees import replacement_fees

        old = self.nonces.open.get(tx_hash)
        if old is None or old.route != "public":
            raise ValueError(f"{tx_hash} is not an open public transaction of this gateway")
        intent = self.intents[old.intent]
        call = await self._build(intent)
        block = await self._head()
        fees = replacement_fees(Fees(old.max_fee, old.max_priority_fee, 0), self._fees(intent, block), self.config.fees)
        async with self._lock():
            tx = await self._tx(call, fees, old.nonce, old.gas)
            assert self.key is not None
            raw, new_hash = self.key.sign_transaction(tx)
            self._record(ev.TransactionSigned(**self._common(intent), chain=self.chain, tx=new_hash,
                                              sender=self.sender.lower(), nonce=old.nonce, gas=old.gas,
                                              max_fee=fees.max_fee, max_priority_fee=fees.max_priority_fee,
                                              raw="0x" + raw.hex(), route="public", replaces=old.tx), durable=True)
        signed = self.nonces.signed[new_hash]
        common = self._common(intent)
        try:
            await self.rpc.call("eth_sendRawTransaction", [signed.raw])
        except RpcError as e:
            if not is_already_known(e):
                self._record(ev.TransactionDropped(**common, chain=self.chain, tx=new_hash,
                                                   reason=f"replacement not broadcast ({reason}): {e}"))
                return new_hash
        self._record(ev.TransactionBroadcast(**common, chain=self.chain, tx=new_hash, via="public",
                                             detail=f"replaces {old.tx}: {reason}"))
        self._spawn(self._follow(signed, _int(block["number"])))
        return new_hash

    async def _follow(self, signed: ev.TransactionSigned, sent_head: int) -> None:
        """Poll until the transaction is mined, or its bundle's blocks passed, or its nonce was taken.
        Node errors while polling are retried (the transaction may still be mined); ``close(wait=
        False)`` stops following and leaves it open in the log for the next start to reconcile."""
        intent = self.intents.get(signed.intent)
        state = {"pending_said": False, "rebroadcasts": 0, "since": 0}
        while not self._stopping:
            try:
                if await self._poll(signed, intent, state):
                    return
            except RpcError:
                pass  # the node did not answer this time: ask again
            await asyncio.sleep(self.config.poll_interval)

    async def _poll(self, signed: ev.TransactionSigned, intent: ev.OrderIntended | None,
                    state: dict[str, Any]) -> bool:
        """One look at a followed transaction; True once it is closed (reported)."""
        receipt = await self.rpc.call("eth_getTransactionReceipt", [signed.tx])
        if receipt:
            await self._mined(signed, receipt)
            return True
        if signed.tx not in self.nonces.open:  # closed meanwhile (a replacement was mined)
            return True
        head = _int(await self.rpc.call("eth_blockNumber", []))
        if signed.route == "bundle":
            if head < signed.target_block:
                return False
            receipt = await self.rpc.call("eth_getTransactionReceipt", [signed.tx])
            if receipt:
                await self._mined(signed, receipt)
            else:
                self._closed(signed, intent, f"bundle not included by its target block {signed.target_block}")
            return True
        known = await self.rpc.call("eth_getTransactionByHash", [signed.tx])
        if known is not None and known.get("blockNumber") is None:
            if not state["pending_said"]:
                state["pending_said"] = True
                state["since"] = head
                if intent is not None:
                    self._record(ev.TransactionPending(**self._common(intent), chain=self.chain, tx=signed.tx))
            await self._maybe_replace(signed, intent, state, head)
        if known is None:
            count = _int(await self.rpc.call("eth_getTransactionCount", [self.sender, "latest"]))
            if count > signed.nonce:  # its nonce is used: by it, by its replacement, or by a stranger
                await self._settle_nonce(signed.nonce, intent)
                return True
            newest = self.nonces.latest_at(signed.nonce)
            if newest is not None and newest.tx != signed.tx:
                return False  # replaced on purpose: the replacement is the one to send again
            if intent is None:
                return False
            try:  # unknown to the node, its nonce unused: the same bytes again
                await self.rpc.call("eth_sendRawTransaction", [signed.raw])
            except RpcError as e:
                if e.code == TRANSPORT:
                    raise
                if is_already_known(e):
                    return False
                if self.config.replace_after_blocks and await self._rebid(signed, intent, f"the node refused it: {e.message}"):
                    return False
                self._closed(signed, intent, f"the node dropped it and refuses it again: {e.message}")
                return True
            state["rebroadcasts"] += 1
            self._record(ev.TransactionBroadcast(**self._common(intent), chain=self.chain, tx=signed.tx, via="public",
                                                 attempt=self.nonces.broadcasts.get(signed.tx, 0),
                                                 detail="rebroadcast: the node did not know it"))
        return False

    async def _maybe_replace(self, signed: ev.TransactionSigned, intent: ev.OrderIntended | None,
                             state: dict[str, Any], head: int) -> None:
        """A public transaction pending for ``replace_after_blocks`` blocks is re-bid."""
        cfg = self.config
        if not cfg.replace_after_blocks or intent is None or head - state["since"] < cfg.replace_after_blocks:
            return
        state["since"] = head
        await self._rebid(signed, intent, f"pending for {cfg.replace_after_blocks} block(s)")

    async def _rebid(self, signed: ev.TransactionSigned, intent: ev.OrderIntended, why: str) -> bool:
        """Replace ``signed`` with bumped fees (``replace``) if it is the newest at its nonce, the
        intent has re-bid fewer than ``max_replacements`` times and the fee caps allow; True if sent."""
        newest = self.nonces.latest_at(signed.nonce)
        done = sum(1 for s in self.nonces.signed.values() if s.intent == signed.intent and s.replaces)
        if newest is None or newest.tx != signed.tx or done >= self.config.max_replacements:
            return False
        try:
            await self.replace(signed.tx, why)
        except FeeRefused:
            return False  # the caps forbid a higher bid
        return True

    async def _settle_nonce(self, nonce: int, intent: ev.OrderIntended | None) -> None:
        """A nonce the chain has used: the one of ours mined there is reported (it closes the rest);
        if none of ours was, every open one at that nonce was replaced by a stranger, failed once."""
        ours = [s for s in self.nonces.signed.values() if s.nonce == nonce]
        for s in ours:
            receipt = await self.rpc.call("eth_getTransactionReceipt", [s.tx])
            if receipt:
                await self._mined(s, receipt)
                return
        still = [s for s in ours if s.tx in self.nonces.open]
        if intent is None or not still:
            return
        for s in still:
            self._record(ev.TransactionReplaced(**self._common(intent), chain=self.chain, tx=s.tx, nonce=nonce, by="",
                                                reason=f"nonce {nonce} was used by a transaction this log did not sign"))
        self._fail(intent, f"dropped: nonce {nonce} was used by a transaction this log did not sign")

    def _closed(self, signed: ev.TransactionSigned, intent: ev.OrderIntended | None, why: str) -> None:
        if intent is None:
            return
        self._record(ev.TransactionDropped(**self._common(intent), chain=self.chain, tx=signed.tx, reason=why))
        self._fail(intent, f"dropped: {why}")

    async def _mined(self, signed: ev.TransactionSigned, receipt: Mapping[str, Any]) -> None:
        """Report a mined transaction once (its follower and a sibling's may both find it)."""
        intent = self.intents.get(signed.intent)
        if intent is None or signed.tx in self._reporting or signed.tx not in self.nonces.open:
            return
        self._reporting.add(signed.tx)
        others = [o for o in self.nonces.open.values() if o.nonce == signed.nonce and o.tx != signed.tx]
        common = self._common(intent)
        ok = _int(receipt["status"]) == 1
        reason = ""
        call = await self._build(intent)
        if not ok:
            reason = await self._revert_reason(signed, receipt, call)
        self._record(ev.TransactionIncluded(**common, chain=self.chain, tx=signed.tx, block=_int(receipt["blockNumber"]),
                                            index=_int(receipt["transactionIndex"]), status="success" if ok else "reverted",
                                            gas_used=_int(receipt["gasUsed"]),
                                            gas_price=_int(receipt.get("effectiveGasPrice", 0)), reason=reason))
        for o in others:
            self._record(ev.TransactionReplaced(**common, chain=self.chain, tx=o.tx, nonce=o.nonce, by=signed.tx,
                                                reason=f"nonce {o.nonce} was mined as {signed.tx}"))
        await self._outcome(intent, signed, receipt, reason, call)

    async def _outcome(self, intent: ev.OrderIntended, signed: ev.TransactionSigned, receipt: Mapping[str, Any],
                       reason: str, call: Call | None = None) -> None:
        """What a mined transaction did for its intent: the fill from its logs, or the revert."""
        if _int(receipt["status"]) != 1:
            self._fail(intent, f"reverted: {reason}")
            return
        call = call or await self._build(intent)
        fee = _int(receipt["gasUsed"]) * _int(receipt.get("effectiveGasPrice", 0))
        for e in self._fill(intent, call, list(receipt.get("logs") or []), fee, self._common(intent)):
            self._record(e)

    async def _revert_reason(self, signed: ev.TransactionSigned, receipt: Mapping[str, Any], call: Call) -> str:
        """The revert replayed with ``eth_call`` on the state after its block (a reverted transaction
        changed nothing; what reverted it, a rival first in the block, is in that state)."""
        try:
            await self.rpc.call("eth_call", [{"from": self.sender, "to": call.to, "data": "0x" + call.data.hex(),
                                              "gas": _hex(signed.gas), "value": _hex(call.value)},
                                             _hex(_int(receipt["blockNumber"]))])
        except RpcError as e:
            return self._explain(call, e.data or e.message)
        return "no reason given (the call succeeds when replayed on the block's state)"


# ----------------------------------------------------------------------------- built from a config table

GATEWAY_ONLY = {"key_env", "keystore", "password_env", "relay_url", "relay_name", "relay_auth_env"}
RELAY_AUTH_ENV = "TAPEDECK_FLASHBOTS_AUTH_KEY"


def build_evm_gateway(table: Mapping[str, Any], *, execute: bool, flush: Callable[[], None] | None,
                      environ: Mapping[str, str] | None = None, clock: Callable[[], int] | None = None,
                      where: str = "[gateway]") -> EvmGateway:
    """The gateway a runner's config table describes: ``EvmGatewayConfig`` keys, plus where the
    secrets are (never the secrets themselves): ``key_env`` (default ``TAPEDECK_PRIVATE_KEY``) or
    ``keystore`` + ``password_env``; ``relay_url``, ``relay_name`` (what events say) and
    ``relay_auth_env`` (the relay-auth key; default ``TAPEDECK_FLASHBOTS_AUTH_KEY``, else a fresh
    key for this process: a relay only uses it for reputation). ``execute`` refuses to build
    without a key; paper loads one only when the table names one (or ``key_env`` is set in the
    environment), for ``eth_callBundle`` checks."""
    import os

    from tapedeck.live.keys import SigningKey, key_from_env, load_key

    env = os.environ if environ is None else environ
    data = dict(table)
    extra = {k: data.pop(k) for k in list(data) if k in GATEWAY_ONLY}
    config = EvmGatewayConfig.from_mapping(data, where)
    key: SigningKey | None = None
    named = extra.get("keystore") or env.get(extra.get("key_env") or "TAPEDECK_PRIVATE_KEY")
    if execute or named:
        key = load_key(env=extra.get("key_env"), keystore=extra.get("keystore"),
                       password_env=extra.get("password_env"), environ=env)
    relay = None
    if extra.get("relay_url"):
        auth_env = extra.get("relay_auth_env") or RELAY_AUTH_ENV
        if env.get(auth_env):
            auth = key_from_env(auth_env, env)
        else:
            from eth_account import Account

            auth = SigningKey(Account.create(), "ephemeral")
        relay = FlashbotsRelay(str(extra["relay_url"]), auth, name=str(extra.get("relay_name") or "flashbots"))
    return EvmGateway(config, key=key, execute=execute, relay=relay, clock=clock, flush=flush)

