"""The order write model in the order service's own SQLite database; all its SQL is here.

``orders`` holds the current state, ``order_items`` the lines, ``status_history`` every
transition, ``idempotency_keys`` which request each (customer, key) placed. ``orders.seq``
is the creation order, so "newest first" paging is stable whatever the clock does.
"""

from __future__ import annotations

from collections.abc import Collection

import aiosqlite
from google.protobuf import json_format

from services.mesh.database import Database, fetch_one
from services.mesh.errors import FailedPrecondition, NotFound
from services.order.domain import PENDING, OrderDraft, status_name, status_value
from services.shop_common.times import now_micros, to_timestamp
from shop.common.v1.address_pb2 import Address
from shop.common.v1.line_item_pb2 import LineItem
from shop.common.v1.money_pb2 import Money
from shop.order.v1 import order_pb2

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id         TEXT NOT NULL UNIQUE,
    customer_id      TEXT NOT NULL,
    status           TEXT NOT NULL,  -- PENDING | STOCK_RESERVED | PAID | CONFIRMED | CANCELLED
    total_units      INTEGER NOT NULL,
    total_nanos      INTEGER NOT NULL,
    currency         TEXT NOT NULL,
    shipping_address TEXT NOT NULL,  -- proto JSON of shop.common.v1.Address
    cancel_reason    TEXT NOT NULL,
    payment_id       TEXT NOT NULL,
    tracking_number  TEXT NOT NULL,
    create_time      INTEGER NOT NULL, -- epoch microseconds
    update_time      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer_id, seq);
