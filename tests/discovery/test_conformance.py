"""One discovery suite, passed by every registry's backend: Consul, Eureka, DNS SRV.

Each backend gets a stack of its own (``Stack(discovery=...)``: Consul, and the Eureka
server for ``eureka``; DNS is Consul's DNS interface standing in for Kubernetes'), real
instances (``tests.discovery.instance``) registered by the runtime, and a client mesh
(``order``'s identity) that finds them through its discovery. What each must do:
register; find the healthy set; spread calls round robin over the instances through the
mesh's channel; drop an instance that went away within the backend's own promise
(``Discovery.drop_within``), and one whose health says NOT_SERVING; keep the last known
set while the registry is down.

The tests of a backend share its stack and run in order: the outage test, which stops the
registry, is the last.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from devstack.services import ServiceProcess
from devstack.stack import Stack
from meshkit.discovery import Endpoints, Registration
from meshkit.mesh import Mesh, open_mesh
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

SERVICE = "inventory"
MODULE = "tests.discovery.instance"
SKU = "SKU-BENCH"


@pytest.fixture(scope="module", params=["consul", "eureka", "dns"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The backend's stack, with two instances of ``inventory`` healthy in its registry."""
    kind = request.param
    stack = Stack(tmp_path_factory.mktemp(f"discovery-{kind}"), nats=False, discovery=kind)
    try:
        stack.start()
        stack.start_services([SERVICE, SERVICE], module=MODULE, wait_passing=False)
        stack.wait_passing(SERVICE, count=2, timeout=60)
        yield stack
    finally:
        stack.close()


def instances(stack: Stack) -> list[ServiceProcess]:
    return [p for p in stack.launcher.started if p.running]


def ports(endpoints: Endpoints | None) -> set[int]:
    return {e.port for e in endpoints or ()}


@pytest.fixture(scope="module")
async def client(stack: Stack) -> AsyncIterator[Mesh]:
    """A mesh with ``order``'s identity (allowed to call inventory), in the stack; its
    watches live as long as the backend's tests."""
    mesh, _ = await open_mesh(stack.mesh_config("order"))
    yield mesh
    await mesh.close()


def registered_in(stack: Stack) -> dict[int, dict[str, str]]:
    """What the registry itself lists for ``inventory``: port -> metadata."""
    if stack.discovery == "eureka":
        assert stack.eureka is not None
        return {int(i["port"]["$"]): i["metadata"] for i in stack.eureka.instances(SERVICE)}
    assert stack.consul is not None
    passing = stack.consul.get(f"/v1/health/service/{SERVICE}?passing=1")
    assert isinstance(passing, list)
    return {e["Service"]["Port"]: e["Service"]["Meta"] for e in passing}


async def served_by(stub: inventory_pb2_grpc.InventoryServiceStub) -> str:
    call = stub.GetStock(inventory_pb2.GetStockRequest(sku=SKU), timeout=10)
    await call
    return dict(await call.trailing_metadata())["served-by"]


async def test_instances_register_with_their_port_and_metadata(stack: Stack) -> None:
    listed = registered_in(stack)
    running = {p.port: p.info for p in instances(stack)}
    assert set(listed) == set(running)
    for port, meta in listed.items():
        assert meta["version"]
        assert meta["metrics_port"] == str(running[port]["metrics_port"])
        if stack.discovery == "eureka":  # Consul has it in the check instead
            assert meta["health_port"] == str(running[port]["health_port"])


async def test_finds_the_healthy_set(stack: Stack, client: Mesh) -> None:
    found = await client.discovery.find(SERVICE, timeout=30)
    assert ports(found) == {p.port for p in instances(stack)}
    assert all(e.address == "127.0.0.1" for e in found)


async def test_calls_go_round_robin_over_the_instances(stack: Stack, client: Mesh) -> None:
    stub = client.stub(inventory_pb2_grpc.InventoryServiceStub, SERVICE)
    await client.discovery.ready(30)
    ids = {p.info["instance_id"] for p in instances(stack)}
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while seen != ids:  # every instance's connection is up
        seen.add(await served_by(stub))
        assert time.monotonic() < deadline, f"only {seen} answered, not {ids}"
    spread = Counter([await served_by(stub) for _ in range(40)])
    # round robin alternates: each of the two answers half (at least a quarter, here)
    assert set(spread) == ids and min(spread.values()) >= 10, spread


async def test_an_instance_gone_is_dropped_within_the_promise(stack: Stack, client: Mesh) -> None:
    extra = stack.start_service(SERVICE, module=MODULE, wait_passing=False)
    stack.wait_passing(SERVICE, count=3, timeout=60)
    watch = client.discovery.watch(SERVICE)
    await eventually(lambda: extra.port in ports(watch.value), timeout=30, what="the third found")
    extra.kill()  # a crash: no deregistration, the registry's own health/lease must tell
    killed = time.monotonic()
    promise = client.discovery.drop_within
    await eventually(
        lambda: extra.port not in ports(watch.value),
        timeout=promise,
        what=f"the killed instance dropped within {promise:g}s ({stack.discovery})",
    )
    print(f"{stack.discovery}: dropped {time.monotonic() - killed:.1f}s after the kill")
    assert ports(watch.value) == {p.port for p in instances(stack)}


async def test_health_decides_an_instance_not_serving_leaves_the_set(
    stack: Stack, client: Mesh
) -> None:
    """Registered by the runtime (as ``inventory``, in process), with a health service the
    test controls: NOT_SERVING takes it out of the healthy set (Consul's check; Eureka's
    status DOWN, from the same health), SERVING brings it back, the end deregisters it."""
    health_server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, health_server)
    port = health_server.add_insecure_port("127.0.0.1:0")
    await health_server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    owner, _ = await open_mesh(stack.mesh_config(SERVICE))
    watch = client.discovery.watch(SERVICE)
    promise = client.discovery.drop_within
    registration = Registration(SERVICE, f"{SERVICE}-health-{port}", "127.0.0.1", port, port, "t")
    try:
        async with owner.discovery.registered(registration):
            await eventually(lambda: port in ports(watch.value), timeout=30, what="it found")
            await servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
            await eventually(lambda: port not in ports(watch.value), timeout=promise)
            await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
            await eventually(lambda: port in ports(watch.value), timeout=promise)
    finally:
        await owner.close()
        await health_server.stop(0)
    await eventually(lambda: port not in ports(watch.value), timeout=promise)


async def test_the_last_known_set_survives_the_registrys_outage(stack: Stack, client: Mesh) -> None:
    stub = client.stub(inventory_pb2_grpc.InventoryServiceStub, SERVICE)
    watch = client.discovery.watch(SERVICE)
    await eventually(lambda: len(ports(watch.value)) == 2, timeout=30, what="two instances")
    before = watch.value
    ids = {p.info["instance_id"] for p in instances(stack)}
    # The registry goes away: Eureka for eureka; Consul (its catalog, its DNS) otherwise.
    registry = stack.eureka if stack.discovery == "eureka" else stack.consul
    assert registry is not None
    registry.stop()
    await eventually(lambda: client.discovery.last_error, timeout=30, what="the registry seen down")
    # Still the same set, and calls still reach both instances: nothing asks the registry.
    assert watch.value == before
    spread = Counter([await served_by(stub) for _ in range(20)])
    assert set(spread) <= ids and sum(spread.values()) == 20, spread
    assert watch.value == before
