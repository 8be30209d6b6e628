"""The edge's hardening in process (issue 14, item 6): single-flight JWKS refresh, a rate
limit for requests without a valid token, 413 for chunked bodies, 400 for deep JSON,
capped violation lists, a concurrency limit, and GraphQL over WebSocket held to the rate
limit, the token's expiry and its caps per operation. Each refusal shows its own status,
and its allowed counterpart passes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import jwt
import pytest
from google.rpc import code_pb2
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from services.gateway.auth import Authenticator, Jwks
from services.gateway.config import DEFAULT_GATEWAY_FILE, GatewayPolicy
from services.gateway.routes import Gateway
from services.gateway.status import MAX_VIOLATIONS
from services.gateway.transcoding import annotated_files, discover
from tests.unit.test_gateway_edge import AUDIENCE, ISSUER, Issuer, RecordingBackend, bearer

ORDER = {
    "items": [{"sku": "SKU-1", "quantity": 1, "unitPrice": {"currencyCode": "EUR", "units": "1"}}],
    "paymentToken": "tok_visa",
}


class SlowIssuer(Issuer):
    """An issuer whose JWKS answers only when ``release`` is set: fetches overlap."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.jwks_requests = 0  # counted as they arrive, not as they are answered

    async def async_handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/jwks.json":
            self.jwks_requests += 1
            if self.jwks_requests > 1:
                await self.release.wait()
        return self.handler(request)


def make_gateway(
    issuer: Issuer, policy: GatewayPolicy, min_refetch: float = 60.0, handler: Any = None
) -> tuple[Gateway, RecordingBackend, Jwks, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler or issuer.handler))
    jwks = Jwks(ISSUER, http, min_refetch=min_refetch)
    backend = RecordingBackend(policy)
    gateway = Gateway(
        policy,
        backend,
        Authenticator(jwks, AUDIENCE, leeway=5),
        discover(annotated_files()),
        ISSUER,
    )
    return gateway, backend, jwks, http


def base_policy(**changes: Any) -> GatewayPolicy:
    return replace(
        GatewayPolicy.load(DEFAULT_GATEWAY_FILE),
        **{"rate": 1.0, "burst": 50, "max_body": 2048, **changes},
    )


def asgi_client(gateway: Gateway, address: str = "1.2.3.4") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=gateway.app, client=(address, 123))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway.test")


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
async def edge(issuer: Issuer) -> AsyncIterator[tuple[httpx.AsyncClient, RecordingBackend]]:
    gateway, backend, _, http = make_gateway(issuer, base_policy(anonymous_burst=3))
    async with asgi_client(gateway) as client:
        yield client, backend
    await http.aclose()


async def test_unknown_kids_at_once_make_one_jwks_fetch_and_known_keys_keep_serving() -> None:
    issuer = SlowIssuer()
    # No minimum interval: what keeps the fetches to one is that they are single-flight.
    gateway, _, _, http = make_gateway(
        issuer, base_policy(anonymous_burst=1000), min_refetch=0.0, handler=issuer.async_handler
    )
    async with asgi_client(gateway) as client:
        good = bearer(issuer.token())
        assert (await client.get("/v1/stock/a", headers=good)).status_code == 200
        assert issuer.jwks_requests == 1

        async def bad_kid(n: int) -> int:
            token = jwt.encode({"sub": "x"}, issuer.keys["k1"], "RS256", {"kid": f"nope{n}"})
            return (await client.get("/v1/stock/a", headers=bearer(token))).status_code

        floods = [asyncio.create_task(bad_kid(n)) for n in range(100)]
        await asyncio.sleep(0.1)  # all 100 are waiting on the one fetch in flight
        # A cached key keeps serving while the refresh is in flight.
        assert (await client.get("/v1/stock/a", headers=good)).status_code == 200
        assert issuer.jwks_requests == 2 and not any(t.done() for t in floods)
        issuer.release.set()
        assert await asyncio.gather(*floods) == [401] * 100
        assert issuer.jwks_requests == 2  # the 100 made one fetch between them
    await http.aclose()


async def test_a_rotated_key_is_found_by_the_one_refresh(issuer: Issuer) -> None:
    gateway, _, _, http = make_gateway(issuer, base_policy(), min_refetch=0.0)
    async with asgi_client(gateway) as client:
        assert (await client.get("/v1/stock/a", headers=bearer(issuer.token()))).status_code == 200
        issuer.rotate()
        new = bearer(issuer.token(sub="rotated"))
        statuses = await asyncio.gather(
            *(client.get("/v1/stock/a", headers=new) for _ in range(20))
        )
        assert [r.status_code for r in statuses] == [200] * 20
        assert issuer.jwks_fetches == 2
    await http.aclose()


