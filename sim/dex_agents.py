"""Uniswap pools on the chain, with the background traders and lagging arbitrageurs that move them.

At the start, two test tokens (``MintableERC20`` from ``@aave/core-v3``; the Aave market's own
when the scenario has one, else fresh ones; USDC 6 dp is always at the lower address, so it is
token0 of every pool as on mainnet), Uniswap V2 (factory, ``Router02``) and, when the scenario has a V3 pool,
Uniswap V3 (factory, ``SwapRouter``, position manager) are deployed from a fixed simulation
account, so every address is the same on every backend. Each scenario pool is created and funded
with ``liquidity`` of each side at the reference start price (V3: one full-range position).

Then, through the mempool and the block builder (``sim.onchain``):

* **background traders** (``[agents.background] count``) each trade at Poisson times
  (``trades_per_minute``), on a pool and in a direction drawn at random, an exponential size of
  mean ``trade_size`` (quote currency), with a tip uniform on the chain's background tip range;
* one **arbitrageur per pool**, after every block, compares the pool's price with the reference
  price of ``arbitrage_lag`` seconds ago (the pool's own lag, else the background's) and, when they
  differ by more than the pool fee, swaps the pool back to that price less the fee (V2: the input
  that reaches it, computed on the pool's reserves; V3: a swap bounded by ``sqrtPriceLimitX96``).

What the pools log becomes input events after the chain's inbound latency: ``V2ReservesSynced``
(the pair's last ``Sync`` in the block) and ``V3Swapped`` / ``V3Minted``. Pools are named in
events by their scenario name, so strategy configs can refer to them. Amounts come from the
contracts; the agents' own arithmetic only decides how much they *try* to trade.
"""
from __future__ import annotations

import bisect
import functools
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

import eth_abi
from eth_utils import keccak

from tapedeck.adapters import evm_abis
from tapedeck.adapters.evm_logs import EventDecoder
from tapedeck.domain import events as ev
from tapedeck.sim.chain.artifacts import load
from tapedeck.sim.chain.pyevm import PreparedCall, create_address, deploy, transact
from tapedeck.sim.onchain import SUCCESS, BlockResult, ChainSide, add_account, sim_key
from tapedeck.sim.kernel import CTX, NS, exponential
from tapedeck.sim.processes import PriceTick
from tapedeck.sim.scenario import REFERENCE, Link, Pool, Scenario
from tapedeck.sim.world import World

GET_RESERVES = bytes.fromhex("0902f1ac")  # UniswapV2Pair.getReserves()
SWAP_GAS = 250_000
V3_SWAP_GAS = 400_000
DEADLINE = 2**63  # far future: the sim's blocks decide when a swap lands
ARB_MARGIN_BPS = 5  # an arbitrageur acts only when the gap exceeds the fee by this much
BALANCE_USDC = 10**12 * 10**6  # traders' and arbitrageurs' working balances (test tokens)
BALANCE_WETH = 10**9 * 10**18
V2_SWAP_EXACT_IN = ("uint256", "uint256", "address[]", "address", "uint256")  # Router02.swapExactTokensForTokens
V3_EXACT_INPUT_SINGLE = "(address,address,uint24,address,uint256,uint256,uint256,uint160)"  # SwapRouter's params
_SYNC = EventDecoder(evm_abis.UNISWAP_V2_PAIR, only=["Sync"], checksum=True)
V3_FULL_RANGE = {500: (-887270, 887270), 3000: (-887220, 887220), 10000: (-887200, 887200)}


_V2_SELECTOR = keccak(text=f"swapExactTokensForTokens({','.join(V2_SWAP_EXACT_IN)})")[:4]
_V3_SELECTOR = keccak(text=f"exactInputSingle({V3_EXACT_INPUT_SINGLE})")[:4]
_V2_PATH_AT = (5 * 32).to_bytes(32, "big")  # the offset of the path array: after the five head words
_TWO = (2).to_bytes(32, "big")


@functools.lru_cache(maxsize=1024)
def _address_word(address: str) -> bytes:
    """An address as an ABI word, by eth_abi (so checked as eth_abi checks it), once per address."""
    return eth_abi.encode(["address"], [address])


