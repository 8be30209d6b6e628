"""The infrastructure of one benchmark run: a state directory with the mesh CA, a Consul
dev agent (the CA as its Connect root, the intentions applied), NATS when a section needs
it, certificates for the load generators, and every child process, stopped at the end."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import IO

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor

from bench.procs import Child, start_python, wait_ready
from devstack.consul import ConsulAgent
from devstack.intentions import apply_intentions
from devstack.nats import NatsServer
from meshkit.security.certificates import issue_leaf, load_or_create_ca, service_dns_names
from meshkit.security.identity import SpiffeId
from shop.inventory.v1 import inventory_pb2

INVENTORY_SERVICE = "shop.inventory.v1.InventoryService"
GET_STOCK = f"{INVENTORY_SERVICE}/GetStock"


class Stack:
    """Consul, NATS and the processes of a run, in a temporary state directory."""

    def __init__(self, keep: bool = False) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="meshkit-bench-"))
        self.keep = keep
        self.ca = load_or_create_ca(self.state / "ca")
        self.log: IO[str] = open(self.state / "processes.log", "a")  # noqa: SIM115
        self.consul: ConsulAgent | None = None
        self.nats: NatsServer | None = None
        self.children: list[Child] = []
        self.trust_domain = ""

    # --- infrastructure ---------------------------------------------------------------

    def start_consul(self) -> ConsulAgent:
        from meshkit.security.certificates import consul_ca_config

        agent = ConsulAgent(
            extra_config=consul_ca_config(self.ca), log_path=self.state / "consul.log"
        )
        self.consul = agent.start()
        apply_intentions(agent)
        roots = agent.get("/v1/agent/connect/ca/roots")
        self.trust_domain = str(roots["TrustDomain"])  # type: ignore[index]
        return agent

    def start_nats(self) -> NatsServer:
        if self.nats is None:
            self.nats = NatsServer(
                store_dir=self.state / "nats", log_path=self.state / "nats.log"
            ).start()
        return self.nats

    @property
    def consul_addr(self) -> str:
        assert self.consul is not None
        return self.consul.http_addr

    @property
    def nats_url(self) -> str:
        return self.nats.url if self.nats else "nats://127.0.0.1:1"

    def certs(self, name: str) -> Path:
        """key.pem, cert.pem and ca.pem of a leaf for ``name`` (a client or a bare server)."""
        out = self.state / "certs" / name
        if not (out / "cert.pem").exists():
            leaf = issue_leaf(
                self.ca, SpiffeId(self.trust_domain, name), service_dns_names(name), 24 * 3600.0
            )
            out.mkdir(parents=True, exist_ok=True)
            (out / "key.pem").write_bytes(leaf.key_pem)
            (out / "cert.pem").write_bytes(leaf.cert_pem)
            (out / "ca.pem").write_bytes(self.ca.cert_pem)
        return out

    def protoset(self) -> Path:
        """InventoryService's descriptors with their imports, for ghz (no reflection needed)."""
        path = self.state / "inventory.protoset"
        if not path.exists():
            files: dict[str, FileDescriptor] = {}

            def add(fd: FileDescriptor) -> None:  # imports first, as protoc orders them
                if fd.name in files:
                    return
                for dep in fd.dependencies:
                    add(dep)
                files[fd.name] = fd

            add(inventory_pb2.DESCRIPTOR)
            fds = descriptor_pb2.FileDescriptorSet()
            for fd in files.values():
                fd.CopyToProto(fds.file.add())
            path.write_bytes(fds.SerializeToString())
        return path

    # --- processes --------------------------------------------------------------------

    def server(self, mode: str, *, name: str = "inventory", relay: bool = False) -> Child:
        """A bench server (bench/servers.py): ``bare``, ``tls`` or ``mesh``."""
        return self.servers((mode, name, relay))[0]

    def servers(self, *specs: tuple[str, str, bool]) -> list[Child]:
        """Bench servers ``(mode, name, relay)``, started together (their imports and
        start-up overlap), each ready when this returns."""
        started = []
        for mode, name, relay in specs:
            args = ["-m", "bench.servers", mode]
            marker = "BENCH_READY "
            if mode == "tls":
                args += ["--certs", str(self.certs(name))]
            elif mode == "mesh":
                marker = "MESH_READY "
                args += ["--name", name, *(["--relay"] if relay else []), "--"]
                args += self.mesh_flags()
            child = start_python(f"{mode}:{name}", args, log=self.log)
            self.children.append(child)
            started.append((child, marker))
        return [wait_ready(child, marker, self.log) for child, marker in started]

    def mesh_flags(self) -> list[str]:
        return [
            "--consul", self.consul_addr,
            "--nats", self.nats_url,
            "--state-dir", str(self.state),
            "--shutdown-grace", "1s",
        ]  # fmt: skip

    def domain_services(self, names: list[str], env: dict[str, dict[str, str]]) -> list[Child]:
        """Real domain services (``python -m services.<name>``, as ``make run`` starts
        them), started together from this thread (a child's PDEATHSIG fires when the
        thread that started it ends, so never from a pool), each ready when this returns."""
        started = []
        for name in names:
            child = start_python(
                name, ["-m", f"services.{name}", *self.mesh_flags()], log=self.log,
                env=env.get(name),
            )  # fmt: skip
            self.children.append(child)
            started.append(child)
        return [wait_ready(child, "MESH_READY ", self.log) for child in started]

    def stop(self, child: Child) -> None:
        child.stop()
        with contextlib.suppress(ValueError):
            self.children.remove(child)

    def close(self) -> None:
        """Everything started, stopped (reverse order); the state removed unless kept."""
        for child in reversed(self.children):
            with contextlib.suppress(Exception):
                child.stop()
        self.children.clear()
        if self.nats is not None:
            self.nats.stop()
            self.nats = None
        if self.consul is not None:
            self.consul.stop()
            self.consul = None
        self.log.close()
        if not self.keep:
            shutil.rmtree(self.state, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
