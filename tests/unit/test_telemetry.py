"""Telemetry pieces on their own: the trace tree printer, the local trace sink, the log
formatters and the observability flags."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import multiprocessing
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from meshkit.config import MeshConfig, MeshPolicy
from meshkit.rpc.interceptors import MeshServerInterceptor
from meshkit.telemetry.logs import (
    AccessLog,
    ContextFilter,
    JsonFormatter,
    TextFormatter,
    current_method,
)
from meshkit.telemetry.metrics import Metrics, split_method
from meshkit.telemetry.trace_sink import (
    SpanRecord,
    SqliteSpanExporter,
    _connect,
    read_traces,
    recent_orders,
)
from meshkit.tools.trace import build_tree, render_trace

T = "0af7651916cd43dd8448eb211c80319c"
MS = 1_000_000


def rec(
    span_id: str,
    parent: str | None,
    name: str,
    service: str,
    start_ms: float,
    took_ms: float,
    kind: str = "INTERNAL",
    **extra: object,
) -> SpanRecord:
    start = int(1_700_000_000_000 * MS + start_ms * MS)
    return SpanRecord(
        trace_id=T,
        span_id=span_id,
        parent_id=parent,
        name=name,
        kind=kind,
        service=service,
        instance=f"{service}-1",
        start_ns=start,
        end_ns=start + int(took_ms * MS),
        **extra,  # type: ignore[arg-type]
    )


SPANS = [
    # Given out of order, as the sink may hold them.
    rec("b2", "b1", "/shop.order.v1.OrderService/PlaceOrder", "order", 0.5, 9.0, "SERVER",
        order_id="o-1"),
    rec("b1", None, "/shop.order.v1.OrderService/PlaceOrder", "operator", 0.0, 10.0, "CLIENT"),
    rec("c1", "b2", "/shop.inventory.v1.InventoryService/GetStock", "order", 1.0, 2.0, "CLIENT"),
    rec("c2", "c1", "/shop.inventory.v1.InventoryService/GetStock", "inventory", 1.5, 1.0,
        "SERVER", status="ERROR", status_text="no such sku",
        attributes={"rpc.grpc.status_code": 5}),
    rec("d1", "b2", "shop.events.v1.OrderPlaced create", "order", 4.0, 0.1, "PRODUCER",
        order_id="o-1"),
    rec("d2", "d1", "shop.events.v1.OrderPlaced process", "payment", 12.25, 2.0, "CONSUMER",
        order_id="o-1"),
    rec("d3", "d1", "shop.events.v1.OrderPlaced publish", "order", 5.0, 0.5, "PRODUCER",
        order_id="o-1"),
    rec("e1", "gone", "shop.events.v1.StockReserved process", "order", 20.0, 1.0, "CONSUMER",
        order_id="o-1", links=((T, "d1"),)),
]  # fmt: skip


def test_the_tree_nests_children_under_parents_in_start_order() -> None:
    roots = build_tree(SPANS)
    # The span whose parent is not in the sink stands as a root of its own.
    assert [r.span.span_id for r in roots] == ["b1", "e1"]
    server = roots[0].children[0]
    assert server.span.span_id == "b2"
    assert [c.span.span_id for c in server.children] == ["c1", "d1"]
    assert [c.span.span_id for c in server.children[1].children] == ["d3", "d2"]


def test_render_prints_an_indented_tree_with_timings() -> None:
    assert render_trace(SPANS).splitlines() == [
        f"trace {T}  order o-1  (8 spans, 4 services: inventory, operator, order, payment;"
        " 21.00 ms)",
        "     start       took  service    span",
        "    0.00ms    10.00ms  operator   /shop.order.v1.OrderService/PlaceOrder  [client]",
        "    0.50ms     9.00ms  order      └─ /shop.order.v1.OrderService/PlaceOrder  [server]",
        "    1.00ms     2.00ms  order         ├─ /shop.inventory.v1.InventoryService/GetStock"
        "  [client]",
        "    1.50ms     1.00ms  inventory     │  └─ /shop.inventory.v1.InventoryService/GetStock"
        "  [server]  ✗ NOT_FOUND: no such sku",
        "    4.00ms     0.10ms  order         └─ shop.events.v1.OrderPlaced create  [producer]",
        "    5.00ms     0.50ms  order            ├─ shop.events.v1.OrderPlaced publish  [producer]",
        "   12.25ms     2.00ms  payment          └─ shop.events.v1.OrderPlaced process  [consumer]",
        "   20.00ms     1.00ms  order      shop.events.v1.StockReserved process  [consumer]"
        "  ↪ linked to shop.events.v1.OrderPlaced create",
    ]


def test_render_of_nothing_is_empty() -> None:
    assert render_trace([]) == ""


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[TracerProvider, SqliteSpanExporter]]:
    exporter = SqliteSpanExporter(tmp_path / "traces.db")
    provider = TracerProvider(resource=Resource.create({"service.name": "order"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _open_sink(path: str) -> str:
    try:
        _connect(Path(path)).close()
        return "ok"
    except sqlite3.Error as exc:
        return repr(exc)


def test_processes_opening_a_new_sink_at_once_all_get_it(tmp_path: Path) -> None:
    """Each process of a run opens the sink with its first batch, at about the same time:
    switching a new file to WAL refuses all but one at once ("database is locked"), which
    lost a service's first batch of spans before the open waited and retried."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(8) as pool:
        for attempt in range(20):
            path = str(tmp_path / f"run-{attempt}" / "traces.db")
            assert pool.map(_open_sink, [path] * 8, chunksize=1) == ["ok"] * 8


