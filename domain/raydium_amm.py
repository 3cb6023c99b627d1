"""Raydium AMM v4 swap math, exact, and the pool state folded from its accounts.

Read from raydium-io/raydium-amm @ 27f461dd (``program/src/processor.rs`` ``process_swap_base_in``
/ ``process_swap_base_out``, ``program/src/math.rs`` ``calc_total_without_take_pnl_no_orderbook``,
``swap_token_amount_base_in/out``, ``CheckedCeilDiv``; ``program/src/state.rs`` ``AmmStatus``,
``Fees::initialize``), as summarised in ``../shared/reference/PROTOCOLS.md`` section 5.1:

* reserves are the vault token accounts' balances less the PnL the pool still owes its owner:
  ``coin = coin_vault.amount - need_take_pnl_coin``, ``pc = pc_vault.amount - need_take_pnl_pc``
  (a checked subtraction: the program fails with ``CheckedSubOverflow`` below zero);
* swap base in: ``fee = ceil(amount_in * swap_fee_numerator / swap_fee_denominator)``,
  ``out = reserve_out * (amount_in - fee) // (reserve_in + amount_in - fee)``; the program refuses
  an output of 0 (``InvalidInput``) or one that would empty the pool (``InsufficientFunds``);
* swap base out: ``in_before_fee = ceil(reserve_in * amount_out / (reserve_out - amount_out))``,
  ``in = ceil(in_before_fee * den / (den - num))``;
* swaps need a status with swap permission (1 Initialized, 6 SwapOnly, 7 WaitingTrade once its
  ``pool_open_time`` has passed).

Version trap: before raydium-amm 78c6a81 (2025-08-26) ``checked_ceil_div`` was the spl-style one
whose zero-quotient branch returns 1 only when ``2*x >= rhs`` (else 0), which differs for
``amount_in * numerator < denominator``; ``legacy_ceil=True`` reproduces it. Before 27f461d
(OpenBook removed) status 1/5 pools also counted their open-orders balances in the reserves: this
module prices the current program only.

Coin is the pool's base token (side A of ``quote``), pc its quote token. Nothing here does I/O.
"""
from __future__ import annotations

from dataclasses import dataclass

from tapedeck.domain import events as ev

U64_MAX = (1 << 64) - 1

UNINITIALIZED, INITIALIZED, DISABLED, WITHDRAW_ONLY, LIQUIDITY_ONLY, ORDERBOOK_ONLY, SWAP_ONLY, WAITING_TRADE = range(8)
STATUS_NAMES = ("Uninitialized", "Initialized", "Disabled", "WithdrawOnly", "LiquidityOnly", "OrderBookOnly",
                "SwapOnly", "WaitingTrade")
# AmmStatus::swap_permission; WaitingTrade swaps too once the clock passes pool_open_time (then it
# becomes SwapOnly): the book resolves that from the event time it is asked at.
SWAP_STATUSES = (INITIALIZED, SWAP_ONLY)


