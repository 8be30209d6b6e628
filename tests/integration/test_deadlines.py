"""Deadlines across a real hop: client -> order (subprocess) -> inventory (a slow stand-in).

PlaceOrder checks its SKUs with inventory's GetStock before accepting the order: that
synchronous hop is the one slowed down here.

The stand-in is served in this process by the real runtime (mTLS, intentions, deadline
policy), registered in Consul as `inventory`, so the order service finds it by discovery.
It records the time each call had left, which shows what the order service propagated.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from devstack.consul import ConsulAgent
from devstack.nats import NatsServer
from meshkit import Mesh, serve
from meshkit.mesh import open_mesh
from meshkit.security.certificates import load_or_create_ca
from meshkit.security.identity import SpiffeId
from shop.common.v1 import address_pb2, line_item_pb2, money_pb2
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shop.order.v1 import order_pb2, order_pb2_grpc
from tests.conftest import Launcher, mesh_config, start_consul, wait_passing
from tests.integration.direct import leaf_channel

pytestmark = pytest.mark.integration

LOOKUP_DELAY = 3.0


class SlowInventory(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self) -> None:
        self.time_left: list[float] = []

    async def GetStock(self, request, context):  # type: ignore[no-untyped-def]
        self.time_left.append(context.time_remaining())
        await asyncio.sleep(LOOKUP_DELAY)
        return inventory_pb2.GetStockResponse(
            stock=inventory_pb2.StockLevel(sku=request.sku, available=10)
        )


@pytest.fixture(scope="module")
def own_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("deadline-state")
    load_or_create_ca(state / "ca")
    return state


@pytest.fixture(scope="module")
def own_nats(own_state: Path) -> Iterator[NatsServer]:
    server = NatsServer(store_dir=own_state / "nats").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def own_consul(own_state: Path) -> Iterator[ConsulAgent]:
    agent = start_consul(own_state, own_state / "consul.log")
    yield agent
    agent.stop()


@pytest.fixture(scope="module")
def slow_inventory(own_consul: ConsulAgent, own_state: Path) -> Iterator[SlowInventory]:
    """Served on an event loop of its own thread: the fixtures that start processes block
    the tests' loop for seconds, and Consul's 1s health checks must still pass meanwhile."""
    servicer = SlowInventory()

    async def setup(mesh: Mesh) -> None:
        mesh.add_service(servicer)

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    config = mesh_config("inventory", own_consul, own_state)
    thread = threading.Thread(
        target=loop.run_until_complete, args=(serve(config, setup, stop),), daemon=True
    )
    thread.start()
    wait_passing(own_consul, "inventory")
    yield servicer
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=30)
    loop.close()


@pytest.fixture(scope="module")
def order(
    own_consul: ConsulAgent, own_nats: NatsServer, own_state: Path, slow_inventory: SlowInventory
) -> Iterator[str]:
    launcher = Launcher(own_consul, own_nats, own_state)
    proc = launcher.start("order")
    wait_passing(own_consul, "order")
    yield proc.address
    launcher.stop_all()


@pytest.fixture
async def client(own_consul: ConsulAgent, own_state: Path, order: str) -> AsyncIterator[Mesh]:
    mesh, _ = await open_mesh(mesh_config("operator", own_consul, own_state))
    yield mesh
    await mesh.close()


def place_order_request() -> order_pb2.PlaceOrderRequest:
    return order_pb2.PlaceOrderRequest(
        customer_id="c-1",
        items=[
            line_item_pb2.LineItem(
                sku="SKU-MOUSE",
                quantity=1,
                unit_price=money_pb2.Money(currency_code="EUR", units=10),
            )
        ],
        shipping_address=address_pb2.Address(
            recipient="A. Tester", lines=["Hauptstr. 1"], city="Berlin", postal_code="10115",
            country_code="DE",
        ),
        payment_token="tok_visa",
        idempotency_key=f"deadline-{time.monotonic_ns()}",
    )  # fmt: skip


async def test_a_slow_downstream_fails_the_call_within_its_budget_and_sees_less_time(
    client: Mesh, slow_inventory: SlowInventory
) -> None:
    stub = client.stub(order_pb2_grpc.OrderServiceStub, "order")
    await client.discovery.ready()
    start = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.PlaceOrder(place_order_request(), timeout=1.0)
    took = time.monotonic() - start
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err.value.details()
    assert took < 1.5, f"the call took {took:.2f}s with a 1s budget"
    # The order service passed on what was left of the 1s, not its own 10s default.
    assert slow_inventory.time_left, "the order service never reached inventory"
    assert 0.5 < slow_inventory.time_left[-1] < 1.0, slow_inventory.time_left


async def test_without_a_caller_deadline_the_method_default_bounds_the_hops(
    client: Mesh, slow_inventory: SlowInventory
) -> None:
    """No timeout from the caller: the client interceptor applies PlaceOrder's default
    (10s in infra/mesh/mesh.toml); the hop to inventory gets what is left of it, capped by
    GetStock's own default (5s), never more."""
    stub = client.stub(order_pb2_grpc.OrderServiceStub, "order")
    await client.discovery.ready()
    calls_before = len(slow_inventory.time_left)
    await stub.PlaceOrder(place_order_request())  # answers once the slow step returns
    assert len(slow_inventory.time_left) == calls_before + 1
    assert 4 < slow_inventory.time_left[-1] <= 5.05, slow_inventory.time_left  # clock jitter


@pytest.fixture
async def raw_channel(
    own_consul: ConsulAgent, own_state: Path, order: str
) -> AsyncIterator[grpc.aio.Channel]:
    """A channel with the operator's certificate and none of the mesh's client interceptors."""
    ca = load_or_create_ca(own_state / "ca")
    trust_domain = str(own_consul.get("/v1/agent/connect/ca/roots")["TrustDomain"])  # type: ignore[index]
    async with leaf_channel(
        order, ca, ca.cert_pem, SpiffeId(trust_domain, "operator"), "order"
    ) as ch:
        yield ch


@pytest.mark.parametrize(
    ("timeout", "code", "message"),
    [
        (None, grpc.StatusCode.INVALID_ARGUMENT, "needs a deadline (at most 30s)"),
        (120.0, grpc.StatusCode.INVALID_ARGUMENT, "exceeds its maximum of 30s"),
    ],
)
async def test_the_server_rejects_a_missing_or_too_long_deadline(
    raw_channel: grpc.aio.Channel, timeout: float | None, code: grpc.StatusCode, message: str
) -> None:
    stub = order_pb2_grpc.OrderServiceStub(raw_channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetOrder(order_pb2.GetOrderRequest(order_id="o-1"), timeout=timeout)
    assert err.value.code() == code
    assert message in (err.value.details() or "")


async def test_within_policy_the_call_goes_through(raw_channel: grpc.aio.Channel) -> None:
    stub = order_pb2_grpc.OrderServiceStub(raw_channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetOrder(order_pb2.GetOrderRequest(order_id="no-such-order"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
