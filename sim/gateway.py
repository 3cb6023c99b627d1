"""The gateway port in the simulated world: the engine's intents become real actions in it.

``SimGateway`` is the ``Gateway`` port (``tapedeck.domain.ports``) in the sim: ``tapedeck.runtime.loop.Loop``
binds it to its ``feed`` and calls ``submit`` with every numbered, flushed ``OrderIntended``; it returns
nothing. Every execution event goes through that one ``report`` channel: what the bot itself knows
at once (``TransactionSubmitted``: nonce, fees, gas; a malformed intent's ``OrderFailed``) during
``submit``, and everything the world decides later (inclusion or revert in a block, drops, the
fill) after the venue's inbound latency (``delivery``), stamped with its arrival time.

Venues:

* ``aave-v3:<chain>`` (also reached as ``<chain>:aave``) with ``side = "liquidate"``:
  with a ``route``, one call of the bot's executor contract (``contracts/AaveLiquidator.sol``:
  flash loan of ``amount`` of the debt asset, ``liquidationCall(collateral, debt, target, amount,
  false)``, the seized collateral sold along ``route``, reverts below ``min_profit``), sent as a
  bundle to the builder when ``private`` (``sim.bundles``) or as a public transaction; without a
  route, ``Pool.liquidationCall`` from the bot's own USDC. Tip ``max_priority_fee``, arriving after
  the chain's outbound latency. Included and succeeded: ``TransactionIncluded`` + ``OrderFilled``
  (``amount`` = collateral seized, ``notional`` = debt repaid, both from the ``LiquidationCall``
  log; ``fee`` = gas at the sim's base fee + tip, in ETH wei) and, for the executor, two
  ``InventoryChanged`` from its ``Liquidated`` log (collateral out, debt asset in: the fill plus
  them is the profit). Reverted: ``TransactionIncluded`` + ``OrderFailed`` with the decoded reason
  (``lost race: 45 ...``, ``ProfitBelowMinimum(profit=..., minProfit=...)``) and who liquidated the
  borrower in that block. A bundle left out: ``TransactionDropped`` + ``OrderFailed`` ("dropped:
  bundle left out: would revert / reverts after a better-paying bundle: <reason>"), no gas paid.
* ``<chain>:arb-executor`` with ``side = "arb"`` and a ``route`` of pools from USDC back to USDC
  (``cross_pool_arb`` with ``execution = "atomic"``): one call of the bot's arbitrage executor
  (``contracts/ArbExecutor.sol``: a flash swap on the first pool, every swap in one transaction,
  reverting below ``min_profit``), public or as a bundle when ``private``. ``OrderFilled`` from the
  executor's ``Arbitraged`` log (``amount`` USDC out, ``notional`` USDC in), or ``OrderFailed``
  (``reverted: ProfitBelowMinimum; profit=..., minProfit=...`` naming who moved the pools first in
  that block; ``dropped: bundle left out: ...``). See ``AtomicArbitrage``.
* a book venue (``MockCex``, by its name) with ``side`` buy/sell: an order for ``amount`` base
  units (rounded down to the lot size): IOC market, or limit at ``limit_price`` with its ``tif``,
  reduce-only when the intent says so (``BookOrders``). Every venue report becomes
  ``OrderAcknowledged`` (first report) and ``OrderFilled`` (``amount`` base units bought or sold,
  ``notional`` quote units, ``fee`` quote units in ``fee_asset`` = the quote asset, ``final``
  unless a GTC order rests) or ``OrderFailed`` (rejected: rate limit, validation, the venue's
  seeded rejects; expired unfilled), stamped when the bot receives the report. ``side = "cancel"``
  with ``target`` = the client id of one of the strategy's orders on that venue cancels it there:
  ``OrderCanceled`` (``remaining`` = the unfilled amount released) when it was resting, else the
  cancel's ``OrderFailed`` ("cancel: no resting order <id>": at once when the order is already done
  or unknown here, after the round trip when the venue found it filled first).
* anything else: ``OrderFailed`` at once ("no such venue in this world").
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import msgspec
from web3.logs import DISCARD

from tapedeck.adapters.evm_logs import EventDecoder, LogDecodeError
from tapedeck.domain import events as ev
from tapedeck.sim.aave_agents import LIQUIDATION_GAS, AaveAgents
from tapedeck.sim.chain.artifacts import ArtifactMissing
from tapedeck.sim.chain.pyevm import call_data
from tapedeck.sim.onchain import SUCCESS, BlockResult, TxOutcome

BOT_USDC = 50_000_000 * 10**6  # the bot's working capital on chain

Report = Callable[[ev.Event], None]
Deliver = Callable[[str, list[ev.Event]], None]


def delivery(world: Any, report: Report) -> Deliver:
    """``deliver(endpoint, events)``: what an endpoint (a chain, a venue) sends the bot reaches it
    after the endpoint's inbound latency; each event is reported then, stamped with its arrival."""

    def arrive(arrival_ns: int, events: list[ev.Event]) -> None:
        for e in events:
            report(msgspec.structs.replace(e, ts=arrival_ns))

    def deliver(endpoint: str, events: list[ev.Event]) -> None:
        world.latency.send(endpoint, "inbound", arrive, events)

    return deliver


