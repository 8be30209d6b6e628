"""grpcurl against a running service over mTLS: list, describe, a call, a bad request."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from devstack.consul import ConsulAgent
from devstack.services import ServiceProcess
from devstack.tools import go_tool
from meshkit.tools.certs import main as mesh_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def grpcurl(consul: ConsulAgent, state_dir: Path, services: dict[str, ServiceProcess]) -> list[str]:
    """grpcurl with the `operator` client certificate, as the README shows (from the
    signer, with the operator's Consul token that devstack makes)."""
    consul.service_token("operator")
    mesh_cli(
        ["--state-dir", str(state_dir), "certs", "issue", "operator", "--consul", consul.http_addr]
    )
    certs = state_dir / "certs" / "operator"
    return [
        go_tool("grpcurl"),
        "-cacert", str(certs / "ca.pem"),
        "-cert", str(certs / "cert.pem"),
        "-key", str(certs / "key.pem"),
        "-max-time", "5",
    ]  # fmt: skip


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize(
    ("service", "full_name"),
    [
        ("inventory", "shop.inventory.v1.InventoryService"),
        ("payment", "shop.payment.v1.PaymentService"),
        ("shipping", "shop.shipping.v1.ShippingService"),
        ("order", "shop.order.v1.OrderService"),
    ],
)
def test_list_shows_the_service_health_and_reflection(
    grpcurl: list[str], services: dict[str, ServiceProcess], service: str, full_name: str
) -> None:
    out = run([*grpcurl, services[service].address, "list"])
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split()) >= {full_name, "grpc.health.v1.Health"}


def test_describe_shows_the_contract(
    grpcurl: list[str], services: dict[str, ServiceProcess]
) -> None:
    out = run(
        [*grpcurl, services["inventory"].address, "describe", "shop.inventory.v1.InventoryService"]
    )
    assert out.returncode == 0, out.stderr
    assert "rpc GetStock ( .shop.inventory.v1.GetStockRequest )" in out.stdout


def test_a_call_answers(grpcurl: list[str], services: dict[str, ServiceProcess]) -> None:
    out = run(
        [
            *grpcurl,
            "-d", '{"sku": "SKU-KEYBOARD"}',
            services["inventory"].address,
            "shop.inventory.v1.InventoryService/GetStock",
        ]
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    stock = json.loads(out.stdout)["stock"]
    assert stock["sku"] == "SKU-KEYBOARD" and int(stock["available"]) > 0


def test_a_bad_request_names_the_field(
    grpcurl: list[str], services: dict[str, ServiceProcess]
) -> None:
    out = run(
        [
            *grpcurl,
            "-d", '{"sku": ""}',
            services["inventory"].address,
            "shop.inventory.v1.InventoryService/GetStock",
        ]
    )  # fmt: skip
    assert out.returncode != 0
    assert "Code: InvalidArgument" in out.stdout + out.stderr
    assert '"field": "sku"' in out.stdout + out.stderr


def test_health_check_over_mtls(grpcurl: list[str], services: dict[str, ServiceProcess]) -> None:
    out = run([*grpcurl, services["payment"].address, "grpc.health.v1.Health/Check"])
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"status": "SERVING"}


def test_without_a_client_certificate_grpcurl_is_refused(
    grpcurl: list[str], services: dict[str, ServiceProcess]
) -> None:
    no_cert = [grpcurl[0], "-cacert", grpcurl[2], "-max-time", "5"]
    out = run([*no_cert, services["inventory"].address, "list"])
    assert out.returncode != 0
