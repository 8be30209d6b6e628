"""The server interceptor every service runs behind.

One wrap per call, in this order: the caller's identity (the SPIFFE URI of its client
certificate, from this mesh's trust domain), authorization of that identity for the method
(intentions or the allow-list), the deadline policy, then the handler with its incoming
deadline recorded for propagation, and errors turned into statuses: ``ServiceError`` as
its own code and details, a failed downstream call as a code of this service's own.
Health and reflection ("open methods") need an authenticated peer but no intention and
no deadline.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from services.mesh import deadlines
from services.mesh.authorization import Authorizer
from services.mesh.config import MeshPolicy
from services.mesh.errors import ServiceError
from services.mesh.identity import NoIdentity, identity_of

log = logging.getLogger("mesh.server")

_FORWARDED = {
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


class Rejected(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MeshServerInterceptor(grpc.aio.ServerInterceptor):
    """Authentication, authorization, deadline policy and error mapping for every call.

    ``authorizer`` None means the server runs plaintext (``--insecure``): no identities.
    """

    def __init__(
        self,
        policy: MeshPolicy,
        authorizer: Authorizer | None,
        trust_domain: Callable[[], str],
    ) -> None:
        self.policy = policy
        self.authorizer = authorizer
        self.trust_domain = trust_domain
        # Sent back as the `served-by` trailer, so a caller can see which instance answered.
        self.instance_id = ""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        return self._wrap(handler, details.method, self.policy.is_open(details.method))

    def _admit(self, context: grpc.aio.ServicerContext, method: str, open_method: bool) -> None:
        """Raise Rejected unless the caller may make this call now."""
        context.set_trailing_metadata((("served-by", self.instance_id),))
        if self.authorizer is not None:
            pems = context.auth_context().get("x509_pem_cert")
            if not pems:
                raise Rejected(grpc.StatusCode.UNAUTHENTICATED, "no client certificate")
            try:
                caller = identity_of(pems[0])
            except NoIdentity as exc:
                raise Rejected(
                    grpc.StatusCode.UNAUTHENTICATED, f"client certificate has no identity: {exc}"
                ) from exc
            if caller.trust_domain != self.trust_domain():
                raise Rejected(
                    grpc.StatusCode.UNAUTHENTICATED,
                    f"identity {caller} is not of this mesh's trust domain {self.trust_domain()}",
                )
            if not open_method:
                decision = self.authorizer.decide(caller, method)
                if not decision.allowed:
                    raise Rejected(
                        grpc.StatusCode.PERMISSION_DENIED,
                        f"{caller.service} may not call {method}: {decision.reason}",
                    )
        if not open_method:
            try:
                deadlines.check_incoming(self.policy.deadlines, method, context.time_remaining())
            except deadlines.DeadlineRejected as exc:
                raise Rejected(exc.code, exc.message) from exc

    async def _fail(self, context: grpc.aio.ServicerContext, method: str, exc: Exception) -> None:
        """Abort the call with the status ``exc`` stands for."""
        if isinstance(exc, Rejected):
            log.info("rejected %s: %s %s", method, exc.code.name, exc.message)
            await context.abort(exc.code, exc.message)
        if isinstance(exc, ServiceError):
            status = exc.to_rpc_status()
            await context.abort(
                exc.code,
                exc.message,
                trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
            )
        if isinstance(exc, grpc.aio.AioRpcError):
            code = exc.code() if exc.code() in _FORWARDED else grpc.StatusCode.INTERNAL
            log.warning("%s: downstream call failed: %s %s", method, exc.code().name, exc.details())
            await context.abort(
                code, f"a downstream call failed: {exc.code().name}: {exc.details()}"
            )
        if isinstance(exc, NotImplementedError):  # what generated servicer bases raise
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented")
        log.error("%s failed", method, exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}")

    def _wrap(
        self, handler: grpc.RpcMethodHandler, method: str, open_method: bool
    ) -> grpc.RpcMethodHandler:
        admit, fail = self._admit, self._fail

        def unary_response(inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                token = None
                try:
                    admit(context, method, open_method)
                    token = deadlines.enter_call(context.time_remaining())
                    return await inner(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await fail(context, method, exc)
                finally:
                    if token is not None:
                        deadlines.leave_call(token)

            return call

        def stream_response(inner: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
            async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                token = None
                try:
                    admit(context, method, open_method)
                    token = deadlines.enter_call(context.time_remaining())
                    result = inner(request, context)
                    if inspect.isasyncgen(result):
                        async for item in result:
                            yield item
                    else:  # a handler that writes with context.write()
                        await result
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await fail(context, method, exc)
                finally:
                    if token is not None:
                        deadlines.leave_call(token)

            return call

        codec = (handler.request_deserializer, handler.response_serializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(unary_response(handler.unary_unary), *codec)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                unary_response(handler.stream_unary), *codec
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                stream_response(handler.unary_stream), *codec
            )
        return grpc.stream_stream_rpc_method_handler(stream_response(handler.stream_stream), *codec)
