"""The discovery interface every registry's backend implements, and what it deals in."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import ClassVar

from meshkit.consul import Watch


@dataclass(frozen=True, order=True)
class Endpoint:
    address: str
    port: int
    instance_id: str = ""

    @property
    def target(self) -> str:
        """The address as a gRPC target component (IPv6 in brackets)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


Endpoints = tuple[Endpoint, ...]
# One answer of a registry: (an index that moves when the answer may have changed, the set).
Fetch = Callable[[int], Awaitable[tuple[int, Endpoints]]]


@dataclass(frozen=True)
class Registration:
    """What an instance tells its registry: where it serves gRPC, the plaintext loopback
    port of its health service (the registry's check, or the source of its UP/DOWN) and
    the metadata the mesh uses (version, metrics port, ...)."""

    name: str
    instance_id: str
    address: str
    port: int
    health_port: int
    version: str
    tags: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)


class Discovery(ABC):
    """Watches of the services this instance calls (one per name, in the background), and
    the registration of this instance where the backend registers.

    ``drop_within``: the backend's promise, in seconds, for how long a crashed instance
    may stay in a watcher's healthy set (a graceful stop deregisters and goes sooner).
    """

    kind: ClassVar[str]
    drop_within: float

    def __init__(self) -> None:
        self._watches: dict[str, Watch[Endpoints]] = {}
        # What went wrong with the registry last ("" while it answers): the watches then
        # serve the last known sets.
        self.last_error = ""

    @abstractmethod
    def _fetcher(self, service: str) -> Fetch:
        """How the watch of ``service`` gets its next answer: it blocks (or waits) until the
        set may have changed past the given index (0: answer at once); it raises when the
        registry is unreachable, and the watch keeps its last set and tries again."""

    @abstractmethod
    def registered(self, registration: Registration) -> AbstractAsyncContextManager[None]:
        """In the registry while the block runs, healthy as the instance's health service
        says; deregistered when it ends, however it ends."""

    def watch(
        self, service: str, on_change: Callable[[Endpoints], None] | None = None
    ) -> Watch[Endpoints]:
        """The healthy set of ``service``, kept up to date (``.value``; ``on_change`` is
        called with every new set)."""
        if service not in self._watches:
            fetch = self._fetcher(service)

            async def noted(index: int) -> tuple[int, Endpoints]:
                try:
                    answer = await fetch(index)
                except Exception as exc:
                    self.last_error = repr(exc)
                    raise
                self.last_error = ""
                return answer

            self._watches[service] = Watch(f"{self.kind}:{service}", noted, on_change).start()
        elif on_change is not None:  # a second party watching the same service
            self._watches[service].subscribe(on_change)
        return self._watches[service]

    async def find(self, service: str, timeout: float = 10.0) -> Endpoints:
        """The healthy set of ``service`` as last known (the first answer, if none yet)."""
        return await self.watch(service).ready(timeout)

    async def ready(self, timeout: float = 10.0) -> None:
        """Every watch has had its first answer."""
        for w in self._watches.values():
            await w.ready(timeout)

    async def stop(self) -> None:
        for w in self._watches.values():
            await w.stop()
        self._watches.clear()
