"""Uniswap V2 per-block reserves (CSV) -> V2ReservesSynced events.

The CSV is ``blockNumber, reserve0, reserve1`` (numbers may be quoted), the pair's
``getReserves()`` at the end of each block. It has no timestamps, so event time comes from a
``block_ts`` function (see :func:`block_time_estimator`). An event is emitted for the first row
read and then only when the reserves change. Bad rows become ``InputRejected`` events
(``"<file name>:row <n>"``, n = 1 for the first row after the header), never exceptions.
"""
from __future__ import annotations

import bisect
import csv
import re
from pathlib import Path
from typing import Callable, Iterator

from tapedeck.adapters.csv_header import read_header
from tapedeck.domain import events as ev

SOURCE = "uniswap-v2-reserves"
USDC_WETH_PAIR = "0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc"
MAX_UINT112 = (1 << 112) - 1
SECONDS_PER_BLOCK = 12
NS = 1_000_000_000
REQUIRED_COLUMNS = ("blockNumber", "reserve0", "reserve1")
_UINT = re.compile(r"[0-9]+")


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


class _RowError(ValueError):
    pass


def _uint(name: str, text: str) -> int:
    t = text.strip()
    if not _UINT.fullmatch(t):
        raise _RowError(f"bad {name} {text!r}")
    return int(t)


def read_v2_reserves(path: str | Path, block_ts: Callable[[int], int], pool: str = USDC_WETH_PAIR,
                     from_block: int | None = None, to_block: int | None = None) -> Iterator[ev.Event]:
    """``V2ReservesSynced`` for each change of reserves (and the first row in range).

    Rows outside ``[from_block, to_block]`` are skipped (the first row at or after ``from_block``
    is always emitted). Rows must have increasing block numbers; a row that does not is rejected.
    A rejected row does not count as the previous state.
    """
    if not re.fullmatch(r"0x[0-9a-fA-F]{40}", pool):
        raise ValueError(f"pool {pool!r} is not an address")
    return _read(Path(path), block_ts, pool.lower(), from_block, to_block)


def _read(path: Path, block_ts: Callable[[int], int], pool: str, from_block: int | None,
          to_block: int | None) -> Iterator[ev.Event]:
    name = path.name
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        col = read_header(f, name, REQUIRED_COLUMNS, SOURCE)
        if isinstance(col, ev.InputRejected):
            yield col
            return
        width = col["__width__"]
        last_block: int | None = None
        last: tuple[int, int] | None = None
        last_ts = 0
        for n, line in enumerate(f, start=1):
            raw = line.rstrip("\r\n")
            if not raw.strip():
                continue
            try:
                fields = next(csv.reader([raw]))
                if len(fields) != width:
                    raise _RowError(f"expected {width} fields, row has {len(fields)}")
                block = _uint("blockNumber", fields[col["blockNumber"]])
                r0 = _uint("reserve0", fields[col["reserve0"]])
                r1 = _uint("reserve1", fields[col["reserve1"]])
                if r0 > MAX_UINT112 or r1 > MAX_UINT112:
                    raise _RowError("reserve does not fit uint112")
                if last_block is not None and block <= last_block:
                    raise _RowError(f"block {block} is not after the previous row's block {last_block}")
            except (_RowError, csv.Error) as exc:
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
