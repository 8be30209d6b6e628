"""The gateway process: ``python -m services.gateway`` (``main``).

Start-up: the mesh (identity ``gateway``), the issuer's keys, the routes of the contracts
(``build``), the listening socket and uvicorn; once uvicorn serves, registration in Consul
(like every service, with an HTTP check on ``/healthz``) and the ``MESH_READY {json}`` line,
so devstack's launcher starts it the same way as the services (``meshkit.lifecycle``).

Shutdown on SIGTERM/SIGINT (or when ``stop`` is set): uvicorn stops accepting and gives
requests in flight 5 seconds; then everything opened is closed in reverse order through
one exit stack: deregistration, the socket, the HTTP client, the mesh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from contextlib import AsyncExitStack

import httpx
import uvicorn
from starlette.routing import BaseRoute

from meshkit import Mesh
from meshkit import consul as consul_api
from meshkit.lifecycle import announce_ready, registered, stop_event
from meshkit.mesh import open_mesh
from meshkit.telemetry import logs
from services.gateway.auth import Authenticator, Jwks
from services.gateway.backend import Backend
from services.gateway.config import GatewayConfig
from services.gateway.console import Console
from services.gateway.routes import Gateway
from services.gateway.transcoding import annotated_files, discover

log = logging.getLogger("gateway")


async def build(config: GatewayConfig, stack: AsyncExitStack) -> tuple[Gateway, Mesh]:
    """The gateway on an opened mesh; what it opens is closed when ``stack`` closes."""
    mesh, _ = await open_mesh(config.mesh)
    stack.push_async_callback(mesh.close)
    http = httpx.AsyncClient(timeout=5.0)
    stack.push_async_callback(http.aclose)
    jwks = Jwks(config.issuer, http, min_refetch=config.policy.jwks_min_refetch)
    authenticator = Authenticator(jwks, config.audience, leeway=config.policy.leeway)
    backend = Backend(mesh, config.policy, config.mesh.policy.deadlines, mesh.end_user)

    def console(gateway: Gateway) -> list[BaseRoute]:
        return Console(
            config.console,
            gateway.principal,
            config.mesh.consul_http_addr,
            config.mesh.consul_token,
            http,
            config.mesh.trace_sink,
            config.mesh.intentions_dir,
        ).routes()

    gateway = Gateway(
        config.policy, backend, authenticator, discover(annotated_files()), config.issuer, console
    )
    for b in gateway.router.bindings:
        log.info("route %s %s -> %s", b.http_method, b.template.text, b.rpc)
    # Warm up: discovery of the services behind, and the issuer's keys (if it is up).
    for b in gateway.router.bindings:
        backend._callable(b.method)
    with contextlib.suppress(Exception):
        await jwks.key(None)
    return gateway, mesh


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _uvicorn(gateway: Gateway, config: GatewayConfig) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(
            gateway.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="websockets-sansio",
            ws_max_size=config.policy.max_body,
            timeout_graceful_shutdown=5,
        )
    )


def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for t in tasks:
        t.cancel()


async def serve(config: GatewayConfig, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set, or until SIGTERM/SIGINT when ``stop`` is None.

    uvicorn handles SIGTERM/SIGINT itself while it serves, and raises them again after its
    shutdown: ``stop_event``'s handlers then only set the event, so the exit stack closes
    everything cleanly instead of the signal ending the process.
    """
    logs.setup_logging("gateway", config.mesh.instance_id or "gateway")
    stop = stop_event(stop)
    async with AsyncExitStack() as stack:
        gateway, mesh = await build(config, stack)
        sock = _listen(config.host, config.port)
        stack.callback(sock.close)
        port = sock.getsockname()[1]
        url = f"http://{config.host}:{port}"
        instance_id = config.mesh.instance_id or f"gateway-{config.host}-{port}"
        server = _uvicorn(gateway, config)

        async def stop_when_asked() -> None:
            await stop.wait()
            server.should_exit = True

        async def announce() -> None:
            while not server.started:  # noqa: ASYNC110  (uvicorn has no event for it)
                await asyncio.sleep(0.02)
            # In Consul like every service, with an HTTP check on /healthz (not to be called
            # through the mesh: the edge is HTTP, and nothing inside calls it). Entered on
            # the stack: deregistered first at shutdown, however serving ends.
            await stack.enter_async_context(
                registered(
                    mesh.consul,
                    name="gateway",
                    instance_id=instance_id,
                    address=config.host,
                    port=port,
                    check=consul_api.http_check(instance_id, f"{url}/healthz"),
                    version=config.mesh.version,
                    tags=["http", "edge"],
                    meta={"issuer": config.issuer},
                )
            )
            announce_ready(
                {
                    "name": "gateway",
                    "instance_id": instance_id,
                    "address": config.host,
                    "port": port,
                    "url": url,
                    "issuer": config.issuer,
                    "audience": config.audience,
                }
            )
            log.info("gateway serving on %s (issuer %s)", url, config.issuer)

        helpers = [asyncio.create_task(stop_when_asked()), asyncio.create_task(announce())]
        stack.callback(_cancel, helpers)
        await server.serve(sockets=[sock])
    log.info("gateway stopped")


def main(argv: list[str] | None = None) -> None:
    config = GatewayConfig.from_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(serve(config))
