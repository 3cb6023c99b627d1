"""The event ABIs of the contracts whose logs tapedeck reads, for readers that run without the npm
artifacts (an importer, a live adapter installed from the wheel).

Copied from the npm packages' builds (``sim.chain.artifacts.load``: ``@uniswap/v3-core``
``UniswapV3Pool``, ``@uniswap/v2-core`` ``UniswapV2Pair``, ``@aave/core-v3`` ``Pool``; the versions
pinned in package-lock.json), keeping each event's name and inputs (name, type, indexed).
``tests/test_evm_logs.py`` checks they are still exactly the artifacts' events when node_modules is
installed. Use with ``adapters.evm_logs.EventDecoder``.
"""
from __future__ import annotations

from typing import Any

Abi = list[dict[str, Any]]


# @uniswap/v3-core UniswapV3Pool
UNISWAP_V3_POOL: Abi = [
    {"type": "event", "name": "Burn", "anonymous": False, "inputs": [
        {"name": "owner", "type": "address", "indexed": True},
        {"name": "tickLower", "type": "int24", "indexed": True},
        {"name": "tickUpper", "type": "int24", "indexed": True},
        {"name": "amount", "type": "uint128", "indexed": False},
        {"name": "amount0", "type": "uint256", "indexed": False},
        {"name": "amount1", "type": "uint256", "indexed": False},
    ]},
    {"type": "event", "name": "Collect", "anonymous": False, "inputs": [
        {"name": "owner", "type": "address", "indexed": True},
        {"name": "recipient", "type": "address", "indexed": False},
        {"name": "tickLower", "type": "int24", "indexed": True},
        {"name": "tickUpper", "type": "int24", "indexed": True},
        {"name": "amount0", "type": "uint128", "indexed": False},
        {"name": "amount1", "type": "uint128", "indexed": False},
    ]},
    {"type": "event", "name": "CollectProtocol", "anonymous": False, "inputs": [
        {"name": "sender", "type": "address", "indexed": True},
        {"name": "recipient", "type": "address", "indexed": True},
        {"name": "amount0", "type": "uint128", "indexed": False},
        {"name": "amount1", "type": "uint128", "indexed": False},
    ]},
    {"type": "event", "name": "Flash", "anonymous": False, "inputs": [
        {"name": "sender", "type": "address", "indexed": True},
        {"name": "recipient", "type": "address", "indexed": True},
        {"name": "amount0", "type": "uint256", "indexed": False},
        {"name": "amount1", "type": "uint256", "indexed": False},
        {"name": "paid0", "type": "uint256", "indexed": False},
        {"name": "paid1", "type": "uint256", "indexed": False},
    ]},
    {"type": "event", "name": "IncreaseObservationCardinalityNext", "anonymous": False, "inputs": [
        {"name": "observationCardinalityNextOld", "type": "uint16", "indexed": False},
        {"name": "observationCardinalityNextNew", "type": "uint16", "indexed": False},
    ]},
    {"type": "event", "name": "Initialize", "anonymous": False, "inputs": [
        {"name": "sqrtPriceX96", "type": "uint160", "indexed": False},
        {"name": "tick", "type": "int24", "indexed": False},
    ]},
    {"type": "event", "name": "Mint", "anonymous": False, "inputs": [
        {"name": "sender", "type": "address", "indexed": False},
        {"name": "owner", "type": "address", "indexed": True},
        {"name": "tickLower", "type": "int24", "indexed": True},
        {"name": "tickUpper", "type": "int24", "indexed": True},
        {"name": "amount", "type": "uint128", "indexed": False},
        {"name": "amount0", "type": "uint256", "indexed": False},
        {"name": "amount1", "type": "uint256", "indexed": False},
    ]},
    {"type": "event", "name": "SetFeeProtocol", "anonymous": False, "inputs": [
        {"name": "feeProtocol0Old", "type": "uint8", "indexed": False},
        {"name": "feeProtocol1Old", "type": "uint8", "indexed": False},
        {"name": "feeProtocol0New", "type": "uint8", "indexed": False},
        {"name": "feeProtocol1New", "type": "uint8", "indexed": False},
    ]},
    {"type": "event", "name": "Swap", "anonymous": False, "inputs": [
        {"name": "sender", "type": "address", "indexed": True},
        {"name": "recipient", "type": "address", "indexed": True},
        {"name": "amount0", "type": "int256", "indexed": False},
        {"name": "amount1", "type": "int256", "indexed": False},
        {"name": "sqrtPriceX96", "type": "uint160", "indexed": False},
        {"name": "liquidity", "type": "uint128", "indexed": False},
        {"name": "tick", "type": "int24", "indexed": False},
    ]},
]

