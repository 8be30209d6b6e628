"""Proto JSON of the small messages a store keeps in a text column (an address, a line
item, an amount), the same dicts as ``json_format.MessageToDict`` / ``ParseDict`` give and
take, at a fraction of their cost: the message's fields are read from its descriptor once,
not at every call (json_format walks the descriptor, and checks each field's options, for
every message).

What is written is what ``MessageToDict`` writes (JSON names, default values left out,
64-bit integers as strings), so rows written by either are read by either. Only messages
made of strings, bools, integers, repeated ones and such messages are taken (``TypeError``
otherwise, when the codec is made): anything else (maps, enums, floats, bytes, well-known
types) keeps to json_format.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

M = TypeVar("M", bound=Message)

_AS_STRING = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64,
              FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_FIXED64,
              FieldDescriptor.TYPE_SFIXED64}  # fmt: skip
_AS_INT = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_UINT32,
           FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_FIXED32,
           FieldDescriptor.TYPE_SFIXED32}  # fmt: skip
_PLAIN = {FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BOOL}
_WELL_KNOWN = "google.protobuf."


class _Field:
    __slots__ = ("from_json", "json_name", "name", "presence", "repeated", "sub", "to_json")

    def __init__(self, field: FieldDescriptor, owner: type[Message]) -> None:
        self.name = field.name
        self.json_name = field.json_name
        self.repeated = field.is_repeated
        self.presence = not self.repeated and field.has_presence
        self.sub: ProtoJson[Any] | None = None
        self.to_json: type | None = None  # str for 64-bit integers
        self.from_json: type | None = None  # int for integers (JSON may have them as strings)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            kind = field.message_type
            if kind.full_name.startswith(_WELL_KNOWN) or kind.GetOptions().map_entry:
                raise TypeError(f"{owner.DESCRIPTOR.full_name}.{field.name}: not supported")
            self.sub = ProtoJson(message_factory.GetMessageClass(kind))
        elif field.type in _AS_STRING:
            self.to_json = str
            self.from_json = int
        elif field.type in _AS_INT:
            self.from_json = int
        elif field.type not in _PLAIN:
            raise TypeError(f"{owner.DESCRIPTOR.full_name}.{field.name}: not supported")


class ProtoJson(Generic[M]):
    """``MessageToDict`` and ``ParseDict`` of one message type, its fields read once."""

    def __init__(self, cls: type[M]) -> None:
        self.cls = cls
        self._fields = tuple(_Field(f, cls) for f in cls.DESCRIPTOR.fields)
        # the common case, strings and 32-bit integers without presence: a plain copy
        self._plain = tuple(
            (f.name, f.json_name)
            for f in self._fields
            if not (f.presence or f.repeated or f.sub or f.to_json)
        )
        self._other = tuple(
            f for f in self._fields if f.presence or f.repeated or f.sub or f.to_json
        )

    def to_dict(self, message: M) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, json_name in self._plain:
            value = getattr(message, name)
            if value:
                out[json_name] = value
        for f in self._other:
            if f.presence and not message.HasField(f.name):
                continue
            value = getattr(message, f.name)
            if f.repeated:
                if not value:
                    continue
                if f.sub is not None:
                    out[f.json_name] = [f.sub.to_dict(v) for v in value]
                elif f.to_json is not None:
                    out[f.json_name] = [f.to_json(v) for v in value]
                else:
                    out[f.json_name] = list(value)
            elif f.sub is not None:
                out[f.json_name] = f.sub.to_dict(value)
            elif value or f.presence:
                out[f.json_name] = f.to_json(value) if f.to_json is not None else value
        return out

    def from_dict(self, data: dict[str, Any]) -> M:
        """The message of a proto JSON dict (JSON names, or field names)."""
        fields: dict[str, Any] = {}
        for f in self._fields:
            value = data.get(f.json_name)
            if value is None:
                value = data.get(f.name)
                if value is None:
                    continue
            if f.sub is not None:
                sub = f.sub
                value = [sub.from_dict(v) for v in value] if f.repeated else sub.from_dict(value)
            elif f.from_json is not None:  # an integer (64-bit ones as strings)
                value = [int(v) for v in value] if f.repeated else int(value)
            fields[f.name] = value
        return self.cls(**fields)
