"""Scenarios: the TOML files that, with a seed, fully determine a simulated run.

A scenario file is read with ``tomllib`` into the frozen dataclasses below. Every field is
checked; a bad or unknown field raises ``ScenarioError`` whose message names the file and the
field path, e.g.::

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
                        perp venues also: oracle, maker_lag (s), maker_follow, mark_ema (s)
    [pools.<name>]      chain, protocol, fee_bps, liquidity, arbitrage_lag (optional)
    [agents.searchers] / [agents.borrowers] / [agents.background]

A *latency* is ``{ outbound = { base_ms, jitter_ms, jitter }, inbound = {...} }``: outbound is
bot -> venue (orders, transactions), inbound is venue -> bot (market data, reports).

A perp venue's *oracle* names one of the ``[oracles]`` (its index price, see ``sim.venues.perp``);
left out, it is the scenario's only off-chain oracle if there is exactly one, else none (the
venue's own mark is its index). ``maker_lag`` (s, default 0) and ``maker_follow`` (a fraction in
(0, 1], closed per second, default 1) say how late and how fast the book's makers follow the
oracle; ``mark_ema`` (s, default 150) is the time constant of the mark price's basis average.

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
from typing import Any, Callable, TypeVar

from tapedeck.adapters.config_files import FIXTURES  # package data: found the same way in a wheel

SCENARIO_DIR = FIXTURES / "scenarios"

REFERENCE = "reference"
DEFAULT_START = "2024-03-01T00:00:00Z"
JITTERS = ("uniform", "exponential")
VENUE_KINDS = ("cex", "perp")
MAX_BORROWERS = 200
POOL_PROTOCOLS = ("uniswap-v2", "uniswap-v3")
BIDDING_RULES = ("fixed", "profit-share")

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
class Agents:
    searchers: Searchers = Searchers()
    borrowers: Borrowers = Borrowers()
    background: Background = Background()


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
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{file}: not valid TOML: {e}") from None
    return _scenario(_Table(file, "", data), default_name=Path(file).stem)


class _Bad(Exception):
    """Raised by a converter; ``_Table`` adds the file and field path."""


_MISSING: Any = object()


class _Table:
    """One TOML table being read: remembers which keys were used, so leftovers are errors."""

    def __init__(self, file: str, path: str, data: Any):
        self.file, self.path = file, path
        if not isinstance(data, dict):
            raise self.error(None, f"expected a table, got {_show(data)}")
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def at(self, key: str | None) -> str:
        if key is None:
            return self.path or "(top level)"
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str | None, message: str) -> ScenarioError:
        return ScenarioError(f"{self.file}: {self.at(key)}: {message}")

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, conv: Callable[[Any], T], default: Any = _MISSING) -> T:
        self.used.add(key)
        if key not in self.data:
            if default is _MISSING:
                raise self.error(key, "required field missing")
            return default  # type: ignore[no-any-return]
        try:
            return conv(self.data[key])
        except _Bad as e:
            raise self.error(key, f"{e}, got {_show(self.data[key])}") from None

    def table(self, key: str, *, required: bool = False) -> "_Table":
        self.used.add(key)
        if key not in self.data:
            if required:
                raise self.error(key, "required table missing")
            return _Table(self.file, self.at(key), {})
        return _Table(self.file, self.at(key), self.data[key])

    def tables(self, key: str) -> list[tuple[str, "_Table"]]:
        """The sub-tables of a table of named tables (``[chains.<name>]``), in file order."""
        outer = self.table(key)
        out = [(name, outer.table(name)) for name in list(outer.data)]
        return out

    def array(self, key: str) -> list["_Table"]:
        """An array of tables (``[[reference.moves]]``)."""
        self.used.add(key)
        items = self.data.get(key, [])
        if not isinstance(items, list):
            raise self.error(key, f"expected an array of tables, got {_show(items)}")
        return [_Table(self.file, f"{self.at(key)}[{i}]", item) for i, item in enumerate(items)]

    def finish(self) -> None:
        unknown = [k for k in self.data if k not in self.used]
        if unknown:
            known = ", ".join(k for k in self.used) or "none"
            raise self.error(unknown[0], f"unknown field (known here: {known})")


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


# converters: value -> typed value, or raise _Bad("expected ...")


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


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def conv(v: Any) -> str:
        if v not in options:
            raise _Bad("expected one of " + ", ".join(repr(o) for o in options))
        return str(v)

    return conv


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


BPS = _param(what="a number of basis points >= 0")
PROBABILITY = _param(high=Decimal(1), what="a probability between 0 and 1")
FRACTION = _param(high=Decimal(1), what="a fraction between 0 and 1")


# readers: one per table


def _scenario(t: _Table, default_name: str) -> Scenario:
    name = t.get("name", _string, default_name)
    description = t.get("description", lambda v: v if isinstance(v, str) else _fail("expected a string"), "")
    seed = t.get("seed", _integer(minimum=0), 0)
    duration = t.get("duration", _seconds(positive=True))
    start_ns = t.get("start", _start_ns, _start_ns(DEFAULT_START))
    reference_t = t.table("reference", required=True)
    reference, move_tables = _reference(reference_t)
    chains = tuple(_chain(n, ct) for n, ct in t.tables("chains"))
    chain_names = [c.name for c in chains]
    oracles = tuple(_oracle(n, ot, chain_names) for n, ot in t.tables("oracles"))
    venues = tuple(_venue(n, vt, oracles) for n, vt in t.tables("venues"))
    pools = tuple(_pool(n, pt, chain_names) for n, pt in t.tables("pools"))
    agents = _agents(t.table("agents"))
    t.finish()

    marks = [REFERENCE, *(v.name for v in venues), *(o.name for o in oracles)]
    seen: dict[str, str] = {}
    for kind, names in (("venue", [v.name for v in venues]), ("oracle", [o.name for o in oracles])):
        for n in names:
            if n == REFERENCE or n in seen:
                raise t.error(f"{kind}s.{n}", f"name clashes with {seen.get(n, 'the reference mark')}")
            seen[n] = f"a {kind} of that name"
    totals: dict[str, Decimal] = {}
    for move, mt in zip(reference.moves, move_tables):
        if move.target not in marks:
            raise mt.error("target", f"unknown target {move.target!r} (expected one of: {', '.join(marks)})")
        if move.at >= duration:
            raise mt.error("at", f"move starts at {move.at} s, after the scenario ends ({duration} s)")
        low = _CTX.add(totals.get(move.target, Decimal(0)), min(move.change, Decimal(0)))
        totals[move.target] = low
        if low <= -1:
            raise mt.error("change", f"moves of {move.target!r} would take its price to zero or below")
    return Scenario(name=name, file=t.file, seed=seed, duration=duration, start_ns=start_ns, reference=reference,
                    description=description, chains=chains, oracles=oracles, venues=venues, pools=pools,
                    agents=agents)


def _fail(message: str) -> Any:
    raise _Bad(message)


def _reference(t: _Table) -> tuple[ReferencePath, list[_Table]]:
    instrument = t.get("instrument", _string, "ETH-USD")
    start_price = t.get("start_price", _money())
    volatility = t.get("volatility", _param(what="an annualised volatility >= 0"), Decimal(0))
    tick = t.get("tick", _seconds(positive=True), 1.0)
    jump_intensity = t.get("jump_intensity", _param(what="a number of jumps per hour >= 0"), Decimal(0))
    jump_size = t.get("jump_size", _param(what="a log-jump standard deviation >= 0"), Decimal(0))
    move_tables = t.array("moves")
    moves = tuple(_move(mt) for mt in move_tables)
    t.finish()
    return ReferencePath(instrument, start_price, volatility, tick, jump_intensity, jump_size, moves), move_tables


def _move(t: _Table) -> Move:
    at = t.get("at", _seconds(positive=False))
    over = t.get("over", _seconds(positive=False), 0.0)
    change = t.get("change", _param(low=Decimal(-1), low_open=True, what="a fraction > -1 like \"-0.30\""))
    target = t.get("target", _string, REFERENCE)
    t.finish()
    return Move(at, over, change, target)


def _latency(t: _Table) -> Latency:
    base = t.get("base_ms", _param(what="a number of milliseconds >= 0"))
    jitter_ms = t.get("jitter_ms", _param(what="a number of milliseconds >= 0"), Decimal(0))
    jitter = t.get("jitter", _choice(JITTERS), "uniform")
    t.finish()
    return Latency(base, jitter_ms, jitter)


def _link(t: _Table) -> Link:
    if not t.data:
        t.finish()
        return ZERO_LINK
    out = _latency(t.table("outbound", required=True))
    inb = _latency(t.table("inbound", required=True))
    t.finish()
    return Link(out, inb)


def _chain(name: str, t: _Table) -> Chain:
    interval = t.get("block_interval", _seconds(positive=True))
    gas_limit = t.get("gas_limit", _integer(minimum=1))
    gas_target = t.get("gas_target", _integer(minimum=1), max(gas_limit // 2, 1))
    if gas_target > gas_limit:
        raise t.error("gas_target", f"gas target {gas_target} exceeds the gas limit {gas_limit}")
    base_fee = t.get("initial_base_fee", _integer(minimum=0))
    first_block = t.get("first_block", _integer(minimum=0), 1)
    util = t.get("background_utilization", FRACTION, Decimal("0.5"))
    bg_tip = t.get("background_max_priority_fee", _integer(minimum=0), 2_000_000_000)
    link = _link(t.table("latency"))
    t.finish()
    return Chain(name, interval, gas_limit, gas_target, base_fee, first_block, util, bg_tip, link)


def _oracle(name: str, t: _Table, chains: list[str]) -> Oracle:
    heartbeat = t.get("heartbeat", _seconds(positive=True))
    deviation = t.get("deviation_bps", _param(low=Decimal(0), low_open=True, what="a positive number of basis points"),
                      None)
    chain = t.get("chain", _string, None)
    if chain is not None and chain not in chains:
        raise t.error("chain", f"unknown chain {chain!r} (declared: {', '.join(chains) or 'none'})")
    decimals = t.get("decimals", _integer(minimum=0), 8)
    t.finish()
    return Oracle(name, heartbeat, deviation, chain, decimals)


def _venue(name: str, t: _Table, oracles: tuple[Oracle, ...] = ()) -> Venue:
    kind = t.get("kind", _choice(VENUE_KINDS))
    instrument = t.get("instrument", _string)
    base_decimals = t.get("base_decimals", _integer(minimum=0), 18)
    quote_decimals = t.get("quote_decimals", _integer(minimum=0), 6)
    tick_size = t.get("tick_size", _money(), Decimal("0.01"))
    lot_size = t.get("lot_size", _money(), Decimal("0.0001"))
    if -tick_size.as_tuple().exponent > quote_decimals:  # type: ignore[operator]
        raise t.error("tick_size", f"finer than the quote currency's {quote_decimals} decimals")
    if -lot_size.as_tuple().exponent > base_decimals:  # type: ignore[operator]
        raise t.error("lot_size", f"finer than the base currency's {base_decimals} decimals")
    levels = t.get("depth_levels", _integer(minimum=1))
    level_size = t.get("level_size", _money())
    if _CTX.remainder(level_size, lot_size):
        raise t.error("level_size", f"{level_size} is not a multiple of lot_size {lot_size}")
    spacing = t.get("level_spacing_bps", BPS, Decimal(1))
    spread = t.get("spread_bps", BPS)
    taker = t.get("taker_fee_bps", BPS)
    maker = t.get("maker_fee_bps", BPS, Decimal(0))
    reject = t.get("reject_probability", PROBABILITY, Decimal(0))
    rate_limit = t.get("rate_limit", _integer(minimum=1), 10)
    replenish = t.get("replenish", _seconds(positive=True), 1.0)
    link = _link(t.table("latency"))
    perp = _perp_fields(t, kind, oracles)
    t.finish()
    return Venue(name, kind, instrument, base_decimals, quote_decimals, tick_size, lot_size, levels, level_size,
                 spacing, spread, taker, maker, reject, rate_limit, replenish, link, **perp)


PERP_FIELDS = ("oracle", "maker_lag", "maker_follow", "mark_ema")


def _perp_fields(t: _Table, kind: str, oracles: tuple[Oracle, ...]) -> dict[str, Any]:
    """A perp venue's oracle and maker/mark parameters (an error on any other kind of venue)."""
    if kind != "perp":
        for key in PERP_FIELDS:
            if t.has(key):
                t.used.add(key)
                raise t.error(key, f"only for perp venues (this venue's kind is {kind!r})")
        return {}
    names = [o.name for o in oracles]
    oracle = t.get("oracle", _string, None)
    if oracle is not None and oracle not in names:
        raise t.error("oracle", f"unknown oracle {oracle!r} (declared: {', '.join(names) or 'none'})")
    if oracle is None:
        off_chain = [o.name for o in oracles if o.chain is None]
        if len(off_chain) > 1:
            raise t.error("oracle", f"required field missing (several off-chain oracles: {', '.join(off_chain)})")
        oracle = off_chain[0] if off_chain else None
    return dict(
        oracle=oracle,
        maker_lag=t.get("maker_lag", _seconds(positive=False), 0.0),
        maker_follow=t.get("maker_follow", _param(low=Decimal(0), low_open=True, high=Decimal(1),
                                                  what="a fraction in (0, 1]"), Decimal(1)),
        mark_ema=t.get("mark_ema", _seconds(positive=False), 150.0),
    )


