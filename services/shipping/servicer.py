"""The ShippingService gRPC methods: validate the request, pick a carrier, record it."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from meshkit.errors import FailedPrecondition, NotFound, Violations, require
from services.shipping import rules
from services.shipping.store import ShippingStore
from services.shop_common.address import validate_address
from shop.shipping.v1 import shipping_pb2, shipping_pb2_grpc


class ShippingServicer(shipping_pb2_grpc.ShippingServiceServicer):
    """Schedules, cancels and reads shipments; ``context`` is never used."""

    def __init__(
        self,
        store: ShippingStore,
        unsupported_countries: Collection[str] = rules.DEFAULT_UNSUPPORTED_COUNTRIES,
    ) -> None:
        self._store = store
        self._unsupported = frozenset(unsupported_countries)

    async def ScheduleShipment(
        self, request: shipping_pb2.ScheduleShipmentRequest, context: Any
    ) -> shipping_pb2.ScheduleShipmentResponse:
        v = Violations("ScheduleShipmentRequest")
        v.check(bool(request.order_id), "order_id", "is required")
        if v.check(request.HasField("address"), "address", "is required"):
            validate_address(v, "address", request.address)
        v.check(len(request.items) > 0, "items", "needs at least one item")
        for i, item in enumerate(request.items):
            v.check(bool(item.sku), f"items[{i}].sku", "is required")
            v.check(item.quantity >= 1, f"items[{i}].quantity", "must be at least 1")
        v.raise_if_any()
        country = request.address.country_code
        if refused := rules.refusal(country, self._unsupported):
            raise FailedPrecondition(f"{refused} (address.country_code)")
        carrier = rules.carrier_for(country)
        shipment = await self._store.schedule(
            request.order_id,
            request.address,
            request.items,
            carrier,
            rules.tracking_number(carrier),
        )
        return shipping_pb2.ScheduleShipmentResponse(shipment=shipment)

    async def CancelShipment(
        self, request: shipping_pb2.CancelShipmentRequest, context: Any
    ) -> shipping_pb2.CancelShipmentResponse:
        require(request.order_id, "order_id", "CancelShipmentRequest")
        shipment = await self._store.cancel(request.order_id, request.reason)
        return shipping_pb2.CancelShipmentResponse(shipment=shipment)

    async def GetShipment(
        self, request: shipping_pb2.GetShipmentRequest, context: Any
    ) -> shipping_pb2.GetShipmentResponse:
        require(request.shipment_id, "shipment_id", "GetShipmentRequest")
        shipment = await self._store.get(request.shipment_id)
        if shipment is None:
            raise NotFound(f"shipment {request.shipment_id} not found")
        return shipping_pb2.GetShipmentResponse(shipment=shipment)
