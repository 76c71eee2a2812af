"""/dashboard: live lag and staleness per projection, CDC health, the graph, analytics, cache.

The page is static; live data arrives over Server-Sent Events once a second. Everything on it
but analytics is for the admin, who signs in with POST /dashboard/session: the answer sets the
session as an HttpOnly, SameSite=Strict cookie, so no token is ever in a URL (access logs) or
readable by a script, and another site cannot make the browser send it. The page's
Content-Security-Policy allows scripts from this origin only (no inline script), and the script
inserts every value as text. Front-end libraries are vendored from npm by `make up`
(services/gateway/dashboard/), never a CDN.
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
from fastapi import APIRouter, Cookie, Depends, Form, Query, Request, Response, status
from fastapi.responses import FileResponse, JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from campus_common.errors import ForbiddenError, NotFoundError
from campus_gateway.auth import Principal, decode_token, unauthorized
from campus_gateway.routes.admin import Action, ProjectionName, consumers, control
from campus_gateway.routes.deps import Gw, passthrough, rate_limited
from campus_gateway.routes.ops import cache_status
from campus_gateway.routes.users import login
from campus_gateway.service import user_exists
from campus_gateway.upstream import UpstreamError

router = APIRouter(include_in_schema=False, dependencies=[Depends(rate_limited)])
STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "campus_dashboard"
# Scripts only from this origin (the page's own app.js and the vendored libraries), nothing
# inline; inline styles stay allowed because vis-network and Chart.js set element styles.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
NODE_MODULES = Path(__file__).resolve().parents[1] / "dashboard" / "node_modules"
VENDOR = {
    "chart.js": NODE_MODULES / "chart.js" / "dist" / "chart.umd.min.js",
    "vis-network.js": NODE_MODULES / "vis-network" / "standalone" / "umd" / "vis-network.min.js",
}
CONNECTOR = "campus-users"


@router.get("/dashboard")
async def page() -> FileResponse:
    return FileResponse(STATIC / "dashboard.html", media_type="text/html", headers=SECURITY_HEADERS)


@router.get("/dashboard/app.js")
async def script() -> FileResponse:
    return FileResponse(STATIC / "app.js", media_type="text/javascript", headers=SECURITY_HEADERS)


@router.get("/dashboard/vendor/{name}")
async def vendor(name: str) -> FileResponse:
    path = VENDOR.get(name)
    if path is None or not path.exists():
        raise NotFoundError(f"{name} is missing: `make up` installs the dashboard's npm packages")
    return FileResponse(path, media_type="text/javascript", headers=SECURITY_HEADERS)


@router.post("/dashboard/session")
async def sign_in(
    request: Request,
    gw: Gw,
    username: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=256)],
) -> JSONResponse:
    """Sign the admin in: the token goes into an HttpOnly, SameSite=Strict cookie only."""
    token = await login(gw=gw, request=request, email=username, password=password)
    if not decode_token(gw.settings, token).admin:
        raise ForbiddenError("the dashboard is for the admin")
    response = JSONResponse({"signed_in": True, "expires_in": gw.settings.jwt_ttl_s})
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=gw.settings.jwt_ttl_s,
        path="/dashboard",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.delete("/dashboard/session", status_code=status.HTTP_204_NO_CONTENT)
async def sign_out() -> Response:
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/dashboard")
    return response


async def session_admin(
    gw: Gw, session: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None
) -> Principal:
    """The admin signed in to the dashboard, from the session cookie; 401/403 otherwise."""
    if not session:
        raise unauthorized("sign in to the dashboard first (POST /dashboard/session)")
    principal = decode_token(gw.settings, session)
    if not principal.admin:
        raise ForbiddenError("the dashboard's live data is for the admin")
    if not await user_exists(gw=gw, user_id=principal.user_id):
        raise unauthorized("the account of this session no longer exists")
    return principal


SessionAdmin = Annotated[Principal, Depends(session_admin)]


@router.get("/dashboard/data/graph")
async def graph_data(
    gw: Gw, admin: SessionAdmin, limit: Annotated[int, Query(ge=1, le=2000)] = 80
) -> Response:
    return passthrough(
        await gw.upstream.call("graph", "GET", "/graph", params={"limit": limit}, actor=admin)
    )


@router.get("/dashboard/data/cache-status")
async def cache_data(gw: Gw, admin: SessionAdmin) -> dict[str, Any]:
    return await cache_status(gw, admin)


@router.post("/dashboard/data/consumers/{name}/{action}")
async def control_data(
    name: ProjectionName, action: Action, gw: Gw, admin: SessionAdmin
) -> dict[str, Any]:
    return await control(name, action, gw, admin)


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


async def _slots(gw: Any, admin: Principal) -> list[dict[str, Any]]:
    try:
        return (await gw.upstream.call("users", "GET", "/cdc/slots", actor=admin)).json()  # type: ignore[no-any-return]
    except UpstreamError:
        return []


async def snapshot(gw: Any, http: httpx.AsyncClient, admin: Principal) -> dict[str, Any]:
    """One frame of the dashboard: projections, connector, slot."""
    projections, connector, slots = await asyncio.gather(
        consumers(gw, admin), _connector(http), _slots(gw, admin)
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


@router.get("/dashboard/stream", response_class=EventSourceResponse)
async def stream(
    request: Request,
    gw: Gw,
    principal: SessionAdmin,
    interval: Annotated[float, Query(ge=0.2, le=10)] = 1.0,
) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events: one JSON frame per `interval` seconds (the signed-in admin only).

    FastAPI frames the events and sends a keep-alive comment whenever no frame has gone out
    for 15 s (a slow snapshot while a store is down), so proxies keep the stream open.
    """
    base = f"http://{gw.settings.connect_host}:{gw.settings.connect_port}"
    auth = httpx.BasicAuth(
        gw.settings.connect_user, gw.settings.connect_password.get_secret_value()
    )
    async with httpx.AsyncClient(base_url=base, timeout=2, auth=auth) as http:
        while not await request.is_disconnected():
            started = time.monotonic()
            frame: dict[str, Any] | None = None
            with contextlib.suppress(Exception):  # one bad frame must not end the stream
                frame = await snapshot(gw, http, principal)
            if frame is not None:
                yield ServerSentEvent(raw_data=orjson.dumps(frame).decode())
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
