"""The order flow with Eureka as the registry (``make run DISCOVERY=eureka``): the four
services register in a real Eureka server and find each other there, none of them in
Consul's catalog (Consul stays the security plane: CA, ACL tokens, intentions), and an
order placed through the mesh is confirmed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.orders import CONFIRMED, Orders, order_request
from devstack.stack import DOMAIN_SERVICES, Stack
from meshkit.mesh import open_mesh

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("eureka-flow"), discovery="eureka")
    try:
        stack.start()
        stack.start_services(DOMAIN_SERVICES)  # each UP in Eureka
        yield stack
    finally:
        stack.close()


async def test_an_order_is_confirmed_with_eureka_as_the_registry(stack: Stack) -> None:
    assert stack.eureka is not None and stack.consul is not None
    for name in DOMAIN_SERVICES:
        [instance] = stack.eureka.instances(name)
        assert instance["port"]["$"] == stack.services[name].port
    catalog = stack.consul.get("/v1/catalog/services")
    assert isinstance(catalog, dict) and not set(catalog) & set(DOMAIN_SERVICES), catalog

    mesh, _ = await open_mesh(stack.mesh_config("operator"))
    try:
        assert mesh.discovery.kind == "eureka"
        orders = Orders(mesh)
        placed = await orders.place(order_request(("SKU-KEYBOARD", 1), ("SKU-MOUSE", 2)))
        order = await orders.final(placed.order_id)
        assert order.status == CONFIRMED, order.cancel_reason
    finally:
        await mesh.close()
