"""A servicer served by the real runtime (``meshkit.serve``) on an event loop of its own
thread, for tests whose other fixtures block the tests' loop for seconds (starting
processes) while Consul's 1 s health checks must still pass."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from meshkit import Mesh, MeshConfig, serve


@contextmanager
def served_in_thread(
    config: MeshConfig, servicer: Any, wait_passing: Callable[[str], object]
) -> Iterator[None]:
    """Serve ``servicer`` as ``config.name`` until the block ends; ``wait_passing(name)``
    returns once Consul sees the instance passing."""

    async def setup(mesh: Mesh) -> None:
        mesh.add_service(servicer)

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(serve(config, setup, stop),), daemon=True
    )
    thread.start()
    try:
        wait_passing(config.name)
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()
