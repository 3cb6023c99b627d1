"""Published contract builds, read from the npm packages the Makefile installs (``npm ci``).

Two layouts are read, by package + contract name:

* Uniswap V2 (``@uniswap/v2-core``, ``@uniswap/v2-periphery``): ``build/<Name>.json`` with ``abi`` and
  ``bytecode`` (hex without ``0x``);
* Hardhat (``@aave/core-v3``, ``@uniswap/v3-core``, ``@uniswap/v3-periphery``):
  ``artifacts/contracts/**/<Name>.sol/<Name>.json``; Aave's bytecode holds ``__$…$__`` placeholders
  for its libraries, located by ``linkReferences`` (byte offsets into the code).

``node_modules`` is found beside the repository's ``pyproject.toml`` / ``package.json``, or at
``$TAPEDECK_NODE_MODULES``.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

_ADDRESS = re.compile(r"(0x)?[0-9a-fA-F]{40}")


def repo_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: this file) holding pyproject.toml or package.json."""
    here = (start or Path(__file__)).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() or (d / "package.json").is_file():
            return d
    return Path(__file__).resolve().parents[2]


ROOT = repo_root()


class ArtifactMissing(FileNotFoundError):
    """A contract build that is not installed; the message says which file and how to install it."""


def node_modules() -> Path:
    """Where the npm packages are: ``$TAPEDECK_NODE_MODULES`` or ``<repo root>/node_modules``."""
    return Path(os.environ.get("TAPEDECK_NODE_MODULES") or ROOT / "node_modules")


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str  # hex, 0x-prefixed, possibly with unlinked library placeholders
    link_references: dict[str, dict[str, list[dict[str, int]]]]
    path: Path | None = None

    @property
    def libraries(self) -> list[str]:
        """Names of the libraries this bytecode must be linked against (sorted; empty for most builds)."""
        return sorted({lib for libs in self.link_references.values() for lib in libs})

    def linked(self, libraries: dict[str, str]) -> str:
        """Bytecode with each library's address written at its byte offsets (Hardhat ``linkReferences``).

        ``libraries`` maps a library name (``"BorrowLogic"``) or its fully qualified name
        (``"contracts/.../BorrowLogic.sol:BorrowLogic"``) to its deployed address.
        """
        code = bytearray(self.bytecode[2:], "ascii")
        for source, libs in self.link_references.items():
            for lib, spots in libs.items():
                address = libraries.get(f"{source}:{lib}", libraries.get(lib))
                if address is None:
                    raise ValueError(f"{self.name} needs library {lib} ({source}) linked; "
                                     f"given {sorted(libraries)}")
                if not _ADDRESS.fullmatch(address):
                    raise ValueError(f"library {lib}: {address!r} is not a 20-byte hex address")
                hex_addr = address.lower().removeprefix("0x").encode("ascii")
                for spot in spots:
                    start, length = spot["start"] * 2, spot["length"] * 2
                    if length != 40 or code[start:start + 2] != b"__":
                        raise ValueError(f"{self.name}: no library placeholder for {lib} at byte {spot['start']}")
                    code[start:start + length] = hex_addr
        out = code.decode("ascii")
        if "__" in out:
            raise ValueError(f"{self.name}: unlinked placeholders remain after linking {sorted(libraries)}")
        return "0x" + out


def _missing(path: Path) -> ArtifactMissing:
    nm = node_modules()
    if not nm.is_dir():
        return ArtifactMissing(f"{path} not found: {nm} does not exist. Run `make` in {ROOT} "
                               "(it runs `npm ci` to install the contract builds), or set TAPEDECK_NODE_MODULES.")
    return ArtifactMissing(f"{path} not found. Run `make` in {ROOT} to (re)install the npm packages "
                           "listed in package.json.")


_WATCHERS: list[list[tuple[str, str, Artifact]]] = []  # open ``watch_loads`` lists: (package or "", name, artifact)


