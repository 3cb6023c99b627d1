"""Run the finder's pure-Python modules where their compiled build (setup.py) is installed.

Python imports an extension module before a ``.py`` of the same name; ``prefer_pure_python()``
(called by ``tests/conftest.py`` and ``benchmarks/bench_arb_finder.py`` when
``TAPEDECK_PURE_PYTHON=1``) puts a finder first on ``sys.meta_path`` that loads the ``.py`` source of
each compiled module instead, before anything imports them. ``pure_modules()`` loads a private copy
of the pure modules beside the compiled ones, for the tests that compare the two."""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
COMPILED = ("tapedeck.domain.cp_optimum", "tapedeck.domain.arb_finder")  # (setup.py's, in import order)
NATIVE = ("tapedeck.domain._closed_form_gmp",)  # C only (setup.py): pure Python runs without it


def source_of(name: str) -> Path:
    return ROOT.joinpath(*name.split(".")[1:]).with_suffix(".py")


class _PureFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        if fullname in NATIVE:
            raise ModuleNotFoundError(f"{fullname}: pure Python only (TAPEDECK_PURE_PYTHON=1)", name=fullname)
        if fullname not in COMPILED:
            return None
        return importlib.util.spec_from_file_location(fullname, source_of(fullname))


def prefer_pure_python() -> None:
    if not any(isinstance(f, _PureFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _PureFinder())


def stale_builds() -> list[str]:
    """The compiled modules in the tree older than their source (the ``.py``, and its ``.pxd`` if any: an
    edit since the last ``make bootstrap``): Python would import the stale build in place of the edit."""
    out = []
    for name in COMPILED + NATIVE:
        parts = name.split(".")[1:]
        folder = ROOT.joinpath(*parts[:-1])
        sources = [folder / (parts[-1] + s) for s in ((".c",) if name in NATIVE else (".py", ".pxd"))]
        newest = max((s.stat().st_mtime for s in sources if s.exists()), default=None)
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            built = folder / (parts[-1] + suffix)
            if built.exists() and newest is not None and built.stat().st_mtime < newest:
                out.append(str(built.relative_to(ROOT)))
    return out


def is_compiled(module: ModuleType) -> bool:
    return any(str(module.__file__).endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES)


def pure_modules() -> dict[str, ModuleType]:
    """Fresh pure-Python copies of the compiled modules (``tapedeck.domain.cp_optimum`` and
    ``arb_finder``, the latter importing the former's copy, and without the C sizing), not registered
    in ``sys.modules``."""
    out: dict[str, ModuleType] = {}
    saved = {n: sys.modules.get(n) for n in COMPILED + NATIVE}
    blocker = _PureFinder()
    sys.meta_path.insert(0, blocker)
    for n in NATIVE:
        sys.modules.pop(n, None)
    try:
        for name in COMPILED:
            spec = importlib.util.spec_from_file_location(name, source_of(name))
            assert spec is not None and spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod  # (so the next one's ``from tapedeck.domain.cp_optimum import`` gets this copy)
            spec.loader.exec_module(mod)
            out[name] = mod
    finally:
        sys.meta_path.remove(blocker)
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m
    return out
