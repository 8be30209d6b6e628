"""Errors at the edge: gRPC status → HTTP status, and ``google.rpc.Status`` as the JSON body.

The mapping is the standard one (google/rpc/code.proto, as grpc-gateway and Google's APIs
use it). A service's error details (``google.rpc.BadRequest`` naming each bad field, ...)
come from its ``grpc-status-details-bin`` trailer and go to the client unchanged; the
gateway's own refusals (bad input, tokens, scopes, rate limits, sizes) use the same body.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import grpc
from google.protobuf import any_pb2, duration_pb2, json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2

from meshkit.errors import FieldViolation

HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}

DETAILS_TRAILER = "grpc-status-details-bin"


class EdgeError(Exception):
    """A refusal with its HTTP status, its ``google.rpc.Status`` and extra headers."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        details: Iterable[any_pb2.Any] = (),
        headers: dict[str, str] | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})
        self.http_status = http_status or HTTP_STATUS.get(code, 500)

    def status(self) -> status_pb2.Status:
        return status_pb2.Status(
            code=getattr(code_pb2, self.code.name), message=self.message, details=self.details
        )

    def body(self) -> dict[str, object]:
        return status_json(self.status())


def status_json(status: status_pb2.Status) -> dict[str, object]:
    """``{"code": 3, "message": "...", "details": [{"@type": ..., ...}]}``."""
    return json_format.MessageToDict(status, always_print_fields_with_no_presence=True)


def pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


# An error names at most this many violations (the rest counted), each cut to a length:
# a request of a thousand bad fields does not get a response a thousand times its size.
MAX_VIOLATIONS = 20
MAX_VIOLATION_TEXT = 200


def _cut(text: str) -> str:
    return text if len(text) <= MAX_VIOLATION_TEXT else text[: MAX_VIOLATION_TEXT - 3] + "..."


def bad_request(violations: list[FieldViolation], what: str = "request") -> EdgeError:
    shown = [FieldViolation(_cut(v.field), _cut(v.description)) for v in violations]
    more = len(shown) - MAX_VIOLATIONS
    if more > 0:
        rest = FieldViolation("...", f"and {more} more violation(s), not listed")
        shown = [*shown[:MAX_VIOLATIONS], rest]
    detail = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in shown
        ]
    )
    message = "; ".join(map(str, shown[:MAX_VIOLATIONS]))
    if more > 0:
        message += f"; and {more} more"
    return EdgeError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid {what}: {message}", [pack(detail)])


def too_many_requests(client_id: str, retry_after: float, kind: str = "client") -> EdgeError:
    """429: ``kind`` is what the bucket is of (``client``, or ``address`` for requests
    without a valid token)."""
    seconds = max(1, math.ceil(retry_after))
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds))
    quota = error_details_pb2.QuotaFailure(
        violations=[
            error_details_pb2.QuotaFailure.Violation(
                subject=f"{kind}:{client_id}", description="request rate limit exceeded"
            )
        ]
    )
    return EdgeError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"rate limit exceeded for {kind} {client_id}; retry in {seconds}s",
        [pack(retry), pack(quota)],
        headers={"Retry-After": str(seconds)},
    )


def from_rpc_error(error: grpc.aio.AioRpcError) -> EdgeError:
    """A failed mesh call as the client sees it: code, message and the service's details."""
    status = None
    for key, value in error.trailing_metadata() or ():
        if key == DETAILS_TRAILER and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
    code = error.code()
    message = status.message if status else (error.details() or code.name)
    details = list(status.details) if status else []
    return EdgeError(code, message, details)
