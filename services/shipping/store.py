"""Shipments in the shipping service's own database; all its SQL is here.

One row per order (``order_id`` is UNIQUE), which makes scheduling idempotent per order.
Address and items are kept as proto JSON (what json_format writes, written and read by
``meshkit.database.protojson`` at a fraction of its cost): shipping only ever reads them
back whole.

An order's shipping request is what the order flow's events leave for a shipment to
come, kept as the "ship" step of the runtime's step ledger (``meshkit.events.steps``):
OrderPlaced records where and what to ship (PENDING), the scheduling after
PaymentCaptured marks it DONE, and OrderCancelled marks it CANCELLED (or leaves a
CANCELLED tombstone when it comes first), so a later PaymentCaptured ships nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from meshkit.database import Database, Migrations, Row, fetch_one
from meshkit.database.protojson import ProtoJson
from meshkit.errors import NotFound
from meshkit.events.steps import StepLedger
from meshkit.times import now_micros, to_timestamp
from services.shipping.rules import Carrier
from shop.common.v1.address_pb2 import Address
from shop.common.v1.line_item_pb2 import LineItem
from shop.shipping.v1 import shipping_pb2

# Its tables: migrations/ (applied at start, after the runtime's own: the step ledger's).
SCHEMA = Migrations("shipping", Path(__file__).resolve().parent / "migrations")

SCHEDULED = "SCHEDULED"
CANCELLED = "CANCELLED"
_DAY_MICROS = 86_400 * 1_000_000
# proto JSON, as json_format's MessageToDict/ParseDict write and read it, without their cost
ADDRESS = ProtoJson(Address)
LINE_ITEM = ProtoJson(LineItem)


@dataclass(frozen=True)
class ShippingRequest:
    order_id: str
    pending: bool  # False once scheduled or cancelled (then address and items are empty)
    status: str  # the step's: PENDING | DONE | CANCELLED
    address: Address
    items: list[LineItem]


class ShippingStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._requests = StepLedger(db, "ship")

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
        shipment_id = "shp_" + uuid.uuid4().hex
        delivery = now + carrier.delivery_days * _DAY_MICROS
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO shipments VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?)"
                " ON CONFLICT (order_id) DO NOTHING",
                (
                    shipment_id,
                    order_id,
                    SCHEDULED,
                    carrier.name,
                    tracking_number,
                    json.dumps(ADDRESS.to_dict(address)),
                    json.dumps([LINE_ITEM.to_dict(item) for item in items]),
                    delivery,
                    now,
                    now,
                ),
            )
            if cur.rowcount == 1:  # the row is what was just written: no need to read it
                return shipping_pb2.Shipment(
                    shipment_id=shipment_id,
                    order_id=order_id,
                    status=shipping_pb2.SHIPMENT_STATUS_SCHEDULED,
                    carrier=carrier.name,
                    tracking_number=tracking_number,
                    address=address,
                    items=items,
                    estimated_delivery_time=to_timestamp(delivery),
                    create_time=to_timestamp(now),
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
        """The order's shipment, read in a transaction (an event handler's own, if in one).

        The order's request is locked first (``FOR UPDATE``), as the scheduling locks it:
        a scheduling in flight elsewhere is waited for and its shipment seen."""
        async with self._db.transaction() as conn:
            await self._requests.get(order_id)
            row = await fetch_one(conn, "SELECT * FROM shipments WHERE order_id = ?", (order_id,))
        return _shipment(row) if row else None

    async def remember_request(
        self, order_id: str, address: Address, items: Sequence[LineItem]
    ) -> bool:
        """Records the order's PENDING shipping request; False if it has one (or a
        tombstone) already, which is kept as it is."""
        payload = {
            "address": ADDRESS.to_dict(address),
            "items": [LINE_ITEM.to_dict(item) for item in items],
        }
        return await self._requests.remember(order_id, payload)

    async def request(self, order_id: str) -> ShippingRequest | None:
        """The order's shipping request, None if it has none."""
        step = await self._requests.get(order_id)
        if step is None:
            return None
        payload = step.payload or {}
        return ShippingRequest(
            order_id=order_id,
            pending=step.pending,
            status=step.status,
            address=ADDRESS.from_dict(payload.get("address", {})),
            items=[LINE_ITEM.from_dict(item) for item in payload.get("items", [])],
        )

    async def finish_request(self, order_id: str) -> None:
        """Marks a PENDING request DONE (the shipment is decided)."""
        await self._requests.finish(order_id)

    async def cancel_request(self, order_id: str) -> None:
        """Marks the order's request CANCELLED, or records a CANCELLED tombstone if it has none."""
        await self._requests.cancel(order_id)


def _shipment(row: Row) -> shipping_pb2.Shipment:
    return shipping_pb2.Shipment(
        shipment_id=row["shipment_id"],
        order_id=row["order_id"],
        status=shipping_pb2.ShipmentStatus.Value("SHIPMENT_STATUS_" + row["status"]),
        carrier=row["carrier"],
        tracking_number=row["tracking_number"],
        address=ADDRESS.from_dict(json.loads(row["address"])),
        items=[LINE_ITEM.from_dict(item) for item in json.loads(row["items"])],
        estimated_delivery_time=to_timestamp(row["estimated_delivery_time"]),
        create_time=to_timestamp(row["create_time"]),
    )
