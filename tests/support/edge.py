"""The edge in integration tests: a gateway process on a free port trusting a Hydra, and
the order body the REST tests post."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from devstack.consul import ConsulAgent
from devstack.hydra import Hydra
from devstack.nats import NatsServer
from devstack.services import ServiceProcess, start_service

AUDIENCE = "meshkit-shop"
SCOPES = ("orders:read", "orders:write", "stock:read")
ORDER = {
    "items": [
        {
            "sku": "SKU-MOUSE",
            "quantity": 1,
            "unitPrice": {"currencyCode": "EUR", "units": "19", "nanos": 990000000},
        }
    ],
    "shippingAddress": {
        "recipient": "Ada",
        "lines": ["Main St 1"],
        "city": "Berlin",
        "postalCode": "10115",
        "countryCode": "DE",
    },
    "paymentToken": "tok_visa",
}


def start_gateway(
    consul: ConsulAgent,
    nats: NatsServer,
    state_dir: Path,
    hydra: Hydra,
    log: IO[str],
    *args: str,
) -> ServiceProcess:
    """A gateway process on a free port, trusting ``hydra``'s tokens for AUDIENCE."""
    return start_service(
        "gateway",
        consul_http_addr=consul.http_addr,
        nats_url=nats.url,
        state_dir=state_dir,
        args=["--port", "0", "--issuer", hydra.issuer, "--audience", AUDIENCE, *args],
        env=consul.identity_env("gateway"),  # its Consul token, the signer
        log=log,
    )
