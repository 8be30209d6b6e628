"""Wires the order service into the mesh: its write model and read model in one database,
its events (flow.py), the saga's timeout sweeper, and a stub of the inventory for the
synchronous SKU check.

Settings (environment):
    SHOP_ORDER_SAGA_TIMEOUT  seconds an order may stay open before it is cancelled and
                             compensated (default 30).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.order.flow import DEFAULT_SAGA_TIMEOUT, OrderFlow
from services.order.servicer import OrderServicer
from services.order.store import SCHEMA as STORE_SCHEMA
from services.order.store import OrderStore
from services.order.view import SCHEMA as VIEW_SCHEMA
from services.order.view import OrderView
from services.order.watchers import OrderWatchers
from shop.inventory.v1 import inventory_pb2_grpc

if TYPE_CHECKING:
    from meshkit import Mesh


@dataclass(frozen=True)
class OrderSettings:
    saga_timeout: float = DEFAULT_SAGA_TIMEOUT

    @classmethod
    def from_env(cls) -> OrderSettings:
        raw = os.environ.get("SHOP_ORDER_SAGA_TIMEOUT", "").strip()
        if not raw:
            return cls()
        try:
            timeout = float(raw)
        except ValueError:
            timeout = 0.0
        if timeout <= 0:
            raise ValueError(f"SHOP_ORDER_SAGA_TIMEOUT must be a positive number, not {raw!r}")
        return cls(saga_timeout=timeout)


async def setup(mesh: Mesh) -> None:
    settings = OrderSettings.from_env()
    db = await mesh.database(STORE_SCHEMA + VIEW_SCHEMA)
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
