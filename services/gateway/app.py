"""The API gateway: the only public entry point, an ASGI app (Starlette, served by uvicorn).

Per request, in this order, and nothing reaches the mesh unless all pass: the route (404,
405), the bearer token (401), the client's rate limit (429), the route's scope (403), the
request's size (413) and content (400); then one mesh call with the caller's subject and
a deadline from the request's time budget, its answer as JSON, its error as
``google.rpc.Status`` with the standard HTTP status.

Routes: the REST routes of the contracts (transcoding.py), server streams as NDJSON,
Server-Sent Events (``Accept: text/event-stream``) or a WebSocket on the same path;
``/graphql`` (graphql.py); ``/openapi.json`` and ``/docs`` (openapi.py); ``/healthz``.

``python -m services.gateway`` prints ``MESH_READY {json}`` once it listens, like the
services, so devstack's launcher starts it the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import httpx
import uvicorn
from google.protobuf.message import Message
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from meshkit import Mesh
from meshkit import consul as consul_api
from meshkit.mesh import open_mesh
from meshkit.telemetry import logs
from services.gateway import openapi
from services.gateway.auth import Authenticator, Jwks, Principal, unauthorized
from services.gateway.backend import Backend
from services.gateway.config import GatewayConfig, GatewayPolicy
from services.gateway.graphql import GatewayGraphQL
from services.gateway.jsonmap import BadInput
from services.gateway.ratelimit import RateLimiter
from services.gateway.status import EdgeError, bad_request, too_many_requests
from services.gateway.transcoding import Binding, Router, annotated_files, discover

log = logging.getLogger("gateway")
access_log = logging.getLogger("gateway.access")

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
SSE_KEEPALIVE = 15.0


class BodyTooLarge(Exception):
    pass


def too_large(limit: int) -> EdgeError:
    return EdgeError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"the request body is larger than {limit} bytes",
        http_status=413,
    )


def error_response(exc: EdgeError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.http_status, headers=exc.headers)


class LimitBody:
    """Refuses request bodies over ``limit`` bytes (413), by Content-Length and as read."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await error_response(too_large(self.limit))(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracking_send)
        except BodyTooLarge:
            if not started:
                await error_response(too_large(self.limit))(scope, receive, send)


