"""The event bus on SQS (aiobotocore): a FIFO queue per consumer group
(``<stream>-<service>.fifo``), fed by the publisher itself (no SNS: see below).

- Fan-out: a group's queue is tagged with the event types it handles (a tag
  ``subscribes:<type>`` each; set by the group when it consumes, and by devstack when it
  provisions a service's queue); a publish sends the event to every queue of the stream
  whose tags name its type (a queue with no such tags gets every type). The list is
  cached for ``SUBSCRIBERS_TTL`` seconds.
- Order and de-duplication: the message group is the key (the order id), so one order's
  events reach its group in publish order (the publishes of one key are sent one after
  another), one at a time; the de-duplication id is the event id, so a second publish of
  an event within SQS's five minutes is dropped by the queue.
- Redelivery: a nak sends a copy (its attempt counted in an attribute) to the group's
  retry queue (``<stream>-<service>-retry``, a standard queue) with the delay as its
  ``DelaySeconds``, then acks the original: the order's later events are not held behind
  it (a FIFO group blocked by a message that waits for a later one of the same order
  would never move: a saga's step that arrived before the event it needs). After
  ``MAX_ATTEMPTS`` the copy goes to the group's dead-letter queue instead
  (``<stream>-<service>-dead.fifo``), where a message received ``MAX_RECEIVES`` times
  without an ack (a consumer dying on it) also moves (a redrive policy).
- Acks are deletes, sent in batches while the next batch is handled.
- Lag: the queues' approximate counts (visible and delayed: pending; in flight: ack pending).

An endpoint (``--broker-url``) is an SQS-compatible server (devstack's ElasticMQ);
without one, AWS's own, with the usual credential chain. A loopback endpoint with no
credentials configured gets placeholder ones (ElasticMQ does not check them), logged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import os
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from meshkit.config import EventsSettings, MeshConfig
from meshkit.events.bus import ConsumerLag, EventBus, Handler

log = logging.getLogger("mesh.events")

BATCH = 10  # SQS's most per receive
VISIBILITY_TIMEOUT = 10  # seconds a received message is hidden before it comes back
MAX_RECEIVES = 50  # received without an ack: then it moves to the dead-letter queue
MAX_ATTEMPTS = 50  # nak'ed: then it moves to the dead-letter queue
WAIT_SECONDS = 1  # long polling
SUBSCRIBERS_TTL = 2.0
SEND_CONCURRENCY = 4  # batches in flight to one queue
RECEIVE_PAUSE = 0.05  # seconds before a receive that follows a short batch
TAG_PREFIX = "subscribes:"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def queue_name(stream: str, durable: str) -> str:
    """The FIFO queue of consumer group ``durable``."""
    return f"{stream}-{durable}.fifo"


def dead_letter_name(stream: str, durable: str) -> str:
    return f"{stream}-{durable}-dead.fifo"


def retry_name(stream: str, durable: str) -> str:
    return f"{stream}-{durable}-retry"


@dataclass
class _Delivery:
    bus: SQSBus
    durable: str
    message: dict[str, Any]
    acks: list[str]

    def _attribute(self, name: str) -> str:
        return str(self.message.get("MessageAttributes", {}).get(name, {}).get("StringValue", ""))

    @property
    def data(self) -> bytes:
        return base64.b64decode(self.message["Body"])

    @property
    def attempt(self) -> int:
        """The naks before this copy, plus its receives (a consumer that died on it)."""
        received = int(self.message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
        return int(self._attribute("attempt") or 1) + received - 1

    @property
    def group(self) -> str:
        return str(self.message.get("Attributes", {}).get("MessageGroupId", ""))

    async def ack(self) -> None:
        self.acks.append(self.message["ReceiptHandle"])

    async def nak(self, delay: float) -> None:
        await self.bus._retry(self, delay)
        self.acks.append(self.message["ReceiptHandle"])


@dataclass
class _Subscribers:
    queues: dict[str, frozenset[str] | None] = field(default_factory=dict)  # url -> types
    fetched: float = -math.inf


class _BatchSender:
    """Sends the messages published at about the same time to one queue in batches of
    ten (SendMessageBatch), a few batches in flight at once: a request costs the same
    for one message or ten. A message's own failure fails its publish only."""

    def __init__(self, client: Any, url: str) -> None:
        self.client = client
        self.url = url
        self._buffer: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._in_flight = asyncio.Semaphore(SEND_CONCURRENCY)
        self._sending: set[asyncio.Task[None]] = set()

    async def send(self, entry: dict[str, Any]) -> None:
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer.append((entry, sent))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await sent

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the publishes of this moment join the buffer
        while self._buffer:
            batch, self._buffer = self._buffer[:BATCH], self._buffer[BATCH:]
            await self._in_flight.acquire()
            task = asyncio.create_task(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[dict[str, Any], asyncio.Future[None]]]) -> None:
        try:
            answer = await self.client.send_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), **entry} for i, (entry, _) in enumerate(batch)],
            )
        except Exception as exc:
            for _, sent in batch:
                if not sent.done():
                    sent.set_exception(exc)
            return
        finally:
            self._in_flight.release()
        failed = {f["Id"]: f for f in answer.get("Failed", [])}
        for i, (_, sent) in enumerate(batch):
            if sent.done():
                continue
            if str(i) in failed:
                f = failed[str(i)]
                sent.set_exception(RuntimeError(f"sqs: {f.get('Code')}: {f.get('Message')}"))
            else:
                sent.set_result(None)


