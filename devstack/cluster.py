"""A clustered stack on one machine: ``make run-cluster``, the cluster's fault scenarios
(devstack/cluster_faults.py) and tests/cluster.

Everything on 127.0.0.1, on free ports, each process with a data directory of its own
under the state directory (docs/cluster.md draws it):

- the control plane: 3 Consul servers (Raft, ``bootstrap_expect = 3``, ACLs on with
  default deny, the mesh CA as the Connect CA root, the intentions applied, gossip
  encrypted with a key of this cluster's);
- ``control``, a node of the operator's: a Consul client agent, the signer (it checks
  tokens through that agent), Ory Hydra, and this process's own clients;
- ``node-1`` .. ``node-3``, the simulated machines: each a Consul client agent, a NATS
  server (the three form a JetStream cluster over routes; the event stream is replicated
  on all three), and service instances, which register with their own node's agent
  (``CONSUL_HTTP_ADDR``) and connect to their own node's NATS server (and learn the others
  from it, to fail over to). Two instances of each domain service and of the gateway,
  spread so that no node holds both instances of a service.

Instances of one service share its SQLite file (one machine: fine; a real deployment
gives them a database server). ``Cluster`` is a context manager; ``close()`` stops every
process it started, the service instances first, the Consul servers last::

    with Cluster(state) as cluster:
        print(cluster.summary())
        mesh, _ = await open_mesh(cluster.mesh_config("operator"))
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Self, TypeVar

from devstack.cluster_consul import ClusterAgent, gossip_key
from devstack.cluster_nats import NatsNode, StreamState, ensure_replicated_stream
from devstack.edge import AUDIENCE, SCOPES, write_client
from devstack.hydra import Hydra, OAuthClient
from devstack.intentions import apply_intentions
from devstack.process import ChildProcess
from devstack.services import Launcher, ServiceProcess
from devstack.signer import new_ca, start_signer
from devstack.stack import DOMAIN_SERVICES, mesh_config
from devstack.tools import ROOT
from meshkit.config import MeshConfig
from meshkit.security.pki import consul_ca_config

GATEWAY = "gateway"
STREAM_REPLICAS = 3  # the event stream's (R3: one server may fail, a majority remains)
T = TypeVar("T")

READY_TIMEOUT = 90.0  # seconds for a process of the cluster to be ready, on a loaded machine


@dataclass
class Instance:
    """One service instance, on a node; ``restart`` gives it a new process (new port, new
    id in Consul) with the same arguments and environment."""

    service: str
    node: Node
    args: tuple[str, ...]
    env: dict[str, str]
    proc: ServiceProcess | None = None

    @property
    def id(self) -> str:
        return str(self.proc.info.get("instance_id", "")) if self.proc else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.running

    def launch(self) -> ServiceProcess:
        self.proc = self.node.launcher.launch(self.service, *self.args, env=self.env)
        return self.proc

    def start(self, attempts: int = 3) -> ServiceProcess:
        """A new process, ready; one that dies before it is ready is started again, as a
        supervisor would (seen: SIGABRT in the forked child, see ``start_together``)."""
        for attempt in range(1, attempts + 1):
            try:
                return self.launch().wait_ready(READY_TIMEOUT)
            except RuntimeError as exc:  # it exited before it was ready
                if attempt == attempts:
                    raise
                print(f"{self.service} on {self.node.name}: {str(exc)[:200]}; starting it again")
        raise AssertionError("unreachable")

    def where(self) -> str:
        if self.proc is None or not self.proc.info:
            return "-"
        return str(self.proc.info.get("url") or self.proc.address)


@dataclass
class Node:
    """A simulated machine: its Consul client agent, its NATS server, its instances."""

    name: str
    agent: ClusterAgent
    nats: NatsNode
    launcher: Launcher
    instances: list[Instance] = field(default_factory=list)

    @property
    def processes(self) -> list[ChildProcess]:
        """Its processes, in the order they start."""
        procs: list[ChildProcess] = [self.agent, self.nats]
        return procs + [i.proc for i in self.instances if i.proc is not None]


class Cluster:
    """The clustered stack of one state directory (the module's doc)."""

    def __init__(
        self,
        state: Path,
        *,
        nodes: int = 3,
        replicas: int = 2,
        gateways: int = 2,
        edge: bool = True,
        log_dir: Path | None = None,
        service_env: Callable[[str], Mapping[str, str]] | None = None,
        catalog: Mapping[str, int] | None = None,
        raft_multiplier: int = 1,
        out: Callable[[str], None] = print,
    ) -> None:
        if nodes < 3:
            raise ValueError(f"--nodes {nodes}: a cluster needs 3 nodes or more (NATS R3)")
        if replicas < 1 or gateways < 0:
            raise ValueError(f"--replicas {replicas} / --gateways {gateways}: >= 1 / >= 0")
        self.state = state.resolve()
        self.log_dir = (log_dir or self.state / "logs").resolve()
        self.replicas, self.gateways, self.with_edge = replicas, gateways, edge
        self.service_env = service_env
        self.catalog = dict(catalog) if catalog is not None else None
        self.out = out
        # One name per run: the NATS cluster's (and the JetStream meta group's).
        self.tag = uuid.uuid4().hex[:6]
        self.ca = new_ca(self.state)
        self.servers: list[ClusterAgent] = []
        self.control: ClusterAgent | None = None
        self.nodes: list[Node] = []
        self.hydra: Hydra | None = None
        self.oauth_client: OAuthClient | None = None
        self.intentions: list[str] = []
        self._gossip = gossip_key()
        self._token = ""
        self._log: IO[str] | None = None
        self._nodes, self._raft_multiplier = nodes, raft_multiplier

    # --- start ------------------------------------------------------------------------

    def start(self) -> Self:
        """Consul servers, then the control node (signer, Hydra), the nodes' agents, the
        NATS cluster and its stream, the service instances and the gateways, each ready;
        on failure everything started is stopped."""
        try:
            self._fresh_dirs()
            if self.with_edge:  # its keys take a while to make: it starts beside the rest
                self.hydra = Hydra(0, 0, log_path=self.log_dir / "hydra.log").launch()
            self._start_servers()
            self._start_control()
            self._start_nodes()
            self._start_edge()
            self._start_instances()
        except BaseException:
            self.close()
            raise
        return self

    def _fresh_dirs(self) -> None:
        """This run's Consul and NATS data start empty (a new CA, a new gossip key); the
        databases in ``<state>/data`` are kept, as ``make run`` keeps them."""
        for sub in ("consul-data", "nats-data"):
            shutil.rmtree(self.state / sub, ignore_errors=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.catalog is not None:
            (self.state / "catalog.json").write_text(json.dumps(self.catalog))

    def _agent(self, node: str, server: bool, join: tuple[str, ...] = ()) -> ClusterAgent:
        return ClusterAgent(
            node=node,
            server=server,
            data_dir=self.state / "consul-data" / node,
            join=join,
            gossip=self._gossip,
            raft_multiplier=self._raft_multiplier,
            extra_config=consul_ca_config(self.ca) if server else {},
            acl_dir=self.state / "consul",
            log_path=self.log_dir / f"consul-{node}.log",
        )

    def _start_servers(self) -> None:
        self.out("starting 3 Consul servers (Raft) ...")
        self.servers = [self._agent(f"consul-server-{i}", True) for i in (1, 2, 3)]
        join = tuple(s.serf_lan_addr for s in self.servers)
        for server in self.servers:
            server.join = join
        start_together(self.servers)  # no leader until bootstrap_expect servers are up
        self.intentions = apply_intentions(self.servers[0])

    @property
    def join(self) -> tuple[str, ...]:
        return tuple(s.serf_lan_addr for s in self.servers)

    def _start_control(self) -> None:
        self.out("starting the control node: a Consul client agent, the signer ...")
        self.control = self._agent("control", False, self.join)
        start_together([self.control])
        self.control.service_token("operator")  # the operator's identity: tools, tests
        start_signer(self.state, self.control, self.ca, self.log_dir / "signer.log")

    def _start_nodes(self) -> None:
        names = [f"node-{i}" for i in range(1, self._nodes + 1)]
        self.out(f"starting {len(names)} nodes: a Consul client agent and a NATS server each ...")
        nats_nodes = [
            NatsNode(
                server_name=f"nats-{i}",
                cluster_name=f"meshkit-{self.tag}",
                store_dir=self.state / "nats-data" / f"nats-{i}",
                shared_creds=self.state / "nats-creds",
                log_path=self.log_dir / f"nats-{i}.log",
            )
            for i in range(1, len(names) + 1)
        ]
        for n in nats_nodes:
            n.reserve_ports()
        routes = tuple(n.route_port for n in nats_nodes)
        for n in nats_nodes:
            n.routes = routes
        for name, nats in zip(names, nats_nodes, strict=True):
            agent = self._agent(name, False, self.join)
            launcher = Launcher(agent, nats, self.state, log=self.log)
            launcher.env_providers.append(self._signer_env)
            self.nodes.append(Node(name, agent, nats, launcher))
        start_together([n.agent for n in self.nodes] + nats_nodes)
        self.wait_nats_meta_leader()
        ensure_replicated_stream(nats_nodes[0], replicas=STREAM_REPLICAS)
        self.wait_stream_whole()

    def _signer_env(self, service: str) -> dict[str, str]:
        """Where an instance gets its leaf: the signer of the control node."""
        assert self.control is not None
        return {"MESH_SIGNER_URL": self.control.signer_url}

    def _start_edge(self) -> None:
        """Hydra ready, and a client of the shop's scopes registered (``oauth/client.json``)."""
        if self.hydra is not None:
            try:
                self.hydra.wait_ready(READY_TIMEOUT)
            except RuntimeError as exc:  # it exited first: once more (start_together)
                if "address already in use" in str(exc):
                    self.hydra.public_port = self.hydra.admin_port = 0  # new free ones
                self.out("hydra exited before it was ready; launching it again")
                start_together([self.hydra])
            self.oauth_client = self.hydra.create_client(SCOPES, (AUDIENCE,), name="cluster")
            write_client(self.state, self.hydra.issuer, self.oauth_client)
            self.access_token()  # Hydra makes its signing key on the first: not on a call's time

    def access_token(self) -> str:
        """An access token of the cluster's OAuth2 client (the first is kept: an hour's)."""
        hydra, client = self.hydra, self.oauth_client
        assert hydra is not None and client is not None, "the cluster has no edge"
        if not self._token:
            self._token = wait_for(lambda: hydra.token(client), READY_TIMEOUT, "a token")
        return self._token

    def _start_instances(self) -> None:
        plan = [(s, "") for s in DOMAIN_SERVICES for _ in range(self.replicas)]
        if self.with_edge:
            assert self.hydra is not None
            gw = ("--issuer", self.hydra.issuer, "--audience", AUDIENCE)
            plan += [(GATEWAY, " ".join(gw))] * self.gateways
        self.out(f"starting {len(plan)} service instances over {len(self.nodes)} nodes ...")
        for k, (service, extra) in enumerate(plan):
            node = self.nodes[k % len(self.nodes)]
            args = ("--port", "0", *extra.split())
            node.instances.append(Instance(service, node, args, self.env_of(service)))
        instances = self.instances()
        for inst in instances:
            inst.launch()
        for inst in instances:
            assert inst.proc is not None
            inst.proc.wait_ready(READY_TIMEOUT)
        self.wait_instances_whole()

    def env_of(self, service: str) -> dict[str, str]:
        env = dict(self.service_env(service)) if self.service_env else {}
        if service == "inventory" and self.catalog is not None:
            env.setdefault("SHOP_INVENTORY_SEED", str(self.state / "catalog.json"))
        return env

    @property
    def log(self) -> IO[str]:
        """services.log: the output of every instance, a line each."""
        if self._log is None:
            self._log = open(self.log_dir / "services.log", "a")  # noqa: SIM115
        return self._log

    # --- what runs --------------------------------------------------------------------

    def instances(self, service: str | None = None) -> list[Instance]:
        return [
            i for n in self.nodes for i in n.instances if service is None or i.service == service
        ]

    @property
    def services(self) -> list[str]:
        """The services that have instances, domain services first."""
        return [s for s in (*DOMAIN_SERVICES, GATEWAY) if self.instances(s)]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    @property
    def nats_nodes(self) -> list[NatsNode]:
        return [n.nats for n in self.nodes]

    @property
    def consul(self) -> ClusterAgent:
        """The control node's agent: this process's way into Consul."""
        assert self.control is not None, "the cluster is not started"
        return self.control

    def mesh_config(self, name: str) -> MeshConfig:
        """A mesh in this process with ``name``'s identity, through the control node."""
        return mesh_config(name, self.consul, self.state, self.nats_nodes[0])

    @property
    def management_token(self) -> str:
        return self.consul.management_token

    # --- state of the cluster ---------------------------------------------------------

    def consul_leader(self) -> ClusterAgent | None:
        """The server that leads Raft now (None while there is no leader)."""
        by_addr = {s.server_addr: s for s in self.servers}
        for agent in [self.consul, *self.servers]:
            if agent.running and (addr := agent.leader()):
                return by_addr.get(addr)
        return None

    def raft_voters(self) -> list[str]:
        """The servers that are voters in the Raft configuration, as the leader sees it."""
        peers = self.consul.raft_peers() if self.consul.running else []
        return sorted(str(p["Node"]) for p in peers if p.get("Voter"))

    def nats_meta_leader(self) -> str:
        for nats in self.nats_nodes:
            if nats.running and (leader := nats.meta_leader()):
                return leader
        return ""

    def stream_state(self) -> StreamState:
        """The event stream's leader and replicas, as a running node sees them."""
        stream = self.nats_nodes[0].events.stream
        for nats in self.nats_nodes:
            if nats.running and (leader := nats.stream_cluster(stream).get("leader")):
                # Only the leader knows whether each follower is current.
                info = self.nats_node(str(leader)).nats.stream_cluster(stream)
                if info.get("leader") == leader:
                    return StreamState(str(leader), list(info.get("replicas") or []))
        return StreamState()

    def nats_node(self, server_name: str) -> Node:
        return next(n for n in self.nodes if n.nats.server_name == server_name)

    def passing(self, service: str) -> set[str]:
        """The ids of ``service``'s instances passing in Consul."""
        try:
            entries = self.consul.get(f"/v1/health/service/{service}?passing=1")
        except OSError:
            return set()
        return {e["Service"]["ID"] for e in entries} if isinstance(entries, list) else set()

    def service_whole(self, service: str) -> bool:
        """Every instance of ``service`` runs and passes in Consul, and no other does."""
        wanted = {i.id for i in self.instances(service) if i.running}
        return len(wanted) == len(self.instances(service)) and wanted == self.passing(service)

    def instances_whole(self) -> bool:
        """Every service with its full count of instances, all passing in Consul."""
        return all(self.service_whole(s) for s in self.services)

    def stream_whole(self) -> bool:
        """The stream has a leader and every other replica is current."""
        state = self.stream_state()
        return bool(state.leader) and len(set(state.current)) == STREAM_REPLICAS

    def consul_whole(self) -> bool:
        """A leader, and every server a voter again."""
        return self.consul_leader() is not None and len(self.raft_voters()) == len(self.servers)

    def wait_nats_meta_leader(self, timeout: float = READY_TIMEOUT) -> str:
        return wait_for(self.nats_meta_leader, timeout, "a JetStream meta leader")

    def wait_stream_whole(self, timeout: float = READY_TIMEOUT) -> None:
        wait_for(self.stream_whole, timeout, "the stream's leader and every replica current")

    def wait_instances_whole(self, timeout: float = READY_TIMEOUT) -> None:
        wait_for(self.instances_whole, timeout, "every instance passing in Consul")

    def wait_consul_whole(self, timeout: float = READY_TIMEOUT) -> None:
        wait_for(self.consul_whole, timeout, "a Consul leader and every server a voter")

    def wait_whole(self, timeout: float = READY_TIMEOUT) -> None:
        """Consul, the stream and the instances all whole again (after a fault)."""
        self.wait_consul_whole(timeout)
        self.wait_stream_whole(timeout)
        self.wait_instances_whole(timeout)

    # --- faults -----------------------------------------------------------------------

    def restart_instance(self, inst: Instance) -> ServiceProcess:
        """A new process for ``inst`` on its node (as a supervisor would start one), ready."""
        return spawned(inst.start)

    def kill_node(self, node: Node) -> None:
        """SIGKILL every process of ``node`` (a power cut): its instances, NATS, its agent."""
        for proc in reversed(node.processes):
            proc.kill()

    def start_node(self, node: Node) -> None:
        """``node`` booted again: its agent and NATS server on their ports and data
        directories, then new processes for its instances, each ready."""

        def boot() -> None:
            start_together([node.agent, node.nats])
            for inst in node.instances:
                inst.launch()
            for inst in node.instances:
                assert inst.proc is not None
                try:
                    inst.proc.wait_ready(READY_TIMEOUT)
                except RuntimeError:  # exited before it was ready: once more (Instance.start)
                    inst.start()

        spawned(boot)

    def restart(self, proc: ChildProcess) -> None:
        """A stopped or killed Consul agent or NATS server started again (same ports, data)."""
        spawned(lambda: start_together([proc]))

    # --- the summary ------------------------------------------------------------------

    def summary(self) -> str:
        leader = self.consul_leader()
        voters = self.raft_voters()
        stream = self.stream_state()
        events = self.nats_nodes[0].events
        lines = [f"meshkit-shop cluster is up (state in {self.state}, logs in {self.log_dir}):"]
        lines.append(
            f"  consul     Raft leader {leader.node if leader else 'NONE'};"
            f" voters {', '.join(voters) or '-'}"
        )
        for s in self.servers:
            role = "leader" if s is leader else "follower"
            lines.append(f"    {s.node:<16} {s.url}  (server, {role}, raft {s.server_addr})")
        lines.append(
            f"  nats       cluster meshkit-{self.tag}, JetStream meta leader"
            f" {self.nats_meta_leader() or 'NONE'}"
        )
        replicas = ", ".join(
            f"{r['name']} ({'current' if r.get('current') else 'behind'})" for r in stream.replicas
        )
        lines.append(
            f"  stream     {events.stream} R{bool(stream.leader) + len(stream.replicas)}:"
            f" leader {stream.leader or 'NONE'},"
            f" replicas {replicas or '-'}"
        )
        c = self.consul
        lines.append(f"  control    consul agent {c.url}  (UI at /ui)")
        lines.append(f"    {'signer':<16} {c.signer_url}")
        if self.hydra is not None:
            lines.append(f"    {'hydra':<16} {self.hydra.issuer}  (admin {self.hydra.admin_url})")
        for node in self.nodes:
            lines.append(
                f"  {node.name:<10} consul agent {node.agent.url}, {node.nats.server_name}"
                f" {node.nats.url} (monitoring {node.nats.monitor_url})"
            )
            for inst in node.instances:
                lines.append(f"    {inst.service:<16} {inst.where():<28} {inst.id}")
        return "\n".join(lines)

    # --- stop -------------------------------------------------------------------------

    def close(self) -> None:
        """Everything started, stopped: the instances (together), Hydra, the NATS
        servers and the nodes' agents, the control node (and its signer), the servers."""
        groups: list[list[ChildProcess]] = [
            [i.proc for i in self.instances() if i.proc is not None],
            [self.hydra] if self.hydra is not None else [],
            [*self.nats_nodes, *(n.agent for n in self.nodes)],
            [self.control] if self.control is not None else [],
            list(self.servers),
        ]
        for group in groups:
            stop_together(group)
        for node in self.nodes:  # the processes started before a restart, too
            stop_together(list(node.launcher.started))
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_together(
    procs: Iterable[ChildProcess], timeout: float = READY_TIMEOUT, attempts: int = 3
) -> None:
    """Launch every process, then wait until each is ready (a cluster's members need each
    other for that: Consul servers elect no leader until ``bootstrap_expect`` are up). One
    that exits before it is ready is launched again, ``attempts`` in all (seen: a SIGABRT
    in the forked child of a process busy with gRPC, before its exec; a free port taken by
    another process in between, when it gets new ones); if one fails for good, or is not
    ready in time, every one of them is stopped."""
    procs = list(procs)
    launched = dict.fromkeys(map(id, procs), 1)
    try:
        for proc in procs:
            proc.launch()
        deadline = time.monotonic() + timeout
        pending = list(procs)
        while pending:
            for proc in list(pending):
                if not proc.running:
                    _relaunch(proc, launched[id(proc)], attempts)
                    launched[id(proc)] += 1
                    continue
                ready = False
                with contextlib.suppress(OSError, ValueError):
                    ready = proc.is_ready()
                if ready:
                    proc.wait_ready(timeout)  # what its kind does once ready (ACL tokens)
                    pending.remove(proc)
            if pending and time.monotonic() > deadline:
                names = ", ".join(getattr(p, "node", "") or p.name for p in pending)
                raise TimeoutError(f"not ready after {timeout:g} s: {names}")
            time.sleep(0.1)
    except BaseException:
        stop_together(procs)
        raise


def _relaunch(proc: ChildProcess, launched: int, attempts: int) -> None:
    """``proc`` exited before it was ready: launched again (on new ports if its own were
    taken meanwhile), unless it has had ``attempts`` already."""
    code = proc.stop()  # reaped; its kind's cleanup
    tail = proc.output_tail(10)
    if launched >= attempts:
        raise RuntimeError(f"{proc.name} exited with {code} before it was ready{tail}")
    if "address already in use" in tail and hasattr(proc, "forget_ports"):
        proc.forget_ports()
    print(f"{proc.name} exited with {code} before it was ready; launching it again", flush=True)
    proc.launch()


def stop_together(procs: Iterable[ChildProcess]) -> None:
    """Stop the processes side by side (each its graceful signal, then SIGKILL)."""
    procs = [p for p in procs if p.process is not None]
    if not procs:
        return
    with ThreadPoolExecutor(max_workers=len(procs)) as pool:
        for future in [pool.submit(p.stop) for p in procs]:
            with contextlib.suppress(Exception):
                future.result()


def spawned(job: Callable[[], T]) -> T:
    """Run ``job`` (which starts processes) in the thread that lives as long as this process
    (``devstack.supervisor.spawn``): a child dies with the thread that started it."""
    from devstack.supervisor import spawn

    return spawn(job)


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """``check()`` once it is truthy (errors count as not yet); TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if value := check():
                return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:g} s")
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    """``make run-cluster``: the cluster, its summary, until Ctrl-C."""
    p = argparse.ArgumentParser(prog="python -m devstack.cluster", description=__doc__)
    p.add_argument("--state-dir", type=Path, default=ROOT / ".state" / "cluster")
    p.add_argument("--nodes", type=int, default=3, help="simulated nodes (>= 3)")
    p.add_argument("--replicas", type=int, default=2, help="instances of each domain service")
    p.add_argument("--gateways", type=int, default=2, help="instances of the gateway")
    a = p.parse_args(argv)
    from meshkit.tools.certs import main as mesh_cli

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Ctrl-C (or kill -INT) stops it, even when it was started with SIGINT ignored (a
    # background job of a script), which Python would otherwise keep.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        cluster = Cluster(
            a.state_dir,
            nodes=a.nodes,
            replicas=a.replicas,
            gateways=a.gateways,
            out=lambda line: print(line, flush=True),
        )
    except ValueError as exc:
        p.error(str(exc))
    try:
        cluster.start()
        issue = ["certs", "issue", "operator", "--consul", cluster.consul.http_addr]
        mesh_cli(["--state-dir", str(cluster.state), *issue])
        print("\n" + cluster.summary(), flush=True)
        certs = cluster.state / "certs" / "operator"
        order = cluster.instances("order")[0]
        print(
            "\ntry:\n  ~/.cache/meshkit-shop/bin/grpcurl"
            f" -cacert {certs}/ca.pem -cert {certs}/cert.pem -key {certs}/key.pem"
            f" -max-time 5 {order.where()} list\n"
            "  make cluster-fault SCENARIO=<name>   (a cluster of its own: see docs/cluster.md)"
            "\n\nCtrl-C stops everything.",
            flush=True,
        )
        down: set[str] = set()
        while not stop.wait(0.5):
            for node in cluster.nodes:
                for proc in node.processes:
                    key = f"{node.name}/{getattr(proc, 'name', proc)}/{proc.pid}"
                    if not proc.running and key not in down:
                        down.add(key)
                        print(f"{node.name}: {proc.name} exited (see {cluster.log_dir}/)")
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping ...", flush=True)
        cluster.close()
        print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
