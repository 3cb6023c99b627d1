"""The real Uniswap V2 factory and pairs (npm ``@uniswap/v2-core`` build) on a simulated chain."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3

from sim.chain.artifacts import load
from sim.chain.pyevm import deploy, transact

PKG = "@uniswap/v2-core"


@dataclass
class V2Market:
    w3: Web3
    factory: Any
    token0: Any
    token1: Any
    pair: Any

    def reserves(self) -> tuple[int, int]:
        r0, r1, _ts = self.pair.functions.getReserves().call()
        return r0, r1


def deploy_v2_pair(w3: Web3, supply: int = 10**40) -> V2Market:
    """Factory + two test ERC20s (v2-core's own ERC20 build) + their pair, tokens sorted like the pair."""
    admin = w3.eth.default_account
    factory = deploy(w3, load(PKG, "UniswapV2Factory"), admin)
    a = deploy(w3, load(PKG, "ERC20"), supply)
    b = deploy(w3, load(PKG, "ERC20"), supply)
    transact(w3, factory.functions.createPair(a.address, b.address), gas=3_000_000)
    pair_addr = factory.functions.getPair(a.address, b.address).call()
    pair = w3.eth.contract(address=pair_addr, abi=load(PKG, "UniswapV2Pair").abi)
    t0 = pair.functions.token0().call()
    token0, token1 = (a, b) if t0 == a.address else (b, a)
    return V2Market(w3, factory, token0, token1, pair)


def add_liquidity(m: V2Market, amount0: int, amount1: int) -> None:
    transact(m.w3, m.token0.functions.transfer(m.pair.address, amount0), gas=100_000)
    transact(m.w3, m.token1.functions.transfer(m.pair.address, amount1), gas=100_000)
    transact(m.w3, m.pair.functions.mint(m.w3.eth.default_account), gas=300_000)


def swap_exact_in(m: V2Market, amount_in: int, zero_for_one: bool, amount_out: int) -> Any:
    """Pay ``amount_in`` to the pair and ask for ``amount_out``: the pair's K check decides."""
    token_in = m.token0 if zero_for_one else m.token1
    transact(m.w3, token_in.functions.transfer(m.pair.address, amount_in), gas=100_000)
    out0, out1 = (0, amount_out) if zero_for_one else (amount_out, 0)
    return transact(m.w3, m.pair.functions.swap(out0, out1, m.w3.eth.default_account, b""), gas=200_000)
