"""The backends' own logic, without a registry: Eureka's delta bookkeeping and the
settings each backend refuses (with the field named)."""

from __future__ import annotations

import dataclasses

import pytest

from meshkit.config import MeshConfig
from meshkit.discovery import open_discovery
from meshkit.discovery.dns import KUBERNETES_NAME, DnsDiscovery
from meshkit.discovery.eureka import EurekaDiscovery, instances_of, reconcile_hash


def app(name: str, *instances: tuple[str, int, str, str]) -> dict[str, object]:
    return {
        "name": name,
        "instance": [
            {"instanceId": i, "ipAddr": "127.0.0.1", "port": {"$": p}, "status": s, "actionType": a}
            for i, p, s, a in instances
        ],
    }


def apps(*applications: dict[str, object], hashcode: str = "") -> dict[str, object]:
    return {"applications": {"apps__hashcode": hashcode, "application": list(applications)}}


def test_a_lone_instance_is_read_like_a_list() -> None:
    lone = {"instanceId": "o1", "ipAddr": "127.0.0.1", "port": {"$": 5001}, "status": "UP"}
    body = {"applications": {"application": {"name": "ORDER", "instance": lone}}}
    [(action, instance)] = instances_of(body)
    assert (action, instance.app, instance.port) == ("ADDED", "ORDER", 5001)


async def test_deltas_are_applied_and_checked_against_the_servers_hash() -> None:
    eureka = EurekaDiscovery()
    eureka._replace(
        {i.instance_id: i for _, i in instances_of(apps(app("ORDER", ("o1", 1, "UP", "ADDED"))))}
    )
    delta = apps(
        app("ORDER", ("o2", 2, "UP", "ADDED"), ("o1", 1, "DOWN", "MODIFIED")),
        app("PAYMENT", ("p1", 3, "UP", "ADDED")),
        hashcode="DOWN_1_UP_2_",
    )
    assert eureka._apply(delta)
    assert [e.port for e in eureka._endpoints("ORDER")] == [2]  # only UP instances
    gone = apps(app("PAYMENT", ("p1", 3, "UP", "DELETED")), hashcode="DOWN_1_UP_1_")
    assert eureka._apply(gone) and eureka._endpoints("PAYMENT") == ()
    # a delta that does not add up (one was missed): the caller fetches in full
    assert not eureka._apply(apps(hashcode="UP_5_"))
    assert reconcile_hash(eureka._instances) == "DOWN_1_UP_1_"


def test_settings_are_checked_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="discovery_url"):
        EurekaDiscovery.from_url("127.0.0.1:8761")
    for bad in ("http://x", "dns://?name=_grpc._tcp.order", "dns://?nope=1", "dns://?register=x"):
        with pytest.raises(ValueError, match="discovery_url"):
            DnsDiscovery.from_url(bad)
    config = dataclasses.replace(MeshConfig(name="order"), discovery="zookeeper")
    with pytest.raises(ValueError, match="discovery: unknown registry 'zookeeper'"):
        open_discovery(config, None)  # type: ignore[arg-type]


def test_dns_names_fill_in_the_service_and_namespace() -> None:
    dns = DnsDiscovery.from_url("dns://?namespace=shop")
    assert dns.name_template == KUBERNETES_NAME
    assert dns.name_of("order") == "_grpc._tcp.order.shop.svc.cluster.local."
    consul = DnsDiscovery.from_url("dns://127.0.0.1:8600/?name={service}.service.consul")
    assert consul.name_of("order") == "order.service.consul."
    assert consul.resolver.port == 8600 and consul.resolver.nameservers == ["127.0.0.1"]
