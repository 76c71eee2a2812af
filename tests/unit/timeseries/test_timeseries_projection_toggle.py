"""CAMPUS_TIMESERIES_PROJECTION_ENABLED: a serving-only replica starts no consumer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI

from campus_timeseries import main, service
from campus_timeseries.config import Settings

pytestmark = pytest.mark.unit


class FakePool:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    @staticmethod
    async def check_connection(conn: Any) -> None:
        pass

    async def open(self, wait: bool = True) -> None:
        pass

    async def close(self) -> None:
        pass


class FakeRunner:
    started: list[FakeRunner] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def start(self) -> None:
        FakeRunner.started.append(self)

    async def stop(self) -> None:
        pass


async def idle(*, stop: asyncio.Event, **kwargs: Any) -> None:
    await stop.wait()


@pytest.mark.parametrize("enabled", ["true", "false"])
async def test_lifespan_starts_the_projection_only_when_enabled(
    monkeypatch: pytest.MonkeyPatch, enabled: str
) -> None:
    # No store is touched: the pool, the consumer and the upkeep loop are stand-ins.
    monkeypatch.setenv("CAMPUS_TS_DB_PASSWORD", "x")
    monkeypatch.setenv("CAMPUS_TIMESERIES_PROJECTION_ENABLED", enabled)
    monkeypatch.setattr(main, "get_settings", lambda: Settings())
    monkeypatch.setattr(main, "AsyncConnectionPool", FakePool)
    monkeypatch.setattr(main, "ProjectionRunner", FakeRunner)
    monkeypatch.setattr(service, "maintain", idle)
    FakeRunner.started = []
    app = FastAPI()
    async with main.lifespan(app):
        # The runner is there either way, so /projections still describes it.
        assert "timeseries" in app.state.projections
    assert len(FakeRunner.started) == (1 if enabled == "true" else 0)
