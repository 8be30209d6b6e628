"""A real Apache Kafka broker (4.1, KRaft: broker and controller in one JVM, no ZooKeeper)
as a child process on loopback.

The jars come from Maven Central (infra/kafka/pom.xml, scripts/install-kafka.sh, cached
outside the repo) and run on the system's Java. The store directory holds the config
(ports picked once, so a restart comes back where it was), the KRaft metadata and the
topics' logs: formatted once (``StorageTool format --standalone``), kept across restarts.

Secure by default: the client listener is ``SASL_PLAINTEXT`` on 127.0.0.1 (SCRAM-SHA-256;
no TLS: loopback only), KRaft's ``StandardAuthorizer`` denies what no ACL allows
(``allow.everyone.if.no.acl.found=false``), and only ``admin`` is a super user (devstack's;
the controller listener, SASL PLAIN, is admin's too). Every user's SCRAM credential is
made when the store is formatted (``StorageTool format --add-scram``, its arguments in a
0600 argument file, never on a command line); passwords are in ``<store>/creds/<user>.secret``
(0600, made once and kept). From the mesh file's ``[events]``, once the broker is up,
``admin`` creates the topics (the families', each service's retry and dead-letter topics)
and each service's ACLs (``CreateAcls``):

- WRITE on the family topics of the event types it owns (and IDEMPOTENT_WRITE on the
  cluster, for the idempotent producer);
- READ on every family topic (what it consumes), on its own consumer group (named after
  it) and READ, WRITE on its own ``mesh.retry.<service>`` and ``mesh.dead.<service>``;
- nothing else: no topic creation, no other group, no other service's retry topic.

Kafka's ACLs name topics, not event types: every service owns types of the family
``shop.events.v1``, so within a family, "only the types it owns" is the consumers' check
of the envelope's ``source`` (docs/brokers.md).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from devstack.brokers import MeshIdentities
from devstack.ports import free_ports, wait_port_free
from devstack.process import ChildProcess, run_in_thread
from devstack.tools import installed
from meshkit.events.kafka import user_url
from meshkit.security.secrets import write_secret

KAFKA_PORTS = (9092, 9093)  # client, controller: Kafka's defaults (make run's)
READY_LINE = "Kafka Server started"
ADMIN = "admin"  # devstack's super user: topics and ACLs
PROVISION_TIMEOUT = 120.0
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
    return Path(installed("install-kafka.sh"))


def java() -> str:
    found = shutil.which("java")
    if found is None:
        raise RuntimeError("java not found: Kafka needs a JRE 17+ (apt-get install default-jre)")
    return found


@dataclass(kw_only=True)
class KafkaServer(MeshIdentities, ChildProcess):
    """``kafka.Kafka server.properties`` on 127.0.0.1; restartable on its ports and store."""

    name: ClassVar[str] = "kafka"
    ready_timeout: ClassVar[float] = 120.0
    stop_timeout: ClassVar[float] = 30.0

    store_dir: Path | None = None
    fixed_ports: bool = False
    # Its users (the mesh file's event owners and ``identities``) are made when the store
    # is formatted, so a later identity needs a new store.
    port: int = 0
    controller_port: int = 0

    @property
    def url(self) -> str:
        """The bootstrap server (host:port, no user)."""
        return f"127.0.0.1:{self.port}"

    def env(self, service: str) -> dict[str, str]:
        """A service's settings: its own user and the path of its password file (in the
        URL); an identity the broker has no user for gets the bare URL (and is refused
        when it connects)."""
        env = {"MESH_BROKER": "kafka", "MESH_BROKER_URL": self.url}
        if service in self.users():
            env["MESH_BROKER_URL"] = user_url(service, self.url, self.password_file(service))
        return env

    def admin_env(self) -> dict[str, str]:
        """The administrator's settings (a super user: every topic and group)."""
        return self.env(ADMIN)

    def users(self) -> list[str]:
        return [ADMIN, *self.service_identities()]

    def password_file(self, user: str) -> Path:
        """``user``'s password file (0600; the password made on first use and kept)."""
        if user not in self.users():
            raise KeyError(f"Kafka has no user {user!r} (the mesh file's [events.owners])")
        path = self._store() / "creds" / f"{user}.secret"
        if not path.exists():
            write_secret(path, secrets.token_urlsafe(24) + "\n")
        return path

    def password(self, user: str) -> str:
        return self.password_file(user).read_text().strip()

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
        """server.properties (0600: admin's password is in its JAAS settings)."""
        logs = self._store() / "logs"
        admin = self.password(ADMIN)
        ctl = f"127.0.0.1:{self.controller_port}"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": ctl,
            "listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://{ctl}",
            "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "listener.security.protocol.map": (
                "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
            ),
            # clients: SCRAM users (made at format time); the controller: admin with PLAIN
            # (SCRAM's credentials live in the metadata the controller itself serves)
            "sasl.enabled.mechanisms": "SCRAM-SHA-256",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-256",
            "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required"
                f' username="{ADMIN}" password="{admin}";'
            ),
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": (
                "org.apache.kafka.common.security.plain.PlainLoginModule required"
                f' username="{ADMIN}" password="{admin}" user_{ADMIN}="{admin}";'
            ),
            # default deny; admin (devstack, the controller, the broker to itself) is super
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{ADMIN}",
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
        write_secret(self.config_path, "".join(f"{k}={v}\n" for k, v in settings.items()))

    def format_storage(self) -> None:
        """KRaft's metadata formatted once (a standalone controller), with every user's
        SCRAM credential; kept afterwards. A store formatted without one of today's
        users (before credentials, or before the mesh file named it) is a clear error."""
        users_file = self._store() / "users"
        if (self._store() / "logs" / "meta.properties").exists():
            made = users_file.read_text().split() if users_file.exists() else []
            missing = [u for u in self.users() if u not in made]
            if missing:
                raise RuntimeError(
                    f"kafka: the store {self._store()} has no SCRAM user for"
                    f" {', '.join(missing)} (users are made when it is formatted):"
                    " remove the store to format it anew"
                )
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        scram = [
            f"--add-scram=SCRAM-SHA-256=[name={user},password={self.password(user)}]"
            for user in self.users()
        ]
        # The main class and its arguments in a 0600 argument file (java @file): the
        # passwords never on a command line.
        argfile = write_secret(
            self._store() / "format.args",
            "\n".join(
                [
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={cluster_id}",  # it may begin with "-"
                    f"--config={self.config_path}",
                    "--standalone",
                    *scram,
                ]
            )
            + "\n",
        )
        try:
            out = subprocess.run(
                [
                    java(),
                    "-Xmx256m",
                    "-XX:TieredStopAtLevel=1",
                    "-cp",
                    f"{kafka_lib()}/*",
                    f"@{argfile}",
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            os.unlink(argfile)
        if out.returncode != 0:
            raise RuntimeError(f"kafka storage format failed: {out.stdout}{out.stderr}")
        users_file.write_text("\n".join(self.users()) + "\n")

    def wait_ready(self, timeout: float | None = None) -> KafkaServer:
        super().wait_ready(timeout)
        self.provision()
        return self

    def provision(self) -> None:
        """As ``admin``: the topics (families, each service's retry and dead-letter
        topics) and each service's ACLs (the module's doc); both kept if there already."""
        run_in_thread(self._provision(), "kafka-provision")

    async def _provision(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import KafkaError

        from devstack.brokers.kafka_acls import create_acls, service_acls, wait_enforced
        from meshkit.events.kafka import (
            PARTITIONS,
            TOPIC_EXISTS,
            Endpoint,
            dead_topic,
            family_topic,
            retry_topic,
        )

        events = self.events
        services = self.service_identities()
        topics = sorted({family_topic(t) for t in events.owners})
        topics += [f(s) for s in services for f in (retry_topic, dead_topic)]
        endpoint = Endpoint(self.url, ADMIN, self.password(ADMIN))
        deadline = time.monotonic() + PROVISION_TIMEOUT
        while True:  # SCRAM users are known once the broker has read its metadata
            admin = AIOKafkaAdminClient(**endpoint.options(), client_id="devstack")
            try:
                await admin.start()
                existing = set(await admin.list_topics())
                new = [NewTopic(n, PARTITIONS, 1) for n in topics if n not in existing]
                if new:
                    response = await admin.create_topics(new)
                    for name, code, *_ in response.topic_errors:
                        if code not in (0, TOPIC_EXISTS):
                            raise KafkaError(f"creating topic {name}: error {code}")
                acls = [a for s in services for a in service_acls(s, events)]
                await create_acls(admin, acls)
                await wait_enforced(admin, acls, max(1.0, deadline - time.monotonic()))
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
            finally:
                await admin.close()

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
        """Wait until the port is free again, so that a restart can bind it."""
        wait_port_free(self.port)
