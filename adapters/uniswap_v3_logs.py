"""Uniswap V3 pool logs (raw CSV) -> V3Swapped / V3Minted / V3Burned / V3Collected events.

The CSV is the raw form demeter-fetch downloads: ``block_number, block_timestamp (UTC),
transaction_hash, transaction_index, log_index, topics (a Python list repr of hex strings),
data (hex)``, one file per pool, no address column. Each row is decoded here from its topics and
data by the shared decoder, ``adapters.evm_logs`` over the pool's ABI (the CSV's own interpretation
is not trusted); a row that cannot be decoded, or
whose values are out of range (a timestamp outside 2015..2100, a block beyond 10^10, time running
backwards while the block rises, two times for one block), becomes an ``InputRejected`` event
naming the row (``"<file name>:row <n>"``, n = 1 for the first row after the header, i.e. line n+1
of the file), what was wrong, and the raw line. The reader never raises on bad data.

The proof of a day against an independent decode is in :mod:`adapters.uniswap_v3_check`.
"""
from __future__ import annotations

import calendar
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from tapedeck.adapters.evm_abis import UNISWAP_V3_POOL
from tapedeck.adapters.evm_logs import EventDecoder, LogDecodeError
from tapedeck.adapters.csv_header import (MAX_BLOCK, MAX_LOG_INDEX, MAX_TS, MIN_TS, LogOrder, RowError, read_header,
                                         rows, uint)
from tapedeck.domain import events as ev
from tapedeck.domain import uniswap_v3 as v3

SOURCE = "uniswap-v3-logs"


# The one shared decoder (adapters/evm_logs.py) over the pool's ABI: the four modelled events,
# and the pool's other events only to name them in a rejection.
_MODELLED = EventDecoder(UNISWAP_V3_POOL, only=("Swap", "Mint", "Burn", "Collect"))
_ALL = EventDecoder(UNISWAP_V3_POOL)
SWAP, MINT, BURN, COLLECT = ("0x" + _MODELLED.topic0(n).hex() for n in ("Swap", "Mint", "Burn", "Collect"))

REQUIRED_COLUMNS = ("block_number", "block_timestamp", "transaction_hash", "log_index", "topics", "data")
_ADDRESS_IN_NAME = re.compile(r"(?<![0-9a-fA-F])0x[0-9a-fA-F]{40}(?![0-9a-fA-F])")
_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
# A Python list repr of 0..4 quoted 32-byte hex strings: what demeter-fetch writes, parsed strictly
# (never evaluated).
_TOPIC = r"""\s*(?:'(?:0x[0-9a-fA-F]{64})'|"(?:0x[0-9a-fA-F]{64})")\s*"""
_TOPICS = re.compile(rf"\[(?:{_TOPIC}(?:,{_TOPIC}){{0,3}},?)?\s*\]")
_TOPIC_VALUE = re.compile(r"0x[0-9a-fA-F]{64}")


def pool_from_filename(path: str | Path) -> str | None:
    m = _ADDRESS_IN_NAME.search(Path(path).name)
    return m.group(0).lower() if m else None


def parse_utc_ns(text: str) -> int:
    """``2024-01-05 00:00:23`` (UTC unless an offset is given) -> integer ns since the epoch, which
    must fall in 2015..2100 (``RowError`` otherwise)."""
    t = text.strip()
    if len(t) > 40:
        raise RowError(f"bad block_timestamp {text[:80]!r}")
    try:
        dt = datetime.fromisoformat(t)
        if dt.tzinfo is not None:
            dt = dt.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise RowError(f"bad block_timestamp {text[:80]!r}") from None
    ns = calendar.timegm(dt.timetuple()) * 1_000_000_000 + dt.microsecond * 1000
    if not MIN_TS <= ns < MAX_TS:
        raise RowError(f"block_timestamp {t!r} is outside 2015..2100")
    return ns


def _topics(text: str) -> list[str]:
    t = text.strip()
    if len(t) > 400 or not _TOPICS.fullmatch(t):
        raise RowError(f"topics is not a list of 0..4 quoted 32-byte hex strings: {text[:80]!r}")
    return [v.lower() for v in _TOPIC_VALUE.findall(t)]


def _data(text: str) -> bytes:
    t = text.strip()
    if len(t) > 2 + 2 * 32 * 8 or not _HEX.fullmatch(t):  # no pool event has more than 8 words
        raise RowError(f"data is not 0x-prefixed hex of whole bytes (length {len(t)})")
    return bytes.fromhex(t[2:])


