"""Events for a service: emit through the outbox, consume idempotently.

``emit`` is called inside ``db.transaction()``: the event joins the state change in one
commit (see outbox). A consumer's handler runs in a transaction that also records the
event's id in ``mesh_processed_events``; a redelivered event finds its id and has no
second effect. Handlers run one event at a time, in the order the broker delivers them;
a handler that raises gets its event redelivered after a growing delay.

Trace context travels in the envelope: a consumer's span is a child of the span that
emitted the event, so one order yields one trace across services and the broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import Message
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from services.mesh import outbox
from services.mesh.database import Database, fetch_one
from services.mesh.envelopes import EventEnvelope, event_type, unwrap, wrap
from services.mesh.eventbus import Delivery, EventBus
from services.mesh.times import now_micros

log = logging.getLogger("mesh.events")

SCHEMA = (
    outbox.SCHEMA
    + """
CREATE TABLE IF NOT EXISTS mesh_processed_events (
    event_id     TEXT PRIMARY KEY,
    event_type   TEXT NOT NULL,
    process_time INTEGER NOT NULL
);
"""
)

E = TypeVar("E", bound=Message)


@dataclass
class EventContext:
    """What a handler gets besides the event: its envelope, and ``emit`` for follow-ups
    (same correlation id, this event as the cause)."""

    envelope: EventEnvelope
    events: Events

    async def emit(self, event: Message) -> EventEnvelope:
        return await self.events.emit(
            event,
            correlation_id=self.envelope.correlation_id,
            causation_id=self.envelope.event_id,
        )


Handler = Callable[[EventContext, Any], Awaitable[None]]


class Events:
    """The outbox and the durable consumer of one service."""

    def __init__(
        self,
        service: str,
        db: Database,
        bus: EventBus,
        tracer: trace.Tracer,
        faults: frozenset[str] = frozenset(),
    ) -> None:
        self.service = service
        self._db = db
        self._bus = bus
        self._tracer = tracer
        self.outbox = outbox.Outbox(db, bus, faults)
        self._handlers: dict[str, Handler] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def on(self, event_cls: type[E], handler: Callable[[EventContext, E], Awaitable[None]]) -> None:
        """Call ``handler`` for every ``event_cls`` event (once per event id)."""
        self._handlers[event_type(event_cls)] = handler

    async def emit(
        self, event: Message, *, correlation_id: str, causation_id: str = ""
    ) -> EventEnvelope:
        """Queue ``event`` in the current transaction; it is published once that commits."""
        with self._tracer.start_as_current_span(
            f"{event_type(event)} send",
            kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "nats", "shop.correlation_id": correlation_id},
        ):
            envelope = wrap(
                event,
                source=self.service,
                correlation_id=correlation_id,
                causation_id=causation_id,
            )
        await self.outbox.add(envelope)
        return envelope

    def start(self) -> None:
        """Start the relay, and the consumer if any handler is registered."""
        self._tasks.append(asyncio.create_task(self.outbox.relay_forever(), name="outbox-relay"))
        if self._handlers:
            subjects = sorted(self._handlers)
            self._tasks.append(
                asyncio.create_task(
                    self._bus.consume(self.service, subjects, self._handle_batch),
                    name=f"consumer:{self.service}",
                )
            )

    async def _handle_batch(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            await self._handle(delivery)

    async def _handle(self, delivery: Delivery) -> None:
        try:
            envelope = EventEnvelope.FromString(delivery.data)
            event = unwrap(envelope)
        except Exception as exc:  # not ours to fix by retrying
            log.error("dropping an undecodable event: %s", exc)
            await delivery.ack()
            return
        handler = self._handlers.get(envelope.event_type)
        parent = propagate.extract(dict(envelope.trace_context))
        with self._tracer.start_as_current_span(
            f"{envelope.event_type} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.message.id": envelope.event_id,
                "shop.correlation_id": envelope.correlation_id,
                "messaging.delivery.attempt": delivery.attempt,
            },
        ):
            try:
                if handler is not None:
                    await self._apply(handler, envelope, event)
            except Exception:
                delay = min(0.2 * 2 ** min(delivery.attempt, 6), 10.0)
                log.exception(
                    "%s %s (order %s) failed on attempt %d; redelivery in %.1fs",
                    envelope.event_type,
                    envelope.event_id,
                    envelope.correlation_id,
                    delivery.attempt,
                    delay,
                )
                await delivery.nak(delay)
                return
        await delivery.ack()

    async def _apply(self, handler: Handler, envelope: EventEnvelope, event: Message) -> None:
        async with self._db.transaction() as conn:
            seen = await fetch_one(
                conn, "SELECT 1 FROM mesh_processed_events WHERE event_id = ?", (envelope.event_id,)
            )
            if seen:
                log.debug(
                    "%s %s seen before; no second effect", envelope.event_type, envelope.event_id
                )
                return
            await handler(EventContext(envelope, self), event)
            await conn.execute(
                "INSERT INTO mesh_processed_events (event_id, event_type, process_time)"
                " VALUES (?, ?, ?)",
                (envelope.event_id, envelope.event_type, now_micros()),
            )

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
