"""``meshkit.database.protojson``: the proto JSON a store keeps is json_format's, both ways,
so rows written before (by json_format) and after read the same."""

from __future__ import annotations

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from meshkit.database.protojson import ProtoJson
from shop.common.v1.address_pb2 import Address
from shop.common.v1.line_item_pb2 import LineItem
from shop.common.v1.money_pb2 import Money
from shop.shipping.v1 import shipping_pb2

MESSAGES: list[Message] = [
    Address(
        recipient="Ann Lee",
        lines=["1 Main St", "Apt 2"],
        city="Lyon",
        postal_code="69001",
        country_code="FR",
    ),
    Address(),
    Address(city="only a city"),
    LineItem(sku="SKU-1", quantity=3, unit_price=Money(currency_code="EUR", units=12, nanos=5)),
    LineItem(sku="SKU-2", unit_price=Money()),  # present but empty: {} as json_format has it
    LineItem(sku="SKU-3", quantity=-1),
    Money(currency_code="USD", units=-(2**62), nanos=-999_999_999),
    Money(units=2**62),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_a_message_as_json_format_writes_and_reads_it(message: Message) -> None:
    codec = ProtoJson(type(message))
    written = codec.to_dict(message)
    assert written == json_format.MessageToDict(message)
    assert codec.from_dict(written) == message
    assert json_format.ParseDict(written, type(message)()) == message
    # what json_format wrote before, and its other spellings (field names, numbers as text)
    assert codec.from_dict(json_format.MessageToDict(message)) == message
    spelled = json_format.MessageToDict(message, preserving_proto_field_name=True)
    assert codec.from_dict(spelled) == message


def test_integers_written_as_text_are_read() -> None:
    assert ProtoJson(LineItem).from_dict({"sku": "a", "quantity": "4"}) == LineItem(
        sku="a", quantity=4
    )


def test_a_message_with_fields_it_cannot_write_is_refused_when_the_codec_is_made() -> None:
    with pytest.raises(TypeError):
        ProtoJson(shipping_pb2.Shipment)  # an enum and timestamps: json_format's job
