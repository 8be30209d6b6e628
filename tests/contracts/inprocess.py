"""The shop in one process, to replay contracts against the real providers.

Each service is wired by its own ``setup(mesh)`` (``services/<name>/app.py``) on the real
``services.mesh.Mesh`` minus the network (``InProcessMesh``): its database is a real SQLite
file in a temp directory, its events go through the real outbox and consumer
(``Mesh.events``) over the in-memory broker of ``services.mesh.memory_bus``, behind a gate
that can hold deliveries back (as slow consumers would), and its stubs call the other
services' servicers directly. So contracts run against the providers' real code and
stores in milliseconds, without Consul, NATS or TLS.

What is left out is the transport: mTLS, intentions and deadlines are the integration
tests' business. A domain error comes back the way the wire carries it: the
``google.rpc.Status`` the mesh's server interceptor sends.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from opentelemetry.sdk.trace import TracerProvider

from services.mesh import app as mesh_app
from services.mesh import consul as consul_api
from services.mesh.app import Mesh
from services.mesh.config import MeshConfig
from services.mesh.database import Database
from services.mesh.envelopes import EventEnvelope, event_type
from services.mesh.errors import ServiceError
from services.mesh.eventbus import Delivery, Handler
from services.mesh.events import Events
from services.mesh.memory_bus import MemoryBus

SERVICES = ("inventory", "payment", "shipping", "order")
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

    async def publish(self, subject: str, data: bytes, msg_id: str) -> None:
        await self._bus.publish(subject, data, msg_id)

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
    """A mesh stub that calls a servicer of the shop directly; errors arrive as
    ``grpc.aio.AioRpcError``, as from a real channel."""

    def __init__(self, shop: Shop, service: str) -> None:
        self._shop = shop
        self._service = service

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        if not method[:1].isupper():
            raise AttributeError(method)

        async def call(request: Message, **_: Any) -> Any:
            handler = getattr(self._shop.servicer(self._service), method)
            try:
                return await handler(request, None)
            except ServiceError as err:
                raise grpc.aio.AioRpcError(
                    err.code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=err.message
                ) from err

        return call


class _BusFactory:
    """Stands for ``NatsBus`` in ``Mesh.events``: ``connect`` gives the shop's gated bus."""

    def __init__(self, bus: _GatedBus) -> None:
        self._bus = bus

    async def connect(self, url: str, name: str) -> _GatedBus:
        return self._bus


class InProcessMesh(Mesh):
    """The real ``services.mesh.Mesh`` of one service, minus the network: no Consul (a
    client that is never called), no certificates, no NATS (the shop's bus), and stubs that
    call the other services' servicers in process. Its database is ``<state>/<name>.sqlite3``.
    """

    def __init__(self, name: str, shop: Shop) -> None:
        config = MeshConfig(
            name=name,
            consul_http_addr="127.0.0.1:1",  # never called
            state_dir=shop.state_dir,
            db_path=shop.state_dir / f"{name}.sqlite3",
        )
        super().__init__(config, consul_api.client(config.consul_http_addr), None, TracerProvider())
        self._shop = shop
        self.subscriptions: set[str] = set()
        self.opened: list[Events] = []

    def stub(self, stub_cls: Callable[[grpc.aio.Channel], S], service: str) -> S:
        return _ServiceStub(self._shop, service)  # type: ignore[return-value]

    async def events(self, db: Database) -> Events:
        """``Mesh.events`` itself, on the shop's bus; records what the service subscribes to."""
        bus = _BusFactory(_GatedBus(self._shop.bus, self._shop.gate))
        with mock.patch.object(mesh_app, "NatsBus", bus):
            events = await super().events(db)
        subscribe = events.on

        def on(event_cls: type[Message], handler: Callable[..., Awaitable[None]]) -> None:
            self.subscriptions.add(event_type(event_cls))
            subscribe(event_cls, handler)

        events.on = on  # type: ignore[method-assign]
        self.opened.append(events)
        return events


class Shop:
    """The four services wired in one process; ``call`` as a consumer would."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.bus = MemoryBus()
        self.gate = _Gate()
        self.meshes: dict[str, InProcessMesh] = {}

    @property
    def published(self) -> list[EventEnvelope]:
        """Every event published so far, in order."""
        return [EventEnvelope.FromString(m.data) for m in self.bus.log]

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
                raise TimeoutError(f"the shop's events did not settle in {timeout}s")

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
        raise LookupError(f"no service {service_name} in the shop")

    def descriptor(self, service: str) -> Any:
        for mesh in self.meshes.values():
            for descriptor, _ in mesh.services:
                if descriptor.full_name == service:
                    return descriptor
        raise LookupError(service)


@asynccontextmanager
async def running_shop(state_dir: Path, services: Sequence[str] = SERVICES) -> AsyncIterator[Shop]:
    """Every service's ``setup`` on a fresh state dir, started; closed afterwards."""
    shop = Shop(state_dir)
    try:
        for name in services:
            mesh = shop.meshes[name] = InProcessMesh(name, shop)
            await importlib.import_module(f"services.{name}.app").setup(mesh)
        for mesh in shop.meshes.values():
            mesh.start()
        yield shop
    finally:
        for mesh in reversed(list(shop.meshes.values())):
            await mesh.close()
