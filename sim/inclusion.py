"""The block builder's rule and the EIP-1559 base fee, as pure functions on integers.

``build_block`` decides which pending transactions a block includes, in which order:

* a transaction is **eligible** only if ``max_fee >= base_fee``;
* eligible transactions go in order of **effective priority fee**
  ``min(max_priority_fee, max_fee - base_fee)``, highest first; ties go to the **earlier arrival**,
  then to a **seeded draw** (a hash of the seed and the transaction id: deterministic for a seed,
  independent of the order the transactions are given in);
* a sender's transactions go in **nonce order**, one after the other: only a sender's next nonce
  competes, and a transaction that cannot go (underpriced, does not fit) holds back its sender's
  later ones;
* the **gas limit** is respected: a transaction that does not fit in what is left is skipped
  (its sender is done for this block) and the builder goes on with the others.

What is not included either **stays pending** (it may go in a later block) or is **dropped**
(it never can); ``BlockPlan`` lists both with the reason:

============================  =========  ================================================
reason                        fate       when
============================  =========  ================================================
``underpriced``               pending    ``max_fee`` below the base fee (it may fall)
``nonce gap``                 pending    an earlier nonce of the sender is not pending
``waiting for nonce N``       pending    held back behind the sender's nonce N
``block full``                pending    did not fit in the gas left
``nonce too low``             dropped    the sender's account is already past this nonce
``replaced``                  dropped    same sender and nonce as a better-paying one
``exceeds block gas limit``   dropped    ``gas`` above the block gas limit
``invalid fees``              dropped    ``max_priority_fee > max_fee`` or a negative fee
============================  =========  ================================================

Gas accounting uses each transaction's ``gas`` (its limit): the builder reserves it; the chain's
execution may use less, and ``next_base_fee`` takes whatever gas the block really used.

**Bundles** (private submissions, ``build_block(..., bundles=, simulate=)``) compete with the
public transactions in the same greedy, by **payment per gas**: a bundle's score is what it pays the
builder (measured by simulating it alone at the top of the block: priority fee x gas used plus
coinbase transfers) divided by the gas it used, as mev-geth's ``mevGasPrice`` (exact, a
``Fraction``); a public transaction's is its effective priority fee. So a public transaction that
pays more per gas than a bundle goes before it, and one that pays less goes after. A bundle goes in
whole and in order or not at all: when its turn comes it is simulated again after everything the
block holds so far, and one that would revert there (or alone) is left out and costs nothing;
one whose gas does not fit is left out too. Ties of score go to the earlier arrival, then to the
seeded draw, as for transactions. Without bundles the rule and its results are exactly the
transaction rule above (``sim.bundles`` runs the simulations on the chain).

The chosen order is the **best** in the rule's own sense: of all the blocks that could be built from
the same pending transactions and bundles (any subset of the bundles, any interleaving that keeps
each sender's nonce order and the gas limit, no bundle reverting where it stands), it is the one
whose sequence of scores is lexicographically greatest (at every position the best-paying unit that
could go there); ``tests/test_sim_bundles_rule.py`` checks that against a brute force over every
such block on small cases. It is not always the block that earns the builder most: a bundle put
before a better-paying public transaction that then reverts would add the bundle's payment to the
reverted transaction's fees; a builder that orders by payment per gas does not do that.
"""
from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Iterable, Mapping, Union

ELASTICITY_MULTIPLIER = 2
BASE_FEE_MAX_CHANGE_DENOMINATOR = 8

UNDERPRICED = "underpriced"
NONCE_GAP = "nonce gap"
BLOCK_FULL = "block full"
NONCE_TOO_LOW = "nonce too low"
REPLACED = "replaced"
TOO_BIG = "exceeds block gas limit"
INVALID_FEES = "invalid fees"


def waiting_for(nonce: int) -> str:
    return f"waiting for nonce {nonce}"


@dataclass(frozen=True)
class PendingTx:
    id: str
    sender: str
    nonce: int
    max_fee: int  # wei per gas
    max_priority_fee: int  # wei per gas
    gas: int
    arrival_ns: int
    payload: object = field(default=None, compare=False)  # whatever the chain needs to execute it


@dataclass(frozen=True)
class Left:
    """A transaction not included, and why."""

    tx: PendingTx
    reason: str


