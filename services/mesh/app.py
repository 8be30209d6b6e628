"""Serving one instance of a service on the mesh: ``run_service(name, setup)``.

Start-up: certificates (issued from the mesh CA in Consul's trust domain), authorization
(Consul intentions), the service's own ``setup`` (database, servicers, stubs of the
services it calls), the mTLS gRPC server with health and reflection, a plaintext
loopback health port for Consul's checker, the Prometheus metrics port (also loopback),
then registration in Consul (the metrics port in the service meta, for Prometheus'
``consul_sd_configs``). A line ``MESH_READY {json}`` on stdout tells launchers where the
instance listens.

Shutdown on SIGTERM/SIGINT: health NOT_SERVING, deregistration (clients' watches drop the
instance within a second), then the server stops accepting and gives calls in flight
``shutdown_grace`` seconds to finish.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import consul.aio
import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from services.mesh import consul as consul_api
from services.mesh import telemetry
from services.mesh.authorization import Authorizer, Intentions, StaticIntentions
from services.mesh.calls import ClientCalls
from services.mesh.certificates import Certificates, load_or_create_ca
from services.mesh.channels import ServiceChannel, Stub
from services.mesh.config import MeshConfig
from services.mesh.database import Database
from services.mesh.discovery import Discovery
from services.mesh.events import SCHEMA as EVENTS_SCHEMA
from services.mesh.events import Events
from services.mesh.interceptors import MeshServerInterceptor
from services.mesh.metrics import METRICS_PATH, Metrics
from services.mesh.nats_bus import NatsBus

log = logging.getLogger("mesh")

S = TypeVar("S")
Setup = Callable[["Mesh"], Awaitable[None]]


class Mesh:
    """What a service's ``setup`` gets: its config, and the means to serve and to call."""

    def __init__(
        self,
        config: MeshConfig,
        consul_client: consul.aio.Consul,
        certificates: Certificates | None,
        tracer: TracerProvider,
        tracing: telemetry.Tracing | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.tracer = tracer
        self.tracing = tracing or telemetry.Tracing(tracer)
        # This instance's Prometheus registry; a service adds its own with metrics.counter().
        self.metrics = metrics or Metrics()
        self.consul = consul_client
        self.certificates = certificates
        self.discovery = Discovery(consul_client)
        self._calls = ClientCalls(config.policy.deadlines, tracer)
        self._channels: dict[str, ServiceChannel] = {}
        self.services: list[tuple[ServiceDescriptor, Any]] = []
        self._shutdown: list[Callable[[], Awaitable[None]]] = []
        self._runtime_close: list[Callable[[], Awaitable[None]]] = []
        self._events: list[Events] = []
        self._background: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        if certificates is not None:
            certificates.subscribe(self._on_new_certificate)

    def add_service(self, descriptor: ServiceDescriptor, servicer: Any) -> None:
        """Serve ``servicer`` as the proto service ``descriptor``."""
        self.services.append((descriptor, servicer))

    def stub(self, stub_cls: Callable[[grpc.aio.Channel], S], service: str) -> S:
        """A client of a service by its Consul name: ``stub(InventoryServiceStub, "inventory")``."""
        if service not in self._channels:
            credentials = None
            if self.certificates is not None:
                credentials = self.certificates.channel_credentials
            channel = ServiceChannel(service, stub_cls, credentials)
            self._channels[service] = channel
            self.discovery.watch(service, channel.update)
        return Stub(self._channels[service], stub_cls, self._calls)  # type: ignore[return-value]

    async def events(self, db: Database) -> Events:
        """This service's events: an outbox in ``db`` and a durable consumer on the broker.

        Register handlers with ``events.on(EventType, handler)`` in ``setup``; they start
        when the service starts serving.
        """
        bus = await NatsBus.connect(
            self.config.nats_url, name=self.config.instance_id or self.config.name
        )
        await db.conn.executescript(EVENTS_SCHEMA)
        events = Events(
            self.config.name,
            db,
            bus,
            self.tracer.get_tracer("mesh.events"),
            self.config.faults,
            self.metrics,
        )
        self._events.append(events)
        # Shutdown runs in reverse: stop consuming and relaying, then the bus, then the db.
        self.on_shutdown(bus.close)
        self.on_shutdown(events.close)
        return events

    def background(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run ``run()`` as a task while the service serves; cancelled at shutdown."""
        self._background.append((name, run))

    def start(self) -> None:
        """Start the event consumers, outbox relays and background tasks (once serving)."""
        for events in self._events:
            events.start()
        for name, run in self._background:
            self._tasks.append(asyncio.create_task(_logged(name, run), name=name))

    async def database(self, schema: str) -> Database:
        """The service's own SQLite database (``config.db_path``), closed at shutdown."""
        db = await Database.open(self.config.db_path, schema)
        self.on_shutdown(db.close)
        return db

    def on_shutdown(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._shutdown.append(callback)

    def on_close(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Runtime resources to release after the service's own shutdown callbacks."""
        self._runtime_close.append(callback)

    def _on_new_certificate(self) -> None:
        for channel in self._channels.values():
            channel.update(None)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for callback in reversed(self._shutdown):
            try:
                await callback()
            except Exception:
                log.exception("shutdown callback failed")
        await self.discovery.stop()
        for channel in self._channels.values():
            await channel.close()
        for callback in self._runtime_close:
            await callback()
        if self.certificates is not None:
            await self.certificates.stop()
        await self.consul.http._session.close()
        await self.metrics.close()
        # The spans still queued go out now (bounded; from a thread, off the event loop).
        await asyncio.to_thread(self.tracing.shutdown)


def _add_servicer(server: grpc.aio.Server, descriptor: ServiceDescriptor, servicer: Any) -> None:
    module = importlib.import_module(
        descriptor.file.name.removesuffix(".proto").replace("/", ".") + "_pb2_grpc"
    )
    getattr(module, f"add_{descriptor.name}Servicer_to_server")(servicer, server)


async def open_mesh(config: MeshConfig) -> tuple[Mesh, Authorizer | None]:
    """The mesh as this instance sees it: certificates, authorization, clients.

    Also what a pure client (a test, the gateway) uses to call services with an identity.
    """
    tracing = telemetry.setup_tracing(
        config.name, config.instance_id, config.trace_sink, config.trace_sample
    )
    tracer = tracing.provider
    c = consul_api.client(config.consul_http_addr)
    certificates: Certificates | None = None
    authorizer: Authorizer | None = None
    if config.insecure:
        log.warning("INSECURE: plaintext gRPC, no authentication or authorization (--insecure)")
    else:
        ca = load_or_create_ca(config.ca_dir)
        certificates = Certificates(
            config.name,
            ca,
            config.cert_ttl,
            consul_client=c if config.connect else None,
            trust_domain=config.trust_domain,
        )
        await certificates.start()
        if config.connect:
            intentions = Intentions(c, config.name)
            await intentions.start()
            authorizer = intentions
        else:
            authorizer = StaticIntentions(config.intentions_dir, config.name)
    mesh = Mesh(config, c, certificates, tracer, tracing, Metrics())
    if isinstance(authorizer, Intentions):
        mesh.on_close(authorizer.stop)
    return mesh, authorizer


async def serve(
    config: MeshConfig,
    setup: Setup,
    stop: asyncio.Event | None = None,
    *,
    global_tracer: bool = False,
) -> None:
    """Run one instance until ``stop`` is set, or until SIGTERM/SIGINT when ``stop`` is None.

    ``global_tracer``: the instance is the process (``run_service``), so its tracer provider
    becomes OpenTelemetry's global one, for code that asks ``opentelemetry.trace``.
    """
    log_context = telemetry.setup_logging(config.name, config.instance_id, config.log_json)
    mesh, authorizer = await open_mesh(config)
    if global_tracer:
        trace.set_tracer_provider(mesh.tracer)
    certificates = mesh.certificates
    await setup(mesh)

    interceptor = MeshServerInterceptor(
        config.policy,
        authorizer,
        (lambda: certificates.trust_domain) if certificates else (lambda: config.trust_domain),
        mesh.metrics,
        telemetry.AccessLog(log_context, config.log_json, every_call=config.access_log),
        telemetry.ServerSpans(mesh.tracer),
    )
    server = grpc.aio.server(interceptors=[interceptor])
    health_servicer = health.aio.HealthServicer()
    names = [d.full_name for d, _ in mesh.services]
    for descriptor, servicer in mesh.services:
        _add_servicer(server, descriptor, servicer)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    address = f"{config.host}:{config.port}"
    if certificates is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, certificates.server_credentials())
    health_server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
    health_port = health_server.add_insecure_port(f"127.0.0.1:{config.health_port}")
    config = config.with_instance(port, health_port)
    mesh.config = config
    interceptor.instance_id = config.instance_id
    log_context.instance = config.instance_id
    mesh.tracing.set_instance(config.instance_id)
    mesh.metrics.info.labels(config.name, config.instance_id, config.version).set(1)
    metrics_port = (
        await mesh.metrics.serve("127.0.0.1", config.metrics_port)
        if config.metrics_port >= 0
        else None
    )
    meta = {"grpc_services": ",".join(names)}
    if metrics_port is not None:
        meta |= {"metrics_port": str(metrics_port), "metrics_path": METRICS_PATH}

    await server.start()
    await health_server.start()
    await mesh.discovery.ready()
    mesh.start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    await consul_api.register(
        mesh.consul,
        name=config.name,
        instance_id=config.instance_id,
        address=config.host,
        port=port,
        check=consul_api.grpc_check(config.instance_id, config.host, health_port),
        version=config.version,
        tags=["grpc", "insecure" if config.insecure else "mtls"],
        meta=meta,
    )
    ready = {
        "name": config.name,
        "instance_id": config.instance_id,
        "address": config.host,
        "port": port,
        "health_port": health_port,
        "metrics_port": metrics_port,
        "traces": mesh.tracing.destination,
        "trust_domain": certificates.trust_domain if certificates else None,
    }
    print("MESH_READY " + json.dumps(ready), flush=True)
    log.info(
        "%s serving on %s:%d (health on 127.0.0.1:%d, metrics on %s, traces to %s)",
        config.name,
        config.host,
        port,
        health_port,
        f"127.0.0.1:{metrics_port}{METRICS_PATH}" if metrics_port is not None else "none",
        mesh.tracing.destination,
    )

    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("shutting down %s", config.instance_id)
    await health_servicer.enter_graceful_shutdown()
    await consul_api.deregister(mesh.consul, config.instance_id)
    await server.stop(config.shutdown_grace)
    await health_server.stop(0)
    await mesh.close()
    log.info("stopped %s", config.instance_id)


async def _logged(name: str, run: Callable[[], Awaitable[None]]) -> None:
    try:
        await run()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("background task %s failed", name)


def run_service(name: str, setup: Setup, argv: list[str] | None = None) -> None:
    """Entry point of ``python -m services.<name>``."""
    config = MeshConfig.from_args(name, sys.argv[1:] if argv is None else argv)
    asyncio.run(serve(config, setup, global_tracer=True))
