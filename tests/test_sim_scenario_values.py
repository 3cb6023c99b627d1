"""The shipped scenarios load to exactly the values the hand-written loader gave them.

``tests/data/scenario_values.json`` was written once by the loader before the pydantic rewrite
(``python tests/test_sim_scenario_values.py`` run on commit 44827e7): every field of every shipped
scenario, each leaf with its type and ``repr`` (so ``Decimal('3000.00')`` differs from
``Decimal('3000')`` and ``12`` from ``12.0``). Regenerate it only for a deliberate change of a
scenario file or of a default.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
VALUES = ROOT / "tests" / "data" / "scenario_values.json"
SHIPPED = ["cex-dex-dislocation", "eth-crash", "oracle-jump", "perp-taker-flow", "quiet"]


def encode(value: Any) -> Any:
    """A loaded scenario as plain JSON: objects by class and field, leaves as ``repr`` (type included)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"__class__": type(value).__name__}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if f.name == "file":  # where the checkout (or the installed package) is differs; the file must not
                v = Path(v).name
            out[f.name] = encode(v)
        return out
    if isinstance(value, tuple):
        return [encode(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str, Decimal)):
        return repr(value)
    raise TypeError(f"unexpected value in a scenario: {value!r}")


def dump() -> dict[str, Any]:
    from tapedeck.sim.scenario import load_scenario

    return {name: encode(load_scenario(name)) for name in SHIPPED}


def _leaves(tree: Any, path: str = "") -> dict[str, str]:
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _leaves(sub, f"{path}.{key}" if path else key).items()}
    if isinstance(tree, list):
        return {k: v for i, sub in enumerate(tree) for k, v in _leaves(sub, f"{path}[{i}]").items()}
    return {path: tree}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_loads_to_the_recorded_values(name: str) -> None:
    from tapedeck.sim.scenario import load_scenario

    expected = _leaves(json.loads(VALUES.read_text(encoding="utf-8"))[name])
    got = _leaves(encode(load_scenario(name)))
    assert len(expected) > 50  # every field, not a summary
    assert {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v} == {}
    assert sorted(got) == sorted(expected)


def test_the_recording_covers_every_field_of_every_table() -> None:
    """The five files between them exercise each dataclass the loader builds."""
    recorded = json.loads(VALUES.read_text(encoding="utf-8"))
    classes = {v for leaf_path, v in _leaves(recorded).items() if leaf_path.endswith("__class__")}
    assert classes == {"Scenario", "ReferencePath", "Move", "Chain", "Link", "Latency", "Oracle", "Venue", "Pool",
                       "Agents", "Searchers", "Borrowers", "Background", "Copycats"}
    assert sorted(recorded) == SHIPPED


if __name__ == "__main__":  # regenerate (see the module docstring)
    VALUES.parent.mkdir(parents=True, exist_ok=True)
    VALUES.write_text(json.dumps(dump(), indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"wrote {VALUES}", file=sys.stderr)
