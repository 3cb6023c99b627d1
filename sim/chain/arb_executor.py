"""tapedeck's atomic arbitrage executor (``contracts/ArbExecutor.sol``) on a simulated chain.

:func:`deploy_arb_executor` puts the compiled build (``make contracts``: npm ``solc`` 0.8.37,
prague) on a chain, owned by the bot; :meth:`ArbExecutor.arbitrage_call` encodes one route (V2
pairs and V3 pools, two pools or a triangle, closed on the start token) as the owner's
one-transaction call, funded by a flash swap on the first hop or by the executor's own balance,
reverting below ``min_profit`` (``ProfitBelowMinimum(profit, minProfit)``).

:func:`read_state` reads the route's pools from the chain into the domain's own state
(``V2ReservesSynced`` for a pair; ``V3PoolSnapshot`` for a V3 pool: slot0, liquidity and every
initialized tick, the bitmap read word by word), and :func:`predict` prices the route on it with
the domain's exact math (``domain.dex_quotes.quote_route``: V2 ``getAmountOut``; V3 across ticks,
``uniswap_v3.swap``): the prediction the tests hold the contract's realised profit to, to the wei.
:func:`explain_revert` names the executor's custom errors.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from eth_abi import decode as abi_decode
from eth_utils import keccak
from web3 import Web3

from tapedeck.domain import events as ev
from tapedeck.domain import uniswap_v3 as v3
from tapedeck.domain.dex_quotes import PoolSpec, quote
from tapedeck.domain.state import MarketState
from tapedeck.sim.chain.artifacts import load, load_own
from tapedeck.sim.chain.executor import Hop, _revert_bytes
from tapedeck.sim.chain.pyevm import deploy

NAME = "ArbExecutor"
DEPLOY_GAS = 2_000_000
# Measured on py-evm (prague), whole transaction: V2+V2 ~150k, V2+V3 ~200k, V3+V3 ~250k, a V3 hop
# crossing ticks +~25k per tick, a triangle +~70k; the limit leaves room for a long tick walk.
ARB_GAS = 1_500_000
ARB_GAS_SIM = 700_000  # the sim's limit for a two-pool route (one full-range V3 position: no tick walk)
V2_FEE_BPS = 30  # what the executor's V2 hop charges (UniswapV2Library: 997/1000)

_SEL = {name: keccak(text=sig)[:4] for name, sig in (
    ("fee", "fee()"), ("token0", "token0()"), ("token1", "token1()"), ("getReserves", "getReserves()"),
    ("slot0", "slot0()"), ("liquidity", "liquidity()"), ("tickSpacing", "tickSpacing()"),
    ("tickBitmap", "tickBitmap(int16)"), ("ticks", "ticks(int24)"))}


@dataclass
class ArbExecutor:
    w3: Web3
    contract: Any
    owner: str

    @property
    def address(self) -> str:
        return self.contract.address

    def arbitrage_call(self, token: str | Any, amount_in: int, route: Sequence[Hop], min_profit: int, *,
                       flash: bool = True) -> Any:
        """The bound ``arbitrage(...)`` call; send it from ``owner`` (``value`` = a coinbase payment, if any)."""
        t = token if isinstance(token, str) else token.address
        return self.contract.functions.arbitrage(Web3.to_checksum_address(t), amount_in, [h.arg() for h in route],
                                                 min_profit, flash)

    def arbitraged(self, receipt: Any) -> dict[str, int] | None:
        """The executor's ``Arbitraged`` log in ``receipt`` (amountIn, amountOut, profit, hops, token), else None."""
        for log in receipt["logs"]:
            if str(log["address"]).lower() != self.address.lower():
                continue
            d = self.contract.events.Arbitraged().process_log(log)["args"]
            return {"token": str(d["token"]).lower(), "amount_in": int(d["amountIn"]),
                    "amount_out": int(d["amountOut"]), "profit": int(d["profit"]), "hops": int(d["hops"]),
                    "flash": bool(d["flash"])}
        return None