class SQSBus:
    """One SQS client; queues found by name under the stream's prefix."""

    def __init__(self, client: Any, exit_stack: AsyncExitStack, events: EventsSettings) -> None:
        self.client = client
        self._exit_stack = exit_stack
        self.stream = events.stream
        self.known_subjects = sorted(events.owners)
        self._subscribers = _Subscribers()
        self._refresh = asyncio.Lock()
        self._last_by_key: dict[str, asyncio.Future[None]] = {}
        self._urls: dict[str, str] = {}
        self._senders: dict[str, _BatchSender] = {}

    @classmethod
    async def connect(cls, endpoint: str, name: str, events: EventsSettings) -> SQSBus:
        session = get_session()
        options: dict[str, Any] = {}
        if endpoint:
            options["endpoint_url"] = endpoint
            host = urlparse(endpoint).hostname or ""
            if host in LOCAL_HOSTS and await session.get_credentials() is None:
                log.info(
                    "sqs: no AWS credentials; placeholders for the local endpoint %s", endpoint
                )
                options |= {"aws_access_key_id": "meshkit", "aws_secret_access_key": "local"}
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        config = AioConfig(
            user_agent_extra=f"meshkit/{name}",
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=5,
            read_timeout=WAIT_SECONDS + 20,
            max_pool_connections=64,
        )
        stack = AsyncExitStack()
        client = await stack.enter_async_context(
            session.create_client(
                "sqs", region_name=region or "us-east-1", config=config, **options
            )
        )
        return cls(client, stack, events)

    # --- queues -----------------------------------------------------------------------

    async def _queue_url(self, name: str) -> str | None:
        if name in self._urls:
            return self._urls[name]
        try:
            url = (await self.client.get_queue_url(QueueName=name))["QueueUrl"]
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise
        self._urls[name] = url
        return str(url)

    async def declare(self, durable: str) -> str:
        """The group's FIFO queue and its dead-letter queue; the queue's URL."""
        dead = await self.client.create_queue(
            QueueName=dead_letter_name(self.stream, durable),
            Attributes={"FifoQueue": "true", "MessageRetentionPeriod": "1209600"},
        )
        self._urls[dead_letter_name(self.stream, durable)] = dead["QueueUrl"]
        retry = await self.client.create_queue(
            QueueName=retry_name(self.stream, durable),
            Attributes={
                "VisibilityTimeout": str(VISIBILITY_TIMEOUT),
                "MessageRetentionPeriod": "1209600",
            },
        )
        self._urls[retry_name(self.stream, durable)] = retry["QueueUrl"]
        arn = (
            await self.client.get_queue_attributes(
                QueueUrl=dead["QueueUrl"], AttributeNames=["QueueArn"]
            )
        )["Attributes"]["QueueArn"]
        name = queue_name(self.stream, durable)
        url = await self._queue_url(name)
        if url is None:
            created = await self.client.create_queue(
                QueueName=name,
                Attributes={
                    "FifoQueue": "true",
                    "ContentBasedDeduplication": "false",
                    "VisibilityTimeout": str(VISIBILITY_TIMEOUT),
                    "MessageRetentionPeriod": "1209600",
                    "RedrivePolicy": (
                        f'{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{MAX_RECEIVES}"}}'
                    ),
                },
            )
            url = str(created["QueueUrl"])
            self._urls[name] = url
        return url

    async def subscribe(self, url: str, subjects: Sequence[str]) -> None:
        """Tags the queue with ``subjects``, and drops the tags of the other known types."""
        await self.client.tag_queue(QueueUrl=url, Tags={f"{TAG_PREFIX}{s}": "1" for s in subjects})
        others = [f"{TAG_PREFIX}{s}" for s in self.known_subjects if s not in set(subjects)]
        if others:
            await self.client.untag_queue(QueueUrl=url, TagKeys=others)
        self._subscribers.fetched = -math.inf  # this process's publishes see it at once

    async def provision(self, durable: str, subjects: Sequence[str]) -> None:
        """The group's queues, if it has none yet, subscribed to ``subjects``."""
        if await self._queue_url(queue_name(self.stream, durable)) is not None:
            return
        await self.subscribe(await self.declare(durable), subjects)

    async def _subscriber_queues(self) -> dict[str, frozenset[str] | None]:
        async with self._refresh:
            subs = self._subscribers
            if time.monotonic() - subs.fetched < SUBSCRIBERS_TTL:
                return subs.queues
            listed = await self.client.list_queues(QueueNamePrefix=f"{self.stream}-")
            queues: dict[str, frozenset[str] | None] = {}
            for url in listed.get("QueueUrls", []):
                if not url.endswith(".fifo") or url.endswith("-dead.fifo"):
                    continue  # a group's retry and dead-letter queues
                tags = (await self.client.list_queue_tags(QueueUrl=url)).get("Tags", {})
                types = frozenset(k[len(TAG_PREFIX) :] for k in tags if k.startswith(TAG_PREFIX))
                queues[url] = types or None  # untagged: every type
            subs.queues, subs.fetched = queues, time.monotonic()
            return queues

    # --- publishing -------------------------------------------------------------------

    def _sender(self, url: str) -> _BatchSender:
        if url not in self._senders:
            self._senders[url] = _BatchSender(self.client, url)
        return self._senders[url]

    async def publish(self, subject: str, data: bytes, msg_id: str, key: str = "") -> None:
        """To every queue subscribed to ``subject``, in the message group ``key`` (one
        key's publishes go out one after another, in call order)."""
        group = key or msg_id
        previous = self._last_by_key.get(group)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._last_by_key[group] = done
        try:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(previous)
            queues = await self._subscriber_queues()
            body = base64.b64encode(data).decode()
            targets = [url for url, types in queues.items() if types is None or subject in types]
            entry = {
                "MessageBody": body,
                "MessageGroupId": group,
                "MessageDeduplicationId": msg_id,
                "MessageAttributes": _attributes(subject, msg_id, 1),
            }
            await asyncio.gather(*(self._sender(url).send(entry) for url in targets))
        finally:
            done.set_result(None)
            if self._last_by_key.get(group) is done:
                del self._last_by_key[group]

    # --- consuming --------------------------------------------------------------------

    async def consume(self, durable: str, subjects: Sequence[str], handler: Handler) -> None:
        """Receive batches from the group's queue until cancelled; a message of a type
        not in ``subjects`` (sent before the queue's tags changed) is deleted unhandled."""
        wanted = set(subjects)
        while True:
            try:
                url = await self.declare(durable)
                await self.subscribe(url, sorted(wanted))
                break
            except (BotoCoreError, ClientError) as exc:
                log.warning("consumer %s: %s; retrying", durable, exc)
                await asyncio.sleep(1.0)
        # The next receive is under way while the handler has the current batch (a
        # group's next messages are not in it: FIFO holds them while one is in hand).
        # The group's queue and its retry queue each have a receive under way while the
        # handler has a batch (a group's next messages are not in it: FIFO holds them
        # while one is in hand); acks (deletes) go out while the next batch is handled.
        retry_url = self._urls[retry_name(self.stream, durable)]
        batches: asyncio.Queue[tuple[str, list[dict[str, Any]]]] = asyncio.Queue(maxsize=1)
        pollers = [asyncio.create_task(self._poll(u, durable, batches)) for u in (url, retry_url)]
        deleting: set[asyncio.Task[None]] = set()
        try:
            while True:
                source, messages = await batches.get()
                acks = await self._handle(durable, messages, wanted, handler)
                if acks:
                    task = asyncio.create_task(self._delete(source, acks))
                    deleting.add(task)
                    task.add_done_callback(deleting.discard)
        except Exception:
            log.exception("consumer %s stopped", durable)
            raise
        finally:
            for poller in pollers:
                poller.cancel()
            if deleting:  # what was handled is acked, even when cancelled
                await asyncio.shield(asyncio.gather(*deleting, return_exceptions=True))

    async def _poll(
        self,
        url: str,
        durable: str,
        batches: asyncio.Queue[tuple[str, list[dict[str, Any]]]],
    ) -> None:
        pause = 0.0
        while True:
            messages = await self._receive(url, durable, pause)
            # a short batch: wait a moment for more (fewer requests per message)
            pause = 0.0 if len(messages) == BATCH else RECEIVE_PAUSE
            if messages:
                await batches.put((url, messages))

    async def _receive(self, url: str, durable: str, pause: float = 0.0) -> list[dict[str, Any]]:
        await asyncio.sleep(pause)
        try:
            received = await self.client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=BATCH,
                WaitTimeSeconds=WAIT_SECONDS,
                AttributeNames=["ApproximateReceiveCount", "MessageGroupId"],
                MessageAttributeNames=["All"],
            )
        except (BotoCoreError, ClientError) as exc:  # the server away: try again
            log.warning("consumer %s: %s", durable, exc)
            await asyncio.sleep(0.5)
            return []
        return list(received.get("Messages", []))

    async def _handle(
        self, durable: str, messages: list[dict[str, Any]], wanted: set[str], handler: Handler
    ) -> list[str]:
        """One receive's messages to ``handler``; the receipts to delete (acked, nak'ed
        and sent to the retry queue, or not of the group's types)."""
        acks: list[str] = []
        deliveries = []
        for message in messages:
            delivery = _Delivery(self, durable, message, acks)
            if delivery._attribute("subject") in wanted:
                deliveries.append(delivery)
            else:
                acks.append(message["ReceiptHandle"])
        try:
            if deliveries:
                await handler(deliveries)
        except BaseException:
            await asyncio.shield(self._delete_anywhere(durable, deliveries, acks))
            raise
        return acks

    async def _delete_anywhere(
        self, durable: str, deliveries: list[_Delivery], acks: list[str]
    ) -> None:
        """Acks of a batch whose handler was interrupted (its source unknown here: both
        queues are tried; a receipt of the other queue is refused harmlessly)."""
        for name in (queue_name(self.stream, durable), retry_name(self.stream, durable)):
            await self._delete(self._urls[name], acks)

    async def _retry(self, delivery: _Delivery, delay: float) -> None:
        """A copy of ``delivery`` to its group's retry queue, due in ``delay`` seconds (or
        to its dead-letter queue after ``MAX_ATTEMPTS``)."""
        attempt = delivery.attempt
        subject, msg_id = delivery._attribute("subject"), delivery._attribute("id")
        body = delivery.message["Body"]
        if attempt >= MAX_ATTEMPTS:
            log.error(
                "sqs: %s %s failed %d times; moved to %s",
                subject,
                msg_id,
                attempt,
                dead_letter_name(self.stream, delivery.durable),
            )
            await self.client.send_message(
                QueueUrl=self._urls[dead_letter_name(self.stream, delivery.durable)],
                MessageBody=body,
                MessageGroupId=delivery.group or msg_id or "dead",
                MessageDeduplicationId=f"{msg_id}-dead-{attempt}",
                MessageAttributes=_attributes(subject, msg_id, attempt),
            )
            return
        await self.client.send_message(
            QueueUrl=self._urls[retry_name(self.stream, delivery.durable)],
            MessageBody=body,
            DelaySeconds=min(math.ceil(delay), 900),
            MessageAttributes=_attributes(subject, msg_id, attempt + 1),
        )

    async def _delete(self, url: str, receipts: list[str]) -> None:
        """Deletes (acks) in batches of ten; one that fails comes back (idempotent)."""
        for start in range(0, len(receipts), BATCH):
            entries = [
                {"Id": str(i), "ReceiptHandle": r}
                for i, r in enumerate(receipts[start : start + BATCH])
            ]
            try:
                await self.client.delete_message_batch(QueueUrl=url, Entries=entries)
            except (BotoCoreError, ClientError) as exc:
                log.warning("sqs: deleting %d messages: %s (they come back)", len(entries), exc)

    async def lag(self, durable: str) -> ConsumerLag | None:
        """From the queue's approximate counts; None until the queue is old enough for
        every publisher's list of subscribers to hold it (``SUBSCRIBERS_TTL``): a group
        gets what is published once it is subscribed, not before."""
        url = await self._queue_url(queue_name(self.stream, durable))
        if url is None:
            return None
        attributes = (
            await self.client.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                    "CreatedTimestamp",
                ],
            )
        )["Attributes"]
        created = int(attributes.get("CreatedTimestamp", 0))
        if time.time() < created + SUBSCRIBERS_TTL + 1:
            return None
        pending = int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
            attributes.get("ApproximateNumberOfMessagesDelayed", 0)
        )
        ack_pending = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
        retry_url = await self._queue_url(retry_name(self.stream, durable))
        if retry_url is not None:
            retry = (
                await self.client.get_queue_attributes(
                    QueueUrl=retry_url,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible",
                        "ApproximateNumberOfMessagesDelayed",
                    ],
                )
            )["Attributes"]
            pending += int(retry.get("ApproximateNumberOfMessages", 0)) + int(
                retry.get("ApproximateNumberOfMessagesDelayed", 0)
            )
            ack_pending += int(retry.get("ApproximateNumberOfMessagesNotVisible", 0))
        return ConsumerLag(pending=pending, ack_pending=ack_pending)

    async def close(self) -> None:
        await self._exit_stack.aclose()


def _attributes(subject: str, msg_id: str, attempt: int) -> dict[str, Any]:
    """A message's attributes: its event type, its event id, its attempt."""
    return {
        "subject": {"DataType": "String", "StringValue": subject},
        "id": {"DataType": "String", "StringValue": msg_id},
        "attempt": {"DataType": "Number", "StringValue": str(attempt)},
    }


def _not_found(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return "NonExistentQueue" in code or "QueueDoesNotExist" in code


async def connect(config: MeshConfig) -> EventBus:
    """SQS at ``config.broker_url`` (``--broker-url``, an SQS-compatible endpoint), or
    AWS's own when it is empty."""
    return await SQSBus.connect(
        config.broker_url, config.instance_id or config.name, config.policy.events
    )