_TRANSFERS: dict[str, EventDecoder] = {}  # token address -> the decoder of its Transfer event


def _transfer_decoder(token: Any) -> EventDecoder:
    decoder = _TRANSFERS.get(token.address)
    if decoder is None:
        decoder = _TRANSFERS[token.address] = EventDecoder(token.abi, only=["Transfer"])
    return decoder


def _unbound(*_: Any) -> None:
    raise RuntimeError("a sim executor reported before SimGateway.bind(report)")


class _BlockReports:
    """What a chain executor does after each block: every open transaction of its intents that was
    mined or dropped becomes the execution events its ``_report`` computes, delivered together."""

    open: dict[str, ev.OrderIntended]

    def on_block(self, result: BlockResult) -> None:
        reports: list[ev.Event] = []
        for out in result.outcomes + result.dropped:
            intent = self.open.pop(out.tx.id, None)
            if intent is not None:
                reports.extend(self._report(intent, out, result))  # type: ignore[attr-defined]
        if reports:
            self.deliver(self.side.name, reports)  # type: ignore[attr-defined]


class AaveLiquidations(_BlockReports):
    """Executes liquidation intents on the Aave market of ``agents`` from the bot's account.

    An intent with a ``route`` goes through the bot's own executor contract
    (``contracts/AaveLiquidator.sol``, deployed here beside the market, owned by the bot): one
    transaction that flash-borrows ``amount`` of the debt asset, liquidates ``target``, sells the
    collateral along ``route`` and keeps at least ``min_profit`` or reverts. ``private`` sends it
    as a one-transaction bundle to the builder (``sim.bundles``: never seen by copycats, left out at
    no cost if it would revert); otherwise it is a public transaction in the mempool. An intent
    without a route is the plain ``liquidationCall`` paid from the bot's own USDC (the seized
    collateral stays with the bot). ``instrument`` is ``"<collateral>/<debt>"`` (addresses or the
    market's symbols; the legacy ``"WETH/USDC"``). A route names pools by address or by their
    scenario name (``pools``: name -> address), as the pools' events name them."""

    def __init__(self, agents: AaveAgents, bot: str, *, bundle_blocks: int = 1, pools: dict[str, str] | None = None):
        from tapedeck.sim.bundles import BundleBuilder
        from tapedeck.sim.chain.executor import deploy_executor

        self.agents, self.bot = agents, bot
        self.pools = {k.lower(): v for k, v in (pools or {}).items()}  # scenario pool name -> address
        self.report: Report = _unbound
        self.deliver: Deliver = _unbound
        self.side = agents.side
        self.venue = f"aave-v3:{self.side.name}"
        self.bundle_blocks = bundle_blocks
        self.open: dict[str, ev.OrderIntended] = {}  # tx id -> intent
        agents.market.mint("USDC", bot, BOT_USDC)
        agents.market.approve("USDC", bot)
        try:
            self.executor: Any = deploy_executor(agents.market, bot)
        except ArtifactMissing as e:  # not compiled (`make contracts`): the plain liquidationCall path still works
            self.executor, self.missing = None, str(e)
        self.builder = self.side.bundles or BundleBuilder(self.side)
        self._v3: dict[str, bool] = {}
        self.side.subscribe(self.on_block)

    def bind(self, report: Report) -> None:
        self.report, self.deliver = report, delivery(self.agents.world, report)

    def submit(self, intent: ev.OrderIntended) -> None:
        if intent.side != "liquidate" or not intent.target:
            self.report(_failed(intent, f"{self.venue} takes side 'liquidate' with a target borrower, "
                                        f"got side {intent.side!r} target {intent.target!r}"))
            return
        market, world = self.agents.market, self.agents.world
        try:
            collateral, debt = self._pair(intent.instrument)
        except (KeyError, ValueError) as e:
            self.report(_failed(intent, f"{self.venue}: instrument {intent.instrument!r} is not "
                                        f"'<collateral>/<debt>' of this market ({e})"))
            return
        user = market.w3.to_checksum_address(intent.target)
        arrival = world.latency.arrival_ns(self.side.name, "outbound", intent.ts)
        if not intent.route:
            if intent.private:
                self.report(_failed(intent, f"{self.venue}: a private liquidation goes through the executor: "
                                            f"give it a route"))
                return
            fn = market.pool.functions.liquidationCall(collateral, debt, user, intent.amount, False)
            tx = self.side.submit(self.bot, to=market.pool.address, data=call_data(fn), gas=LIQUIDATION_GAS,
                                  max_priority_fee=intent.max_priority_fee, arrival_ns=arrival, tag="bot", call=fn)
            self.open[tx.id] = intent
            self.report(_submitted(intent, self.venue, self.side.name, tx))
            return
        from tapedeck.sim.chain.executor import LIQUIDATE_GAS, Hop

        if self.executor is None:
            self.report(_failed(intent, f"{self.venue}: no executor contract in this world: {self.missing}"))
            return
        if intent.profit_asset and intent.profit_asset.lower() != debt.lower():
            self.report(_failed(intent, f"{self.venue}: the executor keeps its profit in the debt asset {debt.lower()}, "
                                        f"not {intent.profit_asset}"))
            return
        route = [Hop(a, self._is_v3(a)) for a in (self.pools.get(p.lower(), p) for p in intent.route)]
        fn = self.executor.liquidate_call(collateral, debt, user, intent.amount, route, intent.min_profit)
        if intent.private:
            bundle = self.builder.send([dict(sender=self.bot, to=self.executor.address, data=call_data(fn),
                                             gas=LIQUIDATE_GAS, max_priority_fee=intent.max_priority_fee, call=fn)],
                                       arrival_ns=arrival, blocks=self.bundle_blocks, tag="bot")
            txs = bundle.txs
        else:
            txs = (self.side.submit(self.bot, to=self.executor.address, data=call_data(fn), gas=LIQUIDATE_GAS,
                                    max_priority_fee=intent.max_priority_fee, arrival_ns=arrival, tag="bot",
                                    call=fn),)
        for tx in txs:
            self.open[tx.id] = intent
            self.report(_submitted(intent, self.venue, self.side.name, tx))

    def _pair(self, instrument: str) -> tuple[str, str]:
        collateral, sep, debt = instrument.partition("/")
        if not sep:
            raise ValueError("no '/'")
        market = self.agents.market
        return market.asset(collateral.strip()), market.asset(debt.strip())

    def _is_v3(self, pool: str) -> bool:
        """A V3 pool answers ``fee()`` (0xddca3f43); a V2 pair has no such function."""
        key = pool.lower()
        if key not in self._v3:
            w3 = self.agents.market.w3
            try:
                self._v3[key] = len(w3.eth.call({"to": w3.to_checksum_address(pool), "data": "0xddca3f43"})) == 32
            except Exception:  # noqa: BLE001 - reverted: not a V3 pool
                self._v3[key] = False
        return self._v3[key]

    def _report(self, intent: ev.OrderIntended, out: TxOutcome, result: BlockResult) -> list[ev.Event]:
        from tapedeck.sim.chain.executor import explain_revert

        common = _common(intent, self.venue)
        mined = _mined(intent, self.venue, self.side.name, out)
        if not out.included:
            reason = out.reason
            for marker in ("would revert: ", "better-paying bundle: "):  # a bundle left out: say why in words
                if marker in reason:
                    head, raw = reason.split(marker, 1)
                    reason = head + marker + explain_revert(raw)
            first = self._first(intent, out, result)
            return [mined, ev.OrderFailed(**common, venue=self.venue, reason=f"dropped: {reason}{first}")]
        mine = [log for log in self._logs(out) if str(log["user"]).lower() == intent.target.lower()]
        if out.status == SUCCESS and mine:
            log = mine[0]
            fill = ev.OrderFilled(**common, venue=self.venue, amount=int(log["liquidatedCollateralAmount"]),
                                  notional=int(log["debtToCover"]), fee=out.gas_cost, fee_asset="ETH")
            return [mined, fill, *self._sold(intent, out, log)]
        why = f"reverted: {explain_revert(out.reason) if out.reason else 'no reason given'}"
        return [mined, ev.OrderFailed(**common, venue=self.venue, reason=why + self._first(intent, out, result))]

    def _first(self, intent: ev.OrderIntended, out: TxOutcome, result: BlockResult) -> str:
        """``"; liquidated first in block N by <liquidators>"`` when others liquidated the target in this block."""
        winners = [str(log["liquidator"]).lower() for o in result.outcomes if o.status == SUCCESS and o is not out
                   for log in self._logs(o) if str(log["user"]).lower() == intent.target.lower()]
        return f"; liquidated first in block {result.number} by {', '.join(winners)}" if winners else ""

    def _sold(self, intent: ev.OrderIntended, out: TxOutcome, log: dict[str, Any]) -> list[ev.Event]:
        """What the executor did with the seized collateral, from its ``Liquidated`` log: sold it
        (collateral out) for the debt asset, less the flash premium (debt asset in, profit included)."""
        if self.executor is None or str(out.receipt["to"]).lower() != self.executor.address.lower():
            return []
        logs = self.executor.contract.events.Liquidated().process_receipt(out.receipt, errors=DISCARD)
        if not logs:
            return []
        a = logs[0].args
        proceeds = int(a.profit) + int(a.debtRepaid) + int(a.premium)  # what the route paid out
        common = _common(intent, self.venue)
        reason = f"sold by the executor through {len(intent.route)} pool(s); profit {int(a.profit)}"
        return [ev.InventoryChanged(**common, venue=self.venue, strategy=intent.strategy,
                                    asset=self._symbol(str(log["collateralAsset"])), delta=-int(a.collateralSeized),
                                    reason=reason),
                ev.InventoryChanged(**common, venue=self.venue, strategy=intent.strategy,
                                    asset=self._symbol(str(log["debtAsset"])), delta=proceeds - int(a.premium),
                                    reason=reason)]

    def _symbol(self, address: str) -> str:
        for symbol, token in self.agents.market.tokens.items():
            if token.address.lower() == address.lower():
                return symbol
        return address.lower()

    def _logs(self, out: TxOutcome) -> list[dict[str, Any]]:
        return self.agents.market.liquidation_logs(out.receipt)


