"""Wires the inventory service into the mesh, seeds an empty stock table, and subscribes
to the order's events (reactions.py): OrderPlaced, OrderCancelled, OrderConfirmed.

Settings (environment):
    SHOP_INVENTORY_SEED  path of a JSON catalog ``{"SKU-...": available, ...}`` loaded when the
                         stock table is empty at start; unset means the built-in catalog.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from meshkit.settings import from_env, setting
from services.inventory.reactions import InventoryReactions
from services.inventory.servicer import InventoryServicer
from services.inventory.store import SCHEMA, InventoryStore
from shop.events.v1 import events_pb2

if TYPE_CHECKING:
    from meshkit import Mesh

log = logging.getLogger(__name__)

DEFAULT_CATALOG: dict[str, int] = {
    "SKU-KEYBOARD": 100,
    "SKU-MOUSE": 200,
    "SKU-MONITOR": 20,
    "SKU-CABLE": 1000,
    "SKU-LAPTOP": 5,
}


@dataclass(frozen=True)
class InventorySettings:
    seed_path: Path | None = setting("SHOP_INVENTORY_SEED", None)  # noqa: RUF009 (a field)


def load_catalog(path: Path | None) -> dict[str, int]:
    """The seed catalog; a malformed file stops the start rather than seeding garbage."""
    if path is None:
        return dict(DEFAULT_CATALOG)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"SHOP_INVENTORY_SEED: cannot read {path}: {err}") from err
    if not isinstance(data, dict) or not all(
        isinstance(sku, str) and sku and type(n) is int and n >= 0 for sku, n in data.items()
    ):
        raise ValueError(
            f"SHOP_INVENTORY_SEED: {path} must be a JSON object of sku -> non-negative integer"
        )
    return data


async def setup(mesh: Mesh) -> None:
    settings = from_env(InventorySettings)
    db = await mesh.database(SCHEMA)
    store = InventoryStore(db)
    added = await store.seed_if_empty(load_catalog(settings.seed_path))
    if added:
        log.info("seeded %d skus from %s", added, settings.seed_path or "the built-in catalog")
    mesh.add_service(InventoryServicer(store))
    events = await mesh.events(db)
    reactions = InventoryReactions(store)
    events.on(events_pb2.OrderPlaced, reactions.on_order_placed)
    events.on(events_pb2.OrderCancelled, reactions.on_order_cancelled)
    events.on(events_pb2.OrderConfirmed, reactions.on_order_confirmed)
