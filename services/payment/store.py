"""Payments in the payment service's own database; all its SQL is here.

One row per order (``order_id`` is UNIQUE): that row is what makes capture and refund
idempotent per order, declined captures included.

An order's payment intent is what the order flow's events leave for a capture to come,
kept as the "capture" step of the runtime's step ledger (``meshkit.events.steps``):
OrderPlaced records the amount and token (PENDING), the capture after StockReserved marks
it DONE, and OrderCancelled marks it CANCELLED (or leaves a CANCELLED tombstone when it
comes first), so a later StockReserved captures nothing. The token is kept only while the
intent is PENDING.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from meshkit.database import Database, Migrations, Row, fetch_one
from meshkit.database.protojson import ProtoJson
from meshkit.errors import FailedPrecondition, NotFound
from meshkit.events.steps import StepLedger
from meshkit.times import now_micros, to_timestamp
from services.shop_common.money import format_money
from shop.common.v1.money_pb2 import Money
from shop.payment.v1 import payment_pb2

# Its tables: migrations/ (applied at start, after the runtime's own: the step ledger's).
SCHEMA = Migrations("payment", Path(__file__).resolve().parent / "migrations")

CAPTURED = "CAPTURED"
DECLINED = "DECLINED"
REFUNDED = "REFUNDED"
# an intent's amount as proto JSON (what json_format writes), without json_format's cost
MONEY = ProtoJson(Money)


@dataclass(frozen=True)
class PaymentIntent:
    order_id: str
    pending: bool  # False once captured or cancelled (then amount and token are empty)
    status: str  # the step's: PENDING | DONE | CANCELLED
    amount: Money
    payment_token: str


class PaymentStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._intents = StepLedger(db, "capture")

    async def get(self, payment_id: str) -> payment_pb2.Payment | None:
        row = await self._db.fetch_one("SELECT * FROM payments WHERE payment_id = ?", (payment_id,))
        return _payment(row) if row else None

    async def capture(
        self, order_id: str, amount: Money, decline_reason: str
    ) -> payment_pb2.Payment:
        """Records the order's payment (DECLINED if ``decline_reason``), or returns the first one.

        A retry with another amount is refused: it is not the same capture.
        """
        now = now_micros()
        async with self._db.transaction() as conn:
            row = await fetch_one(conn, "SELECT * FROM payments WHERE order_id = ?", (order_id,))
            if row is None:
                payment_id = "pay_" + uuid.uuid4().hex
                status = DECLINED if decline_reason else CAPTURED
                await conn.execute(
                    "INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, ?)",
                    (
                        payment_id,
                        order_id,
                        amount.units,
                        amount.nanos,
                        amount.currency_code,
                        status,
                        decline_reason,
                        now,
                        now,
                    ),
                )
                # what was just written (not read back)
                return payment_pb2.Payment(
                    payment_id=payment_id,
                    order_id=order_id,
                    amount=amount,
                    status=payment_pb2.PaymentStatus.Value("PAYMENT_STATUS_" + status),
                    decline_reason=decline_reason,
                    create_time=to_timestamp(now),
                    update_time=to_timestamp(now),
                )
        payment = _payment(row)
        if payment.amount != amount:
            raise FailedPrecondition(
                f"order {order_id} already has a payment of {format_money(payment.amount)},"
                f" not {format_money(amount)}"
            )
        return payment

    async def refund(self, order_id: str, reason: str) -> payment_pb2.Payment:
        """Refunds a captured payment; refunded and declined ones are returned unchanged."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE payments SET status = ?, refund_reason = ?, update_time = ?"
                " WHERE order_id = ? AND status = ?",
                (REFUNDED, reason, now_micros(), order_id, CAPTURED),
            )
            row = await fetch_one(conn, "SELECT * FROM payments WHERE order_id = ?", (order_id,))
        if row is None:
            raise NotFound(f"no payment for order {order_id}")
        return _payment(row)

    async def for_order(self, order_id: str) -> payment_pb2.Payment | None:
        """The order's payment, read in a transaction (an event handler's own, if in one).

        The order's intent is locked first (``FOR UPDATE``), as the capture locks it: a
        capture in flight elsewhere (another instance, on Postgres) is waited for and its
        payment seen, so a cancellation that follows it refunds it."""
        async with self._db.transaction() as conn:
            await self._intents.get(order_id)
            row = await fetch_one(conn, "SELECT * FROM payments WHERE order_id = ?", (order_id,))
        return _payment(row) if row else None

    async def remember_intent(self, order_id: str, amount: Money, payment_token: str) -> bool:
        """Records the order's PENDING intent; False if it has one (or a tombstone) already,
        which is kept as it is."""
        payload = {"amount": MONEY.to_dict(amount), "payment_token": payment_token}
        return await self._intents.remember(order_id, payload)

    async def intent(self, order_id: str) -> PaymentIntent | None:
        step = await self._intents.get(order_id)
        if step is None:
            return None
        payload = step.payload or {}
        return PaymentIntent(
            order_id=order_id,
            pending=step.pending,
            status=step.status,
            amount=MONEY.from_dict(payload.get("amount", {})),
            payment_token=payload.get("payment_token", ""),
        )

    async def finish_intent(self, order_id: str) -> None:
        """Marks a PENDING intent DONE (its capture was made) and forgets its token."""
        await self._intents.finish(order_id)

    async def cancel_intent(self, order_id: str) -> None:
        """Marks the order's intent CANCELLED, or records a CANCELLED tombstone if it has none."""
        await self._intents.cancel(order_id)


def _payment(row: Row) -> payment_pb2.Payment:
    return payment_pb2.Payment(
        payment_id=row["payment_id"],
        order_id=row["order_id"],
        amount=Money(
            currency_code=row["currency"], units=row["amount_units"], nanos=row["amount_nanos"]
        ),
        status=payment_pb2.PaymentStatus.Value("PAYMENT_STATUS_" + row["status"]),
        decline_reason=row["decline_reason"],
        create_time=to_timestamp(row["create_time"]),
        update_time=to_timestamp(row["update_time"]),
    )
