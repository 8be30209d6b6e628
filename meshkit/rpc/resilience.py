"""The client side's resilience for calls to one service: a bulkhead, a circuit breaker
and outlier ejection of its endpoints (``bulkhead.py``, ``breaker.py``, ``ejection.py``),
configured from the mesh file's ``[resilience]`` and visible in the instance's metrics.

``Guard.admit()`` runs before a call goes out and ``Guard.done`` when it ends (a done
callback of the ``grpc.aio`` call): integer counters and dict look-ups on the event loop,
no locks, no allocation but the bound callback. The status and the ``served-by`` trailer
are read from the finished call directly, without a task per call (``_status_of``).
``MESH_RESILIENCE=off`` (``ResilienceSettings.enabled``) makes no guard at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from grpc._common import CYGRPC_STATUS_CODE_TO_STATUS_CODE

from meshkit.config import ResiliencePolicy
from meshkit.rpc import ejection
from meshkit.rpc.breaker import FAILURES, STATE_NAMES, Breaker
from meshkit.rpc.bulkhead import Bulkhead
from meshkit.rpc.ejection import Ejector
from meshkit.telemetry.metrics import Metrics

log = logging.getLogger("mesh.resilience")

SERVED_BY = "served-by"


class FailedCall:
    """What a stub method returns for a call refused before it went out: an awaitable
    (and async iterator, for streams) that raises the error, as the call would have."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.error = grpc.aio.AioRpcError(
            code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details
        )

    def __await__(self) -> Any:
        raise self.error
        yield  # pragma: no cover  (makes this a generator, as __await__ must be)

    def __aiter__(self) -> FailedCall:
        return self

    async def __anext__(self) -> Any:
        raise self.error

    async def code(self) -> grpc.StatusCode:
        return self.error.code()

    async def details(self) -> str | None:
        return self.error.details()


def _status_of(call: Any) -> tuple[grpc.StatusCode | None, Any]:
    """The code and trailing metadata of a finished ``grpc.aio`` call, read without
    awaiting (grpc.aio's own ``code()`` is a coroutine; the status is there once done)."""
    status = getattr(getattr(call, "_cython_call", None), "_status", None)
    if status is None:
        return None, ()
    return CYGRPC_STATUS_CODE_TO_STATUS_CODE.get(status.code()), status.trailing_metadata()


def served_by(trailing: Any) -> str:
    for key, value in trailing or ():
        if key == SERVED_BY:
            return value if isinstance(value, str) else value.decode()
    return ""


class Guard:
    """Bulkhead, breaker and ejection of calls to ``service`` from this instance.

    ``on_ejected()`` is called when the set of ejected endpoints changes (the channel
    rebuilds its target list without them: ``ejected_ids()``).
    """

    def __init__(
        self,
        service: str,
        policy: ResiliencePolicy,
        metrics: Metrics,
        on_ejected: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.policy = policy
        self.bulkhead = Bulkhead(policy.max_in_flight)
        self._state = metrics.breaker_state.labels(service)
        self._transitions = {
            s: metrics.breaker_transitions.labels(service, name) for s, name in STATE_NAMES.items()
        }
        self._rejected = metrics.bulkhead_rejected.labels(service)
        self._ejections = metrics.endpoint_ejections.labels(service)
        self._ejected = metrics.endpoints_ejected.labels(service)
        self.hedges = metrics.hedges.labels(service)
        self._state.set(0)
        self._ejected.set(0)
        self._n_ejected = 0
        self.breaker: Breaker | None = None
        if policy.breaker:
            self.breaker = Breaker(
                window=policy.breaker_window,
                failure_ratio=policy.breaker_failure_ratio,
                min_calls=policy.breaker_min_calls,
                open_for=policy.breaker_open,
                half_open_calls=policy.breaker_half_open_calls,
                clock=clock,
                on_change=self._breaker_changed,
            )
        self.ejector: Ejector | None = None
        if policy.ejection:
            self.ejector = Ejector(
                consecutive=policy.ejection_consecutive,
                interval=policy.ejection_interval,
                base=policy.ejection_base,
                max_percent=policy.ejection_max_percent,
                clock=clock,
                on_change=self._ejections_changed,
            )
        self.on_ejected = on_ejected
        self._sweeping: asyncio.TimerHandle | None = None
        self._open = FailedCall(
            grpc.StatusCode.UNAVAILABLE,
            f"circuit breaker of {service} is open: too many of its calls failed"
            f" (more than {policy.breaker_failure_ratio:.0%} in {policy.breaker_window:g}s);"
            " failing fast until it half-opens",
        )
        self._full = FailedCall(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"bulkhead of {service} is full: {policy.max_in_flight} calls to it in flight"
            " from this instance",
        )
        self.done = self._done  # bound once: no bound-method object per call

    def admit(self) -> FailedCall | None:
        """None if the call may go out (it then holds a bulkhead slot until ``done``),
        else the refused call to hand back."""
        if not self.bulkhead.acquire():
            self._rejected.inc()
            return self._full
        b = self.breaker
        if b is not None and b.state and not b.allow():
            self.bulkhead.release()
            return self._open
        return None

    def _done(self, call: Any) -> None:
        self.bulkhead.release()
        code, trailing = _status_of(call)
        b = self.breaker
        if b is not None:
            if code is None or code is grpc.StatusCode.CANCELLED:
                b.release()
            else:
                b.record(code in FAILURES)
        e = self.ejector
        if e is not None and code is not None:
            if code in ejection.FAILURES:
                instance = served_by(trailing)
                if instance:
                    e.failure(instance)
            elif e._failures:
                e.success(served_by(trailing))

    def ejected_ids(self) -> frozenset[str] | dict[str, float]:
        return self.ejector.ejected if self.ejector is not None else frozenset()

    def set_instances(self, ids: list[str]) -> None:
        if self.ejector is not None:
            self.ejector.set_instances(ids)
            self._n_ejected = len(self.ejector.ejected)
            self._ejected.set(self._n_ejected)

    def _breaker_changed(self, state: int) -> None:
        self._state.set(state)
        self._transitions[state].inc()
        log.warning("%s: circuit breaker %s", self.service, STATE_NAMES[state])

    def _ejections_changed(self) -> None:
        assert self.ejector is not None
        ejected = self.ejector.ejected
        if len(ejected) > self._n_ejected:
            self._ejections.inc()
        self._n_ejected = len(ejected)
        self._ejected.set(self._n_ejected)
        log.warning("%s: ejected endpoint(s) %s", self.service, sorted(ejected))
        if self._sweeping is None:
            self._schedule_sweep()
        self.on_ejected()

    def _schedule_sweep(self) -> None:
        assert self.ejector is not None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._sweeping = loop.call_later(self.ejector.interval, self._sweep)

    def _sweep(self) -> None:
        self._sweeping = None
        assert self.ejector is not None
        self.ejector.sweep()
        if self.ejector.active:
            self._schedule_sweep()

    def close(self) -> None:
        if self._sweeping is not None:
            self._sweeping.cancel()
            self._sweeping = None
