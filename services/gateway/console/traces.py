"""An order's traces from the local trace sink, as the page's waterfall draws them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from meshkit.telemetry.trace_sink import SpanRecord, read_traces
from meshkit.tools.trace import _GRPC_CODES, build_tree


def _outcome(span: SpanRecord) -> str:
    code = span.attributes.get("rpc.grpc.status_code")
    if isinstance(code, int) and code and code in _GRPC_CODES:
        return _GRPC_CODES[code] + (f": {span.status_text}" if span.status_text else "")
    if span.status == "ERROR":
        return span.status_text or "error"
    return ""


def waterfall(spans: list[SpanRecord]) -> dict[str, Any]:
    """One trace: its spans in tree order (depth-first), each with its offset and length
    in ms from the trace's first span, its depth and its error, if any."""
    start = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    rows: list[dict[str, Any]] = []

    def walk(node: Any, depth: int) -> None:
        s: SpanRecord = node.span
        rows.append(
            {
                "span_id": s.span_id,
                "name": s.name,
                "service": s.service,
                "kind": s.kind.lower(),
                "depth": depth,
                "start_ms": round((s.start_ns - start) / 1e6, 3),
                "duration_ms": round(s.duration_ms, 3),
                "error": _outcome(s),
            }
        )
        for child in node.children:
            walk(child, depth + 1)

    for root in build_tree(spans):
        walk(root, 0)
    return {
        "trace_id": spans[0].trace_id,
        "duration_ms": round((end - start) / 1e6, 3),
        "services": sorted({s.service for s in spans if s.service}),
        "spans": rows,
    }


async def order_traces(sink: Path | None, order_id: str) -> dict[str, Any]:
    """The traces of ``order_id`` (read in a thread: SQLite blocks)."""
    if sink is None:
        return {"sink": None, "traces": []}
    traces = await asyncio.to_thread(read_traces, sink, order_id)
    return {"sink": str(sink), "traces": [waterfall(spans) for spans in traces.values()]}
