"""The local trace sink: finished spans in one SQLite file that every process of a run shares.

``make run`` needs no tracing backend: each service exports its spans (from the SDK's batch
processor thread, never on the request path) into ``<state>/traces.db``, one short WAL
transaction per batch, and ``python -m meshkit.tools.trace <order-id>`` reads them back.
Each span keeps the business flow it belongs to (its correlation id: the
``mesh.correlation_id`` attribute a service sets, or an event span's
``messaging.message.conversation_id``) in a column of its own, so a trace is found by it
(the shop's correlation id is the order id).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

log = logging.getLogger("mesh.tracing")

# Most spans kept for the next batch while the sink refuses them.
MAX_HELD = 10_000

# Attributes that tie a span to a business flow (the saga's correlation id).
CORRELATION_ATTRIBUTES = ("mesh.correlation_id", "messaging.message.conversation_id")

SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id    TEXT NOT NULL,
    span_id     TEXT NOT NULL,
    parent_id   TEXT,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    service     TEXT NOT NULL,
    instance    TEXT NOT NULL,
    start_ns    INTEGER NOT NULL,
    end_ns      INTEGER NOT NULL,
    status      TEXT NOT NULL,  -- UNSET | OK | ERROR
    status_text TEXT NOT NULL,
    order_id    TEXT,
    attributes  TEXT NOT NULL,  -- JSON object
    links       TEXT NOT NULL,  -- JSON list of [trace_id, span_id]
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS spans_by_order ON spans (order_id) WHERE order_id IS NOT NULL;
"""


@dataclass(frozen=True)
class SpanRecord:
    """One finished span as the sink stores it (ids in lowercase hex)."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    service: str
    instance: str
    start_ns: int
    end_ns: int
    status: str = "UNSET"
    status_text: str = ""
    order_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    links: tuple[tuple[str, str], ...] = ()

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def _connect(path: Path, timeout: float = 10.0) -> sqlite3.Connection:
    """The sink, created on first use. Every process of a run opens it at about the same
    time (their first batches), and switching a new file to WAL answers "database is
    locked" at once to all but one, without SQLite's busy wait: so wait and retry here."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    pause = 0.01
    while True:
        conn = sqlite3.connect(
            str(path), timeout=timeout, check_same_thread=False, isolation_level=None
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
            return conn
        except sqlite3.OperationalError:
            conn.close()
            if time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def record_of(span: ReadableSpan, instance: str = "") -> SpanRecord:
    ctx = span.context
    attrs = dict(span.attributes or {})
    resource = span.resource.attributes
    order_id = next((str(attrs[k]) for k in CORRELATION_ATTRIBUTES if attrs.get(k)), None)
    return SpanRecord(
        trace_id=format(ctx.trace_id, "032x"),
        span_id=format(ctx.span_id, "016x"),
        parent_id=format(span.parent.span_id, "016x") if span.parent else None,
        name=span.name,
        kind=span.kind.name,
        service=str(resource.get("service.name", "")),
        instance=instance or str(resource.get("service.instance.id", "")),
        start_ns=span.start_time or 0,
        end_ns=span.end_time or span.start_time or 0,
        status=span.status.status_code.name,
        status_text=span.status.description or "",
        order_id=order_id,
        attributes=attrs,
        links=tuple(
            (format(link.context.trace_id, "032x"), format(link.context.span_id, "016x"))
            for link in span.links
        ),
    )


class SqliteSpanExporter(SpanExporter):
    """Writes batches of finished spans into the run's ``traces.db`` (several processes share it).

    ``instance``, once set, stands for the resource's ``service.instance.id`` (which the SDK
    fills with a random id): a service's instance id, as Consul knows it, is known only
    once its port is bound, after its tracer provider exists.
    """

    def __init__(self, path: Path, instance: str = "", timeout: float = 10.0) -> None:
        self.path = path
        self.instance = instance
        self.timeout = timeout  # how long a batch waits for the sink's lock
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        # Rows of batches the sink refused (locked past its timeout): written with the
        # next batch rather than dropped, up to MAX_HELD.
        self._held: list[tuple[Any, ...]] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        rows = [_row(record_of(s, self.instance)) for s in spans]
        with self._lock:
            rows = self._held + rows
            try:
                if self._conn is None:
                    self._conn = _connect(self.path, self.timeout)
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._conn.executemany(
                        "INSERT OR REPLACE INTO spans VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
                    )
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if not self._held:
                    log.warning(
                        "trace sink %s: %s; the spans are kept for the next batch", self.path, exc
                    )
                self._held = rows[-MAX_HELD:]
                return SpanExportResult.FAILURE
            self._held = []
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _row(r: SpanRecord) -> tuple[Any, ...]:
    return (
        r.trace_id,
        r.span_id,
        r.parent_id,
        r.name,
        r.kind,
        r.service,
        r.instance,
        r.start_ns,
        r.end_ns,
        r.status,
        r.status_text,
        r.order_id,
        json.dumps(r.attributes, default=str),
        json.dumps([list(link) for link in r.links]),
    )


def _record(row: sqlite3.Row) -> SpanRecord:
    return SpanRecord(
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_id=row["parent_id"],
        name=row["name"],
        kind=row["kind"],
        service=row["service"],
        instance=row["instance"],
        start_ns=row["start_ns"],
        end_ns=row["end_ns"],
        status=row["status"],
        status_text=row["status_text"],
        order_id=row["order_id"],
        attributes=json.loads(row["attributes"]),
        links=tuple((t, s) for t, s in json.loads(row["links"])),
    )


def _initialised(path: Path) -> bool:
    """The sink file exists and has its table: a process that has just created the file
    (its exporter's first batch) may not have committed the schema yet."""
    if not path.exists():
        return False
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    try:
        found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'spans'").fetchone()
    finally:
        conn.close()
    return found is not None


def read_traces(path: Path, key: str) -> dict[str, list[SpanRecord]]:
    """The traces that touch order ``key`` (or the trace whose id is ``key``), each trace's
    spans by trace id, oldest trace first. Empty when there are none (or no sink yet)."""
    if not _initialised(path):
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    try:
        conn.row_factory = sqlite3.Row
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT trace_id FROM spans WHERE order_id = ? OR trace_id = ?"
                " GROUP BY trace_id ORDER BY min(start_ns)",
                (key, key.lower()),
            )
        ]
        traces: dict[str, list[SpanRecord]] = {}
        for trace_id in ids:
            rows = conn.execute(
                "SELECT * FROM spans WHERE trace_id = ? ORDER BY start_ns", (trace_id,)
            )
            traces[trace_id] = [_record(r) for r in rows]
        return traces
    finally:
        conn.close()


def recent_orders(path: Path, limit: int = 10) -> list[tuple[str, int]]:
    """The order ids seen most recently in the sink, with their span counts (for hints)."""
    if not _initialised(path):
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    try:
        return [
            (str(r[0]), int(r[1]))
            for r in conn.execute(
                "SELECT order_id, count(*) FROM spans WHERE order_id IS NOT NULL"
                " GROUP BY order_id ORDER BY max(start_ns) DESC LIMIT ?",
                (limit,),
            )
        ]
    finally:
        conn.close()
