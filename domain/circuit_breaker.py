"""A circuit breaker for a strategy's intents: stop after consecutive failures, probe, recover.

Why: a liquidator whose transactions keep failing (outbid, reverted, dropped: a broken route, a
wrong price) burns gas and reputation; it should stop, wait, try once, and resume only if that
works. Pure domain state, driven only by the strategy's outcomes and its own timer events, so a
replay reproduces every transition:

* ``closed``: intents go; each failure counts, a success resets the count; ``threshold``
  consecutive failures open it.
* ``open``: no intents. Opening asks for a timer ``timeout_ns`` later (generation ``gen``: a timer of
  an older opening is ignored); when it fires it goes ``half_open``.
* ``half_open``: one intent (the probe) may go; its success closes it, its failure opens it again.

Transitions are returned as strings (the new state) so the strategy records them as events.
"""
from __future__ import annotations

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    __slots__ = ("threshold", "timeout_ns", "state", "failures", "gen", "probe", "opened_at")

    def __init__(self, threshold: int = 5, timeout_ns: int = 60 * 10**9) -> None:
        if threshold < 1 or timeout_ns <= 0:
            raise ValueError("circuit breaker threshold must be >= 1 and timeout > 0")
        self.threshold, self.timeout_ns = threshold, timeout_ns
        self.state = CLOSED
        self.failures = 0  # consecutive
        self.gen = 0  # openings so far (names the timer)
        self.probe = ""  # client id of the half-open probe in flight
        self.opened_at = -1

    def allows(self) -> bool:
        """May an intent go now? (In half-open, only while no probe is out.)"""
        return self.state == CLOSED or (self.state == HALF_OPEN and not self.probe)

    def sent(self, client_id: str) -> None:
        """An intent went: in half-open it is the probe."""
        if self.state == HALF_OPEN and not self.probe:
            self.probe = client_id

    def failure(self, client_id: str, ts: int) -> str:
        """An intent failed; returns the new state if it changed ("" otherwise)."""
        if self.state == OPEN:
            return ""
        if self.state == HALF_OPEN:
            if client_id != self.probe:
                return ""  # an intent from before the opening: old news
            return self._open(ts)
        self.failures += 1
        return self._open(ts) if self.failures >= self.threshold else ""

    def success(self, client_id: str) -> str:
        if self.state == HALF_OPEN:
            if client_id != self.probe:
                return ""
            self.state, self.probe, self.failures = CLOSED, "", 0
            return CLOSED
        if self.state == CLOSED:
            self.failures = 0
        return ""

    def released(self, client_id: str) -> None:
        """The intent ended without an outcome (rejected by the gate): a probe may go again."""
        if self.probe == client_id:
            self.probe = ""

    def timer(self, gen: int) -> str:
        """The opening's timer fired: half-open (a stale generation changes nothing)."""
        if self.state != OPEN or gen != self.gen:
            return ""
        self.state, self.probe = HALF_OPEN, ""
        return HALF_OPEN

    def _open(self, ts: int) -> str:
        self.state, self.probe, self.opened_at = OPEN, "", ts
        self.gen += 1
        return OPEN

    @property
    def reopen_at(self) -> int:
        return self.opened_at + self.timeout_ns
