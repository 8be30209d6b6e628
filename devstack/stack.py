"""One way to start a stack, for ``make run``, the tests and the benchmarks.

A ``Stack`` lives in a state directory (the public root of its mesh CA in ``ca/``, the
CA itself in memory only, the ACL tokens in ``consul/``, the databases, the logs) and
starts, on loopback: a Consul dev agent with ACLs on (default deny) whose Connect CA
root is the mesh CA, with the intentions of infra/consul/intentions/ applied, and the
signer that issues every workload's leaf (each workload gets its own ACL token); a NATS
server with JetStream (its store in ``nats/``); the services; Ory Hydra and the gateway.
Free ports by default, ``make run``'s fixed ones (the README's) with ``fixed_ports``. As
a context manager it starts the infrastructure and stops everything it started, in
reverse order, at the end::

    with Stack(state) as stack:
        stack.start_services()               # the four domain services, passing in Consul
        mesh, _ = await open_mesh(stack.mesh_config("operator"))
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Self, TypeVar

from devstack.brokers import BrokerServer, broker_server
from devstack.consul import PASSING_TIMEOUT, ConsulAgent
from devstack.edge import Edge, start_edge
from devstack.eureka import EurekaServer
from devstack.intentions import apply_intentions
from devstack.nats import NatsServer
from devstack.postgres import PostgresCluster
from devstack.process import ChildProcess
from devstack.services import NO_NATS, Launcher, ServiceProcess
from devstack.signer import new_ca, start_signer
from meshkit.config import DEFAULT_MESH_FILE, MeshConfig, MeshPolicy
from meshkit.security.pki import CA, consul_ca_config

# make run's ports (the README's grpcurl calls use them); order last: it calls inventory.
SERVICE_PORTS = {"inventory": 50052, "payment": 50053, "shipping": 50054, "order": 50051}
DOMAIN_SERVICES = tuple(SERVICE_PORTS)
EUREKA_PORT = 8761  # Eureka's default
NATS_PORTS = (4222, 8222)  # client, monitoring: the NATS defaults

C = TypeVar("C", bound=ChildProcess)


def start_consul(
    state: Path, log_path: Path | None = None, fixed_ports: bool = False
) -> ConsulAgent:
    """A Consul dev agent whose Connect CA root is a new mesh CA (``consul.connect_ca``),
    intentions applied, and its signer."""
    return _start_consul(state, log_path, fixed_ports, new_ca(state))[0]


def _start_consul(
    state: Path, log_path: Path | None, fixed_ports: bool, ca: CA
) -> tuple[ConsulAgent, list[str]]:
    """Consul with ACLs on (default deny; the tokens in ``<state>/consul/``), ``ca`` as
    its Connect CA root, the intentions applied; then the signer, given the CA key on its
    stdin (``consul.signer``, stopped with the agent). No CA key is written to disk."""
    agent = ConsulAgent(
        use_free_ports=not fixed_ports,
        extra_config=consul_ca_config(ca),
        log_path=log_path,
        acl_dir=state / "consul",
        connect_ca=ca,
    ).start()
    try:
        intentions = apply_intentions(agent)
        start_signer(state, agent, ca, log_path.with_name("signer.log") if log_path else None)
        return agent, intentions
    except BaseException:
        agent.stop()
        raise


def mesh_config(
    name: str, consul: ConsulAgent, state: Path, nats: NatsServer | None = None
) -> MeshConfig:
    """The mesh of this process (a client, or a server in a thread) with ``name``'s identity."""
    return MeshConfig(
        name=name,
        consul_http_addr=consul.http_addr,
        consul_token=consul.service_token(name),
        signer_url=consul.signer_url,
        nats_url=nats.url if nats else "nats://127.0.0.1:4222",
        nats_creds=nats.creds(name) if nats else None,  # name's own broker credential
        state_dir=state,
        policy=MeshPolicy.load(DEFAULT_MESH_FILE),
        trace_sample=1.0,  # every trace started, as make run's processes do
    )


