"""The shop's services for in-process tests: each service's own ``setup`` by its Consul
name, run by ``meshkit.testing`` (real wiring, temp SQLite, the in-memory broker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
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
async def running_shop(
    state_dir: Path,
    *names: str,
    start: Collection[str] | None = None,
    background: bool = True,
) -> AsyncIterator[App]:
    """The shop's services (all four unless ``names``) running in process; see
    ``meshkit.testing.running_app`` for ``start`` and ``background``."""
    setups = {n: SETUPS[n] for n in names or SETUPS}
    async with running_app(state_dir, setups, start=start, background=background) as app:
        yield app
