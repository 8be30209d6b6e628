"""A consumer handles the events of one fetch in one transaction, each in a savepoint of
its own: a handler that raises undoes its own event's writes (and drops the hooks it set
for after the commit) and has its event redelivered, while the others of the batch commit
and are acknowledged; a redelivered event that was handled before has no second effect. On
the in-memory bus, with the real ``Events`` and SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from meshkit.config import DEFAULT_MESH_FILE, MeshPolicy
from meshkit.database import Database, Migrations
from meshkit.events.bus import ConsumerLag
from meshkit.events.envelopes import Envelopes
from meshkit.events.memory import MemoryBus
from meshkit.events.service_events import SCHEMA, EventContext, Events
from meshkit.telemetry.metrics import Metrics
from shop.events.v1 import events_pb2

POLICY = MeshPolicy.load(DEFAULT_MESH_FILE)


class Shipping:
    """Writes a row per PaymentCaptured and sets an after-commit hook; fails for the
    orders in ``failing`` (after writing), as long as they are there."""

    def __init__(self, db: Database, events: Events) -> None:
        self.db = db
        self.failing: set[str] = set()
        self.committed: list[str] = []  # by the after-commit hooks
        events.on(events_pb2.PaymentCaptured, self.on_captured)

    async def on_captured(self, ctx: EventContext, event: Any) -> None:
        async with self.db.transaction() as conn:
            await conn.execute("INSERT INTO shipped VALUES (?)", (event.order_id,))
            await ctx.emit(events_pb2.ShipmentScheduled(order_id=event.order_id))
            self.db.after_commit(lambda: self.committed.append(event.order_id))
            if event.order_id in self.failing:
                raise RuntimeError(f"{event.order_id} fails")


@pytest.fixture
async def consumer(tmp_path: Path) -> AsyncIterator[tuple[MemoryBus, Events, Metrics, Shipping]]:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_shipped.sql").write_text(
        "CREATE TABLE shipped (order_id TEXT PRIMARY KEY);"
    )
    bus = MemoryBus()
    db = await Database.open(tmp_path / "s.db", [SCHEMA, Migrations("test", migrations)])
    metrics = Metrics()
    events = Events(
        "shipping", db, bus, Envelopes(POLICY.events), trace.get_tracer("test"), metrics
    )
    shipping = Shipping(db, events)
    yield bus, events, metrics, shipping
    await events.close()
    await db.close()


async def publish(bus: MemoryBus, events: Events, order_id: str, msg_id: str = "") -> bytes:
    envelope = events.envelopes.wrap(
        events_pb2.PaymentCaptured(order_id=order_id), source="payment", correlation_id=order_id
    )
    data = envelope.SerializeToString()
    await bus.publish(envelope.event_type, data, msg_id or envelope.event_id)
    return data


async def until(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached")


def processed(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "mesh_events_processed_total",
        {"event_type": "shop.events.v1.PaymentCaptured", "outcome": outcome},
    )
    return value or 0.0


async def test_a_failing_event_of_a_batch_is_undone_alone_and_redelivered(
    consumer: tuple[MemoryBus, Events, Metrics, Shipping],
) -> None:
    bus, events, metrics, shipping = consumer
    shipping.failing.add("o2")
    for order_id in ("o1", "o2", "o3"):  # one fetch: all three before the consumer starts
        await publish(bus, events, order_id)
    events.start()
    await until(lambda: processed(metrics, "ok") == 2 and processed(metrics, "retry") == 1)
    rows = await shipping.db.fetch_all("SELECT order_id FROM shipped ORDER BY order_id")
    assert [r["order_id"] for r in rows] == ["o1", "o3"]
    assert shipping.committed == ["o1", "o3"]  # o2's hook went with its savepoint
    outbox = await shipping.db.fetch_all("SELECT data FROM mesh_outbox")
    assert len(outbox) == 2  # o2's event was not queued either
    shipping.failing.clear()  # o2 succeeds on its redelivery
    await until(lambda: processed(metrics, "ok") == 3)
    await until(bus.idle)
    rows = await shipping.db.fetch_all("SELECT order_id FROM shipped ORDER BY order_id")
    assert [r["order_id"] for r in rows] == ["o1", "o2", "o3"]
    assert shipping.committed == ["o1", "o3", "o2"]
    assert await bus.lag("shipping") == ConsumerLag(pending=0, ack_pending=0)


async def test_an_event_delivered_twice_in_one_batch_or_later_has_one_effect(
    consumer: tuple[MemoryBus, Events, Metrics, Shipping],
) -> None:
    bus, events, metrics, shipping = consumer
    data = await publish(bus, events, "o1")
    envelope = events.envelopes.parse(data)
    await bus.publish(envelope.event_type, data, "copy-1")  # the broker did not dedupe it
    events.start()
    await until(lambda: processed(metrics, "ok") == 1 and processed(metrics, "duplicate") == 1)
    await bus.publish(envelope.event_type, data, "copy-2")  # and later again
    await until(lambda: processed(metrics, "duplicate") == 2)
    rows = await shipping.db.fetch_all("SELECT order_id FROM shipped")
    assert [r["order_id"] for r in rows] == ["o1"]
    assert shipping.committed == ["o1"]


async def test_a_batch_that_cannot_commit_is_handled_again_one_event_at_a_time(
    consumer: tuple[MemoryBus, Events, Metrics, Shipping], monkeypatch: pytest.MonkeyPatch
) -> None:
    bus, events, metrics, shipping = consumer
    db = shipping.db
    real = db.transaction
    batches = 0

    def transaction() -> Any:
        nonlocal batches
        if db._current.get() is None and batches == 0:  # the batch's own: it fails at the end
            batches += 1

            class Failing:
                async def __aenter__(self) -> Any:
                    self.inner = real()
                    return await self.inner.__aenter__()

                async def __aexit__(self, *exc: Any) -> bool:
                    await self.inner.__aexit__(RuntimeError, RuntimeError("disk"), None)
                    raise RuntimeError("the commit failed")

            return Failing()
        return real()

    monkeypatch.setattr(db, "transaction", transaction)
    for order_id in ("o1", "o2"):
        await publish(bus, events, order_id)
    events.start()
    await until(lambda: processed(metrics, "ok") == 2)
    rows = await db.fetch_all("SELECT order_id FROM shipped ORDER BY order_id")
    assert [r["order_id"] for r in rows] == ["o1", "o2"]
    assert shipping.committed == ["o1", "o2"]
    assert processed(metrics, "retry") == 0
    assert batches == 1  # the batch's transaction was tried, and failed


async def test_a_step_taken_at_once_is_done_and_refused_a_second_time_or_after_a_tombstone(
    tmp_path: Path,
) -> None:
    from meshkit.events.steps import DONE, StepLedger

    db = await Database.open(tmp_path / "steps.db", [SCHEMA])
    ledger = StepLedger(db, "reserve")
    assert await ledger.take("o1")
    step = await ledger.get("o1")
    assert step is not None and step.status == DONE and step.payload is None
    assert not await ledger.take("o1")
    assert await ledger.cancel("o2")  # a tombstone first
    assert not await ledger.take("o2")
    assert not await ledger.remember("o1")
    await db.close()


async def test_a_batch_whose_transaction_sqlite_rolled_back_is_handled_one_by_one(
    consumer: tuple[MemoryBus, Events, Metrics, Shipping],
) -> None:
    """An error that makes SQLite roll the whole transaction back (a full disk, say): the
    events after it do not run outside a transaction; the batch is handled again one by
    one, and nothing is counted twice."""
    bus, events, metrics, shipping = consumer
    db = shipping.db
    original = shipping.on_captured
    failed: list[str] = []

    async def on_captured(ctx: EventContext, event: Any) -> None:
        if event.order_id == "o2" and not failed:
            failed.append("o2")
            await db.in_transaction().execute("INSERT INTO shipped VALUES ('stray')")
            db.in_transaction().raw.execute("ROLLBACK")  # as SQLite does on SQLITE_FULL
            raise OSError("database or disk is full")
        await original(ctx, event)

    events.on(events_pb2.PaymentCaptured, on_captured)
    for order_id in ("o1", "o2", "o3"):
        await publish(bus, events, order_id)
    events.start()
    await until(lambda: processed(metrics, "ok") == 3)
    rows = await db.fetch_all("SELECT order_id FROM shipped ORDER BY order_id")
    assert [r["order_id"] for r in rows] == ["o1", "o2", "o3"]
    assert processed(metrics, "duplicate") == 0
    assert sorted(shipping.committed) == ["o1", "o2", "o3"]
