"""PlaceOrder's synchronous check against the inventory: every SKU must exist.

A plain gRPC read through the mesh (the call carries the incoming call's remaining
deadline), made before the order is accepted, so an unknown product is bad input named by
its field rather than an order cancelled later. Whether there is enough stock is the
saga's question, not this one's: it changes until the stock is reserved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Protocol

import grpc

from meshkit.errors import Violations
from shop.common.v1.line_item_pb2 import LineItem
from shop.inventory.v1 import inventory_pb2


class StockReader(Protocol):
    """The inventory call the check makes; a gRPC stub or an in-process fake."""

    def GetStock(
        self, request: inventory_pb2.GetStockRequest
    ) -> Awaitable[inventory_pb2.GetStockResponse]: ...


async def check_skus(inventory: StockReader, items: Sequence[LineItem]) -> None:
    """Raises InvalidArgument naming each ``items[i].sku`` the inventory does not know.

    Other failures of the inventory (UNAVAILABLE, DEADLINE_EXCEEDED, ...) propagate: the
    caller may retry PlaceOrder with its idempotency key.
    """
    results = await asyncio.gather(
        *(inventory.GetStock(inventory_pb2.GetStockRequest(sku=item.sku)) for item in items),
        return_exceptions=True,
    )
    v = Violations("PlaceOrderRequest")
    for i, result in enumerate(results):
        if isinstance(result, grpc.aio.AioRpcError) and result.code() == grpc.StatusCode.NOT_FOUND:
            v.add(f"items[{i}].sku", f"{items[i].sku!r} is not in the catalog")
        elif isinstance(result, BaseException):
            raise result
    v.raise_if_any()
