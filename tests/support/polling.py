"""Polling for a state instead of sleeping for a guessed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,
    interval: float = 0.1,
    what: str = "the condition",
) -> T:
    """Call ``check`` (a function or a coroutine function) until it returns a truthy value
    without raising AssertionError, and return that value. After ``timeout`` seconds the
    last AssertionError is raised again, or one naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value  # type: ignore[return-value]
            failure: AssertionError = AssertionError(
                f"{what} not met within {timeout:g}s (last value: {value!r})"
            )
        except AssertionError as err:
            failure = err
        if time.monotonic() > deadline:
            raise failure
        await asyncio.sleep(interval)


def eventually_sync(
    check: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.1,
    what: str = "the condition",
) -> T:
    """``eventually`` for synchronous tests."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
            failure: AssertionError = AssertionError(
                f"{what} not met within {timeout:g}s (last value: {value!r})"
            )
        except AssertionError as err:
            failure = err
        if time.monotonic() > deadline:
            raise failure
        time.sleep(interval)
