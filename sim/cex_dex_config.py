"""Complete a sim config's ``cex_dex_arb`` entries with what only the scenario and its deployment know.

Why: the strategy compares a book venue with pools by exact math, so it needs the book's fee, lot
size and decimals and each pool's kind, fee, tick spacing and token addresses, and which token is
the base. In a sim these come from the scenario (``[venues.<cex_venue>]``, ``[pools.<name>]``) and
the sim's token deployment (``sim.sim_tokens``: USDC token0, WETH token1), exactly as
``sim.liquidator_config`` completes the liquidator's pools (whose ``_pool_entry`` this reuses), so a
config names a pool by ``pool`` alone. What the entry gives itself is kept. Done before the engine is
built, so the run's manifest records the completed config and ``replay --verify`` rebuilds the same
strategy. A scenario without that book venue, or without the pools, leaves the strategy without
pools (inert: it sees none of its events), said in a note, never guessed.
"""
from __future__ import annotations

import copy
from typing import Any

from tapedeck.sim.liquidator_config import _full, _pool_entry
from tapedeck.sim.scenario import Scenario

KIND = "cex_dex_arb"


def complete(config: dict[str, Any], scenario: Scenario) -> tuple[dict[str, Any], list[str]]:
    """``config`` with its ``cex_dex_arb`` entries completed for ``scenario`` (a new dict) and one
    note per entry it completed or left inert."""
    from tapedeck.sim.sim_tokens import token_addresses

    strategies = config.get("strategies") or []
    if not any(isinstance(s, dict) and s.get("kind") == KIND for s in strategies):
        return config, []
    out = copy.deepcopy(config)
    tokens = {k: v.lower() for k, v in token_addresses().items()}
    venues = {v.name: v for v in scenario.venues}
    by_name = {p.name.lower(): p for p in scenario.pools}
    notes = []
    for s in out["strategies"]:
        if not isinstance(s, dict) or s.get("kind") != KIND:
            continue
        name, chain = s.get("name", KIND), s.get("chain", "ethereum")
        filled: list[str] = []
        venue = venues.get(s.get("cex_venue", "binance"))
        if venue is None or venue.kind != "cex":
            if s.get("pools"):
                s["pools"] = []
                notes.append(f"strategy {name}: scenario {scenario.name!r} has no book venue "
                             f"{s.get('cex_venue', 'binance')!r}; inert")
            continue
        for key, value in (("cex_instrument", venue.instrument), ("cex_taker_fee_bps", str(venue.taker_fee_bps)),
                           ("cex_lot_size", str(venue.lot_size)), ("cex_base_decimals", venue.base_decimals),
                           ("cex_quote_decimals", venue.quote_decimals)):
            if key not in s:
                s[key] = value
                filled.append(key)
        kept, left = [], []
        for entry in s.get("pools") or []:
            if not isinstance(entry, dict) or _full(entry):
                kept.append(entry)
                continue
            pool = by_name.get(str(entry.get("pool", "")).lower())
            if pool is None or pool.chain != chain:
                left.append(str(entry.get("pool")))
                continue
            kept.append({**entry, **_pool_entry(pool.protocol, pool.fee_bps, tokens)})
            filled.append(pool.name)
        if "pools" in s:
            s["pools"] = kept
        if kept:
            for key, value in (("base_token", tokens["WETH"]), ("quote_token", tokens["USDC"])):
                if key not in s:
                    s[key] = value
                    filled.append(key)
        if left:
            notes.append(f"strategy {name}: scenario {scenario.name!r} has no such pool on {chain}; "
                         f"pools left out: {', '.join(left)}")
        if filled:
            notes.append(f"strategy {name}: completed from the scenario and the sim's deployment: {', '.join(filled)}")
    return out, notes
