"""``replay --verify``: check a recorded run's bytes, then re-drive a fresh engine and compare every decision.

Two verdicts in one pass over the log. The stored bytes: every segment must start where the one
before ended, match its hash and link to its predecessor, and the whole must match the seal the
run got when it closed clean (``adapters.eventlog``: a segment is checked before any of its events
reach the engine, so a bad one is named by seq range and never decided on). The decisions: inputs
and executions are fed to the engine in recorded order and every decision it recomputes must equal
the stored one byte for byte; a recorded ``TimerFired`` must name a recorded ``TimerRequested`` of
the same strategy and key that has not fired yet, at or after its ``at_ts``. The first problem is
reported with both sides.

A run that did not end clean (ended open or failed, no seal) is *incomplete*: what it holds is
checked all the same, and decisions its last input did not get to record are not a divergence.
``status`` is one of verified, incomplete, diverged, tampered (the bytes do not match their chain
or seal) or damaged (unreadable); ``replay --verify`` exits 0, 3, 1, 2, 2 for them.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from tapedeck.adapters.eventlog import Chain, EventLog, EventLogError, Integrity, LogTampered
from tapedeck.domain import codec, events as ev
from tapedeck.domain.engine import Engine

VERIFIED, INCOMPLETE, DIVERGED, TAMPERED, DAMAGED = "verified", "incomplete", "diverged", "tampered", "damaged"
EXIT_CODES = {VERIFIED: 0, DIVERGED: 1, TAMPERED: 2, DAMAGED: 2, INCOMPLETE: 3}


@dataclass
class Divergence:
    seq: int
    recorded: ev.Event | None
    recomputed: ev.Event | None
    reason: str = ""  # why, when it is not a plain difference of decisions

    def describe(self) -> str:
        def show(e: ev.Event | None) -> str:
            return "nothing" if e is None else f"{type(e).__name__} {codec.to_builtins(e)}"

        head = f"diverged at seq {self.seq}" + (f": {self.reason}" if self.reason else "")
        return f"{head}\n  recorded:   {show(self.recorded)}\n  recomputed: {show(self.recomputed)}"


@dataclass
class Verification:
    inputs: int
    decisions: int
    digest: str
    divergence: Divergence | None
    integrity: Integrity | None = None  # None when the read stopped early (divergence, bad bytes)
    problem: EventLogError | None = None  # the stored bytes are tampered with or damaged
    unrecorded: int = 0  # decisions of an incomplete run's last input that it did not get to record
    older_schema: int = 0  # decisions stored at an older schema version: compared on the fields it has

    @property
    def status(self) -> str:
        if self.problem is not None:
            return TAMPERED if isinstance(self.problem, LogTampered) else DAMAGED
        if self.divergence is not None:
            return DIVERGED
        if self.integrity is not None and not self.integrity.complete:
            return INCOMPLETE
        return VERIFIED

    @property
    def ok(self) -> bool:
        """The whole run checks out: complete, intact, every decision the same."""
        return self.status == VERIFIED

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]


def _timer_problem(fired: ev.TimerFired, open_timers: dict[int, ev.TimerRequested], done: set[int]) -> str:
    """Why a recorded ``TimerFired`` is not one the recorded decisions asked for ("" when it is)."""
    req = open_timers.get(fired.requested)
    if req is None:
        if fired.requested in done:
            return f"TimerFired for the TimerRequested at seq {fired.requested}, which has already fired"
        return f"TimerFired names seq {fired.requested}, which holds no TimerRequested recorded before it"
    if req.strategy != fired.strategy or req.key != fired.key:
        return (f"TimerFired ({fired.strategy!r}, {fired.key!r}) does not match the TimerRequested at seq "
                f"{fired.requested} ({req.strategy!r}, {req.key!r})")
    if fired.ts < req.at_ts:
        return f"TimerFired at ts {fired.ts}, before the requested at_ts {req.at_ts}"
    del open_timers[fired.requested]
    done.add(fired.requested)
    return ""


def verify(log: EventLog, engine: Engine) -> Verification:
    """Check ``log``'s bytes and feed its inputs/executions to ``engine``; every recomputed decision
    must equal the recorded one.

    The digest is the log's (``adapters.eventlog``): blake2b of the run as one JSON list of
    ``[topic, event]`` pairs in sequence order, so it does not depend on how the events were
    batched into segments; it is computed from the stored bytes as they are checked, in the same
    pass that decodes them (one decode per segment).
    """
    chain = Chain()
    expected: deque[ev.Event] = deque()
    handle = engine.handle
    inputs = decisions = 0
    seq = 0
    DECISION = ev.DECISION
    TimerFired, TimerRequested = ev.TimerFired, ev.TimerRequested
    open_timers: dict[int, ev.TimerRequested] = {}
    fired: set[int] = set()
    current = {t: codec.topic(t) for t in ev.EVENT_TYPES}
    older = 0  # decisions stored at an older schema version, compared on the fields it has

    segments = log.typed_segments(check=chain)

    def fail(at: int, recorded: ev.Event | None, recomputed: ev.Event | None, reason: str = "") -> Verification:
        # A decision that differs may be the first sign of an edit the chain shows only further on
        # (a re-hashed segment breaks the next one's link, or the seal): read the rest, and report
        # the tampering instead if there is any. Only a failing run pays for this.
        digest = chain.digest.hexdigest()
        try:
            for _ in segments:
                pass
            chain.finish(log)
        except EventLogError as e:
            return Verification(inputs, decisions, digest, None, problem=e)
        return Verification(inputs, decisions, digest, Divergence(at, recorded, recomputed, reason))

    try:
        for first, items, _state in segments:
            seq = first - 1
            for topic, event in items:
                seq += 1
                if event.KIND == DECISION:
                    if not expected:
                        return fail(seq, event, None)
                    mine = ev.with_seq(expected.popleft(), seq)
                    seen = mine
                    if topic != current[type(event)]:  # stored by older code: compare what it could say
                        seen = codec.as_recorded(mine, topic, event)
                        older += 1
                    if codec.encode(seen) != codec.encode(event):  # byte for byte, as stored
                        return fail(seq, event, mine)
                    engine.decided(mine)
                    decisions += 1
                    if type(mine) is TimerRequested:
                        open_timers[seq] = mine  # type: ignore[assignment]
                else:
                    if expected:
                        return fail(seq, None, expected[0])
                    if type(event) is TimerFired:
                        why = _timer_problem(event, open_timers, fired)  # type: ignore[arg-type]
                        if why:
                            return fail(seq, event, None, why)
                    inputs += 1
                    found = handle(event)
                    if found:
                        expected.extend(found)
        integrity = chain.finish(log)
    except EventLogError as e:
        return Verification(inputs, decisions, chain.digest.hexdigest(), None, problem=e)
    log.integrity = integrity
    result = Verification(inputs, decisions, integrity.digest, None, integrity)
    result.older_schema = older
    if expected:
        if integrity.complete:
            return fail(seq + 1, None, expected[0])
        result.unrecorded = len(expected)  # the run stopped before it recorded them
    return result
