"""Zero trust on the event broker, for real: NATS with an nkey per service and
permissions made from the mesh file's ``[events.owners]`` (devstack/nats.py), and the
consumers' own check of an envelope's source (meshkit/events/service_events.py).

- a connection without a credential, or with a key the server does not know, is refused;
- a service may publish only the events it owns: ``PaymentCaptured`` forged with the
  order service's credential is refused by the broker (and never reaches the stream),
  while payment's credential may publish it;
- one published on payment's credential in another's name (``source`` = order) is
  stored, delivered, and rejected by every consumer (acknowledged and dropped, counted in
  ``mesh_events_rejected_total``): the order it names is never paid, never shipped.

A stack of the module's own: the payment service is stopped to hold an order at
STOCK_RESERVED, where a genuine capture would ship it.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import nats
import nats.errors
import nkeys
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.nats import ADMIN, NatsServer
from devstack.stack import DOMAIN_SERVICES, Stack
from meshkit.config import DEFAULT_MESH_FILE, MeshPolicy
from meshkit.events.envelopes import Envelopes, event_type
from meshkit.events.nats import credential_options
from meshkit.mesh import Mesh, open_mesh
from meshkit.security.secrets import write_secret
from meshkit.telemetry.metrics import METRICS_PATH
from shop.common.v1.address_pb2 import Address
from shop.common.v1.line_item_pb2 import LineItem
from shop.common.v1.money_pb2 import Money
from shop.events.v1 import events_pb2
from shop.order.v1 import order_pb2 as pb
from shop.order.v1 import order_pb2_grpc
from tests.conftest import StackFactory
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

POLICY = MeshPolicy.load(DEFAULT_MESH_FILE)
STREAM = POLICY.events.stream
CAPTURED = event_type(events_pb2.PaymentCaptured)


@pytest.fixture(scope="module")
def stack(module_stack: StackFactory) -> Iterator[Stack]:
    stack = module_stack()
    # A long saga timeout: the held order must not be cancelled by time meanwhile.
    stack.start_services(DOMAIN_SERVICES, env={"order": {"SHOP_ORDER_SAGA_TIMEOUT": "300"}})
    yield stack


@pytest.fixture
async def mesh(stack: Stack) -> AsyncIterator[Mesh]:
    mesh, _ = await open_mesh(stack.mesh_config("operator"))
    yield mesh
    await mesh.close()


class Connection:
    """A NATS connection as one identity, with the errors the server reported to it."""

    def __init__(self, nc: nats.NATS, errors: list[str]) -> None:
        self.nc = nc
        self.js = nc.jetstream(timeout=5.0)
        self.errors = errors

    @classmethod
    async def open(cls, server: NatsServer, identity: str) -> Connection:
        errors: list[str] = []

        async def error(exc: Exception) -> None:
            errors.append(str(exc))

        nc = await nats.connect(
            server.url,
            allow_reconnect=False,
            error_cb=error,
            **credential_options(server.creds(identity), identity),
        )
        return cls(nc, errors)


async def messages(server: NatsServer) -> int:
    admin = await Connection.open(server, ADMIN)
    try:
        return int((await admin.js.stream_info(STREAM)).state.messages or 0)
    finally:
        await admin.nc.close()


async def test_a_connection_without_a_known_credential_is_refused(
    stack: Stack, tmp_path: Any
) -> None:
    assert stack.nats is not None
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(stack.nats.url, allow_reconnect=False, max_reconnect_attempts=0)
    stranger = write_secret(
        tmp_path / "stranger.nk", nkeys.encode_seed(uuid.uuid4().bytes * 2, nkeys.PREFIX_BYTE_USER)
    )
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            stack.nats.url,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            **credential_options(stranger, "payment"),
        )
    # The seeds are the services' secrets: 0600.
    for identity in (*DOMAIN_SERVICES, ADMIN):
        creds = stack.nats.creds(identity)
        assert creds is not None and creds.stat().st_mode & 0o777 == 0o600, identity


def eur(units: int) -> Money:
    return Money(currency_code="EUR", units=units)


def order_request(token: str) -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        customer_id="c-zero-trust",
        items=[
            LineItem(sku="SKU-CABLE", quantity=1, unit_price=Money(currency_code="EUR", units=3))
        ],
        shipping_address=Address(
            recipient="A. Tester",
            lines=["Hauptstr. 1"],
            city="Berlin",
            postal_code="10115",
            country_code="DE",
        ),
        payment_token=token,
        idempotency_key=f"zero-trust-{uuid.uuid4().hex}",
    )


async def rejected(stack: Stack, service: str) -> int:
    """``mesh_events_rejected_total{event_type=PaymentCaptured, reason=source}`` of the
    running instance of ``service``."""
    port = stack.services[service].info["metrics_port"]
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"http://127.0.0.1:{port}{METRICS_PATH}")).raise_for_status().text
    return sum(
        int(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "mesh_events_rejected_total"
        and sample.labels == {"event_type": CAPTURED, "reason": "source"}
    )


def shipments(stack: Stack, order_id: str) -> int:
    db = sqlite3.connect(f"file:{stack.state / 'data' / 'shipping.db'}?mode=ro", uri=True)
    query = "SELECT count(*) FROM shipments WHERE order_id = ?"
    try:
        return int(db.execute(query, (order_id,)).fetchone()[0])
    finally:
        db.close()


async def test_a_forged_payment_captured_never_ships_the_order(stack: Stack, mesh: Mesh) -> None:
    assert stack.nats is not None
    orders = mesh.stub(order_pb2_grpc.OrderServiceStub, "order")
    await mesh.discovery.ready()

    async def status(order_id: str) -> int:
        request = pb.GetOrderRequest(order_id=order_id)
        return int((await orders.GetOrder(request, timeout=5)).order.status)

    # Payment away: the order stops at STOCK_RESERVED, where a capture would ship it.
    stack.services["payment"].stop()
    placed = (await orders.PlaceOrder(order_request("tok_decline"), timeout=10)).order
    order_id = placed.order_id
    await eventually(
        lambda: _equals(status(order_id), pb.ORDER_STATUS_STOCK_RESERVED),
        timeout=20,
        what="the order at STOCK_RESERVED",
    )

    envelopes = Envelopes(POLICY.events)
    forged = events_pb2.PaymentCaptured(order_id=order_id, payment_id="pay_forged", amount=eur(3))
    before = await messages(stack.nats)

    # With the order service's credential: the broker refuses the publish.
    as_order = await Connection.open(stack.nats, "order")
    try:
        envelope = envelopes.wrap(forged, source="payment", correlation_id=order_id)
        with pytest.raises(nats.errors.TimeoutError):  # no PubAck: the server dropped it
            await as_order.js.publish(
                CAPTURED,
                envelope.SerializeToString(),
                headers={"Nats-Msg-Id": envelope.event_id},
                timeout=2,
            )
        await eventually(
            lambda: any("permissions violation" in e.lower() for e in as_order.errors),
            timeout=5,
            what="the server's permissions violation",
        )
    finally:
        await as_order.nc.close()
    assert await messages(stack.nats) == before  # never reached the stream

    # With payment's credential, the broker takes it (payment owns PaymentCaptured)...
    shipping_before, order_before = (
        await rejected(stack, "shipping"),
        await rejected(stack, "order"),
    )
    as_payment = await Connection.open(stack.nats, "payment")
    try:
        envelope = envelopes.wrap(forged, source="order", correlation_id=order_id)
        ack = await as_payment.js.publish(
            CAPTURED, envelope.SerializeToString(), headers={"Nats-Msg-Id": envelope.event_id}
        )
        assert ack.stream == STREAM and not as_payment.errors
    finally:
        await as_payment.nc.close()
    assert await messages(stack.nats) == before + 1

    # ... but its source is not PaymentCaptured's owner: both consumers reject it.
    async def both_rejected() -> bool:
        return (
            await rejected(stack, "shipping") == shipping_before + 1
            and await rejected(stack, "order") == order_before + 1
        )

    await eventually(both_rejected, timeout=20, what="the forged event rejected by both")
    assert await status(order_id) == pb.ORDER_STATUS_STOCK_RESERVED
    assert shipments(stack, order_id) == 0

    # Payment back: it declines the card, the order is cancelled and never shipped.
    stack.start_service("payment")
    await eventually(
        lambda: _equals(status(order_id), pb.ORDER_STATUS_CANCELLED),
        timeout=30,
        what="the order CANCELLED",
    )
    assert shipments(stack, order_id) == 0


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)
