"""Every event broker behind the same ``EventBus``, each against its real server.

``broker`` (module-scoped, parametrized over ``KINDS``) is one running server of a kind
(its data in a tmp dir) and a factory of buses on it: ``await broker.bus("order")`` is
a bus as that service would open it (``connect_bus`` with the settings the server gives
the service, its own credential where the broker has them). ``memory`` is the in-process
bus (one log shared by every bus of the fixture); it has no server to restart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devstack.brokers import BrokerServer, broker_server
from devstack.nats import ADMIN, NatsServer
from meshkit.config import DEFAULT_MESH_FILE, MeshConfig, MeshPolicy
from meshkit.events.brokers import connect_bus
from meshkit.events.bus import EventBus
from meshkit.events.memory import MemoryBus

# The broker kinds every test of this tier runs on.
KINDS = ["memory", "nats", "kafka", "rabbitmq", "sqs"]

# Where one key's messages (one order's) reach a consumer in publish order; the others
# are held to the saga's tolerance of reordering instead (test_conformance).
ORDERED = {"memory", "nats", "kafka", "sqs"}

POLICY = MeshPolicy.load(DEFAULT_MESH_FILE)


@dataclass
class Broker:
    """One running broker of ``kind`` and the buses opened on it (closed with it)."""

    kind: str
    server: BrokerServer | None  # None: the in-memory bus
    memory: MemoryBus | None = None
    opened: list[EventBus] = field(default_factory=list)

    @property
    def ordered(self) -> bool:
        return self.kind in ORDERED

    def config(self, name: str) -> MeshConfig:
        """The mesh config of a service ``name`` on this broker (its ``env``'s settings)."""
        assert self.server is not None
        # A broker with a user per service (RabbitMQ): the suite publishes every type and
        # names its own groups, as the broker's administrator (``admin_env``).
        admin_env = getattr(self.server, "admin_env", None)
        env = admin_env() if admin_env is not None else self.server.env(name)
        config = MeshConfig(
            name=name,
            broker=env.get("MESH_BROKER", self.kind),
            broker_url=env.get("MESH_BROKER_URL", ""),
            policy=POLICY,
        )
        if isinstance(self.server, NatsServer):
            # NATS's services may publish only the events they own: the suite publishes
            # every type, as the broker's admin.
            config = dataclasses.replace(
                config, nats_url=self.server.url, nats_creds=self.server.creds(ADMIN)
            )
        return config

    async def bus(self, name: str = "conformance") -> EventBus:
        """A bus as service ``name`` opens it."""
        if self.memory is not None:
            return self.memory
        bus = await connect_bus(self.config(name))
        self.opened.append(bus)
        return bus

    def restart(self) -> None:
        """The server stopped and started again on the same ports and data."""
        if self.server is None:
            pytest.skip("the in-memory bus lives in this process: nothing to restart")
        self.server.stop()
        self.server.start()

    async def close(self) -> None:
        for bus in self.opened:
            await bus.close()
        self.opened.clear()


@pytest.fixture(scope="module", params=KINDS)
async def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Broker]:
    kind: str = request.param
    if kind == "memory":
        yield Broker(kind, None, memory=MemoryBus())
        return
    store: Path = tmp_path_factory.mktemp(f"broker-{kind}")
    server = broker_server(kind, store_dir=store / "data", log_path=store / f"{kind}.log")
    server.start()
    b = Broker(kind, server)
    try:
        yield b
    finally:
        await b.close()
        server.stop()
