"""Stock and reservations in the inventory's own database; all its SQL is here.

Every write is one transaction, so a reservation is all or nothing and the invariant
"available + reserved + sold changes only by AdjustStock" holds whatever interleaves:
a stock row or a reservation read to decide a write is read ``FOR UPDATE`` (on Postgres,
locked until the commit, skus in sorted order so two reservations never wait for each
other in a circle; SQLite's writers are one at a time anyway).

The order flow's "reserve" step is kept in the runtime's step ledger
(``meshkit.events.steps``): taken once per order on OrderPlaced, or cancelled first (a
tombstone) by an OrderCancelled that came before it, so a later OrderPlaced reserves
nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from meshkit.database import Connection, Database, Migrations, Row, fetch_one
from meshkit.errors import FailedPrecondition, NotFound
from meshkit.events.steps import StepLedger
from meshkit.times import now_micros, to_timestamp
from shop.inventory.v1 import inventory_pb2

# Its tables: migrations/ (applied at start, after the runtime's own: the step ledger's).
SCHEMA = Migrations("inventory", Path(__file__).resolve().parent / "migrations")

# BIGINT: 64-bit, in SQLite and Postgres alike.
MAX_STOCK = 2**63 - 1

RESERVED = "RESERVED"
REJECTED = "REJECTED"
RELEASED = "RELEASED"
COMMITTED = "COMMITTED"


class InventoryStore:
    """Reads and atomic updates of stock levels and reservations."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._steps = StepLedger(db, "reserve")

    async def get_stock(self, sku: str) -> inventory_pb2.StockLevel | None:
        row = await self._db.fetch_one("SELECT * FROM stock WHERE sku = ?", (sku,))
        return _stock(row) if row else None

    async def list_stock(self, after: str | None, limit: int) -> list[inventory_pb2.StockLevel]:
        """Up to ``limit`` stock levels with a sku greater than ``after``, ordered by sku."""
        rows = await self._db.fetch_all(
            "SELECT * FROM stock WHERE sku > ? ORDER BY sku LIMIT ?", (after or "", limit)
        )
        return [_stock(r) for r in rows]

    async def reserve(
        self, order_id: str, items: Sequence[tuple[str, int]]
    ) -> inventory_pb2.Reservation:
        """Reserves every line or none; an order's first answer is kept and repeated."""
        now = now_micros()
        async with self._db.transaction() as conn:
            existing = await fetch_one(
                conn, "SELECT * FROM reservations WHERE order_id = ?", (order_id,)
            )
            if existing:
                return _reservation(existing)
            short = []
            for sku, quantity in sorted(items):
                row = await fetch_one(
                    conn, "SELECT available FROM stock WHERE sku = ? FOR UPDATE", (sku,)
                )
                if row is None or row["available"] < quantity:
                    short.append(sku)
            short.sort(key=[sku for sku, _ in items].index)  # in the order's own order
            if not short:
                await conn.executemany(
                    "UPDATE stock SET available = available - ?, reserved = reserved + ?,"
                    " update_time = ? WHERE sku = ?",
                    [(quantity, quantity, now, sku) for sku, quantity in items],
                )
            status = REJECTED if short else RESERVED
            await conn.execute(
                "INSERT INTO reservations VALUES (?, ?, ?, ?, ?, ?)",
                (
                    order_id,
                    status,
                    json.dumps([[sku, quantity] for sku, quantity in items]),
                    json.dumps(short),
                    now,
                    now,
                ),
            )
        # what was just written (not read back)
        return inventory_pb2.Reservation(
            order_id=order_id,
            status=inventory_pb2.ReservationStatus.Value("RESERVATION_STATUS_" + status),
            items=[inventory_pb2.StockQuantity(sku=sku, quantity=q) for sku, q in items],
            short_skus=short,
        )

    async def reservation_status(self, order_id: str) -> str | None:
        """The order's reservation status (RESERVED, ...), None if it has none.

        Read in a transaction, so a caller already in one (an event handler) sees its own
        writes and decides on what it is about to commit.
        """
        async with self._db.transaction() as conn:
            row = await fetch_one(
                conn, "SELECT status FROM reservations WHERE order_id = ?", (order_id,)
            )
        return row["status"] if row else None

    async def take_reservation_step(self, order_id: str) -> bool:
        """The order flow's reservation of ``order_id`` happens now (call ``reserve`` in the
        same transaction); False if it happened already, or the order was cancelled first."""
        return await self._steps.take(order_id)

    async def tombstone(self, order_id: str) -> bool:
        """Records an order cancelled before its stock was reserved, so a later
        ``take_reservation_step`` for it is refused. False if the step was taken already."""
        return await self._steps.cancel(order_id)

    async def release(self, order_id: str) -> inventory_pb2.Reservation:
        """Gives reserved stock back; a no-op unless the reservation is RESERVED."""
        async with self._db.transaction() as conn:
            row = await self._reservation_for_update(conn, order_id)
            if row["status"] == COMMITTED:
                raise FailedPrecondition(
                    f"stock of order {order_id} is already committed and cannot be released"
                )
            if row["status"] == RESERVED:
                await self._move(conn, row, from_column="reserved", to_column="available")
                row = await self._set_status(conn, order_id, RELEASED)
        return _reservation(row)

    async def commit(self, order_id: str) -> inventory_pb2.Reservation:
        """Turns reserved stock into sold stock; repeating it is a no-op."""
        async with self._db.transaction() as conn:
            row = await self._reservation_for_update(conn, order_id)
            if row["status"] in (RELEASED, REJECTED):
                raise FailedPrecondition(
                    f"stock of order {order_id} is {row['status'].lower()} and cannot be committed"
                )
            if row["status"] == RESERVED:
                await self._move(conn, row, from_column="reserved", to_column="sold")
                row = await self._set_status(conn, order_id, COMMITTED)
        return _reservation(row)

    async def adjust(self, sku: str, delta: int) -> inventory_pb2.StockLevel:
        """Adds ``delta`` to available stock, creating the sku on its first positive delta."""
        now = now_micros()
        async with self._db.transaction() as conn:
            row = await fetch_one(
                conn, "SELECT available FROM stock WHERE sku = ? FOR UPDATE", (sku,)
            )
            if row is None and delta < 0:
                raise NotFound(f"sku {sku} not found")
            if row is not None and row["available"] + delta < 0:
                raise FailedPrecondition(
                    f"cannot remove {-delta} of {sku}: only {row['available']} available"
                )
            if row is not None and row["available"] + delta > MAX_STOCK:
                raise FailedPrecondition(f"stock of {sku} would exceed {MAX_STOCK}")
            if row is None:
                await conn.execute(
                    "INSERT INTO stock (sku, available, update_time) VALUES (?, ?, ?)",
                    (sku, delta, now),
                )
            else:
                await conn.execute(
                    "UPDATE stock SET available = available + ?, update_time = ? WHERE sku = ?",
                    (delta, now, sku),
                )
            row = await fetch_one(conn, "SELECT * FROM stock WHERE sku = ?", (sku,))
        assert row is not None
        return _stock(row)

    async def seed_if_empty(self, catalog: Mapping[str, int]) -> int:
        """Loads ``catalog`` into an empty stock table; returns how many skus it added."""
        now = now_micros()
        async with self._db.transaction() as conn:
            row = await fetch_one(conn, "SELECT COUNT(*) AS n FROM stock")
            if row is not None and row["n"] > 0:
                return 0
            # Instances starting together may both find the table empty: the second
            # one's rows are already there.
            await conn.executemany(
                "INSERT INTO stock (sku, available, update_time) VALUES (?, ?, ?)"
                " ON CONFLICT (sku) DO NOTHING",
                [(sku, available, now) for sku, available in catalog.items()],
            )
        return len(catalog)

    async def _reservation_for_update(self, conn: Connection, order_id: str) -> Row:
        row = await fetch_one(
            conn, "SELECT * FROM reservations WHERE order_id = ? FOR UPDATE", (order_id,)
        )
        if row is None:
            raise NotFound(f"no reservation for order {order_id}")
        return row

    async def _move(self, conn: Connection, row: Row, from_column: str, to_column: str) -> None:
        """Moves the reservation's quantities between two stock columns (fixed names only),
        skus in sorted order (the order rows are locked in)."""
        now = now_micros()
        await conn.executemany(
            f"UPDATE stock SET {from_column} = {from_column} - ?, {to_column} = {to_column} + ?,"
            " update_time = ? WHERE sku = ?",
            [(q, q, now, sku) for sku, q in sorted(json.loads(row["items"]))],
        )

    async def _set_status(self, conn: Connection, order_id: str, status: str) -> Row:
        await conn.execute(
            "UPDATE reservations SET status = ?, update_time = ? WHERE order_id = ?",
            (status, now_micros(), order_id),
        )
        return await self._reservation_for_update(conn, order_id)


def _stock(row: Row) -> inventory_pb2.StockLevel:
    return inventory_pb2.StockLevel(
        sku=row["sku"],
        available=row["available"],
        reserved=row["reserved"],
        sold=row["sold"],
        update_time=to_timestamp(row["update_time"]),
    )


def _reservation(row: Row) -> inventory_pb2.Reservation:
    return inventory_pb2.Reservation(
        order_id=row["order_id"],
        status=inventory_pb2.ReservationStatus.Value("RESERVATION_STATUS_" + row["status"]),
        items=[
            inventory_pb2.StockQuantity(sku=sku, quantity=quantity)
            for sku, quantity in json.loads(row["items"])
        ],
        short_skus=json.loads(row["short_skus"]),
    )
