"""Hedging of unary calls the contracts mark ``NO_SIDE_EFFECTS``: opt-in per service.

gRPC's C-core (grpcio 1.85) parses a service config's ``hedgingPolicy`` but does not act
on it: a call with ``maxAttempts: 3`` and a 50 ms ``hedgingDelay`` to a server that
takes half a second reaches it once. So the mesh hedges itself, in the stub's call
wrapper: the call goes out; if no answer came within the service's ``hedge_delay``, a
second attempt goes out (round robin sends it to another instance); the first success
wins and the other is cancelled; if the first answer is a failure, the other one still
gets its chance. The second attempt takes its own bulkhead slot (none free: no hedge),
is seen by the breaker and ejection like any call, and counts in ``mesh_hedges_total``.
Hedging adds load, so it is off unless ``[resilience.services.<name>] hedging = true``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc

from meshkit.rpc.resilience import Guard

StartAttempt = Callable[[float | None], Any]


class HedgedCall:
    """What a hedged call returns: awaitable for the response, with the parts of a
    ``grpc.aio`` call its users read (``code``, ``details``, metadata, callbacks)."""

    def __init__(
        self, start: StartAttempt, timeout: float | None, delay: float, guard: Guard
    ) -> None:
        self._start = start
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._delay = delay
        self._guard = guard
        first = start(timeout)
        first.add_done_callback(guard.done)
        self._attempts: list[Any] = [first]
        self._winner: Any = first
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> Any:
        pending = {asyncio.ensure_future(_answer(self._attempts[0]))}
        done, _ = await asyncio.wait(pending, timeout=self._delay)
        if not done and self._guard.bulkhead.acquire():
            left = None if self._deadline is None else self._deadline - time.monotonic()
            if left is None or left > 0:
                second = self._start(left)
                second.add_done_callback(self._guard.done)
                self._guard.hedges.inc()
                self._attempts.append(second)
                pending.add(asyncio.ensure_future(_answer(second)))
            else:
                self._guard.bulkhead.release()
        failure: BaseException | None = None
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    call, response, error = task.result()
                    self._winner = call
                    if error is None:
                        return response
                    failure = error
            assert failure is not None
            raise failure
        except asyncio.CancelledError:
            self._winner = None
            raise
        finally:
            for call in self._attempts:  # the losers (all of them, if cancelled)
                if call is not self._winner and not call.done():
                    call.cancel()

    def __await__(self) -> Any:
        return self._task.__await__()

    def cancel(self) -> bool:
        for call in self._attempts:
            call.cancel()
        return self._task.cancel()

    def done(self) -> bool:
        return self._task.done()

    def cancelled(self) -> bool:
        return self._task.cancelled()

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._task.add_done_callback(lambda _: callback(self))

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    async def code(self) -> grpc.StatusCode:
        await asyncio.wait({self._task})
        if self._task.cancelled():
            return grpc.StatusCode.CANCELLED
        return await self._winner.code()

    async def details(self) -> str:
        await asyncio.wait({self._task})
        if self._task.cancelled():
            return "cancelled"
        return await self._winner.details()

    async def initial_metadata(self) -> Any:
        await asyncio.wait({self._task})
        return await (self._winner or self._attempts[0]).initial_metadata()

    async def trailing_metadata(self) -> Any:
        await asyncio.wait({self._task})
        return await (self._winner or self._attempts[0]).trailing_metadata()


async def _answer(call: Any) -> tuple[Any, Any, BaseException | None]:
    try:
        return call, await call, None
    except grpc.aio.AioRpcError as err:
        return call, None, err
