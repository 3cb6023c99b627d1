"""Users' own strategies: a config's ``kind`` turned into a class, and the code identity of a run.

A ``kind`` is one of
- an import path, ``"my_bots.liquidator:MyLiquidator"`` (``module:attribute``, the attribute may be
  dotted), imported from ``sys.path``; when its top-level package is not importable, the current
  directory is appended to ``sys.path`` (last, so it never shadows an installed package) and the
  import is tried again, so ``tapedeck`` run from a project's directory finds its bots;
- a name in the ``tapedeck.strategies`` entry-point group (a package registers its strategies in its
  ``pyproject.toml``; tapedeck registers ``spread`` and ``cross_pool_arb`` there too);
- a built-in name (``tapedeck.domain.strategies.BUILTIN``), the fallback when tapedeck's own
  metadata is absent (a checkout that was never installed).

Importing is I/O, so it lives here and not in ``domain/``, whose ``build_engine`` takes the
resolver. ``code_identity`` is what a run's manifest records about the code that decided it
(tapedeck's version and a hash of its ``domain/`` source, each strategy's module, class,
distribution and a hash of its module file), and ``code_differences`` is what
``replay --verify`` says when the code it verifies with is not that code.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata as metadata
import importlib.util
import json
import os
import sys
import urllib.parse
from pathlib import Path
from typing import Any, Callable

import tapedeck
import tapedeck.domain
from tapedeck.domain import strategies as builtin_strategies
from tapedeck.domain.engine import Engine, Strategy
from tapedeck.domain.strategies import BUILTIN, ConfigError

GROUP = "tapedeck.strategies"


def build_engine(config: dict[str, Any]) -> Engine:
    """An engine from ``config``, its strategies found by import path, entry point or built-in name;
    the pools a built-in arbitrage names take their fee, tick spacing and profit asset from the
    pool registry (``with_pool_identity``)."""
    return builtin_strategies.build_engine(with_pool_identity(config), resolve)


def with_pool_identity(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with each ``cross_pool_arb`` entry completed from the registry (the shipped one plus
    the config's own ``[[pools]]``): ``v3_fee_pips``/``v3_tick_spacing``/``v2_fee_bps`` of pools it
    knows, and ``profit_token`` named by the V3 pool's token0 symbol. A value the entry gives that
    contradicts the registry is an error naming both; pools it does not know keep the entry's values."""
    entries = config.get("strategies") if isinstance(config, dict) else None
    if not isinstance(entries, list) or not any(isinstance(e, dict) and e.get("kind") in _REGISTRY_KINDS
                                                for e in entries):
        return config
    from tapedeck.adapters.registry import RegistryError, registry_with

    try:
        registry = registry_with(config.get("pools") or [])
    except RegistryError as e:
        raise ConfigError(f"pools: {e}") from None
    out = []
    for i, entry in enumerate(entries):
        if isinstance(entry, dict) and entry.get("kind") == "cross_pool_arb":
            entry = _arb_identity(i, entry, registry)
        elif isinstance(entry, dict) and entry.get("kind") == "cex_dex_arb":
            entry = _cex_dex_identity(i, entry, registry)
        out.append(entry)
    return {**config, "strategies": out}


def _arb_identity(i: int, entry: dict[str, Any], registry: Any) -> dict[str, Any]:
    entry = dict(entry)
    chain = entry.get("venue", "ethereum")
    label = f"strategies[{i}] ({entry.get('name', 'cross_pool_arb')})"

    def known(key: str, protocol: str) -> Any:
        pool = entry.get(key)
        if not isinstance(pool, str) or not pool.startswith("0x"):
            return None
        spec = registry.find(pool, chain if registry.chain(chain) else None)
        if spec is not None and spec.protocol != protocol:
            raise ConfigError(f"{label}: {key} {pool} is a {spec.protocol} pool in the registry, not {protocol}")
        return spec

    def agree(key: str, value: int) -> None:
        given = entry.setdefault(key, value)
        if given != value:
            raise ConfigError(f"{label}: {key} = {given} contradicts the pool registry's {value}")

    v2, v3 = known("v2_pool", "uniswap-v2"), known("v3_pool", "uniswap-v3")
    if v3 is not None:
        agree("v3_fee_pips", v3.fee)
        agree("v3_tick_spacing", v3.tick_spacing)
        entry.setdefault("profit_token", v3.token0.symbol)
    if v2 is not None:
        agree("v2_fee_bps", v2.fee)
        entry.setdefault("profit_token", v2.token0.symbol)
    return entry


