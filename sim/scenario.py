"""Scenarios: the TOML files that, with a seed, fully determine a simulated run.

A scenario file is read with ``tomllib``, validated by pydantic models of its tables
(``ScenarioFile`` and below: ``extra="forbid"``, one type per unit), checked across fields and
tables, and returned as the frozen dataclasses below. A bad or unknown field raises
``ScenarioError``, one line per problem, each naming the file and the field path, e.g.::

    fixtures/scenarios/x.toml: chains.ethereum.block_interval: expected a positive number, got 'abc'

Units, fixed once here:

* simulated times and durations are **seconds** (TOML int or float): ``duration``,
  ``block_interval``, ``heartbeat``, ``reference.moves[].at``...; latencies are **milliseconds**;
* prices, sizes and other money are **decimal strings** (``"3000.00"``) or ints, never floats;
  gas and fees in wei are ints;
* model parameters (volatility, probabilities, fractions, bps) may be numbers or decimal strings
  and are kept as ``Decimal``.

Layout of a file (every table but ``[reference]`` is optional)::

    name, description, seed, duration, start          # start: ISO-8601 UTC time of t = 0
    [reference]         instrument, start_price, volatility (annualised), tick (s),
                        jump_intensity (jumps per hour), jump_size (std of a log jump)
    [[reference.moves]] at, over, change (fraction, e.g. "-0.30"), target
    [chains.<name>]     block_interval, gas_limit, gas_target, initial_base_fee, first_block,
                        background_utilization, background_max_priority_fee, latency
    [oracles.<name>]    chain, deviation_bps, heartbeat, decimals
    [venues.<name>]     kind, instrument, decimals, book shape, fees, rejects, rate_limit, latency;
                        perp venues also: oracle, maker_lag (s), maker_follow, mark_ema (s), funding_interval (s);
                        taker_flow_per_minute, taker_flow_size (the venue's own takers, printed on its tape)
    [pools.<name>]      chain, protocol, fee_bps, liquidity, arbitrage_lag (optional)
    [agents.searchers] / [agents.borrowers] / [agents.background]
    [agents.copycats]   count, latency_ms, outbid_bps (mempool copycats of public liquidations)

A *latency* is ``{ outbound = { base_ms, jitter_ms, jitter }, inbound = {...} }``: outbound is
bot -> venue (orders, transactions), inbound is venue -> bot (market data, reports).

A perp venue's *oracle* names one of the ``[oracles]`` (its index price, see ``sim.venues.perp``);
left out, it is the scenario's only off-chain oracle if there is exactly one, else none (the
venue's own mark is its index). ``maker_lag`` (s, default 0) and ``maker_follow`` (a fraction in
(0, 1], closed per second, default 1) say how late and how fast the book's makers follow the
oracle; ``mark_ema`` (s, default 150) is the time constant of the mark price's basis average;
``funding_interval`` (s, default 3600: Hyperliquid's hour) how often funding is paid (``sim.venues.perp``).

A *move target* names a price mark: ``"reference"`` (everything follows it) or the name of a venue
or oracle (only that venue's book or that oracle's observation is displaced). Moves add up:
the mark of a target is ``reference * (1 + sum of its moves' change * progress)``.
"""
from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Callable, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainValidator, ValidationError
from pydantic_core import PydanticCustomError

from tapedeck.adapters.config_files import FIXTURES  # package data: found the same way in a wheel
from tapedeck.adapters.validation import dotted

SCENARIO_DIR = FIXTURES / "scenarios"

REFERENCE = "reference"
DEFAULT_START = "2024-03-01T00:00:00Z"
Jitter = Literal["uniform", "exponential"]
VenueKind = Literal["cex", "perp"]
PoolProtocol = Literal["uniswap-v2", "uniswap-v3"]
BiddingRule = Literal["fixed", "profit-share"]
JITTERS, VENUE_KINDS = get_args(Jitter), get_args(VenueKind)
POOL_PROTOCOLS, BIDDING_RULES = get_args(PoolProtocol), get_args(BiddingRule)
MAX_BORROWERS = 200

T = TypeVar("T")
_CTX = Context(prec=34, rounding=ROUND_HALF_EVEN)  # never the caller's global decimal context


