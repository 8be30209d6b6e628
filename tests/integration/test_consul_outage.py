"""When Consul is unreachable, the last known healthy set keeps serving."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.consul import ConsulAgent
from devstack.nats import NatsServer
from meshkit.mesh import open_mesh
from meshkit.security.certificates import load_or_create_ca
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from tests.conftest import Launcher, mesh_config, start_consul, wait_passing

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def outage_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("outage-state")
    load_or_create_ca(state / "ca")
    return state


@pytest.fixture(scope="module")
def own_nats(outage_state: Path) -> Iterator[NatsServer]:
    server = NatsServer(store_dir=outage_state / "nats").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def doomed_consul(outage_state: Path) -> Iterator[ConsulAgent]:
    agent = start_consul(outage_state, outage_state / "consul.log")
    yield agent
    agent.stop()


async def test_calls_keep_flowing_while_consul_is_down(
    doomed_consul: ConsulAgent, own_nats: NatsServer, outage_state: Path
) -> None:
    launcher = Launcher(doomed_consul, own_nats, outage_state)
    try:
        launcher.start("inventory")
        wait_passing(doomed_consul, "inventory")
        mesh, _ = await open_mesh(mesh_config("order", doomed_consul, outage_state))
        try:
            stub = mesh.stub(inventory_pb2_grpc.InventoryServiceStub, "inventory")
            await mesh.discovery.ready()
            request = inventory_pb2.GetStockRequest(sku="SKU-MOUSE")
            assert (await stub.GetStock(request)).stock.available > 0

            doomed_consul.stop()  # both the client's and the server's Consul are gone
            for _ in range(30):  # 3 s without Consul
                assert (await stub.GetStock(request)).stock.available > 0
                await asyncio.sleep(0.1)
        finally:
            await mesh.close()
    finally:
        launcher.stop_all()
