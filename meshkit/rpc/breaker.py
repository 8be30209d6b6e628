"""A per-service circuit breaker: closed, open, half-open.

Closed: every call goes out, and its outcome is counted in a rolling window (``window``
seconds in ten buckets). When at least ``min_calls`` calls ended in the window and the
share of failures exceeds ``failure_ratio``, the breaker opens: for ``open_for`` seconds
calls fail at once (``UNAVAILABLE``, without touching the network). Then it is half-open:
``half_open_calls`` trial calls go out, the others still fail fast; a trial's success
closes it, a failure opens it again.

Failures are what says the service is in trouble (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``,
``INTERNAL``, ``RESOURCE_EXHAUSTED``); an answer such as ``NOT_FOUND`` or
``INVALID_ARGUMENT`` is the service working. No locks: one event loop owns it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

CLOSED, OPEN, HALF_OPEN = 0, 1, 2
STATE_NAMES = {CLOSED: "closed", OPEN: "open", HALF_OPEN: "half_open"}
FAILURES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
_BUCKETS = 10


class Breaker:
    """The breaker of one downstream service; ``on_change(state)`` on every transition."""

    __slots__ = (
        "_clock",
        "_epoch",
        "_failed",
        "_open_until",
        "_total",
        "_trials",
        "_width",
        "failure_ratio",
        "half_open_calls",
        "min_calls",
        "on_change",
        "open_for",
        "state",
    )

    def __init__(
        self,
        *,
        window: float = 10.0,
        failure_ratio: float = 0.5,
        min_calls: int = 20,
        open_for: float = 5.0,
        half_open_calls: int = 3,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        self.state = CLOSED
        self.failure_ratio = failure_ratio
        self.min_calls = min_calls
        self.open_for = open_for
        self.half_open_calls = max(1, half_open_calls)
        self.on_change = on_change
        self._clock = clock
        self._width = window / _BUCKETS
        self._epoch = [-1] * _BUCKETS
        self._total = [0] * _BUCKETS
        self._failed = [0] * _BUCKETS
        self._open_until = 0.0
        self._trials = 0

    def allow(self) -> bool:
        """Whether a call may go out now (only asked when the breaker is not closed)."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if self._clock() < self._open_until:
                return False
            self._to(HALF_OPEN)
            self._trials = 0
        if self._trials >= self.half_open_calls:
            return False
        self._trials += 1
        return True

    def record(self, failed: bool) -> None:
        """The outcome of a call that went out."""
        state = self.state
        if state == HALF_OPEN:
            if failed:
                self._open()
            else:
                self._reset()
                self._to(CLOSED)
            return
        if state == OPEN:
            return  # a call from before it opened
        now = self._clock()
        i = int(now / self._width)
        slot = i % _BUCKETS
        if self._epoch[slot] != i:
            self._epoch[slot] = i
            self._total[slot] = 0
            self._failed[slot] = 0
        self._total[slot] += 1
        if failed:
            self._failed[slot] += 1
            total = failures = 0
            oldest = i - _BUCKETS
            for s in range(_BUCKETS):
                if self._epoch[s] > oldest:
                    total += self._total[s]
                    failures += self._failed[s]
            if total >= self.min_calls and failures > self.failure_ratio * total:
                self._open()

    def release(self) -> None:
        """A trial call ended with no verdict (cancelled): its slot goes to another."""
        if self.state == HALF_OPEN and self._trials > 0:
            self._trials -= 1

    def _open(self) -> None:
        self._open_until = self._clock() + self.open_for
        self._reset()
        self._to(OPEN)

    def _reset(self) -> None:
        for s in range(_BUCKETS):
            self._epoch[s] = -1

    def _to(self, state: int) -> None:
        self.state = state
        if self.on_change is not None:
            self.on_change(state)
