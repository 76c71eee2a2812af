"""Study groups and memberships (users service), activity lists (Redis)."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import Response

from campus_common.errors import ForbiddenError, UnavailableError
from campus_common.web import MAX_ID
from campus_gateway import contract
from campus_gateway.auth import ensure_self
from campus_gateway.cache import CacheUnavailableError
from campus_gateway.contract import errors
from campus_gateway.routes.deps import (
    BearerToken,
    Caller,
    Gw,
    Id,
    Limit,
    counted_read,
    forwarded,
    passthrough,
    rate_limited,
)
from campus_gateway.schemas import GroupCreate, JoinRequest
from campus_gateway.service import Gateway

router = APIRouter(responses=errors(), tags=["groups"], dependencies=[Depends(rate_limited)])


@router.post("/groups", status_code=status.HTTP_201_CREATED, response_model=contract.GroupView)
async def create_group(body: GroupCreate, gw: Gw, caller: Caller, request: Request) -> Response:
    """Create a study group (any signed-in user)."""
    reply = await gw.upstream.call(
        "users", "POST", "/groups", json=body.forward(), headers=forwarded(request), actor=caller
    )
    return passthrough(reply)


@router.get("/groups", response_model=contract.GroupPage)
async def list_groups(
    gw: Gw,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> Response:
    """All groups, by id, with member counts."""
    reply = await gw.upstream.call(
        "users", "GET", "/groups", params={"limit": limit, "after": after}
    )
    return passthrough(reply)


# Without `rate_limited`: the cached read counts the request in its own Redis round trip.
reads = APIRouter(responses=errors(), tags=["groups"])


@reads.get("/groups/{group_id}", response_model=contract.GroupView)
async def get_group(group_id: Id, gw: Gw, token: BearerToken, request: Request) -> Response:
    """A group with its member count, from Redis when cached (`X-Cache` says which)."""
    _, read = await counted_read(
        request=request, gw=gw, token=token, kind="group", entity_id=group_id
    )
    return Response(read.data, media_type="application/json", headers={"X-Cache": read.outcome})


@router.post(
    "/groups/{group_id}/join",
    status_code=status.HTTP_201_CREATED,
    response_model=contract.Membership,
)
async def join_group(
    group_id: Id, body: JoinRequest, gw: Gw, caller: Caller, request: Request
) -> Response:
    """Join a group as yourself (`user_id` defaults to you); roles above member need the admin."""
    user_id = body.user_id or caller.user_id
    ensure_self(caller, user_id, action="join a group")
    if body.role != "member" and not caller.admin:
        raise ForbiddenError(f"only the admin may grant the role {body.role!r}")
    reply = await gw.upstream.call(
        "users",
        "POST",
        f"/groups/{group_id}/members",
        json={"user_id": user_id, "role": body.role},
        headers=forwarded(request),
        actor=caller,
    )
    await _member_count_changed(gw, group_id)
    return passthrough(reply)


@router.get("/groups/{group_id}/members", response_model=list[contract.Membership])
async def group_members(group_id: Id, gw: Gw, caller: Caller) -> Response:
    """Members of a group, with roles (signed-in users only)."""
    return passthrough(await gw.upstream.call("users", "GET", f"/groups/{group_id}/members"))


@router.delete("/groups/{group_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def leave_group(
    group_id: Id, user_id: Id, gw: Gw, caller: Caller, request: Request
) -> Response:
    """Leave a group (yourself; the admin may remove anyone)."""
    ensure_self(caller, user_id, action="leave a group")
    reply = await gw.upstream.call(
        "users",
        "DELETE",
        f"/groups/{group_id}/members/{user_id}",
        headers=forwarded(request),
        actor=caller,
    )
    await _member_count_changed(gw, group_id)
    return passthrough(reply)


@router.get("/groups/{group_id}/activity", response_model=list[contract.Activity])
async def group_activity(
    group_id: Id, gw: Gw, caller: Caller, limit: Limit = 20
) -> list[dict[str, Any]]:
    """Recent joins, posts, comments and likes in a group, newest first (Redis only; signed-in
    users only)."""
    try:
        return await gw.cache.activity(group_id, limit)
    except CacheUnavailableError as exc:
        raise UnavailableError(
            "group activity is unavailable: it lives only in Redis, which is down"
        ) from exc


async def _member_count_changed(gw: Gateway, group_id: int) -> None:
    # Read-your-writes for member_count; the projection does the same moments later.
    with contextlib.suppress(CacheUnavailableError):
        await gw.cache.mark("group", group_id, "S")
