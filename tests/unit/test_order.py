"""The order flow as a whole, in one process: the order service and the real reactions of
inventory, payment and shipping, each on its own in-memory database and outbox, talking
through ``MemoryBus`` (the broker's semantics without a broker). ``settle()`` runs the
flow until no event is left in flight.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from opentelemetry import trace

from meshkit.config import DEFAULT_MESH_FILE, MeshPolicy
from meshkit.database import Database
from meshkit.errors import FailedPrecondition, InvalidArgument, NotFound, ServiceError
from meshkit.events.envelopes import Envelopes
from meshkit.events.memory import MemoryBus
from meshkit.events.service_events import SCHEMA as EVENTS_SCHEMA
from meshkit.events.service_events import Events
from meshkit.security.end_user import EndUser
from services.inventory.app import DEFAULT_CATALOG
from services.inventory.reactions import InventoryReactions
from services.inventory.servicer import InventoryServicer
from services.inventory.store import SCHEMA as INVENTORY_SCHEMA
from services.inventory.store import InventoryStore
from services.order.flow import OrderFlow
from services.order.servicer import OrderServicer
from services.order.store import SCHEMA as ORDER_SCHEMA
from services.order.store import OrderStore
from services.order.view import SCHEMA as VIEW_SCHEMA
from services.order.view import OrderView
from services.order.watchers import OrderWatchers
from services.payment.reactions import PaymentReactions
from services.payment.rules import DEFAULT_MAX_AMOUNT_UNITS
from services.payment.store import SCHEMA as PAYMENT_SCHEMA
from services.payment.store import PaymentStore
from services.shipping.reactions import ShippingReactions
from services.shipping.rules import DEFAULT_UNSUPPORTED_COUNTRIES
from services.shipping.store import SCHEMA as SHIPPING_SCHEMA
from services.shipping.store import ShippingStore
from shop.common.v1.address_pb2 import Address
from shop.common.v1.line_item_pb2 import LineItem
from shop.common.v1.money_pb2 import Money
from shop.events.v1 import events_pb2
from shop.events.v1.envelope_pb2 import EventEnvelope
from shop.inventory.v1 import inventory_pb2
from shop.order.v1 import order_pb2 as pb

PENDING, RESERVED, PAID = (
    pb.ORDER_STATUS_PENDING,
    pb.ORDER_STATUS_STOCK_RESERVED,
    pb.ORDER_STATUS_PAID,
)
CONFIRMED, CANCELLED = pb.ORDER_STATUS_CONFIRMED, pb.ORDER_STATUS_CANCELLED
TRACER = trace.get_tracer("test")
POLICY = MeshPolicy.load(DEFAULT_MESH_FILE)
ENVELOPES = Envelopes(POLICY.events)


class InventoryStub:
    """The inventory as the order service's mesh stub sees it: domain errors as AioRpcError."""

    def __init__(self, servicer: InventoryServicer) -> None:
        self.servicer = servicer
        self.calls = 0

    async def GetStock(self, request: inventory_pb2.GetStockRequest) -> Any:
        self.calls += 1
        try:
            return await self.servicer.GetStock(request, None)
        except ServiceError as err:
            raise grpc.aio.AioRpcError(
                err.code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=err.message
            ) from err


