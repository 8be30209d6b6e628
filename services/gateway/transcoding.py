"""REST/JSON ⇄ gRPC by the ``google.api.http`` annotations of the contracts (HttpRule).

Every method of every service in the generated ``shop`` packages that carries the option
(and each of its ``additional_bindings``) becomes a ``Binding``: an HTTP method, a path
template, a body rule and an optional ``response_body``. So a new annotated RPC is a new
route, with no change here.

The rules (google/api/http.proto):

* path templates: literals, ``*`` (one segment), ``**`` (any number, last only),
  variables ``{field.path}`` (one segment) or ``{field.path=seg/*/...}``, and a final
  ``:verb``. A single-segment variable is fully percent-decoded; a multi-segment one keeps
  ``%2F`` (reserved expansion).
* ``body: "*"``: the JSON body is the request message (path variables fill in the rest;
  no query parameters). ``body: "field"``: the body is that field; every other field not
  bound by the path may come as a query parameter. No body: every unbound field may come
  as a query parameter: ``?page_size=5``, nested ``?filter.status=PAID``, repeated
  ``?sku=a&sku=b``.
* ``response_body: "field"``: the HTTP response is that field of the response message.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import FieldDescriptor, FileDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from meshkit.errors import FieldViolation
from services.gateway.jsonmap import (
    BadInput,
    FieldPath,
    field_by_name,
    nest,
    parse,
    resolve,
    text_value,
    to_json,
)

_HTTP_METHODS = ("get", "put", "post", "delete", "patch")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class TemplateError(ValueError):
    """A path template that breaks the HttpRule grammar."""


@dataclass(frozen=True)
class Variable:
    field_path: str
    segments: tuple[str, ...]  # "*", "**" or literals

    @property
    def multi(self) -> bool:
        return len(self.segments) > 1 or "**" in self.segments


@dataclass(frozen=True)
class PathTemplate:
    """A parsed HttpRule path template, matched by one compiled regular expression."""

    text: str
    segments: tuple[str | Variable, ...]
    verb: str
    regex: re.Pattern[str]
    variables: tuple[Variable, ...]

    @classmethod
    def parse(cls, text: str) -> PathTemplate:
        if not text.startswith("/"):
            raise TemplateError(f"{text!r}: a template starts with /")
        body, verb = text[1:], ""
        # The verb is a ':' after the last '/', outside braces.
        depth, last_colon = 0, -1
        for i, ch in enumerate(body):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == ":" and depth == 0:
                last_colon = i
            elif ch == "/" and depth == 0:
                last_colon = -1
        if last_colon >= 0:
            body, verb = body[:last_colon], body[last_colon + 1 :]
            if not verb or "/" in verb:
                raise TemplateError(f"{text!r}: bad verb")
        segments: list[str | Variable] = []
        for raw in _split_outside_braces(body):
            if raw.startswith("{"):
                if not raw.endswith("}"):
                    raise TemplateError(f"{text!r}: unclosed variable {raw!r}")
                name, _, pattern = raw[1:-1].partition("=")
                if not _IDENT.match(name):
                    raise TemplateError(f"{text!r}: bad field path {name!r}")
                inner = tuple(pattern.split("/")) if pattern else ("*",)
                if any(not s or "{" in s for s in inner):
                    raise TemplateError(f"{text!r}: bad variable pattern {pattern!r}")
                segments.append(Variable(name, inner))
            elif not raw or "{" in raw or "}" in raw:
                raise TemplateError(f"{text!r}: bad segment {raw!r}")
            else:
                segments.append(raw)
        flat = [
            s for seg in segments for s in (seg.segments if isinstance(seg, Variable) else [seg])
        ]
        if "**" in flat[:-1]:
            raise TemplateError(f"{text!r}: ** may only be the last segment")
        variables = tuple(s for s in segments if isinstance(s, Variable))
        names = [v.field_path for v in variables]
        if len(set(names)) != len(names):
            raise TemplateError(f"{text!r}: a field is bound twice")
        return cls(text, tuple(segments), verb, _compile(segments, verb), variables)

    def match(self, path: str) -> dict[str, str] | None:
        """Field path → decoded value for a raw (still percent-encoded) request path."""
        m = self.regex.fullmatch(path)
        if m is None:
            return None
        out = {}
        for i, var in enumerate(self.variables):
            raw = m.group(f"v{i}")
            if var.multi:
                # Reserved expansion: decode all but the slash.
                out[var.field_path] = "/".join(
                    urllib.parse.unquote(p.replace("%2F", "%252F").replace("%2f", "%252f"))
                    for p in raw.split("/")
                )
            else:
                out[var.field_path] = urllib.parse.unquote(raw)
        return out

    @property
    def specificity(self) -> tuple[int, int, int]:
        """Sorts templates so that the most specific one is tried first."""
        literals = sum(
            1
            for s in self.segments
            for p in (s.segments if isinstance(s, Variable) else [s])
            if p not in ("*", "**")
        )
        multi = sum(1 for s in self.segments if isinstance(s, Variable) and s.multi) + sum(
            1 for s in self.segments if s == "**"
        )
        return (1 if self.verb else 0, literals, -multi)


def _split_outside_braces(body: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "/" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def _segment_regex(segment: str) -> str:
    if segment == "*":
        return r"[^/]+"
    if segment == "**":
        return r".*"
    return re.escape(segment)


def _compile(segments: Iterable[str | Variable], verb: str) -> re.Pattern[str]:
    parts = []
    i = 0
    for seg in segments:
        if isinstance(seg, Variable):
            inner = "/".join(_segment_regex(s) for s in seg.segments)
            parts.append(f"(?P<v{i}>{inner})")
            i += 1
        else:
            parts.append(_segment_regex(seg))
    pattern = "/" + "/".join(parts)
    if verb:
        pattern += ":" + re.escape(verb)
    return re.compile(pattern)


@dataclass(frozen=True)
class Binding:
    """One HTTP route of one RPC."""

    method: MethodDescriptor
    http_method: str  # GET, POST, ...
    template: PathTemplate
    body: str  # "", "*" or a top-level field name
    response_body: str
    path_fields: tuple[FieldPath, ...] = field(default=())

    @property
    def rpc(self) -> str:
        """``/shop.order.v1.OrderService/GetOrder``: the gRPC method path."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def server_streaming(self) -> bool:
        return bool(self.method.server_streaming)

    def request_class(self) -> type[Message]:
        return GetMessageClass(self.method.input_type)

    def response_class(self) -> type[Message]:
        return GetMessageClass(self.method.output_type)

    def query_allowed(self) -> bool:
        return self.body != "*"

    def build_request(
        self, path_values: dict[str, str], query: list[tuple[str, str]], body: bytes | None
    ) -> Message:
        """The request message from the path variables, query parameters and JSON body.

        Raises BadInput naming the offending field (path, query parameter or body field).
        """
        request = self.request_class()()
        descriptor = request.DESCRIPTOR
        if self.body:
            value = _json_body(body)
            if self.body == "*":
                parse(value, request)
            else:
                body_field = descriptor.fields_by_name[self.body]
                if value is not None:
                    parse({body_field.name: value}, request)
        elif body and body.strip():
            raise BadInput(
                [FieldViolation("body", f"{self.http_method} {self.template.text} takes no body")]
            )
        bound = {p.name for p in self.path_fields}
        if self.body and self.body != "*":
            bound.add(self.body)
        if query:
            if not self.query_allowed():
                names = ", ".join(sorted({k for k, _ in query}))
                raise BadInput(
                    [
                        FieldViolation(
                            names,
                            "query parameters are not accepted here; send every field in the body",
                        )
                    ]
                )
            _merge_query(request, query, bound)
        for path in self.path_fields:
            value = path_values[path.name]
            json_value = text_value(path.leaf, value, path.name)
            parse(nest(path, json_value), request)
        return request

    def response_json(self, response: Message) -> Any:
        """The HTTP response body: the message, or its ``response_body`` field."""
        if not self.response_body:
            return to_json(response)
        whole = to_json(response)
        f = response.DESCRIPTOR.fields_by_name[self.response_body]
        return whole.get(f.json_name)


