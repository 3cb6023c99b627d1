"""Instructions the finder spends on the updates that yield N opportunities, counted by callgrind.

Why: this 2-core machine's speed wanders by ~1.5x from minute to minute, more than most single
changes to the finder save, so timing two builds one after the other cannot tell them apart. An
instruction count is the same on every run. The stream is ``bench_arb_finder.py``'s; the updates
that yield ``--opportunities`` opportunities (after the first ``--skip``, the warm-up) go through
``operator.call``, so ``valgrind --tool=callgrind --toggle-collect=_operator_call`` counts only them
(the engine's fold excluded; ``map``, used before, also counted the start-up's imports, which run
under ``map`` calls: ~120k instructions more per update). Not a timing: cache misses are not in it; use ``bench_arb_finder.py`` for those.
Usage: valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out --toggle-collect=_operator_call \\
           python benchmarks/count_finder_instructions.py [--opportunities 4] [--events 5000]
       then ``grep summary /tmp/cg.out`` (instructions) and ``callgrind_annotate /tmp/cg.out``.
"""
from __future__ import annotations

import argparse
import operator
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_arb_finder import finder_and_engine, updates  # noqa: E402


def run(stream: list, seed: int, route: list[int] | None, n: int, skip: int) -> list[int]:
    finder, engine = finder_and_engine(seed)
    state, found = engine.state, []
    for i, e in enumerate(stream):
        engine.handle(e)
        if route is not None and route[i] == n and i >= skip:
            got = operator.call(finder.on_update, state, e.pool, e.ts)  # (counted: inside _operator_call)
        else:
            got = finder.on_update(state, e.pool, e.ts)
        found.append(len(got))
    return found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--opportunities", type=int, default=4)
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--jump-every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip", type=int, default=1000, help="updates before counting starts (warm-up)")
    a = ap.parse_args()
    stream = updates(a.seed, a.events, a.jump_every)
    first = run(stream, a.seed, None, a.opportunities, a.skip)  # which updates yield how many
    again = run(stream, a.seed, first, a.opportunities, a.skip)
    assert again == first
    counted = sum(1 for i, n in enumerate(first) if n == a.opportunities and i >= a.skip)
    print(f"counted {counted} updates of {a.opportunities} opportunities (of {sum(1 for n in first if n)} that "
          f"opened a gap, {sum(first)} opportunities, in {a.events} updates): divide callgrind's total by {counted}")


if __name__ == "__main__":
    main()
