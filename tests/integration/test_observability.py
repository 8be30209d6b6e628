"""Observability of a live mesh: one order's trace across every hop and the broker, RED and
saga metrics that move, and log lines that carry the trace id.

A stack of its own (Consul, NATS, the four services with JSON logs), so that its trace
sink (``<state>/traces.db``) and its services' log hold only what these tests did. The
client is this process's mesh as ``operator``; its spans go to the same sink, so the
client call is the root of the order's trace.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from prometheus_client.parser import text_string_to_metric_families

from devstack.stack import Stack
from meshkit import Mesh
from meshkit.mesh import open_mesh
from meshkit.telemetry import tracing as telemetry
from meshkit.telemetry.trace_sink import SpanRecord, read_traces
from meshkit.tools.trace import render_trace
from shop.common.v1 import address_pb2, line_item_pb2, money_pb2
from shop.order.v1 import order_pb2, order_pb2_grpc
from tests.conftest import DOMAIN_SERVICES, StackFactory

pytestmark = pytest.mark.integration

PLACE = "/shop.order.v1.OrderService/PlaceOrder"
GET_STOCK = "/shop.inventory.v1.InventoryService/GetStock"


@pytest.fixture(scope="module")
def own(module_stack: StackFactory) -> Stack:
    """Consul, NATS and the four services (JSON logs), this module's alone."""
    return module_stack(*DOMAIN_SERVICES, args=("--log-json",), label="observability")


@pytest.fixture(scope="module")
async def client(own: Stack) -> AsyncIterator[Mesh]:
    mesh, _ = await open_mesh(own.mesh_config("operator"))
    mesh.stub(order_pb2_grpc.OrderServiceStub, "order")  # watched from now on
    await mesh.discovery.ready()
    yield mesh
    await mesh.close()


def order_request(token: str = "tok_visa") -> order_pb2.PlaceOrderRequest:
    return order_pb2.PlaceOrderRequest(
        customer_id="c-obs",
        items=[
            line_item_pb2.LineItem(
                sku="SKU-MOUSE", quantity=1,
                unit_price=money_pb2.Money(currency_code="EUR", units=10),
            )
        ],
        shipping_address=address_pb2.Address(
            recipient="A. Tester", lines=["Hauptstr. 1"], city="Berlin", postal_code="10115",
            country_code="DE",
        ),
        payment_token=token,
        idempotency_key=f"obs-{uuid.uuid4()}",
    )  # fmt: skip


async def place_and_settle(client: Mesh, token: str = "tok_visa") -> order_pb2.Order:
    stub = client.stub(order_pb2_grpc.OrderServiceStub, "order")
    placed = (await stub.PlaceOrder(order_request(token), timeout=10)).order
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        order = (
            await stub.GetOrder(order_pb2.GetOrderRequest(order_id=placed.order_id), timeout=5)
        ).order
        if order.status in (order_pb2.ORDER_STATUS_CONFIRMED, order_pb2.ORDER_STATUS_CANCELLED):
            return order
        await asyncio.sleep(0.05)
    raise AssertionError(f"order {placed.order_id} did not finish: {order}")


def span(spans: list[SpanRecord], service: str, name: str, kind: str) -> SpanRecord:
    found = [s for s in spans if s.service == service and s.name == name and s.kind == kind]
    assert len(found) == 1, f"{len(found)} spans {service} {name} {kind}:\n{render_trace(spans)}"
    return found[0]


def parent_of(spans: list[SpanRecord], child: SpanRecord) -> SpanRecord:
    parents = [s for s in spans if s.span_id == child.parent_id]
    assert parents, f"no parent for {child.service} {child.name}:\n{render_trace(spans)}"
    return parents[0]


async def order_trace(
    sink: Path, order_id: str, complete: set[tuple[str, str]], services: int = 0
) -> list:
    """The order's spans once every (service, name) of ``complete`` is in the sink, from at
    least ``services`` services (each process exports its spans in batches of its own, so
    a loaded machine may write the last ones a while after the order is settled)."""
    deadline = time.monotonic() + 30
    while True:
        traces = await asyncio.to_thread(read_traces, sink, order_id)
        seen = {(s.service, s.name) for spans in traces.values() for s in spans}
        enough = len({service for service, _ in seen}) >= services
        if (complete <= seen and enough) or time.monotonic() > deadline:
            return list(traces.values())
        await asyncio.sleep(0.2)


