"""A deployed world restored instead of redeployed: the chain writes of a deploy, cached and replayed.

Why: a scenario start deploys the same contracts with the same arguments from the same accounts
every run (eth-crash: the Aave v3 market, 8 linked libraries, two reserves, the sim's tokens; ~60
transactions through web3, most of a revm run's set-up). On revm every change to the chain goes
through one write log (``RevmChain._log``: account and slot writes with old and new values) and its
blocks, so what a deploy did is a slice of that log plus the blocks (receipts, transactions) it
mined, and the keys it added. ``cached(chain, key, build)`` runs ``build()`` once, keeps that slice
with ``build``'s result (plain data: addresses), and on the next call with the same key replays the
slice onto the chain instead: the same state, blocks, hashes and receipts, to the byte.

Exact, and it invalidates itself. The key is the caller's (what it deploys and with which
arguments) plus:

* the chain's state before the deploy: chain id, the latest block's hash (which commits to every
  transaction since genesis, and genesis to its timestamp), the number of blocks and writes, the
  chain's time, and who may send;
* the code: a hash of the Python modules that deploy and execute (this package's files and the
  caller's ``modules``), pyrevm's version;
* the contract builds: every artifact the build loaded (``artifacts.watch_loads``) is named in the
  entry with a hash of its ABI and bytecode; a hit whose builds changed is a miss.

Entries live in this process (a sweep worker reuses them) and as files under
``$TAPEDECK_WORLD_CACHE`` (default ``<repo>/build/world-cache``), one per key, written atomically;
``TAPEDECK_WORLD_CACHE=memory`` keeps them in the process only, ``off`` always deploys.

On py-evm (a ``PyEvmChain`` made with ``world_cache=True``, as the sim makes its chains; other
py-evm chains just run ``build()``) every change to the chain is a write to one in-memory key-value store
(eth-tester's ``MemoryDB``: trie nodes, blocks, receipts, the canonical head), so there the slice is
every key the build wrote (recorded as it writes, not a before/after comparison: a node the store
already held from a reverted simulation is kept too) with the pending header, the chain's time and
the keys the build added; its key adds the chain's head hash, number, time and accounts, and the
py-evm and eth-tester versions. On anvil ``build()`` just runs.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import pickle
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

from tapedeck.sim.chain.artifacts import ROOT, Artifact, watch_loads

FORMAT = 1  # bump when an entry's layout changes
_MEMORY: dict[str, bytes] = {}  # key -> the pickled entry (unpickled afresh on each hit: no sharing)
stats = {"hits": 0, "misses": 0, "stale": 0}  # this process's counts (tests, benchmarks)


def cache_dir() -> Path | None:
    """Where entries are kept on disk (None: in memory only)."""
    where = os.environ.get("TAPEDECK_WORLD_CACHE", "")
    if where.lower() in ("off", "0", "no", "memory"):
        return None
    return Path(where) if where else ROOT / "build" / "world-cache"


def enabled() -> bool:
    return os.environ.get("TAPEDECK_WORLD_CACHE", "").lower() not in ("off", "0", "no")


def _code_hash(modules: tuple[str, ...]) -> str:
    """A hash of this package's files and the named modules' (found whether or not they are imported
    yet: a module a build imports on its way, e.g. ``sim.chain.uniswap_v2``, must not change the key
    between the first run of a process and the next)."""
    h = hashlib.sha256(f"format {FORMAT}; pyrevm {version('pyrevm')}".encode())
    here = Path(__file__).resolve().parent
    files = sorted(here.glob("*.py"))
    for name in modules:
        mod = sys.modules.get(name)
        origin = getattr(mod, "__file__", None) if mod is not None else None
        if origin is None:
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                spec = None
            origin = spec.origin if spec is not None else None
        if origin and Path(origin).resolve() not in files:
            files.append(Path(origin).resolve())
    for path in files:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _artifact_hash(art: Artifact) -> str:
    return hashlib.sha256(repr((art.name, art.abi, art.bytecode, art.link_references)).encode()).hexdigest()


def _state_key(chain: Any) -> tuple[Any, ...]:
    last = chain.blocks[-1]
    return (chain.chain_id, last.hash.hex(), len(chain.blocks), len(chain._log), chain.time,
            sorted(chain.senders), sorted(chain.keys))


def _key(chain: Any, key: Any, modules: tuple[str, ...]) -> str:
    text = repr((key, _state_key(chain), _code_hash(modules)))
    return hashlib.sha256(text.encode()).hexdigest()


def _current(arts: list[tuple[str, str, str]]) -> bool:
    """Whether every build an entry names still has the ABI and bytecode it had."""
    from tapedeck.sim.chain import artifacts

    for package, name, digest in arts:
        try:
            art = artifacts._load(package, name) if package else artifacts._load_own(name)
        except Exception:  # noqa: BLE001 - a build that is gone: stale
            return False
        if _artifact_hash(art) != digest:
            return False
    return True


def cached(chain: Any, key: Any, build: Callable[[], Any], *, modules: tuple[str, ...] = ()) -> Any:
    """``build()``'s result, with its chain writes; replayed from the cache when ``key`` and the
    chain's state, code and builds are the same as when it was kept (see the module docstring).
    ``build`` must return plain, picklable data (addresses, numbers), change the chain only by
    mining blocks and adding keys, and load the builds it deploys inside (``artifacts.load`` is
    cached: free), so that the entry names them. ``modules``: names of the modules whose code ``build`` runs."""
    if enabled() and _is_pyevm(chain):
        return _cached_pyevm(chain, key, build, modules)
    if not (enabled() and hasattr(chain, "_log")):
        return build()
    k = _key(chain, key, modules)
    entry = _read(k)
    if entry is not None and entry["state"] == _state_key(chain) and _current(entry["artifacts"]):
        stats["hits"] += 1
        _apply(chain, entry)
        return entry["result"]
    stats["stale" if entry is not None else "misses"] += 1
    before = _state_key(chain)
    blocks, log = len(chain.blocks), len(chain._log)
    keys, senders = set(chain.keys), set(chain.senders)
    with watch_loads() as seen:
        result = build()
    if len(chain.blocks) < blocks or len(chain._log) < log:  # it reverted to before it began: not a slice
        return result
    arts = sorted({(package, name, _artifact_hash(a)) for package, name, a in seen})
    mined = chain.blocks[blocks:]
    hashes = [h for b in mined for h in b.tx_hashes]
    entry = {"format": FORMAT, "state": before, "artifacts": arts, "result": result, "log": chain._log[log:], "blocks": mined,
             "receipts": {h: chain._receipts[h] for h in hashes}, "txs": {h: chain._txs[h] for h in hashes},
             "keys": {a: bytes(chain.keys[a].key) for a in sorted(set(chain.keys) - keys)},
             "senders": sorted(set(chain.senders) - senders), "time": chain.time}
    _write(k, pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL))
    return result


def _apply(chain: Any, entry: dict[str, Any]) -> None:
    """Replay an entry's writes, blocks and keys onto ``chain`` (in the state it was recorded from)."""
    from eth_account import Account

    for address, slot, old, new in entry["log"]:
        chain._log.append((address, slot, old, new))
        chain._redo(address, slot, new)
    chain.blocks.extend(entry["blocks"])
    chain._receipts.update(entry["receipts"])
    chain._txs.update(entry["txs"])
    for _address, key in entry["keys"].items():
        chain.add_key(Account.from_key(key))
    chain.senders.update(entry["senders"])
    chain.time = entry["time"]


