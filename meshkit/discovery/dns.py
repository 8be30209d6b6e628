"""Discovery through DNS SRV records, as Kubernetes headless Services publish them:
``_grpc._tcp.<service>.<namespace>.svc.cluster.local`` (a named port ``grpc``).

Each watched service is resolved again when its answer's TTL runs out (never sooner
than ``min_interval``, never later than ``max_interval``): instances coming and going
show within the TTL. No instance (NXDOMAIN, or no record) is an answer, the empty set; a
DNS server that does not answer is not, and the last known set stays.

Registration is the platform's: in Kubernetes, the Endpoints of the headless Service.
Where a registry stands in for the platform (Consul's DNS interface in the devstack and
the tests), ``register=consul`` in the URL registers there.

``--discovery-url``: ``dns://[host[:port]]/?name=<template>&namespace=<ns>&register=consul``;
no host: the system's resolver (/etc/resolv.conf); the template's ``{service}`` and
``{namespace}`` are filled in (default: the Kubernetes name above, the namespace of the
pod's service account or ``default``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from meshkit.discovery.base import Discovery, Endpoint, Endpoints, Fetch, Registration

log = logging.getLogger("mesh.discovery.dns")

KUBERNETES_NAME = "_grpc._tcp.{service}.{namespace}.svc.cluster.local"
POD_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def pod_namespace() -> str:
    """The pod's namespace (``$POD_NAMESPACE``, or its service account's), else ``default``."""
    if ns := os.environ.get("POD_NAMESPACE"):
        return ns
    with contextlib.suppress(OSError):
        return POD_NAMESPACE.read_text().strip() or "default"
    return "default"


class DnsDiscovery(Discovery):
    """The SRV records of each watched service, resolved again at every TTL's end."""

    kind = "dns"

    def __init__(
        self,
        name_template: str = KUBERNETES_NAME,
        *,
        namespace: str = "default",
        nameserver: tuple[str, int] | None = None,
        min_interval: float = 1.0,
        max_interval: float = 30.0,
        registrar: Discovery | None = None,
    ) -> None:
        super().__init__()
        self.name_template = name_template
        self.namespace = namespace
        self.min_interval = min_interval
        self.max_interval = max_interval
        self._registrar = registrar
        if nameserver is None:
            self.resolver = dns.asyncresolver.Resolver()
        else:
            self.resolver = dns.asyncresolver.Resolver(configure=False)
            self.resolver.nameservers = [nameserver[0]]
            self.resolver.port = nameserver[1]
        self.resolver.cache = None  # the TTL is honoured here, per service
        # The registry's own lag (a stand-in's health checks: Consul's, 1 s) + one TTL
        # (Consul answers with TTL 0: min_interval) + room for a loaded machine.
        self.drop_within = 10.0 + min_interval

    @classmethod
    def from_url(cls, url: str, registrar: Discovery | None = None) -> DnsDiscovery:
        """From ``--discovery-url`` (module docstring); ``registrar``: the registry that
        ``register=consul`` names."""
        parts = urlsplit(url or "dns:")
        if parts.scheme != "dns":
            raise ValueError(f"discovery_url: {url!r} is not a dns://[host[:port]]/?... URL")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"name", "namespace", "register"}
        if unknown:
            raise ValueError(f"discovery_url: unknown parameter(s) {', '.join(sorted(unknown))}")
        template = query.get("name", KUBERNETES_NAME)
        if "{service}" not in template:
            raise ValueError(f"discovery_url: name={template!r} has no {{service}}")
        register = query.get("register", "")
        if register not in ("", "consul"):
            raise ValueError(f"discovery_url: register={register!r} (only consul, or none)")
        nameserver = (parts.hostname, parts.port or 53) if parts.hostname else None
        return cls(
            template,
            namespace=query.get("namespace") or pod_namespace(),
            nameserver=nameserver,
            registrar=registrar if register else None,
        )

    def name_of(self, service: str) -> str:
        name = self.name_template.format(service=service, namespace=self.namespace)
        return name if name.endswith(".") else name + "."

    def _fetcher(self, service: str) -> Fetch:
        name = self.name_of(service)
        next_in = [0.0]

        async def fetch(index: int) -> tuple[int, Endpoints]:
            if index:
                await asyncio.sleep(next_in[0])
            endpoints, ttl = await self.resolve(name)
            next_in[0] = min(max(float(ttl), self.min_interval), self.max_interval)
            return index + 1, endpoints

        return fetch

    async def resolve(self, name: str) -> tuple[Endpoints, int]:
        """The instances an SRV name lists (lowest priority first, the targets' addresses
        from the answer's additional section, else looked up), and the answer's TTL."""
        try:
            answer = await self.resolver.resolve(name, "SRV", search=False, lifetime=3.0)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return (), 0
        assert answer.rrset is not None
        additional: dict[str, str] = {}
        for rrset in answer.response.additional:
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                additional.setdefault(rrset.name.to_text(), rrset[0].address)
        out = []
        for srv in sorted(answer.rrset, key=lambda r: (r.priority, -r.weight)):
            target = srv.target.to_text()
            address = additional.get(target) or await self._address_of(target)
            out.append(Endpoint(address, srv.port, f"{target.rstrip('.')}:{srv.port}"))
        return tuple(sorted(out)), answer.rrset.ttl

    async def _address_of(self, target: str) -> str:
        answer = await self.resolver.resolve(target, "A", search=False, lifetime=3.0)
        return str(answer[0].address)

    def registered(self, registration: Registration) -> AbstractAsyncContextManager[None]:
        if self._registrar is not None:
            return self._registrar.registered(registration)
        return _platform_registers(registration)


@asynccontextmanager
async def _platform_registers(registration: Registration) -> AsyncIterator[None]:
    log.info(
        "%s: not registering (DNS discovery: the platform publishes the instances)",
        registration.instance_id,
    )
    yield
