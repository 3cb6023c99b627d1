"""What the CSV recording readers share: the header check, strict line decoding, bounded integers.

Files are read as bytes and each line decoded as UTF-8 on its own, so one line of bad bytes
becomes one rejected row (its raw text kept with ``\\x..`` escapes) instead of a crash or a
silently "replaced" value.
"""
from __future__ import annotations

import calendar
import csv
import re
from typing import IO, Iterator

from tapedeck.domain import events as ev

_UINT = re.compile(r"[0-9]+")
# Bounds of plausible values (anything beyond is a corrupt field, rejected at the reader):
MAX_BLOCK = 10**10  # the busiest chains are near 10^9 blocks after years; Ethereum ~2 * 10^7
MAX_LOG_INDEX = 2**32 - 1
MIN_TS = calendar.timegm((2015, 1, 1, 0, 0, 0)) * 1_000_000_000  # event times: Ethereum's genesis year ..
MAX_TS = calendar.timegm((2100, 1, 1, 0, 0, 0)) * 1_000_000_000  # .. 2100, in ns


class RowError(ValueError):
    """What is wrong with one row (the message becomes the rejection reason)."""


def decode_line(line: bytes) -> tuple[str, str | None]:
    """``(text, problem)``: the line without its end, and why it is unreadable (None if it is fine)."""
    body = line.rstrip(b"\r\n")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return body.decode("utf-8", errors="backslashreplace"), f"not UTF-8 text (byte {e.start})"
    if "\x00" in text:
        return text.replace("\x00", "\\x00"), "NUL byte in row"
    return text, None


def read_header(f: IO[bytes], name: str, required: tuple[str, ...], source: str) -> dict[str, int] | ev.InputRejected:
    """Column positions of ``required`` from the first line, or a rejection naming what is wrong."""
    header_line, problem = decode_line(f.readline())
    header_line = header_line.removeprefix("\ufeff")
    if problem is None:
        try:
            header = [h.strip() for h in next(csv.reader([header_line]), [])]
        except csv.Error as e:
            problem = f"header is not CSV ({e})"
    if problem is not None:
        return ev.InputRejected(ts=0, source=source, origin=f"{name}:header", reason=f"{problem}; file not read",
                                raw=header_line)
    missing = [c for c in required if c not in header]
    if missing:
        return ev.InputRejected(ts=0, source=source, origin=f"{name}:header",
                                reason=f"header lacks column(s) {', '.join(missing)}; file not read", raw=header_line)
    col = {c: header.index(c) for c in required}
    col["__width__"] = len(header)
    return col


def rows(f: IO[bytes], width: int) -> Iterator[tuple[int, str, list[str] | RowError]]:
    """``(row number, raw text, fields or the reason it is unreadable)`` for each non-blank line after
    the header (row 1 = line 2 of the file)."""
    for n, line in enumerate(f, start=1):
        raw, problem = decode_line(line)
        if not raw.strip():
            continue
        if problem is not None:
            yield n, raw, RowError(problem)
            continue
        try:
            fields = next(csv.reader([raw]))
        except csv.Error as e:
            yield n, raw, RowError(f"not a CSV row ({e})")
            continue
        if len(fields) != width:
            yield n, raw, RowError(f"expected {width} fields, row has {len(fields)}")
            continue
        yield n, raw, fields


def uint(name: str, text: str, maximum: int) -> int:
    """A decimal unsigned integer no larger than ``maximum`` (no sign, no spaces inside, ASCII digits)."""
    t = text.strip()
    if not _UINT.fullmatch(t):
        if t.startswith("-") and _UINT.fullmatch(t[1:]):
            raise RowError(f"negative {name} {text[:80]!r}")
        raise RowError(f"bad {name} {text[:80]!r}")
    if len(t) > len(str(maximum)) or int(t) > maximum:
        raise RowError(f"{name} {t[:40]}{'...' if len(t) > 40 else ''} ({len(t)} digits) is larger than {maximum}")
    return int(t)


class LogOrder:
    """The order rules of a log file: (block, log index) strictly rising, one time per block, time
    never falling while blocks rise. A rejection is stamped with its own time unless that is before
    the last good event's (then with that), so no output is timed before a good event it follows."""

    def __init__(self) -> None:
        self.last_ts = 0
        self.last_key: tuple[int, int] | None = None
        self.reject_ts = 0

    def begin(self) -> None:
        self.reject_ts = self.last_ts

    def stamp(self, row_ts: int) -> int:
        self.reject_ts = row_ts if row_ts >= self.last_ts else self.last_ts
        return row_ts

    def check(self, block: int, log_index: int, row_ts: int) -> None:
        last = self.last_key
        if last is None:
            return
        if (block, log_index) <= last:
            raise RowError(f"log (block {block}, log_index {log_index}) is not after the previous one "
                           f"(block {last[0]}, log_index {last[1]}): duplicate or out of order")
        if block == last[0] and row_ts != self.last_ts:
            raise RowError(f"block {block} has two times: {row_ts // 10**9} s (unix) here, "
                           f"{self.last_ts // 10**9} s on the previous row")
        if row_ts < self.last_ts:
            raise RowError(f"time runs backwards: block {block} is after block {last[0]} but its time is earlier")

    def accept(self, block: int, log_index: int, row_ts: int) -> None:
        self.last_ts, self.last_key = row_ts, (block, log_index)
