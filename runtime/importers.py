"""``tapedeck import``: recordings -> input events in a log, several sources merged by event time.

Each KIND names a reader that turns files into input events (bad rows become ``InputRejected``
events, never exceptions). Importing into an existing log rewrites it with the old and the new
events merged in event-time order, so one log can hold several venues; the old file is replaced
atomically only once the new one is complete.

What a file is comes from the pool registry (``adapters.registry``): the pool address from the
file name or ``pool``, its fee and tick spacing from the registry or the caller's ``fee`` /
``tick_spacing``; an unknown pool without them is an error, never a guessed default. The pool
identity used is kept in the manifest (``notes["pools"]``).

The result does not depend on the order of imports:

* records that carry a block number but no time (V2 reserves) are re-timed at every import from
  the union of every block time the log knows (V3 logs' own timestamps) and the chain's fixed
  anchors from the registry: the same set whatever came first, so the same times;
* the merge order is total: (time, block, log index, then type, source and encoded body).

A log that holds decisions or executions (a run, not an import log) is refused: adding inputs
under a run's decisions would break what verify proves about it.

All of it (read, merge, replace) happens under the log's writer lock: a second import, or any
writer, into the same log is refused with a clear error, never silently lost.
"""
from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Union

import msgspec
from eventsourcing.persistence import PersistenceError

from tapedeck.adapters import aave_v3_logs, hyperliquid_ws, solana_accounts
from tapedeck.adapters.csv_header import MAX_TS, MIN_TS
from tapedeck.adapters.eventlog import EventLog, LogUnwritable, Manifest, WriterLock
from tapedeck.adapters.registry import (V2, V3, V3_TICK_SPACING, PoolSpec, Registry, RegistryError, adhoc_pool,
                                        fee_problem, load_registry)
from tapedeck.adapters.uniswap_v2_reserves import SOURCE as V2_SOURCE
from tapedeck.adapters.uniswap_v2_reserves import block_time_estimator, read_v2_reserves
from tapedeck.adapters.uniswap_v2_reserves import pool_from_filename as v2_pool_from_filename
from tapedeck.adapters.uniswap_v3_logs import pool_from_filename as v3_pool_from_filename
from tapedeck.adapters.uniswap_v3_logs import LACKS_TICKS, read_v3_logs, with_snapshot
from tapedeck.domain import codec, events as ev
from tapedeck.domain.ids import Address, ChainId, IdError

NS = 1_000_000_000
END_OF_BLOCK = 1 << 30  # sorts block-end states (V2 reserves per block) after the block's logs
DEFAULT_CHAIN = "ethereum"
# Sources whose events carry a block number but no time of their own: re-timed at every import.
BLOCK_ONLY_SOURCES = frozenset({V2_SOURCE})


class ImportError_(ValueError):
    """Bad import request (unknown kind or pool, missing file, a run log); the message names it."""


@dataclass
class ImportReport:
    kind: str
    files: list[str]
    imported: int = 0
    rejected: int = 0
    rejections: list[str] = field(default_factory=list)  # first few reasons, for the user
    total_in_log: int = 0
    pools: dict[str, Source] = field(default_factory=dict)  # file path -> the pool it was read as
    retimed: int = 0  # block-only events of the log whose time changed with this import
    notes: list[str] = field(default_factory=list)  # e.g. flags that overrode the registry
    frames: dict[str, int] = field(default_factory=dict)  # hyperliquid-ws: frames by channel
    skipped: dict[str, int] = field(default_factory=dict)  # hyperliquid-ws: good frames that gave no event, by why
    by_type: dict[str, int] = field(default_factory=dict)  # hyperliquid-ws: events by type


