"""The signer's decisions, without a network: a static token map instead of Consul."""

from __future__ import annotations

import pytest
from cryptography import x509

from meshkit.security.identity import SpiffeId
from meshkit.security.pki import chains_to, create_ca, identity_of, make_csr
from meshkit.security.signer import Refused, Signer, static_identities

TD = "11111111-2222-3333-4444-555555555555.consul"


@pytest.fixture
def signer() -> Signer:
    identities, trust_domain = static_identities({"tok-order": ["order"]}, TD)
    return Signer(create_ca(), identities, trust_domain, max_ttl=3600)


async def test_a_csr_for_the_tokens_own_service_is_signed(signer: Signer) -> None:
    _, csr = make_csr("order")
    answer = await signer.sign("tok-order", {"csr": csr.decode(), "ttl": 600})
    cert_pem = str(answer["cert"]).encode()
    assert identity_of(cert_pem) == SpiffeId(TD, "order")
    assert chains_to(cert_pem, signer.ca.cert_pem)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() <= 660


async def test_the_ttl_is_capped(signer: Signer) -> None:
    _, csr = make_csr("order")
    answer = await signer.sign("tok-order", {"csr": csr.decode(), "ttl": 10**9})
    cert = x509.load_pem_x509_certificate(str(answer["cert"]).encode())
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() <= 3600 + 60


@pytest.mark.parametrize(
    ("token", "body", "status", "field"),
    [
        ("", {"csr": "order"}, 401, "X-Consul-Token"),
        ("tok-unknown", {"csr": "order"}, 401, "X-Consul-Token"),
        ("tok-order", {"csr": "payment"}, 403, "csr.subject"),
        ("tok-order", {"csr": "not a CSR"}, 400, "csr"),
        ("tok-order", {"pem": "order"}, 400, "csr"),
        ("tok-order", {"csr": "order", "ttl": 0}, 400, "ttl"),
        ("tok-order", {"csr": "order", "ttl": "1h"}, 400, "ttl"),
        ("tok-order", {"csr": "Not_A_Name"}, 400, "csr.subject"),
    ],
)
async def test_refusals_name_their_cause(
    signer: Signer, token: str, body: dict[str, object], status: int, field: str
) -> None:
    if body.get("csr") not in (None, "not a CSR"):
        body = {**body, "csr": make_csr(str(body["csr"]))[1].decode()}
    with pytest.raises(Refused) as err:
        await signer.sign(token, body)
    assert (err.value.status, err.value.field) == (status, field)
