"""In-process notice of order changes to WatchOrder streams.

A watcher subscribes before its first read of the view, so a change committed between
that read and its wait still wakes it. Changes committed by another instance of the order
service (which shares the database) are not announced here; watchers also re-read the view
at a short interval, so they see those too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class OrderWatchers:
    def __init__(self) -> None:
        self._events: dict[str, set[asyncio.Event]] = {}

    @contextmanager
    def subscribe(self, order_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever the order changes while the block runs (clear it to rearm)."""
        changed = asyncio.Event()
        self._events.setdefault(order_id, set()).add(changed)
        try:
            yield changed
        finally:
            events = self._events[order_id]
            events.discard(changed)
            if not events:
                del self._events[order_id]

    def changed(self, order_id: str) -> None:
        """Wakes the order's watchers; never blocks the writer."""
        for event in self._events.get(order_id, ()):
            event.set()
