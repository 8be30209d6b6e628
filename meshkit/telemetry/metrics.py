"""Prometheus metrics of one instance, served on a loopback port of its own.

Each instance has its own registry (several meshes can live in one process, as in tests)
and serves it at ``http://127.0.0.1:<metrics port>/metrics``; the port goes into the
instance's Consul meta (``metrics_port``, ``metrics_path``), which is how a Prometheus with
``consul_sd_configs`` finds every instance (``infra/prometheus/prometheus.yml``). The
mesh service and instance are target labels there, so the series carry only what varies
within one instance.

- RED per gRPC method (``grpc_service``, ``grpc_method``): ``mesh_server_handled_total``
  by ``grpc_code`` (requests, and errors as the codes other than OK),
  ``mesh_server_handling_seconds`` (histogram), ``mesh_server_in_flight``.
- RED per caller (the SPIFFE service name of the client certificate; ``unknown`` without
  one): ``mesh_server_caller_handled_total`` by ``caller`` and ``grpc_code``,
  ``mesh_server_caller_seconds`` by ``caller``: an edge of the topology (the console's).
- Admission: ``mesh_shed_total`` by ``method`` and ``reason`` (``in_flight``, ``deadline``).
- Events: ``mesh_events_processed_total`` by ``event_type`` and ``outcome``,
  ``mesh_events_rejected_total`` by ``event_type`` and ``reason`` (a forged source),
  ``mesh_events_redelivered_total``, ``mesh_events_handling_seconds``, the durable
  consumer's lag (``mesh_events_consumer_pending``, ``..._ack_pending``, sampled),
  ``mesh_outbox_depth`` (sampled), ``mesh_outbox_published_total``.
- Client resilience per downstream service (``meshkit.rpc.resilience``):
  ``mesh_breaker_state`` (0 closed, 1 open, 2 half-open), ``mesh_breaker_transitions_total``
  by ``state``, ``mesh_endpoint_ejections_total``, ``mesh_endpoints_ejected``,
  ``mesh_bulkhead_rejected_total``, ``mesh_hedges_total``, all by ``service``.
- A service's own metrics through ``counter()`` (the order service's saga outcomes).

The request path touches no lock and no label: a method's RPC series are plain numbers
bound once per method (``rpc()``), which the registry's collector turns into the series
above when ``/metrics`` is scraped.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate

import grpc
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

METRICS_PATH = "/metrics"
_SCRAPE_TIMEOUT = 10.0  # seconds a scraper has to send its request head
# Loopback gRPC calls take well under a millisecond; the saga's steps up to seconds.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


def split_method(method: str) -> tuple[str, str]:
    """``/pkg.Service/Method`` as ``("pkg.Service", "Method")``."""
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name


class _Edge:
    """The calls of one caller to one method: counts by code and a latency histogram."""

    __slots__ = ("buckets", "codes", "ok", "seconds")

    def __init__(self) -> None:
        self.ok = 0
        self.codes: dict[grpc.StatusCode, int] = {}  # the codes other than OK
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one: above every bound
        self.seconds = 0.0


class RpcMetrics:
    """The series of one gRPC method, kept as plain numbers that a call updates without a
    lock or a label lookup (one event loop serves every call of an instance) and that the
    registry's collector (``_RpcCollector``) reads when ``/metrics`` is scraped: per method
    and, summed the other way, per caller."""

    __slots__ = ("edges", "in_flight", "labels")

    def __init__(self, method: str) -> None:
        self.labels = split_method(method)
        self.in_flight = 0  # calls being handled now: the interceptor adds one as a call starts
        self.edges: dict[str, _Edge] = {}  # by caller ("" for a call without an identity)

    def done(self, code: grpc.StatusCode, started: float, caller: str = "") -> float:
        """Counts a finished call (of ``caller``, a service name); returns its duration."""
        took = time.perf_counter() - started
        self.in_flight -= 1
        self.observe(code, took, caller)
        return took

    def observe(self, code: grpc.StatusCode, took: float, caller: str = "") -> None:
        """Counts a call of ``caller`` that ended with ``code`` after ``took`` seconds."""
        edge = self.edges.get(caller)
        if edge is None:
            edge = self.edges[caller] = _Edge()
        if code is _OK:
            edge.ok += 1
        else:
            edge.codes[code] = edge.codes.get(code, 0) + 1
        edge.buckets[bisect_left(LATENCY_BUCKETS, took)] += 1
        edge.seconds += took


_OK = grpc.StatusCode.OK
_LE = [floatToGoString(b) for b in LATENCY_BUCKETS] + ["+Inf"]


class _Histogram:
    """Edges summed into one histogram series."""

    __slots__ = ("buckets", "seconds")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.seconds = 0.0

    def add(self, edge: _Edge) -> None:
        for i, n in enumerate(edge.buckets):
            self.buckets[i] += n
        self.seconds += edge.seconds

    def cumulative(self) -> list[tuple[str, float]]:
        return list(zip(_LE, accumulate(self.buckets), strict=True))


class _RpcCollector(Collector):
    """The RPC series of every method, made from ``RpcMetrics`` at scrape time."""

    def __init__(self, rpcs: dict[str, RpcMetrics]) -> None:
        self._rpcs = rpcs

    def describe(self) -> list[Metric]:
        return self._families()

    def collect(self) -> list[Metric]:
        families = self._families()
        handled, seconds, in_flight, caller_handled, caller_seconds = families
        by_caller: dict[tuple[str, grpc.StatusCode], int] = {}
        caller_hist: dict[str, _Histogram] = {}
        for rpc in list(self._rpcs.values()):
            codes: dict[grpc.StatusCode, int] = {}
            hist = _Histogram()
            for caller, edge in list(rpc.edges.items()):
                name = caller or "unknown"
                for code, n in ((_OK, edge.ok), *edge.codes.items()):
                    if n:
                        codes[code] = codes.get(code, 0) + n
                        by_caller[(name, code)] = by_caller.get((name, code), 0) + n
                hist.add(edge)
                caller_hist.setdefault(name, _Histogram()).add(edge)
            for code, n in codes.items():
                handled.add_metric([*rpc.labels, code.name], n)
            seconds.add_metric(list(rpc.labels), hist.cumulative(), hist.seconds)
            in_flight.add_metric(list(rpc.labels), rpc.in_flight)
        for (caller, code), n in by_caller.items():
            caller_handled.add_metric([caller, code.name], n)
        for caller, hist in caller_hist.items():
            caller_seconds.add_metric([caller], hist.cumulative(), hist.seconds)
        return families

    @staticmethod
    def _families() -> list[Metric]:
        rpc = ("grpc_service", "grpc_method")
        return [
            CounterMetricFamily(
                "mesh_server_handled",
                "RPCs this instance completed, by gRPC status code (errors: every code but OK).",
                labels=(*rpc, "grpc_code"),
            ),
            HistogramMetricFamily(
                "mesh_server_handling_seconds",
                "Time from the call reaching the mesh's interceptor to its last response.",
                labels=rpc,
            ),
            GaugeMetricFamily("mesh_server_in_flight", "RPCs being handled now.", labels=rpc),
            CounterMetricFamily(
                "mesh_server_caller_handled",
                "RPCs this instance completed, by the caller's service name and gRPC status code.",
                labels=("caller", "grpc_code"),
            ),
            HistogramMetricFamily(
                "mesh_server_caller_seconds",
                "Time to handle a call, by the caller's service name.",
                labels=("caller",),
            ),
        ]


class EventMetrics:
    """The series of one event type for this service's consumer, bound once."""

    __slots__ = ("duplicate", "ok", "redelivered", "retry", "seconds")

    def __init__(self, metrics: Metrics, event_type: str) -> None:
        processed = metrics.events_processed
        self.ok = processed.labels(event_type, "ok")
        self.retry = processed.labels(event_type, "retry")
        self.duplicate = processed.labels(event_type, "duplicate")
        self.redelivered = metrics.events_redelivered.labels(event_type)
        self.seconds = metrics.events_seconds.labels(event_type)