# A borrow opens only within the collateral's LTV, so a position starts at a health factor of at
# least liquidation threshold / LTV (WETH in sim.chain.aave_v3: 8250 / 8000). Below it the real
# Pool reverts the borrow (error 36, COLLATERAL_CANNOT_COVER_NEW_BORROW).
OPENABLE_HEALTH_FACTOR = Decimal(8250) / Decimal(8000)


class ScenarioError(ValueError):
    """A scenario file that is missing, not TOML, or has a bad field; the message names both."""


# ----------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Move:
    """A scripted move: the target's mark changes by ``change`` (a fraction) linearly over ``over`` s."""

    at: float
    over: float  # 0: a jump at ``at``
    change: Decimal
    target: str = REFERENCE

    def progress(self, t: float) -> Decimal:
        """How much of the move has happened at simulated time ``t`` (0 to 1)."""
        if t < self.at:
            return Decimal(0)
        if self.over == 0 or t >= self.at + self.over:
            return Decimal(1)
        return _CTX.divide(Decimal(repr(t - self.at)), Decimal(repr(self.over)))


@dataclass(frozen=True)
class ReferencePath:
    instrument: str
    start_price: Decimal
    volatility: Decimal  # annualised, as a fraction (0.6 = 60%)
    tick: float  # seconds between reference updates
    jump_intensity: Decimal  # expected jumps per hour
    jump_size: Decimal  # standard deviation of a log jump
    moves: tuple[Move, ...] = ()


@dataclass(frozen=True)
class Latency:
    """A one-way delay: ``base_ms`` plus a seeded jitter (uniform on [0, jitter_ms), or exponential with that mean)."""

    base_ms: Decimal
    jitter_ms: Decimal = Decimal(0)
    jitter: str = "uniform"


@dataclass(frozen=True)
class Link:
    outbound: Latency  # bot -> venue
    inbound: Latency  # venue -> bot


ZERO_LINK = Link(Latency(Decimal(0)), Latency(Decimal(0)))


@dataclass(frozen=True)
class Chain:
    name: str
    block_interval: float
    gas_limit: int
    gas_target: int
    initial_base_fee: int  # wei
    first_block: int = 1
    background_utilization: Decimal = Decimal("0.5")  # share of the gas limit other users fill, on average
    background_max_priority_fee: int = 2_000_000_000  # their tips: uniform on [0, this] wei
    latency: Link = ZERO_LINK  # bot <-> mempool


@dataclass(frozen=True)
class Oracle:
    """A Chainlink-style feed: a new round when the mark moves more than ``deviation_bps``, or after ``heartbeat`` s."""

    name: str
    heartbeat: float
    deviation_bps: Decimal | None = None  # None: heartbeat only
    chain: str | None = None  # where its rounds are posted (None: off-chain, e.g. a perp venue's oracle)
    decimals: int = 8


@dataclass(frozen=True)
class Venue:
    """A book venue (CEX spot or perp) quoting around its mark."""

    name: str
    kind: str
    instrument: str
    base_decimals: int
    quote_decimals: int
    tick_size: Decimal
    lot_size: Decimal
    depth_levels: int
    level_size: Decimal  # base units per level (e.g. "5" ETH)
    level_spacing_bps: Decimal
    spread_bps: Decimal
    taker_fee_bps: Decimal
    maker_fee_bps: Decimal = Decimal(0)
    reject_probability: Decimal = Decimal(0)
    rate_limit: int = 10  # orders per second
    replenish: float = 1.0  # seconds until consumed depth comes back
    latency: Link = ZERO_LINK
    # perp venues only (sim.venues.perp.MockPerp):
    oracle: str | None = None  # the oracle that is the venue's index (None: its own mark)
    maker_lag: float = 0.0  # seconds before the makers see an oracle round
    maker_follow: Decimal = Decimal(1)  # share of the gap to the seen oracle premium closed per second
    mark_ema: float = 150.0  # seconds: time constant of the mark's EMA of (book mid - oracle)
    funding_interval: float = 3600.0  # seconds between funding payments (Hyperliquid: hourly)
    # any book venue: the venue's own taker flow (sim.venues.cex; 0 = none), market orders at Poisson times
    taker_flow_per_minute: Decimal = Decimal(0)
    taker_flow_size: Decimal = Decimal(0)  # mean size, base asset (exponential, at least one lot)


@dataclass(frozen=True)
class Pool:
    name: str
    chain: str
    protocol: str
    fee_bps: Decimal
    liquidity: Decimal  # value of each side in the quote currency, e.g. "20000000"
    arbitrage_lag: float | None = None  # this pool's arbitrageurs' lag (default: [agents.background]'s)


