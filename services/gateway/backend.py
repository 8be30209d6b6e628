"""The gateway's side of the mesh: an ordinary mesh client with the identity ``gateway``.

Every call carries the end user's subject and client id as metadata (see
meshkit/subject.py) and a deadline taken from the edge request's time budget: the
budget starts when the request arrives (so time spent on the token, the body and the
rate limiter counts), is at most the client's ``Grpc-Timeout`` header and the method's
maximum in infra/mesh/mesh.toml, and defaults to the gateway's request timeout (unary)
or the method's default deadline (streams, e.g. WatchOrder's 300 s).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from meshkit.config import DeadlinePolicy
from meshkit.errors import FieldViolation
from meshkit.mesh import Mesh
from meshkit.rpc.descriptors import grpc_module
from meshkit.security.end_user import EndUser
from services.gateway.auth import Principal
from services.gateway.config import GatewayPolicy
from services.gateway.status import EdgeError, bad_request, from_rpc_error

_GRPC_TIMEOUT = re.compile(r"^(\d{1,8})([HMSmun])$")
_UNIT = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
# A shorter budget is not worth starting a call for (a client error, not a 504).
MIN_BUDGET = 0.05


def parse_grpc_timeout(text: str) -> float:
    """Seconds of a gRPC timeout value (``10S``, ``500m``); ValueError if malformed."""
    m = _GRPC_TIMEOUT.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a gRPC timeout (e.g. 10S, 500m)")
    return int(m.group(1)) * _UNIT[m.group(2)]


@dataclass(frozen=True)
class Budget:
    """Until when (``time.monotonic()``) an edge request may keep the mesh busy."""

    deadline: float

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


class Backend:
    """Calls RPCs by descriptor for an authenticated principal, within a budget."""

    def __init__(
        self, mesh: Mesh, policy: GatewayPolicy, deadlines: DeadlinePolicy, end_user: EndUser
    ) -> None:
        self._mesh = mesh
        self._end_user = end_user
        self._policy = policy
        self._deadlines = deadlines
        self._callables: dict[str, Callable[..., Any]] = {}

    def scope(self, method: MethodDescriptor) -> str | None:
        """The scope a token needs to call ``method``; None if the gateway does not route it."""
        route = self._policy.route(method.containing_service)
        return None if route is None else route.scope(method)

    def budget(self, method: MethodDescriptor, started: float, grpc_timeout: str | None) -> Budget:
        """The time budget of a request that arrived at ``started`` (monotonic)."""
        rpc = f"/{method.containing_service.full_name}/{method.name}"
        limits = self._deadlines.for_method(rpc)
        default = limits.default if method.server_streaming else self._policy.request_timeout
        seconds = min(default, limits.max)
        if grpc_timeout:
            try:
                asked = parse_grpc_timeout(grpc_timeout)
            except ValueError as exc:
                raise bad_request([FieldViolation("Grpc-Timeout", str(exc))]) from exc
            if asked < MIN_BUDGET:
                raise bad_request(
                    [FieldViolation("Grpc-Timeout", f"must be at least {MIN_BUDGET * 1000:g}m")]
                )
            seconds = min(asked, limits.max)
        return Budget(started + seconds)

    def authorize(self, method: MethodDescriptor, principal: Principal) -> None:
        """403 unless ``principal``'s token has the method's scope (404 if not routed)."""
        scope = self.scope(method)
        if scope is None:
            raise EdgeError(grpc.StatusCode.NOT_FOUND, f"{method.full_name} is not served here")
        principal.require(scope)

    async def unary(
        self, method: MethodDescriptor, request: Message, principal: Principal, budget: Budget
    ) -> Message:
        timeout = self._timeout(budget)
        try:
            response: Message = await self._callable(method)(
                request,
                timeout=timeout,
                metadata=self._metadata(principal),
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc
        return response

    async def stream(
        self, method: MethodDescriptor, request: Message, principal: Principal, budget: Budget
    ) -> AsyncIterator[Message]:
        """The messages of a server stream; EdgeError when it fails."""
        timeout = self._timeout(budget)
        call = self._callable(method)(
            request,
            timeout=timeout,
            metadata=self._metadata(principal),
        )
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            if hasattr(call, "cancel"):
                call.cancel()

    def _metadata(self, principal: Principal) -> tuple[tuple[str, str], ...]:
        return self._end_user.metadata(principal.subject, principal.client_id)

    def _timeout(self, budget: Budget) -> float:
        left = budget.remaining()
        if left <= self._deadlines.min_remaining:
            raise EdgeError(
                grpc.StatusCode.DEADLINE_EXCEEDED, "the request's time budget ran out at the edge"
            )
        return left

    def _callable(self, method: MethodDescriptor) -> Callable[..., Any]:
        if method.full_name not in self._callables:
            service = method.containing_service
            route = self._policy.route(service)
            if route is None:
                raise EdgeError(grpc.StatusCode.NOT_FOUND, f"{service.full_name} is not routed")
            module = grpc_module(service.file)
            stub = self._mesh.stub(getattr(module, f"{service.name}Stub"), route.mesh_name)
            self._callables[method.full_name] = _Bound(stub, method.name)
        return self._callables[method.full_name]


class _Bound:
    """``stub.<Method>`` looked up at each call (the mesh's Stub follows channel rebuilds)."""

    def __init__(self, stub: Any, name: str) -> None:
        self._stub = stub
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._stub, self._name)(*args, **kwargs)
