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