class watch_loads:
    """``with watch_loads() as seen:`` lists every artifact ``load``/``load_own`` returns inside the
    block (cached or not; as (package, name, artifact), package "" for ``load_own``): what a deploy used, so a cache of its result can name the builds it
    depends on (``sim.chain.world_cache``)."""

    def __enter__(self) -> list[tuple[str, str, Artifact]]:
        self.seen: list[tuple[str, str, Artifact]] = []
        _WATCHERS.append(self.seen)
        return self.seen

    def __exit__(self, *exc: object) -> None:
        _WATCHERS.remove(self.seen)


def _seen(package: str, name: str, art: Artifact) -> Artifact:
    for seen in _WATCHERS:
        seen.append((package, name, art))
    return art


def load(package: str, name: str) -> Artifact:
    """``load("@uniswap/v2-core", "UniswapV2Pair")`` or ``load("@aave/core-v3", "Pool")``."""
    return _seen(package, name, _load(package, name))


@lru_cache(maxsize=None)
def _load(package: str, name: str) -> Artifact:
    base = node_modules() / package
    if not base.is_dir():
        raise _missing(base)
    candidates = [base / "build" / f"{name}.json"]
    art_dir = base / "artifacts"
    if art_dir.is_dir():
        candidates += _hardhat_builds(art_dir).get(name, [])
    for path in candidates:
        if path.is_file():
            data = json.loads(path.read_text())
            evm_code = data.get("evm", {}).get("bytecode", {})
            code = data.get("bytecode") or evm_code.get("object", "")
            if isinstance(code, dict):
                code = code.get("object", "")
            if not code.startswith("0x"):
                code = "0x" + code
            refs = data.get("linkReferences") or evm_code.get("linkReferences") or {}
            return Artifact(name, data["abi"], code, refs, path)
    raise ArtifactMissing(
        f"no build of {name} in {base} (looked for build/{name}.json and "
        f"artifacts/**/{name}.sol/{name}.json). Run `make` in {ROOT} to (re)install the npm packages.")


@lru_cache(maxsize=None)
def _hardhat_builds(art_dir: Path) -> dict[str, list[Path]]:
    """Every ``**/<Name>.sol/<Name>.json`` under a package's Hardhat ``artifacts``, by name, each list
    sorted (what ``rglob`` of that pattern finds): one walk of the tree per package, where a walk per
    build took ~0.3 s of a sim's start-up (Aave's ~40 builds over ~700 files)."""
    found: dict[str, list[Path]] = {}
    for path in art_dir.rglob("*.json"):
        if path.parent.name == f"{path.stem}.sol":
            found.setdefault(path.stem, []).append(path)
    return {name: sorted(paths) for name, paths in found.items()}


def own_builds() -> Path:
    """Where ``make contracts`` writes tapedeck's own builds: ``$TAPEDECK_BUILD`` or ``<repo root>/build/contracts``."""
    return Path(os.environ.get("TAPEDECK_BUILD") or ROOT / "build" / "contracts")


def load_own(name: str) -> Artifact:
    """One of tapedeck's own contracts (``_load_own``)."""
    return _seen("", name, _load_own(name))


@lru_cache(maxsize=None)
def _load_own(name: str) -> Artifact:
    """One of tapedeck's own contracts (``contracts/<Name>.sol``), as compiled at bootstrap by the
    pinned npm ``solc`` (``contracts/compile.js``): ``build/contracts/<Name>.json``. Nothing is
    compiled or downloaded at run time."""
    path = own_builds() / f"{name}.json"
    if not path.is_file():
        raise ArtifactMissing(f"{path} not found: run `make contracts` (or `make bootstrap`) in {ROOT} to compile "
                              f"contracts/*.sol with the pinned npm solc.")
    data = json.loads(path.read_text())
    return Artifact(name, data["abi"], data["bytecode"], {}, path)