KINDS = ("uniswap-v3-logs", "uniswap-v2-reserves", "aave-v3-logs", "solana-ws", "hyperliquid-ws", "binance-ws")
AAVE = "aave-v3-logs"
V3_LOGS = "uniswap-v3-logs"
SOLANA = "solana-ws"
# Hyperliquid WebSocket recordings (hftbacktest's ``<local_recv_ns> <frame>`` lines, gzipped): venue
# ``hyperliquid``, one instrument per coin; no pool, chain or blocks (adapters/hyperliquid_ws.py).
HYPERLIQUID = "hyperliquid-ws"
BINANCE = "binance-ws"
_PROTOCOL = {"uniswap-v3-logs": V3, "uniswap-v2-reserves": V2}


def resolve_pool(kind: str, path: str, registry: Registry, *, pool: str | None = None, fee: int | None = None,
                 tick_spacing: int | None = None, chain: str | None = None) -> tuple[PoolSpec, list[str]]:
    """The pool a file holds: address from its name or ``pool`` (they must agree), the rest from the
    registry; ``fee``/``tick_spacing`` override it (and must be a consistent pair). -> (spec, notes)."""
    protocol = _PROTOCOL[kind]
    if chain is not None:
        try:
            chain = ChainId(chain).name
        except IdError as e:
            raise ImportError_(f"--chain: {e}") from None
    from_name = (v3_pool_from_filename if protocol == V3 else v2_pool_from_filename)(path)
    try:
        given = Address.parse(pool).value if pool is not None else None
    except IdError as e:
        raise ImportError_(f"--pool: {e}") from None
    if from_name and given and from_name != given:
        raise ImportError_(f"--pool {given} disagrees with the address in the file name {Path(path).name}")
    address = from_name or given
    if address is None:
        raise ImportError_(f"{Path(path).name}: no pool address in the file name; give --pool ADDRESS")
    try:
        spec = registry.find(address, chain)
    except RegistryError as e:
        raise ImportError_(str(e)) from None
    notes: list[str] = []
    if spec is not None and spec.protocol != protocol:
        raise ImportError_(f"pool {address} is a {spec.protocol} pool in the registry, not {protocol} "
                           f"(wrong import kind {kind}?)")
    if protocol == V2 and tick_spacing is not None:
        raise ImportError_("--tick-spacing: a uniswap-v2 pair has no tick spacing")
    if spec is None:
        if protocol == V3:
            if fee is None:
                raise ImportError_(f"pool {address} is not in the registry ({', '.join(registry.files)}): "
                                   f"give --fee and --tick-spacing, or add it with --registry FILE")
            if tick_spacing is None:
                tick_spacing = V3_TICK_SPACING.get(fee)
                if tick_spacing is None:
                    raise ImportError_(f"--fee {fee} is not one of Uniswap's fee tiers "
                                       f"({', '.join(map(str, V3_TICK_SPACING))}): give --tick-spacing too")
        elif fee is None:
            fee = 30  # the Uniswap V2 pair fee, fixed in the contract (not a guess about this pool)
        try:
            spec = adhoc_pool(chain or DEFAULT_CHAIN, address, protocol, fee, tick_spacing)
        except (RegistryError, IdError) as e:
            raise ImportError_(f"--fee/--tick-spacing: {e}") from None
        notes.append(f"pool {address} is not in the registry: read as {protocol} fee {fee}"
                     + (f", tick spacing {tick_spacing}" if protocol == V3 else "") + " from the flags")
        return spec, notes
    new_fee = spec.fee if fee is None else fee
    new_spacing = spec.tick_spacing if tick_spacing is None else tick_spacing
    if protocol == V3 and fee is not None and tick_spacing is None:
        new_spacing = V3_TICK_SPACING.get(fee, new_spacing)  # a fee tier's own spacing
    if (new_fee, new_spacing) != (spec.fee, spec.tick_spacing):
        problem = fee_problem(protocol, new_fee, new_spacing)
        if problem:
            raise ImportError_(f"--fee/--tick-spacing: {problem}")
        notes.append(f"pool {address} ({spec.label}): flags override the registry's fee {spec.fee}"
                     f"{'' if spec.tick_spacing is None else f'/spacing {spec.tick_spacing}'} with "
                     f"{new_fee}{'' if new_spacing is None else f'/{new_spacing}'}")
        spec = PoolSpec(spec.id, spec.protocol, new_fee, new_spacing, spec.token0, spec.token1)  # its name no longer fits
    return spec, notes


