"""The edge end to end: real Ory Hydra tokens, the gateway process, the real mesh behind it.

REST (place, read back, watch to CONFIRMED over SSE and WebSocket), the customer scoping
by the token's subject, GraphQL (query, mutation, subscription), 400/401/403/429, JWKS
rotation with Hydra's own key rotation, the OpenAPI document and schemathesis against it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from devstack.consul import ConsulAgent
from devstack.hydra import Hydra, OAuthClient
from devstack.nats import NatsServer
from devstack.services import ServiceProcess
from tests.support.edge import AUDIENCE, ORDER, SCOPES, start_gateway
from tests.support.polling import eventually_sync

pytestmark = pytest.mark.integration

STATUSES = [
    f"ORDER_STATUS_{s}" for s in ("PENDING", "STOCK_RESERVED", "PAID", "CONFIRMED", "CANCELLED")
]


@pytest.fixture(scope="module")
def hydra(state_dir: Path) -> Iterator[Hydra]:
    server = Hydra(log_path=state_dir / "hydra.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(
    services: dict[str, ServiceProcess],
    consul: ConsulAgent,
    nats_server: NatsServer,
    state_dir: Path,
    hydra: Hydra,
) -> Iterator[str]:
    """The gateway's base URL; a low refetch interval so that the rotation test is quick."""
    with open(state_dir / "gateway.log", "a") as log:
        proc = start_gateway(
            consul, nats_server, state_dir, hydra, log,
            "--rate", "20", "--burst", "20", "--jwks-min-refetch", "1s",
        )  # fmt: skip
        yield str(proc.info["url"])
        proc.stop()


@pytest.fixture(scope="module")
def alice(hydra: Hydra) -> OAuthClient:
    return hydra.create_client(SCOPES, (AUDIENCE,), name="alice")


@pytest.fixture(scope="module")
def bob(hydra: Hydra) -> OAuthClient:
    return hydra.create_client(SCOPES, (AUDIENCE,), name="bob")


@pytest.fixture(scope="module")
def http(gateway: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway, timeout=30) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def place(http: httpx.Client, token: str, **extra: Any) -> dict[str, Any]:
    resp = http.post("/v1/orders", headers=auth(token), json={**ORDER, **extra})
    assert resp.status_code == 200, resp.text
    return dict(resp.json()["order"])


def sse_events(text: str) -> list[tuple[str, Any]]:
    out = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if "data" in fields:
            out.append((fields.get("event", "message"), json.loads(fields["data"])))
    return out


def test_rest_place_read_back_and_watch_over_sse(
    http: httpx.Client, hydra: Hydra, alice: OAuthClient
) -> None:
    token = hydra.token(alice)
    order = place(http, token, idempotencyKey="gw-sse")
    assert order["status"] == "ORDER_STATUS_PENDING"
    assert order["customerId"] == alice.client_id  # the token's subject
    assert order["total"] == {"currencyCode": "EUR", "units": "19", "nanos": 990000000}

    got = http.get(f"/v1/orders/{order['orderId']}", headers=auth(token))
    assert got.status_code == 200 and got.json()["order"]["orderId"] == order["orderId"]

    with http.stream(
        "GET",
        f"/v1/orders/{order['orderId']}:watch",
        headers={**auth(token), "Accept": "text/event-stream"},
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = sse_events(resp.read().decode())
    states = [data["order"]["status"] for kind, data in events if kind == "message"]
    assert states == sorted(states, key=STATUSES.index)
    assert states[-1] == "ORDER_STATUS_CONFIRMED"
    assert events[-1][0] == "end"

    # The same order, read back over REST and listed: CONFIRMED, with its history.
    got = http.get(f"/v1/orders/{order['orderId']}", headers=auth(token)).json()["order"]
    assert [h["status"] for h in got["history"]] == STATUSES[:4]
    listed = http.get("/v1/orders", params={"pageSize": 50}, headers=auth(token)).json()
    assert order["orderId"] in [o["orderId"] for o in listed["orders"]]


async def test_watch_over_websocket(gateway: str, hydra: Hydra, alice: OAuthClient) -> None:
    token = hydra.token(alice)
    with httpx.Client(base_url=gateway) as http:
        order = place(http, token, idempotencyKey="gw-ws")
    url = gateway.replace("http://", "ws://") + f"/v1/orders/{order['orderId']}:watch"
    async with websockets.connect(url, additional_headers=auth(token)) as ws:
        frames = [json.loads(m) async for m in ws]
        assert ws.close_code == 1000
    states = [f["result"]["order"]["status"] for f in frames]
    assert states[-1] == "ORDER_STATUS_CONFIRMED", frames
    # Without a token: an error frame and 4401.
    async with websockets.connect(url) as ws:
        frame = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosedError):
            await ws.recv()
        assert ws.close_code == 4401
    assert frame["error"]["code"] == 16  # UNAUTHENTICATED


