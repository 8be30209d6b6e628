"""The gateway's routes: what a request goes through before and after its one mesh call.

Per request, in this order, and nothing reaches the mesh unless all pass: the requests in
flight (503, LimitConcurrency), the body's size (413) and JSON nesting (400) as it is read
(LimitBody), the route (404, 405), the bearer token (401; past the client address's
bucket for requests without a valid one, 429), the client's rate limit (429), the route's
scope (403), the request's content (400); then one mesh call with the caller's subject and
a deadline from the request's time budget, its answer as JSON, its error as
``google.rpc.Status`` with the standard HTTP status.

Routes: the REST routes of the contracts (transcoding.py), their server streams as NDJSON,
Server-Sent Events or a WebSocket on the same path (streams.py); ``/graphql``
(graphql.py); ``/openapi.json`` and ``/docs`` (openapi.py); ``/healthz``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from services.gateway import openapi, streams
from services.gateway.auth import Authenticator, Principal
from services.gateway.backend import Backend
from services.gateway.config import GatewayPolicy
from services.gateway.graphql import GatewayGraphQL
from services.gateway.jsonmap import BadInput, json_depth, too_deep
from services.gateway.ratelimit import RateLimiter
from services.gateway.status import EdgeError, bad_request, too_many_requests
from services.gateway.transcoding import Binding, Router

access_log = logging.getLogger("gateway.access")

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def too_large(limit: int) -> EdgeError:
    return EdgeError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"the request body is larger than {limit} bytes",
        http_status=413,
    )


def error_response(exc: EdgeError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.http_status, headers=exc.headers)


class LimitBody:
    """Reads a request's whole body before the app runs: over ``limit`` bytes it is 413,
    by Content-Length or as read (chunked bodies included), and JSON nested deeper than
    ``max_depth`` is 400, both before the token is even looked at. The app then reads the
    body from memory (at most ``limit`` bytes per request in flight)."""

    def __init__(self, app: ASGIApp, limit: int, max_depth: int = 64) -> None:
        self.app = app
        self.limit = limit
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await error_response(too_large(self.limit))(scope, receive, send)
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await error_response(too_large(self.limit))(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and json_depth(body) > self.max_depth:
            await error_response(bad_request(too_deep(self.max_depth).violations))(
                scope, receive, send
            )
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()  # the disconnect, for streaming responses
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class LimitConcurrency:
    """At most ``max_http`` HTTP requests in flight (503 with ``Retry-After`` past it) and
    ``max_websockets`` WebSockets open (closed with 1013, try again later). ``/healthz``
    is always answered: an overloaded gateway is busy, not broken."""

    def __init__(self, app: ASGIApp, max_http: int, max_websockets: int) -> None:
        self.app = app
        self.max_http = max_http
        self.max_websockets = max_websockets
        self.http = 0
        self.websockets = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") != "/healthz":
            if self.http >= self.max_http:
                await error_response(overloaded("requests in flight"))(scope, receive, send)
                return
            self.http += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self.http -= 1
        elif scope["type"] == "websocket":
            if self.websockets >= self.max_websockets:
                await receive()  # websocket.connect
                await send({"type": "websocket.accept"})
                await send(
                    {"type": "websocket.close", "code": 1013, "reason": "too many WebSockets"}
                )
                return
            self.websockets += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self.websockets -= 1
        else:
            await self.app(scope, receive, send)


def overloaded(what: str) -> EdgeError:
    return EdgeError(
        grpc.StatusCode.UNAVAILABLE,
        f"the gateway has too many {what}; try again shortly",
        headers={"Retry-After": "1"},
    )


class Gateway:
    """The edge's request handling; ``app`` is the ASGI application."""

    def __init__(
        self,
        policy: GatewayPolicy,
        backend: Backend,
        authenticator: Authenticator,
        bindings: list[Binding],
        issuer: str,
        extra_routes: Callable[[Gateway], list[BaseRoute]] | None = None,
    ) -> None:
        self.policy = policy
        self.backend = backend
        self.authenticator = authenticator
        self.limiter = RateLimiter(policy.rate, policy.burst)
        self.anonymous = RateLimiter(policy.anonymous_rate, policy.anonymous_burst)
        routed = [b for b in bindings if backend.scope(b.method) is not None]
        self.router = Router(routed)
        scopes = {b.method.full_name: backend.scope(b.method) or "" for b in routed}
        self.openapi = openapi.document(routed, scopes, issuer)
        self.graphql = GatewayGraphQL(
            backend,
            self.principal,
            limiter=self.limiter,
            max_operations=policy.ws_max_operations,
            max_subscriptions=policy.ws_max_subscriptions,
            max_json_depth=policy.max_json_depth,
        )
        routes = [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/openapi.json", self.openapi_json, methods=["GET"]),
            Route("/docs", self.docs, methods=["GET"]),
            Route("/graphql", _GraphQLGuard(self), methods=["GET", "POST"]),
            WebSocketRoute("/graphql", self.graphql),
            # Before the catch-all of the contracts' routes: the console (console/).
            *(extra_routes(self) if extra_routes else []),
            Route("/{path:path}", self.rest, methods=_METHODS),
            WebSocketRoute("/{path:path}", self.websocket),
        ]
        self.app: ASGIApp = LimitConcurrency(
            LimitBody(Starlette(routes=routes), policy.max_body, policy.max_json_depth),
            policy.max_concurrent,
            policy.max_websockets,
        )

    async def principal(self, authorization: str | None, address: str | None = None) -> Principal:
        """The caller (401 if the token is bad), within its rate limit (429 if not).

        Requests without a valid token are limited too, by a bucket per client ``address``:
        past it they are 429 instead of 401.
        """
        try:
            principal = await self.authenticator.authenticate(authorization)
        except EdgeError as exc:
            if exc.code == grpc.StatusCode.UNAUTHENTICATED:
                who = address or "unknown"
                wait = self.anonymous.take(who)
                if wait > 0:
                    raise too_many_requests(who, wait, kind="address") from exc
            raise
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
                authorization, query = streams.token_from_query(authorization, query)
            principal = await self.principal(authorization, _address(request))
            self.backend.authorize(binding.method, principal)
            body = await request.body()
            message = binding.build_request(values, query, body)
            budget = self.backend.budget(
                binding.method, started, request.headers.get("grpc-timeout")
            )
            if binding.server_streaming:
                # The first message (or the error instead of it) decides the HTTP status.
                stream = await streams.primed(
                    self.backend.stream(binding.method, message, principal, budget)
                )
                status = 200
                return streams.http_response(request, binding, stream)
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

    async def websocket(self, ws: WebSocket) -> None:
        """A server stream over a WebSocket (streams.relay); errors before the stream
        (route, token, scope, input) are refused with an error frame (streams.refuse)."""
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
            authorization, query = streams.token_from_query(ws.headers.get("authorization"), query)
            principal = await self.principal(authorization, _address(ws))
            self.backend.authorize(binding.method, principal)
            message = binding.build_request(values, query, None)
            budget = self.backend.budget(binding.method, started, ws.headers.get("grpc-timeout"))
            stream = await streams.primed(
                self.backend.stream(binding.method, message, principal, budget)
            )
        except (BadInput, EdgeError) as exc:
            await streams.refuse(
                ws, bad_request(exc.violations) if isinstance(exc, BadInput) else exc
            )
            return
        try:
            await streams.relay(ws, binding, stream)
        finally:
            access_log.info("WS %s %.1fms", raw_path, (time.monotonic() - started) * 1000)


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
                principal = await self.gateway.principal(
                    request.headers.get("authorization"), _address(request)
                )
            except EdgeError as exc:
                await error_response(exc)(scope, receive, send)
                return
            scope.setdefault("state", {})["principal"] = principal
        await self.gateway.graphql(scope, receive, send)


def _address(conn: Request | WebSocket) -> str | None:
    """The client's address, for the bucket of requests without a valid token."""
    return conn.client.host if conn.client else None
