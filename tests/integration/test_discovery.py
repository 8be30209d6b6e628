"""Discovery through Consul: instances found, traffic spread, failover within seconds."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import grpc
import pytest

from devstack.consul import ConsulAgent
from devstack.services import ServiceProcess
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from tests.conftest import Launcher, wait_passing

pytestmark = pytest.mark.integration


async def served_by(stub: inventory_pb2_grpc.InventoryServiceStub) -> str:
    call = stub.GetStock(inventory_pb2.GetStockRequest(sku="SKU-MOUSE"))
    await call
    return dict(await call.trailing_metadata())["served-by"]


async def test_two_instances_share_traffic_and_a_killed_one_is_dropped_within_seconds(
    services: dict[str, ServiceProcess], launcher: Launcher, consul: ConsulAgent, mesh_as
) -> None:
    first = services["inventory"]
    second = launcher.start("inventory")
    wait_passing(consul, "inventory", count=2)

    mesh = await mesh_as("order")
    stub = mesh.stub(inventory_pb2_grpc.InventoryServiceStub, "inventory")
    await mesh.discovery.ready()

    # Both instances receive traffic (round robin over Consul's passing set).
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + 10
    while len(seen) < 2 and time.monotonic() < deadline:
        seen[await served_by(stub)] += 1
    assert set(seen) == {first.info["instance_id"], second.info["instance_id"]}, seen

    # A crash (SIGKILL: no deregistration). Calls keep flowing; failures, if any, stop
    # within the window, and after it every call is answered by the survivor.
    second.kill()
    killed_at = time.monotonic()
    failures: list[float] = []
    answered_after: Counter[str] = Counter()
    while time.monotonic() - killed_at < 8:
        try:
            who = await served_by(stub)
        except grpc.aio.AioRpcError:
            failures.append(time.monotonic() - killed_at)
        else:
            if time.monotonic() - killed_at > 3:
                answered_after[who] += 1
        await asyncio.sleep(0.01)
    assert all(t < 3 for t in failures), failures
    assert set(answered_after) == {first.info["instance_id"]}
    assert sum(answered_after.values()) > 50

    # Consul's check notices the crash and the instance leaves the passing set.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        passing = consul.get("/v1/health/service/inventory?passing=1")
        if [e["Service"]["ID"] for e in passing] == [first.info["instance_id"]]:  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("the killed instance stayed in Consul's passing set")


async def test_graceful_stop_deregisters_and_loses_no_call(
    services: dict[str, ServiceProcess], launcher: Launcher, consul: ConsulAgent, mesh_as
) -> None:
    extra = launcher.start("inventory")
    wait_passing(consul, "inventory", count=2)
    mesh = await mesh_as("order")
    stub = mesh.stub(inventory_pb2_grpc.InventoryServiceStub, "inventory")
    await mesh.discovery.ready()

    stopper = asyncio.get_running_loop().run_in_executor(None, extra.stop)
    failures = 0
    calls = 0
    start = time.monotonic()
    while time.monotonic() - start < 4:
        try:
            await served_by(stub)
        except grpc.aio.AioRpcError:
            failures += 1
        calls += 1
        await asyncio.sleep(0.005)
    assert await stopper == 0
    assert failures == 0 and calls > 100
    ids = [e["Service"]["ID"] for e in consul.get("/v1/health/service/inventory")]  # type: ignore[union-attr]
    assert extra.info["instance_id"] not in ids


async def test_a_service_with_no_healthy_instance_is_unavailable(mesh_as) -> None:
    mesh = await mesh_as("order")
    stub = mesh.stub(inventory_pb2_grpc.InventoryServiceStub, "no-such-service")
    await mesh.discovery.ready()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetStock(inventory_pb2.GetStockRequest(sku="x"))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "no healthy instance of no-such-service" in (err.value.details() or "")
