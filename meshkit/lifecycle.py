"""The life of a mesh process, the same for a service and for the gateway: the stop
signal, registration in Consul for as long as it serves, and the ``MESH_READY`` line that
tells launchers (devstack, tests, benchmarks) where it listens.

A service registers through its discovery backend (``meshkit.discovery``: Consul's is
``registered`` here; Eureka's and DNS's are theirs); the gateway, which nothing inside
the mesh calls, registers in Consul with an HTTP check whatever the registry."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import consul.aio

from meshkit import consul as consul_api

log = logging.getLogger("mesh.lifecycle")

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


REREGISTER_INTERVAL = 2.0  # seconds between checks that the agent still knows us


@asynccontextmanager
async def registered(
    client: consul.aio.Consul,
    *,
    name: str,
    instance_id: str,
    reregister_every: float = REREGISTER_INTERVAL,
    **registration: Any,
) -> AsyncIterator[None]:
    """In Consul's catalog while the block runs; deregistered when it ends, however it ends
    (clients' watches then drop the instance within a second).

    While it runs, the local agent is asked every ``reregister_every`` seconds whether it
    still has the instance: an agent that restarted without its state (a dev agent keeps
    its catalog in memory) has forgotten it, and it is registered again, with its check.
    While the agent is unreachable nothing changes (callers keep their last known set)."""

    async def register() -> None:
        await consul_api.register(client, name=name, instance_id=instance_id, **registration)

    async def keep_registered() -> None:
        while True:
            await asyncio.sleep(reregister_every)
            try:
                if instance_id not in await client.agent.services():
                    log.warning("%s: the Consul agent forgot it; registering again", instance_id)
                    await register()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Consul down or restarting: try again later
                log.debug("%s: registration check failed: %s", instance_id, exc)

    await register()
    keeper = asyncio.create_task(keep_registered(), name=f"keep-registered:{instance_id}")
    try:
        yield
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        await consul_api.deregister(client, instance_id)


def announce_ready(info: dict[str, Any]) -> None:
    """The one line on stdout that launchers wait for: ``MESH_READY {json}``.

    Written whole, newline included, in one write: ``print`` writes the line and its end
    separately, and where stdout and stderr share one stream (a container's log) a log
    line could land between the two, so the launcher never saw the line end."""
    sys.stdout.write(READY_PREFIX + json.dumps(info) + "\n")
    sys.stdout.flush()
