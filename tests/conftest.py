"""Shared fixtures: real components on free loopback ports, started by devstack's Stack.

One stack for the session (``session_stack``: Consul, NATS and the services, started as
fixtures ask for them), and factories of stacks of a test's or a module's own
(``own_stack``, ``module_stack``) for tests that need a clean sink or log, or that stop
or kill the infrastructure.
"""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from devstack.consul import ConsulAgent
from devstack.nats import NatsServer
from devstack.services import Launcher, ServiceProcess
from devstack.stack import DOMAIN_SERVICES, Stack, mesh_config, start_consul
from meshkit.mesh import Mesh, open_mesh

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

__all__ = [
    "BIN",
    "DOMAIN_SERVICES",
    "ROOT",
    "Launcher",
    "StackFactory",
    "mesh_config",
    "start_consul",
]


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mesh's state (the CA's public root, ACL tokens, databases, logs) for the
    session; the CA itself is the session stack's, in memory (``devstack.signer.dev_ca``)."""
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="session")
def session_stack(state_dir: Path) -> Iterator[Stack]:
    """The session's stack, its logs in the state directory; stopped at the end."""
    stack = Stack(state_dir, log_dir=state_dir)
    yield stack
    stack.close()


@pytest.fixture(scope="session")
def nats_server(session_stack: Stack) -> NatsServer:
    """A real NATS server with JetStream for the whole session."""
    return session_stack.start_nats()


@pytest.fixture(scope="session")
def consul(session_stack: Stack) -> ConsulAgent:
    """A real Consul dev agent (Connect on, the mesh CA as its root) for the whole session."""
    return session_stack.start_consul()


@pytest.fixture(scope="session")
def services(
    session_stack: Stack, consul: ConsulAgent, nats_server: NatsServer
) -> dict[str, ServiceProcess]:
    """One instance of every domain service, healthy in Consul."""
    return session_stack.start_services(DOMAIN_SERVICES)


@pytest.fixture(scope="session")
def launcher(session_stack: Stack, consul: ConsulAgent, nats_server: NatsServer) -> Launcher:
    """For tests that start extra instances (stopped at the end of the session)."""
    return session_stack.launcher


class StackFactory:
    """``factory(*services, args=(), nats=True)``: a stack of its own in a fresh state
    directory (its logs there too), Consul and NATS started, ``services`` passing; every
    stack made is closed with the factory."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory, label: str) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.label = re.sub(r"\W+", "-", label)[:40] or "stack"
        self.made: list[Stack] = []

    def __call__(
        self, *services: str, args: tuple[str, ...] = (), nats: bool = True, label: str = ""
    ) -> Stack:
        state = self.tmp_path_factory.mktemp(re.sub(r"\W+", "-", label) or self.label)
        stack = Stack(state, log_dir=state, nats=nats)
        self.made.append(stack)
        stack.start()
        if services:
            stack.start_services(services, *args)
        return stack

    def close(self) -> None:
        for stack in reversed(self.made):
            stack.close()
        self.made.clear()


@pytest.fixture
def own_stack(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[StackFactory]:
    """Stacks of the test's own, closed when it ends: for tests that stop or kill Consul,
    NATS or the services."""
    factory = StackFactory(tmp_path_factory, request.node.name)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_stack(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[StackFactory]:
    """Stacks of the module's own (for its module-scoped fixtures), closed after its tests."""
    factory = StackFactory(tmp_path_factory, request.module.__name__.rsplit(".", 1)[-1])
    yield factory
    factory.close()


@pytest.fixture
async def mesh_as(
    consul: ConsulAgent, state_dir: Path
) -> AsyncIterator[Callable[[str], Awaitable[Mesh]]]:
    """Open the mesh in this process as a client with the identity of the given service
    (its own Consul token, made by the stack, and a leaf from the signer)."""
    opened: list[Mesh] = []

    async def open_as(name: str) -> Mesh:
        mesh, _ = await open_mesh(mesh_config(name, consul, state_dir))
        opened.append(mesh)
        return mesh

    yield open_as
    for mesh in opened:
        await mesh.close()
