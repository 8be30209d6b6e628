"""The order flow on each real broker: a stack of its own per broker (``Stack(broker=)``:
Consul, the broker, the four services as processes), a confirmed order, a declined
payment cancelled, and a burst of 500 orders after which every order is final and the
invariants hold across the four databases (stock sold = confirmed, one capture per
confirmed order, nothing left reserved): none lost, none applied twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest

from devstack.stack import DOMAIN_SERVICES, Stack
from shop.order.v1 import order_pb2 as pb
from tests.brokers.conftest import KINDS
from tests.support.order_flow import CONFIRMED_HISTORY, operator_orders
from tests.support.orders import (
    CANCELLED,
    CONFIRMED,
    SAGA_TIMEOUT,
    Orders,
    check_invariants,
    open_db,
    order_request,
    settle,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

REAL = [kind for kind in KINDS if kind != "memory"]
BURST = 500
# The order service's saga timeout here: the last orders of a burst wait behind the others
# on the slowest broker of a loaded 2-core machine, and must not be cancelled for it (the
# timeout itself is tested in tests/integration/test_order_flow.py).
BURST_SAGA_TIMEOUT = max(SAGA_TIMEOUT, 120.0)


@pytest.fixture(scope="module", params=REAL)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    kind: str = request.param
    state = tmp_path_factory.mktemp(f"flow-{kind}")
    stack = Stack(state, log_dir=state, broker=kind)
    try:
        stack.start()
        stack.start_services(
            DOMAIN_SERVICES, env={"order": {"SHOP_ORDER_SAGA_TIMEOUT": str(BURST_SAGA_TIMEOUT)}}
        )
        yield stack
    finally:
        stack.close()


@pytest.fixture
async def orders(stack: Stack) -> AsyncIterator[Orders]:
    async with operator_orders(stack.mesh_config("operator")) as client:
        yield client


async def test_an_order_is_confirmed(stack: Stack, orders: Orders) -> None:
    placed = await orders.place(order_request(("SKU-KEYBOARD", 2), ("SKU-MOUSE", 1)))
    order = await orders.final(placed.order_id)
    assert order.status == CONFIRMED, order.cancel_reason
    assert [h.status for h in order.history] == CONFIRMED_HISTORY
    check_invariants(stack)


async def test_a_declined_payment_cancels_and_releases_the_stock(
    stack: Stack, orders: Orders
) -> None:
    before = await orders.stock("SKU-MONITOR")
    placed = await orders.place(order_request(("SKU-MONITOR", 3), token="tok_decline"))
    order = await orders.final(placed.order_id)
    assert order.status == CANCELLED
    assert order.cancel_reason == "payment declined: card_declined"

    async def released() -> bool:
        after = await orders.stock("SKU-MONITOR")
        return (after.available, after.reserved, after.sold) == (before.available, 0, before.sold)

    await eventually(released, 30, what="the monitors back in stock")


async def test_a_burst_of_500_orders_ends_consistent(stack: Stack, orders: Orders) -> None:
    """Every order of the burst final with its kind's outcome (declines cancelled, the
    rest confirmed), none lost; one capture per confirmed order; stock conserved."""
    declined = {i for i in range(BURST) if i % 10 == 9}
    requests = [
        order_request(("SKU-CABLE", 1), token="tok_insufficient")
        if i in declined
        else order_request(("SKU-CABLE", 1), customer=f"c-{i % 17}")
        for i in range(BURST)
    ]
    cables = await orders.stock("SKU-CABLE")
    assert cables.available >= BURST
    gate = asyncio.Semaphore(64)

    async def place(request: pb.PlaceOrderRequest) -> str:
        async with gate:
            return (await orders.place(request)).order_id

    ids = await asyncio.gather(*(place(r) for r in requests))
    assert len(set(ids)) == BURST
    finals = await settle(orders, list(ids), timeout=BURST_SAGA_TIMEOUT + 120)
    outcomes = Counter(
        "declined" if o.status == CANCELLED and "declined" in o.cancel_reason else o.status
        for o in finals
    )
    assert outcomes == Counter({CONFIRMED: BURST - len(declined), "declined": len(declined)})
    check_invariants(stack)
    with open_db(stack.state, "payment") as db:
        captured = Counter(
            r["order_id"]
            for r in db.execute("SELECT order_id FROM payments WHERE status = 'CAPTURED'")
        )
    confirmed = {o.order_id for o in finals if o.status == CONFIRMED}
    assert set(captured) >= confirmed and all(captured[o] == 1 for o in confirmed)
    after = await orders.stock("SKU-CABLE")
    assert after.sold == cables.sold + len(confirmed)
    assert after.reserved == 0