@dataclass(frozen=True)
class AaveSource:
    """An Aave v3 Pool-log file as the importer reads it: the Pool's chain and address (the file
    holds neither), and the reserve its name says it was filtered by (None if it names none)."""

    chain: str
    address: str
    reserve: str | None

    @property
    def label(self) -> str:
        return f"Aave v3 Pool on {self.chain}"

    def to_note(self) -> dict[str, Any]:
        return {"chain": self.chain, "protocol": "aave-v3", "name": self.label}


def resolve_aave(path: str, *, chain: str | None, pool: str | None) -> AaveSource:
    """The chain from ``--chain`` or demeter's file name (``<chain>-aave_v3-<reserve>-...``), which must
    agree; the Pool from ``--pool`` or the chain's known Pool (the address alone never names the chain)."""
    from_name = aave_v3_logs.chain_from_filename(path)
    try:
        given = ChainId(chain).name if chain is not None else None
        name_chain = ChainId(from_name).name if from_name is not None else None
        address = Address.parse(pool).value if pool is not None else None
    except IdError as e:
        raise ImportError_(f"--chain/--pool: {e}") from None
    if given and name_chain and given != name_chain:
        raise ImportError_(f"--chain {given} disagrees with the chain in the file name {Path(path).name} ({name_chain})")
    chain_name = given or name_chain
    if chain_name is None:
        raise ImportError_(f"{Path(path).name}: no chain in the file name (<chain>-aave_v3-...); give --chain NAME")
    address = address or aave_v3_logs.DEFAULT_POOLS.get(chain_name)
    if address is None:
        raise ImportError_(f"no known Aave v3 Pool on {chain_name}: give --pool ADDRESS")
    return AaveSource(chain_name, address, aave_v3_logs.reserve_from_filename(path))


@dataclass(frozen=True)
class SolanaSource:
    """A recorded Solana websocket session (``adapters.solana_accounts.read_solana_ws``): its frames
    name their accounts (or the session's recorded subscriptions do), so it needs no pool flags."""

    file: str
    address: str = "solana"

    @property
    def label(self) -> str:
        return "Solana account frames"

    def to_note(self) -> dict[str, Any]:
        return {"chain": "solana", "protocol": "solana-accounts", "name": self.label}


@dataclass(frozen=True)
class BinanceSource:
    """A Binance WebSocket recording (``adapters/binance_ws.py``): its venue (``binance`` spot,
    ``binance-usdm`` futures) and instrument, from the file name or its frames."""

    venue: str
    instrument: str

    @property
    def label(self) -> str:
        return f"{self.venue} {self.instrument or '(symbol from its frames)'}"

    @property
    def address(self) -> str:  # what the import line names the source by
        return f"{self.venue}:{self.instrument}" if self.instrument else self.venue

    def to_note(self) -> dict[str, Any]:
        return {"venue": self.venue, "instrument": self.instrument, "protocol": "binance-ws", "name": self.label}


Source = Union[PoolSpec, AaveSource, SolanaSource, BinanceSource]  # what an imported file was read as


def resolve_binance(path: str) -> BinanceSource:
    from tapedeck.adapters import binance_ws

    venue, instrument = binance_ws.market_from_filename(path)
    if instrument:
        try:
            binance_ws.check_instrument(path, instrument)
        except ValueError as e:
            raise ImportError_(str(e)) from None
    return BinanceSource(venue or binance_ws._sniff(path), instrument or "")


def _block_filter(events: Iterator[ev.Event], from_block: int | None, to_block: int | None) -> Iterator[ev.Event]:
    for e in events:
        block = getattr(e, "block", None)
        if block is not None and ((from_block is not None and block < from_block)
                                  or (to_block is not None and block > to_block)):
            continue
        yield e


