"""Deadlines: every call has one, none is longer than the method allows, and the remaining
time of an incoming call bounds every call it makes downstream.

The server side records the incoming call's absolute deadline in a context variable for
the handler's task; the mesh's stubs read it (calls.py), so a handler's outgoing calls get
``min(own timeout or the method's default, what is left upstream)`` and never more.
"""

from __future__ import annotations

import contextvars
import time

import grpc

from meshkit.config import DeadlinePolicy

# Absolute time.monotonic() by which the incoming call being handled must be answered.
_incoming_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "incoming_deadline", default=None
)


# Slack on a method's maximum deadline for the time the call spent in flight.
IN_FLIGHT_SLACK = 0.5


class DeadlineRejected(Exception):
    """An incoming call's deadline breaks the policy."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_incoming(
    policy: DeadlinePolicy, method: str, time_remaining: float | None, needed: float = 0.0
) -> None:
    """Raise DeadlineRejected unless the call's deadline fits the method's policy.

    ``needed``: the time the method usually takes on this instance (``admission.Gate``);
    a call with less left than that, or than ``min_remaining``, is refused up front."""
    limit = policy.for_method(method).max
    if time_remaining is None:
        raise DeadlineRejected(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{method} needs a deadline (at most {limit:g}s); set a timeout on the call",
        )
    if time_remaining > limit + IN_FLIGHT_SLACK:
        raise DeadlineRejected(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"deadline of {time_remaining:.1f}s for {method} exceeds its maximum of {limit:g}s",
        )
    if time_remaining < policy.min_remaining:
        raise DeadlineRejected(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"only {time_remaining * 1000:.1f}ms left for {method}; not worth starting",
        )
    if time_remaining < needed:
        raise DeadlineRejected(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"only {time_remaining * 1000:.1f}ms left for {method}, which takes"
            f" {needed * 1000:.1f}ms here as a rule; not worth starting",
        )


def enter_call(time_remaining: float | None) -> contextvars.Token[float | None]:
    """Record the incoming call's deadline for the handler's task (and the calls it makes)."""
    deadline = None if time_remaining is None else time.monotonic() + time_remaining
    return _incoming_deadline.set(deadline)


def leave_call(token: contextvars.Token[float | None]) -> None:
    _incoming_deadline.reset(token)


def detached_context() -> contextvars.Context:
    """A copy of the current context without the incoming call's deadline.

    For work that must go on after the call that started it has run out of time, such as
    compensations; its outgoing calls get their methods' default deadlines instead.
    """
    context = contextvars.copy_context()
    context.run(_incoming_deadline.set, None)
    return context


def remaining() -> float | None:
    """Seconds left of the incoming call being handled, if any."""
    deadline = _incoming_deadline.get()
    return None if deadline is None else deadline - time.monotonic()


# What an outgoing call leaves of the incoming call's time (at most this, and 5 % of it):
# the downstream's deadline passes just before the caller's, so the caller sees it fail
# (DEADLINE_EXCEEDED, counted by its breaker) and answers, instead of being cancelled by
# its own deadline in the same instant (a cancelled call counts for nothing).
PROPAGATION_MARGIN = 0.05


def outgoing_timeout(policy: DeadlinePolicy, method: str, requested: float | None) -> float:
    """The timeout an outgoing call gets: requested or default, capped by what is left
    (less a margin, ``PROPAGATION_MARGIN``)."""
    timeout = requested if requested is not None else policy.for_method(method).default
    left = remaining()
    if left is not None:
        timeout = min(timeout, left - min(PROPAGATION_MARGIN, 0.05 * max(left, 0.0)))
    return max(timeout, 0.0)
