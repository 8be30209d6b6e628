"""Shared fixtures: real components on free loopback ports, started once per session."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from devstack.consul import ConsulAgent
from devstack.intentions import apply_intentions
from devstack.nats import NatsServer
from devstack.services import ServiceProcess, start_service
from meshkit.config import DEFAULT_MESH_FILE, MeshConfig, MeshPolicy
from meshkit.mesh import Mesh, open_mesh
from meshkit.security.certificates import consul_ca_config, load_or_create_ca

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

DOMAIN_SERVICES = ("inventory", "payment", "shipping", "order")


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mesh's state (CA, databases, logs) for the session."""
    state = tmp_path_factory.mktemp("state")
    load_or_create_ca(state / "ca")
    return state


def start_consul(state_dir: Path, log: Path) -> ConsulAgent:
    """A Consul dev agent whose Connect CA root is the mesh CA, intentions applied."""
    agent = ConsulAgent(
        extra_config=consul_ca_config(load_or_create_ca(state_dir / "ca")), log_path=log
    ).start()
    apply_intentions(agent)
    return agent


@pytest.fixture(scope="session")
def nats_server(state_dir: Path) -> Iterator[NatsServer]:
    """A real NATS server with JetStream for the whole session."""
    server = NatsServer(store_dir=state_dir / "nats", log_path=state_dir / "nats.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def consul(state_dir: Path) -> Iterator[ConsulAgent]:
    """A real Consul dev agent (Connect on, the mesh CA as its root) for the whole session."""
    agent = start_consul(state_dir, state_dir / "consul.log")
    yield agent
    agent.stop()


def wait_passing(consul: ConsulAgent, service: str, count: int = 1, timeout: float = 15.0) -> None:
    consul.wait_passing(service, count, timeout)


class Launcher:
    """Starts service processes against one Consul and one NATS; stops them all at teardown."""

    def __init__(self, consul: ConsulAgent, nats: NatsServer, state_dir: Path) -> None:
        self.consul = consul
        self.nats = nats
        self.state_dir = state_dir
        self.started: list[ServiceProcess] = []
        self.log = open(state_dir / "services.log", "a")  # noqa: SIM115

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> ServiceProcess:
        proc = start_service(
            name,
            consul_http_addr=self.consul.http_addr,
            nats_url=self.nats.url,
            state_dir=self.state_dir,
            args=list(args),
            env=env,
            log=self.log,
        )
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.stop()
        self.log.close()


@pytest.fixture(scope="session")
def services(
    consul: ConsulAgent, nats_server: NatsServer, state_dir: Path
) -> Iterator[dict[str, ServiceProcess]]:
    """One instance of every domain service, healthy in Consul."""
    launcher = Launcher(consul, nats_server, state_dir)
    try:
        procs = {name: launcher.start(name) for name in DOMAIN_SERVICES}
        for name in DOMAIN_SERVICES:
            wait_passing(consul, name)
        yield procs
    finally:
        launcher.stop_all()


@pytest.fixture(scope="session")
def launcher(consul: ConsulAgent, nats_server: NatsServer, state_dir: Path) -> Iterator[Launcher]:
    """For tests that start extra instances (stopped at the end of the session)."""
    launch = Launcher(consul, nats_server, state_dir)
    yield launch
    launch.stop_all()


def mesh_config(
    name: str, consul: ConsulAgent, state_dir: Path, nats: NatsServer | None = None
) -> MeshConfig:
    return MeshConfig(
        name=name,
        consul_http_addr=consul.http_addr,
        nats_url=nats.url if nats else "nats://127.0.0.1:4222",
        state_dir=state_dir,
        policy=MeshPolicy.load(DEFAULT_MESH_FILE),
        trace_sample=1.0,  # test clients start every trace, as make run's processes do
    )


@pytest.fixture
async def mesh_as(
    consul: ConsulAgent, state_dir: Path
) -> AsyncIterator[Callable[[str], Awaitable[Mesh]]]:
    """Open the mesh in this process as a client with the identity of the given service."""
    opened: list[Mesh] = []

    async def open_as(name: str) -> Mesh:
        mesh, _ = await open_mesh(mesh_config(name, consul, state_dir))
        opened.append(mesh)
        return mesh

    yield open_as
    for mesh in opened:
        await mesh.close()
