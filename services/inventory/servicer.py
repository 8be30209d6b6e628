"""The InventoryService gRPC methods: validate the request, ask the store, answer."""

from __future__ import annotations

from typing import Any

from meshkit.errors import NotFound, Violations, require
from services.inventory.store import InventoryStore
from services.shop_common.paging import decode_token, encode_token, page_size
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc

MAX_LINES = 100
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    """Stock levels and reservations; ``context`` is never used, so tests pass ``None``."""

    def __init__(self, store: InventoryStore) -> None:
        self._store = store

    async def GetStock(
        self, request: inventory_pb2.GetStockRequest, context: Any
    ) -> inventory_pb2.GetStockResponse:
        require(request.sku, "sku", "GetStockRequest")
        stock = await self._store.get_stock(request.sku)
        if stock is None:
            raise NotFound(f"sku {request.sku} not found")
        return inventory_pb2.GetStockResponse(stock=stock)

    async def ListStock(
        self, request: inventory_pb2.ListStockRequest, context: Any
    ) -> inventory_pb2.ListStockResponse:
        v = Violations("ListStockRequest")
        size = page_size(v, request.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = decode_token(v, request.page_token, str)
        v.raise_if_any()
        # One extra row tells whether another page follows.
        stock = await self._store.list_stock(after, size + 1)
        more = len(stock) > size
        stock = stock[:size]
        return inventory_pb2.ListStockResponse(
            stock=stock, next_page_token=encode_token(stock[-1].sku) if more else ""
        )

    async def ReserveStock(
        self, request: inventory_pb2.ReserveStockRequest, context: Any
    ) -> inventory_pb2.ReserveStockResponse:
        v = Violations("ReserveStockRequest")
        v.check(bool(request.order_id), "order_id", "is required")
        if v.check(len(request.items) > 0, "items", "needs at least one item"):
            v.check(len(request.items) <= MAX_LINES, "items", f"has more than {MAX_LINES} items")
        first_line: dict[str, int] = {}
        for i, item in enumerate(request.items):
            if v.check(bool(item.sku), f"items[{i}].sku", "is required"):
                if item.sku in first_line:
                    v.add(f"items[{i}].sku", f"repeats items[{first_line[item.sku]}].sku")
                first_line.setdefault(item.sku, i)
            v.check(item.quantity >= 1, f"items[{i}].quantity", "must be at least 1")
        v.raise_if_any()
        reservation = await self._store.reserve(
            request.order_id, [(item.sku, item.quantity) for item in request.items]
        )
        return inventory_pb2.ReserveStockResponse(reservation=reservation)

    async def ReleaseStock(
        self, request: inventory_pb2.ReleaseStockRequest, context: Any
    ) -> inventory_pb2.ReleaseStockResponse:
        require(request.order_id, "order_id", "ReleaseStockRequest")
        reservation = await self._store.release(request.order_id)
        return inventory_pb2.ReleaseStockResponse(reservation=reservation)

    async def CommitStock(
        self, request: inventory_pb2.CommitStockRequest, context: Any
    ) -> inventory_pb2.CommitStockResponse:
        require(request.order_id, "order_id", "CommitStockRequest")
        reservation = await self._store.commit(request.order_id)
        return inventory_pb2.CommitStockResponse(reservation=reservation)

    async def AdjustStock(
        self, request: inventory_pb2.AdjustStockRequest, context: Any
    ) -> inventory_pb2.AdjustStockResponse:
        v = Violations("AdjustStockRequest")
        v.check(bool(request.sku), "sku", "is required")
        v.check(request.delta != 0, "delta", "must not be zero")
        v.raise_if_any()
        stock = await self._store.adjust(request.sku, request.delta)
        return inventory_pb2.AdjustStockResponse(stock=stock)
