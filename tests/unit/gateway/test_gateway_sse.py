"""The dashboard's event stream is FastAPI's Server-Sent Events support, with keep-alive pings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.sse import EventSourceResponse, ServerSentEvent
from fastapi.testclient import TestClient

from campus_gateway import dashboard

pytestmark = pytest.mark.unit


def test_the_dashboard_stream_is_an_event_source_route() -> None:
    routes = dashboard.router.routes
    (route,) = [r for r in routes if isinstance(r, APIRoute) and r.path == "/dashboard/stream"]
    assert route.response_class is EventSourceResponse


def test_an_idle_stream_sends_keep_alive_pings(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same machinery with a frame slower than the ping interval (15 s in production, as
    # when a store is down and the dashboard's snapshot waits for it).
    monkeypatch.setattr("fastapi.routing._PING_INTERVAL", 0.05)
    app = FastAPI()

    @app.get("/stream", response_class=EventSourceResponse)
    async def stream() -> AsyncIterator[ServerSentEvent]:
        await asyncio.sleep(0.3)
        yield ServerSentEvent(raw_data='{"n": 1}')

    with TestClient(app) as client:
        body = client.get("/stream").text
    assert ": ping" in body
    assert body.rstrip().endswith('data: {"n": 1}')