class PoolArbitrage:
    """Executes ``cross_pool_arb`` intents (instrument ``"<buy>-><sell>"``, side ``arb``, ``amount``
    USDC in) as two swaps from the bot's balances (``DexAgents.arbitrage_legs``): they race the
    scenario's searchers and pool arbitrageurs in the block builder. Both legs mined and
    succeeded: ``OrderFilled`` (``amount`` USDC received, ``notional`` USDC paid, ``fee`` the gas of
    both legs in ETH wei). Otherwise ``OrderFailed`` saying which leg reverted and why. A leg that
    went through alone (no arbitrage contract: not atomic) changed the bot's balances, so before the
    ``OrderFailed`` come ``InventoryChanged`` records of what it moved, read from that leg's token
    ``Transfer`` logs (leg 1 alone: USDC paid, WETH held), which outcomes mark to a named price."""

    def __init__(self, dex: Any, bot: str, venue: str):
        self.dex, self.bot, self.venue = dex, bot, venue
        self.report: Report = _unbound
        self.deliver: Deliver = _unbound
        self.side = dex.side
        self.legs: dict[str, tuple[ev.OrderIntended, int]] = {}  # tx id -> (intent, leg 0/1)
        self.done: dict[int, list[TxOutcome | None]] = {}  # intent seq -> outcomes of its two legs
        dex.fund(bot)
        self.side.subscribe(self.on_block)

    def bind(self, report: Report) -> None:
        self.report, self.deliver = report, delivery(self.dex.world, report)

    def submit(self, intent: ev.OrderIntended) -> None:
        buy_name, _, sell_name = intent.instrument.partition("->")
        buy, sell = self.dex.pool(buy_name), self.dex.pool(sell_name)
        if intent.side != "arb" or buy is None or sell is None or buy is sell:
            self.report(_failed(intent, f"{self.venue} arbitrage needs side 'arb' and instrument "
                                        f"'<pool>-><pool>' naming two of this world's pools, "
                                        f"got {intent.side!r} {intent.instrument!r}"))
            return
        arrival = self.dex.world.latency.arrival_ns(self.side.name, "outbound", intent.ts)
        legs = self.dex.arbitrage_legs(self.bot, buy, sell, intent.amount, intent.max_priority_fee, arrival, "bot")
        if legs is None:
            self.report(_failed(intent, f"{buy_name} quotes nothing for {intent.amount}"))
            return
        self.done[intent.seq] = [None, None]
        for i, tx in enumerate(legs):
            self.legs[tx.id] = (intent, i)
            self.report(_submitted(intent, self.venue, self.side.name, tx))

    def on_block(self, result: BlockResult) -> None:
        reports: list[ev.Event] = []
        for out in result.outcomes + result.dropped:
            leg = self.legs.pop(out.tx.id, None)
            if leg is None:
                continue
            intent, i = leg
            reports.append(_mined(intent, self.venue, self.side.name, out))
            legs = self.done[intent.seq]
            if out.included and out.status != SUCCESS:  # who moved that pool first in this block?
                pool = out.tag.rsplit(":", 1)[-1]  # dex swaps are tagged "<who>:<leg>:<pool>"
                first = [o.tx.sender.lower() for o in result.outcomes if o.index < out.index and o.status == SUCCESS
                         and o.tag.endswith(":" + pool) and o.tx.sender != self.bot]
                if first:
                    out = dataclasses.replace(out, reason=f"{out.reason} ({pool} moved first by "
                                                          f"{', '.join(dict.fromkeys(first))})")
            legs[i] = out
            if legs[0] is not None and legs[1] is not None:
                del self.done[intent.seq]
                reports.extend(self._result(intent, legs[0], legs[1]))
        if reports:
            self.deliver(self.side.name, reports)

    def _result(self, intent: ev.OrderIntended, first: TxOutcome, second: TxOutcome) -> list[ev.Event]:
        common = _common(intent, self.venue)
        if first.status == SUCCESS and second.status == SUCCESS:
            received = self._usdc_received(second)
            return [ev.OrderFilled(**common, venue=self.venue, amount=received, notional=intent.amount,
                                   fee=first.gas_cost + second.gas_cost, fee_asset="ETH")]
        why = "; ".join(f"leg {n} {o.status}{': ' + o.reason if o.reason else ''}"
                        for n, o in ((1, first), (2, second)) if o.status != SUCCESS)
        went = [(n, o) for n, o in ((1, first), (2, second)) if o.status == SUCCESS]
        left: list[ev.Event] = []
        for symbol, token in (("USDC", self.dex.usdc), ("WETH", self.dex.weth)):
            delta = sum(self._net_transfer(token, o) for _, o in went)
            if delta:
                left.append(ev.InventoryChanged(**common, venue=self.venue, strategy=intent.strategy, asset=symbol,
                                                delta=delta, reason=f"leg {went[0][0]} alone went through; {why}"))
        return [*left, ev.OrderFailed(**common, venue=self.venue, reason=why)]

    def _usdc_received(self, out: TxOutcome) -> int:
        bot = self.bot.lower()
        return sum(int(x["value"]) for x in self._transfers(self.dex.usdc, out) if x["to"] == bot)

    def _net_transfer(self, token: Any, out: TxOutcome) -> int:
        """What a mined transaction moved of ``token`` into (+) and out of (-) the bot's account."""
        bot = self.bot.lower()
        return sum(int(x["value"]) * ((x["to"] == bot) - (x["from"] == bot)) for x in self._transfers(token, out))

    @staticmethod
    def _transfers(token: Any, out: TxOutcome) -> list[Any]:
        """The arguments of ``token``'s own Transfer logs in a receipt (every ERC-20 shares the event's
        signature: the others' are told apart by address), decoded by the shared decoder
        (``adapters.evm_logs``) from the token's ABI, addresses in lower case; a log
        that does not decode as the event is skipped, as web3's ``DISCARD`` does. Why not web3's
        ``process_receipt``: it decoded every log of the receipt through its ABI formatters (~3 ms a
        receipt, ~6% of a revm eth-crash run)."""
        decoder = _transfer_decoder(token)
        mine, topic0 = str(token.address).lower(), decoder.topic0("Transfer")
        found = []
        for log in out.receipt["logs"]:
            topics = log["topics"]
            if topics and topics[0] == topic0 and str(log["address"]).lower() == mine:
                try:
                    found.append(decoder.decode(topics, log["data"]).args)
                except LogDecodeError:
                    continue
        return found


