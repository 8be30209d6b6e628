"""The order flow with Eureka as the registry (``make run DISCOVERY=eureka``): the four
services register in a real Eureka server and find each other there, none of them in
Consul's catalog (Consul stays the security plane: CA, ACL tokens, intentions); an order
placed through the mesh is confirmed, and so is the one of the README's grpcurl
walkthrough, run as written against this stack."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from devstack.orders import CONFIRMED, Orders, order_request
from devstack.stack import DOMAIN_SERVICES, Stack
from devstack.tools import go_tool
from meshkit.mesh import open_mesh
from meshkit.tools.certs import main as mesh_cli
from tests.integration.test_readme import README_PORTS, readme_grpcurl_calls, split_messages

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
    certs = stack.state / "certs" / "operator"
    gc = [go_tool("grpcurl"), "-cacert", str(certs / "ca.pem"), "-cert", str(certs / "cert.pem")]
    gc += ["-key", str(certs / "key.pem"), "-max-time", "10"]
    order_id, states = "", []
    for call in readme_grpcurl_calls():
        call = [
            stack.services[README_PORTS[a.rsplit(":", 1)[1]]].address
            if a.startswith("127.0.0.1:")
            else a.replace("<order_id from above>", order_id)
            for a in call
        ]
        out = subprocess.run([*gc, *call], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, f"{call}: {out.stderr}"
        if call[-1].endswith("/PlaceOrder"):
            order_id = json.loads(out.stdout)["order"]["order_id"]
        if call[-1].endswith("/WatchOrder"):
            states = [json.loads(m)["order"]["status"] for m in split_messages(out.stdout)]
    assert order_id and states[-1] == "ORDER_STATUS_CONFIRMED", states
