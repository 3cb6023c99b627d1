"""EIP-1559 fee choice for a live transaction: pure functions of the latest head and the intent.

* the **next base fee** is computed exactly from the latest block (``sim.inclusion.next_base_fee``,
  the EIP's formula: the same function the sim's block builder uses);
* **headroom**: ``max_fee = next_base_fee * headroom_bps / 10_000 + tip``, so the transaction stays
  includable while the base fee rises for a few blocks (the default 2x survives ~5 full blocks at
  +12.5% each; that is the common wallet rule);
* the **tip** (``max_priority_fee``) is the intent's bid, or the policy's default when the intent
  says 0, never above the policy's cap (a bid above it is refused, not silently lowered: the
  strategy priced its profit with that tip);
* an absolute ``max_fee_cap`` refuses a transaction the chain has become too expensive for.

``replacement_fees`` is what a transaction replacing a pending one at the same nonce must bid:
at least +10% on both fields (geth's and reth's ``txpool.pricebump`` default), and not less than
what the head now asks.
"""
from __future__ import annotations

from dataclasses import dataclass

from tapedeck.sim.inclusion import next_base_fee

GWEI = 10**9
BPS = 10_000
REPLACEMENT_BUMP_BPS = 1_000  # +10%: the txpool's minimum price bump for a same-nonce replacement


class FeeRefused(ValueError):
    """The fees an intent needs break the policy (the message says which limit)."""


@dataclass(frozen=True)
class FeePolicy:
    headroom_bps: int = 20_000  # max_fee covers the next base fee times this (2x)
    default_priority_fee: int = 1 * GWEI  # the tip when the intent bids 0
    max_priority_fee_cap: int = 50 * GWEI  # a tip above this is refused
    max_fee_cap: int = 500 * GWEI  # a max fee above this is refused (0: no cap)

    def __post_init__(self) -> None:
        if self.headroom_bps < BPS:
            raise ValueError(f"headroom_bps must be >= {BPS} (1x the next base fee), got {self.headroom_bps}")
        for name in ("default_priority_fee", "max_priority_fee_cap", "max_fee_cap"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.default_priority_fee > self.max_priority_fee_cap:
            raise ValueError(f"default_priority_fee {self.default_priority_fee} is above max_priority_fee_cap "
                             f"{self.max_priority_fee_cap}")


@dataclass(frozen=True)
class Fees:
    max_fee: int  # maxFeePerGas, wei
    max_priority_fee: int  # maxPriorityFeePerGas, wei
    base_fee: int  # the base fee the next block will charge (what paper gas is priced at)


def head_next_base_fee(base_fee: int, gas_used: int, gas_limit: int) -> int:
    """The base fee of the block after a head with these fields (EIP-1559, target = limit / 2)."""
    return next_base_fee(base_fee, gas_used, gas_limit // 2)


def choose_fees(base_fee: int, gas_used: int, gas_limit: int, bid: int, policy: FeePolicy) -> Fees:
    """Fees for a transaction meant for the block after the head (``base_fee``, ``gas_used``,
    ``gas_limit`` of the latest block); ``bid`` is the intent's ``max_priority_fee`` (0: default)."""
    if bid < 0:
        raise FeeRefused(f"priority fee bid {bid} is negative")
    tip = bid or policy.default_priority_fee
    if tip > policy.max_priority_fee_cap:
        raise FeeRefused(f"priority fee {tip} wei is above the cap max_priority_fee_cap={policy.max_priority_fee_cap}")
    nxt = head_next_base_fee(base_fee, gas_used, gas_limit)
    max_fee = -(-nxt * policy.headroom_bps // BPS) + tip
    if policy.max_fee_cap and max_fee > policy.max_fee_cap:
        raise FeeRefused(f"max fee {max_fee} wei (next base fee {nxt} x {policy.headroom_bps}/10000 + tip {tip}) "
                         f"is above the cap max_fee_cap={policy.max_fee_cap}")
    return Fees(max_fee, tip, nxt)


def replacement_fees(old: Fees, now: Fees, policy: FeePolicy) -> Fees:
    """Fees for a same-nonce replacement of a transaction sent with ``old``, given what the head
    asks ``now``: each field the larger of +10% over the old (rounded up) and today's choice."""
    bump = BPS + REPLACEMENT_BUMP_BPS
    tip = max(-(-old.max_priority_fee * bump // BPS), now.max_priority_fee)
    max_fee = max(-(-old.max_fee * bump // BPS), now.max_fee, tip)
    if tip > policy.max_priority_fee_cap:
        raise FeeRefused(f"replacement priority fee {tip} wei is above max_priority_fee_cap="
                         f"{policy.max_priority_fee_cap}")
    if policy.max_fee_cap and max_fee > policy.max_fee_cap:
        raise FeeRefused(f"replacement max fee {max_fee} wei is above max_fee_cap={policy.max_fee_cap}")
    return Fees(max_fee, tip, now.base_fee)


def effective_gas_price(base_fee: int, fees: Fees) -> int:
    """What one unit of gas costs in a block with ``base_fee``: base + min(tip, max_fee - base)."""
    return base_fee + max(0, min(fees.max_priority_fee, fees.max_fee - base_fee))
