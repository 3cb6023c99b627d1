"""A full Aave v3.0 market from the real npm builds (``@aave/core-v3`` 1.19.3 Hardhat artifacts).

:func:`deploy_aave_v3` takes a ``Web3`` (py-evm through eth-tester, or anvil) and returns an
:class:`AaveV3Market`. The deploy follows the official order (``@aave/deploy-v3``; EVM_SIM.md §3):
addresses provider and ACL roles, the logic libraries linked through their ``linkReferences``, Pool and
PoolConfigurator behind the provider's proxies, MintableERC20 WETH/USDC, MockAggregator feeds behind
AaveOracle (USD base, unit 1e8), the data provider, token implementations, one interest-rate strategy
per reserve, ``initReserves`` and the risk parameters.

Every transaction passes an explicit gas limit (web3's estimation is 4-10x the cost of the call).
:meth:`AaveV3Market.user_reserves` reads what the domain needs (``domain.aave_v3.UserReserve``), so a
strategy or a test projects the position to any later timestamp with the exact index math.
"""
from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from web3 import Web3

from tapedeck.adapters import evm_abis
from tapedeck.adapters.evm_logs import EventDecoder
from tapedeck.domain import aave_v3 as aave
from tapedeck.sim.chain.artifacts import load, node_modules
from tapedeck.sim.chain.pyevm import deploy

PKG = "@aave/core-v3"
ZERO = "0x0000000000000000000000000000000000000000"
DEFAULT_TREASURY = "0x000000000000000000000000000000000000dEaD"
VARIABLE = 2  # DataTypes.InterestRateMode.VARIABLE

# Pool links these; FlashLoanLogic itself links BorrowLogic, so it is deployed after it.
POOL_LIBRARIES = ("SupplyLogic", "BorrowLogic", "LiquidationLogic", "EModeLogic", "BridgeLogic", "PoolLogic",
                  "FlashLoanLogic")
CONFIGURATOR_LIBRARIES = ("ConfiguratorLogic",)

DEPLOY_GAS = 8_000_000
TX_GAS = 1_000_000
_LIQUIDATIONS = EventDecoder(evm_abis.AAVE_V3_POOL, only=["LiquidationCall"], checksum=True)
INIT_RESERVES_GAS = 12_000_000

RAY = 10**27
_ACCOUNT_DATA = bytes(Web3.keccak(text="getUserAccountData(address)")[:4])


@dataclass(frozen=True)
class ReserveSpec:
    """One listed asset: its MintableERC20, starting oracle price (8 dp), risk bps and rate strategy (ray)."""

    symbol: str
    name: str
    decimals: int
    price: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    reserve_factor: int = 1000
    liquidation_protocol_fee: int = 1000
    borrowing: bool = True
    # DefaultReserveInterestRateStrategy(optimalUsage, baseVar, varSlope1, varSlope2, stableSlope1,
    #   stableSlope2, baseStableOffset, stableExcessOffset, optimalStableToTotalDebt)
    rates: tuple[int, ...] = (int(0.8e27), 0, int(0.04e27), int(0.75e27), int(0.02e27), int(0.75e27),
                              int(0.02e27), int(0.05e27), int(0.2e27))


WETH = ReserveSpec("WETH", "Wrapped Ether", 18, 2000 * 10**8, 8000, 8250, 10500,
                   rates=(int(0.8e27), 0, int(0.038e27), int(0.8e27), int(0.04e27), int(0.8e27), int(0.02e27),
                          int(0.05e27), int(0.2e27)))
USDC = ReserveSpec("USDC", "USD Coin", 6, 1 * 10**8, 8000, 8500, 10500,
                   rates=(int(0.9e27), 0, int(0.04e27), int(0.6e27), int(0.02e27), int(0.6e27), int(0.02e27),
                          int(0.05e27), int(0.2e27)))
DEFAULT_RESERVES = (WETH, USDC)


