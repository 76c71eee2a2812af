"""/health/live asks nothing; /health/ready answers from the background probe, never inline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from campus_common.web import create_app

pytestmark = pytest.mark.unit


class Store:
    """A dependency whose health check hangs, fails or passes as the test says."""

    def __init__(self) -> None:
        self.mode = "hang"
        self.calls = 0

    async def check(self) -> None:
        self.calls += 1
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "down":
            raise ConnectionRefusedError("store is down")


def app_with(store: Store) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.health_checks = {"store": store.check}
        yield

    return create_app(service="probe-test", lifespan=lifespan, routers=[])


def wait_for(client: TestClient, path: str, status: int, deadline_s: float = 15) -> Any:
    # Bounded polling, not a timing assertion: the probe runs once a second.
    deadline = time.monotonic() + deadline_s
    while True:
        resp = client.get(path)
        if resp.status_code == status:
            return resp.json()
        assert time.monotonic() < deadline, (path, resp.status_code, resp.text)
        time.sleep(0.1)


def test_live_answers_while_every_dependency_hangs() -> None:
    store = Store()
    with TestClient(app_with(store)) as client:
        live = client.get("/health/live")
        assert live.status_code == 200
        assert live.json() == {"service": "probe-test", "status": "ok"}
        # The first probe round is still waiting on the hanging check.
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "starting"


def test_ready_follows_the_background_probe_and_never_checks_inline() -> None:
    store = Store()
    store.mode = "down"
    with TestClient(app_with(store)) as client:
        body = wait_for(client, "/health/ready", 503)
        while body["status"] == "starting":
            body = wait_for(client, "/health/ready", 503)
        assert body["dependencies"]["store"]["status"] == "down"
        assert "ConnectionRefusedError" in body["dependencies"]["store"]["error"]

        store.mode = "up"
        body = wait_for(client, "/health/ready", 200)
        assert body == {
            "service": "probe-test",
            "status": "ok",
            "dependencies": {"store": body["dependencies"]["store"]},
        }
        # Many ready calls, few probes: the answers come from the last round.
        before = store.calls
        for _ in range(50):
            assert client.get("/health/ready").status_code == 200
        assert store.calls - before < 50

        # /health itself still checks when asked: it sees the outage at once.
        store.mode = "down"
        assert client.get("/health").status_code == 503
