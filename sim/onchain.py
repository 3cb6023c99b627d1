"""The chain side of a simulated world: agents' transactions go through the mempool and the sim's
block builder, and a real chain backend (py-evm or anvil) executes what each block includes.

``ChainSide.submit`` gives a transaction its sender's next nonce and puts it in the block
producer's mempool when it *arrives* (the sender's latency is the caller's business: pass the
arrival time). At each block the builder (``sim.inclusion.build_block``; with a
``sim.bundles.BundleBuilder`` on the side, through its ``build``, bundles interleaved by payment
per gas) picks and orders the pending transactions together with the virtual background traffic;
``ChainSide`` then runs the included ones (and the chosen bundles at their places) on the backend
in that order, in one chain block stamped with the sim block's time, and tells every listener what
happened (``BlockResult``: receipts, reverts, drops).

Gas is charged at the *sim's* base fee (the block producer's EIP-1559 fee, moved by the virtual
background traffic as well), not at the backend's own, which only sees the agents' transactions:
``TxOutcome.gas_price = base_fee + min(tip, max_fee - base_fee)``. Gas *used* comes from the
receipt. The gas the builder reserved for an included transaction is replaced by what it really
used when the next base fee is computed.

A transaction pending for more than ``max_pending_blocks`` blocks is evicted (``expired``), like a
node's mempool lifetime, so an underpriced intent cannot stay outstanding forever.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

from tapedeck.sim.chain.pyevm import ChainTx, revert_reason
from tapedeck.sim.inclusion import BlockPlan, Left, PendingTx, effective_priority_fee
from tapedeck.sim.kernel import NS, SimClock
from tapedeck.sim.processes import BlockProducer

SUCCESS, REVERTED = "success", "reverted"
EXPIRED = "expired"


@dataclass(frozen=True)
class TxOutcome:
    """An agent transaction the block included (``status`` success/reverted) or dropped (``receipt`` None)."""

    tx: PendingTx
    block: int  # the sim's block number
    ts: int  # the block's time, ns
    index: int  # position in the sim block (background traffic included)
    status: str  # "success" | "reverted" | a drop reason
    gas_used: int
    gas_price: int  # wei per gas actually charged: the sim's base fee + effective tip
    receipt: Any = None
    reason: str = ""  # revert reason (replayed on the block's end state) or why it was dropped

    @property
    def included(self) -> bool:
        return self.receipt is not None

    @property
    def tag(self) -> str:
        """The ``tag`` it was submitted with (its id is ``chain:tag:n``)."""
        return self.tx.id.split(":", 1)[1].rsplit(":", 1)[0]

    @property
    def gas_cost(self) -> int:
        return self.gas_used * self.gas_price


@dataclass(frozen=True)
class BlockResult:
    chain: str
    number: int
    ts: int
    base_fee: int
    outcomes: tuple[TxOutcome, ...]  # included, in block order
    dropped: tuple[TxOutcome, ...]


Listener = Callable[[BlockResult], None]


class ChainSide:
    """One chain of the world: a backend plus the sim block producer that decides what it mines."""

    def __init__(self, name: str, backend: Any, producer: BlockProducer, clock: SimClock, *,
                 max_pending_blocks: int = 25):
        self.name, self.backend, self.producer, self.clock = name, backend, producer, clock
        self.max_pending_blocks = max_pending_blocks
        self.w3 = backend.w3
        self.listeners: list[Listener] = []
        self.watchers: list[Callable[[PendingTx], None]] = []  # see each public tx as it reaches the mempool
        self.bundles: Any = None  # a sim.bundles.BundleBuilder: its chosen bundles go in each block at their places
        self.calls: dict[str, Any] = {}  # tx id -> the bound contract call, for revert reasons
        self._next_nonce: dict[str, int] = {}
        self._submitted_block: dict[str, int] = {}
        self._count = 0
        self.transactions = 0  # executed on the backend
        self.blocks_mined = 0
        producer.execute = self._execute

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def nonce(self, sender: str) -> int:
        """The next nonce ``submit`` will give ``sender`` (read from the chain the first time)."""
        if sender not in self._next_nonce:
            self._next_nonce[sender] = self.w3.eth.get_transaction_count(sender)
        return self._next_nonce[sender]

    def submit(self, sender: str, *, to: str | None, data: bytes, gas: int, max_priority_fee: int,
               arrival_ns: int, max_fee: int | None = None, value: int = 0, tag: str = "tx",
               call: Any = None) -> PendingTx:
        """Queue a transaction that reaches the mempool at ``arrival_ns``; returns it (its ``id`` is stable).

        ``max_fee`` defaults to twice the current base fee plus the tip (what wallets do)."""
        nonce = self.nonce(sender)
        self._next_nonce[sender] = nonce + 1
        self._count += 1
        fee_cap = max_fee if max_fee is not None else 2 * self.producer.base_fee + max_priority_fee
        tx = PendingTx(id=f"{self.name}:{tag}:{self._count}", sender=sender, nonce=nonce, max_fee=fee_cap,
                       max_priority_fee=max_priority_fee, gas=gas, arrival_ns=arrival_ns,
                       payload=ChainTx(sender, nonce, gas, fee_cap, max_priority_fee, to, data, value))
        if call is not None:
            self.calls[tx.id] = call
        self.clock.call_at(max(arrival_ns, self.clock.now_ns), self._arrive, tx)
        return tx

    def watch(self, watcher: Callable[[PendingTx], None]) -> None:
        """Call ``watcher`` with every public transaction when it reaches the mempool (searchers see
        the public mempool; bundles are never shown)."""
        self.watchers.append(watcher)

    def _arrive(self, tx: PendingTx) -> None:
        self._submitted_block[tx.id] = self.producer.number
        self.producer.submit(tx)
        for watcher in self.watchers:
            watcher(tx)

    def _execute(self, plan: BlockPlan, number: int, ts: int) -> int:
        placed, left_out = self.bundles.block_bundles() if self.bundles is not None else ([], [])
        seq: list[tuple[PendingTx, bool]] = []  # the sim block in order: (tx, from a bundle?)
        k = 0
        for i, t in enumerate(plan.included):
            while k < len(placed) and placed[k][0] == i:
                seq.extend((b, True) for b in placed[k][1])
                k += 1
            seq.append((t, False))
        for _, txs in placed[k:]:
            seq.extend((b, True) for b in txs)
        ours = [(i, t) for i, (t, _) in enumerate(seq) if isinstance(t.payload, ChainTx)]
        receipts = self.backend.mine_block([t.payload for _, t in ours], ts // NS) if ours else []
        if ours:
            self.blocks_mined += 1
            self.transactions += len(ours)
        outcomes = []
        # the gas the builder reserved for a public transaction becomes the gas it used; background
        # traffic keeps its reservation
        gas_used = sum(t.gas for t in plan.included if not isinstance(t.payload, ChainTx)) + \
            sum(r["gasUsed"] for r in receipts)
        for _, txs in placed:  # the builder gave them nonces: the senders' accounts move past them
            for tx in txs:
                self._next_nonce[tx.sender] = max(self._next_nonce.get(tx.sender, 0), tx.nonce + 1)
                self.producer.mempool.nonces[tx.sender] = self._next_nonce[tx.sender]
        for (i, tx), r in zip(ours, receipts):
            status = SUCCESS if r["status"] == 1 else REVERTED
            reason = ""
            if status == REVERTED:
                call = self.calls.get(tx.id) or (self.bundles.calls.get(tx.id) if self.bundles is not None else None)
                reason = revert_reason(call, {"from": tx.sender, "gas": tx.gas}) if call is not None else ""
                reason = reason.removeprefix("execution reverted: ")
            outcomes.append(TxOutcome(tx, number, ts, i, status, r["gasUsed"],
                                      plan.base_fee + effective_priority_fee(tx, plan.base_fee), r, reason))
            self._forget(tx)
        dropped = [self._dropped(left, number, ts) for left in plan.dropped if isinstance(left.tx.payload, ChainTx)]
        dropped += [TxOutcome(tx, number, ts, -1, why, 0, 0, None, why) for tx, why in left_out]
        for left in plan.pending:  # evict what has waited too long
            tx = left.tx
            waited = number - self._submitted_block.get(tx.id, number)
            if isinstance(tx.payload, ChainTx) and waited >= self.max_pending_blocks:
                self.producer.mempool.remove(tx.id)
                dropped.append(self._dropped(Left(tx, f"{EXPIRED} after {waited} blocks ({left.reason})"), number, ts))
        result = BlockResult(self.name, number, ts, plan.base_fee, tuple(outcomes), tuple(dropped))
        for listener in self.listeners:
            listener(result)
        return gas_used

    def _dropped(self, left: Left, number: int, ts: int) -> TxOutcome:
        tx = left.tx
        if self._next_nonce.get(tx.sender) == tx.nonce + 1:
            self._next_nonce[tx.sender] = tx.nonce  # its nonce is free again
        self._forget(tx)
        return TxOutcome(tx, number, ts, -1, left.reason, 0, 0, None, left.reason)

    def _forget(self, tx: PendingTx) -> None:
        self.calls.pop(tx.id, None)
        self._submitted_block.pop(tx.id, None)


def sim_key(label: str, i: int = 0) -> Any:
    """A fixed simulation-only account per role (the same on every backend and every run)."""
    from eth_utils import keccak

    return sim_account(keccak(text=f"tapedeck-sim:{label}:{i}"))


@functools.lru_cache(maxsize=4096)
def sim_account(key: bytes) -> Any:
    """``Account.from_key(key)`` once per process: making one derives its public key (~0.1 ms), and
    every run of a scenario (a sweep's, a benchmark's) makes the same agents' accounts."""
    from eth_account import Account

    return Account.from_key(key)


def add_account(side: ChainSide, acct: Any, funder: str, eth: int = 10**20) -> None:
    """Make ``acct`` able to send on the backend (its key on py-evm, impersonation on anvil) and
    give it ``eth`` wei from ``funder`` for gas."""
    w3 = side.w3
    tester = getattr(side.backend, "tester", None)
    if tester is not None:
        tester.add_account(acct.key.hex())
    else:
        w3.provider.make_request("anvil_impersonateAccount", [acct.address])
        if hasattr(side.backend, "add_key"):
            side.backend.add_key(acct)  # its block transactions signed as on py-evm (same hashes)
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
        {"from": funder, "to": acct.address, "value": eth, "gas": 21_000}))
