"""Certificates of the mesh: one trust root shared with Consul's Connect CA.

Consul's Connect leaf certificates carry only a SPIFFE URI SAN, and gRPC clients (Python,
Go) insist on a DNS or IP SAN for the server's hostname check. So the mesh keeps a CA of
its own that is *also* Consul's Connect CA root (``ca_config`` with
``PrivateKey``/``RootCert``, see :func:`consul_ca_config`), and each service gets a leaf
with both: DNS/IP SANs for gRPC, the SPIFFE URI in Consul's trust domain for identity.
Any Connect workload holding a Consul leaf chains to the same root, so it can call the
services (subject to intentions), and the services trust exactly Consul's roots.

The CA key is held by one process, the signer (``meshkit.security.signer``; devstack keeps
the CA in ``.state/signer/``, 0700). A workload makes its own key and sends a CSR with
its Consul ACL token (:class:`SignerClient`); the signer signs only for the service the
token holds. :func:`issue_leaf` (key and signature in one place) is for the signer itself
and for tests that act as devstack.

Leaves are short-lived and re-issued at two thirds of their life or when Consul's roots or
trust domain change; servers pick the new one up on the next handshake, clients rebuild
their channels (see :meth:`Certificates.subscribe`).

``python -m meshkit.tools.certs certs`` creates the CA and gets certificates for tools.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import consul.aio
import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshkit.consul import Watch, blocking_get
from meshkit.security.identity import SpiffeId, identity_of
from meshkit.security.secrets import write_secret

log = logging.getLogger("mesh.certificates")

CA_CERT = "ca.pem"
CA_KEY = "ca.key"


@dataclass(frozen=True)
class CA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_ca(common_name: str = "meshkit-shop dev CA", days: int = 3650) -> CA:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CA(key, cert)


def load_or_create_ca(ca_dir: Path) -> CA:
    """The CA in ``ca_dir``, created on first use (key file mode 0600)."""
    cert_path, key_path = ca_dir / CA_CERT, ca_dir / CA_KEY
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return CA(key, x509.load_pem_x509_certificate(cert_path.read_bytes()))
    ca = create_ca()
    write_secret(key_path, ca.key_pem)  # 0600 from the start; creates ca_dir 0700
    cert_path.write_bytes(ca.cert_pem)
    return ca


def consul_ca_config(ca: CA) -> dict[str, object]:
    """Agent config that makes ``ca`` the root of Consul's built-in Connect CA."""
    return {
        "connect": {
            "enabled": True,
            "ca_provider": "consul",
            "ca_config": {"private_key": ca.key_pem.decode(), "root_cert": ca.cert_pem.decode()},
        }
    }


@dataclass(frozen=True)
class Leaf:
    """A private key and certificate chain (PEM), plus what the mesh needs to know of them."""

    key_pem: bytes
    cert_pem: bytes
    identity: SpiffeId
    not_after: dt.datetime


def issue_leaf(
    ca: CA, identity: SpiffeId, dns_names: list[str], ttl: float, ips: list[str] | None = None
) -> Leaf:
    """A key and a leaf for it, signed here with ``ca``: what the signer does for a CSR
    (:func:`sign_leaf`), for the signer's own server certificate and for tests only."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert_pem, not_after = sign_leaf(ca, key.public_key(), identity, dns_names, ttl, ips)
    return Leaf(_key_pem(key), cert_pem, identity, not_after)


def sign_leaf(
    ca: CA,
    public_key: ec.EllipticCurvePublicKey,
    identity: SpiffeId,
    dns_names: list[str],
    ttl: float,
    ips: list[str] | None = None,
) -> tuple[bytes, dt.datetime]:
    """A leaf (PEM) for ``public_key``, for server and client use, with the SPIFFE URI and
    DNS/IP SANs; and its expiry."""
    now = _now()
    not_after = now + dt.timedelta(seconds=ttl)
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.uri)]
    sans += [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips or ["127.0.0.1", "::1"]]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.service)]))
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                key_agreement=True,
                content_commitment=False,
                data_encipherment=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), not_after


def service_dns_names(service: str) -> list[str]:
    """DNS SANs of a service's leaf; clients check ``<service>.service.consul``."""
    return [f"{service}.service.consul", service, "localhost"]


