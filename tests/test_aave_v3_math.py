"""Aave v3.0 math (domain/aave_v3.py): Aave's own test vectors, worked examples, and properties.

Vectors: aave-v3-origin v3.3.0 ``tests/protocol/libraries/math/{WadRayMath,PercentageMath,MathUtils}.t.sol``
(v3.0-v3.4 share the half-up libraries) and the v3.0 liquidation example in PROTOCOLS.md §1.6.
The same functions are checked against the real bytecode in tests/test_aave_v3_parity.py.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapedeck.domain import aave_v3 as aave
from tapedeck.domain.aave_v3 import (
    MAX_UINT256, RAY, SECONDS_PER_YEAR, WAD, AaveMathError, LiquidationInput, LiquidationNotAllowed, Position,
)

E6, E8, E18 = 10**6, 10**8, 10**18


# ----------------------------------------------------------------------------- fixed-point vectors


def test_aave_vectors() -> None:
    assert aave.wad_div(8745 * 10**15, 67 * 10**16) == 13_052238805970149254
    assert aave.percent_div(142515 * 10**14, 7442) == 19_150094060736361193
    assert aave.calculate_compounded_interest(10005 * 10**23, 0, SECONDS_PER_YEAR // 2) == \
        1_646239361880034706419516000


def test_half_up_rounding() -> None:
    assert aave.wad_mul(WAD // 2, 1) == 1  # 0.5 wei rounds up
    assert aave.wad_mul(WAD // 2 - 1, 1) == 0
    assert aave.wad_mul(25 * 10**17, 5 * 10**17) == 125 * 10**16
    assert aave.ray_mul(3 * RAY, 7 * RAY // 10) == 21 * RAY // 10
    assert aave.wad_div(1, 2 * WAD) == 1 and aave.wad_div(1, 2 * WAD + 1) == 0
    assert aave.ray_mul(RAY // 2, 1) == 1 and aave.ray_mul(RAY // 2 - 1, 1) == 0
    assert aave.ray_div(1, 2 * RAY) == 1 and aave.ray_div(1, 2 * RAY + 1) == 0
    assert aave.percent_mul(1, 5000) == 1 and aave.percent_mul(1, 4999) == 0
    assert aave.percent_mul(10**18, 0) == 0  # no revert for a 0 percentage
    assert aave.percent_div(1, 20000) == 1 and aave.percent_div(1, 20001) == 0
    assert aave.ray_to_wad(1_500_000_000) == 2 and aave.ray_to_wad(1_499_999_999) == 1
    assert aave.wad_to_ray(3) == 3 * 10**9


def test_reverts_are_value_errors() -> None:
    for fn in (aave.wad_div, aave.ray_div, aave.percent_div):
        with pytest.raises(AaveMathError, match="by zero"):
            fn(1, 0)
    with pytest.raises(AaveMathError, match="overflows"):
        aave.wad_mul(MAX_UINT256, 2)
    with pytest.raises(AaveMathError, match="overflows"):
        aave.ray_div(MAX_UINT256 // RAY + 1, 1)
    with pytest.raises(AaveMathError, match="overflows"):
        aave.wad_to_ray(MAX_UINT256)
    with pytest.raises(ValueError, match="not a uint256"):
        aave.percent_mul(-1, 5000)
    with pytest.raises(ValueError, match="must be an int"):
        aave.ray_mul(1.5, RAY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="before last update"):
        aave.calculate_linear_interest(RAY, 10, 9)


def test_interest() -> None:
    # 10% APR for a full year: linear is exactly 1.1, compounded the 3-term Taylor value
    rate = RAY // 10
    assert aave.calculate_linear_interest(rate, 0, SECONDS_PER_YEAR) == RAY + RAY // 10
    assert aave.calculate_compounded_interest(rate, 100, 100) == RAY
    c = aave.calculate_compounded_interest(rate, 0, SECONDS_PER_YEAR)
    assert RAY + RAY // 10 < c < 1_105170918 * 10**18  # between simple interest and e^0.1
    assert aave.normalized_income(RAY, rate, 5, 5) == RAY  # same block: the stored index
    assert aave.normalized_debt(2 * RAY, rate, 0, SECONDS_PER_YEAR) == aave.ray_mul(c, 2 * RAY)


def test_reserve_configuration_bitmap() -> None:
    data = (8000 | 8250 << 16 | 10500 << 32 | 18 << 48 | 1 << 56 | 1 << 58 | 1000 << 64 | 1000 << 152 | 3 << 168)
    cfg = aave.decode_reserve_configuration(data)
    assert (cfg.ltv, cfg.liquidation_threshold, cfg.liquidation_bonus, cfg.decimals) == (8000, 8250, 10500, 18)
    assert cfg.active and cfg.borrowing_enabled and not cfg.frozen and not cfg.paused
    assert (cfg.reserve_factor, cfg.liquidation_protocol_fee, cfg.emode_category) == (1000, 1000, 3)
    assert aave.user_is_borrowing(0b0100, 1) and not aave.user_is_using_as_collateral(0b0100, 1)
    assert aave.user_is_using_as_collateral(0b1000, 1) and not aave.user_is_borrowing(0b1000, 1)


# ----------------------------------------------------------------------------- health factor


def weth(amount: int, price: int = 2000 * E8, **kw) -> Position:
    return Position(price=price, decimals=18, ltv=8000, liquidation_threshold=8250, collateral=amount, **kw)


def usdc_debt(amount: int) -> Position:
    return Position(price=E8, decimals=6, ltv=8000, liquidation_threshold=8500, debt=amount,
                    using_as_collateral=False)


def test_account_data_matches_the_worked_market_example() -> None:
    # 10 WETH at $2000 against 15,000 USDC: what getUserAccountData returned on py-evm (EVM_SIM.md §3)
    d = aave.account_data([weth(10 * E18), usdc_debt(15_000 * E6)])
    assert (d.total_collateral_base, d.total_debt_base, d.available_borrows_base) == (2_000_000_000_000,
                                                                                      1_500_000_000_000,
                                                                                      100_000_000_000)
    assert (d.liquidation_threshold, d.ltv, d.health_factor) == (8250, 8000, 11 * 10**17)
    assert aave.account_data([]).health_factor == MAX_UINT256
    assert aave.health_factor([weth(10 * E18)]) == MAX_UINT256


def test_weighted_threshold_and_excluded_collateral() -> None:
    usdc_coll = Position(price=E8, decimals=6, ltv=8000, liquidation_threshold=8500, collateral=10_000 * E6)
    d = aave.account_data([weth(5 * E18), usdc_coll, usdc_debt(12_000 * E6)])
    # (10000e8*8250 + 10000e8*8500) / 20000e8 = 8375
    assert d.liquidation_threshold == 8375 and d.total_collateral_base == 20_000 * E8
    assert d.health_factor == aave.wad_div(aave.percent_mul(20_000 * E8, 8375), 12_000 * E8)
    # not used as collateral, or LT 0: ignored; LTV 0 collateral still counts for the threshold
    off = aave.account_data([weth(5 * E18, using_as_collateral=False), usdc_debt(1 * E6)])
    assert off.total_collateral_base == 0 and off.health_factor == 0
    zero_ltv = Position(price=E8, decimals=6, ltv=0, liquidation_threshold=8500, collateral=100 * E6)
    z = aave.account_data([zero_ltv, usdc_debt(1 * E6)])
    assert z.has_zero_ltv_collateral and z.ltv == 0 and z.liquidation_threshold == 8500


def test_position_validation() -> None:
    with pytest.raises(ValueError, match="not a uint256"):
        weth(-1)
    with pytest.raises(ValueError, match="decimals"):
        Position(price=1, decimals=99, ltv=0, liquidation_threshold=0)


def test_user_reserve_projection() -> None:
    reserve = aave.ReserveState(configuration=8000 | 8250 << 16 | 18 << 48, liquidity_index=RAY,
                                liquidity_rate=RAY // 20, variable_borrow_index=RAY, variable_borrow_rate=RAY // 10,
                                last_update_timestamp=1000)
    ur = aave.UserReserve(reserve=reserve, price=2000 * E8, scaled_collateral=E18, scaled_variable_debt=E18,
                          using_as_collateral=True)
    t = 1000 + SECONDS_PER_YEAR
    p = ur.position_at(t)
    assert p.collateral == aave.ray_mul(E18, RAY + RAY // 20)
    assert p.debt == aave.ray_mul(E18, aave.calculate_compounded_interest(RAY // 10, 1000, t))
    assert (p.decimals, p.ltv, p.liquidation_threshold) == (18, 8000, 8250)


# ----------------------------------------------------------------------------- liquidation


def liq(hf: int, debt: int, coll: int, cover: int = MAX_UINT256, price: int = 2000 * E8, fee: int = 1000,
        **kw) -> aave.LiquidationResult:
    return aave.liquidation(LiquidationInput(health_factor=hf, user_debt=debt, user_collateral=coll,
                                             debt_to_cover=cover, collateral_price=price, debt_price=E8,
                                             collateral_decimals=18, debt_decimals=6, liquidation_bonus=10500,
                                             protocol_fee=fee, **kw))


def test_protocols_md_example_50_percent() -> None:
    # HF 0.97, 10,000 USDC debt, WETH $2000, bonus 10500, fee 1000 -> 5,000 USDC, 2.6125 + 0.0125 WETH
    r = liq(97 * 10**16, 10_000 * E6, 6 * E18)
    assert (r.close_factor, r.max_liquidatable_debt, r.debt_to_cover) == (5000, 5_000 * E6, 5_000 * E6)
    assert r.collateral_to_liquidator == 26125 * 10**14
    assert r.protocol_fee == 125 * 10**14
    assert r.collateral_seized == 2625 * 10**15
    assert not (r.collateral_capped or r.debt_cleared or r.collateral_cleared)
    # asking for less than the cap: exactly that
    assert liq(97 * 10**16, 10_000 * E6, 6 * E18, cover=1_000 * E6).debt_to_cover == 1_000 * E6
    # no protocol fee: the whole bonus goes to the liquidator
    r0 = liq(97 * 10**16, 10_000 * E6, 6 * E18, fee=0)
    assert (r0.collateral_to_liquidator, r0.protocol_fee) == (2625 * 10**15, 0)


def test_full_close_factor_at_and_below_095() -> None:
    r = liq(95 * 10**16, 10_000 * E6, 6 * E18)
    assert (r.close_factor, r.debt_to_cover, r.collateral_seized) == (10_000, 10_000 * E6, 525 * 10**16)
    assert r.debt_cleared and not r.collateral_capped
    assert liq(95 * 10**16 + 1, 10_000 * E6, 6 * E18).close_factor == 5000


def test_insufficient_collateral() -> None:
    # 5 WETH ($10,000) cannot cover 10,000 USDC + 5% bonus: all of it goes, debt repaid shrinks to match
    r = liq(80 * 10**16, 10_000 * E6, 5 * E18)
    assert r.collateral_capped and r.collateral_cleared and not r.debt_cleared
    assert r.collateral_seized == 5 * E18
    assert r.debt_to_cover == aave.percent_div(10_000 * E6, 10500) == 9_523_809524
    bonus = 5 * E18 - aave.percent_div(5 * E18, 10500)
    assert r.protocol_fee == aave.percent_mul(bonus, 1000)


def test_liquidation_not_allowed() -> None:
    with pytest.raises(LiquidationNotAllowed, match="45") as e:
        liq(WAD, 10_000 * E6, 6 * E18)
    assert e.value.code == aave.HEALTH_FACTOR_NOT_BELOW_THRESHOLD
    with pytest.raises(LiquidationNotAllowed, match="47"):
        liq(WAD - 1, 0, 6 * E18)
    with pytest.raises(LiquidationNotAllowed, match="46"):
        liq(WAD - 1, 1, 6 * E18, collateral_enabled=False)
    with pytest.raises(ValueError, match="prices must be non-zero"):
        liq(WAD - 1, 1, 1, price=0)
    with pytest.raises(ValueError, match="liquidation_bonus"):
        aave.liquidation(LiquidationInput(health_factor=0, user_debt=1, user_collateral=1, debt_to_cover=1,
                                          collateral_price=1, debt_price=1, collateral_decimals=18,
                                          debt_decimals=6, liquidation_bonus=0))


# ----------------------------------------------------------------------------- properties

amount = st.integers(min_value=0, max_value=10**30)
price = st.integers(min_value=1, max_value=10**14)


def _hf(collateral_price: int, coll: int, lt: int, other: int, debt: int) -> int:
    return aave.health_factor([
        Position(price=collateral_price, decimals=18, ltv=0, liquidation_threshold=lt, collateral=coll),
        Position(price=E8, decimals=6, ltv=8000, liquidation_threshold=8500, collateral=other),
        Position(price=E8, decimals=6, ltv=0, liquidation_threshold=0, debt=debt, using_as_collateral=False),
    ])


@settings(max_examples=300, deadline=None)
@given(coll=amount, debt=st.integers(min_value=1, max_value=10**30), p1=price, p2=price,
       lt=st.integers(min_value=1, max_value=9500))
def test_lower_collateral_price_never_raises_hf(coll, debt, p1, p2, lt) -> None:
    """One collateral asset (or several with the same threshold): HF is monotone in the price, exactly."""
    lo, hi = sorted((p1, p2))
    assert _hf(lo, coll, lt, 0, debt) <= _hf(hi, coll, lt, 0, debt)
    assert _hf(lo, coll, 8500, coll, debt) <= _hf(hi, coll, 8500, coll, debt)


@settings(max_examples=300, deadline=None)
@given(coll=amount, debt=st.integers(min_value=1, max_value=10**30), p1=price, p2=price,
       lt=st.integers(min_value=1, max_value=9500), other=amount)
def test_hf_monotone_up_to_the_average_threshold_floor(coll, debt, p1, p2, lt, other) -> None:
    """Collaterals with different thresholds: the contract floors the weighted-average threshold (bps), so a
    higher price of a low-threshold collateral can lower HF, but by less than one bps of the collateral
    (plus a wei of rounding) relative to the debt."""
    lo, hi = sorted((p1, p2))
    total_hi = aave.account_data([Position(price=hi, decimals=18, ltv=0, liquidation_threshold=lt, collateral=coll),
                                  Position(price=E8, decimals=6, ltv=0, liquidation_threshold=8500,
                                           collateral=other)]).total_collateral_base
    debt_base = debt * E8 // E6
    bound = (total_hi // 10_000 + 2) * WAD // debt_base + 2
    assert _hf(lo, coll, lt, other, debt) <= _hf(hi, coll, lt, other, debt) + bound


def test_hf_can_fall_when_a_low_threshold_collateral_rises() -> None:
    """The counterexample hypothesis found: the contract's HF (not just this port) is not monotone here."""
    assert _hf(1, 1634777, 1, 55, 1) == 4675 * 10**16
    assert _hf(1223408452652, 1634777, 1, 55, 1) == 4674 * 10**16


