"""Fixtures for the documents service tests: members, a Kafka tail, private service instances."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from docs_support import (
    EventTail,
    Instance,
    Member,
    free_port,
    join,
    new_group,
    new_user,
    open_tail,
)
from pymongo import AsyncMongoClient

from campus_common import topics
from campus_common.internal_auth import OperatorAuth
from campus_common.kafka import ensure_topics
from campus_documents.config import Settings
from tests.conftest import ROOT, StackSettings


@pytest.fixture
def docs_url(stack: StackSettings) -> str:
    return stack.service_url("documents")


@pytest.fixture
def users_url(stack: StackSettings) -> str:
    return stack.service_url("users")


@pytest.fixture
def make_member(http: httpx.AsyncClient, users_url: str) -> Callable[..., Awaitable[Member]]:
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


# Kafka ---------------------------------------------------------------------------------------


@pytest.fixture
async def events(stack: StackSettings) -> AsyncIterator[EventTail]:
    await ensure_topics(stack.kafka, [topics.DOCUMENT_EVENTS])
    async with open_tail(stack.kafka, topics.DOCUMENT_EVENTS, from_start=False) as tail:
        yield tail


@pytest.fixture
async def scratch_topic(stack: StackSettings) -> AsyncIterator[tuple[str, EventTail]]:
    """A documents topic of its own, read from its start: private instances publish there
    (docs_events_topic), so `campus reconcile` never sees what a test did."""
    name = f"campus.test.documents.{uuid.uuid4().hex[:10]}"
    await ensure_topics(stack.kafka, [name])
    try:
        async with open_tail(stack.kafka, name, from_start=True) as tail:
            yield name, tail
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka.bootstrap_servers)
        await admin.start()
        try:
            await admin.delete_topics([name])
        finally:
            await admin.close()


# the document store --------------------------------------------------------------------------


@pytest.fixture
def docs_settings(stack: StackSettings) -> Settings:
    return Settings()


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


@pytest.fixture
async def start_instance(
    http: httpx.AsyncClient,
) -> AsyncIterator[Callable[..., Awaitable[Instance]]]:
    """Start the documents service in its own process with some settings overridden."""
    started: list[Instance] = []

    async def start(**env: str) -> Instance:
        port = free_port()
        # The operator's client signs for this instance too (its audience is "documents").
        assert isinstance(http.auth, OperatorAuth)
        http.auth.ports[port] = "documents"
        environ = os.environ | {f"CAMPUS_{k.upper()}": v for k, v in env.items()}
        environ["CAMPUS_DOCUMENTS_PORT"] = str(port)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "uvicorn",
            "campus_documents.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            cwd=ROOT,
            env=environ,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        instance = Instance(f"http://127.0.0.1:{port}", process)
        started.append(instance)
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            assert process.returncode is None, "the instance exited during start-up"
            try:
                # 404 once the store is ready (503 before): the id exists nowhere.
                probe = await http.get(f"{instance.url}/posts/{'0' * 24}")
                if probe.status_code == 404:
                    return instance
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
        raise AssertionError("the instance did not start within 45 s")

    yield start
    for instance in started:
        await instance.stop()