def deploy_arb_executor(w3: Web3, owner: str, *, gas: int = DEPLOY_GAS) -> ArbExecutor:
    """Deploy the executor owned by ``owner`` (who alone may call ``arbitrage`` and ``withdraw``)."""
    return ArbExecutor(w3, deploy(w3, load_own(NAME), sender=owner, gas=gas), owner)


# ----------------------------------------------------------------------------- reading pools into domain state


class _Reader:
    """Raw ``eth_call``s: through the backend's ``call_many`` (one VM, no web3 layer) when it has
    one, else through web3."""

    def __init__(self, w3: Web3, backend: Any = None):
        self.w3, self.many = w3, getattr(backend, "call_many", None)

    def calls(self, calls: list[tuple[str, bytes]]) -> list[bytes | None]:
        if self.many is not None:
            return self.many(calls)
        out: list[bytes | None] = []
        for to, data in calls:
            try:
                out.append(bytes(self.w3.eth.call({"to": Web3.to_checksum_address(to), "data": data})))
            except Exception:  # noqa: BLE001 - reverted
                out.append(None)
        return out


def _word(data: bytes | None, i: int = 0, signed: bool = False) -> int:
    assert data is not None
    return int.from_bytes(data[32 * i:32 * i + 32], "big", signed=signed)


def is_v3(w3: Web3, pool: str, backend: Any = None) -> bool:
    """A V3 pool answers ``fee()``; a V2 pair has no such function."""
    (out,) = _Reader(w3, backend).calls([(pool, _SEL["fee"])])
    return out is not None and len(out) == 32


def read_state(w3: Web3, pools: Sequence[str], *, backend: Any = None, block: int = 0,
               ts: int = 0) -> tuple[MarketState, dict[str, PoolSpec]]:
    """The pools as the domain sees them after reading them now: a ``MarketState`` folded from a
    ``V2ReservesSynced`` per pair and a ``V3PoolSnapshot`` per V3 pool (every initialized tick:
    the bitmap's words from ``MIN_TICK`` to ``MAX_TICK``, then ``ticks(t)`` for each set bit), and
    each pool's ``PoolSpec`` (ids lowercase addresses, tokens lowercase)."""
    r = _Reader(w3, backend)
    state, specs = MarketState(), {}
    for pool in pools:
        key = pool.lower()
        t0, t1, fee = r.calls([(pool, _SEL["token0"]), (pool, _SEL["token1"]), (pool, _SEL["fee"])])
        token0, token1 = (("0x" + _word(x).to_bytes(32, "big")[12:].hex()) for x in (t0, t1))
        if fee is None or len(fee) != 32:
            (res,) = r.calls([(pool, _SEL["getReserves"])])
            state.on_v2(ev.V2ReservesSynced(ts=ts, source="sim:read", pool=key, block=block, reserve0=_word(res),
                                            reserve1=_word(res, 1)))
            specs[key] = PoolSpec(key, "v2", token0, token1, V2_FEE_BPS)
            continue
        slot0, liq, spacing_raw = r.calls([(pool, _SEL["slot0"]), (pool, _SEL["liquidity"]),
                                           (pool, _SEL["tickSpacing"])])
        spacing = _word(spacing_raw, signed=True)
        state.on_v3(ev.V3PoolSnapshot(ts=ts, source="sim:read", pool=key, block=block, sqrt_price_x96=_word(slot0),
                                      tick=_word(slot0, 1, signed=True), liquidity=_word(liq), tick_spacing=spacing,
                                      ticks=read_ticks(r, pool, spacing)))
        specs[key] = PoolSpec(key, "v3", token0, token1, _word(fee), spacing)
    return state, specs


