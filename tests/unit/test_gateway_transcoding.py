"""The HttpRule cases of the gateway's transcoding, as a table, on a test contract
(tests/unit/protos/gatewaytest/v1/library.proto) compiled here by grpcio-tools' protoc."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format
from google.protobuf.descriptor import FileDescriptor
from grpc_tools import protoc

from services.gateway.jsonmap import BadInput
from services.gateway.transcoding import (
    Binding,
    PathTemplate,
    Router,
    TemplateError,
    annotated_files,
    discover,
)
from tests.conftest import ROOT

PROTOS = Path(__file__).parent / "protos"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> FileDescriptor:
    out = tmp_path_factory.mktemp("desc") / "library.binpb"
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{ROOT / 'third_party' / 'protos'}",
        f"-I{include}",
        "--include_imports",
        f"--descriptor_set_out={out}",
        "gatewaytest/v1/library.proto",
    ]
    assert protoc.main(args) == 0
    pool = descriptor_pool.DescriptorPool()
    for f in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
        pool.Add(f)
    return pool.FindFileByName("gatewaytest/v1/library.proto")


@pytest.fixture(scope="module")
def router(library: FileDescriptor) -> Router:
    return Router(discover([library]))


def call(
    router: Router, method: str, path: str, query: str = "", body: Any = None
) -> tuple[Binding, dict[str, Any]]:
    """Route and transcode one request; the binding and the request message as JSON."""
    from urllib.parse import parse_qsl

    match = router.match(method, path)
    assert not isinstance(match, list), f"{method} {path}: no route (allowed {match})"
    binding, values = match
    raw = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    message = binding.build_request(values, parse_qsl(query, keep_blank_values=True), raw)
    return binding, json_format.MessageToDict(message, preserving_proto_field_name=True)


TABLE = [
    # (HTTP method, path, query, body) -> (RPC, request as proto-named JSON)
    (
        "GET", "/v1/shelves/s1/books/b%201", "", None,
        "GetBook", {"name": "shelves/s1/books/b 1"},
    ),
    (
        "PATCH", "/v1/books/b7", "validate_only=true", {"title": "Dune", "genre": "GENRE_FICTION"},
        "UpdateBook",
        {"book": {"id": "b7", "title": "Dune", "genre": "GENRE_FICTION"}, "validate_only": True},
    ),
    (
        "POST", "/v1/shelves/s1/books", "", {"book": {"title": "Dune", "pages": "412"}},
        "CreateBook", {"shelf": "s1", "book": {"title": "Dune", "pages": "412"}},
    ),
    (
        "POST", "/v1/books:create", "", {"shelf": "s2", "book": {"tags": ["a", "b"]}},
        "CreateBook", {"shelf": "s2", "book": {"tags": ["a", "b"]}},
    ),
    (
        "GET", "/v1/shelves/s1/books", "pageSize=5", None,
        "ListBooks", {"shelf": "s1", "page_size": 5},
    ),
    (
        "POST", "/v1/books/b7:archive", "", {"reason": "old"},
        "ArchiveBook", {"id": "b7", "reason": "old"},
    ),
    (
        "GET", "/v1/files/a/b%2Fc/d.txt", "", None,
        "GetFile", {"path": "a/b%2Fc/d.txt"},
    ),
    (
        "GET", "/v1/books",
        "query=dune&tags=a&tags=b&years=1965&years=1966&filter.genre=GENRE_SCIENCE"
        "&filter.minPages=100&in_stock=true&published_after=2020-01-01T00:00:00Z&limit=3",
        None,
        "SearchBooks",
        {
            "query": "dune", "tags": ["a", "b"], "years": [1965, 1966],
            "filter": {"genre": "GENRE_SCIENCE", "min_pages": "100"}, "in_stock": True,
            "published_after": "2020-01-01T00:00:00Z", "limit": 3,
        },
    ),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "query", "body", "rpc", "expected"), TABLE)
def test_transcoding_table(
    router: Router, method: str, path: str, query: str, body: Any, rpc: str, expected: Any
) -> None:
    binding, request = call(router, method, path, query, body)
    assert binding.method.name == rpc
    assert request == expected


BAD = [
    # (method, path, query, body) -> the field named in the 400
    ("POST", "/v1/shelves/s1/books", "", {"book": {"pages": "x"}}, "book.pages"),
    ("POST", "/v1/shelves/s1/books", "", {"book": {"pages": 2**63}}, "book.pages"),
    ("POST", "/v1/shelves/s1/books", "", {"bogus": 1}, "bogus"),
    ("POST", "/v1/shelves/s1/books", "", {"book": {"tags": ["a", 1]}}, "book.tags[1]"),
    ("POST", "/v1/shelves/s1/books", "", {"book": {"genre": "NOPE"}}, "book.genre"),
    ("POST", "/v1/shelves/s1/books", "", {"book": {"genre": 7}}, "book.genre"),
    ("POST", "/v1/shelves/s1/books", "", {"book": {"title": 5}}, "book.title"),
    ("POST", "/v1/shelves/s1/books", "", {"book": []}, "book"),
    ("POST", "/v1/shelves/s1/books", "", b"{not json", "body"),
    ("POST", "/v1/shelves/s1/books", "", None, "body"),
    ("POST", "/v1/shelves/s1/books", "x=1", {}, "x"),
    ("GET", "/v1/shelves/s1/books", "pageSize=99999999999", None, "page_size"),
    ("GET", "/v1/shelves/s1/books", "page_size=1&page_size=2", None, "page_size"),
    ("GET", "/v1/books", "limit=-1", None, "limit"),
    ("GET", "/v1/books", "in_stock=maybe", None, "in_stock"),
    ("GET", "/v1/books", "filter=x", None, "filter"),
    ("GET", "/v1/books", "nope=1", None, "nope"),
    ("GET", "/v1/books", "years=1&years=x", None, "years[1]"),
    ("GET", "/v1/books", "published_after=yesterday", None, "published_after"),
    ("PATCH", "/v1/books/b7", "book.title=x", {"title": "y"}, "book.title"),
]


@pytest.mark.parametrize(("method", "path", "query", "body", "field"), BAD)
def test_bad_input_names_the_field(
    router: Router, method: str, path: str, query: str, body: Any, field: str
) -> None:
    with pytest.raises(BadInput) as info:
        call(router, method, path, query, body)
    assert field in [v.field for v in info.value.violations], info.value.violations


def test_response_body_is_one_field(router: Router) -> None:
    binding, _ = call(router, "GET", "/v1/shelves/s1/books")
    response = binding.response_class()(books=[{"id": "b1"}], next_page_token="t")
    assert binding.response_json(response) == [
        {"id": "b1", "title": "", "genre": "GENRE_UNSPECIFIED", "pages": "0", "tags": []}
    ]


def test_output_is_lower_camel_case_and_input_takes_both(router: Router) -> None:
    binding, request = call(router, "GET", "/v1/shelves/s1/books", "page_size=2")
    assert request == {"shelf": "s1", "page_size": 2}
    response = binding.response_class()(next_page_token="t")
    assert "nextPageToken" in json_format.MessageToDict(response)


def test_unmatched_paths_and_methods(router: Router) -> None:
    assert router.match("GET", "/v1/nothing") == []
    assert router.match("DELETE", "/v1/books/b7:archive") == ["POST"]
    # The verb route wins over a plain variable that would also match.
    match = router.match("POST", "/v1/books/b7:archive")
    assert not isinstance(match, list) and match[0].method.name == "ArchiveBook"
    # Unannotated methods have no route.
    assert "Internal" not in {b.method.name for b in router.bindings}


@pytest.mark.parametrize(
    ("template", "path", "values"),
    [
        ("/v1/{n=projects/*/l/*}", "/v1/projects/p/l/x", {"n": "projects/p/l/x"}),
        ("/v1/{a}/{b.c}", "/v1/x%3Ay/z", {"a": "x:y", "b.c": "z"}),
        ("/v1/{a}:do", "/v1/x:do", {"a": "x"}),
        ("/v1/*/items", "/v1/anything/items", {}),
        ("/v1/{rest=**}", "/v1/a/b/c", {"rest": "a/b/c"}),
        ("/v1/{a}", "/v1/x/y", None),
        ("/v1/{a}:do", "/v1/x", None),
    ],
)  # fmt: skip
def test_path_templates(template: str, path: str, values: dict[str, str] | None) -> None:
    assert PathTemplate.parse(template).match(path) == values


@pytest.mark.parametrize("bad", ["v1/x", "/v1/{a", "/v1/**/x", "/v1/{a}/{a}", "/v1/{9a}", "/v1//x"])
def test_bad_templates_are_refused(bad: str) -> None:
    with pytest.raises(TemplateError):
        PathTemplate.parse(bad)


def test_the_shop_contracts_give_the_documented_routes() -> None:
    routes = {
        (b.http_method, b.template.text): b.method.full_name for b in discover(annotated_files())
    }
    assert routes == {
        ("POST", "/v1/orders"): "shop.order.v1.OrderService.PlaceOrder",
        ("GET", "/v1/orders/{order_id}"): "shop.order.v1.OrderService.GetOrder",
        ("GET", "/v1/orders"): "shop.order.v1.OrderService.ListOrders",
        ("GET", "/v1/orders/{order_id}:watch"): "shop.order.v1.OrderService.WatchOrder",
        ("POST", "/v1/orders/{order_id}:cancel"): "shop.order.v1.OrderService.CancelOrder",
        ("GET", "/v1/stock/{sku}"): "shop.inventory.v1.InventoryService.GetStock",
        ("GET", "/v1/stock"): "shop.inventory.v1.InventoryService.ListStock",
    }
