"""Locks that span every instance of this service (leases in the documents database), and the
limit each process puts on its own updates, both because of FerretDB v1.

1. FerretDB v1 on PostgreSQL applies an update as read, modify in Go, then
   `UPDATE ... SET _jsonb = $1 WHERE _id = $2` with no row lock or condition, so two concurrent
   updates of one document can lose one of them (measured: 100 concurrent $inc left 34), and a
   relay clearing the outbox could drop an event pushed meanwhile. Writes that only insert
   (comments, likes) need no lock. Every update of a post (an edit, a delete, the relay
   clearing its outbox) holds that post's lease, whichever instance runs it.
   A lease is a document {_id: a fresh token, key, owner, expires_at} under a unique index on
   `key`: PostgreSQL's unique index lets exactly one insert per key win, which no update can
   promise on FerretDB. Releasing deletes by token only, so it never removes a successor's
   lease. Crash takeover: a holder that dies (kill -9) leaves its lease behind; once
   `expires_at` has passed, a waiter deletes that lease (by its key and an `expires_at` in the
   past, which a fresh lease never matches, and FerretDB deletes only the rows it matched) and
   inserts its own (expiry is judged by each instance's clock: they share a host or NTP).
   A holder that stalls past its TTL could then overlap its successor:
   the TTL is far above one operation (two commands) and a holder checks `Lease.fresh()` before
   it writes and gives up (503) when half of it is gone.
   MongoDB applies updates atomically; the leases cost it two small writes per update only.
2. While an update runs, FerretDB keeps the rows of its read open on one pooled PostgreSQL
   connection and takes a second one for the write; with as many concurrent updates as its
   pool has connections (20) every one waits for a second connection forever and FerretDB
   hangs. UPDATE_SLOTS keeps this process far below that (a delete reads and writes too: the
   leases release under the same slots).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from campus_common.errors import UnavailableError
from campus_documents import repository as repo
from campus_documents.outbox import now

log = logging.getLogger(__name__)

UPDATE_SLOTS = 4
# Far above one locked operation (a read and an update); also how long a crashed holder's
# post stays locked. A waiter gives up first (the gateway's upstream timeout is 5 s): 503.
LEASE_TTL_S = 10.0
LEASE_WAIT_S = 4.0
OWNER = f"{socket.gethostname()}:{os.getpid()}"


class LeaseBusyError(UnavailableError):
    """Another request or instance holds the lease for longer than we wait."""


def post_key(post_id: Any) -> str:
    """The lease key of a post."""
    return f"post:{post_id}"


@dataclass(frozen=True)
class Lease:
    token: str
    key: str
    taken_at: float  # time.monotonic() when it was inserted
    ttl_s: float

    def fresh(self) -> bool:
        """Whether at least half of the TTL is left: enough for one more write."""
        return time.monotonic() - self.taken_at < self.ttl_s / 2


@dataclass
class Leases:
    """Take, wait for and release leases; one document per held key (see the module doc)."""

    db: repo.Db
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(UPDATE_SLOTS))
    ttl_s: float = LEASE_TTL_S
    wait_s: float = LEASE_WAIT_S

    def _doc(self, key: str) -> tuple[dict[str, Any], Lease]:
        token = uuid.uuid4().hex
        lease = Lease(token, key, time.monotonic(), self.ttl_s)
        expires = now() + timedelta(seconds=self.ttl_s)
        return {"_id": token, "key": key, "owner": OWNER, "expires_at": expires}, lease

    async def try_take(self, key: str) -> Lease | None:
        """The lease of `key` if nobody holds it (an expired one is taken over), else None."""
        for _ in range(2):
            doc, lease = self._doc(key)
            try:
                await repo.insert(self.db, repo.LEASES, doc)
                return lease
            except DuplicateKeyError:
                held = await repo.find_lease(self.db, key=key)
                if held is not None and held["expires_at"] > now():
                    return None  # the usual case: a read, no update slot
                if held is not None:
                    # Only a lease whose time is up matches; a fresh successor's never does.
                    async with self.slots:
                        await repo.delete_expired_lease(self.db, key=key, at=now())
        return None

    async def take(self, key: str) -> Lease:
        """The lease of `key`, waiting up to wait_s for its holder; 503 after that."""
        deadline = time.monotonic() + self.wait_s
        pause = 0.005
        while (lease := await self.try_take(key)) is None:
            if time.monotonic() > deadline:
                raise LeaseBusyError(f"{key} is being changed by another request, try again")
            await asyncio.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, 0.1)
        return lease

    async def take_many(self, keys: list[str]) -> dict[str, Lease]:
        """The leases of `keys` that nobody holds, in one command; busy ones are left out."""
        docs = [self._doc(key) for key in dict.fromkeys(keys)]
        if not docs:
            return {}
        taken = {lease.key: lease for _, lease in docs}
        try:
            await repo.insert_leases(self.db, [doc for doc, _ in docs])
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != repo.DUPLICATE_KEY for e in errors):
                await self.release(list(taken.values()))
                raise
            # Ours are the leases stored under our tokens: asked rather than inferred from the
            # errors, whatever the server did with the documents after the first duplicate.
            mine = set(await repo.find_leases(self.db, tokens=[doc["_id"] for doc, _ in docs]))
            taken = {key: lease for key, lease in taken.items() if lease.token in mine}
        return taken

    async def release(self, leases: list[Lease]) -> None:
        """Delete these leases (by token: a successor's lease is never touched)."""
        if not leases:
            return
        async with self.slots:
            await repo.delete_leases(self.db, tokens=[lease.token for lease in leases])

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[Lease]:
        """Hold the lease of `key` for the duration of the block."""
        lease = await self.take(key)
        try:
            yield lease
        finally:
            try:
                await self.release([lease])
            except PyMongoError:
                # The store went away: the lease expires by itself after its TTL.
                log.warning("could not release %s; it expires in %ss", key, self.ttl_s)
