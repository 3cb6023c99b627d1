"""Parameter sweeps on Dask: every (scenario, seed, parameter set) is one task that runs a sim (or a
replay of a recorded log) and records its own run; the table is computed from those runs' events.

``tapedeck sweep SCENARIO... --seeds 1-100 --set strategies[4].min_profit=1_000_000,5_000_000``

* **The grid.** Sources (a scenario name or TOML path, or a run file ``*.db`` to replay) x seeds x
  parameter sets; the sets are the product of the ``--set`` options, in the order given. A replay
  is fixed by its log, so a log gives one cell per parameter set (seed empty). Each cell carries its
  seed and its full config into its task, so no result depends on which worker ran it, when, or
  how often: the tables are sorted by (scenario, set, seed) and the same sweep gives the same bytes.
* **Overrides.** ``--set PATH=V1,V2,...``: PATH is a config path (``risk.kill_switch``,
  ``strategies[4].min_profit``, ``risk.venues."aave-v3:ethereum".max_notional``), the values TOML
  literals (``5_000_000``, ``"0.50"``, ``true``; a word that is no TOML literal is a string). Before
  any task starts, every path is walked against the config schema (``runtime.config_model``: an
  unknown key or an index past the list is refused by name) and every parameter set is applied and
  built the way its task will build it (schema, the sim's completion, the strategies' constructors,
  which refuse parameters they do not have), so a typo is one line naming it, not 300 failed tasks.
* **Dask.** The default is a ``distributed.LocalCluster`` of worker processes (one thread each, one
  per core, bound to 127.0.0.1); ``--scheduler ADDRESS`` submits to an existing cluster, whose
  workers must have tapedeck installed and see DIR at the same path. A task that raises is retried
  (``retries``); a task whose worker dies is rescheduled by the scheduler (its
  ``allowed-failures``). Each attempt is noted under ``DIR/.attempts`` so the sweep reports what was
  retried and why; a task that fails every attempt is a row with ``status`` ``failed: ...``, never
  dropped. Progress is a counter on stderr.
* **The tables** (``sweep.csv``/``sweep.parquet`` one row per task, ``sweep-summary.csv``/
  ``sweep-summary.parquet`` one row per (scenario, set) and per set over all of them; a replayed log
  is a "scenario" named by its file, ``kind`` ``replay``): figures are
  folded from each run's recorded events by ``runtime.outcomes`` (the same fold ``inspect`` and
  ``sim`` print), for the strategy the sweep varies (or ``--strategy NAME``, or ``all`` summed).
  PnL is USDC, exact (Parquet ``decimal128(38, 6)``); percentiles are nearest-rank (an observed
  value, ``ceil(p/100 * n)``-th smallest), the mean rounded half-even to the base unit.

Test hook: ``run_sweep(..., faults={cell id: "raise" | "kill"})`` makes those cells raise, or
SIGKILL their worker process, half-way through their first attempt (cell ids as in the
``.attempts`` notes: ``<source>/s<set>-seed<seed>``); the command line has no way to ask for it.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
import signal
import sys
import tomllib
import typing
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import product
from pathlib import Path
from typing import Any, Callable, Iterable

from pydantic import BaseModel

SEED_MAX = 2**64 - 1
DEFAULT_RETRIES = 2
PERCENTILES = (5, 50, 95)
FAULTS = ("raise", "kill")
ALL = "all"
TASKS_FILE, SUMMARY_FILE = "sweep", "sweep-summary"
USDC = Decimal("0.000001")


class SweepError(ValueError):
    """A sweep that cannot start as asked; one line per problem, naming the option and what is wrong."""


# ----------------------------------------------------------------------------- the grid


def parse_seeds(text: str) -> list[int]:
    """``"1-100"``, ``"7"``, ``"1,5,10-12"`` -> the seeds, sorted, each once."""
    seeds: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not m:
            raise SweepError(f"--seeds {text}: {part!r} is not a seed or a range (like 1-100)")
        lo, hi = int(m[1]), int(m[2] if m[2] is not None else m[1])
        if hi < lo:
            raise SweepError(f"--seeds {text}: range {part} ends before it starts")
        if hi > SEED_MAX:
            raise SweepError(f"--seeds {text}: {hi} is above the largest seed (2**64 - 1)")
        if hi - lo >= 1_000_000:
            raise SweepError(f"--seeds {text}: range {part} has more than a million seeds")
        seeds.update(range(lo, hi + 1))
    return sorted(seeds)


Key = str | int


@dataclass(frozen=True)
class Override:
    """One ``--set PATH=V1,V2,...``: the path's keys and the values it takes, in order."""

    path: str
    keys: tuple[Key, ...]
    values: tuple[Any, ...]


