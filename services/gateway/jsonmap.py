"""Protobuf's JSON mapping at the edge, strict: every bad value named by its field path.

Input accepts both the JSON name (``customerId``) and the proto name (``customer_id``) of
each field, as the mapping says; output uses JSON names, enums by name, 64-bit integers
as strings. ``json_format`` does the conversion; before it, ``check`` walks the value
against the message descriptor so that unknown fields, wrong types and out-of-range
numbers come back as ``google.rpc.BadRequest`` field violations with a path like
``items[0].quantity`` (the proto names, as the services name fields in their own
violations), instead of json_format's first error in words.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from meshkit.errors import FieldViolation

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOATS = {FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE}
_FLOAT_WORDS = {"NaN", "Infinity", "-Infinity"}
# Messages with a JSON form of their own (a string, a number, any value): json_format
# checks them, and a failure is reported at the field that holds them.
WELL_KNOWN = {
    "google.protobuf.Any",
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "google.protobuf.FieldMask",
    "google.protobuf.Struct",
    "google.protobuf.Value",
    "google.protobuf.ListValue",
    "google.protobuf.NullValue",
    "google.protobuf.Empty",
    *(
        f"google.protobuf.{w}Value"
        for w in (
            "Double",
            "Float",
            "Int64",
            "UInt64",
            "Int32",
            "UInt32",
            "Bool",
            "String",
            "Bytes",
        )
    ),
}


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


def json_depth(text: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest, without parsing it (so before
    the parser, whose recursion a deep enough text exhausts). Brackets inside strings do
    not count; for a text that is not JSON the answer is a guess, and the parser says so."""
    brackets = _JSON_STRING.sub(b"", text).translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0)


def too_deep(limit: int) -> BadInput:
    return BadInput([FieldViolation("body", f"nests arrays/objects deeper than {limit} levels")])


class BadInput(Exception):
    """The request cannot become the RPC's request message; ``violations`` say why."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("; ".join(map(str, violations)))
        self.violations = violations


def field_by_name(descriptor: Descriptor, name: str) -> FieldDescriptor | None:
    """The field called ``name`` by its proto name or its JSON name."""
    return descriptor.fields_by_name.get(name) or descriptor.fields_by_camelcase_name.get(name)


def to_json(message: Message) -> dict[str, Any]:
    """A message as JSON: JSON names, fields without presence printed even when empty."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def parse(value: Any, message: Message, path: str = "") -> None:
    """Merge the JSON ``value`` into ``message``; raise BadInput naming each bad field.

    ``path`` is where ``value`` sits in the request (for the violations' field paths).
    """
    violations: list[FieldViolation] = []
    _check_message(value, message.DESCRIPTOR, path, violations)
    if violations:
        raise BadInput(violations)
    try:
        json_format.ParseDict(value, message)
    except json_format.ParseError as exc:  # a case the walk above does not foresee
        raise BadInput([FieldViolation(path or "body", _first_line(str(exc)))]) from exc


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else "is invalid"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _check_message(
    value: Any, descriptor: Descriptor, path: str, out: list[FieldViolation]
) -> None:
    if descriptor.full_name in WELL_KNOWN:
        _check_well_known(value, descriptor, path, out)
        return
    if not isinstance(value, dict):
        out.append(FieldViolation(path or "body", f"must be an object, not {_type_name(value)}"))
        return
    seen: dict[str, str] = {}
    for key, item in value.items():
        field = field_by_name(descriptor, key) if isinstance(key, str) else None
        if field is None:
            out.append(
                FieldViolation(_join(path, str(key)), f"is not a field of {descriptor.name}")
            )
            continue
        here = _join(path, field.name)
        if field.name in seen:
            out.append(FieldViolation(here, f"is given twice (as {seen[field.name]} and {key})"))
            continue
        seen[field.name] = key
        if item is None:  # null: the field's default
            continue
        if _is_map(field):
            _check_map(item, field, here, out)
        elif field.is_repeated:
            if not isinstance(item, list):
                out.append(FieldViolation(here, f"must be an array, not {_type_name(item)}"))
                continue
            for i, element in enumerate(item):
                _check_value(element, field, f"{here}[{i}]", out)
        else:
            _check_value(item, field, here, out)


def _is_map(field: FieldDescriptor) -> bool:
    return (
        field.type == FieldDescriptor.TYPE_MESSAGE
        and field.message_type.GetOptions().map_entry
        and field.is_repeated
    )


def _check_map(value: Any, field: FieldDescriptor, path: str, out: list[FieldViolation]) -> None:
    if not isinstance(value, dict):
        out.append(FieldViolation(path, f"must be an object, not {_type_name(value)}"))
        return
    key_field = field.message_type.fields_by_name["key"]
    value_field = field.message_type.fields_by_name["value"]
    for key, item in value.items():
        here = f"{path}[{key!r}]"
        if key_field.type != FieldDescriptor.TYPE_STRING:
            _check_value(key, key_field, here, out, text=True)
        if item is not None:
            _check_value(item, value_field, here, out)


