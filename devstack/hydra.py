"""A real OAuth2/OIDC server, Ory Hydra, as a child process on loopback.

In-memory storage (``DSN=memory``: clients and keys live as long as the process), JWT
access tokens (RS256, verifiable by anyone with the JWKS), the issuer on its public port.
The binary is built from the Go module proxy by scripts/install-hydra.sh (``make setup``).
Clients are registered through the admin API; tokens come from the public token endpoint
with the client-credentials grant, as any OAuth2 client would get them.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, ClassVar

from devstack.ports import free_ports
from devstack.process import ChildProcess
from devstack.tools import hydra_binary

# The key set Hydra signs JWT access tokens with.
ACCESS_TOKEN_KEYS = "hydra.jwt.access-token"


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    audience: tuple[str, ...]


@dataclass
class Hydra(ChildProcess):
    """``hydra serve all --dev`` on 127.0.0.1; fixed ports or free ones (0)."""

    name: ClassVar[str] = "hydra"

    public_port: int = 0
    admin_port: int = 0

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def command(self) -> list[str]:
        if not self.public_port or not self.admin_port:
            self.public_port, self.admin_port = free_ports(2)
        return [hydra_binary(), "serve", "all", "--dev"]

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "DSN": "memory",
            "STRATEGIES_ACCESS_TOKEN": "jwt",
            "SERVE_PUBLIC_HOST": "127.0.0.1",
            "SERVE_PUBLIC_PORT": str(self.public_port),
            "SERVE_ADMIN_HOST": "127.0.0.1",
            "SERVE_ADMIN_PORT": str(self.admin_port),
            "URLS_SELF_ISSUER": self.issuer,
            "SECRETS_SYSTEM": secrets.token_urlsafe(32),
            "LOG_LEVEL": "warn",
            # No telemetry calls out of the machine.
            "SQA_OPT_OUT": "true",
        }

    def is_ready(self) -> bool:
        self._get(f"{self.admin_url}/health/ready")
        # The first discovery request makes Hydra generate its ID-token key pair (RSA), which
        # takes seconds on a loaded machine; a client that gives up makes it start over.
        self._get(f"{self.issuer}/.well-known/openid-configuration", timeout=30)
        return True

    def create_client(
        self,
        scopes: tuple[str, ...],
        audience: tuple[str, ...],
        name: str = "meshkit-shop",
        client_id: str | None = None,
    ) -> OAuthClient:
        """Register a client-credentials client allowed ``scopes`` and ``audience``."""
        body: dict[str, Any] = {
            "client_name": name,
            "grant_types": ["client_credentials"],
            "response_types": ["token"],
            "scope": " ".join(scopes),
            "audience": list(audience),
            "token_endpoint_auth_method": "client_secret_basic",
        }
        if client_id:
            body["client_id"] = client_id
        out = self._send("POST", f"{self.admin_url}/admin/clients", body)
        return OAuthClient(out["client_id"], out["client_secret"], scopes, audience)

    def token(
        self,
        client: OAuthClient,
        scopes: tuple[str, ...] | None = None,
        audience: tuple[str, ...] | None = None,
    ) -> str:
        """A JWT access token for ``client`` (client-credentials grant at the token endpoint)."""
        return token_from(self.issuer, client, scopes, audience)

    def rotate_access_token_key(self) -> str:
        """Add a new signing key to the access-token key set; returns its ``kid``.

        Hydra signs with the newest key of the set from then on, and publishes it in the
        JWKS next to the old ones.
        """
        kid = "rotated-" + secrets.token_hex(4)
        out = self._send(
            "POST",
            f"{self.admin_url}/admin/keys/{ACCESS_TOKEN_KEYS}",
            {"alg": "RS256", "use": "sig", "kid": kid},
        )
        return str(out["keys"][0]["kid"])

    @staticmethod
    def _get(url: str, timeout: float = 2) -> Any:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")

    @staticmethod
    def _send(method: str, url: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())


def token_from(
    issuer: str,
    client: OAuthClient,
    scopes: tuple[str, ...] | None = None,
    audience: tuple[str, ...] | None = None,
) -> str:
    """POST ``{issuer}/oauth2/token`` (client credentials, HTTP basic auth); the access token."""
    form = {
        "grant_type": "client_credentials",
        "scope": " ".join(client.scopes if scopes is None else scopes),
        "audience": " ".join(client.audience if audience is None else audience),
    }
    basic = base64.b64encode(
        f"{urllib.parse.quote(client.client_id)}:{urllib.parse.quote(client.client_secret)}".encode()
    ).decode()
    req = urllib.request.Request(
        f"{issuer}/oauth2/token",
        data=urllib.parse.urlencode(form).encode(),
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return str(json.loads(resp.read())["access_token"])
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"token request refused: {exc.code} {exc.read().decode()}") from exc
