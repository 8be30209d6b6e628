"""The transactional outbox: events are written in the same database transaction as the state
change that caused them, and a relay publishes them afterwards and marks them sent.

A crash between the commit and the publish loses nothing: the relay finds the rows still
unsent when the service starts again. A crash after the publish and before the mark
publishes again with the same message id, which the broker drops as a duplicate (and
consumers are idempotent besides). The relay keeps many publishes in flight at once.

Each publish gets a span (``<type> publish``) whose parent is the span that emitted the
event, read from the envelope's trace context: the relay runs in a task of its own, maybe
long after (or in a later life of the process than) the transaction that queued the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from google.protobuf.message import DecodeError
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from meshkit.database import RUNTIME, Database, Row
from meshkit.events.bus import EventBus, Outgoing, publish_many
from meshkit.events.envelopes import Envelope, Envelopes, messaging_attributes
from meshkit.events.spans import EventSpans
from meshkit.telemetry.metrics import Metrics
from meshkit.times import now_micros

log = logging.getLogger("mesh.outbox")

# Its table, mesh_outbox: the runtime's migrations (meshkit/migrations/).
SCHEMA = RUNTIME

BATCH = 256


class Outbox:
    def __init__(
        self,
        db: Database,
        bus: EventBus,
        envelopes: Envelopes,
        tracer: trace.Tracer | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._db = db
        self._bus = bus
        self._envelopes = envelopes
        self._tracer = tracer or trace.get_tracer("mesh.outbox")
        self._spans = EventSpans(self._tracer)
        self._metrics = metrics
        self._wake = asyncio.Event()

    async def add(self, envelope: Envelope) -> None:
        """Queue ``envelope`` in the caller's open transaction; published after the commit."""
        conn = self._db.in_transaction()
        await conn.execute(
            "INSERT INTO mesh_outbox (event_id, subject, data, create_time) VALUES (?, ?, ?, ?)",
            (envelope.event_id, envelope.event_type, envelope.SerializeToString(), now_micros()),
        )
        self._db.after_commit(self._wake.set)

    async def depth(self) -> int:
        row = await self._db.fetch_one(
            "SELECT count(*) AS n FROM mesh_outbox WHERE sent_time IS NULL"
        )
        return int(row["n"]) if row else 0

    async def relay_forever(self) -> None:
        backoff = 0.1
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that races its inner future, and this loop would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._wake.wait()
            self._wake.clear()
            try:
                while await self._relay_batch():
                    pass
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker down: keep the rows, try again
                log.warning("outbox relay: %s; retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._wake.set()

    async def _relay_batch(self) -> bool:
        """Publish up to BATCH unsent events; True if there may be more."""
        rows = await self._db.fetch_all(
            "SELECT seq, event_id, subject, data FROM mesh_outbox"
            " WHERE sent_time IS NULL ORDER BY seq LIMIT ?",
            (BATCH,),
        )
        if not rows:
            return False
        results: list[BaseException | None]
        if hasattr(self._bus, "publish_many"):
            results = await self._publish_many(rows)
        else:
            results = await asyncio.gather(
                *(self._publish(r["subject"], r["data"], r["event_id"]) for r in rows),
                return_exceptions=True,
            )
        sent = [r["seq"] for r, res in zip(rows, results, strict=True) if res is None]
        if sent:  # one statement for the batch
            async with self._db.transaction() as conn:
                await conn.execute(
                    "UPDATE mesh_outbox SET sent_time = ?"
                    f" WHERE seq IN ({', '.join('?' * len(sent))})",
                    (now_micros(), *sent),
                )
        failed = [res for res in results if isinstance(res, BaseException)]
        if self._metrics is not None and failed:
            self._metrics.outbox_publish_failures.inc(len(failed))
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(rows)} publishes failed: {failed[0]!r}")
        return len(rows) == BATCH

    async def _publish_many(self, rows: list[Row]) -> list[BaseException | None]:
        """The rows through the bus's batch publish, each under its span (as ``_publish``),
        the spans not made current: a bus with a batch publish reads no trace context
        from the task (NATS: the envelope carries it)."""
        spans: list[trace.Span] = []
        messages: list[Outgoing] = []
        for r in rows:
            subject, data, event_id = r["subject"], r["data"], r["event_id"]
            carrier, correlation_id = self._trace_of(data)
            span = self._spans.start(f"{subject} publish", carrier, SpanKind.PRODUCER)
            if span.is_recording():
                span.set_attributes(messaging_attributes("send", subject, event_id, correlation_id))
            spans.append(span)
            messages.append(Outgoing(subject, data, event_id, correlation_id))
        try:
            results = await publish_many(self._bus, messages)
        except BaseException as exc:  # cancelled, say: every span ends, failed
            results = [exc] * len(messages)
            raise
        finally:
            for span, message, result in zip(spans, messages, results, strict=True):
                if result is not None:
                    if span.is_recording():
                        span.record_exception(result)
                        span.set_status(StatusCode.ERROR, f"{type(result).__name__}: {result}")
                elif self._metrics is not None:
                    self._metrics.outbox_published.labels(message.subject).inc()
                span.end()
        return results

    def _trace_of(self, data: bytes) -> tuple[Mapping[str, str], str]:
        """The trace context and correlation id of an envelope (none of either for bytes
        that are not one: published as they are)."""
        try:
            envelope = self._envelopes.parse(data)
        except DecodeError:
            return {}, ""
        return envelope.trace_context, envelope.correlation_id

    async def _publish(self, subject: str, data: bytes, event_id: str) -> None:
        """Publishes one event under a span that continues the trace of its envelope."""
        carrier, correlation_id = self._trace_of(data)
        with self._spans.from_carrier(f"{subject} publish", carrier, SpanKind.PRODUCER) as span:
            if span.is_recording():
                span.set_attributes(messaging_attributes("send", subject, event_id, correlation_id))
            # keyed by the order (the correlation id): one order's events stay in order
            # where the broker orders by key
            await self._bus.publish(subject, data, event_id, key=correlation_id)
        if self._metrics is not None:
            self._metrics.outbox_published.labels(subject).inc()
