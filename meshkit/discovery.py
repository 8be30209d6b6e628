"""Discovery through Consul's health API: the passing instances of a service, watched.

One blocking-query watch per service keeps the healthy set in memory, so the request
path never calls Consul; a new or failed instance shows up within about a second (Consul's
check interval), and when Consul is unreachable the last known set keeps serving.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import consul.aio

from meshkit.consul import WAIT, Watch


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


def endpoints_of(entries: list[dict[str, Any]]) -> Endpoints:
    """Instances from a /v1/health/service answer, in a stable order."""
    out = []
    for e in entries or []:
        svc = e["Service"]
        address = svc.get("Address") or e["Node"]["Address"]
        out.append(Endpoint(address, int(svc["Port"]), svc["ID"]))
    return tuple(sorted(out))


class Discovery:
    """Watches of the services this instance calls, one per service name."""

    def __init__(self, consul_client: consul.aio.Consul) -> None:
        self._consul = consul_client
        self._watches: dict[str, Watch[Endpoints]] = {}

    def watch(
        self, service: str, on_change: Callable[[Endpoints], None] | None = None
    ) -> Watch[Endpoints]:
        if service not in self._watches:
            c = self._consul

            async def fetch(index: int) -> tuple[int, Endpoints]:
                i, entries = await c.health.service(
                    service, passing=True, index=index or None, wait=WAIT if index else None
                )
                return i, endpoints_of(entries)

            self._watches[service] = Watch(f"health:{service}", fetch, on_change).start()
        elif on_change is not None:  # a second party watching the same service
            self._watches[service].subscribe(on_change)
        return self._watches[service]

    async def ready(self, timeout: float = 10.0) -> None:
        for w in self._watches.values():
            await w.ready(timeout)

    async def stop(self) -> None:
        for w in self._watches.values():
            await w.stop()