def parse_path(path: str) -> tuple[Key, ...]:
    """``strategies[4].min_profit`` -> ``("strategies", 4, "min_profit")``; quoted keys may hold dots."""
    keys: list[Key] = []
    i, n = 0, len(path)
    while i < n:
        if path[i] == "[":
            m = re.compile(r"\[(\d+)\]").match(path, i)
            if not m:
                raise SweepError(f"--set {path}: expected [index] at {path[i:]!r}")
            keys.append(int(m[1]))
            i = m.end()
        else:
            if keys:
                if path[i] != ".":
                    raise SweepError(f"--set {path}: expected '.' or '[' at {path[i:]!r}")
                i += 1
            m = re.compile(r'"([^"]+)"|([A-Za-z0-9_-]+)').match(path, i)
            if not m:
                raise SweepError(f"--set {path}: expected a key at {path[i:]!r}")
            keys.append(m[1] if m[1] is not None else m[2])
            i = m.end()
    if not keys or not isinstance(keys[0], str):
        raise SweepError(f"--set {path}: a path starts with a key (like strategies[0].min_profit)")
    return tuple(keys)


def parse_values(text: str, where: str) -> tuple[Any, ...]:
    """TOML literals separated by commas (a TOML array's items); a bare word is a string."""
    try:
        values = tomllib.loads(f"v = [{text}]")["v"]
    except tomllib.TOMLDecodeError:
        values = []
        for item in (s.strip() for s in text.split(",")):
            try:
                values.append(tomllib.loads(f"v = {item}")["v"])
            except tomllib.TOMLDecodeError:
                values.append(item)
    if not values or any(v == "" for v in values):
        raise SweepError(f"--set {where}: give one or more values after '=' (like =10,50,100)")
    return tuple(values)


def parse_set(text: str) -> Override:
    path, sep, values = text.partition("=")
    path = path.strip()
    if not sep or not path:
        raise SweepError(f"--set {text}: expected PATH=VALUE[,VALUE...] (like strategies[0].min_profit=10,50,100)")
    return Override(path, parse_path(path), parse_values(values, text))


def check_path(config: dict[str, Any], keys: tuple[Key, ...], path: str, where: str) -> None:
    """Walk ``keys`` along the config schema and ``config``: an unknown key of a schema table, a key
    on a value that is no table, or an index past a list is a ``SweepError`` naming it."""
    from tapedeck.adapters.validation import dotted
    from tapedeck.runtime.config_model import ConfigModel

    shape: Any = ConfigModel  # a model class, ("map", shape), ("list", shape), or None (free)
    node: Any = config
    for depth, k in enumerate(keys):
        here = dotted(keys[:depth])
        if isinstance(k, int):
            if not (isinstance(shape, tuple) and shape[0] == "list") and not isinstance(node, list):
                raise SweepError(f"--set {path}: {here} is not a list ({where})")
            if not isinstance(node, list) or k >= len(node):
                have = len(node) if isinstance(node, list) else 0
                raise SweepError(f"--set {path}: {here} has {have} entr{'y' if have == 1 else 'ies'}, "
                                 f"no [{k}] ({where})")
            shape = shape[1] if isinstance(shape, tuple) else None
            node = node[k]
            continue
        if isinstance(shape, type) and issubclass(shape, BaseModel):
            fields = shape.model_fields
            if k not in fields:
                if shape.model_config.get("extra") != "allow":
                    loc = f" in {here}" if depth else ""
                    raise SweepError(f"--set {path}: unknown key {k!r}{loc} (known: {', '.join(sorted(fields))})")
                shape = None  # a strategy's own parameter: its constructor checks it (below)
            else:
                shape = _shape(fields[k].annotation)
        elif isinstance(shape, tuple) and shape[0] == "map":
            shape = shape[1]
        elif isinstance(shape, tuple) and shape[0] == "list":
            raise SweepError(f"--set {path}: {here} is a list: index it ({here}[0]...)")
        elif shape is None and node is not None and not isinstance(node, dict):
            raise SweepError(f"--set {path}: {here} is {node!r}, not a table ({where})")
        elif shape == "leaf":
            raise SweepError(f"--set {path}: {here} is a value, not a table")
        node = node.get(k) if isinstance(node, dict) else None


def _shape(annotation: Any) -> Any:
    """What a schema field holds: a model class, ("map", inner), ("list", inner), None (free), "leaf"."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _shape(args[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType")):
        inner = [a for a in args if a is not type(None)]
        return _shape(inner[0]) if len(inner) == 1 else "leaf"
    if origin is dict:
        return ("map", _shape(args[1]) if args[1] is not Any else None)
    if origin is list:
        return ("list", _shape(args[0]) if args and args[0] is not Any else None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if annotation is Any:
        return None
    return "leaf"


def apply(config: dict[str, Any], assignments: Iterable[tuple[Override, Any]]) -> dict[str, Any]:
    """A deep copy of ``config`` with each override's key set to its value (missing tables made)."""
    out = copy.deepcopy(config)
    for o, value in assignments:
        node: Any = out
        for k, nxt in zip(o.keys, o.keys[1:]):
            if isinstance(k, str) and k not in node:
                node[k] = [] if isinstance(nxt, int) else {}
            node = node[k]
        node[o.keys[-1]] = value
    return out


