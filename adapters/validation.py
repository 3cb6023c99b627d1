"""What the pydantic-validated files (configs, the pool registry, scenarios) share: a pydantic
error location written as the dotted key a person looks for in the file."""
from __future__ import annotations

from typing import Any


def dotted(loc: tuple[Any, ...]) -> str:
    """``("strategies", 0, "kind")`` -> ``strategies[0].kind``; ``()`` -> ``(top level)``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"
