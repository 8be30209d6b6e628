"""The order flow with Eureka as the registry (``make run DISCOVERY=eureka``): the four
services register in a real Eureka server and find each other there, none of them in
Consul's catalog (Consul stays the security plane: CA, ACL tokens, intentions); an order
placed through the mesh is confirmed, and so is the one of the README's grpcurl
walkthrough, run as written against this stack."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from collections.abc import Iterator

import pytest

from devstack.orders import CONFIRMED, Orders, order_request
from devstack.stack import DOMAIN_SERVICES, Stack
from meshkit.mesh import open_mesh
from meshkit.tools.certs import main as mesh_cli
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from tests.support.polling import eventually
from tests.support.readme import walk_readme

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


def test_the_readme_grpcurl_walkthrough_confirms_an_order(stack: Stack) -> None:
    """As `make run` does: the operator's certificate, then the README's calls (the
    services' fixed ports mapped to this stack's)."""
    assert stack.consul is not None
    stack.consul.service_token("operator")
    args = ["--state-dir", str(stack.state), "certs", "issue", "operator"]
    mesh_cli([*args, "--consul", stack.consul.http_addr])
    addresses = {name: proc.address for name, proc in stack.services.items()}
    walk_readme(addresses, stack.state / "certs" / "operator")


def eureka_call(method: str, url: str, body: object | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(resp.status)


async def test_a_forged_eureka_entry_reaches_no_impostor(stack: Stack) -> None:
    """Eureka has no authentication: anyone on the host may register an ``inventory``
    at payment's port. Callers still check the server's certificate for inventory's name,
    so that entry costs a failed handshake, and every call is served by inventory."""
    assert stack.eureka is not None
    payment, inventory = stack.services["payment"], stack.services["inventory"]
    forged = {
        "instance": {
            "instanceId": "inventory-forged",
            "hostName": "127.0.0.1",
            "app": "INVENTORY",
            "ipAddr": "127.0.0.1",
            "status": "UP",
            "port": {"$": payment.port, "@enabled": "true"},
            "dataCenterInfo": {
                "@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
                "name": "MyOwn",
            },
            "leaseInfo": {"durationInSecs": 60},
        }
    }
    apps = f"{stack.eureka.url}/apps/INVENTORY"
    eureka_call("POST", apps, forged)
    mesh, _ = await open_mesh(stack.mesh_config("order"))
    try:
        stub = mesh.stub(inventory_pb2_grpc.InventoryServiceStub, "inventory")
        watch = mesh.discovery.watch("inventory")
        await eventually(
            lambda: payment.port in {e.port for e in watch.value or ()},
            timeout=30,
            what="the forged entry in the caller's set",
        )
        served: Counter[str] = Counter()
        for _ in range(20):
            call = stub.GetStock(inventory_pb2.GetStockRequest(sku="SKU-MOUSE"), timeout=10)
            await call
            served[dict(await call.trailing_metadata())["served-by"]] += 1
        assert set(served) == {inventory.info["instance_id"]}, served
    finally:
        eureka_call("DELETE", f"{apps}/inventory-forged")
        await mesh.close()