SAGA = [  # (producer, event, consumers): the saga's chain of events to OrderConfirmed
    ("inventory", "shop.events.v1.StockReserved", ["order", "payment"]),
    ("payment", "shop.events.v1.PaymentCaptured", ["order", "shipping"]),
    ("shipping", "shop.events.v1.ShipmentScheduled", ["order"]),
    ("order", "shop.events.v1.OrderConfirmed", ["inventory"]),
]
PLACED = "shop.events.v1.OrderPlaced"
# Every span the first test asserts on, by (service, name).
CONFIRMED_TRACE = {
    ("operator", PLACE),
    ("order", PLACE),
    ("order", GET_STOCK),
    ("inventory", GET_STOCK),
    ("order", f"{PLACED} create"),
    ("order", f"{PLACED} publish"),
    *((service, f"{PLACED} process") for service in ("inventory", "payment", "shipping")),
    *((producer, f"{event} create") for producer, event, _ in SAGA),
    *((c, f"{event} process") for _, event, consumers in SAGA for c in consumers),
}


async def test_one_order_is_one_trace_across_services_calls_and_the_broker(
    client: Mesh, own: Stack
) -> None:
    order = await place_and_settle(client)
    assert order.status == order_pb2.ORDER_STATUS_CONFIRMED
    traces = await order_trace(own.state / "traces.db", order.order_id, CONFIRMED_TRACE)
    assert len(traces) == 1, "\n\n".join(render_trace(t) for t in traces)
    spans = traces[0]
    tree = render_trace(spans)
    assert {s.service for s in spans} >= {"operator", "order", "inventory", "payment", "shipping"}

    # The synchronous hops: client -> order -> inventory, each a child of the one before.
    client_call = span(spans, "operator", PLACE, "CLIENT")
    assert client_call.parent_id is None, tree
    server = span(spans, "order", PLACE, "SERVER")
    assert server.parent_id == client_call.span_id, tree
    assert server.order_id == order.order_id
    stock_server = span(spans, "inventory", GET_STOCK, "SERVER")
    stock_client = parent_of(spans, stock_server)
    assert (stock_client.service, stock_client.kind) == ("order", "CLIENT"), tree
    assert stock_client.parent_id == server.span_id, tree

    # The broker hop: OrderPlaced is created in PlaceOrder's span; the relay's publish (in
    # another task) and each consumer's processing are children of that producer span.
    created = span(spans, "order", "shop.events.v1.OrderPlaced create", "PRODUCER")
    assert created.parent_id == server.span_id, tree
    published = span(spans, "order", "shop.events.v1.OrderPlaced publish", "PRODUCER")
    assert published.parent_id == created.span_id, tree
    for service in ("inventory", "payment", "shipping"):
        consumed = span(spans, service, "shop.events.v1.OrderPlaced process", "CONSUMER")
        assert consumed.parent_id == created.span_id, tree

    # The saga's chain of events, hop by hop, to OrderConfirmed (inventory sells the stock).
    for producer, event, consumers in SAGA:
        made = span(spans, producer, f"{event} create", "PRODUCER")
        cause = parent_of(spans, made)
        assert cause.kind == "CONSUMER" and cause.service == producer, tree
        for consumer in consumers:
            consumed = span(spans, consumer, f"{event} process", "CONSUMER")
            assert consumed.parent_id == made.span_id, tree
            assert consumed.attributes["messaging.message.conversation_id"] == order.order_id

    # Every span records the instance that made it (services) and the tree says so too.
    for s in spans:
        if s.service != "operator":
            assert s.instance.startswith(f"{s.service}-"), s
    for service in ("order", "inventory", "payment", "shipping"):
        assert f" {service} " in tree


