"""The inventory service, whose ``GetStock`` does what a file says, for resilience tests.

    python -m tests.support.flaky_inventory <the service's arguments>
    (FLAKY_MODE_FILE=<path>; the launcher's ``module="tests.support.flaky_inventory"``)

The file holds ``ok`` (the real servicer answers), ``unavailable`` or ``internal`` (the
call fails with that code, the ``served-by`` trailer sent as always), or ``hang`` (the
call waits until the file says something else, then answers). Every ``GetStock`` that
reaches the servicer appends a byte to ``<path>.attempts``: the attempts the server saw.
Everything else is the real service: its ``setup``, the mesh, Consul, the broker.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import grpc

from meshkit import run_service
from meshkit.mesh import Mesh
from services.inventory.app import setup as inventory_setup

MODE = Path(os.environ.get("FLAKY_MODE_FILE", "flaky.mode"))
ATTEMPTS = MODE.with_name(MODE.name + ".attempts")


def mode() -> str:
    try:
        return MODE.read_text().strip() or "ok"
    except FileNotFoundError:
        return "ok"


class Flaky:
    def __init__(self, servicer: Any) -> None:
        self._servicer = servicer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._servicer, name)

    async def GetStock(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        with ATTEMPTS.open("a") as f:
            f.write("x")
        while (m := mode()) == "hang":  # noqa: ASYNC110  (another process writes the file)
            await asyncio.sleep(0.02)
        if m == "unavailable":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "flaky: unavailable")
        if m == "internal":
            await context.abort(grpc.StatusCode.INTERNAL, "flaky: internal")
        return await self._servicer.GetStock(request, context)


async def setup(mesh: Mesh) -> None:
    await inventory_setup(mesh)
    mesh.services = [(d, Flaky(s)) for d, s in mesh.services]


if __name__ == "__main__":
    run_service("inventory", setup)
