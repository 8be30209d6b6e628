"""The shop's services for in-process tests: each service's own ``setup`` by its Consul
name, run by ``meshkit.testing`` (real wiring, temp SQLite, the in-memory broker)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from meshkit.server import Setup
from meshkit.testing import App, running_app
from services.inventory.app import setup as inventory
from services.order.app import setup as order
from services.payment.app import setup as payment
from services.shipping.app import setup as shipping

SETUPS: dict[str, Setup] = {
    "inventory": inventory,
    "payment": payment,
    "shipping": shipping,
    "order": order,
}


@asynccontextmanager
async def running_shop(state_dir: Path, *names: str) -> AsyncIterator[App]:
    """The shop's services (all four unless ``names``) running in process."""
    async with running_app(state_dir, {n: SETUPS[n] for n in names or SETUPS}) as app:
        yield app
