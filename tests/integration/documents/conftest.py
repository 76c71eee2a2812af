"""Fixtures for the documents service tests: members, a Kafka tail, private service instances."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from campus_common import topics
from campus_common.events import Event
from campus_common.kafka import ensure_topics
from pymongo import AsyncMongoClient

from campus_documents.config import Settings
from tests.conftest import ROOT, StackSettings
from tests.helpers import unique_email


@dataclass(frozen=True)
class Member:
    user_id: int
    group_id: int


@pytest.fixture
def docs_url(stack: StackSettings) -> str:
    return stack.service_url("documents")


@pytest.fixture
def users_url(stack: StackSettings) -> str:
    return stack.service_url("users")


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


@pytest.fixture
def make_member(
    http: httpx.AsyncClient, users_url: str
) -> Callable[..., Awaitable[Member]]:
    """A fresh user in a group (a fresh group unless one is given)."""

    async def make(group_id: int | None = None) -> Member:
        gid = group_id or await new_group(http, users_url)
        uid = await new_user(http, users_url)
        await join(http, users_url, user_id=uid, group_id=gid)
        return Member(uid, gid)

    return make


@pytest.fixture
async def member(make_member: Callable[..., Awaitable[Member]]) -> Member:
    return await make_member()


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


# Kafka ---------------------------------------------------------------------------------------


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
        self, match: Callable[[Event], bool], *, count: int = 1, timeout: float = 20.0,
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


@pytest.fixture
async def events(stack: StackSettings) -> AsyncIterator[EventTail]:
    await ensure_topics(stack.kafka, [topics.DOCUMENT_EVENTS])
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.kafka.bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        await consumer.topics()  # loads the metadata partitions_for_topic needs
        parts = consumer.partitions_for_topic(topics.DOCUMENT_EVENTS) or {0}
        tps = [TopicPartition(topics.DOCUMENT_EVENTS, p) for p in sorted(parts)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, ends[tp])
        yield EventTail(consumer)
    finally:
        await consumer.stop()


def about(post_id: str, event_type: str | None = None) -> Callable[[Event], bool]:
    return lambda e: e.payload.get("post_id") == post_id and (
        event_type is None or e.type == event_type
    )


# the document store --------------------------------------------------------------------------


@pytest.fixture
def docs_settings(stack: StackSettings) -> Settings:
    return Settings()  # type: ignore[call-arg]


@pytest.fixture
async def mongo(docs_settings: Settings) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(**docs_settings.mongo_options())
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def scratch_db(mongo: AsyncMongoClient[dict[str, Any]]) -> AsyncIterator[str]:
    """A database of its own, so the running service's relay never touches what a test does."""
    name = f"campus_test_{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        await mongo.drop_database(name)


# private service instances -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Instance:
    url: str
    process: subprocess.Popen[bytes]

    def crash(self) -> None:
        """SIGKILL: no lifespan shutdown, no flush: what a power cut looks like."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
async def start_instance(
    http: httpx.AsyncClient,
) -> AsyncIterator[Callable[..., Awaitable[Instance]]]:
    """Start the documents service in its own process with some settings overridden."""
    started: list[Instance] = []

    async def start(**env: str) -> Instance:
        port = free_port()
        environ = os.environ | {f"CAMPUS_{k.upper()}": v for k, v in env.items()}
        environ["CAMPUS_DOCUMENTS_PORT"] = str(port)
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "campus_documents.main:app",
             "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
            cwd=ROOT, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        instance = Instance(f"http://127.0.0.1:{port}", process)
        started.append(instance)
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            assert process.poll() is None, "the instance exited during start-up"
            try:
                if (await http.get(f"{instance.url}/health")).status_code in (200, 503):
                    return instance
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
        raise AssertionError("the instance did not start within 45 s")

    yield start
    for instance in started:
        if instance.process.poll() is None:
            instance.process.terminate()
            try:
                instance.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                instance.crash()
