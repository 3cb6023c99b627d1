"""tapedeck's own liquidation executor (``contracts/AaveLiquidator.sol``) on a simulated chain.

:func:`deploy_executor` puts the compiled build (``make contracts``: npm ``solc`` 0.8.37, prague) beside
an Aave market; :meth:`Executor.liquidate_call` builds the owner's one-transaction liquidation
(flash loan of the debt asset, ``liquidationCall``, sell the seized collateral through a route of
Uniswap V2 pairs / V3 pools, repay loan + premium, keep the rest, revert below ``min_profit``).

:func:`predict` is what the executor will make, from the domain's exact math (Aave v3.0
``liquidation`` at the block's timestamp, V2 ``get_amount_out`` per hop, the flash premium's
``percent_mul``) on state read before the block: the proof that a liquidation's profit is known
to the wei before it is sent (tests/test_executor.py). :func:`explain_revert` turns a revert into
words a report can act on: the executor's own custom errors (``ProfitBelowMinimum(profit, min)``)
or Aave's codes (``45``: the borrower is no longer liquidatable, typically someone was first).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any, Sequence

from eth_abi import decode as abi_decode
from eth_utils import keccak
from web3 import Web3

from tapedeck.domain import aave_v3 as aave
from tapedeck.domain import uniswap_v2 as v2
from tapedeck.domain import uniswap_v3 as v3
from tapedeck.sim.chain.aave_v3 import AaveV3Market, explain
from tapedeck.sim.chain.artifacts import load, load_own
from tapedeck.sim.chain.pyevm import deploy

NAME = "AaveLiquidator"
DEPLOY_GAS = 2_500_000
# Measured on py-evm (prague), whole transaction: one V2 hop 550-571k, two V2 hops 666k, one V3 hop 562k
LIQUIDATE_GAS = 1_200_000
FLASHLOAN_ENABLED_BIT = 63  # ReserveConfiguration.FLASHLOAN_ENABLED_START_BIT_POSITION
ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string): Aave's require messages
LOST_RACE_CODES = {"45", "43"}  # HEALTH_FACTOR_NOT_BELOW_THRESHOLD, SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER


@dataclass(frozen=True)
class Hop:
    """One pool of a route, swapped exact-in: a V2 pair or a V3 pool (lowercase-insensitive address)."""

    pool: str
    v3: bool = False

    def arg(self) -> tuple[str, bool]:
        return (Web3.to_checksum_address(self.pool), self.v3)


@dataclass
class Executor:
    w3: Web3
    contract: Any
    owner: str
    market: AaveV3Market

    @property
    def address(self) -> str:
        return self.contract.address

    def liquidate_call(self, collateral: str | Any, debt: str | Any, user: str, debt_to_cover: int,
                       route: Sequence[Hop], min_profit: int) -> Any:
        """The bound ``liquidate(...)`` call; send it from ``owner`` (with ``value`` = a coinbase payment, if any)."""
        m = self.market
        return liquidate_fn(self.contract, m.asset(collateral), m.asset(debt), user, debt_to_cover, route, min_profit)

    def flash_premium_bps(self) -> int:
        return int(self.market.pool.functions.FLASHLOAN_PREMIUM_TOTAL().call())


def liquidate_fn(contract: Any, collateral: str, debt: str, user: str, debt_to_cover: int, route: Sequence[Hop],
                 min_profit: int) -> Any:
    """The bound ``liquidate(...)`` call of an executor ``contract`` (any web3 contract object with
    its ABI, a provider or not) for token addresses: the one encoding the sim's ``Executor`` and the
    live gateway (``live/evm_gateway.py``) both send."""
    return contract.functions.liquidate(Web3.to_checksum_address(collateral), Web3.to_checksum_address(debt),
                                        Web3.to_checksum_address(user), debt_to_cover, [h.arg() for h in route],
                                        min_profit)


def deploy_executor(market: AaveV3Market, owner: str, *, gas: int = DEPLOY_GAS,
                    flash_loans: bool = True) -> Executor:
    """Deploy the executor for ``market``'s pool, owned by ``owner`` (who alone may call ``liquidate``).

    ``sim.chain.aave_v3.deploy_aave_v3`` lists reserves with flash loans off (the configurator's
    default; the pool then reverts ``91`` FLASHLOAN_DISABLED); mainnet markets have them on, so with
    ``flash_loans`` the market's admin turns them on for every listed reserve first."""
    if flash_loans:
        enable_flash_loans(market)
    contract = deploy(market.w3, load_own(NAME), market.pool.address, sender=owner, gas=gas)
    return Executor(market.w3, contract, owner, market)


def enable_flash_loans(market: AaveV3Market) -> None:
    """``PoolConfigurator.setReserveFlashLoaning(asset, true)`` for each listed reserve that has it off."""
    for asset in market.pool.functions.getReservesList().call():
        config = market.pool.functions.getConfiguration(asset).call()[0]
        if not (config >> FLASHLOAN_ENABLED_BIT) & 1:
            market._send("setReserveFlashLoaning", market.configurator.functions.setReserveFlashLoaning(asset, True),
                         gas=200_000)


