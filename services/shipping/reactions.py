"""The shipping's part of the order flow: reactions to the order's events.

Each handler runs in the transaction that records the incoming event as processed (see
``meshkit.events.service_events``); the store's methods join it, so a shipment, its request's new
state and the event announcing it commit together or not at all.

- ``OrderPlaced``: remember where and what to ship (a PENDING request); nothing ships
  before the payment is captured.
- ``PaymentCaptured``: schedule the shipment once with the destination's carrier, by the
  same rules as ``ScheduleShipment``; emit ``ShipmentScheduled``, or ``ShipmentFailed``
  for a destination shipping refuses. A request already CANCELLED ships nothing.
- ``OrderCancelled``: cancel a scheduled shipment, or close the request (leaving a
  tombstone if the request has not arrived yet).
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from meshkit.events.service_events import EventContext
from services.shipping import rules
from services.shipping.store import ShippingStore
from shop.events.v1 import events_pb2
from shop.shipping.v1 import shipping_pb2

log = logging.getLogger(__name__)


class ShippingReactions:
    """The handlers of the shipping's events; register them with ``Events.on``."""

    def __init__(self, store: ShippingStore, unsupported_countries: Collection[str]) -> None:
        self._store = store
        self._unsupported = frozenset(unsupported_countries)

    async def on_order_placed(self, ctx: EventContext, event: events_pb2.OrderPlaced) -> None:
        if not await self._store.remember_request(
            event.order_id, event.shipping_address, event.items
        ):
            log.info("order %s already has a shipping request; nothing to do", event.order_id)

    async def on_payment_captured(
        self, ctx: EventContext, event: events_pb2.PaymentCaptured
    ) -> None:
        order_id = event.order_id
        request = await self._store.request(order_id)
        if request is None:
            # OrderPlaced precedes PaymentCaptured in the stream; its reaction has not been
            # applied yet (it failed and waits for redelivery). Try again later.
            raise LookupError(f"order {order_id} is paid but has no shipping request yet")
        if not request.pending:
            log.info("order %s: shipping request is %s; nothing to ship", order_id, request.status)
            return
        await self._store.finish_request(order_id)
        address, items = request.address, request.items
        if refused := rules.refusal(address.country_code, self._unsupported):
            await ctx.emit(events_pb2.ShipmentFailed(order_id=order_id, reason=refused))
            return
        carrier = rules.carrier_for(address.country_code)
        shipment = await self._store.schedule(
            order_id, address, items, carrier, rules.tracking_number(carrier)
        )
        await ctx.emit(
            events_pb2.ShipmentScheduled(
                order_id=order_id,
                shipment_id=shipment.shipment_id,
                carrier=shipment.carrier,
                tracking_number=shipment.tracking_number,
            )
        )

    async def on_order_cancelled(self, ctx: EventContext, event: events_pb2.OrderCancelled) -> None:
        order_id = event.order_id
        shipment = await self._store.for_order(order_id)
        if shipment is not None and shipment.status == shipping_pb2.SHIPMENT_STATUS_SCHEDULED:
            await self._store.cancel(order_id, event.reason)
        await self._store.cancel_request(order_id)
