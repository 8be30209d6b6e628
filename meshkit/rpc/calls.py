"""What the mesh adds to every outgoing call of a ``mesh.stub``: its deadline and its client span.

The deadline is the caller's own timeout, else the method's default, never more than
what is left of the incoming call being served (``deadlines.outgoing_timeout``). The span
has OpenTelemetry's grpc client name, kind and ``rpc.*`` attributes, and its context goes
out in the call's metadata (``traceparent``), so the server's span is its child.

Both are done in the stub's call wrapper, not in ``grpc.aio`` client interceptors: each
interceptor layer costs tens of microseconds per call in Python (an intercepted call
object, a task), and OpenTelemetry's also waits for the call to finish before handing it
back. Here an unsampled call costs a few microseconds: with the mesh's sampler, a call
whose span would not be recorded sends its ``traceparent`` and makes no span at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry import baggage, propagate, trace

from meshkit.rpc.deadlines import DeadlinePolicy, outgoing_timeout
from meshkit.rpc.hedging import HedgedCall
from meshkit.rpc.resilience import Guard
from meshkit.telemetry.tracing import (
    child_traceparent,
    draw_root,
    record_rpc_status,
    recorded_root,
    rpc_attributes,
    unrecorded_traceparent,
    w3c_default,
)


class ClientCalls:
    """Wraps the multicallables of generated stubs with the mesh's per-call work."""

    def __init__(
        self,
        policy: DeadlinePolicy,
        provider: trace.TracerProvider | None = None,
        root_ratio: float | None = None,
    ) -> None:
        self.policy = policy
        self._tracer = (provider or trace.get_tracer_provider()).get_tracer("mesh.client")
        # With the mesh's own sampler (``Tracing.root_ratio``) and W3C propagation, a call
        # whose span would not be recorded (its parent's is not, or a new trace not drawn)
        # only gets its ``traceparent``: no span is made through the SDK.
        self._root_ratio = root_ratio if w3c_default() else None
        self._finishing: set[asyncio.Task[None]] = set()

    def wrap(
        self,
        method: str,
        multicallable: Callable[..., Any],
        guard: Guard | None = None,
        hedge: bool = False,
    ) -> Callable[..., Any]:
        """``multicallable`` (of the full method name ``/pkg.Service/Method``) with the
        mesh's deadline and client span; same signature, returns the same call object.

        With a ``guard`` (the service's bulkhead, breaker and ejection), a call it refuses
        is not made: the returned object raises its error when awaited. ``hedge`` (a unary
        ``NO_SIDE_EFFECTS`` method of a service with hedging on): a ``HedgedCall``."""
        attributes = rpc_attributes(method)
        policy, tracer, client = self.policy, self._tracer, trace.SpanKind.CLIENT
        inject, in_context = propagate.inject, trace.set_span_in_context
        ratio, current_span, baggage_of = self._root_ratio, trace.get_current_span, baggage.get_all
        no_span = contextlib.nullcontext()
        hedge_delay = guard.policy.hedge_delay if guard is not None and hedge else None

        def call(request: Any, *, timeout: float | None = None, metadata: Any = None, **kw: Any):
            if guard is not None:
                refused = guard.admit()
                if refused is not None:
                    span = tracer.start_span(method, kind=client, attributes=attributes)
                    record_rpc_status(span, refused.error.code(), refused.error.details() or "")
                    span.end()
                    return refused
            span: trace.Span | None = None
            root = no_span
            traceparent = None
            if ratio is not None:
                parent = current_span().get_span_context()
                if parent.is_valid:
                    traceparent = child_traceparent(parent)
                elif not baggage_of():
                    if draw_root(ratio):
                        root = recorded_root()
                    else:
                        traceparent = unrecorded_traceparent()
            if traceparent is not None:
                outgoing = (*(metadata or ()), ("traceparent", traceparent))
            else:
                with root:
                    span = tracer.start_span(method, kind=client, attributes=attributes)
                carrier: dict[str, str] = {}
                inject(carrier, context=in_context(span))
                outgoing = (*(metadata or ()), *carrier.items())
            try:
                if hedge_delay is not None and guard is not None:
                    grpc_call = HedgedCall(
                        lambda t: multicallable(request, timeout=t, metadata=outgoing, **kw),
                        outgoing_timeout(policy, method, timeout),
                        hedge_delay,
                        guard,
                    )
                else:
                    grpc_call = multicallable(
                        request,
                        timeout=outgoing_timeout(policy, method, timeout),
                        metadata=outgoing,
                        **kw,
                    )
            except BaseException:
                if guard is not None:
                    guard.bulkhead.release()
                if span is not None:
                    span.end()
                raise
            if guard is not None and hedge_delay is None:
                grpc_call.add_done_callback(guard.done)  # (a hedged call's attempts have it)
            if span is None:
                pass
            elif span.is_recording():
                grpc_call.add_done_callback(lambda c: self._finish(span, c))
            else:
                span.end()
            return grpc_call

        return call

    def _finish(self, span: trace.Span, grpc_call: grpc.aio.Call) -> None:
        """Records the call's status on its span (the status is a coroutine in grpc.aio)."""

        async def finish() -> None:
            try:
                code = await grpc_call.code()
                ok = code is grpc.StatusCode.OK
                record_rpc_status(span, code, "" if ok else await grpc_call.details())
            finally:
                span.end()

        task = asyncio.get_running_loop().create_task(finish())
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
