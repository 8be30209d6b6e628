"""Domain errors that cross the wire as gRPC status codes.

Servicers raise these; the runtime's error interceptor turns them into a status with a
message a person can act on and, for bad input, ``google.rpc.BadRequest`` details that
name each offending field (readable by grpcurl and by clients in every language).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2


class ServiceError(Exception):
    """An error with a gRPC status code; the message goes to the caller as is."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> list[any_pb2.Any]:
        return []

    def to_rpc_status(self) -> status_pb2.Status:
        return status_pb2.Status(
            code=getattr(code_pb2, self.code.name), message=self.message, details=self.details()
        )


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: its path in the request (``items[0].quantity``) and what is wrong."""

    field: str
    description: str

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: Iterable[FieldViolation], request: str = "request") -> None:
        self.violations = list(violations)
        super().__init__(f"invalid {request}: " + "; ".join(map(str, self.violations)))

    def details(self) -> list[any_pb2.Any]:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in self.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad)
        return [packed]


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(ServiceError):
    code = grpc.StatusCode.ABORTED


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class Violations:
    """Collects field violations of one request, then raises them all at once.

    >>> v = Violations("PlaceOrderRequest")
    >>> v.check(bool(req.customer_id), "customer_id", "is required")
    >>> v.raise_if_any()
    """

    def __init__(self, request: str = "request") -> None:
        self.request = request
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def check(self, ok: bool, field: str, description: str) -> bool:
        """Record a violation unless ``ok``; returns ``ok`` so callers can skip deeper checks."""
        if not ok:
            self.add(field, description)
        return ok

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items, self.request)


def require(value: object, field: str, request: str = "request") -> None:
    """InvalidArgument naming ``field`` (``"order_id: is required"``) unless ``value`` is set.

    >>> require(req.order_id, "order_id", "GetOrderRequest")
    """
    if not value:
        raise InvalidArgument([FieldViolation(field, "is required")], request)