def read_ticks(r: _Reader, pool: str, spacing: int) -> tuple[tuple[int, int, int], ...]:
    """Every initialized tick of a V3 pool as ``(tick, liquidityGross, liquidityNet)``, in order."""
    lo, hi = (v3.MIN_TICK // spacing) >> 8, (v3.MAX_TICK // spacing) >> 8
    positions = list(range(lo, hi + 1))
    words = r.calls([(pool, _SEL["tickBitmap"] + p.to_bytes(32, "big", signed=True)) for p in positions])
    ticks = []
    for p, w in zip(positions, words):
        bits = _word(w)
        while bits:
            low = bits & -bits
            ticks.append(((p << 8) + low.bit_length() - 1) * spacing)
            bits ^= low
    infos = r.calls([(pool, _SEL["ticks"] + t.to_bytes(32, "big", signed=True)) for t in ticks])
    return tuple((t, _word(info), _word(info, 1, signed=True)) for t, info in zip(ticks, infos))


# ----------------------------------------------------------------------------- prediction


@dataclass(frozen=True)
class Prediction:
    amounts: tuple[int, ...]  # out of each hop
    amount_out: int  # of the start token, after the last hop
    profit: int  # amount_out - amount_in (negative: the executor reverts with this in ProfitBelowMinimum)
    crossed: tuple[int, ...] = ()  # initialized ticks each hop crossed (0 for V2 and for V3 without ticks)


def predict(state: MarketState, specs: dict[str, PoolSpec], token: str, amount_in: int,
            route: Sequence[Hop]) -> Prediction | None:
    """What the executor makes on this state, hop by hop with the domain's exact quotes (the same
    whether the first hop is a flash swap or paid from the balance: the pool computes the same
    swap). None where a hop cannot be priced exactly (a V3 hop running out of liquidity)."""
    t, amount, outs, crossed = token.lower(), amount_in, [], []
    for hop in route:
        spec = specs[hop.pool.lower()]
        if t not in (spec.token0, spec.token1):
            raise ValueError(f"{t} is not a token of pool {hop.pool}")
        got = quote(spec, state, t, amount)
        if got is None:
            return None
        pool = state.v3.get(spec.pool) if spec.kind == "v3" else None
        crossed.append(pool.swap(spec.fee, amount, t == spec.token0).crossed if pool is not None and pool.ticks
                       is not None else 0)
        amount, t = got, spec.other(t)
        outs.append(amount)
    if t != token.lower():
        raise ValueError(f"route ends in {t}, not the start token {token}")
    return Prediction(tuple(outs), amount, amount - amount_in, tuple(crossed))


# ----------------------------------------------------------------------------- revert reasons


def _error_table() -> dict[bytes, tuple[str, list[str], list[str]]]:
    out = {}
    for item in load_own(NAME).abi:
        if item.get("type") == "error":
            types = [i["type"] for i in item["inputs"]]
            selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
            out[selector] = (item["name"], [i["name"] for i in item["inputs"]], types)
    return out


def decode_revert(reason: str) -> tuple[str, dict[str, Any]]:
    """``(name, args)`` of an executor custom error in a backend's revert text, else ``("", {})``
    (a pool's own string, e.g. V3's ``SPL`` or V2's ``UniswapV2: K``, is left to the caller)."""
    data = _revert_bytes(reason.strip())
    if data is not None:
        known = _error_table().get(data[:4])
        if known is not None:
            name, names, types = known
            return name, dict(zip(names, abi_decode(types, data[4:])))
    return "", {}


def explain_revert(reason: str) -> str:
    """``"ProfitBelowMinimum(profit=-12, minProfit=0)"``; anything else as given."""
    name, args = decode_revert(reason)
    if name:
        return f"{name}({', '.join(f'{k}={v}' for k, v in args.items())})"
    return reason


def pool_contract(w3: Web3, pool: str, v3_pool: bool) -> Any:
    """A web3 contract for a route's pool (V3 pool or V2 pair ABI)."""
    pkg, name = ("@uniswap/v3-core", "UniswapV3Pool") if v3_pool else ("@uniswap/v2-core", "UniswapV2Pair")
    return w3.eth.contract(address=Web3.to_checksum_address(pool), abi=load(pkg, name).abi)
