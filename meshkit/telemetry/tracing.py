"""Logging and tracing set-up shared by every service.

Logs: every line carries the service, the instance, the RPC method (or event type) being
handled, and the current trace and span ids; the access line of an RPC adds its status and
duration. Human-readable by default; JSON lines with ``--log-json`` (``MESH_LOG_JSON=1``).

Traces: every server call gets a span from the mesh's interceptor (``ServerSpans`` here),
every call of a mesh stub a client span (``calls.py``), with OpenTelemetry's grpc names
and attributes; the trace context crosses hops in the call metadata (events carry it in
their envelope: ``events.py``). Spans go, from the SDK's batch processor, to OTLP over HTTP
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set, and otherwise to
the local sink ``<state>/traces.db`` (``trace_sink.py``) that ``make trace`` reads.
What is sampled: ``OTEL_TRACES_SAMPLER`` (OpenTelemetry's standard variables) when set;
else the mesh's ``trace_sample`` ratio (``--trace-sample`` / ``MESH_TRACE_SAMPLE``) for new
traces, a call continuing a trace following its caller's decision. The default, 1 %, is a
production setting (Istio's default is the same); ``make run`` and the tests trace
everything (``MESH_TRACE_SAMPLE=1``), so that every order can be followed.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

from meshkit.telemetry.trace_sink import SqliteSpanExporter

log = logging.getLogger("mesh.telemetry")

# The span attribute that ties a span to its business flow (the saga's correlation id),
# by which the local trace sink finds a flow's traces.
CORRELATION_ID = "mesh.correlation_id"

# How often the local sink receives a batch (the collector's default, 5 s, would make
# `make trace` right after a call come up short).
LOCAL_EXPORT_DELAY_MS = 250


def _otlp_requested() -> bool:
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def _disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


@dataclass
class Tracing:
    """The tracer provider of one mesh, and where its spans go."""

    provider: TracerProvider
    exporter: SpanExporter | None = None
    # The share of new traces recorded when the mesh chose the sampler (``RootSampler``);
    # None when OTEL_TRACES_SAMPLER did. ``ServerSpans`` decides unsampled calls with it.
    root_ratio: float | None = None

    @property
    def destination(self) -> str:
        if isinstance(self.exporter, SqliteSpanExporter):
            return str(self.exporter.path)
        if self.exporter is not None:
            return "otlp"
        return "none"

    def set_instance(self, instance: str) -> None:
        if isinstance(self.exporter, SqliteSpanExporter):
            self.exporter.instance = instance

    def shutdown(self) -> None:
        """Flushes what is queued (blocking, bounded) and stops exporting."""
        self.provider.shutdown()


def setup_tracing(
    service: str, instance: str = "", sink: Path | None = None, sample: float = 1.0
) -> Tracing:
    """A tracer provider for ``service``: OTLP when its endpoint is set, else the local
    sink file ``sink`` (None: spans are made, for context propagation, and not exported);
    new traces sampled at the ratio ``sample`` unless OTEL_TRACES_SAMPLER says otherwise."""
    attributes = {"service.name": service}
    if instance:
        attributes["service.instance.id"] = instance
    sampler: Sampler | None = None  # the SDK reads OTEL_TRACES_SAMPLER
    root_ratio = None
    if not os.environ.get("OTEL_TRACES_SAMPLER"):
        root_ratio = min(max(sample, 0.0), 1.0)
        sampler = ParentBased(RootSampler(root_ratio))
    provider = TracerProvider(resource=Resource.create(attributes), sampler=sampler)
    exporter: SpanExporter | None = None
    if _disabled():
        pass
    elif _otlp_requested():
        # Imported here: only processes that export over OTLP pay for it.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    elif sink is not None:
        exporter = SqliteSpanExporter(sink, instance)
        delay = None if os.environ.get("OTEL_BSP_SCHEDULE_DELAY") else LOCAL_EXPORT_DELAY_MS
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=delay))
    return Tracing(provider, exporter, root_ratio)


# Set by ServerSpans for the span it asks the SDK for once it has decided to record a new
# trace itself: RootSampler then records it, rather than drawing again.
_record_root: contextvars.ContextVar[bool] = contextvars.ContextVar("record_root", default=False)


class RootSampler(TraceIdRatioBased):
    """The sampler of new traces: the ratio by trace id (``TraceIdRatioBased``), except for
    a server span whose call ``ServerSpans`` already drew at that same ratio."""

    def should_sample(
        self, parent_context: Any, trace_id: int, *args: Any, **kwargs: Any
    ) -> SamplingResult:
        if _record_root.get():
            return SamplingResult(Decision.RECORD_AND_SAMPLE, kwargs.get("attributes"))
        return super().should_sample(parent_context, trace_id, *args, **kwargs)

    def get_description(self) -> str:
        return f"MeshRootSampler{{{self.rate}}}"


class ServerSpans:
    """The server span of each call, opened by the mesh's interceptor (interceptors.py).

    Like OpenTelemetry's grpc server interceptor (same name, kind and rpc.* attributes, the
    caller's context from ``traceparent``), without its per-call work where nothing is
    recorded: with ``root_ratio`` (the mesh's own sampler, ``Tracing.root_ratio``) a call
    that starts a trace is drawn here at that ratio, and one whose caller did not record
    its trace (a W3C ``traceparent`` with the sampled flag off, nothing else) follows it,
    both as a non-recording span made directly, the SDK's own outcome for them; every
    other call (recorded, or with ``tracestate``/``baggage``) goes through the SDK. The
    peer's address is read only for a span that is recorded.
    """

    def __init__(self, provider: TracerProvider | None, root_ratio: float | None = None) -> None:
        self._tracer = (provider or trace.get_tracer_provider()).get_tracer("mesh.server")
        self._root_ratio = root_ratio

    def starter(
        self, method: str
    ) -> Callable[[grpc.aio.ServicerContext, Sequence[tuple[str, Any]] | None], _OpenSpan]:
        """What opens ``method``'s span for a call, given the call's metadata (its
        attributes built once)."""
        attributes = rpc_attributes(method)
        tracer, server = self._tracer, trace.SpanKind.SERVER
        ratio = self._root_ratio

        def recorded(
            context: grpc.aio.ServicerContext, carrier: dict[str, str] | None
        ) -> _OpenSpan:
            parent = propagate.extract(carrier) if carrier else None
            span = tracer.start_span(method, context=parent, kind=server, attributes=attributes)
            if span.is_recording():
                peer = context.peer()
                if peer.startswith(("ipv4:", "ipv6:")):
                    ip, _, port = peer.split(",")[0].split(":", 1)[1].rpartition(":")
                    span.set_attributes({"net.peer.ip": ip, "net.peer.port": port})
            return _OpenSpan(span, otel_context.attach(trace.set_span_in_context(span, parent)))

        def start(
            context: grpc.aio.ServicerContext, metadata: Sequence[tuple[str, Any]] | None
        ) -> _OpenSpan:
            carrier: dict[str, str] | None = None
            for key, value in metadata or ():
                if key in _TRACE_HEADERS:
                    carrier = carrier or {}
                    carrier[key] = value
            if ratio is None:
                return recorded(context, carrier)
            if carrier is None:  # a new trace
                if not draw_root(ratio):
                    return _current(unrecorded_span(random.getrandbits(128) or 1), None)
                with recorded_root():
                    return recorded(context, None)
            parent = unsampled_parent(carrier)
            if parent is not None:  # followed: not recorded either
                return _current(unrecorded_span(*parent), otel_context.Context())
            return recorded(context, carrier)

        return start

    @staticmethod
    def end(open_span: _OpenSpan, code: grpc.StatusCode, message: str) -> None:
        span = open_span.span
        record_rpc_status(span, code, message)
        span.end()
        # Not contextlib.suppress: an object per call. ValueError: a stream closed elsewhere.
        try:  # noqa: SIM105
            otel_context._RUNTIME_CONTEXT.detach(open_span.token)
        except ValueError:
            pass


def w3c_default() -> bool:
    """Whether the global propagator is OpenTelemetry's default (W3C trace context and
    baggage): the one the fast paths, which write and read ``traceparent``, stand for."""
    names = os.environ.get("OTEL_PROPAGATORS", "tracecontext,baggage")
    return [n.strip() for n in names.split(",")] == ["tracecontext", "baggage"]


def draw_root(ratio: float) -> bool:
    """Whether a new trace is recorded, drawn at ``ratio`` (then made inside ``recorded_root``)."""
    return random.random() < ratio


@contextlib.contextmanager
def recorded_root() -> Iterator[None]:
    """Spans started inside are recorded if they start a trace: one drawn by ``draw_root``."""
    token = _record_root.set(True)
    try:
        yield
    finally:
        _record_root.reset(token)


def unrecorded_traceparent(parent: SpanContext | None = None) -> str:
    """The ``traceparent`` of a new span that is not recorded, a child of ``parent`` (a
    valid span context, not sampled) or the root of a new trace: what the SDK would send
    for it (the random-trace-id flag on for a new trace, as the parent's otherwise),
    without making the span."""
    if parent is None:
        trace_id, flags = random.getrandbits(128) or 1, int(_NEW_TRACE)
    else:
        trace_id, flags = parent.trace_id, parent.trace_flags & TraceFlags.RANDOM_TRACE_ID
    return f"00-{trace_id:032x}-{random.getrandbits(64) or 1:016x}-{flags:02x}"


def child_traceparent(parent: SpanContext) -> str | None:
    """The ``traceparent`` of a new child of ``parent`` (a valid span context, current)
    that would not be recorded, without making it; None when it would be (a sampled
    parent) or the context carries more than the parent (trace state, baggage): the
    SDK then makes the span."""
    if parent.trace_flags.sampled or parent.trace_state or baggage.get_all():
        return None
    return unrecorded_traceparent(parent)


# A W3C traceparent (version 00) whose sampled flag is off: trace id, parent id, flags.
_UNSAMPLED = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f][02468ace])")
# The flags of a new trace not recorded: the SDK's ids are random, and it says so.
_NEW_TRACE = TraceFlags.RANDOM_TRACE_ID


def unsampled_parent(carrier: Mapping[str, str]) -> tuple[int, int] | None:
    """The trace id and flags of the parent ``carrier`` names (call metadata, an event's
    trace context) when it is one plain W3C ``traceparent`` (no ``tracestate``, no
    baggage) whose sampled flag is off; None otherwise."""
    if len(carrier) != 1:
        return None
    match = _UNSAMPLED.fullmatch(carrier.get("traceparent", ""))
    if match is None:
        return None
    trace_id = int(match[1], 16)
    if not trace_id or not int(match[2], 16):
        return None  # invalid: the SDK starts a new trace
    return trace_id, int(match[3], 16)


def unrecorded_span(trace_id: int, parent_flags: int = _NEW_TRACE) -> NonRecordingSpan:
    """What the SDK makes, without its sampler and id generator, for a span it does not
    record: in trace ``trace_id`` (a child of an unsampled parent with ``parent_flags``,
    or a new trace), a new span id, the random-trace-id flag kept."""
    span_context = SpanContext(
        trace_id,
        random.getrandbits(64) or 1,
        is_remote=False,
        trace_flags=TraceFlags(parent_flags & TraceFlags.RANDOM_TRACE_ID),
    )
    return NonRecordingSpan(span_context)


def _current(span: trace.Span, base: otel_context.Context | None) -> _OpenSpan:
    """``span`` made current (in ``base``, else the current context) until ``end``."""
    return _OpenSpan(span, otel_context.attach(trace.set_span_in_context(span, base)))


_TRACE_HEADERS = frozenset({"traceparent", "tracestate", "baggage"})


def rpc_attributes(method: str) -> dict[str, str]:
    """OpenTelemetry's ``rpc.*`` attributes of the gRPC method ``/pkg.Service/Method``."""
    service, _, name = method.lstrip("/").partition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


def record_rpc_status(span: trace.Span, code: grpc.StatusCode, details: str) -> None:
    """A finished call's status on its span (server or client), if the span is recorded."""
    if span.is_recording():
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code is not grpc.StatusCode.OK:
            span.set_status(Status(StatusCode.ERROR, f"{code.name}: {details}"))


class _OpenSpan:
    """A call's span and the token that makes its context current."""

    __slots__ = ("span", "token")

    def __init__(self, span: trace.Span, token: object) -> None:
        self.span = span
        self.token = token
