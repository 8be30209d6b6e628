"""Admission on the server: load shedding per method and deadline-aware refusal.

Each method of an instance has a ``Gate``, bound once when the interceptor wraps the
method (as its RED series are), so a call touches only plain attributes of one object: no
dict lookup, no lock (one event loop serves every call), no allocation.

- **Load shedding**: at most ``max_in_flight`` calls of the method at once (the mesh
  file's ``[admission]`` default, or its ``[admission.methods]`` override; 0: no limit).
  One more is refused at once with ``RESOURCE_EXHAUSTED``, the code gRPC names for a
  server out of a resource: the mesh's retry policy does not retry it (UNAVAILABLE only),
  and a caller's breaker counts it as a failure of the service.
- **Deadline-aware admission**: the gate keeps an EWMA of the method's handling time on
  this instance (successful calls only; unary-response methods only, since a stream lasts
  as long as its caller wants). Once it has ``min_samples`` of them, a call with less time
  left than that is refused up front by ``deadlines.check_incoming`` (the same check as the
  ``min_remaining`` floor), with ``DEADLINE_EXCEEDED``: what the caller would get at its
  deadline anyway, only sooner and without the wasted work, so its retries, breaker and
  ejection see what they would have seen; ``RESOURCE_EXHAUSTED`` would claim overload
  where the problem is the caller's budget, on an instance that may be idle.

Both are counted in ``mesh_shed_total{method, reason}`` (``in_flight`` or ``deadline``;
the latter includes the ``min_remaining`` floor). Open methods (health, reflection) are
never refused.
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
        "need",
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
        # Seconds a successful call usually takes here (EWMA), how many calls it has seen,
        # and the time a call must have left to be admitted (0 until enough samples).
        self.usual = 0.0
        self.samples = 0
        self.need = 0.0
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

    def leave(self, took: float, ok: bool) -> None:
        """Free the call's slot; ``took``: its handling time in seconds, which goes into the
        usual time when the call succeeded (and the gate is deadline-aware)."""
        self.in_flight -= 1
        if ok and self.deadline_aware:
            samples = self.samples + 1
            self.samples = samples
            if samples == 1:
                self.usual = took
            else:
                self.usual += self._alpha * (took - self.usual)
            if samples >= self._min_samples:
                self.need = self.usual

    def refused(self) -> None:
        """A call refused for too little time left. The usual time decays with each
        refusal: only admitted calls measure the method, so an estimate inflated by a slow
        spell (a fault, a stall) that callers' budgets no longer meet would otherwise
        refuse every call for good. It comes down until calls are admitted again, and
        they measure the method afresh."""
        self.shed_deadline.inc()
        if self.need:
            self.usual *= 1.0 - self._alpha
            self.need = self.usual


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
