"""Payments in the payment service's own SQLite database; all its SQL is here.

One row per order (``order_id`` is UNIQUE): that row is what makes capture and refund
idempotent per order, declined captures included.

An order's payment intent (``payment_intents``) is what the order flow's events leave
for a capture to come: OrderPlaced records the amount and token (PENDING), the capture
after StockReserved marks it DONE, and OrderCancelled marks it CANCELLED (or leaves a
CANCELLED tombstone when it comes first), so a later StockReserved captures nothing.
The token is kept only while the intent is PENDING.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from meshkit.database import Database, Row, fetch_one
from meshkit.errors import FailedPrecondition, NotFound
from meshkit.times import now_micros, to_timestamp
from services.shop_common.money import format_money
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
CREATE TABLE IF NOT EXISTS payment_intents (
    order_id       TEXT PRIMARY KEY,
    status         TEXT NOT NULL,   -- PENDING | DONE | CANCELLED
    amount_units   INTEGER NOT NULL,
    amount_nanos   INTEGER NOT NULL,
    currency       TEXT NOT NULL,
    payment_token  TEXT NOT NULL,   -- '' once the intent is no longer PENDING
    create_time    INTEGER NOT NULL, -- epoch microseconds
    update_time    INTEGER NOT NULL
);
"""

CAPTURED = "CAPTURED"
DECLINED = "DECLINED"
REFUNDED = "REFUNDED"

INTENT_PENDING = "PENDING"
INTENT_DONE = "DONE"
INTENT_CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class PaymentIntent:
    order_id: str
    status: str
    amount: Money
    payment_token: str


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

    async def for_order(self, order_id: str) -> payment_pb2.Payment | None:
        """The order's payment, read in a transaction (an event handler's own, if in one)."""
        async with self._db.transaction() as conn:
            row = await fetch_one(conn, "SELECT * FROM payments WHERE order_id = ?", (order_id,))
        return _payment(row) if row else None

    async def remember_intent(self, order_id: str, amount: Money, payment_token: str) -> bool:
        """Records the order's PENDING intent; False if it has one (or a tombstone) already,
        which is kept as it is."""
        now = now_micros()
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO payment_intents VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (order_id) DO NOTHING",
                (
                    order_id,
                    INTENT_PENDING,
                    amount.units,
                    amount.nanos,
                    amount.currency_code,
                    payment_token,
                    now,
                    now,
                ),
            )
            return cur.rowcount == 1

    async def intent(self, order_id: str) -> PaymentIntent | None:
        async with self._db.transaction() as conn:
            row = await fetch_one(
                conn, "SELECT * FROM payment_intents WHERE order_id = ?", (order_id,)
            )
        if row is None:
            return None
        return PaymentIntent(
            order_id=row["order_id"],
            status=row["status"],
            amount=Money(
                currency_code=row["currency"], units=row["amount_units"], nanos=row["amount_nanos"]
            ),
            payment_token=row["payment_token"],
        )

    async def finish_intent(self, order_id: str) -> None:
        """Marks a PENDING intent DONE (its capture was made) and forgets its token."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE payment_intents SET status = ?, payment_token = '', update_time = ?"
                " WHERE order_id = ? AND status = ?",
                (INTENT_DONE, now_micros(), order_id, INTENT_PENDING),
            )

    async def cancel_intent(self, order_id: str) -> None:
        """Marks the order's intent CANCELLED, or records a CANCELLED tombstone if it has none."""
        now = now_micros()
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO payment_intents VALUES (?, ?, 0, 0, '', '', ?, ?)"
                " ON CONFLICT (order_id) DO UPDATE SET status = excluded.status,"
                " payment_token = '', update_time = excluded.update_time"
                " WHERE payment_intents.status != excluded.status",
                (order_id, INTENT_CANCELLED, now, now),
            )


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
