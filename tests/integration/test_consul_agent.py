"""A real Consul dev agent: members, registration through py-consul, the health API."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import consul as pyconsul
import pytest

from devstack.consul import ConsulAgent
from devstack.ports import free_ports
from devstack.tools import consul_binary

pytestmark = pytest.mark.integration


def test_agent_answers_consul_members(consul: ConsulAgent) -> None:
    # ACLs are on: the CLI reads the members with an identity's token (node read).
    token = consul.service_token("operator")
    out = subprocess.run(
        [consul_binary(), "members", f"-http-addr={consul.url}"],
        env={**os.environ, "CONSUL_HTTP_TOKEN": token},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "alive" in out.stdout
    assert "127.0.0.1" in out.stdout


def test_connect_ca_is_on(consul: ConsulAgent) -> None:
    roots = consul.get("/v1/agent/connect/ca/roots")
    assert isinstance(roots, dict)
    assert roots["TrustDomain"].endswith(".consul")
    assert roots["Roots"][0]["RootCert"].startswith("-----BEGIN CERTIFICATE-----")


def test_register_and_find_through_the_health_api(consul: ConsulAgent) -> None:
    # The token of the identity "probe": it may register that name (and only that one).
    c = pyconsul.Consul(host="127.0.0.1", port=consul.http_port)
    c.token = consul.service_token("probe")
    c.agent.service.register(
        "probe",
        service_id="probe-1",
        address="127.0.0.1",
        port=40001,
        tags=["v1"],
        meta={"version": "0.1.0"},
        check=pyconsul.Check.ttl("30s"),
    )
    try:
        # Critical until the TTL check passes: not among the passing instances.
        _, nodes = c.health.service("probe", passing=True)
        assert nodes == []
        c.agent.check.ttl_pass("service:probe-1")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            index, nodes = c.health.service("probe", passing=True)
            if nodes:
                break
            time.sleep(0.05)
        [entry] = nodes
        assert entry["Service"]["ID"] == "probe-1"
        assert (entry["Service"]["Address"], entry["Service"]["Port"]) == ("127.0.0.1", 40001)
        assert entry["Service"]["Meta"] == {"version": "0.1.0"}
        # A blocking query returns at once when the set changes (here: deregistration).
        c.agent.service.deregister("probe-1")
        _, nodes = c.health.service("probe", passing=True, index=index, wait="5s")
        assert nodes == []
    finally:
        c.agent.service.deregister("probe-1")


def test_waiting_for_a_passing_instance_that_never_passes_names_its_check(
    consul: ConsulAgent,
) -> None:
    """A timeout in ``wait_passing`` says what Consul knows: each instance's check, its
    status and its output, in the catalog and in the agent."""
    c = pyconsul.Consul(host="127.0.0.1", port=consul.http_port)
    c.token = consul.service_token("stuck")
    c.agent.service.register(
        "stuck", service_id="stuck-1", port=40002, check=pyconsul.Check.ttl("30s")
    )
    try:
        c.agent.check.ttl_fail("service:stuck-1", notes="the probe says no")
        with pytest.raises(TimeoutError) as raised:
            consul.wait_passing("stuck", timeout=0.5)
        message = str(raised.value)
        assert "stuck: fewer than 1 passing instance(s)" in message
        assert "in the agent: stuck-1 critical: the probe says no" in message
    finally:
        c.agent.service.deregister("stuck-1")


def test_a_dev_agent_that_loses_a_free_port_starts_on_new_ones() -> None:
    """Parallel tiers pick free ports too: one taken between the pick and the agent's bind
    makes the agent exit ("address already in use"); it starts again on other ports."""
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        agent = ConsulAgent()
        agent._free = (*free_ports(2), taken.getsockname()[1], *free_ports(3))  # DNS: taken
        agent.start()
        try:
            assert agent.dns_port != taken.getsockname()[1]
            assert agent.get("/v1/status/leader")
        finally:
            agent.stop()
    finally:
        taken.close()
