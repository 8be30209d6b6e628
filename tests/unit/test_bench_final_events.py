"""bench.client's follower: when the orders it follows are all final, by id or by count."""

from __future__ import annotations

from bench.client import FinalEvents
from shop.events.v1.envelope_pb2 import EventEnvelope


def final(order_id: str, outcome: str = "OrderConfirmed") -> bytes:
    return EventEnvelope(
        event_type=f"shop.events.v1.{outcome}", correlation_id=order_id
    ).SerializeToString()


async def test_orders_placed_by_id_are_all_final_when_each_id_was_seen() -> None:
    events = FinalEvents()
    events.waiting |= {"a", "b"}
    events.all_placed.set()
    events.reached(final("a"), 1.0)
    assert not events.all_final.is_set()
    events.reached(final("b", "OrderCancelled"), 2.0)
    assert events.all_final.is_set()
    assert events.final == {"a": (1.0, "OrderConfirmed"), "b": (2.0, "OrderCancelled")}


async def test_orders_placed_by_ghz_are_all_final_once_as_many_orders_were_seen() -> None:
    events = FinalEvents()
    events.reached(final("a"), 1.0)  # before ghz has ended: the count is not known yet
    events.reached(final("a"), 1.5)  # a redelivered event counts once
    assert not events.all_final.is_set()
    events.expect(2)
    assert not events.all_final.is_set()
    events.reached(final("b"), 2.0)
    assert events.all_final.is_set()
