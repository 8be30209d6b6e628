"""The chaos tests' load driver (tests/support/load.py), and the deadline margin an
outgoing call leaves its caller (meshkit.rpc.deadlines)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from meshkit.config import DeadlinePolicy
from meshkit.rpc import deadlines
from tests.support.load import Call, Load, drive


def failing(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="no")


async def test_drive_makes_a_bounded_count_of_calls_and_records_each_status() -> None:
    async def call(i: int) -> int:
        if i % 4 == 3:
            raise failing(grpc.StatusCode.UNAVAILABLE)
        return i

    load = await drive(call, rate=200.0, duration=0.1, max_in_flight=4)
    assert len(load.calls) == 20
    assert load.by_status() == {"OK": 15, "UNAVAILABLE": 5}
    assert load.error_rate == 0.25
    assert sorted(c.result for c in load.ok) == [i for i in range(20) if i % 4 != 3]
    assert all(c.started <= c.ended for c in load.calls)


async def test_drive_keeps_at_most_max_in_flight_and_stops_when_told() -> None:
    in_flight = peak = 0
    stop = asyncio.Event()

    async def call(i: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        if i == 9:
            stop.set()

    load = await drive(call, rate=1000.0, duration=1.0, max_in_flight=3, stop=stop)
    assert peak <= 3
    assert 10 <= len(load.calls) < 1000


async def test_a_call_raising_something_else_propagates() -> None:
    async def call(i: int) -> None:
        raise ValueError("a bug in the test, not an outcome")

    with pytest.raises(ValueError):
        await drive(call, rate=100.0, duration=0.01)


def test_recovery_is_from_the_mark_to_the_first_success_after_the_last_failure() -> None:
    load = Load(began=0.0)
    load.calls = [
        Call(0.0, 0.1, "OK"),
        Call(1.0, 1.1, "UNAVAILABLE"),  # during the fault
        Call(2.5, 2.6, "UNAVAILABLE"),  # after its end (2.0)
        Call(3.0, 3.2, "OK"),
        Call(3.5, 3.6, "OK"),
    ]
    assert load.recovery(2.0) == pytest.approx(1.2)  # the success started at 3.0 ended 3.2
    assert load.recovery(2.8) == 0.0  # nothing failed after it
    load.calls.append(Call(4.0, 4.1, "DEADLINE_EXCEEDED"))
    assert load.recovery(2.0) is None  # no success after the last failure
    load.marks["fault"] = 1.0
    line = load.report("x", "fault")
    assert "error rate 50.0%" in line and "recovery after fault: never" in line


def test_an_outgoing_call_leaves_its_caller_a_margin_of_the_time_left() -> None:
    policy = DeadlinePolicy(default=5, max=30)
    token = deadlines.enter_call(2.0)
    try:
        timeout = deadlines.outgoing_timeout(policy, "/a/B", None)
        assert 1.9 < timeout <= 2.0 - deadlines.PROPAGATION_MARGIN  # 50 ms left to answer
    finally:
        deadlines.leave_call(token)
    token = deadlines.enter_call(0.2)
    try:  # a short deadline keeps most of its time: the margin is at most 5 % of it
        assert 0.18 < deadlines.outgoing_timeout(policy, "/a/B", None) <= 0.19
    finally:
        deadlines.leave_call(token)
