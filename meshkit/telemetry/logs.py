"""Log lines of the mesh: every line carries the service, the instance, the RPC method
(or event type) being handled, and the current trace and span ids; the access line of an
RPC adds its status and duration. Human-readable by default; JSON lines with
``--log-json`` (``MESH_LOG_JSON=1``).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
from typing import Any, TextIO

from opentelemetry import trace

# The RPC method (``/pkg.Service/Method``) or the event type this task is handling.
current_method: contextvars.ContextVar[str] = contextvars.ContextVar("mesh_method", default="")


class ContextFilter(logging.Filter):
    """Adds service, instance, method, status, duration and trace/span ids to each record."""

    def __init__(self, service: str, instance: str = "") -> None:
        super().__init__()
        self.service = service
        self.instance = instance

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        d = record.__dict__
        d["service"] = self.service
        d["instance"] = self.instance
        if "method" not in d:
            d["method"] = current_method.get()
        d.setdefault("status", None)
        d.setdefault("duration_ms", None)
        if ctx.is_valid:
            d["trace_id"] = format(ctx.trace_id, "032x")
            d["span_id"] = format(ctx.span_id, "016x")
        else:
            d.setdefault("trace_id", "")
            d.setdefault("span_id", "")
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line; the keys are on every line (null when not applicable)."""

    def format(self, record: logging.LogRecord) -> str:
        d = record.__dict__
        line: dict[str, Any] = {
            "time": utc_stamp(record.created),
            "level": record.levelname,
            "service": d.get("service", ""),
            "instance": d.get("instance", ""),
            "logger": record.name,
            "message": record.getMessage(),
            "method": d.get("method") or None,
            "status": d.get("status"),
            "duration_ms": d.get("duration_ms"),
            "trace_id": d.get("trace_id") or None,
            "span_id": d.get("span_id") or None,
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL service logger: message  [trace=… span=…]`` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(service)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        trace_id = getattr(record, "trace_id", "")
        if trace_id:
            text += f"  [trace={trace_id} span={getattr(record, 'span_id', '')}]"
        return text


def utc_stamp(t: float) -> str:
    """``2026-11-25T10:55:34.850Z``"""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class AccessLog:
    """The access line of an RPC (method, status, duration), written straight to the log
    stream: the line a ``mesh.access`` record would give, JSON or text, for a fraction of
    the cost. (A record through ``logging`` costs several times the mesh's own work on a
    call; the figure is in bench/README.md.) Failed calls always get one; every call with
    ``every_call`` (``--access-log``, ``MESH_ACCESS_LOG=1``; make run and the tests).
    """

    def __init__(
        self,
        context: ContextFilter,
        json_lines: bool,
        stream: TextIO | None = None,
        *,
        every_call: bool = True,
    ) -> None:
        self.context = context
        self.json_lines = json_lines
        self.every_call = every_call
        self.stream = stream or sys.stderr
        self._second = -1
        self._stamp = ""

    def _local_stamp(self, t: float) -> str:
        second = int(t)
        if second != self._second:  # strftime once a second, as logging's asctime reads
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._stamp},{int(t % 1 * 1000):03d}"

    def write(self, method: str, status: str, duration_ms: float, detail: str = "") -> None:
        ctx = trace.get_current_span().get_span_context()
        trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else None
        span_id = format(ctx.span_id, "016x") if ctx.is_valid else None
        message = f"{method} {status} {duration_ms:.2f}ms" + (f": {detail}" if detail else "")
        now = time.time()
        if self.json_lines:
            line = json.dumps(
                {
                    "time": utc_stamp(now),
                    "level": "INFO",
                    "service": self.context.service,
                    "instance": self.context.instance,
                    "logger": "mesh.access",
                    "message": message,
                    "method": method,
                    "status": status,
                    "duration_ms": round(duration_ms, 3),
                    "trace_id": trace_id,
                    "span_id": span_id,
                }
            )
        else:
            line = f"{self._local_stamp(now)} INFO  {self.context.service} mesh.access: {message}"
            if trace_id:
                line += f"  [trace={trace_id} span={span_id}]"
        self.stream.write(line + "\n")


def json_logs_requested() -> bool:
    """``MESH_LOG_JSON=1`` (or the older ``MESH_LOG_FORMAT=json``)."""
    flag = os.environ.get("MESH_LOG_JSON", "").strip().lower() in {"1", "true", "yes", "on"}
    return flag or os.environ.get("MESH_LOG_FORMAT", "text") == "json"


def setup_logging(
    service: str, instance: str = "", json_lines: bool | None = None
) -> ContextFilter:
    """Route the root logger to stderr, JSON lines or text; returns the filter, whose
    ``instance`` the runtime fills in once the instance's port (hence its id) is known."""
    context = ContextFilter(service, instance)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(context)
    use_json = json_logs_requested() if json_lines is None else json_lines
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("MESH_LOG_LEVEL", "INFO").upper())
    return context