@dataclass(frozen=True)
class Source:
    """One source of the grid: a scenario (``scenario`` set) or a run file to replay (``log`` set)."""

    arg: str  # as given on the command line
    label: str  # its name in the table and under DIR/runs
    kind: str  # "sim" | "replay"
    config: dict[str, Any]
    config_file: str
    scenario: Any = None
    log: str = ""


@dataclass(frozen=True)
class Cell:
    index: int  # position in the grid (the tables' order)
    source: int
    label: str
    kind: str
    seed: int | None
    set_index: int
    params: tuple[tuple[str, Any], ...]
    config: dict[str, Any]  # the source's config with this set applied (a sim completes it in its task)
    strategy: str  # whose outcome the row reports, or ALL
    run: str  # the run file, relative to DIR
    scenario: Any = None
    log: str = ""
    chain: str = "revm"
    scenario_file: str = ""

    @property
    def id(self) -> str:
        seed = "" if self.seed is None else f"-seed{self.seed}"
        return f"{self.label}/s{self.set_index}{seed}"


@dataclass
class SweepPlan:
    sources: list[Source]
    overrides: list[Override]
    seeds: list[int]
    sets: list[tuple[tuple[str, Any], ...]]
    cells: list[Cell]
    notes: list[str] = field(default_factory=list)


def is_log(arg: str) -> bool:
    return arg.endswith(".db") or (Path(arg).is_file() and Path(arg).suffix not in (".toml",))


def plan_sweep(sources: list[str], *, seeds: list[int] | None, sets: list[str], config_path: str | None = None,
               duration: float | None = None, chain: str = "revm", strategy: str | None = None) -> SweepPlan:
    """The grid of a sweep, every parameter set checked as its task will build it; ``SweepError`` if not."""
    from tapedeck.adapters import config_files
    from tapedeck.runtime.config_model import ConfigInvalid, validate_config

    if not sources:
        raise SweepError("give one or more scenarios (or run files to replay)")
    overrides = [parse_set(s) for s in sets]
    paths = [o.path for o in overrides]
    if len(set(paths)) != len(paths):
        dup = next(p for p in paths if paths.count(p) > 1)
        raise SweepError(f"--set {dup}: given twice (list all its values in one --set)")
    if duration is not None and not duration > 0:
        raise SweepError(f"--duration {duration}: must be a positive number of simulated seconds")
    configs: dict[str, dict[str, Any]] = {}

    def config_for(kind: str) -> tuple[dict[str, Any], str]:
        file = config_path or str(config_files.ROOT / "fixtures" / "config" /
                                  ("sim-default.toml" if kind == "sim" else "default.toml"))
        if file not in configs:
            try:
                configs[file] = validate_config(config_files.load_config(file), file)
            except (config_files.ConfigFileError, ConfigInvalid) as e:
                raise SweepError(str(e)) from None
        return configs[file], file

    loaded: list[Source] = []
    labels: dict[str, str] = {}
    for arg in sources:
        if is_log(arg):
            from tapedeck.adapters.eventlog import EventLog, EventLogError

            try:
                EventLog.open(arg).close()
            except EventLogError as e:
                raise SweepError(str(e)) from None
            label, kind = Path(arg).stem, "replay"
            cfg, file = config_for(kind)
            src = Source(arg, label, kind, cfg, file, log=str(Path(arg).resolve()))
        else:
            from tapedeck.sim.scenario import ScenarioError, load_scenario

            try:
                sc = load_scenario(arg)
            except ScenarioError as e:
                raise SweepError(str(e)) from None
            if duration is not None:
                sc = replace(sc, duration=float(duration))
            label, kind = sc.name, "sim"
            cfg, file = config_for(kind)
            src = Source(arg, label, kind, cfg, file, scenario=sc)
        label = re.sub(r"[^A-Za-z0-9._-]", "_", label)  # it names a folder under DIR/runs
        src = replace(src, label=label)
        if label in labels:
            raise SweepError(f"{arg}: named {label!r} like {labels[label]}; give each source once "
                             f"(copy a scenario under another name to run it twice)")
        labels[label] = arg
        loaded.append(src)

    for src in loaded:  # every path against the schema and this source's config
        for o in overrides:
            check_path(src.config, o.keys, o.path, src.config_file)
    grid = [tuple(zip(paths, combo)) for combo in product(*(o.values for o in overrides))] or [()]
    for src in loaded:  # every set built as its task will build it
        for params in grid:
            _check_set(src, overrides, params)

    cells: list[Cell] = []
    for si, src in enumerate(loaded):
        names = _strategy_names(src.config)
        chosen = _chosen_strategy(overrides, names, strategy, src)
        cell_seeds: list[int | None] = list(seeds or [src.scenario.seed]) if src.kind == "sim" else [None]
        for k, params in enumerate(grid):
            config = apply(src.config, zip(overrides, (v for _, v in params)))
            for seed in cell_seeds:
                run = f"runs/{src.label}/s{k}" + ("" if seed is None else f"-seed{seed}") + ".db"
                cells.append(Cell(len(cells), si, src.label, src.kind, seed, k, params, config, chosen, run,
                                  scenario=src.scenario.with_seed(seed) if src.kind == "sim" else None,
                                  log=src.log, chain=chain, scenario_file=src.arg if src.kind == "sim" else ""))
    notes = [f"{s.arg}: a replay is fixed by its log: one task per parameter set (seeds do not apply)"
             for s in loaded if s.kind == "replay" and seeds]
    return SweepPlan(loaded, overrides, list(seeds or []), grid, cells, notes)


