"""Fault injection without a network: the scenarios, the injector, the interceptor's
zero-cost path when no fault is active, and the watch's handling of the KV value."""

from __future__ import annotations

import random
import time
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.faults import SCENARIOS_DIR, load_scenario, scenarios
from meshkit.config import MeshPolicy
from meshkit.rpc.faults import (
    ABORT,
    DELAY,
    Fault,
    Faults,
    FaultWatch,
    MethodFaults,
    decode,
    encode,
    parse_scenario,
)
from meshkit.rpc.interceptors import MeshServerInterceptor, Rejected
from meshkit.security.authorization import Decision
from meshkit.security.identity import SpiffeId
from meshkit.telemetry.metrics import Metrics

GET_STOCK = "/shop.inventory.v1.InventoryService/GetStock"
LIST_STOCK = "/shop.inventory.v1.InventoryService/ListStock"


class Context:
    """What the interceptor and the injector ask of a call's context."""

    def __init__(self, caller: str | None = None, remaining: float | None = 5.0) -> None:
        self.caller = caller
        self.remaining = remaining
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def peer_identities(self) -> list[bytes] | None:
        if self.caller is None:
            return None
        return [f"spiffe://t.consul/ns/default/dc/dc1/svc/{self.caller}".encode()]

    def time_remaining(self) -> float | None:
        return self.remaining

    def set_trailing_metadata(self, _: object) -> None:
        pass

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5000"

    def code(self) -> grpc.StatusCode | None:
        return self.aborted[0] if self.aborted else None

    async def abort(self, code: grpc.StatusCode, message: str, **_: object) -> None:
        self.aborted = (code, message)
        raise grpc.aio.AbortError()


async def _get_stock(request: object, context: object) -> str:
    return "stock"


STOCK = grpc.unary_unary_rpc_method_handler(_get_stock)  # one per method, as a server has


async def call_stock(
    interceptor: MeshServerInterceptor,
    ctx: Context,
    method: str = GET_STOCK,
    metadata: tuple[tuple[str, str], ...] = (),
) -> grpc.StatusCode:
    """A call of ``method`` (answered "stock") through ``interceptor``; its status."""

    async def continuation(_: object) -> grpc.RpcMethodHandler:
        return STOCK

    details = SimpleNamespace(method=method, invocation_metadata=metadata)
    wrapped = await interceptor.intercept_service(continuation, details)  # type: ignore[arg-type]
    try:
        assert await wrapped.unary_unary(object(), ctx) == "stock"
    except grpc.aio.AbortError:
        assert ctx.aborted is not None
        return ctx.aborted[0]
    return grpc.StatusCode.OK


def abort(percentage: float = 100, **kw: Any) -> Fault:
    return Fault("t-abort", "inventory", ABORT, percentage=percentage, **kw)


async def inject(faults: Faults, method: str, ctx: Context) -> grpc.StatusCode:
    """What one call of ``method`` comes to: OK, or the status of an injected abort."""
    injector = faults.injector(method)
    assert injector is not None
    try:
        await injector(ctx)  # type: ignore[arg-type]
    except Rejected as exc:
        return exc.code
    return grpc.StatusCode.OK


# --- the scenarios --------------------------------------------------------------------


def test_the_named_scenarios_parse_and_say_what_they_do() -> None:
    named = scenarios()
    assert set(named) == {
        "payment-delay-2s",
        "inventory-abort-30pct",
        "shipping-unavailable",
        "order-slow-db",
    }
    assert named["payment-delay-2s"] == Fault("payment-delay-2s", "payment", DELAY, delay=2.0)
    assert named["inventory-abort-30pct"] == Fault(
        "inventory-abort-30pct",
        "inventory",
        ABORT,
        method="GetStock",
        status=grpc.StatusCode.UNAVAILABLE,
        percentage=30,
    )
    assert named["shipping-unavailable"] == Fault("shipping-unavailable", "shipping", ABORT)
    assert named["order-slow-db"] == Fault("order-slow-db", "order", DELAY, delay=0.5)
    assert load_scenario("order-slow-db") == named["order-slow-db"]
    with pytest.raises(LookupError, match=r"no fault scenario 'nope'.*payment-delay-2s"):
        load_scenario("nope")
    assert all(p.suffix == ".toml" for p in SCENARIOS_DIR.iterdir())


def test_a_fault_round_trips_through_the_kv_value() -> None:
    faults = [
        *scenarios().values(),
        abort(percentage=12.5, callers=("order", "gateway"), status=grpc.StatusCode.INTERNAL),
    ]
    assert decode(encode(faults)) == faults
    assert decode(None) == decode(b"") == []