# @uniswap/v2-core UniswapV2Pair
UNISWAP_V2_PAIR: Abi = [
    {"type": "event", "name": "Approval", "anonymous": False, "inputs": [
        {"name": "owner", "type": "address", "indexed": True},
        {"name": "spender", "type": "address", "indexed": True},
        {"name": "value", "type": "uint256", "indexed": False},
    ]},
    {"type": "event", "name": "Burn", "anonymous": False, "inputs": [
        {"name": "sender", "type": "address", "indexed": True},
        {"name": "amount0", "type": "uint256", "indexed": False},
        {"name": "amount1", "type": "uint256", "indexed": False},
        {"name": "to", "type": "address", "indexed": True},
    ]},
    {"type": "event", "name": "Mint", "anonymous": False, "inputs": [
        {"name": "sender", "type": "address", "indexed": True},
        {"name": "amount0", "type": "uint256", "indexed": False},
        {"name": "amount1", "type": "uint256", "indexed": False},
    ]},
    {"type": "event", "name": "Swap", "anonymous": False, "inputs": [
        {"name": "sender", "type": "address", "indexed": True},
        {"name": "amount0In", "type": "uint256", "indexed": False},
        {"name": "amount1In", "type": "uint256", "indexed": False},
        {"name": "amount0Out", "type": "uint256", "indexed": False},
        {"name": "amount1Out", "type": "uint256", "indexed": False},
        {"name": "to", "type": "address", "indexed": True},
    ]},
    {"type": "event", "name": "Sync", "anonymous": False, "inputs": [
        {"name": "reserve0", "type": "uint112", "indexed": False},
        {"name": "reserve1", "type": "uint112", "indexed": False},
    ]},
    {"type": "event", "name": "Transfer", "anonymous": False, "inputs": [
        {"name": "from", "type": "address", "indexed": True},
        {"name": "to", "type": "address", "indexed": True},
        {"name": "value", "type": "uint256", "indexed": False},
    ]},
]

# @aave/core-v3 Pool
AAVE_V3_POOL: Abi = [
    {"type": "event", "name": "BackUnbacked", "anonymous": False, "inputs": [
        {"name": "reserve", "type": "address", "indexed": True},
        {"name": "backer", "type": "address", "indexed": True},
        {"name": "amount", "type": "uint256", "indexed": False},
        {"name": "fee", "type": "uint256", "indexed": False},
    ]},
    {"type": "event", "name": "Borrow", "anonymous": False, "inputs": [
        {"name": "reserve", "type": "address", "indexed": True},
        {"name": "user", "type": "address", "indexed": False},
        {"name": "onBehalfOf", "type": "address", "indexed": True},
        {"name": "amount", "type": "uint256", "indexed": False},
        {"name": "interestRateMode", "type": "uint8", "indexed": False},
        {"name": "borrowRate", "type": "uint256", "indexed": False},
        {"name": "referralCode", "type": "uint16", "indexed": True},
    ]},
    {"type": "event", "name": "FlashLoan", "anonymous": False, "inputs": [
        {"name": "target", "type": "address", "indexed": True},
        {"name": "initiator", "type": "address", "indexed": False},
        {"name": "asset", "type": "address", "indexed": True},
        {"name": "amount", "type": "uint256", "indexed": False},
        {"name": "interestRateMode", "type": "uint8", "indexed": False},
        {"name": "premium", "type": "uint256", "indexed": False},
        {"name": "referralCode", "type": "uint16", "indexed": True},
    ]},
    {"type": "event", "name": "IsolationModeTotalDebtUpdated", "anonymous": False, "inputs": [
        {"name": "asset", "type": "address", "indexed": True},
        {"name": "totalDebt", "type": "uint256", "indexed": False},
    ]},
    {"type": "event", "name": "LiquidationCall", "anonymous": False, "inputs": [
        {"name": "collateralAsset", "type": "address", "indexed": True},
        {"name": "debtAsset", "type": "address", "indexed": True},
        {"name": "user", "type": "address", "indexed": True},
        {"name": "debtToCover", "type": "uint256", "indexed": False},
        {"name": "liquidatedCollateralAmount", "type": "uint256", "indexed": False},
        {"name": "liquidator", "type": "address", "indexed": False},
        {"name": "receiveAToken", "type": "bool", "indexed": False},
    ]},
    {"type": "event", "name": "MintUnbacked", "anonymous": False, "inputs": [
        {"name": "reserve", "type": "address", "indexed": True},
        {"name": "user", "type": "address", "indexed": False},
        {"name": "onBehalfOf", "type": "address", "indexed": True},
        {"name": "amount", "type": "uint256", "indexed": False},
        {"name": "referralCode", "type": "uint16", "indexed": True},
    ]},
    {"type": "event", "name": "MintedToTreasury", "anonymous": False, "inputs": [
        {"name": "reserve", "type": "address", "indexed": True},
        {"name": "amountMinted", "type": "uint256", "indexed": False},
    ]},
    {"type": "event", "name": "RebalanceStableBorrowRate", "anonymous": False, "inputs": [
        {"name": "reserve", "type": "address", "indexed": True},
        {"name": "user", "type": "address", "indexed": True},
    ]},
    {"type": "event", "name": "Repay", "anonymous": False, "inputs": [
        {"name": "reserve", "type": "address", "indexed": True},
        {"name": "user", "type": "address", "indexed": True},
        {"name": "repayer", "type": "address", "indexed": True},
        {"name": "amount", "type": "uint256", "indexed": False},
        {"name": "useATokens", "type": "bool", "indexed": False},
    ]},
    {"type": "event", "name": "ReserveDataUpdated", "anonymous": False, "inputs": [
        {"name": "reserve", "type": "address", "indexed": True},
        {"name": "liquidityRate", "type": "uint256", "indexed": False},
        {"name": "stableBorrowRate", "type": "uint256", "indexed": False},
        {"name": "variableBorrowRate", "type": "uint256", "indexed": False},
        {"name": "liquidityIndex", "type": "uint256", "indexed": False},
        {"name": "variableBorrowIndex", "type": "uint256", "indexed": False},
    ]},
    {"type": "event", "name": "ReserveUsedAsCollateralDisabled", "anonymous": False, "inputs": [
        {"name": "reserve", "type": "address", "indexed": True},
        {"name": "user", "type": "address", "indexed": True},
    ]},
    {"type": "event", "name": "ReserveUsedAsCollateralEnabled", "anonymous": False, "inputs": [
        {"name": "reserve", "type": "address", "indexed": True},
        {"name": "user", "type": "address", "indexed": True},
    ]},
    {"type": "event", "name": "Supply", "anonymous": False, "inputs": [
        {"name": "reserve", "type": "address", "indexed": True},
        {"name": "user", "type": "address", "indexed": False},
        {"name": "onBehalfOf", "type": "address", "indexed": True},
        {"name": "amount", "type": "uint256", "indexed": False},
        {"name": "referralCode", "type": "uint16", "indexed": True},
    ]},
    {"type": "event", "name": "SwapBorrowRateMode", "anonymous": False, "inputs": [
        {"name": "reserve", "type": "address", "indexed": True},
        {"name": "user", "type": "address", "indexed": True},
        {"name": "interestRateMode", "type": "uint8", "indexed": False},
    ]},
    {"type": "event", "name": "UserEModeSet", "anonymous": False, "inputs": [
        {"name": "user", "type": "address", "indexed": True},
        {"name": "categoryId", "type": "uint8", "indexed": False},
    ]},
    {"type": "event", "name": "Withdraw", "anonymous": False, "inputs": [
        {"name": "reserve", "type": "address", "indexed": True},
        {"name": "user", "type": "address", "indexed": True},
        {"name": "to", "type": "address", "indexed": True},
        {"name": "amount", "type": "uint256", "indexed": False},
    ]},
]