class Stack:
    """Consul (the mesh CA, intentions), NATS, the services and the edge of one state dir.

    ``start()`` (or ``with``) starts Consul, and NATS unless ``nats=False``; each
    ``start_*`` is idempotent for the infrastructure, so a user may also start only what it
    needs. Logs go to ``log_dir`` (``<state>/logs`` unless given): consul.log, nats.log,
    services.log (every service, a line each, prefixed by its instance), hydra.log.
    """

    def __init__(
        self,
        state: Path,
        *,
        fixed_ports: bool = False,
        nats: bool = True,
        insecure: bool = False,
        log_dir: Path | None = None,
        broker: str = "nats",
        discovery: str = "consul",
        database: str = "sqlite",
    ) -> None:
        self.state = state.resolve()
        # The backend of each kind the services use (make run BROKER= DISCOVERY= DATABASE=).
        self.broker = broker
        self.discovery = discovery
        self.database = database
        if database not in ("sqlite", "postgres"):
            raise ValueError(f"database {database!r}: expected sqlite or postgres")
        self.fixed_ports = fixed_ports
        self.with_nats = nats
        self.insecure = insecure
        self.log_dir = (log_dir or self.state / "logs").resolve()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # The mesh CA of this stack, in memory: devstack's, Consul's and the signer's only.
        self.ca = new_ca(self.state)
        self.consul: ConsulAgent | None = None
        self.nats: NatsServer | None = None
        # The registry when it is not Consul's catalog (``discovery``): Eureka.
        self.eureka: EurekaServer | None = None
        # The broker when it is not NATS (``broker``): Kafka, RabbitMQ, SQS.
        self.broker_server: BrokerServer | None = None
        # The services' databases when they are not SQLite files (``database``).
        self.postgres: PostgresCluster | None = None
        self.edge: Edge | None = None
        self.intentions: list[str] = []
        self.services: dict[str, ServiceProcess] = {}  # the latest instance of each name
        self.children: list[ChildProcess] = []  # other processes (adopted), stopped at close
        self._launcher: Launcher | None = None
        self._log: IO[str] | None = None

    # --- infrastructure ---------------------------------------------------------------

    def start(self) -> Self:
        """Consul, then NATS (unless ``nats=False``); on failure everything is stopped."""
        try:
            if self.broker != "nats":
                self._broker().launch()  # it starts while Consul does
            if self.discovery == "eureka":
                self.start_eureka(wait=False)  # the JVM too
            self.start_consul()
            if self.database == "postgres":
                self.start_postgres()
            if self.discovery == "eureka":
                self.start_eureka()
            if self.broker != "nats":
                self.start_broker()
            elif self.with_nats:
                self.start_nats()
        except BaseException:
            self.close()
            raise
        return self

    def start_consul(self) -> ConsulAgent:
        if self.consul is None or not self.consul.running:
            self.consul, self.intentions = _start_consul(
                self.state, self.log_dir / "consul.log", self.fixed_ports, self.ca
            )
            if self._launcher is not None:
                self._launcher.consul = self.consul
        return self.consul

    def restart_consul(self, down: float = 0.0) -> ConsulAgent:
        """Consul stopped (its signer with it) and, ``down`` seconds later, started again
        on the same ports. A dev agent comes back empty: the ACL tokens are made again with
        the same secrets, the intentions applied again, the signer started again on its
        port; the services register themselves again (``meshkit.lifecycle.registered``),
        and what was in the KV (faults) is gone. Its cluster id is pinned (Connect's
        ``ca_config.cluster_id``) to the one it had, so the trust domain, ``<cluster
        id>.consul``, stays the same: a new one would set the workloads that learned the
        old one and those that start with the new one apart (UNAUTHENTICATED) until every
        workload has caught up."""
        agent = self.consul
        assert agent is not None, "Consul is not started"
        cluster_id = agent.trust_domain().removesuffix(".consul")
        connect = agent.extra_config.setdefault("connect", {})
        assert isinstance(connect, dict)
        connect.setdefault("ca_config", {})["cluster_id"] = cluster_id
        agent.stop()
        time.sleep(down)
        try:
            agent.start()
        except RuntimeError as exc:  # seen once on a doubly loaded machine: SIGABRT at start
            print(f"devstack: Consul did not come back ({exc}); starting it once more")
            time.sleep(1.0)
            agent.start()
        self.intentions = apply_intentions(agent)
        start_signer(self.state, agent, self.ca, self.log_dir / "signer.log")
        return agent

    def start_nats(self) -> NatsServer:
        if self.nats is None:
            port, monitor = NATS_PORTS if self.fixed_ports else (0, 0)
            self.nats = NatsServer(
                port, monitor, store_dir=self.state / "nats", log_path=self.log_dir / "nats.log"
            )
        if not self.nats.running:
            self.nats.start()
        if self._launcher is not None:
            self._launcher.nats = self.nats
        return self.nats

    def start_eureka(self, wait: bool = True) -> EurekaServer:
        """The Eureka server (``discovery="eureka"``; make run's port 8761 with fixed
        ports), ready unless ``wait=False``. Consul stays the security plane: CA, ACL
        tokens, intentions."""
        if self.eureka is None:
            self.eureka = EurekaServer(
                port=EUREKA_PORT if self.fixed_ports else 0, log_path=self.log_dir / "eureka.log"
            )
        if not self.eureka.running:
            self.eureka.launch()
        if wait:
            self.eureka.wait_ready()
        return self.eureka

    @property
    def discovery_url(self) -> str:
        """Where the services find the registry (``--discovery-url``); "" for Consul."""
        if self.discovery == "eureka":
            return self.start_eureka().url
        if self.discovery == "dns":
            # Consul's DNS interface stands in for Kubernetes' (SRV records of the passing
            # instances); the instances register in Consul, as the platform would publish.
            dns_port = self.start_consul().dns_port
            return f"dns://127.0.0.1:{dns_port}/?name={{service}}.service.consul&register=consul"
        return ""

    def discovery_env(self, name: str) -> dict[str, str]:
        """What an instance is told of the registry (a ``Launcher`` env provider)."""
        if self.discovery == "consul":
            return {}
        return {"MESH_DISCOVERY": self.discovery, "MESH_DISCOVERY_URL": self.discovery_url}

    def start_postgres(self) -> PostgresCluster:
        """The PostgreSQL cluster (``database="postgres"``): a database and a role per
        domain service, its files in ``<state>/postgres``, the roles' passwords in
        ``<state>/postgres-auth``; make run's port 5432 if free. Every service launched
        gets its DSN and password file (``PostgresCluster.env``)."""
        if self.postgres is None:
            self.postgres = PostgresCluster(
                data_dir=self.state / "postgres",
                auth_dir=self.state / "postgres-auth",
                services=DOMAIN_SERVICES,
                fixed_port=self.fixed_ports,
                log_path=self.log_dir / "postgres.log",
            )
        launcher = self._launcher
        if launcher is not None and self.postgres.env not in launcher.env_providers:
            launcher.env_providers.append(self.postgres.env)
        if not self.postgres.running:
            self.postgres.start()
        return self.postgres

    def start_broker(self) -> BrokerServer:
        """The stack's event broker (``broker``), its data in ``<state>/<broker>``; every
        service launched gets its settings (``env``)."""
        if self.broker == "nats":
            return self.start_nats()  # type: ignore[return-value]
        server = self._broker()
        return server.wait_ready() if server.running else server.start()

    def _broker(self) -> BrokerServer:
        if self.broker_server is None:
            self.broker_server = broker_server(
                self.broker,
                store_dir=self.state / self.broker,
                log_path=self.log_dir / f"{self.broker}.log",
                fixed_ports=self.fixed_ports,
            )
            if self._launcher is not None:
                self._launcher.env_providers.append(self.broker_server.env)
        return self.broker_server

    @property
    def consul_addr(self) -> str:
        assert self.consul is not None, "Consul is not started"
        return self.consul.http_addr

    @property
    def nats_url(self) -> str:
        return self.nats.url if self.nats is not None else NO_NATS

    @property
    def trust_domain(self) -> str:
        assert self.consul is not None, "Consul is not started"
        return self.consul.trust_domain()

    def wait_passing(self, service: str, count: int = 1, timeout: float = PASSING_TIMEOUT) -> None:
        """Until the stack's registry has ``count`` healthy instances of ``service``."""
        if self.discovery == "eureka":
            eureka = self.start_eureka()
            deadline = time.monotonic() + timeout
            while len(eureka.instances(service)) < count:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{service}: fewer than {count} UP in Eureka")
                time.sleep(0.1)
            return
        assert self.consul is not None, "Consul is not started"
        self.consul.wait_passing(service, count, timeout)

    def mesh_config(self, name: str) -> MeshConfig:
        """A mesh in this process with ``name``'s identity, in this stack."""
        assert self.consul is not None, "Consul is not started"
        config = mesh_config(name, self.consul, self.state, self.nats)
        if self.discovery != "consul":
            config = dataclasses.replace(
                config, discovery=self.discovery, discovery_url=self.discovery_url
            )
        if self.broker_server is not None:  # name's own credential, as its services get
            url = self.broker_server.env(name).get("MESH_BROKER_URL", self.broker_server.url)
            config = dataclasses.replace(config, broker=self.broker, broker_url=url)
        return config

    # --- services ---------------------------------------------------------------------

    log_name = "services.log"

    @property
    def log(self) -> IO[str]:
        """services.log: the output of every service process, a line each."""
        if self._log is None:
            self._log = open(self.log_dir / self.log_name, "a")  # noqa: SIM115
        return self._log

    @property
    def launcher(self) -> Launcher:
        """Starts service processes against this stack's Consul and NATS."""
        if self._launcher is None:
            self._launcher = Launcher(self.start_consul(), self.nats, self.state, log=self.log)
            self._launcher.env_providers.append(self.discovery_env)
            if self.broker_server is not None:
                self._launcher.env_providers.append(self.broker_server.env)
            if self.database == "postgres":  # the services' databases before the services
                self.start_postgres()
        return self._launcher

    def service_args(self, name: str) -> list[str]:
        """The port (make run's with fixed ports, else a free one) and ``--insecure``."""
        port = SERVICE_PORTS.get(name, 0) if self.fixed_ports else 0
        return ["--port", str(port), *(["--insecure"] if self.insecure else [])]

    def start_service(
        self,
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        module: str | None = None,
        wait_passing: bool = True,
    ) -> ServiceProcess:
        """An instance of ``name`` (``args`` after the stack's own), ready and, unless
        ``wait_passing=False``, passing in Consul."""
        return self.start_services(
            [name], *args, env={name: env or {}}, module=module, wait_passing=wait_passing
        )[name]

    def start_services(
        self,
        names: Iterable[str] = DOMAIN_SERVICES,
        *args: str,
        env: dict[str, dict[str, str]] | None = None,
        module: str | None = None,
        wait_passing: bool = True,
    ) -> dict[str, ServiceProcess]:
        """Instances of ``names``, launched together (their start-ups overlap), each
        ready, and passing in Consul unless ``wait_passing=False``."""
        launched = [
            self.launcher.launch(
                name, *self.service_args(name), *args, env=(env or {}).get(name), module=module
            )
            for name in names
        ]
        for proc in launched:
            proc.wait_ready()
            self.services[proc.name] = proc
        if wait_passing:
            for proc in launched:
                try:
                    self.wait_passing(proc.name)
                except TimeoutError as exc:  # with what the instance and Consul wrote
                    agent = self.consul.output_tail(10) if self.consul else ""
                    raise TimeoutError(f"{exc}{proc.output_tail()}{agent}") from None
        return {proc.name: proc for proc in launched}

    def start_edge(self, *gateway_args: str) -> Edge:
        """Ory Hydra with a client registered (``<state>/oauth/client.json``), then the
        gateway trusting it, registered in Consul."""
        if self.edge is None:
            consul = self.start_consul()
            nats = None if self.broker != "nats" else self.nats or self.start_nats()
            self.edge = start_edge(
                self.state,
                consul,
                nats,
                free_ports=not self.fixed_ports,
                log=self.log,
                gateway_args=list(gateway_args),
                log_dir=self.log_dir,
                env=self.discovery_env("gateway"),
            )
        return self.edge

    # --- other processes, stopping ----------------------------------------------------

    def adopt(self, child: C) -> C:
        """A process started by the user of the stack, to be stopped with it."""
        self.children.append(child)
        return child

    def stop(self, child: ChildProcess) -> None:
        """Stop one process of the stack (graceful), and forget it."""
        child.stop()
        with contextlib.suppress(ValueError):
            self.children.remove(child)

    def close(self) -> None:
        """Everything started, stopped in reverse order: the edge, other processes, the
        services, NATS, Consul."""
        steps = []
        if self.edge is not None:
            steps.append(self.edge.stop)
        steps += [child.stop for child in reversed(self.children)]
        if self._launcher is not None:
            steps.append(self._launcher.stop_all)
        if self.postgres is not None:
            steps.append(self.postgres.discard)
        if self.nats is not None:
            steps.append(self.nats.stop)
        if self.broker_server is not None:
            steps.append(self.broker_server.stop)
        if self.eureka is not None:
            steps.append(self.eureka.stop)
        if self.consul is not None:
            steps.append(self.consul.stop)
        for step in steps:
            with contextlib.suppress(Exception):
                step()
        self.edge = None
        self.children.clear()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
