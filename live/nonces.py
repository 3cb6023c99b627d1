"""A nonce manager whose state is the run's events: it survives a crash with nothing but the log.

One ``NonceManager`` per (chain, sending account). Its whole state is folded from events
(``fold``): ``TransactionSigned`` (the raw bytes and the nonce they use), ``TransactionBroadcast``,
``TransactionIncluded`` / ``TransactionDropped`` / ``TransactionReplaced`` (what closed a nonce)
and ``NonceReconciled`` (where it stood against the chain). ``restore(events)`` rebuilds it from a
recorded log; the gateway folds every event it reports, so the live state and the state a restart
rebuilds are the same function of the same events.

The rules it keeps:

* **No send before reconciling.** After construction or ``restore``, ``take()`` refuses
  (``NotReconciled``) until ``reconcile(rpc)`` has compared the log with the chain: the account's
  ``eth_getTransactionCount`` at "latest" and "pending", and every transaction the log signed and
  never saw closed. For each of those: mined (a receipt) -> reported mined; its nonce used on chain
  by something else -> replaced; a bundle whose target block has passed -> dropped (recorded: a
  bundle signed and never sent before a crash ends here too when its blocks went by meanwhile); a
  bundle signed but never sent whose target block is still ahead -> ``resend``: the gateway hands
  the same recorded bytes to the relay for the blocks left and follows it; otherwise the
  **same recorded bytes** are rebroadcast (never a new transaction for that nonce). Then the next
  nonce is the larger of the chain's pending count and one past the highest nonce still open.
* **Saved before sent.** The gateway records and flushes ``TransactionSigned`` (raw bytes,
  nonce) before the bytes leave the process; a crash between the two leaves a signed transaction
  the next start rebroadcasts from the log, so the nonce is used once, by those bytes.
* A transaction that closed without being mined (a bundle left out, a broadcast the node refused)
  leaves a possible hole below the next nonce: the manager asks to be reconciled again before the
  next ``take()``.

The chain is reached through ``rpc.call(method, params)`` (``live.evm_gateway.JsonRpc``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

from tapedeck.domain import events as ev

SOURCE = "live:nonces"
ALREADY_KNOWN = ("already known", "known transaction", "already imported", "alreadyknown",
                 "transaction already exists")
NONCE_TOO_LOW = ("nonce too low", "nonce is too low", "oldnonce")


class Rpc(Protocol):
    async def call(self, method: str, params: list[Any]) -> Any: ...


class NotReconciled(RuntimeError):
    """The manager has not checked its log against the chain since it started (or since a hole)."""


class RpcError(RuntimeError):
    """A JSON-RPC error answer: ``code`` and ``message`` as the node gave them."""

    def __init__(self, method: str, code: int, message: str, data: str = "") -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method, self.code, self.message, self.data = method, code, message, data


def is_already_known(e: Exception) -> bool:
    return any(m in str(e).lower() for m in ALREADY_KNOWN)


def is_nonce_too_low(e: Exception) -> bool:
    return any(m in str(e).lower() for m in NONCE_TOO_LOW)


@dataclass
class Reconciliation:
    """What ``reconcile`` found: the events to report (in order: per transaction, then the
    ``NonceReconciled``), the open transactions already mined (hash -> JSON-RPC receipt) and the
    open ones the gateway should keep following (rebroadcast or still pending)."""

    events: list[ev.Event] = field(default_factory=list)
    mined: dict[str, dict[str, Any]] = field(default_factory=dict)
    follow: list[ev.TransactionSigned] = field(default_factory=list)
    closed: list[tuple[ev.TransactionSigned, str]] = field(default_factory=list)  # (signed, why) not mined
    resend: list[ev.TransactionSigned] = field(default_factory=list)  # bundles signed, never sent, target ahead


class NonceManager:
    """See the module docstring. ``sender`` is compared lowercase."""

    def __init__(self, chain: str, sender: str) -> None:
        self.chain, self.sender = chain, sender.lower()
        self.signed: dict[str, ev.TransactionSigned] = {}  # every transaction signed (hash -> event)
        self.open: dict[str, ev.TransactionSigned] = {}  # signed, not yet closed (mined, dropped, replaced)
        self.broadcasts: dict[str, int] = {}  # hash -> broadcasts recorded
        self.targets: dict[str, int] = {}  # hash -> the last block a bundle carrying it targets
        self.order: dict[str, int] = {}  # hash -> the order it was signed in (events folded live have no seq yet)
        self.next_nonce: int | None = None  # None: not reconciled
        self.highest: int = -1  # the highest nonce ever signed
        self.reconciled = False
        self.reconciliations = 0

    # ------------------------------------------------------------------ state from events

    def fold(self, e: ev.Event) -> None:
        t = type(e)
        if t is ev.TransactionSigned:
            if e.chain != self.chain or e.sender.lower() != self.sender:
                return
            self.signed[e.tx] = e
            self.open[e.tx] = e
            self.order.setdefault(e.tx, len(self.order))
            self.highest = max(self.highest, e.nonce)
            if self.next_nonce is not None:
                self.next_nonce = max(self.next_nonce, e.nonce + 1)
        elif t is ev.TransactionBroadcast:
            if e.tx in self.signed:
                self.broadcasts[e.tx] = self.broadcasts.get(e.tx, 0) + 1
                if e.target_block:
                    self.targets[e.tx] = max(self.targets.get(e.tx, 0), e.target_block)
        elif t is ev.TransactionIncluded:
            s = self.open.pop(e.tx, None)
            if s is not None:  # every other open transaction at its nonce can never be mined now
                for other in [o for o in self.open.values() if o.nonce == s.nonce]:
                    self.open.pop(other.tx, None)
        elif t in (ev.TransactionDropped, ev.TransactionReplaced):
            s = self.open.pop(e.tx, None)
            if s is not None and t is ev.TransactionDropped and not any(o.nonce == s.nonce for o in self.open.values()):
                self.reconciled = False  # its nonce may be a hole now: ask the chain again before sending
        elif t is ev.NonceReconciled:
            if e.chain == self.chain and e.sender.lower() == self.sender:
                self.next_nonce = e.next_nonce
                self.reconciled = True
                self.reconciliations += 1

    def restore(self, events: Iterable[ev.Event]) -> None:
        """Rebuild from a recorded log; a restored manager must reconcile before it sends."""
        for e in events:
            self.fold(e)
        self.reconciled = False

    # ------------------------------------------------------------------ sending

    def take(self) -> int:
        """The nonce for the next transaction (held until its ``TransactionSigned`` is folded)."""
        if not self.reconciled or self.next_nonce is None:
            raise NotReconciled(f"{self.chain} {self.sender}: the nonce manager has not reconciled with the chain; "
                                f"it sends nothing until it has")
        n = self.next_nonce
        self.next_nonce = n + 1
        return n

    def latest_at(self, nonce: int) -> ev.TransactionSigned | None:
        """The newest open transaction at ``nonce`` (a replacement supersedes what it replaces)."""
        at = [s for s in self.open.values() if s.nonce == nonce]
        return max(at, key=lambda s: self.order[s.tx]) if at else None

    # ------------------------------------------------------------------ reconciling

    async def reconcile(self, rpc: Rpc, *, now: Callable[[], int], head: int | None = None,
                        source: str = SOURCE) -> Reconciliation:
        """Compare the log with the chain and say what follows (see the module docstring). The
        events are returned, not folded: the gateway reports and folds them in order (the last
        one, ``NonceReconciled``, lets ``take`` work again)."""
        out = Reconciliation()
        latest = int(await rpc.call("eth_getTransactionCount", [self.sender, "latest"]), 16)
        if head is None:
            head = int(await rpc.call("eth_blockNumber", []), 16)
        rebroadcast: list[str] = []
        notes: list[str] = []
        open_sorted = sorted(self.open.values(), key=lambda s: (s.nonce, self.order[s.tx]))
        receipts: dict[str, dict[str, Any] | None] = {}
        for s in open_sorted:
            receipts[s.tx] = await rpc.call("eth_getTransactionReceipt", [s.tx])
        mined_at = {s.nonce: s.tx for s in open_sorted if receipts[s.tx]}
        for s in open_sorted:
            common = dict(ts=now(), source=source, cause=s.seq or s.intent, intent=s.intent, chain=self.chain, tx=s.tx)
            receipt = receipts[s.tx]
            if receipt:
                out.mined[s.tx] = receipt
                continue
            if s.nonce in mined_at:
                why = f"nonce {s.nonce} was mined as {mined_at[s.nonce]}"
                out.events.append(ev.TransactionReplaced(**common, nonce=s.nonce, by=mined_at[s.nonce], reason=why))
                out.closed.append((s, why))
                continue
            if s.nonce < latest:
                why = (f"nonce {s.nonce} was used on chain by a transaction this log did not sign "
                       f"(the account's count is {latest})")
                out.events.append(ev.TransactionReplaced(**common, nonce=s.nonce, by="", reason=why))
                out.closed.append((s, why))
                continue
            newest = self.latest_at(s.nonce)
            if newest is not None and newest.tx != s.tx:
                continue  # superseded by its replacement, which is rebroadcast instead
            if s.route == "bundle":
                target = self._bundle_target(s)
                if head >= target:
                    why = f"bundle not included by its target block {target} (head {head})"
                    out.events.append(ev.TransactionDropped(**common, reason=why))
                    out.closed.append((s, why))
                    continue
                if not self.broadcasts.get(s.tx):  # signed and saved, the crash came before the relay had it
                    out.resend.append(s)  # the same recorded bytes to the relay, for the blocks still ahead
                out.follow.append(s)  # its target block is still ahead: follow it
                continue
            known = await rpc.call("eth_getTransactionByHash", [s.tx])
            if known is None:
                try:
                    await rpc.call("eth_sendRawTransaction", [s.raw])
                    detail = "rebroadcast from the log after a restart"
                except RpcError as e:
                    if is_already_known(e):
                        detail = "rebroadcast: already known to the node"
                    elif is_nonce_too_low(e):
                        detail = "rebroadcast: nonce too low (mined meanwhile?)"
                    else:
                        why = f"the node refused the recorded bytes on rebroadcast: {e.message}"
                        out.events.append(ev.TransactionDropped(**common, reason=why))
                        out.closed.append((s, why))
                        continue
                out.events.append(ev.TransactionBroadcast(**common, via="public",
                                                          attempt=self.broadcasts.get(s.tx, 0), detail=detail))
                rebroadcast.append(s.tx)
            out.follow.append(s)
        pending = int(await rpc.call("eth_getTransactionCount", [self.sender, "pending"]), 16)
        still = [s.nonce for s in out.follow]
        nxt = max([pending, *(n + 1 for n in still)])
        if self.highest >= 0 and pending > self.highest + 1 and not still:
            notes.append(f"the chain counts {pending - self.highest - 1} transaction(s) of this account this log "
                         f"did not sign (another process using the key?)")
        elif self.highest < 0 and pending:
            notes.append(f"the account has sent {pending} transaction(s) before this run")
        out.events.append(ev.NonceReconciled(ts=now(), source=source, chain=self.chain, sender=self.sender,
                                             chain_latest=latest, chain_pending=pending, next_nonce=nxt,
                                             open=tuple(s.tx for s in out.follow) + tuple(out.mined),
                                             rebroadcast=tuple(rebroadcast), detail="; ".join(notes)))
        return out

    def _bundle_target(self, s: ev.TransactionSigned) -> int:
        return max(s.target_block, self.targets.get(s.tx, 0))