# ----------------------------------------------------------------------------- prediction


@dataclass(frozen=True)
class Prediction:
    debt_repaid: int  # LiquidationCall.debtToCover
    collateral_seized: int  # to the executor (LiquidationCall.liquidatedCollateralAmount)
    protocol_fee: int
    premium: int  # flash-loan premium on the whole amount borrowed
    amounts: tuple[int, ...]  # out of each hop
    profit: int  # to the owner, debt asset base units (negative: the executor would revert)


def v2_reserves(w3: Web3, pair: str) -> tuple[str, int, int]:
    """``(token0, reserve0, reserve1)`` of a V2 pair (token0 lowercase)."""
    c = w3.eth.contract(address=Web3.to_checksum_address(pair), abi=load("@uniswap/v2-core", "UniswapV2Pair").abi)
    r0, r1, _ = c.functions.getReserves().call()
    return str(c.functions.token0().call()).lower(), int(r0), int(r1)


def predict(market: AaveV3Market, collateral: str | Any, debt: str | Any, user: str, debt_to_cover: int,
            route: Sequence[Hop], timestamp: int, *, premium_bps: int,
            reserves: dict[str, tuple[str, int, int]] | None = None) -> Prediction:
    """The executor's outcome if it runs at ``timestamp`` on the state read now (the block's parent).

    The user's positions are projected to ``timestamp`` with the domain's index math; the
    liquidation is ``domain.aave_v3.liquidation``; each V2 hop is ``get_amount_out`` on the pair's
    reserves (``reserves`` overrides them: pool address -> ``(token0, r0, r1)``); each V3 hop is
    :func:`v3_exact_in` on the pool's state."""
    c_addr, d_addr = market.asset(collateral), market.asset(debt)
    positions = market.user_reserves(user)
    hf = aave.account_data(p.position_at(timestamp) for p in positions.values()).health_factor
    col, dbt = positions[c_addr], positions[d_addr]
    cconf = col.reserve.config
    inp = aave.LiquidationInput(
        health_factor=hf, user_debt=dbt.variable_debt_at(timestamp) + dbt.stable_debt,
        user_collateral=col.collateral_at(timestamp), debt_to_cover=debt_to_cover, collateral_price=col.price,
        debt_price=dbt.price, collateral_decimals=cconf.decimals, debt_decimals=dbt.reserve.config.decimals,
        liquidation_bonus=cconf.liquidation_bonus, protocol_fee=cconf.liquidation_protocol_fee,
        collateral_enabled=cconf.liquidation_threshold != 0 and col.using_as_collateral)
    res = aave.liquidation(inp)
    token, amount, outs = c_addr.lower(), res.collateral_to_liquidator, []
    for hop in route:
        if hop.v3:
            token, amount = v3_exact_in(market.w3, hop.pool, token, amount)
            outs.append(amount)
            continue
        t0, r0, r1 = (reserves or {}).get(hop.pool.lower()) or v2_reserves(market.w3, hop.pool)
        zero = token == t0
        amount = v2.get_amount_out(amount, r0, r1) if zero else v2.get_amount_out(amount, r1, r0)
        token = _other_v2(market.w3, hop.pool, t0) if zero else t0
        outs.append(amount)
    if token != d_addr.lower():
        raise ValueError(f"route ends in {token}, not the debt asset {d_addr}")
    premium = aave.percent_mul(debt_to_cover, premium_bps)
    return Prediction(res.debt_to_cover, res.collateral_to_liquidator, res.protocol_fee, premium, tuple(outs),
                      amount - res.debt_to_cover - premium)


def v3_exact_in(w3: Web3, pool: str, token_in: str, amount_in: int) -> tuple[str, int]:
    """``(token out, amount out)`` of an exact-input swap with no price limit on a V3 pool, as
    ``UniswapV3Pool.swap`` computes it: step by step to the next initialized tick within one bitmap
    word (``TickBitmap.nextInitializedTickWithinOneWord``, the bitmap read from the pool), each step
    ``domain.uniswap_v3.compute_swap_step``, crossing initialized ticks with their ``liquidityNet``.
    The per-step rounding is the pool's, so the result is exact, not an estimate of one big step."""
    c = w3.eth.contract(address=Web3.to_checksum_address(pool), abi=load("@uniswap/v3-core", "UniswapV3Pool").abi)
    t0, t1 = str(c.functions.token0().call()).lower(), str(c.functions.token1().call()).lower()
    if token_in.lower() not in (t0, t1):
        raise ValueError(f"{token_in} is not a token of V3 pool {pool}")
    zero = token_in.lower() == t0
    slot0 = c.functions.slot0().call()
    sqrt_p, tick = int(slot0[0]), int(slot0[1])
    liquidity, spacing, fee = int(c.functions.liquidity().call()), int(c.functions.tickSpacing().call()), \
        int(c.functions.fee().call())
    limit = v3.MIN_SQRT_RATIO + 1 if zero else v3.MAX_SQRT_RATIO - 1
    remaining, out = amount_in, 0
    words: dict[int, int] = {}
    while remaining != 0 and sqrt_p != limit:
        nxt, initialized = _next_tick(c, words, tick, spacing, zero)
        nxt = max(v3.MIN_TICK, min(v3.MAX_TICK, nxt))
        sqrt_next = v3.get_sqrt_ratio_at_tick(nxt)
        target = limit if (sqrt_next < limit if zero else sqrt_next > limit) else sqrt_next
        start = sqrt_p
        sqrt_p, step_in, step_out, step_fee = v3.compute_swap_step(sqrt_p, target, liquidity, remaining, fee)
        remaining -= step_in + step_fee
        out += step_out
        if sqrt_p == sqrt_next:
            if initialized:
                net = int(c.functions.ticks(nxt).call()[1])
                liquidity += -net if zero else net
            tick = nxt - 1 if zero else nxt
        elif sqrt_p != start:
            tick = v3.get_tick_at_sqrt_ratio(sqrt_p)
    return (t1 if zero else t0), out


