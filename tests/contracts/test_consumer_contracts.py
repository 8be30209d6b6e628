"""The providers honour their consumers' contracts (contracts/consumers/, see behaviour.py).

RPC contracts are replayed against the provider running in process (``meshkit.testing``
through tests/shop.py: each service's own ``setup`` on temp SQLite, events over an
in-memory broker). Event contracts are checked against the events the real producers emit while
the shop runs a set of scenarios that, together, make every event happen.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf import json_format

from meshkit.events.envelopes import Envelope, unwrap
from meshkit.testing import App as Shop
from shop.order.v1 import order_pb2
from tests.contracts.behaviour import (
    CONTRACTS,
    Contract,
    check_event_contract,
    check_rpc_contract,
    event_contracts,
    mismatch,
    replay,
    rpc_contracts,
)
from tests.shop import running_shop

RPC = rpc_contracts()
EVENTS = event_contracts()


def test_there_are_contracts_for_the_known_interactions() -> None:
    assert {c.id for c in RPC} >= {
        "order<-storefront",
        "order<-gateway",
        "inventory<-gateway",
        "inventory<-order",
    }
    assert {c.consumer for c in EVENTS} >= {"inventory", "payment", "shipping", "order"}


@pytest.mark.parametrize("contract", RPC, ids=lambda c: c.id)
def test_rpc_contract_fits_the_protos(contract: Contract) -> None:
    assert not check_rpc_contract(contract), "\n".join(check_rpc_contract(contract))


@pytest.mark.parametrize("contract", EVENTS, ids=lambda c: c.consumer)
def test_event_contract_fits_the_protos(contract: Contract) -> None:
    assert not check_event_contract(contract), "\n".join(check_event_contract(contract))


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    async with running_shop(tmp_path) as running:
        yield running


@pytest.mark.parametrize("contract", RPC, ids=lambda c: c.id)
async def test_provider_honours_the_consumer_contract(contract: Contract, shop: Shop) -> None:
    problems = await replay(contract, shop)
    assert not problems, f"{contract.path.relative_to(CONTRACTS)}:\n" + "\n".join(problems)


# Events: scenarios that make every producer emit every event of the order flow.

ADDRESS = {
    "recipient": "Ada Lovelace",
    "lines": ["Main St 1"],
    "city": "Berlin",
    "postal_code": "10115",
    "country_code": "DE",
}


def order_request(
    key: str, sku: str = "SKU-KEYBOARD", quantity: int = 1, **extra: object
) -> order_pb2.PlaceOrderRequest:
    body = {
        "customer_id": "c-contract-events",
        "items": [
            {
                "sku": sku,
                "quantity": quantity,
                "unit_price": {"currency_code": "EUR", "units": "10"},
            }
        ],
        "shipping_address": ADDRESS,
        "payment_token": "tok_visa",
        "idempotency_key": key,
        **extra,
    }
    return json_format.ParseDict(body, order_pb2.PlaceOrderRequest())


PLACE = "shop.order.v1.OrderService/PlaceOrder"
SCENARIOS = {
    "confirmed": order_request("confirmed"),
    "out of stock": order_request("out-of-stock", "SKU-LAPTOP", 999),
    "card declined": order_request("declined", payment_token="tok_decline"),
    "destination refused": order_request(
        "refused", shipping_address={**ADDRESS, "country_code": "AQ"}
    ),
}


@pytest.fixture
async def emitted(shop: Shop) -> list[Envelope]:
    """Every event published while the scenarios ran, and a cancellation by request."""
    for request in SCENARIOS.values():
        answer = await shop.call(PLACE, request)
        assert answer.code == "OK", answer.message
        await shop.settle()
    shop.pause()
    placed = await shop.call(PLACE, order_request("cancelled-by-request"))
    assert placed.response is not None
    cancel = order_pb2.CancelOrderRequest(order_id=placed.response.order.order_id, reason="test")
    assert (await shop.call("shop.order.v1.OrderService/CancelOrder", cancel)).code == "OK"
    shop.resume()
    await shop.settle()
    return shop.published


def test_every_consumer_declares_what_it_subscribes_to(shop: Shop) -> None:
    subscribed = {
        name: mesh.subscriptions for name, mesh in shop.meshes.items() if mesh.subscriptions
    }
    declared = {c.consumer: {e["event"] for e in c.data["events"]} for c in EVENTS}
    assert declared == subscribed


def test_every_event_carries_its_envelope(emitted: list[Envelope]) -> None:
    for envelope in emitted:
        event = unwrap(envelope)
        assert envelope.event_id and envelope.source, envelope
        assert envelope.event_type == event.DESCRIPTOR.full_name
        assert envelope.correlation_id == event.order_id  # type: ignore[attr-defined]
        assert envelope.occur_time.seconds > 0


@pytest.mark.parametrize("contract", EVENTS, ids=lambda c: c.consumer)
def test_producers_honour_the_consumer_event_contract(
    contract: Contract, emitted: list[Envelope]
) -> None:
    problems = []
    for entry in contract.data["events"]:
        produced = [e for e in emitted if e.event_type == entry["event"]]
        if not produced:
            problems.append(f"{entry['event']}: no scenario made {entry['producer']} emit it")
        for envelope in produced:
            if envelope.source != entry["producer"]:
                problems.append(f"{entry['event']}: emitted by {envelope.source}")
            event = unwrap(envelope)
            for path, matcher in entry["relies_on"].items():
                if why := mismatch(event, path, matcher, {}):
                    problems.append(f"{entry['event']} from {envelope.source}: {why}")
    assert not problems, f"{contract.path.relative_to(CONTRACTS)}:\n" + "\n".join(problems)
