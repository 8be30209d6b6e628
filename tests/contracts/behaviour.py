"""Consumer-driven behaviour contracts (contracts/consumers/): load, check, replay.

A contract is written by the consumer: what it sends and which fields of the answer (or of
an event) it relies on. The provider replays it in its tests, so a provider change that
breaks a consumer fails there, not in production. The format is in contracts/README.md:

* ``<consumer>/<provider>.json``: ``interactions``, each a ``call`` with a ``request``
  (proto3 JSON, the protos' field names) and what to ``expect``: a status ``code``, the
  ``field_violations`` of an INVALID_ARGUMENT, and ``fields`` with a matcher each. Values
  can be ``remember``-ed and used later as ``${name}``; ``poll`` repeats a call until
  fields match (as a client waiting for a final status does); ``hold_events`` keeps the
  broker's deliveries back from that interaction until one without it.
* ``<consumer>/events.json``: the ``events`` it consumes, their ``producer``, and the
  fields it ``relies_on``, with the same matchers.

Paths are field names joined by dots; ``name[2]`` is an element of a repeated field,
``name[]`` every element. Matchers: ``"set"`` (not the default value: non-empty string,
non-zero number, a present message, a non-empty list), ``"any"`` (relied on, whatever its
value), ``{"equals": v}``, ``{"in": [v, ...]}``, ``{"matches": regex}``; values are in proto3
JSON form (enums by name, 64-bit integers as strings, messages as objects).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import pkgutil
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.descriptor_pool import Default as default_pool
from google.protobuf.message import Message

from meshkit.testing import Answer
from meshkit.testing import App as Shop

CONTRACTS = Path(__file__).resolve().parent.parent.parent / "contracts" / "consumers"
_SEGMENT = re.compile(r"(?P<name>\w+)(?:\[(?P<index>\d*)\])?")
_VAR = re.compile(r"\$\{(\w+)\}")
_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}


class PathError(ValueError):
    pass


@dataclass(frozen=True)
class Contract:
    path: Path
    data: dict[str, Any]

    @property
    def consumer(self) -> str:
        return str(self.data["consumer"])

    @property
    def id(self) -> str:
        return f"{self.path.stem}<-{self.consumer}"


def rpc_contracts() -> list[Contract]:
    return [
        Contract(p, json.loads(p.read_text()))
        for p in sorted(CONTRACTS.glob("*/*.json"))
        if p.name != "events.json"
    ]


def event_contracts() -> list[Contract]:
    return [Contract(p, json.loads(p.read_text())) for p in sorted(CONTRACTS.glob("*/events.json"))]


def _load_protos() -> None:
    """Import every generated module of shop/, so the default pool knows every type."""
    import shop

    for module in pkgutil.walk_packages(shop.__path__, "shop."):
        if module.name.endswith("_pb2"):
            importlib.import_module(module.name)


_load_protos()


def message_class(full_name: str) -> type[Message]:
    return message_factory.GetMessageClass(default_pool().FindMessageTypeByName(full_name))


def method_types(call: str) -> tuple[type[Message], type[Message]]:
    """Request and response classes of ``package.Service/Method``."""
    service, method = call.strip("/").rsplit("/", 1)
    try:
        m = default_pool().FindServiceByName(service).methods_by_name[method]
    except KeyError as err:
        raise PathError(f"{call}: no such method in protos/") from err
    return message_class(m.input_type.full_name), message_class(m.output_type.full_name)


# Paths and matchers


def _segments(path: str) -> list[tuple[str, str | None]]:
    out = []
    for part in path.split("."):
        m = _SEGMENT.fullmatch(part)
        if not m:
            raise PathError(f"{path!r}: bad segment {part!r}")
        out.append((m["name"], m["index"]))
    return out


def check_path(descriptor: Descriptor, path: str) -> None:
    """Raises PathError unless ``path`` names fields of ``descriptor`` (the contract's view
    of the schema still holds)."""
    segments = _segments(path)
    for i, (name, index) in enumerate(segments):
        field = descriptor.fields_by_name.get(name)
        if field is None:
            raise PathError(f"{path!r}: {descriptor.full_name} has no field {name!r}")
        if index is not None and not field.is_repeated:
            raise PathError(f"{path!r}: {name} is not repeated")
        if i < len(segments) - 1:
            if field.type != FieldDescriptor.TYPE_MESSAGE:
                raise PathError(f"{path!r}: {name} is not a message")
            if field.is_repeated and index is None:
                raise PathError(f"{path!r}: say {name}[i] or {name}[] to go into a list")
            descriptor = field.message_type


@dataclass(frozen=True)
class Leaf:
    field: FieldDescriptor
    value: Any  # a value, an element, or the whole list (``is_list``)
    present: bool
    is_list: bool = False


def resolve(msg: Message, path: str) -> list[Leaf]:
    """The values ``path`` reaches in ``msg``: one, or one per element for ``name[]``; none
    when a message or element on the way is absent."""
    check_path(msg.DESCRIPTOR, path)
    current: list[Message] = [msg]
    segments = _segments(path)
    for i, (name, index) in enumerate(segments):
        last = i == len(segments) - 1
        field = current[0].DESCRIPTOR.fields_by_name[name] if current else None
        nxt: list[Any] = []
        leaves: list[Leaf] = []
        for m in current:
            assert field is not None
            value = getattr(m, name)
            if field.is_repeated and index is not None:
                items = list(value) if index == "" else list(value)[int(index) : int(index) + 1]
                if last:
                    leaves.extend(Leaf(field, v, _present(field, v, True)) for v in items)
                nxt.extend(items)
            elif last:
                if field.is_repeated:
                    leaves.append(Leaf(field, value, len(value) > 0, is_list=True))
                else:
                    leaves.append(Leaf(field, value, _has(m, field)))
            elif m.HasField(name):
                nxt.append(value)
        if last:
            return leaves
        current = nxt
    return []


def _has(msg: Message, field: FieldDescriptor) -> bool:
    if field.type == FieldDescriptor.TYPE_MESSAGE or field.has_presence:
        return msg.HasField(field.name)
    return _present(field, getattr(msg, field.name), False)


def _present(field: FieldDescriptor, value: Any, element: bool) -> bool:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return element or value.ByteSize() > 0
    return bool(value)


def json_value(leaf: Leaf) -> Any:
    if leaf.is_list:
        return [_json_scalar(leaf.field, v) for v in leaf.value]
    return _json_scalar(leaf.field, leaf.value)


def _json_scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    if field.type == FieldDescriptor.TYPE_ENUM:
        named = field.enum_type.values_by_number.get(value)
        return named.name if named else value
    if field.type in _INT64:
        return str(value)
    return value


def substitute(value: Any, variables: dict[str, Any]) -> Any:
    """``${name}`` replaced by a remembered value, in strings, lists and objects."""
    if isinstance(value, str):
        whole = _VAR.fullmatch(value)
        if whole:
            return variables[whole[1]]
        return _VAR.sub(lambda m: str(variables[m[1]]), value)
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


def mismatch(msg: Message, path: str, matcher: Any, variables: dict[str, Any]) -> str | None:
    """Why ``msg`` does not satisfy ``matcher`` at ``path``, or None if it does."""
    leaves = resolve(msg, path)
    if matcher == "any":
        return None
    if not leaves:
        return f"{path}: absent"
    for leaf in leaves:
        got = json_value(leaf)
        if matcher == "set":
            if not leaf.present:
                return f"{path}: not set"
            continue
        if not isinstance(matcher, dict) or len(matcher) != 1:
            raise PathError(f"{path}: unknown matcher {matcher!r}")
        ((kind, want),) = matcher.items()
        want = substitute(want, variables)
        if kind == "equals" and got != want:
            return f"{path}: {got!r}, expected {want!r}"
        if kind == "in" and got not in want:
            return f"{path}: {got!r}, expected one of {want!r}"
        if kind == "matches" and not re.search(want, str(got)):
            return f"{path}: {got!r} does not match {want!r}"
        if kind not in ("equals", "in", "matches"):
            raise PathError(f"{path}: unknown matcher {kind!r}")
    return None


# Static checks: the contract still fits the schema of protos/


def check_rpc_contract(contract: Contract) -> list[str]:
    problems = []
    for interaction in contract.data["interactions"]:
        where = f"{interaction['name']!r}"
        try:
            request_cls, response_cls = method_types(interaction["call"])
            placeholders = substitute(interaction["request"], _AnyVariable())
            json_format.ParseDict(placeholders, request_cls())
            paths = {**interaction["expect"].get("fields", {})}
            paths.update(interaction.get("poll", {}).get("until", {}))
            for path in [*paths, *interaction.get("remember", {}).values()]:
                check_path(response_cls.DESCRIPTOR, path)
        except (PathError, json_format.ParseError) as err:
            problems.append(f"{where}: {err}")
    return problems


class _AnyVariable(dict[str, Any]):
    """Variables for static checks: every ``${name}`` is some string."""

    def __missing__(self, key: str) -> str:
        return f"<{key}>"


def check_event_contract(contract: Contract) -> list[str]:
    problems = []
    for entry in contract.data["events"]:
        try:
            descriptor = message_class(entry["event"]).DESCRIPTOR
            for path in entry["relies_on"]:
                check_path(descriptor, path)
        except (KeyError, PathError) as err:
            problems.append(f"{entry['event']}: {err}")
    return problems


# Replay against the provider


async def replay(contract: Contract, shop: Shop) -> list[str]:
    """Every interaction of ``contract`` in order against ``shop``; what did not hold."""
    variables: dict[str, Any] = {}
    problems: list[str] = []
    holding = False
    try:
        for interaction in contract.data["interactions"]:
            hold = bool(interaction.get("hold_events"))
            if hold and not holding:
                await shop.settle()
                shop.pause()
            elif holding and not hold:
                shop.resume()
            holding = hold
            answer = await _call(shop, interaction, variables)
            found = _verify(answer, interaction["expect"], variables)
            problems.extend(f"{interaction['name']!r}: {p}" for p in found)
            if found:
                break  # later interactions build on this one
            for name, path in interaction.get("remember", {}).items():
                assert answer.response is not None
                variables[name] = json_value(resolve(answer.response, path)[0])
    finally:
        if holding:
            shop.resume()
    return problems


async def _call(shop: Shop, interaction: dict[str, Any], variables: dict[str, Any]) -> Answer:
    request_cls, _ = method_types(interaction["call"])
    request = json_format.ParseDict(substitute(interaction["request"], variables), request_cls())
    poll = interaction.get("poll")
    deadline = time.monotonic() + (poll["within_ms"] / 1000 if poll else 0)
    while True:
        answer = await shop.call(interaction["call"], request)
        if not poll or time.monotonic() > deadline:
            return answer
        if answer.response is not None and not any(
            mismatch(answer.response, path, m, variables) for path, m in poll["until"].items()
        ):
            return answer
        await asyncio.sleep(poll["every_ms"] / 1000)


def _verify(answer: Answer, expect: dict[str, Any], variables: dict[str, Any]) -> list[str]:
    if answer.code != expect["code"]:
        return [f"status {answer.code} ({answer.message}), expected {expect['code']}"]
    problems = []
    missing = set(expect.get("field_violations", ())) - set(answer.field_violations)
    if missing:
        problems.append(f"field violations {list(answer.field_violations)} lack {sorted(missing)}")
    for path, matcher in expect.get("fields", {}).items():
        assert answer.response is not None
        if why := mismatch(answer.response, path, matcher, variables):
            problems.append(why)
    return problems
