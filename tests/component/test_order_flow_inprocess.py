"""The order flow as a whole, in one process: the four services wired by their own
``setup`` (tests/shop.py on ``meshkit.testing``): every handler, stub and background task
their app.py registers, each service on its own SQLite database and outbox, the events
through the in-memory broker (the broker's semantics without a broker). ``settle()`` runs
the flow until no event is left in flight.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from meshkit.errors import FailedPrecondition, InvalidArgument, NotFound
from meshkit.events.envelopes import event_type
from meshkit.testing import App
from services.order.flow import OrderFlow
from shop.common.v1.address_pb2 import Address
from shop.common.v1.line_item_pb2 import LineItem
from shop.common.v1.money_pb2 import Money
from shop.events.v1 import events_pb2
from shop.events.v1.envelope_pb2 import EventEnvelope
from shop.inventory.v1 import inventory_pb2
from shop.order.v1 import order_pb2 as pb
from shop.shipping.v1 import shipping_pb2
from tests.shop import running_shop

PENDING, RESERVED, PAID = (
    pb.ORDER_STATUS_PENDING,
    pb.ORDER_STATUS_STOCK_RESERVED,
    pb.ORDER_STATUS_PAID,
)
CONFIRMED, CANCELLED = pb.ORDER_STATUS_CONFIRMED, pb.ORDER_STATUS_CANCELLED


@dataclass
class Shop:
    """The running shop as these tests look at it: through the services' own servicers
    and databases."""

    app: App

    @property
    def orders(self) -> Any:
        return self.app.servicer("order")

    @property
    def flow(self) -> OrderFlow:
        """The order service's saga (its timeout sweeper is run by hand here)."""
        flow: OrderFlow = self.orders._flow
        return flow

    @property
    def stock_checks(self) -> int:
        """The order service's GetStock calls to the inventory, through its mesh stub."""
        return self.app.stub_calls["inventory/GetStock"]

    async def settle(self, timeout: float = 5.0) -> None:
        """Waits until every outbox is empty and every consumer has read everything."""
        await self.app.settle(timeout)

    async def stock(self, sku: str) -> tuple[int, int, int]:
        inventory = self.app.servicer("inventory")
        level = (await inventory.GetStock(inventory_pb2.GetStockRequest(sku=sku), None)).stock
        return level.available, level.reserved, level.sold

    async def get(self, order_id: str) -> pb.Order:
        return (await self.orders.GetOrder(pb.GetOrderRequest(order_id=order_id), None)).order

    async def payment_rows(self, order_id: str) -> list[str]:
        rows = await self.app.database("payment").fetch_all(
            "SELECT status FROM payments WHERE order_id = ?", (order_id,)
        )
        return [r["status"] for r in rows]

    async def shipment_rows(self, order_id: str) -> list[str]:
        rows = await self.app.database("shipping").fetch_all(
            "SELECT status FROM shipments WHERE order_id = ?", (order_id,)
        )
        return [r["status"] for r in rows]

    def published(self, event_cls: type[Any]) -> list[EventEnvelope]:
        return [e for e in self.app.published if e.event_type == event_type(event_cls)]


@asynccontextmanager
async def open_shop(
    state_dir: Path, start: Collection[str] | None = None, background: bool = True
) -> AsyncIterator[Shop]:
    """The shop; only the services in ``start`` are up (``shop.app.start`` the others)."""
    async with running_shop(state_dir, start=start, background=background) as app:
        yield Shop(app)


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    async with open_shop(tmp_path) as s:
        yield s


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
    assert shop.stock_checks == 2  # one GetStock per line, before the order is accepted


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
    assert shop.stock_checks == 0


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
    assert shop.app.bus.log == []


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
    published = len(shop.app.bus.log)
    for name in shop.app.meshes:
        shop.app.bus.redeliver_all(name)
    await shop.settle()
    assert len(shop.app.bus.log) == published
    assert await shop.get(confirmed.order_id) == confirmed
    assert await shop.get(declined.order_id) == declined
    assert await shop.stock("SKU-KEYBOARD") == (98, 0, 2)
    assert await shop.payment_rows(confirmed.order_id) == ["CAPTURED"]
    assert await shop.shipment_rows(confirmed.order_id) == ["SCHEDULED"]


