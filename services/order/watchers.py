"""In-process fan-out of order changes to WatchOrder streams.

Each watcher gets its own queue of order snapshots, so it sees every transition in order
even when several happen before it runs again; a subscription is made before the first
read, so no change between that read and the wait is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from shop.order.v1 import order_pb2


class OrderWatchers:
    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[order_pb2.Order]]] = {}

    @contextmanager
    def subscribe(self, order_id: str) -> Iterator[asyncio.Queue[order_pb2.Order]]:
        """A queue receiving every published snapshot of the order while the block runs."""
        queue: asyncio.Queue[order_pb2.Order] = asyncio.Queue()
        self._queues.setdefault(order_id, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._queues[order_id]
            queues.discard(queue)
            if not queues:
                del self._queues[order_id]

    def publish(self, order: order_pb2.Order) -> None:
        """Hands the order's new state to its watchers; never blocks the saga."""
        for queue in self._queues.get(order.order_id, ()):
            queue.put_nowait(order)
