"""Discovery through a Eureka server (Spring Cloud Netflix), over its REST API.

Registration: ``POST /eureka/apps/<APP>`` with the gRPC port and the mesh's metadata
(version, health and metrics ports), a heartbeat (``PUT .../<id>``) every
``renew_interval`` seconds, status UP or DOWN from the instance's own gRPC health service
(asked on its plaintext loopback port before each heartbeat; a change re-registers with
the new status), ``DELETE`` at shutdown. A heartbeat answered 404 (the server lost or
evicted the lease) registers again.

Fetching: one local copy of the whole registry per process, a full ``GET /eureka/apps``
first, then ``GET /eureka/apps/delta`` every ``fetch_interval`` seconds, applied to the copy
and checked against the server's ``apps__hashcode`` (a mismatch fetches in full again),
as Netflix's own client does. The copy is what watchers see: while Eureka is down it stays
as last fetched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meshkit.discovery.base import Discovery, Endpoint, Endpoints, Fetch, Registration

log = logging.getLogger("mesh.discovery.eureka")

DEFAULT_URL = "http://127.0.0.1:8761/eureka"
JSON = {"Accept": "application/json"}


@dataclass(frozen=True)
class Instance:
    """One instance as the registry lists it."""

    app: str
    instance_id: str
    address: str
    port: int
    status: str


def _as_list(value: Any) -> list[Any]:
    """Eureka's JSON has a list, or a lone object where there is one item."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def instances_of(body: dict[str, Any]) -> list[tuple[str, Instance]]:
    """(actionType, instance) of each instance in an ``applications`` answer."""
    out = []
    for app in _as_list(body.get("applications", {}).get("application")):
        for i in _as_list(app.get("instance")):
            port = i.get("port", {})
            out.append(
                (
                    str(i.get("actionType", "ADDED")),
                    Instance(
                        app=str(app["name"]).upper(),
                        instance_id=str(i["instanceId"]),
                        address=str(i.get("ipAddr") or i.get("hostName")),
                        port=int(port.get("$", 0) if isinstance(port, dict) else port),
                        status=str(i.get("status", "UNKNOWN")),
                    ),
                )
            )
    return out


def reconcile_hash(instances: dict[str, Instance]) -> str:
    """Eureka's ``apps__hashcode``: ``<STATUS>_<count>_`` for each status, sorted."""
    counts = Counter(i.status for i in instances.values())
    return "".join(f"{status}_{n}_" for status, n in sorted(counts.items()))


