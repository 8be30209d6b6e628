"""Picking a broker: an unknown kind is refused naming ``--broker``; each kind's runtime
module and server class are where the registries say; Kafka's topic and commit rules."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from devstack.brokers import SERVERS, broker_server, server_class
from meshkit.config import MeshConfig
from meshkit.events.brokers import KINDS, connect_bus
from meshkit.events.kafka import _Partition, family_topic


async def test_an_unknown_broker_is_refused_naming_the_flag() -> None:
    with pytest.raises(ValueError, match="--broker 'kafak'"):
        await connect_bus(MeshConfig(name="order", broker="kafak"))
    with pytest.raises(ValueError, match="--broker 'kafak'"):
        server_class("kafak")


async def test_kafka_needs_its_address() -> None:
    with pytest.raises(ValueError, match="--broker-url"):
        await connect_bus(MeshConfig(name="order", broker="kafka"))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_has_a_runtime_and_a_server(kind: str, tmp_path: Path) -> None:
    assert callable(importlib.import_module(KINDS[kind]).connect)
    assert kind in SERVERS
    server = broker_server(kind, store_dir=tmp_path / kind, log_path=tmp_path / "log")
    assert not server.running  # made, not started
    assert callable(server.env)


def test_kafka_one_topic_per_family_so_one_orders_events_share_a_partition() -> None:
    assert family_topic("shop.events.v1.OrderPlaced") == "shop.events.v1"
    assert family_topic("shop.events.v1.StockReserved") == "shop.events.v1"


def test_kafka_commits_up_to_the_first_unsettled_offset() -> None:
    part = _Partition(epoch=1, next_offset=10)
    part.unsettled = {7, 9}
    assert part.commit_point() == 7
    part.unsettled = set()
    assert part.commit_point() == 10
