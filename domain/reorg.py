"""Folding a chain reorg back: what the last blocks' logs changed, kept so a retraction undoes it.

Why: a live EVM adapter applies each block as it arrives (a liquidation is a race), and a block can
later turn out not to be canonical. The adapter then emits a ``LogRetracted`` for every log of the
abandoned blocks, at a block boundary, before the canonical blocks' logs; after those, the state
must be what a fresh replay of the canonical chain gives. Two mechanisms, both bounded by the
chain's ``depth`` (``ReorgWindowSet``, emitted by the adapter; without one nothing is journaled, so
sim and replay of sim logs pay nothing):

* :class:`ChainJournal` (``MarketState``): before a block's first change to a value (a V2 pair's
  reserves, a V3 pool's state, the chain's last block, a pool's freshness), the value as it was is
  saved under that block. A retraction of block ``n`` restores, newest block first, every value
  saved by blocks ``>= n``; later retractions of the same reorg find nothing left and do nothing.
  V2 pairs are replaced, never mutated, so saving the reference is enough; a V3 pool state is
  copied (``copy.deepcopy``: price, liquidity and its tick table) once per block that touches it.
* :class:`LaggedReplica` (strategies' own books, e.g. ``AaveBook``, whose objects refer to each
  other): a copy of the book that lags ``depth`` blocks behind, plus the events of the blocks not
  yet in it. A retraction of block ``n`` replaces the book by a copy of the replica and re-applies
  the kept events of the blocks before ``n``. Costs a second fold of each event while windowed,
  and a deep copy only when a reorg happens.

Blocks are told by number: the retraction says which number was abandoned, and everything from it
up goes. A reorg that abandoned only blocks without followed logs sends no retraction; the values
it changed (the chain's last block) are overwritten by the canonical blocks, and a ``BlockProduced``
drops the journal's entries above its own number (they were abandoned). Nothing here reads a clock
or iterates a set: plain dicts in insertion order, block numbers sorted.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Generic, TypeVar

from tapedeck.domain import events as ev

MISSING: Any = object()  # "the key had no value before this block"

T = TypeVar("T")


class ChainJournal:
    """The values each of a chain's last ``depth`` blocks changed, as they were before it."""

    __slots__ = ("chain", "depth", "blocks", "restored")

    def __init__(self, chain: str, depth: int) -> None:
        self.chain, self.depth = chain, depth
        self.blocks: dict[int, dict[tuple[str, str], Any]] = {}  # block -> (table, key) -> value before it
        self.restored = 0  # blocks folded back (for health and tests)

    def entry(self, block: int) -> dict[tuple[str, str], Any]:
        e = self.blocks.get(block)
        if e is None:
            e = self.blocks[block] = {}
            cutoff = block - self.depth
            for old in [b for b in self.blocks if b <= cutoff]:
                del self.blocks[old]
        return e

    def save(self, block: int, table: str, key: str, tables: dict[str, dict[str, Any]]) -> None:
        """Before ``tables[table][key]`` changes in ``block``: keep its value if the block has not yet."""
        e = self.entry(block)
        k = (table, key)
        if k not in e:
            value = tables[table].get(key, MISSING)
            e[k] = copy.deepcopy(value) if table == "v3" and value is not MISSING else value

    def rewind(self, block: int, tables: dict[str, dict[str, Any]]) -> int:
        """Restore every value saved by blocks ``>= block``, newest first; how many blocks."""
        gone = sorted((b for b in self.blocks if b >= block), reverse=True)
        for b in gone:
            for (table, key), value in self.blocks.pop(b).items():
                if value is MISSING:
                    tables[table].pop(key, None)
                else:
                    tables[table][key] = value
        self.restored += len(gone)
        return len(gone)

    def abandon_above(self, block: int) -> None:
        """A ``BlockProduced`` at ``block``: entries above it belong to blocks no longer canonical."""
        for b in [b for b in self.blocks if b > block]:
            del self.blocks[b]


class MarketJournal:
    """``MarketState``'s reorg journals, one per windowed chain, and which chain each pool is on."""

    __slots__ = ("chains", "pool_chain")

    def __init__(self) -> None:
        self.chains: dict[str, ChainJournal] = {}
        self.pool_chain: dict[str, str] = {}

    def set_window(self, e: ev.ReorgWindowSet) -> None:
        if e.depth <= 0:
            self.chains.pop(e.chain, None)
            for p in [p for p, c in self.pool_chain.items() if c == e.chain]:
                del self.pool_chain[p]
            return
        j = self.chains.get(e.chain)
        if j is None:
            self.chains[e.chain] = ChainJournal(e.chain, e.depth)
        else:
            j.depth = e.depth
        for p in e.pools:
            self.pool_chain[p.lower()] = e.chain

    def journal_of_pool(self, pool: str) -> ChainJournal | None:
        chain = self.pool_chain.get(pool)
        return None if chain is None else self.chains.get(chain)


class LaggedReplica(Generic[T]):
    """A copy of a book ``depth`` blocks behind it, and the events of the blocks since.

    The owner calls :meth:`record` with each event it folds, :meth:`close` at each of the chain's
    ``BlockProduced`` (the events recorded since the last one are that block's), and
    :meth:`rewind` on a retraction, which gives a fresh book (the replica's copy) and the events to
    fold into it again."""

    def __init__(self, book: T, depth: int, apply: Callable[[T, ev.Event], Any]) -> None:
        self.depth = depth
        self.replica = copy.deepcopy(book)
        self._apply = apply
        self.blocks: list[tuple[int, list[ev.Event]]] = []  # (number, its events), oldest first
        self.open: list[ev.Event] = []
        self.rewinds = 0

    def record(self, e: ev.Event) -> None:
        self.open.append(e)

    def close(self, number: int) -> None:
        # a block at or below one kept: the kept ones from it up were abandoned without retraction
        while self.blocks and self.blocks[-1][0] >= number:
            self.blocks.pop()
        self.blocks.append((number, self.open))
        self.open = []
        cutoff = number - self.depth
        while self.blocks and self.blocks[0][0] <= cutoff:
            for e in self.blocks.pop(0)[1]:
                self._apply(self.replica, e)

    def rewind(self, block: int) -> tuple[T, list[ev.Event]] | None:
        """None when nothing from ``block`` up is kept (already folded back); else (a copy of the
        replica, the kept events of the blocks before ``block``, in order)."""
        if not any(n >= block for n, _ in self.blocks) and not self.open:
            return None
        self.blocks = [(n, es) for n, es in self.blocks if n < block]
        self.open = []
        self.rewinds += 1
        return copy.deepcopy(self.replica), [e for _, es in self.blocks for e in es]
