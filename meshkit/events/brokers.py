"""Which event broker an instance uses: ``config.broker`` (``--broker``, ``MESH_BROKER``)
names a module ``meshkit.events.<kind>`` whose ``async def connect(config) -> EventBus``
opens this instance's bus. Modules are imported on first use, so a service on NATS does
not load Kafka's client (docs/brokers.md: what each promises, when to pick which)."""

from __future__ import annotations

import importlib

from meshkit.config import MeshConfig
from meshkit.events.bus import EventBus

# kind -> the module that implements its bus (each exposes ``connect(config)``).
KINDS: dict[str, str] = {
    "nats": "meshkit.events.nats",
    "kafka": "meshkit.events.kafka",
    "rabbitmq": "meshkit.events.rabbitmq",
    "sqs": "meshkit.events.sqs",
}


def broker_module(kind: str) -> str:
    """The module of broker ``kind``; ValueError naming ``--broker`` if there is none."""
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(
            f"--broker {kind!r}: not a known event broker (one of {', '.join(KINDS)})"
        ) from None


async def connect_bus(config: MeshConfig) -> EventBus:
    """This instance's connection to the broker ``config.broker`` (NATS by default)."""
    module = importlib.import_module(broker_module(config.broker))
    bus: EventBus = await module.connect(config)
    return bus