def _check_set(src: Source, overrides: list[Override], params: tuple[tuple[str, Any], ...]) -> None:
    from tapedeck.domain.strategies import ConfigError
    from tapedeck.runtime.config_model import ConfigInvalid, validate_config
    from tapedeck.runtime.strategy_loader import build_engine

    label = ", ".join(f"{p}={_show(v)}" for p, v in params) or "(no --set)"
    where = f"--set {label}"
    try:
        config = validate_config(apply(src.config, zip(overrides, (v for _, v in params))), where)
        if src.kind == "sim":
            from tapedeck.sim.cex_dex_config import complete as complete_cex_dex
            from tapedeck.sim.liquidator_config import SimConfigError, complete

            try:
                config, _ = complete(config, src.scenario)
                config, _ = complete_cex_dex(config, src.scenario)
            except SimConfigError as e:
                raise SweepError(f"{where}: {src.arg}: {e}") from None
        build_engine(config)
    except ConfigInvalid as e:
        raise SweepError(str(e)) from None
    except ConfigError as e:
        raise SweepError(f"{where}: {e} ({src.config_file})") from None
    except (TypeError, ValueError) as e:
        if isinstance(e, SweepError):
            raise
        raise SweepError(f"{where}: {type(e).__name__}: {e} ({src.config_file})") from None


def _strategy_names(config: dict[str, Any]) -> list[str]:
    return [str(s.get("name") or s.get("kind")) for s in config.get("strategies") or []]


def _chosen_strategy(overrides: list[Override], names: list[str], strategy: str | None, src: Source) -> str:
    """``--strategy``, else the one strategy every ``--set`` varies, else all strategies summed."""
    if strategy is not None:
        if strategy != ALL and strategy not in names:
            raise SweepError(f"--strategy {strategy}: {src.config_file} has no strategy of that name "
                             f"(known: {', '.join(names) or 'none'}; or 'all')")
        return strategy
    varied = {o.keys[1] for o in overrides if o.keys[0] == "strategies" and len(o.keys) > 1}
    if len(varied) == 1 and len(overrides) == sum(1 for o in overrides if o.keys[0] == "strategies"):
        return names[int(next(iter(varied)))]  # type: ignore[arg-type]
    return ALL


def _show(value: Any) -> str:
    """A value as the table shows it (JSON: ``5000000``, ``"0.50"``, ``true``)."""
    return json.dumps(value, sort_keys=True, default=str)


# ----------------------------------------------------------------------------- one task


def run_cell(cell: Cell, out_dir: str, fault: str = "") -> dict[str, Any]:
    """Run one cell into ``out_dir/cell.run`` (overwriting what a killed attempt left) and return its
    row, folded from the recorded events. Runs in a Dask worker (or in a plain loop). ``fault``
    (tests only): "raise" or "kill" half-way through the first attempt.

    A retry (any attempt after the first) runs in a fresh Python process of its own
    (``_attempt_isolated``): whatever a failed attempt left in the worker process (threads, open
    database connections, half-collected state: a retry once failed in ``EventLog.create`` with
    SQLite's "cannot commit transaction - SQL statements in progress" right after a faulted task in
    the same worker, never reproduced) cannot reach it. The row is the same either way (each cell
    carries its seed and config)."""
    attempt = _note_attempt(out_dir, cell)
    try:
        if attempt > 1:
            return _attempt_isolated(cell, Path(out_dir) / cell.run, out_dir, attempt)
        return _attempt(cell, Path(out_dir) / cell.run, fault)
    except Exception as e:
        why = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        _note(out_dir, cell, f"attempt {attempt} failed: {why}")
    # Raised afresh, outside the handler: the worker keeps a failed task's exception, and the original's
    # traceback would keep the failed run's frames (its store, its chain) alive in the worker process.
    import gc

    gc.collect()
    raise SweepTaskFailed(f"{cell.id}: {why}")


