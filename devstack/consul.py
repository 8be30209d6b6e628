"""A real Consul dev agent as a child process on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devstack.ports import free_ports
from devstack.tools import ROOT, consul_binary

DEV_CONFIG = ROOT / "infra" / "consul" / "dev.hcl"


@dataclass
class ConsulAgent:
    """``consul agent -dev`` with every port on 127.0.0.1; default ports unless ``free_ports``."""

    use_free_ports: bool = True
    extra_config: dict[str, object] = field(default_factory=dict)
    log_path: Path | None = None
    http_port: int = 8500
    grpc_port: int = 8502
    dns_port: int = 8600
    process: subprocess.Popen[bytes] | None = None
    _cmd: list[str] = field(default_factory=list)
    _tmp: tempfile.TemporaryDirectory[str] | None = None

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
            assert self._tmp is not None
            extra = Path(self._tmp.name) / "extra.json"
            extra.write_text(json.dumps(self.extra_config))
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

    def start(self, timeout: float = 30.0) -> ConsulAgent:
        """Start the agent and wait until it has a leader and a Connect CA root."""
        self._tmp = tempfile.TemporaryDirectory(prefix="meshkit-consul-")
        cmd = self._cmd = self.command()
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"consul exited with {self.process.returncode}: {self._cmd}")
            try:
                leader = self.get("/v1/status/leader")
                roots = self.get("/v1/agent/connect/ca/roots")
                if leader and roots.get("Roots"):
                    return
            except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"consul at {self.url} not ready after {timeout} s")

    def get(self, path: str) -> object:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return json.loads(resp.read() or b"null")

    def put(self, path: str, body: object) -> object:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="PUT")
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read() or b"null")

    def wait_passing(self, service: str, count: int = 1, timeout: float = 15.0) -> None:
        """Wait until Consul reports at least ``count`` passing instances of ``service``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            passing = self.get(f"/v1/health/service/{service}?passing=1")
            if isinstance(passing, list) and len(passing) >= count:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{service}: fewer than {count} passing instance(s) after {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the agent (SIGINT: it leaves the cluster) and wait for it."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ConsulAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