def decode_log(topics: list[str], data: bytes) -> tuple[str, dict]:
    """Decode one pool log -> (event name, fields). Raises RowError naming what is wrong."""
    if topics and not _MODELLED.knows(topics[0]) and _ALL.knows(topics[0]):
        raise RowError(f"{_ALL.events[bytes.fromhex(topics[0][2:])].name} log (topic0 {topics[0]}) "
                       f"is not modelled as an input")
    try:
        log = _MODELLED.decode(topics, data)
    except LogDecodeError as e:
        raise RowError(str(e)) from None
    name, a = log.event, log.args
    if name == "Swap":
        if not v3.MIN_SQRT_RATIO <= a["sqrtPriceX96"] < v3.MAX_SQRT_RATIO:
            raise RowError(f"Swap sqrtPriceX96 {a['sqrtPriceX96']} is outside the pool's price range")
        if not v3.MIN_TICK <= a["tick"] <= v3.MAX_TICK:
            raise RowError(f"Swap tick {a['tick']} is outside [MIN_TICK, MAX_TICK]")
        return name, dict(sender=a["sender"], recipient=a["recipient"], amount0=a["amount0"], amount1=a["amount1"],
                          sqrt_price_x96=a["sqrtPriceX96"], liquidity=a["liquidity"], tick=a["tick"])
    tick_lower, tick_upper = a["tickLower"], a["tickUpper"]
    if not v3.MIN_TICK <= tick_lower < tick_upper <= v3.MAX_TICK:
        raise RowError(f"{name} with impossible tick range [{tick_lower}, {tick_upper}]")
    common = dict(owner=a["owner"], tick_lower=tick_lower, tick_upper=tick_upper)
    if name == "Mint":
        return name, dict(common, sender=a["sender"], amount=a["amount"], amount0=a["amount0"], amount1=a["amount1"])
    if name == "Burn":
        return name, dict(common, amount=a["amount"], amount0=a["amount0"], amount1=a["amount1"])
    return name, dict(common, recipient=a["recipient"], amount0=a["amount0"], amount1=a["amount1"])


_EVENT_CLASSES = {"Swap": ev.V3Swapped, "Mint": ev.V3Minted, "Burn": ev.V3Burned, "Collect": ev.V3Collected}


def read_v3_logs(path: str | Path, pool: str | None = None) -> Iterator[ev.Event]:
    """Events of one pool's raw-log CSV, in file order; bad rows become ``InputRejected``.

    The pool address comes from the file name when it holds one (``0x`` + 40 hex), else from
    ``pool``; a ``pool`` that disagrees with the file name, or no address at all, is a caller
    error (``ValueError``, raised here, before any row is read). Rows must be in (block, log
    index) order; a row that is not after the previous good one is rejected as a duplicate or
    out of order. ``InputRejected.ts`` is the row's own timestamp if it parses, else the last good one.
    """
    path = Path(path)
    from_name = pool_from_filename(path)
    if pool is not None and not re.fullmatch(r"0x[0-9a-fA-F]{40}", pool):
        raise ValueError(f"pool {pool!r} is not an address")
    if from_name and pool and pool.lower() != from_name:
        raise ValueError(f"pool {pool} disagrees with the address in the file name {path.name} ({from_name})")
    address = from_name or (pool.lower() if pool else None)
    if address is None:
        raise ValueError(f"no pool address: {path.name} holds none and no pool was given")
    return _read(path, address)


def _read(path: Path, pool: str) -> Iterator[ev.Event]:
    with open(path, "rb") as f:
        yield from read_v3_stream(f, path.name, pool)


def log_rows(f: IO[bytes], name: str, required: tuple[str, ...], source: str,
             decode: Callable[[list[str], bytes], Any]) -> Iterator[Any]:
    """The rows of a raw-log CSV (demeter-fetch's layout) that pass the shared checks, as
    ``(ts, block, tx, log_index, decode(topics, data))``; a bad header and every other row an
    ``InputRejected`` (``LogOrder`` keeps (block, log index) rising and one time per block)."""
    col = read_header(f, name, required, source)
    if isinstance(col, ev.InputRejected):
        yield col
        return
    order = LogOrder()
    for n, raw, fields in rows(f, col["__width__"]):
        order.begin()
        try:
            if isinstance(fields, RowError):
                raise fields
            row_ts = order.stamp(parse_utc_ns(fields[col["block_timestamp"]]))
            block = uint("block_number", fields[col["block_number"]], MAX_BLOCK)
            log_index = uint("log_index", fields[col["log_index"]], MAX_LOG_INDEX)
            tx = fields[col["transaction_hash"]].strip()
            if not _HEX32.fullmatch(tx):
                raise RowError(f"bad transaction_hash {tx[:80]!r}")
            decoded = decode(_topics(fields[col["topics"]]), _data(fields[col["data"]]))
            order.check(block, log_index, row_ts)
        except RowError as exc:
            yield ev.InputRejected(ts=order.reject_ts, source=source, origin=f"{name}:row {n}", reason=str(exc),
                                   raw=raw)
            continue
        order.accept(block, log_index, row_ts)
        yield row_ts, block, tx.lower(), log_index, decoded


