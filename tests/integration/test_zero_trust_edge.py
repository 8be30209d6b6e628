"""The edge's hardening end to end (issue 14, item 6): the gateway process with real Ory
Hydra tokens and the real mesh behind it.

A GraphQL WebSocket is closed with 4403 when its token expires (a client whose tokens
live 4 s), each operation on a socket takes a rate-limit token (refused on the socket as a
GraphQL error), requests without a valid token are 429 past their address's bucket, and a
chunked body over the limit is 413. Each refusal shows its own status; its allowed
counterpart succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from devstack.consul import ConsulAgent
from devstack.hydra import Hydra, OAuthClient
from devstack.nats import NatsServer
from devstack.services import ServiceProcess
from services.gateway.config import DEFAULT_GATEWAY_FILE
from tests.support.edge import AUDIENCE, SCOPES, start_gateway
from tests.support.edge import ORDER as GATEWAY_ORDER

pytestmark = pytest.mark.integration

RATE, BURST = 0.05, 5  # per client: a socket's connection and 4 operations, then refused
ANONYMOUS_BURST = 4
MAX_BODY = 4096
TOKEN_LIFESPAN = 4  # seconds, for the client whose socket outlives its token
ORDER = {**GATEWAY_ORDER, "idempotencyKey": "edge-chunked"}


@pytest.fixture(scope="module")
def hydra(state_dir: Path) -> Iterator[Hydra]:
    server = Hydra(log_path=state_dir / "hydra-edge.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(
    services: dict[str, ServiceProcess],
    consul: ConsulAgent,
    nats_server: NatsServer,
    state_dir: Path,
    hydra: Hydra,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A gateway of its own with low limits (gateway.toml's, changed), so that each one is
    reached in a few requests."""
    policy = DEFAULT_GATEWAY_FILE.read_text()
    for old, new in (
        ("anonymous_rate = 2.0", "anonymous_rate = 0.01"),
        ("anonymous_burst = 10", f"anonymous_burst = {ANONYMOUS_BURST}"),
        ("max_body = 65536", f"max_body = {MAX_BODY}"),
    ):
        assert old in policy, old
        policy = policy.replace(old, new)
    gateway_file = tmp_path_factory.mktemp("edge") / "gateway.toml"
    gateway_file.write_text(policy)
    with open(state_dir / "gateway-edge.log", "a") as log:
        proc = start_gateway(
            consul, nats_server, state_dir, hydra, log,
            "--gateway-file", str(gateway_file), "--rate", str(RATE), "--burst", str(BURST),
        )  # fmt: skip
        yield str(proc.info["url"])
        proc.stop()


def client(hydra: Hydra, name: str, lifespan: int | None = None) -> OAuthClient:
    """A client of its own (so a bucket of its own); its tokens live ``lifespan`` seconds."""
    registered = hydra.create_client(SCOPES, (AUDIENCE,), name=name)
    if lifespan is not None:
        hydra._send(
            "PUT",
            f"{hydra.admin_url}/admin/clients/{registered.client_id}/lifespans",
            {"client_credentials_grant_access_token_lifespan": f"{lifespan}s"},
        )
    return registered


def claims(token: str) -> dict[str, Any]:
    import jwt

    return dict(jwt.decode(token, options={"verify_signature": False}))


class GraphQLSocket:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.n = 0

    async def stock(self) -> dict[str, Any]:
        """One query; its ``next`` (then ``complete``) or its ``error`` message."""
        self.n += 1
        op = str(self.n)
        query = '{ stock(sku: "SKU-MOUSE") { sku } }'
        await self.ws.send(json.dumps({"id": op, "type": "subscribe", "payload": {"query": query}}))
        message = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
        if message["type"] == "next":
            done = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
            assert done == {"id": op, "type": "complete"}, done
        return dict(message)


@contextlib.asynccontextmanager
async def graphql_socket(gateway: str, token: str) -> AsyncIterator[GraphQLSocket]:
    url = gateway.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        yield GraphQLSocket(ws)


async def test_a_graphql_socket_is_closed_4403_when_its_token_expires(
    gateway: str, hydra: Hydra
) -> None:
    brief = hydra.token(client(hydra, "brief", lifespan=TOKEN_LIFESPAN))
    exp = claims(brief)["exp"]
    assert exp - time.time() <= TOKEN_LIFESPAN + 1
    lasting = hydra.token(client(hydra, "lasting"))
    async with graphql_socket(gateway, brief) as short:
        # Allowed while the token is valid.
        assert (await short.stock())["payload"]["data"]["stock"]["sku"] == "SKU-MOUSE"
        async with graphql_socket(gateway, lasting) as long:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(short.ws.recv(), TOKEN_LIFESPAN + 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
            assert "expired" in closed.value.rcvd.reason
            assert time.time() >= exp - 1  # closed by the timer at exp, not before
            # A socket whose token is valid is still served.
            assert (await long.stock())["type"] == "next"


async def test_each_operation_on_a_graphql_socket_takes_a_rate_limit_token(
    gateway: str, hydra: Hydra
) -> None:
    chatty = hydra.token(client(hydra, "chatty"))
    async with graphql_socket(gateway, chatty) as ws:  # the connection takes 1 of BURST
        answers = [await ws.stock() for _ in range(BURST)]
    assert [a["type"] for a in answers] == ["next"] * (BURST - 1) + ["error"]
    [error] = answers[-1]["payload"]
    assert error["extensions"]["code"] == "RESOURCE_EXHAUSTED", error
    assert error["extensions"]["httpStatus"] == 429 and error["extensions"]["retryAfter"] >= 1
    # Another client's socket has its own bucket.
    async with graphql_socket(gateway, hydra.token(client(hydra, "quiet"))) as ws:
        assert (await ws.stock())["type"] == "next"


def test_requests_without_a_valid_token_are_429_past_their_bucket(
    gateway: str, hydra: Hydra
) -> None:
    with httpx.Client(base_url=gateway, timeout=30) as http:
        statuses = [http.get("/v1/stock/SKU-MOUSE").status_code for _ in range(ANONYMOUS_BURST)]
        assert statuses == [401] * ANONYMOUS_BURST
        resp = http.get("/v1/stock/SKU-MOUSE", headers={"Authorization": "Bearer forged"})
        assert resp.status_code == 429, resp.text
        assert int(resp.headers["retry-after"]) >= 1
        assert "address 127.0.0.1" in resp.json()["message"]
        # A valid token from the same address is served.
        token = hydra.token(client(hydra, "valid"))
        resp = http.get("/v1/stock/SKU-MOUSE", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200, resp.text


def test_a_chunked_body_over_the_limit_is_413(gateway: str, hydra: Hydra) -> None:
    token = hydra.token(client(hydra, "uploader"))

    def chunked(body: dict[str, Any]) -> Iterator[bytes]:
        data = json.dumps(body).encode()
        for i in range(0, len(data), 1000):
            yield data[i : i + 1000]

    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=gateway, timeout=30) as http:
        big = {"paymentToken": "x" * (MAX_BODY * 2)}
        resp = http.post("/v1/orders", headers=headers, content=chunked(big))
        assert resp.status_code == 413, resp.text
        deep = {"items": json.loads("[" * 100 + "]" * 100)}
        resp = http.post("/v1/orders", headers=headers, content=chunked(deep))
        assert resp.status_code == 400 and "deeper than 64" in resp.json()["message"]
        # Within the limits, chunked too: placed.
        resp = http.post("/v1/orders", headers=headers, content=chunked(ORDER))
        assert resp.status_code == 200, resp.text
        assert resp.json()["order"]["status"] == "ORDER_STATUS_PENDING"