def _json_body(body: bytes | None) -> Any:
    if body is None or not body.strip():
        raise BadInput([FieldViolation("body", "is required (a JSON object)")])
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput([FieldViolation("body", f"is not valid JSON: {exc}")]) from exc
    except RecursionError as exc:  # the edge's depth limit (routes.LimitBody) comes first
        raise BadInput([FieldViolation("body", "nests arrays/objects too deep")]) from exc


def _merge_query(request: Message, query: list[tuple[str, str]], bound: set[str]) -> None:
    """Query parameters into ``request``: dotted field paths, repeated ones given repeatedly."""
    violations: list[FieldViolation] = []
    grouped: dict[str, tuple[FieldPath, list[str]]] = {}
    for key, value in query:
        try:
            path = resolve(request.DESCRIPTOR, key)
        except KeyError:
            violations.append(FieldViolation(key, "is not a field of the request"))
            continue
        if path.name in bound or any(path.name.startswith(b + ".") for b in bound):
            violations.append(
                FieldViolation(key, "is bound by the path or body; not a query parameter")
            )
            continue
        if any(f.is_repeated for f in path.fields[:-1]):
            violations.append(FieldViolation(key, "is inside a repeated field; send it in a body"))
            continue
        grouped.setdefault(path.name, (path, []))[1].append(value)
    for name, (path, values) in grouped.items():
        leaf = path.leaf
        repeated = leaf.is_repeated
        if not repeated and len(values) > 1:
            violations.append(FieldViolation(name, "is given more than once"))
            continue
        try:
            if repeated:
                converted: Any = [text_value(leaf, v, f"{name}[{i}]") for i, v in enumerate(values)]
            else:
                converted = text_value(leaf, values[0], name)
            parse(nest(path, converted), request)
        except BadInput as exc:
            violations.extend(exc.violations)
    if violations:
        raise BadInput(violations)


