"""The images, built here and run: the whole system in containers, an order placed with
grpcurl from the host and confirmed.

One Docker engine of the module's own (Debian's dockerd, its socket, data and exec roots
in a tmp dir; no bridge: containers use host networking on free loopback ports), the base
image imported from the cached debootstrap tarball (made on first use, ~35-90 s), every
image built from infra/docker/Dockerfile, then devstack's stack with each process a
container. Needs root, as dockerd does (CI runs as root); never skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from devstack.containers import (
    SERVICES,
    TARGETS,
    UID,
    ContainerStack,
    Runtime,
    build_images,
    image,
    image_sizes,
    operator_certs,
)
from devstack.docker_engine import DockerEngine
from devstack.tools import go_tool
from tests.support.polling import eventually_sync

# The cold path (debootstrap, apt-get in the build, the venv) takes minutes on 2 cores.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ORDER = {
    "customer_id": "c-containers",
    "items": [
        {
            "sku": "SKU-KEYBOARD",
            "quantity": 1,
            "unit_price": {"currency_code": "EUR", "units": 49, "nanos": 900000000},
        }
    ],
    "shipping_address": {
        "recipient": "Ada",
        "lines": ["Main St 1"],
        "city": "Berlin",
        "postal_code": "10115",
        "country_code": "DE",
    },
    "payment_token": "tok_visa",
    "idempotency_key": "containers-1",
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerEngine]:
    assert os.geteuid() == 0, "the container tier needs root (dockerd runs as root)"
    root = tmp_path_factory.mktemp("docker")
    with DockerEngine(root=root) as engine:
        start = time.monotonic()
        times = build_images(engine)
        print(f"images built in {time.monotonic() - start:.0f} s: {times}")
        yield engine
    shutil.rmtree(root / "data", ignore_errors=True)  # ~1 GB of layers


@pytest.fixture(scope="module")
def stack(
    engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ContainerStack]:
    stack = ContainerStack(tmp_path_factory.mktemp("state"), Runtime(engine))
    try:
        start = time.monotonic()
        stack.start_all()
        print(f"containerized stack up in {time.monotonic() - start:.0f} s")
        yield stack
    finally:
        stack.close()


def docker(engine: DockerEngine, *args: str) -> str:
    return engine.docker(*args, timeout=120).stdout.strip()


def test_every_image_runs_as_a_non_root_user(engine: DockerEngine) -> None:
    for target in TARGETS:
        assert docker(
            engine, "image", "inspect", "--format", "{{.Config.User}}", image(target)
        ) == (f"{UID}:{UID}"), target


def test_a_running_service_is_not_root(engine: DockerEngine, stack: ContainerStack) -> None:
    for name in (
        "consul",
        "nats",
        "hydra",
        "signer",
        *(p.container for p in stack.services.values()),
    ):
        uid = docker(engine, "exec", stack.runtime.container(name), "id", "-u")
        assert uid == str(UID), name


def test_no_build_tools_at_run_time(engine: DockerEngine) -> None:
    probe = (
        "for t in gcc cc make pip pip3; do command -v $t && exit 1; done;"
        " python -c 'import pip' 2>/dev/null && exit 1;"
        " python -c 'import ensurepip' 2>/dev/null && exit 1; exit 0"
    )
    out = engine.docker(
        "run", "--rm", "--network", "host", "--entrypoint", "sh", image("order"), "-c", probe,
        check=False,
    )  # fmt: skip
    assert out.returncode == 0, f"a build tool in the runtime image: {out.stdout}{out.stderr}"


def test_the_images_are_small(engine: DockerEngine) -> None:
    """Every image under 350 MB uncompressed (the base, Debian minbase, is ~120 MB of it)."""
    sizes = image_sizes(engine)
    print({k: f"{v / 1e6:.0f} MB" for k, v in sizes.items()})
    assert all(size < 350e6 for size in sizes.values()), sizes


def test_the_service_images_have_a_health_check_that_turns_healthy(
    engine: DockerEngine, stack: ContainerStack
) -> None:
    for name in SERVICES:
        check = docker(
            engine, "image", "inspect", "--format", "{{json .Config.Healthcheck}}", image(name)
        )
        assert "meshkit-healthcheck" in check, (name, check)
    edge = stack.edge
    assert edge is not None
    containers = [p.container for p in stack.services.values()] + [edge.gateway.container]  # type: ignore[attr-defined]
    for container in containers:
        eventually_sync(
            lambda c=container: stack.health(c) == "healthy",
            timeout=90,
            interval=0.5,
            what=f"{container} healthy",
        )


def test_an_order_placed_with_grpcurl_from_the_host_is_confirmed(stack: ContainerStack) -> None:
    certs = operator_certs(stack)  # as make run-containers prints it
    gc = [
        go_tool("grpcurl"),
        "-cacert", str(certs / "ca.pem"),
        "-cert", str(certs / "cert.pem"),
        "-key", str(certs / "key.pem"),
        "-max-time", "20",
    ]  # fmt: skip
    order_addr, method = stack.services["order"].address, "shop.order.v1.OrderService/"

    def call(name: str, body: dict[str, object]) -> dict[str, object]:
        out = subprocess.run(
            [*gc, "-d", json.dumps(body), order_addr, method + name],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)["order"]

    placed = call("PlaceOrder", ORDER)
    order_id = placed["order_id"]

    def final() -> dict[str, object] | None:
        order = call("GetOrder", {"order_id": order_id})
        done = order["status"] in ("ORDER_STATUS_CONFIRMED", "ORDER_STATUS_CANCELLED")
        return order if done else None

    order = eventually_sync(final, timeout=60, interval=0.3, what=f"order {order_id} final")
    assert order["status"] == "ORDER_STATUS_CONFIRMED", order


def test_the_gateway_in_its_container_answers_with_a_token(stack: ContainerStack) -> None:
    """Hydra (a container) issues the token the gateway (a container) accepts."""
    import urllib.request

    edge = stack.edge
    assert edge is not None
    req = urllib.request.Request(
        f"{edge.url}/v1/stock/SKU-KEYBOARD", headers={"Authorization": f"Bearer {edge.token()}"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        assert "SKU-KEYBOARD" in resp.read().decode()
