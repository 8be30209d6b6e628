"""The mesh's certificate authority: its key and root, and the leaves it signs.

Only the signer (``meshkit.security.signer``), devstack, deployment tooling and tests use
this module: it loads ``cryptography``. A workload's own certificate work (its key, its
CSR, the reading of the leaf) is in :mod:`meshkit.security.keypair`, run in a child
process; the workload's side of the mesh is :mod:`meshkit.security.certificates`.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshkit.security.certificates import CA_CERT, Leaf, utc_now
from meshkit.security.identity import NoIdentity, SpiffeId, spiffe_id_among
from meshkit.security.keypair import chains_to, make_csr, private_key_pem, uri_sans
from meshkit.security.secrets import write_secret

__all__ = [
    "CA",
    "CA_KEY",
    "chains_to",
    "consul_ca_config",
    "create_ca",
    "identity_of",
    "issue_leaf",
    "load_or_create_ca",
    "make_csr",
    "sign_leaf",
]

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
        return private_key_pem(self.key)


def create_ca(common_name: str = "meshkit-shop dev CA", days: int = 3650) -> CA:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = utc_now()
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


def issue_leaf(
    ca: CA, identity: SpiffeId, dns_names: list[str], ttl: float, ips: list[str] | None = None
) -> Leaf:
    """A key and a leaf for it, signed here with ``ca``: what the signer does for a CSR
    (:func:`sign_leaf`), for the signer's own server certificate and for tests only."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert_pem, not_after = sign_leaf(ca, key.public_key(), identity, dns_names, ttl, ips)
    return Leaf(private_key_pem(key), cert_pem, identity, not_after)


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
    now = utc_now()
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


@functools.lru_cache(maxsize=4096)
def identity_of(cert_pem: bytes) -> SpiffeId:
    """The SPIFFE id in a certificate's URI SAN (cached: one parse per certificate)."""
    uris = uri_sans(x509.load_pem_x509_certificate(cert_pem))
    if not uris:
        raise NoIdentity("the certificate has no URI subject alternative names")
    return spiffe_id_among([u.encode() for u in uris])
