"""``replay --verify``: re-drive a fresh engine from a recorded run and compare every decision.

Inputs and executions are fed to the engine in recorded order; every decision it recomputes must
equal the stored one byte for byte. The first difference is reported with both sides.
"""
from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass

from tapedeck.adapters.eventlog import EventLog
from tapedeck.domain import events as ev
from tapedeck.domain.engine import Engine


@dataclass
class Divergence:
    seq: int
    recorded: ev.Event | None
    recomputed: ev.Event | None

    def describe(self) -> str:
        def show(e: ev.Event | None) -> str:
            return "nothing" if e is None else f"{type(e).__name__} {ev.to_builtins(e)}"

        return (
            f"diverged at seq {self.seq}\n"
            f"  recorded:   {show(self.recorded)}\n"
            f"  recomputed: {show(self.recomputed)}"
        )


@dataclass
class Verification:
    inputs: int
    decisions: int
    digest: str
    divergence: Divergence | None

    @property
    def ok(self) -> bool:
        return self.divergence is None


def verify(log: EventLog, engine: Engine) -> Verification:
    """Feed recorded inputs/executions to ``engine``; every recomputed decision must equal the recorded one.

    The digest is blake2b of the run as one JSON list of ``[topic, event]`` pairs in sequence
    order (the segments' bodies joined by commas), so it does not depend on how the events were
    batched into segments. It is taken over the stored bytes once every recomputed decision in a
    segment has been found equal to the stored one, byte for byte.
    """
    h = hashlib.blake2b(digest_size=32)
    update = h.update
    first_segment = True
    expected: deque[ev.Event] = deque()
    handle = engine.handle
    inputs = decisions = 0
    seq = 0
    DECISION = ev.DECISION

    def fail(at: int, recorded: ev.Event | None, recomputed: ev.Event | None) -> Verification:
        return Verification(inputs, decisions, h.hexdigest(), Divergence(at, recorded, recomputed))

    for first, items, state in log.typed_segments():
        seq = first - 1
        for _topic, event in items:
            seq += 1
            if event.KIND == DECISION:
                if not expected:
                    return fail(seq, event, None)
                mine = ev.with_seq(expected.popleft(), seq)
                if ev.encode(mine) != ev.encode(event):  # byte for byte, as stored
                    return fail(seq, event, mine)
                engine.decided(mine)
                decisions += 1
            else:
                if expected:
                    return fail(seq, None, expected[0])
                inputs += 1
                found = handle(event)
                if found:
                    expected.extend(found)
        if not first_segment:
            update(b",")
        update(memoryview(state)[1:-1])
        first_segment = False
    if expected:
        return fail(seq + 1, None, expected[0])
    return Verification(inputs, decisions, h.hexdigest(), None)
