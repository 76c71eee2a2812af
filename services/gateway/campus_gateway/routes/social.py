"""Friends, follows, recommendations (graph service) and the leaderboard (Redis)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse, Response

from campus_common.errors import ForbiddenError
from campus_common.web import MAX_ID
from campus_gateway import contract, service
from campus_gateway.auth import ensure_self
from campus_gateway.contract import errors
from campus_gateway.routes.deps import (
    Admin,
    Caller,
    Gw,
    Id,
    Limit,
    client_address,
    forwarded,
    passthrough,
    rate_limited,
    token_user,
    too_many,
)
from campus_gateway.schemas import FollowRequest, LeaderboardEntry

router = APIRouter(responses=errors(), dependencies=[Depends(rate_limited)])
Strategy = Literal["mutual", "groups", "combined"]
MAX_PUBLIC_OFFSET = 1000


@router.post(
    "/users/{user_id}/friends/{other_id}",
    status_code=status.HTTP_201_CREATED,
    tags=["social"],
    response_model=contract.Friendship,
    responses={200: {"model": contract.Friendship, "description": "they already were friends"}},
)
async def add_friend(
    user_id: Id, other_id: Id, gw: Gw, caller: Caller, request: Request
) -> Response:
    """Make two users friends (mutual); you may only add friends for yourself."""
    ensure_self(caller, user_id, action="add friends")
    reply = await gw.upstream.call(
        "graph",
        "POST",
        f"/users/{user_id}/friends/{other_id}",
        headers=forwarded(request),
        actor=caller,
    )
    return passthrough(reply)


@router.delete(
    "/users/{user_id}/friends/{other_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["social"]
)
async def remove_friend(
    user_id: Id, other_id: Id, gw: Gw, caller: Caller, request: Request
) -> Response:
    """End a friendship (yours)."""
    ensure_self(caller, user_id, action="remove friends")
    reply = await gw.upstream.call(
        "graph",
        "DELETE",
        f"/users/{user_id}/friends/{other_id}",
        headers=forwarded(request),
        actor=caller,
    )
    return passthrough(reply)


@router.get("/users/{user_id}/friends", tags=["social"], response_model=contract.FriendPage)
async def list_friends(
    user_id: Id,
    gw: Gw,
    request: Request,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> JSONResponse:
    """A user's friends, by id (signed-in users; emails only for the admin); pass `next_after`
    back as `after` for the next page."""
    reply = await gw.upstream.call(
        "graph", "GET", f"/users/{user_id}/friends", params=request.query_params.multi_items()
    )
    page = reply.json()
    if not caller.admin:
        for friend in page["items"]:
            friend.pop("email", None)
    return JSONResponse(page)


@router.post(
    "/follow",
    status_code=status.HTTP_201_CREATED,
    tags=["social"],
    response_model=contract.Follow,
    responses={200: {"model": contract.Follow, "description": "already following"}},
)
async def follow(body: FollowRequest, gw: Gw, caller: Caller, request: Request) -> Response:
    """Follow someone (`follower_id` defaults to you)."""
    data = body.forward()
    data["follower_id"] = body.follower_id or caller.user_id
    ensure_self(caller, data["follower_id"], action="follow")
    reply = await gw.upstream.call(
        "graph", "POST", "/follow", json=data, headers=forwarded(request), actor=caller
    )
    return passthrough(reply)


@router.delete("/follow", status_code=status.HTTP_204_NO_CONTENT, tags=["social"])
async def unfollow(body: FollowRequest, gw: Gw, caller: Caller, request: Request) -> Response:
    """Stop following someone."""
    data = body.forward()
    data["follower_id"] = body.follower_id or caller.user_id
    ensure_self(caller, data["follower_id"], action="unfollow")
    reply = await gw.upstream.call(
        "graph", "DELETE", "/follow", json=data, headers=forwarded(request), actor=caller
    )
    return passthrough(reply)


@router.get("/relationships", tags=["social"], response_model=contract.RelationshipPage)
async def relationships(
    gw: Gw,
    request: Request,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """Every FRIEND (once per pair) and FOLLOWS edge with the users' names (signed-in users;
    offsets past 1,000 only for the admin: walking the whole graph is costly and revealing)."""
    if offset > MAX_PUBLIC_OFFSET and not caller.admin:
        raise ForbiddenError(f"offsets past {MAX_PUBLIC_OFFSET} are for the admin")
    reply = await gw.upstream.call(
        "graph", "GET", "/relationships", params=request.query_params.multi_items()
    )
    return passthrough(reply)


@router.get("/graph", tags=["social"], response_model=contract.Graph)
async def graph(
    gw: Gw, request: Request, admin: Admin, limit: Annotated[int, Query(ge=1, le=2000)] = 200
) -> Response:
    """Nodes and edges of the social graph, for visualisation (the admin only)."""
    reply = await gw.upstream.call(
        "graph", "GET", "/graph", params=request.query_params.multi_items()
    )
    return passthrough(reply)


@router.get(
    "/recommendations/users/{user_id}/friends",
    tags=["recommendations"],
    response_model=list[contract.FriendSuggestion],
)
async def recommend_friends(
    user_id: Id,
    gw: Gw,
    request: Request,
    limit: Limit = 10,
    strategy: Annotated[Strategy, Query()] = "combined",
) -> Response:
    """People you may know: friends of friends ranked by mutual friends (or groups, or both).
    Public, like profiles: ids and names only, no email."""
    reply = await gw.upstream.call(
        "graph",
        "GET",
        f"/recommendations/users/{user_id}/friends",
        params=request.query_params.multi_items(),
    )
    return passthrough(reply)


@router.get(
    "/recommendations/users/{user_id}/groups",
    tags=["recommendations"],
    response_model=list[contract.GroupSuggestion],
)
async def recommend_groups(user_id: Id, gw: Gw, request: Request, limit: Limit = 10) -> Response:
    """Groups your friends belong to that you have not joined."""
    reply = await gw.upstream.call(
        "graph",
        "GET",
        f"/recommendations/users/{user_id}/groups",
        params=request.query_params.multi_items(),
    )
    return passthrough(reply)


# Without `rate_limited`: the leaderboard counts the request in its own Redis round trip.
reads = APIRouter(responses=errors())


@reads.get("/recommendations/leaderboard", tags=["recommendations"])
async def leaderboard(gw: Gw, request: Request, limit: Limit = 10) -> list[LeaderboardEntry]:
    """Top users by participation points (a Redis sorted set; 503 while Redis is down)."""
    verdict, entries = await service.counted_leaderboard(
        gw=gw,
        limiter=request.app.state.limiter,
        address=client_address(request),
        user_id=token_user(request, gw),
        limit=limit,
    )
    if not verdict.allowed:
        raise too_many(verdict)
    return entries