CREATE INDEX IF NOT EXISTS orders_by_status ON orders (status, seq);
CREATE TABLE IF NOT EXISTS order_items (
    order_id    TEXT NOT NULL REFERENCES orders (order_id),
    line        INTEGER NOT NULL,
    sku         TEXT NOT NULL,
    quantity    INTEGER NOT NULL,
    price_units INTEGER NOT NULL,
    price_nanos INTEGER NOT NULL,
    currency    TEXT NOT NULL,
    PRIMARY KEY (order_id, line)
);
CREATE TABLE IF NOT EXISTS status_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id    TEXT NOT NULL REFERENCES orders (order_id),
    status      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    change_time INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS status_history_by_order ON status_history (order_id, id);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    customer_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,  -- sha256 of the PlaceOrderRequest
    order_id    TEXT NOT NULL REFERENCES orders (order_id),
    PRIMARY KEY (customer_id, key)
);
"""


class OrderStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, draft: OrderDraft) -> tuple[order_pb2.Order, bool]:
        """Stores a PENDING order and returns it with True; or, when its idempotency key was
        used before, returns the order that key placed with False."""
        async with self._db.transaction() as conn:
            existing = await self._placed_with_key(conn, draft)
            if existing is None:
                await self._insert(conn, draft)
        order = await self.get(existing or draft.order_id)
        assert order is not None
        return order, existing is None

    async def _placed_with_key(self, conn: aiosqlite.Connection, draft: OrderDraft) -> str | None:
        """The order placed with the draft's key; the same key with another request is refused."""
        if not draft.idempotency_key:
            return None
        row = await fetch_one(
            conn,
            "SELECT fingerprint, order_id FROM idempotency_keys WHERE customer_id = ? AND key = ?",
            (draft.customer_id, draft.idempotency_key),
        )
        if row is None:
            return None
        if row["fingerprint"] != draft.fingerprint:
            raise FailedPrecondition(
                f"idempotency_key {draft.idempotency_key!r} was already used for order"
                f" {row['order_id']} with a different request"
            )
        return str(row["order_id"])

    async def _insert(self, conn: aiosqlite.Connection, draft: OrderDraft) -> None:
        now = now_micros()
        await conn.execute(
            "INSERT INTO orders (order_id, customer_id, status, total_units, total_nanos, currency,"
            " shipping_address, cancel_reason, payment_id, tracking_number, create_time,"
            " update_time) VALUES (?, ?, ?, ?, ?, ?, ?, '', '', '', ?, ?)",
            (
                draft.order_id,
                draft.customer_id,
                status_name(PENDING),
                draft.total.units,
                draft.total.nanos,
                draft.total.currency_code,
                json_format.MessageToJson(draft.shipping_address, indent=None),
                now,
                now,
            ),
        )
        await conn.executemany(
            "INSERT INTO order_items VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    draft.order_id,
                    line,
                    item.sku,
                    item.quantity,
                    item.unit_price.units,
                    item.unit_price.nanos,
                    item.unit_price.currency_code,
                )
                for line, item in enumerate(draft.items)
            ],
        )
        await conn.execute(
            "INSERT INTO status_history (order_id, status, reason, change_time)"
            " VALUES (?, ?, ?, ?)",
            (draft.order_id, status_name(PENDING), "order placed", now),
        )
        if draft.idempotency_key:
            await conn.execute(
                "INSERT INTO idempotency_keys VALUES (?, ?, ?, ?)",
                (draft.customer_id, draft.idempotency_key, draft.fingerprint, draft.order_id),
            )

    async def transition(
        self,
        order_id: str,
        status: order_pb2.OrderStatus.ValueType,
        reason: str,
        *,
        expected: Collection[order_pb2.OrderStatus.ValueType],
        payment_id: str = "",
        tracking_number: str = "",
    ) -> order_pb2.Order:
        """Moves the order to ``status`` if it is in one of ``expected`` and records why.

        The check and the update are one transaction, so two writers cannot both move the
        same order out of the same status.
        """
        now = now_micros()
        async with self._db.transaction() as conn:
            row = await fetch_one(conn, "SELECT * FROM orders WHERE order_id = ?", (order_id,))
            if row is None:
                raise NotFound(f"order {order_id} not found")
            if status_value(row["status"]) not in expected:
                raise FailedPrecondition(f"order {order_id} is {row['status'].lower()}")
            await conn.execute(
                "UPDATE orders SET status = ?, cancel_reason = ?, payment_id = ?,"
                " tracking_number = ?, update_time = ? WHERE order_id = ?",
                (
                    status_name(status),
                    reason if status == order_pb2.ORDER_STATUS_CANCELLED else "",
                    payment_id or row["payment_id"],
                    tracking_number or row["tracking_number"],
                    now,
                    order_id,
                ),
            )
            await conn.execute(
                "INSERT INTO status_history (order_id, status, reason, change_time)"
                " VALUES (?, ?, ?, ?)",
                (order_id, status_name(status), reason, now),
            )
        order = await self.get(order_id)
        assert order is not None
        return order

    async def get(self, order_id: str) -> order_pb2.Order | None:
        row = await self._db.fetch_one("SELECT * FROM orders WHERE order_id = ?", (order_id,))
        if row is None:
            return None
        items = await self._db.fetch_all(
            "SELECT * FROM order_items WHERE order_id = ? ORDER BY line", (order_id,)
        )
        history = await self._db.fetch_all(
            "SELECT * FROM status_history WHERE order_id = ? ORDER BY id", (order_id,)
        )
        return order_pb2.Order(
            order_id=row["order_id"],
            customer_id=row["customer_id"],
            items=[
                LineItem(
                    sku=item["sku"],
                    quantity=item["quantity"],
                    unit_price=Money(
                        currency_code=item["currency"],
                        units=item["price_units"],
                        nanos=item["price_nanos"],
                    ),
                )
                for item in items
            ],
            total=Money(
                currency_code=row["currency"], units=row["total_units"], nanos=row["total_nanos"]
            ),
            status=status_value(row["status"]),
            shipping_address=json_format.Parse(row["shipping_address"], Address()),
            create_time=to_timestamp(row["create_time"]),
            update_time=to_timestamp(row["update_time"]),
            history=[
                order_pb2.StatusChange(
                    status=status_value(change["status"]),
                    change_time=to_timestamp(change["change_time"]),
                    reason=change["reason"],
                )
                for change in history
            ],
            cancel_reason=row["cancel_reason"],
            payment_id=row["payment_id"],
            tracking_number=row["tracking_number"],
        )

    async def list(
        self,
        *,
        customer_id: str,
        status: order_pb2.OrderStatus.ValueType | None,
        before_seq: int | None,
        limit: int,
    ) -> list[tuple[int, order_pb2.Order]]:
        """Up to ``limit`` orders older than ``before_seq``, newest first, with their seq."""
        rows = await self._db.fetch_all(
            "SELECT seq, order_id FROM orders"
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
        orders = []
        for row in rows:
            order = await self.get(row["order_id"])
            if order is not None:
                orders.append((row["seq"], order))
        return orders
