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
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import Status, StatusCode

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
    if not os.environ.get("OTEL_TRACES_SAMPLER"):
        sampler = ParentBased(TraceIdRatioBased(min(max(sample, 0.0), 1.0)))
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
    return Tracing(provider, exporter)


class ServerSpans:
    """The server span of each call, opened by the mesh's interceptor (interceptors.py).

    Like OpenTelemetry's grpc server interceptor (same name, kind and rpc.* attributes, the
    caller's context from ``traceparent``), without its per-call work on unsampled calls:
    the peer's address is read only for a span that is recorded.
    """

    def __init__(self, provider: TracerProvider | None) -> None:
        self._tracer = (provider or trace.get_tracer_provider()).get_tracer("mesh.server")

    def starter(self, method: str) -> Callable[[grpc.aio.ServicerContext], _OpenSpan]:
        """What opens ``method``'s span for a call (its attributes built once)."""
        attributes = rpc_attributes(method)
        tracer, server = self._tracer, trace.SpanKind.SERVER

        def start(context: grpc.aio.ServicerContext) -> _OpenSpan:
            carrier: dict[str, str] | None = None
            for key, value in context.invocation_metadata() or ():
                if key in _TRACE_HEADERS:
                    carrier = carrier or {}
                    carrier[key] = value
            parent = propagate.extract(carrier) if carrier else None
            span = tracer.start_span(method, context=parent, kind=server, attributes=attributes)
            if span.is_recording():
                peer = context.peer()
                if peer.startswith(("ipv4:", "ipv6:")):
                    ip, _, port = peer.split(",")[0].split(":", 1)[1].rpartition(":")
                    span.set_attributes({"net.peer.ip": ip, "net.peer.port": port})
            return _OpenSpan(span, otel_context.attach(trace.set_span_in_context(span, parent)))

        return start

    @staticmethod
    def end(open_span: _OpenSpan, code: grpc.StatusCode, message: str) -> None:
        span = open_span.span
        record_rpc_status(span, code, message)
        span.end()
        with contextlib.suppress(ValueError):  # a stream closed from another context
            otel_context._RUNTIME_CONTEXT.detach(open_span.token)


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


@dataclass
class _OpenSpan:
    span: trace.Span
    token: object
