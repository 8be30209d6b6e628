"""The GraphQL schema against the contracts: graphql.py writes its types by hand (for
their descriptions and a schema that reads well), so this checks each of them against the
proto message it mirrors, field by field: the names (the JSON names), the types (the
protobuf JSON mapping: 64-bit integers and Timestamps as strings, enums by name), list or
not, and the enums' values. A field added to, renamed in or retyped in a contract, or a
GraphQL type that drifts from it, fails here until graphql.py follows (or the field is
listed in LEFT_OUT on purpose)."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    FieldDescriptor,
    MethodDescriptor,
)
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLType,
    build_schema,
)

from services.gateway import graphql as gateway_graphql
from services.gateway.graphql import schema
from shop.common.v1 import address_pb2, line_item_pb2, money_pb2
from shop.inventory.v1 import inventory_pb2
from shop.order.v1 import order_pb2

_ORDER = order_pb2.DESCRIPTOR.services_by_name["OrderService"]
_INVENTORY = inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"]

# Each GraphQL object or input type and the proto message it mirrors.
MESSAGES: dict[str, Descriptor] = {
    "Money": money_pb2.Money.DESCRIPTOR,
    "MoneyInput": money_pb2.Money.DESCRIPTOR,
    "Address": address_pb2.Address.DESCRIPTOR,
    "AddressInput": address_pb2.Address.DESCRIPTOR,
    "LineItem": line_item_pb2.LineItem.DESCRIPTOR,
    "LineItemInput": line_item_pb2.LineItem.DESCRIPTOR,
    "StatusChange": order_pb2.StatusChange.DESCRIPTOR,
    "Order": order_pb2.Order.DESCRIPTOR,
    "OrderPage": order_pb2.ListOrdersResponse.DESCRIPTOR,
    "StockLevel": inventory_pb2.StockLevel.DESCRIPTOR,
    "PlaceOrderInput": order_pb2.PlaceOrderRequest.DESCRIPTOR,
}
# Each GraphQL enum, the proto enum it mirrors and the prefix its values drop.
ENUMS: dict[str, tuple[EnumDescriptor, str]] = {
    "OrderStatus": (order_pb2.OrderStatus.DESCRIPTOR, "ORDER_STATUS_"),
}
# Each root field, the RPC it calls and the response field it answers (None: all of it).
ROOTS: dict[tuple[str, str], tuple[MethodDescriptor, str | None]] = {
    ("Query", "order"): (_ORDER.methods_by_name["GetOrder"], "order"),
    ("Query", "orders"): (_ORDER.methods_by_name["ListOrders"], None),
    ("Query", "stock"): (_INVENTORY.methods_by_name["GetStock"], "stock"),
    ("Mutation", "placeOrder"): (_ORDER.methods_by_name["PlaceOrder"], "order"),
    ("Subscription", "orderStatus"): (_ORDER.methods_by_name["WatchOrder"], "order"),
}
# Proto fields that GraphQL leaves out on purpose (message full name, proto field name).
LEFT_OUT = {
    # not in GraphQL's stock query (REST has it)
    ("shop.inventory.v1.StockLevel", "update_time"),
    # the caller's own orders only: the token's subject, never an argument
    ("shop.order.v1.ListOrdersRequest", "customer_id"),
}

_INT32 = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_FIXED32,
}
_SCALARS = {
    **dict.fromkeys(_INT32, "Int"),
    # the JSON mapping: 64-bit integers are strings (JavaScript's numbers are doubles)
    **dict.fromkeys(
        [
            FieldDescriptor.TYPE_INT64,
            FieldDescriptor.TYPE_SINT64,
            FieldDescriptor.TYPE_SFIXED64,
            FieldDescriptor.TYPE_UINT64,
            FieldDescriptor.TYPE_FIXED64,
        ],
        "String",
    ),
    FieldDescriptor.TYPE_STRING: "String",
    FieldDescriptor.TYPE_BYTES: "String",
    FieldDescriptor.TYPE_BOOL: "Boolean",
    FieldDescriptor.TYPE_DOUBLE: "Float",
    FieldDescriptor.TYPE_FLOAT: "Float",
}
_BUILT_IN = {"String", "Int", "Float", "Boolean", "ID"}
_AS_STRING = {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}


def _named(t: GraphQLType) -> tuple[GraphQLNamedType, bool]:
    """The named type inside ``t`` and whether it is a list."""
    if isinstance(t, GraphQLNonNull):
        t = t.of_type
    if isinstance(t, GraphQLList):
        inner = t.of_type
        return (inner.of_type if isinstance(inner, GraphQLNonNull) else inner), True
    return t, False


def _type_problems(where: str, field: FieldDescriptor, t: GraphQLType, input: bool) -> list[str]:
    """What is wrong with GraphQL type ``t`` for proto ``field`` (nothing: [])."""
    named, listed = _named(t)
    if listed != field.is_repeated:
        return [
            f"{where}: {t} but the proto field is {'' if field.is_repeated else 'not '}repeated"
        ]
    if field.type == FieldDescriptor.TYPE_ENUM:
        mirrored = ENUMS.get(named.name, (None, ""))[0]
        if mirrored is None or mirrored.full_name != field.enum_type.full_name:
            return [f"{where}: {named.name} is not the enum {field.enum_type.full_name}"]
        return []
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name in _AS_STRING:
            expected = "String"
        else:
            mirrored_message = MESSAGES.get(named.name)
            kind = GraphQLInputObjectType if input else GraphQLObjectType
            if (
                mirrored_message is None
                or mirrored_message.full_name != field.message_type.full_name
                or not isinstance(named, kind)
            ):
                return [
                    f"{where}: {named.name} is not the {'input' if input else 'output'}"
                    f" type of {field.message_type.full_name}"
                ]
            return []
    else:
        expected = _SCALARS[field.type]
    allowed = {expected, "ID"} if expected == "String" else {expected}
    if named.name not in allowed:
        return [f"{where}: {named.name}, but the proto field is {expected} in JSON"]
    return []


def _fields_problems(
    where: str, fields: dict[str, GraphQLType], message: Descriptor, input: bool
) -> list[str]:
    """GraphQL ``fields`` (JSON name -> type) against the fields of ``message``."""
    problems = []
    by_json = {f.json_name: f for f in message.fields}
    for name, t in fields.items():
        field = by_json.get(name)
        if field is None:
            problems.append(f"{where}.{name}: no such field in {message.full_name}")
            continue
        if (message.full_name, field.name) in LEFT_OUT:
            problems.append(f"{where}.{name}: left out on purpose (LEFT_OUT), yet here")
            continue
        problems += _type_problems(f"{where}.{name}", field, t, input)
    for field in message.fields:
        if field.json_name not in fields and (message.full_name, field.name) not in LEFT_OUT:
            problems.append(f"{where}: {message.full_name}.{field.name} is missing")
    return problems


def _mirrored(type_name: str) -> str | None:
    message = MESSAGES.get(type_name)
    return message.full_name if message else None


def drift(graphql_schema: GraphQLSchema) -> list[str]:
    """Every difference between the GraphQL schema and the contracts."""
    problems = []
    roots = ["Mutation", "Query", "Subscription"]
    for name, t in graphql_schema.type_map.items():
        if name.startswith("__") or name in roots or name in _BUILT_IN:
            continue
        if isinstance(t, GraphQLEnumType):
            if name not in ENUMS:
                problems.append(f"{name}: an enum that mirrors no proto enum (add it to ENUMS)")
                continue
            enum, prefix = ENUMS[name]
            expected = {v.name.removeprefix(prefix) for v in enum.values}
            if set(t.values) != expected:
                problems.append(f"{name}: values {sorted(t.values)}, proto {sorted(expected)}")
        elif isinstance(t, GraphQLObjectType | GraphQLInputObjectType):
            if name not in MESSAGES:
                problems.append(f"{name}: a type that mirrors no message (add it to MESSAGES)")
                continue
            fields = {n: f.type for n, f in t.fields.items()}
            is_input = isinstance(t, GraphQLInputObjectType)
            problems += _fields_problems(name, fields, MESSAGES[name], is_input)
        else:
            problems.append(f"{name}: a {type(t).__name__} the contracts have no rule for")
    for name in [*MESSAGES, *ENUMS]:
        if name not in graphql_schema.type_map:
            problems.append(f"{name}: in this test's map but not in the schema")
    for root in roots:
        root_type = graphql_schema.get_type(root)
        root_fields = root_type.fields if isinstance(root_type, GraphQLObjectType) else {}
        for field_name, field in root_fields.items():
            where = f"{root}.{field_name}"
            if (root, field_name) not in ROOTS:
                problems.append(f"{where}: a root field that calls no RPC (add it to ROOTS)")
                continue
            method, answer = ROOTS[(root, field_name)]
            result = method.output_type
            if answer is not None:
                result = result.fields_by_name[answer].message_type
            returned, _ = _named(field.type)
            if _mirrored(returned.name) != result.full_name:
                problems.append(
                    f"{where}: returns {returned.name}, the RPC answers {result.full_name}"
                )
            args = {n: a.type for n, a in field.args.items()}
            if list(args) == ["input"]:  # one input object for the whole request
                arg_type, _ = _named(args["input"])
                if _mirrored(arg_type.name) != method.input_type.full_name:
                    problems.append(f"{where}(input): not {method.input_type.full_name}")
            else:
                problems += _fields_problems(f"{where}()", args, method.input_type, True)
    for root, field_name in ROOTS:
        root_type = graphql_schema.get_type(root)
        if not isinstance(root_type, GraphQLObjectType) or field_name not in root_type.fields:
            problems.append(f"{root}.{field_name}: in this test's map but not in the schema")
    return problems


def test_the_graphql_schema_mirrors_the_contracts() -> None:
    assert drift(build_schema(schema.as_str())) == []


def test_the_enums_carry_the_proto_numbers() -> None:
    for name, (enum, prefix) in ENUMS.items():
        python_enum = getattr(gateway_graphql, name)
        assert {m.name: m.value for m in python_enum} == {
            v.name.removeprefix(prefix): v.number for v in enum.values
        }


def _edited(sdl: str, type_name: str, old: str, new: str) -> str:
    """``sdl`` with ``old`` replaced by ``new`` in the definition of ``type_name`` alone."""
    head = next(
        h
        for h in (f"type {type_name} {{", f"input {type_name} {{", f"enum {type_name} {{")
        if h in sdl
    )
    start = sdl.index(head)
    end = sdl.index("\n}", start) + 2
    body = sdl[start:end]
    assert body.count(old) == 1, (type_name, old)
    return sdl[:start] + body.replace(old, new) + sdl[end:]


@pytest.mark.parametrize(
    ("type_name", "old", "new", "found"),
    [
        # a field gone, renamed, retyped, made a list, or new in GraphQL only
        ("Order", "  trackingNumber: String!\n", "", "Order.tracking_number is missing"),
        ("Address", "postalCode:", "postcode:", "Address.postcode: no such field"),
        ("MoneyInput", "units: String!", "units: Int!", "MoneyInput.units: Int, but"),
        ("LineItem", "sku: String!", "sku: [String!]!", "LineItem.sku: [String!]!"),
        ("StatusChange", "reason: String!", "reason: String!\n  note: String!", ".note: no"),
        # an enum value that the proto enum does not have
        ("OrderStatus", "CANCELLED", "CANCELLED\n  LOST", "OrderStatus: values"),
        # a message where another is expected, an output type as input
        ("Order", "total: Money!", "total: Address!", "Order.total: Address is not"),
        ("LineItemInput", "unitPrice: MoneyInput!", "unitPrice: Money!", ".unitPrice: Money is"),
        # a left-out field that GraphQL has after all, an argument the RPC does not take
        ("StockLevel", "sold: String!", "sold: String!\n  updateTime: String!", ".updateTime"),
        ("Query", "stock(sku: String!)", "stock(sku: String!, at: String!)", "stock().at: no"),
        # a root field that returns another message than its RPC
        ("Query", "stock(sku: String!): StockLevel!", "stock(sku: String!): Order!", "returns"),
    ],
)
def test_drift_is_found(type_name: str, old: str, new: str, found: str) -> None:
    sdl = _edited(schema.as_str(), type_name, old, new)
    problems = drift(build_schema(sdl))
    assert any(found in p for p in problems), problems
