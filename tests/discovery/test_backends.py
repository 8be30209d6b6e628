"""The backends' own logic, without a registry: Eureka's delta bookkeeping and the
settings each backend refuses (with the field named)."""

from __future__ import annotations

import dataclasses

import pytest

from meshkit.config import MeshConfig
from meshkit.discovery import open_discovery
from meshkit.discovery.dns import KUBERNETES_NAME, DnsDiscovery
from meshkit.discovery.eureka import EurekaDiscovery, Instance, instances_of, reconcile_hash


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


def copy_of(body: dict[str, object]) -> dict[str, Instance]:
    return {i.instance_id: i for _, i in instances_of(body)}


async def test_deltas_are_applied_and_checked_against_the_servers_hash() -> None:
    eureka = EurekaDiscovery()
    assert eureka._accept(copy_of(apps(app("ORDER", ("o1", 1, "UP", "ADDED")))))
    delta = apps(
        app("ORDER", ("o2", 2, "UP", "ADDED"), ("o1", 1, "DOWN", "MODIFIED")),
        app("PAYMENT", ("p1", 3, "UP", "ADDED")),
        hashcode="DOWN_1_UP_2_",
    )
    applied = eureka._applied(delta)
    assert applied is not None and eureka._accept(applied)
    assert [e.port for e in eureka._endpoints("ORDER")] == [2]  # only UP instances
    gone = eureka._applied(
        apps(app("PAYMENT", ("p1", 3, "UP", "DELETED")), hashcode="DOWN_1_UP_1_")
    )
    assert gone is not None and eureka._accept(gone) and eureka._endpoints("PAYMENT") == ()
    # a delta that does not add up (one was missed): nothing applied, the caller fetches in full
    assert eureka._applied(apps(hashcode="UP_5_")) is None
    assert reconcile_hash(eureka._instances) == "DOWN_1_UP_1_"


async def test_a_registry_that_forgot_this_instance_does_not_replace_the_copy() -> None:
    """A restarted server (in-memory registry) answers empty until the instances'
    heartbeats register them again: a process whose own instance is missing keeps its copy."""
    eureka = EurekaDiscovery()
    known = copy_of(
        apps(app("ORDER", ("o1", 1, "UP", "ADDED")), app("PAYMENT", ("p1", 3, "UP", "ADDED")))
    )
    assert eureka._accept(known)
    eureka._own.add("o1")
    assert not eureka._accept({})
    assert [e.port for e in eureka._endpoints("PAYMENT")] == [3]
    assert eureka._accept(copy_of(apps(app("ORDER", ("o1", 1, "UP", "ADDED")))))
    assert eureka._endpoints("PAYMENT") == ()


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
