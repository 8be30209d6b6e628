"""Discovery through Consul's health API: the passing instances of a service, watched.

One blocking-query watch per service keeps the healthy set in memory; a new or failed
instance shows up within about a second (Consul's check interval, 1 s), and when Consul is
unreachable the last known set keeps serving, and so it does while a restarted agent's
catalog fills again. Each instance registers with its local agent, with a gRPC check on its
plaintext health port (``meshkit.lifecycle.registered``).
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

import consul.aio

from meshkit import consul as consul_api
from meshkit.consul import WAIT
from meshkit.discovery.base import Discovery, Endpoint, Endpoints, Fetch, Registration

log = logging.getLogger("mesh.discovery.consul")


def endpoints_of(entries: list[dict[str, Any]]) -> Endpoints:
    """Instances from a /v1/health/service answer, in a stable order."""
    out = []
    for e in entries or []:
        svc = e["Service"]
        address = svc.get("Address") or e["Node"]["Address"]
        out.append(Endpoint(address, int(svc["Port"]), svc["ID"]))
    return tuple(sorted(out))


# A restarted dev agent comes back with an empty catalog; the instances register again
# within lifecycle's check (every 2 s) and pass their check a second later. Until then an
# empty answer is not believed: the last set stays.
RESTART_GRACE = 10.0


class ConsulDiscovery(Discovery):
    """The passing set from Consul's health API (blocking queries); registration with the
    local agent, kept while the instance serves."""

    kind = "consul"
    # A crashed instance: its check (every 1 s, 1 s timeout) turns critical, the blocking
    # query answers at once. 10 s leaves room for a loaded machine.
    drop_within = 10.0

    def __init__(self, consul_client: consul.aio.Consul) -> None:
        super().__init__()
        self._consul = consul_client

    def _fetcher(self, service: str) -> Fetch:
        c = self._consul
        last: list[Endpoints] = [()]
        restarted_at = [-RESTART_GRACE]

        async def fetch(index: int) -> tuple[int, Endpoints]:
            raw, entries = await c.health.service(
                service, passing=True, index=index or None, wait=WAIT if index else None
            )
            i, found = int(raw or 0), endpoints_of(entries)
            if index and i < index:  # the index went back: a restarted agent, empty at first
                restarted_at[0] = time.monotonic()
            if not found and last[0] and time.monotonic() - restarted_at[0] < RESTART_GRACE:
                log.info("consul: no %s yet in a restarted catalog; keeping the last set", service)
                return i, last[0]
            last[0] = found
            return i, found

        return fetch

    def registered(self, registration: Registration) -> AbstractAsyncContextManager[None]:
        from meshkit.lifecycle import registered

        r = registration
        return registered(
            self._consul,
            name=r.name,
            instance_id=r.instance_id,
            address=r.address,
            port=r.port,
            check=consul_api.grpc_check(r.instance_id, r.address, r.health_port),
            version=r.version,
            tags=list(r.tags),
            meta=dict(r.meta),
        )