@dataclass
class Shop:
    bus: MemoryBus
    orders: OrderServicer
    flow: OrderFlow
    inventory: InventoryStore
    payments: PaymentStore
    shipments: ShippingStore
    stock_stub: InventoryStub
    events: dict[str, Events] = field(default_factory=dict)
    dbs: list[Database] = field(default_factory=list)

    async def settle(self, timeout: float = 5.0) -> None:
        """Waits until every outbox is empty and every consumer has read everything."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet = 0
        while quiet < 3:  # idle on three looks in a row: nothing left in flight
            await asyncio.sleep(0.01)
            depths = [await e.outbox.depth() for e in self.events.values()]
            quiet = quiet + 1 if self.bus.idle() and not any(depths) else 0
            assert loop.time() < deadline, "the flow did not settle"

    async def stock(self, sku: str) -> tuple[int, int, int]:
        level = await self.inventory.get_stock(sku)
        assert level is not None
        return level.available, level.reserved, level.sold

    async def get(self, order_id: str) -> pb.Order:
        return (await self.orders.GetOrder(pb.GetOrderRequest(order_id=order_id), None)).order

    async def payment_rows(self, order_id: str) -> list[str]:
        rows = await self.payments._db.fetch_all(
            "SELECT status FROM payments WHERE order_id = ?", (order_id,)
        )
        return [r["status"] for r in rows]

    async def shipment_rows(self, order_id: str) -> list[str]:
        rows = await self.shipments._db.fetch_all(
            "SELECT status FROM shipments WHERE order_id = ?", (order_id,)
        )
        return [r["status"] for r in rows]

    def published(self, event_cls: type[Any]) -> list[EventEnvelope]:
        name = event_cls.DESCRIPTOR.full_name
        return [EventEnvelope.FromString(m.data) for m in self.bus.log if m.subject == name]


async def open_shop(saga_timeout: float = 30.0, start: tuple[str, ...] = ()) -> Shop:
    bus = MemoryBus()

    async def db(schema: str) -> Database:
        return await Database.open(":memory:", schema + EVENTS_SCHEMA)

    inventory_db, payment_db, shipping_db, order_db = (
        await db(INVENTORY_SCHEMA),
        await db(PAYMENT_SCHEMA),
        await db(SHIPPING_SCHEMA),
        await db(ORDER_SCHEMA + VIEW_SCHEMA),
    )
    events = {
        name: Events(name, d, bus, ENVELOPES, TRACER)
        for name, d in [
            ("inventory", inventory_db),
            ("payment", payment_db),
            ("shipping", shipping_db),
            ("order", order_db),
        ]
    }
    inventory = InventoryStore(inventory_db)
    await inventory.seed_if_empty(DEFAULT_CATALOG)
    stock = InventoryReactions(inventory)
    events["inventory"].on(events_pb2.OrderPlaced, stock.on_order_placed)
    events["inventory"].on(events_pb2.OrderCancelled, stock.on_order_cancelled)
    events["inventory"].on(events_pb2.OrderConfirmed, stock.on_order_confirmed)
    payments = PaymentStore(payment_db)
    pay = PaymentReactions(payments, DEFAULT_MAX_AMOUNT_UNITS)
    events["payment"].on(events_pb2.OrderPlaced, pay.on_order_placed)
    events["payment"].on(events_pb2.StockReserved, pay.on_stock_reserved)
    events["payment"].on(events_pb2.OrderCancelled, pay.on_order_cancelled)
    shipments = ShippingStore(shipping_db)
    ship = ShippingReactions(shipments, DEFAULT_UNSUPPORTED_COUNTRIES)
    events["shipping"].on(events_pb2.OrderPlaced, ship.on_order_placed)
    events["shipping"].on(events_pb2.PaymentCaptured, ship.on_payment_captured)
    events["shipping"].on(events_pb2.OrderCancelled, ship.on_order_cancelled)
    watchers = OrderWatchers()
    view = OrderView(order_db, watchers.changed)
    flow = OrderFlow(order_db, OrderStore(order_db), view, events["order"], saga_timeout)
    stub = InventoryStub(InventoryServicer(inventory))
    servicer = OrderServicer(flow, view, watchers, stub, EndUser(POLICY.end_user))
    for name in start or tuple(events):
        events[name].start()
    return Shop(
        bus,
        servicer,
        flow,
        inventory,
        payments,
        shipments,
        stub,
        events,
        [inventory_db, payment_db, shipping_db, order_db],
    )


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    s = await open_shop()
    yield s
    await close_shop(s)


async def close_shop(s: Shop) -> None:
    for events in s.events.values():
        await events.close()
    for db in s.dbs:
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


async def placed_and_settled(shop: Shop, request: pb.PlaceOrderRequest) -> pb.Order:
    placed = (await shop.orders.PlaceOrder(request, None)).order
    assert placed.status == PENDING
    await shop.settle()
    return await shop.get(placed.order_id)


async def test_happy_path_confirms_the_order(shop: Shop) -> None:
    placed = (await shop.orders.PlaceOrder(place(), None)).order
    assert placed.status == PENDING
    assert statuses(placed) == [PENDING]
    assert placed.order_id.startswith("ord_")
    assert placed.total == eur(124, 990_000_000)  # 2 x 12.50 + 99.99
    await shop.settle()
    order = await shop.get(placed.order_id)
    assert order.status == CONFIRMED
    assert statuses(order) == [PENDING, RESERVED, PAID, CONFIRMED]
    assert order.payment_id.startswith("pay_")
    assert order.tracking_number.startswith("DHL")
    assert order.cancel_reason == ""
    assert order.history[-1].reason == f"shipment scheduled, tracking {order.tracking_number}"
    assert await shop.stock("SKU-KEYBOARD") == (98, 0, 2)
    assert await shop.stock("SKU-MONITOR") == (19, 0, 1)
    assert await shop.payment_rows(order.order_id) == ["CAPTURED"]
    assert await shop.shipment_rows(order.order_id) == ["SCHEDULED"]
    assert shop.stock_stub.calls == 2  # one GetStock per line, before the order is accepted


async def test_events_carry_the_order_as_correlation_and_their_cause(shop: Shop) -> None:
    order = await placed_and_settled(shop, place())
    chain = [
        events_pb2.OrderPlaced,
        events_pb2.StockReserved,
        events_pb2.PaymentCaptured,
        events_pb2.ShipmentScheduled,
        events_pb2.OrderConfirmed,
    ]
    envelopes = [shop.published(cls) for cls in chain]
    assert all(len(e) == 1 for e in envelopes)
    envelopes_flat = [e[0] for e in envelopes]
    assert {e.correlation_id for e in envelopes_flat} == {order.order_id}
    assert envelopes_flat[0].causation_id == ""
    for cause, effect in itertools.pairwise(envelopes_flat):
        assert effect.causation_id == cause.event_id
    assert [e.source for e in envelopes_flat] == [
        "order",
        "inventory",
        "payment",
        "shipping",
        "order",
    ]


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
    assert shop.stock_stub.calls == 0


@pytest.mark.parametrize("count", [0, 51])
async def test_place_order_needs_one_to_fifty_lines(shop: Shop, count: int) -> None:
    request = place(*[(f"SKU-{i}", 1) for i in range(count)])
    if count == 0:
        del request.items[:]
    with pytest.raises(InvalidArgument) as err:
        await shop.orders.PlaceOrder(request, None)
    assert fields(err) == ["items"]


async def test_unknown_sku_is_bad_input_and_places_nothing(shop: Shop) -> None:
    with pytest.raises(InvalidArgument) as err:
        await shop.orders.PlaceOrder(place(("SKU-KEYBOARD", 1), ("SKU-NOPE", 1)), None)
    assert fields(err) == ["items[1].sku"]
    assert "SKU-NOPE" in err.value.violations[0].description
    assert shop.bus.log == []


async def test_same_idempotency_key_returns_the_same_order(shop: Shop) -> None:
    first = (await shop.orders.PlaceOrder(place(key="k1"), None)).order
    again = (await shop.orders.PlaceOrder(place(key="k1"), None)).order
    assert again == first
    with pytest.raises(FailedPrecondition, match="k1"):
        await shop.orders.PlaceOrder(place(("SKU-MOUSE", 1), key="k1"), None)
    await shop.settle()
    assert len(shop.published(events_pb2.OrderPlaced)) == 1
    # After the saga, a retry gets the order as it is now.
    assert (await shop.orders.PlaceOrder(place(key="k1"), None)).order.status == CONFIRMED
    # Keys belong to a customer; another customer's k1 is another order.
    bobs = (await shop.orders.PlaceOrder(place(customer="bob", key="k1"), None)).order
    assert bobs.order_id != first.order_id
    # Without a key every call is a new order.
    one = (await shop.orders.PlaceOrder(place(), None)).order
    two = (await shop.orders.PlaceOrder(place(), None)).order
    assert one.order_id != two.order_id


async def test_declined_payment_cancels_and_releases_stock(shop: Shop) -> None:
    order = await placed_and_settled(shop, place(token="tok_decline"))
    assert order.status == CANCELLED
    assert statuses(order) == [PENDING, RESERVED, CANCELLED]
    assert order.cancel_reason == "payment declined: card_declined"
    assert await shop.stock("SKU-KEYBOARD") == (100, 0, 0)
    assert await shop.stock("SKU-MONITOR") == (20, 0, 0)
    assert await shop.payment_rows(order.order_id) == ["DECLINED"]
    assert await shop.shipment_rows(order.order_id) == []
    assert len(shop.published(events_pb2.StockReleased)) == 1


async def test_amount_over_the_limit_is_declined(shop: Shop) -> None:
    order = await placed_and_settled(shop, place(("SKU-LAPTOP", 1)))  # 10.00: fine
    assert order.status == CONFIRMED
    request = place(("SKU-CABLE", 1000))
    request.items[0].unit_price.units = 11  # 11 000 > the 10 000 limit
    order = await placed_and_settled(shop, request)
    assert order.cancel_reason == "payment declined: amount_over_limit"
    assert await shop.stock("SKU-CABLE") == (1000, 0, 0)


async def test_out_of_stock_cancels_without_charging(shop: Shop) -> None:
    order = await placed_and_settled(shop, place(("SKU-LAPTOP", 6), ("SKU-MOUSE", 1)))
    assert order.status == CANCELLED
    assert order.cancel_reason == "out of stock: SKU-LAPTOP"
    assert await shop.stock("SKU-LAPTOP") == (5, 0, 0)
    assert await shop.stock("SKU-MOUSE") == (200, 0, 0)
    assert await shop.payment_rows(order.order_id) == []
    assert shop.published(events_pb2.PaymentCaptured) == []


async def test_shipping_refusal_refunds_and_releases(shop: Shop) -> None:
    order = await placed_and_settled(shop, place(country="KP"))
    assert order.status == CANCELLED
    assert statuses(order) == [PENDING, RESERVED, PAID, CANCELLED]
    assert order.cancel_reason == "shipping to KP is not supported"
    assert await shop.payment_rows(order.order_id) == ["REFUNDED"]
    assert await shop.stock("SKU-KEYBOARD") == (100, 0, 0)
    assert await shop.shipment_rows(order.order_id) == []


async def test_every_event_delivered_twice_has_no_second_effect(shop: Shop) -> None:
    confirmed = await placed_and_settled(shop, place())
    declined = await placed_and_settled(shop, place(token="tok_decline"))
    published = len(shop.bus.log)
    for name in shop.events:
        shop.bus.redeliver_all(name)
    await shop.settle()
    assert len(shop.bus.log) == published
    assert await shop.get(confirmed.order_id) == confirmed
    assert await shop.get(declined.order_id) == declined
    assert await shop.stock("SKU-KEYBOARD") == (98, 0, 2)
    assert await shop.payment_rows(confirmed.order_id) == ["CAPTURED"]
    assert await shop.shipment_rows(confirmed.order_id) == ["SCHEDULED"]


async def test_a_republished_event_is_dropped_by_id(shop: Shop) -> None:
    await placed_and_settled(shop, place())
    first = shop.bus.log[0]
    await shop.bus.publish(first.subject, first.data, first.msg_id)
    assert shop.bus.duplicates_dropped == 1


async def test_cancel_before_the_saga_runs_compensates_everything() -> None:
    shop = await open_shop(start=("order",))  # the other services are down for now
    try:
        placed = (await shop.orders.PlaceOrder(place(), None)).order
        cancelled = (
            await shop.orders.CancelOrder(
                pb.CancelOrderRequest(order_id=placed.order_id, reason="changed my mind"), None
            )
        ).order
        assert cancelled.status == CANCELLED
        assert cancelled.cancel_reason == "cancelled by request: changed my mind"
        for name in ("inventory", "payment", "shipping"):
            shop.events[name].start()
        await shop.settle()
        # Inventory reserved on OrderPlaced and released on OrderCancelled; nothing charged.
        assert await shop.stock("SKU-KEYBOARD") == (100, 0, 0)
        assert await shop.payment_rows(placed.order_id) == []
        assert await shop.shipment_rows(placed.order_id) == []
        order = await shop.get(placed.order_id)
        assert statuses(order) == [PENDING, CANCELLED]  # later events change nothing
    finally:
        await close_shop(shop)


async def test_cancel_of_a_final_order_is_refused(shop: Shop) -> None:
    order = await placed_and_settled(shop, place())
    with pytest.raises(FailedPrecondition, match="already confirmed"):
        await shop.orders.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id), None)
    with pytest.raises(NotFound):
        await shop.orders.CancelOrder(pb.CancelOrderRequest(order_id="ord_x"), None)


async def test_saga_timeout_cancels_and_compensates() -> None:
    shop = await open_shop(saga_timeout=0.2, start=("order", "inventory"))  # payment is down
    try:
        placed = (await shop.orders.PlaceOrder(place(), None)).order
        await shop.settle()
        assert (await shop.get(placed.order_id)).status == RESERVED
        await asyncio.sleep(0.25)
        assert await shop.flow.sweep() == 1
        await shop.settle()
        order = await shop.get(placed.order_id)
        assert order.status == CANCELLED
        assert order.cancel_reason == "saga timed out after 0.2s waiting for payment"
        assert await shop.stock("SKU-KEYBOARD") == (100, 0, 0)
        # Payment comes back: it sees OrderPlaced, StockReserved, OrderCancelled in order,
        # so it captures and refunds at once; the order stays cancelled.
        shop.events["payment"].start()
        shop.events["shipping"].start()
        await shop.settle()
        assert await shop.payment_rows(placed.order_id) == ["REFUNDED"]
        assert await shop.shipment_rows(placed.order_id) == []
        assert (await shop.get(placed.order_id)).status == CANCELLED
        assert await shop.flow.sweep() == 0
    finally:
        await close_shop(shop)


async def test_watch_order_sees_every_transition(shop: Shop) -> None:
    placed = (await shop.orders.PlaceOrder(place(), None)).order
    seen = [
        r.order.status
        async for r in shop.orders.WatchOrder(pb.WatchOrderRequest(order_id=placed.order_id), None)
    ]
    assert seen[-1] == CONFIRMED
    assert seen == sorted(seen)  # forward only, each state once
    assert set(seen) >= {PENDING, CONFIRMED}


async def test_list_orders_pages_newest_first_with_filters(shop: Shop) -> None:
    placed = []
    for i in range(5):
        request = place(customer="alice" if i % 2 == 0 else "bob")
        if i == 3:
            request.payment_token = "tok_decline"
        placed.append((await shop.orders.PlaceOrder(request, None)).order.order_id)
    await shop.settle()
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
    order = await placed_and_settled(shop, place(country="US"))
    assert order.tracking_number.startswith("1Z")
    row = await shop.shipments._db.fetch_one(
        "SELECT shipment_id FROM shipments WHERE order_id = ?", (order.order_id,)
    )
    assert row is not None
    shipment = await shop.shipments.get(row["shipment_id"])
    assert shipment is not None
    assert shipment.address == order.shipping_address
    assert list(shipment.items) == list(order.items)


async def test_an_event_ahead_of_its_turn_comes_back_later() -> None:
    """Instances of a service share its consumer, so an order's events may be handled out of
    order; one that arrives before the event it follows is redelivered, not dropped."""
    shop = await open_shop(start=("order",))
    try:
        placed = (await shop.orders.PlaceOrder(place(), None)).order
        order_id = placed.order_id

        async def publish(event: Any) -> None:
            envelope = ENVELOPES.wrap(event, source="test", correlation_id=order_id)
            await shop.bus.publish(
                envelope.event_type, envelope.SerializeToString(), envelope.event_id
            )

        await publish(events_pb2.PaymentCaptured(order_id=order_id, payment_id="pay_1"))
        await asyncio.sleep(0.1)
        assert (await shop.get(order_id)).status == PENDING  # not applied: not its turn yet
        await publish(events_pb2.StockReserved(order_id=order_id, items=placed.items))
        await shop.settle()
        order = await shop.get(order_id)
        assert statuses(order) == [PENDING, RESERVED, PAID]
        assert order.payment_id == "pay_1"
    finally:
        await close_shop(shop)
