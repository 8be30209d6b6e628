"""What the server's per-call path keeps cheap without giving anything up: decisions kept
per peer until the intentions change, spans not made through the SDK when nothing is
recorded (same trace ids and decisions as the SDK's), metrics as plain numbers exposed as
the same Prometheus series."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased

from meshkit.config import MeshPolicy
from meshkit.rpc.calls import ClientCalls
from meshkit.rpc.interceptors import MeshServerInterceptor
from meshkit.security.authorization import Decision
from meshkit.security.identity import SpiffeId
from meshkit.telemetry.metrics import Metrics
from meshkit.telemetry.tracing import RootSampler, ServerSpans, recorded_root
from tests.unit.test_admission import until
from tests.unit.test_faults import GET_STOCK
from tests.unit.test_faults import Context as FaultsContext
from tests.unit.test_faults import call_stock as call

LIST = "/shop.inventory.v1.InventoryService/ListStock"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


class Context(FaultsContext):
    """A call's context (test_faults'), from a caller of the trust domain ``domain``."""

    def __init__(self, caller: str | None = "order", domain: str = "t.consul") -> None:
        super().__init__(caller)
        self.domain = domain

    def peer_identities(self) -> list[bytes] | None:
        if self.caller is None:
            return None
        return [f"spiffe://{self.domain}/ns/default/dc/dc1/svc/{self.caller}".encode()]


class Switchable:
    """Intentions whose answer a test changes, with the ``generation`` of the real ones."""

    def __init__(self) -> None:
        self.allow = True
        self.generation = 0
        self.asked = 0

    def decide(self, caller: SpiffeId, method: str) -> Decision:
        self.asked += 1
        return Decision(self.allow, "allowed" if self.allow else "denied")


async def test_a_peers_decision_is_kept_until_the_intentions_or_the_trust_domain_change() -> None:
    intentions = Switchable()
    domain = ["t.consul"]
    interceptor = MeshServerInterceptor(MeshPolicy(), intentions, lambda: domain[0])
    for _ in range(3):
        assert await call(interceptor, Context("order")) is grpc.StatusCode.OK
    assert intentions.asked == 1  # decided once for this peer and method
    assert await call(interceptor, Context("order"), LIST) is grpc.StatusCode.OK
    assert intentions.asked == 2  # another method: decided for itself

    intentions.allow = False
    intentions.generation += 1  # what Intentions does when Consul's intentions change
    assert await call(interceptor, Context("order")) is grpc.StatusCode.PERMISSION_DENIED
    assert await call(interceptor, Context("order")) is grpc.StatusCode.PERMISSION_DENIED
    assert intentions.asked == 4  # a refusal is never kept: asked each time

    intentions.allow = True
    intentions.generation += 1
    assert await call(interceptor, Context("order")) is grpc.StatusCode.OK
    domain[0] = "other.consul"  # a new trust domain: the same peer is a stranger now
    assert await call(interceptor, Context("order")) is grpc.StatusCode.UNAUTHENTICATED
    assert await call(interceptor, Context(None)) is grpc.StatusCode.UNAUTHENTICATED


async def test_an_authorizer_without_a_generation_is_asked_on_every_call() -> None:
    class Plain:
        asked = 0

        def decide(self, caller: SpiffeId, method: str) -> Decision:
            self.asked += 1
            return Decision(True, "allowed")

    plain = Plain()
    interceptor = MeshServerInterceptor(MeshPolicy(), plain, lambda: "t.consul")
    for _ in range(3):
        assert await call(interceptor, Context("order")) is grpc.StatusCode.OK
    assert plain.asked == 3


# --- spans ----------------------------------------------------------------------------


def traced(ratio: float) -> tuple[MeshServerInterceptor, InMemorySpanExporter, list[Any]]:
    """An interceptor whose spans go to memory, sampling new traces at ``ratio`` as the
    mesh does; and the span current in each call's handler."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(RootSampler(ratio)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen: list[Any] = []
    interceptor = MeshServerInterceptor(
        MeshPolicy(), None, lambda: "t.consul", spans=ServerSpans(provider, ratio)
    )

    async def handle(request: object, context: object) -> str:
        seen.append(trace.get_current_span())
        return "stock"

    interceptor._handler = grpc.unary_unary_rpc_method_handler(handle)  # type: ignore[attr-defined]
    return interceptor, exporter, seen


