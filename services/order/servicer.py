"""The OrderService gRPC methods: validate the request, then read the store or run the saga."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from services.mesh.errors import NotFound, Violations
from services.order.domain import FINAL, validate_place_order
from services.order.saga import InventoryClient, OrderSaga, PaymentClient, ShippingClient
from services.order.store import OrderStore
from services.order.watchers import OrderWatchers
from services.shop_common.paging import decode_token, encode_token, page_size
from shop.order.v1 import order_pb2, order_pb2_grpc

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    """The shop's public API. The downstream clients are injected (mesh stubs in the service,
    fakes in tests); ``context`` is never used."""

    def __init__(
        self,
        store: OrderStore,
        inventory: InventoryClient,
        payment: PaymentClient,
        shipping: ShippingClient,
    ) -> None:
        self._store = store
        self._watchers = OrderWatchers()
        self._saga = OrderSaga(store, self._watchers, inventory, payment, shipping)

    async def drain(self) -> None:
        """Lets running sagas finish; awaited at shutdown."""
        await self._saga.drain()

    async def PlaceOrder(
        self, request: order_pb2.PlaceOrderRequest, context: Any
    ) -> order_pb2.PlaceOrderResponse:
        order = await self._saga.place(validate_place_order(request))
        return order_pb2.PlaceOrderResponse(order=order)

    async def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: Any
    ) -> order_pb2.GetOrderResponse:
        _require_order_id(request.order_id, "GetOrderRequest")
        return order_pb2.GetOrderResponse(order=await self._get(request.order_id))

    async def ListOrders(
        self, request: order_pb2.ListOrdersRequest, context: Any
    ) -> order_pb2.ListOrdersResponse:
        v = Violations("ListOrdersRequest")
        size = page_size(v, request.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        before = decode_token(v, request.page_token, int)
        v.check(request.status in order_pb2.OrderStatus.values(), "status", "is not an OrderStatus")
        v.raise_if_any()
        # One extra row tells whether another page follows.
        rows = await self._store.list(
            customer_id=request.customer_id,
            status=request.status or None,
            before_seq=before,
            limit=size + 1,
        )
        page = rows[:size]
        return order_pb2.ListOrdersResponse(
            orders=[order for _, order in page],
            next_page_token=encode_token(page[-1][0]) if len(rows) > size else "",
        )

    async def WatchOrder(
        self, request: order_pb2.WatchOrderRequest, context: Any
    ) -> AsyncIterator[order_pb2.WatchOrderResponse]:
        _require_order_id(request.order_id, "WatchOrderRequest")
        # Subscribe before the first read, so a change in between is not missed.
        with self._watchers.subscribe(request.order_id) as changes:
            order = await self._get(request.order_id)
            yield order_pb2.WatchOrderResponse(order=order)
            seen = len(order.history)
            while order.status not in FINAL:
                order = await changes.get()
                # Each transition adds one history entry; skip what the first read showed.
                if len(order.history) > seen:
                    seen = len(order.history)
                    yield order_pb2.WatchOrderResponse(order=order)

    async def CancelOrder(
        self, request: order_pb2.CancelOrderRequest, context: Any
    ) -> order_pb2.CancelOrderResponse:
        _require_order_id(request.order_id, "CancelOrderRequest")
        order = await self._saga.cancel(request.order_id, request.reason)
        return order_pb2.CancelOrderResponse(order=order)

    async def _get(self, order_id: str) -> order_pb2.Order:
        order = await self._store.get(order_id)
        if order is None:
            raise NotFound(f"order {order_id} not found")
        return order


def _require_order_id(order_id: str, request: str) -> None:
    v = Violations(request)
    v.check(bool(order_id), "order_id", "is required")
    v.raise_if_any()
