"""HTTP API. Adding an edge answers 201 when it is new and 200 when it already existed;
removing one answers 204 either way. Only a real change queues an event."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Query, Request, Response, status
from neo4j import AsyncDriver

from campus_common.internal_auth import InternalCaller, ensure_acts_as
from campus_common.web import After, Id
from campus_graph import service
from campus_graph.schemas import (
    FollowCreate,
    FollowRead,
    FriendPage,
    FriendshipRead,
    FriendSuggestion,
    Graph,
    GroupSuggestion,
    RelationshipPage,
    Strategy,
)

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


async def _driver(request: Request) -> AsyncDriver:
    return request.app.state.driver  # type: ignore[no-any-return]


async def _users(request: Request) -> httpx.AsyncClient:
    return request.app.state.users  # type: ignore[no-any-return]


async def _notify(request: Request) -> service.Notify:
    return request.app.state.relay.notify  # type: ignore[no-any-return]


Driver = Annotated[AsyncDriver, Depends(_driver)]
Users = Annotated[httpx.AsyncClient, Depends(_users)]
Notify = Annotated[service.Notify, Depends(_notify)]


def _created(response: Response, created: bool) -> None:
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK


@router.post("/users/{user_id}/friends/{other_id}", tags=["friends"])
async def add_friend(
    user_id: Id,
    other_id: Id,
    response: Response,
    driver: Driver,
    users: Users,
    notify: Notify,
    caller: InternalCaller,
) -> FriendshipRead:
    """Make two users friends (both directions); 201 when new, 200 when they already were."""
    ensure_acts_as(caller, user_id, action="add friends")
    read, created = await service.add_friend(
        driver=driver, users=users, notify=notify, user_id=user_id, other_id=other_id
    )
    _created(response, created)
    return read


@router.delete(
    "/users/{user_id}/friends/{other_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["friends"]
)
async def remove_friend(
    user_id: Id, other_id: Id, driver: Driver, users: Users, notify: Notify, caller: InternalCaller
) -> None:
    ensure_acts_as(caller, user_id, action="remove friends")
    await service.remove_friend(
        driver=driver, users=users, notify=notify, user_id=user_id, other_id=other_id
    )


@router.get("/users/{user_id}/friends", tags=["friends"])
async def list_friends(
    user_id: Id, driver: Driver, users: Users, limit: Limit = 100, after: After = 0
) -> FriendPage:
    return await service.list_friends(
        driver=driver, users=users, user_id=user_id, after=after, limit=limit
    )


@router.post("/follow", tags=["follows"])
async def follow(
    body: FollowCreate,
    response: Response,
    driver: Driver,
    users: Users,
    notify: Notify,
    caller: InternalCaller,
) -> FollowRead:
    """Follow a user; 201 when new, 200 when already following."""
    ensure_acts_as(caller, body.follower_id, action="follow")
    read, created = await service.follow(
        driver=driver,
        users=users,
        notify=notify,
        follower_id=body.follower_id,
        followee_id=body.followee_id,
    )
    _created(response, created)
    return read


@router.delete("/follow", status_code=status.HTTP_204_NO_CONTENT, tags=["follows"])
async def unfollow(
    body: FollowCreate, driver: Driver, users: Users, notify: Notify, caller: InternalCaller
) -> None:
    ensure_acts_as(caller, body.follower_id, action="unfollow")
    await service.unfollow(
        driver=driver,
        users=users,
        notify=notify,
        follower_id=body.follower_id,
        followee_id=body.followee_id,
    )


@router.get("/relationships", tags=["relationships"])
async def relationships(driver: Driver, limit: Limit = 100, offset: Offset = 0) -> RelationshipPage:
    """Every FRIEND (once per pair) and FOLLOWS edge with both users' names."""
    return await service.list_relationships(driver=driver, offset=offset, limit=limit)


@router.get("/graph", tags=["relationships"])
async def graph(driver: Driver, limit: Annotated[int, Query(ge=1, le=2000)] = 200) -> Graph:
    """Nodes and FRIEND/FOLLOWS/MEMBER_OF edges for the dashboard's visualisation."""
    return await service.graph_view(driver=driver, limit=limit)


@router.get("/recommendations/users/{user_id}/friends", tags=["recommendations"])
async def recommend_friends(
    user_id: Id,
    driver: Driver,
    users: Users,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    strategy: Strategy = "combined",
) -> list[FriendSuggestion]:
    return await service.recommend_friends(
        driver=driver, users=users, user_id=user_id, strategy=strategy, limit=limit
    )


@router.get("/recommendations/users/{user_id}/groups", tags=["recommendations"])
async def recommend_groups(
    user_id: Id, driver: Driver, users: Users, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> list[GroupSuggestion]:
    return await service.recommend_groups(driver=driver, users=users, user_id=user_id, limit=limit)
