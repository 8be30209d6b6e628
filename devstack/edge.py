"""The edge for ``make run`` and the tests: Ory Hydra (the OAuth2 server) and the gateway.

Hydra runs with in-memory storage and JWT access tokens; one client-credentials client is
registered, allowed the shop's scopes and audience, and its credentials are written to
``<state>/oauth/client.json`` (what ``make token`` reads). The gateway is started like a
service (``python -m services.gateway`` printing ``MESH_READY``), trusting that issuer.
"""

from __future__ import annotations

import json
import urllib.error
import uuid
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
    env: dict[str, str] | None = None,
) -> Edge:
    """Hydra with a registered client, then the gateway (``env``: the settings the stack's
    backends give it, e.g. its registry); stop both with ``Edge.stop``."""
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
            env={**consul.identity_env("gateway"), **(env or {})},
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


# The console (docs/console.md): an OAuth2 client of its own, allowed the console's scopes
# (console:read, console:admin) beside the shop's; its sign-in link carries a fresh token
# in the URL's fragment (never sent to a server). Admin actions are opt-in: the gateway
# gets a Consul token of the console-admin policy only when asked (make run CONSOLE_ADMIN=1).
CONSOLE_SCOPES = ("console:read", "console:admin", "orders:read", "orders:write", "stock:read")
CONSOLE_ADMIN_POLICY = "console-admin"
CONSOLE_ADMIN_RULES = (
    'service_prefix "" { policy = "read" intentions = "write" }\n'
    'key_prefix "mesh/faults/" { policy = "write" }'
)


def console_client_file(state: Path) -> Path:
    return state / "oauth" / "console-client.json"


def start_console_client(edge: Edge, state: Path) -> str:
    """Register the console's client, keep it with the console's URL; the sign-in link."""
    client = edge.hydra.create_client(CONSOLE_SCOPES, (AUDIENCE,), name="meshkit-console")
    data = {"issuer": edge.hydra.issuer, "console": f"{edge.url}/console", **asdict(client)}
    write_secret(console_client_file(state), json.dumps(data, indent=2) + "\n")
    return console_link(state)


def console_link(state: Path) -> str:
    """``<gateway>/console#token=<a fresh access token>`` (``make console``)."""
    path = console_client_file(state)
    if not path.exists():
        raise SystemExit(f"no console client in {path}: is `make run` up?")
    data = json.loads(path.read_text())
    client = OAuthClient(
        data["client_id"], data["client_secret"], tuple(data["scopes"]), tuple(data["audience"])
    )
    try:
        return f"{data['console']}#token={token_from(data['issuer'], client)}"
    except OSError as exc:
        message = f"no answer from the issuer {data['issuer']}: is `make run` up? ({exc})"
        raise SystemExit(message) from exc


def console_admin_token_file(consul: ConsulAgent) -> Path:
    """A Consul token (``<acl dir>/console-admin.token``) that may write every service's
    intentions and ``mesh/faults/``: for the console's admin actions, never a workload's."""
    path = consul.tokens_dir / "console-admin.token"
    if not path.exists():
        write_secret(path, f"{uuid.uuid4()}\n")
    secret = path.read_text().strip()
    for endpoint, body in (
        ("/v1/acl/policy", {"Name": CONSOLE_ADMIN_POLICY, "Rules": CONSOLE_ADMIN_RULES}),
        (
            "/v1/acl/token",
            {
                "SecretID": secret,
                "Description": "the console's admin actions (intentions, faults)",
                "Policies": [{"Name": CONSOLE_ADMIN_POLICY}],
            },
        ),
    ):
        try:
            consul.put(endpoint, body)
        except urllib.error.HTTPError as exc:
            if exc.code != 400 or b"already" not in exc.read():
                raise
    return path


def main() -> None:
    import argparse

    from devstack.tools import ROOT

    p = argparse.ArgumentParser(description="Print an access token of make run's client.")
    p.add_argument("--state-dir", type=Path, default=ROOT / ".state")
    p.add_argument("--console", action="store_true", help="the console's sign-in link instead")
    a = p.parse_args()
    print(console_link(a.state_dir) if a.console else token_for_state(a.state_dir))


if __name__ == "__main__":
    main()
