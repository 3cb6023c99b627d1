"""Published contract builds, read from the npm packages the Makefile installs.

Uniswap ships ``build/<Name>.json``; Aave ships Hardhat artifacts under
``artifacts/contracts/**/<Name>.sol/<Name>.json`` whose bytecode needs its libraries linked.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class ArtifactMissing(FileNotFoundError):
    """A contract build that is not installed; the message says which file and how to install it."""


def node_modules() -> Path:
    return Path(os.environ.get("TAPEDECK_NODE_MODULES") or ROOT / "node_modules")


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str  # hex, 0x-prefixed, possibly with unlinked library placeholders
    link_references: dict[str, dict[str, list[dict[str, int]]]]

    def linked(self, libraries: dict[str, str]) -> str:
        """Bytecode with each library's address written at its byte offsets (Hardhat linkReferences)."""
        code = self.bytecode[2:]
        for _source, libs in self.link_references.items():
            for lib, spots in libs.items():
                if lib not in libraries:
                    raise ValueError(f"{self.name} needs library {lib} linked")
                addr = libraries[lib].lower().removeprefix("0x")
                for spot in spots:
                    start = spot["start"] * 2
                    code = code[:start] + addr + code[start + spot["length"] * 2:]
        return "0x" + code


@lru_cache(maxsize=None)
def load(package: str, name: str) -> Artifact:
    """``load("@uniswap/v2-core", "UniswapV2Pair")`` or ``load("@aave/core-v3", "Pool")``."""
    base = node_modules() / package
    if not base.is_dir():
        raise ArtifactMissing(f"{base} is not installed: run `make bootstrap` (npm ci) in {ROOT}")
    candidates = [base / "build" / f"{name}.json"]
    art_dir = base / "artifacts"
    if art_dir.is_dir():
        candidates += sorted(art_dir.rglob(f"{name}.sol/{name}.json"))
    for path in candidates:
        if path.is_file():
            data = json.loads(path.read_text())
            code = data.get("bytecode") or data.get("evm", {}).get("bytecode", {}).get("object", "")
            if isinstance(code, dict):
                code = code.get("object", "")
            if not code.startswith("0x"):
                code = "0x" + code
            return Artifact(name, data["abi"], code, data.get("linkReferences", {}))
    raise ArtifactMissing(f"no build of {name} in {base} (looked for build/{name}.json and artifacts/**/{name}.sol)")
