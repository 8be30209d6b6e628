"""Shipments in the shipping service's own SQLite database; all its SQL is here.

One row per order (``order_id`` is UNIQUE), which makes scheduling idempotent per order.
Address and items are kept as proto JSON: shipping only ever reads them back whole.

An order's shipping request (``shipping_requests``) is what the order flow's events leave
for a shipment to come: OrderPlaced records where and what to ship (PENDING), the
scheduling after PaymentCaptured marks it DONE, and OrderCancelled marks it CANCELLED (or
leaves a CANCELLED tombstone when it comes first), so a later PaymentCaptured ships nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from google.protobuf import json_format

from meshkit.database import Database, Row, fetch_one
from meshkit.errors import NotFound
from meshkit.times import now_micros, to_timestamp
from services.shipping.rules import Carrier
from shop.common.v1.address_pb2 import Address
from shop.common.v1.line_item_pb2 import LineItem
from shop.shipping.v1 import shipping_pb2

SCHEMA = """
CREATE TABLE IF NOT EXISTS shipments (
    shipment_id             TEXT PRIMARY KEY,
    order_id                TEXT NOT NULL UNIQUE,
    status                  TEXT NOT NULL,  -- SCHEDULED | CANCELLED
    carrier                 TEXT NOT NULL,
    tracking_number         TEXT NOT NULL UNIQUE,
    address                 TEXT NOT NULL,  -- proto JSON of shop.common.v1.Address
    items                   TEXT NOT NULL,  -- JSON list of proto JSON shop.common.v1.LineItem
    estimated_delivery_time INTEGER NOT NULL, -- epoch microseconds
    cancel_reason           TEXT NOT NULL,
    create_time             INTEGER NOT NULL,
    update_time             INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS shipping_requests (
    order_id    TEXT PRIMARY KEY,
    status      TEXT NOT NULL,  -- PENDING | DONE | CANCELLED
    address     TEXT NOT NULL,  -- proto JSON of shop.common.v1.Address
    items       TEXT NOT NULL,  -- JSON list of proto JSON shop.common.v1.LineItem
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL
);
"""

SCHEDULED = "SCHEDULED"
CANCELLED = "CANCELLED"
REQUEST_PENDING = "PENDING"
REQUEST_DONE = "DONE"
_DAY_MICROS = 86_400 * 1_000_000


class ShippingStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, shipment_id: str) -> shipping_pb2.Shipment | None:
        row = await self._db.fetch_one(
            "SELECT * FROM shipments WHERE shipment_id = ?", (shipment_id,)
        )
        return _shipment(row) if row else None

    async def schedule(
        self,
        order_id: str,
        address: Address,
        items: Sequence[LineItem],
        carrier: Carrier,
        tracking_number: str,
    ) -> shipping_pb2.Shipment:
        """Records the order's shipment, or returns the one it already has."""
        now = now_micros()
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO shipments VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?)"
                " ON CONFLICT (order_id) DO NOTHING",
                (
                    "shp_" + uuid.uuid4().hex,
                    order_id,
                    SCHEDULED,
                    carrier.name,
                    tracking_number,
                    json_format.MessageToJson(address, indent=None),
                    json.dumps([json_format.MessageToDict(item) for item in items]),
                    now + carrier.delivery_days * _DAY_MICROS,
                    now,
                    now,
                ),
            )
            row = await fetch_one(conn, "SELECT * FROM shipments WHERE order_id = ?", (order_id,))
        assert row is not None
        return _shipment(row)

    async def cancel(self, order_id: str, reason: str) -> shipping_pb2.Shipment:
        """Cancels a scheduled shipment; a cancelled one is returned unchanged."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE shipments SET status = ?, cancel_reason = ?, update_time = ?"
                " WHERE order_id = ? AND status = ?",
                (CANCELLED, reason, now_micros(), order_id, SCHEDULED),
            )
            row = await fetch_one(conn, "SELECT * FROM shipments WHERE order_id = ?", (order_id,))
        if row is None:
            raise NotFound(f"no shipment for order {order_id}")
        return _shipment(row)

    async def for_order(self, order_id: str) -> shipping_pb2.Shipment | None:
        """The order's shipment, read in a transaction (an event handler's own, if in one)."""
        async with self._db.transaction() as conn:
            row = await fetch_one(conn, "SELECT * FROM shipments WHERE order_id = ?", (order_id,))
        return _shipment(row) if row else None

    async def remember_request(
        self, order_id: str, address: Address, items: Sequence[LineItem]
    ) -> bool:
        """Records the order's PENDING shipping request; False if it has one (or a
        tombstone) already, which is kept as it is."""
        now = now_micros()
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO shipping_requests VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (order_id) DO NOTHING",
                (
                    order_id,
                    REQUEST_PENDING,
                    json_format.MessageToJson(address, indent=None),
                    json.dumps([json_format.MessageToDict(item) for item in items]),
                    now,
                    now,
                ),
            )
            return cur.rowcount == 1

    async def request(self, order_id: str) -> tuple[str, Address, list[LineItem]] | None:
        """The order's shipping request: (status, address, items), None if it has none."""
        async with self._db.transaction() as conn:
            row = await fetch_one(
                conn, "SELECT * FROM shipping_requests WHERE order_id = ?", (order_id,)
            )
        if row is None:
            return None
        return (
            row["status"],
            json_format.Parse(row["address"], Address()),
            [json_format.ParseDict(item, LineItem()) for item in json.loads(row["items"])],
        )

    async def close_request(self, order_id: str, status: str) -> None:
        """Marks the order's request DONE or CANCELLED; a CANCELLED tombstone if it has none."""
        now = now_micros()
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO shipping_requests VALUES (?, ?, '{}', '[]', ?, ?)"
                " ON CONFLICT (order_id) DO UPDATE SET status = excluded.status,"
                " update_time = excluded.update_time"
                " WHERE shipping_requests.status = 'PENDING'",
                (order_id, status, now, now),
            )


def _shipment(row: Row) -> shipping_pb2.Shipment:
    return shipping_pb2.Shipment(
        shipment_id=row["shipment_id"],
        order_id=row["order_id"],
        status=shipping_pb2.ShipmentStatus.Value("SHIPMENT_STATUS_" + row["status"]),
        carrier=row["carrier"],
        tracking_number=row["tracking_number"],
        address=json_format.Parse(row["address"], Address()),
        items=[json_format.ParseDict(item, LineItem()) for item in json.loads(row["items"])],
        estimated_delivery_time=to_timestamp(row["estimated_delivery_time"]),
        create_time=to_timestamp(row["create_time"]),
    )
