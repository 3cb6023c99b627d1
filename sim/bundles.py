"""The private channel of a simulated chain: searchers send bundles to the block builder.

``BundleBuilder.send`` queues a bundle that reaches the builder at its arrival time (the sender's
latency is the caller's business, as for ``ChainSide.submit``). Before each block the producer
asks ``prepare`` how much gas the bundles take: the builder simulates the candidates on a
snapshot of the backend (mine one block, read the receipts and the coinbase, revert), chooses by
``sim.inclusion.select_bundles`` (payment order, all-or-nothing, reverting bundles left out at no
cost), and the chosen ones are mined for real at the top of the block (``top_of_block``), before
the public transactions the producer picked with the gas that is left.

Nonces are the builder's to assign, at inclusion: a bundle's transactions take their senders'
next nonces in the order they run (a searcher signs for the block it targets). A bundle whose
sender also has public transactions pending is left out (their nonces are already taken).

Payment is measured, not declared: ``gas used x effective tip`` at the sim's base fee for each
transaction, plus what the bundle sent to the block's coinbase (the coinbase's balance change less
the backend's own priority fees, from the receipts).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from tapedeck.sim.chain.pyevm import ChainTx, revert_reason
from tapedeck.sim.inclusion import Bundle, BundleSim, PendingTx, effective_priority_fee, select_bundles
from tapedeck.sim.kernel import NS

LEFT_OUT = "bundle left out"
PENDING_PUBLIC = "sender has public transactions pending"


class BundleBuilder:
    """The bundle auction of one ``ChainSide`` (``side.bundles``); hooks the producer's ``prepare``."""

    def __init__(self, side: Any):
        self.side = side
        self.pending: dict[str, Bundle] = {}  # arrived, by id, in arrival order
        self.calls: dict[str, Any] = {}  # tx id -> bound call, for revert reasons
        self._count = 0
        self._chosen: list[tuple[Bundle, BundleSim]] = []
        self._final: list[tuple[Bundle, str]] = []  # left out for good in this block
        self._surplus: dict[str, int] = {}  # bundle id -> its coinbase transfers, this block's simulations
        self._memo: dict[tuple[str, ...], list[BundleSim]] = {}
        self._mined: list[str] = []  # tx ids of the last block's bundles (their calls are kept until then)
        self.included = 0
        self.left_out = 0
        self.simulations = 0
        side.bundles = self
        side.producer.prepare = self.prepare

    def send(self, txs: list[dict[str, Any]], *, arrival_ns: int, blocks: int = 1, tag: str = "bundle") -> Bundle:
        """Queue a bundle of transactions (each a dict: ``sender``, ``to``, ``data``, ``gas``,
        ``max_priority_fee``, optional ``max_fee``, ``value``, ``call``) that reaches the builder at
        ``arrival_ns`` and is tried in the next ``blocks`` blocks. Returns the bundle (ids stable)."""
        self._count += 1
        bid = f"{self.side.name}:{tag}:b{self._count}"
        base = self.side.producer.base_fee
        out = []
        for i, t in enumerate(txs):
            tip = t["max_priority_fee"]
            fee_cap = t.get("max_fee") or 2 * base + tip
            tx_id = f"{bid}.{i}"
            out.append(PendingTx(id=tx_id, sender=t["sender"], nonce=-1, max_fee=fee_cap, max_priority_fee=tip,
                                 gas=t["gas"], arrival_ns=arrival_ns,
                                 payload=ChainTx(t["sender"], -1, t["gas"], fee_cap, tip, t["to"], t["data"],
                                                 t.get("value", 0))))
            if t.get("call") is not None:
                self.calls[tx_id] = t["call"]
        bundle = Bundle(bid, tuple(out), arrival_ns, -1, -1)
        clock = self.side.clock
        clock.call_at(max(arrival_ns, clock.now_ns), self._arrive, bundle, blocks)
        return bundle

    def _arrive(self, bundle: Bundle, blocks: int) -> None:
        first = self.side.producer.number
        self.pending[bundle.id] = dataclasses.replace(bundle, first_block=first, last_block=first + blocks - 1)

    # ------------------------------------------------------------------ the auction

    def prepare(self, number: int, ts: int) -> int:
        """Choose this block's bundles (simulated at ``ts``); returns the gas they use."""
        self._chosen, self._final, self._surplus, self._memo = [], [], {}, {}
        for tx_id in self._mined:  # last block's: their receipts were read
            self.calls.pop(tx_id, None)
        self._mined = []
        if not self.pending:
            return 0
        candidates, busy = [], self._senders_with_public_txs()
        for b in list(self.pending.values()):
            if b.first_block > number:
                continue
            if any(t.sender in busy for t in b.txs):
                self._leave(b, PENDING_PUBLIC, number)
            else:
                candidates.append(b)
        if not candidates:
            return 0
        producer = self.side.producer
        plan = select_bundles(candidates, lambda seq: self._simulate(seq, ts, producer.base_fee), producer.base_fee,
                              producer.chain.gas_limit, seed=f"{producer.seed}:{self.side.name}:{number}:bundles")
        for b, why in plan.left_out:
            self._leave(b, why, number)
        self._chosen = list(plan.included)
        for b, _ in self._chosen:
            del self.pending[b.id]
        return plan.gas_used

    def _leave(self, b: Bundle, why: str, number: int) -> None:
        if b.last_block <= number:  # its window is over: gone, reported as dropped
            self.pending.pop(b.id, None)
            self._final.append((b, why))

    def _senders_with_public_txs(self) -> set[str]:
        return {t.sender for t in self.side.producer.mempool.pending() if isinstance(t.payload, ChainTx)}

    def _with_nonces(self, seq: list[Bundle]) -> list[tuple[Bundle, list[PendingTx]]]:
        nonces: dict[str, int] = {}
        out = []
        for b in seq:
            txs = []
            for t in b.txs:
                n = nonces.get(t.sender)
                if n is None:
                    n = self.side.nonce(t.sender)
                nonces[t.sender] = n + 1
                txs.append(dataclasses.replace(t, nonce=n, payload=dataclasses.replace(t.payload, nonce=n)))
            out.append((b, txs))
        return out

    def _simulate(self, seq: list[Bundle], ts: int, base_fee: int) -> list[BundleSim]:
        """Run ``seq`` in one block on a snapshot; per bundle: reverted?, payment, gas used.

        Memoised per block (the best bundle's greedy run is its run alone): a simulation is a
        mined and reverted block, ~0.3-0.6 s on py-evm for a liquidation, ~0.1 s on anvil."""
        key = tuple(b.id for b in seq)
        if key not in self._memo:
            self._memo[key] = self._run(seq, ts, base_fee)
        return self._memo[key]

    def _run(self, seq: list[Bundle], ts: int, base_fee: int) -> list[BundleSim]:
        self.simulations += 1
        backend, w3 = self.side.backend, self.side.w3
        placed = self._with_nonces(seq)
        flat = [t for _, txs in placed for t in txs]
        snap = backend.snapshot()
        try:
            try:
                receipts = backend.mine_block([t.payload for t in flat], ts // NS)
            except Exception as e:  # noqa: BLE001 - the backend refused a transaction (nonce, funds)
                return [BundleSim(False, 0, 0, f"invalid: {e}") for _ in seq]
            # Only a block's total is observable; every bundle but the last was simulated before as
            # the last of this same prefix, so its share is known and the rest is the last one's.
            surplus = coinbase_surplus(w3, receipts)
            known = sum(self._surplus.get(b.id, 0) for b in seq[:-1])
            self._surplus[seq[-1].id] = surplus - known
            out, i = [], 0
            for b, txs in placed:
                mine = receipts[i:i + len(txs)]
                bad = [(t, r) for t, r in zip(txs, mine) if r["status"] != 1]
                reason = ""
                if bad:
                    t = bad[0][0]
                    call = self.calls.get(b.txs[txs.index(t)].id)
                    reason = revert_reason(call, {"from": t.sender, "gas": t.gas}) if call is not None else "reverted"
                    reason = reason.removeprefix("execution reverted: ")
                tips = sum(r["gasUsed"] * effective_priority_fee(t, base_fee) for t, r in zip(txs, mine))
                paid = tips + self._surplus[b.id]
                out.append(BundleSim(not bad, paid, sum(r["gasUsed"] for r in mine), reason))
                i += len(txs)
            return out
        finally:
            backend.revert(snap)

    # ------------------------------------------------------------------ the block itself

    def top_of_block(self) -> tuple[list[PendingTx], list[tuple[PendingTx, str]]]:
        """The chosen bundles' transactions with their nonces, in block order, and the transactions
        of bundles left out for good (with why) -- what ``ChainSide`` mines first and reports."""
        placed = self._with_nonces([b for b, _ in self._chosen])
        txs = [t for _, ts in placed for t in ts]
        left = [(t, f"{LEFT_OUT}: {why}") for b, why in self._final for t in b.txs]
        self._mined = [t.id for b, _ in self._chosen for t in b.txs] + [t.id for t, _ in left]
        self.included += len(self._chosen)
        self.left_out += len(self._final)
        self._chosen, self._final = [], []
        return txs, left


def coinbase_surplus(w3: Any, receipts: list[Any]) -> int:
    """What a mined block's transactions sent its coinbase beyond their priority fees: the coinbase's
    balance change less ``gasUsed x (effectiveGasPrice - baseFee)`` of each receipt (no block reward
    after the merge, on either backend)."""
    if not receipts:
        return 0
    number = receipts[0]["blockNumber"]
    block = w3.eth.get_block(number)
    miner, base = block["miner"], block.get("baseFeePerGas", 0)
    delta = w3.eth.get_balance(miner, number) - w3.eth.get_balance(miner, number - 1)
    return delta - sum(r["gasUsed"] * (r["effectiveGasPrice"] - base) for r in receipts)
