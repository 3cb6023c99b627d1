"""The sim by noun: the kernel knows no process or venue, processes know no venue, the world wires
them; no module of the sim imports another that (directly or not) imports it back, not even from
inside a function."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parent.parent / "sim"


def _module(path: Path) -> str:
    rel = path.relative_to(SIM.parent).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return "tapedeck." + ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Every ``tapedeck.sim`` module -> the ``tapedeck.sim`` modules it imports anywhere in its source."""
    modules = {_module(p): p for p in SIM.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(graph[m])
    return seen


def test_the_graph_is_read_from_the_real_sources() -> None:
    g = import_graph()
    assert "tapedeck.sim.kernel" in g["tapedeck.sim.venues.cex"]
    assert {"tapedeck.sim.venues.cex", "tapedeck.sim.venues.perp", "tapedeck.sim.processes"} <= g["tapedeck.sim.world"]
    assert "tapedeck.sim.venues.cex" in g["tapedeck.sim.gateway"]  # a function-level import counts too


def test_no_import_cycle_in_the_sim() -> None:
    g = import_graph()
    cycles = sorted(m for m in g if m in reachable(g, m))
    assert cycles == [], f"modules that import themselves back: {cycles}"


@pytest.mark.parametrize("module,forbidden", [
    ("tapedeck.sim.kernel", ("tapedeck.sim.processes", "tapedeck.sim.world", "tapedeck.sim.venues")),
    ("tapedeck.sim.processes", ("tapedeck.sim.world", "tapedeck.sim.venues")),
    ("tapedeck.sim.venues.cex", ("tapedeck.sim.world",)),
    ("tapedeck.sim.venues.perp", ("tapedeck.sim.world",)),
    ("tapedeck.sim.scenario", ("tapedeck.sim.kernel", "tapedeck.sim.processes", "tapedeck.sim.world",
                               "tapedeck.sim.venues")),
])
def test_layers(module: str, forbidden: tuple[str, ...]) -> None:
    below = reachable(import_graph(), module)
    assert not [m for m in below if m.startswith(forbidden)], sorted(below)


@pytest.mark.parametrize("module", ["tapedeck.sim.venues.perp", "tapedeck.sim.processes", "tapedeck.sim.kernel",
                                    "tapedeck.sim.world", "tapedeck.sim.recording"])
def test_each_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """Whichever module is imported first, it loads (a cycle shows up as a partially initialised module)."""
    r = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