def authority(service: str) -> str:
    """The name a client expects in a server's certificate of ``service``."""
    return f"{service}.service.consul"


@dataclass(frozen=True)
class Roots:
    """Consul's Connect CA roots: the trust domain and every root (and intermediate) PEM."""

    trust_domain: str
    pem: bytes

    @classmethod
    def from_consul(cls, body: dict[str, object]) -> Roots:
        pems: list[str] = []
        for root in body.get("Roots") or []:  # type: ignore[attr-defined]
            pems.append(root["RootCert"].strip() + "\n")
            pems += [c.strip() + "\n" for c in root.get("IntermediateCerts") or []]
        return cls(str(body["TrustDomain"]), "".join(pems).encode())


def make_csr(service: str) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """A fresh key and a CSR (PEM) asking for ``service``'s identity (its common name)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service)]))
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM)


class SignerError(RuntimeError):
    """The signer refused a CSR (``status`` is its HTTP status) or could not be reached."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def chains_to(cert_pem: bytes, roots_pem: bytes) -> bool:
    """Whether ``cert_pem`` is signed directly by one of the certificates in ``roots_pem``."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    for root in x509.load_pem_x509_certificates(roots_pem):
        try:
            cert.verify_directly_issued_by(root)
            return True
        except (ValueError, TypeError, InvalidSignature):
            continue
    return False


@dataclass(frozen=True)
class SignerClient:
    """A workload's way to a leaf: its own key, a CSR to the signer (``POST /v1/sign``,
    HTTPS verified against the mesh's roots), its Consul ACL token as the proof of who it
    is. The CA key stays in the signer (``meshkit.security.signer``)."""

    url: str
    token: str

    async def sign(self, service: str, ttl: float, roots_pem: bytes) -> Leaf:
        import ssl

        import aiohttp

        key, csr = make_csr(service)
        ctx = ssl.create_default_context(cadata=roots_pem.decode())
        headers = {"X-Consul-Token": self.token} if self.token else {}
        body = {"csr": csr.decode(), "ttl": ttl}
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
                session.post(
                    self.url.rstrip("/") + "/v1/sign", json=body, headers=headers, ssl=ctx
                ) as resp,
            ):
                answer = await resp.json(content_type=None)
                if resp.status != 200:
                    error = (answer or {}).get("error", "") if isinstance(answer, dict) else ""
                    raise SignerError(
                        f"the signer refused a certificate for {service}: {resp.status} {error}",
                        resp.status,
                    )
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise SignerError(f"no answer from the signer at {self.url}: {exc}") from exc
        cert_pem = str(answer["cert"]).encode()
        cert = x509.load_pem_x509_certificate(cert_pem)
        return Leaf(_key_pem(key), cert_pem, identity_of(cert_pem), cert.not_valid_after_utc)


def read_token(path: Path | str) -> str:
    return Path(path).read_text().strip()


class Certificates:
    """The instance's current leaf and trust bundle, kept fresh in the background.

    The leaf comes from the signer (``signer``): a fresh key each time, a CSR, the signer's
    answer; re-issued at two thirds of its life and when Consul's roots change. The trust
    bundle is Consul's Connect CA roots (watched), or ``roots_pem`` without Consul."""

    def __init__(
        self,
        service: str,
        signer: SignerClient,
        ttl: float,
        *,
        consul_client: consul.aio.Consul | None = None,
        trust_domain: str = "meshkit.local",
        roots_pem: bytes = b"",
    ) -> None:
        self.service = service
        self._signer = signer
        self._ttl = ttl
        self._consul = consul_client
        self._roots = Roots(trust_domain, roots_pem)
        self.leaf: Leaf | None = None
        self._issued_at = _now()
        self._listeners: list[Callable[[], None]] = []
        self._watch: Watch[Roots] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._reissue: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.generation = 0

    @property
    def trust_domain(self) -> str:
        return self._roots.trust_domain

    @property
    def roots_pem(self) -> bytes:
        return self._roots.pem

    @property
    def identity(self) -> SpiffeId:
        assert self.leaf is not None
        return self.leaf.identity

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every rotation of the leaf or the roots."""
        self._listeners.append(listener)

    async def start(self) -> None:
        if self._consul is not None:
            c = self._consul

            async def fetch(index: int) -> tuple[int, Roots]:
                i, body = await blocking_get(c, "/v1/agent/connect/ca/roots", index)
                return i, Roots.from_consul(body)

            self._watch = Watch("connect-ca-roots", fetch, self._on_roots).start()
            self._roots = await self._watch.ready()
        if not self._roots.pem:
            raise RuntimeError("no trust roots: neither Consul's Connect CA nor a CA file")
        await self._rotate("start")
        self._renewer = asyncio.create_task(self._renew_forever(), name="cert-renewer")

    def _on_roots(self, roots: Roots) -> None:
        if self.leaf is None:  # still starting: start() takes the first answer itself
            return
        changed_domain = roots.trust_domain != self._roots.trust_domain
        self._roots = roots
        why = "trust domain changed" if changed_domain else "roots changed"
        if self._reissue is not None:
            self._reissue.cancel()
        self._reissue = asyncio.create_task(self._rotate_until_done(why), name="cert-reissue")

    async def _rotate(self, why: str) -> None:
        async with self._lock:
            leaf = await self._signer.sign(self.service, self._ttl, self.roots_pem)
            if not chains_to(leaf.cert_pem, self.roots_pem):
                raise RuntimeError(
                    f"the signer's leaf for {self.service} is not issued by Consul's Connect CA "
                    "root: start Consul with the config from "
                    "meshkit.security.certificates.consul_ca_config (devstack does)"
                )
            self.leaf = leaf
            self._issued_at = _now()
            self.generation += 1
        log.info(
            "certificate issued (%s) for %s, valid until %s", why, leaf.identity, leaf.not_after
        )
        for listener in self._listeners:
            listener()

    async def _rotate_until_done(self, why: str) -> None:
        """Rotate, retrying (the signer restarting, Consul away) with backoff."""
        backoff = 0.5
        while True:
            try:
                await self._rotate(why)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("certificate (%s): %s; retrying in %.1fs", why, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _renew_forever(self) -> None:
        while True:
            assert self.leaf is not None
            # Two thirds into the leaf's life (the signer may have granted less than asked).
            life = (self.leaf.not_after - self._issued_at).total_seconds()
            left = (self.leaf.not_after - _now()).total_seconds()
            await asyncio.sleep(max(1.0, left - life / 3))
            await self._rotate_until_done("renewal")

    async def stop(self) -> None:
        tasks = [t for t in (self._renewer, self._reissue) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._watch is not None:
            await self._watch.stop()

    # --- gRPC credentials -------------------------------------------------------------

    def _server_config(self) -> grpc.ServerCertificateConfiguration:
        assert self.leaf is not None
        return grpc.ssl_server_certificate_configuration(
            [(self.leaf.key_pem, self.leaf.cert_pem)], root_certificates=self.roots_pem
        )

    def server_credentials(self) -> grpc.ServerCredentials:
        """mTLS server credentials that pick up a rotated leaf/roots on the next handshake."""
        served = [self.generation]

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            if served[0] == self.generation:
                return None
            served[0] = self.generation
            return self._server_config()

        return grpc.dynamic_ssl_server_credentials(
            self._server_config(), fetch, require_client_authentication=True
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """mTLS client credentials for the current leaf (build a new channel after rotation)."""
        assert self.leaf is not None
        return grpc.ssl_channel_credentials(
            root_certificates=self.roots_pem,
            private_key=self.leaf.key_pem,
            certificate_chain=self.leaf.cert_pem,
        )
