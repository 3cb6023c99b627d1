"""``tapedeck copy SRC DST``: move a run between stores (a SQLite file, a PostgreSQL run), segment
for segment.

The copy holds the source's stored segments byte for byte (each re-committed as one group commit
of the same events at the same seq, so the chain the destination computes is the source's), the
same manifest (run id, config, code, notes, how it ended) and, for a run that ended clean, the same
seal, recomputed by the destination and compared with the source's. The source is read through the
checked path (every segment against its chain, the whole against its seal), so a damaged or
tampered run is refused, not copied. The copy is then read back in full and its digest compared.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tapedeck.adapters.eventlog import EventLogError, Manifest, SEGMENT_V2, same_file
from tapedeck.runtime.bootstrap import create_store, is_pg_url, open_store, redact


@dataclass
class Copied:
    events: int
    segments: int
    digest: str
    ended: str
    sealed: bool

    def describe(self, src: str, dst: str) -> str:
        how = "sealed" if self.sealed else f"ended {self.ended!r}, no seal"
        return (f"copied {redact(src)} -> {redact(dst)}: {self.events} events in {self.segments} segments, "
                f"digest {self.digest} ({how})")


def _same_run(src: str, dst: str) -> bool:
    if is_pg_url(src) and is_pg_url(dst):
        from tapedeck.adapters.pg_eventlog import PgURL

        return PgURL.parse(src).key == PgURL.parse(dst).key
    if is_pg_url(src) or is_pg_url(dst):
        return False
    return same_file(src, dst)


def copy_run(src: str, dst: str, *, overwrite: bool = False) -> Copied:
    """Copy the run at ``src`` into a new run at ``dst`` (``overwrite``: replace what is there)."""
    if _same_run(src, dst):
        raise EventLogError(f"{redact(dst)}: is the run being copied; copy it somewhere else")
    source = open_store(src)
    try:
        source.check_manifest()  # type: ignore[attr-defined]
        stored = source.stored_manifest()  # type: ignore[attr-defined]
        out = create_store(dst, Manifest.from_data(stored), overwrite=overwrite, max_delay_ms=0)
        try:
            _copy_segments(source, out, stored)
        except BaseException:
            out.close(ended="failed: copy interrupted")
            raise
        integrity = source.integrity  # type: ignore[attr-defined]
        assert integrity is not None
        # the source's manifest as stored, then sealed (or not) as the source was
        out.manifest = Manifest.from_data(stored)
        seal = out.manifest.seal
        out.close(ended=out.manifest.ended)
        if seal and out.manifest.seal != seal:
            raise EventLogError(f"{redact(dst)}: the copy's seal {out.manifest.seal} differs from the source's {seal}")
    finally:
        source.close()
    again = open_store(dst)
    try:
        again.counts_by_topic()  # type: ignore[attr-defined]  # a full, checked read
        got = again.integrity  # type: ignore[attr-defined]
    finally:
        again.close()
    if got.digest != integrity.digest or got.last_seq != integrity.last_seq or got.segments != integrity.segments:
        raise EventLogError(f"{redact(dst)}: the copy reads back as {got.segments} segments to seq {got.last_seq}, "
                            f"digest {got.digest}; the source is {integrity.segments} to seq {integrity.last_seq}, "
                            f"digest {integrity.digest}")
    return Copied(got.last_seq, got.segments, got.digest, got.ended, got.sealed)


def _copy_segments(source: Any, out: Any, stored: dict[str, Any]) -> None:
    """Each source segment re-committed as one segment of the destination (its events' bytes as stored)."""
    out._chained = stored.get("log_format", "") == SEGMENT_V2
    if not out._chained:
        out.manifest.log_format = ""
    for first, items, _state in source.segments():
        if first != out._pending_first:
            raise EventLogError(f"{redact(out.path)}: copying the segment at seq {first}, the copy is at "
                                f"seq {out._pending_first}")
        out._pending[:] = items
        out._next_seq = first + len(items)
        out.flush()
