"""Shared fixtures: where the real recordings are, and small generated tapes."""
from __future__ import annotations

import os
import weakref
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# No per-example deadline anywhere: it is a timing assertion (tests assert behaviour, not speed), and on a
# loaded 2-core CI machine it failed examples that pass (test_raydium_round_trip at load 5.7).
settings.register_profile("tapedeck", deadline=None)
settings.load_profile("tapedeck")

from tests.pure_python import prefer_pure_python, stale_builds  # noqa: E402

# The finder's .py modules, not their compiled build (setup.py), when asked or when that build is older
# than its source (then tests/test_arb_finder_compiled.py fails, naming it: run `make bootstrap`).
STALE_BUILDS = stale_builds()
if os.environ.get("TAPEDECK_PURE_PYTHON") == "1" or STALE_BUILDS:
    prefer_pure_python()

from tapedeck.domain import events as ev  # noqa: E402
from tapedeck.domain.decimals import to_fixed  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    return Path(os.environ.get("TAPEDECK_DATA") or ROOT.parent / "shared" / "data")


def require_data(relative: str) -> Path:
    """Path of a shared recording, or skip the test saying what is missing."""
    p = data_dir() / relative
    if not p.exists():
        pytest.skip(f"real recording {p} not present (set TAPEDECK_DATA to the shared data folder)")
    return p


SPREAD_CONFIG = {
    "risk": {"default_max_notional": 10**12, "default_max_outstanding": 10**13},
    "strategies": [{"kind": "spread", "name": "spread", "min_edge": "0.5"}],
}


def quote(ts: int, venue: str, bid: str, ask: str, size: str = "1.5", instrument: str = "ETH-USD",
          price_decimals: int = 6, size_decimals: int = 8) -> ev.QuoteUpdated:
    """A top-of-book quote from decimal text, at a fixed precision (6 price, 8 size places)."""
    pd, sd = price_decimals, size_decimals
    return ev.QuoteUpdated(ts=ts, source="test", venue=venue, instrument=instrument, bid=to_fixed(bid, pd),
                           bid_size=to_fixed(size, sd), ask=to_fixed(ask, pd), ask_size=to_fixed(size, sd),
                           price_decimals=pd, size_decimals=sd)


# ----------------------------------------------------------------------------- chain backends for the contract tests

CHAIN_BACKENDS = ("pyevm", "anvil", "revm")
ANVIL_START = 1_700_000_000  # anvil's genesis second; then one second a block, as py-evm and revm stamp them


def new_chain(request: pytest.FixtureRequest, backend: str | None = None):
    """A fresh chain of ``backend`` (default: the fixture's param), behind the sim's one interface.

    anvil is started with a genesis second so that its blocks, like py-evm's and revm's, are one
    second apart (not wall-clock seconds); its node is stopped when the requesting fixture ends.
    Without an anvil binary (``make bootstrap``) the test is skipped, saying so."""
    backend = backend or request.param
    if backend == "pyevm":
        from tapedeck.sim.chain.pyevm import PyEvmChain

        return PyEvmChain()
    if backend == "revm":
        from tapedeck.sim.chain.revm import RevmChain

        return RevmChain()
    if backend != "anvil":
        raise ValueError(f"unknown chain backend {backend!r}")
    from tapedeck.sim.chain.anvil import AnvilChain, anvil_binary
    from tapedeck.sim.chain.artifacts import ArtifactMissing

    try:
        anvil_binary()
    except ArtifactMissing as e:
        pytest.skip(str(e))
    chain = AnvilChain(start_time=ANVIL_START)
    request.addfinalizer(chain.close)
    return chain


_standing_in: "weakref.WeakKeyDictionary[Any, dict[Any, Any]]" = weakref.WeakKeyDictionary()


def revert_again(chain, snapshot) -> None:
    """``chain.revert(snapshot)`` such that ``snapshot`` can be reverted to again, on every backend.

    anvil's ``evm_revert`` uses its snapshot up (py-evm's and revm's can be reverted to as often as
    wanted): a fresh snapshot of the same state is taken right after and stands in for ``snapshot``
    the next time."""
    ids = _standing_in.setdefault(chain, {})
    chain.revert(ids.get(snapshot, snapshot))
    ids[snapshot] = chain.snapshot()


def time_travel(chain, timestamp: int) -> None:
    """eth-tester's ``time_travel(timestamp)`` (one empty block stamped ``timestamp - 1``) on every backend.

    py-evm's and revm's ``chain.tester`` do it as before; anvil has no tester: there it is
    ``mine_block([], timestamp - 1)``, which stamps exactly that second (after the parent), since
    anvil's clock goes back with ``evm_revert``. (Not ``mine_block`` everywhere: py-evm's and revm's
    chain time does not go back on revert, so after one their ``mine_block`` stamps a later second.)"""
    tester = getattr(chain, "tester", None)
    if tester is not None:
        tester.time_travel(timestamp)
    else:
        chain.mine_block([], timestamp - 1)
