"""A config's ``kind`` names a user's strategy by import path or entry point (or a built-in); each
bad entry fails in one line naming it; a run's manifest records the code that decided it, and
``replay --verify`` says when the code it verifies with differs (and still compares)."""
from __future__ import annotations

import hashlib
import shutil
import sys
import textwrap
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import tapedeck
from tapedeck.adapters.eventlog import EventLog, Manifest
from tapedeck.cli import main
from tapedeck.domain import events as ev
from tapedeck.domain.strategies import BUILTIN, ConfigError
from tapedeck.domain.strategies.spread import SpreadCheck
from tapedeck.runtime import strategy_loader as loader
from tests.conftest import ROOT, quote

RISK = {"default_max_notional": 10**12, "default_max_outstanding": 10**13}

# A user's strategy: buys one unit whenever a venue's bid is at or above ``level``.
STRATEGY = '''
from tapedeck.domain import events as ev
from tapedeck.domain.risk import Intent


class BuyAbove:
    handles = (ev.QuoteUpdated,)

    def __init__(self, name="buy-above", level="100"):
        self.name, self.level = name, __import__("decimal").Decimal(level)

    def on_event(self, e, state):
        if e.price(e.bid) < self.level:  # quotes hold fixed-point integers; price() is their Decimal
            return []
        return [Intent(strategy=self.name, venue=e.venue, instrument=e.instrument, side="buy", amount=1,
                       notional=int(e.price(e.bid)))]


class Picky(BuyAbove):
    def __init__(self, level):
        if int(level) < 0:
            raise ValueError("level must be >= 0")
        super().__init__("picky", level)


class NoOnEvent:
    name = "x"
    handles = (ev.QuoteUpdated,)


class HandlesStrings(BuyAbove):
    handles = ("QuoteUpdated",)


NOT_CALLABLE = 42


def factory(**params):
    return BuyAbove(**params)
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's project with a package of bots, on sys.path; imports and caches undone afterwards."""
    bots = tmp_path / "proj" / "userbots"
    bots.mkdir(parents=True)
    (bots / "__init__.py").write_text("")
    (bots / "strategies.py").write_text(STRATEGY)
    (bots / "broken.py").write_text("def oops(:\n")
    (bots / "needs_dep.py").write_text("import a_dependency_nobody_installed\n")
    monkeypatch.setattr(sys, "path", [str(bots.parent)] + sys.path)
    yield bots.parent
    for name in [m for m in sys.modules if m == "userbots" or m.startswith("userbots.")]:
        del sys.modules[name]
    loader._top_level_dists.cache_clear()


def config(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"risk": RISK, "strategies": list(entries)}


def test_an_import_path_builds_the_users_class_with_its_parameters(project: Path) -> None:
    engine = loader.build_engine(config({"kind": "userbots.strategies:BuyAbove", "name": "mine", "level": "7"},
                                        {"kind": "userbots.strategies:factory", "level": "9"}))
    first, second = engine.strategies
    assert type(first).__module__ == "userbots.strategies" and (first.name, first.level) == ("mine", Decimal(7))
    assert (second.name, second.level) == ("buy-above", Decimal(9))  # a factory works like a class


def test_the_current_directory_is_searched_last_for_a_project_not_on_the_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = tmp_path / "cwdproj"
    (proj / "cwdbots").mkdir(parents=True)
    (proj / "cwdbots" / "__init__.py").write_text(STRATEGY)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    monkeypatch.chdir(proj)
    try:
        engine = loader.build_engine(config({"kind": "cwdbots:BuyAbove"}))
        assert engine.strategies[0].name == "buy-above" and sys.path[-1] == str(proj)
    finally:
        sys.modules.pop("cwdbots", None)


@pytest.mark.parametrize("entry, message", [
    ({"kind": "userbots.absent:X"}, "strategies[0]: kind 'userbots.absent:X': module 'userbots.absent' not found"),
    ({"kind": "nobody_has_this_package.mod:X"}, "module 'nobody_has_this_package' not found"),
    ({"kind": "userbots.strategies:Absent"}, "strategies.py) has no attribute 'Absent'"),
    ({"kind": "userbots.strategies:NOT_CALLABLE"}, "kind 'userbots.strategies:NOT_CALLABLE' is not a class or callable (it is int)"),
    ({"kind": "userbots.broken:X"}, "kind 'userbots.broken:X': importing 'userbots.broken' raised SyntaxError: "),
    ({"kind": "userbots.needs_dep:X"}, "importing 'userbots.needs_dep' failed: No module named 'a_dependency_nobody_installed'"),
    ({"kind": "userbots.strategies:"}, "an import path is \"package.module:Class\""),
    ({"kind": "userbots.strategies:BuyAbove", "lvl": "1"}, "strategies[0] (userbots.strategies:BuyAbove): userbots.strategies:BuyAbove rejected its parameters: TypeError: "),
    ({"kind": "userbots.strategies:Picky", "level": "-1"}, "rejected its parameters: ValueError: level must be >= 0"),
    ({"kind": "userbots.strategies:NoOnEvent"}, "userbots.strategies:NoOnEvent built an object without an on_event(event, state) method"),
    ({"kind": "userbots.strategies:HandlesStrings"}, "handles 'QuoteUpdated', which is not an event type"),
    ({"kind": "no_such_kind"}, "strategies[0]: unknown kind 'no_such_kind' (known: aave_liquidator, cex_dex_arb, cross_pool_arb, perp_oracle_lag, sliced_order, spread; or an import path"),
    ({"name": "x"}, "strategies[0]: needs kind = "),
])
def test_each_bad_entry_fails_in_one_line_naming_it(project: Path, entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        loader.build_engine(config(entry))
    text = str(e.value)
    assert message in text and "\n" not in text and text.startswith("strategies[0]"), text


def test_two_strategies_may_not_share_a_name(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"strategies\[1\] \(mine\): name 'mine' is already used by strategies\[0\]"):
        loader.build_engine(config({"kind": "userbots.strategies:BuyAbove", "name": "mine"},
                                   {"kind": "spread", "name": "mine"}))


def fake_distribution(site: Path, name: str, version: str, package: str, entry_points: str, source: str) -> None:
    """A distribution as an installer leaves it (dist-info with RECORD and entry points), without pip."""
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text("")
    (site / package / "mod.py").write_text(source)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(entry_points)
    (info / "top_level.txt").write_text(package + "\n")
    (info / "RECORD").write_text(f"{package}/__init__.py,,\n{package}/mod.py,,\n{info.name}/METADATA,,\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "site"
    where.mkdir()
    monkeypatch.setattr(sys, "path", [str(where)] + sys.path)
    loader._top_level_dists.cache_clear()
    yield where
    for name in [m for m in sys.modules if m.split(".")[0] in ("epbots", "otherbots")]:
        del sys.modules[name]
    loader._top_level_dists.cache_clear()


def test_a_name_registered_in_the_entry_point_group_builds_that_class(site: Path) -> None:
    fake_distribution(site, "ep-bots", "1.2.3", "epbots", "[tapedeck.strategies]\nbuy_above = epbots.mod:BuyAbove\n",
                      STRATEGY)
    engine = loader.build_engine(config({"kind": "buy_above", "name": "ep", "level": "5"}))
    s = engine.strategies[0]
    assert type(s).__module__ == "epbots.mod" and (s.name, s.level) == ("ep", Decimal(5))
    ident = loader.code_identity(engine)["strategies"][0]
    assert (ident["distribution"], ident["version"]) == ("ep-bots", "1.2.3")
    assert ident["sha256"] == hashlib.sha256((site / "epbots" / "mod.py").read_bytes()).hexdigest()


def test_a_name_two_distributions_register_differently_is_refused_and_a_broken_one_is_named(site: Path) -> None:
    group = "[tapedeck.strategies]\nbuy_above = {}.mod:BuyAbove\nbroken = {}.mod:Missing\n"
    fake_distribution(site, "ep-bots", "1.0", "epbots", group.format("epbots", "epbots"), STRATEGY)
    fake_distribution(site, "other-bots", "2.0", "otherbots", "[tapedeck.strategies]\nbuy_above = otherbots.mod:BuyAbove\n",
                      STRATEGY)
    with pytest.raises(ConfigError, match="kind 'buy_above' is registered more than once in tapedeck.strategies "
                                          r"\(by ep-bots, other-bots\): use an import path"):
        loader.build_engine(config({"kind": "buy_above"}))
    with pytest.raises(ConfigError, match="kind 'broken': entry point 'epbots.mod:Missing' .* failed to load: AttributeError"):
        loader.build_engine(config({"kind": "broken"}))


def test_tapedeck_registers_its_builtins_in_the_same_group(monkeypatch: pytest.MonkeyPatch) -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][loader.GROUP]
    assert set(declared) == set(BUILTIN)
    for name, value in declared.items():
        module, _, attr = value.partition(":")
        assert getattr(__import__(module, fromlist=[attr]), attr) is BUILTIN[name]
    # without metadata (a checkout never installed) the built-in table still answers
    monkeypatch.setattr(loader, "_entry_points", lambda: [])
    assert type(loader.build_engine(config({"kind": "spread", "min_edge": "1"})).strategies[0]) is SpreadCheck


def test_the_domain_hash_covers_every_path_and_byte_of_the_domain_source(tmp_path: Path) -> None:
    real = Path(tapedeck.domain.__file__).parent
    copy = tmp_path / "domain"
    shutil.copytree(real, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert loader.domain_sha256(copy) == loader.domain_sha256()
    target = copy / "strategies" / "spread.py"
    target.write_bytes(target.read_bytes() + b"\n")
    edited = loader.domain_sha256(copy)
    target.rename(copy / "strategies" / "spread2.py")
    renamed = loader.domain_sha256(copy)
    assert len({loader.domain_sha256(), edited, renamed}) == 3
    c_source = copy / "_closed_form_gmp.c"  # the compiled sizing's C decides too
    c_source.write_bytes(c_source.read_bytes() + b"\n")
    with_c = loader.domain_sha256(copy)
    assert with_c not in {loader.domain_sha256(), edited, renamed}
    pxd = copy / "arb_finder.pxd"  # so does the compiled finder's declaration of its extension type
    pxd.write_bytes(pxd.read_bytes() + b"\n")
    assert loader.domain_sha256(copy) not in {loader.domain_sha256(), edited, renamed, with_c}


def test_code_differences_name_what_changed() -> None:
    base = {"tapedeck": {"version": "0.1.0", "domain_sha256": "a"},
            "strategies": [{"name": "s", "module": "m", "class": "C", "distribution": "", "version": "", "sha256": "1"}]}
    assert loader.code_differences(base, base) == [] and loader.code_differences({}, base) == []
    moved = {"tapedeck": {"version": "0.2.0", "domain_sha256": "b"},
             "strategies": [{"name": "s", "module": "m", "class": "C", "distribution": "bots", "version": "2",
                             "sha256": "2"}, {"name": "t", "module": "m", "class": "D", "sha256": "3"}]}
    assert loader.code_differences(base, moved) == [
        "tapedeck 0.1.0 -> 0.2.0", "tapedeck domain/ source", "strategy 's' source (m)",
        "strategy 's' distribution none -> bots 2", "strategy 't' added"]


def input_log(path: Path) -> None:
    """A small historical log: two venues' quotes, some bids at or above 101."""
    log = EventLog.create(path, Manifest(run_id="", mode="import", sources=["test:quotes"]))
    for i, bid in enumerate(["99", "100.5", "101", "98", "102.25", "101"]):
        log.append(quote(1_000 + i, "ab"[i % 2], bid, str(Decimal(bid) + 1)))
    log.close(ended="clean")


def test_replay_records_the_users_code_and_verify_says_when_it_changed(project: Path, tmp_path: Path) -> None:
    src, run = tmp_path / "in.db", tmp_path / "run.db"
    input_log(src)
    cfg = tmp_path / "user.toml"
    cfg.write_text(textwrap.dedent(f"""
        [risk]
        default_max_notional = {RISK['default_max_notional']}
        default_max_outstanding = {RISK['default_max_outstanding']}
        [[strategies]]
        kind = "userbots.strategies:BuyAbove"
        name = "mine"
        level = "101"
    """))
    r = CliRunner().invoke(main, ["replay", str(src), "--out", str(run), "--config", str(cfg)])
    assert r.exit_code == 0 and "3 OrderIntended" in r.output, r.output
    recorded = EventLog.open(run)
    code = recorded.manifest.code
    verdict = f"verified {sum(e.KIND != ev.DECISION for e in recorded.events())} inputs, " \
              f"{sum(e.KIND == ev.DECISION for e in recorded.events())} decisions"
    module_file = project / "userbots" / "strategies.py"
    assert code["tapedeck"] == {"version": tapedeck.__version__, "domain_sha256": loader.domain_sha256()}
    assert code["strategies"] == [{"name": "mine", "module": "userbots.strategies", "class": "BuyAbove",
                                   "distribution": "", "version": "",
                                   "sha256": hashlib.sha256(module_file.read_bytes()).hexdigest()}]
    ok = CliRunner().invoke(main, ["replay", str(run), "--verify"])
    assert ok.exit_code == 0 and ok.output.splitlines()[-1].startswith(verdict), ok.output
    module_file.write_text(STRATEGY + "\n# a comment: same decisions, other code\n")
    changed = CliRunner().invoke(main, ["replay", str(run), "--verify"])
    lines = changed.output.splitlines()
    assert changed.exit_code == 0 and lines[0] == "recorded with different code: strategy 'mine' source (userbots.strategies)"
    assert any(line.startswith(verdict) for line in lines[1:]), lines  # and it still compared
