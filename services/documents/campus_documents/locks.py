"""Concurrency limits this process puts on its own updates, because of FerretDB v1.

1. FerretDB v1 on PostgreSQL applies an update as read, modify in Go, then
   `UPDATE ... SET _jsonb = $1 WHERE _id = $2` with no row lock or condition, so two concurrent
   updates of one document can lose one of them (measured: 100 concurrent $inc left 34), and a
   relay clearing the outbox could drop an event pushed meanwhile. Every update of a post in
   this process holds that post's lock. MongoDB applies updates atomically and needs none;
   with FerretDB, run one instance of this service.
2. While an update runs, FerretDB keeps the rows of its read open on one pooled PostgreSQL
   connection and takes a second one for the write; with as many concurrent updates as its
   pool has connections (20) every one waits for a second connection forever and FerretDB
   hangs. UPDATE_SLOTS keeps this process far below that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

UPDATE_SLOTS = 4


class KeyedLocks:
    """One asyncio.Lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold the lock of `key` for the duration of the block."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    @asynccontextmanager
    async def hold_many(self, keys: list[str]) -> AsyncIterator[None]:
        """Hold several locks; always taken in sorted order, so two holders cannot deadlock."""
        async with contextlib.AsyncExitStack() as stack:
            for key in sorted(set(keys)):
                await stack.enter_async_context(self.hold(key))
            yield

    def __len__(self) -> int:
        return len(self._locks)