@dataclass(frozen=True)
class Searchers:
    """Competing bots racing for the same opportunities on chain."""

    count: int = 0
    latency: Latency = Latency(Decimal(0))
    bidding: str = "fixed"
    priority_fee: int = 0  # wei per gas, for "fixed"
    profit_share: Decimal = Decimal(0)  # share of the opportunity paid as priority fee, for "profit-share"


@dataclass(frozen=True)
class Borrowers:
    """The Aave borrower population, drawn from the seed."""

    count: int = 0
    collateral: str = "WETH"
    debt: str = "USDC"
    health_factor_min: Decimal = Decimal("1.05")
    health_factor_max: Decimal = Decimal("2")
    collateral_min: Decimal = Decimal("1000")  # quote-currency value of a position
    collateral_max: Decimal = Decimal("1000000")


@dataclass(frozen=True)
class Background:
    """Other traders: they move the pools towards the reference, ``arbitrage_lag`` s late."""

    count: int = 0
    trades_per_minute: Decimal = Decimal(0)
    trade_size: Decimal = Decimal(0)  # mean quote-currency size
    arbitrage_lag: float = 0.0


@dataclass(frozen=True)
class Copycats:
    """Mempool watchers that re-bid every public liquidation they see (``sim.searchers``)."""

    count: int = 0
    latency_ms: Decimal = Decimal(50)
    outbid_bps: int = 1000


@dataclass(frozen=True)
class Agents:
    searchers: Searchers = Searchers()
    borrowers: Borrowers = Borrowers()
    background: Background = Background()
    copycats: Copycats = Copycats()


@dataclass(frozen=True)
class Scenario:
    name: str
    file: str
    seed: int
    duration: float  # simulated seconds
    start_ns: int  # epoch nanoseconds of simulated t = 0
    reference: ReferencePath
    description: str = ""
    chains: tuple[Chain, ...] = ()
    oracles: tuple[Oracle, ...] = ()
    venues: tuple[Venue, ...] = ()
    pools: tuple[Pool, ...] = ()
    agents: Agents = Agents()

    def with_seed(self, seed: int) -> "Scenario":
        return replace(self, seed=seed)

    def rng(self, name: str) -> random.Random:
        """The generator of one process: derived from the seed and the process's name only."""
        return derive_rng(self.seed, name)

    @property
    def marks(self) -> tuple[str, ...]:
        """Every price mark: the reference, then each venue and oracle (the names moves can target)."""
        return (REFERENCE, *(v.name for v in self.venues), *(o.name for o in self.oracles))

    def chain(self, name: str) -> Chain:
        return _named(self.chains, name, "chain")

    def oracle(self, name: str) -> Oracle:
        return _named(self.oracles, name, "oracle")

    def venue(self, name: str) -> Venue:
        return _named(self.venues, name, "venue")

    def pool(self, name: str) -> Pool:
        return _named(self.pools, name, "pool")


def derive_rng(seed: int | str, name: str) -> random.Random:
    """``random.Random`` seeded from ``"{seed}:{name}"`` (string seeds hash with SHA-512, so stable across runs)."""
    return random.Random(f"{seed}:{name}")


def _named(items: tuple[Any, ...], name: str, what: str) -> Any:
    for item in items:
        if item.name == name:
            return item
    raise KeyError(f"no {what} named {name!r}")


# ----------------------------------------------------------------------------- loading


def scenario_path(name_or_path: str | Path) -> Path:
    """A path as given, or a bare name (``eth-crash``) looked up in fixtures/scenarios."""
    p = Path(name_or_path)
    if p.suffix != ".toml" and len(p.parts) == 1:
        return SCENARIO_DIR / f"{p}.toml"
    return p


def list_scenarios() -> list[str]:
    """Names of the shipped scenarios, sorted."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def load_scenario(name_or_path: str | Path, *, seed: int | None = None) -> Scenario:
    p = scenario_path(name_or_path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{p}: scenario file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(f"{p}: cannot read scenario file: {e}") from None
    scenario = parse_scenario(text, file=str(p))
    return scenario if seed is None else scenario.with_seed(seed)


def parse_scenario(text: str, *, file: str = "<scenario>") -> Scenario:
    """A scenario from TOML text; every problem is one line ``file: dotted.field: reason``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{file}: not valid TOML: {e}") from None
    try:
        raw = ScenarioFile.model_validate(data)
    except ValidationError as e:
        raise ScenarioError("\n".join(f"{file}: {dotted(err['loc'])}: {_reason(err)}" for err in e.errors())) from None
    problems: list[tuple[str, str]] = []
    scenario = _build(raw, file, Path(file).stem, problems)
    if problems:
        raise ScenarioError("\n".join(f"{file}: {where}: {reason}" for where, reason in problems))
    return scenario