class EurekaDiscovery(Discovery):
    """The registry's UP instances from a local copy kept by delta fetches; registration
    with heartbeats and UP/DOWN from the instance's health."""

    kind = "eureka"

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        fetch_interval: float = 1.0,
        renew_interval: float = 1.0,
        lease_duration: int = 5,
    ) -> None:
        super().__init__()
        self.url = url.rstrip("/")
        self.fetch_interval = fetch_interval
        self.renew_interval = renew_interval
        self.lease_duration = lease_duration
        # A crash: the lease expires (Eureka counts its duration twice: 2 x lease), the
        # server's eviction runs (every 1 s, infra/eureka), watchers fetch the delta; plus
        # room for a loaded machine.
        self.drop_within = 2 * lease_duration + 1 + fetch_interval + 3
        self._session: aiohttp.ClientSession | None = None
        self._instances: dict[str, Instance] = {}
        self._generation = 0  # moves with every change of the local copy
        self._changed = asyncio.Event()
        self._loaded = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._own: set[str] = set()  # the instances this process registered
        self._forgotten = False

    @classmethod
    def from_url(cls, url: str) -> EurekaDiscovery:
        """From ``--discovery-url`` (``http://host:port/eureka``; empty: the default)."""
        url = url or DEFAULT_URL
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"discovery_url: {url!r} is not a Eureka server URL (http://host:port/eureka)"
            )
        return cls(url)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        return self._session

    # --- fetching -----------------------------------------------------------------------

    def _fetcher(self, service: str) -> Fetch:
        app = service.upper()

        async def fetch(index: int) -> tuple[int, Endpoints]:
            if self._poller is None:
                self._poller = asyncio.create_task(self._poll(), name="eureka-fetch")
            if not self._loaded.is_set():
                try:
                    await asyncio.wait_for(self._loaded.wait(), 5.0)
                except TimeoutError:
                    raise ConnectionError(
                        f"no registry from Eureka at {self.url} yet ({self.last_error})"
                    ) from None
            elif index >= self._generation:
                if self.last_error:  # Eureka is down: the watch keeps its set, retries
                    raise ConnectionError(f"Eureka at {self.url}: {self.last_error}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 30.0)
                if self.last_error:  # it went down meanwhile
                    raise ConnectionError(f"Eureka at {self.url}: {self.last_error}")
            return self._generation, self._endpoints(app)

        return fetch

    def _endpoints(self, app: str) -> Endpoints:
        return tuple(
            sorted(
                Endpoint(i.address, i.port, i.instance_id)
                for i in self._instances.values()
                if i.app == app and i.status == "UP"
            )
        )

    async def _get(self, path: str) -> dict[str, Any]:
        async with self.session.get(self.url + path, headers=JSON) as resp:
            resp.raise_for_status()
            body: dict[str, Any] = await resp.json(content_type=None)
            return body

    async def _poll(self) -> None:
        """The local copy: in full first (and after a mismatch), by deltas after."""
        full = True
        while True:
            try:
                if full:
                    body = await self._get("/apps")
                    full = not self._accept({i.instance_id: i for _, i in instances_of(body)})
                else:
                    instances = self._applied(await self._get("/apps/delta"))
                    if instances is None:
                        log.info("eureka: the delta does not add up; fetching in full")
                        full = True
                        continue
                    full = not self._accept(instances)
                if self.last_error:
                    log.warning("eureka: %s answers again", self.url)
                self.last_error = ""
                self._loaded.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Eureka down or answering errors: keep the copy
                if not self.last_error:
                    log.warning(
                        "eureka: cannot fetch from %s (%r); keeping the last known", self.url, exc
                    )
                self.last_error = repr(exc)
            await asyncio.sleep(self.fetch_interval)

    def _accept(self, instances: dict[str, Instance]) -> bool:
        """Take ``instances`` as the copy, unless they lack this process's own registered
        instances: a registry that has forgotten them (a restarted server: its registry is
        in memory) has forgotten the others too, until their next heartbeats register them
        again; meanwhile the last copy stays. False: not taken."""
        missing = self._own - instances.keys()
        if missing:
            if not self._forgotten:
                log.warning(
                    "eureka: %s does not list %s (restarted?); keeping the last copy until it does",
                    self.url,
                    ", ".join(sorted(missing)),
                )
            self._forgotten = True
            return False
        self._forgotten = False
        if instances != self._instances:
            self._instances = instances
            self._bump()
        return True

    def _applied(self, delta: dict[str, Any]) -> dict[str, Instance] | None:
        """The copy with a delta applied; None when its hash is not the server's."""
        instances = dict(self._instances)
        for action, i in instances_of(delta):
            if action == "DELETED":
                instances.pop(i.instance_id, None)
            else:  # ADDED, MODIFIED
                instances[i.instance_id] = i
        expected = delta.get("applications", {}).get("apps__hashcode", "")
        return instances if expected == reconcile_hash(instances) else None

    def _bump(self) -> None:
        self._generation += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # --- registration -------------------------------------------------------------------

    def _body(self, r: Registration, status: str, dirty: int) -> dict[str, Any]:
        return {
            "instance": {
                "instanceId": r.instance_id,
                "hostName": r.address,
                "app": r.name.upper(),
                "ipAddr": r.address,
                "vipAddress": r.name,
                "secureVipAddress": r.name,
                "status": status,
                "port": {"$": r.port, "@enabled": "true"},
                "securePort": {"$": 443, "@enabled": "false"},
                "dataCenterInfo": {
                    "@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo",
                    "name": "MyOwn",
                },
                "leaseInfo": {
                    "renewalIntervalInSecs": max(1, round(self.renew_interval)),
                    "durationInSecs": self.lease_duration,
                },
                "metadata": {
                    "version": r.version,
                    "health_port": str(r.health_port),
                    "tags": ",".join(r.tags),
                    **r.meta,
                },
                "lastDirtyTimestamp": str(dirty),
            }
        }

    @asynccontextmanager
    async def registered(self, registration: Registration) -> AsyncIterator[None]:
        r = registration
        path = f"{self.url}/apps/{r.name.upper()}"
        instance = f"{path}/{r.instance_id}"
        probe = grpc.aio.insecure_channel(f"127.0.0.1:{r.health_port}")
        health = health_pb2_grpc.HealthStub(probe)

        async def status_now() -> str:
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
            except grpc.aio.AioRpcError:
                return "DOWN"
            return "UP" if answer.status == health_pb2.HealthCheckResponse.SERVING else "DOWN"

        async def register(status: str) -> None:
            body = self._body(r, status, int(time.time() * 1000))
            async with self.session.post(path, json=body) as resp:
                if resp.status >= 300:
                    raise RuntimeError(
                        f"Eureka at {self.url} refused to register {r.instance_id}:"
                        f" {resp.status} {await resp.text()}"
                    )

        async def keep_registered(status: str) -> None:
            while True:
                await asyncio.sleep(self.renew_interval)
                try:
                    now = await status_now()
                    if now != status:
                        log.info("%s: %s in Eureka (its health says so)", r.instance_id, now)
                        await register(now)
                        status = now
                        continue
                    async with self.session.put(instance) as resp:
                        forgotten = resp.status == 404
                    if forgotten:
                        log.warning(
                            "%s: Eureka has no lease for it; registering again", r.instance_id
                        )
                        await register(status)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Eureka down: heartbeats resume when it is back
                    log.debug("%s: heartbeat failed: %r", r.instance_id, exc)

        status = await status_now()
        try:
            await register(status)
        except BaseException as exc:
            await probe.close()
            if isinstance(exc, aiohttp.ClientError):
                raise RuntimeError(
                    f"cannot register {r.instance_id} in Eureka at {self.url}: {exc!r}"
                ) from exc
            raise
        keeper = asyncio.create_task(keep_registered(status), name=f"eureka-renew:{r.instance_id}")
        self._own.add(r.instance_id)
        try:
            yield
        finally:
            self._own.discard(r.instance_id)
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            try:
                async with self.session.delete(instance) as resp:
                    if resp.status >= 300 and resp.status != 404:
                        log.warning(
                            "Eureka answered %s to the cancel of %s", resp.status, r.instance_id
                        )
            except Exception as exc:
                log.warning(
                    "could not cancel %s in Eureka: %r (its lease expires)", r.instance_id, exc
                )
            await probe.close()

    async def stop(self) -> None:
        await super().stop()
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        if self._session is not None:
            await self._session.close()
            self._session = None
