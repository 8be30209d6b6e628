"""The client's resilience against real instances (Consul, the broker, the inventory
service as ``tests.support.flaky_inventory``, whose ``GetStock`` fails on command): the
circuit breaker, outlier ejection, gRPC's retry throttling and the bulkhead.

Nothing waits for a guessed time: each step polls for the state it needs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from devstack.services import ServiceProcess
from devstack.stack import Stack
from meshkit.config import ResiliencePolicy, ResilienceSettings
from meshkit.mesh import Mesh, open_mesh
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from tests.conftest import StackFactory
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

REQUEST = inventory_pb2.GetStockRequest(sku="SKU-MOUSE")
Stub = inventory_pb2_grpc.InventoryServiceStub


class Flaky:
    """One flaky inventory instance: its mode file and the attempts it saw."""

    def __init__(self, proc: ServiceProcess, mode_file: Path) -> None:
        self.proc = proc
        self.mode_file = mode_file
        self.id = str(proc.info["instance_id"])

    def set(self, mode: str) -> None:
        self.mode_file.write_text(mode)

    @property
    def attempts(self) -> int:
        f = self.mode_file.with_name(self.mode_file.name + ".attempts")
        return len(f.read_text()) if f.exists() else 0


@pytest.fixture(scope="module")
def stack(module_stack: StackFactory) -> Stack:
    return module_stack(label="resilience")


@pytest.fixture
def flaky(stack: Stack, tmp_path: Path) -> Iterator[Callable[[], Flaky]]:
    """Starts flaky inventory instances (passing in Consul); stopped after the test."""
    started: list[Flaky] = []

    def start() -> Flaky:
        mode = tmp_path / f"flaky-{len(started)}.mode"
        mode.write_text("ok")
        proc = stack.start_service(
            "inventory",
            env={"FLAKY_MODE_FILE": str(mode)},
            module="tests.support.flaky_inventory",
            wait_passing=False,
        )
        started.append(Flaky(proc, mode))
        stack.wait_passing("inventory", count=len(started), timeout=60)
        return started[-1]

    yield start
    for f in started:
        f.proc.stop()


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[Callable[..., Awaitable[Mesh]]]:
    """The mesh in this process as ``order``, with the given resilience policy."""
    opened: list[Mesh] = []

    async def open_with(**policy: Any) -> Mesh:
        config = stack.mesh_config("order")
        settings = ResilienceSettings(defaults=ResiliencePolicy(**policy))
        config = replace(config, policy=replace(config.policy, resilience=settings))
        mesh, _ = await open_mesh(config)
        opened.append(mesh)
        return mesh

    yield open_with
    for mesh in opened:
        await mesh.close()


def metric(mesh: Mesh, name: str, **labels: str) -> float:
    return mesh.metrics.registry.get_sample_value(name, {"service": "inventory", **labels}) or 0


async def served_by(stub: Stub) -> str:
    call = stub.GetStock(REQUEST)
    await call
    return dict(await call.trailing_metadata())["served-by"]


async def outcome(stub: Stub) -> tuple[str, str]:
    """(code name, details) of one call."""
    try:
        await stub.GetStock(REQUEST)
    except grpc.aio.AioRpcError as err:
        return err.code().name, err.details() or ""
    return "OK", ""


async def stub_of(mesh: Mesh, instances: int) -> Stub:
    stub = mesh.stub(Stub, "inventory")
    await mesh.discovery.ready()
    await eventually(
        lambda: len(mesh._channels["inventory"]._endpoints) == instances,
        timeout=30,
        what=f"{instances} instance(s) in the client's view",
    )
    return stub


async def test_breaker_opens_fails_fast_half_opens_and_closes(flaky, client) -> None:
    backend = flaky()
    mesh = await client(breaker_min_calls=10, breaker_open=1.0)
    stub = await stub_of(mesh, 1)
    assert await outcome(stub) == ("OK", "")

    backend.set("unavailable")

    async def opened() -> bool:
        code, details = await outcome(stub)
        assert code == "UNAVAILABLE", (code, details)
        return metric(mesh, "mesh_breaker_state") == 1

    await eventually(opened, timeout=60, interval=0.01, what="the breaker opening")
    assert metric(mesh, "mesh_breaker_transitions_total", state="open") >= 1

    # Open: calls fail at once, with the breaker named, and never reach the instance.
    async def fails_fast() -> bool:
        before = backend.attempts
        code, details = await outcome(stub)
        return (
            code == "UNAVAILABLE"
            and "circuit breaker of inventory is open" in details
            and backend.attempts == before
        )

    await eventually(fails_fast, timeout=30, interval=0.01, what="a fail-fast call")

    # Recovery: after the open time a trial call goes through, succeeds and closes it.
    backend.set("ok")

    async def closed() -> bool:
        return await outcome(stub) == ("OK", "")

    await eventually(closed, timeout=60, interval=0.05, what="a call succeeding again")
    assert metric(mesh, "mesh_breaker_state") == 0
    assert metric(mesh, "mesh_breaker_transitions_total", state="half_open") >= 1
    assert metric(mesh, "mesh_breaker_transitions_total", state="closed") >= 1
    assert [await outcome(stub) for _ in range(10)] == [("OK", "")] * 10


async def test_an_endpoint_failing_five_times_in_a_row_is_ejected_and_comes_back(
    flaky, client
) -> None:
    bad, good = flaky(), flaky()
    mesh = await client(
        breaker=False, ejection_base=5.0, ejection_interval=0.5, ejection_consecutive=5
    )
    stub = await stub_of(mesh, 2)

    async def both_serve() -> bool:
        seen = {await served_by(stub) for _ in range(10)}
        return seen == {bad.id, good.id}

    await eventually(both_serve, timeout=30, what="both instances answering")

    bad.set("internal")
    failures: list[str] = []

    async def ejected() -> bool:
        code, _ = await outcome(stub)
        if code != "OK":
            failures.append(code)
        return metric(mesh, "mesh_endpoints_ejected") == 1

    await eventually(ejected, timeout=60, interval=0.01, what="the failing endpoint ejected")
    assert metric(mesh, "mesh_endpoint_ejections_total") == 1
    assert set(failures) == {"INTERNAL"} and len(failures) >= 5, failures
    # Ejected: the healthy instance serves every call.
    assert [await served_by(stub) for _ in range(10)] == [good.id] * 10

    # The ejection ends (base x 1); the instance, healthy again, serves again.
    bad.set("ok")

    async def back() -> bool:
        return metric(mesh, "mesh_endpoints_ejected") == 0 and bad.id in {
            await served_by(stub) for _ in range(10)
        }

    await eventually(back, timeout=60, interval=0.1, what="the ejected endpoint back")
    assert metric(mesh, "mesh_endpoint_ejections_total") == 1


async def test_retry_throttling_bounds_the_attempts_on_a_failing_backend(flaky, client) -> None:
    backend = flaky()
    mesh = await client(breaker=False)
    stub = await stub_of(mesh, 1)
    assert await outcome(stub) == ("OK", "")
    backend.set("unavailable")
    before, calls = backend.attempts, 60
    for _ in range(calls):
        code, _ = await outcome(stub)
        assert code == "UNAVAILABLE"
    attempts = backend.attempts - before
    # GetStock is NO_SIDE_EFFECTS: retryPolicy allows 3 attempts a call (180 here). The
    # throttle (gRFC A6: maxTokens 10, tokenRatio 0.1) stops retrying once its tokens are
    # at half: a few retries at first, then one attempt per call.
    assert calls <= attempts <= 1.1 * calls, attempts
    backend.set("ok")
    assert await outcome(stub) == ("OK", "")


async def test_the_bulkhead_refuses_calls_beyond_its_limit(flaky, client) -> None:
    backend = flaky()
    mesh = await client(max_in_flight=2)
    stub = await stub_of(mesh, 1)
    assert await outcome(stub) == ("OK", "")
    backend.set("hang")
    held = [asyncio.ensure_future(outcome(stub)) for _ in range(2)]
    await eventually(lambda: mesh._channels["inventory"].guard.bulkhead.in_flight == 2)
    code, details = await outcome(stub)
    assert code == "RESOURCE_EXHAUSTED" and "bulkhead of inventory is full" in details
    assert metric(mesh, "mesh_bulkhead_rejected_total") == 1
    backend.set("ok")
    assert await asyncio.gather(*held) == [("OK", "")] * 2
    assert await outcome(stub) == ("OK", "")
    assert metric(mesh, "mesh_bulkhead_rejected_total") == 1


async def test_hedging_answers_from_another_instance_when_one_hangs(flaky, client) -> None:
    hanging, fine = flaky(), flaky()
    mesh = await client(hedging=True, hedge_delay=0.05)
    stub = await stub_of(mesh, 2)

    async def both_serve() -> bool:
        return {await served_by(stub) for _ in range(10)} == {hanging.id, fine.id}

    await eventually(both_serve, timeout=30, what="both instances answering")
    hanging.set("hang")
    # GetStock is NO_SIDE_EFFECTS: a call whose first attempt went to the hanging instance
    # is sent again after 50 ms, to the other, whose answer wins. Without the hedge these
    # calls would wait for their deadline.
    answered = [await served_by(stub) for _ in range(6)]
    assert answered == [fine.id] * 6, answered
    assert metric(mesh, "mesh_hedges_total") >= 1
    hanging.set("ok")
