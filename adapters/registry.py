"""The pool registry: ``fixtures/registry.toml`` plus the user's files, validated with pydantic.

Each pool entry gives its chain, address, protocol, fee, tick spacing (V3) and tokens; each chain
entry gives known (block, unix seconds) anchors for timing recordings that carry block numbers
only. Files load in order and a later file's entry for the same (chain, address) replaces an
earlier one, so a user can add or correct pools without editing the shipped file. Every problem is
a :class:`RegistryError` whose one-line message names the file and the dotted field
(``my.toml: pools[2].token0.decimals: ...``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tapedeck.domain.ids import Address, AssetId, ChainId, IdError, PoolId
from tapedeck.adapters.config_files import read_toml
from tapedeck.adapters.validation import dotted

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGISTRY = ROOT / "fixtures" / "registry.toml"

V3 = "uniswap-v3"
V2 = "uniswap-v2"
# Uniswap V3 factory fee tiers (pips) and the tick spacing each is bound to.
V3_TICK_SPACING = {100: 1, 500: 10, 3000: 60, 10000: 200}
MAX_TICK_SPACING = 16383  # UniswapV3Factory.enableFeeAmount: tickSpacing < 16384


class RegistryError(ValueError):
    """A registry file that cannot be read or is invalid; the message names the file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _address(v: Any) -> str:
    try:
        return Address.parse(v).value
    except IdError as e:
        raise ValueError(str(e)) from None


class TokenEntry(_Strict):
    address: str
    symbol: str = Field(min_length=1, max_length=32)
    decimals: int = Field(ge=0, le=77)

    @field_validator("address")
    @classmethod
    def _addr(cls, v: str) -> str:
        return _address(v)


def _chain_name(v: str) -> str:
    """A chain's name as ``ChainId`` writes it (pydantic reports the ValueError by field)."""
    try:
        return ChainId(v).name
    except IdError as e:
        raise ValueError(str(e)) from None


ChainName = Annotated[str, AfterValidator(_chain_name)]


class ChainEntry(_Strict):
    name: ChainName
    chain_id: int = Field(gt=0)
    seconds_per_block: int = Field(gt=0, le=3600)
    anchors: list[list[int]] = Field(default_factory=list)  # [block, unix seconds] pairs

    @field_validator("anchors")
    @classmethod
    def _anchors(cls, v: list[list[int]]) -> list[list[int]]:
        for pair in v:
            if len(pair) != 2:
                raise ValueError(f"anchor {pair} is not a [block, unix seconds] pair")
            block, ts = pair
            if block < 0 or not 1_400_000_000 <= ts < 4_102_444_800:  # 2014 .. 2100
                raise ValueError(f"anchor ({block}, {ts}): block must be >= 0 and time unix seconds in 2014..2100")
        return v


class PoolEntry(_Strict):
    chain: ChainName
    address: str
    protocol: Literal["uniswap-v2", "uniswap-v3"]
    fee: int = Field(gt=0)
    tick_spacing: Optional[int] = None
    token0: TokenEntry
    token1: TokenEntry
    name: str = ""

    @field_validator("address")
    @classmethod
    def _addr(cls, v: str) -> str:
        return _address(v)

    @model_validator(mode="after")
    def _consistent(self) -> "PoolEntry":
        problem = fee_problem(self.protocol, self.fee, self.tick_spacing)
        if problem:
            raise ValueError(problem)
        if int(self.token0.address, 16) >= int(self.token1.address, 16):
            raise ValueError("token0 must be the lower address (the pool's own order)")
        return self


class RegistryFile(_Strict):
    chains: list[ChainEntry] = Field(default_factory=list)
    pools: list[PoolEntry] = Field(default_factory=list)


def fee_problem(protocol: str, fee: int, tick_spacing: int | None) -> str | None:
    """What is inconsistent about a pool's fee and tick spacing, or None."""
    if protocol == V2:
        if tick_spacing is not None:
            return "a uniswap-v2 pair has no tick_spacing"
        if not 0 < fee < 10_000:
            return f"uniswap-v2 fee is in bps (30 = 0.30%), 1..9999, not {fee}"
        return None
    if not 0 < fee < 1_000_000:
        return f"uniswap-v3 fee is in pips (500 = 0.05%), 1..999999, not {fee}"
    if tick_spacing is None:
        return "a uniswap-v3 pool needs tick_spacing"
    if not 0 < tick_spacing <= MAX_TICK_SPACING:
        return f"tick_spacing {tick_spacing} is outside 1..{MAX_TICK_SPACING}"
    want = V3_TICK_SPACING.get(fee)
    if want is not None and tick_spacing != want:
        return f"fee {fee} goes with tick spacing {want} (Uniswap's fee tiers), not {tick_spacing}"
    return None


