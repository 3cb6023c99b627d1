"""The real Uniswap V3 contracts (npm ``@uniswap/v3-core`` 1.0.1, ``@uniswap/v3-periphery`` 1.4.4) on a
simulated chain, so V3 pools in the sim and the domain's V3 math meet the published bytecode.

Backend-agnostic like ``sim.chain.uniswap_v2``: everything takes the ``Web3`` of a py-evm or anvil chain.
Positions and swaps go through the periphery (NonfungiblePositionManager, SwapRouter), as users reach a
pool; a swap can be built without being sent (:func:`swap_exact_input_call`) so the sim's mempool sends
it with its own nonce, fees and gas. Every transaction passes an explicit gas limit: py-evm's
estimation re-runs the call many times.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3

from tapedeck.adapters import evm_abis
from tapedeck.adapters.evm_logs import EventDecoder
from tapedeck.sim.chain.artifacts import load
from tapedeck.sim.chain.pyevm import deploy, transact

CORE = "@uniswap/v3-core"
PERIPHERY = "@uniswap/v3-periphery"
ZERO = "0x0000000000000000000000000000000000000000"
MAX_UINT256 = 2**256 - 1
DEADLINE = 2**63  # far future: the sim's blocks, not the deadline, decide when a transaction lands

# Limits, with the gas used as measured on py-evm (Prague):
GAS_FACTORY = 6_000_000  # 5.44M
GAS_ROUTER = 4_000_000  # 2.67M
GAS_MANAGER = 7_000_000  # 5.47M
GAS_CREATE_POOL = 6_000_000  # 4.56M (deploys the pool)
GAS_INITIALIZE = 150_000  # 70k
GAS_APPROVE = 100_000
GAS_MINT = 1_000_000  # 618k for the first position; 390-470k on new ticks, 326k on initialized ones
GAS_SWAP = 1_000_000  # exactInputSingle: 112-137k inside one range, +~50k per initialized tick crossed
POOL_EVENTS = ("Swap", "Mint", "Burn", "Collect")
_POOL_LOGS = EventDecoder(evm_abis.UNISWAP_V3_POOL, only=POOL_EVENTS, checksum=True)  # addresses as web3 gives them


def _address(token: Any) -> str:
    return Web3.to_checksum_address(token if isinstance(token, str) else token.address)


@dataclass
class V3Deployment:
    w3: Web3
    factory: Any
    router: Any  # SwapRouter
    manager: Any  # NonfungiblePositionManager
    weth: str
    sender: str


@dataclass
class V3Pool:
    w3: Web3
    pool: Any
    token0: Any  # web3 contracts, in the pool's order (lower address first)
    token1: Any
    fee: int  # pips: 500 = 0.05 %
    tick_spacing: int
    router: Any
    manager: Any

    @property
    def address(self) -> str:
        return self.pool.address

    def slot0(self) -> tuple[int, int]:
        """``(sqrtPriceX96, tick)`` from ``slot0()``."""
        s = self.pool.functions.slot0().call()
        return int(s[0]), int(s[1])

    def liquidity(self) -> int:
        """The in-range liquidity."""
        return int(self.pool.functions.liquidity().call())

    def zero_for_one(self, token_in: Any) -> bool:
        """Whether paying ``token_in`` (contract or address) sells token0."""
        t = _address(token_in)
        if t not in (self.token0.address, self.token1.address):
            raise ValueError(f"{t} is not a token of pool {self.address}")
        return t == self.token0.address

    def decode_logs(self, receipt: Any) -> list[dict[str, Any]]:
        """This pool's Swap/Mint/Burn/Collect logs in ``receipt``, in log order: the event's own fields
        (``sender``, ``recipient``, ``amount0``, ``amount1``, ``sqrtPriceX96``, ``liquidity``, ``tick``,
        ``owner``, ``tickLower``, ``tickUpper``, ``amount``, ...) plus ``event``, ``logIndex``,
        ``blockNumber`` and ``transactionHash``."""
        out = []
        for log in receipt["logs"]:
            if log["address"] != self.pool.address or not log["topics"] or not _POOL_LOGS.knows(log["topics"][0]):
                continue
            decoded = _POOL_LOGS.decode(log["topics"], log["data"])
            out.append({**decoded.args, "event": decoded.event, "logIndex": log["logIndex"],
                        "blockNumber": log["blockNumber"], "transactionHash": log["transactionHash"]})
        return out


def deploy_v3(w3: Web3, sender: str | None = None, weth: Any = None) -> V3Deployment:
    """``UniswapV3Factory`` (fee tiers 500/10, 3000/60, 10000/200 enabled by its constructor), and on it
    a ``SwapRouter`` and a ``NonfungiblePositionManager`` (no token descriptor: ``tokenURI`` is unused).

    ``weth`` (contract or address; default the zero address) only matters for ETH payments, which
    nothing here makes: ERC20-in swaps and mints pull tokens with ``transferFrom``.
    """
    admin = sender or w3.eth.default_account
    weth_addr = _address(weth) if weth is not None else ZERO
    factory = deploy(w3, load(CORE, "UniswapV3Factory"), sender=admin, gas=GAS_FACTORY)
    router = deploy(w3, load(PERIPHERY, "SwapRouter"), factory.address, weth_addr, sender=admin, gas=GAS_ROUTER)
    manager = deploy(w3, load(PERIPHERY, "NonfungiblePositionManager"), factory.address, weth_addr, ZERO,
                     sender=admin, gas=GAS_MANAGER)
    return V3Deployment(w3, factory, router, manager, weth_addr, admin)


def _erc20(w3: Web3, token: Any) -> Any:
    """A web3 contract for ``token``: kept as given, or v3-core's ``IERC20Minimal`` ABI at an address."""
    if not isinstance(token, str):
        return token
    return w3.eth.contract(address=Web3.to_checksum_address(token), abi=load(CORE, "IERC20Minimal").abi)