@settings(max_examples=400, deadline=None)
@given(hf=st.integers(min_value=0, max_value=WAD - 1), debt=st.integers(min_value=1, max_value=10**24),
       coll=amount, cover=st.one_of(st.just(MAX_UINT256), st.integers(min_value=0, max_value=10**25)),
       cp=price, dp=price, cdec=st.integers(min_value=0, max_value=24), ddec=st.integers(min_value=0, max_value=24),
       bonus=st.integers(min_value=10001, max_value=15000), fee=st.integers(min_value=0, max_value=10000))
def test_liquidation_bounds(hf, debt, coll, cover, cp, dp, cdec, ddec, bonus, fee) -> None:
    r = aave.liquidation(LiquidationInput(health_factor=hf, user_debt=debt, user_collateral=coll,
                                          debt_to_cover=cover, collateral_price=cp, debt_price=dp,
                                          collateral_decimals=cdec, debt_decimals=ddec, liquidation_bonus=bonus,
                                          protocol_fee=fee))
    assert r.collateral_seized <= coll  # never more than the user has
    assert r.debt_to_cover <= min(cover, r.max_liquidatable_debt) <= debt
    assert r.protocol_fee <= r.collateral_seized
    assert r.close_factor == (5000 if hf > 95 * 10**16 else 10_000)
    assert r.collateral_cleared == (r.collateral_seized == coll)


@given(delta=st.integers(min_value=-10**6, max_value=10**6))
def test_close_factor_boundary(delta) -> None:
    hf = 95 * 10**16 + delta
    assert aave.close_factor(hf) == (10_000 if hf <= 95 * 10**16 else 5000)
