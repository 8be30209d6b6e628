"""Client channels to services of the mesh, by name.

A service gets one ``grpc.aio`` channel over all its healthy instances (an ``ipv4:a,b``
target with gRPC's ``round_robin``), rebuilt when Consul's healthy set or this instance's
client certificate changes; the old channel is closed gracefully, so calls in flight
finish. gRPC itself stops picking an instance whose connection fails, before Consul
notices. Retries are gRPC's own (``retryPolicy`` in the service config) and apply to the
methods the contracts mark ``NO_SIDE_EFFECTS`` or ``IDEMPOTENT``, so a client in any
language can derive the same policy from the same protos.

With the resilience layer on (``meshkit.rpc.resilience``; ``MESH_RESILIENCE=off`` turns it
off), an endpoint ejected for consecutive failures is left out of the target list until
its ejection ends, and every call passes the service's bulkhead and circuit breaker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf import descriptor_pb2

from meshkit.discovery import Endpoints
from meshkit.rpc.calls import ClientCalls
from meshkit.rpc.descriptors import service_of_stub
from meshkit.rpc.resilience import Guard
from meshkit.security.certificates import authority

log = logging.getLogger("mesh.channels")

S = TypeVar("S")

RETRY_POLICY = {
    "maxAttempts": 3,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
_SAFE = {
    descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
    descriptor_pb2.MethodOptions.IDEMPOTENT,
}


def service_config(stub_cls: type) -> dict[str, Any]:
    """gRPC service config for the services of ``stub_cls``'s proto file."""
    pb2 = sys.modules[stub_cls.__module__.removesuffix("_grpc")]
    names = []
    for svc in pb2.DESCRIPTOR.services_by_name.values():
        for m in svc.methods:
            if m.GetOptions().idempotency_level in _SAFE:
                names.append({"service": svc.full_name, "method": m.name})
    config: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}]}
    if names:
        config["methodConfig"] = [{"name": names, "retryPolicy": RETRY_POLICY}]
        config["retryThrottling"] = {"maxTokens": 10, "tokenRatio": 0.1}
    return config


def target_of(endpoints: Endpoints) -> str:
    v6 = any(":" in e.address for e in endpoints)
    return ("ipv6:" if v6 else "ipv4:") + ",".join(e.target for e in endpoints)


class _NoInstance:
    """What a stub method is while the service has no healthy instance: UNAVAILABLE."""

    def __init__(self, service: str) -> None:
        self.error = grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(),
            details=f"no healthy instance of {service} in the registry",
        )

    def __call__(self, *args: Any, **kwargs: Any) -> _NoInstance:
        return self

    def __await__(self) -> Any:
        raise self.error
        yield  # pragma: no cover  (makes this a generator, as __await__ must be)

    def __aiter__(self) -> _NoInstance:
        return self

    async def __anext__(self) -> Any:
        raise self.error


class ServiceChannel:
    """The current channel to one service; ``generation`` moves with every rebuild."""

    def __init__(
        self,
        service: str,
        stub_cls: type,
        credentials: Callable[[], grpc.ChannelCredentials] | None,
        guard: Guard | None = None,
    ) -> None:
        self.service = service
        # Bulkhead, breaker, ejection (None: MESH_RESILIENCE=off); ejections rebuild.
        self.guard = guard
        if guard is not None:
            guard.on_ejected = lambda: self.update(None)
        self._credentials = credentials
        self._options: list[tuple[str, Any]] = [
            ("grpc.service_config", json.dumps(service_config(stub_cls))),
            ("grpc.enable_retries", 1),
            ("grpc.default_authority", authority(service)),
        ]
        if credentials is not None:
            self._options.append(("grpc.ssl_target_name_override", authority(service)))
        self._endpoints: Endpoints = ()
        self.channel: grpc.aio.Channel | None = None
        self.generation = 0
        self._closing: set[asyncio.Task[None]] = set()

    def update(self, endpoints: Endpoints | None = None) -> None:
        """Rebuild for a new healthy set (or, with None, for new client credentials or
        ejections: the ejected endpoints are left out)."""
        if endpoints is not None:
            if endpoints == self._endpoints and self.channel is not None:
                return
            self._endpoints = endpoints
            if self.guard is not None:
                self.guard.set_instances([e.instance_id for e in endpoints])
        serving = self._endpoints
        if self.guard is not None:
            ejected = self.guard.ejected_ids()
            if ejected:
                serving = tuple(e for e in serving if e.instance_id not in ejected)
        old = self.channel
        self.channel = None
        if serving:
            target = target_of(serving)
            if self._credentials is None:
                self.channel = grpc.aio.insecure_channel(target, options=self._options)
            else:
                self.channel = grpc.aio.secure_channel(
                    target,
                    self._credentials(),
                    options=self._options,
                )
        self.generation += 1
        log.info(
            "%s: %d healthy instance(s) %s, %d serving",
            self.service,
            len(self._endpoints),
            [e.target for e in self._endpoints],
            len(serving),
        )
        if old is not None:
            task = asyncio.get_running_loop().create_task(old.close(grace=30.0))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        if self.guard is not None:
            self.guard.close()
        if self.channel is not None:
            await self.channel.close(grace=1.0)
            self.channel = None
        await asyncio.gather(*self._closing, return_exceptions=True)


class Stub(Generic[S]):
    """A generated stub that always uses the service's current channel.

    ``mesh.stub(InventoryServiceStub, "inventory").GetStock(req)`` works like the
    generated stub's method, with the mesh's deadline and client span on every call
    (``calls.ClientCalls``); behind it the channel may have been rebuilt since.
    """

    def __init__(
        self,
        channel: ServiceChannel,
        stub_cls: Callable[[grpc.aio.Channel], S],
        calls: ClientCalls,
    ) -> None:
        self._channel = channel
        self._stub_cls = stub_cls
        self._calls = calls
        self._stub: S | None = None
        self._methods: dict[str, Callable[..., Any]] = {}
        self._generation = -1
        self._descriptor = service_of_stub(stub_cls)  # type: ignore[arg-type]
        self._service = self._descriptor.full_name

    def __getattr__(self, name: str) -> Any:
        ch = self._channel
        if ch.generation != self._generation:
            self._stub = None if ch.channel is None else self._stub_cls(ch.channel)
            self._methods = {}
            self._generation = ch.generation
        if self._stub is None:
            return _NoInstance(ch.service)
        method = self._methods.get(name)
        if method is None:
            guard = ch.guard
            hedge = guard is not None and guard.policy.hedging and self._hedgeable(name)
            method = self._calls.wrap(
                f"/{self._service}/{name}", getattr(self._stub, name), guard, hedge
            )
            self._methods[name] = method
        return method

    def _hedgeable(self, name: str) -> bool:
        """A unary method the contract marks ``NO_SIDE_EFFECTS`` (safe to send twice)."""
        m = self._descriptor.methods_by_name.get(name)
        return (
            m is not None
            and not m.client_streaming
            and not m.server_streaming
            and m.GetOptions().idempotency_level == descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS
        )
