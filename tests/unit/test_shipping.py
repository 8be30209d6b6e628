"""The shipping service's servicer on an in-memory database: carriers, validation, idempotency."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from meshkit.database import Database
from meshkit.errors import FailedPrecondition, InvalidArgument, NotFound
from meshkit.settings import from_env
from services.shipping.app import ShippingSettings
from services.shipping.servicer import ShippingServicer
from services.shipping.store import SCHEMA, ShippingStore
from shop.common.v1.address_pb2 import Address
from shop.common.v1.line_item_pb2 import LineItem
from shop.common.v1.money_pb2 import Money
from shop.shipping.v1 import shipping_pb2 as pb

DAY = 86_400


@pytest.fixture
async def shipping() -> AsyncIterator[ShippingServicer]:
    db = await Database.open(":memory:", SCHEMA)
    yield ShippingServicer(ShippingStore(db))
    await db.close()


def address(country: str = "DE") -> Address:
    return Address(
        recipient="Ada Lovelace",
        lines=["Unter den Linden 1"],
        city="Berlin",
        postal_code="10117",
        country_code=country,
    )


def schedule(order_id: str = "o1", country: str = "DE") -> pb.ScheduleShipmentRequest:
    price = Money(currency_code="EUR", units=12, nanos=500_000_000)
    return pb.ScheduleShipmentRequest(
        order_id=order_id,
        address=address(country),
        items=[LineItem(sku="SKU-A", quantity=2, unit_price=price)],
    )


def fields(err: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    return [v.field for v in err.value.violations]


async def test_schedule_and_get(shipping: ShippingServicer) -> None:
    request = schedule()
    shipment = (await shipping.ScheduleShipment(request, None)).shipment
    assert shipment.status == pb.SHIPMENT_STATUS_SCHEDULED
    assert shipment.shipment_id.startswith("shp_")
    assert shipment.carrier == "DHL"
    assert shipment.tracking_number.startswith("DHL") and len(shipment.tracking_number) == 15
    assert shipment.address == request.address
    assert list(shipment.items) == list(request.items)
    eta = shipment.estimated_delivery_time.seconds - shipment.create_time.seconds
    assert eta == 2 * DAY
    assert abs(shipment.create_time.seconds - time.time()) < 60
    got = await shipping.GetShipment(pb.GetShipmentRequest(shipment_id=shipment.shipment_id), None)
    assert got.shipment == shipment
    with pytest.raises(NotFound):
        await shipping.GetShipment(pb.GetShipmentRequest(shipment_id="shp_unknown"), None)


@pytest.mark.parametrize(
    ("country", "carrier", "prefix"),
    [("US", "UPS", "1Z"), ("GB", "Royal Mail", "RM"), ("FR", "DHL Express", "DHX")],
)
async def test_carrier_by_country(
    shipping: ShippingServicer, country: str, carrier: str, prefix: str
) -> None:
    shipment = (await shipping.ScheduleShipment(schedule(country=country), None)).shipment
    assert shipment.carrier == carrier
    assert shipment.tracking_number.startswith(prefix)


async def test_unsupported_country_is_a_failed_precondition(shipping: ShippingServicer) -> None:
    with pytest.raises(FailedPrecondition, match="shipping to KP is not supported"):
        await shipping.ScheduleShipment(schedule(country="KP"), None)
    with pytest.raises(NotFound):  # nothing was recorded
        await shipping.CancelShipment(pb.CancelShipmentRequest(order_id="o1"), None)


async def test_schedule_validation_names_fields(shipping: ShippingServicer) -> None:
    with pytest.raises(InvalidArgument) as err:
        await shipping.ScheduleShipment(pb.ScheduleShipmentRequest(), None)
    assert fields(err) == ["order_id", "address", "items"]
    bad = pb.ScheduleShipmentRequest(
        order_id="o1",
        address=Address(lines=[" "], country_code="de"),
        items=[LineItem(sku="", quantity=0)],
    )
    with pytest.raises(InvalidArgument) as err:
        await shipping.ScheduleShipment(bad, None)
    assert fields(err) == [
        "address.recipient",
        "address.lines[0]",
        "address.city",
        "address.postal_code",
        "address.country_code",
        "items[0].sku",
        "items[0].quantity",
    ]
    no_lines = schedule()
    del no_lines.address.lines[:]
    with pytest.raises(InvalidArgument) as err:
        await shipping.ScheduleShipment(no_lines, None)
    assert fields(err) == ["address.lines"]


async def test_schedule_is_idempotent_per_order(shipping: ShippingServicer) -> None:
    first = (await shipping.ScheduleShipment(schedule(), None)).shipment
    again = (await shipping.ScheduleShipment(schedule(), None)).shipment
    assert again == first
    other = (await shipping.ScheduleShipment(schedule("o2"), None)).shipment
    assert other.tracking_number != first.tracking_number


async def test_cancel(shipping: ShippingServicer) -> None:
    scheduled = (await shipping.ScheduleShipment(schedule(), None)).shipment
    request = pb.CancelShipmentRequest(order_id="o1", reason="order cancelled")
    for _ in range(2):
        cancelled = (await shipping.CancelShipment(request, None)).shipment
        assert cancelled.status == pb.SHIPMENT_STATUS_CANCELLED
        assert cancelled.shipment_id == scheduled.shipment_id
    # Scheduling a cancelled order again returns the cancelled shipment.
    assert (await shipping.ScheduleShipment(schedule(), None)).shipment == cancelled
    with pytest.raises(NotFound):
        await shipping.CancelShipment(pb.CancelShipmentRequest(order_id="unknown"), None)
    with pytest.raises(InvalidArgument) as err:
        await shipping.CancelShipment(pb.CancelShipmentRequest(), None)
    assert fields(err) == ["order_id"]


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOP_SHIPPING_UNSUPPORTED_COUNTRIES", raising=False)
    assert from_env(ShippingSettings).unsupported_countries == {"AQ", "KP"}
    monkeypatch.setenv("SHOP_SHIPPING_UNSUPPORTED_COUNTRIES", "ru, by")
    assert from_env(ShippingSettings).unsupported_countries == {"RU", "BY"}
    monkeypatch.setenv("SHOP_SHIPPING_UNSUPPORTED_COUNTRIES", "")
    assert from_env(ShippingSettings).unsupported_countries == frozenset()