def _reader(kind: str, spec: PoolSpec | AaveSource | SolanaSource, registry: Registry, from_block: int | None,
            to_block: int | None) -> Callable[[str], Iterator[ev.Event]]:
    if isinstance(spec, SolanaSource):
        return solana_accounts.read_solana_ws
    if isinstance(spec, AaveSource):
        return lambda path: _block_filter(aave_v3_logs.read_aave_logs(path, spec.chain), from_block, to_block)
    if isinstance(spec, BinanceSource):
        from tapedeck.adapters.binance_ws import read_binance_ws

        return lambda path: read_binance_ws(path, venue=spec.venue, instrument=spec.instrument or None)
    if kind == "uniswap-v3-logs":
        return lambda path: _block_filter(read_v3_logs(path, pool=spec.address), from_block, to_block)
    # Provisional times, -(block + 1), never stored: every block-only event (and the rejections stamped
    # with its time) is re-timed from the whole log once merged (see retime). A block the chain's
    # fixed anchors time outside 2015..2100 is a corrupt row, rejected here (whatever the log holds,
    # so the import order cannot change what is rejected).
    chain = registry.chain(str(spec.id.chain))
    fixed = block_time_estimator([(b, t * NS) for b, t in chain.anchors]) if chain and chain.anchors else None

    def block_problem(block: int) -> str | None:
        if fixed is not None and not MIN_TS <= fixed(block) < MAX_TS:
            return f"block {block} cannot be timed: {chain.name}'s anchors put it outside 2015..2100"  # type: ignore[union-attr]
        return None

    return lambda path: read_v2_reserves(path, _provisional_ts, spec.address, from_block=from_block,
                                         to_block=to_block, block_problem=block_problem)


def _provisional_ts(block: int) -> int:
    return -(block + 1)


def merge_key(e: ev.Event) -> tuple[Any, ...]:
    """A total order: event time, block, log index (block-end states last), the venue's own time
    (a WebSocket frame's events share their receive time: a trades snapshot keeps its trades in
    venue order), then type, source and the encoded body, so events that tie on time and place
    sort the same whatever was imported first."""
    block = getattr(e, "block", 0)
    log_index = getattr(e, "log_index", END_OF_BLOCK)
    return (e.ts, block, log_index, getattr(e, "venue_ts", 0), type(e).__name__, e.source, codec.encode(e))


def _chain_of(pool: str, pools_note: dict[str, Any], registry: Registry) -> str:
    note = pools_note.get(pool)
    if note:
        return str(note.get("chain", DEFAULT_CHAIN))
    try:
        spec = registry.find(pool)
    except RegistryError:
        spec = None
    return str(spec.id.chain) if spec else DEFAULT_CHAIN


