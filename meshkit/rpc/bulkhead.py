"""A per-downstream concurrency limit (a bulkhead): at most ``limit`` calls to one service
in flight from this instance.

Beyond it a call fails at once with ``RESOURCE_EXHAUSTED`` naming the service rather
than queueing: a full bulkhead means the downstream is slow, and a queue would hold the
caller's own deadline hostage while adding latency for everyone behind it. The caller
(or its caller's retry budget) decides what to do with the refusal.
"""

from __future__ import annotations


class Bulkhead:
    """A counter, no lock: the event loop that makes the calls is the only one to touch it."""

    __slots__ = ("in_flight", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit if limit > 0 else 1 << 62  # 0: no limit
        self.in_flight = 0

    def acquire(self) -> bool:
        if self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1
