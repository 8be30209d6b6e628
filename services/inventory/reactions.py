"""The inventory's part of the order flow: reactions to the order's events.

Each handler runs inside the transaction that also records the incoming event as
processed (see ``meshkit.events.service_events``); the store's methods join it, so the stock moves,
the reservation record and the events emitted here commit together or not at all.

The order's reservation record, and its reservation step in the step ledger, make every
reaction idempotent per order, whichever event (or redelivery) brings the same step again:

- ``OrderPlaced``: reserve every line or none, once; an order whose reservation step was
  taken already, or that has the tombstone of a cancellation that came first (both in the
  step ledger, ``meshkit.events.steps``), gets nothing.
- ``OrderCancelled``: give reserved stock back, or leave a tombstone if nothing is
  reserved yet.
- ``OrderConfirmed``: turn reserved stock into sold stock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from meshkit.events.service_events import EventContext
from services.inventory.store import COMMITTED, RESERVED, InventoryStore
from shop.common.v1.line_item_pb2 import LineItem
from shop.events.v1 import events_pb2
from shop.inventory.v1 import inventory_pb2

log = logging.getLogger(__name__)

OUT_OF_STOCK = "out of stock: "


def out_of_stock_reason(short_skus: Iterable[str]) -> str:
    """``out of stock: SKU-A, SKU-B``: the reason of a StockRejected."""
    return OUT_OF_STOCK + ", ".join(short_skus)


class InventoryReactions:
    """The handlers of the inventory's events; register them with ``Events.on``."""

    def __init__(self, store: InventoryStore) -> None:
        self._store = store

    async def on_order_placed(self, ctx: EventContext, event: events_pb2.OrderPlaced) -> None:
        order_id = event.order_id
        if not await self._store.take_reservation_step(order_id):
            log.info("order %s: reserved already, or cancelled first; nothing to do", order_id)
            return
        reservation = await self._store.reserve(order_id, _quantities(event.items))
        if reservation.status == inventory_pb2.RESERVATION_STATUS_RESERVED:
            await ctx.emit(events_pb2.StockReserved(order_id=order_id, items=event.items))
        else:
            short = list(reservation.short_skus)
            await ctx.emit(
                events_pb2.StockRejected(
                    order_id=order_id, short_skus=short, reason=out_of_stock_reason(short)
                )
            )

    async def on_order_cancelled(self, ctx: EventContext, event: events_pb2.OrderCancelled) -> None:
        order_id = event.order_id
        status = await self._store.reservation_status(order_id)
        if status is None:
            await self._store.tombstone(order_id)
            log.info("order %s cancelled before its stock was reserved; tombstone left", order_id)
        elif status == RESERVED:
            await self._store.release(order_id)
            await ctx.emit(events_pb2.StockReleased(order_id=order_id, reason=event.reason))
        elif status == COMMITTED:
            log.warning(
                "order %s is cancelled but its stock is committed (the order was confirmed);"
                " a confirmed order cannot be cancelled, stock left sold",
                order_id,
            )
        # REJECTED or RELEASED: nothing is reserved, nothing to give back.

    async def on_order_confirmed(self, ctx: EventContext, event: events_pb2.OrderConfirmed) -> None:
        order_id = event.order_id
        status = await self._store.reservation_status(order_id)
        if status is None:
            # OrderPlaced precedes OrderConfirmed in the stream; its reaction has not been
            # applied yet (it failed and waits for redelivery). Try again later.
            raise LookupError(f"order {order_id} is confirmed but has no reservation yet")
        if status == RESERVED:
            await self._store.commit(order_id)
        elif status != COMMITTED:
            log.error(
                "order %s is confirmed but its reservation is %s; nothing to commit",
                order_id,
                status,
            )


def _quantities(items: Iterable[LineItem]) -> list[tuple[str, int]]:
    """(sku, quantity) per sku, in the order's line order; a repeated sku is summed, so the
    reservation never checks a sku's availability line by line (orders do not repeat skus,
    but a malformed event must not break the stock invariant)."""
    quantities: dict[str, int] = {}
    for item in items:
        quantities[item.sku] = quantities.get(item.sku, 0) + item.quantity
    return list(quantities.items())
