"""The mesh console at ``/console``: a page (console/, built by scripts/install-console.sh)
and its API under ``/console/api/``, behind the gateway's own OAuth2 checks.

Every API call needs a bearer token (Ory Hydra's JWT, as for the REST routes) with the
scope ``console:read``; the admin actions (an intention flipped, a fault scenario toggled)
need ``console:admin`` as well, and are off unless the gateway was given a Consul token
for them (``--console-admin-token-file``; ``docs/console.md``). The page itself and its
assets are public (they hold no data); it takes its token from the sign-in link's
fragment (``/console#token=...``, never sent to a server) or a pasted one.

- ``GET  /console/api/session``          who the token is, its scopes, whether admin is on
- ``GET  /console/api/topology``         services, instances, health, edges with traffic
- ``GET  /console/api/faults``           the scenarios of infra/faults/, which are active
- ``GET  /console/api/orders/{id}/trace`` the order's traces from the trace sink
- ``POST /console/api/intentions``       ``{source, destination, action}``    (admin)
- ``POST /console/api/faults/{name}``    ``{active: true|false}``               (admin)

Orders themselves go through the gateway's REST routes (``/v1/orders``, WatchOrder as
Server-Sent Events), with the same token's ``orders:*`` scopes.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from meshkit.rpc.faults import decode
from services.gateway.auth import Principal
from services.gateway.console.admin import Admin, AdminError, scenarios
from services.gateway.console.config import ADMIN_SCOPE, READ_SCOPE, ConsoleConfig
from services.gateway.console.topology import Topology
from services.gateway.console.traces import order_traces
from services.gateway.status import EdgeError

log = logging.getLogger("gateway.console")

Authenticate = Callable[[str | None, str | None], Awaitable[Principal]]

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:;"
        " style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
NOT_BUILT = """<!doctype html><title>meshkit console</title>
<p>The console's page is not built: run <code>bash scripts/install-console.sh</code>
(<code>make setup</code> does).</p>"""


def _error(exc: EdgeError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.http_status, headers=exc.headers)


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


class Console:
    def __init__(
        self,
        config: ConsoleConfig,
        authenticate: Authenticate,
        consul_addr: str,
        consul_token: str,
        http: httpx.AsyncClient,
        trace_sink: Path | None,
        intentions_dir: Path,
    ) -> None:
        self.config = config
        self.authenticate = authenticate
        self.topology = Topology(consul_addr, consul_token, http)
        self.trace_sink = trace_sink
        self.admin: Admin | None = None
        if config.admin_token_file is not None:
            token = config.admin_token_file.read_text().strip()
            self.admin = Admin(consul_addr, token, http, intentions_dir, config.faults_dir)
            log.warning(
                "console admin actions are ON: this gateway holds the Consul token of %s"
                " (intentions write, mesh/faults/ write); tokens with %s may use them",
                config.admin_token_file,
                ADMIN_SCOPE,
            )
        else:
            log.info("console admin actions are off (no --console-admin-token-file)")

    def routes(self) -> list[BaseRoute]:
        api = [
            ("/session", self.session, "GET", READ_SCOPE),
            ("/topology", self.get_topology, "GET", READ_SCOPE),
            ("/faults", self.faults, "GET", READ_SCOPE),
            ("/orders/{order_id}/trace", self.trace, "GET", READ_SCOPE),
            ("/intentions", self.set_intention, "POST", ADMIN_SCOPE),
            ("/faults/{name}", self.set_fault, "POST", ADMIN_SCOPE),
        ]
        assets = self.config.dist / "assets"
        return [
            Route("/console", self.page, methods=["GET"]),
            Route("/console/", self.page, methods=["GET"]),
            Mount("/console/assets", StaticFiles(directory=assets, check_dir=False)),
            *(
                Route(f"/console/api{path}", self._guard(handler, scope), methods=[method])
                for path, handler, method, scope in api
            ),
        ]

    async def page(self, request: Request) -> Response:
        index = self.config.dist / "index.html"
        if not index.is_file():
            return HTMLResponse(NOT_BUILT, status_code=503)
        return FileResponse(index, headers=PAGE_HEADERS)

    def _guard(
        self, handler: Callable[[Request, Principal], Awaitable[Response]], scope: str
    ) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            try:
                client = request.client.host if request.client else None
                principal = await self.authenticate(request.headers.get("authorization"), client)
                principal.require(READ_SCOPE)
                principal.require(scope)
            except EdgeError as exc:
                return _error(exc)
            try:
                return await handler(request, principal)
            except (httpx.HTTPError, OSError) as exc:
                log.warning("console %s: %s", request.url.path, exc)
                return _bad(f"Consul or an instance did not answer: {exc}", 502)

        return guarded

    async def session(self, request: Request, principal: Principal) -> Response:
        return JSONResponse(
            {
                "subject": principal.subject,
                "scopes": sorted(principal.scopes),
                "admin": self.admin is not None and ADMIN_SCOPE in principal.scopes,
                "admin_enabled": self.admin is not None,
                "refresh_s": self.config.refresh,
                "traces": self.trace_sink is not None,
            }
        )

    async def get_topology(self, request: Request, principal: Principal) -> Response:
        return JSONResponse(await self.topology.snapshot())

    async def faults(self, request: Request, principal: Principal) -> Response:
        entries = await self.topology.consul_get("/v1/kv/mesh/faults/?recurse=true") or []
        active = {
            f.name for item in entries for f in decode(base64.b64decode(item.get("Value") or ""))
        }
        return JSONResponse(
            {
                "scenarios": [
                    {
                        "name": name,
                        "service": f.service,
                        "summary": f.summary(),
                        "description": f.description,
                        "active": name in active,
                    }
                    for name, f in scenarios(self.config.faults_dir).items()
                ]
            }
        )

    async def trace(self, request: Request, principal: Principal) -> Response:
        order_id = request.path_params["order_id"]
        if not order_id or len(order_id) > 128:
            return _bad("order_id: must be 1 to 128 characters")
        return JSONResponse(await order_traces(self.trace_sink, order_id))

    async def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            raise AdminError(f"the body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise AdminError("the body must be a JSON object")
        return body

    def _admin(self) -> Admin:
        if self.admin is None:
            raise AdminError(
                "admin actions are off: the gateway runs without --console-admin-token-file"
                " (make run CONSOLE_ADMIN=1)"
            )
        return self.admin

    async def set_intention(self, request: Request, principal: Principal) -> Response:
        try:
            admin = self._admin()
            body = await self._body(request)
            names = await self.topology.consul_get("/v1/catalog/services") or {}
            for field in ("source", "destination"):
                if body.get(field) not in names:
                    raise AdminError(f"{field}: must be a registered service")
            log.warning(
                "console: %s asks intention %s -> %s: %s",
                principal.subject,
                body["source"],
                body["destination"],
                body.get("action"),
            )
            done = await admin.set_intention(
                str(body["source"]), str(body["destination"]), str(body.get("action"))
            )
        except AdminError as exc:
            return _bad(str(exc), 503 if self.admin is None else 400)
        return JSONResponse(done)

    async def set_fault(self, request: Request, principal: Principal) -> Response:
        try:
            admin = self._admin()
            body = await self._body(request)
            if not isinstance(body.get("active"), bool):
                raise AdminError("active: must be true or false")
            log.warning(
                "console: %s sets fault %s active=%s",
                principal.subject,
                request.path_params["name"],
                body["active"],
            )
            done = await admin.set_fault(request.path_params["name"], body["active"])
        except AdminError as exc:
            return _bad(str(exc), 503 if self.admin is None else 400)
        return JSONResponse(done)
