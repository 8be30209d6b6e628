"""The client's resilience state machines with a fake clock: breaker, ejection, bulkhead,
and their guard (metrics, the refusals a call gets)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import grpc
import pytest

from meshkit.config import MeshPolicy, ResiliencePolicy, ResilienceSettings
from meshkit.rpc.breaker import CLOSED, HALF_OPEN, OPEN, Breaker
from meshkit.rpc.bulkhead import Bulkhead
from meshkit.rpc.ejection import Ejector
from meshkit.rpc.resilience import Guard
from meshkit.telemetry.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_on_the_failure_ratio_once_enough_calls_were_seen() -> None:
    clock, states = Clock(), []
    b = Breaker(window=10, failure_ratio=0.5, min_calls=20, open_for=5, clock=clock,
                on_change=states.append)  # fmt: skip
    for _ in range(10):
        b.record(True)  # 10 failures of 10 calls: not enough calls yet
    assert b.state == CLOSED
    for _ in range(10):
        b.record(False)
    b.record(True)  # 11 of 21 > 50 %
    assert b.state == OPEN and states == [OPEN]
    assert not b.allow()
    clock.now += 4.9
    assert not b.allow()
    clock.now += 0.2
    assert [b.allow() for _ in range(4)] == [True, True, True, False]  # 3 trial calls
    assert b.state == HALF_OPEN
    b.record(False)  # a trial succeeds: closed
    assert b.state == CLOSED and states == [OPEN, HALF_OPEN, CLOSED]
    assert b.allow()


def test_breaker_half_open_failure_opens_again_and_old_failures_leave_the_window() -> None:
    clock = Clock()
    b = Breaker(window=10, failure_ratio=0.5, min_calls=4, open_for=5, half_open_calls=1,
                clock=clock)  # fmt: skip
    for _ in range(3):
        b.record(True)
    clock.now += 11  # those three are out of the window
    b.record(True)
    b.record(False)
    assert b.state == CLOSED
    b.record(True)
    b.record(True)  # 3 of 4
    assert b.state == OPEN
    clock.now += 5
    assert b.allow() and not b.allow()
    b.release()  # the trial was cancelled: another may go
    assert b.allow()
    b.record(True)
    assert b.state == OPEN
    assert not b.allow()


def test_ejection_after_consecutive_failures_for_base_times_ejections() -> None:
    clock, changes = Clock(), []
    e = Ejector(consecutive=5, interval=10, base=30, max_percent=50, clock=clock,
                on_change=lambda: changes.append(dict(e.ejected)))  # fmt: skip
    e.set_instances(["a", "b", "c", "d"])
    for _ in range(4):
        e.failure("a")
    e.success("a")  # not consecutive any more
    assert [e.failure("a") for _ in range(5)] == [False] * 4 + [True]
    assert e.ejected == {"a": 1030.0}
    clock.now += 20
    e.sweep()
    assert "a" in e.ejected
    clock.now += 10
    assert e.sweep() and e.ejected == {}
    for _ in range(5):
        e.failure("a")  # ejected a second time: twice as long
    assert e.ejected == {"a": clock.now + 60}
    assert len(changes) == 3


def test_ejection_never_takes_out_more_than_max_percent() -> None:
    e = Ejector(consecutive=1, max_percent=50, clock=Clock())
    e.set_instances(["a", "b", "c"])
    assert e.failure("a")
    assert not e.failure("b")  # 2 of 3 would be 67 %
    single = Ejector(consecutive=1, clock=Clock())
    single.set_instances(["a"])
    assert not single.failure("a")  # the only endpoint always serves
    e.set_instances(["b", "c"])  # a left Consul's set: forgotten
    assert e.ejected == {}


def test_bulkhead_counts_in_flight() -> None:
    b = Bulkhead(2)
    assert b.acquire() and b.acquire() and not b.acquire()
    b.release()
    assert b.acquire()
    assert all(Bulkhead(0).acquire() for _ in range(10_000))  # 0: no limit


def _finished(code: grpc.StatusCode, served_by: str = "") -> Any:
    """A finished grpc.aio call as the guard reads it."""
    from grpc._cython import cygrpc

    status = cygrpc.AioRpcStatus(code.value[0], "", (("served-by", served_by),), "")
    return SimpleNamespace(_cython_call=SimpleNamespace(_status=status))


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_guard_fails_fast_when_open_and_full_and_keeps_metrics() -> None:
    clock, metrics = Clock(), Metrics()
    policy = ResiliencePolicy(breaker_min_calls=4, max_in_flight=2, ejection_consecutive=2)
    guard = Guard("inventory", policy, metrics, clock=clock)
    guard.set_instances(["i1", "i2"])
    assert guard.admit() is None and guard.admit() is None
    full = guard.admit()
    assert full is not None and full.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "bulkhead of inventory" in (full.error.details() or "")
    assert _value(metrics, "mesh_bulkhead_rejected_total", service="inventory") == 1
    guard.done(_finished(grpc.StatusCode.INTERNAL, "i1"))
    guard.done(_finished(grpc.StatusCode.INTERNAL, "i1"))  # i1 ejected (2 in a row)
    assert set(guard.ejected_ids()) == {"i1"}
    assert _value(metrics, "mesh_endpoint_ejections_total", service="inventory") == 1
    assert _value(metrics, "mesh_endpoints_ejected", service="inventory") == 1
    for code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
        assert guard.admit() is None
        guard.done(_finished(code, "i2"))  # 3 of 4 failed: open
    assert _value(metrics, "mesh_breaker_state", service="inventory") == 1
    refused = guard.admit()
    assert refused is not None and refused.error.code() == grpc.StatusCode.UNAVAILABLE
    assert "circuit breaker of inventory is open" in (refused.error.details() or "")
    with pytest.raises(grpc.aio.AioRpcError):
        await refused
    clock.now += policy.breaker_open
    assert guard.admit() is None
    assert _value(metrics, "mesh_breaker_state", service="inventory") == 2
    guard.done(_finished(grpc.StatusCode.OK, "i2"))
    assert _value(metrics, "mesh_breaker_state", service="inventory") == 0
    for state in ("open", "half_open", "closed"):
        assert _value(metrics, "mesh_breaker_transitions_total", service="inventory",
                      state=state) == 1  # fmt: skip
    assert guard.bulkhead.in_flight == 0
    guard.close()


def test_mesh_file_defaults_overrides_and_the_off_switch(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "mesh.toml"
    f.write_text(
        '[resilience]\nbreaker_open = "2s"\nmax_in_flight = 100\n'
        "[resilience.services.payment]\nmax_in_flight = 8\nhedging = true\n"
    )
    settings = MeshPolicy.load(f).resilience
    assert settings.enabled
    assert settings.for_service("inventory").breaker_open == 2.0
    assert settings.for_service("inventory").max_in_flight == 100
    payment = settings.for_service("payment")
    assert (payment.max_in_flight, payment.hedging, payment.breaker_open) == (8, True, 2.0)
    assert settings.defaults.ejection_base == 30.0 and settings.defaults.ejection_consecutive == 5
    monkeypatch.setenv("MESH_RESILIENCE", "off")
    assert not MeshPolicy.load(f).resilience.enabled
    f.write_text("[resilience]\nbreaker_windw = 3\n")
    with pytest.raises(ValueError, match="breaker_windw"):
        MeshPolicy.load(f)
    assert ResilienceSettings().enabled


class FakeCall:
    """A unary grpc.aio call whose answer the test gives (``answer``/``fail``)."""

    def __init__(self) -> None:
        import asyncio

        self.future: Any = asyncio.get_running_loop().create_future()
        self.cancelled = False

    def __await__(self) -> Any:
        return self.future.__await__()

    def add_done_callback(self, cb: Any) -> None:
        self.future.add_done_callback(lambda _: cb(self))

    def done(self) -> bool:
        return self.future.done()

    def cancel(self) -> bool:
        self.cancelled = True
        return self.future.cancel()

    def answer(self, value: Any) -> None:
        self.future.set_result(value)

    def fail(self, code: grpc.StatusCode) -> None:
        error = grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata())
        self.future.set_exception(error)


async def test_hedged_call_first_success_wins_and_the_other_is_cancelled() -> None:
    import asyncio

    from meshkit.rpc.hedging import HedgedCall

    metrics = Metrics()
    guard = Guard("inventory", ResiliencePolicy(hedging=True), metrics)
    attempts: list[FakeCall] = []

    def start(timeout: float | None) -> FakeCall:
        attempts.append(FakeCall())
        return attempts[-1]

    assert guard.admit() is None  # the wrapper's, for the first attempt
    hedged = HedgedCall(start, 5.0, 0.01, guard)
    await asyncio.sleep(0.05)
    assert len(attempts) == 2  # no answer within the delay: hedged
    assert _value(metrics, "mesh_hedges_total", service="inventory") == 1
    attempts[0].fail(grpc.StatusCode.UNAVAILABLE)  # a failure does not end it
    await asyncio.sleep(0)
    assert not hedged.done()
    attempts[1].answer("stock")
    assert await hedged == "stock"
    assert guard.bulkhead.in_flight == 0

    attempts.clear()
    assert guard.admit() is None
    quick = HedgedCall(start, 5.0, 0.5, guard)
    attempts[0].answer("fast")
    assert await quick == "fast" and len(attempts) == 1  # answered in time: no hedge

    attempts.clear()
    assert guard.admit() is None
    both = HedgedCall(start, 5.0, 0.0, guard)
    await asyncio.sleep(0.01)
    attempts[1].answer("second")
    assert await both == "second" and attempts[0].cancelled
    guard.close()
