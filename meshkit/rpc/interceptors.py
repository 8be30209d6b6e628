"""The server interceptor every service runs behind.

The runtime applies its wrap at registration (``WrappingServer``: each method handler
behind it, looked up per call by the server's generic handlers), which spares the calls
grpc's interceptor chain; ``MeshServerInterceptor`` is also a ``grpc.aio`` interceptor,
for a server built with ``interceptors=[...]``, with the same wrap.

One wrap per call, in this order: the caller's identity (the SPIFFE URI of its client
certificate, from this mesh's trust domain), authorization of that identity for the method
(intentions or the allow-list), the deadline policy (with the method's usual time on this
instance, ``admission``), the method's maximum in flight (load shedding), then the handler
with its incoming deadline recorded for propagation, and errors turned into statuses:
``ServiceError`` as its own code and details, a failed downstream call as a code of this
service's own. A caller that cancels cancels the handler's task (grpc.aio does), and with
it the mesh stubs' calls it awaits: the downstream servers see them cancelled.
Health and reflection ("open methods") need an authenticated peer but no intention and
no deadline.

Per call it does only what a call needs: the identity is read from the call
(``peer_identities``, which TLS verified), but a peer already admitted to a method is not
decided again until the intentions or the trust domain change (``_admitter``); the
method's deadline limits, gate, metrics and span starter are bound once per method.

The same wrap keeps the RED metrics (plain numbers per method, see ``telemetry.metrics``),
names the method for log lines (``telemetry.logs.current_method``) and writes the access
line of each failed call, and of every call with ``--access-log``: method, status and
duration, under the call's trace and span ids. It also opens the call's server span
(``telemetry.tracing.ServerSpans``: the caller's trace context from the metadata;
attributes only for sampled spans) rather than stacking OpenTelemetry's own grpc server
interceptor, which does more work per call (bench/README.md has the figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import grpc

from meshkit.config import MeshPolicy
from meshkit.errors import ServiceError
from meshkit.rpc import deadlines
from meshkit.rpc.admission import Admission, Gate
from meshkit.security.authorization import Authorizer
from meshkit.security.identity import NoIdentity, identity_of_peer
from meshkit.telemetry.logs import AccessLog, current_method
from meshkit.telemetry.metrics import Metrics, RpcMetrics
from meshkit.telemetry.tracing import ServerSpans

if TYPE_CHECKING:
    from meshkit.rpc.faults import Faults

log = logging.getLogger("mesh.server")

_FORWARDED = {
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


# The incoming call's metadata as grpc hands it to ``intercept_service``, which runs in the
# task that then runs the handler: read there, where ``invocation_metadata()`` would
# build it again for every call.
_call_metadata: contextvars.ContextVar[Sequence[tuple[str, Any]] | None] = contextvars.ContextVar(
    "call_metadata", default=None
)
# Most peers the admission cache of one method holds before it starts afresh.
_MAX_PEERS = 1024


class WrappingServer:
    """What a servicer is registered on (``add_*Servicer_to_server(servicer, this)``): the
    server's generic handlers, each behind the interceptor's wrap.

    The same wrap as ``intercept_service``, reached without grpc's interceptor chain (two
    coroutines and a partial per call): a server built with ``grpc.aio.server()`` and no
    interceptors asks each handler's ``service()`` directly, in the call's task. Methods
    are registered as generic ones only (a registered-method handler would bypass the
    wrap), the pre-registered ones too, in case the generated code registers them alone.
    """

    def __init__(self, server: grpc.aio.Server, interceptor: MeshServerInterceptor) -> None:
        self._server = server
        self._interceptor = interceptor
        self._inner: list[grpc.GenericRpcHandler] = []

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._inner.extend(handlers)
        self._server.add_generic_rpc_handlers(
            tuple(_Wrapped(h, self._interceptor) for h in handlers)
        )

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        """Served as generic ones, unless a generic handler serves them already (the
        generated code registers a service both ways): not twice in every lookup."""
        served = all(self._serves(f"/{service}/{name}") for name in handlers)
        if not served:
            self.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, handlers)])

    def _serves(self, method: str) -> bool:
        details = _Details(method, ())
        return any(h.service(details) is not None for h in self._inner)


class _Details(NamedTuple):
    """A method's call details, to ask a generic handler whether it serves it."""

    method: str
    invocation_metadata: tuple[tuple[str, Any], ...]


class _Wrapped(grpc.GenericRpcHandler):
    """A generic handler whose method handlers come behind the interceptor's wrap."""

    def __init__(self, inner: grpc.GenericRpcHandler, interceptor: MeshServerInterceptor) -> None:
        self._service = inner.service
        self._wrapped = interceptor.wrapped

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return self._wrapped(self._service(details), details)


