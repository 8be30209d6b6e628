"""The event bus on Apache Kafka (aiokafka): a topic per event family, keyed by the order.

- **Topics**: an event type's family is its protobuf package, the events of one flow:
  ``shop.events.v1.OrderPlaced`` goes to the topic ``shop.events.v1``, with ``PARTITIONS``
  partitions. The message key is the envelope's correlation id (the order,
  ``publish(key=)``), so all of one order's events are in one partition, in publish order:
  a participant sees OrderPlaced before the StockReserved that answered it, as on NATS's
  single stream (with a topic per publishing service it would not, and the saga's waits
  for a step not yet remembered would become redeliveries). A consumer group skips the
  types it does not handle. The type, id and trace context ride in headers (``mesh-type``,
  ``mesh-id``, ``traceparent``).
- **Producer**: idempotent (``enable_idempotence``: acks from all replicas, a retried send
  is written once). Kafka keeps no de-duplication window across producer sessions: an
  outbox row published again after a crash is a second message, which the idempotent
  consumer (``mesh_processed_events``) ignores.
- **Consumers**: one consumer group per service (``durable``), reading from the earliest
  offset on its first start. Offsets are committed only up to the first message not yet
  settled: a handler acks after its transaction commits; a crash redelivers from there.
- **Redelivery**: a ``nak(delay)`` writes the message to the group's retry topic
  (``mesh.retry.<group>``, same key) with its attempt and due time, and settles the
  original, so the partition moves on; the retry topic's records are held in memory
  until due (a bounded pause: the handlers' delays are at most 10 s). After
  ``MAX_DELIVER`` attempts a message goes to ``mesh.dead.<group>`` and is logged. Without
  the broker (the retry cannot be written) the message is held here and retried.
- **Lag**: the group's committed offsets against the partitions' ends (``ConsumerLag``:
  ``ack_pending`` is what this instance holds unsettled, ``pending`` the rest).

- **Credentials**: ``--broker-url user@host:port?password_file=PATH`` connects as
  ``user`` with SASL SCRAM-SHA-256 (``SASL_PLAINTEXT``), its password read from ``PATH``
  (0600; the password itself never in a URL or on a command line); devstack's broker
  (devstack/brokers/kafka.py) gives each service its own user, allowed by ACLs only its
  families, its group and its retry and dead-letter topics. ``host:port`` alone connects
  without credentials (a broker that requires them refuses it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
    for_code,
)
from opentelemetry import propagate

from meshkit.config import EventsSettings, MeshConfig
from meshkit.events.bus import ConsumerLag, EventBus, Handler

log = logging.getLogger("mesh.events")

PARTITIONS = 4  # per topic: how many instances of a service can share its work
BATCH = 64  # records per poll
MAX_DELIVER = 50  # attempts before a message goes to the dead-letter topic
TYPE, ID, ATTEMPT, DUE = "mesh-type", "mesh-id", "mesh-attempt", "mesh-due"
TOPIC_EXISTS = 36  # Kafka's TOPIC_ALREADY_EXISTS error code
MECHANISM = "SCRAM-SHA-256"
# Kafka's refusals of what this user may not do (its ACLs): raised, never retried.
REFUSED = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
)


@dataclass(frozen=True)
class Endpoint:
    """Where Kafka is and who this client is: ``[user@]host:port[?password_file=PATH]``."""

    bootstrap: str
    user: str = ""
    password: str = field(default="", repr=False)

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """``url`` as ``--broker-url`` gives it; a user needs its password file."""
        address, _, query = url.partition("?")
        password_file = dict(parse_qsl(query)).get("password_file")
        user, _, bootstrap = address.rpartition("@")
        if not bootstrap:
            raise ValueError(f"--broker-url {url!r}: where Kafka is (host:port) is needed")
        if not user:
            return cls(bootstrap)
        if not password_file:
            raise ValueError(
                f"--broker-url: Kafka user {user!r} needs its password file"
                " (user@host:port?password_file=PATH)"
            )
        try:
            password = Path(password_file).read_text().strip()
        except OSError as exc:
            raise ValueError(f"--broker-url: password_file {password_file}: {exc}") from None
        return cls(bootstrap, user, password)

    def options(self) -> dict[str, Any]:
        """The connection options of every client (producer, consumers, admin)."""
        if not self.user:
            return {"bootstrap_servers": self.bootstrap}
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": MECHANISM,
            "sasl_plain_username": self.user,
            "sasl_plain_password": self.password,
        }


def family_topic(subject: str) -> str:
    """The topic of event type ``subject``: its family, the protobuf package of the events
    of one flow (``shop.events.v1``), so all of one order's events share a partition."""
    return subject.rsplit(".", 1)[0]