@pytest.mark.parametrize(
    ("toml", "error"),
    [
        ('service = "a"\nkind = "explode"', "kind must be delay or abort"),
        ('service = "a"\nkind = "delay"', "a delay needs delay"),
        ('service = "a"\nkind = "delay"\ndelay = "soon"', "bad duration"),
        ('service = "a"\nkind = "abort"\nstatus = "NOPE"', "no gRPC status 'NOPE'"),
        ('service = "a"\nkind = "abort"\nstatus = "OK"', "cannot be OK"),
        ('service = "a"\nkind = "abort"\npercentage = 0', r"percentage must be in \(0, 100\]"),
        ('service = "a"\nkind = "abort"\npercentage = 101', "percentage must be"),
        ('service = "a"\nkind = "abort"\ncallers = "order"', "callers must be a list"),
        ('service = "a"\nkind = "abort"\nretries = 3', r"unknown field\(s\) retries"),
        ('kind = "abort"', "no service"),
    ],
)
def test_a_malformed_scenario_is_refused(toml: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_scenario(toml, "bad")


def test_a_fault_targets_every_method_its_method_or_its_full_name() -> None:
    assert abort().applies_to(GET_STOCK) and abort().applies_to(LIST_STOCK)
    for method in ("GetStock", GET_STOCK):
        fault = abort(method=method)
        assert fault.applies_to(GET_STOCK) and not fault.applies_to(LIST_STOCK)
    faults = Faults("inventory", [abort(method="GetStock")])
    assert faults.injector(GET_STOCK) is not None
    assert faults.injector(LIST_STOCK) is None
    # Another service's fault is not this instance's.
    assert not Faults("payment", [abort()])


# --- the injector ---------------------------------------------------------------------


async def test_the_percentage_hits_that_share_of_calls_with_a_seeded_rng() -> None:
    async def run(seed: int) -> list[grpc.StatusCode]:
        faults = Faults("inventory", [abort(30)], rng=random.Random(seed))
        return [await inject(faults, GET_STOCK, Context()) for _ in range(5000)]

    codes = await run(7)
    failed = codes.count(grpc.StatusCode.UNAVAILABLE)
    assert 0.28 * 5000 < failed < 0.32 * 5000, failed
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}
    assert await run(7) == codes  # the same seed, the same calls hit
    every = Faults("inventory", [abort(100, status=grpc.StatusCode.INTERNAL)])
    assert {await inject(every, GET_STOCK, Context()) for _ in range(200)} == {
        grpc.StatusCode.INTERNAL
    }


async def test_a_fault_with_callers_hits_only_those_callers() -> None:
    faults = Faults("inventory", [abort(callers=("order",))])
    assert await inject(faults, GET_STOCK, Context("order")) is grpc.StatusCode.UNAVAILABLE
    assert await inject(faults, GET_STOCK, Context("operator")) is grpc.StatusCode.OK
    assert await inject(faults, GET_STOCK, Context(None)) is grpc.StatusCode.OK  # plaintext
    anyone = Faults("inventory", [abort()])
    assert await inject(anyone, GET_STOCK, Context(None)) is grpc.StatusCode.UNAVAILABLE


async def test_a_delay_waits_within_the_deadline_and_is_counted() -> None:
    metrics = Metrics()
    delay = Fault("t-delay", "inventory", DELAY, delay=0.05)
    faults = Faults("inventory", [delay, abort(callers=("order",))], metrics=metrics)
    started = time.perf_counter()
    assert await inject(faults, GET_STOCK, Context("operator")) is grpc.StatusCode.OK
    assert time.perf_counter() - started >= 0.05
    # Delays come before aborts: a delayed call may then fail.
    started = time.perf_counter()
    assert await inject(faults, GET_STOCK, Context("order")) is grpc.StatusCode.UNAVAILABLE
    assert time.perf_counter() - started >= 0.05
    # Less time left than the delay: wait what is left, then DEADLINE_EXCEEDED.
    long = Faults("inventory", [replace(delay, delay=10.0)], metrics=metrics)
    started = time.perf_counter()
    code = await inject(long, GET_STOCK, Context("operator", remaining=0.02))
    assert code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert 0.02 <= time.perf_counter() - started < 1.0
    injected = {
        (s.labels["method"], s.labels["kind"]): s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
        if s.name == "mesh_faults_injected_total"
    }
    assert injected == {(GET_STOCK, DELAY): 3, (GET_STOCK, ABORT): 1}


# --- the interceptor: nothing per call without a fault --------------------------------


