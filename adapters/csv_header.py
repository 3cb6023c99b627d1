"""The header check shared by the CSV recording readers."""
from __future__ import annotations

import csv
from typing import IO

from tapedeck.domain import events as ev


def read_header(f: IO[str], name: str, required: tuple[str, ...], source: str) -> dict[str, int] | ev.InputRejected:
    """Column positions of ``required`` from the first line, or a rejection naming the missing ones."""
    header_line = f.readline().rstrip("\r\n")
    header = [h.strip() for h in next(csv.reader([header_line]), [])]
    missing = [c for c in required if c not in header]
    if missing:
        return ev.InputRejected(ts=0, source=source, origin=f"{name}:header",
                                reason=f"header lacks column(s) {', '.join(missing)}; file not read", raw=header_line)
    col = {c: header.index(c) for c in required}
    col["__width__"] = len(header)
    return col
