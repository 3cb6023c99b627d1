"""Strategy registry and the one place an engine is built from a config dict.

A config is a plain dict (read from TOML by the CLI)::

    [engine]
    suspend_after_failures = 1                # a strategy that raises this often is suspended (0: never)
    [risk]
    default_max_notional = 100_000_000_000    # risk-currency base units (USDC, 6 dp)
    default_max_outstanding = 500_000_000_000
    [[strategies]]
    kind = "cross_pool_arb"                   # a key of KINDS
    name = "v2-v3-usdc-weth"
    ...                                       # the strategy's own parameters
"""
from __future__ import annotations

from typing import Any, Callable

from tapedeck.domain.engine import Engine, Strategy, engine_options
from tapedeck.domain.risk import RiskGate
from tapedeck.domain.strategies.cross_pool_arb import CrossPoolArb
from tapedeck.domain.strategies.spread import SpreadCheck

KINDS: dict[str, Callable[..., Strategy]] = {
    "spread": SpreadCheck,
    "cross_pool_arb": CrossPoolArb,
}


class ConfigError(ValueError):
    """A strategy config that cannot build an engine; the message names the entry and field."""


def build_engine(config: dict[str, Any]) -> Engine:
    if "risk" not in config:
        raise ConfigError("config has no [risk] table")
    try:
        risk = RiskGate.from_config(config["risk"])
    except ValueError as e:
        raise ConfigError(str(e)) from None
    strategies: list[Strategy] = []
    for i, entry in enumerate(config.get("strategies", [])):
        params = dict(entry)
        kind = params.pop("kind", None)
        if kind not in KINDS:
            raise ConfigError(f"strategies[{i}]: unknown kind {kind!r} (known: {', '.join(KINDS)})")
        params.setdefault("name", kind)
        try:
            strategies.append(KINDS[kind](**params))
        except (TypeError, ValueError, KeyError) as e:
            raise ConfigError(f"strategies[{i}] ({params['name']}): {e}") from None
    try:
        return Engine(strategies, risk, **engine_options(config.get("engine", {})))
    except ValueError as e:
        raise ConfigError(str(e)) from None
