"""Logging and tracing set-up shared by every service.

Log lines carry the service, the instance and the current trace and span ids; human
readable by default, JSON lines with ``MESH_LOG_FORMAT=json``. Tracing uses OpenTelemetry's
gRPC interceptors, so every server and client call gets a span and the trace context
crosses hops in the call metadata.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider


class _TraceContext(logging.Filter):
    def __init__(self, service: str, instance: str) -> None:
        super().__init__()
        self.service = service
        self.instance = instance

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.service = self.service
        record.instance = self.instance
        record.trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else ""
        record.span_id = format(ctx.span_id, "016x") if ctx.is_valid else ""
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "service": getattr(record, "service", ""),
            "instance": getattr(record, "instance", ""),
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": getattr(record, "trace_id", ""),
            "span_id": getattr(record, "span_id", ""),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def setup_logging(service: str, instance: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_TraceContext(service, instance))
    if os.environ.get("MESH_LOG_FORMAT", "text") == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-5s %(service)s %(name)s: %(message)s"
                " trace_id=%(trace_id)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("MESH_LOG_LEVEL", "INFO").upper())


def setup_tracing(service: str, instance: str) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.instance.id": instance})
    )
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)  # the first one in the process becomes global
    return provider


def server_interceptor(provider: TracerProvider) -> grpc.aio.ServerInterceptor:
    return aio_server_interceptor(tracer_provider=provider)


def client_interceptors(provider: TracerProvider) -> list[grpc.aio.ClientInterceptor]:
    return list(aio_client_interceptors(tracer_provider=provider))
