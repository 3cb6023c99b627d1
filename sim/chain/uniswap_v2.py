"""The real Uniswap V2 factory and pairs (npm ``@uniswap/v2-core`` 1.0.1 build) on a simulated chain.

Backend-agnostic: everything takes the ``Web3`` of a py-evm or anvil chain. Liquidity and swaps
go straight to the pair, the way the router does it: transfer the input to the pair, then
``mint`` / ``swap``; the pair's ``K`` check decides what it accepts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3

from tapedeck.sim.chain.artifacts import load
from tapedeck.sim.chain.pyevm import deploy, transact

PKG = "@uniswap/v2-core"
PERIPHERY = "@uniswap/v2-periphery"
GAS_ROUTER = 5_000_000
GAS_TRANSFER = 100_000
GAS_MINT = 300_000
GAS_SWAP = 200_000
GAS_CREATE_PAIR = 3_000_000


@dataclass
class V2Market:
    w3: Web3
    factory: Any
    token0: Any  # the pair's token0 (lower address)
    token1: Any
    pair: Any

    def reserves(self) -> tuple[int, int]:
        """``getReserves()`` without the timestamp."""
        r0, r1, _ts = self.pair.functions.getReserves().call()
        return r0, r1

    def token(self, zero: bool) -> Any:
        return self.token0 if zero else self.token1


def deploy_v2_pair(w3: Web3, supply: int = 10**40, sender: str | None = None) -> V2Market:
    """Factory + two test ERC20s (v2-core's own ``ERC20(_totalSupply)`` build, all minted to
    ``sender``) + their pair; ``token0``/``token1`` follow the pair's address order."""
    admin = sender or w3.eth.default_account
    factory = deploy(w3, load(PKG, "UniswapV2Factory"), admin, sender=admin, gas=GAS_CREATE_PAIR + 1_000_000)
    a = deploy(w3, load(PKG, "ERC20"), supply, sender=admin, gas=1_500_000)
    b = deploy(w3, load(PKG, "ERC20"), supply, sender=admin, gas=1_500_000)
    transact(w3, factory.functions.createPair(a.address, b.address), admin, gas=GAS_CREATE_PAIR)
    pair_addr = factory.functions.getPair(a.address, b.address).call()
    pair = w3.eth.contract(address=pair_addr, abi=load(PKG, "UniswapV2Pair").abi)
    t0 = pair.functions.token0().call()
    token0, token1 = (a, b) if t0 == a.address else (b, a)
    return V2Market(w3, factory, token0, token1, pair)


def deploy_factory_and_router(w3: Web3, weth: str, sender: str | None = None) -> tuple[Any, Any]:
    """``UniswapV2Factory`` (v2-core) and ``UniswapV2Router02`` (v2-periphery) on it.

    The router finds pairs by CREATE2 with the pair init code hash baked into its library; the
    v2-core 1.0.1 build's ``UniswapV2Pair`` hashes to exactly that (checked in the tests)."""
    admin = sender or w3.eth.default_account
    factory = deploy(w3, load(PKG, "UniswapV2Factory"), admin, sender=admin, gas=GAS_CREATE_PAIR + 1_000_000)
    router = deploy(w3, load(PERIPHERY, "UniswapV2Router02"), factory.address, weth, sender=admin, gas=GAS_ROUTER)
    return factory, router


def create_pair(w3: Web3, factory: Any, token_a: Any, token_b: Any, sender: str | None = None) -> V2Market:
    """``factory.createPair`` for two existing ERC20 contracts; ``token0``/``token1`` in the pair's order."""
    admin = sender or w3.eth.default_account
    transact(w3, factory.functions.createPair(token_a.address, token_b.address), admin, gas=GAS_CREATE_PAIR)
    pair = w3.eth.contract(address=factory.functions.getPair(token_a.address, token_b.address).call(),
                           abi=load(PKG, "UniswapV2Pair").abi)
    token0, token1 = (token_a, token_b) if pair.functions.token0().call() == token_a.address else (token_b, token_a)
    return V2Market(w3, factory, token0, token1, pair)


def add_liquidity(m: V2Market, amount0: int, amount1: int, sender: str | None = None) -> Any:
    """Transfer both amounts to the pair and ``mint`` (LP tokens to ``sender``); returns the mint receipt.

    The first mint locks ``MINIMUM_LIQUIDITY`` (1000) and needs ``sqrt(amount0*amount1) > 1000``.
    """
    sender = sender or m.w3.eth.default_account
    transact(m.w3, m.token0.functions.transfer(m.pair.address, amount0), sender, gas=GAS_TRANSFER)
    transact(m.w3, m.token1.functions.transfer(m.pair.address, amount1), sender, gas=GAS_TRANSFER)
    return transact(m.w3, m.pair.functions.mint(sender), sender, gas=GAS_MINT)


def pay(m: V2Market, amount: int, zero: bool, sender: str | None = None) -> Any:
    """Transfer ``amount`` of token0 (``zero``) or token1 to the pair: the input of a following swap."""
    return transact(m.w3, m.token(zero).functions.transfer(m.pair.address, amount), sender, gas=GAS_TRANSFER)


def swap(m: V2Market, amount0_out: int, amount1_out: int, to: str | None = None, sender: str | None = None) -> Any:
    """``pair.swap(amount0Out, amount1Out, to, "")`` after the input was paid; returns the receipt."""
    to = to or sender or m.w3.eth.default_account
    return transact(m.w3, m.pair.functions.swap(amount0_out, amount1_out, to, b""), sender, gas=GAS_SWAP)


def swap_exact_in(m: V2Market, amount_in: int, zero_for_one: bool, amount_out: int,
                  sender: str | None = None) -> Any:
    """Pay ``amount_in`` to the pair and ask for ``amount_out``: the pair's K check decides.

    Take ``amount_out`` from ``domain.uniswap_v2.get_amount_out``. Returns the swap receipt.
    """
    pay(m, amount_in, zero_for_one, sender)
    out0, out1 = (0, amount_out) if zero_for_one else (amount_out, 0)
    return swap(m, out0, out1, sender=sender)


def skim(m: V2Market, to: str | None = None, sender: str | None = None) -> Any:
    """``pair.skim(to)``: send balances above the reserves to ``to`` (undoes an unused ``pay``)."""
    return transact(m.w3, m.pair.functions.skim(to or sender or m.w3.eth.default_account), sender, gas=GAS_SWAP)


def sync(m: V2Market, sender: str | None = None) -> Any:
    """``pair.sync()``: set the reserves to the balances (absorbs tokens sent without a swap)."""
    return transact(m.w3, m.pair.functions.sync(), sender, gas=GAS_SWAP)
