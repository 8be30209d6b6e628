"""The order write model in the order service's own database: what the saga decides
on. Reads for clients come from the read model (view.py), never from here.

``order_state`` holds each order's status and when its saga times out;
``order_idempotency_keys`` which request each (customer, key) placed. Every method joins
the caller's transaction (``db.transaction()``), so a transition, the events it emits and
the read model's update commit together.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from meshkit.database import Database, Migrations, fetch_all, fetch_one
from meshkit.errors import FailedPrecondition
from meshkit.times import now_micros
from services.order.domain import PENDING, RANK, OrderDraft, status_name, status_value
from shop.order.v1 import order_pb2

# The order service's tables, this write model's and the read model's (view.py):
# migrations/, applied at start after the runtime's own.
SCHEMA = Migrations("order", Path(__file__).resolve().parent / "migrations")

Status = order_pb2.OrderStatus.ValueType


class NotYet(LookupError):
    """An event arrived before the one it follows was applied; it is delivered again."""


@dataclass(frozen=True)
class OverdueOrder:
    order_id: str
    status: Status


class OrderStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, draft: OrderDraft, saga_timeout: float) -> str | None:
        """Stores the draft as a PENDING order and returns None; or, when its idempotency key
        placed an order before, returns that order's id and stores nothing."""
        async with self._db.transaction() as conn:
            if draft.idempotency_key:
                row = await fetch_one(
                    conn,
                    "SELECT fingerprint, order_id FROM order_idempotency_keys"
                    " WHERE customer_id = ? AND key = ?",
                    (draft.customer_id, draft.idempotency_key),
                )
                if row is not None:
                    if row["fingerprint"] != draft.fingerprint:
                        raise FailedPrecondition(
                            f"idempotency_key {draft.idempotency_key!r} was already used for"
                            f" order {row['order_id']} with a different request"
                        )
                    return str(row["order_id"])
            now = now_micros()
            await conn.execute(
                "INSERT INTO order_state VALUES (?, ?, ?, ?, ?, ?)",
                (
                    draft.order_id,
                    draft.customer_id,
                    status_name(PENDING),
                    now,
                    now,
                    now + int(saga_timeout * 1_000_000),
                ),
            )
            if draft.idempotency_key:
                await conn.execute(
                    "INSERT INTO order_idempotency_keys VALUES (?, ?, ?, ?)",
                    (draft.customer_id, draft.idempotency_key, draft.fingerprint, draft.order_id),
                )
        return None

    async def status(self, order_id: str) -> Status | None:
        async with self._db.transaction() as conn:
            row = await fetch_one(
                conn, "SELECT status FROM order_state WHERE order_id = ?", (order_id,)
            )
        return status_value(row["status"]) if row else None

    async def advance(self, order_id: str, expected: Collection[Status], status: Status) -> bool:
        """Moves the order to ``status`` if it is in one of ``expected``; False if it cannot
        (unknown order, or it moved on already: cancelled, say).

        Raises ``NotYet`` if the order has not reached ``expected`` yet: the event that moves
        it there is still to be handled (by another instance of the service, or after a
        redelivery), so the caller's event must come back later.
        """
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                f"UPDATE order_state SET status = ?, update_time = ?"
                f" WHERE order_id = ? AND status IN ({', '.join('?' * len(expected))})",
                (status_name(status), now_micros(), order_id, *map(status_name, expected)),
            )
            if cur.rowcount == 1:
                return True
            row = await fetch_one(
                conn, "SELECT status FROM order_state WHERE order_id = ?", (order_id,)
            )
        if row is not None and RANK[status_value(row["status"])] < min(RANK[s] for s in expected):
            raise NotYet(f"order {order_id} is {row['status']}, not yet {status_name(status)}")
        return False

    async def overdue(self, limit: int = 100) -> list[OverdueOrder]:
        """Orders whose saga is past its deadline and not final, oldest deadline first."""
        async with self._db.transaction() as conn:
            rows = await fetch_all(
                conn,
                "SELECT order_id, status FROM order_state"
                " WHERE status NOT IN ('CONFIRMED', 'CANCELLED') AND deadline_time <= ?"
                " ORDER BY deadline_time LIMIT ?",
                (now_micros(), limit),
            )
        return [OverdueOrder(r["order_id"], status_value(r["status"])) for r in rows]