def http_rule(method: MethodDescriptor) -> http_pb2.HttpRule | None:
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return None
    return options.Extensions[annotations_pb2.http]


def bindings_of(method: MethodDescriptor) -> list[Binding]:
    """The routes of one method: its HttpRule and the rule's additional bindings."""
    rule = http_rule(method)
    if rule is None:
        return []
    return [_binding(method, r) for r in [rule, *rule.additional_bindings]]


def _binding(method: MethodDescriptor, rule: http_pb2.HttpRule) -> Binding:
    kind = rule.WhichOneof("pattern")
    if kind is None:
        raise TemplateError(f"{method.full_name}: HttpRule without a pattern")
    if kind == "custom":
        verb, text = rule.custom.kind.upper(), rule.custom.path
    else:
        verb, text = kind.upper(), getattr(rule, kind)
    template = PathTemplate.parse(text)
    descriptor = method.input_type
    paths = []
    for var in template.variables:
        try:
            path = resolve(descriptor, var.field_path)
        except KeyError as exc:
            raise TemplateError(f"{method.full_name}: {exc}") from exc
        if path.leaf.is_repeated or (path.leaf.type == FieldDescriptor.TYPE_MESSAGE):
            raise TemplateError(f"{method.full_name}: {var.field_path} must be a scalar field")
        paths.append(path)
    if rule.body not in ("", "*") and rule.body not in descriptor.fields_by_name:
        raise TemplateError(f"{method.full_name}: body {rule.body!r} is not a field")
    out = method.output_type
    if rule.response_body and rule.response_body not in out.fields_by_name:
        raise TemplateError(f"{method.full_name}: response_body {rule.response_body!r}")
    return Binding(method, verb, template, rule.body, rule.response_body, tuple(paths))


def annotated_files(package: str = "shop") -> Iterator[FileDescriptor]:
    """The file descriptors of every generated ``*_pb2`` module under ``package``."""
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if info.name.endswith("_pb2"):
            yield importlib.import_module(info.name).DESCRIPTOR


def discover(files: Iterable[FileDescriptor]) -> list[Binding]:
    """Every binding of every annotated method in ``files``, most specific template first."""
    out = []
    for file in files:
        for service in file.services_by_name.values():
            for method in service.methods:
                out.extend(bindings_of(method))
    out.sort(key=lambda b: b.template.specificity, reverse=True)
    return out


@dataclass
class Router:
    """Finds the binding of a request: (binding, path values), or why there is none."""

    bindings: list[Binding]

    def match(self, http_method: str, raw_path: str) -> tuple[Binding, dict[str, str]] | list[str]:
        """The binding and its path values, or the methods the path allows (maybe none)."""
        allowed = []
        verb_matched = False
        # Bindings are sorted with verbs first: once a template with a verb matches the
        # path, the last segment's ":verb" is a verb, not part of a variable.
        for b in self.bindings:
            if verb_matched and not b.template.verb:
                break
            values = b.template.match(raw_path)
            if values is None:
                continue
            if b.http_method == http_method:
                return b, values
            allowed.append(b.http_method)
            verb_matched = verb_matched or bool(b.template.verb)
        return sorted(set(allowed))


def field_json_name(message: Message, name: str) -> str:
    f = field_by_name(message.DESCRIPTOR, name)
    return f.json_name if f else name
