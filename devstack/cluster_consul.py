"""The Consul agents of a cluster on one machine: servers (Raft) and client agents.

Each agent is ``devstack.consul.ConsulAgent`` (its ACLs default deny, its tokens in a
directory all agents of the cluster share) run as a real agent rather than ``-dev``: a
node name of its own, its own data directory (kept across restarts: a server that comes
back still has its Raft log), its free loopback ports, gossip encrypted with the cluster's
key, and ``retry_join`` to the servers' Serf LAN ports. Servers run with
``bootstrap_expect`` and hold the mesh CA as the Connect CA root; client agents only
forward to them (no CA key on a client).
"""

from __future__ import annotations

import base64
import os
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path

from devstack.consul import ConsulAgent

# The Serf LAN port is the 4th of ConsulAgent.reserve_ports(), the server RPC port the 6th.
SERF_LAN, SERVER_RPC = 3, 5


def gossip_key() -> str:
    """A new gossip encryption key (32 random bytes, base64): agents without it cannot join."""
    return base64.b64encode(os.urandom(32)).decode()


@dataclass
class ClusterAgent(ConsulAgent):
    """A server (``server=True``) or a client agent of a cluster, named ``node``."""

    # Stopped with SIGINT (ConsulAgent's): a server does not leave the Raft configuration
    # on it (Consul's default for servers), a client agent leaves the cluster gracefully.

    node: str = ""
    server: bool = False
    data_dir: Path | None = None
    bootstrap_expect: int = 3
    # "127.0.0.1:<serf lan port>" of each server
    join: tuple[str, ...] = ()
    gossip: str = field(default="", repr=False)
    # Raft's timing multiplier (Consul's default is 5, production's advice 1): how long a
    # follower waits for the leader before it calls an election.
    raft_multiplier: int = 5

    def forget_ports(self) -> None:
        """New free ports at the next start (its own were taken by another process)."""
        self._free = ()

    @property
    def serf_lan_addr(self) -> str:
        return f"127.0.0.1:{self.reserve_ports()[SERF_LAN]}"

    @property
    def server_addr(self) -> str:
        """``host:port`` of the server RPC: what ``/v1/status/leader`` names."""
        return f"127.0.0.1:{self.reserve_ports()[SERVER_RPC]}"

    def mode_args(self) -> list[str]:
        assert self.node and self.data_dir is not None, "a cluster agent needs a node and a dir"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        args = [
            f"-node={self.node}",
            f"-data-dir={self.data_dir}",
            "-bind=127.0.0.1",
            "-client=127.0.0.1",
            *(f"-retry-join={addr}" for addr in self.join),
            "-retry-interval=1s",
        ]
        if self.server:
            args += ["-server", f"-bootstrap-expect={self.bootstrap_expect}"]
        return args

    def command(self) -> list[str]:
        # as -dev does: no call home (checkpoint) from an agent on loopback
        extra: dict[str, object] = {"disable_update_check": True, **self.extra_config}
        if self.gossip:
            extra["encrypt"] = self.gossip
        if self.server:
            extra["performance"] = {"raft_multiplier": self.raft_multiplier}
        saved, self.extra_config = self.extra_config, extra
        try:
            return super().command()
        finally:
            self.extra_config = saved

    def leader(self) -> str:
        """The Raft leader's server address as this agent sees it ("" when there is none)."""
        try:
            return str(self.get("/v1/status/leader") or "")
        except (OSError, ValueError):
            return ""

    def raft_peers(self) -> list[dict[str, object]]:
        """The servers of the Raft configuration (``Node``, ``Address``, ``Leader``,
        ``Voter``), as the leader knows them."""
        try:
            conf = self.get("/v1/operator/raft/configuration")
        except (OSError, ValueError, urllib.error.HTTPError):
            return []
        return list(conf.get("Servers", [])) if isinstance(conf, dict) else []
