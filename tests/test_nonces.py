"""The nonce manager against a scripted chain (no node): it refuses to send before reconciling,
rebuilds from the log alone, rebroadcasts recorded bytes (never new ones) for a nonce the chain
has not seen, recognises what was mined, taken by another transaction, or left out of its
bundle's blocks, and picks the next nonce past all of it. A property: folding events live and
restoring them from the log give the same state, whatever the order of interleaved accounts."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tapedeck.domain import events as ev
from tapedeck.live.nonces import NonceManager, NotReconciled, RpcError

ME = "0x00000000000000000000000000000000000000aa"
OTHER = "0x00000000000000000000000000000000000000bb"


class FakeChain:
    """``eth_getTransactionCount`` latest/pending, receipts, mempool, and what was (re)broadcast."""

    def __init__(self, latest: int = 0, pending: int | None = None, head: int = 100) -> None:
        self.latest, self.pending, self.head = latest, latest if pending is None else pending, head
        self.receipts: dict[str, dict[str, Any]] = {}
        self.mempool: set[str] = set()
        self.sent: list[str] = []
        self.refuse: str = ""

    async def call(self, method: str, params: list[Any]) -> Any:
        if method == "eth_getTransactionCount":
            return hex(self.latest if params[1] == "latest" else self.pending)
        if method == "eth_blockNumber":
            return hex(self.head)
        if method == "eth_getTransactionReceipt":
            return self.receipts.get(params[0])
        if method == "eth_getTransactionByHash":
            return {"hash": params[0], "blockNumber": None} if params[0] in self.mempool else None
        if method == "eth_sendRawTransaction":
            if self.refuse:
                raise RpcError(method, -32000, self.refuse)
            self.sent.append(params[0])
            self.pending += 1
            return "0x"
        raise AssertionError(method)


def signed(nonce: int, tag: str = "", *, route: str = "public", target: int = 0, seq: int = 0, intent: int = 1,
           sender: str = ME) -> ev.TransactionSigned:
    h = "0x" + f"{nonce:02x}{tag.encode().hex()}".ljust(64, "0")
    return ev.TransactionSigned(seq=seq, ts=1, source="t", cause=intent, intent=intent, chain="c", tx=h, sender=sender,
                                nonce=nonce, gas=21_000, max_fee=2, max_priority_fee=1, raw=f"0xraw{nonce}{tag}",
                                route=route, target_block=target)


def _reconcile(m: NonceManager, chain: FakeChain) -> Any:
    return asyncio.run(m.reconcile(chain, now=lambda: 5, head=chain.head))


def test_refuses_to_send_until_reconciled_and_again_after_restore() -> None:
    m = NonceManager("c", ME)
    with pytest.raises(NotReconciled):
        m.take()
    rec = _reconcile(m, FakeChain(latest=7))
    [r] = rec.events
    assert type(r) is ev.NonceReconciled and (r.chain_latest, r.chain_pending, r.next_nonce) == (7, 7, 7)
    assert "sent 7 transaction(s) before this run" in r.detail
    m.fold(r)
    assert m.take() == 7 and m.take() == 8
    again = NonceManager("c", ME)
    again.restore([r, signed(7)])
    with pytest.raises(NotReconciled):
        again.take()


def test_a_signed_unsent_transaction_is_rebroadcast_from_its_recorded_bytes() -> None:
    log: list[ev.Event] = [signed(3)]
    m = NonceManager("c", ME)
    m.restore(log)
    chain = FakeChain(latest=3)
    rec = _reconcile(m, chain)
    assert chain.sent == ["0xraw3"]  # the same bytes, once; nothing newly signed
    b, r = rec.events
    assert type(b) is ev.TransactionBroadcast and b.tx == signed(3).tx and b.attempt == 0
    assert r.rebroadcast == (signed(3).tx,) and r.next_nonce == 4 and r.open == (signed(3).tx,)
    assert [s.tx for s in rec.follow] == [signed(3).tx]
    m.fold(b), m.fold(r)
    assert m.take() == 4


def test_one_already_in_the_mempool_is_not_sent_again_and_a_mined_one_is_reported() -> None:
    m = NonceManager("c", ME)
    m.restore([signed(0), signed(1)])
    chain = FakeChain(latest=1, pending=2)
    chain.receipts[signed(0).tx] = {"status": "0x1", "blockNumber": "0x5"}
    chain.mempool.add(signed(1).tx)
    rec = _reconcile(m, chain)
    assert chain.sent == [] and list(rec.mined) == [signed(0).tx]
    [r] = rec.events
    assert r.next_nonce == 2 and r.rebroadcast == ()


def test_a_nonce_taken_by_a_foreign_transaction_and_a_missed_bundle_close_their_transactions() -> None:
    m = NonceManager("c", ME)
    m.restore([signed(4), signed(5, route="bundle", target=99)])
    chain = FakeChain(latest=5, head=100)  # nonce 4 used on chain by something this log did not sign
    rec = _reconcile(m, chain)
    replaced, dropped, r = rec.events
    assert type(replaced) is ev.TransactionReplaced and replaced.by == "" and replaced.nonce == 4
    assert type(dropped) is ev.TransactionDropped and "target block 99" in dropped.reason
    assert r.next_nonce == 5 and chain.sent == []  # the bundle's nonce is free again
    for e in rec.events:
        m.fold(e)
    assert m.take() == 5 and not m.open


def test_a_replacement_supersedes_what_it_replaces_and_a_mined_sibling_closes_the_other() -> None:
    m = NonceManager("c", ME)
    m.restore([signed(2, "a"), signed(2, "b")])
    chain = FakeChain(latest=2)
    rec = _reconcile(m, chain)
    assert chain.sent == ["0xraw2b"]  # only the newest at the nonce
    m2 = NonceManager("c", ME)
    m2.restore([signed(2, "a"), signed(2, "b")])
    chain2 = FakeChain(latest=3)
    chain2.receipts[signed(2, "a").tx] = {"status": "0x1"}
    rec2 = _reconcile(m2, chain2)
    replaced = [e for e in rec2.events if type(e) is ev.TransactionReplaced]
    assert [(e.tx, e.by) for e in replaced] == [(signed(2, "b").tx, signed(2, "a").tx)]
    assert rec.events[-1].next_nonce == 3


def test_a_refused_rebroadcast_drops_it_and_a_drop_asks_for_reconciling_again() -> None:
    m = NonceManager("c", ME)
    m.restore([signed(0)])
    chain = FakeChain(latest=0)
    chain.refuse = "insufficient funds for gas * price + value"
    rec = _reconcile(m, chain)
    drop, r = rec.events
    assert type(drop) is ev.TransactionDropped and "insufficient funds" in drop.reason and r.next_nonce == 0
    m.fold(drop), m.fold(r)
    assert m.take() == 0
    m.fold(signed(0, "x"))
    m.fold(ev.TransactionDropped(ts=1, intent=1, chain="c", tx=signed(0, "x").tx, reason="refused"))
    with pytest.raises(NotReconciled):  # the nonce may be a hole now
        m.take()


def test_already_known_counts_as_broadcast() -> None:
    m = NonceManager("c", ME)
    m.restore([signed(0)])
    chain = FakeChain()
    chain.refuse = "already known"
    b, r = _reconcile(m, chain).events
    assert type(b) is ev.TransactionBroadcast and "already known" in b.detail and r.rebroadcast == (signed(0).tx,)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["sign", "sign-other", "mine", "drop", "replace", "reconcile"]),
                          st.integers(0, 5)), max_size=30))
def test_restoring_from_the_log_gives_the_state_folding_built(steps: list[tuple[str, int]]) -> None:
    live = NonceManager("c", ME)
    log: list[ev.Event] = []
    nonce = 0
    for i, (op, k) in enumerate(steps, start=1):
        open_txs = sorted(live.open)
        if op == "sign":
            e: ev.Event = signed(nonce, str(k), seq=i)
            nonce += 1
        elif op == "sign-other":
            e = signed(k, "o", seq=i, sender=OTHER)
        elif op == "reconcile":
            e = ev.NonceReconciled(seq=i, ts=1, chain="c", sender=ME, chain_latest=k, chain_pending=k + 1,
                                   next_nonce=nonce)
        elif not open_txs:
            continue
        else:
            tx = open_txs[k % len(open_txs)]
            kind = {"mine": ev.TransactionIncluded, "drop": ev.TransactionDropped, "replace": ev.TransactionReplaced}[op]
            if kind is ev.TransactionIncluded:
                e = kind(seq=i, ts=1, intent=1, chain="c", tx=tx, block=1, index=0, status="success", gas_used=1,
                         gas_price=1)
            elif kind is ev.TransactionDropped:
                e = kind(seq=i, ts=1, intent=1, chain="c", tx=tx, reason="x")
            else:
                e = kind(seq=i, ts=1, intent=1, chain="c", tx=tx, nonce=0, by="", reason="x")
            event(f"closed by {op}")
        live.fold(e)
        log.append(e)
    restored = NonceManager("c", ME)
    restored.restore(log)
    assert (restored.open, restored.signed, restored.next_nonce, restored.highest) == (
        live.open, live.signed, live.next_nonce, live.highest)
    assert all(s.sender == ME for s in restored.signed.values())  # another account's transactions are not ours
    assert not restored.reconciled