async def test_requests_without_a_valid_token_have_a_bucket_per_address(
    edge: Any, issuer: Issuer
) -> None:
    client, backend = edge
    statuses = [(await client.get("/v1/stock/a")).status_code for _ in range(3)]
    assert statuses == [401] * 3  # anonymous_burst = 3
    resp = await client.get("/v1/stock/a", headers=bearer("not-a-jwt"))
    assert resp.status_code == 429, resp.text
    assert int(resp.headers["retry-after"]) >= 1
    assert resp.json()["code"] == code_pb2.RESOURCE_EXHAUSTED
    assert "address 1.2.3.4" in resp.json()["message"]
    # A valid token from the same address is not held to that bucket...
    assert (await client.get("/v1/stock/a", headers=bearer(issuer.token()))).status_code == 200
    # ...and another address has its own.
    transport = httpx.ASGITransport(app=client._transport.app, client=("5.6.7.8", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as other:
        assert (await other.get("/v1/stock/a")).status_code == 401
    assert len(backend.calls) == 1


async def test_a_chunked_body_over_the_limit_is_413(edge: Any, issuer: Issuer) -> None:
    client, backend = edge

    async def chunks(total: int) -> AsyncIterator[bytes]:
        body = json.dumps({**ORDER, "idempotencyKey": "k" * total}).encode()
        for i in range(0, len(body), 512):
            yield body[i : i + 512]

    resp = await client.post("/v1/orders", headers=bearer(issuer.token()), content=chunks(4096))
    assert resp.status_code == 413, resp.text
    assert "larger than 2048 bytes" in resp.json()["message"]
    assert backend.calls == []
    resp = await client.post("/v1/orders", headers=bearer(issuer.token()), content=chunks(10))
    assert resp.status_code == 200, resp.text
    assert [c[0] for c in backend.calls] == ["PlaceOrder"]


async def test_json_nested_too_deep_is_400(edge: Any, issuer: Issuer) -> None:
    client, backend = edge
    token = bearer(issuer.token())
    deep = b'{"items": ' + b"[" * 1000 + b"]" * 1000 + b"}"  # 2 KiB
    resp = await client.post("/v1/orders", headers=token, content=deep)
    assert resp.status_code == 400, resp.text
    assert "deeper than 64 levels" in resp.json()["message"]
    # GraphQL over HTTP goes through the same check.
    resp = await client.post("/graphql", headers=token, content=b'{"variables": ' + deep[10:])
    assert resp.status_code == 400 and "deeper than 64" in resp.json()["message"]
    # Within the limit (and brackets inside strings do not count): an ordinary answer.
    ok = json.dumps({**ORDER, "idempotencyKey": "[" * 500}).encode()
    assert (await client.post("/v1/orders", headers=token, content=ok)).status_code == 200
    assert len(backend.calls) == 1


async def test_the_violations_of_an_error_are_capped(edge: Any, issuer: Issuer) -> None:
    client, backend = edge
    query = "&".join(f"unknown{n:04d}{'x' * 4}=1" for n in range(1000))  # ~16 KB
    resp = await client.get(f"/v1/orders?{query}", headers=bearer(issuer.token()))
    assert resp.status_code == 400
    [detail] = resp.json()["details"]
    violations = detail["fieldViolations"]
    assert len(violations) == MAX_VIOLATIONS + 1
    assert violations[0]["field"] == "unknown0000xxxx"
    assert violations[-1]["description"] == "and 980 more violation(s), not listed"
    assert resp.json()["message"].endswith("; and 980 more")
    assert len(resp.content) < 5000
    assert backend.calls == []
    # A few are all listed.
    resp = await client.get("/v1/orders?a=1&b=2", headers=bearer(issuer.token()))
    assert [v["field"] for v in resp.json()["details"][0]["fieldViolations"]] == ["a", "b"]


async def test_requests_in_flight_past_the_limit_are_503_with_retry_after(issuer: Issuer) -> None:
    gateway, backend, _, http = make_gateway(issuer, base_policy(max_concurrent=2))
    gate = asyncio.Event()
    plain_unary = backend.unary

    async def stalled(*args: Any) -> Any:
        await gate.wait()
        return await plain_unary(*args)

    backend.unary = stalled  # type: ignore[method-assign]
    async with asgi_client(gateway) as client:
        token = bearer(issuer.token())
        busy = [asyncio.create_task(client.get("/v1/stock/a", headers=token)) for _ in range(2)]
        await asyncio.sleep(0.05)
        resp = await client.get("/v1/stock/a", headers=token)
        assert resp.status_code == 503 and resp.headers["retry-after"] == "1"
        assert resp.json()["code"] == code_pb2.UNAVAILABLE
        assert (await client.get("/healthz")).status_code == 200  # always answered
        gate.set()
        assert [r.status_code for r in await asyncio.gather(*busy)] == [200, 200]
        assert (await client.get("/v1/stock/a", headers=token)).status_code == 200
    await http.aclose()


# GraphQL over WebSocket (starlette's TestClient: the app on a loop of its own)


@pytest.fixture
def ws_gateway(issuer: Issuer) -> Iterator[tuple[TestClient, RecordingBackend]]:
    policy = base_policy(burst=4, rate=0.01, ws_max_operations=6, ws_max_subscriptions=10)
    gateway, backend, _, _ = make_gateway(issuer, policy)
    with TestClient(gateway.app) as client:
        yield client, backend


def connect(client: TestClient, token: str) -> Any:
    ws = client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"])
    session = ws.__enter__()
    session.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    assert session.receive_json()["type"] == "connection_ack"
    return ws, session


def stock(session: Any, op: str) -> dict[str, Any]:
    query = '{ stock(sku: "SKU-1") { sku available } }'
    session.send_json({"id": op, "type": "subscribe", "payload": {"query": query}})
    message = session.receive_json()
    if message["type"] == "next":
        assert session.receive_json() == {"id": op, "type": "complete"}
    return dict(message)


def test_graphql_ws_operations_each_take_a_rate_limit_token(
    ws_gateway: Any, issuer: Issuer
) -> None:
    client, backend = ws_gateway
    ws, session = connect(client, issuer.token(sub="ws"))  # the connection takes 1 of 4
    for n in range(3):
        assert stock(session, f"ok{n}")["payload"]["data"]["stock"]["available"] == "7"
    refused = stock(session, "limited")
    assert refused["type"] == "error" and refused["id"] == "limited"
    [error] = refused["payload"]
    assert error["extensions"]["code"] == "RESOURCE_EXHAUSTED"
    assert error["extensions"]["httpStatus"] == 429 and error["extensions"]["retryAfter"] >= 1
    assert len(backend.calls) == 3
    # Another client's socket has its own bucket.
    ws2, other = connect(client, issuer.token(sub="other"))
    assert stock(other, "fine")["type"] == "next"
    ws2.__exit__(None, None, None)
    ws.__exit__(None, None, None)


def test_graphql_ws_operations_per_connection_are_capped(issuer: Issuer) -> None:
    gateway, backend, _, _ = make_gateway(issuer, base_policy(burst=100, ws_max_operations=3))
    with TestClient(gateway.app) as client:
        ws, session = connect(client, issuer.token(sub="chatty"))
        for n in range(3):
            assert stock(session, f"op{n}")["type"] == "next"
        session.send_json(
            {"id": "op4", "type": "subscribe", "payload": {"query": "{ __typename }"}}
        )
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive_json()
        assert closed.value.code == 4429
        ws.__exit__(None, None, None)
        # A new connection starts a new count.
        ws, session = connect(client, issuer.token(sub="chatty"))
        assert stock(session, "again")["type"] == "next"
        ws.__exit__(None, None, None)
    assert len(backend.calls) == 4


def test_graphql_ws_is_closed_4403_when_its_token_expires(ws_gateway: Any, issuer: Issuer) -> None:
    client, backend = ws_gateway
    ws, session = connect(client, issuer.token(sub="brief", exp=int(time.time()) + 2))
    assert stock(session, "before")["type"] == "next"  # allowed while the token is valid
    started = time.monotonic()
    with pytest.raises(WebSocketDisconnect) as closed:
        session.receive_json()  # nothing sent: the timer closes the socket at exp
    assert closed.value.code == 4403
    assert time.monotonic() - started < 4
    assert len(backend.calls) == 1
    ws.__exit__(None, None, None)


def test_graphql_ws_messages_nested_too_deep_close_the_socket_4400(
    ws_gateway: Any, issuer: Issuer
) -> None:
    client, backend = ws_gateway
    ws, session = connect(client, issuer.token(sub="deep"))
    assert stock(session, "fine")["type"] == "next"
    nested = "[" * 5000 + "]" * 5000
    session.send_text(
        '{"id": "deep", "type": "subscribe", "payload": {"query": "{ __typename }", '
        f'"variables": {{"a": {nested}}}}}}}'
    )
    with pytest.raises(WebSocketDisconnect) as closed:
        session.receive_json()
    assert closed.value.code == 4400
    ws.__exit__(None, None, None)
    assert len(backend.calls) == 1
