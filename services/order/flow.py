"""The order saga, choreographed through events.

Choice: choreography. The order service does not call the other services to run an
order; it publishes ``OrderPlaced`` and each service reacts to the events it cares about
and publishes its answer (inventory, payment and shipping: their ``reactions.py``). The
order service owns the order's status and decides how the saga ends: it is the only one
to emit ``OrderConfirmed`` and ``OrderCancelled``, the events that finish or compensate.

The order's state machine (write model, store.py); each arrow is the event that moves it::

    PENDING ──StockReserved──▶ STOCK_RESERVED ──PaymentCaptured──▶ PAID ──ShipmentScheduled──▶
       │                             │                               │             CONFIRMED
       │ StockRejected               │ PaymentFailed                 │ ShipmentFailed   (emits
       ▼                             ▼                               ▼        OrderConfirmed:
    CANCELLED ◀──── CancelOrder, or the saga's deadline passing,     │        stock is sold)
    (emits OrderCancelled)  from any open status ◀───────────────────┘

What each service does on ``OrderCancelled`` is the compensation: inventory releases the
reserved stock (StockReleased), payment refunds a capture (PaymentRefunded), shipping
cancels a scheduled shipment. A service that sees ``OrderCancelled`` before it has done
its step leaves a tombstone, so the step never happens afterwards. Hence:

- out of stock: StockRejected → CANCELLED; payment never captured (its intent is cancelled);
- payment declined: PaymentFailed → CANCELLED; the reserved stock is released;
- a timeout at any step (``saga_timeout`` after placement, swept every second): CANCELLED,
  and every step already done is undone by the same compensations;
- CONFIRMED and CANCELLED are final; an event that arrives later changes nothing.

Every event carries the order id as correlation id, and the id of the event that caused
it as causation id. Transitions, the events they emit (outbox) and the read model's update
commit in one transaction with the record of the event that caused them.

Observability: PlaceOrder's span carries the order id (``mesh.correlation_id``), which is how
``make trace ORDER=<id>`` finds the order's trace; every saga that ends is counted in
``shop_order_saga_outcomes_total`` (outcome, and for a cancellation the class of reason),
once its transaction has committed.
"""

from __future__ import annotations

import asyncio
import logging

from google.protobuf.message import Message
from opentelemetry import trace
from prometheus_client import Counter

from meshkit.database import Database
from meshkit.errors import FailedPrecondition, NotFound
from meshkit.events.service_events import EventContext, Events
from meshkit.telemetry.tracing import CORRELATION_ID
from services.order.domain import (
    CANCELLED,
    CONFIRMED,
    FINAL,
    NOT_FINAL,
    PAID,
    PENDING,
    STOCK_RESERVED,
    OrderDraft,
    status_name,
)
from services.order.store import OrderStore
from services.order.view import OrderView
from shop.events.v1 import events_pb2
from shop.order.v1 import order_pb2

log = logging.getLogger(__name__)

DEFAULT_SAGA_TIMEOUT = 30.0  # seconds from placement to a final status
WAITING_FOR = {PENDING: "stock", STOCK_RESERVED: "payment", PAID: "shipment"}
# The class of a cancellation's reason, for the saga outcome metric.
REFUSALS = {
    events_pb2.StockRejected: "out_of_stock",
    events_pb2.PaymentFailed: "payment_failed",
    events_pb2.ShipmentFailed: "shipment_failed",
}


