"""A workload's key and CSR, and the reading of the leaf the signer returns for it.

This is the only certificate work a service does, and it runs in a child process
(``meshkit.security.certificates.SignerClient`` starts this file as a script), so a service
never loads ``cryptography``: its Rust extension and OpenSSL state are about 11 MiB of a
service's resident memory, for work done once per leaf (at start and every renewal).
The signer and the tests import the same functions (``meshkit.security.pki``).

Standalone on purpose: the standard library and ``cryptography`` only, no ``meshkit``
import, so the child starts in a fraction of a second. The conversation is one JSON
object a line: ``{"service"}`` in, ``{"csr"}`` out; ``{"cert", "roots"}`` in, ``{"key",
"uris", "not_after", "issued_by_root"}`` out; or ``{"error"}`` and exit status 1.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """``key`` as unencrypted PKCS#8 PEM, the form gRPC and Consul take."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_csr(service: str) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """A fresh key and a CSR (PEM) asking for ``service``'s identity (its common name)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service)]))
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM)


def chains_to(cert_pem: bytes, roots_pem: bytes) -> bool:
    """Whether ``cert_pem`` is signed directly by one of the certificates in ``roots_pem``."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return _issued_by_one_of(cert, roots_pem)


def _issued_by_one_of(cert: x509.Certificate, roots_pem: bytes) -> bool:
    for root in x509.load_pem_x509_certificates(roots_pem):
        try:
            cert.verify_directly_issued_by(root)
            return True
        except (ValueError, TypeError, InvalidSignature):
            continue
    return False


def uri_sans(cert: x509.Certificate) -> list[str]:
    """The certificate's URI subject alternative names (none: an empty list)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


def read_leaf(key: ec.EllipticCurvePrivateKey, cert_pem: bytes, roots_pem: bytes) -> dict[str, Any]:
    """What the workload needs of the signer's answer for ``key``: the key (PEM), the
    leaf's URI SANs and expiry, and whether it is issued by one of ``roots_pem`` and for
    this very key (a leaf for another key is useless to a TLS handshake)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    for_this_key = cert.public_key() == key.public_key()
    return {
        "key": private_key_pem(key).decode(),
        "uris": uri_sans(cert),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "issued_by_root": for_this_key and _issued_by_one_of(cert, roots_pem),
    }


def _converse(lines: Any, say: Any) -> None:
    ask = json.loads(next(lines))
    key, csr = make_csr(str(ask["service"]))
    say({"csr": csr.decode()})
    answer = json.loads(next(lines))
    say(read_leaf(key, str(answer["cert"]).encode(), str(answer["roots"]).encode()))


def main() -> None:
    def say(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    try:
        _converse(iter(sys.stdin), say)
    except StopIteration:  # the parent went away (the signer refused): nothing to say
        sys.exit(1)
    except Exception as exc:
        say({"error": f"{type(exc).__name__}: {exc}"})
        sys.exit(1)


if __name__ == "__main__":
    main()
