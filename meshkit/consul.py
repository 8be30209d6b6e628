"""Consul access for the runtime: one async client, registration, and blocking-query watches.

All of it goes through py-consul's asyncio client. For the Connect endpoints py-consul
wraps badly or not at all (CA roots with blocking queries, intentions match), the same
client's raw ``http.get`` is used, so there is one HTTP client and one error model. Every
call carries the workload's ACL token (Consul runs with ACLs on, default deny).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import consul
import consul.aio
from consul.callback import CB

log = logging.getLogger("mesh.consul")

T = TypeVar("T")

WAIT = "30s"  # how long a blocking query may hang in Consul before it answers unchanged


def client(http_addr: str, token: str = "") -> consul.aio.Consul:
    """A py-consul asyncio client for ``host:port`` that sends ``token`` (this workload's
    ACL token) with every call, the raw ones of :func:`get_json` included."""
    host, _, port = http_addr.rpartition(":")
    # py-consul speaks HTTPS only with CONSUL_HTTP_SSL=true; over plain HTTP, verify left on
    # would still build a TLS context with the system's CA bundle (~0.8 MiB of every service)
    # that the client never uses.
    https = os.environ.get("CONSUL_HTTP_SSL", "").lower() == "true"
    with warnings.catch_warnings():  # py-consul hands verify=False to aiohttp as verify_ssl
        warnings.filterwarnings("ignore", "verify_ssl is deprecated", DeprecationWarning)
        c = consul.aio.Consul(
            host=host or "127.0.0.1",
            port=int(port),
            token=token or None,
            verify=None if https else False,
        )
    # py-consul prefers $CONSUL_HTTP_TOKEN to the token it is given: the given one wins here
    # (several identities may share a process, e.g. the tests').
    c.token = token or None
    return c


async def get_json(
    c: consul.aio.Consul, path: str, params: list[tuple[str, str]] | None = None
) -> tuple[int, Any]:
    """GET a Consul API path; returns (X-Consul-Index, body)."""
    return await c.http.get(
        CB.json(index=True, allow_404=False),
        path,
        params=params or [],
        headers=c.prepare_headers(),  # the raw call carries the client's token too
    )


async def blocking_get(
    c: consul.aio.Consul, path: str, index: int, params: list[tuple[str, str]] | None = None
) -> tuple[int, Any]:
    """A blocking query: returns when the data's index moves past ``index`` (or after WAIT)."""
    q = list(params or [])
    if index:
        q += [("index", str(index)), ("wait", WAIT)]
    return await get_json(c, path, q)


class Watch(Generic[T]):
    """Keeps the latest answer of a blocking query and calls ``on_change`` when it changes.

    Errors (Consul restarting, a network blip) keep the last known value and retry with
    jittered backoff, so a brief outage of Consul does not disturb the data path.
    """

    def __init__(
        self,
        name: str,
        fetch: Callable[[int], Awaitable[tuple[int, T]]],
        on_change: Callable[[T], None] | None = None,
    ) -> None:
        self.name = name
        self._fetch = fetch
        self._listeners: list[Callable[[T], None]] = [on_change] if on_change else []
        self.value: T | None = None
        self.index = 0
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, on_change: Callable[[T], None]) -> None:
        """Call ``on_change`` too on every change, and now with the current value if any."""
        self._listeners.append(on_change)
        if self._ready.is_set() and self.value is not None:
            on_change(self.value)

    def start(self) -> Watch[T]:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"watch:{self.name}")
        return self

    async def ready(self, timeout: float = 10.0) -> T:
        """The first answer; raises TimeoutError if Consul gave none in time."""
        await asyncio.wait_for(self._ready.wait(), timeout)
        assert self.value is not None
        return self.value

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                raw_index, value = await self._fetch(self.index)
                index = int(raw_index or 0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Consul down or answering errors: keep the last value
                log.warning("watch %s: %s; retrying in %.1fs", self.name, exc, backoff)
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            # Per Consul's docs: an index that goes backwards (or is 0) means start over.
            self.index = index if index and index >= self.index else 0
            changed = not self._ready.is_set() or value != self.value
            self.value = value
            self._ready.set()
            if changed:
                for listener in self._listeners:
                    try:
                        listener(value)
                    except Exception:
                        log.exception("watch %s: change handler failed", self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


def grpc_check(instance_id: str, address: str, health_port: int) -> dict[str, Any]:
    """A gRPC health check against the instance's plaintext health port.

    Consul's checker presents no client certificate, so it cannot pass an mTLS handshake;
    like Connect's "expose paths", the health service also listens on a loopback-only
    port without TLS that serves nothing else.
    """
    return {
        "Name": f"gRPC health of {instance_id}",
        "GRPC": f"{address}:{health_port}",
        "GRPCUseTLS": False,
        **_CHECK_TIMING,
    }


def http_check(instance_id: str, url: str) -> dict[str, Any]:
    """An HTTP health check (a 2xx answer passes), for the HTTP edge."""
    return {"Name": f"HTTP health of {instance_id}", "HTTP": url, "Method": "GET", **_CHECK_TIMING}


_CHECK_TIMING = {"Interval": "1s", "Timeout": "1s", "DeregisterCriticalServiceAfter": "1m"}


async def register(
    c: consul.aio.Consul,
    *,
    name: str,
    instance_id: str,
    address: str,
    port: int,
    check: dict[str, Any],
    version: str,
    tags: list[str],
    meta: dict[str, str],
) -> None:
    """Register an instance with its health check (``grpc_check`` or ``http_check``)."""
    await c.agent.service.register(
        name,
        service_id=instance_id,
        address=address,
        port=port,
        tags=tags,
        meta={"version": version, **meta},
        check=check,
    )


async def deregister(c: consul.aio.Consul, instance_id: str) -> None:
    """Deregister an instance that is shutting down; a failure (Consul away) is logged and
    left to its health check, which turns critical and is removed after a minute."""
    try:
        await c.agent.service.deregister(instance_id)
    except Exception as exc:
        log.warning("could not deregister %s from Consul: %s", instance_id, exc)