async def test_a_republished_event_is_dropped_by_id(shop: Shop) -> None:
    await placed_and_settled(shop, place())
    first = shop.app.bus.log[0]
    await shop.app.bus.publish(first.subject, first.data, first.msg_id)
    assert shop.app.bus.duplicates_dropped == 1


async def test_cancel_before_the_saga_runs_compensates_everything(tmp_path: Path) -> None:
    async with open_shop(tmp_path, start=("order",)) as shop:  # the others are down for now
        placed = (await shop.orders.PlaceOrder(place(), None)).order
        cancelled = (
            await shop.orders.CancelOrder(
                pb.CancelOrderRequest(order_id=placed.order_id, reason="changed my mind"), None
            )
        ).order
        assert cancelled.status == CANCELLED
        assert cancelled.cancel_reason == "cancelled by request: changed my mind"
        shop.app.start("inventory", "payment", "shipping")
        await shop.settle()
        # Inventory reserved on OrderPlaced and released on OrderCancelled; nothing charged.
        assert await shop.stock("SKU-KEYBOARD") == (100, 0, 0)
        assert await shop.payment_rows(placed.order_id) == []
        assert await shop.shipment_rows(placed.order_id) == []
        order = await shop.get(placed.order_id)
        assert statuses(order) == [PENDING, CANCELLED]  # later events change nothing


async def test_cancel_of_a_final_order_is_refused(shop: Shop) -> None:
    order = await placed_and_settled(shop, place())
    with pytest.raises(FailedPrecondition, match="already confirmed"):
        await shop.orders.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id), None)
    with pytest.raises(NotFound):
        await shop.orders.CancelOrder(pb.CancelOrderRequest(order_id="ord_x"), None)


async def test_saga_timeout_cancels_and_compensates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_ORDER_SAGA_TIMEOUT", "0.2")
    # Payment is down; the sweeper is run by hand (background=False).
    async with open_shop(tmp_path, start=("order", "inventory"), background=False) as shop:
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
        shop.app.start("payment", "shipping")
        await shop.settle()
        assert await shop.payment_rows(placed.order_id) == ["REFUNDED"]
        assert await shop.shipment_rows(placed.order_id) == []
        assert (await shop.get(placed.order_id)).status == CANCELLED
        assert await shop.flow.sweep() == 0


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
    row = await shop.app.database("shipping").fetch_one(
        "SELECT shipment_id FROM shipments WHERE order_id = ?", (order.order_id,)
    )
    assert row is not None
    shipping = shop.app.servicer("shipping")
    request = shipping_pb2.GetShipmentRequest(shipment_id=row["shipment_id"])
    shipment = (await shipping.GetShipment(request, None)).shipment
    assert shipment is not None
    assert shipment.address == order.shipping_address
    assert list(shipment.items) == list(order.items)


async def test_an_event_ahead_of_its_turn_comes_back_later(tmp_path: Path) -> None:
    """Instances of a service share its consumer, so an order's events may be handled out of
    order; one that arrives before the event it follows is redelivered, not dropped."""
    async with open_shop(tmp_path, start=("order",)) as shop:
        placed = (await shop.orders.PlaceOrder(place(), None)).order
        order_id = placed.order_id

        async def publish(event: Any) -> None:
            owner = shop.app.envelopes.owners[event.DESCRIPTOR.full_name]  # else rejected
            envelope = shop.app.envelopes.wrap(event, source=owner, correlation_id=order_id)
            await shop.app.bus.publish(
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


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan"])
async def test_a_bad_saga_timeout_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SHOP_ORDER_SAGA_TIMEOUT", value)
    with pytest.raises(
        ValueError, match=f"SHOP_ORDER_SAGA_TIMEOUT must be a positive number, not '{value}'"
    ):
        async with running_shop(tmp_path, "order"):
            pass
