"""The private channel of a simulated chain: searchers send bundles to the block builder.

``BundleBuilder.send`` queues a bundle that reaches the builder at its arrival time (the sender's
latency is the caller's business, as for ``ChainSide.submit``). The builder takes over the block
producer's choice (``producer.build``): each block, ``build`` hands the pending public
transactions, the background traffic and the arrived bundles to ``sim.inclusion.build_block``,
which interleaves them by payment per gas (a public transaction paying more per gas than a bundle
goes before it; bundles whole or not at all; one that would revert where it stands left out at no
cost). The bundles are simulated on a snapshot of the backend (mine one block with the public
transactions and bundles before it, read the receipts and the coinbase, revert); ``ChainSide``
then mines the chosen order for real (``block_bundles`` gives the bundles' places and nonces).

Nonces are the builder's to assign, at inclusion: a bundle's transactions take their senders'
next nonces in the order they run (a searcher signs for the block it targets). A bundle whose
sender also has public transactions pending is left out (their nonces are already taken).

Payment is measured, not declared: ``gas used x effective tip`` at the sim's base fee for each
transaction, plus what the bundle sent to the block's coinbase (the coinbase's balance change over
the simulated block less the backend's own priority fees, from the receipts, less the same for the
block without the bundle).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from tapedeck.sim.chain.pyevm import ChainTx, revert_reason
from tapedeck.sim.inclusion import BlockPlan, Bundle, BundleSim, PendingTx, Placed, build_block, effective_priority_fee
from tapedeck.sim.kernel import NS

LEFT_OUT = "bundle left out"
PENDING_PUBLIC = "sender has public transactions pending"


class BundleBuilder:
    """The bundle auction of one ``ChainSide`` (``side.bundles``); builds the producer's blocks (``build``)."""

    def __init__(self, side: Any):
        self.side = side
        self.pending: dict[str, Bundle] = {}  # arrived, by id, in arrival order
        self.calls: dict[str, Any] = {}  # tx id -> bound call, for revert reasons
        self._count = 0
        self._chosen: list[Placed] = []
        self._final: list[tuple[Bundle, str]] = []  # left out for good in this block
        self._memo: dict[tuple[str, ...], tuple[BundleSim | None, int]] = {}  # this block's simulations
        self._mined: list[str] = []  # tx ids of the last block's bundles (their calls are kept until then)
        self.included = 0
        self.left_out = 0
        self.simulations = 0
        side.bundles = self
        side.producer.build = self.build

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

    def build(self, pending: tuple[PendingTx, ...], base_fee: int, gas_limit: int, *, seed: int | str,
              nonces: dict[str, int], number: int, ts: int) -> BlockPlan:
        """The block: ``build_block`` over the pending transactions and this block's bundles
        (simulated at ``ts``); remembers the chosen bundles for ``block_bundles``."""
        self._chosen, self._final, self._memo = [], [], {}
        for tx_id in self._mined:  # last block's: their receipts were read
            self.calls.pop(tx_id, None)
        self._mined = []
        candidates: list[Bundle] = []
        if self.pending:
            busy = self._senders_with_public_txs()
            for b in list(self.pending.values()):
                if b.first_block > number:
                    continue
                if any(t.sender in busy for t in b.txs):
                    self._leave(b, PENDING_PUBLIC, number)
                else:
                    candidates.append(b)
        if not candidates:
            return build_block(pending, base_fee, gas_limit, seed=seed, nonces=nonces)
        plan = build_block(pending, base_fee, gas_limit, seed=seed, nonces=nonces, bundles=candidates,
                           simulate=lambda seq: self._simulate(seq, ts, base_fee))
        for b, why in plan.bundles_left:
            self._leave(b, why, number)
        self._chosen = list(plan.bundles)
        for p in self._chosen:
            del self.pending[p.bundle.id]
        return plan

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

    def _simulate(self, seq: list[PendingTx | Bundle], ts: int, base_fee: int) -> BundleSim:
        """The last unit of ``seq`` (a bundle) run after the others in one block on a snapshot:
        reverted?, payment, gas used. Only the public transactions the chain executes count
        (background traffic is virtual). Memoised per block: a simulation is a mined and reverted
        block, ~0.3-0.6 s on py-evm for a liquidation, ~0.1 s on anvil. On a backend that
        simulates a block without mining it (py-evm's ``simulate_block``) the block before the
        bundle and the block with it are one execution, read at the bundle's start and at its end."""
        units = [u for u in seq if isinstance(u, Bundle) or isinstance(u.payload, ChainTx)]
        split = len(units) > 1 and tuple(u.id for u in units[:-1]) not in self._memo \
            and hasattr(self.side.backend, "simulate_block")
        sim, total = self._sim(units, ts, base_fee, split)
        assert sim is not None
        _, before = self._sim(units[:-1], ts, base_fee) if len(units) > 1 else (None, 0)
        return dataclasses.replace(sim, payment=sim.payment + total - before)

    def _sim(self, units: list[PendingTx | Bundle], ts: int, base_fee: int,
             split: bool = False) -> tuple[BundleSim | None, int]:
        key = tuple(u.id for u in units)
        if key not in self._memo:
            self._memo[key] = self._run(units, ts, base_fee, split)
        return self._memo[key]

    def _run(self, units: list[PendingTx | Bundle], ts: int, base_fee: int,
             split: bool = False) -> tuple[BundleSim | None, int]:
        """Mine ``units`` on a snapshot: the last one's result if it is a bundle (its payment: its
        priority fees only) and the block's coinbase surplus (transfers beyond priority fees).
        With ``split`` (a backend with ``simulate_block``; the units before the last one end in a
        public transaction and are not memoised) their result is read on the way and memoised."""
        self.simulations += 1
        backend = self.side.backend
        placed = self._with_nonces([u for u in units if isinstance(u, Bundle)])
        last = units[-1] if isinstance(units[-1], Bundle) else None
        flat, k = [], 0
        for u in units:
            if isinstance(u, Bundle):
                flat.extend(placed[k][1])
                k += 1
            else:
                flat.append(u)
        if hasattr(backend, "simulate_block"):
            out = self._run_unmined(units, flat, placed, last, ts, base_fee, split)
            if out is not None:
                return out
        snap = backend.snapshot()
        try:
            try:
                receipts = backend.mine_block([t.payload for t in flat], ts // NS)
            except Exception as e:  # noqa: BLE001 - the backend refused a transaction (nonce, funds)
                return (BundleSim(False, 0, 0, f"invalid: {e}") if last is not None else None), 0
            return self._result(receipts, coinbase_surplus(self.side.w3, receipts), placed, last, base_fee,
                                lambda call, params: revert_reason(call, params))
        finally:
            backend.revert(snap)

    def _run_unmined(self, units: list[PendingTx | Bundle], flat: list[PendingTx], placed: list[Any],
                     last: Bundle | None, ts: int, base_fee: int,
                     split: bool) -> tuple[BundleSim | None, int] | None:
        """``_run`` on a block the backend executes and never mines (``simulate_block``): the same
        transactions, receipts and coinbase; None when a revert reason cannot be read there
        exactly (then ``_run`` mines on a snapshot as before)."""
        backend = self.side.backend
        head = len(flat) - len(placed[-1][1]) if (split and last is not None) else len(flat)
        payloads = [t.payload for t in flat]
        try:
            run = backend.simulate_block(payloads[:head], ts // NS, keep=False)
            if split and last is not None:
                self._memo[tuple(u.id for u in units[:-1])] = (None, run.coinbase_surplus())
                run.apply(backend, payloads[head:])
        except Exception as e:  # noqa: BLE001 - the backend refused a transaction (nonce, funds)
            return (BundleSim(False, 0, 0, f"invalid: {e}") if last is not None else None), 0
        slow: list[bool] = []

        def reason_of(call: Any, params: dict[str, Any]) -> str:
            text = run.revert_reason(call, params)
            if text is None:
                slow.append(True)
                return ""
            return text

        out = self._result(run.outcomes(), run.coinbase_surplus(), placed, last, base_fee, reason_of)
        if slow:
            return None
        backend.keep(run)
        return out

    def _result(self, receipts: list[Any], surplus: int, placed: list[Any], last: Bundle | None, base_fee: int,
                reason_of: Any) -> tuple[BundleSim | None, int]:
        if last is None:
            return None, surplus
        txs = placed[-1][1]
        mine = receipts[len(receipts) - len(txs):]
        bad = [(t, r) for t, r in zip(txs, mine) if r["status"] != 1]
        reason = ""
        if bad:
            t = bad[0][0]
            call = self.calls.get(last.txs[txs.index(t)].id)
            reason = reason_of(call, {"from": t.sender, "gas": t.gas}) if call is not None else "reverted"
            reason = reason.removeprefix("execution reverted: ")
        tips = sum(r["gasUsed"] * effective_priority_fee(t, base_fee) for t, r in zip(txs, mine))
        return BundleSim(not bad, tips, sum(r["gasUsed"] for r in mine), reason), surplus

    # ------------------------------------------------------------------ the block itself

    def block_bundles(self) -> tuple[list[tuple[int, list[PendingTx]]], list[tuple[PendingTx, str]]]:
        """The chosen bundles of the block being mined, each as (its place: the index of the public
        transaction it goes before, its transactions with their nonces), in block order, and the
        transactions of bundles left out for good (with why): what ``ChainSide`` mines and reports."""
        placed = self._with_nonces([p.bundle for p in self._chosen])
        out = [(p.at, txs) for p, (_, txs) in zip(self._chosen, placed)]
        left = [(t, f"{LEFT_OUT}: {why}") for b, why in self._final for t in b.txs]
        self._mined = [t.id for p in self._chosen for t in p.bundle.txs] + [t.id for t, _ in left]
        self.included += len(self._chosen)
        self.left_out += len(self._final)
        self._chosen, self._final = [], []
        return out, left


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
