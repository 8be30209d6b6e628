"""Wires the payment service into the mesh and subscribes to the order's events
(reactions.py): OrderPlaced, StockReserved, OrderCancelled.

Settings (environment):
    SHOP_PAYMENT_MAX_AMOUNT_UNITS  captures above this many whole units are declined with
                                   ``amount_over_limit`` (default 10000).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from meshkit.settings import from_env, setting
from services.payment.reactions import PaymentReactions
from services.payment.rules import DEFAULT_MAX_AMOUNT_UNITS
from services.payment.servicer import PaymentServicer
from services.payment.store import SCHEMA, PaymentStore
from shop.events.v1 import events_pb2

if TYPE_CHECKING:
    from meshkit import Mesh


@dataclass(frozen=True)
class PaymentSettings:
    max_amount_units: int = setting("SHOP_PAYMENT_MAX_AMOUNT_UNITS", DEFAULT_MAX_AMOUNT_UNITS)


async def setup(mesh: Mesh) -> None:
    settings = from_env(PaymentSettings)
    db = await mesh.database(SCHEMA)
    store = PaymentStore(db)
    mesh.add_service(PaymentServicer(store, max_amount_units=settings.max_amount_units))
    events = await mesh.events(db)
    reactions = PaymentReactions(store, settings.max_amount_units)
    events.on(events_pb2.OrderPlaced, reactions.on_order_placed)
    events.on(events_pb2.StockReserved, reactions.on_stock_reserved)
    events.on(events_pb2.OrderCancelled, reactions.on_order_cancelled)