def _check_value(
    value: Any, field: FieldDescriptor, path: str, out: list[FieldViolation], text: bool = False
) -> None:
    """One (non-repeated) value of ``field``; ``text``: it came as a string (path, query)."""
    t = field.type
    if t == FieldDescriptor.TYPE_MESSAGE or t == FieldDescriptor.TYPE_GROUP:
        _check_message(value, field.message_type, path, out)
    elif t == FieldDescriptor.TYPE_STRING:
        if not isinstance(value, str):
            out.append(FieldViolation(path, f"must be a string, not {_type_name(value)}"))
    elif t == FieldDescriptor.TYPE_BOOL:
        if text and value in ("true", "false"):
            return
        if not isinstance(value, bool):
            out.append(FieldViolation(path, f"must be true or false, not {_type_name(value)}"))
    elif t == FieldDescriptor.TYPE_BYTES:
        if not isinstance(value, str):
            out.append(FieldViolation(path, f"must be a base64 string, not {_type_name(value)}"))
            return
        try:
            base64.b64decode(value + "=" * (-len(value) % 4), altchars=_altchars(value))
        except (binascii.Error, ValueError):
            out.append(FieldViolation(path, "must be base64"))
    elif t == FieldDescriptor.TYPE_ENUM:
        _check_enum(value, field, path, out)
    elif t in _FLOATS:
        _check_float(value, path, out)
    else:
        _check_int(value, _INT_RANGES[t], path, out)


def _altchars(value: str) -> bytes | None:
    return b"-_" if ("-" in value or "_" in value) else None


def _check_enum(value: Any, field: FieldDescriptor, path: str, out: list[FieldViolation]) -> None:
    enum = field.enum_type
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        if value not in enum.values_by_name:
            out.append(FieldViolation(path, f"must be one of {', '.join(enum.values_by_name)}"))
        return
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        out.append(FieldViolation(path, f"must be a {enum.name} name, not {_type_name(value)}"))
        return
    if int(value) not in enum.values_by_number:
        out.append(FieldViolation(path, f"{value} is not a {enum.name} value"))


def _check_float(value: Any, path: str, out: list[FieldViolation]) -> None:
    if isinstance(value, bool):
        out.append(FieldViolation(path, "must be a number, not a boolean"))
        return
    if isinstance(value, (int, float)):
        return
    if isinstance(value, str):
        if value in _FLOAT_WORDS:
            return
        try:
            number = float(value)
        except ValueError:
            out.append(FieldViolation(path, f"must be a number, not {value!r}"))
            return
        if math.isnan(number) or math.isinf(number):
            out.append(FieldViolation(path, "must be a finite number, NaN, Infinity or -Infinity"))
        return
    out.append(FieldViolation(path, f"must be a number, not {_type_name(value)}"))


def _check_int(value: Any, bounds: tuple[int, int], path: str, out: list[FieldViolation]) -> None:
    low, high = bounds
    number: int
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        out.append(FieldViolation(path, f"must be an integer, not {_type_name(value)}"))
        return
    if isinstance(value, float):
        if not value.is_integer():
            out.append(FieldViolation(path, f"must be an integer, not {value}"))
            return
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip()) if value.strip() == value else int("x")
        except ValueError:
            out.append(FieldViolation(path, f"must be an integer, not {value!r}"))
            return
    else:
        number = value
    if not low <= number <= high:
        out.append(FieldViolation(path, f"must be between {low} and {high}"))


def _check_well_known(
    value: Any, descriptor: Descriptor, path: str, out: list[FieldViolation]
) -> None:
    from google.protobuf import symbol_database

    cls = symbol_database.Default().GetSymbol(descriptor.full_name)
    try:
        json_format.ParseDict(value, cls())
    except (json_format.ParseError, TypeError, ValueError) as exc:
        out.append(FieldViolation(path or "body", _first_line(str(exc))))


@dataclass(frozen=True)
class FieldPath:
    """A dotted path of fields from a request message: ``order.id``."""

    fields: tuple[FieldDescriptor, ...]

    @property
    def name(self) -> str:
        return ".".join(f.name for f in self.fields)

    @property
    def leaf(self) -> FieldDescriptor:
        return self.fields[-1]


def resolve(descriptor: Descriptor, dotted: str) -> FieldPath:
    """The fields ``dotted`` names from ``descriptor`` (proto or JSON names); KeyError if none."""
    fields = []
    current: Descriptor | None = descriptor
    for part in dotted.split("."):
        if current is None:
            raise KeyError(f"{dotted}: {fields[-1].name} is not a message")
        field = field_by_name(current, part)
        if field is None:
            raise KeyError(f"{dotted}: {current.name} has no field {part}")
        fields.append(field)
        current = field.message_type if field.type == FieldDescriptor.TYPE_MESSAGE else None
    return FieldPath(tuple(fields))


def nest(path: FieldPath, value: Any) -> dict[str, Any]:
    """``{"order": {"id": value}}`` for the path ``order.id`` (proto names)."""
    out: Any = value
    for field in reversed(path.fields):
        out = {field.name: out}
    return dict(out)


def text_value(field: FieldDescriptor, text: str, path: str) -> Any:
    """A path or query parameter's text as the JSON value of ``field``; BadInput if it can't be."""
    out: list[FieldViolation] = []
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name not in WELL_KNOWN:
            raise BadInput([FieldViolation(path, "is a message; set its fields one by one")])
        _check_well_known(text, field.message_type, path, out)
    else:
        _check_value(text, field, path, out, text=True)
    if out:
        raise BadInput(out)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return text == "true"
    return text