_REGISTRY_KINDS = ("cross_pool_arb", "cex_dex_arb")


def _cex_dex_identity(i: int, entry: dict[str, Any], registry: Any) -> dict[str, Any]:
    """A ``cex_dex_arb`` entry's pools named by address alone, completed from the registry (kind,
    tokens, fee, tick spacing), and its ``base_token``/``quote_token`` (the pool token whose symbol
    is ``dex_base``, default WETH, and the other) when it does not give them. A value the entry
    gives that contradicts the registry is an error naming both."""
    entry = dict(entry)
    chain = entry.get("chain", "ethereum")
    label = f"strategies[{i}] ({entry.get('name', 'cex_dex_arb')})"
    pools = []
    for j, p in enumerate(entry.get("pools") or []):
        addr = p.get("pool") if isinstance(p, dict) else None
        spec = (registry.find(addr, chain if registry.chain(chain) else None)
                if isinstance(addr, str) and addr.startswith("0x") else None)
        if spec is None:
            pools.append(p)
            continue
        known = {"kind": "v2" if spec.protocol == "uniswap-v2" else "v3", "token0": spec.token0.address.value,
                 "token1": spec.token1.address.value, "fee": spec.fee}
        if spec.tick_spacing:
            known["tick_spacing"] = spec.tick_spacing
        for key, value in known.items():
            given = p.get(key, value)
            if str(given).lower() != str(value).lower():
                raise ConfigError(f"{label}: pools[{j}].{key} = {given} contradicts the pool registry's {value}")
        pools.append({**p, **known})
        base_symbol = entry.get("dex_base", "WETH")
        by_symbol = {spec.token0.symbol: spec.token0, spec.token1.symbol: spec.token1}
        if base_symbol in by_symbol and "base_token" not in entry:
            base = by_symbol[base_symbol]
            other = spec.token1 if base is spec.token0 else spec.token0
            entry["base_token"], entry["quote_token"] = base.address.value, other.address.value
            entry.setdefault("quote_asset", other.symbol)
    if "pools" in entry:
        entry["pools"] = pools
    return entry


def resolve(kind: str) -> Callable[..., Strategy]:
    """The class (or factory) ``kind`` names; ConfigError in one line saying what is wrong."""
    if ":" in kind:
        return _checked(kind, _load_path(kind))
    eps = [ep for ep in _entry_points() if ep.name == kind]
    values = sorted({ep.value for ep in eps})
    if len(values) > 1:
        dists = ", ".join(sorted({_dist_name(ep) or "?" for ep in eps}))
        raise ConfigError(f"kind {kind!r} is registered more than once in {GROUP} (by {dists}): use an import path")
    if values:
        try:
            target = eps[0].load()
        except Exception as e:
            raise ConfigError(f"kind {kind!r}: entry point {values[0]!r} ({GROUP}) failed to load: "
                              f"{type(e).__name__}: {_one_line(e)}") from None
        return _checked(kind, target)
    if kind in BUILTIN:
        return BUILTIN[kind]
    known = sorted({ep.name for ep in _entry_points()} | set(BUILTIN))
    raise ConfigError(f"unknown kind {kind!r} (known: {', '.join(known)}; or an import path "
                      f"\"package.module:Class\")")


def _entry_points() -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=GROUP))


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else ""


def _load_path(kind: str) -> Any:
    module_name, _, attr = kind.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"kind {kind!r}: an import path is \"package.module:Class\"")
    module = _import(kind, module_name)
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(f"kind {kind!r}: module {module_name!r} ({_file_of(module)}) has no "
                              f"attribute {attr!r}") from None
    return target


def _import(kind: str, module_name: str) -> Any:
    top = module_name.split(".")[0]
    try:
        if _find(top) is None and os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())  # the project's directory, after everything installed
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise ConfigError(f"kind {kind!r}: module {e.name!r} not found (run tapedeck from the project's "
                              f"directory, put it on PYTHONPATH, or install its package)") from None
        raise ConfigError(f"kind {kind!r}: importing {module_name!r} failed: {e}") from None
    except Exception as e:  # a user's module may raise anything while it is imported
        raise ConfigError(f"kind {kind!r}: importing {module_name!r} raised {type(e).__name__}: "
                          f"{_one_line(e)}") from None