async def test_without_faults_the_hook_is_not_called(monkeypatch: pytest.MonkeyPatch) -> None:
    hooked: list[str] = []
    asked: list[str] = []
    real_call, real_injector = MethodFaults.__call__, Faults.injector

    async def hook(self: MethodFaults, context: Any) -> None:
        hooked.append("call")
        await real_call(self, context)

    def injector(self: Faults, method: str) -> MethodFaults | None:
        asked.append(method)
        return real_injector(self, method)

    monkeypatch.setattr(MethodFaults, "__call__", hook)
    monkeypatch.setattr(Faults, "injector", injector)

    interceptor = MeshServerInterceptor(MeshPolicy(), None, lambda: "t.consul")

    async def call(method: str = GET_STOCK) -> grpc.StatusCode:
        return await call_stock(interceptor, Context(), method)

    # No fault: the wrap asks nothing of faults, and no call reaches the hook.
    assert interceptor.faults is None
    for _ in range(50):
        assert await call() is grpc.StatusCode.OK
    assert (hooked, asked) == ([], [])

    # A fault on another method: asked once when the method is wrapped, never per call.
    interceptor.set_faults(Faults("inventory", [abort(method="ListStock")]))
    for _ in range(50):
        assert await call() is grpc.StatusCode.OK
    assert (hooked, asked) == ([], [GET_STOCK])

    # Active on the method: the next call gets a new wrap, and each call the hook.
    interceptor.set_faults(Faults("inventory", [abort(method="GetStock")]))
    assert [await call() for _ in range(3)] == [grpc.StatusCode.UNAVAILABLE] * 3
    assert len(hooked) == 3

    # Cleared: the wraps without it are back, and nothing is hooked any more.
    interceptor.set_faults(None)
    hooked.clear()
    assert [await call() for _ in range(3)] == [grpc.StatusCode.OK] * 3
    assert hooked == []
    # Health and reflection are never faulted, whatever the fault says.
    interceptor = MeshServerInterceptor(
        MeshPolicy(open_prefixes=("/grpc.health.v1.Health/",)), None, lambda: "t.consul"
    )
    interceptor.set_faults(Faults("inventory", [abort()]))
    assert await call("/grpc.health.v1.Health/Check") is grpc.StatusCode.OK


# --- the watch ------------------------------------------------------------------------


async def test_the_watch_applies_what_the_kv_holds_and_ignores_a_malformed_value() -> None:
    applied: list[Faults | None] = []
    watch = FaultWatch(SimpleNamespace(), "inventory", applied.append)  # type: ignore[arg-type]
    watch._changed(encode([abort(30), replace(abort(), name="other", service="payment")]))
    assert len(applied) == 1 and applied[0] is not None
    assert applied[0].faults == [abort(30)]  # its own service's only
    watch._changed(b"{not json")
    assert len(applied) == 1  # left as it was
    watch._changed(None)  # the key deleted
    assert applied[-1] is None and watch.active == []


# --- the metrics by caller ------------------------------------------------------------


class OnlyOrder:
    """Intentions that allow ``order`` and deny everyone else."""

    def decide(self, caller: SpiffeId, method: str) -> Decision:
        if caller.service == "order":
            return Decision(True, "allowed")
        return Decision(False, "no intention allows it")


async def test_each_call_is_counted_on_its_callers_edge_refused_ones_too() -> None:
    """The console's edges: an allowed call, a call denied by intentions, a call refused
    for want of an identity and a faulted call each count under who made them."""

    metrics = Metrics()
    interceptor = MeshServerInterceptor(MeshPolicy(), OnlyOrder(), lambda: "t.consul", metrics)

    async def call(caller: str | None) -> grpc.StatusCode:
        return await call_stock(interceptor, Context(caller))

    def counted(caller: str, code: str) -> float:
        value = metrics.registry.get_sample_value(
            "mesh_server_caller_handled_total", {"caller": caller, "grpc_code": code}
        )
        return value or 0.0

    assert await call("order") is grpc.StatusCode.OK
    assert await call("shipping") is grpc.StatusCode.PERMISSION_DENIED
    assert await call(None) is grpc.StatusCode.UNAUTHENTICATED
    interceptor.set_faults(Faults("inventory", [abort()]))
    assert await call("order") is grpc.StatusCode.UNAVAILABLE
    assert counted("order", "OK") == 1
    assert counted("shipping", "PERMISSION_DENIED") == 1
    assert counted("unknown", "UNAUTHENTICATED") == 1
    assert counted("order", "UNAVAILABLE") == 1
