"""The built-in strategies and the one place an engine is built from a config dict.

A config is a plain dict (read from TOML by the CLI)::

    [engine]
    suspend_after_failures = 1                # a strategy that raises this often is suspended (0: never)
    [risk]
    default_max_notional = 100_000_000_000    # risk-currency base units (USDC, 6 dp)
    default_max_outstanding = 500_000_000_000
    [[strategies]]
    kind = "cross_pool_arb"                   # a built-in or registered name, or "package.module:Class"
    name = "v2-v3-usdc-weth"
    ...                                       # the strategy's own parameters (keyword arguments)

Turning a ``kind`` into a class imports code, which is I/O: that is
``tapedeck.runtime.strategy_loader`` (import paths, the ``tapedeck.strategies`` entry-point group),
which passes its resolver in here. This module stays pure: given a resolver it only validates the
config, constructs the strategies and checks that they keep the engine's contract.
"""
from __future__ import annotations

from typing import Any, Callable

from tapedeck.domain import events as ev
from tapedeck.domain.engine import Engine, Strategy, engine_options
from tapedeck.domain.risk import RiskGate
from tapedeck.domain.strategies.aave_liquidator import AaveLiquidator
from tapedeck.domain.strategies.cex_dex_arb import CexDexArb
from tapedeck.domain.strategies.cross_pool_arb import CrossPoolArb
from tapedeck.domain.strategies.sliced_order import SlicedOrder
from tapedeck.domain.strategies.perp_oracle_lag import PerpOracleLag
from tapedeck.domain.strategies.spread import SpreadCheck

# Also registered in pyproject's ``tapedeck.strategies`` entry-point group (the one mechanism a user's
# package uses too); this table is the fallback when the installed metadata is absent or stale.
BUILTIN: dict[str, Callable[..., Strategy]] = {
    "spread": SpreadCheck,
    "cross_pool_arb": CrossPoolArb,
    "aave_liquidator": AaveLiquidator,
    "sliced_order": SlicedOrder,
    "cex_dex_arb": CexDexArb,
    "perp_oracle_lag": PerpOracleLag,
}

Resolver = Callable[[str], Callable[..., Strategy]]


class ConfigError(ValueError):
    """A strategy config that cannot build an engine; the message names the entry and field."""


def builtin(kind: str) -> Callable[..., Strategy]:
    """Resolve a built-in kind only (what the pure core can do without importing anything)."""
    if kind in BUILTIN:
        return BUILTIN[kind]
    hint = " (import paths are loaded by tapedeck.runtime.strategy_loader.build_engine)" if ":" in kind else ""
    raise ConfigError(f"unknown kind {kind!r} (known: {', '.join(BUILTIN)}){hint}")


def build_engine(config: dict[str, Any], resolve: Resolver = builtin) -> Engine:
    """An engine from ``config``; ``resolve`` maps a kind to a class or factory and raises ConfigError."""
    if not isinstance(config, dict) or "risk" not in config:
        raise ConfigError("config has no [risk] table")
    try:
        risk = RiskGate.from_config(config["risk"])
    except ValueError as e:
        raise ConfigError(str(e)) from None
    entries = config.get("strategies", [])
    if not isinstance(entries, list):
        raise ConfigError("strategies must be an array of tables ([[strategies]])")
    strategies: list[Strategy] = []
    names: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"strategies[{i}]: expected a table, got {type(entry).__name__}")
        params = dict(entry)
        kind = params.pop("kind", None)
        if not isinstance(kind, str) or not kind:
            raise ConfigError(f"strategies[{i}]: needs kind = \"<built-in name>\" or \"package.module:Class\"")
        try:
            factory = resolve(kind)
        except ConfigError as e:
            raise ConfigError(f"strategies[{i}]: {e}") from None
        if kind in BUILTIN:
            params.setdefault("name", kind)  # a built-in names its strategy after its kind by default
        label = f"strategies[{i}] ({params.get('name', kind)})"
        try:
            strategy = factory(**params)
        except Exception as e:  # a user's constructor may raise anything on bad parameters
            raise ConfigError(f"{label}: {kind} rejected its parameters: {type(e).__name__}: {e}") from None
        problem = contract_problem(strategy)
        if problem:
            raise ConfigError(f"{label}: {kind} {problem}")
        if strategy.name in names:
            raise ConfigError(f"{label}: name {strategy.name!r} is already used by strategies[{names[strategy.name]}]")
        names[strategy.name] = i
        strategies.append(strategy)
    try:
        return Engine(strategies, risk, **engine_options(config.get("engine", {})))
    except ValueError as e:
        raise ConfigError(str(e)) from None


def contract_problem(strategy: Any) -> str:
    """What keeps ``strategy`` from being one the engine can run, or "" (checked once, at build)."""
    name = getattr(strategy, "name", None)
    if not isinstance(name, str) or not name:
        return "built an object without a name (a non-empty str attribute)"
    handles = getattr(strategy, "handles", None)
    if not isinstance(handles, (tuple, list)):
        return "built an object without handles (a tuple of event types)"
    for t in handles:
        if not (isinstance(t, type) and issubclass(t, ev.Event)):
            return f"handles {t!r}, which is not an event type of tapedeck.domain.events"
    if not callable(getattr(strategy, "on_event", None)):
        return "built an object without an on_event(event, state) method"
    return ""