async def traced_call(
    interceptor: MeshServerInterceptor, metadata: tuple[tuple[str, str], ...] = ()
) -> None:
    async def continuation(_: object) -> grpc.RpcMethodHandler:
        return interceptor._handler  # type: ignore[attr-defined]

    details = SimpleNamespace(method=GET_STOCK, invocation_metadata=metadata)
    wrapped = await interceptor.intercept_service(continuation, details)  # type: ignore[arg-type]
    await wrapped.unary_unary(object(), Context())


async def test_a_new_trace_not_drawn_gets_a_current_span_that_is_not_recorded() -> None:
    interceptor, exporter, seen = traced(0.0)
    await traced_call(interceptor)
    await traced_call(interceptor)
    first, second = (span.get_span_context() for span in seen)
    assert first.is_valid and second.is_valid and first.trace_id != second.trace_id
    assert not first.trace_flags.sampled and first.trace_flags.random_trace_id
    assert not seen[0].is_recording()
    assert exporter.get_finished_spans() == ()
    assert trace.get_current_span() is trace.INVALID_SPAN  # detached after the call


async def test_a_new_trace_drawn_is_recorded_by_the_sdk_with_its_attributes() -> None:
    interceptor, exporter, seen = traced(1.0)
    await traced_call(interceptor)
    (span,) = exporter.get_finished_spans()
    assert span.name == GET_STOCK and span.kind is trace.SpanKind.SERVER
    assert span.attributes is not None and span.attributes["rpc.method"] == "GetStock"
    assert span.attributes["net.peer.ip"] == "127.0.0.1"
    assert span.context.span_id == seen[0].get_span_context().span_id


@pytest.mark.parametrize("ratio", [0.0, 1.0])
async def test_a_caller_that_did_not_record_its_trace_is_followed(ratio: float) -> None:
    interceptor, exporter, seen = traced(ratio)
    await traced_call(interceptor, (("traceparent", f"00-{TRACE_ID}-b7ad6b7169203331-00"),))
    context = seen[0].get_span_context()
    assert format(context.trace_id, "032x") == TRACE_ID and not context.trace_flags.sampled
    assert context.span_id != 0xB7AD6B7169203331 and not seen[0].is_recording()
    assert exporter.get_finished_spans() == ()


async def test_a_caller_that_records_its_trace_is_followed_even_at_ratio_zero() -> None:
    interceptor, exporter, _ = traced(0.0)
    await traced_call(interceptor, (("traceparent", f"00-{TRACE_ID}-b7ad6b7169203331-01"),))
    (span,) = exporter.get_finished_spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and span.parent.span_id == 0xB7AD6B7169203331


async def test_tracestate_and_malformed_traceparents_take_the_sdks_way() -> None:
    interceptor, exporter, seen = traced(0.0)
    await traced_call(
        interceptor,
        (("traceparent", f"00-{TRACE_ID}-b7ad6b7169203331-00"), ("tracestate", "vendor=x")),
    )
    context = seen[0].get_span_context()
    assert format(context.trace_id, "032x") == TRACE_ID
    assert context.trace_state.get("vendor") == "x"  # carried on, as the SDK does
    await traced_call(interceptor, (("traceparent", f"00-{TRACE_ID.upper()}-b7ad6b7169203331-00"),))
    assert format(seen[1].get_span_context().trace_id, "032x") != TRACE_ID  # invalid: new trace
    assert exporter.get_finished_spans() == ()


# --- metrics --------------------------------------------------------------------------


async def test_rpc_series_by_method_and_by_caller_are_sums_of_the_same_calls() -> None:
    metrics = Metrics()
    interceptor = MeshServerInterceptor(MeshPolicy(), Switchable(), lambda: "t.consul", metrics)
    for caller, method in (("order", GET_STOCK), ("order", LIST), ("gateway", GET_STOCK)):
        assert await call(interceptor, Context(caller), method) is grpc.StatusCode.OK
    assert await call(interceptor, Context(None)) is grpc.StatusCode.UNAUTHENTICATED
    value = metrics.registry.get_sample_value
    get_stock = {"grpc_service": "shop.inventory.v1.InventoryService", "grpc_method": "GetStock"}
    assert value("mesh_server_handled_total", {**get_stock, "grpc_code": "OK"}) == 2
    assert value("mesh_server_handled_total", {**get_stock, "grpc_code": "UNAUTHENTICATED"}) == 1
    assert value("mesh_server_handling_seconds_count", get_stock) == 3
    assert value("mesh_server_handling_seconds_bucket", {**get_stock, "le": "+Inf"}) == 3
    assert value("mesh_server_in_flight", get_stock) == 0
    assert value("mesh_server_caller_handled_total", {"caller": "order", "grpc_code": "OK"}) == 2
    assert value("mesh_server_caller_seconds_count", {"caller": "order"}) == 2
    assert value("mesh_server_caller_seconds_count", {"caller": "unknown"}) == 1


