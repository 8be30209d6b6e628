"""The order service and its saga, against the real inventory, payment and shipping servicers.

Each downstream is a real servicer on its own in-memory database behind ``InProcessStub``,
which behaves like a mesh stub: a domain error arrives as ``grpc.aio.AioRpcError``; failures
and pauses can be injected per method.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from services import inventory, order, payment, shipping
from services.inventory.app import DEFAULT_CATALOG
from services.inventory.servicer import InventoryServicer
from services.inventory.store import InventoryStore
from services.mesh import deadlines
from services.mesh.database import Database
from services.mesh.errors import FailedPrecondition, InvalidArgument, NotFound, ServiceError
from services.order.domain import validate_place_order
from services.order.servicer import OrderServicer
from services.order.store import OrderStore
from services.payment.servicer import PaymentServicer
from services.payment.store import PaymentStore
from services.shipping.servicer import ShippingServicer
from services.shipping.store import ShippingStore
from shop.common.v1.address_pb2 import Address
from shop.common.v1.line_item_pb2 import LineItem
from shop.common.v1.money_pb2 import Money
from shop.inventory.v1 import inventory_pb2
from shop.order.v1 import order_pb2 as pb
from shop.payment.v1 import payment_pb2
from shop.shipping.v1 import shipping_pb2

PENDING, RESERVED, PAID = (
    pb.ORDER_STATUS_PENDING,
    pb.ORDER_STATUS_STOCK_RESERVED,
    pb.ORDER_STATUS_PAID,
)
CONFIRMED, CANCELLED = pb.ORDER_STATUS_CONFIRMED, pb.ORDER_STATUS_CANCELLED


class InProcessStub:
    """Calls a servicer the way a mesh stub would, recording calls and injecting trouble."""

    def __init__(self, servicer: Any) -> None:
        self.servicer = servicer
        self.calls: list[str] = []
        self.fail: dict[str, grpc.StatusCode] = {}
        self.gates: dict[str, asyncio.Event] = {}
        self.entered: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.deadlines: dict[str, float | None] = {}

    def __getattr__(self, method: str) -> Callable[[Any], Awaitable[Any]]:
        if not method[:1].isupper():
            raise AttributeError(method)
        handler = getattr(self.servicer, method)

        async def call(request: Any) -> Any:
            self.calls.append(method)
            self.deadlines[method] = deadlines.remaining()
            self.entered[method].set()
            if method in self.gates:
                await self.gates[method].wait()
            if method in self.fail:
                raise _rpc_error(self.fail[method], "injected")
            try:
                return await handler(request, None)
            except ServiceError as err:
                raise _rpc_error(err.code, err.message) from err

        return call


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


@dataclass
class Shop:
    orders: OrderServicer
    store: OrderStore
    inventory: InProcessStub
    payment: InProcessStub
    shipping: InProcessStub

    async def stock(self, sku: str) -> tuple[int, int, int]:
        request = inventory_pb2.GetStockRequest(sku=sku)
        level = (await self.inventory.servicer.GetStock(request, None)).stock
        return level.available, level.reserved, level.sold

    async def payment_status(self, order_id: str) -> int:
        """The status of the order's payment, read from payment's database: the order only
        knows the payment id once it is PAID."""
        row = await self.payment.servicer._store._db.fetch_one(
            "SELECT status FROM payments WHERE order_id = ?", (order_id,)
        )
        assert row is not None
        return payment_pb2.PaymentStatus.Value("PAYMENT_STATUS_" + row["status"])


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    dbs = [
        await Database.open(":memory:", module.store.SCHEMA)
        for module in (inventory, payment, shipping, order)
    ]
    inventory_store = InventoryStore(dbs[0])
    await inventory_store.seed_if_empty(DEFAULT_CATALOG)
    stubs = (
        InProcessStub(InventoryServicer(inventory_store)),
        InProcessStub(PaymentServicer(PaymentStore(dbs[1]))),
        InProcessStub(ShippingServicer(ShippingStore(dbs[2]))),
    )
    store = OrderStore(dbs[3])
    servicer = OrderServicer(store, *stubs)
    yield Shop(servicer, store, *stubs)
    await servicer.drain()
    for db in dbs:
        await db.close()


def eur(units: int, nanos: int = 0, currency: str = "EUR") -> Money:
    return Money(currency_code=currency, units=units, nanos=nanos)


def address(country: str = "DE") -> Address:
    return Address(
        recipient="Ada Lovelace",
        lines=["Unter den Linden 1"],
        city="Berlin",
        postal_code="10117",
        country_code=country,
    )


def place(
    *items: tuple[str, int],
    customer: str = "alice",
    token: str = "tok_visa",
    key: str = "",
    country: str = "DE",
) -> pb.PlaceOrderRequest:
    lines = items or (("SKU-KEYBOARD", 2), ("SKU-MONITOR", 1))
    prices = {"SKU-KEYBOARD": eur(12, 500_000_000), "SKU-MONITOR": eur(99, 990_000_000)}
    return pb.PlaceOrderRequest(
        customer_id=customer,
        items=[
            LineItem(sku=sku, quantity=q, unit_price=prices.get(sku, eur(10))) for sku, q in lines
        ],
        shipping_address=address(country),
        payment_token=token,
        idempotency_key=key,
    )


def statuses(o: pb.Order) -> list[int]:
    return [change.status for change in o.history]


def fields(err: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    return [v.field for v in err.value.violations]


async def test_happy_path_confirms_the_order(shop: Shop) -> None:
    placed = (await shop.orders.PlaceOrder(place(), None)).order
    assert placed.status == CONFIRMED
    assert statuses(placed) == [PENDING, RESERVED, PAID, CONFIRMED]
    assert placed.order_id.startswith("ord_")
    assert placed.total == eur(124, 990_000_000)  # 2 x 12.50 + 99.99
    assert placed.payment_id.startswith("pay_")
    assert placed.tracking_number.startswith("DHL")
    assert placed.cancel_reason == ""
    assert placed.history[-1].reason.startswith("shipment scheduled with DHL")
    assert await shop.stock("SKU-KEYBOARD") == (98, 0, 2)
    assert await shop.stock("SKU-MONITOR") == (19, 0, 1)
    assert await shop.payment_status(placed.order_id) == payment_pb2.PAYMENT_STATUS_CAPTURED
    assert shop.inventory.calls == ["ReserveStock", "CommitStock"]
    got = (await shop.orders.GetOrder(pb.GetOrderRequest(order_id=placed.order_id), None)).order
    assert got == placed


async def test_place_order_validation_names_every_field(shop: Shop) -> None:
    request = pb.PlaceOrderRequest(
        items=[
            LineItem(sku="SKU-A", quantity=0, unit_price=eur(1)),
            LineItem(sku="", quantity=1, unit_price=eur(1)),
            LineItem(sku="SKU-C", quantity=1, unit_price=eur(1, currency="USD")),
            LineItem(sku="SKU-A", quantity=1001, unit_price=eur(1)),
            LineItem(sku="SKU-E", quantity=1),
            LineItem(sku="SKU-F", quantity=1, unit_price=eur(1, -1)),
            LineItem(sku="SKU-G", quantity=1, unit_price=eur(0)),
        ],
        shipping_address=Address(recipient="Ada", lines=["x"], city="B", country_code="Germany"),
        idempotency_key="k" * 129,
    )
    with pytest.raises(InvalidArgument) as err:
        await shop.orders.PlaceOrder(request, None)
    assert fields(err) == [
        "customer_id",
        "items[0].quantity",
        "items[1].sku",
        "items[2].unit_price.currency_code",
        "items[3].sku",
        "items[3].quantity",
        "items[4].unit_price",
        "items[5].unit_price.nanos",
        "items[6].unit_price",
        "shipping_address.postal_code",
        "shipping_address.country_code",
        "payment_token",
        "idempotency_key",
    ]
    assert shop.inventory.calls == []


@pytest.mark.parametrize("count", [0, 51])
async def test_place_order_needs_one_to_fifty_lines(shop: Shop, count: int) -> None:
    request = place(*[(f"SKU-{i}", 1) for i in range(count)])
    if count == 0:
        del request.items[:]
    with pytest.raises(InvalidArgument) as err:
        await shop.orders.PlaceOrder(request, None)
    assert fields(err) == ["items"]


async def test_same_idempotency_key_returns_the_same_order(shop: Shop) -> None:
    first = (await shop.orders.PlaceOrder(place(key="k1"), None)).order
    again = (await shop.orders.PlaceOrder(place(key="k1"), None)).order
    assert again == first
    assert shop.inventory.calls.count("ReserveStock") == 1
    with pytest.raises(FailedPrecondition, match="k1"):
        await shop.orders.PlaceOrder(place(("SKU-MOUSE", 1), key="k1"), None)
    # Keys belong to a customer; another customer's k1 is another order.
    bobs = (await shop.orders.PlaceOrder(place(customer="bob", key="k1"), None)).order
    assert bobs.order_id != first.order_id
    # Without a key every call is a new order.
    one = (await shop.orders.PlaceOrder(place(), None)).order
    two = (await shop.orders.PlaceOrder(place(), None)).order
    assert one.order_id != two.order_id


async def test_declined_payment_cancels_and_releases_stock(shop: Shop) -> None:
    placed = (await shop.orders.PlaceOrder(place(token="tok_decline"), None)).order
    assert placed.status == CANCELLED
    assert placed.cancel_reason == "payment declined: card_declined"
    assert statuses(placed) == [PENDING, RESERVED, CANCELLED]
    assert placed.payment_id == ""
    assert shop.inventory.calls == ["ReserveStock", "ReleaseStock"]
    assert shop.payment.calls == ["CapturePayment"]
    assert shop.shipping.calls == []
    assert await shop.stock("SKU-KEYBOARD") == (100, 0, 0)


async def test_out_of_stock_cancels_without_charging(shop: Shop) -> None:
    placed = (await shop.orders.PlaceOrder(place(("SKU-LAPTOP", 6), ("SKU-MOUSE", 1)), None)).order
    assert placed.status == CANCELLED
    assert placed.cancel_reason == "out of stock: SKU-LAPTOP"
    assert statuses(placed) == [PENDING, CANCELLED]
    assert shop.inventory.calls == ["ReserveStock"]
    assert shop.payment.calls == []
    assert await shop.stock("SKU-LAPTOP") == (5, 0, 0)
    assert await shop.stock("SKU-MOUSE") == (200, 0, 0)


async def test_shipping_unavailable_refunds_and_releases(shop: Shop) -> None:
    shop.shipping.fail["ScheduleShipment"] = grpc.StatusCode.UNAVAILABLE
    placed = (await shop.orders.PlaceOrder(place(), None)).order
    assert placed.status == CANCELLED
    assert placed.cancel_reason == "schedule shipment failed: UNAVAILABLE: injected"
    assert statuses(placed) == [PENDING, RESERVED, PAID, CANCELLED]
    assert shop.payment.calls == ["CapturePayment", "RefundPayment"]
    assert shop.inventory.calls == ["ReserveStock", "ReleaseStock"]
    assert shop.shipping.calls == ["ScheduleShipment", "CancelShipment"]  # NotFound, ignored
    assert await shop.payment_status(placed.order_id) == payment_pb2.PAYMENT_STATUS_REFUNDED
    assert await shop.stock("SKU-KEYBOARD") == (100, 0, 0)


async def test_shipping_refusal_cancels_the_order(shop: Shop) -> None:
    placed = (await shop.orders.PlaceOrder(place(country="KP"), None)).order
    assert placed.status == CANCELLED
    assert placed.cancel_reason == (
        "schedule shipment failed: FAILED_PRECONDITION:"
        " shipping to KP is not supported (address.country_code)"
    )
    assert await shop.payment_status(placed.order_id) == payment_pb2.PAYMENT_STATUS_REFUNDED
    assert await shop.stock("SKU-MONITOR") == (20, 0, 0)


async def test_deadline_exceeded_cancels_then_propagates(shop: Shop) -> None:
    shop.payment.fail["CapturePayment"] = grpc.StatusCode.DEADLINE_EXCEEDED
    token = deadlines.enter_call(5.0)  # as if PlaceOrder came with a 5 s deadline
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await shop.orders.PlaceOrder(place(), None)
    finally:
        deadlines.leave_call(token)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    (cancelled,) = (await shop.orders.ListOrders(pb.ListOrdersRequest(), None)).orders
    assert cancelled.status == CANCELLED
    assert cancelled.cancel_reason == "capture payment failed: DEADLINE_EXCEEDED: injected"
    assert shop.payment.calls == ["CapturePayment", "RefundPayment"]
    assert await shop.stock("SKU-KEYBOARD") == (100, 0, 0)
    # Steps run within the caller's deadline; compensations do not (it may be what ran out).
    assert shop.inventory.deadlines["ReserveStock"] is not None
    assert shop.inventory.deadlines["ReleaseStock"] is None


async def _place_paused_at_capture(shop: Shop) -> tuple[asyncio.Task[Any], str]:
    """Starts PlaceOrder and waits until its saga is inside CapturePayment."""
    shop.payment.gates["CapturePayment"] = asyncio.Event()
    task = asyncio.create_task(shop.orders.PlaceOrder(place(), None))
    await asyncio.wait_for(shop.payment.entered["CapturePayment"].wait(), 2)
    (pending,) = (await shop.orders.ListOrders(pb.ListOrdersRequest(), None)).orders
    return task, pending.order_id


async def test_watch_order_sees_every_transition(shop: Shop) -> None:
    task, order_id = await _place_paused_at_capture(shop)

    async def watch() -> list[int]:
        request = pb.WatchOrderRequest(order_id=order_id)
        return [r.order.status async for r in shop.orders.WatchOrder(request, None)]

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.01)  # the watcher has its first snapshot
    shop.payment.gates["CapturePayment"].set()
    assert await asyncio.wait_for(watcher, 2) == [RESERVED, PAID, CONFIRMED]
    assert (await task).order.status == CONFIRMED
    # A final order: one answer, then the stream ends.
    done = [r async for r in shop.orders.WatchOrder(pb.WatchOrderRequest(order_id=order_id), None)]
    assert [r.order.status for r in done] == [CONFIRMED]
    with pytest.raises(NotFound):
        async for _ in shop.orders.WatchOrder(pb.WatchOrderRequest(order_id="ord_x"), None):
            pass


async def test_cancel_during_the_saga_stops_and_compensates(shop: Shop) -> None:
    task, order_id = await _place_paused_at_capture(shop)
    cancel = asyncio.create_task(
        shop.orders.CancelOrder(pb.CancelOrderRequest(order_id=order_id, reason="oops"), None)
    )
    await asyncio.sleep(0.01)
    assert not cancel.done()  # it waits for the running step
    shop.payment.gates["CapturePayment"].set()
    cancelled = (await asyncio.wait_for(cancel, 2)).order
    assert cancelled.status == CANCELLED
    assert cancelled.cancel_reason == "cancelled by request: oops"
    assert (await task).order == cancelled
    assert "ScheduleShipment" not in shop.shipping.calls
    assert await shop.payment_status(order_id) == payment_pb2.PAYMENT_STATUS_REFUNDED
    assert await shop.stock("SKU-KEYBOARD") == (100, 0, 0)


async def test_cancel_of_a_final_order_is_refused(shop: Shop) -> None:
    placed = (await shop.orders.PlaceOrder(place(), None)).order
    request = pb.CancelOrderRequest(order_id=placed.order_id)
    with pytest.raises(FailedPrecondition, match="confirmed"):
        await shop.orders.CancelOrder(request, None)
    with pytest.raises(NotFound):
        await shop.orders.CancelOrder(pb.CancelOrderRequest(order_id="ord_x"), None)
    with pytest.raises(InvalidArgument) as err:
        await shop.orders.CancelOrder(pb.CancelOrderRequest(), None)
    assert fields(err) == ["order_id"]


async def test_cancel_of_an_abandoned_order_undoes_everything(shop: Shop) -> None:
    # An order some crash left in STOCK_RESERVED: no saga runs for it any more.
    draft = validate_place_order(place())
    await shop.inventory.ReserveStock(
        inventory_pb2.ReserveStockRequest(
            order_id=draft.order_id,
            items=[inventory_pb2.StockQuantity(sku="SKU-KEYBOARD", quantity=2)],
        )
    )
    await shop.store.create(draft)
    await shop.store.transition(draft.order_id, RESERVED, "stock reserved", expected={PENDING})
    request = pb.CancelOrderRequest(order_id=draft.order_id, reason="stuck")
    cancelled = (await shop.orders.CancelOrder(request, None)).order
    assert cancelled.status == CANCELLED
    assert statuses(cancelled) == [PENDING, RESERVED, CANCELLED]
    assert cancelled.cancel_reason == "cancelled by request: stuck"
    assert shop.shipping.calls == ["CancelShipment"]
    assert shop.payment.calls == ["RefundPayment"]
    assert await shop.stock("SKU-KEYBOARD") == (100, 0, 0)
    with pytest.raises(FailedPrecondition, match="cancelled"):
        await shop.orders.CancelOrder(request, None)


async def test_list_orders_pages_newest_first_with_filters(shop: Shop) -> None:
    placed = []
    for i in range(5):
        request = place(customer="alice" if i % 2 == 0 else "bob")
        if i == 3:
            request.payment_token = "tok_decline"
        placed.append((await shop.orders.PlaceOrder(request, None)).order.order_id)
    newest_first = placed[::-1]

    async def collect(**filters: Any) -> list[str]:
        ids: list[str] = []
        token = ""
        while True:
            request = pb.ListOrdersRequest(page_size=2, page_token=token, **filters)
            page = await shop.orders.ListOrders(request, None)
            assert len(page.orders) <= 2
            ids += [o.order_id for o in page.orders]
            token = page.next_page_token
            if not token:
                return ids

    assert await collect() == newest_first
    assert await collect(customer_id="alice") == [placed[4], placed[2], placed[0]]
    assert await collect(customer_id="bob") == [placed[3], placed[1]]
    assert await collect(status=CANCELLED) == [placed[3]]
    assert await collect(customer_id="bob", status=CONFIRMED) == [placed[1]]
    assert await collect(customer_id="carol") == []
    everything = await shop.orders.ListOrders(pb.ListOrdersRequest(), None)
    assert [o.order_id for o in everything.orders] == newest_first
    assert everything.next_page_token == ""
    assert all(len(o.history) >= 2 for o in everything.orders)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.ListOrdersRequest(page_token="garbage!"), "page_token"),
        (pb.ListOrdersRequest(page_token="eyJhZnRlciI6IngifQ"), "page_token"),  # {"after":"x"}
        (pb.ListOrdersRequest(page_size=-1), "page_size"),
        (pb.ListOrdersRequest(status=99), "status"),  # type: ignore[arg-type]
    ],
)
async def test_list_orders_rejects_bad_requests(
    shop: Shop, request_: pb.ListOrdersRequest, field: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        await shop.orders.ListOrders(request_, None)
    assert fields(err) == [field]


async def test_get_order_errors(shop: Shop) -> None:
    with pytest.raises(NotFound):
        await shop.orders.GetOrder(pb.GetOrderRequest(order_id="ord_x"), None)
    with pytest.raises(InvalidArgument) as err:
        await shop.orders.GetOrder(pb.GetOrderRequest(), None)
    assert fields(err) == ["order_id"]


async def test_shipment_carries_the_order(shop: Shop) -> None:
    placed = (await shop.orders.PlaceOrder(place(country="US"), None)).order
    assert placed.tracking_number.startswith("1Z")
    store: ShippingStore = shop.shipping.servicer._store
    row = await store._db.fetch_one(
        "SELECT shipment_id FROM shipments WHERE order_id = ?", (placed.order_id,)
    )
    assert row is not None
    request = shipping_pb2.GetShipmentRequest(shipment_id=row["shipment_id"])
    shipment = (await shop.shipping.servicer.GetShipment(request, None)).shipment
    assert shipment.address == placed.shipping_address
    assert list(shipment.items) == list(placed.items)