class Rejected(Exception):
    """A call refused by the mesh; ``caller``: who made it, when known by then (the
    metrics by caller count the refusal on that edge)."""

    def __init__(self, code: grpc.StatusCode, message: str, caller: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.caller = caller


class MeshServerInterceptor(grpc.aio.ServerInterceptor):
    """Authentication, authorization, deadline policy and error mapping for every call.

    ``authorizer`` None means the server runs plaintext (``--insecure``): no identities.
    """

    def __init__(
        self,
        policy: MeshPolicy,
        authorizer: Authorizer | None,
        trust_domain: Callable[[], str],
        metrics: Metrics | None = None,
        access_log: AccessLog | None = None,
        spans: ServerSpans | None = None,
    ) -> None:
        self.policy = policy
        self.authorizer = authorizer
        self.trust_domain = trust_domain
        self.metrics = metrics or Metrics()
        self.access_log = access_log
        self.spans = spans
        self.admission = Admission(policy.admission, self.metrics.shed)
        # Injected faults (meshkit.rpc.faults), None when none is active: a method's wrap
        # binds its injector and set_faults() re-wraps, so without one a call pays nothing.
        self.faults: Faults | None = None
        # Sent back as the `served-by` trailer, so a caller can see which instance answered.
        self._served_by: tuple[tuple[str, str], ...] = (("served-by", ""),)
        # Per method: the servicer's handler and its wrap (built once, reused by every call).
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        return self.wrapped(await continuation(details), details)

    def wrapped(
        self, handler: grpc.RpcMethodHandler | None, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        """``handler`` (the servicer's, for the call ``details`` names) behind the mesh's
        wrap: built once per method, then looked up. It runs in the call's own task."""
        if handler is None:
            return handler
        _call_metadata.set(details.invocation_metadata)
        method = details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, method, self.policy.is_open(method))
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    @property
    def instance_id(self) -> str:
        return self._served_by[0][1]

    @instance_id.setter
    def instance_id(self, value: str) -> None:
        self._served_by = (("served-by", value),)

    def set_faults(self, faults: Faults | None) -> None:
        """The faults to inject from now on (None: none); the next call of each method
        gets a new wrap, calls in flight keep theirs."""
        self.faults = faults or None
        self._wrapped.clear()

    def _admitter(
        self, method: str, open_method: bool, gate: Gate
    ) -> Callable[[grpc.aio.ServicerContext], tuple[str, float | None]]:
        """What admits a call of ``method``: it raises Rejected unless the caller may make
        this call now, and else returns the caller's service name ("" without
        authentication) and the call's time remaining; the call then holds one of the
        method's slots in flight (``gate.leave()`` when it ends).

        A peer admitted once is known by its certificate's identities (``peer_identities``,
        which TLS verified for this call) until the authorizer's ``generation`` or the
        trust domain changes: the intention decision is not made again on every call."""
        authorizer, trust_domain = self.authorizer, self.trust_domain
        keep = hasattr(authorizer, "generation")
        admitted: dict[tuple[bytes, ...], str] = {}
        stamp: list[tuple[int, str] | None] = [None]  # what the admitted peers hold for
        policy = self.policy.deadlines
        longest = policy.for_method(method).max + deadlines.IN_FLIGHT_SLACK
        shortest = policy.min_remaining

        def admit(context: grpc.aio.ServicerContext) -> tuple[str, float | None]:
            context.set_trailing_metadata(self._served_by)
            who = ""
            if authorizer is not None:
                peer = context.peer_identities()
                if not peer:
                    raise Rejected(grpc.StatusCode.UNAUTHENTICATED, "no client certificate")
                key = tuple(peer)
                now = (authorizer.generation, trust_domain()) if keep else None  # type: ignore[attr-defined]
                if now != stamp[0]:
                    admitted.clear()
                    stamp[0] = now
                known = admitted.get(key)
                if known is None:
                    who = self._authorize(peer, method, open_method)
                    if keep:
                        if len(admitted) >= _MAX_PEERS:
                            admitted.clear()
                        admitted[key] = who
                else:
                    who = known
            remaining = context.time_remaining()
            if not open_method and (
                remaining is None
                or remaining > longest
                or remaining < shortest
                or remaining < gate.need
            ):
                try:
                    deadlines.check_incoming(policy, method, remaining, gate.need)
                except deadlines.DeadlineRejected as exc:
                    if exc.code is grpc.StatusCode.DEADLINE_EXCEEDED:
                        gate.refused()
                    raise Rejected(exc.code, exc.message, who) from exc
            if not gate.enter():
                raise Rejected(grpc.StatusCode.RESOURCE_EXHAUSTED, gate.full_message, who)
            return who, remaining

        return admit

    def _authorize(self, peer: Sequence[bytes], method: str, open_method: bool) -> str:
        """The caller's service name if its identity (the SPIFFE id among ``peer``'s) is of
        this mesh's trust domain and may call ``method``; else Rejected."""
        try:
            caller = identity_of_peer(peer)
        except NoIdentity as exc:
            raise Rejected(
                grpc.StatusCode.UNAUTHENTICATED, f"client certificate has no identity: {exc}"
            ) from exc
        who = caller.service
        if caller.trust_domain != self.trust_domain():
            raise Rejected(
                grpc.StatusCode.UNAUTHENTICATED,
                f"identity {caller} is not of this mesh's trust domain {self.trust_domain()}",
                who,
            )
        if not open_method:
            assert self.authorizer is not None
            decision = self.authorizer.decide(caller, method)
            if not decision.allowed:
                raise Rejected(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{caller.service} may not call {method}: {decision.reason}",
                    who,
                )
        return who

    def _status(
        self, method: str, exc: Exception
    ) -> tuple[grpc.StatusCode, str, tuple[tuple[str, bytes], ...]]:
        """The status ``exc`` stands for: code, message and trailing metadata."""
        if isinstance(exc, Rejected):
            log.info("rejected %s: %s %s", method, exc.code.name, exc.message)
            return exc.code, exc.message, ()
        if isinstance(exc, ServiceError):
            status = exc.to_rpc_status()
            return (
                exc.code,
                exc.message,
                (("grpc-status-details-bin", status.SerializeToString()),),
            )
        if isinstance(exc, grpc.aio.AioRpcError):
            code = exc.code() if exc.code() in _FORWARDED else grpc.StatusCode.INTERNAL
            log.warning("%s: downstream call failed: %s %s", method, exc.code().name, exc.details())
            return code, f"a downstream call failed: {exc.code().name}: {exc.details()}", ()
        if isinstance(exc, NotImplementedError):  # what generated servicer bases raise
            return grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented", ()
        log.error("%s failed", method, exc_info=exc)
        return grpc.StatusCode.INTERNAL, f"internal error in {method}", ()

    def _done(
        self,
        method: str,
        rpc: RpcMetrics,
        code: grpc.StatusCode,
        message: str,
        started: float,
        caller: str = "",
    ) -> float:
        """Counts the finished call and writes its access log line (always when it failed);
        returns the call's duration in seconds."""
        took = rpc.done(code, started, caller)
        access = self.access_log
        if access is not None and (access.every_call or code is not grpc.StatusCode.OK):
            access.write(method, code.name, took * 1000.0, message)
        return took

    def _wrap(
        self, handler: grpc.RpcMethodHandler, method: str, open_method: bool
    ) -> grpc.RpcMethodHandler:
        status, done = self._status, self._done
        rpc = self.metrics.rpc(method)
        spans = self.spans or ServerSpans(None)
        start_span, end_span = spans.starter(method), spans.end
        ok, cancelled = grpc.StatusCode.OK, grpc.StatusCode.CANCELLED
        streaming = handler.unary_stream is not None or handler.stream_stream is not None
        gate = (
            Gate(method, 0, deadline_aware=False)  # open methods: never refused, not counted
            if open_method
            else self.admission.gate(method, streaming=streaming)
        )
        leave = gate.leave
        admit = self._admitter(method, open_method, gate)
        faults = self.faults
        inject = faults.injector(method) if faults and not open_method else None
        metadata_of = _call_metadata.get

        def unary_response(inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                token = None
                named = current_method.set(method)
                span = start_span(context, metadata_of() or context.invocation_metadata())
                rpc.in_flight += 1
                started = time.perf_counter()
                code, message = ok, ""
                entered = False
                caller = ""
                try:
                    caller, remaining = admit(context)
                    entered = True
                    token = deadlines.enter_call(remaining)
                    if inject is not None:  # a fault is active for this method
                        await inject(context)
                    return await inner(request, context)
                except grpc.aio.AbortError:  # the handler aborted the call itself
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                except asyncio.CancelledError:
                    code = cancelled
                    raise
                except Exception as exc:
                    if isinstance(exc, Rejected) and exc.caller is not None:
                        caller = exc.caller
                    code, message, trailers = status(method, exc)
                    await context.abort(code, message, trailing_metadata=trailers)
                finally:
                    if token is not None:
                        deadlines.leave_call(token)
                    took = done(method, rpc, code, message, started, caller)
                    if entered:
                        leave(took, code is ok)
                    end_span(span, code, message)
                    current_method.reset(named)

            return call

        def stream_response(inner: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
            async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                token = None
                named = current_method.set(method)
                span = start_span(context, metadata_of() or context.invocation_metadata())
                rpc.in_flight += 1
                started = time.perf_counter()
                code, message = ok, ""
                entered = False
                caller = ""
                try:
                    caller, remaining = admit(context)
                    entered = True
                    token = deadlines.enter_call(remaining)
                    if inject is not None:
                        await inject(context)
                    result = inner(request, context)
                    if inspect.isasyncgen(result):
                        async for item in result:
                            yield item
                    else:  # a handler that writes with context.write()
                        await result
                except grpc.aio.AbortError:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                except (asyncio.CancelledError, GeneratorExit):
                    code = cancelled
                    raise
                except Exception as exc:
                    if isinstance(exc, Rejected) and exc.caller is not None:
                        caller = exc.caller
                    code, message, trailers = status(method, exc)
                    await context.abort(code, message, trailing_metadata=trailers)
                finally:
                    if token is not None:
                        deadlines.leave_call(token)
                    took = done(method, rpc, code, message, started, caller)
                    if entered:
                        leave(took, code is ok)
                    end_span(span, code, message)
                    # A generator closed from elsewhere finishes in another context.
                    with contextlib.suppress(ValueError):
                        current_method.reset(named)

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
