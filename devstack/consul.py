"""A real Consul dev agent as a child process on loopback."""

from __future__ import annotations

import json
import signal
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

from devstack.ports import free_ports
from devstack.process import ChildProcess
from devstack.tools import ROOT, consul_binary
from meshkit.security.pki import CA
from meshkit.security.secrets import write_secret

DEV_CONFIG = ROOT / "infra" / "consul" / "dev.hcl"
# Every identity may read the faults to inject (meshkit.rpc.faults); only devstack writes.
FAULTS_POLICY = "mesh-faults-read"
FAULTS_RULES = 'key_prefix "mesh/faults/" { policy = "read" }'
# The DNS interface's token (DNS SRV discovery, docs/discovery.md): it reads the catalog.
DNS_POLICY = "mesh-dns-read"
DNS_RULES = 'service_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }'
# How long an instance may take to pass in the catalog: its check runs every second, but
# on a loaded 2-core machine (three test groups, JVMs starting) the agent's sync to the
# catalog can lag; a timeout says what Consul knows of it (health_report).
PASSING_TIMEOUT = 30.0


@dataclass
class ConsulAgent(ChildProcess):
    """``consul agent -dev`` with every port on 127.0.0.1; default ports unless ``free_ports``.

    Ready once it has a leader and a Connect CA root; stopped with SIGINT (it leaves).
    """

    name: ClassVar[str] = "consul"
    stop_signal: ClassVar[int] = signal.SIGINT

    use_free_ports: bool = True
    extra_config: dict[str, object] = field(default_factory=dict)
    http_port: int = 8500
    grpc_port: int = 8502
    dns_port: int = 8600
    # ACLs (always on, default deny): the management token, the agent's and one per
    # identity are kept here (0600 files, 0700 dir), so a restarted agent (in-memory in
    # -dev) gets the same tokens back. None: a temporary directory.
    acl_dir: Path | None = None
    # The signer of the stack (meshkit.security.signer), stopped with the agent.
    signer: ChildProcess | None = field(default=None, repr=False)
    # The mesh CA configured as the Connect CA root (extra_config), held in memory.
    connect_ca: CA | None = field(default=None, repr=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)
    _tokens: dict[str, str] = field(default_factory=dict, repr=False)
    # The free ports taken at the first start, kept: a restarted agent binds the same ones,
    # so every process that knows its address finds it again.
    _free: tuple[int, ...] = field(default=(), repr=False)

    @property
    def http_addr(self) -> str:
        """``host:port`` of the HTTP API, the form CONSUL_HTTP_ADDR takes."""
        return f"127.0.0.1:{self.http_port}"

    @property
    def url(self) -> str:
        return f"http://{self.http_addr}"

    # --- ACLs ------------------------------------------------------------------------

    @property
    def tokens_dir(self) -> Path:
        if self.acl_dir is None:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="meshkit-consul-")
            self.acl_dir = Path(self._tmp.name) / "acl"
        return self.acl_dir

    def _secret(self, path: Path) -> str:
        """The token in ``path``, made (a random UUID, a 0600 file) on first use."""
        if not path.exists():
            write_secret(path, str(uuid.uuid4()) + "\n")
        return path.read_text().strip()

    @property
    def management_token(self) -> str:
        """The bootstrap (management) token: devstack's own, no workload ever gets it."""
        return self._secret(self.tokens_dir / "management.token")

    def acl_config(self) -> dict[str, object]:
        return {
            "acl": {
                "enabled": True,
                "default_policy": "deny",
                "down_policy": "extend-cache",
                # Every token is in the config or made by devstack with a SecretID it keeps:
                # none is set through the agent's API, so there is nothing to persist.
                "enable_token_persistence": False,
                "tokens": {
                    "initial_management": self.management_token,
                    "agent": self._secret(self.tokens_dir / "agent.token"),
                    # What the DNS interface answers with (DNS SRV discovery): reads only.
                    "dns": self._secret(self.tokens_dir / "dns.token"),
                },
            }
        }

    def service_token(self, name: str) -> str:
        """The ACL token of the identity ``name`` (a service, the gateway, a tool): a
        ServiceIdentity of that name (register itself, read the catalog, its intentions and
        the CA roots) and the read of ``mesh/faults/`` in the KV (the faults to inject).
        Made on first use, kept in ``<acl_dir>/tokens``."""
        if name not in self._tokens:
            secret = self._secret(self.tokens_dir / "tokens" / f"{name}.token")
            grants = {
                "ServiceIdentities": [{"ServiceName": name}],
                "Policies": [{"Name": FAULTS_POLICY}],
            }
            self._create_token(secret, f"identity {name}", grants)
            self._tokens[name] = secret
        return self._tokens[name]

    def token_file(self, name: str) -> Path:
        """The file (0600) of ``name``'s token, made on first use: for ``--consul-token-file``."""
        self.service_token(name)
        return self.tokens_dir / "tokens" / f"{name}.token"

    def _create_token(self, secret: str, description: str, grants: dict[str, object]) -> None:
        body = {"SecretID": secret, "Description": description, **grants}
        deadline = time.monotonic() + 15
        while True:  # the ACL system comes up a moment after the leader
            try:
                self.put("/v1/acl/token", body)
                return
            except urllib.error.HTTPError as exc:
                # made before (400; 500 "rpc error making call: ..." from an agent
                # that forwards to the cluster's leader)
                if exc.code in (400, 500) and b"already" in exc.read():
                    return
                if time.monotonic() > deadline:
                    raise
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    def _bootstrap_acl(self) -> None:
        """The agent's token (its own registration and checks), then every identity's
        token of a previous life of this agent, with the same secrets."""
        rules = 'node_prefix "" { policy = "write" }\nservice_prefix "" { policy = "read" }'
        deadline = time.monotonic() + 15
        policies = (("mesh-agent", rules), (FAULTS_POLICY, FAULTS_RULES), (DNS_POLICY, DNS_RULES))
        for name, policy in policies:
            while True:
                try:
                    self.put("/v1/acl/policy", {"Name": name, "Rules": policy})
                    break
                except urllib.error.HTTPError as exc:
                    if exc.code in (400, 500) and b"already exists" in exc.read():
                        break
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.2)
        agent = self._secret(self.tokens_dir / "agent.token")
        self._create_token(agent, "the agent", {"Policies": [{"Name": "mesh-agent"}]})
        dns = self._secret(self.tokens_dir / "dns.token")
        self._create_token(dns, "the DNS interface", {"Policies": [{"Name": DNS_POLICY}]})
        self._tokens.clear()
        for path in sorted((self.tokens_dir / "tokens").glob("*.token")):
            self.service_token(path.name.removesuffix(".token"))

    def wait_ready(self, timeout: float | None = None) -> Self:
        """Ready (``start`` = ``launch`` + this; several agents of a cluster are launched
        first, then waited for), then its ACL tokens made."""
        try:
            super().wait_ready(timeout)
        finally:
            # The agent has read its config: the file with the CA key goes (each start
            # writes it anew).
            if self._tmp is not None:
                (Path(self._tmp.name) / "extra.json").unlink(missing_ok=True)
        try:
            self._bootstrap_acl()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def signer_url(self) -> str:
        """The URL of the stack's signer ("" when none runs)."""
        return str(getattr(self.signer, "info", {}).get("url", "")) if self.signer else ""

    def identity_env(self, name: str) -> dict[str, str]:
        """What a process with the identity ``name`` runs with: its token, the signer."""
        return {"CONSUL_HTTP_TOKEN": self.service_token(name), "MESH_SIGNER_URL": self.signer_url}

    # --- the process ------------------------------------------------------------------

    def command(self) -> list[str]:
        cmd = [consul_binary(), "agent", *self.mode_args(), "-config-file", str(DEV_CONFIG)]
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="meshkit-consul-")
        extra = Path(self._tmp.name) / "extra.json"
        # holds the CA's private key (consul_ca_config) and the management token
        write_secret(extra, json.dumps({**self.extra_config, **self.acl_config()}))
        cmd += ["-config-file", str(extra)]
        if self.use_free_ports:
            http, grpc, dns, lan, wan, server = self.reserve_ports()
            cmd += [
                f"-http-port={http}",
                f"-grpc-port={grpc}",
                f"-dns-port={dns}",
                f"-serf-lan-port={lan}",
                f"-serf-wan-port={wan}",
                f"-server-port={server}",
                "-hcl=ports { grpc_tls = -1 }",
            ]
        return cmd

    def working_dir(self) -> Path | None:
        # A -dev agent has no data dir, and still loads saved services and checks from
        # ./services and ./checks where it runs: in its own directory, not the project's
        # (whose services/ it reported as undecodable service files).
        return Path(self._tmp.name) if self._tmp is not None else None

    def start(self, timeout: float | None = None) -> Self:
        """Launch and wait until ready. A dev agent on free ports that exits before it is
        ready starts again on new ones, up to three times: another process may have taken
        a port between the pick and the agent's bind ("address already in use", with
        parallel test tiers). A timeout, or a third exit, is raised with its log."""
        for attempt in range(3):
            try:
                return super().start(timeout)
            except RuntimeError:  # it exited (a TimeoutError is not retried)
                if attempt == 2 or not (self.use_free_ports and self.mode_args() == ["-dev"]):
                    raise
                self._free = ()  # pick anew
        raise AssertionError("unreachable")

    def mode_args(self) -> list[str]:
        """How the agent runs: ``-dev`` (a server of its own, in memory); a cluster's
        servers and client agents say otherwise (devstack.cluster_consul)."""
        return ["-dev"]

    def reserve_ports(self) -> tuple[int, ...]:
        """The free ports (HTTP, gRPC, DNS, Serf LAN, Serf WAN, server RPC), taken once and
        kept, so that the agents of a cluster know each other's before they start."""
        self._free = self._free or tuple(free_ports(6))
        self.http_port, self.grpc_port, self.dns_port = self._free[:3]
        return self._free

    def is_ready(self) -> bool:
        roots = self.get("/v1/agent/connect/ca/roots")
        return (
            bool(self.get("/v1/status/leader"))
            and isinstance(roots, dict)
            and bool(roots.get("Roots"))
        )

    def cleanup(self) -> None:
        if self.signer is not None:
            self.signer.stop()
            self.signer = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _headers(self, token: str | None) -> dict[str, str]:
        token = self.management_token if token is None else token
        return {"X-Consul-Token": token} if token else {}

    def get(self, path: str, token: str | None = None) -> object:
        """GET with ``token`` (default: the management token, devstack's; "" none)."""
        req = urllib.request.Request(self.url + path, headers=self._headers(token))
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read() or b"null")

    def put(self, path: str, body: object, token: str | None = None) -> object:
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            method="PUT",
            headers=self._headers(token),
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read() or b"null")

    def trust_domain(self) -> str:
        """The Connect trust domain (``<cluster id>.consul``) of the SPIFFE identities."""
        roots = self.get("/v1/agent/connect/ca/roots")
        assert isinstance(roots, dict)
        return str(roots["TrustDomain"])

    def wait_passing(self, service: str, count: int = 1, timeout: float = PASSING_TIMEOUT) -> None:
        """Wait until Consul reports at least ``count`` passing instances of ``service``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            passing = self.get(f"/v1/health/service/{service}?passing=1")
            if isinstance(passing, list) and len(passing) >= count:
                return
            time.sleep(0.1)
        raise TimeoutError(
            f"{service}: fewer than {count} passing instance(s) after {timeout}s;"
            f" {self.health_report(service)}"
        )

    def health_report(self, service: str) -> str:
        """What Consul knows of ``service``'s instances, for an error message: their checks
        (status, output) in the catalog, and in the local agent, whose anti-entropy sync
        puts them in the catalog."""

        def rows(checks: list[dict[str, object]]) -> str:
            text = [f"{c.get('ServiceID')} {c.get('Status')}: {c.get('Output')}" for c in checks]
            return "; ".join(text).replace("\n", " ") or "none"

        try:
            catalog = self.get(f"/v1/health/service/{service}")
            agent = self.get("/v1/agent/checks")
        except (OSError, ValueError) as exc:
            return f"Consul did not answer: {exc}"
        assert isinstance(catalog, list) and isinstance(agent, dict)
        in_catalog = [c for e in catalog for c in e["Checks"] if c.get("ServiceID")]
        in_agent = [c for c in agent.values() if c.get("ServiceName") == service]
        return f"in the catalog: {rows(in_catalog)}; in the agent: {rows(in_agent)}"


def main() -> None:
    """``make consul``: the dev agent on its default ports, the mesh CA as Connect root."""
    from devstack.signer import new_ca
    from meshkit.security.pki import consul_ca_config

    state = ROOT / ".state"
    ca = new_ca(state)  # in memory; its public root in .state/ca/ca.pem
    agent = ConsulAgent(
        use_free_ports=False, extra_config=consul_ca_config(ca), acl_dir=state / "consul"
    )
    agent.start()
    print(f"consul dev agent on {agent.url} (UI at /ui); Ctrl-C stops it", flush=True)
    print(f"ACLs on: the management token is in {agent.tokens_dir / 'management.token'}")
    try:
        assert agent.process is not None
        agent.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        agent.stop()


if __name__ == "__main__":
    main()
