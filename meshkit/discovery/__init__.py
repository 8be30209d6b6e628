"""Discovery: the healthy instances of the services this instance calls, and this
instance's own registration, behind one interface (``Discovery``) with a backend per
registry: Consul (the default), Eureka, DNS SRV (docs/discovery.md).

Each backend keeps the healthy set of every watched service in memory and updates it in
the background, so the request path never calls the registry, and when the registry is
unreachable the last known set keeps serving. ``open_discovery`` picks the backend from
the configuration (``--discovery``/``MESH_DISCOVERY``, ``--discovery-url``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from meshkit.discovery.base import Discovery, Endpoint, Endpoints, Registration

if TYPE_CHECKING:
    import consul.aio

    from meshkit.config import MeshConfig

log = logging.getLogger("mesh.discovery")

__all__ = ["BACKENDS", "Discovery", "Endpoint", "Endpoints", "Registration", "open_discovery"]

BACKENDS = ("consul", "eureka", "dns")


def open_discovery(config: MeshConfig, consul_client: consul.aio.Consul) -> Discovery:
    """The backend ``config.discovery`` names, at ``config.discovery_url``."""
    from meshkit.discovery.consul import ConsulDiscovery

    if config.discovery == "consul":
        return ConsulDiscovery(consul_client)
    if config.discovery == "eureka":
        from meshkit.discovery.eureka import EurekaDiscovery

        eureka = EurekaDiscovery.from_url(config.discovery_url)
        log.info("discovery: Eureka at %s", eureka.url)
        return eureka
    if config.discovery == "dns":
        from meshkit.discovery.dns import DnsDiscovery

        dns = DnsDiscovery.from_url(config.discovery_url, ConsulDiscovery(consul_client))
        log.info("discovery: DNS SRV %s", dns.name_of("<service>"))
        return dns
    raise ValueError(
        f"discovery: unknown registry {config.discovery!r} (one of {', '.join(BACKENDS)})"
    )