def test_latency_buckets_are_cumulative_as_prometheus_counts_them() -> None:
    metrics = Metrics()
    rpc = metrics.rpc(GET_STOCK)
    labels = {"grpc_service": "shop.inventory.v1.InventoryService", "grpc_method": "GetStock"}
    for took in (0.0005, 0.003, 20.0):  # on a bound, between two, above every bound
        rpc.observe(grpc.StatusCode.OK, took, "order")
    value = metrics.registry.get_sample_value
    assert value("mesh_server_handling_seconds_bucket", {**labels, "le": "0.0005"}) == 1
    assert value("mesh_server_handling_seconds_bucket", {**labels, "le": "0.0025"}) == 1
    assert value("mesh_server_handling_seconds_bucket", {**labels, "le": "0.005"}) == 2
    assert value("mesh_server_handling_seconds_bucket", {**labels, "le": "10.0"}) == 2
    assert value("mesh_server_handling_seconds_bucket", {**labels, "le": "+Inf"}) == 3
    assert value("mesh_server_handling_seconds_sum", labels) == pytest.approx(20.0035)
    assert value("mesh_server_caller_seconds_bucket", {"caller": "order", "le": "0.005"}) == 2


# --- client spans ---------------------------------------------------------------------


class Sent:
    """A multicallable that keeps the metadata of each call it is asked to make."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []

    def __call__(self, request: object, *, timeout: float, metadata: Any) -> Any:
        self.metadata.append(dict(metadata))
        return Finished()


class Finished:
    """A call that has ended OK: its done callbacks run at once."""

    def add_done_callback(self, callback: Any) -> None:
        callback(self)

    async def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.OK


def client(ratio: float) -> tuple[Any, Sent, InMemorySpanExporter, TracerProvider]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(RootSampler(ratio)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sent = Sent()
    calls = ClientCalls(MeshPolicy().deadlines, provider, ratio)
    return calls.wrap(GET_STOCK, sent), sent, exporter, provider


def test_a_client_call_not_recorded_sends_its_traceparent_and_makes_no_span() -> None:
    call, sent, exporter, provider = client(0.0)
    call(object())  # a new trace, not drawn
    root = TRACEPARENT.fullmatch(sent.metadata[0]["traceparent"])
    assert root is not None and root[3] == "02"  # not sampled; a random trace id
    parent = provider.get_tracer("t").start_span("handler", context=otel_context.Context())
    with trace.use_span(parent, end_on_exit=True):  # within a server span not recorded
        call(object())
    child = TRACEPARENT.fullmatch(sent.metadata[1]["traceparent"])
    assert child is not None and child[3] == "02"
    assert int(child[1], 16) == parent.get_span_context().trace_id
    assert exporter.get_finished_spans() == ()


async def test_a_client_call_of_a_recorded_trace_or_a_drawn_root_is_recorded() -> None:
    call, sent, exporter, provider = client(1.0)
    call(object())  # drawn: recorded once, not drawn a second time by the SDK
    await until(lambda: len(exporter.get_finished_spans()) == 1)
    (root,) = exporter.get_finished_spans()
    assert root.kind is trace.SpanKind.CLIENT and root.parent is None
    assert sent.metadata[0]["traceparent"].endswith(f"{root.context.span_id:016x}-03")
    call, sent, exporter, provider = client(0.0)
    parent = provider.get_tracer("t").start_span("handler")  # a recorded root at ratio 0
    assert not parent.is_recording()
    with recorded_root():
        parent = provider.get_tracer("t").start_span("handler")
    with trace.use_span(parent, end_on_exit=True):
        call(object())
    child = TRACEPARENT.fullmatch(sent.metadata[0]["traceparent"])
    assert child is not None and child[3] == "03"
    assert int(child[1], 16) == parent.get_span_context().trace_id
