"""The broker, behind a small interface, so a second broker can be added without touching
services: publish with de-duplication by id, and durable, acknowledged consumption."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


class Delivery(Protocol):
    """One message from a durable consumer; unacknowledged messages come back."""

    data: bytes
    attempt: int  # 1 on first delivery

    async def ack(self) -> None: ...

    async def nak(self, delay: float) -> None: ...


Handler = Callable[[Sequence[Delivery]], Awaitable[None]]


@dataclass(frozen=True)
class ConsumerLag:
    """How far a durable consumer is behind: messages not yet delivered to it, and
    delivered but not yet acknowledged."""

    pending: int
    ack_pending: int


@dataclass(frozen=True)
class Outgoing:
    """One message of ``publish_many``: ``EventBus.publish``'s arguments."""

    subject: str
    data: bytes
    msg_id: str
    key: str = ""


class EventBus(Protocol):
    async def publish(self, subject: str, data: bytes, msg_id: str, key: str = "") -> None:
        """Publish durably; a second publish with the same ``msg_id`` is dropped by the broker
        (or, where the broker cannot, by the idempotent consumer). ``key`` (the envelope's
        correlation id: the order) orders the messages of one key where the broker orders
        by key (Kafka's partitions, SQS FIFO's message groups); others ignore it."""

    async def consume(self, durable: str, subjects: Sequence[str], handler: Handler) -> None:
        """Deliver batches of messages on ``subjects`` to ``handler``, for the consumer group
        ``durable`` (instances of one service share it), until cancelled."""

    async def lag(self, durable: str) -> ConsumerLag | None:
        """The consumer group's lag now (None if the broker does not know the group)."""

    async def close(self) -> None: ...


async def publish_many(bus: EventBus, messages: Sequence[Outgoing]) -> list[BaseException | None]:
    """Publishes ``messages`` at once: through the bus's own ``publish_many`` where it has
    one (a batch in flight together, e.g. NATS), else one ``publish`` each, concurrently.
    The outcome of each, in order: None once the broker has it, or what failed."""
    many = getattr(bus, "publish_many", None)
    if many is not None:
        return list(await many(messages))
    results = await asyncio.gather(
        *(bus.publish(m.subject, m.data, m.msg_id, key=m.key) for m in messages),
        return_exceptions=True,
    )
    return [r if isinstance(r, BaseException) else None for r in results]
