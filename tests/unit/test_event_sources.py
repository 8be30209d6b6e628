"""A consumer handles an event only from the owner of its type (the mesh file's
``[events.owners]``): a forged source is acknowledged and dropped, logged and counted in
``mesh_events_rejected_total``. On the in-memory bus, with the real ``Events``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry import trace

from meshkit.config import DEFAULT_MESH_FILE, EventsSettings, MeshPolicy
from meshkit.database import Database
from meshkit.events.bus import ConsumerLag
from meshkit.events.envelopes import Envelopes, event_type
from meshkit.events.memory import MemoryBus
from meshkit.events.service_events import SCHEMA, EventContext, Events
from meshkit.telemetry.metrics import Metrics
from shop.events.v1 import events_pb2

POLICY = MeshPolicy.load(DEFAULT_MESH_FILE)
CAPTURED = event_type(events_pb2.PaymentCaptured)


def test_the_mesh_file_names_an_owner_for_every_event_the_services_emit() -> None:
    owners = POLICY.events.owners
    names = {m.full_name for m in events_pb2.DESCRIPTOR.message_types_by_name.values()}
    assert set(owners) == names
    assert owners[CAPTURED] == "payment"
    assert POLICY.events.owned_by("order") == [
        "shop.events.v1.OrderCancelled",
        "shop.events.v1.OrderConfirmed",
        "shop.events.v1.OrderPlaced",
    ]


class Shipping:
    """A consumer of PaymentCaptured, as the shipping service is."""

    def __init__(self, events: Events) -> None:
        self.handled: list[str] = []
        events.on(events_pb2.PaymentCaptured, self.on_captured)

    async def on_captured(self, ctx: EventContext, event: Any) -> None:
        self.handled.append(event.order_id)


@pytest.fixture
async def consumer() -> AsyncIterator[tuple[MemoryBus, Events, Metrics, Shipping]]:
    bus = MemoryBus()
    db = await Database.open(":memory:", SCHEMA)
    metrics = Metrics()
    events = Events(
        "shipping", db, bus, Envelopes(POLICY.events), trace.get_tracer("test"), metrics
    )
    shipping = Shipping(events)
    events.start()
    yield bus, events, metrics, shipping
    await events.close()
    await db.close()


async def publish(bus: MemoryBus, envelopes: Envelopes, order_id: str, source: str) -> None:
    envelope = envelopes.wrap(
        events_pb2.PaymentCaptured(order_id=order_id), source=source, correlation_id=order_id
    )
    await bus.publish(envelope.event_type, envelope.SerializeToString(), envelope.event_id)


async def idle(bus: MemoryBus) -> None:
    for _ in range(200):
        if bus.idle():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the consumer did not take every message")


def rejected(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "mesh_events_rejected_total", {"event_type": CAPTURED, "reason": reason}
    )
    return value or 0.0


async def test_an_event_from_another_source_than_its_owner_is_dropped_and_counted(
    consumer: tuple[MemoryBus, Events, Metrics, Shipping], caplog: pytest.LogCaptureFixture
) -> None:
    bus, events, metrics, shipping = consumer
    with caplog.at_level(logging.ERROR, logger="mesh.events"):
        await publish(bus, events.envelopes, "forged", source="order")
        await publish(bus, events.envelopes, "genuine", source="payment")
        await idle(bus)
    assert shipping.handled == ["genuine"]  # the owner's event only
    assert rejected(metrics, "source") == 1
    assert any("forged" in r.getMessage() and "'order'" in r.getMessage() for r in caplog.records)
    # Acknowledged, not redelivered: nothing is left for the consumer group.
    assert await bus.lag("shipping") == ConsumerLag(pending=0, ack_pending=0)


async def test_without_owners_in_the_mesh_file_every_source_is_accepted() -> None:
    envelopes = Envelopes(EventsSettings(envelope=POLICY.events.envelope))
    envelope = envelopes.wrap(
        events_pb2.PaymentCaptured(order_id="o1"), source="anyone", correlation_id="o1"
    )
    assert envelopes.forged(envelope) is None
    owned = Envelopes(POLICY.events)
    assert owned.forged(envelope) == "source"
    envelope.event_type = "shop.events.v1.Unheard"
    assert owned.forged(envelope) == "unowned"