class AaveCallReverted(RuntimeError):
    """A market transaction reverted; ``reason`` is Aave's error code (e.g. ``"45"``) when it could be read."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what} reverted: {reason}")
        self.reason = reason


@dataclass
class AaveV3Market:
    w3: Web3
    admin: str
    treasury: str
    provider: Any
    acl: Any
    pool: Any
    configurator: Any
    oracle: Any
    data_provider: Any
    libraries: dict[str, str]
    tokens: dict[str, Any]  # symbol -> MintableERC20
    specs: dict[str, ReserveSpec]
    atokens: dict[str, Any] = field(default_factory=dict)  # underlying address -> AToken proxy
    variable_debt: dict[str, Any] = field(default_factory=dict)
    stable_debt: dict[str, Any] = field(default_factory=dict)
    aggregators: dict[str, Any] = field(default_factory=dict)  # underlying address -> MockAggregator
    deploy_seconds: float = 0.0
    # the backend's batched eth_call (``PyEvmChain.call_many``/``AnvilChain.call_many``): many reads, one round trip
    call_many: Callable[[list[tuple[str, bytes]]], list[bytes | None]] | None = None

    # ------------------------------------------------------------------ plumbing

    def asset(self, asset: str | Any) -> str:
        """An underlying's address from a symbol (``"WETH"``), a contract or an address."""
        if isinstance(asset, str) and asset in self.tokens:
            return self.tokens[asset].address
        return Web3.to_checksum_address(asset if isinstance(asset, str) else asset.address)

    def _send(self, what: str, fn: Any, sender: str | None = None, gas: int = TX_GAS) -> Any:
        sender = sender or self.admin
        try:
            tx = fn.transact({"from": sender, "gas": gas})
        except Exception as e:  # eth-tester/anvil may refuse a reverting transaction at send time
            raise AaveCallReverted(what, _reason(e)) from e
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        if receipt["status"] != 1:
            # replay as a call on the unchanged state to read the revert reason
            try:
                fn.call({"from": sender, "gas": gas})
                reason = "status 0"
            except Exception as e:  # noqa: BLE001 - any revert shape
                reason = _reason(e)
            raise AaveCallReverted(what, reason)
        return receipt

    # ------------------------------------------------------------------ actions

    def mint(self, asset: str | Any, to: str, amount: int) -> Any:
        """MintableERC20.mint(to, amount) (anyone may mint the test tokens)."""
        token = self._token(asset)
        return self._send("mint", token.get_function_by_signature("mint(address,uint256)")(to, amount), gas=120_000)

    def approve(self, asset: str | Any, owner: str, amount: int = 2**256 - 1) -> Any:
        return self._send("approve", self._token(asset).functions.approve(self.pool.address, amount), owner,
                          gas=80_000)

    def supply(self, user: str, asset: str | Any, amount: int, *, mint: bool = False) -> Any:
        """Approve the pool and ``Pool.supply(asset, amount, user, 0)``; ``mint=True`` mints the amount first."""
        if mint:
            self.mint(asset, user, amount)
        self.approve(asset, user, amount)
        return self._send("supply", self.pool.functions.supply(self.asset(asset), amount, user, 0), user,
                          gas=400_000)

    def borrow(self, user: str, asset: str | Any, amount: int) -> Any:
        """``Pool.borrow(asset, amount, VARIABLE, 0, user)``."""
        return self._send("borrow", self.pool.functions.borrow(self.asset(asset), amount, VARIABLE, 0, user), user,
                          gas=500_000)

    def set_price(self, asset: str | Any, price: int) -> Any:
        """Move the oracle price (8 dp): MockAggregator has no setter, so deploy a new one and point
        ``AaveOracle.setAssetSources`` at it."""
        addr = self.asset(asset)
        agg = deploy(self.w3, load(PKG, "MockAggregator"), price, sender=self.admin, gas=300_000)
        self.aggregators[addr] = agg
        return self._send("setAssetSources", self.oracle.functions.setAssetSources([addr], [agg.address]),
                          gas=200_000)

    def liquidation_call(self, liquidator: str, collateral: str | Any, debt: str | Any, user: str,
                         debt_to_cover: int, receive_atoken: bool = False, *, approve: bool = True) -> dict[str, Any]:
        """``Pool.liquidationCall``; returns the decoded ``LiquidationCall`` event args plus ``blockNumber``,
        ``timestamp`` and ``gasUsed``. Raises :class:`AaveCallReverted` (reason e.g. ``"45"``) on revert.
        The liquidator must hold the debt asset; ``approve`` approves the pool for it first."""
        if approve:
            self.approve(debt, liquidator)
        receipt = self._send("liquidationCall", self.pool.functions.liquidationCall(
            self.asset(collateral), self.asset(debt), user, debt_to_cover, receive_atoken), liquidator, gas=900_000)
        logs = self.liquidation_logs(receipt)
        if len(logs) != 1:
            raise RuntimeError(f"expected one LiquidationCall event, got {len(logs)}")
        out = logs[0]
        out["blockNumber"] = receipt["blockNumber"]
        out["timestamp"] = self.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
        out["gasUsed"] = receipt["gasUsed"]
        return out

    # ------------------------------------------------------------------ reads

    def liquidation_logs(self, receipt: Any) -> list[dict[str, Any]]:
        """The pool's ``LiquidationCall`` logs in a receipt, as dicts of their arguments (addresses
        checksummed, as web3 gives them) and the log's index in its block (``_log_index``), decoded by
        the decoder the importers use."""
        return [{**log.args, "_log_index": -1 if log.log_index is None else log.log_index}
                for log in _LIQUIDATIONS.decode_receipt(receipt, address=self.pool.address)]

    def price(self, asset: str | Any) -> int:
        return self.oracle.functions.getAssetPrice(self.asset(asset)).call()

    def balance_of(self, asset: str | Any, account: str) -> int:
        return self._token(asset).functions.balanceOf(account).call()

    def user_account_data(self, user: str) -> tuple[int, int, int, int, int, int]:
        """``Pool.getUserAccountData``: (collateralBase, debtBase, availableBorrowsBase, LT, ltv, HF)."""
        return tuple(self.pool.functions.getUserAccountData(user).call())  # type: ignore[return-value]

    def users_account_data(self, users: list[str]) -> list[tuple[int, int, int, int, int, int]]:
        """``getUserAccountData`` of many users in one batch (``call_many``: one VM on py-evm, one
        JSON-RPC batch on anvil) instead of a web3 call each (~89 ms apiece in eth-crash's profile).
        The six words are decoded by hand: web3's ABI mapping was seconds of an anvil run."""
        if self.call_many is None:
            return [self.user_account_data(u) for u in users]
        pool = self.pool.address
        outs = self.call_many([(pool, _ACCOUNT_DATA + bytes(12) + bytes.fromhex(u[2:])) for u in users])
        result = []
        for user, out in zip(users, outs):
            if out is None or len(out) != 192:
                raise AaveCallReverted("getUserAccountData", f"no answer for {user}")
            result.append(tuple(int.from_bytes(out[i:i + 32], "big") for i in range(0, 192, 32)))
        return result  # type: ignore[return-value]

    def reserve_config(self, asset: str | Any) -> aave.ReserveConfig:
        """The reserve's configuration bitmap, decoded (LTV, threshold, bonus, decimals, ...)."""
        return aave.decode_reserve_configuration(self.pool.functions.getReserveData(self.asset(asset)).call()[0][0])

    def reserve_state(self, asset: str | Any) -> aave.ReserveState:
        """``Pool.getReserveData`` as the domain's ReserveState (bitmap, indexes, rates, last update)."""
        return _reserve_state(self.pool.functions.getReserveData(self.asset(asset)).call())

    def user_reserves(self, user: str) -> dict[str, aave.UserReserve]:
        """The user's stored balances in every listed reserve (underlying address -> UserReserve), read at
        the latest block; ``UserReserve.position_at(t)`` gives what the pool will see at time ``t``."""
        user_config = self.pool.functions.getUserConfiguration(user).call()[0]
        out: dict[str, aave.UserReserve] = {}
        for addr in self.pool.functions.getReservesList().call():
            d = self.pool.functions.getReserveData(addr).call()
            reserve_id = d[7]
            out[addr] = aave.UserReserve(
                reserve=_reserve_state(d),
                price=self.price(addr),
                scaled_collateral=self.atokens[addr].functions.scaledBalanceOf(user).call(),
                scaled_variable_debt=self.variable_debt[addr].functions.scaledBalanceOf(user).call(),
                stable_debt=self.stable_debt[addr].functions.balanceOf(user).call(),
                using_as_collateral=aave.user_is_using_as_collateral(user_config, reserve_id),
            )
        return out

    def latest_timestamp(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"]

    def _token(self, asset: str | Any) -> Any:
        addr = self.asset(asset)
        for token in self.tokens.values():
            if token.address == addr:
                return token
        raise KeyError(f"{asset} is not a listed underlying")


def _reserve_state(d: Any) -> aave.ReserveState:
    # getReserveData: (configuration, liquidityIndex, currentLiquidityRate, variableBorrowIndex,
    #   currentVariableBorrowRate, currentStableBorrowRate, lastUpdateTimestamp, id, aToken, stableDebt, variableDebt,
    #   strategy, accruedToTreasury, unbacked, isolationModeTotalDebt)
    return aave.ReserveState(configuration=d[0][0], liquidity_index=d[1], liquidity_rate=d[2],
                             variable_borrow_index=d[3], variable_borrow_rate=d[4], last_update_timestamp=d[6])


@functools.cache
def error_names() -> dict[str, str]:
    """Aave's error codes (``"45"``) -> name and text, read from the package's own ``Errors.sol``."""
    path = node_modules() / PKG / "contracts" / "protocol" / "libraries" / "helpers" / "Errors.sol"
    out: dict[str, str] = {}
    if path.is_file():
        for m in re.finditer(r"string public constant (\w+) = '(\d+)'; // '([^']*)'", path.read_text()):
            out[m.group(2)] = f"{m.group(1)} ({m.group(3)})"
    return out


def explain(reason: str) -> str:
    """A revert reason with Aave's error code spelled out: ``"45"`` -> ``"45 HEALTH_FACTOR_NOT_BELOW_THRESHOLD (...)"``."""
    code = _reason(Exception(reason))
    name = error_names().get(code)
    return f"{code} {name}" if name else reason


def _reason(e: Exception) -> str:
    """Aave's revert string (an ``Errors`` code like ``"45"``) out of whatever the backend raised."""
    args = getattr(e, "args", ())
    msg = args[0] if args and isinstance(args[0], str) else str(e)
    for prefix in ("execution reverted: ", "execution reverted:"):
        if prefix in msg:
            msg = msg.split(prefix, 1)[1]
    return msg.strip().strip("'\"")


def market_addresses(market: AaveV3Market) -> dict[str, Any]:
    """The addresses a market is made of (plain data: what ``market_at`` takes back)."""
    def at(contracts: dict[str, Any]) -> dict[str, str]:
        return {k: c.address for k, c in contracts.items()}

    return {"admin": market.admin, "treasury": market.treasury, "provider": market.provider.address,
            "acl": market.acl.address, "pool": market.pool.address, "configurator": market.configurator.address,
            "oracle": market.oracle.address, "data_provider": market.data_provider.address,
            "libraries": dict(market.libraries), "tokens": at(market.tokens), "aggregators": at(market.aggregators),
            "atokens": at(market.atokens), "stable_debt": at(market.stable_debt),
            "variable_debt": at(market.variable_debt)}


class LazyContract:
    """A web3 contract made on the first use of anything but its ``address`` and ``abi``: web3 builds a
    class per function of the ABI for every contract object (Pool ~18 ms, a whole market ~50 ms, ~4% of
    a revm eth-crash run restored from the world cache), and a run uses only some of a market's 16."""

    __slots__ = ("address", "abi", "_w3", "_contract")

    def __init__(self, w3: Web3, address: str, abi: Any):
        self.address, self.abi, self._w3, self._contract = address, abi, w3, None

    def __getattr__(self, name: str) -> Any:  # only for what the slots do not hold
        if name.startswith("__"):
            raise AttributeError(name)
        if self._contract is None:
            self._contract = self._w3.eth.contract(address=self.address, abi=self.abi)
        return getattr(self._contract, name)


def market_at(w3: Web3, addresses: dict[str, Any], reserves: tuple[ReserveSpec, ...] = DEFAULT_RESERVES) -> AaveV3Market:
    """The market deployed at ``addresses`` (``market_addresses``' shape) on ``w3``: its web3
    contracts (``LazyContract``), with the ABIs of the builds ``deploy_aave_v3`` deployed."""
    def contract(name: str, address: str) -> Any:
        return LazyContract(w3, Web3.to_checksum_address(address), load(PKG, name).abi)

    def each(name: str, key: str) -> dict[str, Any]:
        return {k: contract(name, a) for k, a in addresses[key].items()}

    a = addresses
    return AaveV3Market(w3=w3, admin=a["admin"], treasury=a["treasury"],
                        provider=contract("PoolAddressesProvider", a["provider"]), acl=contract("ACLManager", a["acl"]),
                        pool=contract("Pool", a["pool"]), configurator=contract("PoolConfigurator", a["configurator"]),
                        oracle=contract("AaveOracle", a["oracle"]),
                        data_provider=contract("AaveProtocolDataProvider", a["data_provider"]),
                        libraries=dict(a["libraries"]), tokens=each("MintableERC20", "tokens"),
                        specs={s.symbol: s for s in reserves}, atokens=each("AToken", "atokens"),
                        variable_debt=each("VariableDebtToken", "variable_debt"),
                        stable_debt=each("StableDebtToken", "stable_debt"), aggregators=each("MockAggregator", "aggregators"))


def deploy_aave_v3(w3: Web3, reserves: tuple[ReserveSpec, ...] = DEFAULT_RESERVES, *, admin: str | None = None,
                   treasury: str = DEFAULT_TREASURY, market_id: str = "Aave Test Market",
                   tokens: dict[str, Any] | None = None) -> AaveV3Market:
    """Deploy and configure a whole Aave v3.0 market on ``w3``; ``admin`` (default: the default account)
    holds every role. ``tokens`` (symbol -> deployed MintableERC20) lists already deployed reserve
    tokens (the sim's, shared with its pools: ``sim.sim_tokens``); by default they are deployed
    here. Returns the market with ``deploy_seconds`` measured."""
    t0 = time.perf_counter()
    admin = admin or w3.eth.default_account
    treasury = Web3.to_checksum_address(treasury)

    def send(fn: Any, gas: int = TX_GAS) -> Any:
        receipt = w3.eth.wait_for_transaction_receipt(fn.transact({"from": admin, "gas": gas}))
        if receipt["status"] != 1:
            raise RuntimeError(f"Aave deploy step {fn.fn_name} reverted: {receipt}")
        return receipt

    def dep(name: str, *args: Any, gas: int = DEPLOY_GAS, libraries: dict[str, str] | None = None) -> Any:
        art = load(PKG, name)
        code = art.linked(libraries or {}) if art.link_references else None
        return deploy(w3, art, *args, sender=admin, gas=gas, bytecode=code)

    # 1-2. addresses provider, ACL manager and roles
    provider = dep("PoolAddressesProvider", market_id, admin, gas=3_000_000)
    send(provider.functions.setACLAdmin(admin))
    acl = dep("ACLManager", provider.address, gas=3_000_000)
    send(provider.functions.setACLManager(acl.address))
    for role in ("addPoolAdmin", "addAssetListingAdmin", "addRiskAdmin", "addEmergencyAdmin"):
        send(getattr(acl.functions, role)(admin), gas=200_000)

    # 3. logic libraries (FlashLoanLogic links BorrowLogic, so it comes last)
    libraries: dict[str, str] = {}
    for name in POOL_LIBRARIES + CONFIGURATOR_LIBRARIES:
        libraries[name] = dep(name, libraries=libraries).address

    # 4-5. Pool and PoolConfigurator implementations; the provider deploys and initializes the proxies
    pool_impl = dep("Pool", provider.address, libraries=libraries)
    send(pool_impl.functions.initialize(provider.address), gas=300_000)
    send(provider.functions.setPoolImpl(pool_impl.address), gas=3_000_000)
    pool = w3.eth.contract(address=provider.functions.getPool().call(), abi=load(PKG, "Pool").abi)
    conf_impl = dep("PoolConfigurator", libraries=libraries)
    send(conf_impl.functions.initialize(provider.address), gas=300_000)
    send(provider.functions.setPoolConfiguratorImpl(conf_impl.address), gas=3_000_000)
    configurator = w3.eth.contract(address=provider.functions.getPoolConfigurator().call(),
                                   abi=load(PKG, "PoolConfigurator").abi)

    # 6-7. tokens, price feeds and the oracle (USD base currency, 8 dp)
    given = tokens or {}
    tokens = {s.symbol: given.get(s.symbol) or dep("MintableERC20", s.name, s.symbol, s.decimals, gas=2_000_000)
              for s in reserves}
    aggregators = {tokens[s.symbol].address: dep("MockAggregator", s.price, gas=300_000) for s in reserves}
    assets = [tokens[s.symbol].address for s in reserves]
    oracle = dep("AaveOracle", provider.address, assets, [aggregators[a].address for a in assets], ZERO, ZERO,
                 10**8, gas=3_000_000)
    send(provider.functions.setPriceOracle(oracle.address))

    # 8-9. data provider and token implementations
    data_provider = dep("AaveProtocolDataProvider", provider.address, gas=4_000_000)
    send(provider.functions.setPoolDataProvider(data_provider.address))
    a_impl = dep("AToken", pool.address)
    s_impl = dep("StableDebtToken", pool.address)
    v_impl = dep("VariableDebtToken", pool.address)

    # 10-11. rate strategies and initReserves
    inputs = []
    for s in reserves:
        strategy = dep("DefaultReserveInterestRateStrategy", provider.address, *s.rates, gas=3_000_000)
        inputs.append((a_impl.address, s_impl.address, v_impl.address, s.decimals, strategy.address,
                       tokens[s.symbol].address, treasury, ZERO, f"Aave {s.symbol}", f"a{s.symbol}",
                       f"Aave Variable Debt {s.symbol}", f"variableDebt{s.symbol}",
                       f"Aave Stable Debt {s.symbol}", f"stableDebt{s.symbol}", b""))
    send(configurator.functions.initReserves(inputs), gas=INIT_RESERVES_GAS)

    # 12. risk parameters
    for s in reserves:
        asset = tokens[s.symbol].address
        send(configurator.functions.configureReserveAsCollateral(asset, s.ltv, s.liquidation_threshold,
                                                                 s.liquidation_bonus), gas=300_000)
        send(configurator.functions.setReserveBorrowing(asset, s.borrowing), gas=300_000)
        send(configurator.functions.setReserveFactor(asset, s.reserve_factor), gas=300_000)
        if s.liquidation_protocol_fee:
            send(configurator.functions.setLiquidationProtocolFee(asset, s.liquidation_protocol_fee), gas=300_000)

    reserve_data = {a: pool.functions.getReserveData(a).call() for a in assets}
    market = market_at(w3, {
        "admin": admin, "treasury": treasury, "provider": provider.address, "acl": acl.address, "pool": pool.address,
        "configurator": configurator.address, "oracle": oracle.address, "data_provider": data_provider.address,
        "libraries": libraries, "tokens": {s: c.address for s, c in tokens.items()},
        "aggregators": {a: c.address for a, c in aggregators.items()},
        "atokens": {a: d[8] for a, d in reserve_data.items()}, "stable_debt": {a: d[9] for a, d in reserve_data.items()},
        "variable_debt": {a: d[10] for a, d in reserve_data.items()}}, reserves)
    market.deploy_seconds = time.perf_counter() - t0
    return market
