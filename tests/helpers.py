"""Polling helpers: integration tests wait for eventual consistency, bounded in time."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    until: Callable[[T], bool] = bool,
    timeout: float = 10.0,
    interval: float = 0.1,
) -> T:
    """Call `probe` until `until(result)` holds; fail with the last result after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = await probe()
        if until(last):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")
        await asyncio.sleep(interval)


def unique_email(prefix: str = "student") -> str:
    """An email no other test run has used."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}@university.edu"