def retry_topic(group: str) -> str:
    return f"mesh.retry.{group}"


def dead_topic(group: str) -> str:
    return f"mesh.dead.{group}"


def _header(record: ConsumerRecord[Any, Any], name: str, default: str = "") -> str:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode()
    return default


@dataclass
class _Delivery:
    group: _Group
    record: ConsumerRecord[Any, Any]
    attempt: int
    epoch: int

    @property
    def data(self) -> bytes:
        return bytes(self.record.value)

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.record.topic, self.record.partition)

    async def ack(self) -> None:
        self.group.settle(self)

    async def nak(self, delay: float) -> None:
        await self.group.retry(self, delay)


@dataclass
class _Partition:
    """The offsets of one assigned partition: delivered and not settled, the next to read."""

    epoch: int
    unsettled: set[int] = field(default_factory=set)
    next_offset: int = -1
    committed: int = -1

    def commit_point(self) -> int:
        return min(self.unsettled) if self.unsettled else self.next_offset


class _Group(ConsumerRebalanceListener):  # type: ignore[misc]
    """One consumer group's consumer in this process: what it holds, what it commits."""

    def __init__(self, bus: KafkaBus, name: str, subjects: Sequence[str]) -> None:
        self.bus = bus
        self.name = name
        self.subjects = frozenset(subjects)
        self.topics = sorted({bus.topic_of(s) for s in subjects} | {retry_topic(name)})
        self.partitions: dict[TopicPartition, _Partition] = {}
        self.held: list[tuple[float, _Delivery]] = []  # (due, delivery), waiting for a retry
        self.epochs = 0
        self.consumer = AIOKafkaConsumer(
            *self.topics,
            **bus.endpoint.options(),
            client_id=bus.client_id,
            group_id=name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=BATCH,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
        )

    # --- bookkeeping ---------------------------------------------------------------------

    def track(self, record: ConsumerRecord[Any, Any]) -> _Partition:
        tp = TopicPartition(record.topic, record.partition)
        part = self.partitions.get(tp)
        if part is None:
            self.epochs += 1
            part = self.partitions[tp] = _Partition(self.epochs)
        part.unsettled.add(record.offset)
        part.next_offset = max(part.next_offset, record.offset + 1)
        return part

    def settle(self, delivery: _Delivery) -> None:
        part = self.partitions.get(delivery.tp)
        if part is not None and part.epoch == delivery.epoch:  # else: revoked since
            part.unsettled.discard(delivery.record.offset)

    @property
    def unsettled(self) -> int:
        return sum(len(p.unsettled) for p in self.partitions.values())

    async def retry(self, delivery: _Delivery, delay: float) -> None:
        """The message again in ``delay`` seconds, through the retry topic; the original is
        settled once that is written (held here if it cannot be)."""
        record = delivery.record
        subject = _header(record, TYPE)
        attempt = delivery.attempt + 1
        try:
            if attempt > MAX_DELIVER:
                log.error(
                    "%s %s failed %d times: to %s",
                    subject,
                    _header(record, ID),
                    delivery.attempt,
                    dead_topic(self.name),
                )
                await self.bus.send(dead_topic(self.name), record, {})
            else:
                due = time.time() + delay
                await self.bus.send(
                    retry_topic(self.name), record, {ATTEMPT: str(attempt), DUE: f"{due:.3f}"}
                )
        except KafkaError as exc:  # the broker away: retry from memory
            log.warning("%s: the retry of %s is held here (%s)", self.name, subject, exc)
            delivery.attempt = attempt
            self.held.append((time.time() + delay, delivery))
            return
        self.settle(delivery)

    def due(self) -> list[_Delivery]:
        now = time.time()
        ready = [d for due, d in self.held if due <= now]
        self.held = [(due, d) for due, d in self.held if due > now]
        return ready

    def wait_ms(self) -> int:
        if not self.held:
            return 500
        return max(0, min(500, int((min(due for due, _ in self.held) - time.time()) * 1000)))

    async def commit(self, partitions: Sequence[TopicPartition] | None = None) -> None:
        offsets = {}
        for tp, part in self.partitions.items():
            if partitions is not None and tp not in partitions:
                continue
            point = part.commit_point()
            if point > part.committed:
                offsets[tp] = point
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:  # rebalancing, or the broker away: later, or redelivered
            log.info("%s: commit deferred (%s)", self.name, exc)
            return
        for tp, point in offsets.items():
            self.partitions[tp].committed = point

    # --- the rebalance listener -----------------------------------------------------------

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        """What was settled is committed; the rest is the next owner's to redeliver."""
        await self.commit(list(revoked))
        for tp in revoked:
            self.partitions.pop(tp, None)
        self.held = [(due, d) for due, d in self.held if d.tp not in revoked]

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        pass

    # --- the loop ---------------------------------------------------------------------------

    def deliveries(
        self, records: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]
    ) -> list[_Delivery]:
        batch: list[_Delivery] = []
        for tp, recs in records.items():
            for record in recs:
                part = self.track(record)
                subject = _header(record, TYPE)
                if tp.topic == retry_topic(self.name):
                    attempt = int(_header(record, ATTEMPT, "2"))
                    delivery = _Delivery(self, record, attempt, part.epoch)
                    due = float(_header(record, DUE, "0"))
                    if due > time.time():
                        self.held.append((due, delivery))
                        continue
                else:
                    delivery = _Delivery(self, record, 1, part.epoch)
                if subject not in self.subjects:  # another consumer's type in the family
                    self.settle(delivery)
                    continue
                batch.append(delivery)
        return batch

    async def run(self, handler: Handler) -> None:
        while True:
            try:
                await self.bus.ensure_topics(self.topics)
                self.consumer.subscribe(self.topics, listener=self)
                await self.consumer.start()
                break
            except REFUSED as exc:  # not this user's group or topic: no retry helps
                log.error("consumer %s refused by Kafka: %s", self.name, exc)
                with contextlib.suppress(Exception):
                    await self.consumer.stop()
                raise
            except KafkaError as exc:
                log.warning("consumer %s: %s; retrying", self.name, exc)
                await asyncio.sleep(1.0)
        try:
            while True:
                try:
                    records = await self.consumer.getmany(
                        timeout_ms=self.wait_ms(), max_records=BATCH
                    )
                except REFUSED:
                    raise
                except KafkaError as exc:  # the client reconnects by itself
                    log.warning("consumer %s: %s", self.name, exc)
                    await asyncio.sleep(0.5)
                    continue
                batch = self.due() + self.deliveries(records)
                if batch:
                    await handler(batch)
                await self.commit()
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5.0):
                    await self.commit()
            with contextlib.suppress(Exception):
                await self.consumer.stop()


