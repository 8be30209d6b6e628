"""When Consul is unreachable, the last known healthy set keeps serving."""

from __future__ import annotations

import asyncio

import pytest

from meshkit.mesh import open_mesh
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from tests.conftest import StackFactory

pytestmark = pytest.mark.integration


async def test_calls_keep_flowing_while_consul_is_down(own_stack: StackFactory) -> None:
    stack = own_stack("inventory", label="outage")  # a Consul of its own, to stop
    assert stack.consul is not None
    mesh, _ = await open_mesh(stack.mesh_config("order"))
    try:
        stub = mesh.stub(inventory_pb2_grpc.InventoryServiceStub, "inventory")
        await mesh.discovery.ready()
        request = inventory_pb2.GetStockRequest(sku="SKU-MOUSE")
        assert (await stub.GetStock(request)).stock.available > 0

        stack.consul.stop()  # both the client's and the server's Consul are gone
        for _ in range(30):  # 3 s without Consul
            assert (await stub.GetStock(request)).stock.available > 0
            await asyncio.sleep(0.1)
    finally:
        await mesh.close()
