"""Orders against a running stack, and the order invariants over its four databases.

Shared by the order-flow tests, the chaos tests and the cluster's fault scenarios
(devstack/cluster_faults.py; the tests import it as ``tests.support.orders``):
``order_request`` builds a
PlaceOrder request, ``Orders`` places and follows orders through the mesh, ``settle``
waits until every order is final, and ``check_invariants`` reads each service's own
database (of any stack with a ``state`` directory) and checks that every order is final
and consistent: stock sold equals what was confirmed, one capture per confirmed order,
nothing left reserved.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import grpc

from meshkit.mesh import Mesh
from services.inventory.app import DEFAULT_CATALOG
from shop.common.v1.address_pb2 import Address
from shop.common.v1.line_item_pb2 import LineItem
from shop.common.v1.money_pb2 import Money
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shop.order.v1 import order_pb2 as pb
from shop.order.v1 import order_pb2_grpc

SAGA_TIMEOUT = 12.0  # seconds; the order service's SHOP_ORDER_SAGA_TIMEOUT in these tests
FINAL = {pb.ORDER_STATUS_CONFIRMED, pb.ORDER_STATUS_CANCELLED}
CONFIRMED, CANCELLED = pb.ORDER_STATUS_CONFIRMED, pb.ORDER_STATUS_CANCELLED


class HasState(Protocol):
    """A stack: its state directory holds each service's database (``data/<name>.db``)."""

    state: Path


def open_db(state: Path, service: str) -> sqlite3.Connection:
    """``service``'s database in ``state``, read-only, rows by column name."""
    conn = sqlite3.connect(f"file:{state / 'data' / service}.db?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


_keys = itertools.count()


def order_request(
    *lines: tuple[str, int], token: str = "tok_visa", country: str = "DE", customer: str = "c-1"
) -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        customer_id=customer,
        items=[
            LineItem(sku=sku, quantity=q, unit_price=Money(currency_code="EUR", units=3))
            for sku, q in (lines or (("SKU-CABLE", 1),))
        ],
        shipping_address=Address(
            recipient="A. Tester",
            lines=["Hauptstr. 1"],
            city="Berlin",
            postal_code="10115",
            country_code=country,
        ),
        payment_token=token,
        idempotency_key=f"flow-{uuid.uuid4().hex[:8]}-{next(_keys)}",
    )


class Orders:
    def __init__(self, mesh: Mesh) -> None:
        self.stub = mesh.stub(order_pb2_grpc.OrderServiceStub, "order")
        self.inventory = mesh.stub(inventory_pb2_grpc.InventoryServiceStub, "inventory")

    async def place(self, request: pb.PlaceOrderRequest) -> pb.Order:
        """PlaceOrder, retried with its idempotency key while the order service restarts."""
        for attempt in range(40):
            try:
                return (await self.stub.PlaceOrder(request, timeout=10)).order
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE or attempt == 39:
                    raise
                await asyncio.sleep(0.25)
        raise AssertionError("unreachable")

    async def final(self, order_id: str, timeout: float = SAGA_TIMEOUT + 20) -> pb.Order:
        """The order once it is CONFIRMED or CANCELLED (it must be, within the saga timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                order = (await self.stub.GetOrder(pb.GetOrderRequest(order_id=order_id))).order
                if order.status in FINAL:
                    return order
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
            assert time.monotonic() < deadline, f"order {order_id} is still not final"
            await asyncio.sleep(0.1)

    async def peek(self, order_id: str) -> pb.Order | None:
        """The order now, or None while the order service is unavailable (restarting)."""
        try:
            return (await self.stub.GetOrder(pb.GetOrderRequest(order_id=order_id))).order
        except grpc.aio.AioRpcError as err:
            if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            return None

    async def reachable(self, timeout: float = 10.0) -> None:
        """Waits until the order service answers (discovery has its current instance)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.stub.GetOrder(pb.GetOrderRequest(order_id="ord_none"), timeout=2)
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND:
                    return
                assert time.monotonic() < deadline, err
            await asyncio.sleep(0.1)

    async def stock(self, sku: str) -> inventory_pb2.StockLevel:
        request = inventory_pb2.GetStockRequest(sku=sku)
        return (await self.inventory.GetStock(request)).stock