def retime(events: list[ev.Event], registry: Registry, pools_note: dict[str, Any]) -> tuple[list[ev.Event], int]:
    """Give every block-only event (and the rejections of its file) the time of its block, from the
    union of the log's own block times on the same chain and the chain's registry anchors.

    A rejected V2 row carries the time of the last event its file emitted before it (0 before the
    first); it is moved with that event, matched by its old time (for pairs on two chains at once
    the match may pick the other chain's block time). -> (events, how many changed)."""
    timed: dict[str, dict[int, int]] = {}
    for e in events:
        block, pool = getattr(e, "block", None), getattr(e, "pool", None)
        if block is None or pool is None or e.source in BLOCK_ONLY_SOURCES:
            continue
        chain = _chain_of(pool, pools_note, registry)
        seen = timed.setdefault(chain, {})
        if seen.setdefault(block, e.ts) != e.ts:
            raise ImportError_(f"block {block} on {chain} has two times in the log ({seen[block]} and {e.ts} ns): "
                               f"the recordings disagree; not imported")
    for chain, times in timed.items():  # across recordings too: a later block never has an earlier time
        blocks = sorted(times)
        for b0, b1 in zip(blocks, blocks[1:]):
            if times[b1] < times[b0]:
                raise ImportError_(f"block {b1} on {chain} is timed before block {b0} by the log's recordings: "
                                   f"they disagree; not imported")
    estimators: dict[str, Callable[[int], int]] = {}

    def block_ts(chain: str) -> Callable[[int], int]:
        if chain not in estimators:
            spec = registry.chain(chain)
            anchors = dict(timed.get(chain, {}))
            for b, t in (spec.anchors if spec else []):
                anchors.setdefault(b, t * NS)  # the log's own times of a block win over a fixed anchor
            if not anchors:
                raise ImportError_(f"no block times known for chain {chain} (no timed recording in the log and no "
                                   f"[[chains]] anchors in the registry): cannot time its block-only records")
            try:
                estimators[chain] = block_time_estimator(sorted(anchors.items()))
            except ValueError as e:
                raise ImportError_(f"block times of {chain} are inconsistent: {e}; not imported") from None
        return estimators[chain]

    moved: dict[tuple[str, int], int] = {}  # (source, old ts) -> new ts, for the rejections
    out: list[ev.Event] = []
    changed = 0
    for e in events:
        if e.source in BLOCK_ONLY_SOURCES and type(e) is not ev.InputRejected:
            chain = _chain_of(e.pool, pools_note, registry)  # type: ignore[attr-defined]
            new_ts = block_ts(chain)(e.block)  # type: ignore[attr-defined]
            if not MIN_TS <= new_ts < MAX_TS:
                raise ImportError_(f"block {e.block} of pool {e.pool} on {chain} is timed outside 2015..2100 by "  # type: ignore[attr-defined]
                                   f"the log's block times; not imported (limit the blocks with --from-block/--to-block)")
            moved.setdefault((e.source, e.ts), new_ts)
            if new_ts != e.ts:
                e = msgspec.structs.replace(e, ts=new_ts)
                changed += 1
        out.append(e)
    for i, e in enumerate(out):
        if e.source in BLOCK_ONLY_SOURCES and type(e) is ev.InputRejected and e.ts != 0:
            new_ts = moved.get((e.source, e.ts), e.ts)
            if new_ts != e.ts:
                out[i] = msgspec.structs.replace(e, ts=new_ts)
                changed += 1
    return out, changed


