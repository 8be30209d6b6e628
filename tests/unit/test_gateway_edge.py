"""The gateway's edge in process: tokens, scopes, rate limits, sizes, bad input and error
mapping, with a local test issuer (keys made here, served through an in-memory transport)
and a backend that records what would have reached the mesh."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from meshkit.config import DEFAULT_MESH_FILE, MeshPolicy
from meshkit.security.end_user import EndUser
from services.gateway.auth import Authenticator, Jwks, Principal
from services.gateway.backend import Backend, Budget, parse_grpc_timeout
from services.gateway.config import DEFAULT_GATEWAY_FILE, GatewayPolicy
from services.gateway.ratelimit import RateLimiter
from services.gateway.routes import Gateway
from services.gateway.status import EdgeError, from_rpc_error, pack
from services.gateway.transcoding import annotated_files, discover
from shop.inventory.v1 import inventory_pb2
from shop.order.v1 import order_pb2

ISSUER = "https://issuer.test"
AUDIENCE = "meshkit-shop"


class Issuer:
    """A local OIDC issuer: discovery, a JWKS that can rotate, and tokens it signs."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.jwks_fetches = 0
        self.current = self.rotate()

    def rotate(self) -> str:
        kid = f"k{len(self.keys) + 1}"
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published.append(kid)
        self.current = kid
        return kid

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
            keys.append({**data, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(
                200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/.well-known/jwks.json"}
            )
        if request.url.path == "/.well-known/jwks.json":
            self.jwks_fetches += 1
            return httpx.Response(200, json=self.jwks())
        return httpx.Response(404)

    def token(
        self,
        sub: str = "customer-1",
        scopes: tuple[str, ...] = ("orders:read", "orders:write", "stock:read"),
        kid: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": [AUDIENCE],
            "sub": sub,
            "client_id": f"client-{sub}",
            "scp": list(scopes),
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            **claims,
        }
        kid = kid or self.current
        return jwt.encode(body, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})


class RecordingBackend(Backend):
    """The real Backend's scopes and budgets; calls recorded instead of sent to the mesh."""

    def __init__(self, policy: GatewayPolicy) -> None:
        mesh_policy = MeshPolicy.load(DEFAULT_MESH_FILE)
        super().__init__(
            None,  # type: ignore[arg-type]
            policy,
            mesh_policy.deadlines,
            EndUser(mesh_policy.end_user),
        )
        self.calls: list[tuple[str, Message, Principal, Budget]] = []
        self.fail: EdgeError | None = None

    async def unary(
        self, method: Any, request: Message, principal: Principal, budget: Budget
    ) -> Message:
        self.calls.append((method.name, request, principal, budget))
        if self.fail:
            raise self.fail
        if method.name == "GetStock":
            return inventory_pb2.GetStockResponse(
                stock=inventory_pb2.StockLevel(sku=request.sku, available=7)  # type: ignore[attr-defined]
            )
        return _empty(method)

    async def stream(  # type: ignore[override]
        self, method: Any, request: Message, principal: Principal, budget: Budget
    ) -> AsyncIterator[Message]:
        self.calls.append((method.name, request, principal, budget))
        if self.fail:
            raise self.fail
        for status in (order_pb2.ORDER_STATUS_PENDING, order_pb2.ORDER_STATUS_CONFIRMED):
            yield order_pb2.WatchOrderResponse(
                order=order_pb2.Order(order_id=request.order_id, status=status)  # type: ignore[attr-defined]
            )


def _empty(method: Any) -> Message:
    from google.protobuf.message_factory import GetMessageClass

    return GetMessageClass(method.output_type)()


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def policy() -> GatewayPolicy:
    from dataclasses import replace

    return replace(GatewayPolicy.load(DEFAULT_GATEWAY_FILE), rate=1.0, burst=5, max_body=2048)


@pytest.fixture
async def edge(
    issuer: Issuer, policy: GatewayPolicy
) -> AsyncIterator[tuple[httpx.AsyncClient, RecordingBackend, Jwks]]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(issuer.handler))
    jwks = Jwks(ISSUER, http, min_refetch=60.0)
    backend = RecordingBackend(policy)
    gateway = Gateway(
        policy,
        backend,
        Authenticator(jwks, AUDIENCE, leeway=5),
        discover(annotated_files()),
        ISSUER,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.app), base_url="http://gateway.test"
    ) as client:
        yield client, backend, jwks
    await http.aclose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_valid_token_reaches_the_mesh_with_its_subject(edge: Any, issuer: Issuer) -> None:
    client, backend, _ = edge
    resp = await client.get("/v1/stock/SKU-1", headers=bearer(issuer.token(sub="ada")))
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "stock": {"sku": "SKU-1", "available": "7", "reserved": "0", "sold": "0"}
    }
    [(name, request, principal, budget)] = backend.calls
    assert (name, principal.subject, principal.client_id) == ("GetStock", "ada", "client-ada")
    assert request == inventory_pb2.GetStockRequest(sku="SKU-1")
    assert 9 < budget.remaining() <= 10  # gateway.toml's request_timeout