@dataclass(frozen=True)
class BlockPlan:
    base_fee: int
    gas_limit: int
    included: tuple[PendingTx, ...]
    gas_used: int
    pending: tuple[Left, ...]  # may go in a later block; in (sender, nonce) order
    dropped: tuple[Left, ...]  # never will; in (sender, nonce) order
    bundles: tuple["Placed", ...] = ()  # the bundles chosen, in block order, each with its place
    bundles_left: tuple[tuple["Bundle", str], ...] = ()  # bundles left out of this block, and why

    def order(self) -> list["PendingTx | Bundle"]:
        """The block's units in order: the included transactions with the bundles at their places."""
        out: list[PendingTx | Bundle] = []
        k = 0
        for i, tx in enumerate(self.included):
            while k < len(self.bundles) and self.bundles[k].at == i:
                out.append(self.bundles[k].bundle)
                k += 1
            out.append(tx)
        out.extend(p.bundle for p in self.bundles[k:])
        return out

    def tip(self, tx: PendingTx) -> int:
        return effective_priority_fee(tx, self.base_fee)


def effective_priority_fee(tx: PendingTx, base_fee: int) -> int:
    """What the block producer earns per gas: ``min(max_priority_fee, max_fee - base_fee)``."""
    return min(tx.max_priority_fee, tx.max_fee - base_fee)


def tiebreak(seed: int | str, tx_id: str) -> int:
    """The seeded draw that breaks a tie of fee and arrival: a 64-bit hash of seed and id."""
    digest = hashlib.blake2b(f"{seed}:{tx_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def build_block(pending: Iterable[PendingTx], base_fee: int, gas_limit: int, *, seed: int | str,
                nonces: Mapping[str, int] | None = None, bundles: Iterable["Bundle"] = (),
                simulate: "SimulateAfter | None" = None) -> BlockPlan:
    """Choose and order a block's transactions and bundles (see the module's docstring for the rule).

    ``nonces`` gives each sender's account nonce (the next nonce the chain accepts); a sender not
    in it starts at its lowest pending nonce. ``seed`` should differ per block (e.g.
    ``f"{scenario_seed}:{chain}:{number}"``) so that ties do not always go the same way.
    ``bundles`` compete with the transactions by payment per gas; ``simulate(units)`` runs the
    block's units in that order on a copy of the chain and returns the last one's (a bundle's)
    ``BundleSim``: it is called with ``[bundle]`` for its score, then with the block so far plus
    the bundle when its turn comes.
    """
    nonces = nonces or {}
    dropped: list[Left] = []
    waiting: list[Left] = []

    # 1. Weed out what can never go, and keep the best transaction per (sender, nonce).
    by_slot: dict[tuple[str, int], list[PendingTx]] = {}
    for tx in sorted(pending, key=lambda t: (t.sender, t.nonce, t.id)):
        if tx.max_priority_fee < 0 or tx.max_fee < 0 or tx.max_priority_fee > tx.max_fee:
            dropped.append(Left(tx, INVALID_FEES))
        elif tx.gas > gas_limit or tx.gas <= 0:
            dropped.append(Left(tx, TOO_BIG))
        elif tx.sender in nonces and tx.nonce < nonces[tx.sender]:
            dropped.append(Left(tx, NONCE_TOO_LOW))
        else:
            by_slot.setdefault((tx.sender, tx.nonce), []).append(tx)
    chains: dict[str, list[PendingTx]] = {}  # sender -> its run of consecutive nonces from the account's
    gapped: set[str] = set()
    start: dict[str, int] = {}
    for (sender, nonce), txs in by_slot.items():  # in (sender, nonce) order
        txs.sort(key=lambda t: (-t.max_priority_fee, -t.max_fee, t.arrival_ns, t.id))
        dropped.extend(Left(t, REPLACED) for t in txs[1:])
        best = txs[0]
        run = chains.setdefault(sender, [])
        expected = start.setdefault(sender, nonces.get(sender, nonce)) + len(run)
        if sender not in gapped and nonce == expected:
            run.append(best)
        else:
            gapped.add(sender)  # nothing after a missing nonce can go
            waiting.append(Left(best, NONCE_GAP))

    # 2. Greedy by payment per gas over each sender's next transaction and the bundles.
    heads: list[tuple[int | Fraction, int, int, str, str]] = []
    cursor: dict[str, int] = {}
    included: list[PendingTx] = []
    gas_left = gas_limit
    block: list[PendingTx | Bundle] = []  # what a bundle is simulated after when its turn comes
    placed: list[Placed] = []
    bundles_left: list[tuple[Bundle, str]] = []
    scored: dict[str, tuple[Bundle, BundleSim]] = {}
    for b in sorted(bundles, key=lambda b: b.id):
        if simulate is None:
            raise ValueError("bundles need a simulate function")
        if any(t.max_fee < base_fee or t.max_priority_fee > t.max_fee for t in b.txs):
            bundles_left.append((b, BUNDLE_UNDERPRICED))
            continue
        alone = simulate([b])
        if not alone.ok:
            bundles_left.append((b, f"{BUNDLE_REVERTS}: {alone.reason}" if alone.reason else BUNDLE_REVERTS))
            continue
        scored[b.id] = (b, alone)
        heapq.heappush(heads, (-bundle_score(alone), b.arrival_ns, tiebreak(seed, b.id), b.id, BUNDLE_HEAD))

    def hold_back(sender: str, at: int, reason: str) -> None:
        run = chains[sender]
        blocker = run[at].nonce
        for i in range(at, len(run)):
            waiting.append(Left(run[i], reason if i == at else waiting_for(blocker)))
        cursor[sender] = len(run)

    def offer(sender: str, i: int) -> None:
        run = chains[sender]
        cursor[sender] = i
        if i >= len(run):
            return
        tx = run[i]
        if tx.max_fee < base_fee:
            hold_back(sender, i, UNDERPRICED)
            return
        key = (-effective_priority_fee(tx, base_fee), tx.arrival_ns, tiebreak(seed, tx.id), tx.id, sender)
        heapq.heappush(heads, key)

    for sender in chains:
        offer(sender, 0)
    while heads:
        *_, uid, sender = heapq.heappop(heads)
        if sender is BUNDLE_HEAD:
            b, alone = scored[uid]
            result = simulate(block + [b]) if block else alone  # type: ignore[misc]
            if not result.ok:
                rule = BUNDLE_CONFLICTS_PUBLIC if any(isinstance(u, PendingTx) and u.payload is not None
                                                      for u in block) else BUNDLE_CONFLICTS
                bundles_left.append((b, f"{rule}: {result.reason}" if result.reason else rule))
            elif result.gas_used > gas_left:
                bundles_left.append((b, BUNDLE_FULL))
            else:
                placed.append(Placed(len(included), b, result))
                block.append(b)
                gas_left -= result.gas_used
            continue
        i = cursor[sender]
        tx = chains[sender][i]
        if tx.gas > gas_left:
            hold_back(sender, i, BLOCK_FULL)
            continue
        included.append(tx)
        if scored:
            block.append(tx)
        gas_left -= tx.gas
        offer(sender, i + 1)

    def order(left: Left) -> tuple[str, int, str]:
        return (left.tx.sender, left.tx.nonce, left.tx.id)

    return BlockPlan(base_fee=base_fee, gas_limit=gas_limit, included=tuple(included), gas_used=gas_limit - gas_left,
                     pending=tuple(sorted(waiting, key=order)), dropped=tuple(sorted(dropped, key=order)),
                     bundles=tuple(placed), bundles_left=tuple(sorted(bundles_left, key=lambda x: x[0].id)))


