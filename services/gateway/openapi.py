"""OpenAPI 3 of the REST routes, generated from the same descriptors the routes come from.

Schemas follow protobuf's JSON mapping as the gateway speaks it: JSON (lowerCamelCase)
names, enums by name, 64-bit integers as strings, Timestamps as RFC 3339 strings. Request
bodies and query parameters leave out the fields the path binds. Errors are
``google.rpc.Status``. Security: OAuth2 client credentials at the issuer, one scope per
operation.
"""

from __future__ import annotations

import html
import json
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from services.gateway.jsonmap import WELL_KNOWN
from services.gateway.status import HTTP_STATUS
from services.gateway.transcoding import Binding

_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64", "pattern": r"^-?\d+$"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64", "pattern": r"^-?\d+$"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64", "pattern": r"^-?\d+$"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64", "pattern": r"^\d+$"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64", "pattern": r"^\d+$"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}
_INT32_BOUNDS = {"minimum": -(2**31), "maximum": 2**31 - 1}
_WELL_KNOWN_SCHEMAS: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BytesValue": {"type": "string", "format": "byte"},
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32"},
    "google.protobuf.UInt32Value": {"type": "integer", "format": "int64", "minimum": 0},
    "google.protobuf.Int64Value": {"type": "string", "format": "int64"},
    "google.protobuf.UInt64Value": {"type": "string", "format": "uint64"},
    "google.protobuf.DoubleValue": {"type": "number"},
    "google.protobuf.FloatValue": {"type": "number"},
}
STATUS_SCHEMA = {
    "type": "object",
    "description": "google.rpc.Status: a gRPC status code, a message and typed details.",
    "properties": {
        "code": {"type": "integer", "format": "int32"},
        "message": {"type": "string"},
        "details": {"type": "array", "items": _WELL_KNOWN_SCHEMAS["google.protobuf.Any"]},
    },
}
_ERRORS = {
    "400": "Bad input: the body, a path or query parameter (google.rpc.BadRequest names it)",
    "401": "No token, or an invalid, expired, wrong-issuer or wrong-audience token",
    "403": "The token lacks the scope this operation needs",
    "404": "Not found",
    "413": "The request body is too large",
    "429": "Rate limit of the client exceeded (see Retry-After)",
}


class _Schemas:
    """Component schemas of every message reachable from the operations."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def ref(self, descriptor: Descriptor) -> dict[str, Any]:
        if descriptor.full_name in _WELL_KNOWN_SCHEMAS:
            return dict(_WELL_KNOWN_SCHEMAS[descriptor.full_name])
        name = descriptor.full_name
        if name not in self.components:
            self.components[name] = {}  # placeholder: recursion ends here
            self.components[name] = self.message(descriptor)
        return {"$ref": f"#/components/schemas/{name}"}

    def message(self, descriptor: Descriptor, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
        props = {f.json_name: self.field(f) for f in descriptor.fields if f.name not in skip}
        return {"type": "object", "properties": props, "additionalProperties": False}

    def field(self, f: FieldDescriptor) -> dict[str, Any]:
        if f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type.GetOptions().map_entry:
            value = f.message_type.fields_by_name["value"]
            return {"type": "object", "additionalProperties": self.single(value)}
        one = self.single(f)
        if f.is_repeated:
            return {"type": "array", "items": one}
        return one

    def single(self, f: FieldDescriptor) -> dict[str, Any]:
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            return self.ref(f.message_type)
        if f.type == FieldDescriptor.TYPE_ENUM:
            return enum_schema(f.enum_type)
        schema = dict(_SCALARS[f.type])
        if schema.get("format") == "int32":
            schema.update(_INT32_BOUNDS)
        if f.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
            schema["maximum"] = 2**32 - 1
        return schema


def enum_schema(enum: EnumDescriptor) -> dict[str, Any]:
    return {"type": "string", "enum": list(enum.values_by_name)}


def _query_parameters(
    schemas: _Schemas, descriptor: Descriptor, prefix: str, skip: set[str], depth: int = 0
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in descriptor.fields:
        name = f"{prefix}{f.name}"
        if name in skip:
            continue
        repeated = f.is_repeated
        if f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type.full_name not in WELL_KNOWN:
            if repeated or depth >= 2:
                continue
            out += _query_parameters(schemas, f.message_type, f"{name}.", skip, depth + 1)
            continue
        if f.type == FieldDescriptor.TYPE_MESSAGE and repeated:
            continue
        schema = schemas.single(f)
        if repeated:
            schema = {"type": "array", "items": schema}
        out.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": schema,
                **({"style": "form", "explode": True} if repeated else {}),
            }
        )
    return out


def document(
    bindings: list[Binding], scopes: dict[str, str], issuer: str, title: str = "meshkit-shop API"
) -> dict[str, Any]:
    """The OpenAPI 3.0 document of ``bindings`` (only those with a scope are served)."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    all_scopes: dict[str, str] = {}
    for b in bindings:
        scope = scopes.get(b.method.full_name)
        if scope is None:
            continue
        all_scopes[scope] = f"{scope.split(':')[-1]} {scope.split(':')[0]}"
        path = _openapi_path(b)
        op: dict[str, Any] = {
            "operationId": f"{b.method.containing_service.name}_{b.method.name}"
            + (
                f"_{len(paths.get(path, {}))}"
                if path in paths and b.http_method.lower() in paths[path]
                else ""
            ),
            "summary": f"{b.method.containing_service.full_name}.{b.method.name}",
            "tags": [b.method.containing_service.full_name],
            "security": [{"oauth2": [scope]}],
            "parameters": [],
        }
        for p in b.path_fields:
            op["parameters"].append(
                {"name": p.name, "in": "path", "required": True, "schema": schemas.single(p.leaf)}
            )
        bound = {p.name for p in b.path_fields}
        if b.body == "*":
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": schemas.message(
                            b.method.input_type, frozenset(n for n in bound if "." not in n)
                        )
                    }
                },
            }
        elif b.body:
            f = b.method.input_type.fields_by_name[b.body]
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schemas.field(f)}},
            }
        if b.body != "*":
            skip = bound | ({b.body} if b.body else set())
            op["parameters"] += _query_parameters(schemas, b.method.input_type, "", skip)
        op["parameters"].append(
            {
                "name": "Grpc-Timeout",
                "in": "header",
                "required": False,
                "description": "Time budget of the request, e.g. 5S or 500m (gRPC's format)",
                "schema": {"type": "string", "pattern": r"^\d{1,8}[HMSmun]$"},
            }
        )
        out = b.method.output_type
        result = (
            schemas.field(out.fields_by_name[b.response_body])
            if b.response_body
            else schemas.ref(out)
        )
        if b.server_streaming:
            content = {
                "application/x-ndjson": {
                    "schema": {
                        "type": "object",
                        "description": "one line per message: {result} or, last, {error}",
                        "properties": {
                            "result": result,
                            "error": {"$ref": "#/components/schemas/google.rpc.Status"},
                        },
                    }
                },
                "text/event-stream": {
                    "schema": {
                        "type": "string",
                        "description": "Server-Sent Events: each message as `data:` JSON; "
                        "`event: error` with a google.rpc.Status; `event: end`. The same "
                        "path also accepts a WebSocket upgrade.",
                    }
                },
            }
            op["description"] = "A server stream: NDJSON, Server-Sent Events or a WebSocket."
        else:
            content = {"application/json": {"schema": result}}
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/google.rpc.Status"}}}
        op["responses"] = {
            "200": {"description": "OK", "content": content},
            **{
                code: {"description": text, "content": error}
                for code, text in _ERRORS.items()
                if code != "413" or b.body
            },
            "default": {"description": "Any other error (google.rpc.Status)", "content": error},
        }
        paths.setdefault(path, {})[b.http_method.lower()] = op
    components = dict(sorted(schemas.components.items()))
    components["google.rpc.Status"] = STATUS_SCHEMA
    return {
        "openapi": "3.0.3",
        "info": {
            "title": title,
            "version": "v1",
            "description": "REST/JSON routes of the shop's gRPC services, transcoded by the "
            "API gateway from the google.api.http annotations of the contracts.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "oauth2": {
                    "type": "oauth2",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": f"{issuer}/oauth2/token",
                            "scopes": dict(sorted(all_scopes.items())),
                        }
                    },
                }
            },
        },
    }


