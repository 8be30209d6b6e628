"""Deadlines across a real hop: client -> order (subprocess) -> inventory (a slow stand-in).

PlaceOrder checks its SKUs with inventory's GetStock before accepting the order: that
synchronous hop is the one slowed down here.

The stand-in is served in this process by the real runtime (mTLS, intentions, deadline
policy), registered in Consul as `inventory`, so the order service finds it by discovery.
It records the time each call had left, which shows what the order service propagated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from devstack.stack import Stack
from meshkit import Mesh
from meshkit.mesh import open_mesh
from meshkit.security.identity import SpiffeId
from shop.common.v1 import address_pb2, line_item_pb2, money_pb2
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shop.order.v1 import order_pb2, order_pb2_grpc
from tests.conftest import StackFactory
from tests.integration.direct import leaf_channel
from tests.support.inthread import served_in_thread

pytestmark = pytest.mark.integration

BUDGET = 2.0  # the caller's deadline, in seconds
SLOW_DELAY = 8.0  # the stand-in's answer when the caller's budget must run out first
LOOKUP_DELAY = 3.0  # its answer otherwise: within GetStock's default deadline
GET_STOCK_DEFAULT = 5.0  # infra/mesh/mesh.toml


class SlowInventory(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self) -> None:
        self.delay = LOOKUP_DELAY
        self.time_left: list[float] = []

    async def GetStock(self, request, context):  # type: ignore[no-untyped-def]
        self.time_left.append(context.time_remaining())
        await asyncio.sleep(self.delay)
        return inventory_pb2.GetStockResponse(
            stock=inventory_pb2.StockLevel(sku=request.sku, available=10)
        )


@pytest.fixture(scope="module")
def own(module_stack: StackFactory) -> Stack:
    """Consul and NATS of this module's own: its `inventory` is the slow stand-in."""
    return module_stack(label="deadline")


@pytest.fixture(scope="module")
def slow_inventory(own: Stack) -> Iterator[SlowInventory]:
    """Served on an event loop of its own thread: the fixtures that start processes block
    the tests' loop for seconds, and Consul's 1s health checks must still pass meanwhile."""
    servicer = SlowInventory()
    with served_in_thread(own.mesh_config("inventory"), servicer, own.wait_passing):
        yield servicer


@pytest.fixture(scope="module")
def order(own: Stack, slow_inventory: SlowInventory) -> Iterator[str]:
    proc = own.start_service("order")  # ready and passing in Consul
    yield proc.address
    own.launcher.stop_all()  # before the stand-in goes


@pytest.fixture
async def client(own: Stack, order: str) -> AsyncIterator[Mesh]:
    mesh, _ = await open_mesh(own.mesh_config("operator"))
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


async def calls_seen(inventory: SlowInventory, more_than: int, timeout: float = 10.0) -> int:
    """How many calls the stand-in has seen, once it has seen more than ``more_than``
    (a call that just missed its deadline may still be on its way to it)."""
    deadline = time.monotonic() + timeout
    # Polled: the stand-in runs on another thread's event loop.
    while len(inventory.time_left) <= more_than and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return len(inventory.time_left)


async def test_a_slow_downstream_fails_the_call_within_its_budget_and_sees_less_time(
    client: Mesh, slow_inventory: SlowInventory
) -> None:
    stub = client.stub(order_pb2_grpc.OrderServiceStub, "order")
    await client.discovery.ready()
    calls_before = len(slow_inventory.time_left)
    slow_inventory.delay = SLOW_DELAY  # far beyond the caller's budget
    try:
        start = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.PlaceOrder(place_order_request(), timeout=BUDGET)
        took = time.monotonic() - start
    finally:
        slow_inventory.delay = LOOKUP_DELAY
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err.value.details()
    # Failed at the caller's deadline: not when the slow step answered, nor at a default.
    assert took < SLOW_DELAY, f"the call took {took:.2f}s with a {BUDGET}s budget"
    # The order service passed on what was left of the caller's budget: never more (not
    # its own 10s default, nor GetStock's 5s), and something was left when it called.
    seen = await calls_seen(slow_inventory, calls_before)
    assert seen == calls_before + 1, "the order service never reached inventory"
    assert 0 < slow_inventory.time_left[-1] <= BUDGET, slow_inventory.time_left


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
    assert await calls_seen(slow_inventory, calls_before) == calls_before + 1
    # More than the slow step took (the call went through), at most GetStock's cap.
    left = slow_inventory.time_left[-1]
    assert LOOKUP_DELAY < left <= GET_STOCK_DEFAULT + 0.05, slow_inventory.time_left  # jitter


@pytest.fixture
async def raw_channel(own: Stack, order: str) -> AsyncIterator[grpc.aio.Channel]:
    """A channel with the operator's certificate and none of the mesh's client interceptors."""
    operator = SpiffeId(own.trust_domain, "operator")
    async with leaf_channel(order, own.ca, own.ca.cert_pem, operator, "order") as ch:
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
