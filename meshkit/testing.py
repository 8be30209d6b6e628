"""An application's services in one process, for unit, component and contract tests.

Each service is wired by its own ``setup(mesh)`` on the real ``meshkit.Mesh`` minus the
network (``InProcessMesh``): its database is a real SQLite file in a temp directory, its
events go through the real outbox and consumer (``Mesh.events``) over the in-memory
broker of ``meshkit.events.memory`` (given through the mesh's bus factory), behind a gate
that can hold deliveries back (as slow consumers would), and its stubs call the other
services' servicers directly. So tests run the services' real wiring, code and stores in
milliseconds, without Consul, NATS or TLS::

    async with running_app(tmp_path, {"inventory": inventory.setup, ...}) as app:
        answer = await app.call("/shop.inventory.v1.InventoryService/GetStock", request)

A test may start some services only (``start=``, the others later with ``app.start``:
they were down), leave the background tasks (sweepers) to be run by hand
(``background=False``), read a service's database (``app.database``) and count the calls
its stubs made (``app.stub_calls``).

What is left out is the transport: mTLS, intentions and deadlines are the integration
tests' business. A domain error comes back the way the wire carries it: the
``google.rpc.Status`` the mesh's server interceptor sends.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from opentelemetry.sdk.trace import TracerProvider

from meshkit import consul as consul_api
from meshkit.config import DEFAULT_MESH_FILE, MeshConfig, MeshPolicy
from meshkit.database import Database
from meshkit.errors import ServiceError
from meshkit.events.bus import Delivery, Handler
from meshkit.events.envelopes import Envelope, Envelopes, event_type
from meshkit.events.memory import MemoryBus
from meshkit.events.service_events import Events
from meshkit.mesh import Mesh
from meshkit.server import Setup

S = TypeVar("S")


class _Gate:
    """Holds deliveries back while closed, and counts the batches being handled."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.in_flight = 0


class _GatedBus:
    """One service's view of the shared ``MemoryBus``, its deliveries through the gate."""

    def __init__(self, bus: MemoryBus, gate: _Gate) -> None:
        self._bus = bus
        self._gate = gate

    async def publish(self, subject: str, data: bytes, msg_id: str, key: str = "") -> None:
        await self._bus.publish(subject, data, msg_id, key)

    async def consume(self, durable: str, subjects: Sequence[str], handler: Handler) -> None:
        async def gated(batch: Sequence[Delivery]) -> None:
            self._gate.in_flight += 1
            try:
                await self._gate.open.wait()
                await handler(batch)
            finally:
                self._gate.in_flight -= 1

        await self._bus.consume(durable, subjects, gated)

    async def close(self) -> None:
        pass


@dataclass(frozen=True)
class Answer:
    """What a caller gets, as the wire carries it."""

    code: str  # "OK" or a grpc.StatusCode name
    response: Message | None = None
    message: str = ""
    field_violations: tuple[str, ...] = ()

    @classmethod
    def of_error(cls, err: ServiceError) -> Answer:
        status = err.to_rpc_status()
        violations: list[str] = []
        for detail in status.details:
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(bad):
                violations.extend(v.field for v in bad.field_violations)
        return cls(err.code.name, None, status.message, tuple(violations))


class _ServiceStub:
    """A mesh stub that calls a servicer of the app directly; errors arrive as
    ``grpc.aio.AioRpcError``, as from a real channel."""

    def __init__(self, app: App, service: str) -> None:
        self._app = app
        self._service = service

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        if not method[:1].isupper():
            raise AttributeError(method)

        async def call(request: Message, **_: Any) -> Any:
            self._app.stub_calls[f"{self._service}/{method}"] += 1
            handler = getattr(self._app.servicer(self._service), method)
            try:
                return await handler(request, None)
            except ServiceError as err:
                raise grpc.aio.AioRpcError(
                    err.code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=err.message
                ) from err

        return call


