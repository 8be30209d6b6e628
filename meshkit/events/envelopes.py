"""Events on the wire: a protobuf event packed in the application's envelope message.

The envelope type and the modules that register the event types come from the mesh file
(``[events]``, see ``meshkit.config.EventsSettings``): the runtime knows the envelope by
its fields (event_id, event_type, occur_time, correlation_id, causation_id, source,
trace_context, payload), not by its package.
"""

from __future__ import annotations

import functools
import importlib
import time
import uuid
from typing import Any

from google.protobuf import any_pb2, descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.message import Message
from opentelemetry import propagate

from meshkit.config import EventsSettings

# An envelope message (the application's generated class); typed loosely on purpose.
Envelope = Any


def event_type(event: Message | type[Message]) -> str:
    """The full protobuf name of an event (its type and its broker subject)."""
    return event.DESCRIPTOR.full_name


class Envelopes:
    """Wraps events into the configured envelope and reads them back."""

    def __init__(self, settings: EventsSettings) -> None:
        if not settings.envelope:
            raise ValueError("the mesh file names no envelope: set [events] envelope")
        module, _, name = settings.envelope.partition(":")
        self.message: type[Message] = getattr(importlib.import_module(module), name)
        # event type -> the service that may publish it (empty: no ownership declared)
        self.owners: dict[str, str] = dict(settings.owners)
        for registry in settings.registry:  # importing registers the event types
            importlib.import_module(registry)

    def forged(self, envelope: Envelope) -> str | None:
        """Why ``envelope`` may not be trusted, or None: with owners declared, an event
        type that has none, or a ``source`` that is not its owner."""
        if not self.owners:
            return None
        owner = self.owners.get(envelope.event_type)
        if owner is None:
            return "unowned"
        if envelope.source != owner:
            return "source"
        return None

    def parse(self, data: bytes) -> Envelope:
        return self.message.FromString(data)

    def wrap(
        self,
        event: Message,
        *,
        source: str,
        correlation_id: str,
        causation_id: str = "",
        trace_context: dict[str, str] | None = None,
    ) -> Envelope:
        """An envelope for ``event`` carrying ``trace_context``, by default the current one."""
        now = time.time_ns()  # Timestamp.GetCurrentTime goes through datetime: slower
        occurred = timestamp_pb2.Timestamp(seconds=now // 1_000_000_000, nanos=now % 1_000_000_000)
        payload = any_pb2.Any()
        payload.Pack(event)
        carrier = trace_context
        if carrier is None:
            carrier = {}
            propagate.inject(carrier)
        return self.message(
            event_id=str(uuid.uuid4()),
            event_type=event_type(event),
            occur_time=occurred,
            correlation_id=correlation_id,
            causation_id=causation_id,
            source=source,
            trace_context=carrier,
            payload=payload,
        )


@functools.lru_cache(maxsize=256)
def _event_class(name: str) -> type[Message]:
    """The class of the event type ``name`` (looked up once); KeyError if unknown here."""
    return message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(name))


def unwrap(envelope: Envelope) -> Message:
    """The event inside ``envelope``; KeyError if its type is unknown here."""
    event = _event_class(envelope.event_type)()
    if not envelope.payload.Unpack(event):
        raise ValueError(f"payload is {envelope.payload.type_url}, not {envelope.event_type}")
    return event


def messaging_attributes(
    operation: str, subject: str, event_id: str, correlation_id: str, system: str = "nats"
) -> dict[str, str | int]:
    """The OpenTelemetry messaging attributes of a span about one event."""
    return {
        "messaging.system": system,
        "messaging.operation.type": operation,
        "messaging.destination.name": subject,
        "messaging.message.id": event_id,
        "messaging.message.conversation_id": correlation_id,
    }
