"""Zero trust by default (issue 14, items 3 and 5), the decisions alone: no intention means
deny, the gateway gets only the methods it routes, and the end user comes only from the
edge."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from meshkit.config import DEFAULT_INTENTIONS_DIR, DEFAULT_MESH_FILE, EndUserSettings, MeshPolicy
from meshkit.errors import PermissionDenied
from meshkit.security.authorization import (
    Intentions,
    StaticIntentions,
    decide_by_intentions,
    warn_if_unreachable,
)
from meshkit.security.end_user import EndUser
from meshkit.security.identity import SpiffeId
from shop.inventory.v1 import inventory_pb2
from shop.order.v1 import order_pb2

TD = "abcd.consul"
ROOT = Path(__file__).resolve().parents[2]
INVENTORY = inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"]
ORDER = order_pb2.DESCRIPTOR.services_by_name["OrderService"]


def caller(name: str) -> SpiffeId:
    return SpiffeId(TD, name)


def path(service: Any, method: str) -> str:
    return f"/{service.full_name}/{method}"


def files(destination: str) -> StaticIntentions:
    return StaticIntentions(ROOT / DEFAULT_INTENTIONS_DIR, destination)


def test_no_intention_means_deny_in_both_modes() -> None:
    m = "/x.Y/Z"
    assert not decide_by_intentions([], caller("web"), m, False).allowed
    assert not StaticIntentions(Path("/nonexistent"), "ledger").decide(caller("order"), m).allowed
    # The Consul-watched intentions default to deny too.
    assert Intentions.__init__.__defaults__ == (False,)


def test_a_service_no_intention_names_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mesh.authorization"):
        warn_if_unreachable(files("order"), "order")
        assert not caplog.records
        warn_if_unreachable(files("ledger"), "ledger")
    (record,) = caplog.records
    assert "ledger" in record.getMessage()
    assert "infra/consul/intentions/ledger.json" in record.getMessage()


def test_the_gateway_may_call_only_what_it_routes() -> None:
    inventory, order = files("inventory"), files("order")
    gateway = caller("gateway")
    for name in ("GetStock", "ListStock"):
        assert inventory.decide(gateway, path(INVENTORY, name)).allowed, name
    for name in ("AdjustStock", "CommitStock", "ReserveStock", "ReleaseStock"):
        decision = inventory.decide(gateway, path(INVENTORY, name))
        assert not decision.allowed, name
        assert "no permission" in decision.reason
    for m in ORDER.methods:  # every OrderService method has an http rule
        assert order.decide(gateway, path(ORDER, m.name)).allowed, m.name


def test_the_order_flow_and_the_operator_keep_their_calls() -> None:
    inventory = files("inventory")
    assert inventory.decide(caller("order"), path(INVENTORY, "GetStock")).allowed
    assert not inventory.decide(caller("order"), path(INVENTORY, "AdjustStock")).allowed
    for destination, service in (("inventory", INVENTORY), ("order", ORDER)):
        for m in service.methods:
            assert files(destination).decide(caller("operator"), path(service, m.name)).allowed
    assert files("order").decide(caller("storefront"), path(ORDER, "PlaceOrder")).allowed
    for destination in ("inventory", "order", "payment", "shipping"):
        assert not files(destination).decide(caller("rogue"), "/x.Y/Z").allowed


def test_health_and_reflection_stay_open() -> None:
    policy = MeshPolicy.load(DEFAULT_MESH_FILE)
    assert policy.is_open("/grpc.health.v1.Health/Check")
    assert policy.is_open("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
    assert not policy.is_open(path(INVENTORY, "AdjustStock"))


SETTINGS = EndUserSettings(
    subject_metadata="x-shop-subject",
    client_id_metadata="x-shop-client-id",
    asserted_by=("gateway",),
    unscoped=("operator", "order"),
)


def test_the_mesh_file_names_who_asserts_and_who_calls_unscoped() -> None:
    user = MeshPolicy.load(DEFAULT_MESH_FILE).end_user
    assert user.asserted_by == ("gateway",)
    assert {"operator", "order", "inventory", "payment", "shipping"} <= set(user.unscoped)
    assert "gateway" not in user.unscoped


def test_a_subject_only_from_the_edge_and_never_empty() -> None:
    end_user = EndUser(SETTINGS)
    assert end_user.check("gateway", "alice") == "alice"
    with pytest.raises(PermissionDenied, match="operator may not assert x-shop-subject"):
        end_user.check("operator", "alice")
    for empty in ("", "  "):
        with pytest.raises(PermissionDenied, match="x-shop-subject is empty"):
            end_user.check("gateway", empty)


def test_unscoped_calls_only_from_the_allow_list() -> None:
    end_user = EndUser(SETTINGS)
    assert end_user.check("operator", None) is None
    assert end_user.check("order", None) is None
    for who in ("gateway", "storefront"):
        with pytest.raises(PermissionDenied, match=f"{who} must send x-shop-subject"):
            end_user.check(who, None)


def test_without_identities_only_the_empty_subject_is_refused() -> None:
    end_user = EndUser(SETTINGS)  # --insecure: no client certificates
    assert end_user.check(None, None) is None
    assert end_user.check(None, "alice") == "alice"
    with pytest.raises(PermissionDenied):
        end_user.check(None, "")


class FakeContext:
    def __init__(self, metadata: tuple[tuple[str, str], ...], identities: Any) -> None:
        self.metadata, self.identities = metadata, identities

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def peer_identities(self) -> Any:
        return self.identities


def test_subject_of_reads_the_caller_from_its_certificate() -> None:
    end_user = EndUser(SETTINGS)

    def peer(name: str) -> list[bytes]:  # what gRPC gives per call: the certificate's SANs
        return [f"{name}.service.consul".encode(), caller(name).uri.encode()]

    subject = (("x-shop-subject", "alice"), ("x-shop-client-id", "web"))
    assert end_user.subject_of(FakeContext(subject, peer("gateway"))) == "alice"
    assert end_user.subject_of(FakeContext((), peer("operator"))) is None
    assert end_user.subject_of(None) is None  # in process: no transport, no subject
    with pytest.raises(PermissionDenied, match="operator may not assert"):
        end_user.subject_of(FakeContext(subject, peer("operator")))
    with pytest.raises(PermissionDenied, match="gateway must send"):
        end_user.subject_of(FakeContext((), peer("gateway")))
    with pytest.raises(PermissionDenied, match="more than once"):
        end_user.subject_of(FakeContext(subject + subject[:1], peer("gateway")))
