"""The Postgres backend of meshkit.database against a real cluster: transactions, their
hooks, reads of committed data, and the locks that keep two instances of a service from
deciding on the same row at once."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from devstack.postgres import PostgresCluster
from meshkit.database import Database, Migrations, fetch_one
from meshkit.database.postgres import PostgresDatabase, numbered
from meshkit.errors import Aborted
from services.inventory.store import SCHEMA as INVENTORY
from services.inventory.store import InventoryStore
from services.order.domain import validate_place_order
from services.order.store import SCHEMA as ORDER
from services.order.store import OrderStore
from services.payment.store import SCHEMA as PAYMENT
from services.payment.store import PaymentStore
from shop.common.v1.money_pb2 import Money
from shop.inventory.v1 import inventory_pb2
from tests.support.orders import order_request
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


def test_placeholders_are_numbered_outside_literals() -> None:
    assert numbered("SELECT * FROM t WHERE a = ? AND b = '?' AND c IN (?, ?)") == (
        "SELECT * FROM t WHERE a = $1 AND b = '?' AND c IN ($2, $3)"
    )
    assert numbered("UPDATE t SET p = 'null', q = '' WHERE k = ?") == (
        "UPDATE t SET p = 'null', q = '' WHERE k = $1"
    )


def schema(tmp_path: Path, sql: str) -> Migrations:
    directory = tmp_path / "migrations"
    directory.mkdir(exist_ok=True)
    (directory / "0001_init.sql").write_text(sql)
    return Migrations("test", directory)


@pytest.fixture
def as_alpha(cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch) -> str:
    """alpha's DSN, its password file set as a service gets it (PGPASSFILE)."""
    env = cluster.env("alpha")
    monkeypatch.setenv("PGPASSFILE", env["PGPASSFILE"])
    return env["MESH_DATABASE_URL"]


@pytest.fixture
async def clean(cluster: PostgresCluster) -> AsyncIterator[None]:
    """alpha's database emptied (every table dropped) before the test."""
    conn = await cluster.connect_as_superuser("alpha")
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION alpha")
    finally:
        await conn.close()
    yield


async def test_a_transaction_commits_or_rolls_back_and_runs_its_hooks_after_commit(
    as_alpha: str, clean: None, tmp_path: Path
) -> None:
    sql = "CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT NOT NULL);"
    db = await PostgresDatabase.connect(as_alpha, schema(tmp_path, sql))
    ran: list[str] = []
    async with db.transaction() as conn:
        cur = await conn.execute("INSERT INTO t VALUES (?, ?)", ("a", 1))
        assert cur.rowcount == 1
        db.after_commit(lambda: ran.append("a"))
        assert await db.fetch_one("SELECT v FROM t WHERE k = 'a'") is None  # not committed
        async with db.transaction() as inner:  # joins
            assert inner is conn
            row = await fetch_one(inner, "SELECT v FROM t WHERE k = ?", ("a",))
            assert row is not None and row["v"] == 1
        assert ran == []
    assert ran == ["a"]
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t VALUES (?, ?)", ("b", 2))
            db.after_commit(lambda: ran.append("b"))
            raise RuntimeError("boom")
    assert ran == ["a"]
    assert [r["k"] for r in await db.fetch_all("SELECT k FROM t ORDER BY k")] == ["a"]
    async with db.transaction() as conn:
        cur = await conn.execute("UPDATE t SET v = v + 1 WHERE k IN (?, ?)", ("a", "zz"))
        assert cur.rowcount == 1
    await db.close()


async def test_one_event_handled_by_two_instances_at_once_takes_effect_once(
    as_alpha: str, clean: None
) -> None:
    """Two instances handling the same event (a redelivery while the first still works on
    it): the second one's record of the event id waits for the first's commit, then
    fails (ABORTED: its event is delivered again), and its transaction, its effects with
    it, rolls back."""
    first = await PostgresDatabase.connect(as_alpha, [])
    second = await PostgresDatabase.connect(as_alpha, [])
    sql = "INSERT INTO mesh_processed_events VALUES (?, 'Test', 0)"
    effect = "INSERT INTO mesh_outbox (event_id, subject, data, create_time) VALUES (?, 's', ?, 0)"
    recorded = asyncio.Event()
    release = asyncio.Event()

    async def handle(db: Database, effect_id: str, hold: bool) -> None:
        async with db.transaction() as conn:
            await conn.execute(effect, (effect_id, b""))
            await conn.execute(sql, ("event-1",))
            if hold:
                recorded.set()
                await release.wait()

    winner = asyncio.create_task(handle(first, "effect-1", True))
    await recorded.wait()
    loser = asyncio.create_task(handle(second, "effect-2", False))
    await eventually(lambda: waiting_for_a_lock(as_alpha), what="the second one waiting")
    release.set()
    await winner
    with pytest.raises(Aborted, match="conflicted with a concurrent one") as aborted:
        await loser
    assert isinstance(aborted.value.__cause__, asyncpg.UniqueViolationError)
    rows = await first.fetch_all("SELECT event_id FROM mesh_outbox ORDER BY event_id")
    assert [r["event_id"] for r in rows] == ["effect-1"]
    await first.close()
    await second.close()