class OrderFlow:
    """Places and cancels orders, and moves them on the other services' events."""

    def __init__(
        self,
        db: Database,
        store: OrderStore,
        view: OrderView,
        events: Events,
        saga_timeout: float = DEFAULT_SAGA_TIMEOUT,
        outcomes: Counter | None = None,
    ) -> None:
        self._db = db
        self._store = store
        self._view = view
        self._events = events
        self.saga_timeout = saga_timeout
        self._outcomes = outcomes  # labels: outcome, reason
        events.on(events_pb2.StockReserved, self._on_stock_reserved)
        events.on(events_pb2.StockRejected, self._on_refusal)
        events.on(events_pb2.PaymentCaptured, self._on_payment_captured)
        events.on(events_pb2.PaymentFailed, self._on_refusal)
        events.on(events_pb2.ShipmentScheduled, self._on_shipment_scheduled)
        events.on(events_pb2.ShipmentFailed, self._on_refusal)

    async def place(self, draft: OrderDraft) -> order_pb2.Order:
        """Stores the order PENDING and emits OrderPlaced; answers at once. A retry with the
        same idempotency key gets the order that key placed, as it is now."""
        trace.get_current_span().set_attribute(CORRELATION_ID, draft.order_id)
        async with self._db.transaction():
            placed_before = await self._store.create(draft, self.saga_timeout)
            if placed_before is None:
                await self._emit(
                    draft.order_id,
                    events_pb2.OrderPlaced(
                        order_id=draft.order_id,
                        customer_id=draft.customer_id,
                        items=draft.items,
                        total=draft.total,
                        shipping_address=draft.shipping_address,
                        payment_token=draft.payment_token,
                    ),
                )
        return await self._read(placed_before or draft.order_id)

    async def cancel(self, order_id: str, reason: str) -> order_pb2.Order:
        """Cancels an open order (its compensations follow); a final one is refused."""
        why = f"cancelled by request: {reason}" if reason else "cancelled by request"
        async with self._db.transaction():
            status = await self._store.status(order_id)
            if status is None:
                raise NotFound(f"order {order_id} not found")
            if status in FINAL:
                raise FailedPrecondition(
                    f"order {order_id} is already {status_name(status).lower()}"
                )
            await self._cancel(order_id, why, cause="requested")
        return await self._read(order_id)

    async def sweep_forever(self, interval: float = 1.0) -> None:
        """Cancels the orders whose saga is past its deadline, so none stays open."""
        while True:
            await asyncio.sleep(min(interval, self.saga_timeout / 4))
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("saga timeout sweep failed")

    async def sweep(self) -> int:
        """One pass of the sweeper; the number of orders it cancelled."""
        cancelled = 0
        for overdue in await self._store.overdue():
            reason = (
                f"saga timed out after {self.saga_timeout:g}s"
                f" waiting for {WAITING_FOR.get(overdue.status, 'a step')}"
            )
            async with self._db.transaction():
                if await self._cancel(overdue.order_id, reason, cause="timeout"):
                    cancelled += 1
                    log.warning("order %s: %s", overdue.order_id, reason)
        return cancelled

    async def _on_stock_reserved(self, ctx: EventContext, event: events_pb2.StockReserved) -> None:
        await self._view.apply(ctx.envelope, event)
        await self._store.advance(event.order_id, {PENDING}, STOCK_RESERVED)

    async def _on_payment_captured(
        self, ctx: EventContext, event: events_pb2.PaymentCaptured
    ) -> None:
        await self._view.apply(ctx.envelope, event)
        await self._store.advance(event.order_id, {STOCK_RESERVED}, PAID)

    async def _on_shipment_scheduled(
        self, ctx: EventContext, event: events_pb2.ShipmentScheduled
    ) -> None:
        await self._view.apply(ctx.envelope, event)
        if await self._store.advance(event.order_id, {PAID}, CONFIRMED):
            await self._emit(
                event.order_id, events_pb2.OrderConfirmed(order_id=event.order_id), ctx
            )
            self._count("confirmed", "")

    async def _on_refusal(
        self,
        ctx: EventContext,
        event: events_pb2.StockRejected | events_pb2.PaymentFailed | events_pb2.ShipmentFailed,
    ) -> None:
        await self._view.apply(ctx.envelope, event)
        await self._cancel(event.order_id, event.reason, ctx, cause=REFUSALS[type(event)])

    async def _cancel(
        self, order_id: str, reason: str, ctx: EventContext | None = None, *, cause: str
    ) -> bool:
        """CANCELLED and OrderCancelled, if the order is open; in the caller's transaction.
        ``cause`` is the class of ``reason`` (out_of_stock, timeout, ...), for the metric."""
        if not await self._store.advance(order_id, NOT_FINAL, CANCELLED):
            return False
        await self._emit(order_id, events_pb2.OrderCancelled(order_id=order_id, reason=reason), ctx)
        self._count("cancelled", cause)
        return True

    def _count(self, outcome: str, cause: str) -> None:
        """Counts a saga's end once the current transaction commits."""
        if self._outcomes is not None:
            child = self._outcomes.labels(outcome, cause)
            self._db.after_commit(lambda: child.inc())

    async def _emit(self, order_id: str, event: Message, ctx: EventContext | None = None) -> None:
        """Emits ``event`` (caused by ``ctx``'s event, if any) and folds it into the view."""
        if ctx is not None:
            envelope = await ctx.emit(event)
        else:
            envelope = await self._events.emit(event, correlation_id=order_id)
        await self._view.apply(envelope, event)

    async def _read(self, order_id: str) -> order_pb2.Order:
        order = await self._view.get(order_id)
        if order is None:
            raise NotFound(f"order {order_id} not found")
        return order