def next_base_fee(base_fee: int, gas_used: int, gas_target: int) -> int:
    """The next block's base fee, exactly as EIP-1559 computes it from its parent.

    Above target it rises by ``base * (used - target) // target // 8``, at least 1 wei; below
    target it falls by ``base * (target - used) // target // 8`` (truncating the magnitude, as the
    EIP does), never below 0. A full block (``used == 2 * target``) raises it by exactly 1/8
    (12.5%) when ``base`` is a multiple of 8; an empty one lowers it by ``base // 8``.
    """
    if gas_target <= 0:
        raise ValueError(f"gas target must be positive, got {gas_target}")
    if gas_used < 0 or base_fee < 0:
        raise ValueError(f"negative gas used ({gas_used}) or base fee ({base_fee})")
    if gas_used == gas_target:
        return base_fee
    if gas_used > gas_target:
        delta = max(base_fee * (gas_used - gas_target) // gas_target // BASE_FEE_MAX_CHANGE_DENOMINATOR, 1)
        return base_fee + delta
    delta = base_fee * (gas_target - gas_used) // gas_target // BASE_FEE_MAX_CHANGE_DENOMINATOR
    return max(base_fee - delta, 0)


class Mempool:
    """Pending transactions of one chain and its account nonces; the block producer applies plans to it."""

    def __init__(self) -> None:
        self._pending: dict[str, PendingTx] = {}  # by id, in arrival order of submission
        self.nonces: dict[str, int] = {}

    def add(self, tx: PendingTx) -> None:
        if tx.id in self._pending:
            raise ValueError(f"transaction {tx.id!r} is already pending")
        self._pending[tx.id] = tx

    def pending(self) -> tuple[PendingTx, ...]:
        return tuple(self._pending.values())

    def __len__(self) -> int:
        return len(self._pending)

    def remove(self, tx_id: str) -> PendingTx | None:
        """Evict a pending transaction (e.g. it expired); returns it, or None if it was not pending."""
        return self._pending.pop(tx_id, None)

    def apply(self, plan: BlockPlan) -> None:
        """Remove what the block included or dropped; advance the senders' nonces."""
        for tx in plan.included:
            if self._pending.pop(tx.id, None) is None:
                continue  # not ours (e.g. the producer's background traffic)
            self.nonces[tx.sender] = max(self.nonces.get(tx.sender, 0), tx.nonce + 1)
        for left in plan.dropped:
            self._pending.pop(left.tx.id, None)


# ----------------------------------------------------------------------------- bundles


@dataclass(frozen=True)
class Bundle:
    """Transactions a searcher sends privately to the builder (as ``eth_sendBundle``): all of them,
    in this order, at the top of one block, or none. Tried in every block from ``first_block`` to
    ``last_block``; never seen by other searchers (they watch the public mempool only)."""

    id: str
    txs: tuple[PendingTx, ...]
    arrival_ns: int
    first_block: int
    last_block: int


@dataclass(frozen=True)
class BundleSim:
    """One bundle's result when a block is simulated: ``ok`` if none of its transactions reverted;
    ``payment`` the wei the builder earns from it (priority fees at the block's base fee x gas used,
    plus transfers to the coinbase)."""

    ok: bool
    payment: int
    gas_used: int
    reason: str = ""  # why it would revert (or could not run)


Simulate = Callable[[list[Bundle]], list[BundleSim]]  # select_bundles': one result per bundle of the sequence
SimulateAfter = Callable[[list[Union[PendingTx, Bundle]]], BundleSim]  # build_block's: the last unit's result


@dataclass(frozen=True)
class Placed:
    """A bundle the block includes: it goes before ``included[at]`` (after all of them if ``at`` is
    their number), with its simulation where it stands."""

    at: int
    bundle: Bundle
    sim: BundleSim


@dataclass(frozen=True)
class BundlePlan:
    included: tuple[tuple[Bundle, BundleSim], ...]  # in block order, at the top
    left_out: tuple[tuple[Bundle, str], ...]
    gas_used: int


BUNDLE_REVERTS = "would revert"
BUNDLE_CONFLICTS = "reverts after a better-paying bundle"
# ... when public transactions that the chain executes (a payload) went before it too; both end
# "better-paying bundle" so a reason's tail ("<rule>: <revert reason>") reads the same way
BUNDLE_CONFLICTS_PUBLIC = "reverts after a better-paying transaction or better-paying bundle"
BUNDLE_UNDERPRICED = "underpriced"
BUNDLE_FULL = "block full"
BUNDLE_HEAD: str = object()  # type: ignore[assignment]  # marks a bundle's entry among the senders' heads


def bundle_score(sim: BundleSim) -> Fraction:
    """A bundle's payment per gas (mev-geth's ``mevGasPrice``), exact; the whole payment if it used no gas."""
    return Fraction(sim.payment, sim.gas_used) if sim.gas_used > 0 else Fraction(sim.payment)


def select_bundles(bundles: Iterable[Bundle], simulate: Simulate, base_fee: int, gas_limit: int, *,
                   seed: int | str) -> BundlePlan:
    """Which bundles a block of bundles only takes, in which order: ``build_block``'s rule with no
    public transactions (``simulate`` returns one ``BundleSim`` per bundle of the sequence it is
    given, run in that order in one block on a copy of the chain).

    1. Each bundle is simulated alone at the top of the block; one that reverts, or has a
       transaction whose ``max_fee`` is below the base fee, is left out at no cost to anyone.
    2. The rest go by payment per gas, highest first; ties to the earlier arrival, then the draw.
    3. Each is simulated again after those already taken: it goes in if it still does not revert
       and its gas fits; else it is left out (a bundle that conflicts with a better-paying one,
       e.g. the same liquidation, loses without paying).
    """
    plan = build_block((), base_fee, gas_limit, seed=seed, bundles=bundles,
                       simulate=lambda seq: simulate(seq)[-1])  # type: ignore[arg-type]
    return BundlePlan(tuple((p.bundle, p.sim) for p in plan.bundles), plan.bundles_left, plan.gas_used)
