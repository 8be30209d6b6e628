"""Zero trust by default (issue 14, items 3 and 5), against real Consul intentions and the
real services: no intention means deny, the gateway may call only the methods it routes
(L7 intentions), and the end user is taken only from the edge."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import grpc
import pytest

from devstack.consul import ConsulAgent
from devstack.intentions import set_intention
from devstack.nats import NatsServer
from devstack.services import ServiceProcess
from meshkit import Mesh
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shop.order.v1 import order_pb2, order_pb2_grpc
from tests.conftest import mesh_config
from tests.support.inthread import served_in_thread
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

MeshAs = Callable[[str], Awaitable[Mesh]]
SUBJECT = "x-shop-subject"  # infra/mesh/mesh.toml [end_user] subject_metadata


class StandIn(inventory_pb2_grpc.InventoryServiceServicer):
    async def GetStock(self, request, context):  # type: ignore[no-untyped-def]
        return inventory_pb2.GetStockResponse(
            stock=inventory_pb2.StockLevel(sku=request.sku, available=1)
        )


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def fresh_service(
    consul: ConsulAgent, nats_server: NatsServer, state_dir: Path
) -> Iterator[tuple[str, list[str]]]:
    """A service under a name no intention names, served by the real runtime on a loop of
    its own thread; its name and the warnings the authorization logged at its start."""
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    records = Records()
    logger = logging.getLogger("mesh.authorization")  # setup_logging replaces root's only
    logger.addHandler(records)

    config = mesh_config(name, consul, state_dir, nats_server)
    try:
        with served_in_thread(config, StandIn(), consul.wait_passing):
            yield name, records.lines
    finally:
        logger.removeHandler(records)


async def code_of(call: Awaitable[object]) -> tuple[grpc.StatusCode, str]:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


async def test_no_intention_means_deny_until_one_allows(
    fresh_service: tuple[str, list[str]], consul: ConsulAgent, mesh_as: MeshAs
) -> None:
    name, warnings = fresh_service
    assert any(name in w and "no intentions" in w for w in warnings), warnings
    mesh = await mesh_as("operator")
    stub = mesh.stub(inventory_pb2_grpc.InventoryServiceStub, name)
    request = inventory_pb2.GetStockRequest(sku="SKU-MOUSE")
    await mesh.discovery.ready()
    code, details = await code_of(stub.GetStock(request))
    assert code == grpc.StatusCode.PERMISSION_DENIED, details
    assert "no intention matches; default is deny" in details

    set_intention(consul, name, {"operator": "allow", "*": "deny"})

    async def served() -> bool:
        return (await code_of(stub.GetStock(request)))[0] == grpc.StatusCode.OK

    await eventually(served, timeout=10, what=f"operator allowed to call {name}")


async def test_the_gateway_may_call_only_the_inventory_methods_it_routes(
    services: dict[str, ServiceProcess], mesh_as: MeshAs
) -> None:
    gateway = await mesh_as("gateway")
    stub = gateway.stub(inventory_pb2_grpc.InventoryServiceStub, "inventory")
    await gateway.discovery.ready()
    answer = await stub.GetStock(inventory_pb2.GetStockRequest(sku="SKU-MOUSE"))
    assert answer.stock.sku == "SKU-MOUSE"
    for call in (
        stub.AdjustStock(inventory_pb2.AdjustStockRequest(sku="SKU-MOUSE", delta=1000)),
        stub.CommitStock(inventory_pb2.CommitStockRequest(order_id="o-zt")),
    ):
        code, details = await code_of(call)
        assert code == grpc.StatusCode.PERMISSION_DENIED, details
        assert "gateway may not call" in details and "no permission" in details


async def test_the_end_user_comes_only_from_the_edge(
    services: dict[str, ServiceProcess], mesh_as: MeshAs
) -> None:
    gateway = await mesh_as("gateway")
    operator = await mesh_as("operator")
    as_gateway = gateway.stub(order_pb2_grpc.OrderServiceStub, "order")
    as_operator = operator.stub(order_pb2_grpc.OrderServiceStub, "order")
    await gateway.discovery.ready()
    await operator.discovery.ready()
    request = order_pb2.ListOrdersRequest(page_size=5)

    # The gateway with a subject, the operator without one: served.
    await as_gateway.ListOrders(request, metadata=((SUBJECT, "zt-alice"),))
    await as_operator.ListOrders(request)

    refused = {
        "a subject from another identity": (
            as_operator.ListOrders(request, metadata=((SUBJECT, "zt-alice"),)),
            "operator may not assert x-shop-subject",
        ),
        "an empty subject": (
            as_gateway.ListOrders(request, metadata=((SUBJECT, ""),)),
            "x-shop-subject is empty",
        ),
        "the gateway without a subject": (
            as_gateway.ListOrders(request),
            "gateway must send x-shop-subject",
        ),
        "the gateway without a subject, placing an order": (
            as_gateway.PlaceOrder(order_pb2.PlaceOrderRequest(customer_id="c-1")),
            "gateway must send x-shop-subject",
        ),
    }
    for what, (call, message) in refused.items():
        code, details = await code_of(call)
        assert code == grpc.StatusCode.PERMISSION_DENIED, (what, code, details)
        assert message in details, (what, details)
