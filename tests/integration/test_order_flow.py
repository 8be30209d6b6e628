"""The order flow for real: four service processes, NATS JetStream, Consul, mTLS, loopback.

One stack for the module (its own Consul, NATS and state directory, since the fault tests
restart the broker and kill services). The invariants are checked over every order the
module placed, reading each service's own database: stock is conserved, each order is
charged at most once and shipped at most once, and a final status agrees with what each
service did.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import grpc
import nats
import pytest

from devstack.consul import ConsulAgent
from devstack.nats import ADMIN, NatsServer
from devstack.services import ServiceProcess, start_service
from meshkit.events.envelopes import event_type
from meshkit.events.nats import credential_options
from shop.events.v1 import events_pb2
from shop.events.v1.envelope_pb2 import EventEnvelope
from shop.order.v1 import order_pb2 as pb
from tests.conftest import DOMAIN_SERVICES, Launcher, mesh_config, start_consul
from tests.support import crash_before_publish
from tests.support.order_flow import (
    CONFIRMED_HISTORY,
    STREAM,
    deliver_again,
    operator_orders,
    running,
)
from tests.support.orders import (
    CANCELLED,
    CONFIRMED,
    SAGA_TIMEOUT,
    Orders,
    check_invariants,
    order_request,
    settle,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]  # for python -m tests.support...


@dataclass
class Stack:
    consul: ConsulAgent
    nats: NatsServer
    launcher: Launcher
    state: Path
    log: IO[str]  # of the processes the tests start themselves

    def restart(self, name: str, *, kill: bool = False, env: dict[str, str] | None = None) -> None:
        """Stops (or kills) every running instance of ``name`` and starts a fresh one."""
        for proc in self.launcher.started:
            if proc.name == name and proc.process.poll() is None:
                proc.kill() if kill else proc.stop()
        self.start(name, env=env)

    def start(self, name: str, env: dict[str, str] | None = None) -> None:
        base = {"SHOP_ORDER_SAGA_TIMEOUT": str(SAGA_TIMEOUT)} if name == "order" else {}
        self.launcher.start(name, env={**base, **(env or {})})
        self.consul.wait_passing(name)

    def start_wrapped(self, name: str, module: str, *args: str) -> ServiceProcess:
        """An instance of ``name`` run by ``module`` (a test's fault wrapper, in
        tests/support), not tracked by the launcher: the test stops it."""
        base = {"SHOP_ORDER_SAGA_TIMEOUT": str(SAGA_TIMEOUT)} if name == "order" else {}
        return start_service(
            name,
            consul_http_addr=self.consul.http_addr,
            nats_url=self.nats.url,
            state_dir=self.state,
            args=["--service", name, *args],
            env={**base, "PYTHONPATH": str(ROOT), **self.consul.identity_env(name)},
            log=self.log,
            module=module,
            nats_creds=self.nats.creds(name),
        )

    def db(self, service: str) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self.state / 'data' / service}.db?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        return conn


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("flow-state")
    consul = start_consul(state, state / "consul.log")
    broker = NatsServer(store_dir=state / "nats", log_path=state / "nats.log").start()
    launcher = Launcher(consul, broker, state)
    log = open(state / "wrapped.log", "a")  # noqa: SIM115
    stack = Stack(consul, broker, launcher, state, log)
    try:
        for name in DOMAIN_SERVICES:
            stack.start(name)
        yield stack
    finally:
        launcher.stop_all()
        broker.stop()
        consul.stop()
        log.close()


@pytest.fixture
async def orders(stack: Stack) -> AsyncIterator[Orders]:
    config = mesh_config("operator", stack.consul, stack.state, stack.nats)
    async with operator_orders(config) as client:
        yield client


async def test_happy_path_confirms_once(stack: Stack, orders: Orders) -> None:
    before = await orders.stock("SKU-KEYBOARD")
    placed = await orders.place(order_request(("SKU-KEYBOARD", 2), ("SKU-MOUSE", 1)))
    assert placed.status == pb.ORDER_STATUS_PENDING
    order = await orders.final(placed.order_id, timeout=10)
    assert order.status == CONFIRMED, order.cancel_reason
    assert [h.status for h in order.history] == CONFIRMED_HISTORY
    assert order.payment_id and order.tracking_number
    check_invariants(stack)  # inventory commits the stock on OrderConfirmed, just after
    after = await orders.stock("SKU-KEYBOARD")
    assert (after.available, after.sold) == (before.available - 2, before.sold + 2)


async def test_idempotency_key_returns_the_same_order(stack: Stack, orders: Orders) -> None:
    request = order_request()
    first = await orders.place(request)
    retry = await orders.place(request)
    assert retry.order_id == first.order_id
    await orders.final(first.order_id)


async def test_declined_payment_cancels_and_restores_stock(stack: Stack, orders: Orders) -> None:
    before = await orders.stock("SKU-MONITOR")
    placed = await orders.place(order_request(("SKU-MONITOR", 3), token="tok_decline"))
    order = await orders.final(placed.order_id)
    assert order.status == CANCELLED
    assert order.cancel_reason == "payment declined: card_declined"

    async def released() -> bool:  # the release follows OrderCancelled
        after = await orders.stock("SKU-MONITOR")
        return (after.available, after.reserved, after.sold) == (before.available, 0, before.sold)

    await eventually(released, what="the monitors back in stock")


async def test_out_of_stock_cancels_without_charging(stack: Stack, orders: Orders) -> None:
    placed = await orders.place(order_request(("SKU-LAPTOP", 50)))
    order = await orders.final(placed.order_id)
    assert order.status == CANCELLED
    assert order.cancel_reason == "out of stock: SKU-LAPTOP"
    with stack.db("payment") as db:
        rows = db.execute("SELECT * FROM payments WHERE order_id = ?", (order.order_id,))
        assert rows.fetchall() == []


async def test_watch_order_streams_to_the_final_status(stack: Stack, orders: Orders) -> None:
    placed = await orders.place(order_request())
    seen = [
        r.order.status
        async for r in orders.stub.WatchOrder(
            pb.WatchOrderRequest(order_id=placed.order_id), timeout=20
        )
    ]
    assert seen[-1] == CONFIRMED
    assert seen == sorted(seen)


async def test_broker_restart_mid_flow(stack: Stack, orders: Orders) -> None:
    first = [await orders.place(order_request()) for _ in range(10)]
    stack.nats.restart()  # same port, same store: the stream and consumers survive
    later = [await orders.place(order_request(token="tok_decline")) for _ in range(5)]
    finals = await settle(orders, [o.order_id for o in first + later])
    assert {o.status for o in finals[:10]} == {CONFIRMED}
    assert {o.status for o in finals[10:]} == {CANCELLED}
    check_invariants(stack)


async def test_consumer_killed_and_restarted_mid_flow(stack: Stack, orders: Orders) -> None:
    placed = [await orders.place(order_request()) for _ in range(10)]
    stack.restart("payment", kill=True)  # SIGKILL: whatever it was doing is redelivered
    placed += [await orders.place(order_request()) for _ in range(5)]
    stack.restart("shipping", kill=True)
    finals = await settle(orders, [o.order_id for o in placed])
    assert {o.status for o in finals} == {CONFIRMED}
    check_invariants(stack)


async def test_the_same_event_delivered_twice_has_no_second_effect(
    stack: Stack, orders: Orders
) -> None:
    order = await orders.final((await orders.place(order_request(("SKU-MOUSE", 4)))).order_id)
    assert order.status == CONFIRMED
    check_invariants(stack)  # the stock's commit, just after CONFIRMED, has happened
    before = await orders.stock("SKU-MOUSE")
    # Every event of this order's flow, from the four outboxes, published again under a new
    # message id, so the broker's de-duplication does not catch it: the consumers' own
    # records of processed event ids must.
    events = []
    for service in DOMAIN_SERVICES:
        with stack.db(service) as db:
            for row in db.execute("SELECT event_id, subject, data FROM mesh_outbox"):
                if EventEnvelope.FromString(row["data"]).correlation_id == order.order_id:
                    events.append((row["event_id"], row["subject"], row["data"]))
    assert len(events) == 5  # placed, reserved, captured, scheduled, confirmed
    # As the broker's admin: every service's events, republished (no service may).
    nc = await nats.connect(stack.nats.url, **credential_options(stack.nats.creds(ADMIN), ADMIN))
    try:
        js = nc.jetstream()
        # Published again under its own id, an event is dropped by the broker.
        count = (await js.stream_info(STREAM)).state.messages
        event_id, subject, data = events[0]
        await js.publish(subject, data, headers={"Nats-Msg-Id": event_id})
        assert (await js.stream_info(STREAM)).state.messages == count
        # Under new ids, the consumers' own records of processed event ids must drop them.
        await deliver_again(js, stack, events)
    finally:
        await nc.close()
    after = await orders.stock("SKU-MOUSE")
    assert (after.available, after.reserved, after.sold) == (
        before.available,
        before.reserved,
        before.sold,
    )
    assert (await orders.final(order.order_id)).history == order.history
    check_invariants(stack)


async def test_a_crash_between_commit_and_publish_loses_nothing(
    stack: Stack, orders: Orders
) -> None:
    # The order service as it runs, but exiting (as a crash would) right before its first
    # publish: tests/support/crash_before_publish.py.
    for proc in running(stack, "order"):
        proc.stop()
    crashing = stack.start_wrapped("order", "tests.support.crash_before_publish")
    try:
        stack.consul.wait_passing("order")
        await orders.reachable()
        request = order_request()
        with contextlib.suppress(grpc.aio.AioRpcError):  # the crash may beat the answer
            await orders.stub.PlaceOrder(request, timeout=10)
        assert crashing.process.wait(15) == crash_before_publish.EXIT_CODE
    finally:
        crashing.kill()
    with stack.db("order") as db:
        unsent = [
            EventEnvelope.FromString(row["data"])
            for row in db.execute("SELECT data FROM mesh_outbox WHERE sent_time IS NULL")
        ]
    # Committed, never published: the new order's OrderPlaced.
    assert [e.event_type for e in unsent] == [event_type(events_pb2.OrderPlaced)], unsent
    order_id = unsent[0].correlation_id
    stack.start("order")  # its relay publishes what the crash left
    placed = await orders.place(request)  # the retry gets the order the crash committed
    assert placed.order_id == order_id
    order = await orders.final(placed.order_id)
    assert order.status == CONFIRMED
    with stack.db("order") as db:
        row = db.execute(
            "SELECT sent_time FROM mesh_outbox WHERE event_id = ?", (unsent[0].event_id,)
        ).fetchone()
        assert row["sent_time"] is not None
    check_invariants(stack)


async def test_a_stuck_step_times_out_and_compensates(stack: Stack, orders: Orders) -> None:
    shipping = next(p for p in reversed(stack.launcher.started) if p.name == "shipping")
    shipping.stop()
    try:
        placed = await orders.place(order_request(("SKU-KEYBOARD", 1)))
        order = await orders.final(placed.order_id, timeout=SAGA_TIMEOUT + 10)
        assert order.status == CANCELLED
        assert order.cancel_reason == (
            f"saga timed out after {SAGA_TIMEOUT:g}s waiting for shipment"
        )
    finally:
        stack.start("shipping")

    def payment_status() -> str | None:
        with stack.db("payment") as db:
            row = db.execute(
                "SELECT status FROM payments WHERE order_id = ?", (order.order_id,)
            ).fetchone()
        return row["status"] if row else None

    # Shipping catches up: schedules, then cancels; payment refunds.
    await eventually(lambda: payment_status() == "REFUNDED", timeout=30, what="the refund")
    check_invariants(stack)


async def test_a_burst_of_500_orders_ends_consistent(stack: Stack, orders: Orders) -> None:
    """500 orders at once, 64 in flight: every one ends final, each with the outcome its
    kind must have. Laptops run out: as many confirm as there are in stock (5 in the
    catalog), the rest are cancelled as out of stock. Cables (1000 in the catalog) cover
    every cable order of the burst even if all are reserved at once, so every ok order
    is CONFIRMED."""
    kinds = ["ok"] * 7 + ["decline", "laptop", "over-limit"]
    per_kind = Counter(kinds[i % len(kinds)] for i in range(500))
    requests = []
    for i in range(500):
        kind = kinds[i % len(kinds)]
        if kind == "decline":
            requests.append(order_request(("SKU-CABLE", 1), token="tok_insufficient"))
        elif kind == "laptop":
            requests.append(order_request(("SKU-LAPTOP", 1)))
        elif kind == "over-limit":
            request = order_request(("SKU-CABLE", 1))
            request.items[0].unit_price.units = 20_000
            requests.append(request)
        else:
            requests.append(order_request(("SKU-CABLE", 1), customer=f"c-{i % 17}"))
    cables = await orders.stock("SKU-CABLE")
    laptops = (await orders.stock("SKU-LAPTOP")).available
    assert cables.available >= per_kind["ok"] + per_kind["decline"] + per_kind["over-limit"]
    assert laptops < per_kind["laptop"]
    gate = asyncio.Semaphore(64)

    async def place(request: pb.PlaceOrderRequest) -> str:
        async with gate:
            return (await orders.place(request)).order_id

    started = time.monotonic()
    ids = await asyncio.gather(*(place(r) for r in requests))
    assert len(set(ids)) == 500
    finals = await settle(orders, list(ids))
    took = time.monotonic() - started
    by_kind: dict[str, Counter[str]] = {}
    for i, order in enumerate(finals):
        outcome = order.cancel_reason if order.status == CANCELLED else "CONFIRMED"
        by_kind.setdefault(kinds[i % len(kinds)], Counter())[outcome] += 1
    assert by_kind == {
        "ok": Counter({"CONFIRMED": per_kind["ok"]}),
        "decline": Counter({"payment declined: insufficient_funds": per_kind["decline"]}),
        "over-limit": Counter({"payment declined: amount_over_limit": per_kind["over-limit"]}),
        "laptop": Counter(
            {"CONFIRMED": laptops, "out of stock: SKU-LAPTOP": per_kind["laptop"] - laptops}
        ),
    }, by_kind
    outcomes = check_invariants(stack)
    after = await orders.stock("SKU-CABLE")
    assert after.sold == cables.sold + per_kind["ok"]
    assert (await orders.stock("SKU-LAPTOP")).available == 0
    print(f"500 orders final in {took:.1f}s; all orders so far: {json.dumps(outcomes)}")
