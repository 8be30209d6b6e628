"""The order flow with every service's database on PostgreSQL: four service processes,
one Postgres cluster (a database and a role each), NATS JetStream, Consul, mTLS, loopback.

One stack for the module (``Stack(database="postgres")``). The invariants are those of
the SQLite tiers (tests.support.orders), over copies of each service's tables. Besides a
confirmed and a declined order: a crash between the outbox's commit and its publish loses
nothing, the same event delivered twice has no second effect, and a burst with two
instances of inventory and payment on one database each ends consistent: no item sold
twice, no order charged twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace

import grpc
import nats
import pytest

from devstack.nats import ADMIN
from devstack.stack import DOMAIN_SERVICES, Stack
from meshkit.events.envelopes import event_type
from meshkit.events.nats import credential_options
from shop.events.v1 import events_pb2
from shop.events.v1.envelope_pb2 import EventEnvelope
from shop.order.v1 import order_pb2 as pb
from tests.postgres.conftest import copy_to_sqlite
from tests.support import crash_before_publish
from tests.support.order_flow import CONFIRMED_HISTORY, deliver_again, operator_orders, running
from tests.support.orders import (
    CANCELLED,
    CONFIRMED,
    Orders,
    invariants,
    order_request,
    settle,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]  # for python -m tests.support...
# The saga's timeout: long enough that a loaded machine shows as latency in the burst,
# not as orders cancelled by the sweeper (a round trip to Postgres per statement makes a
# handler slower than SQLite's in-process ones; bench/databases.py has the figures).
SAGA = 120.0
ORDER_ENV = {"SHOP_ORDER_SAGA_TIMEOUT": str(SAGA)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("pg-flow")
    stack = Stack(state, log_dir=state, database="postgres")
    try:
        stack.start()
        stack.start_services(DOMAIN_SERVICES, env={"order": ORDER_ENV})
        yield stack
    finally:
        stack.close()


@pytest.fixture
async def orders(stack: Stack) -> AsyncIterator[Orders]:
    async with operator_orders(stack.mesh_config("operator")) as client:
        yield client


async def check_invariants(stack: Stack, tmp_path: Path) -> dict[str, int]:
    """The order invariants over the stack's Postgres databases, once they hold (the
    compensations and the stock's commit follow an order's final status)."""
    assert stack.postgres is not None

    async def hold() -> dict[str, int]:
        copy = await copy_to_sqlite(stack.postgres, tmp_path / "copy")  # type: ignore[arg-type]
        return invariants(SimpleNamespace(state=copy))

    return await eventually(hold, timeout=15, interval=0.3, what="the order invariants")


async def rows(stack: Stack, service: str, sql: str, *args: object) -> list:
    assert stack.postgres is not None
    conn = await stack.postgres.connect_as_superuser(service)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_an_order_is_confirmed(stack: Stack, orders: Orders, tmp_path: Path) -> None:
    before = await orders.stock("SKU-KEYBOARD")
    placed = await orders.place(order_request(("SKU-KEYBOARD", 2), ("SKU-MOUSE", 1)))
    order = await orders.final(placed.order_id, timeout=SAGA)
    assert order.status == CONFIRMED, order.cancel_reason
    assert [h.status for h in order.history] == CONFIRMED_HISTORY
    assert order.payment_id and order.tracking_number
    await check_invariants(stack, tmp_path)
    after = await orders.stock("SKU-KEYBOARD")
    assert (after.available, after.sold) == (before.available - 2, before.sold + 2)
    # The rows are in the services' own Postgres databases.
    sql = "SELECT * FROM payments WHERE order_id = $1"
    (payment,) = await rows(stack, "payment", sql, order.order_id)
    assert payment["status"] == "CAPTURED" and payment["payment_id"] == order.payment_id


async def test_a_declined_payment_cancels_and_restores_stock(
    stack: Stack, orders: Orders, tmp_path: Path
) -> None:
    before = await orders.stock("SKU-MONITOR")
    placed = await orders.place(order_request(("SKU-MONITOR", 3), token="tok_decline"))
    order = await orders.final(placed.order_id, timeout=SAGA)
    assert order.status == CANCELLED
    assert order.cancel_reason == "payment declined: card_declined"

    async def released() -> bool:
        after = await orders.stock("SKU-MONITOR")
        return (after.available, after.reserved, after.sold) == (before.available, 0, before.sold)

    await eventually(released, what="the monitors back in stock")
    await check_invariants(stack, tmp_path)


async def test_the_same_event_delivered_twice_has_no_second_effect(
    stack: Stack, orders: Orders, tmp_path: Path
) -> None:
    placed = await orders.place(order_request(("SKU-MOUSE", 4)))
    order = await orders.final(placed.order_id, timeout=SAGA)
    assert order.status == CONFIRMED
    await check_invariants(stack, tmp_path)
    before = await orders.stock("SKU-MOUSE")
    # Every event of this order's flow, from the four outboxes (Postgres tables now),
    # published again under a new message id: the consumers' records must catch them.
    events = []
    for service in DOMAIN_SERVICES:
        for row in await rows(stack, service, "SELECT event_id, subject, data FROM mesh_outbox"):
            if EventEnvelope.FromString(row["data"]).correlation_id == order.order_id:
                events.append((row["event_id"], row["subject"], row["data"]))
    assert len(events) == 5  # placed, reserved, captured, scheduled, confirmed
    assert stack.nats is not None
    nc = await nats.connect(stack.nats.url, **credential_options(stack.nats.creds(ADMIN), ADMIN))
    try:
        await deliver_again(nc.jetstream(), stack, events, stack.nats.events.stream)
    finally:
        await nc.close()
    after = await orders.stock("SKU-MOUSE")
    assert (after.available, after.reserved, after.sold) == (
        before.available,
        before.reserved,
        before.sold,
    )
    assert (await orders.final(order.order_id, timeout=SAGA)).history == order.history
    await check_invariants(stack, tmp_path)


async def test_a_crash_between_commit_and_publish_loses_nothing(
    stack: Stack, orders: Orders, tmp_path: Path
) -> None:
    # The order service as it runs, but exiting right before its first publish; its
    # launcher gives it the same Postgres database and role as the one it replaces.
    for proc in running(stack, "order"):
        proc.stop()
    crashing = stack.launcher.launch(
        "order",
        *stack.service_args("order"),
        "--service",
        "order",
        env={**ORDER_ENV, "PYTHONPATH": str(ROOT)},
        module="tests.support.crash_before_publish",
    ).wait_ready()
    try:
        stack.wait_passing("order")
        await orders.reachable()
        request = order_request()
        with contextlib.suppress(grpc.aio.AioRpcError):  # the crash may beat the answer
            await orders.stub.PlaceOrder(request, timeout=10)
        assert crashing.process is not None
        assert crashing.process.wait(15) == crash_before_publish.EXIT_CODE
    finally:
        crashing.kill()
    outbox = await rows(stack, "order", "SELECT data FROM mesh_outbox WHERE sent_time IS NULL")
    unsent = [EventEnvelope.FromString(row["data"]) for row in outbox]
    # Committed, never published: the new order's OrderPlaced.
    assert [e.event_type for e in unsent] == [event_type(events_pb2.OrderPlaced)], unsent
    order_id = unsent[0].correlation_id
    stack.start_service("order", env=ORDER_ENV)  # its relay publishes what the crash left
    placed = await orders.place(request)  # the retry gets the order the crash committed
    assert placed.order_id == order_id
    order = await orders.final(placed.order_id, timeout=SAGA)
    assert order.status == CONFIRMED
    sql = "SELECT sent_time FROM mesh_outbox WHERE event_id = $1"
    (row,) = await rows(stack, "order", sql, unsent[0].event_id)
    assert row["sent_time"] is not None
    await check_invariants(stack, tmp_path)


async def test_a_burst_with_two_instances_sharing_each_database_ends_consistent(
    stack: Stack, orders: Orders, tmp_path: Path
) -> None:
    """200 orders, 32 in flight, while inventory and payment run two instances each on
    one database: laptops run out (as many confirm as were in stock, the rest are out of
    stock), every other kind ends as it must, and the invariants hold: nothing reserved
    twice, sold beyond stock, or charged twice."""
    stack.start_services(["inventory", "payment"])  # a second instance of each
    assert len(running(stack, "inventory")) == 2
    kinds = ["ok"] * 7 + ["decline", "laptop", "laptop"]
    total = 200
    per_kind = Counter(kinds[i % len(kinds)] for i in range(total))
    requests = []
    for i in range(total):
        kind = kinds[i % len(kinds)]
        if kind == "decline":
            requests.append(order_request(("SKU-CABLE", 1), token="tok_insufficient"))
        elif kind == "laptop":
            requests.append(order_request(("SKU-LAPTOP", 1), ("SKU-CABLE", 1)))
        else:
            requests.append(order_request(("SKU-CABLE", 1), customer=f"c-{i % 17}"))
    laptops = (await orders.stock("SKU-LAPTOP")).available
    assert 0 < laptops < per_kind["laptop"]
    gate = asyncio.Semaphore(32)

    async def place(request: pb.PlaceOrderRequest) -> str:
        async with gate:
            return (await orders.place(request)).order_id

    ids = await asyncio.gather(*(place(r) for r in requests))
    assert len(set(ids)) == total
    finals = await settle(orders, list(ids), timeout=SAGA + 30)
    by_kind: dict[str, Counter[str]] = {}
    for i, order in enumerate(finals):
        outcome = order.cancel_reason if order.status == CANCELLED else "CONFIRMED"
        by_kind.setdefault(kinds[i % len(kinds)], Counter())[outcome] += 1
    assert by_kind == {
        "ok": Counter({"CONFIRMED": per_kind["ok"]}),
        "decline": Counter({"payment declined: insufficient_funds": per_kind["decline"]}),
        "laptop": Counter(
            {"CONFIRMED": laptops, "out of stock: SKU-LAPTOP": per_kind["laptop"] - laptops}
        ),
    }, by_kind
    outcomes = await check_invariants(stack, tmp_path)
    assert (await orders.stock("SKU-LAPTOP")).available == 0
    print(f"all orders of the module: {outcomes}")