async def test_a_savepoint_fails_alone_and_the_transaction_commits_the_rest(
    as_alpha: str, clean: None
) -> None:
    """What a consumer's batch relies on: an event's savepoint that hits a conflict (here a
    unique key) is rolled back alone, raised as ABORTED, its after-commit hooks dropped;
    the transaction goes on and commits the other events' effects."""
    db = await PostgresDatabase.connect(as_alpha, [])
    effect = "INSERT INTO mesh_outbox (event_id, subject, data, create_time) VALUES (?, 's', ?, 0)"
    ran: list[str] = []
    async with db.transaction() as conn:
        async with db.savepoint():
            await conn.execute(effect, ("e1", b""))
            db.after_commit(lambda: ran.append("e1"))
        with pytest.raises(Aborted):
            async with db.savepoint():
                await conn.execute(effect, ("e2", b""))
                db.after_commit(lambda: ran.append("e2"))
                await conn.execute(effect, ("e1", b""))  # taken: the savepoint fails
        async with db.savepoint():
            await conn.execute(effect, ("e3", b""))
    assert ran == ["e1"]
    rows = await db.fetch_all("SELECT event_id FROM mesh_outbox ORDER BY event_id")
    assert [r["event_id"] for r in rows] == ["e1", "e3"]
    await db.close()


async def test_an_event_id_recorded_first_makes_a_concurrent_handling_a_duplicate(
    as_alpha: str, clean: None
) -> None:
    """The consumer records the event id first, ON CONFLICT DO NOTHING: a second instance
    handling the same event waits for the first one's commit, then finds no row inserted
    (a duplicate: no second effect) instead of failing."""
    first = await PostgresDatabase.connect(as_alpha, [])
    second = await PostgresDatabase.connect(as_alpha, [])
    sql = (
        "INSERT INTO mesh_processed_events VALUES (?, 'Test', 0) ON CONFLICT (event_id) DO NOTHING"
    )
    recorded = asyncio.Event()
    release = asyncio.Event()

    async def handle(db: Database, hold: bool) -> int:
        async with db.transaction() as conn:
            cur = await conn.execute(sql, ("event-1",))
            if hold:
                recorded.set()
                await release.wait()
        return cur.rowcount

    winner = asyncio.create_task(handle(first, True))
    await recorded.wait()
    loser = asyncio.create_task(handle(second, False))
    await eventually(lambda: waiting_for_a_lock(as_alpha), what="the second one waiting")
    release.set()
    assert await winner == 1
    assert await loser == 0
    await first.close()
    await second.close()


async def waiting_for_a_lock(dsn: str) -> bool:
    """Whether a backend of the database is waiting for a lock (another's row)."""
    conn = await asyncpg.connect(dsn)
    try:
        n = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return bool(n)
    finally:
        await conn.close()


async def test_two_instances_reserving_at_once_never_oversell(as_alpha: str, clean: None) -> None:
    """Two inventory instances (two pools on one database) reserve 20 orders of one unit
    of a sku with 5 in stock, all at once: exactly 5 are reserved, 15 refused, none fails."""
    first = await PostgresDatabase.connect(as_alpha, INVENTORY)
    second = await PostgresDatabase.connect(as_alpha, INVENTORY)
    stores = [InventoryStore(first), InventoryStore(second)]
    await stores[0].seed_if_empty({"SKU-A": 5, "SKU-B": 100})
    assert await stores[1].seed_if_empty({"SKU-A": 5, "SKU-B": 100}) == 0
    # Two skus in both orders: rows are locked in sku order, so no deadlock either.
    lines = [[("SKU-A", 1), ("SKU-B", 1)], [("SKU-B", 1), ("SKU-A", 1)]]
    answers = await asyncio.gather(
        *(stores[i % 2].reserve(f"ord-{i}", lines[i % 2]) for i in range(20))
    )
    statuses = [a.status for a in answers]
    assert statuses.count(inventory_pb2.RESERVATION_STATUS_RESERVED) == 5
    assert statuses.count(inventory_pb2.RESERVATION_STATUS_REJECTED) == 15
    stock = await stores[0].get_stock("SKU-A")
    assert stock is not None and (stock.available, stock.reserved) == (0, 5)
    b = await stores[1].get_stock("SKU-B")
    assert b is not None and (b.available, b.reserved) == (95, 5)
    await first.close()
    await second.close()