def read_v3_stream(f: IO[bytes], name: str, pool: str) -> Iterator[ev.Event]:
    """:func:`read_v3_logs` over an open binary stream (``name`` labels the rows; ``pool`` lowercase)."""
    for item in log_rows(f, name, REQUIRED_COLUMNS, SOURCE, decode_log):
        if isinstance(item, ev.InputRejected):
            yield item
            continue
        row_ts, block, tx, log_index, (kind, values) = item
        yield _EVENT_CLASSES[kind](ts=row_ts, source=SOURCE, pool=pool, block=block, tx=tx,
                                   log_index=log_index, **values)


# ----------------------------------------------------------------------------- the pool's tick table

# What a raw-log recording of one day cannot give (said by the importer when no snapshot is given):
# sizing across ticks needs every initialized tick's liquidityNet at the first block, the sum of
# every Mint and Burn since the pool was created; a day's logs hold only that day's.
LACKS_TICKS = ("the recording holds one day of the pool's logs, not its tick table at the first block (every "
               "initialized tick's liquidityGross/liquidityNet, the sum of all Mints and Burns since the pool was "
               "created; the Swaps give only the in-range liquidity): no V3PoolSnapshot is recorded, so "
               "cross_pool_arb sizes inside the current tick range; give --snapshot FILE (the pool read at the "
               "block before the first log: slot0, liquidity() and ticks(i) of every initialized tick) to size "
               "across ticks")


def read_v3_snapshot(path: str | Path, pool: str, tick_spacing: int) -> ev.V3PoolSnapshot | ev.InputRejected:
    """A pool snapshot file: JSON ``{"pool", "block", "sqrt_price_x96", "tick", "liquidity",
    "tick_spacing", "ticks": [[tick, liquidity_gross, liquidity_net], ...]}`` (integers, or decimal
    strings for the big ones), the pool as read at ``block`` (``slot0``, ``liquidity()`` and
    ``ticks(i)`` of every initialized tick). Its own consistency is checked (the pool and tick
    spacing the import names, the price inside its tick, ticks on the spacing in order, gross > 0
    and ``|net| <= gross``, the nets summing to 0 as positions' do, the in-range liquidity equal to
    the nets at and below the tick); a file that fails any of it is an ``InputRejected`` naming
    what, never a state. ``ts`` is 0 here: ``with_snapshot`` places it before the first log."""
    import json

    name = Path(path).name
    origin = f"{name}:snapshot"

    def rejected(reason: str) -> ev.InputRejected:
        return ev.InputRejected(ts=0, source=SOURCE, origin=origin, reason=reason, raw="")

    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return rejected(f"cannot read the snapshot: {e}")
    if not isinstance(d, dict):
        return rejected("the snapshot is not a JSON object")

    def integer(key: str, value: Any = None) -> int:
        v = d.get(key) if value is None else value
        if isinstance(v, bool) or not isinstance(v, (int, str)) or (isinstance(v, str) and not re.fullmatch(r"-?\d{1,80}", v)):
            raise RowError(f"{key} must be an integer, got {v!r}")
        return int(v)

    try:
        if str(d.get("pool", "")).lower() != pool:
            raise RowError(f"the snapshot is of pool {d.get('pool')!r}, not {pool}")
        block, sp, tick = integer("block"), integer("sqrt_price_x96"), integer("tick")
        liquidity, spacing = integer("liquidity"), integer("tick_spacing")
        if spacing != tick_spacing:
            raise RowError(f"tick_spacing {spacing} is not the pool's {tick_spacing}")
        if not 0 <= block <= MAX_BLOCK:
            raise RowError(f"block {block} is out of range")
        if not v3.MIN_SQRT_RATIO <= sp < v3.MAX_SQRT_RATIO or v3.get_tick_at_sqrt_ratio(sp) != tick:
            raise RowError(f"sqrt_price_x96 {sp} is not a price of tick {tick}")
        raw_ticks = d.get("ticks")
        if not isinstance(raw_ticks, list):
            raise RowError("ticks must be a list of [tick, liquidity_gross, liquidity_net]")
        ticks: list[tuple[int, int, int]] = []
        for row in raw_ticks:
            if not isinstance(row, list) or len(row) != 3:
                raise RowError(f"a tick must be [tick, liquidity_gross, liquidity_net], got {row!r}")
            t, gross, net = (integer("tick", row[0]), integer("liquidity_gross", row[1]),
                             integer("liquidity_net", row[2]))
            if t % spacing or not v3.MIN_TICK <= t <= v3.MAX_TICK:
                raise RowError(f"tick {t} is not on the spacing {spacing} inside the price range")
            if ticks and t <= ticks[-1][0]:
                raise RowError(f"ticks are not in rising order at {t}")
            if not 0 < gross <= v3.MAX_UINT128 or abs(net) > gross:
                raise RowError(f"tick {t}: liquidity gross {gross} / net {net} are not a pool's")
            ticks.append((t, gross, net))
        if sum(n for _, _, n in ticks):
            raise RowError("the ticks' liquidity_net do not sum to 0 (every position adds at its lower tick what "
                           "it takes at its upper)")
        at = sum(n for t, _, n in ticks if t <= tick)
        if at != liquidity:
            raise RowError(f"liquidity {liquidity} is not the ticks' net at and below tick {tick} ({at})")
    except RowError as e:
        return rejected(str(e))
    return ev.V3PoolSnapshot(ts=0, source=SOURCE, pool=pool, block=block, sqrt_price_x96=sp, tick=tick,
                             liquidity=liquidity, tick_spacing=spacing, ticks=tuple(ticks))


