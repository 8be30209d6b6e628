"""Payments in the payment service's own SQLite database; all its SQL is here.

One row per order (``order_id`` is UNIQUE): that row is what makes capture and refund
idempotent per order, declined captures included.
"""

from __future__ import annotations

import uuid

import aiosqlite

from services.mesh.database import Database, fetch_one
from services.mesh.errors import FailedPrecondition, NotFound
from services.shop_common.money import format_money
from services.shop_common.times import now_micros, to_timestamp
from shop.common.v1.money_pb2 import Money
from shop.payment.v1 import payment_pb2

SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    payment_id     TEXT PRIMARY KEY,
    order_id       TEXT NOT NULL UNIQUE,
    amount_units   INTEGER NOT NULL,
    amount_nanos   INTEGER NOT NULL,
    currency       TEXT NOT NULL,
    status         TEXT NOT NULL,   -- CAPTURED | DECLINED | REFUNDED
    decline_reason TEXT NOT NULL,
    refund_reason  TEXT NOT NULL,
    create_time    INTEGER NOT NULL, -- epoch microseconds
    update_time    INTEGER NOT NULL
);
"""

CAPTURED = "CAPTURED"
DECLINED = "DECLINED"
REFUNDED = "REFUNDED"


class PaymentStore:
    def __init__(self, db: Database) -> None:
        self._db = db

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
                await conn.execute(
                    "INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, ?)",
                    (
                        "pay_" + uuid.uuid4().hex,
                        order_id,
                        amount.units,
                        amount.nanos,
                        amount.currency_code,
                        DECLINED if decline_reason else CAPTURED,
                        decline_reason,
                        now,
                        now,
                    ),
                )
                row = await fetch_one(
                    conn, "SELECT * FROM payments WHERE order_id = ?", (order_id,)
                )
        assert row is not None
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


def _payment(row: aiosqlite.Row) -> payment_pb2.Payment:
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
