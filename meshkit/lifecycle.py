"""The life of a mesh process, the same for a service and for the gateway: the stop
signal, registration in Consul for as long as it serves, and the ``MESH_READY`` line that
tells launchers (devstack, tests, benchmarks) where it listens."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import consul.aio

from meshkit import consul as consul_api

READY_PREFIX = "MESH_READY "


def stop_event(stop: asyncio.Event | None = None) -> asyncio.Event:
    """``stop`` itself, or an event that SIGTERM and SIGINT set (the process is the instance)."""
    if stop is not None:
        return stop
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


@asynccontextmanager
async def registered(
    client: consul.aio.Consul, *, name: str, instance_id: str, **registration: Any
) -> AsyncIterator[None]:
    """In Consul's catalog while the block runs; deregistered when it ends, however it ends
    (clients' watches then drop the instance within a second)."""
    await consul_api.register(client, name=name, instance_id=instance_id, **registration)
    try:
        yield
    finally:
        await consul_api.deregister(client, instance_id)


def announce_ready(info: dict[str, Any]) -> None:
    """The one line on stdout that launchers wait for: ``MESH_READY {json}``."""
    print(READY_PREFIX + json.dumps(info), flush=True)
