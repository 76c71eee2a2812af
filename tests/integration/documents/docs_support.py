"""Helpers shared by the documents integration tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from campus_common.events import Event
from tests.helpers import unique_email


@dataclass(frozen=True)
class Member:
    user_id: int
    group_id: int


async def new_user(http: httpx.AsyncClient, users_url: str) -> int:
    r = await http.post(
        f"{users_url}/users",
        json={"email": unique_email("docs"), "full_name": "Docs Tester", "password": "s3cret-pass"},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def new_group(http: httpx.AsyncClient, users_url: str) -> int:
    r = await http.post(
        f"{users_url}/groups",
        json={"name": f"docs-{uuid.uuid4().hex[:8]}", "course_code": "CS-450"},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def join(http: httpx.AsyncClient, users_url: str, *, user_id: int, group_id: int) -> None:
    r = await http.post(f"{users_url}/groups/{group_id}/members", json={"user_id": user_id})
    assert r.status_code == 201, r.text


def new_post(author_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "author_id": author_id,
        "type": "question",
        "title": f"Why B-trees? {uuid.uuid4().hex[:6]}",
        "body": "Hash indexes look faster on paper.",
        "tags": ["CS-450", "indexes"],
        "attachments": [
            {"type": "link", "url": "https://www.postgresql.org/docs/", "title": "docs"},
            {"type": "image", "url": "https://files.campus.edu/plan.png", "title": "plan"},
        ],
    } | extra


class EventTail:
    """Reads campus.documents.events from the end offsets it saw when it started."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.seen: list[Event] = []

    async def _poll(self) -> None:
        batches = await self.consumer.getmany(timeout_ms=200)
        for records in batches.values():
            self.seen.extend(Event.from_bytes(r.value) for r in records if r.value is not None)

    async def wait_for(
        self,
        match: Callable[[Event], bool],
        *,
        count: int = 1,
        timeout: float = 20.0,
        settle: float = 0.0,
    ) -> list[Event]:
        """The matching events once `count` arrived, after `settle` more seconds for extras."""
        deadline = time.monotonic() + timeout
        while len([e for e in self.seen if match(e)]) < count:
            if time.monotonic() > deadline:
                found = [e for e in self.seen if match(e)]
                raise AssertionError(f"{len(found)} of {count} events within {timeout}s: {found}")
            await self._poll()
        settle_until = time.monotonic() + settle
        while time.monotonic() < settle_until:
            await self._poll()
        return [e for e in self.seen if match(e)]


def about(post_id: str, event_type: str | None = None) -> Callable[[Event], bool]:
    return lambda e: (
        e.payload.get("post_id") == post_id and (event_type is None or e.type == event_type)
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Instance:
    """The documents service running in a process of its own."""

    url: str
    process: asyncio.subprocess.Process

    async def crash(self) -> None:
        """SIGKILL: no lifespan shutdown, no flush: what a power cut looks like."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                await self.crash()