def _next_tick(c: Any, words: dict[int, int], tick: int, spacing: int, lte: bool) -> tuple[int, bool]:
    """``TickBitmap.nextInitializedTickWithinOneWord`` with the bitmap words read from the pool."""
    compressed = tick // spacing  # floor: Solidity rounds negative ticks down explicitly
    if lte:
        word_pos, bit = compressed >> 8, compressed % 256
        masked = _word(c, words, word_pos) & ((1 << bit) - 1 + (1 << bit))
        if masked:
            return (compressed - (bit - masked.bit_length() + 1)) * spacing, True
        return (compressed - bit) * spacing, False
    word_pos, bit = (compressed + 1) >> 8, (compressed + 1) % 256
    masked = _word(c, words, word_pos) & ~((1 << bit) - 1)
    if masked:
        lsb = (masked & -masked).bit_length() - 1
        return (compressed + 1 + (lsb - bit)) * spacing, True
    return (compressed + 1 + (255 - bit)) * spacing, False


def _word(c: Any, words: dict[int, int], pos: int) -> int:
    if pos not in words:
        words[pos] = int(c.functions.tickBitmap(pos).call())
    return words[pos]


def _other_v2(w3: Web3, pair: str, token0: str) -> str:
    c = w3.eth.contract(address=Web3.to_checksum_address(pair), abi=load("@uniswap/v2-core", "UniswapV2Pair").abi)
    return str(c.functions.token1().call()).lower()


# ----------------------------------------------------------------------------- revert reasons


def _error_table() -> dict[bytes, tuple[str, list[str], list[str]]]:
    out = {}
    for item in load_own(NAME).abi:
        if item.get("type") == "error":
            types = [i["type"] for i in item["inputs"]]
            sig = f"{item['name']}({','.join(types)})"
            out[keccak(text=sig)[:4]] = (item["name"], [i["name"] for i in item["inputs"]], types)
    return out


def decode_revert(reason: str) -> tuple[str, dict[str, Any]]:
    """``(name, args)`` of a revert: an executor custom error (from its 4-byte selector in the hex
    data a backend reports) or ``("aave", {"code": "45"})`` for an Aave error string; ``("", {})``
    when it is neither."""
    text = reason.strip()
    data = _revert_bytes(text)
    if data is not None:
        known = _error_table().get(data[:4])
        if known is not None:
            name, names, types = known
            return name, dict(zip(names, abi_decode(types, data[4:])))
        if data[:4] == ERROR_STRING and len(data) >= 68:
            text = abi_decode(["string"], data[4:])[0]
    for marker in ("execution reverted: ", "execution reverted:"):
        text = text.split(marker, 1)[-1].strip()
    code = text.strip("'\" ()").split("'", 1)[0].strip()
    if code.isdigit():
        return "aave", {"code": code}
    return "", {}


def _revert_bytes(text: str) -> bytes | None:
    """The raw revert data in a backend's message: a ``b'...'`` literal (eth-tester) or ``0x`` hex
    (web3's ``ContractCustomError`` / ``ContractLogicError`` data on anvil)."""
    text = text.split("execution reverted: ", 1)[-1].strip()
    if text.startswith(("b'", 'b"')):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None
        return value if isinstance(value, bytes) else None
    hexdata = next((part for part in text.replace("'", " ").replace(",", " ").replace("(", " ").split()
                    if part.startswith("0x") and len(part) >= 10), "")
    try:
        return bytes.fromhex(hexdata[2:]) if hexdata else None
    except ValueError:
        return None


def explain_revert(reason: str) -> str:
    """A revert reason in words: ``"ProfitBelowMinimum(profit=-12, minProfit=0)"``, ``"lost race: 45
    HEALTH_FACTOR_NOT_BELOW_THRESHOLD (...)"``; unknown reasons are returned as given."""
    name, args = decode_revert(reason)
    if name == "aave":
        code = args["code"]
        text = explain(code)
        return f"lost race: {text}" if code in LOST_RACE_CODES else text
    if name:
        return f"{name}({', '.join(f'{k}={v}' for k, v in args.items())})"
    return reason
