"""``meshkit.events.spans``: the spans of an unsampled event's life, made directly, are the
SDK's own outcome (same trace, not recorded, the flags it keeps); a sampled one, or any
case it cannot tell beforehand, goes through the SDK and is recorded as before."""

from __future__ import annotations

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind

from meshkit.events.spans import EventSpans

TRACE = "0af7651916cd43dd8448eb211c80319c"
UNSAMPLED = f"00-{TRACE}-b7ad6b7169203331-00"
UNSAMPLED_RANDOM = f"00-{TRACE}-b7ad6b7169203331-02"
SAMPLED = f"00-{TRACE}-b7ad6b7169203331-01"


def provider(sampler: object = None) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    p = TracerProvider(sampler=sampler or ParentBased(TraceIdRatioBased(0.0)))
    p.add_span_processor(SimpleSpanProcessor(exporter))
    return p, exporter


def outcome(spans: EventSpans, carrier: dict[str, str]) -> tuple[int, int, bool, bool]:
    with spans.from_carrier("e process", carrier, SpanKind.CONSUMER) as span:
        assert trace.get_current_span() is span
        ctx = span.get_span_context()
        return ctx.trace_id, int(ctx.trace_flags), span.is_recording(), ctx.is_remote


def test_an_unsampled_parent_gets_the_span_the_sdk_would_make() -> None:
    p, exporter = provider()
    fast = EventSpans(p.get_tracer("t"))
    assert fast.fast
    slow = EventSpans(p.get_tracer("t"))
    slow.fast = False
    for carrier in ({"traceparent": UNSAMPLED}, {"traceparent": UNSAMPLED_RANDOM}):
        assert outcome(fast, carrier) == outcome(slow, carrier)
        assert outcome(fast, carrier)[0] == int(TRACE, 16)
    assert exporter.get_finished_spans() == ()


def test_a_sampled_parent_or_more_than_a_traceparent_goes_through_the_sdk() -> None:
    p, exporter = provider()
    spans = EventSpans(p.get_tracer("t"))
    assert outcome(spans, {"traceparent": SAMPLED})[2]  # recorded
    (span,) = exporter.get_finished_spans()
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "b7ad6b7169203331"
    with_state = {"traceparent": UNSAMPLED, "tracestate": "k=v"}
    with spans.from_carrier("e process", with_state, SpanKind.CONSUMER) as span:
        assert span.get_span_context().trace_state.get("k") == "v"  # the SDK's: kept


def test_other_samplers_are_left_to_the_sdk() -> None:
    p, _ = provider(ALWAYS_ON)
    assert not EventSpans(p.get_tracer("t")).fast
    p, _ = provider(ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON))
    assert not EventSpans(p.get_tracer("t")).fast
    assert not EventSpans(trace.NoOpTracer()).fast


def test_the_trace_context_of_a_create_span_under_an_unsampled_span() -> None:
    p, exporter = provider()
    spans = EventSpans(p.get_tracer("t"))
    assert spans.child_carrier() is None  # no current span: a new trace, the SDK draws it
    with spans.from_carrier("e process", {"traceparent": UNSAMPLED_RANDOM}, SpanKind.CONSUMER):
        carrier = spans.child_carrier()
        assert carrier is not None and list(carrier) == ["traceparent"]
        version, trace_id, span_id, flags = carrier["traceparent"].split("-")
        assert (version, trace_id, flags) == ("00", TRACE, "02")
        assert span_id != trace.get_current_span().get_span_context().span_id
        token = otel_context.attach(baggage.set_baggage("k", "v"))
        try:
            assert spans.child_carrier() is None  # baggage to carry: the SDK's inject
        finally:
            otel_context.detach(token)
    with spans.from_carrier("e process", {"traceparent": SAMPLED}, SpanKind.CONSUMER):
        assert spans.child_carrier() is None
    assert len(exporter.get_finished_spans()) == 1
