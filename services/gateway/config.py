"""The gateway's configuration: flags and environment for where it listens and whom it
trusts, infra/gateway/gateway.toml for its policy, and the mesh's own config (identity
``gateway``, Consul, certificates, deadline policy) for the calls behind it."""

from __future__ import annotations

import argparse
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from meshkit.config import MeshConfig, parse_duration
from services.gateway.console.config import ConsoleConfig

DEFAULT_GATEWAY_FILE = Path("infra/gateway/gateway.toml")
_READ_ONLY = 1  # MethodOptions.NO_SIDE_EFFECTS


@dataclass(frozen=True)
class ServiceRoute:
    """How the gateway reaches one proto service and what its methods require."""

    mesh_name: str
    read: str
    write: str
    methods: dict[str, str] = field(default_factory=dict)

    def scope(self, method: MethodDescriptor) -> str:
        if method.name in self.methods:
            return self.methods[method.name]
        return self.read if method.GetOptions().idempotency_level == _READ_ONLY else self.write


@dataclass(frozen=True)
class GatewayPolicy:
    services: dict[str, ServiceRoute] = field(default_factory=dict)
    rate: float = 20.0
    burst: int = 40
    max_body: int = 65536
    request_timeout: float = 10.0
    leeway: float = 30.0
    jwks_min_refetch: float = 10.0
    # Requests without a valid token: a bucket per client address.
    anonymous_rate: float = 2.0
    anonymous_burst: int = 10
    max_json_depth: int = 64
    # In flight at once: HTTP requests (503 + Retry-After past it) and open WebSockets.
    max_concurrent: int = 512
    max_websockets: int = 1024
    # GraphQL over WebSocket: operations in a connection's life, subscriptions at once.
    ws_max_operations: int = 1000
    ws_max_subscriptions: int = 10

    def route(self, service: ServiceDescriptor) -> ServiceRoute | None:
        return self.services.get(service.full_name)

    @classmethod
    def load(cls, path: Path) -> GatewayPolicy:
        data = tomllib.loads(path.read_text())
        limits = data.get("limits", {})
        auth = data.get("auth", {})
        ws = data.get("graphql_ws", {})
        return cls(
            services={
                name: ServiceRoute(
                    mesh_name=v["mesh_name"],
                    read=v["read"],
                    write=v["write"],
                    methods=dict(v.get("methods", {})),
                )
                for name, v in data.get("services", {}).items()
            },
            rate=float(limits.get("rate", 20.0)),
            burst=int(limits.get("burst", 40)),
            max_body=int(limits.get("max_body", 65536)),
            request_timeout=parse_duration(limits.get("request_timeout", "10s")),
            leeway=parse_duration(auth.get("leeway", "30s")),
            jwks_min_refetch=parse_duration(auth.get("jwks_min_refetch", "10s")),
            anonymous_rate=float(limits.get("anonymous_rate", 2.0)),
            anonymous_burst=int(limits.get("anonymous_burst", 10)),
            max_json_depth=int(limits.get("max_json_depth", 64)),
            max_concurrent=int(limits.get("max_concurrent", 512)),
            max_websockets=int(limits.get("max_websockets", 1024)),
            ws_max_operations=int(ws.get("max_operations", 1000)),
            ws_max_subscriptions=int(ws.get("max_subscriptions", 10)),
        )


@dataclass(frozen=True)
class GatewayConfig:
    host: str
    port: int
    issuer: str
    audience: str
    policy: GatewayPolicy
    mesh: MeshConfig
    console: ConsoleConfig = field(default_factory=ConsoleConfig)

    @classmethod
    def from_args(cls, argv: list[str]) -> GatewayConfig:
        """Gateway flags here; the rest (``--consul``, ``--state-dir``, ...) are the mesh's."""
        env = os.environ
        p = argparse.ArgumentParser(prog="python -m services.gateway", add_help=True)
        p.add_argument("--host", default=env.get("GATEWAY_HOST", "127.0.0.1"))
        p.add_argument("--port", type=int, default=int(env.get("GATEWAY_PORT", "8080")))
        p.add_argument(
            "--issuer",
            default=env.get("GATEWAY_ISSUER", "http://127.0.0.1:4444"),
            help="the OAuth2/OIDC issuer whose JWT access tokens are accepted",
        )
        p.add_argument(
            "--audience",
            default=env.get("GATEWAY_AUDIENCE", "meshkit-shop"),
            help="the audience tokens must be issued for",
        )
        p.add_argument(
            "--gateway-file",
            type=Path,
            default=Path(env.get("GATEWAY_FILE", DEFAULT_GATEWAY_FILE)),
        )
        p.add_argument("--rate", type=float, help="requests a second per client (overrides)")
        p.add_argument("--burst", type=int, help="burst per client (overrides)")
        p.add_argument("--jwks-min-refetch", help="e.g. 10s (overrides gateway.toml)")
        ConsoleConfig.add_arguments(p)
        a, rest = p.parse_known_args(argv)
        policy = GatewayPolicy.load(a.gateway_file)
        policy = replace(
            policy,
            rate=policy.rate if a.rate is None else a.rate,
            burst=policy.burst if a.burst is None else a.burst,
            jwks_min_refetch=(
                policy.jwks_min_refetch
                if a.jwks_min_refetch is None
                else parse_duration(a.jwks_min_refetch)
            ),
        )
        return cls(
            host=a.host,
            port=a.port,
            issuer=a.issuer.rstrip("/"),
            audience=a.audience,
            policy=policy,
            mesh=MeshConfig.from_args("gateway", rest),
            console=ConsoleConfig.from_namespace(a),
        )
