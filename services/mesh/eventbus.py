"""The broker, behind a small interface, so a second broker can be added without touching
services: publish with de-duplication by id, and durable, acknowledged consumption."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol


class Delivery(Protocol):
    """One message from a durable consumer; unacknowledged messages come back."""

    data: bytes
    attempt: int  # 1 on first delivery

    async def ack(self) -> None: ...

    async def nak(self, delay: float) -> None: ...


Handler = Callable[[Sequence[Delivery]], Awaitable[None]]


class EventBus(Protocol):
    async def publish(self, subject: str, data: bytes, msg_id: str) -> None:
        """Publish durably; a second publish with the same ``msg_id`` is dropped by the broker."""

    async def consume(self, durable: str, subjects: Sequence[str], handler: Handler) -> None:
        """Deliver batches of messages on ``subjects`` to ``handler``, for the consumer group
        ``durable`` (instances of one service share it), until cancelled."""

    async def close(self) -> None: ...
