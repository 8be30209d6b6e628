"""The infrastructure of one benchmark run: a state directory with the mesh CA, a Consul
dev agent (the CA as its Connect root, the intentions applied), NATS when a section needs
it, certificates for the load generators, and every child process, stopped at the end."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor

from bench.procs import Child, start_python, wait_ready
from devstack.consul import ConsulAgent
from devstack.stack import Stack as DevStack
from meshkit.tools.certs import main as certs_cli
from shop.inventory.v1 import inventory_pb2
from shop.order.v1 import order_pb2

# The identities bench.client's mesh runs take (--identity; chain's hops as order).
CLIENT_IDENTITIES = ("operator", "order")
INVENTORY_SERVICE = "shop.inventory.v1.InventoryService"
GET_STOCK = f"{INVENTORY_SERVICE}/GetStock"
PLACE_ORDER = "shop.order.v1.OrderService/PlaceOrder"


class Stack(DevStack):
    """devstack's Stack in a temporary state directory (removed at the end unless kept),
    NATS only when a section asks for it, and the bench's own processes."""

    def __init__(self, keep: bool = False) -> None:
        state = Path(tempfile.mkdtemp(prefix="meshkit-bench-"))
        super().__init__(state, nats=False, log_dir=state)
        self.keep = keep

    log_name = "processes.log"  # what every process of the run prints

    # --- infrastructure ---------------------------------------------------------------

    def start_consul(self) -> ConsulAgent:
        consul = super().start_consul()
        for identity in CLIENT_IDENTITIES:  # what bench.client reads for --identity
            consul.service_token(identity)
        return consul

    def certs(self, name: str) -> Path:
        """key.pem, cert.pem and ca.pem of a leaf for ``name`` (a client or a bare server),
        from the signer with ``name``'s Consul token, as ``make run`` issues operator's."""
        out = self.state / "certs" / name
        if not (out / "cert.pem").exists():
            consul = self.start_consul()
            consul.service_token(name)
            certs_cli(
                [
                    "--state-dir",
                    str(self.state),
                    "certs",
                    "issue",
                    name,
                    "--consul",
                    consul.http_addr,
                ]
            )
        return out

    def protoset(self) -> Path:
        """InventoryService's and OrderService's descriptors with their imports, for ghz
        (no reflection needed)."""
        path = self.state / "services.protoset"
        if not path.exists():
            files: dict[str, FileDescriptor] = {}

            def add(fd: FileDescriptor) -> None:  # imports first, as protoc orders them
                if fd.name in files:
                    return
                for dep in fd.dependencies:
                    add(dep)
                files[fd.name] = fd

            add(inventory_pb2.DESCRIPTOR)
            add(order_pb2.DESCRIPTOR)
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
                args += self.mesh_flags(name)
            child = start_python(f"{mode}:{name}", args, marker=marker, log=self.log)
            started.append(self.adopt(child))
        return [wait_ready(child) for child in started]

    def mesh_flags(self, name: str) -> list[str]:
        """A mesh process's flags as ``name``, with its NATS credential if it has one."""
        creds = self.nats.creds(name) if self.nats is not None else None
        return [
            "--consul", self.consul_addr,
            "--nats", self.nats_url,
            *(["--nats-creds", str(creds)] if creds is not None else []),
            "--state-dir", str(self.state),
            "--shutdown-grace", "1s",
            # its own Consul token, the proof of its identity to the signer
            "--consul-token-file", str(self.start_consul().token_file(name)),
            "--signer", self.start_consul().signer_url,
        ]  # fmt: skip

    def domain_services(self, names: list[str], env: dict[str, dict[str, str]]) -> list[Child]:
        """Real domain services (``python -m services.<name>``, as ``make run`` starts
        them), started together from this thread (a child's PDEATHSIG fires when the
        thread that started it ends, so never from a pool), each ready when this returns."""
        started = []
        for name in names:
            child = start_python(
                name, ["-m", f"services.{name}", *self.mesh_flags(name)], marker="MESH_READY ",
                log=self.log, env=env.get(name),
            )  # fmt: skip
            started.append(self.adopt(child))
        return [wait_ready(child) for child in started]

    def close(self) -> None:
        """Everything started, stopped (reverse order); the state removed unless kept."""
        super().close()
        if not self.keep:
            shutil.rmtree(self.state, ignore_errors=True)
