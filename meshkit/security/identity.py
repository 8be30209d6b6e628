"""Workload identity: SPIFFE ids as Consul Connect writes them, read from a certificate's names
(``meshkit.security.pki.identity_of`` reads them from a certificate itself)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SpiffeId:
    """``spiffe://<trust-domain>/ns/<namespace>/dc/<datacenter>/svc/<service>``."""

    trust_domain: str
    service: str
    namespace: str = "default"
    datacenter: str = "dc1"

    @property
    def uri(self) -> str:
        return (
            f"spiffe://{self.trust_domain}/ns/{self.namespace}"
            f"/dc/{self.datacenter}/svc/{self.service}"
        )

    def __str__(self) -> str:
        return self.uri

    @classmethod
    def parse(cls, uri: str) -> SpiffeId:
        """Parse a Connect service identity; ValueError for anything else (agents, other forms)."""
        if not uri.startswith("spiffe://"):
            raise ValueError(f"not a SPIFFE id: {uri!r}")
        trust_domain, _, path = uri.removeprefix("spiffe://").partition("/")
        parts = path.split("/")
        # Consul also writes partitions: /ap/<partition>/ns/...; accept both shapes.
        if len(parts) >= 2 and parts[0] == "ap":
            parts = parts[2:]
        if len(parts) != 6 or parts[0::2] != ["ns", "dc", "svc"] or not all(parts[1::2]):
            raise ValueError(f"not a Connect service identity: {uri!r}")
        return cls(trust_domain, parts[5], parts[1], parts[3])


class NoIdentity(ValueError):
    """The certificate carries no usable service identity."""


def identity_of_peer(peer_identities: Sequence[bytes] | None) -> SpiffeId:
    """The SPIFFE id among a TLS peer's identities, as gRPC gives them per call
    (``context.peer_identities()``: the certificate's SANs, DNS names and URIs alike). Far
    cheaper per call than reading the certificate from ``auth_context()``."""
    if not peer_identities:
        raise NoIdentity("no client certificate")
    return spiffe_id_among(peer_identities)


def spiffe_id_among(names: Sequence[bytes]) -> SpiffeId:
    """The one SPIFFE URI among a certificate's SANs, parsed; NoIdentity unless exactly one."""
    spiffe = [n for n in names if n.startswith(b"spiffe://")]
    if len(spiffe) != 1:
        raise NoIdentity(f"expected one SPIFFE URI SAN, found {len(spiffe)}")
    return _parse_uri(spiffe[0])


@functools.lru_cache(maxsize=4096)
def _parse_uri(uri: bytes) -> SpiffeId:
    try:
        return SpiffeId.parse(uri.decode())
    except ValueError as exc:
        raise NoIdentity(str(exc)) from exc
