"""The cluster (devstack/cluster.py) and its fault scenarios (devstack/cluster_faults.py).

One cluster for the module: 3 Consul servers, 3 nodes (a Consul client agent and a NATS
server each; the event stream R3), 2 instances of each service and of the gateway. Each
scenario runs during a burst of ``ORDERS`` orders and must leave every order of the
burst final exactly once (none lost, none applied twice) and the invariants of the four
databases true. Its figures (recovery times, orders/s) are printed, never asserted: a
loaded 2-core machine must pass (docs/cluster.md has those of one run).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.cluster import GATEWAY, Cluster
from devstack.cluster_faults import ORDERS, RATE, SCENARIOS, new_cluster, run_scenario

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    state: Path = tmp_path_factory.mktemp("cluster")
    cluster = new_cluster(state)
    try:
        yield cluster.start()
    finally:
        cluster.close()
        left = [
            f"{getattr(p, 'name', p)} pid {p.pid}"
            for p in (
                *cluster.servers,
                *([cluster.control] if cluster.control else []),
                *(proc for node in cluster.nodes for proc in node.processes),
                *(proc for node in cluster.nodes for proc in node.launcher.started),
            )
            if p.process is not None and p.process.poll() is None
        ]
        assert not left, f"processes of the cluster still running after close: {left}"


def test_the_cluster_has_its_leaders_replicas_and_instances(cluster: Cluster) -> None:
    """A Raft leader and 3 voters, a JetStream meta leader, the stream R3 with every replica
    current, and 2 instances of each service on 2 nodes, each registered with the agent of
    its own node; the summary names them all."""
    cluster.wait_whole()  # a loaded machine may just be electing (raft_multiplier 1)
    summary = cluster.summary()
    print("\n" + summary)
    leader = cluster.consul_leader()
    assert leader is not None and leader in cluster.servers
    assert cluster.raft_voters() == sorted(s.node for s in cluster.servers)
    assert cluster.nats_meta_leader() in {n.server_name for n in cluster.nats_nodes}
    stream = cluster.stream_state()
    assert sorted(set(stream.current)) == sorted(n.server_name for n in cluster.nats_nodes)
    for service in (*SERVICES, GATEWAY):
        instances = cluster.instances(service)
        assert len(instances) == 2 and len({i.node.name for i in instances}) == 2, service
        entries = cluster.consul.get(f"/v1/health/service/{service}?passing=1")
        assert isinstance(entries, list)
        on = {e["Service"]["ID"]: e["Node"]["Node"] for e in entries}
        assert on == {i.id: i.node.name for i in instances}, (service, on)
        for inst in instances:
            assert inst.id in summary and inst.node.name in summary
    assert leader.node in summary and stream.leader in summary


SERVICES = ("inventory", "payment", "shipping", "order")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_a_fault_during_a_burst_of_orders_keeps_the_invariants(
    cluster: Cluster, scenario: str
) -> None:
    """The scenario injected during the burst; afterwards every order of the burst is final
    once (none lost, none applied twice), stock sold equals confirmed orders, one capture
    per confirmed order, nothing left reserved; and the cluster is whole again."""
    report = await run_scenario(cluster, scenario, orders=ORDERS, rate=RATE)
    print("\n" + "\n".join(report.lines()))
    assert report.lost == [], report.lost[:10]
    assert report.not_final == [], report.not_final[:10]
    assert report.double_applied == [], report.double_applied[:10]
    assert report.invariants == "", report.invariants
    assert sum(report.outcomes.values()) == ORDERS, report.outcomes
    assert report.outcomes.get("CONFIRMED"), report.outcomes
    assert report.recovery, "the scenario reported no recovery"
    await asyncio.to_thread(cluster.wait_whole)  # whole again (TimeoutError if not)
    assert Counter(i.service for i in cluster.instances() if i.running) == Counter(
        {s: 2 for s in (*SERVICES, GATEWAY)}
    )
