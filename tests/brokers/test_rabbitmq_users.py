"""RabbitMQ's users, against a real node: no ``guest``, a service publishes only the event
types it owns and uses only its own queues, an identity the node does not know is refused
(docs/brokers.md, "## RabbitMQ")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aio_pika
import aio_pika.exceptions
import aiormq.exceptions
import pytest

from devstack.brokers.rabbitmq import RabbitMQServer
from meshkit.events.envelopes import event_type
from meshkit.events.rabbitmq import RabbitBus
from shop.events.v1 import events_pb2
from tests.brokers.conftest import POLICY

pytestmark = pytest.mark.integration

PLACED = event_type(events_pb2.OrderPlaced)  # owned by order
CAPTURED = event_type(events_pb2.PaymentCaptured)  # owned by payment


@pytest.fixture(scope="module")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQServer]:
    store: Path = tmp_path_factory.mktemp("rabbitmq-users")
    server = RabbitMQServer(store_dir=store / "data", log_path=store / "rabbitmq.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_there_is_no_guest(rabbitmq: RabbitMQServer) -> None:
    assert "guest" not in rabbitmq.ctl("list_users")
    with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
        await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{rabbitmq.port}/")


async def test_an_unknown_identity_is_refused(rabbitmq: RabbitMQServer) -> None:
    url = rabbitmq.env("stranger")["MESH_BROKER_URL"]
    assert "@" not in url  # no credential to give
    with pytest.raises(aio_pika.exceptions.AMQPConnectionError):
        await aio_pika.connect(url)


async def test_a_service_publishes_only_its_own_events(rabbitmq: RabbitMQServer) -> None:
    bus = await RabbitBus.connect(rabbitmq.user_url("payment"), "payment", POLICY.events)
    try:
        await bus.publish(CAPTURED, b"its own", "id-1")
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await bus.publish(PLACED, b"the order service's", "id-2")
    finally:
        await bus.close()


async def test_a_service_uses_only_its_own_queue(rabbitmq: RabbitMQServer) -> None:
    connection = await aio_pika.connect(rabbitmq.user_url("shipping"))
    try:
        own = await connection.channel()
        await own.declare_queue("SHOP_EVENTS.shipping", passive=True)
        other = await connection.channel()
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await (await other.declare_queue("SHOP_EVENTS.payment", passive=True)).get()
    finally:
        await connection.close()