def _openapi_path(b: Binding) -> str:
    out = []
    for seg in b.template.segments:
        if isinstance(seg, str):
            out.append(seg)
        else:
            out.append("{" + seg.field_path + "}")
    path = "/" + "/".join(out)
    return path + (f":{b.template.verb}" if b.template.verb else "")


def docs_page(doc: dict[str, Any]) -> str:
    """A self-contained HTML page (no external scripts) describing every operation."""
    rows = []
    for path, ops in doc["paths"].items():
        for verb, op in ops.items():
            scope = ", ".join(s for req in op["security"] for s in req["oauth2"])
            params = ", ".join(
                f"{p['name']} ({p['in']})" for p in op["parameters"] if p["in"] != "header"
            )
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            rows.append(
                "<tr>"
                f"<td><code>{verb.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op['summary'])}<br>"
                f"<small>{html.escape(op.get('description', ''))}</small></td>"
                f"<td><code>{html.escape(scope)}</code></td><td>{html.escape(params) or '-'}</td>"
                f"<td>{'JSON' if body else '-'}</td></tr>"
            )
    schema_text = html.escape(json.dumps(doc["components"]["schemas"], indent=2))
    token_url = doc["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"][
        "tokenUrl"
    ]
    codes = html.escape(", ".join(f"{c.name} → {s}" for c, s in HTTP_STATUS.items()))
    title = html.escape(doc["info"]["title"])
    description = html.escape(doc["info"]["description"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:80em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}}
pre{{background:#f6f6f6;padding:1em;overflow:auto;max-height:40em}}</style></head><body>
<h1>{title}</h1>
<p>{description} Machine-readable: <a href="/openapi.json">/openapi.json</a>.
GraphQL: <a href="/graphql">/graphql</a>.</p>
<p>Every call needs <code>Authorization: Bearer &lt;token&gt;</code>: a JWT access token from
<code>{html.escape(token_url)}</code> (OAuth2 client credentials) with the scope shown.
Errors are <code>google.rpc.Status</code> JSON; gRPC codes map to HTTP statuses as:
{codes}.</p>
<table><tr><th>method</th><th>path</th><th>RPC</th><th>scope</th><th>parameters</th><th>body</th></tr>
{"".join(rows)}</table>
<h2>Schemas</h2><pre>{schema_text}</pre>
</body></html>"""
