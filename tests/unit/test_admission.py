"""Server-side admission (meshkit.rpc.admission): the gates on their own, the mesh file's
``[admission]``, and the interceptor refusing calls on a plaintext loopback server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from meshkit.config import AdmissionPolicy, DeadlinePolicy, MeshPolicy
from meshkit.rpc import deadlines
from meshkit.rpc.admission import NO_LIMIT, Admission, Gate
from meshkit.rpc.calls import ClientCalls
from meshkit.rpc.interceptors import MeshServerInterceptor, WrappingServer

METHOD = "/test.v1.Work/Do"
WATCH = "/test.v1.Work/Watch"


def shed_counter() -> tuple[Counter, CollectorRegistry]:
    registry = CollectorRegistry()
    return Counter("mesh_shed", "shed", ("method", "reason"), registry=registry), registry


def shed(registry: CollectorRegistry, method: str, reason: str) -> float:
    value = registry.get_sample_value("mesh_shed_total", {"method": method, "reason": reason})
    return value or 0.0


# --- the gate -------------------------------------------------------------------------


def sample(gate: Gate, took: float) -> None:
    """A successful call that took ``took`` seconds."""
    assert gate.enter()
    gate.leave(took, True)


def test_a_gate_admits_up_to_its_limit_and_counts_the_overflow() -> None:
    counter, registry = shed_counter()
    gate = Gate(METHOD, 2, shed=counter)
    assert gate.enter() and gate.enter()
    assert not gate.enter()
    assert gate.in_flight == 2
    assert shed(registry, METHOD, "in_flight") == 1
    assert "has 2 calls in flight, its maximum" in gate.full_message
    assert METHOD in gate.full_message
    gate.leave(0.1, False)
    assert gate.enter()  # a slot freed is a slot taken
    assert shed(registry, METHOD, "in_flight") == 1


def test_a_limit_of_zero_means_none() -> None:
    gate = Gate(METHOD, 0)
    assert gate.limit == NO_LIMIT
    assert all(gate.enter() for _ in range(10_000))


def test_the_usual_time_is_an_ewma_used_only_once_enough_samples_exist() -> None:
    gate = Gate(METHOD, 0, alpha=0.5, min_samples=3)
    sample(gate, 0.100)
    assert gate.usual == pytest.approx(0.100)
    assert gate.need == 0.0  # one sample says little
    sample(gate, 0.200)
    assert gate.usual == pytest.approx(0.150)
    assert gate.need == 0.0
    sample(gate, 0.050)
    assert gate.usual == pytest.approx(0.100)
    assert gate.need == pytest.approx(0.100)
    # An outlier moves it by alpha of the difference, not to the outlier.
    sample(gate, 1.100)
    assert gate.need == pytest.approx(0.600)


def test_without_deadline_awareness_nothing_is_needed() -> None:
    gate = Gate(METHOD, 0, deadline_aware=False, min_samples=1)
    sample(gate, 1.0)
    assert gate.need == 0.0


def test_streaming_methods_get_no_deadline_refusal() -> None:
    admission = Admission(AdmissionPolicy(min_samples=1, methods={WATCH: 5}))
    watch = admission.gate(WATCH, streaming=True)
    sample(watch, 300.0)  # a watch lasts as long as its caller wants
    assert watch.need == 0.0
    assert watch.limit == 5
    assert admission.gate(WATCH, streaming=True) is watch  # made once
    assert admission.gate(METHOD).limit == AdmissionPolicy().max_in_flight


# --- the deadline check it extends --------------------------------------------------------


def test_a_call_with_less_left_than_usual_is_refused_with_deadline_exceeded() -> None:
    policy = DeadlinePolicy()
    deadlines.check_incoming(policy, METHOD, 0.5, needed=0.2)  # enough left
    with pytest.raises(deadlines.DeadlineRejected) as err:
        deadlines.check_incoming(policy, METHOD, 0.1, needed=0.2)
    assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "only 100.0ms left for /test.v1.Work/Do" in err.value.message
    assert "takes 200.0ms here as a rule" in err.value.message
    # The fixed floor still applies with no estimate.
    with pytest.raises(deadlines.DeadlineRejected) as err:
        deadlines.check_incoming(policy, METHOD, 0.001)
    assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


# --- the mesh file ----------------------------------------------------------------------


def test_the_mesh_file_sets_defaults_and_per_method_overrides(tmp_path: Path) -> None:
    shipped = MeshPolicy.load(Path("infra/mesh/mesh.toml")).admission
    assert shipped.max_in_flight > 0 and shipped.deadline_aware
    assert shipped.max_in_flight_of("/shop.order.v1.OrderService/WatchOrder") == 1024
    assert shipped.max_in_flight_of("/shop.order.v1.OrderService/GetOrder") == 256

    mesh = tmp_path / "mesh.toml"
    mesh.write_text(
        "[admission]\nmax_in_flight = 8\ndeadline_aware = false\nmin_samples = 5\n"
        f'[admission.methods]\n"{METHOD}" = {{ max_in_flight = 0 }}\n'
    )
    policy = MeshPolicy.load(mesh).admission
    assert (policy.max_in_flight, policy.deadline_aware, policy.min_samples) == (8, False, 5)
    assert policy.max_in_flight_of(METHOD) == 0
    assert policy.max_in_flight_of("/other/Method") == 8
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert MeshPolicy.load(empty).admission == AdmissionPolicy()


@pytest.mark.parametrize("text", ["max_in_flight = -1", "ewma_alpha = 0", "ewma_alpha = 1.5"])
def test_bad_admission_settings_are_refused(tmp_path: Path, text: str) -> None:
    mesh = tmp_path / "mesh.toml"
    mesh.write_text(f"[admission]\n{text}\n")
    with pytest.raises(ValueError, match=r"\[admission\]"):
        MeshPolicy.load(mesh)


# --- through the interceptor, on a loopback server ------------------------------------


@dataclass
class Work:
    """A handler that waits until released (or sleeps ``delay``), counting its calls."""

    delay: float = 0.0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: int = 0
    cancelled: int = 0
    downstream: Callable[..., Any] | None = None

    async def do(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.started += 1
        try:
            if self.downstream is not None:
                return await self.downstream(request)
            if self.delay:
                await asyncio.sleep(self.delay)
            else:
                await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return request

    async def watch(
        self, request: bytes, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        self.started += 1
        await self.release.wait()
        yield request


async def start(work: Work, policy: MeshPolicy) -> tuple[grpc.aio.Server, int, Any]:
    interceptor = MeshServerInterceptor(policy, None, lambda: "t")
    server = grpc.aio.server()  # as the runtime serves: the wrap at registration
    handlers = {
        "Do": grpc.unary_unary_rpc_method_handler(work.do),
        "Watch": grpc.unary_stream_rpc_method_handler(work.watch),
    }
    WrappingServer(server, interceptor).add_registered_method_handlers("test.v1.Work", handlers)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port, interceptor


@pytest.fixture
async def served() -> AsyncIterator[Callable[..., Any]]:
    servers: list[grpc.aio.Server] = []
    channels: list[grpc.aio.Channel] = []

    async def serve(
        work: Work, admission: AdmissionPolicy, policy: MeshPolicy | None = None
    ) -> tuple[grpc.aio.Channel, Any]:
        policy = policy or MeshPolicy(admission=admission)
        server, port, interceptor = await start(work, policy)
        servers.append(server)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        return channel, interceptor

    yield serve
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(0)


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``predicate`` (the server runs on this loop) until it holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the state never came"
        await asyncio.sleep(0.01)


def shed_of(interceptor: MeshServerInterceptor, method: str, reason: str) -> float:
    return shed(interceptor.metrics.registry, method, reason)


async def test_n_plus_one_calls_the_overflow_is_shed_with_resource_exhausted(
    served: Callable[..., Any],
) -> None:
    work = Work()
    channel, interceptor = await served(work, AdmissionPolicy(max_in_flight=3))
    do = channel.unary_unary(METHOD)
    held = [asyncio.ensure_future(do(b"x", timeout=20)) for _ in range(3)]
    await until(lambda: work.started == 3)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await do(b"x", timeout=20)  # answered at once: the three are still waiting
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"{METHOD} has 3 calls in flight, its maximum" in (err.value.details() or "")
    assert work.started == 3  # the handler never saw it
    assert shed_of(interceptor, METHOD, "in_flight") == 1
    work.release.set()
    assert await asyncio.gather(*held) == [b"x"] * 3
    assert interceptor.admission.gate(METHOD).in_flight == 0
    assert await do(b"y", timeout=20) == b"y"  # slots come back


async def test_a_stream_holds_its_slot_until_it_ends(served: Callable[..., Any]) -> None:
    work = Work()
    channel, interceptor = await served(work, AdmissionPolicy(max_in_flight=0, methods={WATCH: 1}))
    watch = channel.unary_stream(WATCH)
    first = watch(b"w", timeout=20)
    await until(lambda: work.started == 1)
    second = watch(b"w", timeout=20)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await second.read()
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    first.cancel()  # the caller goes away: the slot is freed
    await until(lambda: interceptor.admission.gate(WATCH, streaming=True).in_flight == 0)
    work.release.set()
    assert [r async for r in watch(b"v", timeout=20)] == [b"v"]


async def test_a_call_with_less_left_than_usual_is_refused_up_front(
    served: Callable[..., Any],
) -> None:
    work = Work(delay=0.2)
    channel, interceptor = await served(work, AdmissionPolicy(min_samples=3))
    do = channel.unary_unary(METHOD)
    short = 0.1  # under the 0.2 s the method takes however loaded the machine is
    for _ in range(3):  # the samples the estimate needs
        assert await do(b"x", timeout=20) == b"x"
    assert interceptor.admission.gate(METHOD).need >= 0.2
    started = work.started
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await do(b"x", timeout=short)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "here as a rule; not worth starting" in (err.value.details() or "")
    assert work.started == started  # refused before the handler
    assert shed_of(interceptor, METHOD, "deadline") == 1
    assert await do(b"x", timeout=20) == b"x"  # enough left: served


async def test_the_fixed_floor_counts_as_a_deadline_refusal_too(
    served: Callable[..., Any],
) -> None:
    policy = MeshPolicy(deadlines=DeadlinePolicy(min_remaining=5.0))
    channel, interceptor = await served(Work(), AdmissionPolicy(), policy)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await channel.unary_unary(METHOD)(b"x", timeout=2)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert shed_of(interceptor, METHOD, "deadline") == 1


async def test_open_methods_are_never_shed(served: Callable[..., Any]) -> None:
    work = Work()
    admission = AdmissionPolicy(max_in_flight=1)
    policy = MeshPolicy(admission=admission, open_prefixes=("/test.v1.Work/",))
    channel, interceptor = await served(work, admission, policy)
    do = channel.unary_unary(METHOD)
    held = [asyncio.ensure_future(do(b"x", timeout=20)) for _ in range(3)]
    await until(lambda: work.started == 3)
    work.release.set()
    assert await asyncio.gather(*held) == [b"x"] * 3
    assert METHOD not in interceptor.admission._gates


async def test_a_cancelled_caller_cancels_the_downstream_call(served: Callable[..., Any]) -> None:
    """grpc.aio cancels the handler's task when its caller cancels; the mesh stub's call it
    awaits is cancelled with it, and the downstream server sees its call cancelled."""
    down = Work()
    down_channel, down_interceptor = await served(down, AdmissionPolicy())
    calls = ClientCalls(DeadlinePolicy())
    up = Work(downstream=calls.wrap(METHOD, down_channel.unary_unary(METHOD)))
    up_channel, _ = await served(up, AdmissionPolicy())
    call = up_channel.unary_unary(METHOD)(b"x", timeout=20)
    await until(lambda: down.started == 1)
    call.cancel()
    await until(lambda: down.cancelled == 1)
    assert up.cancelled == 1
    registry = down_interceptor.metrics.registry
    labels = {"grpc_service": "test.v1.Work", "grpc_method": "Do", "grpc_code": "CANCELLED"}
    await until(lambda: registry.get_sample_value("mesh_server_handled_total", labels) == 1)
    assert down_interceptor.admission.gate(METHOD).in_flight == 0


def test_the_exposition_names_method_and_reason() -> None:
    interceptor = MeshServerInterceptor(MeshPolicy(), None, lambda: "t")
    interceptor.admission.gate(METHOD).shed_in_flight.inc()
    families = {
        f.name: f for f in text_string_to_metric_families(interceptor.metrics.exposition().decode())
    }
    totals = {
        (s.labels["method"], s.labels["reason"]): s.value
        for s in families["mesh_shed"].samples
        if s.name == "mesh_shed_total"
    }
    assert totals == {(METHOD, "in_flight"): 1.0, (METHOD, "deadline"): 0.0}


def test_an_estimate_inflated_by_a_slow_spell_comes_down_under_refusals() -> None:
    from meshkit.rpc.admission import Gate

    gate = Gate("/x.v1.S/M", 0, alpha=0.1, min_samples=3)
    for _ in range(3):  # a slow spell (a 2 s delay fault): the method "usually" takes 2 s
        assert gate.enter()
        gate.leave(2.0, ok=True)
    assert gate.need == 2.0
    budget = 1.0  # what callers give it: every call is refused while the estimate holds
    refusals = 0
    while gate.need > budget:
        gate.refused()
        refusals += 1
        assert refusals < 100, "the estimate never came down"
    assert gate.enter()  # admitted again: it measures the method afresh
    gate.leave(0.01, ok=True)
    assert gate.need < budget