# ----------------------------------------------------------------------------- the sim's Aave market
# (added by the aave-sim helper; the aave-import helper adds the Pool-side ABIs it reads in its own
# block: if both define an aToken ABI, keep one.) The events beside the Pool's that the simulated
# market emits and the sim turns into input events (``sim.chain.aave_events``): the aToken's
# ``BalanceTransfer`` (``@aave/core-v3`` AToken, scaled amount and index), AaveOracle's
# ``AssetSourceUpdated`` (a reserve's price feed changed) and the Chainlink-style aggregators'
# ``AnswerUpdated`` (``MockAggregator``, ``AggregatorInterface``).

# @aave/core-v3 AToken (BalanceTransfer only: Transfer/Mint/Burn carry nothing the book needs)
AAVE_V3_ATOKEN_BALANCE_TRANSFER: Abi = [
    {"type": "event", "name": "BalanceTransfer", "anonymous": False, "inputs": [
        {"name": "from", "type": "address", "indexed": True},
        {"name": "to", "type": "address", "indexed": True},
        {"name": "value", "type": "uint256", "indexed": False},
        {"name": "index", "type": "uint256", "indexed": False},
    ]},
]

# @aave/core-v3 AaveOracle (AssetSourceUpdated only)
AAVE_ORACLE_SOURCE_UPDATED: Abi = [
    {"type": "event", "name": "AssetSourceUpdated", "anonymous": False, "inputs": [
        {"name": "asset", "type": "address", "indexed": True},
        {"name": "source", "type": "address", "indexed": True},
    ]},
]

# @aave/core-v3 MockAggregator / AggregatorInterface (AnswerUpdated only)
AGGREGATOR_ANSWER_UPDATED: Abi = [
    {"type": "event", "name": "AnswerUpdated", "anonymous": False, "inputs": [
        {"name": "current", "type": "int256", "indexed": True},
        {"name": "roundId", "type": "uint256", "indexed": True},
        {"name": "updatedAt", "type": "uint256", "indexed": False},
    ]},
]


def aave_sim_market_abi() -> Abi:
    """Every event the sim's Aave market turns into input events besides the Pool's own
    (``AAVE_V3_POOL``): one list, so one ``EventDecoder`` reads them (their topic0s do not clash)."""
    return AAVE_V3_ATOKEN_BALANCE_TRANSFER + AAVE_ORACLE_SOURCE_UPDATED + AGGREGATOR_ANSWER_UPDATED
