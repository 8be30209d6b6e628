"""Wires the shipping service into the mesh and subscribes to the order's events
(reactions.py): OrderPlaced, PaymentCaptured, OrderCancelled.

Settings (environment):
    SHOP_SHIPPING_UNSUPPORTED_COUNTRIES  comma-separated country codes shipping refuses
                                         (default ``AQ,KP``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from meshkit.settings import from_env, setting
from services.shipping.reactions import ShippingReactions
from services.shipping.rules import DEFAULT_UNSUPPORTED_COUNTRIES
from services.shipping.servicer import ShippingServicer
from services.shipping.store import SCHEMA, ShippingStore
from shop.events.v1 import events_pb2

if TYPE_CHECKING:
    from meshkit import Mesh


@dataclass(frozen=True)
class ShippingSettings:
    # Set but empty: shipping refuses no country.
    unsupported_countries: frozenset[str] = setting(
        "SHOP_SHIPPING_UNSUPPORTED_COUNTRIES",
        DEFAULT_UNSUPPORTED_COUNTRIES,
        parse=lambda raw: frozenset(c.strip().upper() for c in raw.split(",") if c.strip()),
    )


async def setup(mesh: Mesh) -> None:
    settings = from_env(ShippingSettings)
    db = await mesh.database(SCHEMA)
    store = ShippingStore(db)
    mesh.add_service(ShippingServicer(store, unsupported_countries=settings.unsupported_countries))
    events = await mesh.events(db)
    reactions = ShippingReactions(store, settings.unsupported_countries)
    events.on(events_pb2.OrderPlaced, reactions.on_order_placed)
    events.on(events_pb2.PaymentCaptured, reactions.on_payment_captured)
    events.on(events_pb2.OrderCancelled, reactions.on_order_cancelled)
