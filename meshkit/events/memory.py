"""An in-process event bus with the broker's semantics, for unit tests and simulations.

Like the NATS bus: one ordered log of messages, publish de-duplication by message id,
durable consumer groups that each see every message on their subjects once acknowledged,
and redelivery (after the asked delay) of what was not. Nothing survives the process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from meshkit.events.bus import ConsumerLag, Handler

BATCH = 8  # messages per delivery: consumers of one group share a burst


@dataclass
class _Message:
    subject: str
    data: bytes
    msg_id: str


@dataclass
class _Delivery:
    bus: MemoryBus
    group: str
    message: _Message
    attempt: int
    settled: bool = False

    @property
    def data(self) -> bytes:
        return self.message.data

    async def ack(self) -> None:
        self.settled = True

    async def nak(self, delay: float) -> None:
        self.settled = True
        self.bus.scheduled += 1
        loop = asyncio.get_running_loop()
        loop.call_later(delay, self.bus._redeliver, self.group, self.message, self.attempt + 1)


@dataclass
class _Group:
    subjects: frozenset[str]
    cursor: int = 0
    redeliveries: list[tuple[_Message, int]] = field(default_factory=list)


class MemoryBus:
    def __init__(self) -> None:
        self.log: list[_Message] = []
        self._ids: set[str] = set()
        self._groups: dict[str, _Group] = {}
        self._wake = asyncio.Condition()
        self.duplicates_dropped = 0
        self.scheduled = 0  # nak'ed deliveries waiting for their delay

    async def publish(self, subject: str, data: bytes, msg_id: str, key: str = "") -> None:
        if msg_id in self._ids:
            self.duplicates_dropped += 1
            return
        self._ids.add(msg_id)
        self.log.append(_Message(subject, data, msg_id))
        async with self._wake:
            self._wake.notify_all()

    def redeliver_all(self, group: str) -> None:
        """Delivers every message the group has seen once more (a broker's at-least-once)."""
        g = self._groups[group]
        g.redeliveries.extend((m, 2) for m in self.log[: g.cursor] if m.subject in g.subjects)
        asyncio.get_running_loop().create_task(self._notify())

    def _redeliver(self, group: str, message: _Message, attempt: int) -> None:
        self.scheduled -= 1
        self._groups[group].redeliveries.append((message, attempt))
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._wake:
            self._wake.notify_all()

    async def consume(self, durable: str, subjects: Sequence[str], handler: Handler) -> None:
        group = self._groups.setdefault(durable, _Group(frozenset(subjects)))
        while True:
            batch: list[_Delivery] = [
                _Delivery(self, durable, m, attempt) for m, attempt in group.redeliveries
            ]
            group.redeliveries.clear()
            while group.cursor < len(self.log) and len(batch) < BATCH:
                message = self.log[group.cursor]
                group.cursor += 1
                if message.subject in group.subjects:
                    batch.append(_Delivery(self, durable, message, 1))
            if batch:
                await handler(batch)
                await asyncio.sleep(0)  # the group's other consumers take the next batch
                continue
            async with self._wake:
                await self._wake.wait_for(
                    lambda: group.cursor < len(self.log) or bool(group.redeliveries)
                )

    async def lag(self, durable: str) -> ConsumerLag | None:
        g = self._groups.get(durable)
        if g is None:
            return None
        unread = sum(1 for m in self.log[g.cursor :] if m.subject in g.subjects)
        return ConsumerLag(pending=unread + len(g.redeliveries), ack_pending=0)

    def idle(self) -> bool:
        """True when every group has read the whole log and has nothing to redeliver."""
        return self.scheduled == 0 and all(
            g.cursor == len(self.log) and not g.redeliveries for g in self._groups.values()
        )

    async def close(self) -> None:
        pass