async def test_the_trace_command_prints_the_tree(client: Mesh, own: Stack) -> None:
    order = await place_and_settle(client, token="tok_decline")
    assert order.status == order_pb2.ORDER_STATUS_CANCELLED
    sink = own.state / "traces.db"
    cancelled = "shop.events.v1.OrderCancelled process"
    failed = "shop.events.v1.PaymentFailed process"
    complete = {("inventory", cancelled), ("operator", PLACE), ("order", failed)}
    await order_trace(sink, order.order_id, complete, services=5)
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "meshkit.tools.trace", order.order_id, "--db", str(sink)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("trace ") and order.order_id in lines[0], out.stdout
    assert "5 services: inventory, operator, order, payment, shipping" in lines[0], out.stdout
    root = next(line for line in lines if PLACE in line)
    assert "operator" in root and "[client]" in root
    failed = next(line for line in lines if "shop.events.v1.PaymentFailed process" in line)
    assert " order " in failed and "─ " in failed, out.stdout


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of an instance's /metrics, by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_are_discoverable_in_consul_and_move_with_calls(
    client: Mesh, own: Stack
) -> None:
    stack = own.services
    assert own.consul is not None
    # Every instance announces its metrics endpoint in its Consul service meta.
    for name, proc in stack.items():
        port = proc.info["metrics_port"]
        assert isinstance(port, int) and port > 0, proc.info
        (entry,) = own.consul.get(f"/v1/catalog/service/{name}")  # type: ignore[misc]
        assert entry["ServiceMeta"]["metrics_port"] == str(port)
        assert entry["ServiceMeta"]["metrics_path"] == "/metrics"

    port = stack["order"].info["metrics_port"]
    rpc = {"grpc_service": "shop.order.v1.OrderService", "grpc_method": "GetOrder"}
    before = await asyncio.to_thread(scrape, port)
    stub = client.stub(order_pb2_grpc.OrderServiceStub, "order")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetOrder(order_pb2.GetOrderRequest(order_id="no-such-order"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    order = await place_and_settle(client)
    assert order.status == order_pb2.ORDER_STATUS_CONFIRMED
    after = await asyncio.to_thread(scrape, port)

    handled = "mesh_server_handled_total"
    assert value(after, handled, **rpc, grpc_code="NOT_FOUND") == (
        value(before, handled, **rpc, grpc_code="NOT_FOUND") + 1
    )
    assert value(after, handled, **rpc, grpc_code="OK") > value(
        before, handled, **rpc, grpc_code="OK"
    )
    count = "mesh_server_handling_seconds_count"
    assert value(after, count, **rpc) > value(before, count, **rpc)
    assert ("mesh_server_in_flight", tuple(sorted(rpc.items()))) in after
    place = {"grpc_service": "shop.order.v1.OrderService", "grpc_method": "PlaceOrder"}
    assert value(after, handled, **place, grpc_code="OK") >= 1
    saga = "shop_order_saga_outcomes_total"
    assert value(after, saga, outcome="confirmed", reason="") == (
        value(before, saga, outcome="confirmed", reason="") + 1
    )
    processed = "mesh_events_processed_total"
    reserved = {"event_type": "shop.events.v1.StockReserved"}
    assert value(after, processed, **reserved, outcome="ok") > value(
        before, processed, **reserved, outcome="ok"
    )
    assert value(after, "mesh_outbox_published_total", event_type="shop.events.v1.OrderPlaced") >= 1
    assert value(after, "mesh_instance_info", service="order", instance=stack["order"].info[
        "instance_id"], version="0.1.0") == 1  # fmt: skip

    # The sampled gauges: the outbox drained, the consumer caught up.
    inventory = stack["inventory"].info["metrics_port"]
    deadline = time.monotonic() + 10
    while True:
        samples = await asyncio.to_thread(scrape, inventory)
        lag = ("mesh_events_consumer_pending", (("consumer", "inventory"),))
        if lag in samples or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert samples[lag] == 0
    assert value(samples, "mesh_outbox_depth") == 0
    get_stock = {"grpc_service": "shop.inventory.v1.InventoryService", "grpc_method": "GetStock"}
    assert value(samples, "mesh_server_handled_total", **get_stock, grpc_code="OK") >= 1


async def test_the_log_line_of_a_failed_call_carries_its_trace_id(client: Mesh, own: Stack) -> None:
    stub = client.stub(order_pb2_grpc.OrderServiceStub, "order")
    with client.tracer.get_tracer("test").start_as_current_span("ask for a missing order") as sp:
        trace_id = format(sp.get_span_context().trace_id, "032x")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetOrder(order_pb2.GetOrderRequest(order_id="o-missing"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    log = own.log_dir / "services.log"
    deadline = time.monotonic() + 10
    lines: list[dict] = []
    while not lines and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        for raw in log.read_text().splitlines():
            _, _, text = raw.partition("] ")
            if trace_id in text and text.startswith("{"):
                lines.append(json.loads(text))
    assert lines, f"no log line with trace id {trace_id}"
    access = [line for line in lines if line["logger"] == "mesh.access"]
    assert len(access) == 1, lines
    (line,) = access
    assert line["service"] == "order"
    assert line["instance"].startswith("order-")
    assert line["method"] == "/shop.order.v1.OrderService/GetOrder"
    assert line["status"] == "NOT_FOUND"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["trace_id"] == trace_id
    assert len(line["span_id"]) == 16
    assert "o-missing not found" in line["message"]


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Collector.received.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()
        self.wfile.write(trace_service_pb2.ExportTraceServiceResponse().SerializeToString())

    def log_message(self, *args: object) -> None:
        pass


def test_spans_go_to_otlp_when_its_endpoint_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With OTEL_EXPORTER_OTLP_ENDPOINT, spans go to that collector (OTLP over HTTP),
    and the local sink is not written."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        tracing = telemetry.setup_tracing("otlp-test", "otlp-test-1", tmp_path / "traces.db")
        assert tracing.destination == "otlp"
        with tracing.provider.get_tracer("test").start_as_current_span("hello collector"):
            pass
        tracing.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    names = set()
    for body in _Collector.received:
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                names |= {s.name for s in ss.spans}
    assert "hello collector" in names
    assert not (tmp_path / "traces.db").exists()
