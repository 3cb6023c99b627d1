"""The simulation kernel: the clock, the bus, latency, timers, the Decimal context and seeded draws.

Everything the world's processes (``sim.processes``) and the mock venues (``sim.venues``) build on,
and nothing that knows about either, so neither imports the other to get at these (``sim.world``
is what wires them together).

SimPy is the clock: simulated time inside SimPy is **seconds as a float**, counted from the
scenario's start; everything published carries ``ts`` in **integer nanoseconds since the epoch**
(``SimClock``), computed from integers, never read back from the float. Each process owns a
``random.Random`` derived from the scenario seed and the process's name only
(``sim.scenario.derive_rng(seed, name)``), so adding a process or a draw in one process never
shifts another's draws. Nothing here reads the wall clock or the global ``random``.

* ``Bus``: small frozen messages, synchronous callbacks in subscription order; every message is
  also kept in ``Bus.messages`` in publish order.
* ``LatencyModel``: one-way delays per endpoint and direction (base + seeded jitter), FIFO per
  channel, and delivery of a call at the arrival time.
* ``TimerService``: named one-shot and periodic timers (``TimerDue``; the core's ``TimerFired``).
* ``CTX``, ``dsum``, ``to_ns``, ``normal``, ``exponential``, ``ln``: Decimal arithmetic in a pinned
  context, whatever the caller's global context is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal
from typing import Any, Callable, Iterable, Mapping

import simpy

from tapedeck.sim.scenario import Latency, Link, derive_rng

NS = 1_000_000_000
# Every Decimal computation here runs in this context, whatever the caller's global context is.
CTX = Context(prec=34, rounding=ROUND_HALF_EVEN)


def dsum(values: Iterable[Decimal]) -> Decimal:
    """Sum in ``CTX`` (the builtin ``sum`` would use the caller's global context)."""
    total = Decimal(0)
    for v in values:
        total = CTX.add(total, v)
    return total


def to_ns(seconds: float | Decimal) -> int:
    """Seconds (as written in a scenario) to integer nanoseconds, exactly for decimal inputs."""
    d = seconds if isinstance(seconds, Decimal) else Decimal(repr(float(seconds)))
    return int(CTX.multiply(d, Decimal(NS)).to_integral_value(ROUND_HALF_EVEN))


def normal(rng: Any) -> Decimal:
    """A standard normal draw (Irwin-Hall: 12 uniforms - 6), in Decimal: the same on every platform."""
    total = Decimal(0)
    for _ in range(12):
        total = CTX.add(total, Decimal(rng.random()))
    return CTX.subtract(total, Decimal(6))


def exponential(rng: Any, mean: Decimal) -> Decimal:
    """An exponential draw with the given mean, in Decimal."""
    return _exponential_of(rng.random(), mean)


def _exponential_of(r: float, mean: Decimal) -> Decimal:
    """``exponential`` of the uniform draw ``r``."""
    u = CTX.subtract(Decimal(1), Decimal(r))  # in (0, 1]
    return CTX.multiply(CTX.minus(ln(u)), mean)


# ``floor_exponential_ns``: the float estimate's error is below 1e-15 of its terms (log1p within a few
# ulps, a product and a sum rounded once each); this margin is a hundred times that
_FLOAT_MARGIN = 1e-13


def floor_exponential_ns(rng: Any, base: Decimal, mean: Decimal) -> int:
    """``floor(base + exponential(rng, mean))`` with the Decimal arithmetic of ``CTX`` (what
    ``LatencyModel.sample_ns`` returns), one draw of ``rng``. Computed in floats when the floor is the
    same at both ends of a margin far wider than the floats' error (the Decimal result is within
    1e-30 of the real value, the floats within 1e-15 of it): every draw but those whose sum is within
    the margin of an integer (~1 in 200,000 at 25 ms, 1 in 2,500 at 800 ms) or not finite, which the
    Decimal arithmetic decides. ~2,600
    latency draws a revm eth-crash run, each a 34-digit Decimal log (~3% of the run). A test holds
    the two equal on many draws, and on sums at an integer."""
    r = rng.random()
    b, m = float(base), float(mean)
    jitter = -m * math.log1p(-r)  # log1p(-r) = ln(1 - r), r in [0, 1)
    total = b + jitter
    margin = _FLOAT_MARGIN * (abs(b) + abs(jitter) + 1.0)
    if math.isfinite(total) and math.floor(total - margin) == math.floor(total + margin):
        return math.floor(total)
    return int(CTX.add(base, _exponential_of(r, mean)).to_integral_value(ROUND_FLOOR))


# ``ln``: fixed point with _BITS fraction bits; the table of ln(1 + j/64) and ln 2 is made on first use
_BITS = 256
_ONE = 1 << _BITS
_SLACK = 1 << 12  # a bound on the fixed-point result's error, in units of 2**-_BITS (it is < 2**8)
_FIVES = 5 ** _BITS
_TABLE: list[int] = []


def _table() -> list[int]:
    if not _TABLE:
        wide = Context(prec=100, rounding=ROUND_HALF_EVEN)  # 100 digits: far below the error bound
        scale = Decimal(_ONE)
        for j in range(65):  # ln(1 + j/64) for j < 64, then ln 2
            value = wide.ln(wide.add(Decimal(1), wide.divide(Decimal(j), Decimal(64)))) if j < 64 else wide.ln(Decimal(2))
            _TABLE.append(int(wide.multiply(value, scale).to_integral_value(ROUND_FLOOR)))
    return _TABLE


def ln(u: Decimal) -> Decimal:
    """``CTX.ln(u)``, the same Decimal (the correctly rounded natural log at ``CTX``'s 34 digits), a few
    times faster for a finite ``u`` in (0, 1] (every exponential draw takes one: ~3,200 an eth-crash
    run, ~0.1-0.2 s of a revm run at 40-100 us each). Hand-written (no library here gives a correctly
    rounded Decimal log faster): ln u = k ln 2 + ln(1 + j/64) + 2 atanh((t - 1)/(t + 1)) in integers
    with 256 fraction bits (t = u / (2**k (1 + j/64)) in [1, 1 + 1/64]: ~18 series terms), which is
    within ``_SLACK`` units of the true value; when both ends of that interval round (half even) to the
    same 34 digits, that is the correctly rounded result, else (a value that close to a rounding
    boundary, u = 1, any other input) ``CTX.ln`` decides. A test holds the two equal digit for digit
    and exponent for exponent."""
    if not (u.is_finite() and 0 < u <= 1) or CTX.prec != _DIGITS or CTX.rounding != ROUND_HALF_EVEN:
        return CTX.ln(u)
    num, den = u.as_integer_ratio()
    e = den.bit_length() - num.bit_length() + 1
    if e > 1000:  # k ln 2's error would pass the slack
        return CTX.ln(u)
    x = (num << (_BITS + e)) // den  # u * 2**e in [1, 4), fixed point (floor): 256 bits of u whatever its size
    top = x.bit_length() - 1 - _BITS  # 0 or 1
    m, k = x >> top, top - e  # u / 2**k in [1, 2), floor (within one unit)
    j = (m - _ONE) >> (_BITS - 6)
    table = _TABLE or _table()
    t = (m << _BITS) // (_ONE + (j << (_BITS - 6)))  # m / (1 + j/64) in [1, 1 + 1/64]
    z = ((t - _ONE) << _BITS) // (t + _ONE)
    z2, power, total, n = (z * z) >> _BITS, z, z, 3
    while power:
        power = (power * z2) >> _BITS
        total += power // n
        n += 2
    y = -(k * table[64] + table[j] + 2 * total)  # -ln u > 0, within _SLACK units
    low, high = y - _SLACK, y + _SLACK
    if low <= 0:
        return CTX.ln(u)
    shift = _DIGITS - 1 - ((high.bit_length() - _BITS) * 30103) // 100000  # 10**shift * high / 2**_BITS ~ 34 digits
    hi, q = _rounded(high, shift)
    if hi >= _HIGH:  # the estimate of the digits is one off either way at most
        shift -= 1
        hi, q = _rounded(high, shift)
    elif hi < _LOW:
        shift += 1
        hi, q = _rounded(high, shift)
    lo, q_low = _rounded(low, shift)
    if not (_LOW <= lo <= hi < _HIGH) or q != q_low:  # not within one decade, or they round apart: CTX decides
        return CTX.ln(u)
    if q == _HIGH:  # rounded up to the next power of ten: 34 digits of it
        q, shift = _LOW, shift - 1
    return Decimal(f"-{q}E{-shift}")  # ln u < 0


def _rounded(v: int, shift: int) -> tuple[int, int]:
    """``v / 2**_BITS * 10**shift`` truncated and rounded half even, to integers."""
    if shift >= 0:
        d = _ONE
        q, r = divmod(v * 10**shift, d)
    else:
        d = _ONE * 10**-shift
        q, r = divmod(v, d)
    return q, q + (2 * r > d or (2 * r == d and q & 1))


_DIGITS = 34  # CTX's precision, which the fast path of ``ln`` rounds to
_LOW, _HIGH = 10 ** (_DIGITS - 1), 10 ** _DIGITS


class SimClock:
    """Simulated time as epoch nanoseconds: ``start_ns`` is simulated t = 0."""

    def __init__(self, env: simpy.Environment, start_ns: int = 0):
        self.env, self.start_ns = env, start_ns

    @property
    def now_ns(self) -> int:
        return self.start_ns + round(self.env.now * NS)

    def seconds_until(self, ts_ns: int) -> float:
        return max(0.0, (ts_ns - self.start_ns) / NS - self.env.now)

    def timeout_until(self, ts_ns: int, value: Any = None) -> simpy.Timeout:
        return self.env.timeout(self.seconds_until(ts_ns), value)

    def call_at(self, ts_ns: int, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` when simulated time reaches ``ts_ns`` (no generator needed)."""
        event = self.timeout_until(ts_ns)
        event.callbacks.append(lambda _e: fn(*args))


# ----------------------------------------------------------------------------- the bus


@dataclass(frozen=True)
class TimerDue:
    """A named timer of ``TimerService`` reached its due time ``ts``."""

    ts: int
    name: str


class Bus:
    """In-process publish/subscribe; synchronous and ordered, so a run is reproducible."""

    def __init__(self, *, record: bool = True):
        self.record = record
        self.messages: list[Any] = []
        self._subscribers: list[tuple[tuple[type, ...], Callable[[Any], bool] | None, Callable[[Any], None]]] = []
        # per message class, its subscribers in subscription order (whether a class matches a
        # subscription's types depends on the class alone); cleared by every subscribe
        self._by_type: dict[type, list[tuple[Callable[[Any], bool] | None, Callable[[Any], None]]]] = {}

    def subscribe(self, callback: Callable[[Any], None], *types: type,
                  where: Callable[[Any], bool] | None = None) -> None:
        """Call ``callback(msg)`` for each message of one of ``types`` (all if none) that passes ``where``."""
        self._subscribers.append((types, where, callback))
        self._by_type = {}

    def publish(self, message: Any) -> None:
        if self.record:
            self.messages.append(message)
        kind = type(message)
        subscribers = self._by_type.get(kind)
        if subscribers is None:
            subscribers = self._by_type[kind] = [(where, callback) for types, where, callback in self._subscribers
                                                 if not types or issubclass(kind, types)]
        for where, callback in subscribers:  # (a subscribe meanwhile makes a new list: this one stays)
            if where is None or where(message):
                callback(message)

    def of(self, *types: type) -> list[Any]:
        return [m for m in self.messages if isinstance(m, types)]

    def store(self, env: simpy.Environment, *types: type) -> simpy.Store:
        """A SimPy store that receives every matching message (for processes that ``yield store.get()``)."""
        s = simpy.Store(env)
        self.subscribe(s.put, *types)
        return s


# ----------------------------------------------------------------------------- latency


class LatencyModel:
    """One-way delays per endpoint (a venue or chain name) and direction (``outbound``: bot ->
    endpoint, ``inbound``: endpoint -> bot): ``base_ms`` plus a jitter drawn from the channel's own
    generator (``derive_rng(seed, "latency:{endpoint}:{direction}")``). Channels are FIFO by
    default, like the TCP/WebSocket connections they stand for: a message never overtakes the
    previous one on the same channel."""

    DIRECTIONS = ("outbound", "inbound")

    def __init__(self, env: simpy.Environment, clock: SimClock, seed: int | str, links: Mapping[str, Link], *,
                 fifo: bool = True):
        self.env, self.clock, self.seed, self.fifo = env, clock, seed, fifo
        self.links = dict(links)
        self._rngs: dict[tuple[str, str], Any] = {}
        self._last: dict[tuple[str, str], int] = {}
        self._scaled: dict[tuple[str, str], tuple[Latency, Decimal, Decimal]] = {}

    def _spec(self, endpoint: str, direction: str) -> Latency:
        if direction not in self.DIRECTIONS:
            raise ValueError(f"direction must be 'outbound' or 'inbound', got {direction!r}")
        try:
            link = self.links[endpoint]
        except KeyError:
            raise KeyError(f"no latency for endpoint {endpoint!r} (known: {', '.join(self.links)})") from None
        return link.outbound if direction == "outbound" else link.inbound

    def sample_ns(self, endpoint: str, direction: str) -> int:
        spec = self._spec(endpoint, direction)
        key = (endpoint, direction)
        rng = self._rngs.get(key)
        if rng is None:
            rng = self._rngs[key] = derive_rng(self.seed, f"latency:{endpoint}:{direction}")
        scaled = self._scaled.get(key)
        if scaled is None or scaled[0] is not spec:  # the link's base and jitter in ns, once per spec
            scaled = self._scaled[key] = (spec, CTX.multiply(spec.base_ms, Decimal(1_000_000)),
                                          CTX.multiply(spec.jitter_ms, Decimal(1_000_000)))
        _, base, mean = scaled
        if spec.jitter == "exponential":
            return floor_exponential_ns(rng, base, mean)
        else:
            jitter = CTX.multiply(Decimal(rng.random()), mean)
        return int(CTX.add(base, jitter).to_integral_value(ROUND_FLOOR))

    def arrival_ns(self, endpoint: str, direction: str, sent_ns: int | None = None) -> int:
        sent = self.clock.now_ns if sent_ns is None else sent_ns
        arrival = sent + self.sample_ns(endpoint, direction)
        if self.fifo:
            key = (endpoint, direction)
            arrival = max(arrival, self._last.get(key, arrival))
            self._last[key] = arrival
        return arrival

    def send(self, endpoint: str, direction: str, fn: Callable[..., Any], *args: Any) -> int:
        """Call ``fn(arrival_ns, *args)`` when a message sent now arrives; returns the arrival time."""
        arrival = self.arrival_ns(endpoint, direction)
        self.clock.call_at(arrival, fn, arrival, *args)
        return arrival


# ----------------------------------------------------------------------------- timers


class TimerService:
    """Named timers, fired as ``TimerDue`` at exactly their due time (a time already past fires
    now). Setting a name again replaces its timer; ``cancel`` stops it. Periodic timers fire at
    ``first + k * interval``."""

    def __init__(self, env: simpy.Environment, clock: SimClock, bus: Bus):
        self.env, self.clock, self.bus = env, clock, bus
        self._armed: dict[str, int] = {}  # name -> generation of its live timer
        self._generations = 0

    def _arm(self, name: str) -> int:
        self._generations += 1
        self._armed[name] = self._generations
        return self._generations

    def at(self, name: str, ts_ns: int) -> None:
        due = max(ts_ns, self.clock.now_ns)
        self.clock.call_at(due, self._fire, name, self._arm(name), due, 0)

    def after(self, name: str, delay_ns: int) -> None:
        self.at(name, self.clock.now_ns + delay_ns)

    def every(self, name: str, interval_ns: int, first_ns: int | None = None) -> None:
        if interval_ns <= 0:
            raise ValueError(f"timer {name!r}: interval must be positive, got {interval_ns}")
        due = self.clock.now_ns + interval_ns if first_ns is None else max(first_ns, self.clock.now_ns)
        self.clock.call_at(due, self._fire, name, self._arm(name), due, interval_ns)

    def cancel(self, name: str) -> bool:
        """Stop a timer; True if one was armed under that name."""
        return self._armed.pop(name, None) is not None

    @property
    def armed(self) -> tuple[str, ...]:
        return tuple(self._armed)

    def _fire(self, name: str, generation: int, due: int, interval: int) -> None:
        if self._armed.get(name) != generation:
            return  # replaced or cancelled
        if not interval:
            del self._armed[name]
        self.bus.publish(TimerDue(due, name))
        if interval and self._armed.get(name) == generation:
            self.clock.call_at(due + interval, self._fire, name, generation, due + interval, interval)
