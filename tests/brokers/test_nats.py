"""What is particular to NATS, against a real nats-server: devstack runs it on one Go
thread; the bus's standing pull (``meshkit.events.nats_pull``) tops its outstanding
requests up as messages arrive and as requests expire unfilled, so a consumer idle for
several expiries still gets what is published next; a consumer keeps consuming across a
server restart; a durable deleted under a running consumer is created again and
consumption goes on."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from devstack.brokers import broker_server
from devstack.nats import NatsServer
from meshkit.events.bus import Delivery
from meshkit.events.nats import NatsBus
from meshkit.events.nats_pull import StandingPull
from tests.brokers.conftest import Broker
from tests.brokers.test_conformance import SUBJECTS, WAIT
from tests.support.polling import eventually


@pytest.fixture(scope="module")
async def nats(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Broker]:
    store: Path = tmp_path_factory.mktemp("nats-pull")
    server = broker_server("nats", store_dir=store / "data", log_path=store / "nats.log")
    server.start()
    broker = Broker("nats", server)
    try:
        yield broker
    finally:
        await broker.close()
        server.stop()


class Seen:
    """Acknowledges every delivery and keeps the texts it carried."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def __call__(self, batch: Sequence[Delivery]) -> None:
        for delivery in batch:
            self.texts.append(delivery.data.decode())
            await delivery.ack()


@contextlib.asynccontextmanager
async def consuming(bus: NatsBus, group: str, handler: Seen) -> AsyncIterator[None]:
    task = asyncio.create_task(bus.consume(group, SUBJECTS, handler))
    try:
        await eventually(lambda: bus.lag(group), WAIT, what=f"consumer {group}")
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def publish(bus: NatsBus, texts: Sequence[str]) -> None:
    for text in texts:
        await bus.publish(SUBJECTS[0], text.encode(), uuid.uuid4().hex)


async def test_requests_expiring_unfilled_are_renewed(nats: Broker) -> None:
    """Idle through several expiries (each a 408 giving back the request's unfilled
    count), the pull keeps at most one batch asked for, and takes what comes next."""
    bus = await nats.bus("order")
    assert isinstance(bus, NatsBus)
    group = f"g-{uuid.uuid4().hex[:8]}"
    async with consuming(bus, group, Seen()):
        pass  # the durable now exists
    pull = StandingPull(bus.nc, bus.stream, group, batch=4, expires=0.3)
    await pull.start()
    try:
        for _ in range(5):  # ~1.5 s: several requests expire unfilled
            assert await pull.take(wait=0.3) == []
            assert 0 <= pull.credit <= 4
        info = await bus.js.consumer_info(bus.stream, group)
        assert (info.num_waiting or 0) <= 2  # expired requests are not piling up
        mark = uuid.uuid4().hex
        await publish(bus, [f"{mark}:{i}" for i in range(6)])
        got: list[str] = []

        async def all_taken() -> bool:
            for msg in await pull.take(wait=0.3):
                got.append(msg.data.decode())
                await msg.ack()
            return len(got) == 6

        await eventually(all_taken, WAIT, interval=0.0, what="the six messages")
        assert got == [f"{mark}:{i}" for i in range(6)]  # in order, once each
    finally:
        await pull.stop()


async def test_a_consumer_keeps_consuming_across_a_server_restart(nats: Broker) -> None:
    bus = await nats.bus("order")
    assert isinstance(bus, NatsBus) and isinstance(nats.server, NatsServer)
    seen, mark = Seen(), uuid.uuid4().hex
    async with consuming(bus, f"g-{mark[:8]}", seen):
        await publish(bus, [f"{mark}:before"])
        await eventually(lambda: f"{mark}:before" in seen.texts, WAIT, what="before")
        nats.restart()

        async def published_after() -> bool:
            try:
                await publish(bus, [f"{mark}:after"])
            except Exception:  # still reconnecting
                return False
            return True

        await eventually(published_after, WAIT, interval=0.5, what="a publish after")
        await eventually(lambda: f"{mark}:after" in seen.texts, WAIT, what="after")


async def test_a_deleted_durable_is_made_again(nats: Broker) -> None:
    bus = await nats.bus("order")
    assert isinstance(bus, NatsBus)
    seen, mark = Seen(), uuid.uuid4().hex
    group = f"g-{mark[:8]}"
    async with consuming(bus, group, seen):
        await publish(bus, [f"{mark}:first"])
        await eventually(lambda: f"{mark}:first" in seen.texts, WAIT, what="first")
        await bus.js.delete_consumer(bus.stream, group)
        await eventually(lambda: bus.lag(group), WAIT, what="the durable made again")
        await publish(bus, [f"{mark}:second"])
        await eventually(lambda: f"{mark}:second" in seen.texts, WAIT, what="second")


def test_devstack_runs_the_server_on_one_go_thread(
    nats: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(nats.server, NatsServer)
    environ = Path(f"/proc/{nats.server.pid}/environ").read_bytes().split(b"\0")
    assert b"GOMAXPROCS=1" in environ
    monkeypatch.setenv("NATS_GOMAXPROCS", "2")
    assert nats.server.environment()["GOMAXPROCS"] == "2"