ISOLATED = """
import pickle, sys
from tapedeck.runtime import sweep
cell, out = pickle.load(open(sys.argv[1], "rb"))
row = sweep._attempt(cell, out, "")
with open(sys.argv[2], "wb") as f:
    pickle.dump(row, f)
"""


def _attempt_isolated(cell: Cell, out: Path, out_dir: str | Path, attempt: int) -> dict[str, Any]:
    """``_attempt`` in a child process (``sys.executable``); its failure is raised here with the
    child's last line (the exception it died of)."""
    import pickle
    import subprocess

    work = _attempts_dir(out_dir)
    work.mkdir(parents=True, exist_ok=True)
    stem = cell.id.replace("/", "__") + f".{attempt}"
    args, result = work / f"{stem}.in.pickle", work / f"{stem}.out.pickle"
    result.unlink(missing_ok=True)
    with open(args, "wb") as f:
        pickle.dump((cell, out), f)
    _note(out_dir, cell, f"isolated: attempt {attempt} runs in a fresh process")
    try:
        done = subprocess.run([sys.executable, "-c", ISOLATED, str(args), str(result)], capture_output=True,
                              text=True)
        if done.returncode != 0 or not result.exists():
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            raise SweepTaskFailed(lines[-1] if lines else f"the attempt's process exited {done.returncode}")
        with open(result, "rb") as f:
            return pickle.load(f)
    finally:
        args.unlink(missing_ok=True)
        result.unlink(missing_ok=True)


def _attempt(cell: Cell, out: Path, fault: str) -> dict[str, Any]:
    from tapedeck.runtime.bootstrap import build_run, open_store

    if cell.kind == "sim":
        from tapedeck.sim.cex_dex_config import complete as complete_cex_dex
        from tapedeck.sim.liquidator_config import complete

        config, _ = complete(cell.config, cell.scenario)
        config, _ = complete_cex_dex(config, cell.scenario)
        start, span = cell.scenario.start_ns, cell.scenario.duration * 1e9

        def progress(s: Any) -> None:
            if fault and s.last_ts - start >= span / 2:
                _inject(fault, cell)

        build_run("sim", config, out=out, scenario=cell.scenario, overwrite=True, progress=progress,
                  chain=cell.chain, scenario_file=cell.scenario_file).run()
    else:
        config = cell.config
        if fault:
            _inject(fault, cell)
        source = open_store(cell.log)
        try:
            build_run("replay", config, out=out, source=source, overwrite=True).run()
        finally:
            source.close()
    return measure(out, config, cell)


class SweepTaskFailed(RuntimeError):
    """A cell's attempt failed (the message names the cell and the original exception)."""


def measure(path: Path, config: dict[str, Any], cell: Cell) -> dict[str, Any]:
    """A cell's row from its recorded run: outcomes folded from the events, decisions counted, digest read."""
    from tapedeck.adapters.eventlog import EventLog
    from tapedeck.domain import events as ev
    from tapedeck.runtime.outcomes import eth_price_source, outcomes

    counts = {"decisions": 0, "events": 0}

    def counted(events: Iterable[ev.Event]) -> Iterable[ev.Event]:
        for e in events:
            counts["events"] += 1
            if e.KIND == ev.DECISION:
                counts["decisions"] += 1
            yield e

    with EventLog.open(path) as log:
        found = outcomes(counted(log.events()), eth_price_source(config))
        assert log.integrity is not None
        digest, ended = log.integrity.digest, log.integrity.ended
    if cell.strategy == ALL:
        picked = list(found.values())
    else:
        picked = [found[cell.strategy]] if cell.strategy in found else []
    won, lost = sum(s.won for s in picked), sum(s.lost for s in picked)
    return {"status": "ok" if ended == "clean" else f"ended {ended}",
            "pnl": sum(s.pnl for s in picked), "opportunities": sum(s.opportunities for s in picked),
            "intents": sum(s.intents for s in picked), "won": won, "lost": lost,
            "priced_fills": sum(s.priced_fills for s in picked),
            "losing_fills": sum(s.paper_losing + s.executed_losing for s in picked),
            "pending": sum(s.pending for s in picked), "gas_wei": sum(s.gas_wei for s in picked),
            "decisions": counts["decisions"], "events": counts["events"], "digest": digest}


def _attempts_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / ".attempts"


