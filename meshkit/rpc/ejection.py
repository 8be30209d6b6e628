"""Outlier ejection per endpoint, with Envoy's (and gRFC A50's) defaults.

An endpoint that answers ``consecutive`` failures in a row (``UNAVAILABLE``, ``INTERNAL``,
``DEADLINE_EXCEEDED``) is ejected: left out of the service's target list for ``base`` x
(times it has been ejected) seconds. Every ``interval`` a sweep brings back those whose
time is over and lowers the count of an endpoint that stayed in (as Envoy does), so a
repeat offender stays out longer and a reformed one is forgiven. At most
``max_percent`` % of the endpoints are out at once: the last ones always serve.

Endpoints are known by their instance id, which the server sends back in the
``served-by`` trailer (``meshkit.rpc.interceptors``); so an answer is attributed exactly,
and the service's calls still go through one round-robin channel (gRPC's retries move to
another instance, and its retry throttle is the service's, as gRFC A6 means). A failure
with no trailer (the connection failed, or the client's own deadline ran out first) is
not attributed: gRPC's round robin already skips a connection that fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import grpc

FAILURES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED}
)


class Ejector:
    """The ejections of one service's endpoints; ``on_change()`` when the set changes."""

    def __init__(
        self,
        *,
        consecutive: int = 5,
        interval: float = 10.0,
        base: float = 30.0,
        max_percent: int = 50,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.consecutive = consecutive
        self.interval = interval
        self.base = base
        self.max_percent = max_percent
        self.on_change = on_change
        self._clock = clock
        self._failures: dict[str, int] = {}
        self._times: dict[str, int] = {}
        self.ejected: dict[str, float] = {}  # instance id -> until
        self.instances: frozenset[str] = frozenset()

    def set_instances(self, instances: Iterable[str]) -> None:
        """The service's current healthy instances (Consul's); the gone are forgotten."""
        self.instances = frozenset(instances)
        for d in (self._failures, self._times, self.ejected):
            for gone in [k for k in d if k not in self.instances]:
                del d[gone]

    def success(self, instance: str) -> None:
        if self._failures:
            self._failures.pop(instance, None)

    def failure(self, instance: str) -> bool:
        """Counts a failure of ``instance``; True when it was ejected by this one."""
        n = self._failures.get(instance, 0) + 1
        if n < self.consecutive:
            self._failures[instance] = n
            return False
        self._failures.pop(instance, None)
        if instance in self.ejected or instance not in self.instances:
            return False
        if (len(self.ejected) + 1) * 100 > self.max_percent * len(self.instances):
            return False
        times = self._times[instance] = self._times.get(instance, 0) + 1
        self.ejected[instance] = self._clock() + self.base * times
        if self.on_change is not None:
            self.on_change()
        return True

    def sweep(self) -> bool:
        """Brings back the endpoints whose ejection is over; True if any came back."""
        now = self._clock()
        back = [i for i, until in self.ejected.items() if until <= now]
        for i in back:
            del self.ejected[i]
        for i in [i for i in self._times if i not in self.ejected and i not in back]:
            self._times[i] -= 1
            if self._times[i] <= 0:
                del self._times[i]
        if back and self.on_change is not None:
            self.on_change()
        return bool(back)

    @property
    def active(self) -> bool:
        """Whether sweeps are still needed (someone ejected or not yet forgiven)."""
        return bool(self.ejected or self._times)
