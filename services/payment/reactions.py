"""The payment's part of the order flow: reactions to the order's events.

Each handler runs in the transaction that records the incoming event as processed (see
``meshkit.events.service_events``); the store's methods join it, so a capture, its intent's new
state and the event announcing it commit together or not at all.

- ``OrderPlaced``: remember what to charge (amount, token) as a PENDING intent; nothing
  is charged before the stock is reserved.
- ``StockReserved``: capture the intent once, by the same rules as ``CapturePayment``;
  emit ``PaymentCaptured`` or ``PaymentFailed`` (declined, over the limit, currency).
  An intent already CANCELLED (the order was cancelled first) charges nothing.
- ``OrderCancelled``: refund a captured payment (``PaymentRefunded``), or cancel the
  intent (leaving a tombstone if the intent has not arrived yet).
"""

from __future__ import annotations

import logging

from meshkit.events.service_events import EventContext
from services.payment import rules
from services.payment.store import PaymentStore
from services.shop_common.money import to_nanos
from shop.events.v1 import events_pb2
from shop.payment.v1 import payment_pb2

log = logging.getLogger(__name__)


class PaymentReactions:
    """The handlers of the payment's events; register them with ``Events.on``."""

    def __init__(self, store: PaymentStore, max_amount_units: int) -> None:
        self._store = store
        self._max_amount_units = max_amount_units

    async def on_order_placed(self, ctx: EventContext, event: events_pb2.OrderPlaced) -> None:
        if not await self._store.remember_intent(event.order_id, event.total, event.payment_token):
            log.info("order %s already has a payment intent; nothing to do", event.order_id)

    async def on_stock_reserved(self, ctx: EventContext, event: events_pb2.StockReserved) -> None:
        order_id = event.order_id
        intent = await self._store.intent(order_id)
        if intent is None:
            # OrderPlaced precedes StockReserved in the stream; its reaction has not been
            # applied yet (it failed and waits for redelivery). Try again later.
            raise LookupError(f"stock of order {order_id} is reserved but it has no intent yet")
        if not intent.pending:
            log.info("order %s: payment intent is %s; no capture", order_id, intent.status)
            return
        amount = intent.amount
        if amount.currency_code not in rules.ACCEPTED_CURRENCIES:
            decision = rules.Decision(captured=False, decline_reason="currency_not_accepted")
        else:
            decision = rules.decide(intent.payment_token, to_nanos(amount), self._max_amount_units)
        payment = await self._store.capture(order_id, amount, decision.decline_reason)
        await self._store.finish_intent(order_id)
        if payment.decline_reason:
            await ctx.emit(
                events_pb2.PaymentFailed(
                    order_id=order_id, reason=f"payment declined: {payment.decline_reason}"
                )
            )
        else:
            await ctx.emit(
                events_pb2.PaymentCaptured(
                    order_id=order_id, payment_id=payment.payment_id, amount=payment.amount
                )
            )

    async def on_order_cancelled(self, ctx: EventContext, event: events_pb2.OrderCancelled) -> None:
        order_id = event.order_id
        payment = await self._store.for_order(order_id)
        if payment is None:
            await self._store.cancel_intent(order_id)
            return
        if payment.status == payment_pb2.PAYMENT_STATUS_CAPTURED:
            refunded = await self._store.refund(order_id, event.reason)
            await ctx.emit(
                events_pb2.PaymentRefunded(
                    order_id=order_id, payment_id=refunded.payment_id, amount=refunded.amount
                )
            )
