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
``TAPEDECK_WORLD_CACHE=memory`` keeps them in the process only, ``off`` always deploys. Only the revm backend has the write log: on the other backends ``build()`` just runs.
"""
from __future__ import annotations

import hashlib
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
