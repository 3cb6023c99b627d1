"""The builder's bundle rule (``sim.inclusion.select_bundles``) on an in-memory chain: bundles that
touch the same key conflict (the second reverts, as a second liquidation of a cleared borrower
does), each pays what it says, and every outcome is checked against a brute force over orders."""
from __future__ import annotations

import itertools
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from tapedeck.sim.inclusion import (BUNDLE_CONFLICTS, BUNDLE_CONFLICTS_PUBLIC, BUNDLE_FULL, BUNDLE_REVERTS, BUNDLE_UNDERPRICED, Bundle,
                                    BundleSim, PendingTx, build_block, effective_priority_fee, select_bundles)

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
                           bundle("big", "z", 18, gas=900), bundle("ok", "w", 1)], simulate, BASE, 950, seed=1)
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


def test_bundles_go_by_payment_per_gas_not_by_total_payment() -> None:
    # "small" pays 3 for 100 gas (0.03/gas), "large" 20 for 1000 gas (0.02/gas): small first
    plan = select_bundles([bundle("large", "a", 20, gas=1000), bundle("small", "b", 3, gas=100)], simulate,
                          BASE, 10_000, seed=1)
    assert [b.id for b, _ in plan.included] == ["small", "large"]


# ----------------------------------------------------------------------------- bundles among public transactions
#
# The toy chain: a unit "takes" its key if no earlier unit of the block took it. A public transaction
# is always included (it pays its tip whether it takes the key or reverts); a bundle that finds its
# key taken would revert, so the builder leaves it out.

def pub(id: str, tip: int, *, key: str | None = None, sender: str | None = None, nonce: int = 0, gas: int = 100,
        arrival: int = 0, max_fee: int = 1000) -> PendingTx:
    return PendingTx(id=id, sender=sender or id, nonce=nonce, max_fee=max_fee, max_priority_fee=tip, gas=gas,
                     arrival_ns=arrival, payload=("pub", key))


def simulate_after(units: list) -> BundleSim:
    """The last unit's (a bundle's) result after the others, on the toy chain."""
    taken: set[str] = set()
    result = None
    for u in units:
        if isinstance(u, Bundle):
            key, pay, reverts = u.txs[0].payload
            ok = not reverts and key not in taken
            if ok:
                taken.add(key)
            result = BundleSim(ok, pay if ok else 0, u.txs[0].gas, "" if ok else "45")
        elif u.payload is not None and u.payload[1] is not None:
            taken.add(u.payload[1])
    assert isinstance(units[-1], Bundle) and result is not None
    return result


def order_ids(plan) -> list[str]:  # type: ignore[no-untyped-def]
    return [u.id for u in plan.order()]


def test_a_public_transaction_paying_more_per_gas_goes_before_a_bundle_and_takes_its_liquidation() -> None:
    # the searcher's public liquidation pays 30 per gas, our bundle 9 / 100 gas... per gas 0.09 x 1000
    ours = bundle("ours", "alice", 2_000, gas=100)  # 20 per gas
    rival = pub("rival", 30, key="alice")
    cheap = pub("cheap", 5)
    plan = build_block([rival, cheap], BASE, 10_000, seed=1, bundles=[ours], simulate=simulate_after)
    assert order_ids(plan) == ["rival", "cheap"]
    assert [(b.id, why) for b, why in plan.bundles_left] == [("ours", f"{BUNDLE_CONFLICTS_PUBLIC}: 45")]
    # paying more per gas than the searcher, the bundle goes first and the searcher's transaction after it
    plan = build_block([rival, cheap], BASE, 10_000, seed=1, bundles=[bundle("ours", "alice", 4_000, gas=100)],
                       simulate=simulate_after)
    assert order_ids(plan) == ["ours", "rival", "cheap"]
    assert [(p.at, p.bundle.id) for p in plan.bundles] == [(0, "ours")]
    assert plan.bundles_left == ()
    assert plan.gas_used == 300


def test_a_bundle_goes_between_the_public_transactions_at_its_payment_per_gas() -> None:
    txs = [pub("t40", 40), pub("t10", 10), pub("t25", 25, sender="s", nonce=0), pub("t1", 1, sender="s", nonce=1)]
    plan = build_block(txs, BASE, 10_000, seed=1, bundles=[bundle("b", "k", 2_000, gas=100)],  # 20 per gas
                       simulate=simulate_after)
    assert order_ids(plan) == ["t40", "t25", "b", "t10", "t1"]
    assert [t.id for t in plan.included] == ["t40", "t25", "t10", "t1"]
    assert [p.at for p in plan.bundles] == [2]


def test_without_bundles_the_plan_is_the_transaction_rule_unchanged() -> None:
    txs = [pub("a", 3), pub("b", 7, gas=900), pub("c", 5, sender="s"), pub("d", 9, sender="s", nonce=1)]
    plain = build_block(txs, BASE, 1_000, seed=2)
    with_hook = build_block(txs, BASE, 1_000, seed=2, bundles=[], simulate=simulate_after)
    assert plain == with_hook and plain.bundles == () and [t.id for t in plain.included] == ["b", "c"]


