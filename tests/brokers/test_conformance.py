"""One suite every event bus passes, each against its real server (conftest's ``broker``):
publish/consume, a consumer group sharing the work, redelivery after a failed handler, no
loss across a broker restart, duplicates tolerated by the idempotent consumer, per-order
ordering (or the saga's tolerance of reordering), the lag metric, trace context carried.

Every test marks its messages with a token of its own and acknowledges the others: the
topics and streams are shared by the tests of a module, and a new consumer group reads
from the beginning (on a log: Kafka, NATS) or from its subscription (on a queue broker:
RabbitMQ, SQS; a test waits for it, ``subscribed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from meshkit.database import Database
from meshkit.events.bus import Delivery, EventBus, Outgoing, publish_many
from meshkit.events.envelopes import Envelopes, event_type
from meshkit.events.service_events import SCHEMA, EventContext, Events
from meshkit.events.steps import SCHEMA as STEPS_SCHEMA
from meshkit.events.steps import StepLedger
from shop.events.v1 import events_pb2
from tests.brokers.conftest import POLICY, Broker
from tests.support.polling import eventually

PLACED = event_type(events_pb2.OrderPlaced)  # owned by order
RESERVED = event_type(events_pb2.StockReserved)  # owned by inventory: another family
SUBJECTS = [PLACED, RESERVED]
WAIT = 90.0  # seconds: a loaded 2-core machine, a consumer group joining


def token() -> str:
    return uuid.uuid4().hex[:12]


class Collector:
    """A handler that keeps this test's messages (``<token>:...``) and acks the others;
    ``fail_first``: naks each of its messages once; ``gate``: holds them until set."""

    def __init__(
        self, mark: str, fail_first: bool = False, gate: asyncio.Event | None = None
    ) -> None:
        self.mark = f"{mark}:"
        self.fail_first = fail_first
        self.gate = gate
        self.seen: list[tuple[str, int]] = []  # (text, attempt), in handling order
        self.failed: list[str] = []
        self.waiting = 0

    @property
    def texts(self) -> list[str]:
        return [t for t, _ in self.seen]

    async def __call__(self, batch: Sequence[Delivery]) -> None:
        for d in batch:
            text = d.data.decode(errors="replace")
            if not text.startswith(self.mark):
                await d.ack()
                continue
            if self.gate is not None and not self.gate.is_set():
                self.waiting += 1
                await self.gate.wait()
            if self.fail_first and d.attempt == 1:
                self.failed.append(text)
                await d.nak(0.2)
                continue
            self.seen.append((text, d.attempt))
            await d.ack()


async def subscribed(bus: EventBus, group: str) -> None:
    """Until ``group`` is subscribed (its lag known): on a queue broker (RabbitMQ, SQS) a
    new group gets what is published once its queue is there, not what came before."""

    async def known() -> bool:
        return await bus.lag(group) is not None

    await eventually(known, WAIT, what=f"group {group} subscribed")


@contextlib.asynccontextmanager
async def consuming(
    bus: EventBus, group: str, handler: Any, subjects: Sequence[str] = SUBJECTS
) -> AsyncIterator[None]:
    task = asyncio.create_task(bus.consume(group, subjects, handler))
    try:
        await subscribed(bus, group)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def publish(bus: EventBus, texts: Sequence[str], keys: Sequence[str]) -> None:
    for i, (text, key) in enumerate(zip(texts, keys, strict=True)):
        await bus.publish(SUBJECTS[i % 2], text.encode(), uuid.uuid4().hex, key=key)


async def test_publish_and_consume(broker: Broker) -> None:
    bus = await broker.bus("order")
    mark = token()
    sent = [f"{mark}:{i}" for i in range(10)]
    got = Collector(mark)
    async with consuming(bus, f"g-{mark}", got):
        await publish(bus, sent, [f"o{i}" for i in range(10)])
        await eventually(lambda: len(set(got.texts)) == len(sent), WAIT, what="all 10 consumed")
    assert sorted(set(got.texts)) == sorted(sent)
    assert all(attempt == 1 for _, attempt in got.seen)


async def test_a_batch_published_at_once_is_consumed_once_each(broker: Broker) -> None:
    """``publish_many`` (the outbox relay's batch: the bus's own where it has one, else one
    publish each): every message published, its outcome None; a repeated id in the batch is
    dropped by the broker or tolerated (consumed with that id) by the idempotent consumer."""
    bus = await broker.bus("order")
    mark = token()
    sent = [f"{mark}:{i}" for i in range(20)]
    messages = [
        Outgoing(SUBJECTS[i % 2], text.encode(), uuid.uuid4().hex, key=f"o{i % 3}")
        for i, text in enumerate(sent)
    ]
    got = Collector(mark)
    async with consuming(bus, f"g-{mark}", got):
        results = await publish_many(bus, [*messages, messages[0]])
        assert results == [None] * (len(messages) + 1)
        await eventually(lambda: len(set(got.texts)) == len(sent), WAIT, what="all 20 consumed")
    assert sorted(set(got.texts)) == sorted(sent)


async def test_a_consumer_group_shares_the_work(broker: Broker) -> None:
    """Two instances of one service (one group): each message handled, by one or the
    other, and both get some (published until they have)."""
    publisher = await broker.bus("order")
    first, second = await broker.bus("shipping"), await broker.bus("shipping")
    mark, group = token(), f"g-{token()}"
    a, b = Collector(mark), Collector(mark)
    sent: list[str] = []
    async with consuming(first, group, a), consuming(second, group, b):
        while not (a.seen and b.seen):
            assert len(sent) < 4000, "one instance never got any work"
            batch = [f"{mark}:{len(sent) + i}" for i in range(20)]
            await publish(publisher, batch, [uuid.uuid4().hex for _ in batch])
            sent += batch
            with contextlib.suppress(AssertionError):
                await eventually(lambda: a.seen and b.seen, 1.0)
        await eventually(
            lambda: set(a.texts) | set(b.texts) == set(sent), WAIT, what="every message handled"
        )
    assert set(a.texts) | set(b.texts) == set(sent)


async def test_a_failed_handler_gets_its_message_again(broker: Broker) -> None:
    bus = await broker.bus("order")
    mark = token()
    sent = [f"{mark}:{i}" for i in range(4)]
    got = Collector(mark, fail_first=True)
    async with consuming(bus, f"g-{mark}", got):
        await publish(bus, sent, ["o1", "o1", "o2", "o2"])
        await eventually(lambda: set(got.texts) == set(sent), WAIT, what="every redelivery")
    assert sorted(got.failed) == sorted(sent)
    assert {attempt for _, attempt in got.seen} == {2}


async def test_nothing_is_lost_across_a_broker_restart(broker: Broker) -> None:
    """Published before the restart and consumed after it, or published after it: all
    handled; the consumer keeps its place (nothing before its mark comes again)."""
    bus = await broker.bus("order")
    mark, group = token(), f"g-{token()}"
    got = Collector(mark)
    early = [f"{mark}:early{i}" for i in range(5)]
    before = [f"{mark}:before{i}" for i in range(10)]
    after = [f"{mark}:after{i}" for i in range(10)]
    async with consuming(bus, group, got):
        await publish(bus, early, [f"o{i}" for i in range(5)])
        await eventually(lambda: set(got.texts) >= set(early), WAIT, what="the first ones")
    await publish(bus, before, [f"o{i}" for i in range(10)])
    broker.restart()

    async def publish_after() -> bool:
        try:
            await publish(bus, after[len(published) :], ["x"] * (len(after) - len(published)))
        except Exception:  # the client reconnecting: the outbox would retry too
            return False
        return True

    published: list[str] = []
    await eventually(publish_after, WAIT, interval=1.0, what="publishing after the restart")
    async with consuming(bus, group, got):
        await eventually(
            lambda: set(got.texts) >= set(before + after), WAIT, what="everything after"
        )
    assert set(got.texts) == set(early + before + after)


async def test_duplicates_have_no_second_effect(broker: Broker, tmp_path: Path) -> None:
    """The same event twice (a relay's publish repeated after a crash): the service's
    idempotent consumer (``mesh_processed_events``) applies it once."""
    bus = await broker.bus("payment")
    db = await Database.open(str(tmp_path / "payment.db"), SCHEMA)
    envelopes = Envelopes(POLICY.events)
    events = Events(f"payment-{token()}", db, bus, envelopes, trace.get_tracer("test"))
    applied: list[str] = []

    async def on_placed(ctx: EventContext, event: Any) -> None:
        applied.append(event.order_id)

    events.on(events_pb2.OrderPlaced, on_placed)
    order = f"order-{token()}"
    envelope = envelopes.wrap(
        events_pb2.OrderPlaced(order_id=order), source="order", correlation_id=order
    )
    data = envelope.SerializeToString()
    events.start()
    try:
        await subscribed(bus, events.service)
        for _ in range(3):  # same id: a broker may drop it, the consumer must
            await bus.publish(envelope.event_type, data, envelope.event_id, key=order)
        later = envelopes.wrap(
            events_pb2.OrderPlaced(order_id=f"{order}-later"), source="order", correlation_id=order
        )
        await bus.publish(later.event_type, later.SerializeToString(), later.event_id, key=order)
        await eventually(lambda: f"{order}-later" in applied, WAIT, what="the later event")
    finally:
        await events.close()
        await db.close()
    assert applied.count(order) == 1


async def test_one_orders_events_in_order_or_the_saga_tolerates_it(
    broker: Broker, tmp_path: Path
) -> None:
    """Per key (an order): where the broker orders by key, a consumer sees one order's
    messages in publish order. Everywhere, the saga's step ledger ends the same whatever
    the order: a step remembered then cancelled, or cancelled first (a tombstone)."""
    bus = await broker.bus("order")
    mark = token()
    orders = [f"o{i}" for i in range(8)]
    texts, keys = [], []
    for n in range(6):
        for o in orders:
            texts.append(f"{mark}:{o}:{n}")
            keys.append(o)
    got = Collector(mark)
    async with consuming(bus, f"g-{mark}", got):
        await publish(bus, texts, keys)
        await eventually(lambda: len(set(got.texts)) == len(texts), WAIT, what="all consumed")
    by_order: dict[str, list[int]] = defaultdict(list)
    for text in got.texts:
        _, o, n = text.split(":")
        by_order[o].append(int(n))
    if broker.ordered:
        assert all(seq == sorted(seq) for seq in by_order.values()), dict(by_order)

    # The saga's tolerance: the delivery order of "remember" (n=0) and "cancel" (n>0)
    # does not change where each order's step ends.
    db = await Database.open(str(tmp_path / "steps.db"), STEPS_SCHEMA)
    try:
        ledger = StepLedger(db, "capture")
        for text in got.texts:
            _, o, n = text.split(":")
            if n == "0":
                await ledger.remember(o, {"amount": 1})
            elif n == "1":
                await ledger.cancel(o)
        for o in orders:
            step = await ledger.get(o)
            assert step is not None and step.status == "CANCELLED", (o, step)
    finally:
        await db.close()


async def test_the_lag_metric(broker: Broker) -> None:
    """A group not consuming yet: none (or nothing behind); held by its handler with more
    published: behind; once released: nothing pending, nothing unacknowledged."""
    bus = await broker.bus("order")
    mark, group = token(), f"g-{token()}"
    before = await bus.lag(group)
    assert before is None or (before.pending, before.ack_pending) == (0, 0)
    gate = asyncio.Event()
    got = Collector(mark, gate=gate)
    async with consuming(bus, group, got):
        await publish(bus, [f"{mark}:held"], ["o1"])
        await eventually(lambda: got.waiting, WAIT, what="the handler holding a message")
        await publish(bus, [f"{mark}:{i}" for i in range(5)], ["o2"] * 5)

        async def behind() -> bool:
            lag = await bus.lag(group)
            return lag is not None and lag.pending + lag.ack_pending >= 5

        await eventually(behind, WAIT, what="the lag counting what is not handled")
        gate.set()
        await eventually(lambda: len(got.seen) == 6, WAIT, what="all handled")

        async def caught_up() -> bool:
            lag = await bus.lag(group)
            return lag is not None and (lag.pending, lag.ack_pending) == (0, 0)

        await eventually(caught_up, WAIT, what="no lag once every message is acked")


async def test_trace_context_travels_with_the_event(broker: Broker, tmp_path: Path) -> None:
    """The consumer's ``process`` span is in the trace of the span that emitted the event."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    bus = await broker.bus("shipping")
    db = await Database.open(str(tmp_path / "shipping.db"), SCHEMA)
    envelopes = Envelopes(POLICY.events)
    events = Events(f"shipping-{token()}", db, bus, envelopes, tracer)
    handled: list[str] = []

    async def on_placed(ctx: EventContext, event: Any) -> None:
        handled.append(event.order_id)

    events.on(events_pb2.OrderPlaced, on_placed)
    order = f"order-{token()}"
    with tracer.start_as_current_span("PlaceOrder") as root:
        envelope = envelopes.wrap(
            events_pb2.OrderPlaced(order_id=order), source="order", correlation_id=order
        )
    events.start()
    try:
        await subscribed(bus, events.service)
        await bus.publish(
            envelope.event_type, envelope.SerializeToString(), envelope.event_id, key=order
        )
        await eventually(lambda: order in handled, WAIT, what="the event handled")
    finally:
        await events.close()
        await db.close()
    process = [s for s in exporter.get_finished_spans() if s.name == f"{PLACED} process"]
    assert process, [s.name for s in exporter.get_finished_spans()]
    trace_id = root.get_span_context().trace_id
    assert any(s.context.trace_id == trace_id for s in process)
