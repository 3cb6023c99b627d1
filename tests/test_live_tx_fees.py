"""EIP-1559 fee choice: the next base fee is the EIP's, the max fee covers it with the headroom
plus the tip, the tip is the intent's (or the default) and never above the cap, replacements bid
at least +10% on both fields."""
from __future__ import annotations

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tapedeck.live.fees import (GWEI, FeePolicy, FeeRefused, Fees, choose_fees, effective_gas_price,
                                head_next_base_fee, replacement_fees)


def test_next_base_fee_follows_the_eip() -> None:
    assert head_next_base_fee(800, 15_000_000, 30_000_000) == 800  # at target: unchanged
    assert head_next_base_fee(800, 30_000_000, 30_000_000) == 900  # full: +1/8
    assert head_next_base_fee(800, 0, 30_000_000) == 700  # empty: -1/8
    assert head_next_base_fee(7, 15_000_001, 30_000_000) == 8  # above target: at least +1 wei


def test_the_intents_tip_and_the_headroom() -> None:
    p = FeePolicy(headroom_bps=20_000, default_priority_fee=GWEI, max_priority_fee_cap=5 * GWEI, max_fee_cap=0)
    f = choose_fees(10 * GWEI, 15_000_000, 30_000_000, 2 * GWEI, p)
    assert f == Fees(max_fee=22 * GWEI, max_priority_fee=2 * GWEI, base_fee=10 * GWEI)
    assert choose_fees(10 * GWEI, 15_000_000, 30_000_000, 0, p).max_priority_fee == GWEI  # 0: the default
    with pytest.raises(FeeRefused, match="max_priority_fee_cap"):
        choose_fees(10 * GWEI, 15_000_000, 30_000_000, 6 * GWEI, p)
    capped = FeePolicy(max_fee_cap=20 * GWEI)
    with pytest.raises(FeeRefused, match="max_fee_cap"):
        choose_fees(10 * GWEI, 15_000_000, 30_000_000, GWEI, capped)
    with pytest.raises(ValueError, match="headroom_bps"):
        FeePolicy(headroom_bps=9_999)


@given(base=st.integers(0, 10**12), used=st.integers(0, 30_000_000), bid=st.integers(0, 50 * GWEI),
       old_tip=st.integers(0, 40 * GWEI), old_extra=st.integers(0, 10**11))
def test_fees_always_cover_the_next_block_and_replacements_bump(base: int, used: int, bid: int, old_tip: int,
                                                                old_extra: int) -> None:
    p = FeePolicy(max_fee_cap=0, max_priority_fee_cap=10**15)
    f = choose_fees(base, used, 30_000_000, bid, p)
    nxt = head_next_base_fee(base, used, 30_000_000)
    assert f.base_fee == nxt and f.max_fee >= nxt + f.max_priority_fee
    assert f.max_priority_fee == (bid or p.default_priority_fee)
    # the tip is paid whole at the next base fee, and still after two full blocks (headroom 2x)
    assert effective_gas_price(nxt, f) == nxt + f.max_priority_fee
    two_full = head_next_base_fee(head_next_base_fee(nxt, 30_000_000, 30_000_000), 30_000_000, 30_000_000)
    event("base fee rose" if two_full > nxt else "base fee flat (0 or tiny)")
    assert f.max_fee >= two_full
    old = Fees(old_tip + old_extra, old_tip, nxt)
    r = replacement_fees(old, f, p)
    assert r.max_priority_fee * 10 >= old.max_priority_fee * 11 and r.max_fee * 10 >= old.max_fee * 11
    assert r.max_fee >= r.max_priority_fee and r.max_fee >= f.max_fee
