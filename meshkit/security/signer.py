"""The signer: the one process that holds the mesh CA's key (``python -m meshkit.security.signer``).

A small HTTPS server on loopback. A workload makes its own key and sends a CSR::

    POST /v1/sign   X-Consul-Token: <its Consul ACL token>
    {"csr": "<PEM>", "ttl": <seconds, optional>}

The signer proves who the caller is with Consul: ``GET /v1/acl/token/self`` with that
token, and signs only if the token's ``ServiceIdentities`` include the service the CSR asks
for (its common name). The leaf carries what the mesh's leaves always carried: the DNS
names of :func:`service_dns_names`, 127.0.0.1 and ::1, and the SPIFFE URI in Consul's
trust domain; its TTL is the one asked for, at most ``--max-ttl``. Answers: 200
``{"cert", "ca", "spiffe_id", "not_after"}``; 401 without a token Consul knows; 403 for a
service the token does not own; 400 for a bad request. Errors are JSON
``{"error": ..., "field": ...}`` naming what was wrong.

Its own server certificate it issues itself, from the same CA; clients verify it against
the CA root (public: Consul's Connect CA roots). The CA (``ca.pem``, ``ca.key``) is read
from ``--ca-dir`` (devstack's ``<state>/signer/``, 0700, the key 0600), or the key PEM
from stdin with ``--key-stdin``.

Without Consul (``--static-tokens FILE``, JSON ``{"<token>": ["<service>", ...]}`` and
``--trust-domain``): the same checks against a fixed map, for development only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import ssl
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshkit.security.certificates import CA_CERT, service_dns_names
from meshkit.security.identity import SpiffeId
from meshkit.security.pki import CA, CA_KEY, issue_leaf, load_or_create_ca, sign_leaf
from meshkit.security.secrets import write_secret

log = logging.getLogger("mesh.signer")

READY = "SIGNER_READY "
SERVICE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")
DEFAULT_MAX_TTL = 72 * 3600.0
DEFAULT_TTL = 24 * 3600.0
SELF_NAME = "mesh-signer"  # the SPIFFE service name of the signer's own certificate


class Refused(Exception):
    def __init__(self, status: int, error: str, field: str) -> None:
        super().__init__(error)
        self.status, self.error, self.field = status, error, field


# The identities a token holds and the trust domain to sign in (both from Consul, or static).
Identities = Callable[[str], Awaitable[set[str]]]
TrustDomain = Callable[[], Awaitable[str]]


def consul_identities(consul_url: str) -> tuple[Identities, TrustDomain]:
    """Who a token is, and the trust domain, asked of Consul at ``consul_url``."""

    async def identities(token: str) -> set[str]:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s,
            s.get(f"{consul_url}/v1/acl/token/self", headers={"X-Consul-Token": token}) as r,
        ):
            if r.status in (401, 403):  # "ACL not found": Consul does not know this token
                raise Refused(401, "the Consul token is not valid", "X-Consul-Token")
            if r.status != 200:
                raise Refused(502, f"Consul answered {r.status}", "X-Consul-Token")
            body = await r.json()
        return {str(i["ServiceName"]) for i in body.get("ServiceIdentities") or []}

    async def trust_domain() -> str:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s,
            s.get(f"{consul_url}/v1/agent/connect/ca/roots") as r,
        ):
            if r.status != 200:
                raise Refused(502, f"Consul answered {r.status} for its CA roots", "")
            return str((await r.json())["TrustDomain"])

    return identities, trust_domain


def static_identities(tokens: dict[str, list[str]], domain: str) -> tuple[Identities, TrustDomain]:
    async def identities(token: str) -> set[str]:
        if token not in tokens:
            raise Refused(401, "unknown token", "X-Consul-Token")
        return set(tokens[token])

    async def trust_domain() -> str:
        return domain

    return identities, trust_domain


class Signer:
    def __init__(
        self, ca: CA, identities: Identities, trust_domain: TrustDomain, max_ttl: float
    ) -> None:
        self.ca = ca
        self._identities = identities
        self._trust_domain = trust_domain
        self.max_ttl = max_ttl

    async def sign(self, token: str, body: object) -> dict[str, object]:
        if not token:
            raise Refused(401, "no Consul token (header X-Consul-Token)", "X-Consul-Token")
        if not isinstance(body, dict) or not isinstance(body.get("csr"), str):
            raise Refused(400, "a JSON object with a PEM CSR is expected", "csr")
        try:
            csr = x509.load_pem_x509_csr(body["csr"].encode())
        except ValueError as exc:
            raise Refused(400, f"not a PEM CSR: {exc}", "csr") from exc
        if not csr.is_signature_valid:
            raise Refused(400, "the CSR's signature does not verify", "csr")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise Refused(400, "the CSR's key must be an EC key", "csr")
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        service = str(names[0].value) if len(names) == 1 else ""
        if not SERVICE_NAME.match(service):
            raise Refused(400, "the CSR's subject must be CN=<service name>", "csr.subject")
        ttl = body.get("ttl", DEFAULT_TTL)
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
            raise Refused(400, "ttl must be a positive number of seconds", "ttl")
        owned = await self._identities(token)
        if service not in owned:
            raise Refused(403, f"the token holds no service identity {service!r}", "csr.subject")
        identity = SpiffeId(await self._trust_domain(), service)
        cert_pem, not_after = sign_leaf(
            self.ca, public_key, identity, service_dns_names(service), min(float(ttl), self.max_ttl)
        )
        log.info("signed %s until %s", identity, not_after)
        return {
            "cert": cert_pem.decode(),
            "ca": self.ca.cert_pem.decode(),
            "spiffe_id": identity.uri,
            "not_after": not_after.isoformat(),
        }

    async def handle(self, request: web.Request) -> web.Response:
        try:
            try:
                body = await request.json()
            except ValueError as exc:
                raise Refused(400, f"the body is not JSON: {exc}", "body") from exc
            answer = await self.sign(request.headers.get("X-Consul-Token", ""), body)
        except Refused as r:
            if r.status >= 500:
                log.warning("sign: %s", r.error)
            return web.json_response({"error": r.error, "field": r.field}, status=r.status)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("sign: Consul unreachable: %s", exc)
            return web.json_response({"error": f"Consul unreachable: {exc}"}, status=503)
        return web.json_response(answer)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/sign", self.handle)
        return app

    def server_ssl(self, trust_domain: str, days: float = 30) -> ssl.SSLContext:
        """TLS of the signer itself: a certificate it issues itself from the CA."""
        leaf = issue_leaf(
            self.ca, SpiffeId(trust_domain, SELF_NAME), ["localhost", SELF_NAME], days * 86400
        )
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory(prefix="meshkit-signer-") as tmp:
            cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            write_secret(key, leaf.key_pem)
            cert.write_bytes(leaf.cert_pem)
            ctx.load_cert_chain(cert, key)  # read now; the files go with the directory
        return ctx


def signer_dir(state: Path) -> Path:
    """Where the CA lives (``ca.key``, ``ca.pem``): the signer's and devstack's only."""
    return state / "signer"


def public_ca_dir(state: Path) -> Path:
    """The public root (``ca.pem``) and the signer's URL (``signer.url``), for anyone."""
    return state / "ca"


