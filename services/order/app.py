"""Wires the order service into the mesh: its write model and read model in one database,
its events (flow.py), the saga's timeout sweeper, and a stub of the inventory for the
synchronous SKU check.

Settings (environment):
    SHOP_ORDER_SAGA_TIMEOUT  seconds an order may stay open before it is cancelled and
                             compensated (default 30).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from meshkit.settings import from_env, setting
from services.order.flow import DEFAULT_SAGA_TIMEOUT, OrderFlow
from services.order.servicer import OrderServicer
from services.order.store import SCHEMA, OrderStore
from services.order.view import OrderView
from services.order.watchers import OrderWatchers
from shop.inventory.v1 import inventory_pb2_grpc

if TYPE_CHECKING:
    from meshkit import Mesh


@dataclass(frozen=True)
class OrderSettings:
    saga_timeout: float = setting(
        "SHOP_ORDER_SAGA_TIMEOUT",
        DEFAULT_SAGA_TIMEOUT,
        check=lambda seconds: seconds > 0,
        expect="a positive number",
    )


async def setup(mesh: Mesh) -> None:
    settings = from_env(OrderSettings)
    db = await mesh.database(SCHEMA)
    watchers = OrderWatchers()
    view = OrderView(db, watchers.changed)
    outcomes = mesh.metrics.counter(
        "shop_order_saga_outcomes",
        "Orders whose saga ended, by outcome (confirmed, cancelled) and the class of a"
        " cancellation's reason (out_of_stock, payment_failed, shipment_failed, timeout,"
        " requested).",
        ("outcome", "reason"),
    )
    flow = OrderFlow(
        db, OrderStore(db), view, await mesh.events(db), settings.saga_timeout, outcomes
    )
    mesh.background("saga-timeouts", flow.sweep_forever)
    inventory = mesh.stub(inventory_pb2_grpc.InventoryServiceStub, "inventory")
    servicer = OrderServicer(flow, view, watchers, inventory, mesh.end_user)
    mesh.add_service(servicer)
