"""A real SQS-compatible server, ElasticMQ (its jars from Maven Central,
scripts/install-sqs.sh), as a child process on loopback, for ``make run BROKER=sqs`` and
tests/brokers.

ElasticMQ rather than moto's server mode: it keeps its queues (``queues-storage``, a file)
and their messages (``messages-storage``, an H2 database) in ``store_dir``, so a restart
loses nothing, which moto (in memory only) cannot do; it implements FIFO queues with
message groups and de-duplication ids, redrive to a dead-letter queue, visibility
timeouts and queue tags, which is what the adapter (meshkit/events/sqs.py) uses. It has
no SNS: the adapter fans out itself. It has no authentication either (it accepts any
signature): it listens on 127.0.0.1 only (docs/brokers.md, "## SQS").

Once up, each service's queue (and its dead-letter queue) is made if it is missing, so
nothing published before a service first starts is lost for it.
"""

from __future__ import annotations

import functools
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from devstack.brokers import MeshIdentities
from devstack.ports import free_port, wait_port_free
from devstack.process import ChildProcess
from devstack.tools import installed

SQS_PORT = 9324  # make run's (ElasticMQ's default)


@functools.cache
def elasticmq_lib() -> str:
    """The directory of ElasticMQ's jars: cached, else fetched (scripts/install-sqs.sh)."""
    return installed("install-sqs.sh")


@dataclass(kw_only=True)
class SQSServer(MeshIdentities, ChildProcess):
    """ElasticMQ on 127.0.0.1; restartable on the same port and data."""

    name: ClassVar[str] = "sqs"
    ready_timeout: ClassVar[float] = 90.0

    store_dir: Path
    fixed_ports: bool = False
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, service: str) -> dict[str, str]:
        """A service's settings: the endpoint (ElasticMQ has no credentials to give)."""
        return {"MESH_BROKER": "sqs", "MESH_BROKER_URL": self.url}

    def command(self) -> list[str]:
        if not self.port:
            self.port = SQS_PORT if self.fixed_ports else free_port()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = self.store_dir / "elasticmq.conf"
        config.write_text(self.config())
        return [
            "java",
            "-Xmx256m",
            "-XX:+UseSerialGC",
            # C1 alone: half the CPU per message of a run as short as a test's or a bench's
            # (C2's compiles cost more than they save), and a quicker start
            "-XX:TieredStopAtLevel=1",
            f"-Dconfig.file={config}",
            "-cp",
            f"{elasticmq_lib()}/*",
            "org.elasticmq.server.Main",
        ]

    def config(self) -> str:
        """ElasticMQ's config: loopback only, strict SQS limits, queues and messages kept."""
        store = self.store_dir
        return (
            'include classpath("application.conf")\n'
            f'node-address {{ protocol = "http", host = "127.0.0.1", port = {self.port},'
            ' context-path = "" }\n'
            f'rest-sqs {{ enabled = true, bind-port = {self.port}, bind-hostname = "127.0.0.1",'
            " sqs-limits = strict }\n"
            "rest-stats { enabled = false }\n"
            "generate-node-address = false\n"
            f'queues-storage {{ enabled = true, path = "{store / "queues.conf"}" }}\n'
            f'messages-storage {{ enabled = true, uri = "jdbc:h2:{store / "messages"}" }}\n'
        )

    def is_ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/?Action=ListQueues", timeout=2) as resp:
            return bool(resp.status == 200)

    def wait_ready(self, timeout: float | None = None) -> SQSServer:
        super().wait_ready(timeout)
        self.provision()
        return self

    def provision(self) -> None:
        """Each service's queue, if missing, subscribed to every event type it does not
        own; the service narrows it to what it handles when it consumes."""
        from meshkit.events.sqs import SQSBus

        events = self.events
        self.provision_queues(lambda: SQSBus.connect(self.url, "devstack", events), "sqs-provision")

    def cleanup(self) -> None:
        """Wait until the port is free again, so that a restart can bind it."""
        wait_port_free(self.port)