def import_files(kind: str, paths: list[str], out: str | Path, *, from_block: int | None = None,
                 to_block: int | None = None, pool: str | None = None, fee: int | None = None,
                 tick_spacing: int | None = None, chain: str | None = None,
                 registry: Registry | None = None, snapshot: str | None = None) -> ImportReport:
    if kind not in KINDS:
        raise ImportError_(f"unknown import kind {kind!r} (known: {', '.join(KINDS)})")
    if snapshot is not None and (kind != V3_LOGS or len(paths) != 1):
        raise ImportError_("--snapshot: a V3 pool snapshot goes with one uniswap-v3-logs file (its pool's)")
    if snapshot is not None and not Path(snapshot).is_file():
        raise ImportError_(f"--snapshot {snapshot}: no such file")
    for p in paths:
        if Path(p).is_dir():
            raise ImportError_(f"{p}: is a directory, not a recording")
        if not Path(p).is_file():
            raise ImportError_(f"{p}: no such file")
        if not os.access(p, os.R_OK):
            raise ImportError_(f"{p}: not readable")
    if from_block is not None and to_block is not None and from_block > to_block:
        raise ImportError_(f"--from-block {from_block} is after --to-block {to_block}")
    if registry is None:
        try:
            registry = load_registry()
        except RegistryError as e:
            raise ImportError_(str(e)) from None
    report = ImportReport(kind, [str(p) for p in paths])
    specs: dict[str, Source] = {}
    if kind == AAVE and (fee is not None or tick_spacing is not None):
        raise ImportError_("--fee/--tick-spacing: an Aave v3 Pool has neither")
    if kind in (SOLANA, HYPERLIQUID):
        given = [flag for flag, v in (("--pool", pool), ("--fee", fee), ("--tick-spacing", tick_spacing),
                                      ("--chain", chain), ("--from-block", from_block), ("--to-block", to_block))
                 if v is not None]
        if given and kind == SOLANA:
            raise ImportError_(f"{'/'.join(given)}: a Solana recording names its accounts itself (pool facts "
                               "come from the accounts' own bytes)")
        if given:
            raise ImportError_(f"{'/'.join(given)}: a Hyperliquid WebSocket recording has no pool, chain or blocks")
    if kind == BINANCE and (fee is not None or tick_spacing is not None or pool is not None
                            or from_block is not None or to_block is not None):
        raise ImportError_("--pool/--fee/--tick-spacing/--from-block/--to-block: a Binance recording has none of them")
    for p in paths:
        if kind == SOLANA:
            specs[p] = SolanaSource(Path(p).name)
            continue
        if kind == HYPERLIQUID:
            continue
        if kind == AAVE:
            specs[p] = resolve_aave(p, chain=chain, pool=pool)
            continue
        if kind == BINANCE:
            specs[p] = resolve_binance(p)
            continue
        specs[p], notes = resolve_pool(kind, p, registry, pool=pool, fee=fee, tick_spacing=tick_spacing, chain=chain)
        report.notes.extend(notes)
    if kind == V3_LOGS and snapshot is None:
        report.notes.append(LACKS_TICKS)
    report.pools = dict(specs)
    out = Path(out)
    if out.is_dir():
        raise ImportError_(f"--out {out}: is a directory, not a log file")
    # One writer at a time: held across read, merge and replace, so a second import into the same
    # log (or any other writer) is refused, never silently lost (``EventLogError`` names the holder).
    lock = WriterLock(out)
    try:
        lock.acquire()
    except LogUnwritable as e:
        raise ImportError_(f"--out {out}: cannot write the log: {e}") from None
    try:
        return _import_locked(kind, paths, out, from_block, to_block, specs, registry, report, snapshot)
    finally:
        lock.release()