def _find(name: str) -> Any:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def _checked(kind: str, target: Any) -> Callable[..., Strategy]:
    if not callable(target):
        raise ConfigError(f"kind {kind!r} is not a class or callable (it is {type(target).__name__})")
    return target  # type: ignore[no-any-return]


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _file_of(module: Any) -> str:
    return getattr(module, "__file__", None) or "no file"


# ------------------------------------------------------------------------------ code identity


def code_identity(engine: Engine) -> dict[str, Any]:
    """What decided this run: tapedeck's version and domain hash, and each strategy's code."""
    return {"tapedeck": {"version": tapedeck.__version__, "domain_sha256": domain_sha256()},
            "strategies": [strategy_identity(s) for s in engine.strategies]}


def domain_sha256(root: Path | None = None) -> str:
    """sha256 over tapedeck's ``domain/`` source (or ``root``): each ``.py``, ``.c`` and ``.pxd`` file's
    relative path, length and bytes, in sorted path order, so an edit, a rename or a new file each
    change it (the ``.c`` and ``.pxd``: the finder's compiled build decides too, setup.py)."""
    root = root or Path(tapedeck.domain.__file__).resolve().parent
    h = hashlib.sha256()
    sources = [p for pattern in ("*.py", "*.c", "*.pxd") for p in root.rglob(pattern)]
    for path in sorted(sources, key=lambda p: p.relative_to(root).as_posix()):
        data = path.read_bytes()
        h.update(f"{path.relative_to(root).as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def strategy_identity(strategy: Strategy) -> dict[str, Any]:
    """The module, class, distribution and source hash of one strategy's class."""
    cls = type(strategy)
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    path = Path(file).resolve() if file and Path(file).is_file() else None
    dist, version = _distribution(cls.__module__, path)
    return {"name": strategy.name, "module": cls.__module__, "class": cls.__qualname__,
            "distribution": dist, "version": version,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest() if path else ""}


def _distribution(module_name: str, path: Path | None) -> tuple[str, str]:
    """The installed distribution that holds ``path`` (by its file list, or as an editable
    install's directory), else none: a project on PYTHONPATH has no version but its hash."""
    top = module_name.split(".")[0]
    if top == "tapedeck":
        return "tapedeck", tapedeck.__version__
    if path is None:
        return "", ""
    for name in sorted(set(_top_level_dists().get(top, []))):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if _holds(dist, path):
            return dist.metadata["Name"], dist.version
    return "", ""


@functools.lru_cache(maxsize=1)
def _top_level_dists() -> dict[str, list[str]]:
    return metadata.packages_distributions()  # scans every installed distribution: once


def _holds(dist: metadata.Distribution, path: Path) -> bool:
    for f in dist.files or ():
        if f.name == path.name and Path(str(dist.locate_file(f))).resolve() == path:
            return True
    direct = dist.read_text("direct_url.json")
    if direct:
        info = json.loads(direct)
        if info.get("dir_info", {}).get("editable") and info.get("url", "").startswith("file://"):
            root = Path(urllib.parse.unquote(urllib.parse.urlparse(info["url"]).path)).resolve()
            return path.is_relative_to(root)
    return False


def code_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between the code a run was recorded with and ``current`` (nothing if unrecorded)."""
    if not recorded:
        return []
    out: list[str] = []
    was, now = recorded.get("tapedeck", {}), current.get("tapedeck", {})
    if was.get("version") != now.get("version"):
        out.append(f"tapedeck {was.get('version')} -> {now.get('version')}")
    if was.get("domain_sha256") != now.get("domain_sha256"):
        out.append("tapedeck domain/ source")
    before = {s.get("name"): s for s in recorded.get("strategies", [])}
    after = {s.get("name"): s for s in current.get("strategies", [])}
    for name in list(before) + [n for n in after if n not in before]:
        a, b = before.get(name), after.get(name)
        if a is None or b is None:
            out.append(f"strategy {name!r} {'added' if a is None else 'removed'}")
            continue
        if (a.get("module"), a.get("class")) != (b.get("module"), b.get("class")):
            out.append(f"strategy {name!r} class {a.get('module')}:{a.get('class')} -> {b.get('module')}:{b.get('class')}")
        elif a.get("sha256") != b.get("sha256"):
            out.append(f"strategy {name!r} source ({b.get('module')})")
        if (a.get("distribution"), a.get("version")) != (b.get("distribution"), b.get("version")):
            out.append(f"strategy {name!r} distribution {_dist(a)} -> {_dist(b)}")
    return out


def _dist(s: dict[str, Any]) -> str:
    return f"{s.get('distribution')} {s.get('version')}".strip() if s.get("distribution") else "none"
