"""NATS JetStream behind the broker registry's interface (devstack/brokers/__init__.py):
the server itself is ``devstack.nats.NatsServer``; this adds the registry's constructor
and ``env``. A service's credential is passed by the launcher as ``--nats-creds``."""

from __future__ import annotations

from dataclasses import dataclass

from devstack.nats import NatsServer
from devstack.stack import NATS_PORTS


@dataclass
class NatsBroker(NatsServer):
    """``NatsServer`` made as ``NatsBroker(store_dir=, log_path=, fixed_ports=)``."""

    fixed_ports: bool = False

    def __post_init__(self) -> None:
        if self.fixed_ports and not self.port:
            self.port, self.monitor_port = NATS_PORTS

    def env(self, service: str) -> dict[str, str]:
        return {"MESH_BROKER": "nats", "NATS_URL": self.url}