class PoolSwaps:
    """Executes single-swap intents (``cex_dex_arb``'s pool legs and unwinds) from the bot's
    balances: ``instrument`` a pool of this world (its scenario name), side ``buy`` (``amount`` USDC
    in for WETH) or ``sell`` (``amount`` WETH in for USDC), reverting unless it pays out at least
    ``min_profit`` (base units of what it buys: the swap's ``amountOutMinimum``), tip
    ``max_priority_fee``. One public transaction through the pool's router, racing the scenario's
    arbitrageurs and searchers in the block builder. Mined and succeeded: ``OrderFilled`` with
    ``amount`` the WETH and ``notional`` the USDC it moved (bought or sold: read from the tokens'
    ``Transfer`` logs in the receipt, never from the intent), ``fee`` its gas in ETH wei. Reverted
    (a competitor moved the pool first: the reason names who) or dropped: ``OrderFailed``."""

    def __init__(self, dex: Any, bot: str, venue: str):
        self.dex, self.bot, self.venue = dex, bot, venue
        self.report: Report = _unbound
        self.deliver: Deliver = _unbound
        self.side = dex.side
        self.open: dict[str, ev.OrderIntended] = {}  # tx id -> intent
        spender = dex.router or (dex.v3.router if dex.v3 is not None else None)
        if spender is not None and not dex.usdc.functions.allowance(bot, spender.address).call():
            dex.fund(bot)  # (PoolArbitrage funds the same account when the world has it)
        self.side.subscribe(self.on_block)

    def bind(self, report: Report) -> None:
        self.report, self.deliver = report, delivery(self.dex.world, report)

    def submit(self, intent: ev.OrderIntended) -> None:
        pool = self.dex.pool(intent.instrument)
        if intent.side not in ("buy", "sell") or pool is None or pool.spec.name.lower() != intent.instrument.lower():
            self.report(_failed(intent, f"{self.venue} swaps take side buy or sell and a pool of this world, "
                                        f"got {intent.side!r} {intent.instrument!r}"))
            return
        arrival = self.dex.world.latency.arrival_ns(self.side.name, "outbound", intent.ts)
        tx = self.dex._swap(pool, self.bot, intent.side == "buy", intent.amount, None, intent.max_priority_fee,
                            arrival, "bot:swap", min_out=intent.min_profit)
        if tx is None:
            self.report(_failed(intent, f"{self.venue}: nothing to swap (amount {intent.amount})"))
            return
        self.open[tx.id] = intent
        self.report(_submitted(intent, self.venue, self.side.name, tx))

    def on_block(self, result: BlockResult) -> None:
        reports: list[ev.Event] = []
        for out in result.outcomes + result.dropped:
            intent = self.open.pop(out.tx.id, None)
            if intent is None:
                continue
            out = dataclasses.replace(out, reason=_revert_text(out.reason))
            reports.append(_mined(intent, self.venue, self.side.name, out))
            common = _common(intent, self.venue)
            if out.included and out.status == SUCCESS:
                weth, usdc = (abs(self._net(token, out)) for token in (self.dex.weth, self.dex.usdc))
                reports.append(ev.OrderFilled(**common, venue=self.venue, amount=weth, notional=usdc,
                                              fee=out.gas_cost, fee_asset="ETH"))
                continue
            if not out.included:
                reports.append(ev.OrderFailed(**common, venue=self.venue, reason=f"dropped: {out.reason}"))
                continue
            pool = out.tag.rsplit(":", 1)[-1]
            first = [o.tx.sender.lower() for o in result.outcomes if o.index < out.index and o.status == SUCCESS
                     and o.tag.endswith(":" + pool) and o.tx.sender != self.bot]
            moved = f" ({pool} moved first by {', '.join(dict.fromkeys(first))})" if first else ""
            reports.append(ev.OrderFailed(**common, venue=self.venue,
                                          reason=f"reverted: {out.reason or 'no reason given'}{moved}"))
        if reports:
            self.deliver(self.side.name, reports)

    _transfers = staticmethod(PoolArbitrage._transfers)
    _net = PoolArbitrage._net_transfer  # what a mined transaction moved of a token for the bot (+ in)