def _note_file(out_dir: str | Path, cell: Cell) -> Path:
    return _attempts_dir(out_dir) / (cell.id.replace("/", "__") + ".txt")


def _note(out_dir: str | Path, cell: Cell, line: str) -> None:
    f = _note_file(out_dir, cell)
    f.parent.mkdir(parents=True, exist_ok=True)
    with open(f, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _note_attempt(out_dir: str | Path, cell: Cell) -> int:
    """Append a start line for this attempt; returns its number (1 for the first)."""
    f = _note_file(out_dir, cell)
    n = 1 + (sum(1 for line in f.read_text().splitlines() if line.startswith("start")) if f.exists() else 0)
    _note(out_dir, cell, f"start {n}")
    return n


def _inject(fault: str, cell: Cell) -> None:
    if fault == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"injected fault in {cell.id} (a test's)")


def attempt_notes(out_dir: str | Path, cell: Cell) -> list[str]:
    """What the attempts of a cell that ran more than once said (an attempt that noted no end was
    cut short: its worker died)."""
    f = _note_file(out_dir, cell)
    if not f.exists():
        return []
    lines = f.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("start")]
    if len(starts) < 2:
        return []
    said = []
    for n, (i, j) in enumerate(zip(starts, starts[1:] + [len(lines)]), start=1):
        failed = [line for line in lines[i + 1:j] if line.startswith("attempt")]
        if failed:
            said.append(failed[0])
        elif j != len(lines):
            said.append(f"attempt {n} did not finish (its worker process died)")
    return said


# ----------------------------------------------------------------------------- running


@dataclass
class SweepResult:
    plan: SweepPlan
    rows: list[dict[str, Any]]  # one per cell, in grid order
    retried: dict[str, list[str]]  # cell id -> what its earlier attempts said
    failed: dict[str, str]  # cell id -> why its last attempt failed
    workers: int


