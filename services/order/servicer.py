"""The OrderService gRPC methods: validate the request, then run the flow (commands) or
read the view (queries).

A call made for an end user (through the API gateway, ``x-shop-subject``) sees only that
user's orders: the subject is the customer id. PlaceOrder and ListOrders take it as
``customer_id`` (empty means the subject; another customer's is PERMISSION_DENIED), and
another customer's order is NOT_FOUND, as if it did not exist. Every method asks for the
subject, so every method is scoped: the subject only from the gateway, and a call without
one only from the identities the mesh file lets call unscoped (``EndUser.subject_of``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from meshkit.errors import NotFound, PermissionDenied, Violations, require
from meshkit.security.end_user import EndUser
from services.order.catalog import StockReader, check_skus
from services.order.domain import FINAL, validate_place_order
from services.order.flow import OrderFlow
from services.order.view import OrderView
from services.order.watchers import OrderWatchers
from services.shop_common.paging import decode_token, encode_token, page_size
from shop.order.v1 import order_pb2, order_pb2_grpc

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# WatchOrder re-reads the view at least this often (changes made by another instance).
WATCH_POLL = 0.5


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    """The shop's public API; ``context`` is only read for the subject (tests pass None)."""

    def __init__(
        self,
        flow: OrderFlow,
        view: OrderView,
        watchers: OrderWatchers,
        inventory: StockReader,
        end_user: EndUser,
    ) -> None:
        self._end_user = end_user
        self._flow = flow
        self._view = view
        self._watchers = watchers
        self._inventory = inventory

    async def PlaceOrder(
        self, request: order_pb2.PlaceOrderRequest, context: Any
    ) -> order_pb2.PlaceOrderResponse:
        request.customer_id = _own_customer(request.customer_id, self._end_user.subject_of(context))
        draft = validate_place_order(request)
        await check_skus(self._inventory, draft.items)
        return order_pb2.PlaceOrderResponse(order=await self._flow.place(draft))

    async def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: Any
    ) -> order_pb2.GetOrderResponse:
        require(request.order_id, "order_id", "GetOrderRequest")
        order = await self._get(request.order_id, self._end_user.subject_of(context))
        return order_pb2.GetOrderResponse(order=order)

    async def ListOrders(
        self, request: order_pb2.ListOrdersRequest, context: Any
    ) -> order_pb2.ListOrdersResponse:
        v = Violations("ListOrdersRequest")
        size = page_size(v, request.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        before = decode_token(v, request.page_token, int)
        v.check(request.status in order_pb2.OrderStatus.values(), "status", "is not an OrderStatus")
        v.raise_if_any()
        # One extra row tells whether another page follows.
        rows = await self._view.list(
            customer_id=_own_customer(request.customer_id, self._end_user.subject_of(context)),
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
        require(request.order_id, "order_id", "WatchOrderRequest")
        subject = self._end_user.subject_of(context)
        # Subscribe before the first read, so a change in between is not missed.
        with self._watchers.subscribe(request.order_id) as changed:
            order = await self._get(request.order_id, subject)
            yield order_pb2.WatchOrderResponse(order=order)
            seen = len(order.history)
            while order.status not in FINAL:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(WATCH_POLL):  # not wait_for: see outbox
                        await changed.wait()
                changed.clear()
                order = await self._get(request.order_id, subject)
                # Each transition adds one history entry; send only new states.
                if len(order.history) > seen:
                    seen = len(order.history)
                    yield order_pb2.WatchOrderResponse(order=order)

    async def CancelOrder(
        self, request: order_pb2.CancelOrderRequest, context: Any
    ) -> order_pb2.CancelOrderResponse:
        require(request.order_id, "order_id", "CancelOrderRequest")
        if (subject := self._end_user.subject_of(context)) is not None:
            await self._get(request.order_id, subject)
        order = await self._flow.cancel(request.order_id, request.reason)
        return order_pb2.CancelOrderResponse(order=order)

    async def _get(self, order_id: str, subject: str | None = None) -> order_pb2.Order:
        order = await self._view.get(order_id)
        if order is None or (subject is not None and order.customer_id != subject):
            raise NotFound(f"order {order_id} not found")
        return order


def _own_customer(customer_id: str, subject: str | None) -> str:
    """The customer a call may act for: its subject's own id, when it has a subject."""
    if subject is None or customer_id in ("", subject):
        return subject or customer_id
    raise PermissionDenied("customer_id must be your own (the subject of your token) or empty")
