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
Each gap-opening update on its own (``--opportunities -1``: every update that yields one or more,
warm-up included; add ``--dump-after=_operator_call`` to valgrind's options, one dump per update), then
``python benchmarks/count_finder_instructions.py --summarize /tmp/cg.out`` prints their p50, p99 (the
second highest of the 195 in the default 20,000-update stream, as ``bench_arb_finder.py``'s p99), max
and sum, and the same by opportunities per update.
"""
from __future__ import annotations

import argparse
import glob
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
        if route is not None and (route[i] == n or (n < 0 and route[i] > 0)) and i >= skip:
            got = operator.call(finder.on_update, state, e.pool, e.ts)  # (counted: inside _operator_call)
        else:
            got = finder.on_update(state, e.pool, e.ts)
        found.append(len(got))
    return found


def summarize(out: str) -> None:
    """p50 / p99 / max / sum of the per-update dumps ``out.1``, ``out.2``... and, where the run left its
    ``out.opportunities`` (each counted update's opportunities, in order), the same by opportunities."""
    dumps = sorted(glob.glob(glob.escape(out) + ".[0-9]*"), key=lambda f: int(f.rsplit(".", 1)[1]))
    each = []
    for f in dumps:
        with open(f) as fh:
            total = next((int(line.split()[1]) for line in fh if line.startswith(("summary:", "totals:"))), 0)
        if total:
            each.append(total)
    if not each:
        raise SystemExit(f"no per-update callgrind dumps at {out}.1, {out}.2, ...: run valgrind with "
                         "--dump-after=_operator_call and this script with --opportunities -1 (module docstring)")
    opps_file = Path(out + ".opportunities")
    opps = [int(n) for n in opps_file.read_text().split()] if opps_file.exists() else []

    def line(name: str, xs: list[int]) -> str:
        xs = sorted(xs)
        p99 = xs[min(len(xs) - 1, int(0.99 * len(xs)))]
        return (f"{name}: {len(xs)} updates, p50 {xs[len(xs) // 2] / 1e3:.1f}k p99 {p99 / 1e3:.1f}k "
                f"max {xs[-1] / 1e3:.1f}k sum {sum(xs) / 1e6:.2f}M instructions")
    print(line("gap-opening updates", each))
    if len(opps) == len(each):
        for n in sorted(set(opps)):
            print("  " + line(f"{n} opportunities", [v for v, k in zip(each, opps) if k == n]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--opportunities", type=int, default=4, help="the updates counted: those yielding this "
                    "many opportunities (-1: one or more, each update's own dump with --dump-after)")
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--jump-every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip", type=int, default=1000, help="updates before counting starts (warm-up)")
    ap.add_argument("--opportunities-to", help="(with -1) where to write each counted update's opportunities")
    ap.add_argument("--summarize", metavar="CALLGRIND_OUT", help="print the per-update dumps' figures, and stop")
    a = ap.parse_args()
    if a.summarize:
        summarize(a.summarize)
        return
    stream = updates(a.seed, a.events, a.jump_every)
    first = run(stream, a.seed, None, a.opportunities, a.skip)  # which updates yield how many
    again = run(stream, a.seed, first, a.opportunities, a.skip)
    assert again == first
    if a.opportunities < 0:
        counted_n = [n for i, n in enumerate(first) if n > 0 and i >= a.skip]
        if a.opportunities_to:
            Path(a.opportunities_to).write_text(" ".join(map(str, counted_n)))
        print(f"counted {len(counted_n)} gap-opening updates ({sum(counted_n)} opportunities, in {a.events} updates)")
        return
    counted = sum(1 for i, n in enumerate(first) if n == a.opportunities and i >= a.skip)
    print(f"counted {counted} updates of {a.opportunities} opportunities (of {sum(1 for n in first if n)} that "
          f"opened a gap, {sum(first)} opportunities, in {a.events} updates): divide callgrind's total by {counted}")


if __name__ == "__main__":
    main()
