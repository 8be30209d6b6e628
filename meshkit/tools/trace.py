"""Print the traces of an order from the local sink as indented trees with timings.

    python -m meshkit.tools.trace <order-id>      (or: make trace ORDER=<order-id>)
    python -m meshkit.tools.trace <trace-id>
    python -m meshkit.tools.trace                 (lists the orders seen last)

Each line is one span: when it started (ms after the trace's first span), how long it took,
the service that recorded it, then the span under its parent. A span whose parent is not in
the sink (not exported yet, or recorded by a process that does not export here) is shown as
a root of its own.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from meshkit.config import DEFAULT_STATE_DIR
from meshkit.telemetry.trace_sink import SpanRecord, read_traces, recent_orders

# gRPC status codes by number (rpc.grpc.status_code), for error lines.
_GRPC_CODES = {c.value[0]: c.name for c in grpc.StatusCode}


@dataclass
class Node:
    span: SpanRecord
    children: list[Node] = field(default_factory=list)


def build_tree(spans: list[SpanRecord]) -> list[Node]:
    """The spans of one trace as trees: roots (spans without a known parent) and their
    children, each level in order of start time."""
    nodes = {s.span_id: Node(s) for s in spans}
    roots: list[Node] = []
    for node in nodes.values():
        parent = nodes.get(node.span.parent_id or "")
        if parent is None or parent is node:
            roots.append(node)
        else:
            parent.children.append(node)
    for node in nodes.values():
        node.children.sort(key=lambda n: (n.span.start_ns, n.span.name))
    roots.sort(key=lambda n: (n.span.start_ns, n.span.name))
    return roots


def _outcome(span: SpanRecord) -> str:
    code = span.attributes.get("rpc.grpc.status_code")
    if isinstance(code, int) and code in _GRPC_CODES and code != 0:
        text = f"  ✗ {_GRPC_CODES[code]}"
        return text + (f": {span.status_text}" if span.status_text else "")
    if span.status == "ERROR":
        return "  ✗ " + (span.status_text or "error")
    return ""


def render_trace(spans: list[SpanRecord]) -> str:
    """One trace as an indented tree with timings (the text ``make trace`` prints)."""
    if not spans:
        return ""
    start = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    services = sorted({s.service for s in spans if s.service})
    orders = sorted({s.order_id for s in spans if s.order_id})
    names = {s.span_id: s.name for s in spans}
    width = max(len(s) for s in [*services, "service"])
    head = f"trace {spans[0].trace_id}"
    if orders:
        head += f"  order {', '.join(orders)}"
    head += (
        f"  ({len(spans)} spans, {len(services)} services: {', '.join(services)};"
        f" {(end - start) / 1e6:.2f} ms)"
    )
    lines = [head, f"{'start':>10} {'took':>10}  {'service':<{width}}  span"]

    def walk(node: Node, lead: str, branch: str) -> None:
        s = node.span
        text = f"{s.name}  [{s.kind.lower()}]{_outcome(s)}"
        for trace_id, span_id in s.links:
            target = names.get(span_id) if trace_id == s.trace_id else None
            text += f"  ↪ linked to {target or f'{trace_id}/{span_id}'}"
        lines.append(
            f"{(s.start_ns - start) / 1e6:>8.2f}ms {s.duration_ms:>8.2f}ms"
            f"  {s.service:<{width}}  {lead}{branch}{text}"
        )
        inner = lead + ("" if not branch else ("│  " if branch == "├─ " else "   "))
        for i, child in enumerate(node.children):
            walk(child, inner, "└─ " if i == len(node.children) - 1 else "├─ ")

    for root in build_tree(spans):
        walk(root, "", "")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    state = Path(os.environ.get("MESH_STATE_DIR", DEFAULT_STATE_DIR))
    p = argparse.ArgumentParser(
        prog="python -m meshkit.tools.trace",
        description="Print an order's traces from the local trace sink as trees with timings.",
    )
    p.add_argument("key", nargs="?", help="an order id (or a trace id)")
    p.add_argument(
        "--db",
        type=Path,
        default=Path(os.environ.get("MESH_TRACES_DB") or state / "traces.db"),
        help="the sink (default: <state dir>/traces.db)",
    )
    a = p.parse_args(argv)
    if not a.db.exists():
        print(f"no trace sink at {a.db} (is `make run` up, without OTLP export?)", file=sys.stderr)
        return 1
    if not a.key:
        recent = recent_orders(a.db)
        if not recent:
            print(f"no order in {a.db} yet", file=sys.stderr)
            return 1
        print("orders seen last (newest first):")
        for order_id, count in recent:
            print(f"  {order_id}  ({count} spans)")
        return 0
    traces = read_traces(a.db, a.key)
    if not traces:
        print(f"no trace of {a.key!r} in {a.db}", file=sys.stderr)
        return 1
    print("\n\n".join(render_trace(spans) for spans in traces.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