@pytest.mark.parametrize(
    ("claims", "expect"),
    [
        ({"exp": -60}, "expired"),  # seconds from now
        ({"nbf": 60}, "not valid yet"),
        ({"iss": "https://elsewhere.test"}, "another issuer"),
        ({"aud": ["someone-else"]}, "audience"),
        ({"sub": None}, "sub"),
    ],
)
async def test_bad_tokens_are_401_with_a_challenge(
    edge: Any, issuer: Issuer, claims: dict[str, Any], expect: str
) -> None:
    client, backend, _ = edge
    now = int(time.time())
    claims = {k: now + v if k in ("exp", "nbf") else v for k, v in claims.items()}
    token = issuer.token(**{k: v for k, v in claims.items() if v is not None})
    if claims.get("sub", "") is None:
        payload = jwt.decode(token, options={"verify_signature": False})
        del payload["sub"]
        token = jwt.encode(payload, issuer.keys[issuer.current], "RS256", {"kid": issuer.current})
    resp = await client.get("/v1/stock/SKU-1", headers=bearer(token))
    assert resp.status_code == 401, resp.text
    assert expect in resp.json()["message"]
    assert resp.json()["code"] == code_pb2.UNAUTHENTICATED
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    assert backend.calls == []


async def test_forged_and_unsigned_tokens_are_401(edge: Any, issuer: Issuer) -> None:
    client, backend, _ = edge
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = issuer.token(key=other)  # right kid, wrong key
    unsigned = jwt.encode({"sub": "x", "iss": ISSUER, "aud": AUDIENCE}, None, algorithm="none")
    hmac = jwt.encode({"sub": "x"}, "secret-secret-secret-secret-secret", algorithm="HS256")
    for token in (forged, unsigned, hmac, "not-a-jwt"):
        resp = await client.get("/v1/stock/SKU-1", headers=bearer(token))
        assert resp.status_code == 401, (token, resp.text)
    for headers in ({}, {"Authorization": "Basic eDp5"}):
        resp = await client.get("/v1/stock/SKU-1", headers=headers)
        assert resp.status_code == 401
        assert resp.headers["www-authenticate"].startswith('Bearer realm="meshkit-shop"')
    assert backend.calls == []


async def test_a_rotated_key_is_fetched_once_and_unknown_kids_do_not_flood(
    edge: Any, issuer: Issuer
) -> None:
    client, _, jwks = edge
    assert (await client.get("/v1/stock/a", headers=bearer(issuer.token()))).status_code == 200
    assert issuer.jwks_fetches == 1
    jwks._fetched_at -= 61  # the last fetch is older than min_refetch
    issuer.rotate()
    new_token = issuer.token()
    assert (await client.get("/v1/stock/a", headers=bearer(new_token))).status_code == 200
    assert issuer.jwks_fetches == 2
    # Made-up kids: no refetch within min_refetch, each one a 401.
    for n in range(5):
        resp = await client.get("/v1/stock/a", headers=bearer(issuer.token(kid="k1", sub=f"s{n}")))
        assert resp.status_code == 200
        bogus = jwt.encode({"sub": "x"}, issuer.keys["k1"], "RS256", {"kid": f"nope{n}"})
        assert (await client.get("/v1/stock/a", headers=bearer(bogus))).status_code == 401
    assert issuer.jwks_fetches == 2


