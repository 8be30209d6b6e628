"""Direct channels to one instance with chosen credentials, for the security tests."""

from __future__ import annotations

import grpc

from meshkit.security.certificates import authority, service_dns_names
from meshkit.security.identity import SpiffeId
from meshkit.security.pki import CA, issue_leaf
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc


def channel(
    address: str,
    roots: bytes,
    key: bytes | None = None,
    chain: bytes | None = None,
    service: str = "inventory",
) -> grpc.aio.Channel:
    creds = grpc.ssl_channel_credentials(roots, key, chain)
    return grpc.aio.secure_channel(
        address, creds, options=[("grpc.ssl_target_name_override", authority(service))]
    )


def leaf_channel(
    address: str, ca: CA, roots: bytes, identity: SpiffeId, service: str = "inventory"
) -> grpc.aio.Channel:
    """A channel to ``service`` presenting a leaf for ``identity`` signed by ``ca``."""
    leaf = issue_leaf(ca, identity, service_dns_names(identity.service), 3600)
    return channel(address, roots, leaf.key_pem, leaf.cert_pem, service)


async def get_stock(ch: grpc.aio.Channel, sku: str = "SKU-MOUSE", timeout: float = 5.0) -> int:
    stub = inventory_pb2_grpc.InventoryServiceStub(ch)
    resp = await stub.GetStock(inventory_pb2.GetStockRequest(sku=sku), timeout=timeout)
    return resp.stock.available
