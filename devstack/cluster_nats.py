"""The NATS servers of a cluster on one machine: JetStream clustered over routes.

Each node is ``devstack.nats.NatsServer`` (the same users, nkeys and permissions) with a
server name, the cluster's name, a route listener of its own and routes to every other
node; its JetStream store in a directory of its own, kept across restarts. The nkey seeds
are the cluster's, in one directory all nodes share, so every identity is the same user
on every node. The event stream is created once the meta group has a leader, by
``admin``, replicated on ``replicas`` nodes (``ensure_replicated_stream``).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import nats
import nats.js.errors
from nats.js import api

from devstack.nats import ADMIN, NatsServer
from devstack.ports import free_ports
from devstack.process import ChildProcess, run_in_thread
from meshkit.events.nats import DUPLICATE_WINDOW, credential_options

STREAM_MAX_AGE = 7 * 24 * 3600.0  # as NatsBus makes the stream on a single server


@dataclass
class NatsNode(NatsServer):
    """One server of a NATS cluster (``routes``: every node's route port, its own too)."""

    server_name: str = ""
    cluster_name: str = ""
    route_port: int = 0
    routes: tuple[int, ...] = ()
    shared_creds: Path | None = None

    def reserve_ports(self) -> None:
        """Client, monitoring and route ports, taken once (the routes are known first)."""
        if not (self.port and self.monitor_port and self.route_port):
            self.port, self.monitor_port, self.route_port = free_ports(3)

    def forget_ports(self) -> None:
        """New free ports at the next start (its own were taken by another process); the
        other nodes' routes still name the old one: it routes to them, they learn it."""
        self.routes = tuple(p for p in self.routes if p != self.route_port)
        self.port = self.monitor_port = self.route_port = 0

    @property
    def creds_dir(self) -> Path:
        assert self.shared_creds is not None, "a cluster's node shares the cluster's creds"
        return self.shared_creds

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    def command(self) -> list[str]:
        self.reserve_ports()
        self._store().mkdir(parents=True, exist_ok=True)
        others = [p for p in self.routes if p != self.route_port]
        routes = ",".join(f"nats-route://127.0.0.1:{p}" for p in others)
        return [
            *super().command(),
            "--server_name", self.server_name,
            "--cluster_name", self.cluster_name,
            "--cluster", f"nats://127.0.0.1:{self.route_port}",
            "--routes", routes,
        ]  # fmt: skip

    def wait_ready(self, timeout: float | None = None) -> Self:
        """Up, JetStream enabled; the stream is the cluster's to make, not each node's."""
        ChildProcess.wait_ready(self, timeout)
        return self

    def monitor(self, path: str) -> Any:
        with urllib.request.urlopen(self.monitor_url + path, timeout=2) as resp:
            return json.loads(resp.read())

    def meta_leader(self) -> str:
        """The JetStream meta group's leader as this node sees it ("" none, or down)."""
        try:
            return str((self.monitor("/jsz").get("meta_cluster") or {}).get("leader") or "")
        except (OSError, ValueError):
            return ""

    def stream_cluster(self, stream: str) -> dict[str, Any]:
        """``{"leader": name, "replicas": [{"name", "current", "lag", ...}]}`` of
        ``stream`` as this node reports it ({} when it has no view of it)."""
        try:
            jsz = self.monitor("/jsz?accounts=true&streams=true")
        except (OSError, ValueError):
            return {}
        for account in jsz.get("account_details") or []:
            for detail in account.get("stream_detail") or []:
                if detail.get("name") == stream:
                    return dict(detail.get("cluster") or {})
        return {}


@dataclass
class StreamState:
    leader: str = ""
    replicas: list[dict[str, Any]] = field(default_factory=list)

    @property
    def current(self) -> list[str]:
        """The leader and the replicas that are caught up with it."""
        return [self.leader] * bool(self.leader) + [
            str(r["name"]) for r in self.replicas if r.get("current")
        ]


def ensure_replicated_stream(node: NatsServer, replicas: int) -> None:
    """The event stream of the mesh file, made (or updated) by ``admin`` through ``node``
    with ``replicas`` replicas, and its other settings those of a single server's."""
    events = node.events
    config = api.StreamConfig(
        name=events.stream,
        subjects=list(events.subjects),
        storage=api.StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW,
        max_age=STREAM_MAX_AGE,
        num_replicas=replicas,
    )

    async def ensure() -> None:
        creds = credential_options(node.creds(ADMIN), ADMIN)
        nc = await nats.connect(servers=[node.url], name="devstack", **creds)
        js = nc.jetstream(timeout=5.0)
        try:
            for attempt in range(60):  # the meta leader may just have been elected
                try:
                    try:
                        await js.add_stream(config)
                    except nats.js.errors.BadRequestError:  # there: its settings updated
                        await js.update_stream(config)
                    return
                except Exception:
                    if attempt == 59:
                        raise
                    await asyncio.sleep(0.5)
        finally:
            await nc.close()

    run_in_thread(
        ensure(), "nats-ensure-stream", f"creating the stream {events.stream} (R{replicas})"
    )