async def test_a_cancellation_waits_for_a_capture_in_flight_and_sees_its_payment(
    as_alpha: str, clean: None
) -> None:
    """Payment's OrderCancelled handler on one instance while StockReserved's capture is
    in flight on another: the cancellation waits for the capture's commit (the intent's
    row lock) and then finds the payment, so it can refund it."""
    first = await PostgresDatabase.connect(as_alpha, PAYMENT)
    second = await PostgresDatabase.connect(as_alpha, PAYMENT)
    capturing, cancelling = PaymentStore(first), PaymentStore(second)
    amount = Money(currency_code="EUR", units=3)
    assert await capturing.remember_intent("ord-1", amount, "tok_visa")
    captured = asyncio.Event()
    release = asyncio.Event()

    async def capture() -> None:
        async with first.transaction():
            intent = await capturing.intent("ord-1")
            assert intent is not None and intent.pending
            await capturing.capture("ord-1", amount, "")
            await capturing.finish_intent("ord-1")
            captured.set()
            await release.wait()

    async def cancel() -> str:
        async with second.transaction():
            payment = await cancelling.for_order("ord-1")
            assert payment is not None, "the capture's payment was not seen"
            return (await cancelling.refund("ord-1", "cancelled")).payment_id

    capturer = asyncio.create_task(capture())
    await captured.wait()
    canceller = asyncio.create_task(cancel())
    await eventually(lambda: waiting_for_a_lock(as_alpha), what="the cancellation waiting")
    release.set()
    await capturer
    assert await canceller
    await first.close()
    await second.close()


async def test_two_placements_racing_with_one_key_store_one_order(
    as_alpha: str, clean: None
) -> None:
    """Two order instances storing a draft with the same idempotency key at once (a
    client's retry racing its first call): one order is stored; the other call gets its
    id, or, if it raced the first's commit, ABORTED, whose retry gets the id."""
    first = await PostgresDatabase.connect(as_alpha, ORDER)
    second = await PostgresDatabase.connect(as_alpha, ORDER)
    drafts = [validate_place_order(order_request(("SKU-A", 1))) for _ in range(2)]
    key, fingerprint = drafts[0].idempotency_key, drafts[0].fingerprint
    drafts[1] = dataclasses.replace(drafts[1], idempotency_key=key, fingerprint=fingerprint)
    holding = asyncio.Event()
    release = asyncio.Event()

    async def create_and_hold() -> str | None:
        async with first.transaction():
            placed = await OrderStore(first).create(drafts[0], 60.0)
            holding.set()
            await release.wait()
            return placed

    async def create() -> str | None:
        return await OrderStore(second).create(drafts[1], 60.0)

    holder = asyncio.create_task(create_and_hold())
    await holding.wait()
    racer = asyncio.create_task(create())
    await eventually(lambda: waiting_for_a_lock(as_alpha), what="the second call waiting")
    release.set()
    assert await holder is None  # stored
    with pytest.raises(Aborted):
        await racer
    assert await create() == drafts[0].order_id  # the retry
    rows = await first.fetch_all("SELECT order_id FROM order_state")
    assert [r["order_id"] for r in rows] == [drafts[0].order_id]
    await first.close()
    await second.close()


async def test_a_missing_database_url_is_named() -> None:
    from meshkit.config import MeshConfig
    from meshkit.database import open_database

    with pytest.raises(ValueError, match="database_url"):
        await open_database(MeshConfig(name="x", database="postgres"), INVENTORY)
    with pytest.raises(ValueError, match="database 'mysql'"):
        await open_database(MeshConfig(name="x", database="mysql"), INVENTORY)
