"""Certificate rotation without restart, the no-Connect fallback, and the --insecure flag."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from devstack.consul import ConsulAgent
from meshkit.security.certificates import issue_leaf, load_or_create_ca, service_dns_names
from meshkit.security.identity import SpiffeId
from tests.conftest import Launcher
from tests.integration.direct import get_stock, leaf_channel

pytestmark = pytest.mark.integration


def served_certificate(address: str, state_dir: Path, trust_domain: str) -> x509.Certificate:
    """The certificate an instance presents now (a TLS handshake with a client cert)."""
    ca = load_or_create_ca(state_dir / "ca")
    leaf = issue_leaf(ca, SpiffeId(trust_domain, "order"), service_dns_names("order"), 600)
    files = state_dir / "rotation-client"
    files.mkdir(exist_ok=True)
    (files / "cert.pem").write_bytes(leaf.cert_pem)
    (files / "key.pem").write_bytes(leaf.key_pem)
    ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
    ctx.load_cert_chain(files / "cert.pem", files / "key.pem")
    ctx.set_alpn_protocols(["h2"])
    host, port = address.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=5) as sock,
        ctx.wrap_socket(sock, server_hostname="inventory.service.consul") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def trust_domain_of(consul: ConsulAgent) -> str:
    return str(consul.get("/v1/agent/connect/ca/roots")["TrustDomain"])  # type: ignore[index]


async def test_the_leaf_rotates_before_expiry_without_a_restart(
    launcher: Launcher, consul: ConsulAgent, state_dir: Path
) -> None:
    td = trust_domain_of(consul)
    proc = launcher.start("inventory", "--cert-ttl", "3s")
    first = served_certificate(proc.address, state_dir, td)
    lifetime = first.not_valid_after_utc - first.not_valid_before_utc
    assert lifetime.total_seconds() < 3 + 61  # issued with not-before one minute back
    await asyncio.sleep(2.5)  # re-issued at two thirds of its life
    second = served_certificate(proc.address, state_dir, td)
    assert second.serial_number != first.serial_number
    assert proc.process.poll() is None  # same process, no restart
    ca = load_or_create_ca(state_dir / "ca")
    async with leaf_channel(proc.address, ca, ca.cert_pem, SpiffeId(td, "order")) as ch:
        assert await get_stock(ch) > 0
    proc.stop()


async def test_without_connect_the_local_ca_and_the_intentions_files_decide(
    launcher: Launcher, state_dir: Path
) -> None:
    proc = launcher.start("inventory", "--no-connect", "--trust-domain", "meshkit.local")
    ca = load_or_create_ca(state_dir / "ca")
    async with leaf_channel(
        proc.address, ca, ca.cert_pem, SpiffeId("meshkit.local", "order")
    ) as ch:
        assert await get_stock(ch) > 0
    denied = SpiffeId("meshkit.local", "shipping")
    async with leaf_channel(proc.address, ca, ca.cert_pem, denied) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await get_stock(ch)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    proc.stop()


async def test_insecure_is_explicit_and_logs_a_warning(launcher: Launcher, state_dir: Path) -> None:
    proc = launcher.start("payment", "--insecure", "--port", "0")
    async with grpc.aio.insecure_channel(proc.address) as ch:
        await ch.channel_ready()
    proc.stop()
    log = state_dir / "services.log"
    for _ in range(50):  # the log pump may trail the process by a moment
        if "INSECURE: plaintext gRPC" in log.read_text():
            break
        await asyncio.sleep(0.1)
    assert "INSECURE: plaintext gRPC" in log.read_text()