def test_customers_see_only_their_own_orders(
    http: httpx.Client, hydra: Hydra, alice: OAuthClient, bob: OAuthClient
) -> None:
    a, b = hydra.token(alice), hydra.token(bob)
    order = place(http, a, idempotencyKey="gw-own")
    assert http.get(f"/v1/orders/{order['orderId']}", headers=auth(b)).status_code == 404
    assert http.get(f"/v1/orders/{order['orderId']}:watch", headers=auth(b)).status_code == 404
    resp = http.post(f"/v1/orders/{order['orderId']}:cancel", headers=auth(b), json={})
    assert resp.status_code == 404
    listed = http.get("/v1/orders", params={"pageSize": 100}, headers=auth(b)).json()
    assert all(o["customerId"] == bob.client_id for o in listed["orders"])
    resp = http.get("/v1/orders", params={"customerId": alice.client_id}, headers=auth(b))
    assert resp.status_code == 403
    resp = http.post("/v1/orders", headers=auth(b), json={**ORDER, "customerId": alice.client_id})
    assert resp.status_code == 403


def test_service_errors_come_back_as_status_json(
    http: httpx.Client, hydra: Hydra, alice: OAuthClient
) -> None:
    token = hydra.token(alice)
    resp = http.post(
        "/v1/orders",
        headers=auth(token),
        json={**ORDER, "items": [{**ORDER["items"][0], "sku": "SKU-NOPE"}]},
    )
    assert resp.status_code == 400, resp.text
    [detail] = resp.json()["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert detail["fieldViolations"][0]["field"] == "items[0].sku"
    assert http.get("/v1/stock/SKU-NOPE", headers=auth(token)).status_code == 404
    stock = http.get("/v1/stock/SKU-KEYBOARD", headers=auth(token)).json()["stock"]
    assert stock["sku"] == "SKU-KEYBOARD" and int(stock["available"]) >= 0


def test_bad_input_is_400_with_the_field(
    http: httpx.Client, hydra: Hydra, alice: OAuthClient
) -> None:
    token = hydra.token(alice)
    cases = [
        (b"{", "body"),
        (json.dumps({**ORDER, "colour": "red"}).encode(), "colour"),
        (json.dumps({**ORDER, "paymentToken": 7}).encode(), "payment_token"),
        (
            json.dumps({**ORDER, "items": [{**ORDER["items"][0], "quantity": 2**40}]}).encode(),
            "items[0].quantity",
        ),
    ]
    for body, field in cases:
        resp = http.post("/v1/orders", headers=auth(token), content=body)
        assert resp.status_code == 400, resp.text
        violations = resp.json()["details"][0]["fieldViolations"]
        assert field in [v["field"] for v in violations], violations


def test_token_problems_are_401_and_missing_scope_403(
    http: httpx.Client, hydra: Hydra, alice: OAuthClient
) -> None:
    resp = http.get("/v1/stock/SKU-MOUSE")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == 'Bearer realm="meshkit-shop"'
    resp = http.get("/v1/stock/SKU-MOUSE", headers=auth("garbage"))
    assert resp.status_code == 401 and "invalid_token" in resp.headers["www-authenticate"]
    # A real token of this issuer, for another audience.
    other = hydra.create_client(SCOPES, ("another-api",), name="elsewhere")
    resp = http.get("/v1/stock/SKU-MOUSE", headers=auth(hydra.token(other)))
    assert resp.status_code == 401 and "audience" in resp.json()["message"]
    # Read-only token: reads work, writes are 403.
    reader = hydra.token(alice, scopes=("orders:read",))
    assert http.get("/v1/orders", headers=auth(reader)).status_code == 200
    resp = http.post("/v1/orders", headers=auth(reader), json=ORDER)
    assert resp.status_code == 403
    assert 'scope="orders:write"' in resp.headers["www-authenticate"]


RATE, BURST = 20, 20  # the gateway fixture's --rate and --burst


def test_rate_limit_is_429_with_retry_after(http: httpx.Client, hydra: Hydra, gateway: str) -> None:
    """One client's bucket: the burst is admitted, then 429 with Retry-After; never more
    admitted than the bucket allows in the time taken; admitted again once it refills."""
    greedy = hydra.create_client(("orders:read",), (AUDIENCE,), name="greedy")
    token = hydra.token(greedy)

    async def burst(client: httpx.AsyncClient) -> list[httpx.Response]:
        # stock:read is missing: requests within the limit end as 403, never in the mesh.
        return await asyncio.gather(
            *(client.get("/v1/stock/SKU-MOUSE", headers=auth(token)) for _ in range(3 * BURST))
        )

    async def until_limited() -> tuple[list[httpx.Response], float]:
        """Bursts of concurrent requests until one is refused (however slow the machine,
        the bucket refills slower than a burst is served), and the seconds they took."""
        responses: list[httpx.Response] = []
        async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
            started = time.monotonic()
            for _ in range(20):
                responses += await burst(client)
                if any(r.status_code == 429 for r in responses):
                    break
            return responses, time.monotonic() - started

    responses, took = asyncio.run(until_limited())
    codes = Counter(r.status_code for r in responses)
    assert set(codes) == {403, 429}, codes
    # The first BURST requests found the bucket full; later ones got what it refilled.
    assert BURST <= codes[403] <= BURST + RATE * took + 1, (codes, took)
    limited = next(r for r in responses if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["code"] == 8  # RESOURCE_EXHAUSTED
    # Once the bucket has refilled, the client is admitted again.
    eventually_sync(
        lambda: http.get("/v1/stock/SKU-MOUSE", headers=auth(token)).status_code == 403,
        timeout=int(limited.headers["retry-after"]) + 10,
        interval=0.5,
        what="the client admitted again",
    )


def test_jwks_rotation_new_key_accepted_after_refetch(
    http: httpx.Client, hydra: Hydra, alice: OAuthClient
) -> None:
    old = hydra.token(alice)
    assert http.get("/v1/orders", headers=auth(old)).status_code == 200
    kid = hydra.rotate_access_token_key()
    new = hydra.token(alice)
    from jwt import get_unverified_header

    assert get_unverified_header(new)["kid"] == kid
    # The gateway fetches the JWKS again for the unknown key (at most once a second,
    # its --jwks-min-refetch), so the new key is accepted within moments.
    eventually_sync(
        lambda: http.get("/v1/orders", headers=auth(new)).status_code == 200,
        timeout=15,
        interval=0.2,
        what="a token signed with the new key accepted",
    )
    assert http.get("/v1/orders", headers=auth(old)).status_code == 200  # old key still published


def graphql(http: httpx.Client, token: str, query: str, **variables: Any) -> dict[str, Any]:
    resp = http.post("/graphql", headers=auth(token), json={"query": query, "variables": variables})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def test_graphql_query_mutation_and_subscription(
    gateway: str, hydra: Hydra, alice: OAuthClient
) -> None:
    token = hydra.token(alice)
    with httpx.Client(base_url=gateway, timeout=30) as http:
        placed = graphql(
            http,
            token,
            """mutation($input: PlaceOrderInput!) {
                 placeOrder(input: $input) { orderId customerId status total { units nanos } }
               }""",
            input={
                "items": [
                    {
                        "sku": "SKU-CABLE",
                        "quantity": 2,
                        "unitPrice": {"currencyCode": "EUR", "units": "5"},
                    }
                ],
                "shippingAddress": ORDER["shippingAddress"],
                "paymentToken": "tok_visa",
                "idempotencyKey": "gql-1",
            },
        )["data"]["placeOrder"]
        assert placed["status"] == "PENDING" and placed["customerId"] == alice.client_id
        assert placed["total"] == {"units": "10", "nanos": 0}

        url = gateway.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(
                json.dumps(
                    {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
                )
            )
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            query = "subscription($id: ID!) { orderStatus(orderId: $id) { status } }"
            await ws.send(
                json.dumps(
                    {
                        "id": "1",
                        "type": "subscribe",
                        "payload": {"query": query, "variables": {"id": placed["orderId"]}},
                    }
                )
            )
            states = []
            while (message := json.loads(await asyncio.wait_for(ws.recv(), 30)))["type"] == "next":
                states.append(message["payload"]["data"]["orderStatus"]["status"])
            assert message["type"] == "complete", message
        assert states[-1] == "CONFIRMED", states

        data = graphql(
            http,
            token,
            """query($id: ID!) {
                 order(orderId: $id) { status history { status } }
                 orders(pageSize: 100) { orders { orderId } }
                 stock(sku: "SKU-CABLE") { sku available }
               }""",
            id=placed["orderId"],
        )["data"]
        assert data["order"]["status"] == "CONFIRMED"
        assert [h["status"] for h in data["order"]["history"]] == [
            "PENDING",
            "STOCK_RESERVED",
            "PAID",
            "CONFIRMED",
        ]
        assert placed["orderId"] in [o["orderId"] for o in data["orders"]["orders"]]
        assert data["stock"]["sku"] == "SKU-CABLE"

        # Scopes apply field by field; no token at all is a 401 before anything runs.
        reader = hydra.token(alice, scopes=("orders:read",))
        out = graphql(http, reader, '{ stock(sku: "SKU-CABLE") { sku } }')
        assert out["errors"][0]["extensions"]["code"] == "PERMISSION_DENIED"
        anonymous = http.post("/graphql", json={"query": "{ __typename }"})  # noqa: ASYNC212
        assert anonymous.status_code == 401

    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


def test_gateways_register_in_consul_with_an_http_check_and_leave_on_stop(
    gateway: str, consul: ConsulAgent, nats_server: NatsServer, state_dir: Path, hydra: Hydra
) -> None:
    consul.wait_passing("gateway")
    with open(state_dir / "gateway-2.log", "a") as log:
        second = start_gateway(consul, nats_server, state_dir, hydra, log)
        try:
            consul.wait_passing("gateway", count=2)
            entries = consul.get("/v1/health/service/gateway?passing=1")
            assert isinstance(entries, list)
            ports = {e["Service"]["Port"] for e in entries}
            assert ports == {int(gateway.rsplit(":", 1)[1]), second.port}
            for e in entries:
                assert set(e["Service"]["Tags"]) == {"http", "edge"}
                (check,) = [c for c in e["Checks"] if c["ServiceID"]]
                assert check["Type"] == "http" and check["Status"] == "passing"
        finally:
            second.stop()
    instances = consul.get("/v1/catalog/service/gateway")
    assert isinstance(instances, list)
    assert [i["ServicePort"] for i in instances] == [int(gateway.rsplit(":", 1)[1])]


def test_openapi_document_validates_and_docs_page(http: httpx.Client) -> None:
    from openapi_spec_validator import validate

    doc = http.get("/openapi.json").json()
    validate(doc)
    assert set(doc["paths"]) == {
        "/v1/orders",
        "/v1/orders/{order_id}",
        "/v1/orders/{order_id}:watch",
        "/v1/orders/{order_id}:cancel",
        "/v1/stock/{sku}",
        "/v1/stock",
    }
    assert doc["paths"]["/v1/orders"]["post"]["security"] == [{"oauth2": ["orders:write"]}]
    page = http.get("/docs")
    assert page.status_code == 200 and "/v1/orders/{order_id}:cancel" in page.text


def test_schemathesis_finds_no_server_errors(
    gateway: str, hydra: Hydra, alice: OAuthClient, tmp_path: Path
) -> None:
    """Bounded: a few examples per operation, a time budget, its own client (rate limit)."""
    fuzzer = hydra.create_client(SCOPES, (AUDIENCE,), name="schemathesis")
    token = hydra.token(fuzzer)
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"), "run", f"{gateway}/openapi.json",
            "--checks", "not_a_server_error",
            "--header", f"Authorization: Bearer {token}",
            "--max-examples", "5",
            "--max-time", "45",
            "--request-timeout", "10",
            "--seed", "1",
            "--workers", "1",
            "--exclude-path-regex", ":watch$",  # a stream: covered above
            "--report-dir", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,  # its caches there
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
