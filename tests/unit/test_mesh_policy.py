"""The runtime's pure logic: SPIFFE ids, intention precedence, deadline arithmetic, config."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import pytest

from meshkit.config import DEFAULT_MESH_FILE, DeadlinePolicy, MeshPolicy, parse_duration
from meshkit.discovery import Endpoint
from meshkit.errors import InvalidArgument, Violations
from meshkit.rpc import deadlines
from meshkit.rpc.channels import service_config, target_of
from meshkit.security.authorization import StaticIntentions, decide_by_intentions
from meshkit.security.identity import NoIdentity, SpiffeId, identity_of_peer
from meshkit.security.pki import create_ca, identity_of, issue_leaf
from shop.inventory.v1 import inventory_pb2_grpc

TD = "abcd.consul"


def test_spiffe_ids_round_trip_and_reject_other_shapes() -> None:
    sid = SpiffeId.parse(f"spiffe://{TD}/ns/default/dc/dc1/svc/order")
    assert (sid.trust_domain, sid.service) == (TD, "order")
    assert SpiffeId.parse(sid.uri) == sid
    assert SpiffeId.parse(f"spiffe://{TD}/ap/default/ns/default/dc/dc1/svc/order") == sid
    for bad in ("https://x/ns/a/dc/b/svc/c", f"spiffe://{TD}/agent/client/dc/dc1/id/n", ""):
        with pytest.raises(ValueError):
            SpiffeId.parse(bad)


def test_identity_comes_from_the_uri_san() -> None:
    ca = create_ca()
    leaf = issue_leaf(ca, SpiffeId(TD, "payment"), ["payment.service.consul"], 60)
    assert identity_of(leaf.cert_pem) == SpiffeId(TD, "payment")
    with pytest.raises(NoIdentity):
        identity_of(ca.cert_pem)


def caller(name: str) -> SpiffeId:
    return SpiffeId(TD, name)


def test_the_first_matching_intention_decides_and_default_applies_otherwise() -> None:
    intentions = [
        {"SourceName": "order", "DestinationName": "inventory", "Action": "allow"},
        {"SourceName": "*", "DestinationName": "inventory", "Action": "deny"},
    ]
    m = "/shop.inventory.v1.InventoryService/GetStock"
    assert decide_by_intentions(intentions, caller("order"), m, False).allowed
    assert not decide_by_intentions(intentions, caller("web"), m, True).allowed
    assert decide_by_intentions([], caller("web"), m, True).allowed
    assert not decide_by_intentions([], caller("web"), m, False).allowed


def test_l7_permissions_match_the_grpc_path() -> None:
    intentions = [
        {
            "SourceName": "gateway",
            "DestinationName": "inventory",
            "Permissions": [
                {
                    "Action": "allow",
                    "HTTP": {"PathPrefix": "/shop.inventory.v1.InventoryService/Get"},
                }
            ],
        }
    ]
    svc = "/shop.inventory.v1.InventoryService/"
    assert decide_by_intentions(intentions, caller("gateway"), svc + "GetStock", True).allowed
    assert not decide_by_intentions(
        intentions, caller("gateway"), svc + "AdjustStock", True
    ).allowed


def test_static_intentions_read_the_same_files_as_consul(tmp_path: Path) -> None:
    (tmp_path / "payment.json").write_text(
        json.dumps(
            {
                "Kind": "service-intentions",
                "Name": "payment",
                "Sources": [{"Name": "*", "Action": "deny"}, {"Name": "order", "Action": "allow"}],
            }
        )
    )
    policy = StaticIntentions(tmp_path, "payment")
    assert policy.decide(caller("order"), "/x/Y").allowed  # exact name outranks "*"
    assert not policy.decide(caller("shipping"), "/x/Y").allowed
    assert not StaticIntentions(tmp_path, "nobody").decide(caller("order"), "/x/Y").allowed


def test_incoming_deadline_policy() -> None:
    policy = DeadlinePolicy(default=5, max=30, min_remaining=0.005)
    deadlines.check_incoming(policy, "/a/B", 10)
    for remaining, code, text in [
        (None, grpc.StatusCode.INVALID_ARGUMENT, "needs a deadline"),
        (120, grpc.StatusCode.INVALID_ARGUMENT, "exceeds its maximum of 30s"),
        (0.001, grpc.StatusCode.DEADLINE_EXCEEDED, "not worth starting"),
    ]:
        with pytest.raises(deadlines.DeadlineRejected) as err:
            deadlines.check_incoming(policy, "/a/B", remaining)
        assert err.value.code == code and text in err.value.message


def test_outgoing_timeout_is_default_or_requested_and_never_beyond_what_is_left() -> None:
    policy = DeadlinePolicy(default=5, max=30)
    assert deadlines.outgoing_timeout(policy, "/a/B", None) == 5
    assert deadlines.outgoing_timeout(policy, "/a/B", 2) == 2
    token = deadlines.enter_call(1.0)
    try:
        assert 0.9 < deadlines.outgoing_timeout(policy, "/a/B", None) <= 1.0
        assert deadlines.outgoing_timeout(policy, "/a/B", 60) <= 1.0  # never extended
        time.sleep(0.05)
        assert deadlines.remaining() is not None and deadlines.remaining() < 0.96  # type: ignore[operator]
    finally:
        deadlines.leave_call(token)
    assert deadlines.remaining() is None


def test_mesh_file_loads_per_method_overrides() -> None:
    policy = MeshPolicy.load(DEFAULT_MESH_FILE)
    watch = policy.deadlines.for_method("/shop.order.v1.OrderService/WatchOrder")
    assert watch.max == 3600
    assert policy.deadlines.for_method("/shop.inventory.v1.InventoryService/GetStock").max == 30
    assert policy.is_open("/grpc.health.v1.Health/Check")
    assert not policy.is_open("/shop.order.v1.OrderService/GetOrder")
    assert parse_duration("250ms") == 0.25 and parse_duration("2m") == 120
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_retries_only_for_methods_the_contract_marks_safe() -> None:
    config = service_config(inventory_pb2_grpc.InventoryServiceStub)
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    names = {n["method"] for n in config["methodConfig"][0]["name"]}
    assert names == {"GetStock", "ListStock", "ReserveStock", "ReleaseStock", "CommitStock"}
    assert "AdjustStock" not in names
    assert config["methodConfig"][0]["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]


def test_targets_list_every_endpoint() -> None:
    eps = (Endpoint("127.0.0.1", 5001), Endpoint("127.0.0.1", 5002))
    assert target_of(eps) == "ipv4:127.0.0.1:5001,127.0.0.1:5002"
    assert target_of((Endpoint("::1", 5001),)) == "ipv6:[::1]:5001"


def test_violations_name_every_field() -> None:
    v = Violations("PlaceOrderRequest")
    v.check(False, "customer_id", "is required")
    v.check(True, "items", "fine")
    v.add("items[0].quantity", "must be at least 1")
    with pytest.raises(InvalidArgument) as err:
        v.raise_if_any()
    assert err.value.message == (
        "invalid PlaceOrderRequest: customer_id: is required; items[0].quantity: must be at least 1"
    )
    assert len(err.value.to_rpc_status().details) == 1


def test_identity_of_peer_reads_the_spiffe_uri_among_the_sans() -> None:
    sans = [b"spiffe://" + TD.encode() + b"/ns/default/dc/dc1/svc/order", b"order.service.consul"]
    assert identity_of_peer(sans) == SpiffeId(TD, "order")
    for bad in ([], None, [b"order.service.consul"], [sans[0], sans[0]], [b"spiffe://x/agent"]):
        with pytest.raises(NoIdentity):
            identity_of_peer(bad)