def create_pool(dep: V3Deployment, token_a: Any, token_b: Any, fee: int, sqrt_price_x96: int,
                sender: str | None = None) -> V3Pool:
    """``factory.createPool`` then ``pool.initialize(sqrt_price_x96)`` for two existing ERC20s (contracts
    or addresses); each step is skipped if already done. ``sqrt_price_x96`` is sqrt(token1/token0) in
    base units, with token0 the lower address."""
    w3, admin = dep.w3, sender or dep.sender
    a, b = _erc20(w3, token_a), _erc20(w3, token_b)
    token0, token1 = (a, b) if int(a.address, 16) < int(b.address, 16) else (b, a)
    address = dep.factory.functions.getPool(token0.address, token1.address, fee).call()
    if int(address, 16) == 0:
        transact(w3, dep.factory.functions.createPool(token0.address, token1.address, fee), admin,
                 gas=GAS_CREATE_POOL)
        address = dep.factory.functions.getPool(token0.address, token1.address, fee).call()
    pool = w3.eth.contract(address=address, abi=load(CORE, "UniswapV3Pool").abi)
    if pool.functions.slot0().call()[0] == 0:
        transact(w3, pool.functions.initialize(sqrt_price_x96), admin, gas=GAS_INITIALIZE)
    spacing = int(pool.functions.tickSpacing().call())
    return V3Pool(w3, pool, token0, token1, fee, spacing, dep.router, dep.manager)


def _approve(w3: Web3, token: Any, owner: str, spender: str, amount: int) -> None:
    if token.functions.allowance(owner, spender).call() < amount:
        transact(w3, token.functions.approve(spender, MAX_UINT256), owner, gas=GAS_APPROVE)


def approve_router(pool: V3Pool, owner: str) -> None:
    """Let the SwapRouter pull both tokens from ``owner`` (an unlimited approval, sent only if missing)."""
    for token in (pool.token0, pool.token1):
        _approve(pool.w3, token, owner, pool.router.address, MAX_UINT256 // 2)


def mint_position(pool: V3Pool, owner: str, tick_lower: int, tick_upper: int, amount0_desired: int,
                  amount1_desired: int, *, amount0_min: int = 0, amount1_min: int = 0, recipient: str | None = None,
                  deadline: int = DEADLINE, gas: int = GAS_MINT) -> Any:
    """A new position NFT through the NonfungiblePositionManager (``owner`` pays and must hold the tokens;
    approvals are sent if missing). The manager takes the most liquidity both amounts allow at the
    current price; the pool's Mint log (:meth:`V3Pool.decode_logs`) says what it took. Returns the receipt."""
    w3 = pool.w3
    _approve(w3, pool.token0, owner, pool.manager.address, amount0_desired)
    _approve(w3, pool.token1, owner, pool.manager.address, amount1_desired)
    params = (pool.token0.address, pool.token1.address, pool.fee, tick_lower, tick_upper, amount0_desired,
              amount1_desired, amount0_min, amount1_min, recipient or owner, deadline)
    return transact(w3, pool.manager.functions.mint(params), owner, gas=gas)


def swap_exact_input_call(pool: V3Pool, recipient: str, token_in: Any, amount_in: int, amount_out_min: int = 0,
                          sqrt_price_limit_x96: int = 0, deadline: int = DEADLINE) -> Any:
    """``router.functions.exactInputSingle(params)``, bound but not sent: pay ``amount_in`` of ``token_in``
    for the other token, sent to ``recipient``. A zero price limit means none (the router uses the
    extreme ratio). The sender must have approved the router (:func:`approve_router`)."""
    zero_for_one = pool.zero_for_one(token_in)
    tin, tout = (pool.token0, pool.token1) if zero_for_one else (pool.token1, pool.token0)
    params = (tin.address, tout.address, pool.fee, recipient, deadline, amount_in, amount_out_min,
              sqrt_price_limit_x96)
    return pool.router.functions.exactInputSingle(params)


def swap_exact_input(pool: V3Pool, sender: str, token_in: Any, amount_in: int, amount_out_min: int = 0,
                     sqrt_price_limit_x96: int = 0, deadline: int = DEADLINE, *, recipient: str | None = None,
                     gas: int = GAS_SWAP, check: bool = True) -> Any:
    """:func:`swap_exact_input_call` sent from ``sender`` (output to ``recipient``, default ``sender``);
    returns the receipt (the pool's Swap log: :meth:`V3Pool.decode_logs`)."""
    fn = swap_exact_input_call(pool, recipient or sender, token_in, amount_in, amount_out_min,
                               sqrt_price_limit_x96, deadline)
    return transact(pool.w3, fn, sender, gas=gas, check=check)
