"""Events for a service: emit through the outbox, consume idempotently.

``emit`` is called inside ``db.transaction()``: the event joins the state change in one
commit (see outbox). A consumer's handler runs in a transaction that also records the
event's id in ``mesh_processed_events``; a redelivered event finds its id and has no
second effect. Handlers run one event at a time, in the order the broker delivers them;
a handler that raises gets its event redelivered after a growing delay. The events of one
fetch share a transaction (one commit), each in a savepoint of its own, so a handler that
raises undoes its own event's writes only; the broker is told (acks, naks) once that
transaction has committed.

Trace context travels in the envelope: ``emit`` opens a short PRODUCER span
(``<type> create``) whose context the envelope carries; the outbox relay's publish
(``<type> publish``, in another task, maybe another process life) and every consumer's
``<type> process`` span are its children, so one order yields one trace across services
and the broker. With metrics, the consumer counts its deliveries (by outcome, redeliveries,
handling time) and a sampler keeps the outbox depth and the consumer's lag current.

An event whose envelope names a ``source`` other than the owner of its type (the mesh
file's ``[events.owners]``) is not handled: it is acknowledged and dropped, logged, and
counted in ``mesh_events_rejected_total{event_type, reason}``. The broker's permissions
already keep a service from publishing another's events; this check also holds when a
service's own credential is used to publish an event in another's name.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, TypeVar

from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from meshkit.database import RUNTIME, Database
from meshkit.events import outbox
from meshkit.events.bus import Delivery, EventBus
from meshkit.events.envelopes import (
    Envelope,
    Envelopes,
    event_type,
    messaging_attributes,
    unwrap,
)
from meshkit.events.spans import EventSpans
from meshkit.telemetry.logs import current_method
from meshkit.telemetry.metrics import Metrics
from meshkit.times import now_micros

log = logging.getLogger("mesh.events")

# Seconds between samples of the outbox depth and the consumer's lag (metrics only).
SAMPLE_INTERVAL = 2.0

# Its tables (the outbox, mesh_processed_events): the runtime's migrations
# (meshkit/migrations/), applied to every service's database.
SCHEMA = RUNTIME

E = TypeVar("E", bound=Message)


@dataclass
class EventContext:
    """What a handler gets besides the event: its envelope, and ``emit`` for follow-ups
    (same correlation id, this event as the cause)."""

    envelope: Envelope
    events: Events

    async def emit(self, event: Message) -> Envelope:
        return await self.events.emit(
            event,
            correlation_id=self.envelope.correlation_id,
            causation_id=self.envelope.event_id,
        )


Handler = Callable[[EventContext, Any], Awaitable[None]]


class Events:
    """The outbox and the durable consumer of one service."""

    def __init__(
        self,
        service: str,
        db: Database,
        bus: EventBus,
        envelopes: Envelopes,
        tracer: trace.Tracer,
        metrics: Metrics | None = None,
    ) -> None:
        self.service = service
        self.envelopes = envelopes
        self._db = db
        self._bus = bus
        self._tracer = tracer
        self._spans = EventSpans(tracer)
        self._metrics = metrics
        self.outbox = outbox.Outbox(db, bus, envelopes, tracer, metrics)
        self._handlers: dict[str, Handler] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def on(self, event_cls: type[E], handler: Callable[[EventContext, E], Awaitable[None]]) -> None:
        """Call ``handler`` for every ``event_cls`` event (once per event id)."""
        self._handlers[event_type(event_cls)] = handler

    async def emit(
        self, event: Message, *, correlation_id: str, causation_id: str = ""
    ) -> Envelope:
        """Queue ``event`` in the current transaction; it is published once that commits."""
        subject = event_type(event)
        carrier = self._spans.child_carrier()
        if carrier is not None:  # an unsampled trace: the create span would not be recorded
            envelope = self.envelopes.wrap(
                event,
                source=self.service,
                correlation_id=correlation_id,
                causation_id=causation_id,
                trace_context=carrier,
            )
            await self.outbox.add(envelope)
            return envelope
        with self._tracer.start_as_current_span(
            f"{subject} create", kind=SpanKind.PRODUCER
        ) as span:
            envelope = self.envelopes.wrap(
                event,
                source=self.service,
                correlation_id=correlation_id,
                causation_id=causation_id,
            )
            if span.is_recording():  # attributes only for spans that are kept
                span.set_attributes(
                    messaging_attributes("create", subject, envelope.event_id, correlation_id)
                )
        await self.outbox.add(envelope)
        return envelope

    def start(self) -> None:
        """Start the relay, and the consumer if any handler is registered."""
        self._tasks.append(asyncio.create_task(self.outbox.relay_forever(), name="outbox-relay"))
        if self._handlers:
            subjects = sorted(self._handlers)
            self._tasks.append(
                asyncio.create_task(
                    self._bus.consume(self.service, subjects, self._handle_batch),
                    name=f"consumer:{self.service}",
                )
            )
        if self._metrics is not None:
            self._tasks.append(
                asyncio.create_task(self._sample_forever(), name=f"metrics:{self.service}")
            )

    async def _sample_forever(self) -> None:
        """Keeps the outbox depth and the consumer's lag gauges current."""
        assert self._metrics is not None
        depth = self._metrics.outbox_depth
        pending = self._metrics.consumer_pending.labels(self.service)
        ack_pending = self._metrics.consumer_ack_pending.labels(self.service)
        while True:
            try:
                depth.set(await self.outbox.depth())
                if self._handlers:
                    lag = await self._bus.lag(self.service)
                    if lag is not None:
                        pending.set(lag.pending)
                        ack_pending.set(lag.ack_pending)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker away: the gauges keep their last value
                log.debug("sampling the outbox and consumer lag: %s", exc)
            await asyncio.sleep(SAMPLE_INTERVAL)

    async def _handle_batch(self, deliveries: Sequence[Delivery]) -> None:
        """Handles a fetch's events in one transaction, each in a savepoint of its own (a
        handler that raises undoes its event's writes only), then settles them once that
        has committed: one commit per batch instead of one per event. If the transaction
        cannot commit (or begin), nothing of it counts, and the events are handled again
        one at a time, each in a transaction of its own."""
        if len(deliveries) > 1:
            try:
                async with self._db.transaction() as conn:
                    outcomes = []
                    for delivery in deliveries:
                        outcomes.append(await self._handle(delivery, alone=False))
                        if not conn.transaction_open():  # rolled back whole by an error
                            raise RuntimeError("the transaction was rolled back")
            except Exception as exc:
                log.warning(
                    "a batch of %d events could not commit (%s: %s); handling them one by one",
                    len(deliveries),
                    type(exc).__name__,
                    exc,
                )
            else:
                for outcome in outcomes:
                    await outcome.settle()
                return
        for delivery in deliveries:
            await (await self._handle(delivery, alone=True)).settle()

    async def _handle(self, delivery: Delivery, *, alone: bool) -> _Outcome:
        """Handles one event: ``alone``, in a transaction of its own; otherwise in a
        savepoint of the open one. Returns what to tell the broker once it has committed."""
        try:
            envelope = self.envelopes.parse(delivery.data)
            event = unwrap(envelope)
        except Exception as exc:  # not ours to fix by retrying
            log.error("dropping an undecodable event: %s", exc)
            return _Outcome(delivery, self._metrics, "", "dropped")
        rejected = self.envelopes.forged(envelope)
        if rejected is not None:  # defence in depth: the broker's permissions come first
            log.error(
                "rejecting %s %s (order %s) from source %r: %s (its owner is %r); dropped",
                envelope.event_type,
                envelope.event_id,
                envelope.correlation_id,
                envelope.source,
                "not its owner" if rejected == "source" else "a type with no owner",
                self.envelopes.owners.get(envelope.event_type, ""),
            )
            return _Outcome(delivery, self._metrics, envelope.event_type, "rejected", rejected)
        handler = self._handlers.get(envelope.event_type)
        attempt = delivery.attempt
        named = current_method.set(envelope.event_type)
        started = time.perf_counter()
        try:
            with self._spans.from_carrier(
                f"{envelope.event_type} process", envelope.trace_context, SpanKind.CONSUMER
            ) as span:
                if span.is_recording():
                    span.set_attributes(
                        messaging_attributes(
                            "process",
                            envelope.event_type,
                            envelope.event_id,
                            envelope.correlation_id,
                        )
                        | {
                            "messaging.consumer.group.name": self.service,
                            "messaging.delivery.attempt": attempt,
                        }
                    )
                fresh = True
                try:
                    if handler is not None:
                        fresh = await self._apply(handler, envelope, event, alone)
                except Exception as exc:
                    delay = min(0.2 * 2 ** min(attempt, 6), 10.0)
                    span.record_exception(exc)
                    span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
                    log.exception(
                        "%s %s (order %s) failed on attempt %d; redelivery in %.1fs",
                        envelope.event_type,
                        envelope.event_id,
                        envelope.correlation_id,
                        attempt,
                        delay,
                    )
                    return _Outcome(
                        delivery,
                        self._metrics,
                        envelope.event_type,
                        "retry",
                        seconds=time.perf_counter() - started,
                        delay=delay,
                    )
                if not fresh:
                    span.set_attribute("mesh.duplicate", True)
            return _Outcome(
                delivery,
                self._metrics,
                envelope.event_type,
                "ok" if fresh else "duplicate",
                seconds=time.perf_counter() - started,
            )
        finally:
            current_method.reset(named)

    async def _apply(
        self, handler: Handler, envelope: Envelope, event: Message, alone: bool = True
    ) -> bool:
        """Runs ``handler`` once per event id; False when the event was handled before.

        The event's id is recorded first (``ON CONFLICT DO NOTHING``): no row inserted means
        it was handled before, and the handler is skipped. On Postgres a concurrent handling
        of the same event waits on that row, and then finds it (or, if the other rolled
        back, inserts it)."""
        async with self._db.transaction() if alone else self._db.savepoint() as conn:
            cur = await conn.execute(
                "INSERT INTO mesh_processed_events (event_id, event_type, process_time)"
                " VALUES (?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
                (envelope.event_id, envelope.event_type, now_micros()),
            )
            if cur.rowcount != 1:
                log.debug(
                    "%s %s seen before; no second effect", envelope.event_type, envelope.event_id
                )
                return False
            await handler(EventContext(envelope, self), event)
        return True

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


@dataclass(slots=True)
class _Outcome:
    """What one event's handling tells the broker (ack, or nak with a delay) and counts,
    once the transaction it ran in has committed."""

    delivery: Delivery
    metrics: Metrics | None
    event_type: str
    result: str  # ok | duplicate | retry | dropped | rejected
    reason: str = ""
    _: KW_ONLY
    seconds: float = 0.0
    delay: float = 0.0

    async def settle(self) -> None:
        metrics, result = self.metrics, self.result
        if result == "retry":
            await self.delivery.nak(self.delay)
        else:
            await self.delivery.ack()
        if metrics is None:
            return
        if result == "dropped":
            metrics.events_processed.labels("", "dropped").inc()
            return
        if result == "rejected":
            metrics.events_rejected.labels(self.event_type, self.reason).inc()
            return
        counts = metrics.event(self.event_type)
        if self.delivery.attempt > 1:
            counts.redelivered.inc()
        counter = {"retry": counts.retry, "ok": counts.ok}.get(result, counts.duplicate)
        counter.inc()
        counts.seconds.observe(self.seconds)
