"""What a service's ``setup(mesh)`` gets: its configuration, and the means to serve
(``add_service``), to call (``stub``), to keep state (``database``), to emit and consume
events (``events``) and to run work in the background.

Infrastructure comes through factories, so a test can give the real ``setup`` an
in-memory broker (``meshkit.testing``) and production gives it NATS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import consul.aio
import grpc
from google.protobuf.descriptor import ServiceDescriptor
from opentelemetry.sdk.trace import TracerProvider

from meshkit import consul as consul_api
from meshkit.config import MeshConfig
from meshkit.database import RUNTIME, Database, Schema, migrate, open_database
from meshkit.discovery import open_discovery
from meshkit.events.brokers import connect_bus
from meshkit.events.bus import EventBus
from meshkit.events.envelopes import Envelopes
from meshkit.events.service_events import Events
from meshkit.rpc.calls import ClientCalls
from meshkit.rpc.channels import ServiceChannel, Stub
from meshkit.rpc.descriptors import service_of_servicer
from meshkit.rpc.resilience import Guard
from meshkit.security.authorization import Authorizer, Intentions, StaticIntentions
from meshkit.security.certificates import CA_CERT, Certificates, SignerClient
from meshkit.security.end_user import EndUser
from meshkit.telemetry import tracing
from meshkit.telemetry.metrics import Metrics

log = logging.getLogger("mesh")

S = TypeVar("S")
# Opens this instance's connection to the event broker.
BusFactory = Callable[[MeshConfig], Awaitable[EventBus]]


class Mesh:
    """One instance's view of the mesh; handed to the service's ``setup``."""

    def __init__(
        self,
        config: MeshConfig,
        consul_client: consul.aio.Consul,
        certificates: Certificates | None,
        tracer: TracerProvider,
        tracing_: tracing.Tracing | None = None,
        metrics: Metrics | None = None,
        *,
        bus_factory: BusFactory = connect_bus,
    ) -> None:
        self.config = config
        self.tracer = tracer
        self.tracing = tracing_ or tracing.Tracing(tracer)
        # This instance's Prometheus registry; a service adds its own with metrics.counter().
        self.metrics = metrics or Metrics()
        self.consul = consul_client
        self.certificates = certificates
        # Who a call is made for, as the edge passes it in (the mesh file's [end_user]).
        self.end_user = EndUser(config.policy.end_user)
        # The registry it finds services in and registers in (--discovery).
        self.discovery = open_discovery(config, consul_client)
        self._bus_factory = bus_factory
        self._calls = ClientCalls(config.policy.deadlines, tracer, self.tracing.root_ratio)
        self._channels: dict[str, ServiceChannel] = {}
        self.services: list[tuple[ServiceDescriptor, Any]] = []
        self._shutdown: list[Callable[[], Awaitable[None]]] = []
        self._runtime_close: list[Callable[[], Awaitable[None]]] = []
        self._events: list[Events] = []
        self._background: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        if certificates is not None:
            certificates.subscribe(self._on_new_certificate)

    def add_service(self, servicer: Any, descriptor: ServiceDescriptor | None = None) -> None:
        """Serve ``servicer``: the proto service is the generated ``*Servicer`` it extends
        (or ``descriptor``, for a servicer that extends none)."""
        self.services.append((descriptor or service_of_servicer(servicer), servicer))

    def stub(self, stub_cls: Callable[[grpc.aio.Channel], S], service: str) -> S:
        """A client of a service by its Consul name: ``stub(InventoryServiceStub, "inventory")``."""
        if service not in self._channels:
            credentials = None
            if self.certificates is not None:
                credentials = self.certificates.channel_credentials
            resilience = self.config.policy.resilience
            guard = None
            if resilience.enabled:
                guard = Guard(service, resilience.for_service(service), self.metrics)
            channel = ServiceChannel(service, stub_cls, credentials, guard)
            self._channels[service] = channel
            self.discovery.watch(service, channel.update)
        return Stub(self._channels[service], stub_cls, self._calls)  # type: ignore[return-value]

    async def events(self, db: Database) -> Events:
        """This service's events: an outbox in ``db`` and a durable consumer on the broker.

        Register handlers with ``events.on(EventType, handler)`` in ``setup``; they start
        when the service starts serving.
        """
        bus = await self._bus_factory(self.config)
        await migrate(db, [RUNTIME])  # its tables (a no-op where they are already)
        events = Events(
            self.config.name,
            db,
            bus,
            Envelopes(self.config.policy.events),
            self.tracer.get_tracer("mesh.events"),
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

    async def database(self, schema: Schema) -> Database:
        """The service's own database, SQLite (``config.db_path``) or Postgres
        (``config.database_url``) as ``config.database`` says, its migrations (``schema``,
        after the runtime's) applied; closed at shutdown."""
        db = await open_database(self.config, schema)
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


async def open_mesh(
    config: MeshConfig, *, bus_factory: BusFactory = connect_bus
) -> tuple[Mesh, Authorizer | None]:
    """The mesh as this instance sees it: certificates, authorization, clients.

    Also what a pure client (a test, the gateway) uses to call services with an identity.
    """
    tracing_ = tracing.setup_tracing(
        config.name, config.instance_id, config.trace_sink, config.trace_sample
    )
    c = consul_api.client(config.consul_http_addr, config.consul_token)
    certificates: Certificates | None = None
    authorizer: Authorizer | None = None
    if config.insecure:
        log.warning("INSECURE: plaintext gRPC, no authentication or authorization (--insecure)")
    else:
        if not config.signer_url:
            raise RuntimeError(
                "no signer to issue this workload's certificate: set MESH_SIGNER_URL or "
                "--signer (devstack starts one), or --insecure"
            )
        # Without Consul (--no-connect, development only), the public CA root from a file.
        ca_file = config.ca_dir / CA_CERT
        certificates = Certificates(
            config.name,
            SignerClient(config.signer_url, config.consul_token),
            config.cert_ttl,
            consul_client=c if config.connect else None,
            trust_domain=config.trust_domain,
            roots_pem=b"" if config.connect or not ca_file.exists() else ca_file.read_bytes(),
        )
        await certificates.start()
        if config.connect:
            intentions = Intentions(c, config.name)
            await intentions.start()
            authorizer = intentions
        else:
            authorizer = StaticIntentions(config.intentions_dir, config.name)
    mesh = Mesh(
        config, c, certificates, tracing_.provider, tracing_, Metrics(), bus_factory=bus_factory
    )
    if isinstance(authorizer, Intentions):
        mesh.on_close(authorizer.stop)
    return mesh, authorizer


async def _logged(name: str, run: Callable[[], Awaitable[None]]) -> None:
    try:
        await run()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("background task %s failed", name)