def _sha256(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:
        raise ImportError_(f"{path}: cannot read: {e.strerror or e}") from None


def _refuse_reimport(out: Path, paths: list[str], digests: dict[str, str], manifest: Manifest,
                     selection: dict[str, dict[str, Any]]) -> None:
    """An import of bytes this log already holds (by the sha256 each import records in the manifest's
    ``imports`` note) with a selection that overlaps the earlier one (the same ``--pool``, block ranges that
    meet; no range is every block), or of one file twice in one command, is refused: merged again, each
    event in the overlap would be recorded twice (a re-import once doubled a day's swaps silently). The same
    file over another pool or disjoint blocks is a new import. Logs imported before the digests were
    recorded cannot be checked this way."""
    def overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
        if a.get("pool") != b.get("pool"):
            return False
        lo = max((x for x in (a.get("from_block"), b.get("from_block")) if x is not None), default=None)
        hi = min((x for x in (a.get("to_block"), b.get("to_block")) if x is not None), default=None)
        return lo is None or hi is None or lo <= hi

    seen: list[tuple[str, str, dict[str, Any]]] = []
    for entry in manifest.notes.get("imports", []):
        if isinstance(entry, dict):
            for name, digest in (entry.get("sha256") or {}).items():
                seen.append((digest, name, (entry.get("selection") or {}).get(name) or {}))
    for p in paths:
        digest = digests[p]
        for d, name, earlier in seen:
            if d == digest and overlaps(earlier, selection[p]):
                raise ImportError_(f"{p}: already imported into {out} (the same bytes as {name}, sha256 "
                                   f"{digest[:16]}..., over the same pool and blocks): importing it again would "
                                   f"record each of its events twice")
        seen.append((digest, Path(p).name, selection[p]))


def _import_locked(kind: str, paths: list[str], out: Path, from_block: int | None, to_block: int | None,
                   specs: dict[str, Source], registry: Registry,
                   report: ImportReport, snapshot: str | None = None) -> ImportReport:
    existing: list[ev.Event] = []
    manifest = Manifest(run_id="", mode="import")
    if out.exists():
        old = EventLog.open(out)
        manifest = old.manifest
        try:
            counts = old.counts_by_topic()
            run_events = sum(n for t, n in counts.items()
                             if ev.BY_NAME.get(t.partition(".v")[0], ev.Event).KIND != ev.INPUT)
            if manifest.mode != "import" or run_events:
                raise ImportError_(f"{out}: is a {manifest.mode or 'run'} log with {run_events} decisions/executions, "
                                   f"not an import log; import into a new log (or the one it was replayed from)")
            existing = [msgspec.structs.replace(e, seq=0) for e in old.events()]
        finally:
            old.close()
    digests = {p: _sha256(p) for p in paths}
    selection = {p: {k: v for k, v in (("pool", getattr(specs.get(p), "address", None)), ("from_block", from_block),
                                       ("to_block", to_block)) if v is not None} for p in paths}
    _refuse_reimport(out, paths, digests, manifest, selection)
    new: list[ev.Event] = []
    for p in paths:
        recording = hyperliquid_ws.RecordingReader(p) if kind == HYPERLIQUID else None
        read = (lambda _p: iter(recording)) if recording else _reader(kind, specs[p], registry, from_block, to_block)
        accepted = rejected = 0
        first_reason = ""
        try:
            read_p = read(p)
            if snapshot is not None:  # (checked against the whole day first: uniswap_v3_logs.with_snapshot)
                spec = specs[p]
                read_p = iter(with_snapshot(list(read_p), snapshot, spec.address, spec.tick_spacing))  # type: ignore[union-attr, arg-type]
            for e in read_p:
                if type(e) is ev.InputRejected:
                    rejected += 1
                    first_reason = first_reason or f"{e.origin}: {e.reason}"
                    if len(report.rejections) < 5:
                        report.rejections.append(f"{e.origin}: {e.reason}")
                else:
                    accepted += 1
                new.append(e)
        except OSError as e:
            raise ImportError_(f"{p}: cannot read: {e.strerror or e}") from None
        except (EOFError, zlib.error) as e:  # (a gzip cut short or corrupt; click would say only "aborted")
            raise ImportError_(f"{p}: cannot read: {e or type(e).__name__}: the file is cut short or corrupt; "
                               "nothing of it was imported") from None
        if rejected and not accepted:  # (a wrong-kind file: refused whole, the log left as it was)
            raise ImportError_(f"{p}: not a {kind} recording: none of its {rejected} record(s) could be read "
                               f"(first: {first_reason})")
        report.imported += accepted
        report.rejected += rejected
        if recording is not None:
            for total, counts in ((report.frames, recording.counts.frames), (report.skipped, recording.counts.skipped),
                                  (report.by_type, recording.counts.events)):
                for k, v in counts.items():
                    total[k] = total.get(k, 0) + v
    pools_note: dict[str, Any] = dict(manifest.notes.get("pools", {}))
    for spec in specs.values():
        pools_note[spec.address] = spec.to_note()
    merged, report.retimed = retime(existing + new, registry, pools_note)
    merged.sort(key=merge_key)
    manifest.sources = sorted(set(manifest.sources) | {f"{kind}:{Path(p).name}" for p in paths})
    manifest.notes["pools"] = dict(sorted(pools_note.items()))
    manifest.notes.setdefault("imports", []).append(
        {"kind": kind, "files": [Path(p).name for p in paths], "imported": report.imported, "rejected": report.rejected,
         "sha256": {Path(p).name: digests[p] for p in paths},
         "selection": {Path(p).name: selection[p] for p in paths if selection[p]},
         **({"frames": dict(sorted(report.frames.items()))} if kind == HYPERLIQUID else {})}
    )
    tmp = out.with_name(out.name + ".importing")
    try:
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
    except (OSError, PersistenceError) as e:
        for suffix in ("", "-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        raise ImportError_(f"--out {out}: cannot write the log: {e}") from None
    return report