class AtomicArbitrage(_BlockReports):
    """Executes atomic arbitrage intents (``cross_pool_arb`` with ``execution = "atomic"``: venue
    ``"<chain>:arb-executor"``, side ``arb``, ``route`` the pools in order from USDC back to USDC,
    ``amount`` USDC in, ``min_profit`` the USDC the executor must gain) as one call of the bot's own
    executor contract (``contracts/ArbExecutor.sol``, deployed here, owned by the bot): the first
    pool flash-swaps, the rest of the route runs in its callback, and the whole transaction reverts
    unless the profit clears ``min_profit``, so no leg ever goes through alone. ``private`` sends it
    as a one-transaction bundle to the builder (``sim.bundles``: left out at no cost if it would
    revert); otherwise it is a public transaction racing the scenario's searchers.

    Included and succeeded: ``TransactionIncluded`` + ``OrderFilled`` from the executor's
    ``Arbitraged`` log (``amount`` = USDC out of the last hop, ``notional`` = USDC into the first,
    both from the log, never from the intent; ``fee`` = gas in ETH wei). Reverted:
    ``TransactionIncluded`` (gas paid) + ``OrderFailed`` with the decoded reason
    (``ProfitBelowMinimum(profit=..., minProfit=...)``) and who moved the route's pools first in
    that block. A bundle left out: ``TransactionDropped`` + ``OrderFailed``, no gas paid."""

    def __init__(self, dex: Any, bot: str, venue: str, *, bundle_blocks: int = 1):
        from tapedeck.sim.bundles import BundleBuilder
        from tapedeck.sim.chain.arb_executor import deploy_arb_executor

        self.dex, self.bot, self.venue = dex, bot, venue
        self.report: Report = _unbound
        self.deliver: Deliver = _unbound
        self.side = dex.side
        self.bundle_blocks = bundle_blocks
        self.open: dict[str, ev.OrderIntended] = {}  # tx id -> intent
        try:
            self.executor: Any = deploy_arb_executor(self.side.w3, bot)
        except ArtifactMissing as e:  # not compiled (`make contracts`): intents fail with the reason
            self.executor, self.missing = None, str(e)
        self.builder = self.side.bundles or BundleBuilder(self.side)
        self.side.subscribe(self.on_block)

    def bind(self, report: Report) -> None:
        self.report, self.deliver = report, delivery(self.dex.world, report)

    def submit(self, intent: ev.OrderIntended) -> None:
        from tapedeck.sim.chain.arb_executor import ARB_GAS_SIM
        from tapedeck.sim.chain.executor import Hop

        pools = [self.dex.pool(name) for name in intent.route]
        if intent.side != "arb" or len(pools) < 2 or any(p is None for p in pools):
            self.report(_failed(intent, f"{self.venue} takes side 'arb' with a route of two or more of this "
                                        f"world's pools, got {intent.side!r} route {intent.route!r}"))
            return
        if self.executor is None:
            self.report(_failed(intent, f"{self.venue}: no executor contract in this world: {self.missing}"))
            return
        route = [Hop(p.contract.address if p.v3 else p.contract.pair.address, p.v3) for p in pools]
        fn = self.executor.arbitrage_call(self.dex.usdc, intent.amount, route, intent.min_profit, flash=True)
        arrival = self.dex.world.latency.arrival_ns(self.side.name, "outbound", intent.ts)
        tx = dict(sender=self.bot, to=self.executor.address, data=call_data(fn), gas=ARB_GAS_SIM,
                  max_priority_fee=intent.max_priority_fee, call=fn)
        if intent.private:
            txs = self.builder.send([tx], arrival_ns=arrival, blocks=self.bundle_blocks, tag="bot:arb").txs
        else:
            txs = (self.side.submit(arrival_ns=arrival, tag="bot:arb", **tx),)
        for t in txs:
            self.open[t.id] = intent
            self.report(_submitted(intent, self.venue, self.side.name, t))

    def _report(self, intent: ev.OrderIntended, out: TxOutcome, result: BlockResult) -> list[ev.Event]:
        from tapedeck.sim.chain.arb_executor import decode_revert, explain_revert

        common = _common(intent, self.venue)
        mined = _mined(intent, self.venue, self.side.name, out)
        if not out.included:
            reason = out.reason
            for marker in ("would revert: ", "better-paying bundle: "):
                if marker in reason:
                    head, raw = reason.split(marker, 1)
                    name, args = decode_revert(raw)
                    reason = head + marker + (f"{name}; {', '.join(f'{k}={v}' for k, v in args.items())}" if name
                                              else explain_revert(raw))
            return [mined, ev.OrderFailed(**common, venue=self.venue, reason=f"dropped: {reason}")]
        log = self.executor.arbitraged(out.receipt) if out.status == SUCCESS else None
        if log is not None:
            return [mined, ev.OrderFilled(**common, venue=self.venue, amount=log["amount_out"],
                                          notional=log["amount_in"], fee=out.gas_cost, fee_asset="ETH")]
        name, args = decode_revert(out.reason) if out.reason else ("", {})
        # "reverted: <error>; <its arguments>": a run's summary groups losses by what precedes the ";"
        why = (f"reverted: {name}; {', '.join(f'{k}={v}' for k, v in args.items())}" if name
               else f"reverted: {explain_revert(out.reason) if out.reason else 'no reason given'}")
        first = [o.tx.sender.lower() for o in result.outcomes if o.index < out.index and o.status == SUCCESS
                 and o.tx.sender != self.bot and any(o.tag.endswith(":" + pool) for pool in intent.route)]
        if first:
            why += (f" ({', '.join(intent.route)} moved first in block {result.number} by "
                    f"{', '.join(dict.fromkeys(first))})")
        return [mined, ev.OrderFailed(**common, venue=self.venue, reason=why)]