def dev_identity(state: Path, name: str) -> tuple[str, str]:
    """``name``'s Consul token and the signer's URL as a devstack of ``state`` keeps them
    (``<state>/consul/tokens/<name>.token``, ``<state>/ca/signer.url``), else from the
    environment ($CONSUL_HTTP_TOKEN, $MESH_SIGNER_URL): for tools and load generators."""
    token_file = state / "consul" / "tokens" / f"{name}.token"
    url_file = public_ca_dir(state) / "signer.url"
    token = token_file.read_text().strip() if token_file.exists() else ""
    url = os.environ.get("MESH_SIGNER_URL", "")
    if not url and url_file.exists():
        url = url_file.read_text().strip()
    return token or os.environ.get("CONSUL_HTTP_TOKEN", ""), url


def init_ca(state: Path) -> CA:
    """The mesh CA of ``state`` (made on first use): its key in ``<state>/signer/`` (0700,
    the key 0600), its public root in ``<state>/ca/ca.pem``. A ``ca.key`` an earlier
    layout left in ``<state>/ca/`` moves to the signer's directory."""
    private, public = signer_dir(state), public_ca_dir(state)
    stray = public / CA_KEY
    if stray.exists() and not (private / CA_KEY).exists():
        write_secret(private / CA_KEY, stray.read_bytes())
        (private / CA_CERT).write_bytes((public / CA_CERT).read_bytes())
    stray.unlink(missing_ok=True)
    ca = load_or_create_ca(private)
    os.chmod(private, 0o700)
    os.chmod(private / CA_KEY, 0o600)
    public.mkdir(parents=True, exist_ok=True)
    root = public / CA_CERT
    if not root.exists() or root.read_bytes() != ca.cert_pem:
        root.write_bytes(ca.cert_pem)
    return ca


def load_ca(ca_dir: Path, key_pem: bytes | None = None) -> CA:
    cert = x509.load_pem_x509_certificate((ca_dir / CA_CERT).read_bytes())
    key = serialization.load_pem_private_key(
        key_pem if key_pem is not None else (ca_dir / CA_KEY).read_bytes(), password=None
    )
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return CA(key, cert)


async def serve(signer: Signer, host: str, port: int, trust_domain: str) -> None:
    runner = web.AppRunner(signer.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=signer.server_ssl(trust_domain))
    await site.start()
    bound = runner.addresses[0][1]
    url = f"https://{host}:{bound}"
    print(READY + json.dumps({"url": url, "port": bound, "address": host}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m meshkit.security.signer", description=__doc__)
    p.add_argument("--ca-dir", type=Path, required=True, help="ca.pem (and ca.key)")
    p.add_argument("--key-stdin", action="store_true", help="the CA key's PEM on stdin")
    p.add_argument("--consul", default="127.0.0.1:8500", help="host:port of Consul's HTTP API")
    p.add_argument("--static-tokens", type=Path, help="JSON {token: [service, ...]}: no Consul")
    p.add_argument("--trust-domain", default="meshkit.local", help="with --static-tokens")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--max-ttl", type=float, default=DEFAULT_MAX_TTL, help="seconds")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ca = load_ca(a.ca_dir, sys.stdin.buffer.read() if a.key_stdin else None)
    if a.static_tokens:
        tokens = json.loads(a.static_tokens.read_text())
        identities, trust_domain = static_identities(tokens, a.trust_domain)
    else:
        identities, trust_domain = consul_identities("http://" + a.consul.removeprefix("http://"))

    async def run() -> None:
        signer = Signer(ca, identities, trust_domain, a.max_ttl)
        await serve(signer, a.host, a.port, await trust_domain())

    asyncio.run(run())


if __name__ == "__main__":
    main()
