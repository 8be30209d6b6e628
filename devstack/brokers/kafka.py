"""A real Apache Kafka broker (4.1, KRaft: broker and controller in one JVM, no ZooKeeper)
as a child process on loopback.

The jars come from Maven Central (infra/kafka/pom.xml, scripts/install-kafka.sh, cached
outside the repo) and run on the system's Java. The store directory holds the config
(ports picked once, so a restart comes back where it was), the KRaft metadata and the
topics' logs: formatted once (``StorageTool format --standalone``), kept across restarts.

No credentials: the listener is PLAINTEXT on 127.0.0.1 with no authorizer, so any local
process may read and write every topic (docs/brokers.md says so, and what SASL/ACLs would
take). Topics are made by the adapter (meshkit/events/kafka.py), not auto-created.
"""

from __future__ import annotations

import base64
import functools
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from devstack.ports import free_ports
from devstack.process import ChildProcess
from devstack.tools import ROOT

KAFKA_PORTS = (9092, 9093)  # client, controller: Kafka's defaults (make run's)
READY_LINE = "Kafka Server started"
JVM_OPTIONS = [
    # C1 only: half the CPU to start (a loaded 2-core machine), ample for a dev broker
    "-XX:TieredStopAtLevel=1",
    "-Xms64m",
    "-Xmx512m",
    "-XX:+UseSerialGC",  # one small broker on a shared machine: no parallel GC threads
    "-Djava.awt.headless=true",
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
    "-Dorg.slf4j.simpleLogger.log.org.apache.kafka=warn",
    "-Dorg.slf4j.simpleLogger.log.kafka=warn",
    "-Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info",
    "-Dorg.slf4j.simpleLogger.log.state.change.logger=warn",
]


@functools.cache
def kafka_lib() -> Path:
    """The directory of Kafka's jars (installed on first use by scripts/install-kafka.sh)."""
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-kafka.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


def java() -> str:
    found = shutil.which("java")
    if found is None:
        raise RuntimeError("java not found: Kafka needs a JRE 17+ (apt-get install default-jre)")
    return found


@dataclass(kw_only=True)
class KafkaServer(ChildProcess):
    """``kafka.Kafka server.properties`` on 127.0.0.1; restartable on its ports and store."""

    name: ClassVar[str] = "kafka"
    ready_timeout: ClassVar[float] = 120.0
    stop_timeout: ClassVar[float] = 30.0

    store_dir: Path | None = None
    fixed_ports: bool = False
    port: int = 0
    controller_port: int = 0

    @property
    def url(self) -> str:
        """The bootstrap server (host:port)."""
        return f"127.0.0.1:{self.port}"

    def env(self, service: str) -> dict[str, str]:
        return {"MESH_BROKER": "kafka", "MESH_BROKER_URL": self.url}

    def _store(self) -> Path:
        if self.store_dir is None:
            self.store_dir = Path(tempfile.mkdtemp(prefix="meshkit-kafka-"))
        self.store_dir.mkdir(parents=True, exist_ok=True)
        return self.store_dir

    @property
    def config_path(self) -> Path:
        return self._store() / "server.properties"

    def command(self) -> list[str]:
        if not self.port:
            self.port, self.controller_port = (
                KAFKA_PORTS if self.fixed_ports else tuple(free_ports(2))
            )
        self.write_config()
        self.format_storage()
        self._ready = False
        return [
            java(),
            *JVM_OPTIONS,
            "-cp",
            f"{kafka_lib()}/*",
            "kafka.Kafka",
            str(self.config_path),
        ]

    def write_config(self) -> None:
        logs = self._store() / "logs"
        ctl = f"127.0.0.1:{self.controller_port}"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": ctl,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://{ctl}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(logs),
            "num.partitions": "4",
            "auto.create.topics.enable": "false",
            # one node: every internal topic has one replica, few partitions
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # a group's first members are not held back waiting for more to join
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.hours": "168",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
        }
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))

    def format_storage(self) -> None:
        """KRaft's metadata formatted once (a standalone controller); kept afterwards."""
        if (self._store() / "logs" / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        out = subprocess.run(
            [
                java(),
                "-Xmx256m",
                "-XX:TieredStopAtLevel=1",
                "-cp",
                f"{kafka_lib()}/*",
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",  # it may begin with "-"
                f"--config={self.config_path}",
                "--standalone",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode != 0:
            raise RuntimeError(f"kafka storage format failed: {out.stdout}{out.stderr}")

    def is_ready(self) -> bool:
        """The server said it started, and its client port answers."""
        if not self._ready:
            if self.log_path is None or READY_LINE not in self.log_path.read_text(errors="replace"):
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                if self.log_path is not None:
                    return False
            self._ready = True
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def cleanup(self) -> None:
        """Wait until the ports are free again, so that a restart can bind them."""
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.05)
