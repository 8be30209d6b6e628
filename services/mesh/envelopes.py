"""Domain events on the wire: protobuf messages of shop.events.v1 in an EventEnvelope."""

from __future__ import annotations

import uuid

from google.protobuf import any_pb2, descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.message import Message
from opentelemetry import propagate

from shop.events.v1 import envelope_pb2, events_pb2  # noqa: F401  (registers the events)

EventEnvelope = envelope_pb2.EventEnvelope


def event_type(event: Message | type[Message]) -> str:
    """The full protobuf name of an event (its type and its broker subject)."""
    return event.DESCRIPTOR.full_name


def wrap(
    event: Message, *, source: str, correlation_id: str, causation_id: str = ""
) -> EventEnvelope:
    """An envelope for ``event`` carrying the current trace context."""
    occurred = timestamp_pb2.Timestamp()
    occurred.GetCurrentTime()
    payload = any_pb2.Any()
    payload.Pack(event)
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return EventEnvelope(
        event_id=str(uuid.uuid4()),
        event_type=event_type(event),
        occur_time=occurred,
        correlation_id=correlation_id,
        causation_id=causation_id,
        source=source,
        trace_context=carrier,
        payload=payload,
    )


def unwrap(envelope: EventEnvelope) -> Message:
    """The event inside ``envelope``; KeyError if its type is unknown here."""
    descriptor = descriptor_pool.Default().FindMessageTypeByName(envelope.event_type)
    event = message_factory.GetMessageClass(descriptor)()
    if not envelope.payload.Unpack(event):
        raise ValueError(f"payload is {envelope.payload.type_url}, not {envelope.event_type}")
    return event


def messaging_attributes(
    operation: str, subject: str, event_id: str, correlation_id: str
) -> dict[str, str | int]:
    """The OpenTelemetry messaging attributes of a span about one event."""
    return {
        "messaging.system": "nats",
        "messaging.operation.type": operation,
        "messaging.destination.name": subject,
        "messaging.message.id": event_id,
        "shop.correlation_id": correlation_id,
    }
