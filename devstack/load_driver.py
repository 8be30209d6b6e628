"""A bounded, steady load for the chaos tests and the cluster's fault scenarios, and what
it saw (the tests import it as ``tests.support.load``).

``drive`` starts ``rate`` calls a second for ``duration`` seconds (so a bounded count),
at most ``max_in_flight`` at once (a start waits while that many are in flight, so an
overloaded machine slows the load down instead of piling calls up). Each call is one
attempt, no retry: its outcome is recorded with when it started and ended, by gRPC status
("OK" or the code's name), and ``Load.report`` says the error rate and the recovery time:
from the end of a fault (``mark``) until calls succeed again.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc


@dataclass(frozen=True)
class Call:
    started: float  # monotonic
    ended: float
    status: str  # "OK" or a grpc.StatusCode name
    result: Any = None  # what the call returned (an order id), or its error's details


@dataclass
class Load:
    """The calls of one run of ``drive``, and the faults marked during it."""

    calls: list[Call] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    began: float = field(default_factory=time.monotonic)

    def mark(self, name: str) -> float:
        """The time of a fault's start or end (``fault``, ``cleared``), for the report."""
        self.marks[name] = now = time.monotonic()
        return now

    @property
    def ok(self) -> list[Call]:
        return [c for c in self.calls if c.status == "OK"]

    @property
    def failed(self) -> list[Call]:
        return [c for c in self.calls if c.status != "OK"]

    def by_status(self) -> Counter[str]:
        return Counter(c.status for c in self.calls)

    @property
    def error_rate(self) -> float:
        return len(self.failed) / len(self.calls) if self.calls else 0.0

    def recovery(self, after: float) -> float | None:
        """Seconds from ``after`` (a fault's end) until calls succeed again: until the end
        of the first successful call started after the last failed one (0 if no call
        started after ``after`` failed; None if none succeeded after the last failure)."""
        failures = [c.started for c in self.calls if c.status != "OK" and c.started >= after]
        if not failures:
            return 0.0
        last = max(failures)
        later = [c.ended for c in self.calls if c.status == "OK" and c.started > last]
        return max(0.0, min(later) - after) if later else None

    def report(self, title: str, *recovered_from: str) -> str:
        """One line for the test's output: calls, rate, statuses, error rate, and the
        recovery time after each of the marks ``recovered_from``."""
        took = max((c.ended for c in self.calls), default=self.began) - self.began
        line = (
            f"{title}: {len(self.calls)} calls in {took:.1f}s"
            f" ({len(self.calls) / took if took else 0:.1f}/s),"
            f" by status {dict(self.by_status())}, error rate {self.error_rate:.1%}"
        )
        for name, at in self.marks.items():
            line += f", {name} at +{at - self.began:.1f}s"
        for name in recovered_from:
            recovery = self.recovery(self.marks[name])
            shown = "never" if recovery is None else f"{recovery:.2f}s"
            line += f", recovery after {name}: {shown}"
        print(line)
        return line


async def drive(
    call: Callable[[int], Awaitable[Any]],
    *,
    rate: float = 20.0,
    duration: float = 12.0,
    max_in_flight: int = 32,
    load: Load | None = None,
    stop: asyncio.Event | None = None,
) -> Load:
    """``call(i)`` for i in 0..rate*duration-1, one started every 1/rate seconds (later
    if ``max_in_flight`` are in flight), no more once ``stop`` is set; returns once every
    call has ended. A call's AioRpcError is recorded by its code, anything else it raises
    propagates."""
    load = load if load is not None else Load()
    total = round(rate * duration)
    gate = asyncio.Semaphore(max_in_flight)

    async def one(i: int) -> None:
        started = time.monotonic()
        try:
            result = await call(i)
        except grpc.aio.AioRpcError as err:
            load.calls.append(Call(started, time.monotonic(), err.code().name, err.details()))
        else:
            load.calls.append(Call(started, time.monotonic(), "OK", result))
        finally:
            gate.release()

    tasks = []
    load.began = start = time.monotonic()
    for i in range(total):
        if stop is not None and stop.is_set():
            break
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await gate.acquire()
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    load.calls.sort(key=lambda c: c.started)
    return load
