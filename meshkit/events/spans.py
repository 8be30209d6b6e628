"""The spans of an event's life (``<type> create``, ``publish``, ``process``) without the
SDK's work where nothing is recorded.

Most traces are not recorded (the mesh samples 1 % of new traces, and a child follows its
parent). An event of such a trace carries a W3C ``traceparent`` whose sampled flag is off;
every span of its life is then a non-recording span of the same trace, and the SDK makes
each through its sampler, its id generator and the propagators' parsing. ``EventSpans``
makes that same span directly (same trace id, a new span id, the parent's flags as the SDK
keeps them) when it can tell the outcome beforehand: the tracer's sampler is the SDK's
``ParentBased`` that records nothing under an unsampled parent (its default, and the
mesh's), the propagators are OpenTelemetry's default (W3C trace context and baggage),
and the parent is one plain ``traceparent`` (no ``tracestate``, no baggage). Every other
case goes through the SDK, as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import NonRecordingSpan, SpanKind

from meshkit.telemetry.tracing import (
    child_traceparent,
    unrecorded_span,
    unsampled_parent,
    w3c_default,
)


def _drops_unsampled(tracer: trace.Tracer) -> bool:
    """Whether ``tracer`` records nothing under a parent that is not sampled."""
    try:
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
    except ImportError:  # the API without the SDK: nothing is recorded at all
        return False
    sampler = getattr(tracer, "sampler", None)
    return (
        isinstance(sampler, ParentBased)
        and getattr(sampler, "_remote_parent_not_sampled", None) is ALWAYS_OFF
        and getattr(sampler, "_local_parent_not_sampled", None) is ALWAYS_OFF
    )


class EventSpans:
    """Opens the spans of events for ``tracer``, directly where nothing is recorded."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer
        self.fast = _drops_unsampled(tracer) and w3c_default()

    def _unsampled_child(self, carrier: Mapping[str, str]) -> NonRecordingSpan | None:
        """The SDK's span under ``carrier``'s parent when it is one plain unsampled
        ``traceparent`` (and the tracer records nothing under such a parent); else None."""
        parent = unsampled_parent(carrier) if self.fast else None
        return None if parent is None else unrecorded_span(*parent)

    def start(self, name: str, carrier: Mapping[str, str], kind: SpanKind) -> trace.Span:
        """A span whose parent is the one ``carrier`` names, not made current (the caller
        ends it)."""
        span = self._unsampled_child(carrier)
        if span is not None:
            return span
        return self.tracer.start_span(name, context=propagate.extract(dict(carrier)), kind=kind)

    @contextlib.contextmanager
    def from_carrier(
        self, name: str, carrier: Mapping[str, str], kind: SpanKind
    ) -> Iterator[trace.Span]:
        """A span (current inside the block) whose parent is the one ``carrier`` (an
        envelope's trace context) names; the block's exception is recorded on it."""
        span = self._unsampled_child(carrier)
        if span is not None:
            token = otel_context.attach(trace.set_span_in_context(span))
            try:
                yield span
            finally:
                otel_context.detach(token)
            return
        parent = propagate.extract(dict(carrier))
        with self.tracer.start_as_current_span(name, context=parent, kind=kind) as span:
            yield span

    def child_carrier(self) -> dict[str, str] | None:
        """For a span of the current trace that ends at once (an event's ``create``): the
        trace context a child of the current span would carry, without making the span,
        when that is not sampled (and the context holds nothing else); None otherwise (the
        caller opens the span through the SDK)."""
        parent = trace.get_current_span().get_span_context()
        if not self.fast or not parent.is_valid:
            return None
        traceparent = child_traceparent(parent)
        return None if traceparent is None else {"traceparent": traceparent}
