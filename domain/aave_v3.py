"""Aave v3.0 math, exact: an integer port of aave-v3-core's libraries (npm ``@aave/core-v3`` 1.19.3).

Ported from ``contracts/protocol/libraries/``: ``math/WadRayMath.sol``, ``math/PercentageMath.sol``,
``math/MathUtils.sol``, ``logic/ReserveLogic.sol`` (``getNormalizedIncome`` / ``getNormalizedDebt``),
``logic/GenericLogic.sol`` (``calculateUserAccountData``, ``calculateAvailableBorrows``),
``logic/LiquidationLogic.sol`` (``_calculateDebt``, ``_calculateAvailableCollateralToLiquidate``),
``logic/ValidationLogic.sol`` (``validateLiquidationCall``) and
``configuration/ReserveConfiguration.sol`` / ``UserConfiguration.sol`` (the bitmaps).

Rounding is v3.0's half-up everywhere (v3.5+ rounds directionally and would drift by wei).
E-mode and the PriceOracleSentinel are not modelled: positions are valued with their own
liquidation threshold and the oracle price. Proven equal to the real bytecode in
tests/test_aave_v3_parity.py.

Every function returns what the contract returns and raises :class:`AaveMathError` (a
``ValueError``) where the contract reverts (division by zero, a checked uint256 overflow);
:func:`liquidation` raises :class:`LiquidationNotAllowed` with Aave's error code where
``liquidationCall`` would revert. Amounts, prices and indexes are ints; nothing here does I/O.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

MAX_UINT256 = (1 << 256) - 1

WAD = 10**18
HALF_WAD = WAD // 2
RAY = 10**27
HALF_RAY = RAY // 2
WAD_RAY_RATIO = 10**9
PERCENTAGE_FACTOR = 10_000
HALF_PERCENTAGE_FACTOR = PERCENTAGE_FACTOR // 2
SECONDS_PER_YEAR = 365 * 24 * 3600

# LiquidationLogic.sol / ValidationLogic.sol
DEFAULT_LIQUIDATION_CLOSE_FACTOR = 5_000
MAX_LIQUIDATION_CLOSE_FACTOR = 10_000
CLOSE_FACTOR_HF_THRESHOLD = 95 * 10**16  # 0.95e18
HEALTH_FACTOR_LIQUIDATION_THRESHOLD = WAD

# Errors.sol codes raised by validateLiquidationCall
HEALTH_FACTOR_NOT_BELOW_THRESHOLD = "45"
COLLATERAL_CANNOT_BE_LIQUIDATED = "46"
SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER = "47"


class AaveMathError(ValueError):
    """Bad input, or an operation the contract would revert (division by zero, uint256 overflow)."""


class LiquidationNotAllowed(AaveMathError):
    """``liquidationCall`` would revert in ``validateLiquidationCall``; ``code`` is Aave's ``Errors`` code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def _uint(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise AaveMathError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0 or value > MAX_UINT256:
        raise AaveMathError(f"{name} {value} is not a uint256")
    return value


def _checked(what: str, value: int) -> int:
    """Solidity 0.8 checked arithmetic: a result above 2^256-1 reverts."""
    if value > MAX_UINT256:
        raise AaveMathError(f"{what} overflows uint256")
    return value


# ----------------------------------------------------------------------------- WadRayMath / PercentageMath


def wad_mul(a: int, b: int) -> int:
    """``WadRayMath.wadMul``: ``(a*b + 0.5e18) / 1e18`` (half up); reverts on overflow."""
    _uint("a", a), _uint("b", b)
    if b != 0 and a > (MAX_UINT256 - HALF_WAD) // b:
        raise AaveMathError("wadMul overflows uint256")
    return (a * b + HALF_WAD) // WAD