def check_snapshot(snapshot: ev.V3PoolSnapshot, events: Iterator[ev.Event] | list[ev.Event]) -> str | None:
    """Whether the day's logs agree with the snapshot (None) or the first place they do not: the
    snapshot's block is before every log, and at every Swap the in-range liquidity the log reports
    equals the table's (the nets of the initialized ticks at and below its tick, the table kept
    by the day's Mints and Burns as the pool keeps it). A table with a tick missing, a net wrong or
    from another block fails at the first Swap that crosses the difference."""
    import bisect

    net: dict[int, int] = {t: n for t, _, n in snapshot.ticks}
    keys: list[int] = sorted(net)
    prefix: list[int] = []

    def rebuild() -> None:
        keys[:] = sorted(t for t, n in net.items() if n)
        acc = 0
        prefix[:] = []
        for t in keys:
            acc += net[t]
            prefix.append(acc)

    rebuild()
    for e in events:
        if getattr(e, "pool", None) != snapshot.pool:
            continue
        if type(e) in (ev.V3Swapped, ev.V3Minted, ev.V3Burned, ev.V3Collected) and e.block <= snapshot.block:  # type: ignore[attr-defined]
            return f"the snapshot is of block {snapshot.block}, not before the log at block {e.block}"  # type: ignore[attr-defined]
        if type(e) in (ev.V3Minted, ev.V3Burned):
            delta = e.amount if type(e) is ev.V3Minted else -e.amount  # type: ignore[attr-defined]
            net[e.tick_lower] = net.get(e.tick_lower, 0) + delta  # type: ignore[attr-defined]
            net[e.tick_upper] = net.get(e.tick_upper, 0) - delta  # type: ignore[attr-defined]
            rebuild()
        elif type(e) is ev.V3Swapped:
            i = bisect.bisect_right(keys, e.tick)  # type: ignore[attr-defined]
            have = prefix[i - 1] if i else 0
            if have != e.liquidity:  # type: ignore[attr-defined]
                return (f"the Swap at block {e.block} log {e.log_index} reports in-range liquidity "  # type: ignore[attr-defined]
                        f"{e.liquidity} at tick {e.tick}; the snapshot's table gives {have}")  # type: ignore[attr-defined]
    return None


def with_snapshot(events: list[ev.Event], path: str | Path, pool: str, tick_spacing: int) -> list[ev.Event]:
    """The day's events with the snapshot file's ``V3PoolSnapshot`` first (at the first log's time,
    its block before it), when the file reads and every Swap of the day agrees with it
    (``check_snapshot``); else with an ``InputRejected`` naming the file and why, and no state."""
    snap = read_v3_snapshot(path, pool, tick_spacing)
    logs = [e for e in events if type(e) is not ev.InputRejected]
    first_ts = logs[0].ts if logs else 0
    if isinstance(snap, ev.V3PoolSnapshot):
        why = check_snapshot(snap, logs)
        if why is None:
            return [msgspec_replace(snap, ts=first_ts)] + events
        snap = ev.InputRejected(ts=0, source=SOURCE, origin=f"{Path(path).name}:snapshot",
                                reason=f"the day's logs disagree with the snapshot: {why}", raw="")
    return [msgspec_replace(snap, ts=first_ts)] + events


def msgspec_replace(e: ev.Event, **kw: Any) -> ev.Event:
    import msgspec

    return msgspec.structs.replace(e, **kw)