def default_workers() -> int:
    """This machine's cores (the ones this process may run on)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_sweep(plan: SweepPlan, out_dir: str | Path, *, scheduler: str | None = None, workers: int | None = None,
              retries: int = DEFAULT_RETRIES, progress: Callable[[int, int, Cell, str], None] | None = None,
              client: Any = None, faults: dict[str, str] | None = None,
              connected: Callable[[int], None] | None = None) -> SweepResult:
    """Run every cell of ``plan`` as a Dask task (a local cluster unless ``scheduler`` or ``client``);
    ``progress(done, total, cell, status)`` after each. The rows come back in grid order. ``faults``
    is the test hook (see the module's doc); ``connected(workers)`` is called once the cluster is there."""
    import shutil

    from distributed import Client, LocalCluster, as_completed

    faults = faults or {}
    bad = {k: v for k, v in faults.items() if v not in FAULTS or k not in {c.id for c in plan.cells}}
    if bad:
        raise SweepError(f"faults {bad}: each names a cell id of the plan and one of {FAULTS}")
    out = Path(out_dir).resolve()
    cluster = None
    own_client = client is None
    if client is None:
        if scheduler:
            try:
                client = Client(scheduler, timeout="10s")
            except (OSError, TimeoutError, ValueError) as e:
                raise SweepError(f"--scheduler {scheduler}: cannot connect: {e}") from None
        else:
            import logging

            cluster = LocalCluster(n_workers=workers or default_workers(), threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
    try:
        out.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(_attempts_dir(out), ignore_errors=True)
        n_workers = len(client.scheduler_info().get("workers", {}))
        if connected is not None:
            connected(n_workers)
        token = hashlib.blake2b(str(out).encode(), digest_size=6).hexdigest()
        futures = {}
        for cell in plan.cells:
            f = client.submit(run_cell, cell, str(out), faults.get(cell.id, ""), key=f"tapedeck-sweep-{token}-{cell.index}", pure=False,
                              retries=retries)
            futures[f.key] = (f, cell)
        results: dict[int, dict[str, Any]] = {}
        failed: dict[str, str] = {}
        done = 0
        for f in as_completed([f for f, _ in futures.values()]):
            cell = futures[f.key][1]
            if f.status == "finished":
                results[cell.index] = f.result()
                status = results[cell.index]["status"]
            else:
                try:
                    exc: BaseException = f.exception()
                except BaseException as e:  # cancelled: the scheduler gave up on it
                    exc = e
                why = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                failed[cell.id] = why
                results[cell.index] = {"status": f"failed: {why}"}
                status = "failed"
            done += 1
            if progress is not None:
                progress(done, len(plan.cells), cell, status)
            f.release()
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()
    retried = {c.id: notes for c in plan.cells if (notes := attempt_notes(out, c))}
    rows = [{**_keys(plan, c), **results[c.index]} for c in plan.cells]
    return SweepResult(plan, rows, retried, failed, n_workers)


def run_loop(plan: SweepPlan, out_dir: str | Path) -> list[dict[str, Any]]:
    """The same cells one after another in this process (no Dask): the benchmark's baseline."""
    out = Path(out_dir).resolve()
    return [{**_keys(plan, c), **run_cell(c, str(out))} for c in plan.cells]


def _keys(plan: SweepPlan, cell: Cell) -> dict[str, Any]:
    return {"scenario": cell.label, "kind": cell.kind, "seed": cell.seed, "set": cell.set_index,
            "params": dict(cell.params), "strategy": cell.strategy, "run": cell.run}


# ----------------------------------------------------------------------------- the tables


def _param_type(values: list[Any]) -> str:
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "float"
    if all(isinstance(v, bool) for v in values):
        return "bool"
    return "json"


def _param_columns(plan: SweepPlan) -> list[tuple[str, str]]:
    return [(o.path, _param_type(list(o.values))) for o in plan.overrides]


def _param_value(value: Any, kind: str) -> Any:
    if kind == "float":
        return float(value)
    if kind == "json":
        return _show(value)
    return value


def _usdc(base_units: int | None) -> Decimal | None:
    return None if base_units is None else (Decimal(base_units) * USDC).quantize(USDC)


def _win_rate(fills: int | None, losing: int | None) -> float | None:
    """The share of the fills whose PnL could be valued that did not lose money (paper or executed,
    fees and gas included): the sign of what they earned, not whether a venue filled them."""
    return round((fills - (losing or 0)) / fills, 6) if fills else None


def task_rows(result: SweepResult) -> list[dict[str, Any]]:
    """The per-task table, one dict per cell in grid order (the tables' columns, in order)."""
    cols = _param_columns(result.plan)
    out = []
    for r in result.rows:
        ok = "pnl" in r
        row = {"scenario": r["scenario"], "kind": r["kind"], "seed": r["seed"], "set": r["set"]}
        row.update({p: _param_value(r["params"][p], k) for p, k in cols})
        row.update({"strategy": r["strategy"], "status": r["status"],
                    "pnl_usdc": _usdc(r["pnl"]) if ok else None,
                    "win_rate": _win_rate(r.get("priced_fills"), r.get("losing_fills")) if ok else None})
        for k in ("opportunities", "intents", "won", "lost", "pending", "decisions", "events"):
            row[k] = r.get(k)
        row["gas_eth"] = (Decimal(r["gas_wei"]) / 10**18).quantize(Decimal(10) ** -18) if ok else None
        row["priced_fills"], row["losing_fills"] = r.get("priced_fills"), r.get("losing_fills")
        row["digest"] = r.get("digest")
        row["run"] = r["run"]
        out.append(row)
    return out


def nearest_rank(sorted_values: list[Any], p: float) -> Any:
    """The ``ceil(p/100 * n)``-th smallest (1-based; the smallest for p = 0): an observed value."""
    return sorted_values[max(1, math.ceil(p / 100 * len(sorted_values))) - 1]


def summary_rows(result: SweepResult) -> list[dict[str, Any]]:
    """One row per (scenario, set), then one per set over every scenario (``scenario`` = ``*``)."""
    plan, tasks = result.plan, task_rows(result)
    cols = _param_columns(plan)
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in tasks:
        groups.setdefault((row["scenario"], row["set"]), []).append(row)
        if len(plan.sources) > 1:
            groups.setdefault(("\uffff", row["set"]), []).append(row)  # sorts last; shown as "*"
    out = []
    for (source, k) in sorted(groups, key=lambda g: (g[0] == "\uffff", _source_order(plan, g[0]), g[1])):
        rows = groups[(source, k)]
        ok = [r for r in rows if r["pnl_usdc"] is not None]
        pnl = sorted(r["pnl_usdc"] for r in ok)
        won, lost = sum(r["won"] for r in ok), sum(r["lost"] for r in ok)
        row: dict[str, Any] = {"scenario": "*" if source == "\uffff" else source, "set": k}
        row.update({p: _param_value(dict(plan.sets[k])[p], t) for p, t in cols})
        strategies = sorted({r["strategy"] for r in rows})
        row.update({"strategy": ",".join(strategies), "tasks": len(rows), "failed": len(rows) - len(ok)})
        mean = (sum(pnl, Decimal(0)) / len(pnl)).quantize(USDC, rounding=ROUND_HALF_EVEN) if pnl else None
        row["pnl_mean"] = mean
        for p in PERCENTILES:
            row[f"pnl_p{p}"] = nearest_rank(pnl, p) if pnl else None
        row.update({"pnl_min": pnl[0] if pnl else None, "pnl_max": pnl[-1] if pnl else None,
                    "win_rate": _win_rate(sum(r["priced_fills"] or 0 for r in ok), sum(r["losing_fills"] or 0 for r in ok)),
                    "opportunities": sum(r["opportunities"] for r in ok), "intents": sum(r["intents"] for r in ok),
                    "won": won, "lost": lost, "decisions": sum(r["decisions"] for r in ok)})
        out.append(row)
    return out


def _source_order(plan: SweepPlan, label: str) -> int:
    return next((i for i, s in enumerate(plan.sources) if s.label == label), len(plan.sources))


def _arrow_table(rows: list[dict[str, Any]], plan: SweepPlan) -> Any:
    import pyarrow as pa

    types = {p: {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "json": pa.string()}[k]
             for p, k in _param_columns(plan)}
    fixed = {"scenario": pa.string(), "kind": pa.string(), "seed": pa.uint64(), "set": pa.int64(),
             "strategy": pa.string(), "status": pa.string(), "win_rate": pa.float64(), "gas_eth": pa.decimal128(38, 18),
             "digest": pa.string(), "run": pa.string(), "tasks": pa.int64(), "failed": pa.int64()}
    names = list(rows[0]) if rows else []
    fields = []
    for name in names:
        if name in types:
            t = types[name]
        elif name in fixed:
            t = fixed[name]
        elif name.startswith("pnl"):
            t = pa.decimal128(38, 6)
        else:
            t = pa.int64()
        fields.append(pa.field(name, t))
    schema = pa.schema(fields)
    return pa.Table.from_pylist(rows, schema=schema)


def write_tables(result: SweepResult, out_dir: str | Path) -> dict[str, Path]:
    """``sweep.csv``/``.parquet`` (per task) and ``sweep-summary.csv``/``.parquet`` (per set) in
    ``out_dir``; the same result gives the same bytes (no timestamps, fixed order, fixed types)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out = Path(out_dir)
    written = {}
    for name, rows in ((TASKS_FILE, task_rows(result)), (SUMMARY_FILE, summary_rows(result))):
        table = _arrow_table(rows, result.plan)
        csv_path, pq_path = out / f"{name}.csv", out / f"{name}.parquet"
        pacsv.write_csv(table, csv_path)
        pq.write_table(table, pq_path, compression="zstd")
        written[f"{name}.csv"], written[f"{name}.parquet"] = csv_path, pq_path
    return written


def format_rows(rows: list[dict[str, Any]], columns: list[str] | None = None) -> list[str]:
    """A fixed-width text table (numbers right-aligned), for the terminal."""
    if not rows:
        return ["(no rows)"]
    columns = columns or list(rows[0])

    def text(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, Decimal):
            return f"{v:,.2f}"
        if isinstance(v, float):
            return f"{v:.3f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    cells = [[text(r.get(c)) for c in columns] for r in rows]
    numeric = [all(isinstance(r.get(c), (int, float, Decimal)) or r.get(c) is None for r in rows) for c in columns]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return [line(columns), line(["-" * w for w in widths]), *(line(row) for row in cells)]


TASK_COLUMNS = ("scenario", "seed", "set", "strategy", "status", "pnl_usdc", "win_rate", "opportunities", "won",
                "lost", "decisions", "digest", "run")
SUMMARY_COLUMNS = ("scenario", "set", "strategy", "tasks", "failed", "pnl_mean", "pnl_p5", "pnl_p50", "pnl_p95",
                   "win_rate", "opportunities", "won", "lost")


def printed(result: SweepResult) -> list[str]:
    """What ``tapedeck sweep`` prints: the per-task table, then the per-set summary."""
    params = [o.path for o in result.plan.overrides]

    def cols(base: tuple[str, ...]) -> list[str]:
        i = base.index("strategy")
        return [*base[:i], *params, *base[i:]]

    tasks = [{**r, "digest": (r["digest"] or "")[:12] or None} for r in task_rows(result)]
    return ["tasks (PnL in USDC, from each run's recorded events):", *format_rows(tasks, cols(TASK_COLUMNS)), "",
            "per parameter set (PnL in USDC; percentiles nearest-rank):",
            *format_rows(summary_rows(result), cols(SUMMARY_COLUMNS))]


def main_progress(stream: Any = None) -> Callable[[int, int, Cell, str], None]:
    """A counter on stderr: rewritten in place on a terminal, a line per tenth of the grid otherwise."""
    stream = stream or sys.stderr
    tty = stream.isatty()

    def show(done: int, total: int, cell: Cell, status: str) -> None:
        if tty:
            stream.write(f"\r  {done}/{total} tasks done (last: {cell.id} {status})\x1b[K")
            if done == total:
                stream.write("\n")
        elif done == total or done * 10 // total != (done - 1) * 10 // total:
            stream.write(f"  {done}/{total} tasks done\n")
        stream.flush()

    return show
