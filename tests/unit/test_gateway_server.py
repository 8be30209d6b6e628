"""The gateway process's life in process (meshkit.lifecycle through one exit stack): it
registers in Consul once uvicorn serves, then prints MESH_READY; on stop it deregisters
first, then closes what ``build`` opened, in reverse order. The mesh, Consul and the
routes are stand-ins: what is under test is the order of things."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from meshkit import consul as consul_api
from meshkit.lifecycle import READY_PREFIX
from services.gateway import server
from services.gateway.config import GatewayConfig
from tests.support.polling import eventually


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "SERVING"})


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What reached Consul and what was closed, in order."""
    seen: list[Any] = []
    consul_client = object()

    async def build(config: GatewayConfig, stack: AsyncExitStack) -> tuple[Any, Any]:
        async def close(what: str) -> None:
            seen.append(("closed", what))

        stack.push_async_callback(close, "mesh")
        stack.push_async_callback(close, "http client")
        gateway = SimpleNamespace(app=Starlette(routes=[Route("/healthz", healthz)]))
        return gateway, SimpleNamespace(consul=consul_client)

    async def register(c: Any, **registration: Any) -> None:
        assert c is consul_client
        seen.append(("register", registration))

    async def deregister(c: Any, instance_id: str) -> None:
        seen.append(("deregister", instance_id))

    monkeypatch.setattr(server, "build", build)
    monkeypatch.setattr(server.logs, "setup_logging", lambda *a, **k: None)
    monkeypatch.setattr(consul_api, "register", register)
    monkeypatch.setattr(consul_api, "deregister", deregister)
    return seen


def ready_line(out: str) -> dict[str, Any] | None:
    lines = [line for line in out.splitlines() if line.startswith(READY_PREFIX)]
    return json.loads(lines[0].removeprefix(READY_PREFIX)) if lines else None


async def test_registers_when_serving_and_unwinds_in_reverse_on_stop(
    events: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    config = GatewayConfig.from_args(
        ["--port", "0", "--issuer", "https://issuer.test", "--audience", "aud"]
    )
    stop = asyncio.Event()
    serving = asyncio.create_task(server.serve(config, stop))
    out: list[str] = []

    def ready() -> dict[str, Any] | None:
        out.append(capsys.readouterr().out)
        return ready_line("".join(out))

    info = await eventually(ready, timeout=20, interval=0.02, what="the MESH_READY line")
    port = info["port"]
    assert port > 0
    assert info == {
        "name": "gateway",
        "instance_id": f"gateway-127.0.0.1-{port}",
        "address": "127.0.0.1",
        "port": port,
        "url": f"http://127.0.0.1:{port}",
        "issuer": "https://issuer.test",
        "audience": "aud",
    }
    # Registered before the line, with an HTTP check on the /healthz that answers.
    [(kind, registration)] = events
    assert kind == "register"
    assert registration["name"] == "gateway"
    assert registration["instance_id"] == info["instance_id"]
    assert registration["port"] == port
    assert registration["tags"] == ["http", "edge"]
    assert registration["meta"] == {"issuer": "https://issuer.test"}
    assert registration["check"]["HTTP"] == f"{info['url']}/healthz"
    async with httpx.AsyncClient() as http:
        assert (await http.get(registration["check"]["HTTP"])).status_code == 200

    stop.set()
    async with asyncio.timeout(20):
        await serving
    assert events[1:] == [
        ("deregister", info["instance_id"]),
        ("closed", "http client"),
        ("closed", "mesh"),
    ]
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_a_failed_start_closes_what_was_opened(events: list[Any]) -> None:
    """Nothing registered when the port is taken; the mesh is closed all the same."""
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    try:
        config = GatewayConfig.from_args(["--port", str(port)])
        with pytest.raises(OSError):
            await server.serve(config, asyncio.Event())
    finally:
        blocker.close()
        await blocker.wait_closed()
    assert events == [("closed", "http client"), ("closed", "mesh")]
