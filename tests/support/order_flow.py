"""What the order-flow tiers (integration, brokers, postgres) share: an operator's Orders
client, a confirmed order's history, the running instances of a service, and the check
that events delivered twice are dropped by the consumers (NATS JetStream)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import httpx
from nats.js import JetStreamContext
from prometheus_client.parser import text_string_to_metric_families

from devstack.stack import DOMAIN_SERVICES
from meshkit.config import DEFAULT_MESH_FILE, MeshConfig, MeshPolicy
from meshkit.mesh import open_mesh
from meshkit.telemetry.metrics import METRICS_PATH
from shop.order.v1 import order_pb2 as pb
from tests.support.orders import Orders
from tests.support.polling import eventually

STREAM = MeshPolicy.load(DEFAULT_MESH_FILE).events.stream

# The statuses a confirmed order went through, in order.
CONFIRMED_HISTORY = [
    pb.ORDER_STATUS_PENDING,
    pb.ORDER_STATUS_STOCK_RESERVED,
    pb.ORDER_STATUS_PAID,
    pb.ORDER_STATUS_CONFIRMED,
]


class HasLauncher(Protocol):
    """A stack whose launcher keeps the service processes it started (``started``)."""

    @property
    def launcher(self) -> Any: ...


@contextlib.asynccontextmanager
async def operator_orders(config: MeshConfig) -> AsyncIterator[Orders]:
    """An ``Orders`` client on a mesh opened as ``config``, once discovery has answered
    for the services it calls (its stubs start the watches); closed after."""
    mesh, _ = await open_mesh(config)
    try:
        client = Orders(mesh)
        await mesh.discovery.ready()
        yield client
    finally:
        await mesh.close()


def running(stack: HasLauncher, service: str) -> list[Any]:
    """The instances of ``service`` the stack's launcher started that still run."""
    return [p for p in stack.launcher.started if p.name == service and p.process.poll() is None]


async def duplicates_dropped(stack: HasLauncher, service: str) -> int:
    """``mesh_events_processed_total{outcome="duplicate"}`` over the running instances of
    ``service``: deliveries its consumer recognised as seen before and dropped."""
    total = 0
    async with httpx.AsyncClient(timeout=5) as http:
        for proc in running(stack, service):
            url = f"http://127.0.0.1:{proc.info['metrics_port']}{METRICS_PATH}"
            text = (await http.get(url)).raise_for_status().text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if (
                        sample.name == "mesh_events_processed_total"
                        and sample.labels.get("outcome") == "duplicate"
                    ):
                        total += int(sample.value)
    return total


async def consumers_idle(js: JetStreamContext, stream: str = STREAM) -> bool:
    """Every service's durable consumer has been delivered everything in the stream that
    it subscribes to, and has acknowledged it all."""
    for service in DOMAIN_SERVICES:
        info = await js.consumer_info(stream, service)
        if info.num_pending or info.num_ack_pending:
            return False
    return True


async def deliver_again(
    js: JetStreamContext,
    stack: HasLauncher,
    events: Sequence[tuple[str, str, bytes]],
    stream: str = STREAM,
) -> None:
    """``events`` (event id, subject, data) published again under new message ids, so the
    broker's de-duplication does not catch them; returns once each service's consumer
    has taken them (delivered, acknowledged) and dropped each one it subscribes to as a
    duplicate, and asserts it dropped no more. ``js``: the broker's admin (no service may
    publish every service's events)."""
    # Nothing in flight (a redelivery left by an earlier test would be counted too).
    await eventually(lambda: consumers_idle(js, stream), timeout=30, what="the consumers idle")
    # Each consumer gets the republished events of the subjects it subscribes to.
    expected = {}
    for service in DOMAIN_SERVICES:
        config = (await js.consumer_info(stream, service)).config
        subscribed = set(config.filter_subjects or [config.filter_subject])
        expected[service] = sum(subject in subscribed for _, subject, _ in events)
    assert all(expected.values()), expected  # every service gets some of them again
    dropped_before = {s: await duplicates_dropped(stack, s) for s in DOMAIN_SERVICES}
    for _, subject, data in events:
        await js.publish(subject, data, headers={"Nats-Msg-Id": uuid.uuid4().hex})

    async def dropped() -> dict[str, int]:
        return {s: await duplicates_dropped(stack, s) - dropped_before[s] for s in expected}

    async def all_dropped() -> bool:
        seen = await dropped()
        return await consumers_idle(js, stream) and all(seen[s] >= expected[s] for s in expected)

    await eventually(all_dropped, timeout=30, what=f"duplicates dropped: {expected}")
    assert await dropped() == expected