class BookOrders:
    """Executes buy/sell intents as orders on a mock book venue: a market order without a
    ``limit_price``, else a limit order at it (``10**-price_decimals``; it fills only at or better
    than the limit); ``tif`` "ioc" (and "", the default) or "gtc" ("alo" is refused: the mock book
    has no post-only); ``reduce_only`` passed to the venue (a perp trims it to the position or
    rejects it, ``MockPerp``). ``side = "cancel"`` cancels the strategy's order named by ``target``
    (module docstring)."""

    def __init__(self, venue: Any):
        from tapedeck.sim.venues.cex import OrderReport

        self.venue = venue
        self.report: Report = _unbound
        self.name = venue.name
        spec = venue.spec  # fees are in the quote asset; a perp settles in USDC
        self.fee_asset = "USDC" if spec.kind == "perp" else spec.instrument.split("-")[-1]
        self.open: dict[str, ev.OrderIntended] = {}  # client id -> intent
        self.acked: set[str] = set()
        self.named: dict[tuple[str, str], str] = {}  # (strategy, its client id) -> venue client id, while open
        self.cancels: dict[str, tuple[ev.OrderIntended, ev.OrderIntended]] = {}  # cancel's venue id -> (it, order)
        venue.bus.subscribe(self.on_report, OrderReport, where=lambda r: r.venue == self.name)

    def bind(self, report: Report) -> None:
        self.report = report  # the venue's reports already arrive after its inbound latency

    def submit(self, intent: ev.OrderIntended) -> None:
        from decimal import ROUND_FLOOR, Decimal

        from tapedeck.sim.venues.cex import BUY, GTC, IOC, LIMIT, SELL, Order

        spec = self.venue.spec
        if intent.side == "cancel":
            self._cancel(intent)
            return
        if intent.side not in (BUY, SELL):
            self.report(_failed(intent, f"{self.name} takes side buy or sell (or cancel), got {intent.side!r}"))
            return
        qty = Decimal(intent.amount).scaleb(-spec.base_decimals)
        qty = (qty / spec.lot_size).to_integral_value(ROUND_FLOOR) * spec.lot_size
        if qty <= 0:
            self.report(_failed(intent, f"amount {intent.amount} is below {self.name}'s lot size "
                                        f"{spec.lot_size}"))
            return
        tif = intent.tif or IOC
        if tif not in (IOC, GTC):
            self.report(_failed(intent, f"{self.name} takes time in force ioc or gtc, got {intent.tif!r}"))
            return
        if intent.limit_price < 0 or intent.price_decimals < 0:
            self.report(_failed(intent, f"limit price {intent.limit_price} at {intent.price_decimals} decimals "
                                        f"is not a price"))
            return
        client_id = f"intent-{intent.seq}"
        if intent.limit_price:
            limit = Decimal(intent.limit_price).scaleb(-intent.price_decimals)
            order = Order(client_id, intent.side, qty, LIMIT, limit, tif, reduce_only=intent.reduce_only)
        else:
            order = Order(client_id, intent.side, qty, tif=tif, reduce_only=intent.reduce_only)
        self.open[client_id] = intent
        self.named[(intent.strategy, intent.client_id)] = client_id
        self.venue.submit(order)

    def _cancel(self, intent: ev.OrderIntended) -> None:
        target = self.named.get((intent.strategy, intent.target))
        order = self.open.get(target) if target is not None else None
        if order is None:  # done, never sent here, or another strategy's: nothing of its own rests
            self.report(_failed(intent, f"cancel: no resting order {intent.target}"))
            return
        cancel_id = f"intent-{intent.seq}"
        self.cancels[cancel_id] = (intent, order)
        self.venue.cancel(target, cancel_id)

    def on_report(self, r: Any) -> None:
        from tapedeck.sim.venues.cex import ACCEPTED, CANCELLED, EXPIRED, REJECTED

        pending = self.cancels.pop(r.cancel_id or r.client_id, None) if self.cancels else None
        if pending is not None and r.status == REJECTED:  # the venue had nothing resting: filled first
            cancel, _ = pending
            self.report(ev.OrderFailed(ts=r.ts, source=f"sim:{self.name}", cause=cancel.seq, intent=cancel.seq,
                                       venue=self.name, reason=f"cancel: no resting order {cancel.target}"))
            return
        intent = self.open.get(r.client_id)
        if intent is None:
            return
        common = dict(ts=r.ts, source=f"sim:{self.name}", cause=intent.seq, intent=intent.seq)
        if r.client_id not in self.acked and r.status != REJECTED:
            self.acked.add(r.client_id)
            self.report(ev.OrderAcknowledged(**common, venue=self.name, order_id=r.order_id))
        final = r.remaining == 0
        if r.filled_qty:
            self.report(ev.OrderFilled(**common, venue=self.name, amount=r.filled_amount,
                                       notional=r.notional_amount, fee=r.fee_amount, fee_asset=self.fee_asset,
                                       final=final))
        elif r.status == CANCELLED and pending is not None:
            cancel, _ = pending
            self.report(ev.OrderCanceled(**{**common, "cause": cancel.seq}, venue=self.name, strategy=intent.strategy,
                                         instrument=intent.instrument, client_id=intent.client_id,
                                         cancel_id=cancel.client_id, remaining=r.released_amount,
                                         cancel_intent=cancel.seq))
        elif r.status in (REJECTED, EXPIRED, CANCELLED) or (final and r.status != ACCEPTED):
            self.report(ev.OrderFailed(**common, venue=self.name, reason=f"{r.status}: {r.reason}".rstrip(": ")))
        if final:
            self.open.pop(r.client_id, None)
            self.acked.discard(r.client_id)
            if self.named.get((intent.strategy, intent.client_id)) == r.client_id:
                del self.named[(intent.strategy, intent.client_id)]


