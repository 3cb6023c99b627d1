"""``tapedeck import``: recordings -> input events in a log, several sources merged by event time.

Each KIND names a reader that turns files into input events (bad rows become ``InputRejected``
events, never exceptions). Importing into an existing log rewrites it with the old and the new
events merged in event-time order (ties: block, then log index, then arrival), so one log can
hold several venues; the old file is replaced atomically only once the new one is complete, all
under the log's writer lock (a second import, or any writer, into the same log is refused).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import msgspec

from tapedeck.adapters.eventlog import EventLog, Manifest, WriterLock
from tapedeck.adapters.uniswap_v2_reserves import block_time_estimator, read_v2_reserves
from tapedeck.adapters.uniswap_v3_logs import read_v3_logs
from tapedeck.domain import events as ev

# A mainnet anchor used when the log holds no block times of its own (from the V3 recording of
# 2024-01-05: block 18937382 at 00:00:23 UTC). Later blocks are estimated at 12 s per block.
MAINNET_ANCHORS = [(18937382, 1704412823 * 10**9), (18944480, 1704499199 * 10**9)]

END_OF_BLOCK = 1 << 30  # sorts block-end states (V2 reserves per block) after the block's logs


class ImportError_(ValueError):
    """Bad import request (unknown kind, missing file); the message names it."""


@dataclass
class ImportReport:
    kind: str
    files: list[str]
    imported: int = 0
    rejected: int = 0
    rejections: list[str] = field(default_factory=list)  # first few reasons, for the user
    total_in_log: int = 0


def _block_anchors(events: Iterable[ev.Event]) -> list[tuple[int, int]]:
    seen: dict[int, int] = {}
    for e in events:
        block = getattr(e, "block", None)
        if block is not None and e.source != "uniswap-v2-reserves" and block not in seen:
            seen[block] = e.ts
    return sorted(seen.items())


def _reader(kind: str, existing: list[ev.Event], from_block: int | None, to_block: int | None) -> Callable[[str], Iterator[ev.Event]]:
    if kind == "uniswap-v3-logs":
        def read(path: str) -> Iterator[ev.Event]:
            for e in read_v3_logs(path):
                block = getattr(e, "block", None)
                if block is not None and ((from_block and block < from_block) or (to_block and block > to_block)):
                    continue
                yield e
        return read
    if kind == "uniswap-v2-reserves":
        anchors = _block_anchors(existing) or MAINNET_ANCHORS
        block_ts = block_time_estimator(anchors)
        return lambda path: read_v2_reserves(path, block_ts, from_block=from_block, to_block=to_block)
    raise ImportError_(f"unknown import kind {kind!r} (known: {', '.join(KINDS)})")


KINDS = ("uniswap-v3-logs", "uniswap-v2-reserves")


def merge_key(e: ev.Event) -> tuple[int, int, int]:
    block = getattr(e, "block", 0)
    log_index = getattr(e, "log_index", END_OF_BLOCK)
    return (e.ts, block, log_index)


def import_files(kind: str, paths: list[str], out: str | Path, *, from_block: int | None = None,
                 to_block: int | None = None) -> ImportReport:
    for p in paths:
        if not Path(p).is_file():
            raise ImportError_(f"{p}: no such file")
    out = Path(out)
    # One writer at a time: held across read, merge and replace, so a second import into the same
    # log (or any other writer) is refused, never silently lost (``EventLogError`` names the holder).
    with WriterLock(out):
        return _import_locked(kind, paths, out, from_block, to_block)


def _import_locked(kind: str, paths: list[str], out: Path, from_block: int | None,
                   to_block: int | None) -> ImportReport:
    existing: list[ev.Event] = []
    manifest = Manifest(run_id="", mode="import")
    if out.exists():
        old = EventLog.open(out)
        manifest = old.manifest
        existing = [msgspec.structs.replace(e, seq=0) for e in old.events() if e.KIND == ev.INPUT]
        old.close()
    read = _reader(kind, existing, from_block, to_block)
    report = ImportReport(kind, [str(p) for p in paths])
    new: list[ev.Event] = []
    for p in paths:
        for e in read(p):
            if type(e) is ev.InputRejected:
                report.rejected += 1
                if len(report.rejections) < 5:
                    report.rejections.append(f"{e.origin}: {e.reason}")
            else:
                report.imported += 1
            new.append(e)
    merged = sorted(existing + new, key=merge_key)  # stable: ties keep old-before-new, file order
    manifest.sources = manifest.sources + [f"{kind}:{Path(p).name}" for p in paths]
    manifest.notes.setdefault("imports", []).append(
        {"kind": kind, "files": [Path(p).name for p in paths], "imported": report.imported, "rejected": report.rejected}
    )
    tmp = out.with_name(out.name + ".importing")
    log = EventLog.create(tmp, manifest, overwrite=True)
    for e in merged:
        log.append(e)
    if merged:
        log.manifest.started_ts = merged[0].ts
        log.manifest.ended_ts = merged[-1].ts
    report.total_in_log = len(merged)
    log.close(ended="clean")
    for suffix in ("-wal", "-shm"):
        Path(str(out) + suffix).unlink(missing_ok=True)
    os.replace(tmp, out)
    return report
