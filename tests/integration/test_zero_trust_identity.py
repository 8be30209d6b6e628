"""Zero trust, identity (issue 14, items 1 and 2): Consul with ACLs on (default deny), one
token per identity, and a signer that alone holds the CA key and signs a CSR only for the
identity the caller's Consul token holds."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from devstack.consul import ConsulAgent
from devstack.services import Launcher
from devstack.signer import dev_ca
from meshkit.security.certificates import SignerClient, SignerError
from meshkit.security.identity import SpiffeId
from meshkit.security.pki import CA_KEY, identity_of, make_csr
from tests.integration.direct import get_stock, leaf_channel

pytestmark = pytest.mark.integration


def status_of(consul: ConsulAgent, path: str, token: str, body: object = None) -> int:
    """The HTTP status of a Consul API call made with ``token`` ("" for none)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        consul.url + path,
        data=data,
        method="GET" if body is None else "PUT",
        headers={"X-Consul-Token": token} if token else {},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def roots_of(consul: ConsulAgent) -> bytes:
    body = consul.get("/v1/agent/connect/ca/roots", token="")  # public: no token needed
    assert isinstance(body, dict)
    return "".join(r["RootCert"].strip() + "\n" for r in body["Roots"]).encode()


# --- Consul's ACLs -----------------------------------------------------------------------


# Consul 1.22.7's agent serves a leaf it has cached (/v1/agent/connect/ca/leaf/<name>,
# once fetched with a token allowed to) to any caller, the anonymous one included: seen
# here, and the reason these tests ask for leaves of names nothing else fetched. The mesh
# never fetches Consul's leaves (its own come from the signer); a Connect workload that
# does leaves its leaf readable through that agent.


def test_without_a_token_neither_the_ca_configuration_nor_a_leaf_is_readable(
    consul: ConsulAgent,
) -> None:
    assert status_of(consul, "/v1/connect/ca/configuration", "") == 403
    assert status_of(consul, "/v1/agent/connect/ca/leaf/zt-anon-leaf", "") == 403
    assert consul.get("/v1/catalog/services", token="") == {}  # default deny: nothing seen
    # The management token (devstack's own) does read both: the refusals are the ACLs'.
    management = consul.management_token
    assert status_of(consul, "/v1/connect/ca/configuration", management) == 200
    # What is at stake: Consul's built-in CA provider answers with the CA's private key.
    config = consul.get("/v1/connect/ca/configuration")
    assert isinstance(config, dict) and "PRIVATE KEY" in config["Config"]["PrivateKey"]
    assert status_of(consul, "/v1/agent/connect/ca/leaf/zt-anon-leaf", management) == 200


def test_a_service_token_reads_no_ca_configuration_and_no_other_services_leaf(
    consul: ConsulAgent,
) -> None:
    token = consul.service_token("zt-reader")
    assert status_of(consul, "/v1/connect/ca/configuration", token) == 403
    assert status_of(consul, "/v1/agent/connect/ca/leaf/zt-other-leaf", token) == 403
    assert status_of(consul, "/v1/agent/connect/ca/leaf/zt-reader", token) == 200  # its own
    # What the runtime reads with it: discovery, its intentions, the CA roots.
    assert status_of(consul, "/v1/health/service/order?passing=1", token) == 200
    match = "/v1/connect/intentions/match?by=destination&name=zt-reader"
    assert status_of(consul, match, token) == 200
    assert status_of(consul, "/v1/agent/connect/ca/roots", token) == 200


def test_a_service_token_registers_its_own_name_and_no_other(consul: ConsulAgent) -> None:
    token = consul.service_token("zt-probe")

    def register(name: str, instance: str) -> int:
        body = {"Name": name, "ID": instance, "Address": "127.0.0.1", "Port": 40999}
        return status_of(consul, "/v1/agent/service/register", token, body)

    assert register("order", "zt-fake-order") == 403  # another service's name
    assert status_of(consul, "/v1/agent/service/register", "", {"Name": "zt-probe"}) == 403
    assert register("zt-probe", "zt-probe-1") == 200  # its own
    try:
        services = consul.get("/v1/agent/services")
        assert isinstance(services, dict)
        assert "zt-probe-1" in services and "zt-fake-order" not in services
    finally:
        assert status_of(consul, "/v1/agent/service/deregister/zt-probe-1", token, {}) == 200


# --- the signer ----------------------------------------------------------------------------


async def post_sign(consul: ConsulAgent, body: object, token: str) -> tuple[int, dict[str, str]]:
    ctx = ssl.create_default_context(cadata=roots_of(consul).decode())
    headers = {"X-Consul-Token": token} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{consul.signer_url}/v1/sign", json=body, headers=headers, ssl=ctx) as r,
    ):
        return r.status, await r.json()