class SimGateway:
    """Routes each intent to the executor of its venue; all of them report through the one
    ``report`` this gateway is bound to (executors added later are bound as they are added)."""

    def __init__(self) -> None:
        self.executors: dict[str, Any] = {}
        self.report: Report = _unbound

    def bind(self, report: Report) -> None:
        self.report = report
        for executor in self.executors.values():
            executor.bind(report)

    def add(self, venue: str, executor: Any) -> None:
        self.executors[venue] = executor
        if self.report is not _unbound:
            executor.bind(self.report)

    def submit(self, intent: ev.OrderIntended) -> None:
        executor = self.executors.get(intent.venue) or self.executors.get(_alias(intent.venue))
        if executor is None:
            known = ", ".join(self.executors) or "none"
            self.report(_failed(intent, f"no venue {intent.venue!r} in this world (executable venues: {known})"))
            return
        executor.submit(intent)


def _alias(venue: str) -> str:
    """CONTRACT.md names the Aave market ``<chain>:aave``; the sim registers it as ``aave-v3:<chain>``."""
    chain, sep, kind = venue.rpartition(":")
    return f"aave-v3:{chain}" if sep and kind == "aave" else venue


def _common(intent: ev.OrderIntended, venue: str) -> dict[str, Any]:
    """The envelope of what a gateway reports about an intent (``ts`` is set on delivery)."""
    return dict(ts=0, source=f"sim:gateway:{venue}", cause=intent.seq, intent=intent.seq)


