"""The event bus on RabbitMQ (aio-pika): a topic exchange of all the application's events
(named after the mesh file's ``[events] stream``, the event type as routing key), a
durable quorum queue per consumer group (``<stream>.<service>``) bound to the types it
handles, publisher confirms, manual acks.

Redelivery with a delay: a nak publishes a copy (its attempt counted in a header) to the
group's retry exchange, into the retry queue whose TTL is the first tier at or above the
delay; when the TTL expires the queue dead-letters it back into the group's queue, then
the original is acked. A message that fails ``MAX_ATTEMPTS`` times is parked in
``<queue>.dead`` instead (a dead-letter queue an operator looks at). The connection is
robust: after a broker restart it reconnects and restores its channels, queues, bindings
and consumers; a publish that fails meanwhile raises, and the outbox tries again.

RabbitMQ has no publish de-duplication: a message published twice (the outbox's relay
crashing between the publish and its mark) is delivered twice, and the consumer's
idempotence (``mesh_processed_events``) makes the second one a no-op. A queue delivers in
publish order, but a redelivery, or a group of several instances, reorders: the saga
tolerates it. The lag is the queue's ready messages plus those waiting in its retry
queues (pending), and the deliveries this process holds unacknowledged (ack pending).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
import aio_pika.exceptions
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from meshkit.config import EventsSettings, MeshConfig
from meshkit.events.bus import ConsumerLag, EventBus, Handler

log = logging.getLogger("mesh.events")

BATCH = 32
PREFETCH = 4 * BATCH
MAX_ATTEMPTS = 50
# The retry queues' TTLs (seconds): a nak's delay is rounded up to the first that holds it.
RETRY_TIERS = (0.25, 1.0, 4.0, 15.0)
ATTEMPT_HEADER = "x-mesh-attempt"
DEAD = "dead"  # the retry exchange's routing key of the parking queue


def queue_name(stream: str, durable: str) -> str:
    """The quorum queue of consumer group ``durable`` (devstack provisions the same)."""
    return f"{stream}.{durable}"


def tier(delay: float) -> float:
    """The retry tier a delay of ``delay`` seconds waits in."""
    return next((t for t in RETRY_TIERS if delay <= t), RETRY_TIERS[-1])


def _tier_key(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


@dataclass
class _Delivery:
    bus: RabbitBus
    queue: str
    message: AbstractIncomingMessage

    @property
    def data(self) -> bytes:
        return self.message.body

    @property
    def attempt(self) -> int:
        headers = self.message.headers or {}
        # our count across retries, plus the broker's requeues (a consumer that died)
        return int(headers.get(ATTEMPT_HEADER, 1) or 1) + int(
            headers.get("x-delivery-count", 0) or 0
        )

    async def ack(self) -> None:
        await self.bus._settle(self.queue, self.message)

    async def nak(self, delay: float) -> None:
        await self.bus._retry(self.queue, self.message, self.attempt, delay)
        await self.bus._settle(self.queue, self.message)


class RabbitBus:
    """A robust connection to RabbitMQ; channels for publishing and for each consumer."""

    def __init__(self, connection: AbstractRobustConnection, events: EventsSettings) -> None:
        self.connection = connection
        self.stream = events.stream
        # every event type the application knows (the bindings a group may drop)
        self.known_subjects = sorted(events.owners)
        self._publisher: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._lock = asyncio.Lock()
        self._unacked: dict[str, int] = {}
        self._subscribing: set[str] = set()  # groups whose bindings are being made here

    @classmethod
    async def connect(cls, url: str, name: str, events: EventsSettings) -> RabbitBus:
        """Connected as the user in ``url``; raises if the broker refuses."""
        connection = await aio_pika.connect_robust(
            url, client_properties={"connection_name": name}, reconnect_interval=0.5
        )
        return cls(connection, events)

    # --- publishing -------------------------------------------------------------------

    async def _exchange(self, name: str) -> AbstractExchange:
        async with self._lock:
            if self._publisher is None or self._publisher.is_closed:
                self._publisher = await self.connection.channel(publisher_confirms=True)
                self._exchanges.clear()
            if name not in self._exchanges:
                self._exchanges[name] = await self._publisher.get_exchange(name, ensure=False)
            return self._exchanges[name]

    async def publish(self, subject: str, data: bytes, msg_id: str, key: str = "") -> None:
        """Persistent, on the events exchange, confirmed by the broker. ``key`` adds
        nothing: a group's queue has no per-key order to keep."""
        exchange = await self._exchange(self.stream)
        await exchange.publish(_message(subject, data, msg_id, 1), routing_key=subject)

    async def _retry(
        self, queue: str, message: AbstractIncomingMessage, attempt: int, delay: float
    ) -> None:
        """A copy of ``message`` into ``queue``'s retry tier for ``delay`` (or parked)."""
        route = DEAD if attempt >= MAX_ATTEMPTS else _tier_key(tier(delay))
        if route == DEAD:
            log.error(
                "%s: %s failed %d times; parked in %s.dead", queue, message.type, attempt, queue
            )
        exchange = await self._exchange(f"{queue}.retry")
        copy = _message(message.type or "", message.body, message.message_id or "", attempt + 1)
        await exchange.publish(copy, routing_key=route)

    async def _settle(self, queue: str, message: AbstractIncomingMessage) -> None:
        """Ack; a delivery of a channel that is gone comes back by itself."""
        try:
            await message.ack()
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            log.debug("ack of a delivery of a closed channel (it comes back): %s", exc)
        finally:
            self._unacked[queue] = max(0, self._unacked.get(queue, 0) - 1)

    # --- consuming --------------------------------------------------------------------

    async def declare(self, channel: AbstractChannel, durable: str) -> AbstractQueue:
        """The group's quorum queue, its retry exchange and tiers, and its parking queue."""
        name = queue_name(self.stream, durable)
        queue = await channel.declare_queue(
            name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        retry = await channel.declare_exchange(
            f"{name}.retry", aio_pika.ExchangeType.DIRECT, durable=True
        )
        for seconds in RETRY_TIERS:
            key = _tier_key(seconds)
            waiting = await channel.declare_queue(
                f"{name}.retry.{key}",
                durable=True,
                arguments={
                    "x-message-ttl": round(seconds * 1000),
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": name,
                },
            )
            await waiting.bind(retry, routing_key=key)
        dead = await channel.declare_queue(f"{name}.{DEAD}", durable=True)
        await dead.bind(retry, routing_key=DEAD)
        return queue

    async def provision(self, durable: str, subjects: Sequence[str]) -> None:
        """The group's queues, if the group has none yet, bound to ``subjects`` (an
        administrator's step: a queue made before anyone publishes misses nothing)."""
        channel = await self.connection.channel()
        try:
            if await self._queue_counts(queue_name(self.stream, durable)) is not None:
                return
            queue = await self.declare(channel, durable)
            exchange = await channel.get_exchange(self.stream, ensure=True)
            for subject in subjects:
                await queue.bind(exchange, routing_key=subject)
        finally:
            await channel.close()

    async def consume(self, durable: str, subjects: Sequence[str], handler: Handler) -> None:
        """Deliver batches of the group's queue to ``handler`` until cancelled; the queue
        is bound to ``subjects`` only (other known types unbound; any that still arrives
        is acked unhandled)."""
        wanted = set(subjects)
        name = queue_name(self.stream, durable)
        self._subscribing.add(durable)
        while True:
            try:
                channel = await self.connection.channel()
                await channel.set_qos(prefetch_count=PREFETCH)
                queue = await self.declare(channel, durable)
                exchange = await channel.get_exchange(self.stream, ensure=True)
                for subject in sorted(wanted):
                    await queue.bind(exchange, routing_key=subject)
                for subject in self.known_subjects:
                    if subject not in wanted:
                        await queue.unbind(exchange, routing_key=subject)
                break
            except (aio_pika.exceptions.AMQPError, ConnectionError) as exc:
                log.warning("consumer %s: %s; retrying", durable, exc)
                await asyncio.sleep(1.0)
        self._subscribing.discard(durable)
        inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

        async def arrived(message: AbstractIncomingMessage) -> None:
            self._unacked[name] = self._unacked.get(name, 0) + 1
            await inbox.put(message)

        tag = await queue.consume(arrived, no_ack=False)
        try:
            while True:
                batch = [await inbox.get()]
                while len(batch) < BATCH and not inbox.empty():
                    batch.append(inbox.get_nowait())
                deliveries = []
                for message in batch:
                    if message.type in wanted:
                        deliveries.append(_Delivery(self, queue.name, message))
                    else:
                        await self._settle(queue.name, message)
                if deliveries:
                    await handler(deliveries)
        finally:
            with contextlib.suppress(Exception):
                await queue.cancel(tag)
            with contextlib.suppress(Exception):
                await channel.close()

    async def _queue_counts(self, name: str) -> int | None:
        """Ready messages of queue ``name`` (None if there is no such queue)."""
        channel = await self.connection.channel()
        try:
            queue = await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelClosed:  # NOT_FOUND closes the channel
            return None
        result = queue.declaration_result.message_count
        with contextlib.suppress(Exception):
            await channel.close()
        return int(result or 0)

    async def lag(self, durable: str) -> ConsumerLag | None:
        """From the queues' message counts (a passive declare each); None until the group's
        queue is there and, when it is consumed here, bound (a group gets what is
        published once it is subscribed, not before)."""
        if durable in self._subscribing:
            return None
        name = queue_name(self.stream, durable)
        ready = await self._queue_counts(name)
        if ready is None:
            return None
        for seconds in RETRY_TIERS:
            ready += await self._queue_counts(f"{name}.retry.{_tier_key(seconds)}") or 0
        return ConsumerLag(pending=ready, ack_pending=self._unacked.get(name, 0))

    async def close(self) -> None:
        await self.connection.close()


def _message(subject: str, data: bytes, msg_id: str, attempt: int) -> aio_pika.Message:
    headers: dict[str, Any] = {ATTEMPT_HEADER: attempt}
    return aio_pika.Message(
        data,
        message_id=msg_id,
        type=subject,  # the event type, kept across the retry queues' dead-lettering
        headers=headers,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def connect(config: MeshConfig) -> EventBus:
    """RabbitMQ at ``config.broker_url`` (``--broker-url``: ``amqp://user:password@host:port/``),
    as the user in it (devstack gives each service its own)."""
    if not config.broker_url:
        raise ValueError("--broker rabbitmq needs --broker-url (MESH_BROKER_URL): amqp://...")
    return await RabbitBus.connect(
        config.broker_url, config.instance_id or config.name, config.policy.events
    )