class RaydiumMathError(ArithmeticError):
    """Where the program fails; ``code`` is its ``AmmError`` name (or the panic it would hit)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


def ceil_div(x: int, rhs: int, *, legacy: bool = False) -> int:
    """``CheckedCeilDiv::checked_ceil_div`` (the first element of the legacy version's pair)."""
    if rhs == 0:
        raise RaydiumMathError("CheckedCeilDiv", "division by zero")
    q, r = divmod(x, rhs)
    if legacy and q == 0:
        return 1 if 2 * x >= rhs else 0
    return q + (1 if r else 0)


def reserves(coin_vault_amount: int, pc_vault_amount: int, need_take_pnl_coin: int,
             need_take_pnl_pc: int) -> tuple[int, int]:
    """``calc_total_without_take_pnl_no_orderbook`` -> (coin reserve, pc reserve)."""
    coin = coin_vault_amount - need_take_pnl_coin
    pc = pc_vault_amount - need_take_pnl_pc
    if coin < 0 or pc < 0:
        raise RaydiumMathError("CheckedSubOverflow", "a vault holds less than the PnL it owes")
    return coin, pc


def swap_fee(amount_in: int, fee_numerator: int, fee_denominator: int, *, legacy_ceil: bool = False) -> int:
    return ceil_div(amount_in * fee_numerator, fee_denominator, legacy=legacy_ceil)


def swap_base_in(amount_in: int, reserve_in: int, reserve_out: int, fee_numerator: int, fee_denominator: int,
                 *, legacy_ceil: bool = False) -> int:
    """Output of ``SwapBaseIn`` for ``amount_in`` (before the slippage check), exactly; raises where
    the program rejects the swap."""
    if not 0 <= amount_in <= U64_MAX:
        raise RaydiumMathError("InvalidInput", f"amount_in {amount_in} is not a u64")
    fee = swap_fee(amount_in, fee_numerator, fee_denominator, legacy_ceil=legacy_ceil)
    if fee > amount_in:
        raise RaydiumMathError("CheckedSubOverflow", "fee exceeds the amount")  # checked_sub().unwrap()
    x = amount_in - fee
    out = reserve_out * x // (reserve_in + x) if reserve_in + x else 0
    if out == 0 or amount_in == 0:
        raise RaydiumMathError("InvalidInput", "zero input or output")
    if out >= reserve_out:
        raise RaydiumMathError("InsufficientFunds", "the output would empty the pool")
    return out


def swap_base_out(amount_out: int, reserve_in: int, reserve_out: int, fee_numerator: int,
                  fee_denominator: int) -> int:
    """Input ``SwapBaseOut`` takes (fee included) for exactly ``amount_out``; raises where the
    program fails (an output at or above the reserve panics there on the checked subtraction)."""
    if not 0 < amount_out < reserve_out:
        raise RaydiumMathError("InvalidInput", f"amount_out {amount_out} must be in (0, reserve {reserve_out})")
    before_fee = ceil_div(reserve_in * amount_out, reserve_out - amount_out)
    after_fee = ceil_div(before_fee * fee_denominator, fee_denominator - fee_numerator)
    if after_fee > U64_MAX:
        raise RaydiumMathError("InvalidInput", "input exceeds u64")
    return after_fee


# ----------------------------------------------------------------------------- state from accounts


@dataclass(frozen=True, slots=True)
class TokenBalance:
    """An SPL token account's balance as last seen (``SplTokenAccountSynced``)."""

    mint: str
    amount: int
    slot: int


class RaydiumBook:
    """Raydium AMM v4 pools as their accounts last showed them.

    A pool's price needs three accounts: the AMM state (fees, PnL owed, vault keys) and its two
    vault token accounts. Each arrives on its own (``RaydiumPoolSynced``, ``SplTokenAccountSynced``),
    so the book keeps the last record of each account, each with its slot, and a pool's reserves are
    derived when asked: a partial update (one vault changed) replaces that vault's balance and
    nothing else. A record older (by slot) than the one held is ignored (out-of-order delivery from
    several subscriptions). Until all three are known -- or when a vault's mint is not the one the
    AMM names -- the pool has no reserves and quotes None.

    Token accounts are kept whatever they belong to (a vault may arrive before its AMM account).
    """

    __slots__ = ("amms", "tokens", "vaults", "ignored_stale")

    def __init__(self) -> None:
        self.amms: dict[str, ev.RaydiumPoolSynced] = {}
        self.tokens: dict[str, TokenBalance] = {}
        self.vaults: dict[str, str] = {}  # vault account -> the pool whose AMM names it
        self.ignored_stale = 0

    def apply(self, e: ev.Event) -> str | None:
        """Fold one event; returns the pool id it may have changed (None if none)."""
        if isinstance(e, ev.RaydiumPoolSynced):
            old = self.amms.get(e.pool)
            if old is not None and e.slot < old.slot:
                self.ignored_stale += 1
                return None
            if old is not None:
                for v in (old.coin_vault, old.pc_vault):
                    if self.vaults.get(v) == e.pool:
                        del self.vaults[v]
            self.amms[e.pool] = e
            self.vaults[e.coin_vault] = self.vaults[e.pc_vault] = e.pool
            return e.pool
        if isinstance(e, ev.SplTokenAccountSynced):
            old_t = self.tokens.get(e.account)
            if old_t is not None and e.slot < old_t.slot:
                self.ignored_stale += 1
                return None
            self.tokens[e.account] = TokenBalance(e.mint, e.amount, e.slot)
            return self.vaults.get(e.account)
        return None

    def pool(self, pool: str, now_ts: int | None = None) -> "RaydiumPool | None":
        """The pool's swap-relevant state, or None until its AMM and both vaults are known and agree.

        ``now_ts`` (event time, ns) decides whether a WaitingTrade pool is open yet; without it such
        a pool keeps its status and refuses swaps."""
        amm = self.amms.get(pool)
        if amm is None:
            return None
        status = amm.status
        if status == WAITING_TRADE and now_ts is not None and now_ts // 1_000_000_000 >= amm.pool_open_time:
            status = SWAP_ONLY
        coin, pc = self.tokens.get(amm.coin_vault), self.tokens.get(amm.pc_vault)
        if coin is None or pc is None or coin.mint != amm.coin_mint or pc.mint != amm.pc_mint:
            return None
        return RaydiumPool(status, coin.amount, pc.amount, amm.need_take_pnl_coin, amm.need_take_pnl_pc,
                           amm.swap_fee_numerator, amm.swap_fee_denominator, amm.coin_decimals, amm.pc_decimals,
                           min(amm.slot, coin.slot, pc.slot))


@dataclass(frozen=True, slots=True)
class RaydiumPool:
    """What a Raydium v4 swap reads: status, vault balances, PnL owed, swap fee. ``slot`` is the
    oldest slot of the three accounts it was built from."""

    status: int
    coin_vault_amount: int
    pc_vault_amount: int
    need_take_pnl_coin: int
    need_take_pnl_pc: int
    swap_fee_numerator: int
    swap_fee_denominator: int
    coin_decimals: int = 0
    pc_decimals: int = 0
    slot: int = 0

    def reserves(self) -> tuple[int, int]:
        return reserves(self.coin_vault_amount, self.pc_vault_amount, self.need_take_pnl_coin, self.need_take_pnl_pc)

    def swap_base_in(self, amount_in: int, coin_to_pc: bool) -> int:
        if self.status not in SWAP_STATUSES:
            name = STATUS_NAMES[self.status] if 0 <= self.status < len(STATUS_NAMES) else str(self.status)
            raise RaydiumMathError("InvalidStatus", f"pool status {name} has no swap permission")
        coin, pc = self.reserves()
        r_in, r_out = (coin, pc) if coin_to_pc else (pc, coin)
        return swap_base_in(amount_in, r_in, r_out, self.swap_fee_numerator, self.swap_fee_denominator)

    def quote(self, amount_in: int, a_to_b: bool) -> int | None:
        """Exact output of selling ``amount_in`` of coin (``a_to_b``) or of pc; None where the
        program would refuse the swap."""
        try:
            return self.swap_base_in(amount_in, a_to_b)
        except RaydiumMathError:
            return None


def quote(pool: RaydiumPool, amount_in: int, a_to_b: bool) -> int | None:
    """Module-level form of :meth:`RaydiumPool.quote` (the shape the arbitrage finder plugs in)."""
    return pool.quote(amount_in, a_to_b)
