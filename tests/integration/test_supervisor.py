"""The supervisor of ``make run`` on a real stack: a SIGKILLed service comes back (a new
instance, passing in Consul, serving calls); a service that exits at once is given up on
after its restarts, while the others keep running."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from devstack.stack import Stack
from devstack.supervisor import RestartPolicy, Supervisor
from meshkit.mesh import open_mesh
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from tests.conftest import StackFactory
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(module_stack: StackFactory) -> Stack:
    return module_stack("inventory", "shipping")


def passing_ids(stack: Stack, service: str) -> set[str]:
    assert stack.consul is not None
    entries = stack.consul.get(f"/v1/health/service/{service}?passing=1")
    return {e["Service"]["ID"] for e in entries}  # type: ignore[union-attr]


async def test_a_killed_service_is_restarted_passes_in_consul_and_serves(stack: Stack) -> None:
    lines: list[str] = []
    sup = Supervisor.for_stack(stack, RestartPolicy(initial=0.2, burst=3), log=lines.append)
    old = stack.services["inventory"]
    old_id = old.info["instance_id"]
    sup.watch(old)
    mesh, _ = await open_mesh(stack.mesh_config("operator"))
    stub = mesh.stub(inventory_pb2_grpc.InventoryServiceStub, "inventory")
    try:
        with sup.running(0.05):
            old.kill()
            new = await eventually(
                lambda: (
                    sup.restarts("inventory") == 1
                    and sup.state("inventory") == "running"
                    and sup.current("inventory")
                ),
                timeout=30,
                what="a restarted inventory",
            )
            assert new is not old and new.running and stack.services["inventory"] is new
            new_id = new.info["instance_id"]
            assert new_id != old_id
            await eventually(
                lambda: new_id in passing_ids(stack, "inventory"),
                timeout=30,
                what="the new instance passing in Consul",
            )

            async def serves() -> bool:
                try:
                    call = stub.GetStock(inventory_pb2.GetStockRequest(sku="SKU-MOUSE"), timeout=2)
                    await call
                except grpc.aio.AioRpcError:
                    return False
                return dict(await call.trailing_metadata()).get("served-by") == new_id

            await eventually(serves, timeout=30, interval=0.2, what="a call served by it")
        # The new instance outlives the supervisor's thread (it was not started by it).
        await asyncio.sleep(0.5)
        assert new.running
    finally:
        await mesh.close()
    assert lines[0] == "inventory exited with -9; restarting in 0.2 s (attempt 1)", lines
    assert any(line.startswith("inventory is up again") for line in lines), lines


async def test_a_crash_loop_is_given_up_on_while_the_others_keep_running(stack: Stack) -> None:
    lines: list[str] = []
    sup = Supervisor.for_stack(
        stack, RestartPolicy(initial=0.1, burst=2, interval=60.0), log=lines.append
    )
    shipping = sup.watch(stack.services["shipping"])
    # A bad argument: argparse refuses it and the process exits with 2 at once.
    sup.watch(stack.launcher.launch("payment", "--port", "0", "--no-such-flag"))
    with sup.running(0.05):
        await eventually(lambda: sup.given_up == ["payment"], timeout=60, what="given up")
        assert sup.restarts("payment") == 2
        assert sup.state("shipping") == "running" and sup.current("shipping") is shipping
        assert shipping.running and sup.restarts("shipping") == 0
    assert lines[:2] == [
        "payment exited with 2 before it was ready; restarting in 0.1 s (attempt 1)",
        "payment exited with 2 before it was ready; restarting in 0.2 s (attempt 2)",
    ], lines
    assert "a crash loop, not restarting it again" in lines[-1], lines
    assert shipping.running
    assert shipping.info["instance_id"] in passing_ids(stack, "shipping")