async def refusal(endpoint: Endpoint) -> KafkaError:
    """Why Kafka would not let this client in (aiokafka's bootstrap only logs it): its
    own ``SaslAuthenticationFailed`` for a wrong user or password, or a connection it
    closed (a client without credentials on a listener that requires them)."""
    host, _, port = endpoint.bootstrap.split(",")[0].rpartition(":")
    options = {k: v for k, v in endpoint.options().items() if k != "bootstrap_servers"}
    try:
        conn = await create_conn(host, int(port), request_timeout_ms=10_000, **options)
    except KafkaError as exc:
        return exc
    except OSError as exc:
        return KafkaConnectionError(f"Kafka at {endpoint.bootstrap}: {exc}")
    conn.close()
    if endpoint.user:
        return KafkaConnectionError(f"Kafka at {endpoint.bootstrap} closed the connection")
    return KafkaConnectionError(
        f"Kafka at {endpoint.bootstrap} closed the connection of a client without"
        " credentials: give --broker-url user@host:port?password_file=PATH"
    )


class KafkaBus:
    """A producer (idempotent), an admin client (topics, lag) and this process's groups."""

    def __init__(self, endpoint: Endpoint, client_id: str, events: EventsSettings) -> None:
        self.endpoint = endpoint
        self.client_id = client_id
        self.events = events
        self.producer = AIOKafkaProducer(
            **endpoint.options(),
            client_id=client_id,
            enable_idempotence=True,  # acks=all, and a retried send written once
            linger_ms=2,
            request_timeout_ms=15_000,
        )
        self.admin = AIOKafkaAdminClient(**endpoint.options(), client_id=client_id)
        self._offsets: AIOKafkaConsumer | None = None  # reads partitions' ends (lag)
        self._groups: dict[str, _Group] = {}
        self._topics: set[str] = set()

    @classmethod
    async def connect(cls, endpoint: Endpoint, client_id: str, events: EventsSettings) -> KafkaBus:
        """Connected, the topics of every owned event type made (or there already:
        devstack makes them, a service's user may not); raises if Kafka refuses."""
        bus = cls(endpoint, client_id, events)
        try:
            await bus.admin.start()
            await bus.producer.start()
            await bus.ensure_topics(sorted({bus.topic_of(s) for s in events.owners}))
        except KafkaConnectionError as exc:
            await bus.close()
            raise await refusal(endpoint) from exc
        except BaseException:
            await bus.close()
            raise
        return bus

    def topic_of(self, subject: str) -> str:
        return family_topic(subject)

    async def ensure_topics(self, names: Sequence[str]) -> None:
        missing = [n for n in names if n not in self._topics]
        if not missing:
            return
        existing = set(await self.admin.list_topics())
        new = [NewTopic(n, PARTITIONS, 1) for n in missing if n not in existing]
        if new:
            response = await self.admin.create_topics(new)
            for name, code, *_ in response.topic_errors:
                if code not in (0, TOPIC_EXISTS):
                    raise for_code(code)(f"creating topic {name}")
            await self._led([t.name for t in new])
        self._topics.update(missing)

    async def _led(self, names: Sequence[str], timeout: float = 15.0) -> None:
        """Until every partition of new topics ``names`` has a leader (a consumer that
        subscribes earlier logs them as missing, and waits a metadata refresh for them)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = await self.admin.describe_topics(list(names))
            if all(
                t.get("error_code", 0) == 0
                and t.get("partitions")
                and all(p.get("leader", -1) >= 0 for p in t["partitions"])
                for t in described
            ):
                return
            await asyncio.sleep(0.2)

    async def publish(self, subject: str, data: bytes, msg_id: str, key: str = "") -> None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        headers = [(TYPE, subject.encode()), (ID, msg_id.encode())]
        headers += [(k, v.encode()) for k, v in carrier.items()]
        await self.producer.send_and_wait(
            self.topic_of(subject), data, key=key.encode() or None, headers=headers
        )

    async def send(
        self, topic: str, record: ConsumerRecord[Any, Any], extra: dict[str, str]
    ) -> None:
        """``record`` again (its key, its headers but ``extra``'s) to ``topic``."""
        await self.ensure_topics([topic])
        headers = [(k, v) for k, v in record.headers or () if k not in extra]
        headers += [(k, v.encode()) for k, v in extra.items()]
        await self.producer.send_and_wait(topic, record.value, key=record.key, headers=headers)

    async def consume(self, durable: str, subjects: Sequence[str], handler: Handler) -> None:
        group = _Group(self, durable, subjects)
        self._groups[durable] = group
        try:
            await group.run(handler)
        finally:
            self._groups.pop(durable, None)

    async def lag(self, durable: str) -> ConsumerLag | None:
        """The group's messages past its committed offsets, on every partition of its
        topics (None if Kafka has no offsets for it and it does not consume here)."""
        group = self._groups.get(durable)
        try:
            committed = await self.admin.list_consumer_group_offsets(durable)
        except KafkaError:  # no coordinator yet (a new broker's offsets topic): none
            committed = {}
        if group is None and not committed:
            return None
        topics = group.topics if group else sorted({tp.topic for tp in committed})
        described = await self.admin.describe_topics(topics)
        tps = [
            TopicPartition(t["topic"], p["partition"])
            for t in described
            for p in t.get("partitions", [])
        ]
        if self._offsets is None:
            self._offsets = AIOKafkaConsumer(**self.endpoint.options())
            await self._offsets.start()
        ends = await self._offsets.end_offsets(tps)
        starts = await self._offsets.beginning_offsets(tps)
        behind = 0
        for tp in tps:
            at = committed[tp].offset if tp in committed else starts[tp]
            behind += max(0, ends[tp] - at)
        held = group.unsettled if group else 0
        return ConsumerLag(pending=max(0, behind - held), ack_pending=held)

    async def close(self) -> None:
        for client in (self._offsets, self.producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        with contextlib.suppress(Exception):
            await self.admin.close()


async def connect(config: MeshConfig) -> EventBus:
    """Kafka at ``config.broker_url`` (``--broker-url [user@]host:port[?password_file=]``)."""
    if not config.broker_url:
        raise ValueError("--broker-url: where Kafka is (host:port) is needed with --broker kafka")
    endpoint = Endpoint.parse(config.broker_url)
    return await KafkaBus.connect(endpoint, config.instance_id or config.name, config.policy.events)


def user_url(user: str, bootstrap: str, password_file: Path) -> str:
    """The ``--broker-url`` of ``user`` at ``bootstrap``, its password in ``password_file``."""
    return f"{user}@{bootstrap}?password_file={quote(str(password_file))}"
