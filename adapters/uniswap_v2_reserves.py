"""Uniswap V2 per-block reserves (CSV) -> V2ReservesSynced events.

The CSV is ``blockNumber, reserve0, reserve1`` (numbers may be quoted), the pair's
``getReserves()`` at the end of each block. It has no timestamps, so event time comes from a
``block_ts`` function (see :func:`block_time_estimator`; the importer re-times these events from
every block time the log knows, so the order of imports does not matter). The file holds no pool
address either: the caller names the pair (from the file name or the user's ``--pool``). An event
is emitted for the first row read and then only when the reserves change. Bad rows (not UTF-8,
wrong column count, a negative, non-decimal or oversized number, blocks not increasing) become
``InputRejected`` events (``"<file name>:row <n>"``, n = 1 for the first row after the header),
never exceptions; a rejection is stamped with the time of the last event emitted (0 before one).
"""
from __future__ import annotations

import bisect
import re
from pathlib import Path
from typing import IO, Callable, Iterator

from tapedeck.adapters.csv_header import MAX_BLOCK, RowError, read_header, rows, uint
from tapedeck.domain import events as ev

SOURCE = "uniswap-v2-reserves"
MAX_UINT112 = (1 << 112) - 1
SECONDS_PER_BLOCK = 12
NS = 1_000_000_000
REQUIRED_COLUMNS = ("blockNumber", "reserve0", "reserve1")
_ADDRESS_IN_NAME = re.compile(r"(?<![0-9a-fA-F])0x[0-9a-fA-F]{40}(?![0-9a-fA-F])")


def pool_from_filename(path: str | Path) -> str | None:
    m = _ADDRESS_IN_NAME.search(Path(path).name)
    return m.group(0).lower() if m else None


def block_time_estimator(anchors: list[tuple[int, int]]) -> Callable[[int], int]:
    """A block -> ts (ns) function from known ``(block, ts_ns)`` anchors.

    Between two anchors: linear interpolation, rounded down (integer math). Before the first or
    after the last: 12 s per block from the nearest anchor. Anchors may come in any order;
    duplicates must agree, and time must not go backwards as blocks increase (``ValueError``).
    """
    if not anchors:
        raise ValueError("block_time_estimator needs at least one (block, ts_ns) anchor")
    points: dict[int, int] = {}
    for block, ts in anchors:
        block, ts = int(block), int(ts)
        if points.get(block, ts) != ts:
            raise ValueError(f"anchors disagree on block {block}: {points[block]} vs {ts}")
        points[block] = ts
    blocks = sorted(points)
    times = [points[b] for b in blocks]
    for i in range(1, len(blocks)):
        if times[i] < times[i - 1]:
            raise ValueError(f"anchor time goes backwards between blocks {blocks[i - 1]} and {blocks[i]}")
    step = SECONDS_PER_BLOCK * NS

    def block_ts(block: int) -> int:
        i = bisect.bisect_left(blocks, block)
        if i < len(blocks) and blocks[i] == block:
            return times[i]
        if i == 0:
            return times[0] - (blocks[0] - block) * step
        if i == len(blocks):
            return times[-1] + (block - blocks[-1]) * step
        b0, b1, t0, t1 = blocks[i - 1], blocks[i], times[i - 1], times[i]
        return t0 + (block - b0) * (t1 - t0) // (b1 - b0)

    return block_ts


def read_v2_reserves(path: str | Path, block_ts: Callable[[int], int], pool: str,
                     from_block: int | None = None, to_block: int | None = None,
                     block_problem: Callable[[int], str | None] | None = None) -> Iterator[ev.Event]:
    """``V2ReservesSynced`` of pair ``pool`` for each change of reserves (and the first row in range).

    Rows outside ``[from_block, to_block]`` are skipped (the first row at or after ``from_block``
    is always emitted). Rows must have increasing block numbers; a row that does not is rejected.
    A rejected row does not count as the previous state. ``block_problem`` may say why a block
    cannot be used (e.g. it cannot be timed); such a row is rejected with that reason. ``pool``
    not an address: ``ValueError``.
    """
    if not isinstance(pool, str) or not re.fullmatch(r"0x[0-9a-fA-F]{40}", pool):
        raise ValueError(f"pool {pool!r} is not an address")
    return _read(Path(path), block_ts, pool.lower(), from_block, to_block, block_problem)


def _read(path: Path, block_ts: Callable[[int], int], pool: str, from_block: int | None,
          to_block: int | None, block_problem: Callable[[int], str | None] | None) -> Iterator[ev.Event]:
    with open(path, "rb") as f:
        yield from read_v2_stream(f, path.name, block_ts, pool, from_block, to_block, block_problem)


def read_v2_stream(f: IO[bytes], name: str, block_ts: Callable[[int], int], pool: str,
                   from_block: int | None = None, to_block: int | None = None,
                   block_problem: Callable[[int], str | None] | None = None) -> Iterator[ev.Event]:
    """:func:`read_v2_reserves` over an open binary stream (``name`` labels the rows; ``pool`` lowercase)."""
    col = read_header(f, name, REQUIRED_COLUMNS, SOURCE)
    if isinstance(col, ev.InputRejected):
        yield col
        return
    last_block: int | None = None
    last: tuple[int, int] | None = None
    last_ts = 0
    for n, raw, fields in rows(f, col["__width__"]):
        try:
            if isinstance(fields, RowError):
                raise fields
            block = uint("blockNumber", fields[col["blockNumber"]], MAX_BLOCK)
            r0 = uint("reserve0", fields[col["reserve0"]], MAX_UINT112)
            r1 = uint("reserve1", fields[col["reserve1"]], MAX_UINT112)
            if last_block is not None and block <= last_block:
                raise RowError(f"block {block} is not after the previous row's block {last_block}")
            problem = block_problem(block) if block_problem is not None else None
            if problem:
                raise RowError(problem)
        except RowError as exc:
            yield ev.InputRejected(ts=last_ts, source=SOURCE, origin=f"{name}:row {n}", reason=str(exc),
                                   raw=raw)
            continue
        last_block = block
        if from_block is not None and block < from_block:
            continue
        if to_block is not None and block > to_block:
            break
        if (r0, r1) == last:
            continue
        last = (r0, r1)
        last_ts = block_ts(block)
        yield ev.V2ReservesSynced(ts=last_ts, source=SOURCE, pool=pool, block=block, reserve0=r0, reserve1=r1)