@dataclass(frozen=True)
class PoolSpec:
    """One pool as the importers use it."""

    id: PoolId
    protocol: str
    fee: int  # V3 pips, V2 bps
    tick_spacing: int | None
    token0: AssetId
    token1: AssetId
    name: str = ""

    @property
    def address(self) -> str:
        return self.id.address.value

    @property
    def label(self) -> str:
        return self.name or f"{self.token0.symbol}/{self.token1.symbol}"

    def to_note(self) -> dict[str, Any]:
        """The manifest's record of the pool identity an import used."""
        return {"chain": str(self.id.chain), "protocol": self.protocol, "fee": self.fee,
                "tick_spacing": self.tick_spacing, "name": self.label,
                "token0": {"address": self.token0.address.value, "symbol": self.token0.symbol,
                           "decimals": self.token0.decimals},
                "token1": {"address": self.token1.address.value, "symbol": self.token1.symbol,
                           "decimals": self.token1.decimals}}


def _spec(p: PoolEntry) -> PoolSpec:
    chain = ChainId(p.chain)
    return PoolSpec(PoolId(chain, Address(p.address)), p.protocol, p.fee, p.tick_spacing,
                    AssetId(chain, Address(p.token0.address), p.token0.symbol, p.token0.decimals),
                    AssetId(chain, Address(p.token1.address), p.token1.symbol, p.token1.decimals), p.name)


def _describe(path: Path, err: ValidationError) -> str:
    errors = err.errors()
    first = errors[0]
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.startswith(("function-", "tuple["))))
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{path}: {dotted(loc)}: {msg}{more}"


@dataclass
class Registry:
    pools: dict[tuple[str, str], PoolSpec]
    chains: dict[str, ChainEntry]
    files: list[str]

    def find(self, address: str, chain: str | None = None) -> PoolSpec | None:
        """The pool at ``address`` (any case), on ``chain`` if given; None if not registered.

        An address registered on several chains needs ``chain`` (``RegistryError`` otherwise)."""
        a = address.lower()
        if chain is not None:
            return self.pools.get((chain, a))
        hits = [p for (c, addr), p in self.pools.items() if addr == a]
        if len(hits) > 1:
            raise RegistryError(f"pool {a} is registered on several chains "
                                f"({', '.join(str(p.id.chain) for p in hits)}): name the chain")
        return hits[0] if hits else None

    def chain(self, name: str) -> ChainEntry | None:
        return self.chains.get(name)


def _read_toml(path: Path) -> dict[str, Any]:
    return read_toml(path, "registry", RegistryError)


def load_registry(files: Iterable[str | Path] = (), *, configs: Iterable[str | Path] = (),
                  default: bool = True) -> Registry:
    """The shipped registry (unless ``default=False``), then each registry file of ``files`` (only
    ``[[chains]]`` and ``[[pools]]`` allowed), then the ``[[pools]]``/``[[chains]]`` of each
    config file of ``configs`` (their other tables belong to the strategies and are not read here)."""
    sources: list[tuple[Path, bool]] = ([(DEFAULT_REGISTRY, False)] if default else [])
    sources += [(Path(f), False) for f in files] + [(Path(c), True) for c in configs]
    pools: dict[tuple[str, str], PoolSpec] = {}
    chains: dict[str, ChainEntry] = {}
    for path, is_config in sources:
        data = _read_toml(path)
        if is_config:
            data = {k: data[k] for k in ("chains", "pools") if k in data}
        try:
            parsed = RegistryFile.model_validate(data)
        except ValidationError as e:
            raise RegistryError(_describe(path, e)) from None
        seen: set[tuple[str, str]] = set()
        for i, p in enumerate(parsed.pools):
            key = (p.chain, p.address)
            if key in seen:
                raise RegistryError(f"{path}: pools[{i}].address: pool {p.address} on {p.chain} is listed twice")
            seen.add(key)
            pools[key] = _spec(p)
        for c in parsed.chains:
            chains[c.name] = c
    return Registry(pools, chains, [str(p) for p, _ in sources])


def registry_with(pools: list[Any]) -> Registry:
    """The shipped registry plus ``pools`` (a config's ``[[pools]]`` entries, checked alike)."""
    base = load_registry()
    try:
        parsed = RegistryFile.model_validate({"pools": pools})
    except ValidationError as e:
        raise RegistryError(_describe(Path("config"), e)) from None
    for p in parsed.pools:
        base.pools[(p.chain, p.address)] = _spec(p)
    return base


def adhoc_pool(chain: str, address: str, protocol: str, fee: int, tick_spacing: int | None) -> PoolSpec:
    """A pool the registry does not know, from the user's flags (tokens unknown: token0/token1)."""
    problem = fee_problem(protocol, fee, tick_spacing)
    if problem:
        raise RegistryError(problem)
    c = ChainId(chain)
    unknown = Address("0x" + "0" * 40)
    return PoolSpec(PoolId(c, Address.parse(address)), protocol, fee, tick_spacing,
                    AssetId(c, unknown, "token0", 0), AssetId(c, unknown, "token1", 0), "")