# ----------------------------------------------------------------------------- values
#
# The unit policy of a field (seconds as numbers, money never a float...) is a converter; each
# becomes a pydantic type below, whose error says what was expected.


class _Bad(Exception):
    """Raised by a converter: what was expected (the value it got is added to the message)."""


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _seconds(*, positive: bool) -> Callable[[Any], float]:
    what = "a positive number" if positive else "a number >= 0"

    def conv(v: Any) -> float:
        if not _is_number(v) or v != v or v in (float("inf"), float("-inf")):
            raise _Bad(f"expected {what}")
        if (positive and v <= 0) or v < 0:
            raise _Bad(f"expected {what}")
        return float(v)

    return conv


def _integer(*, minimum: int) -> Callable[[Any], int]:
    what = {0: "an integer >= 0", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")

    def conv(v: Any) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
            raise _Bad(f"expected {what}")
        return v

    return conv


def _param(*, low: Decimal | None = Decimal(0), high: Decimal | None = None, low_open: bool = False,
           what: str = "a number >= 0") -> Callable[[Any], Decimal]:
    """A model parameter: a number or a decimal string, as Decimal, within bounds."""

    def conv(v: Any) -> Decimal:
        if isinstance(v, str):
            try:
                d = Decimal(v.strip())
            except InvalidOperation:
                raise _Bad(f"expected {what}") from None
        elif _is_number(v):
            d = Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
        else:
            raise _Bad(f"expected {what}")
        if not d.is_finite():
            raise _Bad(f"expected {what}")
        if low is not None and (d < low or (low_open and d == low)):
            raise _Bad(f"expected {what}")
        if high is not None and d > high:
            raise _Bad(f"expected {what}")
        return d

    return conv


def _money(*, positive: bool = True) -> Callable[[Any], Decimal]:
    """A price or size: a decimal string or an int, never a float (floats are not exact)."""
    what = "a positive decimal string like \"3000.00\"" if positive else "a decimal string >= 0 like \"0.5\""

    def conv(v: Any) -> Decimal:
        if isinstance(v, float):
            raise _Bad(f"expected {what} (floats are not exact)")
        if isinstance(v, int) and not isinstance(v, bool):
            d = Decimal(v)
        elif isinstance(v, str):
            try:
                d = Decimal(v.strip())
            except InvalidOperation:
                raise _Bad(f"expected {what}") from None
        else:
            raise _Bad(f"expected {what}")
        if not d.is_finite() or d < 0 or (positive and d == 0):
            raise _Bad(f"expected {what}")
        return d

    return conv


def _string(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _Bad("expected a non-empty string")
    return v


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise _Bad("expected a string")
    return v


def _start_ns(v: Any) -> int:
    if isinstance(v, datetime):  # a TOML datetime literal
        dt = v
    elif isinstance(v, str):
        try:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise _Bad("expected an ISO-8601 time like \"2024-03-01T00:00:00Z\"") from None
    else:
        raise _Bad("expected an ISO-8601 time like \"2024-03-01T00:00:00Z\"")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _typed(conv: Callable[[Any], T]) -> PlainValidator:
    """A converter as a pydantic validator: the raw TOML value in, the typed value (or the reason) out."""

    def validate(v: Any) -> T:
        try:
            return conv(v)
        except _Bad as e:
            raise PydanticCustomError("scenario_value", "{reason}", {"reason": str(e)}) from None

    return PlainValidator(validate)


Seconds = Annotated[float, _typed(_seconds(positive=False))]  # >= 0
PositiveSeconds = Annotated[float, _typed(_seconds(positive=True))]
Count = Annotated[int, _typed(_integer(minimum=0))]
PositiveInt = Annotated[int, _typed(_integer(minimum=1))]
Money = Annotated[Decimal, _typed(_money())]  # > 0
MoneyOrZero = Annotated[Decimal, _typed(_money(positive=False))]
Name = Annotated[str, _typed(_string)]
Text = Annotated[str, _typed(_text)]
Start = Annotated[int, _typed(_start_ns)]  # epoch nanoseconds
Bps = Annotated[Decimal, _typed(_param(what="a number of basis points >= 0"))]
Probability = Annotated[Decimal, _typed(_param(high=Decimal(1), what="a probability between 0 and 1"))]
Fraction = Annotated[Decimal, _typed(_param(high=Decimal(1), what="a fraction between 0 and 1"))]
Milliseconds = Annotated[Decimal, _typed(_param(what="a number of milliseconds >= 0"))]
Change = Annotated[Decimal, _typed(_param(low=Decimal(-1), low_open=True, what="a fraction > -1 like \"-0.30\""))]
Volatility = Annotated[Decimal, _typed(_param(what="an annualised volatility >= 0"))]
JumpsPerHour = Annotated[Decimal, _typed(_param(what="a number of jumps per hour >= 0"))]
JumpSize = Annotated[Decimal, _typed(_param(what="a log-jump standard deviation >= 0"))]
PositiveBps = Annotated[Decimal, _typed(_param(low=Decimal(0), low_open=True, what="a positive number of basis points"))]
MakerFollow = Annotated[Decimal, _typed(_param(low=Decimal(0), low_open=True, high=Decimal(1),
                                               what="a fraction in (0, 1]"))]
Rate = Annotated[Decimal, _typed(_param(what="a rate >= 0"))]


# ----------------------------------------------------------------------------- the file's tables
#
# One model per TOML table, exactly as written in the file (``extra="forbid"``: an unknown key is
# an error). ``_build`` then checks what spans fields or tables and makes the frozen dataclasses.


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LatencyFile(_Table):
    base_ms: Milliseconds
    jitter_ms: Milliseconds = Decimal(0)
    jitter: Jitter = "uniform"


class LinkFile(_Table):
    outbound: LatencyFile
    inbound: LatencyFile


class MoveFile(_Table):
    at: Seconds
    over: Seconds = 0.0
    change: Change
    target: Name = REFERENCE


class ReferenceFile(_Table):
    instrument: Name = "ETH-USD"
    start_price: Money
    volatility: Volatility = Decimal(0)
    tick: PositiveSeconds = 1.0
    jump_intensity: JumpsPerHour = Decimal(0)
    jump_size: JumpSize = Decimal(0)
    moves: list[MoveFile] = []


def _no_link(v: Any) -> Any:
    """``latency = {}`` is no latency at all, like leaving the table out."""
    return None if v == {} else v


OptionalLink = Annotated[LinkFile | None, BeforeValidator(_no_link)]


class ChainFile(_Table):
    block_interval: PositiveSeconds
    gas_limit: PositiveInt
    gas_target: PositiveInt | None = None  # default: gas_limit / 2 (EIP-1559 elasticity)
    initial_base_fee: Count
    first_block: Count = 1
    background_utilization: Fraction = Decimal("0.5")
    background_max_priority_fee: Count = 2_000_000_000
    latency: OptionalLink = None


class OracleFile(_Table):
    heartbeat: PositiveSeconds
    deviation_bps: PositiveBps | None = None  # None: heartbeat only
    chain: Name | None = None
    decimals: Count = 8


PERP_FIELDS = ("oracle", "maker_lag", "maker_follow", "mark_ema", "funding_interval")


class VenueFile(_Table):
    kind: VenueKind
    instrument: Name
    base_decimals: Count = 18
    quote_decimals: Count = 6
    tick_size: Money = Decimal("0.01")
    lot_size: Money = Decimal("0.0001")
    depth_levels: PositiveInt
    level_size: Money
    level_spacing_bps: Bps = Decimal(1)
    spread_bps: Bps
    taker_fee_bps: Bps
    maker_fee_bps: Bps = Decimal(0)
    reject_probability: Probability = Decimal(0)
    rate_limit: PositiveInt = 10
    replenish: PositiveSeconds = 1.0
    latency: OptionalLink = None
    # perp venues only (PERP_FIELDS):
    oracle: Name | None = None
    maker_lag: Seconds = 0.0
    maker_follow: MakerFollow = Decimal(1)
    mark_ema: Seconds = 150.0
    funding_interval: PositiveSeconds = 3600.0
    taker_flow_per_minute: Rate = Decimal(0)
    taker_flow_size: MoneyOrZero = Decimal(0)


class PoolFile(_Table):
    chain: Name
    protocol: PoolProtocol
    fee_bps: Bps
    liquidity: Money
    arbitrage_lag: Seconds | None = None


class SearchersFile(_Table):
    count: Count = 0
    latency: LatencyFile | None = None
    bidding: BiddingRule = "fixed"
    priority_fee: Count = 0
    profit_share: Fraction = Decimal(0)


class BorrowersFile(_Table):
    count: Count = 0
    collateral: Name = "WETH"
    debt: Name = "USDC"
    health_factor_min: Money = Decimal("1.05")
    health_factor_max: Money = Decimal("2")
    collateral_min: Money = Decimal("1000")
    collateral_max: Money = Decimal("1000000")


class BackgroundFile(_Table):
    count: Count = 0
    trades_per_minute: Rate = Decimal(0)
    trade_size: MoneyOrZero = Decimal(0)
    arbitrage_lag: Seconds = 0.0


class CopycatsFile(_Table):
    count: Count = 0
    latency_ms: MoneyOrZero = Decimal(50)
    outbid_bps: Count = 1000


class AgentsFile(_Table):
    searchers: SearchersFile = SearchersFile()
    borrowers: BorrowersFile = BorrowersFile()
    background: BackgroundFile = BackgroundFile()
    copycats: CopycatsFile = CopycatsFile()


class ScenarioFile(_Table):
    """A scenario file as written (see the module docstring for its layout and units)."""

    name: Name | None = None  # default: the file's name
    description: Text = ""
    seed: Count = 0
    duration: PositiveSeconds
    start: Start | None = None  # default: DEFAULT_START
    reference: ReferenceFile
    chains: dict[str, ChainFile] = {}
    oracles: dict[str, OracleFile] = {}
    venues: dict[str, VenueFile] = {}
    pools: dict[str, PoolFile] = {}
    agents: AgentsFile = AgentsFile()


# ----------------------------------------------------------------------------- pydantic's errors, as lines


def _unwrap(tp: Any) -> Any:
    """The table model or Literal inside ``X | None``, ``list[X]`` or ``dict[str, X]``."""
    while True:
        args = [a for a in get_args(tp) if a is not type(None)]
        if get_origin(tp) is Annotated:
            tp = args[0]
        elif get_origin(tp) in (Union, UnionType) and len(args) == 1:
            tp = args[0]
        else:
            return tp


def _field_type(loc: tuple[Any, ...]) -> Any:
    """The declared type at ``loc`` (dict keys and list indexes step into the values), or None."""
    tp: Any = ScenarioFile
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) in (dict, list):
            tp = get_args(tp)[-1]
        else:
            return None
    return _unwrap(tp)


def _is_table(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _reason(err: Any) -> str:
    """One pydantic error in this module's words: what was expected, and what the file has."""
    kind, loc, value = err["type"], tuple(err["loc"]), err.get("input")
    if kind == "scenario_value":
        return f"{err['ctx']['reason']}, got {_show(value)}"
    if kind == "missing":
        return "required table missing" if _is_table(_field_type(loc)) else "required field missing"
    if kind == "extra_forbidden":
        parent = _field_type(loc[:-1])
        known = ", ".join(parent.model_fields) if _is_table(parent) else "none"
        return f"unknown field (known here: {known})"
    if kind == "literal_error":
        options = get_args(_field_type(loc)) or ()
        return "expected one of " + ", ".join(repr(o) for o in options) + f", got {_show(value)}"
    if kind in ("model_type", "dict_type"):
        return f"expected a table, got {_show(value)}"
    if kind == "list_type":
        return f"expected an array of tables, got {_show(value)}"
    return f"{err['msg']}, got {_show(value)}"  # pydantic's own words for anything else


# ----------------------------------------------------------------------------- checks across fields, and the model


def _build(f: ScenarioFile, file: str, default_name: str, problems: list[tuple[str, str]]) -> Scenario:
    """The frozen ``Scenario`` of a validated file; what spans fields or tables is checked here,
    each problem appended to ``problems`` as (dotted field, reason)."""

    def bad(where: str, reason: str) -> None:
        problems.append((where, reason))

    chain_names = list(f.chains)
    chains = tuple(_chain(name, c, bad) for name, c in f.chains.items())
    oracles = tuple(_oracle(name, o, chain_names, bad) for name, o in f.oracles.items())
    venues = tuple(_venue(name, v, oracles, bad) for name, v in f.venues.items())
    pools = tuple(_pool(name, p, chain_names, bad) for name, p in f.pools.items())
    agents = _agents(f.agents, bad)
    r = f.reference
    moves = tuple(Move(m.at, m.over, m.change, m.target) for m in r.moves)
    reference = ReferencePath(r.instrument, r.start_price, r.volatility, r.tick, r.jump_intensity, r.jump_size, moves)

    marks = [REFERENCE, *(v.name for v in venues), *(o.name for o in oracles)]
    seen: dict[str, str] = {}
    for kind, names in (("venue", [v.name for v in venues]), ("oracle", [o.name for o in oracles])):
        for n in names:
            if n == REFERENCE or n in seen:
                bad(f"{kind}s.{n}", f"name clashes with {seen.get(n, 'the reference mark')}")
            seen[n] = f"a {kind} of that name"
    totals: dict[str, Decimal] = {}
    for i, move in enumerate(moves):
        at = f"reference.moves[{i}]"
        if move.target not in marks:
            bad(f"{at}.target", f"unknown target {move.target!r} (expected one of: {', '.join(marks)})")
        if move.at >= f.duration:
            bad(f"{at}.at", f"move starts at {move.at} s, after the scenario ends ({f.duration} s)")
        low = _CTX.add(totals.get(move.target, Decimal(0)), min(move.change, Decimal(0)))
        totals[move.target] = low
        if low <= -1:
            bad(f"{at}.change", f"moves of {move.target!r} would take its price to zero or below")
    return Scenario(name=f.name if f.name is not None else default_name, file=file, seed=f.seed,
                    duration=f.duration, start_ns=f.start if f.start is not None else _start_ns(DEFAULT_START),
                    reference=reference, description=f.description, chains=chains, oracles=oracles, venues=venues,
                    pools=pools, agents=agents)


Problem = Callable[[str, str], None]


def _latency(t: LatencyFile) -> Latency:
    return Latency(t.base_ms, t.jitter_ms, t.jitter)


def _link(t: LinkFile | None) -> Link:
    return ZERO_LINK if t is None else Link(_latency(t.outbound), _latency(t.inbound))


def _chain(name: str, t: ChainFile, bad: Problem) -> Chain:
    gas_target = t.gas_target if t.gas_target is not None else max(t.gas_limit // 2, 1)
    if gas_target > t.gas_limit:
        bad(f"chains.{name}.gas_target", f"gas target {gas_target} exceeds the gas limit {t.gas_limit}")
    return Chain(name, t.block_interval, t.gas_limit, gas_target, t.initial_base_fee, t.first_block,
                 t.background_utilization, t.background_max_priority_fee, _link(t.latency))


def _oracle(name: str, t: OracleFile, chains: list[str], bad: Problem) -> Oracle:
    if t.chain is not None and t.chain not in chains:
        bad(f"oracles.{name}.chain", f"unknown chain {t.chain!r} (declared: {', '.join(chains) or 'none'})")
    return Oracle(name, t.heartbeat, t.deviation_bps, t.chain, t.decimals)


def _venue(name: str, t: VenueFile, oracles: tuple[Oracle, ...], bad: Problem) -> Venue:
    at = f"venues.{name}"
    if -t.tick_size.as_tuple().exponent > t.quote_decimals:  # type: ignore[operator]
        bad(f"{at}.tick_size", f"finer than the quote currency's {t.quote_decimals} decimals")
    if -t.lot_size.as_tuple().exponent > t.base_decimals:  # type: ignore[operator]
        bad(f"{at}.lot_size", f"finer than the base currency's {t.base_decimals} decimals")
    if _CTX.remainder(t.level_size, t.lot_size):
        bad(f"{at}.level_size", f"{t.level_size} is not a multiple of lot_size {t.lot_size}")
    if (t.taker_flow_per_minute > 0) != (t.taker_flow_size > 0):
        bad(f"{at}.taker_flow_size" if t.taker_flow_per_minute > 0 else f"{at}.taker_flow_per_minute",
            "taker flow needs both taker_flow_per_minute and taker_flow_size above 0")
    perp: dict[str, Any] = {}
    if t.kind != "perp":
        for key in PERP_FIELDS:
            if key in t.model_fields_set:
                bad(f"{at}.{key}", f"only for perp venues (this venue's kind is {t.kind!r})")
    else:
        names = [o.name for o in oracles]
        oracle = t.oracle
        if oracle is not None and oracle not in names:
            bad(f"{at}.oracle", f"unknown oracle {oracle!r} (declared: {', '.join(names) or 'none'})")
        if oracle is None:
            off_chain = [o.name for o in oracles if o.chain is None]
            if len(off_chain) > 1:
                bad(f"{at}.oracle", f"required field missing (several off-chain oracles: {', '.join(off_chain)})")
            oracle = off_chain[0] if off_chain else None
        perp = dict(oracle=oracle, maker_lag=t.maker_lag, maker_follow=t.maker_follow, mark_ema=t.mark_ema,
                    funding_interval=t.funding_interval)
    return Venue(name, t.kind, t.instrument, t.base_decimals, t.quote_decimals, t.tick_size, t.lot_size,
                 t.depth_levels, t.level_size, t.level_spacing_bps, t.spread_bps, t.taker_fee_bps, t.maker_fee_bps,
                 t.reject_probability, t.rate_limit, t.replenish, _link(t.latency), **perp,
                 taker_flow_per_minute=t.taker_flow_per_minute, taker_flow_size=t.taker_flow_size)


def _pool(name: str, t: PoolFile, chains: list[str], bad: Problem) -> Pool:
    if t.chain not in chains:
        bad(f"pools.{name}.chain", f"unknown chain {t.chain!r} (declared: {', '.join(chains) or 'none'})")
    return Pool(name, t.chain, t.protocol, t.fee_bps, t.liquidity, t.arbitrage_lag)


def _agents(t: AgentsFile, bad: Problem) -> Agents:
    s = t.searchers
    searchers = Searchers(count=s.count, latency=_latency(s.latency) if s.latency else Latency(Decimal(0)),
                          bidding=s.bidding, priority_fee=s.priority_fee, profit_share=s.profit_share)
    if s.count and s.bidding == "profit-share" and "profit_share" not in s.model_fields_set:
        bad("agents.searchers.profit_share", "required field missing (bidding is \"profit-share\")")
    if s.count and s.bidding == "fixed" and "priority_fee" not in s.model_fields_set:
        bad("agents.searchers.priority_fee", "required field missing (bidding is \"fixed\")")

    b = t.borrowers
    borrowers = Borrowers(count=b.count, collateral=b.collateral, debt=b.debt,
                          health_factor_min=b.health_factor_min, health_factor_max=b.health_factor_max,
                          collateral_min=b.collateral_min, collateral_max=b.collateral_max)
    at = "agents.borrowers"
    if b.count > MAX_BORROWERS:
        bad(f"{at}.count", f"at most {MAX_BORROWERS} borrowers (each opens a real position on chain), got {b.count}")
    if b.collateral != "WETH":
        bad(f"{at}.collateral", f"the simulated Aave market lends against WETH only, got {b.collateral!r}")
    if b.debt != "USDC":
        bad(f"{at}.debt", f"the simulated Aave market's borrowers owe USDC only, got {b.debt!r}")
    if b.count and b.health_factor_min < OPENABLE_HEALTH_FACTOR:
        bad(f"{at}.health_factor_min", f"{b.health_factor_min} is below the lowest health factor a borrow can open "
                                       f"at on the simulated market (WETH liquidation threshold / LTV = 82.5% / 80% "
                                       f"= {OPENABLE_HEALTH_FACTOR:.4f}); the price moves of [reference] take "
                                       f"positions lower")
    if b.health_factor_max < b.health_factor_min:
        bad(f"{at}.health_factor_max", f"below health_factor_min ({b.health_factor_min})")
    if b.collateral_max < b.collateral_min:
        bad(f"{at}.collateral_max", f"below collateral_min ({b.collateral_min})")

    g = t.background
    background = Background(count=g.count, trades_per_minute=g.trades_per_minute, trade_size=g.trade_size,
                            arbitrage_lag=g.arbitrage_lag)
    c = t.copycats
    if c.count and not b.count:
        bad("agents.copycats.count", "copycats copy liquidations: the scenario needs [agents.borrowers]")
    copycats = Copycats(count=c.count, latency_ms=c.latency_ms, outbid_bps=c.outbid_bps)
    return Agents(searchers, borrowers, background, copycats)