def wad_div(a: int, b: int) -> int:
    """``WadRayMath.wadDiv``: ``(a*1e18 + b/2) / b`` (half up); reverts if b == 0 or on overflow."""
    _uint("a", a), _uint("b", b)
    if b == 0:
        raise AaveMathError("wadDiv by zero")
    if a > (MAX_UINT256 - b // 2) // WAD:
        raise AaveMathError("wadDiv overflows uint256")
    return (a * WAD + b // 2) // b


def ray_mul(a: int, b: int) -> int:
    """``WadRayMath.rayMul``: ``(a*b + 0.5e27) / 1e27`` (half up); reverts on overflow."""
    _uint("a", a), _uint("b", b)
    if b != 0 and a > (MAX_UINT256 - HALF_RAY) // b:
        raise AaveMathError("rayMul overflows uint256")
    return (a * b + HALF_RAY) // RAY


def ray_div(a: int, b: int) -> int:
    """``WadRayMath.rayDiv``: ``(a*1e27 + b/2) / b`` (half up); reverts if b == 0 or on overflow."""
    _uint("a", a), _uint("b", b)
    if b == 0:
        raise AaveMathError("rayDiv by zero")
    if a > (MAX_UINT256 - b // 2) // RAY:
        raise AaveMathError("rayDiv overflows uint256")
    return (a * RAY + b // 2) // b


def ray_to_wad(a: int) -> int:
    """``WadRayMath.rayToWad``: ``a / 1e9``, rounded half up."""
    _uint("a", a)
    q, r = divmod(a, WAD_RAY_RATIO)
    return q + 1 if r >= WAD_RAY_RATIO // 2 else q


def wad_to_ray(a: int) -> int:
    """``WadRayMath.wadToRay``: ``a * 1e9``; reverts on overflow."""
    return _checked("wadToRay", _uint("a", a) * WAD_RAY_RATIO)


def percent_mul(value: int, percentage: int) -> int:
    """``PercentageMath.percentMul``: ``(value*p + 5000) / 10000`` (p in bps, half up)."""
    _uint("value", value), _uint("percentage", percentage)
    if percentage != 0 and value > (MAX_UINT256 - HALF_PERCENTAGE_FACTOR) // percentage:
        raise AaveMathError("percentMul overflows uint256")
    return (value * percentage + HALF_PERCENTAGE_FACTOR) // PERCENTAGE_FACTOR


def percent_div(value: int, percentage: int) -> int:
    """``PercentageMath.percentDiv``: ``(value*10000 + p/2) / p`` (half up); reverts if p == 0."""
    _uint("value", value), _uint("percentage", percentage)
    if percentage == 0:
        raise AaveMathError("percentDiv by zero")
    if value > (MAX_UINT256 - percentage // 2) // PERCENTAGE_FACTOR:
        raise AaveMathError("percentDiv overflows uint256")
    return (value * PERCENTAGE_FACTOR + percentage // 2) // percentage


# ----------------------------------------------------------------------------- MathUtils / ReserveLogic


def _elapsed(last_update_timestamp: int, current_timestamp: int) -> int:
    _uint("last_update_timestamp", last_update_timestamp), _uint("current_timestamp", current_timestamp)
    if current_timestamp < last_update_timestamp:
        raise AaveMathError(f"current_timestamp {current_timestamp} is before last update {last_update_timestamp}")
    return current_timestamp - last_update_timestamp


def calculate_linear_interest(rate: int, last_update_timestamp: int, current_timestamp: int) -> int:
    """``MathUtils.calculateLinearInterest`` (ray): ``RAY + rate*dt/SECONDS_PER_YEAR`` (floor)."""
    _uint("rate", rate)
    dt = _elapsed(last_update_timestamp, current_timestamp)
    return RAY + _checked("rate*dt", rate * dt) // SECONDS_PER_YEAR


def calculate_compounded_interest(rate: int, last_update_timestamp: int, current_timestamp: int) -> int:
    """``MathUtils.calculateCompoundedInterest`` (ray): the 3-term binomial approximation of (1+r/SPY)^dt."""
    _uint("rate", rate)
    exp = _elapsed(last_update_timestamp, current_timestamp)
    if exp == 0:
        return RAY
    exp_minus_one = exp - 1
    exp_minus_two = exp - 2 if exp > 2 else 0
    base_power_two = ray_mul(rate, rate) // (SECONDS_PER_YEAR * SECONDS_PER_YEAR)
    base_power_three = ray_mul(base_power_two, rate) // SECONDS_PER_YEAR
    second_term = _checked("secondTerm", exp * exp_minus_one * base_power_two) // 2
    third_term = _checked("thirdTerm", exp * exp_minus_one * exp_minus_two * base_power_three) // 6
    return _checked("compounded", RAY + _checked("rate*exp", rate * exp) // SECONDS_PER_YEAR + second_term + third_term)


def normalized_income(liquidity_index: int, liquidity_rate: int, last_update_timestamp: int,
                      current_timestamp: int) -> int:
    """``ReserveLogic.getNormalizedIncome``: the supply index at ``current_timestamp`` (ray)."""
    if current_timestamp == last_update_timestamp:
        return _uint("liquidity_index", liquidity_index)
    return ray_mul(calculate_linear_interest(liquidity_rate, last_update_timestamp, current_timestamp), liquidity_index)


def normalized_debt(variable_borrow_index: int, variable_borrow_rate: int, last_update_timestamp: int,
                    current_timestamp: int) -> int:
    """``ReserveLogic.getNormalizedDebt``: the variable-debt index at ``current_timestamp`` (ray)."""
    if current_timestamp == last_update_timestamp:
        return _uint("variable_borrow_index", variable_borrow_index)
    return ray_mul(calculate_compounded_interest(variable_borrow_rate, last_update_timestamp, current_timestamp),
                   variable_borrow_index)


# ----------------------------------------------------------------------------- configuration bitmaps


@dataclass(frozen=True)
class ReserveConfig:
    """The fields of ``ReserveConfiguration``'s bitmap that the risk math reads (bps unless noted)."""

    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    decimals: int
    active: bool
    frozen: bool
    borrowing_enabled: bool
    paused: bool
    reserve_factor: int
    liquidation_protocol_fee: int
    emode_category: int


def decode_reserve_configuration(data: int) -> ReserveConfig:
    """Decode ``ReserveConfigurationMap.data`` (bit positions from ReserveConfiguration.sol)."""
    _uint("data", data)

    def bits(start: int, width: int) -> int:
        return (data >> start) & ((1 << width) - 1)

    return ReserveConfig(ltv=bits(0, 16), liquidation_threshold=bits(16, 16), liquidation_bonus=bits(32, 16),
                         decimals=bits(48, 8), active=bool(bits(56, 1)), frozen=bool(bits(57, 1)),
                         borrowing_enabled=bool(bits(58, 1)), paused=bool(bits(60, 1)),
                         reserve_factor=bits(64, 16), liquidation_protocol_fee=bits(152, 16),
                         emode_category=bits(168, 8))


def user_is_borrowing(user_config: int, reserve_id: int) -> bool:
    """``UserConfiguration.isBorrowing``: bit ``2*id``."""
    return bool((_uint("user_config", user_config) >> (2 * reserve_id)) & 1)


def user_is_using_as_collateral(user_config: int, reserve_id: int) -> bool:
    """``UserConfiguration.isUsingAsCollateral``: bit ``2*id + 1``."""
    return bool((_uint("user_config", user_config) >> (2 * reserve_id + 1)) & 1)


# ----------------------------------------------------------------------------- health factor


@dataclass(frozen=True)
class Position:
    """One reserve of a user, as ``calculateUserAccountData`` sees it.

    ``collateral`` is the aToken balance (``rayMul(scaledBalance, normalizedIncome)``) and ``debt`` the
    variable + stable debt (``rayMul(scaledVariableDebt, normalizedDebt) + stableDebt``), both in the
    asset's base units at the evaluation timestamp. ``price`` is the oracle price in base-currency
    units (8 dp on USD markets). ``ltv`` and ``liquidation_threshold`` are bps.
    """

    price: int
    decimals: int
    ltv: int
    liquidation_threshold: int
    collateral: int = 0
    debt: int = 0
    using_as_collateral: bool = True

    def __post_init__(self) -> None:
        for name in ("price", "ltv", "liquidation_threshold", "collateral", "debt"):
            _uint(name, getattr(self, name))
        if not isinstance(self.decimals, int) or not 0 <= self.decimals <= 77:
            raise AaveMathError(f"decimals {self.decimals!r} out of range")
        if self.ltv > 65535 or self.liquidation_threshold > 65535:
            raise AaveMathError("ltv and liquidation_threshold are 16-bit bps fields")


@dataclass(frozen=True)
class AccountData:
    """``calculateUserAccountData`` plus ``calculateAvailableBorrows`` (what ``getUserAccountData`` returns)."""

    total_collateral_base: int
    total_debt_base: int
    available_borrows_base: int
    liquidation_threshold: int  # collateral-weighted average, bps (floor)
    ltv: int  # collateral-weighted average, bps (floor)
    health_factor: int  # wad; 2^256-1 when there is no debt
    has_zero_ltv_collateral: bool


def account_data(positions: Iterable[Position]) -> AccountData:
    """``GenericLogic.calculateUserAccountData`` (no e-mode) and ``getUserAccountData``'s fields.

    A reserve counts as collateral when its liquidation threshold is non-zero and the user uses it as
    collateral; value in base = ``balance * price / 10**decimals`` (floor). Averages are weighted by
    collateral value and floored; ``HF = wadDiv(percentMul(totalCollateral, avgLT), totalDebt)``.
    An empty list is ``userConfig.isEmpty()``: ``(0, 0, 0, 0, 0, max, False)``.
    """
    positions = list(positions)
    total_collateral = total_debt = weighted_ltv = weighted_lt = 0
    zero_ltv = False
    for p in positions:
        unit = 10**p.decimals
        if p.liquidation_threshold != 0 and p.using_as_collateral:
            value = _checked("collateral*price", p.collateral * p.price) // unit
            total_collateral = _checked("totalCollateral", total_collateral + value)
            if p.ltv != 0:
                weighted_ltv = _checked("avgLtv", weighted_ltv + value * p.ltv)
            else:
                zero_ltv = True
            weighted_lt = _checked("avgLT", weighted_lt + value * p.liquidation_threshold)
        if p.debt != 0:
            total_debt = _checked("totalDebt", total_debt + _checked("debt*price", p.debt * p.price) // unit)
    avg_ltv = weighted_ltv // total_collateral if total_collateral else 0
    avg_lt = weighted_lt // total_collateral if total_collateral else 0
    hf = MAX_UINT256 if total_debt == 0 else wad_div(percent_mul(total_collateral, avg_lt), total_debt)
    available = percent_mul(total_collateral, avg_ltv)
    available = available - total_debt if available >= total_debt else 0
    return AccountData(total_collateral, total_debt, available, avg_lt, avg_ltv, hf, zero_ltv)


def health_factor(positions: Iterable[Position]) -> int:
    """The health factor (wad) of ``calculateUserAccountData``; ``2**256-1`` when there is no debt."""
    return account_data(positions).health_factor


@dataclass(frozen=True)
class ReserveState:
    """A reserve's stored state (``Pool.getReserveData``): the configuration bitmap, indexes and rates (ray)."""

    configuration: int
    liquidity_index: int
    liquidity_rate: int
    variable_borrow_index: int
    variable_borrow_rate: int
    last_update_timestamp: int

    @property
    def config(self) -> ReserveConfig:
        return decode_reserve_configuration(self.configuration)

    def income_at(self, timestamp: int) -> int:
        """``getReserveNormalizedIncome`` at ``timestamp``."""
        return normalized_income(self.liquidity_index, self.liquidity_rate, self.last_update_timestamp, timestamp)

    def debt_index_at(self, timestamp: int) -> int:
        """``getReserveNormalizedVariableDebt`` at ``timestamp``."""
        return normalized_debt(self.variable_borrow_index, self.variable_borrow_rate, self.last_update_timestamp,
                               timestamp)


@dataclass(frozen=True)
class UserReserve:
    """A user's stored balances in one reserve: scaled aToken and variable-debt balances, the stable-debt
    balance (taken as given: this port does not accrue stable debt), the collateral flag and the oracle price."""

    reserve: ReserveState
    price: int
    scaled_collateral: int = 0
    scaled_variable_debt: int = 0
    stable_debt: int = 0
    using_as_collateral: bool = False

    def collateral_at(self, timestamp: int) -> int:
        """``AToken.balanceOf``: ``rayMul(scaledBalance, normalizedIncome)``."""
        return ray_mul(self.scaled_collateral, self.reserve.income_at(timestamp))

    def variable_debt_at(self, timestamp: int) -> int:
        """``VariableDebtToken.balanceOf``; 0 without a scaled balance (as ``_getUserDebtInBaseCurrency``)."""
        if self.scaled_variable_debt == 0:
            return 0
        return ray_mul(self.scaled_variable_debt, self.reserve.debt_index_at(timestamp))

    def position_at(self, timestamp: int) -> Position:
        cfg = self.reserve.config
        return Position(price=self.price, decimals=cfg.decimals, ltv=cfg.ltv,
                        liquidation_threshold=cfg.liquidation_threshold,
                        collateral=self.collateral_at(timestamp),
                        debt=self.variable_debt_at(timestamp) + self.stable_debt,
                        using_as_collateral=self.using_as_collateral)


# ----------------------------------------------------------------------------- liquidation


@dataclass(frozen=True)
class LiquidationInput:
    """What ``LiquidationLogic.executeLiquidationCall`` (v3.0) reads, at the liquidation's timestamp.

    ``user_debt`` is the user's total debt in the debt asset (variable + stable, base units);
    ``user_collateral`` the user's aToken balance of the collateral asset; prices are oracle prices
    (base currency); ``liquidation_bonus`` (e.g. 10500 = 105%) and ``protocol_fee`` (share of the bonus)
    are the collateral reserve's bps fields; ``debt_to_cover`` is the liquidator's request (may be
    ``2**256-1`` for "as much as allowed"). ``collateral_enabled`` is ``LT != 0 and usingAsCollateral``.
    """

    health_factor: int
    user_debt: int
    user_collateral: int
    debt_to_cover: int
    collateral_price: int
    debt_price: int
    collateral_decimals: int
    debt_decimals: int
    liquidation_bonus: int
    protocol_fee: int = 0
    collateral_enabled: bool = True

    def __post_init__(self) -> None:
        for name in ("health_factor", "user_debt", "user_collateral", "debt_to_cover", "collateral_price",
                     "debt_price", "liquidation_bonus", "protocol_fee"):
            _uint(name, getattr(self, name))
        for name in ("collateral_decimals", "debt_decimals"):
            d = getattr(self, name)
            if not isinstance(d, int) or not 0 <= d <= 77:
                raise AaveMathError(f"{name} {d!r} out of range")
        if self.collateral_price == 0 or self.debt_price == 0:
            raise AaveMathError("prices must be non-zero (the contract would divide by zero)")
        if self.liquidation_bonus == 0:
            raise AaveMathError("liquidation_bonus must be non-zero (percentDiv by zero)")


@dataclass(frozen=True)
class LiquidationResult:
    """The outcome of a v3.0 ``liquidationCall``.

    ``debt_to_cover`` and ``collateral_to_liquidator`` are the ``LiquidationCall`` event's
    ``debtToCover`` and ``liquidatedCollateralAmount`` (which excludes ``protocol_fee``, the aTokens
    sent to the treasury). ``collateral_capped`` is the insufficient-collateral case: the whole
    balance is seized and the debt repaid shrinks to match.
    """

    close_factor: int  # bps: 5000 above HF 0.95, 10000 at or below
    max_liquidatable_debt: int
    debt_to_cover: int
    collateral_to_liquidator: int
    protocol_fee: int
    collateral_capped: bool
    debt_cleared: bool  # userTotalDebt == actualDebtToLiquidate: the borrowing flag is cleared
    collateral_cleared: bool  # collateral + fee == balance: the collateral flag is cleared

    @property
    def collateral_seized(self) -> int:
        """All collateral taken from the user: liquidator's share plus the protocol fee."""
        return self.collateral_to_liquidator + self.protocol_fee


def close_factor(hf: int) -> int:
    """``LiquidationLogic._calculateDebt``: 50% while HF > 0.95e18, 100% at or below."""
    return DEFAULT_LIQUIDATION_CLOSE_FACTOR if _uint("health_factor", hf) > CLOSE_FACTOR_HF_THRESHOLD \
        else MAX_LIQUIDATION_CLOSE_FACTOR


def validate_liquidation(inp: LiquidationInput) -> None:
    """``ValidationLogic.validateLiquidationCall`` (reserve active/paused flags and sentinel not modelled)."""
    if inp.health_factor >= HEALTH_FACTOR_LIQUIDATION_THRESHOLD:
        raise LiquidationNotAllowed(HEALTH_FACTOR_NOT_BELOW_THRESHOLD,
                                    f"health factor {inp.health_factor} is not below 1e18")
    if not inp.collateral_enabled:
        raise LiquidationNotAllowed(COLLATERAL_CANNOT_BE_LIQUIDATED, "collateral is not enabled as collateral")
    if inp.user_debt == 0:
        raise LiquidationNotAllowed(SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER, "user has no debt in the debt asset")


def collateral_to_liquidate(debt_to_cover: int, user_collateral: int, collateral_price: int, debt_price: int,
                            collateral_decimals: int, debt_decimals: int, liquidation_bonus: int,
                            protocol_fee: int = 0) -> tuple[int, int, int]:
    """``LiquidationLogic._calculateAvailableCollateralToLiquidate``.

    Returns ``(collateral to the liquidator, debt actually repaid, protocol fee)``, all base units::

        base = debtPrice*debtToCover*10**collDec // (collPrice*10**debtDec)
        max  = percentMul(base, bonus)
        if max > balance: coll = balance
                          debt = percentDiv(collPrice*coll*10**debtDec // (debtPrice*10**collDec), bonus)
        else:             coll = max;     debt = debtToCover
        fee = percentMul(coll - percentDiv(coll, bonus), protocolFee)     # if protocolFee != 0
    """
    coll, debt, fee, _capped = _collateral_to_liquidate(debt_to_cover, user_collateral, collateral_price, debt_price,
                                                        collateral_decimals, debt_decimals, liquidation_bonus,
                                                        protocol_fee)
    return coll, debt, fee


def _collateral_to_liquidate(debt_to_cover: int, user_collateral: int, collateral_price: int, debt_price: int,
                             collateral_decimals: int, debt_decimals: int, liquidation_bonus: int,
                             protocol_fee: int) -> tuple[int, int, int, bool]:
    for name, v in (("debt_to_cover", debt_to_cover), ("user_collateral", user_collateral),
                    ("collateral_price", collateral_price), ("debt_price", debt_price),
                    ("liquidation_bonus", liquidation_bonus), ("protocol_fee", protocol_fee)):
        _uint(name, v)
    if collateral_price == 0 or debt_price == 0:
        raise AaveMathError("prices must be non-zero (the contract would divide by zero)")
    c_unit, d_unit = 10**collateral_decimals, 10**debt_decimals
    base = _checked("debtPrice*debtToCover*collUnit", debt_price * debt_to_cover * c_unit) // \
        _checked("collPrice*debtUnit", collateral_price * d_unit)
    max_collateral = percent_mul(base, liquidation_bonus)
    if max_collateral > user_collateral:
        capped = True
        amount = user_collateral
        debt_needed = percent_div(
            _checked("collPrice*collateral*debtUnit", collateral_price * amount * d_unit)
            // _checked("debtPrice*collUnit", debt_price * c_unit), liquidation_bonus)
    else:
        capped = False
        amount, debt_needed = max_collateral, debt_to_cover
    if protocol_fee != 0:
        bonus_collateral = amount - percent_div(amount, liquidation_bonus)
        fee = percent_mul(bonus_collateral, protocol_fee)
        return amount - fee, debt_needed, fee, capped
    return amount, debt_needed, 0, capped


def liquidation(inp: LiquidationInput) -> LiquidationResult:
    """``LiquidationLogic.executeLiquidationCall`` (v3.0.x), the amounts only.

    Validates like ``validateLiquidationCall`` (raises :class:`LiquidationNotAllowed`), caps the
    request at ``percentMul(userDebt, closeFactor)`` (``_calculateDebt``), then prices the collateral
    with the bonus and splits off the protocol fee (``_calculateAvailableCollateralToLiquidate``).
    """
    cf = close_factor(inp.health_factor)
    max_debt = percent_mul(inp.user_debt, cf)
    actual = min(inp.debt_to_cover, max_debt)
    validate_liquidation(inp)
    coll, debt, fee, capped = _collateral_to_liquidate(actual, inp.user_collateral, inp.collateral_price,
                                                       inp.debt_price, inp.collateral_decimals, inp.debt_decimals,
                                                       inp.liquidation_bonus, inp.protocol_fee)
    return LiquidationResult(close_factor=cf, max_liquidatable_debt=max_debt, debt_to_cover=debt,
                             collateral_to_liquidator=coll, protocol_fee=fee, collateral_capped=capped,
                             debt_cleared=inp.user_debt == debt,
                             collateral_cleared=coll + fee == inp.user_collateral)
