"""GraphQL at /graphql (strawberry) over the same RPCs, the same tokens and the same scopes.

Queries ``order``, ``orders`` and ``stock``, the mutation ``placeOrder`` and the
subscription ``orderStatus`` (over WebSocket, graphql-transport-ws) each call one RPC
through the Backend, so each needs that RPC's scope, carries the subject into the mesh and
gets the same errors (as GraphQL errors whose ``extensions`` hold the gRPC code, the HTTP
status the REST route would answer and the ``google.rpc.Status`` details).

Over HTTP the token is the request's ``Authorization`` header (checked before the query
runs). Over WebSocket it is the ``Authorization`` entry of the ``connection_init``
payload, or the upgrade request's header; without a valid one the connection is closed
with 4403. Each operation on a socket is held to the rate limit, the token's expiry and
the connection's caps (EdgeTransportWS). A document with more than ``MAX_ALIASES``
aliases or ``MAX_TOKENS`` tokens is refused before any RPC is made.

The types are written out here, for their descriptions, and follow the contracts by the
protobuf JSON mapping (JSON names, 64-bit integers and Timestamps as strings, enums by
name): tests/unit/test_gateway_graphql_contract.py checks each against the message it
mirrors, so a contract change that GraphQL does not follow fails the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import time
from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from google.protobuf.message import Message
from graphql import GraphQLError
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.types import Info

from services.gateway.auth import Principal
from services.gateway.backend import Backend
from services.gateway.jsonmap import BadInput, json_depth
from services.gateway.ratelimit import RateLimiter
from services.gateway.status import EdgeError, bad_request, status_json, too_many_requests
from shop.common.v1 import address_pb2, line_item_pb2, money_pb2
from shop.inventory.v1 import inventory_pb2
from shop.order.v1 import order_pb2

_ORDER = order_pb2.DESCRIPTOR.services_by_name["OrderService"]
_INVENTORY = inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"]

OrderStatus = strawberry.enum(
    enum.Enum(  # type: ignore[misc]
        "OrderStatus",
        {name.removeprefix("ORDER_STATUS_"): n for name, n in order_pb2.OrderStatus.items()},
    ),
    description="Where an order is in its life; CONFIRMED and CANCELLED are final.",
)


@strawberry.type(description="An amount of money: units and nanos (10^-9) of a currency.")
class Money:
    currency_code: str
    units: str = strawberry.field(description="whole units, as a string (64-bit)")
    nanos: int

    @classmethod
    def of(cls, m: money_pb2.Money) -> Money:
        return cls(currency_code=m.currency_code, units=str(m.units), nanos=m.nanos)


@strawberry.type
class Address:
    recipient: str
    lines: list[str]
    city: str
    postal_code: str
    country_code: str

    @classmethod
    def of(cls, a: address_pb2.Address) -> Address:
        return cls(
            recipient=a.recipient,
            lines=list(a.lines),
            city=a.city,
            postal_code=a.postal_code,
            country_code=a.country_code,
        )


@strawberry.type
class LineItem:
    sku: str
    quantity: int
    unit_price: Money

    @classmethod
    def of(cls, i: line_item_pb2.LineItem) -> LineItem:
        return cls(sku=i.sku, quantity=i.quantity, unit_price=Money.of(i.unit_price))


@strawberry.type
class StatusChange:
    status: OrderStatus  # type: ignore[valid-type]
    change_time: str = strawberry.field(description="RFC 3339")
    reason: str


@strawberry.type
class Order:
    order_id: str
    customer_id: str
    status: OrderStatus  # type: ignore[valid-type]
    items: list[LineItem]
    total: Money
    shipping_address: Address
    create_time: str
    update_time: str
    history: list[StatusChange]
    cancel_reason: str
    payment_id: str
    tracking_number: str

    @classmethod
    def of(cls, o: order_pb2.Order) -> Order:
        return cls(
            order_id=o.order_id,
            customer_id=o.customer_id,
            status=OrderStatus(o.status),
            items=[LineItem.of(i) for i in o.items],
            total=Money.of(o.total),
            shipping_address=Address.of(o.shipping_address),
            create_time=_time(o, "create_time"),
            update_time=_time(o, "update_time"),
            history=[
                StatusChange(
                    status=OrderStatus(h.status),
                    change_time=_time(h, "change_time"),
                    reason=h.reason,
                )
                for h in o.history
            ],
            cancel_reason=o.cancel_reason,
            payment_id=o.payment_id,
            tracking_number=o.tracking_number,
        )


def _time(message: Message, name: str) -> str:
    if not message.HasField(name):
        return ""
    return str(getattr(message, name).ToJsonString())


@strawberry.type
class OrderPage:
    orders: list[Order]
    next_page_token: str


@strawberry.type
class StockLevel:
    sku: str
    available: str = strawberry.field(description="64-bit, as a string")
    reserved: str
    sold: str

    @classmethod
    def of(cls, s: inventory_pb2.StockLevel) -> StockLevel:
        return cls(
            sku=s.sku, available=str(s.available), reserved=str(s.reserved), sold=str(s.sold)
        )


@strawberry.input
class MoneyInput:
    currency_code: str
    units: str
    nanos: int = 0


@strawberry.input
class LineItemInput:
    sku: str
    quantity: int
    unit_price: MoneyInput


@strawberry.input
class AddressInput:
    recipient: str
    lines: list[str]
    city: str
    postal_code: str
    country_code: str


@strawberry.input
class PlaceOrderInput:
    items: list[LineItemInput]
    shipping_address: AddressInput
    payment_token: str
    idempotency_key: str = ""
    customer_id: str = strawberry.field(
        default="", description="empty: the token's subject (the only one allowed)"
    )


def _context(info: Info) -> tuple[Backend, Principal, float]:
    ctx = info.context
    principal = ctx.get("principal")
    if principal is None:  # the HTTP guard or on_ws_connect sets it
        raise GraphQLError("not authenticated", extensions={"code": "UNAUTHENTICATED"})
    return ctx["backend"], principal, time.monotonic()


def graphql_error(exc: EdgeError) -> GraphQLError:
    return GraphQLError(
        exc.message,
        extensions={
            "code": exc.code.name,
            "httpStatus": exc.http_status,
            "status": status_json(exc.status()),
        },
    )


async def _call(info: Info, method_name: str, request: Message) -> Any:
    backend, principal, started = _context(info)
    service = _ORDER if method_name in _ORDER.methods_by_name else _INVENTORY
    method = service.methods_by_name[method_name]
    try:
        backend.authorize(method, principal)
        return await backend.unary(
            method, request, principal, backend.budget(method, started, None)
        )
    except EdgeError as exc:
        raise graphql_error(exc) from exc


@strawberry.type
class Query:
    @strawberry.field(description="One of your orders (GetOrder; scope orders:read).")
    async def order(self, info: Info, order_id: strawberry.ID) -> Order:
        resp = await _call(info, "GetOrder", order_pb2.GetOrderRequest(order_id=str(order_id)))
        return Order.of(resp.order)

    @strawberry.field(description="Your orders, newest first (ListOrders; scope orders:read).")
    async def orders(
        self,
        info: Info,
        status: OrderStatus | None = None,  # type: ignore[valid-type]
        page_size: int = 0,
        page_token: str = "",
    ) -> OrderPage:
        request = order_pb2.ListOrdersRequest(page_size=page_size, page_token=page_token)
        if status is not None:
            request.status = status.value
        resp = await _call(info, "ListOrders", request)
        return OrderPage(
            orders=[Order.of(o) for o in resp.orders], next_page_token=resp.next_page_token
        )

    @strawberry.field(description="The stock of one sku (GetStock; scope stock:read).")
    async def stock(self, info: Info, sku: str) -> StockLevel:
        resp = await _call(info, "GetStock", inventory_pb2.GetStockRequest(sku=sku))
        return StockLevel.of(resp.stock)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Places an order (PlaceOrder; scope orders:write).")
    async def place_order(self, info: Info, input: PlaceOrderInput) -> Order:
        try:
            units = [int(i.unit_price.units) for i in input.items]
        except ValueError as exc:
            raise graphql_error(
                bad_request([_violation("items.unitPrice.units", "must be an integer")])
            ) from exc
        request = order_pb2.PlaceOrderRequest(
            customer_id=input.customer_id,
            items=[
                line_item_pb2.LineItem(
                    sku=i.sku,
                    quantity=i.quantity,
                    unit_price=money_pb2.Money(
                        currency_code=i.unit_price.currency_code, units=u, nanos=i.unit_price.nanos
                    ),
                )
                for i, u in zip(input.items, units, strict=True)
            ],
            shipping_address=address_pb2.Address(
                recipient=input.shipping_address.recipient,
                lines=input.shipping_address.lines,
                city=input.shipping_address.city,
                postal_code=input.shipping_address.postal_code,
                country_code=input.shipping_address.country_code,
            ),
            payment_token=input.payment_token,
            idempotency_key=input.idempotency_key,
        )
        resp = await _call(info, "PlaceOrder", request)
        return Order.of(resp.order)


def _violation(field: str, description: str) -> Any:
    from meshkit.errors import FieldViolation

    return FieldViolation(field, description)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The order now, then every change until it is final (WatchOrder)."
    )
    async def order_status(
        self, info: Info, order_id: strawberry.ID
    ) -> AsyncGenerator[Order, None]:
        backend, principal, started = _context(info)
        method = _ORDER.methods_by_name["WatchOrder"]
        try:
            backend.authorize(method, principal)
            budget = backend.budget(method, started, None)
            request = order_pb2.WatchOrderRequest(order_id=str(order_id))
            async for message in backend.stream(method, request, principal, budget):
                yield Order.of(message.order)
        except EdgeError as exc:
            raise graphql_error(exc) from exc


# Each root field is an RPC, so a document's cost is bounded before it runs: its aliases
# (the same field asked many times) and its size. Depth needs no limit: the schema has no
# cycles (an order's fields never lead back to orders).
MAX_ALIASES = 10
MAX_TOKENS = 1000

schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
    ],
)


class EdgeTransportWS(BaseGraphQLTransportWSHandler[Any, Any]):
    """graphql-transport-ws with the edge's rules per operation, not only per connection.

    Each ``subscribe`` (a query, a mutation or a subscription) takes a token of the
    client's rate limit (none left: an ``error`` message for that operation, code
    RESOURCE_EXHAUSTED, ``retryAfter`` in seconds); a connection carries at most
    ``max_operations`` in its life (then close 4429) and ``max_subscriptions`` at once
    (strawberry's limit). The token's ``exp`` is checked at each operation and by a timer:
    when it passes the socket is closed with 4403, its operations stopped; the client
    reconnects with a fresh token.
    """

    view: GatewayGraphQL

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.operation_count = 0
        self._expiry: asyncio.Task[None] | None = None

    def _principal(self) -> Principal | None:
        return self.context.get("principal") if isinstance(self.context, dict) else None

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        principal = self._principal()
        if self.connection_acknowledged and principal is not None and self._expiry is None:
            self._expiry = asyncio.create_task(self._close_at_expiry(principal))

    async def _close_at_expiry(self, principal: Principal) -> None:
        await asyncio.sleep(max(0.0, _expires_in(principal)))
        await self._close_expired()

    async def _close_expired(self) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.close(code=4403, reason="the token has expired")

    async def handle_subscribe(self, message: Any) -> None:
        principal = self._principal()
        if not self.connection_acknowledged or principal is None:
            await super().handle_subscribe(message)  # closes with 4401
            return
        if _expires_in(principal) <= 0:
            await self._close_expired()
            return
        self.operation_count += 1
        if self.operation_count > self.view.max_operations:
            await self.websocket.close(
                code=4429,
                reason=f"more than {self.view.max_operations} operations; reconnect",
            )
            return
        limiter = self.view.limiter
        wait = limiter.take(principal.client_id) if limiter is not None else 0.0
        if wait > 0:
            exc = too_many_requests(principal.client_id, wait)
            error = graphql_error(exc)
            error.extensions["retryAfter"] = int(exc.headers["Retry-After"])  # type: ignore[index]
            await self.send_message(
                {"id": message["id"], "type": "error", "payload": [error.formatted]}
            )
            return
        await super().handle_subscribe(message)

    async def shutdown(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(BaseException):
                await self._expiry
        await super().shutdown()


def _expires_in(principal: Principal) -> float:
    """Seconds until the token's ``exp`` (no leeway: a socket lives until then, at most)."""
    exp = principal.claims.get("exp")
    if not isinstance(exp, int | float):
        return 0.0
    return float(exp) - time.time()


class GatewayGraphQL(GraphQL):
    """Strawberry's ASGI app with the gateway's principal and backend in the context."""

    graphql_transport_ws_handler_class = EdgeTransportWS

    def __init__(
        self,
        backend: Backend,
        authenticate: Any,
        limiter: RateLimiter | None = None,
        max_operations: int = 1000,
        max_subscriptions: int = 10,
        max_json_depth: int = 64,
    ) -> None:
        super().__init__(
            schema,
            subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
            max_subscriptions_per_connection=max_subscriptions,
        )
        self.backend = backend
        self._authenticate = authenticate
        self.limiter = limiter
        self.max_operations = max_operations
        self.max_json_depth = max_json_depth

    def decode_json(self, data: str | bytes) -> object:
        """JSON nested deeper than the edge allows is not parsed (the parser's recursion
        would fail): on a WebSocket, the socket is closed with 4400 as for any bad JSON."""
        text = data.encode() if isinstance(data, str) else data
        if json_depth(text) > self.max_json_depth:
            raise json.JSONDecodeError(
                f"nests arrays/objects deeper than {self.max_json_depth} levels", str(data), 0
            )
        return super().decode_json(data)

    async def get_context(self, request: Any, response: Any) -> Any:
        state = request.scope.get("state") or {}
        return {
            "request": request,
            "response": response,
            "backend": self.backend,
            "principal": state.get("principal"),
        }

    async def on_ws_connect(self, context: Any) -> Any:
        params = context.get("connection_params") or {}
        header = None
        if isinstance(params, dict):
            header = params.get("Authorization") or params.get("authorization")
        request = context["request"]
        if header is None:
            header = request.headers.get("authorization")
        client = request.scope.get("client")
        try:
            context["principal"] = await self._authenticate(header, client[0] if client else None)
        except EdgeError as exc:
            raise ConnectionRejectionError({"message": exc.message}) from exc
        except BadInput as exc:  # pragma: no cover  (not raised by authentication)
            raise ConnectionRejectionError({"message": str(exc)}) from exc
        return await super().on_ws_connect(context)