async def test_keys_that_could_not_be_fetched_at_a_cold_start_are_fetched_again_soon(
    edge: Any, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issuer failing the first fetch (slow at a start, say): the next second's
    tokens are refused with 503, not the next ``min_refetch`` (60 s here)'s."""
    client, _, jwks = edge
    handler = issuer.handler
    down = True

    def flaky(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503) if down else handler(request)

    jwks._http = httpx.AsyncClient(transport=httpx.MockTransport(flaky))
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    resp = await client.get("/v1/stock/a", headers=bearer(issuer.token()))
    assert resp.status_code == 503
    assert "keys are not available" in resp.json()["message"]
    down = False
    assert (await client.get("/v1/stock/a", headers=bearer(issuer.token()))).status_code == 503
    now[0] += 1.0  # COLD_RETRY later: fetched again
    assert (await client.get("/v1/stock/a", headers=bearer(issuer.token()))).status_code == 200
    assert issuer.jwks_fetches == 1
    await jwks._http.aclose()


async def test_missing_scope_is_403(edge: Any, issuer: Issuer) -> None:
    client, backend, _ = edge
    token = issuer.token(scopes=("orders:read",))
    resp = await client.post("/v1/orders", headers=bearer(token), json={})
    assert resp.status_code == 403
    assert 'error="insufficient_scope", scope="orders:write"' in resp.headers["www-authenticate"]
    assert resp.json()["code"] == code_pb2.PERMISSION_DENIED
    assert backend.calls == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b'{"items": [], "bogus": 1}', "bogus"),
        (b'{"items": [{"quantity": "many"}]}', "items[0].quantity"),
        (b'{"items": [{"quantity": 3000000000}]}', "items[0].quantity"),
        (b'{"shippingAddress": {"lines": "one"}}', "shipping_address.lines"),
        (b'{"customerId": 42}', "customer_id"),
        (b"[]", "body"),
    ],
)
async def test_bad_input_is_400_naming_the_field_and_never_reaches_the_mesh(
    edge: Any, issuer: Issuer, body: bytes, field: str
) -> None:
    client, backend, _ = edge
    resp = await client.post("/v1/orders", headers=bearer(issuer.token()), content=body)
    assert resp.status_code == 400, resp.text
    status = resp.json()
    assert status["code"] == code_pb2.INVALID_ARGUMENT
    [detail] = status["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert field in [v["field"] for v in detail["fieldViolations"]]
    assert backend.calls == []


async def test_query_parameters_are_checked(edge: Any, issuer: Issuer) -> None:
    client, backend, _ = edge
    token = bearer(issuer.token())
    resp = await client.get("/v1/orders?pageSize=2&status=ORDER_STATUS_PAID", headers=token)
    assert resp.status_code == 200
    assert backend.calls[-1][1] == order_pb2.ListOrdersRequest(
        page_size=2, status=order_pb2.ORDER_STATUS_PAID
    )
    for query in ("pageSize=x", "status=NOPE", "color=red", "pageSize=1&pageSize=2"):
        resp = await client.get(f"/v1/orders?{query}", headers=token)
        assert resp.status_code == 400, query
    assert len(backend.calls) == 1


async def test_rate_limit_per_client_is_429_with_retry_after(edge: Any, issuer: Issuer) -> None:
    client, _, _ = edge
    token = bearer(issuer.token(sub="greedy"))
    statuses = [(await client.get("/v1/stock/a", headers=token)).status_code for _ in range(8)]
    assert statuses[:5] == [200] * 5 and 429 in statuses[5:], statuses
    resp = await client.get("/v1/stock/a", headers=token)
    assert resp.status_code == 429
    assert int(resp.headers["retry-after"]) >= 1
    assert resp.json()["code"] == code_pb2.RESOURCE_EXHAUSTED
    # Another client has its own bucket.
    other = bearer(issuer.token(sub="modest"))
    assert (await client.get("/v1/stock/a", headers=other)).status_code == 200


async def test_request_size_limit_is_413(edge: Any, issuer: Issuer) -> None:
    client, backend, _ = edge
    big = json.dumps({"paymentToken": "x" * 4096}).encode()
    resp = await client.post("/v1/orders", headers=bearer(issuer.token()), content=big)
    assert resp.status_code == 413
    assert backend.calls == []


async def test_unknown_routes_and_methods(edge: Any, issuer: Issuer) -> None:
    client, _, _ = edge
    token = bearer(issuer.token())
    assert (await client.get("/v1/nothing", headers=token)).status_code == 404
    resp = await client.delete("/v1/orders", headers=token)
    assert resp.status_code == 405 and set(resp.headers["allow"].split(", ")) == {"GET", "POST"}


async def test_service_errors_keep_their_details_and_map_to_http(edge: Any, issuer: Issuer) -> None:
    client, backend, _ = edge
    details = error_details_pb2.BadRequest(
        field_violations=[{"field": "items[0].sku", "description": "unknown sku"}]
    )
    status = status_pb2.Status(code=3, message="invalid PlaceOrderRequest", details=[pack(details)])
    error = grpc.aio.AioRpcError(
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString())),
        details="invalid PlaceOrderRequest",
    )
    backend.fail = from_rpc_error(error)
    resp = await client.get("/v1/orders/o-1", headers=bearer(issuer.token()))
    assert resp.status_code == 400
    assert resp.json()["details"][0]["fieldViolations"][0]["field"] == "items[0].sku"
    for code, http in [
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.FAILED_PRECONDITION, 400),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.INTERNAL, 500),
    ]:
        backend.fail = from_rpc_error(
            grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="x")
        )
        resp = await client.get("/v1/orders/o-1", headers=bearer(issuer.token(sub=code.name)))
        assert resp.status_code == http, code
        assert resp.json()["code"] == code.value[0]


