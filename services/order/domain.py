"""What a valid order is: PlaceOrder's checks, the draft they yield, and status names."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from meshkit.errors import Violations
from services.shop_common.address import validate_address
from services.shop_common.money import MAX_TOTAL_NANOS, from_nanos, to_nanos, validate_money
from shop.common.v1.address_pb2 import Address
from shop.common.v1.line_item_pb2 import LineItem
from shop.common.v1.money_pb2 import Money
from shop.order.v1 import order_pb2

MAX_LINES = 50
MAX_QUANTITY = 1000
MAX_CUSTOMER_ID = 128
MAX_IDEMPOTENCY_KEY = 128

PENDING = order_pb2.ORDER_STATUS_PENDING
STOCK_RESERVED = order_pb2.ORDER_STATUS_STOCK_RESERVED
PAID = order_pb2.ORDER_STATUS_PAID
CONFIRMED = order_pb2.ORDER_STATUS_CONFIRMED
CANCELLED = order_pb2.ORDER_STATUS_CANCELLED
FINAL = frozenset({CONFIRMED, CANCELLED})
NOT_FINAL = frozenset({PENDING, STOCK_RESERVED, PAID})
# How far along the saga a status is; statuses only move to a higher rank.
RANK = {PENDING: 0, STOCK_RESERVED: 1, PAID: 2, CONFIRMED: 3, CANCELLED: 3}


def status_name(status: order_pb2.OrderStatus.ValueType) -> str:
    """``PAID`` for ORDER_STATUS_PAID: how statuses are stored and written in messages."""
    return order_pb2.OrderStatus.Name(status).removeprefix("ORDER_STATUS_")


def status_value(name: str) -> order_pb2.OrderStatus.ValueType:
    return order_pb2.OrderStatus.Value("ORDER_STATUS_" + name)


@dataclass(frozen=True)
class OrderDraft:
    """A validated PlaceOrderRequest with its id and total, ready to be stored."""

    order_id: str
    customer_id: str
    items: list[LineItem]
    total: Money
    shipping_address: Address
    payment_token: str
    idempotency_key: str
    # Identifies the request, so a reused idempotency key with another request is caught.
    fingerprint: str


def validate_place_order(request: order_pb2.PlaceOrderRequest) -> OrderDraft:
    """The order ``request`` asks for; raises InvalidArgument naming every bad field."""
    v = Violations("PlaceOrderRequest")
    v.check(bool(request.customer_id.strip()), "customer_id", "is required")
    v.check(
        len(request.customer_id) <= MAX_CUSTOMER_ID,
        "customer_id",
        f"must be at most {MAX_CUSTOMER_ID} characters",
    )
    if v.check(len(request.items) > 0, "items", "needs at least one line"):
        v.check(len(request.items) <= MAX_LINES, "items", f"has more than {MAX_LINES} lines")
    currency = ""
    total = 0
    first_line: dict[str, int] = {}
    for i, item in enumerate(request.items):
        if v.check(bool(item.sku.strip()), f"items[{i}].sku", "is required"):
            if item.sku in first_line:
                v.add(f"items[{i}].sku", f"repeats items[{first_line[item.sku]}].sku")
            first_line.setdefault(item.sku, i)
        quantity_ok = v.check(
            1 <= item.quantity <= MAX_QUANTITY,
            f"items[{i}].quantity",
            f"must be between 1 and {MAX_QUANTITY}",
        )
        price = f"items[{i}].unit_price"
        if not (
            v.check(item.HasField("unit_price"), price, "is required")
            and validate_money(v, price, item.unit_price)
            and v.check(to_nanos(item.unit_price) > 0, price, "must be greater than zero")
        ):
            continue
        currency = currency or item.unit_price.currency_code
        v.check(
            item.unit_price.currency_code == currency,
            f"{price}.currency_code",
            f"must be {currency} like the lines before it",
        )
        if quantity_ok:
            total += to_nanos(item.unit_price) * item.quantity
    v.check(total <= MAX_TOTAL_NANOS, "items", "add up to more than an amount can hold")
    if v.check(request.HasField("shipping_address"), "shipping_address", "is required"):
        validate_address(v, "shipping_address", request.shipping_address)
    v.check(bool(request.payment_token), "payment_token", "is required")
    v.check(
        len(request.idempotency_key) <= MAX_IDEMPOTENCY_KEY,
        "idempotency_key",
        f"must be at most {MAX_IDEMPOTENCY_KEY} characters",
    )
    v.raise_if_any()
    return OrderDraft(
        order_id="ord_" + uuid.uuid4().hex,
        customer_id=request.customer_id,
        items=list(request.items),
        total=from_nanos(total, currency),
        shipping_address=request.shipping_address,
        payment_token=request.payment_token,
        idempotency_key=request.idempotency_key,
        fingerprint=hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest(),
    )
