"""Friends, follows, recommendations (graph service) and the leaderboard (Redis)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import Response

from campus_common.web import MAX_ID
from campus_gateway import service
from campus_gateway.auth import ensure_self
from campus_gateway.routes.deps import Caller, Gw, Id, Limit, headers_for, passthrough, rate_limited
from campus_gateway.schemas import FollowRequest, LeaderboardEntry

router = APIRouter(dependencies=[Depends(rate_limited)])
Strategy = Literal["mutual", "groups", "combined"]


@router.post(
    "/users/{user_id}/friends/{other_id}", status_code=status.HTTP_201_CREATED, tags=["social"]
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
        headers=headers_for(request, caller),
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
        headers=headers_for(request, caller),
    )
    return passthrough(reply)


@router.get("/users/{user_id}/friends", tags=["social"])
async def list_friends(
    user_id: Id,
    gw: Gw,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> Response:
    """A user's friends, by id; pass `next_after` back as `after` for the next page."""
    reply = await gw.upstream.call(
        "graph", "GET", f"/users/{user_id}/friends", params=request.query_params.multi_items()
    )
    return passthrough(reply)


@router.post("/follow", status_code=status.HTTP_201_CREATED, tags=["social"])
async def follow(body: FollowRequest, gw: Gw, caller: Caller, request: Request) -> Response:
    """Follow someone (`follower_id` defaults to you)."""
    data = body.forward()
    data["follower_id"] = body.follower_id or caller.user_id
    ensure_self(caller, data["follower_id"], action="follow")
    reply = await gw.upstream.call(
        "graph", "POST", "/follow", json=data, headers=headers_for(request, caller)
    )
    return passthrough(reply)


@router.delete("/follow", status_code=status.HTTP_204_NO_CONTENT, tags=["social"])
async def unfollow(body: FollowRequest, gw: Gw, caller: Caller, request: Request) -> Response:
    """Stop following someone."""
    data = body.forward()
    data["follower_id"] = body.follower_id or caller.user_id
    ensure_self(caller, data["follower_id"], action="unfollow")
    reply = await gw.upstream.call(
        "graph", "DELETE", "/follow", json=data, headers=headers_for(request, caller)
    )
    return passthrough(reply)


@router.get("/relationships", tags=["social"])
async def relationships(
    gw: Gw,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """Every FRIEND (once per pair) and FOLLOWS edge with the users' names."""
    reply = await gw.upstream.call(
        "graph", "GET", "/relationships", params=request.query_params.multi_items()
    )
    return passthrough(reply)


@router.get("/graph", tags=["social"])
async def graph(
    gw: Gw, request: Request, limit: Annotated[int, Query(ge=1, le=2000)] = 200
) -> Response:
    """Nodes and edges of the social graph, for visualisation."""
    reply = await gw.upstream.call(
        "graph", "GET", "/graph", params=request.query_params.multi_items()
    )
    return passthrough(reply)


@router.get("/recommendations/users/{user_id}/friends", tags=["recommendations"])
async def recommend_friends(
    user_id: Id,
    gw: Gw,
    request: Request,
    limit: Limit = 10,
    strategy: Annotated[Strategy, Query()] = "combined",
) -> Response:
    """People you may know: friends of friends ranked by mutual friends (or groups, or both)."""
    reply = await gw.upstream.call(
        "graph",
        "GET",
        f"/recommendations/users/{user_id}/friends",
        params=request.query_params.multi_items(),
    )
    return passthrough(reply)


@router.get("/recommendations/users/{user_id}/groups", tags=["recommendations"])
async def recommend_groups(user_id: Id, gw: Gw, request: Request, limit: Limit = 10) -> Response:
    """Groups your friends belong to that you have not joined."""
    reply = await gw.upstream.call(
        "graph",
        "GET",
        f"/recommendations/users/{user_id}/groups",
        params=request.query_params.multi_items(),
    )
    return passthrough(reply)


@router.get("/recommendations/leaderboard", tags=["recommendations"])
async def leaderboard(gw: Gw, limit: Limit = 10) -> list[LeaderboardEntry]:
    """Top users by participation points (a Redis sorted set; 503 while Redis is down)."""
    return await service.leaderboard(gw=gw, limit=limit)
