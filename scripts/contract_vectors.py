"""Wire-compatibility test vectors of the contracts: contracts/vectors/vectors.json.

Python encodes canonical messages; the Go and Node programs (clients/go/cmd/wire-vectors,
clients/node/src/wire-vectors.ts) decode and re-encode each one, and
tests/contracts/test_wire_vectors.py checks that the bytes come back unchanged and that
Python reads them back as the same message.

Two kinds of vector, each a base64 ``wire`` encoding plus its ``text`` (text format):

* ``current``: every message type of protos/ (gen/python), encoded by the generated
  code, in three variants: ``full`` (every field set, max int64/int32, the highest enum
  value, unicode strings, two repeated elements, map entries, valid extreme timestamps,
  an Any holding a Money), ``min`` (min int64/int32, whose varints take ten bytes, control
  characters, one repeated element) and ``zero`` (scalars at zero, repeated fields empty,
  message fields present but empty). Readers use the code generated from protos/.
* ``next-release``: every message type of the last release (contracts/baseline/), as a
  writer of the next release would send it: each message has a field the release does
  not know (``added_in_next_release``, the next free number) and each enum a value it does
  not know. Readers use descriptors of the release only: the unknown fields and values
  must survive their round trip (old reader, new writer).

``--check`` compares with the committed file instead of writing it (exit 1 when stale).
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

ROOT = Path(__file__).resolve().parent.parent
GEN_PYTHON = ROOT / "gen" / "python"
BASELINE = ROOT / "contracts" / "baseline" / "image.binpb"
VECTORS = ROOT / "contracts" / "vectors" / "vectors.json"

VARIANTS = ("full", "min", "zero")
ADDED_FIELD = "added_in_next_release"
ADDED_ENUM_VALUE = "ADDED_IN_NEXT_RELEASE"
MAX_DEPTH = 4

INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (1, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (1, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (1, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (1, 2**64 - 1),
}
# 9999-12-31T23:59:59.999999999Z and 0001-01-01T00:00:00Z, the range of a valid Timestamp.
TIMESTAMPS = {"full": (253402300799, 999_999_999), "min": (-62135596800, 0)}


def _string(field: FieldDescriptor, variant: str, index: int) -> str:
    if variant == "full":
        return f"{field.name}#{index}: ü€世🚀👩‍💻"  # 2-, 3- and 4-byte UTF-8, a ZWJ sequence
    return f"\x00\t\n\"'\\ \u202e{field.name}"  # NUL, escapes, a right-to-left override


def _scalar(field: FieldDescriptor, variant: str, index: int = 0) -> Any:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return _string(field, variant, index)
    if t == FieldDescriptor.TYPE_BYTES:
        return bytes(range(256)) if variant == "full" else b"\x00"
    if t == FieldDescriptor.TYPE_BOOL:
        return True
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return 1.5e300 if variant == "full" and t == FieldDescriptor.TYPE_DOUBLE else -0.25
    if t == FieldDescriptor.TYPE_ENUM:
        numbers = sorted(v.number for v in field.enum_type.values if v.number != 0)
        return numbers[-1] if variant == "full" else numbers[0]
    low, high = INT_RANGES[t]
    return high if variant == "full" else low


def fill(msg: Message, variant: str, depth: int = 0, index: int = 0) -> Message:
    """Set every field of ``msg`` for ``variant`` (see the module docstring)."""
    desc = msg.DESCRIPTOR
    if desc.full_name == "google.protobuf.Timestamp":
        if variant in TIMESTAMPS:
            msg.seconds, msg.nanos = TIMESTAMPS[variant]  # type: ignore[attr-defined]
        return msg
    if desc.full_name == "google.protobuf.Any":
        if variant != "zero":
            from shop.common.v1 import address_pb2, money_pb2

            inner = money_pb2.Money() if variant == "full" else address_pb2.Address()
            msg.Pack(fill(inner, variant, depth + 1, index))  # type: ignore[attr-defined]
        return msg
    for field in desc.fields:
        if _is_map(field):
            _fill_map(msg, field, variant)
        elif field.is_repeated:
            count = {"full": 2, "min": 1, "zero": 0}[variant]
            container = getattr(msg, field.name)
            for i in range(count):
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    fill(container.add(), variant, depth + 1, index + i)
                else:
                    container.append(_scalar(field, variant, index + i))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            sub = getattr(msg, field.name)
            sub.SetInParent()
            if variant != "zero" and depth < MAX_DEPTH:
                fill(sub, variant, depth + 1, index)
        elif variant != "zero":
            setattr(msg, field.name, _scalar(field, variant, index))
    return msg


def _is_map(field: FieldDescriptor) -> bool:
    return bool(
        field.type == FieldDescriptor.TYPE_MESSAGE
        and field.message_type.GetOptions().map_entry
        and field.is_repeated
    )


def _fill_map(msg: Message, field: FieldDescriptor, variant: str) -> None:
    container = getattr(msg, field.name)
    key_f = field.message_type.fields_by_name["key"]
    value_f = field.message_type.fields_by_name["value"]
    if variant == "zero" or value_f.type == FieldDescriptor.TYPE_MESSAGE:
        return
    entries = (
        {
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "tracestate": "vendör=ü",
        }
        if variant == "full"
        else {"ü": "\x00"}
    )
    for i, (k, v) in enumerate(entries.items()):
        key = k if key_f.type == FieldDescriptor.TYPE_STRING else _scalar(key_f, variant, i)
        container[key] = (
            v if value_f.type == FieldDescriptor.TYPE_STRING else _scalar(value_f, variant, i)
        )


def current_types() -> list[type[Message]]:
    """Every message class of gen/python/shop, sorted by full name."""
    if str(GEN_PYTHON) not in sys.path:
        sys.path.insert(0, str(GEN_PYTHON))
    classes: dict[str, type[Message]] = {}
    for path in sorted(GEN_PYTHON.glob("shop/**/*_pb2.py")):
        module = importlib.import_module(
            ".".join(path.relative_to(GEN_PYTHON).with_suffix("").parts)
        )
        for desc in module.DESCRIPTOR.message_types_by_name.values():
            classes[desc.full_name] = message_factory.GetMessageClass(desc)
    return [classes[name] for name in sorted(classes)]


def evolved_pool(baseline: descriptor_pb2.FileDescriptorSet) -> descriptor_pool.DescriptorPool:
    """The release's descriptors as the next release might have them: one more field in
    every message of shop.*, one more value in every enum."""
    pool = descriptor_pool.DescriptorPool()
    for original in baseline.file:
        file = descriptor_pb2.FileDescriptorProto()
        file.CopyFrom(original)
        if file.package.startswith("shop."):
            for message in file.message_type:
                _evolve_message(message)
            for enum in file.enum_type:
                _evolve_enum(enum)
        pool.Add(file)
    return pool


def _evolve_message(message: descriptor_pb2.DescriptorProto) -> None:
    if message.options.map_entry:
        return
    number = max((f.number for f in message.field), default=0) + 1
    message.field.add(
        name=ADDED_FIELD,
        number=number,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        json_name="addedInNextRelease",
    )
    for nested in message.nested_type:
        _evolve_message(nested)
    for enum in message.enum_type:
        _evolve_enum(enum)


def _evolve_enum(enum: descriptor_pb2.EnumDescriptorProto) -> None:
    prefix = enum.value[0].name.removesuffix("UNSPECIFIED")
    number = max(v.number for v in enum.value) + 1
    enum.value.add(name=prefix + ADDED_ENUM_VALUE, number=number)


def baseline_types(
    baseline: descriptor_pb2.FileDescriptorSet, pool: descriptor_pool.DescriptorPool
) -> Iterator[Descriptor]:
    names = sorted(
        f"{file.package}.{m.name}"
        for file in baseline.file
        if file.package.startswith("shop.")
        for m in file.message_type
    )
    for name in names:
        yield pool.FindMessageTypeByName(name)


def _vector(msg: Message, reader: str, variant: str) -> dict[str, str]:
    name = msg.DESCRIPTOR.full_name
    return {
        "id": f"{name}/{variant}",
        "type": name,
        "variant": variant,
        "reader": reader,
        "wire": base64.b64encode(msg.SerializeToString(deterministic=True)).decode(),
        "text": text_format.MessageToString(msg, as_utf8=True),
    }


def build(baseline_path: Path = BASELINE) -> dict[str, Any]:
    vectors = [
        _vector(fill(cls(), variant), "current", variant)
        for cls in current_types()
        for variant in VARIANTS
    ]
    baseline = descriptor_pb2.FileDescriptorSet.FromString(baseline_path.read_bytes())
    pool = evolved_pool(baseline)
    for desc in baseline_types(baseline, pool):
        msg = message_factory.GetMessageClass(desc)()
        vectors.append(_vector(fill(msg, "full"), "baseline", "next-release"))
    return {
        "about": "Generated by scripts/contract_vectors.py (make clients); see its docstring.",
        "baseline": str(baseline_path.relative_to(ROOT)),
        "vectors": vectors,
    }


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=VECTORS)
    parser.add_argument("--check", action="store_true", help="fail if --out is stale")
    args = parser.parse_args()
    text = render(build())
    if args.check:
        if not args.out.exists() or args.out.read_text() != text:
            sys.exit(f"{args.out} is stale: run `make clients`")
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"contract_vectors: {len(json.loads(text)['vectors'])} vectors -> {args.out}")


if __name__ == "__main__":
    main()