def _pool(name: str, t: _Table, chains: list[str]) -> Pool:
    chain = t.get("chain", _string)
    if chain not in chains:
        raise t.error("chain", f"unknown chain {chain!r} (declared: {', '.join(chains) or 'none'})")
    protocol = t.get("protocol", _choice(POOL_PROTOCOLS))
    fee = t.get("fee_bps", BPS)
    liquidity = t.get("liquidity", _money())
    lag = t.get("arbitrage_lag", _seconds(positive=False), None)
    t.finish()
    return Pool(name, chain, protocol, fee, liquidity, lag)


def _agents(t: _Table) -> Agents:
    s = t.table("searchers")
    searchers = Searchers(
        count=s.get("count", _integer(minimum=0), 0),
        latency=_latency(s.table("latency")) if s.has("latency") else s.get("latency", _fail, Latency(Decimal(0))),
        bidding=s.get("bidding", _choice(BIDDING_RULES), "fixed"),
        priority_fee=s.get("priority_fee", _integer(minimum=0), 0),
        profit_share=s.get("profit_share", FRACTION, Decimal(0)),
    )
    if searchers.count and searchers.bidding == "profit-share" and not s.has("profit_share"):
        raise s.error("profit_share", "required field missing (bidding is \"profit-share\")")
    if searchers.count and searchers.bidding == "fixed" and not s.has("priority_fee"):
        raise s.error("priority_fee", "required field missing (bidding is \"fixed\")")
    s.finish()

    b = t.table("borrowers")
    borrowers = Borrowers(
        count=b.get("count", _integer(minimum=0), 0),
        collateral=b.get("collateral", _string, "WETH"),
        debt=b.get("debt", _string, "USDC"),
        health_factor_min=b.get("health_factor_min", _money(), Decimal("1.05")),
        health_factor_max=b.get("health_factor_max", _money(), Decimal("2")),
        collateral_min=b.get("collateral_min", _money(), Decimal("1000")),
        collateral_max=b.get("collateral_max", _money(), Decimal("1000000")),
    )
    if borrowers.count > MAX_BORROWERS:
        raise b.error("count", f"at most {MAX_BORROWERS} borrowers (each opens a real position on chain), "
                               f"got {borrowers.count}")
    if borrowers.collateral != "WETH":
        raise b.error("collateral", f"the simulated Aave market lends against WETH only, got {borrowers.collateral!r}")
    if borrowers.debt != "USDC":
        raise b.error("debt", f"the simulated Aave market's borrowers owe USDC only, got {borrowers.debt!r}")
    if borrowers.count and borrowers.health_factor_min < OPENABLE_HEALTH_FACTOR:
        raise b.error("health_factor_min", f"{borrowers.health_factor_min} is below the lowest health factor a "
                                           f"borrow can open at on the simulated market (WETH liquidation threshold "
                                           f"/ LTV = 82.5% / 80% = {OPENABLE_HEALTH_FACTOR:.4f}); the price moves "
                                           f"of [reference] take positions lower")
    if borrowers.health_factor_max < borrowers.health_factor_min:
        raise b.error("health_factor_max", f"below health_factor_min ({borrowers.health_factor_min})")
    if borrowers.collateral_max < borrowers.collateral_min:
        raise b.error("collateral_max", f"below collateral_min ({borrowers.collateral_min})")
    b.finish()

    g = t.table("background")
    background = Background(
        count=g.get("count", _integer(minimum=0), 0),
        trades_per_minute=g.get("trades_per_minute", _param(what="a rate >= 0"), Decimal(0)),
        trade_size=g.get("trade_size", _money(positive=False), Decimal(0)),
        arbitrage_lag=g.get("arbitrage_lag", _seconds(positive=False), 0.0),
    )
    g.finish()
    t.finish()
    return Agents(searchers, borrowers, background)
