"""The event brokers a stack can run (``Stack(broker=...)``, ``make run BROKER=...``): each
kind's server class, imported on first use.

A server class is a ``devstack.process.ChildProcess`` constructed with keywords as
``Server(store_dir=..., log_path=..., fixed_ports=...)`` (its data in ``store_dir``,
which survives ``stop()``/``start()``, so a restart keeps the messages; ``fixed_ports``:
``make run``'s well-known ports, else free ones) with ``start() -> Self``, ``stop()``,
``running``, ``url`` (where clients connect), and ``env(service)``: the environment a
service instance needs to use it (``MESH_BROKER``, ``MESH_BROKER_URL``, its own
credential where the broker has them). docs/brokers.md says what each kind promises.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

from devstack.process import run_in_thread
from devstack.tools import ROOT
from meshkit.config import DEFAULT_MESH_FILE, EventsSettings, MeshPolicy

# kind -> "module:class" of its server (NATS's lives in devstack/nats.py; its adapter to
# this interface in devstack/brokers/nats.py).
SERVERS: dict[str, str] = {
    "nats": "devstack.brokers.nats:NatsBroker",
    "kafka": "devstack.brokers.kafka:KafkaServer",
    "rabbitmq": "devstack.brokers.rabbitmq:RabbitMQServer",
    "sqs": "devstack.brokers.sqs:SQSServer",
}

# What make run's summary calls each.
LABELS: dict[str, str] = {
    "nats": "NATS JetStream",
    "kafka": "Apache Kafka, KRaft",
    "rabbitmq": "RabbitMQ 3.10, a user per service",
    "sqs": "SQS on ElasticMQ",
}


@dataclass(kw_only=True)
class MeshIdentities:
    """A broker server's users, from its ``mesh_file``: the events' owners, and the
    ``identities`` besides them (a service that only consumes: it gets a service's
    permissions, with nothing to publish). Mixed into the servers' dataclasses."""

    mesh_file: Path = ROOT / DEFAULT_MESH_FILE
    identities: tuple[str, ...] = field(default=())

    @property
    def events(self) -> EventsSettings:
        return MeshPolicy.load(self.mesh_file).events

    def service_identities(self) -> list[str]:
        return sorted(set(self.events.owners.values()) | set(self.identities))

    def provision_queues(self, connect: Callable[[], Awaitable[Any]], thread: str) -> None:
        """Each service identity's queue, if missing, bound to every event type it does not
        own, through the bus ``connect()`` opens (closed after), on a thread ``thread`` of
        its own; the service narrows the bindings to what it handles when it consumes."""
        events = self.events

        async def provision() -> None:
            bus = await connect()
            try:
                for service in self.service_identities():
                    subjects = [t for t in events.owners if events.owners[t] != service]
                    await bus.provision(service, subjects)
            finally:
                await bus.close()

        run_in_thread(provision(), thread)


class BrokerServer(Protocol):
    """What a stack needs of a broker's server (the module's doc)."""

    @property
    def running(self) -> bool: ...

    @property
    def url(self) -> str: ...

    def start(self, timeout: float | None = None) -> Self: ...

    def launch(self) -> Self: ...

    def wait_ready(self, timeout: float | None = None) -> Self: ...

    def stop(self, timeout: float | None = None) -> int | None: ...

    def env(self, service: str) -> dict[str, str]: ...


def server_class(kind: str) -> type[BrokerServer]:
    """The server class of broker ``kind``; ValueError naming ``--broker`` if unknown."""
    try:
        module, _, name = SERVERS[kind].partition(":")
    except KeyError:
        raise ValueError(
            f"--broker {kind!r}: not a known event broker (one of {', '.join(SERVERS)})"
        ) from None
    cls: type[BrokerServer] = getattr(importlib.import_module(module), name)
    return cls


def broker_server(
    kind: str, store_dir: Path, log_path: Path | None = None, fixed_ports: bool = False
) -> BrokerServer:
    """A server of broker ``kind`` (not started), its data in ``store_dir``."""
    return server_class(kind)(store_dir=store_dir, log_path=log_path, fixed_ports=fixed_ports)  # type: ignore[call-arg]
