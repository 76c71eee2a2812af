"""/dashboard: live lag and staleness per projection, CDC health, the graph, analytics, cache.

The page is static; live data arrives over Server-Sent Events once a second. Admin-only data
(consumer state, the connector, the replication slot) needs the admin's token, which the page
gets from /auth/token and passes as a query parameter (EventSource cannot send headers).
Front-end libraries are vendored from npm by `make up` (services/gateway/dashboard/), never a CDN.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, StreamingResponse

from campus_common.errors import ForbiddenError, NotFoundError
from campus_gateway.auth import decode_token
from campus_gateway.routes.admin import consumers
from campus_gateway.routes.deps import Gw
from campus_gateway.upstream import UpstreamError

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).parent / "static"
NODE_MODULES = Path(__file__).resolve().parents[1] / "dashboard" / "node_modules"
VENDOR = {
    "chart.js": NODE_MODULES / "chart.js" / "dist" / "chart.umd.min.js",
    "vis-network.js": NODE_MODULES / "vis-network" / "standalone" / "umd" / "vis-network.min.js",
}
CONNECTOR = "campus-users"


@router.get("/dashboard")
async def page() -> FileResponse:
    return FileResponse(STATIC / "dashboard.html", media_type="text/html")


@router.get("/dashboard/vendor/{name}")
async def vendor(name: str) -> FileResponse:
    path = VENDOR.get(name)
    if path is None or not path.exists():
        raise NotFoundError(f"{name} is missing: `make up` installs the dashboard's npm packages")
    return FileResponse(path, media_type="text/javascript")


async def _connector(http: httpx.AsyncClient) -> dict[str, Any]:
    try:
        r = await http.get(f"/connectors/{CONNECTOR}/status")
        body = r.json()
        return {
            "name": CONNECTOR,
            "state": body.get("connector", {}).get("state", "UNKNOWN"),
            "tasks": [t.get("state") for t in body.get("tasks", [])],
        }
    except (httpx.HTTPError, ValueError) as exc:
        return {"name": CONNECTOR, "state": "UNREACHABLE", "error": str(exc)[:200]}


async def _slots(gw: Any) -> list[dict[str, Any]]:
    try:
        return (await gw.upstream.call("users", "GET", "/cdc/slots")).json()  # type: ignore[no-any-return]
    except UpstreamError:
        return []


async def snapshot(gw: Any, http: httpx.AsyncClient) -> dict[str, Any]:
    """One frame of the dashboard: projections, connector, slot."""
    projections, connector, slots = await asyncio.gather(
        consumers(gw), _connector(http), _slots(gw)
    )
    return {
        "t": time.time(),
        "projections": [
            {
                k: p.get(k)
                for k in (
                    "name",
                    "service",
                    "state",
                    "total_lag",
                    "time_lag_s",
                    "staleness_s",
                    "applied_total",
                    "slowest_writes",
                )
            }
            for p in projections
        ],
        "zipkin_url": gw.settings.zipkin_public_url,
        "connector": connector,
        "slots": slots,
    }


@router.get("/dashboard/stream")
async def stream(
    request: Request,
    gw: Gw,
    token: Annotated[str, Query(min_length=10, max_length=4096)],
    interval: Annotated[float, Query(ge=0.2, le=10)] = 1.0,
) -> StreamingResponse:
    """Server-Sent Events: one JSON frame per `interval` seconds (admin only)."""
    principal = decode_token(gw.settings, token)
    if not principal.admin:
        raise ForbiddenError("the dashboard's live data is for the admin")
    base = f"http://{gw.settings.connect_host}:{gw.settings.connect_port}"

    async def frames() -> AsyncIterator[bytes]:
        async with httpx.AsyncClient(base_url=base, timeout=2) as http:
            while not await request.is_disconnected():
                started = time.monotonic()
                with contextlib.suppress(Exception):  # one bad frame must not end the stream
                    frame = await snapshot(gw, http)
                    yield b"data: " + orjson.dumps(frame) + b"\n\n"
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