class Gateway:
    """The edge's request handling; ``app`` is the ASGI application."""

    def __init__(
        self,
        policy: GatewayPolicy,
        backend: Backend,
        authenticator: Authenticator,
        bindings: list[Binding],
        issuer: str,
    ) -> None:
        self.policy = policy
        self.backend = backend
        self.authenticator = authenticator
        self.limiter = RateLimiter(policy.rate, policy.burst)
        routed = [b for b in bindings if backend.scope(b.method) is not None]
        self.router = Router(routed)
        scopes = {b.method.full_name: backend.scope(b.method) or "" for b in routed}
        self.openapi = openapi.document(routed, scopes, issuer)
        self.graphql = GatewayGraphQL(backend, self.principal)
        routes = [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/openapi.json", self.openapi_json, methods=["GET"]),
            Route("/docs", self.docs, methods=["GET"]),
            Route("/graphql", _GraphQLGuard(self), methods=["GET", "POST"]),
            WebSocketRoute("/graphql", self.graphql),
            Route("/{path:path}", self.rest, methods=_METHODS),
            WebSocketRoute("/{path:path}", self.websocket),
        ]
        self.app: ASGIApp = LimitBody(Starlette(routes=routes), policy.max_body)

    async def principal(self, authorization: str | None) -> Principal:
        """The caller (401 if the token is bad), within its rate limit (429 if not)."""
        principal = await self.authenticator.authenticate(authorization)
        wait = self.limiter.take(principal.client_id)
        if wait > 0:
            raise too_many_requests(principal.client_id, wait)
        return principal

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "SERVING"})

    async def openapi_json(self, request: Request) -> Response:
        return JSONResponse(self.openapi)

    async def docs(self, request: Request) -> Response:
        return HTMLResponse(openapi.docs_page(self.openapi))

    def _route(self, method: str, raw_path: str) -> tuple[Binding, dict[str, str]]:
        match = self.router.match(method, raw_path)
        if isinstance(match, list):
            if match:
                raise EdgeError(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"{method} is not allowed here; allowed: {', '.join(match)}",
                    headers={"Allow": ", ".join(match)},
                    http_status=405,
                )
            raise EdgeError(grpc.StatusCode.NOT_FOUND, f"no route for {method} {raw_path}")
        return match

    async def rest(self, request: Request) -> Response:
        started = time.monotonic()
        raw_path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
        status = 500
        try:
            binding, values = self._route(request.method, raw_path)
            query = list(request.query_params.multi_items())
            authorization = request.headers.get("authorization")
            if binding.server_streaming:
                authorization, query = _token_from_query(authorization, query)
            principal = await self.principal(authorization)
            self.backend.authorize(binding.method, principal)
            body = await request.body()
            message = binding.build_request(values, query, body)
            budget = self.backend.budget(
                binding.method, started, request.headers.get("grpc-timeout")
            )
            if binding.server_streaming:
                # The first message (or the error instead of it) decides the HTTP status.
                stream = await _primed(
                    self.backend.stream(binding.method, message, principal, budget)
                )
                status = 200
                return self._stream_response(request, binding, stream)
            response = await self.backend.unary(binding.method, message, principal, budget)
            status = 200
            return JSONResponse(binding.response_json(response))
        except BadInput as exc:
            err = bad_request(exc.violations)
            status = err.http_status
            return error_response(err)
        except EdgeError as exc:
            status = exc.http_status
            return error_response(exc)
        finally:
            access_log.info(
                "%s %s %d %.1fms",
                request.method,
                raw_path,
                status,
                (time.monotonic() - started) * 1000,
            )

    def _stream_response(
        self, request: Request, binding: Binding, messages: AsyncIterator[Message]
    ) -> Response:
        if "text/event-stream" in request.headers.get("accept", ""):
            return StreamingResponse(
                _sse(binding, messages),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return StreamingResponse(_ndjson(binding, messages), media_type="application/x-ndjson")

    async def websocket(self, ws: WebSocket) -> None:
        """A server stream over a WebSocket: ``{"result": ...}`` frames, then a close.

        Errors before the stream (route, token, scope, input) are a ``{"error": Status}``
        frame and a close with 4000 + the HTTP status (4401, 4403, 4400, ...).
        """
        started = time.monotonic()
        await ws.accept()
        raw_path = ws.scope.get("raw_path", ws.url.path.encode()).decode("latin-1")
        try:
            binding, values = self._route("GET", raw_path)
            if not binding.server_streaming:
                raise EdgeError(
                    grpc.StatusCode.NOT_FOUND,
                    f"{raw_path} is not a stream; use HTTP",
                    http_status=404,
                )
            query = list(ws.query_params.multi_items())
            authorization, query = _token_from_query(ws.headers.get("authorization"), query)
            principal = await self.principal(authorization)
            self.backend.authorize(binding.method, principal)
            message = binding.build_request(values, query, None)
            budget = self.backend.budget(binding.method, started, ws.headers.get("grpc-timeout"))
            stream = await _primed(self.backend.stream(binding.method, message, principal, budget))
        except (BadInput, EdgeError) as exc:
            err = bad_request(exc.violations) if isinstance(exc, BadInput) else exc
            await ws.send_text(json.dumps({"error": err.body()}))
            await ws.close(code=4000 + err.http_status if err.http_status < 1000 else 4500)
            return
        closed = asyncio.create_task(_wait_closed(ws))
        try:
            async for item in _racing(stream, closed):
                await ws.send_text(json.dumps({"result": binding.response_json(item)}))
            await ws.close(code=1000)
        except EdgeError as exc:
            with contextlib.suppress(Exception):
                await ws.send_text(json.dumps({"error": exc.body()}))
                await ws.close(code=1011)
        except (WebSocketDisconnect, _ClientGone):
            pass
        finally:
            closed.cancel()
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
            access_log.info("WS %s %.1fms", raw_path, (time.monotonic() - started) * 1000)


class _ClientGone(Exception):
    pass


async def _primed(stream: AsyncIterator[Message]) -> AsyncIterator[Message]:
    """``stream`` with its first message already received: EdgeError raised here, if any."""
    try:
        first = await stream.__anext__()
    except StopAsyncIteration:
        return _chain(None, stream)
    return _chain(first, stream)


async def _chain(first: Message | None, rest: AsyncIterator[Message]) -> AsyncIterator[Message]:
    try:
        if first is not None:
            yield first
        async for m in rest:
            yield m
    finally:
        with contextlib.suppress(Exception):
            await rest.aclose()  # type: ignore[attr-defined]


async def _wait_closed(ws: WebSocket) -> None:
    """Returns when the client closes the socket (the stream then stops)."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _racing(
    stream: AsyncIterator[Message], closed: asyncio.Task[None]
) -> AsyncIterator[Message]:
    it = stream.__aiter__()
    while True:
        nxt = asyncio.ensure_future(it.__anext__())
        done, _ = await asyncio.wait({nxt, closed}, return_when=asyncio.FIRST_COMPLETED)
        if nxt not in done:
            nxt.cancel()
            with contextlib.suppress(BaseException):
                await nxt
            raise _ClientGone
        try:
            yield nxt.result()
        except StopAsyncIteration:
            return


def _token_from_query(
    authorization: str | None, query: list[tuple[str, str]]
) -> tuple[str | None, list[tuple[str, str]]]:
    """Streams may take the token as ``?access_token=`` (RFC 6750 §2.3): EventSource and
    browsers' WebSockets cannot set headers. It is not a field of the request."""
    tokens = [v for k, v in query if k == "access_token"]
    rest = [(k, v) for k, v in query if k != "access_token"]
    if len(tokens) > 1 or (tokens and authorization):
        raise unauthorized("give the token once (header or access_token)", "invalid_request")
    if tokens:
        authorization = f"Bearer {tokens[0]}"
    return authorization, rest


async def _sse(binding: Binding, messages: AsyncIterator[Message]) -> AsyncIterator[str]:
    """Server-Sent Events: a ``data:`` event per message, ``error`` on failure, ``end``."""
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for m in messages:
                await queue.put(("message", binding.response_json(m)))
            await queue.put(("end", {}))
        except EdgeError as exc:
            await queue.put(("error", exc.body()))

    task = asyncio.create_task(pump())
    n = 0
    try:
        while True:
            try:
                async with asyncio.timeout(SSE_KEEPALIVE):  # not wait_for: see mesh.outbox
                    kind, data = await queue.get()
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            n += 1
            event = "" if kind == "message" else f"event: {kind}\n"
            yield f"{event}id: {n}\ndata: {json.dumps(data)}\n\n"
            if kind != "message":
                return
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        with contextlib.suppress(Exception):
            await messages.aclose()  # type: ignore[attr-defined]


async def _ndjson(binding: Binding, messages: AsyncIterator[Message]) -> AsyncIterator[str]:
    """grpc-gateway's stream form: one ``{"result": ...}`` line each, ``{"error": ...}`` last."""
    try:
        async for m in messages:
            yield json.dumps({"result": binding.response_json(m)}) + "\n"
    except EdgeError as exc:
        yield json.dumps({"error": exc.body()}) + "\n"


class _GraphQLGuard:
    """/graphql over HTTP: the token (401) and rate limit (429) before strawberry runs.

    The GraphiQL page itself (a browser's GET without a query) needs no token.
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        ide = (
            request.method == "GET"
            and "query" not in request.query_params
            and "text/html" in request.headers.get("accept", "")
        )
        if not ide:
            try:
                principal = await self.gateway.principal(request.headers.get("authorization"))
            except EdgeError as exc:
                await error_response(exc)(scope, receive, send)
                return
            scope.setdefault("state", {})["principal"] = principal
        await self.gateway.graphql(scope, receive, send)


async def build(config: GatewayConfig) -> tuple[Gateway, Mesh, Callable[[], Awaitable[None]]]:
    """The gateway on an opened mesh; returns it, the mesh and what closes both."""
    mesh, _ = await open_mesh(config.mesh)
    http = httpx.AsyncClient(timeout=5.0)
    jwks = Jwks(config.issuer, http, min_refetch=config.policy.jwks_min_refetch)
    authenticator = Authenticator(jwks, config.audience, leeway=config.policy.leeway)
    backend = Backend(mesh, config.policy, config.mesh.policy.deadlines, mesh.end_user)
    gateway = Gateway(
        config.policy, backend, authenticator, discover(annotated_files()), config.issuer
    )
    for b in gateway.router.bindings:
        log.info("route %s %s -> %s", b.http_method, b.template.text, b.rpc)
    # Warm up: discovery of the services behind, and the issuer's keys (if it is up).
    for b in gateway.router.bindings:
        backend._callable(b.method)
    with contextlib.suppress(Exception):
        await jwks.key(None)

    async def close() -> None:
        await http.aclose()
        await mesh.close()

    return gateway, mesh, close


async def serve(config: GatewayConfig, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set, or until SIGTERM/SIGINT when ``stop`` is None."""
    logs.setup_logging("gateway", config.mesh.instance_id or "gateway")
    gateway, mesh, close = await build(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
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
    if stop is None:
        # uvicorn handles SIGTERM/SIGINT while it serves, and raises them again after
        # shutdown: handled here they only set an event, so the mesh closes cleanly.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

    async def stop_when_asked() -> None:
        await stop.wait()
        server.should_exit = True

    instance_id = config.mesh.instance_id or f"gateway-{config.host}-{port}"
    registered = False

    async def announce() -> None:
        nonlocal registered
        while not server.started:  # noqa: ASYNC110  (uvicorn has no event for it)
            await asyncio.sleep(0.02)
        # In Consul like every service, with an HTTP check on /healthz (not to be called
        # through the mesh: the edge is HTTP, and nothing inside calls it).
        url = f"http://{config.host}:{port}"
        await consul_api.register(
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
        registered = True
        ready = {
            "name": "gateway",
            "instance_id": instance_id,
            "address": config.host,
            "port": port,
            "url": url,
            "issuer": config.issuer,
            "audience": config.audience,
        }
        print("MESH_READY " + json.dumps(ready), flush=True)
        log.info("gateway serving on http://%s:%d (issuer %s)", config.host, port, config.issuer)

    helpers = [asyncio.create_task(stop_when_asked()), asyncio.create_task(announce())]
    try:
        await server.serve(sockets=[sock])
    finally:
        for t in helpers:
            t.cancel()
        if registered:
            await consul_api.deregister(mesh.consul, instance_id)
        await close()
        log.info("gateway stopped")


def main(argv: list[str] | None = None) -> None:
    config = GatewayConfig.from_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(serve(config))