class InProcessMesh(Mesh):
    """The real ``meshkit.Mesh`` of one service, minus the network: no Consul (a
    client that is never called), no certificates, no NATS (the app's bus), and stubs that
    call the other services' servicers in process. Its database is ``<state>/<name>.sqlite3``.
    """

    def __init__(self, name: str, app: App) -> None:
        config = MeshConfig(
            name=name,
            consul_http_addr="127.0.0.1:1",  # never called
            state_dir=app.state_dir,
            db_path=app.state_dir / f"{name}.sqlite3",
            policy=app.policy,
        )
        bus = _GatedBus(app.bus, app.gate)

        async def bus_factory(_: MeshConfig) -> _GatedBus:
            return bus

        super().__init__(
            config,
            app.consul_client(config.consul_http_addr),
            None,
            TracerProvider(),
            bus_factory=bus_factory,  # type: ignore[arg-type]
        )
        self._app = app
        self.subscriptions: set[str] = set()
        self.opened: list[Events] = []
        self.databases: list[Database] = []
        self.started = False

    async def database(self, schema: str) -> Database:
        db = await super().database(schema)
        self.databases.append(db)
        return db

    def start(self) -> None:
        """``Mesh.start``, without the background tasks unless the app runs them."""
        if self.started:
            return
        self.started = True
        if not self._app.background:
            self._background = []
        super().start()

    def stub(self, stub_cls: Callable[[grpc.aio.Channel], S], service: str) -> S:
        return _ServiceStub(self._app, service)  # type: ignore[return-value]

    async def events(self, db: Database) -> Events:
        """``Mesh.events`` itself, on the app's bus; records what the service subscribes to."""
        events = await super().events(db)
        subscribe = events.on

        def on(event_cls: type[Message], handler: Callable[..., Awaitable[None]]) -> None:
            self.subscriptions.add(event_type(event_cls))
            subscribe(event_cls, handler)

        events.on = on  # type: ignore[method-assign]
        self.opened.append(events)
        return events


class App:
    """The application's services wired in one process; ``call`` as a consumer would."""

    def __init__(self, state_dir: Path, policy: MeshPolicy, background: bool = True) -> None:
        self.state_dir = state_dir
        self.policy = policy
        self.background = background
        # Calls made through the services' stubs, by "<service>/<Method>".
        self.stub_calls: Counter[str] = Counter()
        self.envelopes = Envelopes(policy.events)
        self.bus = MemoryBus()
        self.gate = _Gate()
        self.meshes: dict[str, InProcessMesh] = {}
        self._consul: Any = None

    def consul_client(self, address: str) -> Any:
        """One Consul client for every mesh of the app (never called; each costs ~30 ms
        to make, an HTTP session with its TLS context). Closing it again is a no-op."""
        if self._consul is None:
            self._consul = consul_api.client(address)
        return self._consul

    @property
    def published(self) -> list[Envelope]:
        """Every event published so far, in order."""
        return [self.envelopes.parse(m.data) for m in self.bus.log]

    def pause(self) -> None:
        """Hold every delivery back (publishing goes on): the other services are slow."""
        self.gate.open.clear()

    def resume(self) -> None:
        self.gate.open.set()

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until every outbox is empty and every event is handled."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 3:  # idle on three looks in a row: nothing left in flight
            await asyncio.sleep(0.01)
            depths = [await e.outbox.depth() for m in self.meshes.values() for e in m.opened]
            idle = self.bus.idle() and self.gate.in_flight == 0 and not any(depths)
            quiet = quiet + 1 if idle else 0
            if time.monotonic() > deadline:
                raise TimeoutError(f"the events did not settle in {timeout}s")

    def start(self, *services: str) -> None:
        """Start the consumers, relays (and background tasks) of ``services`` not started
        yet: they come up now, and catch up with what was published while they were down."""
        for name in services:
            self.meshes[name].start()

    def database(self, service: str) -> Database:
        """The (first) database ``service``'s setup opened."""
        return self.meshes[service].databases[0]

    def servicer(self, service: str) -> Any:
        """The servicer of ``service`` (its Consul name, e.g. "inventory")."""
        return self.meshes[service].services[0][1]

    async def call(self, method: str, request: Message) -> Answer:
        """``/shop.order.v1.OrderService/PlaceOrder`` or ``shop.order.v1.OrderService/...``."""
        service_name, method_name = method.strip("/").rsplit("/", 1)
        for mesh in self.meshes.values():
            for descriptor, servicer in mesh.services:
                if descriptor.full_name == service_name:
                    try:
                        response = await getattr(servicer, method_name)(request, None)
                    except ServiceError as err:
                        return Answer.of_error(err)
                    return Answer("OK", response)
        raise LookupError(f"no service {service_name} in the app")

    def descriptor(self, service: str) -> Any:
        for mesh in self.meshes.values():
            for descriptor, _ in mesh.services:
                if descriptor.full_name == service:
                    return descriptor
        raise LookupError(service)


@asynccontextmanager
async def running_app(
    state_dir: Path,
    setups: dict[str, Setup],
    mesh_file: Path = DEFAULT_MESH_FILE,
    *,
    start: Collection[str] | None = None,
    background: bool = True,
) -> AsyncIterator[App]:
    """Every service's ``setup`` (by its Consul name) on a fresh state dir, started (only
    those in ``start``, if given; ``app.start`` the others); closed afterwards.
    ``background=False`` leaves the services' background tasks unrun."""
    app = App(state_dir, MeshPolicy.load(mesh_file), background)
    try:
        for name, setup in setups.items():
            mesh = app.meshes[name] = InProcessMesh(name, app)
            await setup(mesh)
        app.start(*(app.meshes if start is None else start))
        yield app
    finally:
        for mesh in reversed(list(app.meshes.values())):
            await mesh.close()