class Metrics:
    """The registry of one instance and the runtime's metrics in it."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.info = Gauge(
            "mesh_instance_info",
            "Always 1; the instance's service, id and version as labels.",
            ("service", "instance", "version"),
            registry=r,
        )
        self.shed = Counter(
            "mesh_shed",
            "Calls this instance refused up front (meshkit.rpc.admission), by full method name"
            " and reason: in_flight (the method's maximum in flight reached) or deadline (less"
            " time left than the method's min_remaining floor or its usual handling time).",
            ("method", "reason"),
            registry=r,
        )
        self.events_processed = Counter(
            "mesh_events_processed",
            "Deliveries this service's consumer handled, by outcome: ok, retry (the handler"
            " failed; redelivered later) or duplicate (seen before; no second effect).",
            ("event_type", "outcome"),
            registry=r,
        )
        self.events_rejected = Counter(
            "mesh_events_rejected",
            "Deliveries this service's consumer refused to handle (acknowledged and dropped),"
            " by reason: source (the envelope's source is not the owner of its event type)"
            " or unowned (the mesh file names no owner for the type).",
            ("event_type", "reason"),
            registry=r,
        )
        self.events_redelivered = Counter(
            "mesh_events_redelivered",
            "Deliveries after the first of the same event (broker redeliveries).",
            ("event_type",),
            registry=r,
        )
        self.events_seconds = Histogram(
            "mesh_events_handling_seconds",
            "Time to handle one delivery, its transaction included.",
            ("event_type",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_pending = Gauge(
            "mesh_events_consumer_pending",
            "Messages on the stream not yet delivered to this service's durable consumer"
            " (JetStream num_pending; sampled).",
            ("consumer",),
            registry=r,
        )
        self.consumer_ack_pending = Gauge(
            "mesh_events_consumer_ack_pending",
            "Messages delivered to the durable consumer and not yet acknowledged (sampled).",
            ("consumer",),
            registry=r,
        )
        self.outbox_depth = Gauge(
            "mesh_outbox_depth",
            "Events committed to the outbox and not yet published (sampled).",
            registry=r,
        )
        self.outbox_published = Counter(
            "mesh_outbox_published",
            "Events the outbox relay published to the broker.",
            ("event_type",),
            registry=r,
        )
        self.outbox_publish_failures = Counter(
            "mesh_outbox_publish_failures",
            "Publishes of the outbox relay that failed (retried).",
            registry=r,
        )
        self.breaker_state = Gauge(
            "mesh_breaker_state",
            "The circuit breaker of calls to a service: 0 closed, 1 open, 2 half-open.",
            ("service",),
            registry=r,
        )
        self.breaker_transitions = Counter(
            "mesh_breaker_transitions",
            "Transitions of a service's circuit breaker, by the state entered.",
            ("service", "state"),
            registry=r,
        )
        self.endpoint_ejections = Counter(
            "mesh_endpoint_ejections",
            "Endpoints of a service ejected for consecutive failures (outlier detection).",
            ("service",),
            registry=r,
        )
        self.endpoints_ejected = Gauge(
            "mesh_endpoints_ejected",
            "Endpoints of a service left out of its target list now.",
            ("service",),
            registry=r,
        )
        self.bulkhead_rejected = Counter(
            "mesh_bulkhead_rejected",
            "Calls to a service refused at once: its maximum in flight from here reached.",
            ("service",),
            registry=r,
        )
        self.hedges = Counter(
            "mesh_hedges",
            "Second attempts of hedged calls to a service (sent after the hedge delay).",
            ("service",),
            registry=r,
        )
        self._rpcs: dict[str, RpcMetrics] = {}
        r.register(_RpcCollector(self._rpcs))
        self._events: dict[str, EventMetrics] = {}
        self._server: asyncio.Server | None = None
        self.port = 0

    def rpc(self, method: str) -> RpcMetrics:
        """The bound series of ``method`` (a full ``/pkg.Service/Method`` name)."""
        bound = self._rpcs.get(method)
        if bound is None:
            bound = self._rpcs[method] = RpcMetrics(method)
        return bound

    def event(self, event_type: str) -> EventMetrics:
        bound = self._events.get(event_type)
        if bound is None:
            bound = self._events[event_type] = EventMetrics(self, event_type)
        return bound

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """A counter of the service's own in this instance's registry."""
        return Counter(name, documentation, tuple(labels), registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve ``/metrics`` on ``host:port`` (0: a free port); returns the port.

        A plain asyncio responder (GET ``/metrics``, one response per connection), not
        aiohttp's web server: that is all a scrape needs, and aiohttp.web's imports were
        ~1.5 MiB of every service's memory."""
        self._server = await asyncio.start_server(self._scrape, host, port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def _scrape(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_SCRAPE_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            method, target = [*head.split(b"\r\n", 1)[0].split(b" "), b"", b""][:2]
            path = target.split(b"?", 1)[0]
            if path != METRICS_PATH.encode():
                status, body, kind = "404 Not Found", b"not found; try /metrics\n", "text/plain"
            elif method not in (b"GET", b"HEAD"):
                status, body, kind = "405 Method Not Allowed", b"GET only\n", "text/plain"
            else:
                status, body, kind = "200 OK", self.exposition(), CONTENT_TYPE_LATEST
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + (body if method != b"HEAD" else b"")
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that went away or sent no request head in time
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