def _uint_word(v: Any, bits: int = 256) -> bytes | None:
    """An unsigned int as an ABI word; None for anything eth_abi's ``uint<bits>`` would not take as is."""
    if type(v) is not int or not 0 <= v < 1 << bits:
        return None
    return v.to_bytes(32, "big")


class SwapCall(PreparedCall):
    """A trader's or arbitrageur's swap as a ``PreparedCall`` (the same fields, the same ``call``),
    its calldata written out for the two swaps they send (``exactInputSingle`` of V3's SwapRouter,
    ``swapExactTokensForTokens`` of V2's Router02): eth_abi's generic encoder validated and dispatched
    every argument, ~3% of a revm eth-crash run. Arguments the words here do not take as they are
    (an int out of range, not an int) go to ``PreparedCall`` itself, which raises what eth_abi does.
    A test holds the bytes equal to ``PreparedCall``'s."""

    __slots__ = ()

    def __init__(self, contract: Any, fn_name: str, types: tuple[str, ...], args: tuple[Any, ...]) -> None:
        data = None
        if fn_name == "exactInputSingle" and types == (V3_EXACT_INPUT_SINGLE,):
            (p,) = args
            words = [_uint_word(p[2], 24), _uint_word(p[4]), _uint_word(p[5]), _uint_word(p[6]), _uint_word(p[7], 160)]
            if len(p) == 8 and None not in words:
                data = b"".join((_V3_SELECTOR, _address_word(p[0]), _address_word(p[1]), words[0], _address_word(p[3]),
                                 *words[1:]))
        elif fn_name == "swapExactTokensForTokens" and types == V2_SWAP_EXACT_IN:
            amount_in, min_out, path, to, deadline = args
            words = [_uint_word(amount_in), _uint_word(min_out), _uint_word(deadline)]
            if None not in words and type(path) is list and len(path) == 2:
                data = b"".join((_V2_SELECTOR, words[0], words[1], _V2_PATH_AT, _address_word(to), words[2], _TWO,
                                 _address_word(path[0]), _address_word(path[1])))
        if data is None:
            super().__init__(contract, fn_name, types, args)
            return
        self.contract, self.fn_name, self.args, self.data = contract, fn_name, args, data


@dataclass
class PoolAgent:
    spec: Pool
    contract: Any  # V2 pair, or the helper's V3Pool
    lag_ns: int
    arbitrageur: str
    pending: bool = False  # the arbitrageur has a swap out for this pool

    @property
    def v3(self) -> bool:
        return self.spec.protocol == "uniswap-v3"


@dataclass
class ArbSearcher:
    """A competitor racing for V2/V3 arbitrage: same two-leg trade as the bot, its own latency and bid."""

    name: str
    address: str
    pending: set[str] = field(default_factory=set)  # its legs not yet mined
    won: int = 0
    lost: int = 0