def test_a_batch_the_sink_refuses_is_written_with_the_next_one(tmp_path: Path) -> None:
    path = tmp_path / "traces.db"
    exporter = SqliteSpanExporter(path, timeout=0.2)
    provider = TracerProvider(resource=Resource.create({"service.name": "order"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    holder = _connect(path)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, past the batch's timeout
    with tracer.start_as_current_span("first", attributes={"mesh.correlation_id": "o-1"}):
        pass
    assert read_traces(path, "o-1") == {}
    holder.execute("COMMIT")
    with tracer.start_as_current_span("second", attributes={"mesh.correlation_id": "o-1"}):
        pass
    traces = read_traces(path, "o-1").values()
    assert sorted(s.name for spans in traces for s in spans) == ["first", "second"]
    provider.shutdown()
    holder.close()


def test_the_sink_keeps_spans_and_finds_them_by_order_or_trace_id(
    sink: tuple[TracerProvider, SqliteSpanExporter], tmp_path: Path
) -> None:
    provider, exporter = sink
    exporter.instance = "order-host-5001"
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("place", kind=SpanKind.SERVER) as top:
        top.set_attribute("mesh.correlation_id", "o-7")
        with tracer.start_as_current_span(
            "emit", attributes={"messaging.message.conversation_id": "o-7"}
        ):
            pass
        with tracer.start_as_current_span("unrelated"):
            pass
    with tracer.start_as_current_span("another order", attributes={"mesh.correlation_id": "o-8"}):
        pass
    path = tmp_path / "traces.db"

    traces = read_traces(path, "o-7")
    assert len(traces) == 1
    (trace_id, spans) = next(iter(traces.items()))
    assert [s.name for s in spans] == ["place", "emit", "unrelated"]
    place, emit, unrelated = spans
    assert (place.kind, place.service, place.instance) == ("SERVER", "order", "order-host-5001")
    assert place.parent_id is None and emit.parent_id == place.span_id
    assert unrelated.parent_id == place.span_id and unrelated.order_id is None
    assert emit.attributes == {"messaging.message.conversation_id": "o-7"}
    assert read_traces(path, trace_id.upper()) == traces
    assert read_traces(path, "o-404") == {}
    assert read_traces(tmp_path / "none.db", "o-7") == {}
    assert recent_orders(path) == [("o-8", 1), ("o-7", 2)]


def _logger(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ContextFilter("order", "order-host-5001"))
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"test.telemetry.{id(out)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


def test_json_lines_carry_service_instance_method_status_duration_and_trace() -> None:
    logger, out = _logger(JsonFormatter())
    tracer = TracerProvider().get_tracer("test")
    logger.info("outside any call")
    token = current_method.set("/shop.order.v1.OrderService/GetOrder")
    try:
        with tracer.start_as_current_span("call") as span:
            logger.info("inside")
            logger.info(
                "access",
                extra={"method": "/x.Y/Z", "status": "NOT_FOUND", "duration_ms": 1.25},
            )
    finally:
        current_method.reset(token)
    outside, inside, access = (json.loads(line) for line in out.getvalue().splitlines())
    keys = {"service", "instance", "method", "status", "duration_ms", "trace_id", "span_id"}
    for line in (outside, inside, access):
        assert keys <= line.keys()
        assert (line["service"], line["instance"]) == ("order", "order-host-5001")
        assert line["time"].endswith("Z") and line["level"] == "INFO"
    assert outside["trace_id"] is None and outside["method"] is None
    ctx = span.get_span_context()
    assert inside["trace_id"] == format(ctx.trace_id, "032x")
    assert inside["span_id"] == format(ctx.span_id, "016x")
    assert inside["method"] == "/shop.order.v1.OrderService/GetOrder"
    assert inside["status"] is None and inside["duration_ms"] is None
    assert (access["method"], access["status"], access["duration_ms"]) == (
        "/x.Y/Z",
        "NOT_FOUND",
        1.25,
    )
    assert access["trace_id"] == inside["trace_id"]


def test_json_lines_keep_exceptions() -> None:
    logger, out = _logger(JsonFormatter())
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    line = json.loads(out.getvalue())
    assert line["level"] == "ERROR" and "ValueError: boom" in line["exception"]


def test_text_lines_are_for_people_and_show_the_trace_only_when_there_is_one() -> None:
    logger, out = _logger(TextFormatter())
    logger.info("no trace here")
    with TracerProvider().get_tracer("test").start_as_current_span("call") as span:
        logger.info("in a call")
    first, second = out.getvalue().splitlines()
    assert first.endswith("INFO  order " + logger.name + ": no trace here")
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert f"in a call  [trace={trace_id} span=" in second


def test_the_access_line_has_the_keys_of_every_log_line() -> None:
    out = io.StringIO()
    context = ContextFilter("order", "order-host-5001")
    access = AccessLog(context, json_lines=True, stream=out)
    with TracerProvider().get_tracer("test").start_as_current_span("call") as span:
        access.write("/shop.order.v1.OrderService/GetOrder", "NOT_FOUND", 1.23456, "no o-1")
    access.write("/grpc.health.v1.Health/Check", "OK", 0.1)
    failed, ok = (json.loads(line) for line in out.getvalue().splitlines())
    ctx = span.get_span_context()
    assert failed == {
        "time": failed["time"],
        "level": "INFO",
        "service": "order",
        "instance": "order-host-5001",
        "logger": "mesh.access",
        "message": "/shop.order.v1.OrderService/GetOrder NOT_FOUND 1.23ms: no o-1",
        "method": "/shop.order.v1.OrderService/GetOrder",
        "status": "NOT_FOUND",
        "duration_ms": 1.235,
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
    }
    assert ok["trace_id"] is None and ok["message"] == "/grpc.health.v1.Health/Check OK 0.10ms"
    # Logging's text line, for people; the instance is filled in once it is known.
    out.truncate(0)
    out.seek(0)
    context.instance = "order-host-5002"
    text = AccessLog(context, json_lines=False, stream=out)
    with TracerProvider().get_tracer("test").start_as_current_span("call") as span:
        text.write("/shop.order.v1.OrderService/GetOrder", "OK", 0.5)
    line = out.getvalue()
    assert line.endswith(
        " INFO  order mesh.access: /shop.order.v1.OrderService/GetOrder OK 0.50ms"
        f"  [trace={format(span.get_span_context().trace_id, '032x')}"
        f" span={format(span.get_span_context().span_id, '016x')}]\n"
    )
    assert line[4] == "-" and line[19] == ","  # 2026-11-25 10:55:34,850


def test_failed_calls_get_an_access_line_even_with_the_access_log_off() -> None:
    out = io.StringIO()
    access = AccessLog(ContextFilter("order", "order-1"), False, out, every_call=False)
    interceptor = MeshServerInterceptor(MeshPolicy(), None, lambda: "t", access_log=access)
    method = "/shop.order.v1.OrderService/GetOrder"
    rpc = interceptor.metrics.rpc(method)
    interceptor._done(method, rpc, grpc.StatusCode.OK, "", time.perf_counter())
    assert out.getvalue() == ""
    interceptor._done(method, rpc, grpc.StatusCode.NOT_FOUND, "o-1 not found", time.perf_counter())
    assert "mesh.access: /shop.order.v1.OrderService/GetOrder NOT_FOUND" in out.getvalue()
    access.every_call = True
    interceptor._done(method, rpc, grpc.StatusCode.OK, "", time.perf_counter())
    assert len(out.getvalue().splitlines()) == 2


def test_observability_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "MESH_METRICS_PORT",
        "MESH_LOG_JSON",
        "MESH_LOG_FORMAT",
        "MESH_ACCESS_LOG",
        "MESH_TRACE_SAMPLE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("MESH_TRACES_DB", raising=False)
    default = MeshConfig.from_args("order", ["--state-dir", "/tmp/s"])
    # Production defaults: no access line per call, 1 % of new traces.
    assert (default.metrics_port, default.log_json, default.access_log) == (0, False, False)
    assert default.trace_sample == 0.01
    on = MeshConfig.from_args("order", ["--access-log", "--trace-sample", "1"])
    assert (on.access_log, on.trace_sample) == (True, 1.0)
    assert default.trace_sink == Path("/tmp/s/traces.db")
    flags = MeshConfig.from_args(
        "order", ["--metrics-port", "9464", "--log-json", "--no-access-log", "--traces-db", "off"]
    )
    assert (flags.metrics_port, flags.log_json, flags.access_log) == (9464, True, False)
    assert flags.trace_sink is None
    monkeypatch.setenv("MESH_LOG_JSON", "1")
    monkeypatch.setenv("MESH_METRICS_PORT", "-1")
    monkeypatch.setenv("MESH_TRACES_DB", "/tmp/elsewhere.db")
    env = MeshConfig.from_args("order", [])
    assert (env.log_json, env.metrics_port, env.trace_sink) == (
        True,
        -1,
        Path("/tmp/elsewhere.db"),
    )


def test_rpc_metrics_are_bound_once_per_method_and_exposed() -> None:
    metrics = Metrics()
    assert split_method("/shop.order.v1.OrderService/GetOrder") == (
        "shop.order.v1.OrderService",
        "GetOrder",
    )
    rpc = metrics.rpc("/shop.order.v1.OrderService/GetOrder")
    assert metrics.rpc("/shop.order.v1.OrderService/GetOrder") is rpc
    rpc.in_flight += 1
    rpc.done(grpc.StatusCode.NOT_FOUND, time.perf_counter())
    rpc.in_flight += 1
    rpc.done(grpc.StatusCode.OK, time.perf_counter())
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
    }
    labels = (("grpc_method", "GetOrder"), ("grpc_service", "shop.order.v1.OrderService"))
    assert samples[("mesh_server_handled_total", (("grpc_code", "NOT_FOUND"), *labels))] == 1
    assert samples[("mesh_server_handled_total", (("grpc_code", "OK"), *labels))] == 1
    assert samples[("mesh_server_handling_seconds_count", labels)] == 2
    assert samples[("mesh_server_in_flight", labels)] == 0


async def test_the_metrics_endpoint_answers_a_scrape_and_nothing_else() -> None:
    """GET /metrics is the exposition; another path is 404, another method 405, and a
    client that sends half a request head is dropped without stopping the endpoint."""
    metrics = Metrics()
    port = await metrics.serve("127.0.0.1", 0)

    async def ask(request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        answer = await reader.read()
        writer.close()
        return answer

    try:
        answer = await ask(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and b"version=1.0.0" in head
        assert b"mesh_shed_total" in body or b"# HELP" in body
        assert int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]) == len(body)
        assert (await ask(b"GET /other HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
        assert (await ask(b"POST /metrics HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405")
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /met")  # and goes away
        writer.close()
        assert (await ask(b"GET /metrics HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200")
    finally:
        await metrics.close()
