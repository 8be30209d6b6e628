"""Orders against a running stack, and the order invariants: ``devstack.orders`` (the
cluster's fault scenarios use them too), for the tests."""

from devstack.orders import (
    CANCELLED,
    CONFIRMED,
    FINAL,
    SAGA_TIMEOUT,
    HasState,
    Orders,
    check_invariants,
    invariants,
    open_db,
    order_request,
    settle,
)

__all__ = [
    "CANCELLED",
    "CONFIRMED",
    "FINAL",
    "SAGA_TIMEOUT",
    "HasState",
    "Orders",
    "check_invariants",
    "invariants",
    "open_db",
    "order_request",
    "settle",
]
