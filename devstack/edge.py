"""The edge for ``make run`` and the tests: Ory Hydra (the OAuth2 server) and the gateway.

Hydra runs with in-memory storage and JWT access tokens; one client-credentials client is
registered, allowed the shop's scopes and audience, and its credentials are written to
``<state>/oauth/client.json`` (what ``make token`` reads). The gateway is started like a
service (``python -m services.gateway`` printing ``MESH_READY``), trusting that issuer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from devstack.consul import ConsulAgent
from devstack.hydra import Hydra, OAuthClient, token_from
from devstack.nats import NatsServer
from devstack.services import NO_NATS, ServiceProcess, start_service
from meshkit.security.secrets import write_secret

AUDIENCE = "meshkit-shop"
SCOPES = ("orders:read", "orders:write", "stock:read")
HYDRA_PORTS = (4444, 4445)  # Hydra's own defaults: public, admin
GATEWAY_PORT = 8080


@dataclass
class Edge:
    hydra: Hydra
    client: OAuthClient
    gateway: ServiceProcess
    client_file: Path

    @property
    def url(self) -> str:
        return str(self.gateway.info["url"])

    def token(self, scopes: tuple[str, ...] | None = None) -> str:
        return self.hydra.token(self.client, scopes)

    def stop(self) -> None:
        self.gateway.stop()
        self.hydra.stop()
        self.client_file.unlink(missing_ok=True)  # its issuer (in memory) is gone


def start_hydra(
    state: Path, free_ports: bool, log_dir: Path | None = None
) -> tuple[Hydra, OAuthClient]:
    public, admin = (0, 0) if free_ports else HYDRA_PORTS
    hydra = Hydra(public, admin, log_path=(log_dir or state / "logs") / "hydra.log").start()
    try:
        client = hydra.create_client(SCOPES, (AUDIENCE,), name="meshkit-shop-demo")
        write_client(state, hydra.issuer, client)
    except BaseException:
        hydra.stop()
        raise
    return hydra, client


def start_edge(
    state: Path,
    consul: ConsulAgent,
    nats: NatsServer | None,
    free_ports: bool,
    log: IO[str] | None = None,
    gateway_args: list[str] | None = None,
    log_dir: Path | None = None,
) -> Edge:
    """Hydra with a registered client, then the gateway; stop both with ``Edge.stop``."""
    hydra, client = start_hydra(state, free_ports, log_dir)
    try:
        gateway = start_service(
            "gateway",
            consul_http_addr=consul.http_addr,
            nats_url=nats.url if nats is not None else NO_NATS,  # another broker: none
            state_dir=state,
            args=[
                "--port",
                "0" if free_ports else str(GATEWAY_PORT),
                "--issuer",
                hydra.issuer,
                "--audience",
                AUDIENCE,
                *(gateway_args or []),
            ],
            env=consul.identity_env("gateway"),
            log=log,
        )
    except BaseException:
        hydra.stop()
        raise
    return Edge(hydra, client, gateway, client_file(state))


def client_file(state: Path) -> Path:
    return state / "oauth" / "client.json"


def write_client(state: Path, issuer: str, client: OAuthClient) -> None:
    path = client_file(state)
    write_secret(path, json.dumps({"issuer": issuer, **asdict(client)}, indent=2) + "\n")


def token_for_state(state: Path) -> str:
    """A fresh access token for the client ``make run`` registered (``make token``)."""
    path = client_file(state)
    if not path.exists():
        raise SystemExit(f"no OAuth2 client in {path}: is `make run` up?")
    data = json.loads(path.read_text())
    client = OAuthClient(
        data["client_id"], data["client_secret"], tuple(data["scopes"]), tuple(data["audience"])
    )
    try:
        return token_from(data["issuer"], client)
    except OSError as exc:
        message = f"no answer from the issuer {data['issuer']}: is `make run` up? ({exc})"
        raise SystemExit(message) from exc


def main() -> None:
    import argparse

    from devstack.tools import ROOT

    p = argparse.ArgumentParser(description="Print an access token of make run's client.")
    p.add_argument("--state-dir", type=Path, default=ROOT / ".state")
    print(token_for_state(p.parse_args().state_dir))


if __name__ == "__main__":
    main()