def _is_pyevm(chain: Any) -> bool:
    """A ``PyEvmChain`` made with ``world_cache=True`` (the sim's)."""
    backend = getattr(getattr(chain, "tester", None), "backend", None)
    return getattr(chain, "world_cache", False) is True and not hasattr(chain, "_log") and hasattr(getattr(backend, "chain", None), "chaindb") \
        and hasattr(chain, "time") and hasattr(getattr(chain.tester.backend.chain.chaindb.db, "wrapped_db", None),
                                                "kv_store")


def _pyevm_store(chain: Any) -> Any:
    return chain.tester.backend.chain.chaindb.db.wrapped_db  # eth-tester's MemoryDB (under an AtomicDB)


def _pyevm_state_key(chain: Any) -> tuple[Any, ...]:
    head = chain.tester.backend.chain.get_canonical_head()
    keys = [bytes(k.public_key.to_canonical_address()).hex() for k in chain.tester.backend.account_keys]
    return ("py-evm", version("py-evm"), version("eth-tester"), chain.chain_id, bytes(head.hash).hex(),
            head.block_number, chain.time, tuple(keys))


class _Recording(dict):  # type: ignore[type-arg]
    """The store's dict while a build runs: remembers every key written or deleted."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.written: set[bytes] = set()
        self.deleted: set[bytes] = set()

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.written.add(key)
        self.deleted.discard(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: bytes) -> None:
        self.deleted.add(key)
        self.written.discard(key)
        super().__delitem__(key)


def _cached_pyevm(chain: Any, key: Any, build: Callable[[], Any], modules: tuple[str, ...]) -> Any:
    """``cached`` on a ``PyEvmChain`` (see the module docstring)."""
    import rlp

    before = _pyevm_state_key(chain)
    k = hashlib.sha256(repr((key, before, _code_hash(modules))).encode()).hexdigest()
    entry = _read(k)
    if entry is not None and entry.get("state") == before and _current(entry["artifacts"]):
        stats["hits"] += 1
        _apply_pyevm(chain, entry)
        return entry["result"]
    stats["stale" if entry is not None else "misses"] += 1
    store = _pyevm_store(chain)
    backend = chain.tester.backend
    n_keys = len(backend.account_keys)
    recording = _Recording(store.kv_store)
    store.kv_store = recording
    try:
        with watch_loads() as seen:
            result = build()
    finally:
        store.kv_store = dict(recording)
    if len(backend.account_keys) < n_keys or getattr(chain, "_runs", None):
        return result
    header = backend.chain.header
    arts = sorted({(package, name, _artifact_hash(a)) for package, name, a in seen})
    entry = {"format": FORMAT, "state": before, "artifacts": arts, "result": result,
             "db": {w: store.kv_store[w] for w in sorted(recording.written)}, "deleted": sorted(recording.deleted),
             "keys": [k.to_bytes() for k in backend.account_keys[n_keys:]],
             "header": (type(header).__module__, type(header).__qualname__, rlp.encode(header)), "time": chain.time,
             "after": _pyevm_state_key(chain)}
    _write(k, pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL))
    return result


def _apply_pyevm(chain: Any, entry: dict[str, Any]) -> None:
    """Write an entry's keys into the chain's store, add its keys, set its pending header and time."""
    import rlp

    store = _pyevm_store(chain).kv_store
    store.update(entry["db"])
    for gone in entry["deleted"]:
        store.pop(gone, None)
    for raw in entry["keys"]:
        chain.tester.add_account("0x" + raw.hex())
    module, name, raw = entry["header"]
    header_class = getattr(importlib.import_module(module), name)
    chain.tester.backend.chain.header = rlp.decode(raw, sedes=header_class)
    chain.time = entry["time"]
    if hasattr(chain, "_runs"):
        chain._runs.clear()


def _read(k: str) -> dict[str, Any] | None:
    raw = _MEMORY.get(k)
    where = cache_dir()
    if raw is None and where is not None:
        path = where / f"{k}.pickle"
        if path.is_file():
            raw = path.read_bytes()
            _MEMORY[k] = raw
    if raw is None:
        return None
    try:
        entry = pickle.loads(raw)
    except Exception:  # noqa: BLE001 - a damaged file: rebuilt
        return None
    return entry if isinstance(entry, dict) and entry.get("format", FORMAT) == FORMAT else None


def _write(k: str, raw: bytes) -> None:
    _MEMORY[k] = raw
    where = cache_dir()
    if where is None:
        return
    try:
        where.mkdir(parents=True, exist_ok=True)
        tmp = where / f".{k}.{os.getpid()}.tmp"
        tmp.write_bytes(raw)
        os.replace(tmp, where / f"{k}.pickle")
    except OSError:  # a read-only checkout: memory only
        pass


def clear_memory() -> None:
    """Forget this process's entries (tests)."""
    _MEMORY.clear()
