"""A service whose first publish to the broker is a crash: the process exits with
EXIT_CODE (``os._exit``: no cleanup, no deregistration, as a SIGKILL would) right before
the event would reach the broker, so its outbox row stays committed and unsent.

    python -m tests.support.crash_before_publish --service order <the service's arguments>

(``devstack.services.start_service(..., module="tests.support.crash_before_publish",
args=["--service", "order", ...])``.) Everything else is the service as it runs in
production: ``run_service`` with the service's own ``setup``, the real NATS bus.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from meshkit.config import MeshConfig
from meshkit.events.brokers import connect_bus
from meshkit.events.bus import ConsumerLag, EventBus, Handler
from meshkit.server import run_service

EXIT_CODE = 86


class CrashingBus:
    """The real bus, except that its first publish ends the process."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus

    async def publish(self, subject: str, data: bytes, msg_id: str, key: str = "") -> None:
        sys.stdout.write(f"crash_before_publish: exiting before publishing {subject} {msg_id}\n")
        sys.stdout.flush()
        os._exit(EXIT_CODE)

    async def consume(self, durable: str, subjects: Sequence[str], handler: Handler) -> None:
        await self._bus.consume(durable, subjects, handler)

    async def lag(self, durable: str) -> ConsumerLag | None:
        return await self._bus.lag(durable)

    async def close(self) -> None:
        await self._bus.close()


async def crashing_nats(config: MeshConfig) -> EventBus:
    return CrashingBus(await connect_bus(config))


def split_service(argv: Sequence[str]) -> tuple[str, list[str]]:
    """``--service NAME`` (anywhere in ``argv``) and the other arguments."""
    args = list(argv)
    try:
        at = args.index("--service")
        name = args[at + 1]
    except (ValueError, IndexError):
        raise SystemExit("usage: crash_before_publish --service NAME [service args]") from None
    del args[at : at + 2]
    return name, args


def main(argv: Sequence[str] | None = None) -> None:
    name, args = split_service(sys.argv[1:] if argv is None else argv)
    setup = importlib.import_module(f"services.{name}.app").setup
    run_service(name, setup, args, bus_factory=crashing_nats)


if __name__ == "__main__":
    main()
