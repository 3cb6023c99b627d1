"""The compiled build of the arbitrage finder (issue 10): ``domain/cp_optimum.py`` and
``domain/arb_finder.py`` compiled as they are by Cython into extension modules of the same names.

Why: a gap-opening pool update sizes each opportunity with a few hundred small Python steps
(attribute look-ups, calls, tuples) around its exact integer math; compiled, the same source runs
them without the interpreter's dispatch (measured in BENCHMARKS.md). Nothing else changes: the
``.py`` files are the source and the reference, the compiled modules run the very same code on the
very same Python integers (``annotation_typing=False``: annotations are not C types, so no value is
ever narrowed or converted; ``domain/arb_finder.pxd`` makes ``PoolVenue`` an extension type, its
attributes struct fields holding the same Python objects), and ``tests/test_arb_finder_compiled.py``
holds both equal output for output. Python imports an extension module before a ``.py`` of the same name, so with the build in
place ``tapedeck.domain.arb_finder`` is the compiled one; ``TAPEDECK_PURE_PYTHON=1`` (read by the
tests' conftest and the finder benchmark, never by domain/) runs the ``.py`` files instead.

Built by ``pip install -e .`` (``make bootstrap``) and by a wheel build: Cython comes from the
build requirements (pyproject.toml), gcc and the Python headers from the machine. Where either is
missing the extensions are optional (``optional=True``) and the pure modules are what runs.
"""
from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

from setuptools import Extension, setup

COMPILED = ("cp_optimum", "arb_finder")  # tapedeck.domain.<name> from domain/<name>.py
PXD_ROOT = Path("build/pxd")  # Cython finds a module's .pxd by its package path: tapedeck/domain/<name>.pxd


def _pxd_tree() -> None:
    """``domain/<name>.pxd`` (Cython's view of a compiled module: which classes are extension types) copied
    to ``build/pxd/tapedeck/domain/``, where Cython looks for ``tapedeck.domain.<name>``'s (the repository
    root is the ``tapedeck`` package, so the source folder's own name does not say it); copied only
    when changed, so an unchanged ``.pxd`` does not force a rebuild."""
    out = PXD_ROOT / "tapedeck" / "domain"
    out.mkdir(parents=True, exist_ok=True)
    for init in (PXD_ROOT / "tapedeck" / "__init__.pxd", out / "__init__.pxd"):
        if not init.exists():
            init.touch()
    for name in COMPILED:
        src, dst = Path("domain") / f"{name}.pxd", out / f"{name}.pxd"
        if src.exists() and not (dst.exists() and filecmp.cmp(src, dst, shallow=False)):
            shutil.copy2(src, dst)
        elif not src.exists() and dst.exists():
            dst.unlink()

try:
    from Cython.Build import cythonize
except ImportError:  # (no Cython in the build environment: the pure modules only)
    ext_modules = []
else:
    _pxd_tree()
    ext_modules = cythonize(
        [Extension(f"tapedeck.domain.{name}", [f"domain/{name}.py"], optional=True) for name in COMPILED],
        build_dir="build/cython", include_path=[str(PXD_ROOT)],
        compiler_directives={"language_level": 3, "annotation_typing": False, "binding": True},
        quiet=True,
    )

# The closed-form sizing's integer work in C on GMP (domain/_closed_form_gmp.c; Debian's libgmp-dev).
# arb_finder.py calls it where it is built and runs its own Python wherever it declines.
ext_modules.append(Extension("tapedeck.domain._closed_form_gmp", ["domain/_closed_form_gmp.c"], libraries=["gmp"],
                             extra_compile_args=["-O2"], optional=True))

setup(ext_modules=ext_modules)
