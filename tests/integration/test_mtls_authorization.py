"""mTLS and authorization against a real inventory instance and real Consul intentions."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from devstack.consul import ConsulAgent
from devstack.intentions import apply_intentions, set_intention
from devstack.services import ServiceProcess
from devstack.signer import dev_ca
from meshkit.security.identity import SpiffeId
from meshkit.security.pki import create_ca
from tests.integration.direct import channel, get_stock, leaf_channel
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def inventory(services: dict[str, ServiceProcess]) -> ServiceProcess:
    return services["inventory"]


@pytest.fixture
def trust_domain(consul: ConsulAgent) -> str:
    return str(consul.get("/v1/agent/connect/ca/roots")["TrustDomain"])  # type: ignore[index]


async def expect_code(call: object, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    assert err.value.code() == code, err.value.details()
    return err.value


async def assert_served(inventory: ServiceProcess, ca, trust_domain: str) -> None:  # type: ignore[no-untyped-def]
    """A caller the intentions allow (order) gets a real answer: OK, stock for the SKU."""
    async with leaf_channel(
        inventory.address, ca, ca.cert_pem, SpiffeId(trust_domain, "order")
    ) as ch:
        assert await get_stock(ch) > 0


async def test_a_mesh_identity_that_intentions_allow_is_served(
    inventory: ServiceProcess, state_dir, trust_domain: str
) -> None:
    await assert_served(inventory, dev_ca(state_dir), trust_domain)


class ServerLog:
    """What the inventory instance logs from now on (the session's services.log, each
    line prefixed with the instance's id): gRPC's TLS layer names a refused handshake's
    reason there, which the client only sees as a closed connection."""

    def __init__(self, state_dir: Path, instance: ServiceProcess) -> None:
        self.path = state_dir / "services.log"
        self.prefix = f"[{instance.info['instance_id']}] "
        self.offset = self.path.stat().st_size

    def new_lines(self) -> list[str]:
        text = self.path.read_bytes()[self.offset :].decode(errors="replace")
        return [line for line in text.splitlines() if line.startswith(self.prefix)]

    async def handshake_failed(self, reason: str) -> str:
        def logged() -> str | None:
            return next(
                (ln for ln in self.new_lines() if "Handshake failed" in ln and reason in ln),
                None,
            )

        return await eventually(logged, what=f"the server logging a handshake failed: {reason}")


async def test_no_client_certificate_fails_the_handshake(
    inventory: ServiceProcess, state_dir: Path, trust_domain: str
) -> None:
    ca = dev_ca(state_dir)
    log = ServerLog(state_dir, inventory)
    async with channel(inventory.address, ca.cert_pem) as ch:
        err = await expect_code(get_stock(ch, timeout=3), grpc.StatusCode.UNAVAILABLE)
    assert "failed to connect" in (err.details() or ""), err.details()
    # The server refused the handshake, for want of a client certificate...
    await log.handshake_failed("PEER_DID_NOT_RETURN_A_CERTIFICATE")
    await assert_served(inventory, ca, trust_domain)  # ... while up, and serving


async def test_a_certificate_from_another_ca_fails_the_handshake(
    inventory: ServiceProcess, state_dir: Path, trust_domain: str
) -> None:
    ca = dev_ca(state_dir)
    rogue = create_ca("rogue CA")
    identity = SpiffeId(trust_domain, "order")  # the right name, the wrong signer
    log = ServerLog(state_dir, inventory)
    async with leaf_channel(inventory.address, rogue, ca.cert_pem, identity) as ch:
        err = await expect_code(get_stock(ch, timeout=3), grpc.StatusCode.UNAVAILABLE)
    assert "failed to connect" in (err.details() or ""), err.details()
    # The server refused the handshake: the client's certificate has no known issuer...
    await log.handshake_failed("CERTIFICATE_VERIFY_FAILED: unable to get local issuer")
    await assert_served(inventory, ca, trust_domain)  # ... while up, and serving


async def test_an_identity_of_another_trust_domain_is_unauthenticated(
    inventory: ServiceProcess, state_dir
) -> None:
    ca = dev_ca(state_dir)
    identity = SpiffeId("11111111-2222-3333-4444-555555555555.consul", "order")
    async with leaf_channel(inventory.address, ca, ca.cert_pem, identity) as ch:
        err = await expect_code(get_stock(ch), grpc.StatusCode.UNAUTHENTICATED)
        assert "trust domain" in (err.details() or "")


async def test_an_identity_intentions_deny_is_permission_denied(
    inventory: ServiceProcess, state_dir, trust_domain: str
) -> None:
    ca = dev_ca(state_dir)
    # infra/consul/intentions/inventory.json: order, gateway, operator allowed; * denied.
    async with leaf_channel(
        inventory.address, ca, ca.cert_pem, SpiffeId(trust_domain, "shipping")
    ) as ch:
        err = await expect_code(get_stock(ch), grpc.StatusCode.PERMISSION_DENIED)
        assert "shipping may not call /shop.inventory.v1.InventoryService/GetStock" in (
            err.details() or ""
        )


async def test_a_consul_connect_leaf_is_a_valid_client(
    inventory: ServiceProcess, consul: ConsulAgent, state_dir
) -> None:
    """Any Connect workload holding Consul's own leaf (URI SAN only) can call, per intentions."""
    # With order's own token (the ACLs let an identity fetch its own leaf only).
    leaf = consul.get("/v1/agent/connect/ca/leaf/order", token=consul.service_token("order"))
    assert isinstance(leaf, dict)
    assert leaf["ServiceURI"].endswith("/svc/order")
    roots = dev_ca(state_dir).cert_pem
    async with channel(
        inventory.address, roots, leaf["PrivateKeyPEM"].encode(), leaf["CertPEM"].encode()
    ) as ch:
        assert await get_stock(ch) > 0


async def test_a_deny_intention_turns_an_allowed_caller_away_and_lifting_it_lets_it_back(
    inventory: ServiceProcess, consul: ConsulAgent, state_dir, trust_domain: str
) -> None:
    ca = dev_ca(state_dir)
    async with leaf_channel(
        inventory.address, ca, ca.cert_pem, SpiffeId(trust_domain, "order")
    ) as ch:

        async def served() -> bool:
            """True once a call succeeds; False while it is refused by the intentions.
            Any other failure fails the test: the server is up throughout."""
            try:
                return await get_stock(ch) > 0
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.PERMISSION_DENIED:
                    raise
                return False

        async def denied() -> bool:
            return not await served()

        assert await served()
        set_intention(consul, "inventory", {"order": "deny", "*": "deny"})
        try:
            await eventually(denied, timeout=10, what="order denied by the new intention")
            err = await expect_code(get_stock(ch), grpc.StatusCode.PERMISSION_DENIED)
            assert "order may not call" in (err.details() or ""), err.details()
        finally:
            apply_intentions(consul)
        # Consul's agent/connect/authorize keeps stale denials; the watched intentions do not.
        await eventually(served, timeout=10, what="order served again once the deny is lifted")
        assert await get_stock(ch) > 0  # and it stays served
