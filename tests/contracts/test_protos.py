"""The contracts: they lint, they build, every package is there, and gen/python is fresh."""

from __future__ import annotations

import filecmp
import importlib
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
from google.api import annotations_pb2  # noqa: F401  (parses google.api.http as a known option)
from google.protobuf import descriptor_pb2

from tests.conftest import BIN, ROOT

PACKAGES = {
    "shop.common.v1",
    "shop.order.v1",
    "shop.inventory.v1",
    "shop.payment.v1",
    "shop.shipping.v1",
    "shop.events.v1",
}
SERVICES = {
    "shop.order.v1.OrderService",
    "shop.inventory.v1.InventoryService",
    "shop.payment.v1.PaymentService",
    "shop.shipping.v1.ShippingService",
}
EVENTS = {
    "OrderPlaced",
    "StockReserved",
    "StockRejected",
    "StockReleased",
    "PaymentCaptured",
    "PaymentFailed",
    "PaymentRefunded",
    "ShipmentScheduled",
    "ShipmentFailed",
    "OrderConfirmed",
    "OrderCancelled",
}


def buf(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(BIN / "buf"), *args], cwd=ROOT, capture_output=True, check=False)


@pytest.fixture(scope="module")
def image() -> descriptor_pb2.FileDescriptorSet:
    """Every proto of protos/, compiled by buf into one descriptor set."""
    out = buf("build", "protos", "--as-file-descriptor-set", "-o", "-")
    assert out.returncode == 0, out.stderr.decode()
    return descriptor_pb2.FileDescriptorSet.FromString(out.stdout)


def test_buf_lint_passes() -> None:
    out = buf("lint", "protos")
    assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()


def test_every_package_and_service_is_defined(image: descriptor_pb2.FileDescriptorSet) -> None:
    own = [f for f in image.file if f.package.startswith("shop.")]
    assert {f.package for f in own} == PACKAGES
    services = {f"{f.package}.{s.name}" for f in own for s in f.service}
    assert services == SERVICES
    events = {m.name for f in own if f.package == "shop.events.v1" for m in f.message_type}
    assert events >= EVENTS | {"EventEnvelope"}


def test_directory_is_the_package(image: descriptor_pb2.FileDescriptorSet) -> None:
    for f in image.file:
        if f.package.startswith("shop."):
            assert str(Path(f.name).parent).replace("/", ".") == f.package, f.name


def _strip_json_names(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
    """buf records each field's json_name; protoc's embedded descriptors leave it implied."""
    for m in messages:
        for f in m.field:
            f.ClearField("json_name")
        _strip_json_names(m.nested_type)


def test_generated_modules_match_the_contracts(image: descriptor_pb2.FileDescriptorSet) -> None:
    """Each generated module carries the very descriptor buf compiles from protos/."""
    for f in image.file:
        if not f.package.startswith("shop."):
            continue
        module = importlib.import_module(f.name.removesuffix(".proto").replace("/", ".") + "_pb2")
        generated = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(generated)
        expected = descriptor_pb2.FileDescriptorProto()
        expected.CopyFrom(f)
        expected.ClearField("source_code_info")
        _strip_json_names(expected.message_type)
        assert generated == expected, f.name


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    """gen/python is exactly what `make gen` writes now; run `make gen` if this fails."""
    out = tmp_path / "python"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_python.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    committed = ROOT / "gen" / "python"
    stale: list[str] = []

    def compare(a: Path, b: Path) -> None:
        cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
        stale.extend(f"only in gen/python: {n}" for n in cmp.left_only)
        stale.extend(f"missing from gen/python: {n}" for n in cmp.right_only)
        for name in cmp.common_files:
            if (a / name).read_bytes() != (b / name).read_bytes():
                stale.append(f"differs: {(a / name).relative_to(committed)}")
        for sub in cmp.common_dirs:
            compare(a / sub, b / sub)

    compare(committed, out)
    assert not stale, "gen/python is stale, run `make gen`:\n" + "\n".join(stale)