async def test_the_signer_signs_a_csr_for_the_callers_own_identity(consul: ConsulAgent) -> None:
    roots = roots_of(consul)
    leaf = await SignerClient(consul.signer_url, consul.service_token("payment")).sign(
        "payment", 600, roots
    )
    assert identity_of(leaf.cert_pem) == SpiffeId(consul.trust_domain(), "payment")
    cert = x509.load_pem_x509_certificate(leaf.cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {
        "payment.service.consul",
        "payment",
        "localhost",
    }
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert life.total_seconds() <= 600 + 60  # the TTL asked (not-before a minute back)
    # The key made for this leaf (in the key helper) is the certificate's.
    key = serialization.load_pem_private_key(leaf.key_pem, password=None)
    assert key.public_key() == cert.public_key()
    assert leaf.identity == SpiffeId(consul.trust_domain(), "payment")
    assert leaf.not_after == cert.not_valid_after_utc


async def test_a_csr_for_a_name_the_caller_does_not_own_is_refused(consul: ConsulAgent) -> None:
    roots = roots_of(consul)
    shipping = SignerClient(consul.signer_url, consul.service_token("shipping"))
    with pytest.raises(SignerError) as err:
        await shipping.sign("order", 600, roots)  # shipping's token, order's name
    assert err.value.status == 403
    _, csr = make_csr("order")
    status, answer = await post_sign(consul, {"csr": csr.decode()}, consul.service_token("gateway"))
    assert status == 403 and answer["field"] == "csr.subject" and "'order'" in answer["error"]


async def test_the_signer_answers_401_without_a_valid_token_and_400_for_a_bad_csr(
    consul: ConsulAgent,
) -> None:
    _, csr = make_csr("order")
    status, answer = await post_sign(consul, {"csr": csr.decode()}, "")
    assert (status, answer["field"]) == (401, "X-Consul-Token")
    status, answer = await post_sign(
        consul, {"csr": csr.decode()}, "00000000-0000-0000-0000-000000000000"
    )
    assert (status, answer["field"]) == (401, "X-Consul-Token")
    token = consul.service_token("order")
    status, answer = await post_sign(consul, {"csr": "not a CSR"}, token)
    assert (status, answer["field"]) == (400, "csr")
    status, answer = await post_sign(consul, {"cert": csr.decode()}, token)
    assert (status, answer["field"]) == (400, "csr")
    status, answer = await post_sign(consul, {"csr": csr.decode(), "ttl": -1}, token)
    assert (status, answer["field"]) == (400, "ttl")
    status, _ = await post_sign(consul, {"csr": csr.decode(), "ttl": 60}, token)
    assert status == 200  # the same CSR, well asked


async def test_the_signer_caps_the_ttl(consul: ConsulAgent) -> None:
    leaf = await SignerClient(consul.signer_url, consul.service_token("order")).sign(
        "order", 10 * 365 * 86400.0, roots_of(consul)
    )
    cert = x509.load_pem_x509_certificate(leaf.cert_pem)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 3 + 1


# --- who holds the CA key ------------------------------------------------------------------


def files_holding(secret: bytes, *roots: Path) -> list[Path]:
    """Every regular file under ``roots`` whose bytes contain ``secret``."""
    found = []
    for root in roots:
        for path in root.rglob("*"):
            try:
                if path.is_file() and not path.is_symlink() and secret in path.read_bytes():
                    found.append(path)
            except OSError:
                continue
    return found


def assert_nowhere_on_disk(key: bytes, consul: ConsulAgent, state_dir: Path) -> None:
    agent_dirs = [Path(consul._tmp.name)] if consul._tmp is not None else []
    assert not files_holding(key, state_dir, *agent_dirs)
    assert not list(state_dir.rglob(CA_KEY))
    assert consul.signer is not None
    for what in ("cmdline", "environ"):
        assert key not in Path(f"/proc/{consul.signer.pid}/{what}").read_bytes()


def mapped_files(pid: int) -> str:
    """The files process ``pid`` has mapped (its shared libraries among them)."""
    return Path(f"/proc/{pid}/maps").read_text()


async def test_no_ca_key_on_disk_and_a_service_runs_with_none_in_its_reach(
    consul: ConsulAgent, launcher: Launcher, state_dir: Path, tmp_path: Path
) -> None:
    """The stack's CA lives in memory (devstack's, Consul's as its Connect CA provider,
    the signer's, handed over on its stdin): no file under the state directory, nor the
    agent's config directory, holds its key, and the signer's command line and
    environment do not carry it. An inventory instance with a state directory of its own
    (no CA in it, no path to the stack's) gets its leaf from the signer and serves mTLS,
    authorized by Consul's intentions; the old runtime made a CA in ``<state>/ca/`` when it
    found none, and none appears. What this does not prove: the processes all run as the
    same user (root here), who could read another process's memory; on one machine the
    boundary is the code path, not the OS (see docs/security.md). Nor did the service
    load ``cryptography``: its key and CSR were made in a child process."""
    ca = dev_ca(state_dir)  # the test acts as devstack here
    key = ca.key_pem.strip().splitlines()[1]  # a line of the key's base64
    assert_nowhere_on_disk(key, consul, state_dir)
    own_state = tmp_path / "inventory-state"
    proc = launcher.start("inventory", "--state-dir", str(own_state))
    try:
        assert not list(own_state.rglob(CA_KEY)), list(own_state.rglob(CA_KEY))
        assert not (own_state / "ca").exists()
        assert not files_holding(key, own_state)
        assert "cryptography" not in mapped_files(proc.pid)
        identity = SpiffeId(consul.trust_domain(), "order")
        async with leaf_channel(proc.address, ca, ca.cert_pem, identity) as ch:
            assert await get_stock(ch) > 0
    finally:
        proc.stop()