def _submitted(intent: ev.OrderIntended, venue: str, chain: str, tx: Any) -> ev.TransactionSubmitted:
    return ev.TransactionSubmitted(**{**_common(intent, venue), "ts": intent.ts}, chain=chain, tx=tx.id,
                                   sender=tx.sender.lower(), nonce=tx.nonce, gas=tx.gas, max_fee=tx.max_fee,
                                   max_priority_fee=tx.max_priority_fee)


def _mined(intent: ev.OrderIntended, venue: str, chain: str, out: TxOutcome) -> ev.Event:
    """``TransactionIncluded`` (mined, succeeded or reverted) or ``TransactionDropped``."""
    if not out.included:
        return ev.TransactionDropped(**_common(intent, venue), chain=chain, tx=out.tx.id, reason=out.reason)
    return ev.TransactionIncluded(**_common(intent, venue), chain=chain, tx=out.tx.id, block=out.block,
                                  index=out.index, status=out.status, gas_used=out.gas_used, gas_price=out.gas_price,
                                  reason=out.reason)


def _revert_text(reason: str) -> str:
    """An ``Error(string)`` revert as its message on every backend: py-evm's reason is the message,
    anvil's (through web3) the text of ``('execution reverted: <message>', '0x08c379a0...')``; a run
    must record the same text on both (its digest is compared across backends)."""
    if reason.startswith("('"):
        import ast

        try:
            value = ast.literal_eval(reason)
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, tuple) and value and isinstance(value[0], str):
            reason = value[0]
    return reason.removeprefix("execution reverted: ")


def _failed(intent: ev.OrderIntended, reason: str) -> ev.OrderFailed:
    return ev.OrderFailed(ts=intent.ts, source="sim:gateway", cause=intent.seq, intent=intent.seq, venue=intent.venue,
                          reason=reason)
