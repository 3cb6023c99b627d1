"""A sim run's group commits (``sim.recording``): every ``flush_blocks`` blocks at a block's end, by
the store's own timer, and at the end; never before each intent (nothing of a sim leaves the
process). How events are grouped changes neither the events nor the digest."""
from __future__ import annotations

from pathlib import Path

from tapedeck.adapters.eventlog import EventLog, Manifest
from tapedeck.domain import events as ev
from tapedeck.runtime.bootstrap import build_run
from tapedeck.sim.recording import FLUSH_BLOCKS, GroupCommits
from tapedeck.sim.scenario import load_scenario
from tests.conftest import quote
from tests.test_timers import BLOCKS_ONLY, RISK, engine


def run(tmp: Path, name: str, **kw: object) -> tuple[list[list[ev.Event]], str]:
    """The 10-block world with the store's timer off (``max_delay_ms = 0``): its segments and digest."""
    path = tmp / "blocks.toml"
    path.write_text(BLOCKS_ONLY)
    out = tmp / f"{name}.db"
    build_run("sim", {"risk": RISK, "store": {"max_delay_ms": 0}}, out=out, scenario=load_scenario(path),
              engine=engine({}), **kw).run()  # type: ignore[arg-type]
    log = EventLog.open(out)
    segments = [[e for _t, e in items] for _f, items, _s in log.typed_segments()]
    digest = log.manifest.seal["digest"]
    log.close()
    return segments, digest


def test_the_sim_commits_every_flush_blocks_blocks_at_a_blocks_end(tmp_path: Path) -> None:
    segments, _ = run(tmp_path, "three", flush_blocks=3)
    blocks = [[e.number for e in seg if type(e) is ev.BlockProduced] for seg in segments]
    assert len(blocks) == 4 and sum(len(b) for b in blocks) == 10  # at blocks 3, 6, 9, then the end
    for seg, numbers in zip(segments[:3], blocks[:3]):
        assert len(numbers) == 3 and type(seg[-1]) is ev.BlockProduced  # a kill loses at most 3 blocks
    assert [n for b in blocks for n in b] == sorted(n for b in blocks for n in b)


def test_grouping_changes_neither_the_events_nor_the_digest(tmp_path: Path) -> None:
    every, d1 = run(tmp_path, "every", flush_blocks=1)
    grouped, d64 = run(tmp_path, "default")  # 10 blocks < FLUSH_BLOCKS: one commit, at the end
    assert FLUSH_BLOCKS > 10 and len(grouped) == 1 and len(every) == 10
    assert [e for seg in every for e in seg] == grouped[0] and d1 == d64


def test_the_loops_flush_is_left_to_the_next_group_commit(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    store = EventLog.create(path, Manifest(run_id="", mode="sim"), max_delay_ms=0)
    grouped = GroupCommits(store)
    for i in range(3):
        grouped.append(quote(10 + i, "a", "100", "101"))
    grouped.flush()  # what the loop does before it hands an intent to the sim's gateway
    assert EventLog.open(path).last_seq() == 0 and grouped.deferred == 1 and grouped.next_seq == 4
    store.flush()  # the world's group commit
    assert EventLog.open(path).last_seq() == 3
    store.close()
