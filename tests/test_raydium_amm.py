"""Raydium AMM v4 swap math and the pool folded from its three accounts.

The program's formulas (raydium-io/raydium-amm @ 27f461dd439086c774055f771b253fb0fbc52008,
``program/src/processor.rs`` ``process_swap_base_in``/``_out``, ``program/src/math.rs``) are checked
against independent references: the constant-product invariant (the output is the largest integer
that keeps ``k`` from falling once the fee is taken) and exact rationals for the fee. The ceil-div
change of raydium-amm 78c6a81 (2025-08-26: the old spl-style ``checked_ceil_div`` returned 0 for a
quotient below one half) is pinned by values worked from both versions' source.
"""
from __future__ import annotations

from fractions import Fraction
import math

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tapedeck.adapters import solana_accounts as sa
from tapedeck.domain import events as ev
from tapedeck.domain import raydium_amm as ray

FEE = (25, 10_000)  # Fees::initialize: swap_fee 25/10000
reserves = st.integers(1, 2**63)
amounts = st.integers(1, 2**40) | st.integers(1, 2**63)


def test_fee_is_a_ceiling_and_the_legacy_ceil_div_differs_below_one_half() -> None:
    # 1 unit at 25/10000: 0.0025 of a unit, ceiling 1 now; the old ceil-div returned 0 (2*25 < 10000)
    assert ray.swap_fee(1, *FEE) == 1 and ray.swap_fee(1, *FEE, legacy_ceil=True) == 0
    # 200 units: 0.5 of a unit; both give 1 (the old one because 2*5000 >= 10000)
    assert ray.swap_fee(200, *FEE) == ray.swap_fee(200, *FEE, legacy_ceil=True) == 1
    assert ray.swap_fee(199, *FEE, legacy_ceil=True) == 0
    # above one unit of fee both are the ceiling
    for a in (400, 401, 10**9 + 7):
        assert ray.swap_fee(a, *FEE) == ray.swap_fee(a, *FEE, legacy_ceil=True) == math.ceil(Fraction(a * 25, 10_000))


def test_swap_base_in_worked_example() -> None:
    # 1 SOL (9 dp) into a pool of 1000 SOL / 150,000 USDC (6 dp), 25 bp fee
    coin, pc = 1000 * 10**9, 150_000 * 10**6
    out = ray.swap_base_in(10**9, coin, pc, *FEE)
    x = 10**9 - 2_500_000  # fee = ceil(1e9 * 25 / 1e4) = 2.5e6
    assert out == pc * x // (coin + x) == 149_475_897  # 149.475897 USDC


@settings(max_examples=300)
@given(amounts, reserves, reserves, st.integers(0, 9_999))
def test_swap_base_in_is_the_largest_output_keeping_k(amount: int, r_in: int, r_out: int, num: int) -> None:
    """Slow reference: with x = amount less its ceil fee, out is max{o : (r_in + x)(r_out - o) >= r_in*r_out}."""
    fee = math.ceil(Fraction(amount * num, 10_000))
    x = amount - fee
    try:
        out = ray.swap_base_in(amount, r_in, r_out, num, 10_000)
    except ray.RaydiumMathError as e:
        event(f"refused: {e.code}")
        assert e.code in ("InvalidInput", "InsufficientFunds")
        best = r_out * x // (r_in + x)
        assert best == 0 or best >= r_out
        return
    event("swapped")
    assert 0 < out < r_out
    assert (r_in + x) * (r_out - out) >= r_in * r_out
    assert (r_in + x) * (r_out - out - 1) < r_in * r_out


@settings(max_examples=200)
@given(amounts, amounts, reserves, reserves)
def test_swap_base_in_is_monotone(a1: int, a2: int, r_in: int, r_out: int) -> None:
    small, big = sorted((a1, a2))
    try:
        o1 = ray.swap_base_in(small, r_in, r_out, *FEE)
        o2 = ray.swap_base_in(big, r_in, r_out, *FEE)
    except ray.RaydiumMathError:
        event("one side refused")
        return
    event("both swapped")
    assert o1 <= o2 < r_out


@settings(max_examples=200)
@given(reserves, st.integers(2, 2**63), st.data())
def test_swap_base_out_input_buys_at_least_the_output(r_in: int, r_out: int, data: st.DataObject) -> None:
    """What SwapBaseOut charges for ``want``, paid into SwapBaseIn, gets at least ``want``."""
    want = data.draw(st.integers(1, r_out - 1) | st.integers(r_out, 2**64), label="want")
    try:
        paid = ray.swap_base_out(want, r_in, r_out, *FEE)
    except ray.RaydiumMathError:
        event("output not available")
        assert want >= r_out or r_in * want // (r_out - want) > 2**64
        return
    try:
        got = ray.swap_base_in(paid, r_in, r_out, *FEE)
    except ray.RaydiumMathError as e:
        event(f"input side refused: {e.code}")
        assert e.code == "InsufficientFunds"
        return
    event("both ways")
    assert got >= want


@settings(max_examples=200)
@given(amounts, reserves, reserves)
def test_round_trip_never_gains(amount: int, coin: int, pc: int) -> None:
    try:
        out = ray.swap_base_in(amount, coin, pc, *FEE)
        back = ray.swap_base_in(out, pc - out, coin + amount, *FEE)
    except ray.RaydiumMathError:
        event("a leg refused")
        return
    event("round trip")
    assert back <= amount


