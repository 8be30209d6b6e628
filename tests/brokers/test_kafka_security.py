"""Kafka secure by default (devstack/brokers/kafka.py): SCRAM users, default deny, ACLs per
service. Each refusal is Kafka's own error, next to the allowed counterpart succeeding:

- a service publishes its own event types; an identity that owns none (``audit``, a
  consume-only service) is refused the family topic (TOPIC_AUTHORIZATION_FAILED), and a
  service cannot write into another service's retry topic (which that service consumes);
- a wrong password is refused (SASL_AUTHENTICATION_FAILED), and so is a client without
  credentials or an identity the broker has no user for;
- a service reads with its own consumer group, and is refused another's
  (GROUP_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)

from devstack.brokers.kafka import KafkaServer
from meshkit.config import DEFAULT_MESH_FILE, MeshConfig, MeshPolicy
from meshkit.events.brokers import connect_bus
from meshkit.events.bus import Delivery
from meshkit.events.kafka import Endpoint, KafkaBus, family_topic, retry_topic, user_url
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

POLICY = MeshPolicy.load(DEFAULT_MESH_FILE)
CAPTURED = "shop.events.v1.PaymentCaptured"  # owned by payment
AUDIT = "audit"  # a consume-only identity: owns no event type
WAIT = 60.0


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    store = tmp_path_factory.mktemp("kafka-security")
    server = KafkaServer(
        store_dir=store / "data", log_path=store / "kafka.log", identities=(AUDIT,)
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def buses() -> AsyncIterator[list[KafkaBus]]:
    opened: list[KafkaBus] = []
    yield opened
    for bus in opened:
        await bus.close()


def config(env: dict[str, str], name: str) -> MeshConfig:
    return MeshConfig(
        name=name, broker=env["MESH_BROKER"], broker_url=env["MESH_BROKER_URL"], policy=POLICY
    )


async def bus_as(
    kafka: KafkaServer,
    service: str,
    opened: list[KafkaBus],
    env: dict[str, str] | None = None,
) -> KafkaBus:
    """A bus as ``service`` opens it with the settings ``env`` (its own by default)."""
    env = kafka.env(service) if env is None else env
    bus = await connect_bus(config(env, service))
    assert isinstance(bus, KafkaBus)
    opened.append(bus)
    return bus


async def test_a_service_publishes_its_own_events_and_reads_them_in_its_own_group(
    kafka: KafkaServer, buses: list[KafkaBus]
) -> None:
    payment = await bus_as(kafka, "payment", buses)
    order = await bus_as(kafka, "order", buses)
    seen: list[bytes] = []

    async def handle(batch: Sequence[Delivery]) -> None:
        for d in batch:
            seen.append(d.data)
            await d.ack()

    consuming = asyncio.create_task(order.consume("order", [CAPTURED], handle))
    try:
        await payment.publish(CAPTURED, b"captured-1", "id-captured-1", key="o-1")
        await eventually(lambda: b"captured-1" in seen, WAIT, what="order reads PaymentCaptured")
    finally:
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)


async def test_publishing_without_owning_is_refused_by_kafka(
    kafka: KafkaServer, buses: list[KafkaBus]
) -> None:
    audit = await bus_as(kafka, AUDIT, buses)
    with pytest.raises(TopicAuthorizationFailedError):
        await audit.publish(CAPTURED, b"forged", "id-forged", key="o-2")
    # The consume-only identity still writes its own retry topic.
    await audit.producer.send_and_wait(retry_topic(AUDIT), b"own retry")

    shipping = await bus_as(kafka, "shipping", buses)
    # Another group's retry topic: what payment would consume as a redelivery.
    with pytest.raises(TopicAuthorizationFailedError):
        await shipping.producer.send_and_wait(retry_topic("payment"), b"forged retry")


async def test_a_wrong_password_is_refused(kafka: KafkaServer, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("not-payments-password\n")
    wrong.chmod(0o600)
    env = {**kafka.env("payment"), "MESH_BROKER_URL": user_url("payment", kafka.url, wrong)}
    with pytest.raises(SaslAuthenticationFailed):
        await bus_as(kafka, "payment", [], env)


async def test_a_client_without_credentials_is_refused(kafka: KafkaServer) -> None:
    anonymous = {"MESH_BROKER": "kafka", "MESH_BROKER_URL": kafka.url}
    with pytest.raises(KafkaConnectionError, match="without credentials"):
        await bus_as(kafka, "payment", [], anonymous)
    # An identity the broker has no user for gets no credentials either.
    assert kafka.env("stranger") == anonymous
    with pytest.raises(KeyError, match="stranger"):
        kafka.password_file("stranger")


async def test_a_consumer_is_refused_another_services_group(
    kafka: KafkaServer, buses: list[KafkaBus]
) -> None:
    shipping = await bus_as(kafka, "shipping", buses)
    family = family_topic(CAPTURED)  # which shipping may read, in its own group

    # payment's group on a topic shipping may read: the group is refused
    consumer = AIOKafkaConsumer(family, **shipping.endpoint.options(), group_id="payment")
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            async with asyncio.timeout(WAIT):
                await consumer.start()
                await consumer.getmany(timeout_ms=5_000)
    finally:
        await consumer.stop()

    # The bus as payment's group: refused (payment's retry topic first), never retried
    async def handle(batch: Sequence[Delivery]) -> None:
        raise AssertionError("no delivery in another service's group")

    with pytest.raises((GroupAuthorizationFailedError, TopicAuthorizationFailedError)):
        async with asyncio.timeout(WAIT):
            await shipping.consume("payment", [CAPTURED], handle)


def test_secrets_are_0600_and_off_the_command_lines(kafka: KafkaServer) -> None:
    for user in ("admin", "payment", AUDIT):
        assert kafka.password_file(user).stat().st_mode & 0o777 == 0o600
    assert kafka.config_path.stat().st_mode & 0o777 == 0o600
    cmdline = Path(f"/proc/{kafka.pid}/cmdline").read_bytes().decode()
    assert kafka.password("admin") not in cmdline
    assert kafka.password("payment") not in str(kafka.env("payment"))  # only its file's path
    assert not (kafka.store_dir / "format.args").exists()  # type: ignore[operator]


def test_a_user_needs_its_password_file_named_in_the_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--broker-url: Kafka user 'order' needs its password"):
        Endpoint.parse("order@127.0.0.1:9092")
    with pytest.raises(ValueError, match="--broker-url: password_file"):
        Endpoint.parse(user_url("order", "127.0.0.1:9092", tmp_path / "missing.secret"))
    secret = tmp_path / "order secret"
    secret.write_text("pw\n")
    endpoint = Endpoint.parse(user_url("order", "127.0.0.1:9092", secret))
    assert (endpoint.user, endpoint.password, endpoint.bootstrap) == (
        "order",
        "pw",
        "127.0.0.1:9092",
    )
    assert Endpoint.parse("127.0.0.1:9092").options() == {"bootstrap_servers": "127.0.0.1:9092"}


def test_a_store_formatted_without_a_user_is_a_clear_error(tmp_path: Path) -> None:
    """A store from before credentials (or before the mesh file named a service)."""
    server = KafkaServer(store_dir=tmp_path / "data", identities=(AUDIT,))
    (tmp_path / "data" / "logs").mkdir(parents=True)
    (tmp_path / "data" / "logs" / "meta.properties").write_text("node.id=1\n")
    with pytest.raises(RuntimeError, match=r"no SCRAM user for admin, audit, .*remove the store"):
        server.format_storage()
