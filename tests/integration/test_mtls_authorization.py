"""mTLS and authorization against a real inventory instance and real Consul intentions."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from devstack.consul import ConsulAgent
from devstack.intentions import apply_intentions, set_intention
from devstack.services import ServiceProcess
from meshkit.security.certificates import create_ca, load_or_create_ca
from meshkit.security.identity import SpiffeId
from tests.integration.direct import channel, get_stock, leaf_channel

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


async def test_a_mesh_identity_that_intentions_allow_is_served(
    inventory: ServiceProcess, state_dir, trust_domain: str
) -> None:
    ca = load_or_create_ca(state_dir / "ca")
    async with leaf_channel(
        inventory.address, ca, ca.cert_pem, SpiffeId(trust_domain, "order")
    ) as ch:
        assert await get_stock(ch) > 0


async def test_no_client_certificate_fails_the_handshake(
    inventory: ServiceProcess, state_dir
) -> None:
    ca = load_or_create_ca(state_dir / "ca")
    async with channel(inventory.address, ca.cert_pem) as ch:
        await expect_code(get_stock(ch, timeout=3), grpc.StatusCode.UNAVAILABLE)


async def test_a_certificate_from_another_ca_fails_the_handshake(
    inventory: ServiceProcess, state_dir, trust_domain: str
) -> None:
    ca = load_or_create_ca(state_dir / "ca")
    rogue = create_ca("rogue CA")
    identity = SpiffeId(trust_domain, "order")  # the right name, the wrong signer
    async with leaf_channel(inventory.address, rogue, ca.cert_pem, identity) as ch:
        await expect_code(get_stock(ch, timeout=3), grpc.StatusCode.UNAVAILABLE)


async def test_an_identity_of_another_trust_domain_is_unauthenticated(
    inventory: ServiceProcess, state_dir
) -> None:
    ca = load_or_create_ca(state_dir / "ca")
    identity = SpiffeId("11111111-2222-3333-4444-555555555555.consul", "order")
    async with leaf_channel(inventory.address, ca, ca.cert_pem, identity) as ch:
        err = await expect_code(get_stock(ch), grpc.StatusCode.UNAUTHENTICATED)
        assert "trust domain" in (err.details() or "")


async def test_an_identity_intentions_deny_is_permission_denied(
    inventory: ServiceProcess, state_dir, trust_domain: str
) -> None:
    ca = load_or_create_ca(state_dir / "ca")
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
    leaf = consul.get("/v1/agent/connect/ca/leaf/order")
    assert isinstance(leaf, dict)
    assert leaf["ServiceURI"].endswith("/svc/order")
    roots = load_or_create_ca(state_dir / "ca").cert_pem
    async with channel(
        inventory.address, roots, leaf["PrivateKeyPEM"].encode(), leaf["CertPEM"].encode()
    ) as ch:
        assert await get_stock(ch) > 0


async def wait_for(predicate, timeout: float = 10.0) -> float:  # type: ignore[no-untyped-def]
    """Poll the async ``predicate`` until true; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await predicate():
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    raise TimeoutError(f"condition not met in {timeout}s")


async def test_a_deny_intention_turns_an_allowed_caller_away_and_lifting_it_lets_it_back(
    inventory: ServiceProcess, consul: ConsulAgent, state_dir, trust_domain: str
) -> None:
    ca = load_or_create_ca(state_dir / "ca")
    async with leaf_channel(
        inventory.address, ca, ca.cert_pem, SpiffeId(trust_domain, "order")
    ) as ch:

        async def denied() -> bool:
            try:
                await get_stock(ch)
            except grpc.aio.AioRpcError as e:
                return e.code() == grpc.StatusCode.PERMISSION_DENIED
            return False

        async def allowed() -> bool:
            return not await denied()

        assert await allowed()
        set_intention(consul, "inventory", {"order": "deny", "*": "deny"})
        try:
            took = await wait_for(denied)
            assert took < 5
        finally:
            apply_intentions(consul)
        # Consul's agent/connect/authorize keeps stale denials; the watched intentions do not.
        took = await wait_for(allowed)
        assert took < 5