# ----------------------------------------------------------------------------- the book


def _amm(slot: int, **over: object) -> ev.RaydiumPoolSynced:
    fields = dict(ts=slot, pool="AMM", slot=slot, status=ray.SWAP_ONLY, coin_decimals=9, pc_decimals=6,
                  trade_fee_numerator=25, trade_fee_denominator=10_000, swap_fee_numerator=25,
                  swap_fee_denominator=10_000, need_take_pnl_coin=10**6, need_take_pnl_pc=2 * 10**6,
                  pool_open_time=1_700_000_000, coin_vault="VC", pc_vault="VP", coin_mint="SOL", pc_mint="USDC",
                  lp_mint="LP", open_orders="OO", market="M", lp_amount=1)
    fields.update(over)
    return ev.RaydiumPoolSynced(**fields)  # type: ignore[arg-type]


def _vault(account: str, mint: str, amount: int, slot: int) -> ev.SplTokenAccountSynced:
    return ev.SplTokenAccountSynced(ts=slot, account=account, slot=slot, mint=mint, owner="AUTH", amount=amount)


def test_book_needs_all_three_accounts_in_any_order_and_folds_partial_updates() -> None:
    book = ray.RaydiumBook()
    assert book.apply(_vault("VC", "SOL", 1000 * 10**9, 5)) is None  # before its AMM: kept, no pool yet
    assert book.apply(_amm(6)) == "AMM"
    assert book.pool("AMM") is None  # the pc vault is still unknown
    assert book.apply(_vault("VP", "USDC", 150_000 * 10**6, 7)) == "AMM"
    p = book.pool("AMM")
    assert p is not None and p.slot == 5  # the oldest of the three accounts
    assert p.reserves() == (1000 * 10**9 - 10**6, 150_000 * 10**6 - 2 * 10**6)  # vaults less the PnL owed
    q = p.quote(10**9, True)
    assert q == ray.swap_base_in(10**9, *p.reserves(), 25, 10_000)
    # one vault changes: only its balance moves
    book.apply(_vault("VP", "USDC", 160_000 * 10**6, 8))
    p2 = book.pool("AMM")
    assert p2.reserves() == (p.reserves()[0], 160_000 * 10**6 - 2 * 10**6) and p2.quote(10**9, True) > q
    # an older record (out-of-order delivery) is ignored
    assert book.apply(_vault("VP", "USDC", 1, 6)) is None and book.ignored_stale == 1
    assert book.apply(_amm(3, need_take_pnl_pc=0)) is None and book.ignored_stale == 2
    assert book.pool("AMM").reserves() == p2.reserves()


def test_book_refuses_what_the_program_would() -> None:
    book = ray.RaydiumBook()
    book.apply(_amm(1))
    book.apply(_vault("VC", "SOL", 10**12, 1))
    book.apply(_vault("VP", "WRONG", 10**12, 1))
    assert book.pool("AMM") is None  # the vault holds another mint than the AMM names
    book.apply(_vault("VP", "USDC", 10**5, 2))  # less than the 2e6 PnL owed
    with pytest.raises(ray.RaydiumMathError, match="CheckedSubOverflow"):
        book.pool("AMM").reserves()
    assert book.pool("AMM").quote(10**6, True) is None
    book.apply(_vault("VP", "USDC", 10**12, 3))
    for status in (ray.UNINITIALIZED, ray.DISABLED, ray.WITHDRAW_ONLY, ray.LIQUIDITY_ONLY, ray.ORDERBOOK_ONLY):
        book.apply(_amm(10 + status, status=status))
        with pytest.raises(ray.RaydiumMathError, match="InvalidStatus"):
            book.pool("AMM").swap_base_in(10**6, True)
    book.apply(_amm(30, status=ray.INITIALIZED))
    assert book.pool("AMM").quote(10**6, True) is not None
    book.apply(_amm(31, status=ray.WAITING_TRADE, pool_open_time=2_000_000_000))
    assert book.pool("AMM").quote(10**6, True) is None  # no time given: not open
    assert book.pool("AMM", now_ts=1_999_999_999 * 10**9).quote(10**6, True) is None
    assert book.pool("AMM", now_ts=2_000_000_000 * 10**9).quote(10**6, True) is not None


def test_decoded_account_feeds_the_book() -> None:
    """The adapter's event for a 752-byte account folds as the hand-built one does."""
    from tests.test_solana_accounts import SOL_USDC_AMM, USDC, WSOL, _raydium_bytes

    amm = sa.account_event(SOL_USDC_AMM, sa.RAYDIUM_AMM_V4, 50, _raydium_bytes(), ts=1)
    assert isinstance(amm, ev.RaydiumPoolSynced)
    book = ray.RaydiumBook()
    book.apply(amm)
    book.apply(_vault(amm.coin_vault, WSOL, 5000 * 10**9, 50))
    book.apply(_vault(amm.pc_vault, USDC, 750_000 * 10**6, 50))
    p = book.pool(SOL_USDC_AMM)
    assert p.reserves() == (5000 * 10**9 - 1234, 750_000 * 10**6 - 5678)
    assert ray.quote(p, 10**9, True) == ray.swap_base_in(10**9, *p.reserves(), 25, 10_000)
    assert ray.quote(p, 150 * 10**6, False) == ray.swap_base_in(150 * 10**6, p.reserves()[1], p.reserves()[0], 25, 10_000)
