"""The PaymentService gRPC methods: validate the request, apply the rules, record it."""

from __future__ import annotations

from typing import Any

from meshkit.errors import NotFound, Violations, require
from services.payment import rules
from services.payment.store import PaymentStore
from services.shop_common.money import to_nanos, validate_money
from shop.payment.v1 import payment_pb2, payment_pb2_grpc


class PaymentServicer(payment_pb2_grpc.PaymentServiceServicer):
    """Captures, refunds and reads payments; ``context`` is never used."""

    def __init__(
        self, store: PaymentStore, max_amount_units: int = rules.DEFAULT_MAX_AMOUNT_UNITS
    ) -> None:
        self._store = store
        self._max_amount_units = max_amount_units

    async def CapturePayment(
        self, request: payment_pb2.CapturePaymentRequest, context: Any
    ) -> payment_pb2.CapturePaymentResponse:
        v = Violations("CapturePaymentRequest")
        v.check(bool(request.order_id), "order_id", "is required")
        amount = request.amount
        if v.check(request.HasField("amount"), "amount", "is required") and validate_money(
            v, "amount", amount
        ):
            v.check(to_nanos(amount) > 0, "amount", "must be greater than zero")
            v.check(
                amount.currency_code in rules.ACCEPTED_CURRENCIES,
                "amount.currency_code",
                "must be one of " + ", ".join(sorted(rules.ACCEPTED_CURRENCIES)),
            )
        v.check(bool(request.payment_token), "payment_token", "is required")
        v.raise_if_any()
        decision = rules.decide(request.payment_token, to_nanos(amount), self._max_amount_units)
        payment = await self._store.capture(request.order_id, amount, decision.decline_reason)
        return payment_pb2.CapturePaymentResponse(payment=payment)

    async def RefundPayment(
        self, request: payment_pb2.RefundPaymentRequest, context: Any
    ) -> payment_pb2.RefundPaymentResponse:
        require(request.order_id, "order_id", "RefundPaymentRequest")
        payment = await self._store.refund(request.order_id, request.reason)
        return payment_pb2.RefundPaymentResponse(payment=payment)

    async def GetPayment(
        self, request: payment_pb2.GetPaymentRequest, context: Any
    ) -> payment_pb2.GetPaymentResponse:
        require(request.payment_id, "payment_id", "GetPaymentRequest")
        payment = await self._store.get(request.payment_id)
        if payment is None:
            raise NotFound(f"payment {request.payment_id} not found")
        return payment_pb2.GetPaymentResponse(payment=payment)
