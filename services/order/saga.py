"""The order saga, orchestrated synchronously inside PlaceOrder (it moves to events later).

State machine; every arrow is one transition, appended to the order's status_history::

    PENDING ──reserve stock──▶ STOCK_RESERVED ──capture payment──▶ PAID ──schedule shipment,
       │                             │                              │    commit stock──▶ CONFIRMED
       │ stock rejected              │ payment declined             │
       ▼                             ▼ (release stock)              │ a step fails (cancel
    CANCELLED                     CANCELLED                         ▼ shipment, refund, release)
                                                                 CANCELLED

A rejection or a decline is an answer: the order is cancelled with the reason
("out of stock: SKU-X", "payment declined: card_declined") after undoing the steps before.
A downstream call that fails (``grpc.aio.AioRpcError``) at any step cancels the order too,
with the step and status code as reason ("schedule shipment failed: UNAVAILABLE: ..."), after
undoing every step begun, the failed one included since it may have taken effect before its
answer was lost. Undoing is best effort: each compensation is idempotent downstream, one that
fails is logged and does not stop the others, and none is bound by the caller's deadline,
which may be what just ran out. PlaceOrder then returns the CANCELLED order, except that a
step's DEADLINE_EXCEEDED or CANCELLED is re-raised (the mesh forwards that code): the
caller's own time is up.

The saga runs in its own task, so it finishes (or compensates) even if PlaceOrder's caller
goes away. CancelOrder of an order whose saga runs asks it to stop before its next step and
waits for it; of an order no saga runs for (a crash left it mid-way) it undoes every step
and cancels it. CONFIRMED and CANCELLED are final.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from services.mesh import deadlines
from services.mesh.errors import FailedPrecondition, NotFound
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
from services.order.watchers import OrderWatchers
from shop.inventory.v1 import inventory_pb2
from shop.order.v1 import order_pb2
from shop.payment.v1 import payment_pb2
from shop.shipping.v1 import shipping_pb2

log = logging.getLogger(__name__)

# Step failures that also fail PlaceOrder: they mean the incoming call's time is up.
PROPAGATED_CODES = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED})

# What a step leaves behind that compensation must undo.
STOCK, PAYMENT, SHIPMENT = "stock", "payment", "shipment"


class InventoryClient(Protocol):
    """The inventory calls the saga makes; a gRPC stub or an in-process fake."""

    def ReserveStock(
        self, request: inventory_pb2.ReserveStockRequest
    ) -> Awaitable[inventory_pb2.ReserveStockResponse]: ...
    def ReleaseStock(
        self, request: inventory_pb2.ReleaseStockRequest
    ) -> Awaitable[inventory_pb2.ReleaseStockResponse]: ...
    def CommitStock(
        self, request: inventory_pb2.CommitStockRequest
    ) -> Awaitable[inventory_pb2.CommitStockResponse]: ...


class PaymentClient(Protocol):
    def CapturePayment(
        self, request: payment_pb2.CapturePaymentRequest
    ) -> Awaitable[payment_pb2.CapturePaymentResponse]: ...
    def RefundPayment(
        self, request: payment_pb2.RefundPaymentRequest
    ) -> Awaitable[payment_pb2.RefundPaymentResponse]: ...


class ShippingClient(Protocol):
    def ScheduleShipment(
        self, request: shipping_pb2.ScheduleShipmentRequest
    ) -> Awaitable[shipping_pb2.ScheduleShipmentResponse]: ...
    def CancelShipment(
        self, request: shipping_pb2.CancelShipmentRequest
    ) -> Awaitable[shipping_pb2.CancelShipmentResponse]: ...


class _Stop(Exception):
    """Ends the saga early with a cancellation for ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Run:
    """One running saga: where it is, what it must undo, whether it was asked to stop."""

    order_id: str
    step: str = "place order"
    begun: set[str] = field(default_factory=set)
    stop_reason: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class OrderSaga:
    """Places orders across inventory, payment and shipping, and cancels them."""

    def __init__(
        self,
        store: OrderStore,
        watchers: OrderWatchers,
        inventory: InventoryClient,
        payment: PaymentClient,
        shipping: ShippingClient,
    ) -> None:
        self._store = store
        self._watchers = watchers
        self._inventory = inventory
        self._payment = payment
        self._shipping = shipping
        self._running: dict[str, _Run] = {}
        self._tasks: set[asyncio.Task[order_pb2.Order]] = set()

    async def place(self, draft: OrderDraft) -> order_pb2.Order:
        """Creates the order and runs the saga to a final status; an idempotent retry
        gets the order its key placed, as it is now."""
        run = _Run(draft.order_id)
        # Registered before the order exists, so CancelOrder always sees a running saga.
        self._running[run.order_id] = run
        try:
            order, created = await self._store.create(draft)
        except BaseException:
            self._end(run)
            raise
        if not created:
            self._end(run)
            return order
        self._watchers.publish(order)
        task = asyncio.create_task(self._run(run, draft), name=f"saga {run.order_id}")
        self._tasks.add(task)
        task.add_done_callback(_forget(self._tasks))
        return await asyncio.shield(task)

    async def cancel(self, order_id: str, reason: str) -> order_pb2.Order:
        """Cancels a non-final order, undoing what its saga did; a final one is refused."""
        why = f"cancelled by request: {reason}" if reason else "cancelled by request"
        run = self._running.get(order_id)
        if run is not None:
            run.stop_reason = run.stop_reason or why
            await run.done.wait()
            order = await self._store.get(order_id)
            if order is not None and order.status != CANCELLED:
                raise FailedPrecondition(
                    f"order {order_id} is already {status_name(order.status).lower()}"
                )
        else:
            order = await self._store.get(order_id)
            if order is not None and order.status in FINAL:
                raise FailedPrecondition(
                    f"order {order_id} is already {status_name(order.status).lower()}"
                )
            if order is not None:
                await self._compensate(order_id, {STOCK, PAYMENT, SHIPMENT}, why)
                order = await self._advance(order_id, NOT_FINAL, CANCELLED, why)
        if order is None:
            raise NotFound(f"order {order_id} not found")
        return order

    async def drain(self) -> None:
        """Waits for running sagas, so a shutdown does not leave orders half done."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, run: _Run, draft: OrderDraft) -> order_pb2.Order:
        try:
            return await self._forward(run, draft)
        except _Stop as stop:
            return await self._abort(run, stop.reason)
        except grpc.aio.AioRpcError as err:
            reason = f"{run.step} failed: {err.code().name}"
            if err.details():
                reason += f": {err.details()}"
            order = await self._abort(run, reason)
            if err.code() in PROPAGATED_CODES:
                raise
            return order
        except Exception:
            log.exception("order %s: saga failed at %s", run.order_id, run.step)
            await self._abort(run, f"{run.step} failed: internal error")
            raise
        finally:
            self._end(run)

    async def _forward(self, run: _Run, draft: OrderDraft) -> order_pb2.Order:
        order_id = draft.order_id
        self._begin(run, "reserve stock", STOCK)
        reservation = (
            await self._inventory.ReserveStock(
                inventory_pb2.ReserveStockRequest(
                    order_id=order_id,
                    items=[
                        inventory_pb2.StockQuantity(sku=item.sku, quantity=item.quantity)
                        for item in draft.items
                    ],
                )
            )
        ).reservation
        if reservation.status == inventory_pb2.RESERVATION_STATUS_REJECTED:
            run.begun.discard(STOCK)
            raise _Stop("out of stock: " + ", ".join(reservation.short_skus))
        _expect(
            run,
            reservation.status == inventory_pb2.RESERVATION_STATUS_RESERVED,
            inventory_pb2.ReservationStatus.Name(reservation.status),
        )
        await self._advance(order_id, {PENDING}, STOCK_RESERVED, "stock reserved")

        self._begin(run, "capture payment", PAYMENT)
        payment = (
            await self._payment.CapturePayment(
                payment_pb2.CapturePaymentRequest(
                    order_id=order_id, amount=draft.total, payment_token=draft.payment_token
                )
            )
        ).payment
        if payment.status == payment_pb2.PAYMENT_STATUS_DECLINED:
            run.begun.discard(PAYMENT)
            raise _Stop(f"payment declined: {payment.decline_reason}")
        _expect(
            run,
            payment.status == payment_pb2.PAYMENT_STATUS_CAPTURED,
            payment_pb2.PaymentStatus.Name(payment.status),
        )
        await self._advance(
            order_id,
            {STOCK_RESERVED},
            PAID,
            f"payment {payment.payment_id} captured",
            payment_id=payment.payment_id,
        )

        self._begin(run, "schedule shipment", SHIPMENT)
        shipment = (
            await self._shipping.ScheduleShipment(
                shipping_pb2.ScheduleShipmentRequest(
                    order_id=order_id, address=draft.shipping_address, items=draft.items
                )
            )
        ).shipment
        _expect(
            run,
            shipment.status == shipping_pb2.SHIPMENT_STATUS_SCHEDULED,
            shipping_pb2.ShipmentStatus.Name(shipment.status),
        )
        self._begin(run, "commit stock")
        await self._inventory.CommitStock(inventory_pb2.CommitStockRequest(order_id=order_id))
        return await self._advance(
            order_id,
            {PAID},
            CONFIRMED,
            f"shipment scheduled with {shipment.carrier}, tracking {shipment.tracking_number}",
            tracking_number=shipment.tracking_number,
        )

    def _begin(self, run: _Run, step: str, leaves: str | None = None) -> None:
        """Enters ``step`` unless CancelOrder asked the saga to stop."""
        if run.stop_reason is not None:
            raise _Stop(run.stop_reason)
        run.step = step
        if leaves:
            run.begun.add(leaves)

    async def _abort(self, run: _Run, reason: str) -> order_pb2.Order:
        await self._compensate(run.order_id, run.begun, reason)
        return await self._advance(run.order_id, NOT_FINAL, CANCELLED, reason)

    async def _advance(
        self,
        order_id: str,
        expected: Collection[order_pb2.OrderStatus.ValueType],
        status: order_pb2.OrderStatus.ValueType,
        reason: str,
        **fields: str,
    ) -> order_pb2.Order:
        order = await self._store.transition(order_id, status, reason, expected=expected, **fields)
        self._watchers.publish(order)
        return order

    async def _compensate(self, order_id: str, begun: Collection[str], reason: str) -> None:
        """Undoes the begun steps, newest first, each call with its method's own deadline."""
        if begun:
            undo = self._undo_steps(order_id, begun, reason)
            await asyncio.create_task(undo, context=deadlines.detached_context())

    async def _undo_steps(self, order_id: str, begun: Collection[str], reason: str) -> None:
        if SHIPMENT in begun:
            request = shipping_pb2.CancelShipmentRequest(order_id=order_id, reason=reason)
            await _undo(order_id, "cancel shipment", lambda: self._shipping.CancelShipment(request))
        if PAYMENT in begun:
            refund = payment_pb2.RefundPaymentRequest(order_id=order_id, reason=reason)
            await _undo(order_id, "refund payment", lambda: self._payment.RefundPayment(refund))
        if STOCK in begun:
            release = inventory_pb2.ReleaseStockRequest(order_id=order_id)
            await _undo(order_id, "release stock", lambda: self._inventory.ReleaseStock(release))

    def _end(self, run: _Run) -> None:
        self._running.pop(run.order_id, None)
        run.done.set()


async def _undo(order_id: str, what: str, call: Callable[[], Awaitable[object]]) -> None:
    """One compensation, best effort: NOT_FOUND means the step never took effect."""
    try:
        await call()
    except grpc.aio.AioRpcError as err:
        if err.code() != grpc.StatusCode.NOT_FOUND:
            log.warning(
                "order %s: %s failed: %s %s", order_id, what, err.code().name, err.details()
            )
    except Exception:
        log.exception("order %s: %s failed", order_id, what)


def _expect(run: _Run, ok: bool, answer: str) -> None:
    """Stops the saga on an answer no correct downstream gives for a new order."""
    if not ok:
        raise _Stop(f"{run.step} failed: unexpected answer {answer}")


def _forget(
    tasks: set[asyncio.Task[order_pb2.Order]],
) -> Callable[[asyncio.Task[order_pb2.Order]], None]:
    """Drops a finished saga task and retrieves its exception, which its caller may never."""

    def done(task: asyncio.Task[order_pb2.Order]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()

    return done
