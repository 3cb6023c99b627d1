"""Complete a sim config's ``aave_liquidator`` entries with what only the sim's deployment knows.

Why: the liquidator quotes and routes through pools by the ids their events carry (the scenario
pool names) and by the Aave reserves' token addresses, which exist only once the chain is deployed.
Those addresses are fixed by the sim's token account (``sim.sim_tokens``), so a config can name
a scenario pool by ``pool`` alone and the sim fills ``kind``, ``token0`` (USDC), ``token1`` (WETH),
``fee`` (V2: bps; V3: pips) and ``tick_spacing`` from the scenario, and ``native_asset`` (the
market's WETH) when absent. This happens before the engine is built, so the run's manifest
records the completed config and ``replay --verify`` rebuilds the same strategy. A bare pool the
scenario does not have, or any bare pool when the scenario has no Aave market (no borrowers:
nothing to liquidate), is left out, never guessed, and said in a note; so the shipped sim config
runs every scenario. Each completion is returned as a note the run prints.
"""
from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from tapedeck.domain.dex_quotes import V3_TICK_SPACING as TICK_SPACING
from tapedeck.sim.scenario import Scenario

KIND = "aave_liquidator"
POOL_KEYS = ("kind", "token0", "token1", "fee", "tick_spacing")


class SimConfigError(ValueError):
    """A bare pool the sim cannot complete (a fee no pool kind has)."""


def complete(config: dict[str, Any], scenario: Scenario) -> tuple[dict[str, Any], list[str]]:
    """``config`` with its ``aave_liquidator`` pools and native asset completed for ``scenario``
    (a new dict; ``config`` is not changed), and one note per completed entry."""
    from tapedeck.sim.sim_tokens import token_addresses

    strategies = config.get("strategies") or []
    if not any(isinstance(s, dict) and s.get("kind") == KIND for s in strategies):
        return config, []
    out = copy.deepcopy(config)
    tokens = {k: v.lower() for k, v in token_addresses().items()}
    by_name = {p.name.lower(): p for p in scenario.pools}
    notes = []
    for s in out["strategies"]:
        if not isinstance(s, dict) or s.get("kind") != KIND:
            continue
        name, filled, left = s.get("name", KIND), [], []
        chain = s.get("chain", "ethereum")
        market = scenario.agents.borrowers.count > 0
        kept = []
        for entry in s.get("pools") or []:
            if not isinstance(entry, dict) or _full(entry):
                kept.append(entry)  # a full entry is the config's own
                continue
            pool = by_name.get(str(entry.get("pool", "")).lower())
            if not market or pool is None or pool.chain != chain:
                left.append(str(entry.get("pool")))
                continue
            kept.append({**entry, **_pool_entry(pool.protocol, pool.fee_bps, tokens)})
            filled.append(pool.name)
        if "pools" in s:
            s["pools"] = kept
        if left:
            why = "has no Aave market" if not market else f"has no such pool on {chain}"
            notes.append(f"strategy {name}: scenario {scenario.name!r} {why}; pools left out: {', '.join(left)}")
        if not market:
            continue
        if not s.get("native_asset"):
            s["native_asset"] = tokens["WETH"]
            filled.append("native_asset")
        if filled:
            notes.append(f"strategy {name}: completed from the sim's deployment: {', '.join(filled)} "
                         f"(USDC {tokens['USDC']}, WETH {tokens['WETH']})")
    return out, notes


def _full(entry: dict[str, Any]) -> bool:
    """An entry that says more than ``pool`` is the config's own (a partial one fails to parse)."""
    return any(k in entry for k in POOL_KEYS)


def _pool_entry(protocol: str, fee_bps: Decimal, tokens: dict[str, str]) -> dict[str, Any]:
    side = {"token0": tokens["USDC"], "token1": tokens["WETH"]}  # USDC sorts below WETH (sim_tokens)
    if protocol == "uniswap-v2":
        if fee_bps != int(fee_bps):
            raise SimConfigError(f"a V2 pool's fee must be whole bps, got {fee_bps}")
        return {"kind": "v2", **side, "fee": int(fee_bps)}
    pips = int(fee_bps * 100)
    if pips not in TICK_SPACING:
        raise SimConfigError(f"no Uniswap V3 fee tier of {fee_bps} bps")
    return {"kind": "v3", **side, "fee": pips, "tick_spacing": TICK_SPACING[pips]}