def test_a_bundle_whose_gas_does_not_fit_after_better_payers_is_left_out_whole() -> None:
    plan = build_block([pub("t", 50, gas=900)], BASE, 1_000, seed=1,
                       bundles=[bundle("b", "k", 2_000, gas=200)], simulate=simulate_after)
    assert order_ids(plan) == ["t"] and [(b.id, why) for b, why in plan.bundles_left] == [("b", BUNDLE_FULL)]


def _unit_key(u, scores, seed):  # type: ignore[no-untyped-def]
    from tapedeck.sim.inclusion import tiebreak

    return (-scores[u.id], u.arrival_ns, tiebreak(seed, u.id), u.id)


def _every_block(txs: list[PendingTx], bundles: list[Bundle], base: int, limit: int):  # type: ignore[no-untyped-def]
    """Every block the rule allows: each sender's transactions in nonce order from its lowest, none
    under the base fee, any subset of the bundles anywhere, the gas limit kept, no bundle reverting
    where it stands (a public transaction may revert: it is still included)."""
    chains: dict[str, list[PendingTx]] = {}
    for t in sorted(txs, key=lambda t: (t.sender, t.nonce)):
        chains.setdefault(t.sender, []).append(t)
    live = [b for b in bundles if all(t.max_fee >= base for t in b.txs)]

    def grow(block: list, used: dict[str, int], gas: int):  # type: ignore[no-untyped-def]
        yield list(block)
        for sender, run in chains.items():
            i = used.get(sender, 0)
            if i < len(run) and run[i].max_fee >= base and run[i].gas <= limit - gas:
                used[sender] = i + 1
                block.append(run[i])
                yield from grow(block, used, gas + run[i].gas)
                block.pop()
                used[sender] = i
        for b in live:
            if b in block or b.txs[0].gas > limit - gas or not simulate_after(block + [b]).ok:
                continue
            block.append(b)
            yield from grow(block, used, gas + b.txs[0].gas)
            block.pop()

    yield from grow([], {}, 0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["s", "t", "u", "v"]), st.integers(0, 40), st.sampled_from([None, "a", "b"]),
                          st.sampled_from([100, 300, 500])), min_size=0, max_size=4),
       st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 4_000), st.booleans(), st.sampled_from([100, 200, 400])),
                min_size=0, max_size=3),
       st.sampled_from([600, 1_000, 10_000]), st.integers(0, 3))
def test_the_chosen_block_is_the_best_ordered_of_every_block_the_rule_allows(pubs, bunds, limit, seed) -> None:  # type: ignore[no-untyped-def]
    from hypothesis import event

    nonce: dict[str, int] = {}
    txs = []
    for i, (sender, tip, key, gas) in enumerate(pubs):
        n = nonce.get(sender, 0)
        nonce[sender] = n + 1
        cheap = tip % 7 == 0  # every 7th: under the base fee (it and its sender's later ones wait)
        txs.append(pub(f"p{i}", min(tip, BASE - 1) if cheap else tip, key=key, sender=sender, nonce=n, gas=gas,
                       arrival=i, max_fee=BASE - 1 if cheap else 1000))
    bundles = [bundle(f"b{i}", key, pay, gas=gas, arrival=i, reverts=rev) for i, (key, pay, rev, gas) in enumerate(bunds)]
    plan = build_block(txs, BASE, limit, seed=seed, bundles=bundles, simulate=simulate_after)
    scores = {t.id: effective_priority_fee(t, BASE) for t in txs}
    scores.update({b.id: Fraction(b.txs[0].payload[1], b.txs[0].gas) for b in bundles})
    end = ((1,),)  # after every unit's key: a block that stops is worse than one that goes on

    def signature(block: list) -> list:  # type: ignore[type-arg]
        return [_unit_key(u, scores, seed) for u in block] + list(end)

    chosen = plan.order()
    blocks = list(_every_block(txs, bundles, BASE, limit))
    best = min(blocks, key=signature)
    assert [u.id for u in chosen] == [u.id for u in best]
    # whole or nothing, nothing reverting where it stands, every bundle accounted for once
    assert all(simulate_after(chosen[:chosen.index(p.bundle) + 1]).ok for p in plan.bundles)
    assert sorted([p.bundle.id for p in plan.bundles] + [b.id for b, _ in plan.bundles_left]) == sorted(b.id for b in bundles)
    assert plan.gas_used == sum(t.gas for t in plan.included) + sum(p.sim.gas_used for p in plan.bundles) <= limit
    # what the case exercised
    pos = {u.id: i for i, u in enumerate(chosen)}
    for p in plan.bundles:
        if any(pos[t.id] < pos[p.bundle.id] for t in plan.included):
            event("a public transaction went before a chosen bundle")
        if any(pos[t.id] > pos[p.bundle.id] for t in plan.included):
            event("a chosen bundle went before a public transaction")
    for b, why in plan.bundles_left:
        if why.startswith(BUNDLE_CONFLICTS_PUBLIC) and any(t.payload[1] == b.txs[0].payload[0] for t in plan.included):
            event("a bundle lost its key to a public transaction")
        if why == BUNDLE_FULL:
            event("a bundle did not fit")
    event(f"{len(blocks)} allowed blocks" if len(blocks) < 10 else "10+ allowed blocks")
