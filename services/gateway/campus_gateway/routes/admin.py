"""Admin only: every projection's lag and controls in one place, and rate-limit overrides."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, status

from campus_common import projection_api
from campus_common.errors import NotFoundError
from campus_gateway import cache_group, contract
from campus_gateway.auth import Principal
from campus_gateway.contract import errors
from campus_gateway.ratelimit import RateLimiter
from campus_gateway.routes.deps import Admin, Gw, admin_principal, rate_limited
from campus_gateway.schemas import RateLimitOverride
from campus_gateway.service import Gateway
from campus_gateway.upstream import UpstreamError

router = APIRouter(
    responses=errors(),
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(rate_limited), Depends(admin_principal)],
)
# Services that run a projection named after themselves (the gateway runs `cache`).
PROJECTION_SERVICES = ("graph", "timeseries")
ProjectionName = Annotated[str, Path(min_length=1, max_length=50, pattern=r"^[a-z][a-z0-9_-]*$")]
Action = Literal["pause", "resume", "rebuild"]
Scope = Literal["user", "address"]
Subject = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9A-Fa-f.:]+$")]


@router.get("/consumers", response_model=list[contract.ProjectionState])
async def consumers(gw: Gw, admin: Admin) -> list[dict[str, Any]]:
    """Every projection: group, state, per-partition committed/end/lag, time lag, staleness."""
    local = [
        {**await cache_group.describe(gw, await projection_api.describe(r)), "service": "gateway"}
        for r in gw.projections.values()
    ]
    remote = await asyncio.gather(*(_remote(gw, svc, admin) for svc in PROJECTION_SERVICES))
    return local + [p for found in remote for p in found]


@router.post("/consumers/{name}/{action}", response_model=contract.ProjectionState)
async def control(name: ProjectionName, action: Action, gw: Gw, admin: Admin) -> dict[str, Any]:
    """Pause, resume or rebuild one projection wherever it runs."""
    runner = gw.projections.get(name)
    if runner is not None:
        if action in ("pause", "resume"):
            await projection_api.set_paused(runner, action == "pause")
        else:
            rebuilder = gw.rebuilders.get(name)
            await (rebuilder() if rebuilder else projection_api.rebuild_alone(runner))
        # The rebuild may have put a fresh runner in place.
        described = await projection_api.describe(gw.projections[name])
        return {**await cache_group.describe(gw, described), "service": "gateway"}
    if name in PROJECTION_SERVICES:
        reply = await gw.upstream.call(name, "POST", f"/projections/{name}/{action}", actor=admin)
        return {**reply.json(), "service": name}
    raise NotFoundError(f"no projection named {name!r}")


async def _remote(gw: Gateway, service: str, admin: Principal) -> list[dict[str, Any]]:
    try:
        found = (await gw.upstream.call(service, "GET", "/projections", actor=admin)).json()
    except UpstreamError as exc:
        # The service is down: say so under the projection it runs, rather than hide it.
        return [{"name": service, "service": service, "state": "unreachable", "error": exc.body}]
    return [{**p, "service": service} for p in found]


@router.put("/rate-limits/{scope}/{subject}", response_model=contract.RateLimitSet)
async def set_rate_limit(
    scope: Scope, subject: Subject, body: RateLimitOverride, request: Request
) -> dict[str, Any]:
    """Give one user (by id) or client address its own limit for `ttl_s` seconds."""
    limiter: RateLimiter = request.app.state.limiter
    await limiter.set_override(
        scope=_scope(scope),
        subject=subject,
        limit=body.limit,
        window_s=body.window_s,
        ttl_s=body.ttl_s,
    )
    return {"scope": scope, "subject": subject, **body.model_dump()}


@router.delete("/rate-limits/{scope}/{subject}", status_code=status.HTTP_204_NO_CONTENT)
async def clear_rate_limit(scope: Scope, subject: Subject, request: Request) -> None:
    """Back to the default limits."""
    limiter: RateLimiter = request.app.state.limiter
    await limiter.clear_override(scope=_scope(scope), subject=subject)


def _scope(scope: Scope) -> str:
    return "addr" if scope == "address" else "user"


# The projection controls every service has; on the public gateway only the admin reaches them.
projections = APIRouter(
    responses=errors(), dependencies=[Depends(rate_limited), Depends(admin_principal)]
)
projections.include_router(projection_api.router)
