"""Certificate rotation without restart, the no-Connect fallback, and the --insecure flag."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from devstack.consul import ConsulAgent
from devstack.signer import dev_ca
from meshkit.security.certificates import service_dns_names
from meshkit.security.identity import SpiffeId
from meshkit.security.pki import issue_leaf
from tests.conftest import Launcher
from tests.integration.direct import get_stock, leaf_channel
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


def served_certificate(address: str, state_dir: Path, trust_domain: str) -> x509.Certificate:
    """The certificate an instance presents now (a TLS handshake with a client cert)."""
    ca = dev_ca(state_dir)
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


CERT_TTL = 9.0  # seconds; re-issued at two thirds of its life, so about 3 s before expiry


async def test_the_leaf_rotates_before_expiry_without_a_restart(
    launcher: Launcher, consul: ConsulAgent, state_dir: Path
) -> None:
    """Handshakes all along the first leaf's life and past its expiry: each one verifies
    the leaf (an expired one would fail it), so the instance never served an expired
    leaf, and a new one came while the first was still valid, in the same process."""
    td = trust_domain_of(consul)
    proc = launcher.start("inventory", "--cert-ttl", f"{CERT_TTL:g}s")
    try:
        first = served_certificate(proc.address, state_dir, td)
        lifetime = first.not_valid_after_utc - first.not_valid_before_utc
        assert lifetime.total_seconds() <= CERT_TTL + 60  # not-before one minute back
        serials = [first.serial_number]
        deadline = time.monotonic() + 3 * CERT_TTL + 30  # a bound, never reached when well
        while True:
            now = dt.datetime.now(dt.UTC)
            served = served_certificate(proc.address, state_dir, td)  # verified: unexpired
            assert served.not_valid_after_utc > now, served.not_valid_after_utc
            if served.serial_number != serials[-1]:
                serials.append(served.serial_number)
            if len(serials) >= 2 and now > first.not_valid_after_utc + dt.timedelta(seconds=1):
                break  # rotated, and the first leaf has expired since: never interrupted
            assert time.monotonic() < deadline, f"no rotation seen; serials {serials}"
            await asyncio.sleep(0.2)
        assert proc.process.poll() is None  # same process, no restart
        ca = dev_ca(state_dir)
        async with leaf_channel(proc.address, ca, ca.cert_pem, SpiffeId(td, "order")) as ch:
            assert await get_stock(ch) > 0
    finally:
        proc.stop()


async def test_without_connect_the_local_ca_and_the_intentions_files_decide(
    launcher: Launcher, state_dir: Path
) -> None:
    proc = launcher.start("inventory", "--no-connect", "--trust-domain", "meshkit.local")
    try:
        ca = dev_ca(state_dir)
        async with leaf_channel(
            proc.address, ca, ca.cert_pem, SpiffeId("meshkit.local", "order")
        ) as ch:
            assert await get_stock(ch) > 0
        denied = SpiffeId("meshkit.local", "shipping")
        async with leaf_channel(proc.address, ca, ca.cert_pem, denied) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await get_stock(ch)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        proc.stop()


async def test_insecure_is_explicit_and_logs_a_warning(launcher: Launcher, state_dir: Path) -> None:
    proc = launcher.start("payment", "--insecure", "--port", "0")
    try:
        async with grpc.aio.insecure_channel(proc.address) as ch:
            await asyncio.wait_for(ch.channel_ready(), 10)
    finally:
        proc.stop()
    log = state_dir / "services.log"
    # The log pump may trail the process by a moment.
    await eventually(
        lambda: "INSECURE: plaintext gRPC" in log.read_text(), timeout=10, what="the warning"
    )