@dataclass
class DexAgents:
    scenario: Scenario
    world: World
    side: ChainSide
    deliver: Callable[[str, list[ev.Event]], None]
    usdc: Any = None
    weth: Any = None
    router: Any = None  # V2 Router02
    v2_factory: Any = None
    v3: Any = None  # the V3 deployment (factory, router, manager)
    pools: list[PoolAgent] = field(default_factory=list)
    traders: list[str] = field(default_factory=list)
    history: deque[tuple[int, Decimal]] = field(default_factory=deque)  # reference (ts, price)
    swaps: int = 0
    arbitrages: int = 0
    quoter: Any = None  # v3-periphery Quoter: what a V3 swap would pay, by eth_call
    searchers: list[ArbSearcher] = field(default_factory=list)

    def start(self, funder: str, tokens: dict[str, Any] | None = None) -> None:
        """Deploy and fund the pools; ``tokens`` (symbol -> contract) are the Aave market's USDC and
        WETH when the scenario has one (``sim.sim_tokens``), so a liquidation can sell through them.

        With the market's tokens and only V2 pools (eth-crash) the chain side is restored from the
        world cache (``sim.chain.world_cache``) when it was deployed on the same chain before."""
        my_pools = [p for p in self.scenario.pools if p.chain == self.side.name]
        if tokens is not None and my_pools and all(p.protocol == "uniswap-v2" for p in my_pools):
            from tapedeck.sim.chain.world_cache import cached

            built: list[bool] = []

            def deploy_v2() -> dict[str, Any]:
                built.append(True)
                self._deploy(funder, tokens)
                return {"factory": self.v2_factory.address, "router": self.router.address,
                        "pairs": [(a.contract.pair.address, a.contract.token0.address) for a in self.pools],
                        "arbitrageurs": [a.arbitrageur for a in self.pools], "traders": list(self.traders)}

            key = ("dex v2 set-up", funder, {k: c.address for k, c in sorted(tokens.items())}, my_pools,
                   self.scenario.reference.start_price, self.scenario.agents.background.count)
            found = cached(self.side.backend, key, deploy_v2,
                           modules=(__name__, "tapedeck.sim.chain.uniswap_v2", "tapedeck.sim.onchain"))
            if not built:
                self._restore_v2(found, tokens, my_pools)
        else:
            self._deploy(funder, tokens)
        self.world.bus.subscribe(self._on_tick, PriceTick, where=lambda m: m.mark == REFERENCE)
        self.side.subscribe(self.on_block)
        for i in range(len(self.traders)):
            self.world.env.process(self._trader(i))
        self.deliver(self.side.name, self._initial_state())

    def _restore_v2(self, found: dict[str, Any], tokens: dict[str, Any], my_pools: list[Pool]) -> None:
        """The agents' side of a V2 set-up restored from the world cache: the contracts at the
        addresses ``_deploy`` left (in its order), the accounts it funded."""
        from tapedeck.sim.chain.uniswap_v2 import PERIPHERY, PKG, V2Market

        w3 = self.side.w3
        self.usdc, self.weth = tokens["USDC"], tokens["WETH"]
        self.v2_factory = w3.eth.contract(address=found["factory"], abi=load(PKG, "UniswapV2Factory").abi)
        self.router = w3.eth.contract(address=found["router"], abi=load(PERIPHERY, "UniswapV2Router02").abi)
        default_lag = self.scenario.agents.background.arbitrage_lag
        for p, (pair, token0), arb in zip(my_pools, found["pairs"], found["arbitrageurs"]):
            t0, t1 = (self.usdc, self.weth) if token0 == self.usdc.address else (self.weth, self.usdc)
            m = V2Market(w3, self.v2_factory, t0, t1, w3.eth.contract(address=pair, abi=load(PKG, "UniswapV2Pair").abi))
            lag = p.arbitrage_lag if p.arbitrage_lag is not None else default_lag
            self.pools.append(PoolAgent(p, m, int(lag * NS), arb))
        self.traders.extend(found["traders"])

    def _deploy(self, funder: str, tokens: dict[str, Any] | None) -> None:
        w3 = self.side.w3
        deployer = sim_key("dex-deployer")
        add_account(self.side, deployer, funder)
        me = deployer.address
        if tokens is None:
            token = load("@aave/core-v3", "MintableERC20")
            nonce = w3.eth.get_transaction_count(me)
            usdc_first = int(create_address(me, nonce), 16) < int(create_address(me, nonce + 1), 16)
            order = [("USD Coin", "USDC", 6), ("Wrapped Ether", "WETH", 18)]
            tokens = {sym: deploy(w3, token, name, sym, dec, sender=me, gas=2_000_000)
                      for name, sym, dec in (order if usdc_first else order[::-1])}
        self.usdc, self.weth = tokens["USDC"], tokens["WETH"]
        if int(self.usdc.address, 16) >= int(self.weth.address, 16):  # the prices below take USDC as token0
            raise ValueError(f"USDC {self.usdc.address} must sort below WETH {self.weth.address} to be token0")
        price = Decimal(str(self.scenario.reference.start_price))
        chain = self.side.name
        my_pools = [p for p in self.scenario.pools if p.chain == chain]
        if any(p.protocol == "uniswap-v2" for p in my_pools):
            from tapedeck.sim.chain.uniswap_v2 import deploy_factory_and_router

            self.v2_factory, self.router = deploy_factory_and_router(w3, self.weth.address, me)
        if any(p.protocol == "uniswap-v3" for p in my_pools):
            from tapedeck.sim.chain.uniswap_v3 import deploy_v3

            self.v3 = deploy_v3(w3, sender=me, weth=self.weth.address)
            self.quoter = deploy(w3, load("@uniswap/v3-periphery", "Quoter"), self.v3.factory.address,
                                 self.weth.address, sender=me, gas=3_000_000)
        default_lag = self.scenario.agents.background.arbitrage_lag
        for i, p in enumerate(my_pools):
            arb = sim_key("arbitrageur", i)
            add_account(self.side, arb, funder)
            self.fund(arb.address)
            contract = self._create_pool(p, price, me)
            lag = p.arbitrage_lag if p.arbitrage_lag is not None else default_lag
            self.pools.append(PoolAgent(p, contract, int(lag * NS), arb.address))
        for i in range(self.scenario.agents.background.count if self.pools else 0):
            acct = sim_key("trader", i)
            add_account(self.side, acct, funder)
            self.fund(acct.address)
            self.traders.append(acct.address)
        s = self.scenario.agents.searchers
        if self.pool("uniswap-v2") and self.pool("uniswap-v3") and not self.scenario.agents.borrowers.count:
            for i in range(s.count):  # (with borrowers, the scenario's searchers hunt liquidations)
                acct = sim_key("arb-searcher", i)
                add_account(self.side, acct, funder)
                self.fund(acct.address)
                name = f"arb-searcher-{i + 1}"
                self.world.latency.links[name] = Link(s.latency, s.latency)
                self.searchers.append(ArbSearcher(name, acct.address))

    # ------------------------------------------------------------------ set-up

    def pool(self, name: str) -> PoolAgent | None:
        """The pool of that scenario name (as strategy configs name pools), else the first pool of
        that protocol (``uniswap-v2`` / ``uniswap-v3``, as opportunities name venues)."""
        return next((p for p in self.pools if p.spec.name.lower() == name.lower()),
                    next((p for p in self.pools if p.spec.protocol == name), None))

    def quote(self, p: PoolAgent, buy_weth: bool, amount_in: int) -> int:
        """What a swap of ``amount_in`` would pay out now, asked of the chain (router / Quoter)."""
        tin, tout = (self.usdc, self.weth) if buy_weth else (self.weth, self.usdc)
        if p.v3:
            return int(self.quoter.functions.quoteExactInputSingle(tin.address, tout.address, p.contract.fee,
                                                                   amount_in, 0).call())
        return int(self.router.functions.getAmountsOut(amount_in, [tin.address, tout.address]).call()[1])

    def arbitrage_legs(self, sender: str, buy: PoolAgent, sell: PoolAgent, usdc_in: int, tip: int,
                       arrival: int, tag: str) -> tuple[Any, Any] | None:
        """Two swaps from ``sender``'s balances, one after the other (consecutive nonces, one tip):
        buy WETH with ``usdc_in`` on ``buy`` (at least what it quotes now, else it reverts), then sell
        that much WETH on ``sell`` for more USDC than ``usdc_in`` (else it reverts). Without an
        arbitrage contract the legs are not atomic: each may revert alone."""
        weth_out = self.quote(buy, True, usdc_in)
        if weth_out <= 0:
            return None
        first = self._swap(buy, sender, True, usdc_in, None, tip, arrival, f"{tag}:leg1", min_out=weth_out)
        second = self._swap(sell, sender, False, weth_out, None, tip, arrival, f"{tag}:leg2", min_out=usdc_in + 1)
        return first, second

    def fund(self, who: str) -> None:
        """Give an account working balances of both tokens and approve the routers (set-up only)."""
        w3 = self.side.w3
        for tok, amount in ((self.usdc, BALANCE_USDC), (self.weth, BALANCE_WETH)):
            transact(w3, tok.functions.mint(who, amount), who, gas=100_000)
            for spender in (self.router, self.v3.router if self.v3 is not None else None):
                if spender is not None:
                    transact(w3, tok.functions.approve(spender.address, 2**256 - 1), who, gas=100_000)

    def _create_pool(self, p: Pool, price: Decimal, me: str) -> Any:
        w3 = self.side.w3
        usdc_amount = int(p.liquidity * 10**6)
        weth_amount = int(p.liquidity / price * 10**18)
        if p.protocol == "uniswap-v2":
            from tapedeck.sim.chain.uniswap_v2 import create_pair

            m = create_pair(w3, self.v2_factory, self.usdc, self.weth, me)
            transact(w3, self.usdc.functions.mint(m.pair.address, usdc_amount), me, gas=100_000)
            transact(w3, self.weth.functions.mint(m.pair.address, weth_amount), me, gas=100_000)
            transact(w3, m.pair.functions.mint(me), me, gas=300_000)
            return m
        from tapedeck.sim.chain.uniswap_v3 import create_pool, mint_position

        fee = int(p.fee_bps * 100)
        # sqrtPriceX96 of token1/token0 in base units: (WETH wei per USDC unit) = 1e18 / (price * 1e6)
        ratio = Decimal(10**12) / price
        sqrt_price = int((ratio.sqrt(CTX)) * (1 << 96))
        pool = create_pool(self.v3, self.usdc, self.weth, fee, sqrt_price)
        lower, upper = V3_FULL_RANGE[fee]
        transact(w3, self.usdc.functions.mint(me, usdc_amount), me, gas=100_000)
        transact(w3, self.weth.functions.mint(me, weth_amount), me, gas=100_000)
        mint_position(pool, me, lower, upper, usdc_amount, weth_amount)
        return pool

    def _initial_state(self) -> list[ev.Event]:
        block = self.world.chains[self.side.name].number - 1
        return [self.snapshot(p, block) for p in self.pools]

    def snapshot(self, p: PoolAgent, block: int, ts: int = 0, name: str | None = None) -> ev.Event:
        """The pool's state read from the chain, as a bot's snapshot read gives it: V2 reserves, or
        the V3 price/liquidity/tick as a zero-amount swap record. ``name`` overrides the pool's name."""
        pool, src = name or p.spec.name, f"sim:{self.side.name}:{p.spec.name}"
        if p.v3:
            sqrt_price, tick = p.contract.slot0()
            return ev.V3Swapped(ts=ts, source=src, pool=pool, block=block, tx="", log_index=0, sender="",
                                recipient="", amount0=0, amount1=0, sqrt_price_x96=sqrt_price,
                                liquidity=p.contract.liquidity(), tick=tick)
        r0, r1, _ = p.contract.pair.functions.getReserves().call()
        return ev.V2ReservesSynced(ts=ts, source=src, pool=pool, block=block, reserve0=r0, reserve1=r1)

    # ------------------------------------------------------------------ the reference's past

    def _on_tick(self, tick: PriceTick) -> None:
        self.history.append((tick.ts, tick.price))
        keep_from = tick.ts - max((p.lag_ns for p in self.pools), default=0) - 60 * NS
        while len(self.history) > 1 and self.history[1][0] <= keep_from:
            self.history.popleft()  # nobody looks further back than the longest lag

    def reference_at(self, ts: int) -> Decimal | None:
        """The reference price at ``ts`` (the last tick at or before it)."""
        i = bisect.bisect_right(self.history, ts, key=lambda h: h[0])
        return self.history[i - 1][1] if i else None

    # ------------------------------------------------------------------ traders

    def _trader(self, i: int):  # type: ignore[no-untyped-def]
        bg = self.scenario.agents.background
        rng = self.scenario.rng(f"agents:background:{i}")
        mean_gap = CTX.divide(Decimal(60), bg.trades_per_minute) if bg.trades_per_minute > 0 else None
        tips = self.world.chains[self.side.name].chain.background_max_priority_fee
        clock = self.world.clock
        while mean_gap is not None:
            yield clock.timeout_until(clock.now_ns + int(exponential(rng, mean_gap) * NS))
            pool = self.pools[rng.randrange(len(self.pools))]
            buy_weth = rng.random() < 0.5
            usd = exponential(rng, bg.trade_size)
            price = self.reference_at(clock.now_ns) or Decimal(str(self.scenario.reference.start_price))
            amount = int(usd * 10**6) if buy_weth else int(usd / price * 10**18)
            self._swap(pool, self.traders[i], buy_weth, amount, None, rng.randrange(tips + 1), clock.now_ns, "trader")

    def _swap(self, p: PoolAgent, sender: str, buy_weth: bool, amount_in: int, limit: int | None, tip: int,
              arrival: int, tag: str, min_out: int = 0) -> Any:
        if amount_in <= 0:
            return None
        tin, tout = (self.usdc, self.weth) if buy_weth else (self.weth, self.usdc)
        if p.v3:  # SwapRouter.exactInputSingle(ExactInputSingleParams)
            params = (tin.address, tout.address, p.contract.fee, sender, DEADLINE, amount_in, min_out, limit or 0)
            fn = SwapCall(p.contract.router, "exactInputSingle", (V3_EXACT_INPUT_SINGLE,), (params,))
            to, gas = p.contract.router.address, V3_SWAP_GAS
        else:
            fn = SwapCall(self.router, "swapExactTokensForTokens", V2_SWAP_EXACT_IN,
                              (amount_in, min_out, [tin.address, tout.address], sender, DEADLINE))
            to, gas = self.router.address, SWAP_GAS
        return self.side.submit(sender, to=to, data=fn.data, gas=gas, max_priority_fee=tip,
                                arrival_ns=arrival, tag=f"{tag}:{p.spec.name}", call=fn)

    # ------------------------------------------------------------------ arbitrageurs and observations

    def on_block(self, result: BlockResult) -> None:
        observed: list[ev.Event] = []
        by_arb = {p.arbitrageur: p for p in self.pools}
        for out in result.outcomes:
            p = by_arb.get(out.tx.sender)
            if p is not None:
                p.pending = False
                self.arbitrages += out.status == SUCCESS
            if out.status != SUCCESS:
                continue
            observed.extend(self._pool_events(out, result))
        for out in result.dropped:
            p = by_arb.get(out.tx.sender)
            if p is not None:
                p.pending = False
        by_searcher = {s.address: s for s in self.searchers}
        for out in result.outcomes + result.dropped:
            srch = by_searcher.get(out.tx.sender)
            if srch is not None and out.tx.id in srch.pending:
                srch.pending.discard(out.tx.id)
                if ":leg2:" in out.tag:  # the second leg decides the race
                    if out.status == SUCCESS:
                        srch.won += 1
                    else:
                        srch.lost += 1
        if observed:
            self.deliver(self.side.name, observed)
        for p in self.pools:
            if not p.pending:
                self._arbitrage(p, result)
        if self.searchers:
            self._search(result)

    def _pool_events(self, out: Any, result: BlockResult) -> list[ev.Event]:
        events: list[ev.Event] = []
        for p in self.pools:
            src = f"sim:{self.side.name}:{p.spec.name}"
            if p.v3:
                for log in p.contract.decode_logs(out.receipt):
                    if log["event"] != "Swap":
                        continue
                    self.swaps += 1
                    events.append(ev.V3Swapped(
                        ts=0, source=src, pool=p.spec.name, block=result.number, tx=out.tx.id,
                        log_index=int(log["logIndex"]), sender=str(log["sender"]).lower(),
                        recipient=str(log["recipient"]).lower(), amount0=int(log["amount0"]),
                        amount1=int(log["amount1"]), sqrt_price_x96=int(log["sqrtPriceX96"]),
                        liquidity=int(log["liquidity"]), tick=int(log["tick"])))
            else:
                pair = p.contract.pair.address.lower()
                syncs = [log for log in out.receipt["logs"]
                         if str(log["address"]).lower() == pair and log["topics"] and _SYNC.knows(log["topics"][0])]
                if syncs:
                    self.swaps += 1
                    last = _SYNC.decode(syncs[-1]["topics"], syncs[-1]["data"]).args
                    events.append(ev.V2ReservesSynced(ts=0, source=src, pool=p.spec.name, block=result.number,
                                                      reserve0=int(last["reserve0"]), reserve1=int(last["reserve1"])))
        return events

    def _search(self, result: BlockResult) -> None:
        """Each idle searcher checks the V2/V3 gap on the chain's state and races for it."""
        from tapedeck.domain.state import MarketState
        from tapedeck.domain.strategies.cross_pool_arb import CrossPoolArb

        v2, v3 = self.pool("uniswap-v2"), self.pool("uniswap-v3")
        assert v2 is not None and v3 is not None
        s = self.scenario.agents.searchers
        state = MarketState()
        v2_view = self.snapshot(v2, result.number, result.ts, "v2")
        v3_view = self.snapshot(v3, result.number, result.ts, "v3")
        finder = CrossPoolArb("searcher", "v2", "v3", v3_fee_pips=v3.contract.fee,
                              v3_tick_spacing=v3.contract.tick_spacing, v2_fee_bps=int(v2.spec.fee_bps),
                              gas_price_wei=result.base_fee + s.priority_fee, gas_units=2 * SWAP_GAS)
        state.on_v2(v2_view)  # type: ignore[arg-type]
        state.on_v3(v3_view)
        found = list(finder.on_event(v3_view, state))
        if not found:
            return
        opp = found[0]
        buy, sell = (v2, v3) if opp.buy_venue == "uniswap-v2" else (v3, v2)
        price = self.reference_at(result.ts) or Decimal(str(self.scenario.reference.start_price))
        for srch in self.searchers:
            if srch.pending:
                continue
            if s.bidding == "fixed":
                tip = s.priority_fee
            else:  # its share of the profit (USDC units -> wei), per unit of gas of both legs
                tip = int(Decimal(opp.net_profit) * s.profit_share / price * 10**12) // (2 * SWAP_GAS)
            arrival = self.world.latency.arrival_ns(srch.name, "outbound", result.ts)
            legs = self.arbitrage_legs(srch.address, buy, sell, opp.amount_in, tip, arrival, srch.name)
            if legs is not None:
                srch.pending.update({legs[0].id, legs[1].id})

    def _reserves(self, p: PoolAgent) -> tuple[int, int]:
        """``getReserves`` as one raw call through the backend's ``call_many`` (web3's call path was
        ~27 ms of client time each, per block on anvil), else through web3."""
        call_many = getattr(self.side.backend, "call_many", None)
        if call_many is None:
            r0, r1, _ = p.contract.pair.functions.getReserves().call()
            return r0, r1
        (out,) = call_many([(p.contract.pair.address, GET_RESERVES)])
        return int.from_bytes(out[:32], "big"), int.from_bytes(out[32:64], "big")

    def _arbitrage(self, p: PoolAgent, result: BlockResult) -> None:
        target = self.reference_at(result.ts - p.lag_ns)
        if target is None:
            return
        band = CTX.divide(p.spec.fee_bps + ARB_MARGIN_BPS, Decimal(10_000))
        tip = self.world.chains[self.side.name].chain.background_max_priority_fee
        if p.v3:
            sqrt_price, _tick = p.contract.slot0()
            pool_price = CTX.divide(Decimal(10**12) * (1 << 192), Decimal(sqrt_price) ** 2)  # USDC per WETH
        else:
            r0, r1 = self._reserves(p)
            pool_price = CTX.divide(Decimal(r0) * 10**12, Decimal(r1))
        gap = CTX.divide(target - pool_price, pool_price)
        if abs(gap) <= band:
            return
        fee = CTX.divide(p.spec.fee_bps, Decimal(10_000))
        # move the pool to the edge of the no-arbitrage band around the target
        goal = target * (1 - fee) if gap > 0 else target * (1 + fee)
        buy_weth = gap > 0  # the pool is cheap: buy WETH with USDC
        if p.v3:
            ratio = CTX.divide(Decimal(10**12), goal)
            limit = int(ratio.sqrt(CTX) * (1 << 96))
            amount = BALANCE_USDC // 1000 if buy_weth else BALANCE_WETH // 1000  # bounded by the price limit
            self._swap(p, p.arbitrageur, buy_weth, amount, limit, tip, result.ts, "arb")
        else:
            k = Decimal(r0) * Decimal(r1)
            goal_raw = CTX.divide(goal, Decimal(10**12))  # USDC units per WETH wei
            if buy_weth:  # new r0 = sqrt(k * p)
                need = Decimal(k * goal_raw).sqrt(CTX) - Decimal(r0)
            else:  # new r1 = sqrt(k / p)
                need = CTX.divide(k, goal_raw).sqrt(CTX) - Decimal(r1)
            amount = int(need / (1 - fee))
            self._swap(p, p.arbitrageur, buy_weth, amount, None, tip, result.ts, "arb")
        p.pending = True

