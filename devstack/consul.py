"""A real Consul dev agent as a child process on loopback."""

from __future__ import annotations

import json
import signal
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from devstack.ports import free_ports
from devstack.process import ChildProcess
from devstack.tools import ROOT, consul_binary
from meshkit.security.secrets import write_secret

DEV_CONFIG = ROOT / "infra" / "consul" / "dev.hcl"


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
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def http_addr(self) -> str:
        """``host:port`` of the HTTP API, the form CONSUL_HTTP_ADDR takes."""
        return f"127.0.0.1:{self.http_port}"

    @property
    def url(self) -> str:
        return f"http://{self.http_addr}"

    def command(self) -> list[str]:
        cmd = [consul_binary(), "agent", "-dev", "-config-file", str(DEV_CONFIG)]
        if self.extra_config:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="meshkit-consul-")
            extra = Path(self._tmp.name) / "extra.json"
            # holds the CA's private key (consul_ca_config)
            write_secret(extra, json.dumps(self.extra_config))
            cmd += ["-config-file", str(extra)]
        if self.use_free_ports:
            http, grpc, dns, lan, wan, server = free_ports(6)
            self.http_port, self.grpc_port, self.dns_port = http, grpc, dns
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

    def is_ready(self) -> bool:
        roots = self.get("/v1/agent/connect/ca/roots")
        return (
            bool(self.get("/v1/status/leader"))
            and isinstance(roots, dict)
            and bool(roots.get("Roots"))
        )

    def cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def get(self, path: str) -> object:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return json.loads(resp.read() or b"null")

    def put(self, path: str, body: object) -> object:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="PUT")
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read() or b"null")

    def trust_domain(self) -> str:
        """The Connect trust domain (``<cluster id>.consul``) of the SPIFFE identities."""
        roots = self.get("/v1/agent/connect/ca/roots")
        assert isinstance(roots, dict)
        return str(roots["TrustDomain"])

    def wait_passing(self, service: str, count: int = 1, timeout: float = 15.0) -> None:
        """Wait until Consul reports at least ``count`` passing instances of ``service``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            passing = self.get(f"/v1/health/service/{service}?passing=1")
            if isinstance(passing, list) and len(passing) >= count:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{service}: fewer than {count} passing instance(s) after {timeout}s")


def main() -> None:
    """``make consul``: the dev agent on its default ports, the mesh CA as Connect root."""
    from meshkit.security.certificates import consul_ca_config, load_or_create_ca

    ca = load_or_create_ca(ROOT / ".state" / "ca")
    agent = ConsulAgent(use_free_ports=False, extra_config=consul_ca_config(ca))
    agent.start()
    print(f"consul dev agent on {agent.url} (UI at /ui); Ctrl-C stops it", flush=True)
    try:
        assert agent.process is not None
        agent.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        agent.stop()


if __name__ == "__main__":
    main()
