"""The run config's shape, validated once when it is read: pydantic v2 models, strict types.

A config is TOML (``fixtures/config/*.toml`` or the user's); ``build_engine`` takes the plain dict
this returns. Why a schema here and not checks scattered through the builders: a wrong value
must be refused by name before anything runs (``kill_switch = "no"`` used to engage the kill
switch, a negative limit was accepted, an unknown top-level key was blamed on ``strategies[0]``).
Strategies' own parameters are the strategy's to check (its constructor); only ``kind`` and
``name`` are checked here. Errors are one line each, naming the file and the dotted key::

    my.toml: risk.default_max_notional: must be >= 0 (got -5)
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from tapedeck.adapters.validation import dotted

UINT256 = (1 << 256) - 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Amount = StrictInt  # base units; ranges checked with Field(ge=..., le=...)


class VenueLimitsModel(_Strict):
    max_notional: Amount | None = Field(default=None, ge=0, le=UINT256)
    max_outstanding: Amount | None = Field(default=None, ge=0, le=UINT256)


class RiskModel(_Strict):
    kill_switch: StrictBool = False
    default_max_notional: Amount = Field(ge=0, le=UINT256)
    default_max_outstanding: Amount = Field(ge=0, le=UINT256)
    venues: dict[str, VenueLimitsModel] = {}
    # issue 13: the day's booked loss (domain.risk) at which every intent is refused until the next UTC day
    daily_loss_limit: Amount | None = Field(default=None, ge=1, le=UINT256)


class StrategyEntryModel(BaseModel):
    """``kind`` (a built-in name, ``module:Class`` or an entry point) and ``name``; the rest is
    the strategy's own parameters, checked by its constructor."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: StrictStr = Field(min_length=1)
    name: StrictStr | None = Field(default=None, min_length=1)


def _eth_price(source: str) -> str:
    from tapedeck.runtime.outcomes import EthPrice

    EthPrice(source)  # raises ValueError naming what is wrong with it
    return source


class OutcomesModel(_Strict):
    """How outcomes value what a run holds: ``eth_price = "oracle:<feed>" | "pool:<pool id>"``."""

    eth_price: Annotated[StrictStr, AfterValidator(_eth_price)] | None = None


class StoreModel(_Strict):
    """How the run's log commits: at least every ``max_delay_ms`` (the most a killed run loses)."""

    max_delay_ms: StrictInt = Field(default=200, ge=1, le=60_000)


class ConfigModel(_Strict):
    risk: RiskModel
    strategies: list[StrategyEntryModel] = []
    engine: dict[str, Any] = {}  # engine rules (failure suspension...), checked by the engine
    pools: list[dict[str, Any]] = []  # registry additions, checked by the registry
    paper: dict[str, Any] = {}  # paper-fill settings, checked by the paper gateway
    outcomes: OutcomesModel = OutcomesModel()  # checked before a run, not after it has been recorded
    store: StoreModel = StoreModel()


class ConfigInvalid(ValueError):
    """A config that does not fit the schema; ``str()`` is one line per problem, file and key first."""


def describe(where: str, exc: ValidationError) -> str:
    """One line per pydantic error: ``where: dotted.key: message (got value)``."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = dotted(tuple(p for p in err["loc"] if p not in ("function-after", "function-before")))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "missing"
        got = "" if err["type"] in ("missing", "extra_forbidden") else f" (got {err.get('input')!r})"
        lines.append(f"{where}: {loc}: {msg}{got}")
    return "\n".join(lines)


def validate_config(config: dict[str, Any], where: str) -> dict[str, Any]:
    """The config if it fits the schema, else ``ConfigInvalid`` naming ``where`` and each key."""
    try:
        ConfigModel.model_validate(config)
    except ValidationError as e:
        raise ConfigInvalid(describe(where, e)) from None
    return config
