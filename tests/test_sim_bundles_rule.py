"""The builder's bundle rule (``sim.inclusion.select_bundles``) on an in-memory chain: bundles that
touch the same key conflict (the second reverts, as a second liquidation of a cleared borrower
does), each pays what it says, and every outcome is checked against a brute force over orders."""
from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from tapedeck.sim.inclusion import (BUNDLE_CONFLICTS, BUNDLE_FULL, BUNDLE_REVERTS, BUNDLE_UNDERPRICED, Bundle,
                                    BundleSim, PendingTx, select_bundles)

BASE = 10


def bundle(id: str, key: str, pay: int, gas: int = 100, arrival: int = 0, reverts: bool = False,
           max_fee: int = 100) -> Bundle:
    tx = PendingTx(id=f"{id}.0", sender=id, nonce=-1, max_fee=max_fee, max_priority_fee=1, gas=gas,
                   arrival_ns=arrival, payload=(key, pay, reverts))
    return Bundle(id, (tx,), arrival, 0, 0)


def simulate(seq: list[Bundle]) -> list[BundleSim]:
    """A chain where each key can be taken once: a later bundle on a taken key reverts."""
    taken: set[str] = set()
    out = []
    for b in seq:
        key, pay, reverts = b.txs[0].payload
        ok = not reverts and key not in taken
        if ok:
            taken.add(key)
        out.append(BundleSim(ok, pay if ok else 0, b.txs[0].gas, "" if ok else "45"))
    return out


def test_the_better_payer_takes_a_contested_key_and_the_other_is_left_out_for_nothing() -> None:
    plan = select_bundles([bundle("a", "alice", 5), bundle("b", "alice", 9), bundle("c", "bob", 1)], simulate,
                          BASE, 10_000, seed=1)
    assert [b.id for b, _ in plan.included] == ["b", "c"]
    assert dict((b.id, why) for b, why in plan.left_out) == {"a": f"{BUNDLE_CONFLICTS}: 45"}
    assert plan.gas_used == 200


def test_reverting_underpriced_and_too_big_bundles_are_left_out() -> None:
    plan = select_bundles([bundle("r", "x", 9, reverts=True), bundle("u", "y", 9, max_fee=BASE - 1),
                           bundle("big", "z", 8, gas=900), bundle("ok", "w", 1)], simulate, BASE, 950, seed=1)
    left = dict((b.id, why) for b, why in plan.left_out)
    assert left == {"r": f"{BUNDLE_REVERTS}: 45", "u": BUNDLE_UNDERPRICED, "ok": BUNDLE_FULL}
    assert [b.id for b, _ in plan.included] == ["big"]


def test_equal_payments_go_to_the_earlier_arrival() -> None:
    plan = select_bundles([bundle("late", "k", 5, arrival=9), bundle("early", "k", 5, arrival=1)], simulate,
                          BASE, 10_000, seed=3)
    assert [b.id for b, _ in plan.included] == ["early"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 20), st.booleans()), min_size=0, max_size=6),
       st.integers(0, 5))
def test_the_plan_is_a_payment_ordered_conflict_free_choice(spec: list[tuple[str, int, bool]], seed: int) -> None:
    bundles = [bundle(f"b{i}", key, pay, arrival=i, reverts=rev) for i, (key, pay, rev) in enumerate(spec)]
    plan = select_bundles(bundles, simulate, BASE, 10_000, seed=seed)
    chosen = [b for b, _ in plan.included]
    assert all(s.ok for s in simulate(chosen))  # together, in this order, nothing reverts
    assert len(chosen) + len(plan.left_out) == len(bundles)
    pays = [s.payment for _, s in plan.included]
    assert pays == sorted(pays, reverse=True)
    # per key, the best payer of the non-reverting bundles wins (ties: earliest); no key is left unserved
    for key in "abc":
        live = [b for b in bundles if b.txs[0].payload[0] == key and not b.txs[0].payload[2]]
        if live:
            best = max(live, key=lambda b: (b.txs[0].payload[1], -b.arrival_ns))
            assert [b.id for b in chosen if b.txs[0].payload[0] == key] == [best.id]
    # and no other conflict-free choice pays the builder more
    best_total = max((sum(s.payment for s in simulate(list(c))) for r in range(len(bundles) + 1)
                      for c in itertools.combinations(bundles, r) if all(s.ok for s in simulate(list(c)))), default=0)
    assert sum(pays) == best_total
