"""The order read model (the query side of CQRS): order summaries with their status history,
built from events only, served by GetOrder, ListOrders and WatchOrder.

``order_views`` keeps one row per order: the columns clients filter and page on, and the
whole ``shop.order.v1.Order`` as it stands. ``apply`` folds one event into it; the service
calls it for every event it consumes and every event it emits, inside the transaction
that handles the event, so the view is never behind the write model and a redelivered
event (already recorded as processed) is never folded twice. Since the view is a function
of the event stream, it could be rebuilt by replaying the stream into an empty table.

Statuses only move forward (PENDING < STOCK_RESERVED < PAID < CONFIRMED | CANCELLED), so an
event that arrives after the order was cancelled adds nothing to its status.

Its table, ``order_views``, is in the order service's migrations (services/order/migrations/).
An event's fold reads the order's row ``FOR UPDATE``: instances of the service folding two
events of one order at once (on Postgres) take turns, and neither loses the other's change.
"""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message

from meshkit.database import Database, fetch_one
from services.order.domain import (
    CANCELLED,
    CONFIRMED,
    PAID,
    PENDING,
    RANK,
    STOCK_RESERVED,
    status_name,
)
from shop.events.v1 import events_pb2
from shop.events.v1.envelope_pb2 import EventEnvelope
from shop.order.v1 import order_pb2


class OrderView:
    def __init__(self, db: Database, changed: Callable[[str], None]) -> None:
        """``changed(order_id)`` is called once a change to the order's view has committed."""
        self._db = db
        self._changed = changed

    async def apply(self, envelope: EventEnvelope, event: Message) -> None:
        """Folds ``event`` into its order's view; must run inside ``db.transaction()``."""
        conn = self._db.in_transaction()
        order_id: str = event.order_id  # type: ignore[attr-defined]  (every order event has one)
        if isinstance(event, events_pb2.OrderPlaced):
            order = order_pb2.Order(
                order_id=event.order_id,
                customer_id=event.customer_id,
                items=event.items,
                total=event.total,
                status=PENDING,
                shipping_address=event.shipping_address,
                create_time=envelope.occur_time,
                update_time=envelope.occur_time,
                history=[
                    order_pb2.StatusChange(
                        status=PENDING, change_time=envelope.occur_time, reason="order placed"
                    )
                ],
            )
            await conn.execute(
                "INSERT INTO order_views (order_id, customer_id, status, data) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (order_id) DO NOTHING",
                (
                    order.order_id,
                    order.customer_id,
                    status_name(PENDING),
                    order.SerializeToString(),
                ),
            )
            self._db.after_commit(lambda: self._changed(order_id))
            return
        row = await fetch_one(
            conn, "SELECT data FROM order_views WHERE order_id = ? FOR UPDATE", (order_id,)
        )
        if row is None:
            # Every other event of an order follows its OrderPlaced, which comes first.
            raise LookupError(f"no view of order {order_id} yet")
        order = order_pb2.Order.FromString(row["data"])
        if not _fold(order, envelope, event):
            return
        order.update_time.CopyFrom(envelope.occur_time)
        await conn.execute(
            "UPDATE order_views SET status = ?, data = ? WHERE order_id = ?",
            (status_name(order.status), order.SerializeToString(), order.order_id),
        )
        self._db.after_commit(lambda: self._changed(order_id))

    async def get(self, order_id: str) -> order_pb2.Order | None:
        row = await self._db.fetch_one(
            "SELECT data FROM order_views WHERE order_id = ?", (order_id,)
        )
        return order_pb2.Order.FromString(row["data"]) if row else None

    async def list(
        self,
        *,
        customer_id: str,
        status: order_pb2.OrderStatus.ValueType | None,
        before_seq: int | None,
        limit: int,
    ) -> list[tuple[int, order_pb2.Order]]:
        """Up to ``limit`` orders placed before ``before_seq``, newest first, with their seq."""
        rows = await self._db.fetch_all(
            "SELECT seq, data FROM order_views"
            " WHERE seq < ? AND (? = '' OR customer_id = ?) AND (? = '' OR status = ?)"
            " ORDER BY seq DESC LIMIT ?",
            (
                before_seq if before_seq is not None else 2**63 - 1,
                customer_id,
                customer_id,
                status_name(status) if status is not None else "",
                status_name(status) if status is not None else "",
                limit,
            ),
        )
        return [(row["seq"], order_pb2.Order.FromString(row["data"])) for row in rows]


def _fold(order: order_pb2.Order, envelope: EventEnvelope, event: Message) -> bool:
    """Applies ``event`` to ``order``; False if it changes nothing."""
    match event:
        case events_pb2.StockReserved():
            return _move(order, envelope, STOCK_RESERVED, "stock reserved")
        case events_pb2.PaymentCaptured(payment_id=payment_id):
            if not _move(order, envelope, PAID, f"payment {payment_id} captured"):
                return False
            order.payment_id = payment_id
            return True
        case events_pb2.ShipmentScheduled(tracking_number=tracking):
            order.tracking_number = tracking
            return True
        case events_pb2.OrderConfirmed():
            reason = "shipment scheduled"
            if order.tracking_number:
                reason += f", tracking {order.tracking_number}"
            return _move(order, envelope, CONFIRMED, reason)
        case events_pb2.OrderCancelled(reason=reason):
            if not _move(order, envelope, CANCELLED, reason):
                return False
            order.cancel_reason = reason
            return True
    # StockRejected, PaymentFailed, ShipmentFailed: their reason arrives in OrderCancelled.
    return False


def _move(
    order: order_pb2.Order,
    envelope: EventEnvelope,
    status: order_pb2.OrderStatus.ValueType,
    reason: str,
) -> bool:
    if RANK[status] <= RANK[order.status]:
        return False
    order.status = status
    order.history.add(status=status, change_time=envelope.occur_time, reason=reason)
    return True
