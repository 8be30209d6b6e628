"""Consul intentions as config entries: infra/consul/intentions/<destination>.json.

Consul accepts layer-7 intentions (``Permissions`` on ``/pkg.Service/Method`` paths) only
for a destination whose protocol is HTTP-based, so each destination is first declared a
gRPC service (a ``service-defaults`` entry with ``Protocol = "grpc"``), as all of the
mesh's services are.
"""

from __future__ import annotations

import json
from pathlib import Path

from devstack.consul import ConsulAgent
from devstack.tools import ROOT

INTENTIONS_DIR = ROOT / "infra" / "consul" / "intentions"


def apply_intentions(consul: ConsulAgent, directory: Path = INTENTIONS_DIR) -> list[str]:
    """PUT every intentions file into Consul; returns the destinations configured."""
    done = []
    for path in sorted(directory.glob("*.json")):
        entry = json.loads(path.read_text())
        declare_grpc(consul, entry["Name"])
        consul.put("/v1/config", entry)
        done.append(entry["Name"])
    return done


def declare_grpc(consul: ConsulAgent, service: str) -> None:
    """``service``'s protocol is gRPC (service-defaults), so its intentions may be L7."""
    consul.put("/v1/config", {"Kind": "service-defaults", "Name": service, "Protocol": "grpc"})


def set_intention(consul: ConsulAgent, destination: str, sources: dict[str, str]) -> None:
    """Replace ``destination``'s intentions with ``{source: "allow"|"deny"}`` (in that order)."""
    consul.put(
        "/v1/config",
        {
            "Kind": "service-intentions",
            "Name": destination,
            "Sources": [{"Name": s, "Action": a} for s, a in sources.items()],
        },
    )
