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
from tests.conftest import Launcher
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


async def served_by(stub: inventory_pb2_grpc.InventoryServiceStub) -> str:
    call = stub.GetStock(inventory_pb2.GetStockRequest(sku="SKU-MOUSE"))
    await call
    return dict(await call.trailing_metadata())["served-by"]


async def spread(stub: inventory_pb2_grpc.InventoryServiceStub, calls: int) -> Counter[str]:
    """Which instance answered each of ``calls`` calls in a row (all must succeed)."""
    return Counter([await served_by(stub) for _ in range(calls)])


async def until_both_serve(
    stub: inventory_pb2_grpc.InventoryServiceStub, ids: set[str], timeout: float = 30
) -> None:
    """Calls until every instance in ``ids`` has answered one (their connections are up)."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while seen != ids:
        seen.add(await served_by(stub))
        assert time.monotonic() < deadline, f"only {seen} answered, not {ids}"


async def test_two_instances_share_traffic_and_a_killed_one_is_dropped_within_seconds(
    services: dict[str, ServiceProcess], launcher: Launcher, consul: ConsulAgent, mesh_as
) -> None:
    first = services["inventory"]
    second = launcher.start("inventory")
    consul.wait_passing("inventory", count=2)
    ids = {first.info["instance_id"], second.info["instance_id"]}

    mesh = await mesh_as("order")
    stub = mesh.stub(inventory_pb2_grpc.InventoryServiceStub, "inventory")
    await mesh.discovery.ready()

    # Both instances receive traffic: round robin over Consul's passing set alternates,
    # so of 40 calls each instance answers about half (at least a quarter, here).
    await until_both_serve(stub, ids)
    seen = await spread(stub, 40)
    assert set(seen) == ids and min(seen.values()) >= 10, seen

    # A crash (SIGKILL: no deregistration). Calls keep flowing; failures, if any, stop
    # within the window, and after it every call is answered by the survivor: at least 50
    # calls, over at least 5 seconds past the window.
    window, watch = 3.0, 8.0
    second.kill()
    killed_at = time.monotonic()
    failures: list[float] = []
    answered_after: Counter[str] = Counter()
    while (since := time.monotonic() - killed_at) < watch or sum(answered_after.values()) < 50:
        assert since < 120, (failures, answered_after)
        try:
            who = await served_by(stub)
        except grpc.aio.AioRpcError:
            failures.append(time.monotonic() - killed_at)
        else:
            if time.monotonic() - killed_at > window:
                answered_after[who] += 1
        await asyncio.sleep(0.01)
    assert all(t < window for t in failures), failures
    assert set(answered_after) == {first.info["instance_id"]}, answered_after

    # Consul's check notices the crash and the instance leaves the passing set.
    def only_the_survivor_passes() -> bool:
        passing = consul.get("/v1/health/service/inventory?passing=1")
        return [e["Service"]["ID"] for e in passing] == [first.info["instance_id"]]  # type: ignore[union-attr]

    await eventually(
        only_the_survivor_passes, timeout=30, interval=0.2, what="the killed instance leaving"
    )


async def test_graceful_stop_deregisters_and_loses_no_call(
    services: dict[str, ServiceProcess], launcher: Launcher, consul: ConsulAgent, mesh_as
) -> None:
    survivor = services["inventory"].info["instance_id"]
    extra = launcher.start("inventory")
    consul.wait_passing("inventory", count=2)
    mesh = await mesh_as("order")
    stub = mesh.stub(inventory_pb2_grpc.InventoryServiceStub, "inventory")
    await mesh.discovery.ready()
    await until_both_serve(stub, {survivor, extra.info["instance_id"]})  # traffic on both

    # Calls all through the stop (SIGTERM: NOT_SERVING, deregistration, drain, exit)
    # and after it: not one fails.
    stopper = asyncio.get_running_loop().run_in_executor(None, extra.stop)
    failures: list[str] = []
    during: Counter[str] = Counter()
    while not stopper.done():
        try:
            during[await served_by(stub)] += 1
        except grpc.aio.AioRpcError as err:
            failures.append(f"{err.code().name}: {err.details()}")
        await asyncio.sleep(0.005)
    assert await stopper == 0  # exited of its own accord, not killed after the timeout
    after: Counter[str] = Counter()
    for _ in range(20):
        try:
            after[await served_by(stub)] += 1
        except grpc.aio.AioRpcError as err:
            failures.append(f"{err.code().name}: {err.details()}")
    assert failures == [], failures
    assert sum(during.values()) >= 3, during  # calls were in flight while it stopped
    assert after == Counter({survivor: 20}), after
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