async def test_watch_as_ndjson_and_sse(edge: Any, issuer: Issuer) -> None:
    client, _, _ = edge
    token = issuer.token()
    resp = await client.get("/v1/orders/o-1:watch", headers=bearer(token))
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert [x["result"]["order"]["status"] for x in lines] == [
        "ORDER_STATUS_PENDING",
        "ORDER_STATUS_CONFIRMED",
    ]
    resp = await client.get(
        f"/v1/orders/o-1:watch?access_token={token}", headers={"Accept": "text/event-stream"}
    )
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = [e for e in resp.text.split("\n\n") if e.strip()]
    assert json.loads(events[0].split("data: ", 1)[1])["order"]["status"] == "ORDER_STATUS_PENDING"
    assert events[-1].startswith("event: end")


async def test_grpc_timeout_header_sets_the_budget(edge: Any, issuer: Issuer) -> None:
    client, backend, _ = edge
    token = bearer(issuer.token())
    await client.get("/v1/stock/a", headers={**token, "Grpc-Timeout": "500m"})
    assert 0.3 < backend.calls[-1][3].remaining() <= 0.5
    for bad in ("soon", "0H", "10m"):  # malformed, or too short to be worth a call
        resp = await client.get("/v1/stock/a", headers={**token, "Grpc-Timeout": bad})
        assert resp.status_code == 400, bad
        assert resp.json()["details"][0]["fieldViolations"][0]["field"] == "Grpc-Timeout"
    assert parse_grpc_timeout("2S") == 2.0 and parse_grpc_timeout("1M") == 60.0


def test_token_bucket_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=2, clock=lambda: now[0])
    assert [limiter.take("c") for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("c") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.take("c") == 0.0
    assert limiter.take("other") == 0.0