async def settle(
    orders: Orders, ids: list[str], timeout: float = SAGA_TIMEOUT + 30, concurrency: int = 8
) -> list[pb.Order]:
    """Every order in ``ids`` once final, in order: rounds of GetOrder over the ones not
    final yet, ``concurrency`` at a time. Every order must be final within ``timeout``
    (the saga's own timeout cancels any that is stuck): none may be lost."""
    gate = asyncio.Semaphore(concurrency)

    async def peek(order_id: str) -> pb.Order | None:
        async with gate:
            return await orders.peek(order_id)

    done: dict[str, pb.Order] = {}
    pending = list(dict.fromkeys(ids))
    deadline = time.monotonic() + timeout
    while True:
        for order in await asyncio.gather(*(peek(i) for i in pending)):
            if order is not None and order.status in FINAL:
                done[order.order_id] = order
        pending = [i for i in pending if i not in done]
        if not pending:
            return [done[i] for i in ids]
        assert time.monotonic() < deadline, f"{len(pending)} orders not final: {pending[:5]}"
        await asyncio.sleep(0.5)


def check_invariants(
    stack: HasState, settle_for: float = 10.0, catalog: Mapping[str, int] | None = None
) -> dict[str, int]:
    """``invariants`` once they hold; the compensations and the stock's commit run just
    after an order turns final, so they get ``settle_for`` seconds to catch up."""
    deadline = time.monotonic() + settle_for
    while True:
        try:
            return invariants(stack, catalog)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def invariants(stack: HasState, catalog: Mapping[str, int] | None = None) -> dict[str, int]:
    """Every order the stack holds is final and consistent across the four databases;
    stock is conserved (``catalog``: the inventory's initial stock, its default catalog
    unless the stack seeded another). Returns the count of orders per final status."""
    catalog = DEFAULT_CATALOG if catalog is None else catalog
    with open_db(stack.state, "order") as odb:
        orders = {
            r["order_id"]: pb.Order.FromString(r["data"])
            for r in odb.execute("SELECT order_id, data FROM order_views")
        }
        write = {r["order_id"]: r["status"] for r in odb.execute("SELECT * FROM order_state")}
    with open_db(stack.state, "inventory") as idb:
        stock = {r["sku"]: r for r in idb.execute("SELECT * FROM stock")}
        reservations = {r["order_id"]: r for r in idb.execute("SELECT * FROM reservations")}
    with open_db(stack.state, "payment") as pdb:
        payments = Counter(r["order_id"] for r in pdb.execute("SELECT order_id FROM payments"))
        paid = {r["order_id"]: r["status"] for r in pdb.execute("SELECT * FROM payments")}
    with open_db(stack.state, "shipping") as sdb:
        shipments = Counter(r["order_id"] for r in sdb.execute("SELECT order_id FROM shipments"))
        shipped = {r["order_id"]: r["status"] for r in sdb.execute("SELECT * FROM shipments")}

    sold: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    for order_id, order in orders.items():
        status = pb.OrderStatus.Name(order.status).removeprefix("ORDER_STATUS_")
        outcomes[status] += 1
        assert order.status in FINAL, f"{order_id} is {status}"
        assert write[order_id] == status, f"{order_id}: view {status}, write {write[order_id]}"
        assert payments[order_id] <= 1 and shipments[order_id] <= 1, order_id
        reservation = reservations.get(order_id)
        if order.status == CONFIRMED:
            assert paid.get(order_id) == "CAPTURED", (order_id, paid.get(order_id))
            assert shipped.get(order_id) == "SCHEDULED", (order_id, shipped.get(order_id))
            assert reservation is not None and reservation["status"] == "COMMITTED", order_id
            for item in order.items:
                sold[item.sku] += item.quantity
        else:  # charged and shipped at most until compensated; stock back
            assert paid.get(order_id) in (None, "DECLINED", "REFUNDED"), (order_id, paid)
            assert shipped.get(order_id) in (None, "CANCELLED"), (order_id, shipped)
            assert reservation is None or reservation["status"] in ("REJECTED", "RELEASED")
    for sku, initial in catalog.items():
        row = stock[sku]
        assert row["reserved"] == 0, sku
        assert row["available"] + row["sold"] == initial, sku
        assert row["sold"] == sold[sku], (sku, row["sold"], sold[sku])
    return dict(outcomes)
