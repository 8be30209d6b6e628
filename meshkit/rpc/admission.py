"""Admission on the server: load shedding per method and deadline-aware refusal.

Each method of an instance has a ``Gate``, bound once when the interceptor wraps the
method (as its RED series are), so a call touches only plain attributes of one object: no
dict lookup, no lock (one event loop serves every call), no allocation.

- **Load shedding**: at most ``max_in_flight`` calls of the method at once (the mesh
  file's ``[admission]`` default, or its ``[admission.methods]`` override; 0: no limit).
  One more is refused at once with ``RESOURCE_EXHAUSTED``, the code gRPC names for a
  server out of a resource, which a caller's retry policy does not retry on the same
  instance and its breaker may count as overload.
- **Deadline-aware admission**: the gate keeps an EWMA of the method's handling time on
  this instance (successful calls only; unary-response methods only, since a stream lasts
  as long as its caller wants). Once it has ``min_samples`` of them, a call with less time
  left than that is refused up front by ``deadlines.check_incoming`` (the same check as the
  ``min_remaining`` floor), with ``DEADLINE_EXCEEDED``: the call would most likely miss
  its deadline anyway, and the code tells the caller its budget, not this server's load,
  is the problem, so neither a retry nor a breaker treats the instance as overloaded.

Both are counted in ``mesh_shed_total{method, reason}`` (``in_flight`` or ``deadline``;
the latter includes the ``min_remaining`` floor). Open methods (health, reflection) have
no gate.
"""

from __future__ import annotations

import sys

from prometheus_client import Counter

from meshkit.config import AdmissionPolicy

NO_LIMIT = sys.maxsize


class Gate:
    """One method's admission state on this instance."""

    __slots__ = (
        "_alpha",
        "_min_samples",
        "deadline_aware",
        "full_message",
        "in_flight",
        "limit",
        "samples",
        "shed_deadline",
        "shed_in_flight",
        "usual",
    )

    def __init__(
        self,
        method: str,
        limit: int,
        *,
        deadline_aware: bool = True,
        alpha: float = 0.1,
        min_samples: int = 20,
        shed: Counter | None = None,
    ) -> None:
        self.limit = limit if limit > 0 else NO_LIMIT
        self.in_flight = 0
        self.deadline_aware = deadline_aware
        self._alpha = alpha
        self._min_samples = min_samples
        # Seconds a successful call usually takes here (EWMA), and how many calls it has seen.
        self.usual = 0.0
        self.samples = 0
        self.full_message = f"{method} has {limit} calls in flight, its maximum; try again later"
        shed = shed or _unregistered_counter()
        self.shed_in_flight = shed.labels(method, "in_flight")
        self.shed_deadline = shed.labels(method, "deadline")

    def enter(self) -> bool:
        """Take a slot; False (and counted as shed) when the method is at its limit."""
        if self.in_flight >= self.limit:
            self.shed_in_flight.inc()
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        self.in_flight -= 1

    def observe(self, took: float) -> None:
        """A successful call's handling time, in seconds."""
        if self.samples:
            self.usual += self._alpha * (took - self.usual)
        else:
            self.usual = took
        self.samples += 1

    def needed(self) -> float:
        """The time a call must have left to be admitted (0 until enough samples)."""
        if self.deadline_aware and self.samples >= self._min_samples:
            return self.usual
        return 0.0


def _unregistered_counter() -> Counter:
    return Counter("mesh_shed", "unregistered", ("method", "reason"), registry=None)


class Admission:
    """The gates of one instance's methods, made from the mesh file's ``[admission]``."""

    def __init__(self, policy: AdmissionPolicy, shed: Counter | None = None) -> None:
        self.policy = policy
        self._shed = shed or _unregistered_counter()
        self._gates: dict[str, Gate] = {}

    def gate(self, method: str, *, streaming: bool = False) -> Gate:
        """``method``'s gate (made once); ``streaming``: a method with a response stream,
        whose duration says nothing of the time a call needs (no deadline-aware refusal)."""
        gate = self._gates.get(method)
        if gate is None:
            p = self.policy
            gate = self._gates[method] = Gate(
                method,
                p.max_in_flight_of(method),
                deadline_aware=p.deadline_aware and not streaming,
                alpha=p.ewma_alpha,
                min_samples=p.min_samples,
                shed=self._shed,
            )
        return gate
